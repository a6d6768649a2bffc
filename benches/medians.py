#!/usr/bin/env python3
"""Prints the medians of the last criterion run of every bench, from target/criterion.

criterion keeps each bench's latest estimates in target/criterion/<group>/<bench>/new/;
this reads the median (and, where the bench declares one, the throughput) so that the tables in
docs/benchmarks.md can be copied from one run without reading criterion's console output.

Usage: python3 benches/medians.py [--dir target/criterion] [SUBSTRING ...]
Only benches whose id contains one of the SUBSTRINGs are printed (all of them without any).
"""

import argparse
import json
import os
import sys


def human_time(ns):
    """A duration in nanoseconds, with a unit that keeps three or four significant digits."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.4g} {unit}"
    return f"{ns:.4g} ns"


def human_rate(per_second):
    """Elements per second, in k or M."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_second >= scale:
            return f"{per_second / scale:.4g} {unit}/s"
    return f"{per_second:.4g} /s"


def runs(root):
    """Yields (bench id, median ns, elements per iteration or None) for every bench under root."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if os.path.basename(folder) != "new" or "estimates.json" not in files:
            continue
        with open(os.path.join(folder, "estimates.json")) as f:
            median = json.load(f)["median"]["point_estimate"]
        elements = None
        bench_file = os.path.join(folder, "benchmark.json")
        if os.path.exists(bench_file):
            with open(bench_file) as f:
                meta = json.load(f)
            bench_id = meta.get("full_id") or os.path.relpath(os.path.dirname(folder), root)
            throughput = meta.get("throughput") or {}
            elements = throughput.get("Elements")
        else:
            bench_id = os.path.relpath(os.path.dirname(folder), root)
        yield bench_id, median, elements


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=os.path.join("target", "criterion"))
    parser.add_argument("filters", nargs="*", metavar="SUBSTRING")
    args = parser.parse_args()
    if not os.path.isdir(args.dir):
        sys.exit(f"medians: {args.dir} does not exist: run `cargo bench -p pointsman-bench` first")
    rows = sorted(
        (r for r in runs(args.dir) if not args.filters or any(f in r[0] for f in args.filters)),
        key=lambda r: r[0],
    )
    if not rows:
        sys.exit(f"medians: no bench under {args.dir} matches {args.filters}")
    width = max(len(r[0]) for r in rows)
    for bench_id, median, elements in rows:
        line = f"{bench_id:<{width}}  {human_time(median):>10}"
        if elements:
            line += f"  {human_rate(elements / median * 1e9):>12}"
        print(line)


if __name__ == "__main__":
    main()
