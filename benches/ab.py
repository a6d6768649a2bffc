#!/usr/bin/env python3
"""A/B: the criterion benches of two checkouts, interleaved in one run, compared by median ratio.

A change that should not move performance (a refactor, a new module beside the hot path) is
checked against the commit before it *in the same run*: on a shared or noisy machine two runs an
hour apart differ by more than the change. This script builds nothing; point it at two checkouts
whose `pointsman-bench` benches are built (`cargo bench -p pointsman-bench --no-run` in each).
It runs every bench binary of A, then of B, then A again, ... for `--rounds` rounds, each time
with a short measurement window, and prints per bench id the median over rounds of A and of B
and the median of the per-round ratios B/A (ratios of neighbouring runs cancel slow drifts of
the machine's load).

    git worktree add ../base b28f5b0
    (cd ../base && cargo bench -p pointsman-bench --no-run)
    cargo bench -p pointsman-bench --no-run
    RAYON_NUM_THREADS=1 python3 benches/ab.py --a ../base --b . route bandit text_to_decision

Only bench ids containing one of the given substrings run (criterion's own filter: a regular
expression per binary); ids present on one side only are listed, not compared.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def bench_executables(checkout):
    """The bench binaries of `pointsman-bench` in `checkout`, by name, as cargo reports them."""
    out = subprocess.run(
        ["cargo", "bench", "-p", "pointsman-bench", "--no-run", "--message-format=json"],
        cwd=checkout,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    exes = {}
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            if "bench" in msg["target"]["kind"]:
                exes[msg["target"]["name"]] = msg["executable"]
    if not exes:
        sys.exit(f"no bench binaries of pointsman-bench found in {checkout}")
    return exes


def medians(home, baseline):
    """Bench id → median time (ns) of the criterion baseline named `baseline` under `home`."""
    found = {}
    for root, dirs, files in os.walk(home):
        if os.path.basename(root) == baseline and "estimates.json" in files:
            with open(os.path.join(root, "benchmark.json")) as f:
                bench_id = json.load(f)["full_id"]
            with open(os.path.join(root, "estimates.json")) as f:
                found[bench_id] = json.load(f)["median"]["point_estimate"]
    return found


def run_side(exes, checkout, home, baseline, args):
    pattern = "|".join(args.filters) if args.filters else ""
    for name, exe in sorted(exes.items()):
        if args.binaries and name not in args.binaries:
            continue
        cmd = [exe, "--bench", "--noplot", "--save-baseline", baseline,
               "--warm-up-time", str(args.warm_up), "--measurement-time", str(args.time)]
        if pattern:
            cmd.append(pattern)
        env = dict(os.environ, CRITERION_HOME=home)
        # Bench binaries run from their package's folder under cargo: do the same.
        subprocess.run(cmd, cwd=os.path.join(checkout, "benches"), env=env, check=True,
                       stdout=subprocess.DEVNULL)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--a", required=True, help="checkout A (the baseline)")
    p.add_argument("--b", required=True, help="checkout B (the change)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--time", type=float, default=2.0, help="measurement seconds per bench")
    p.add_argument("--warm-up", type=float, default=0.5, help="warm-up seconds per bench")
    p.add_argument("--bin", dest="binaries", action="append",
                   help="only this bench binary (repeatable), e.g. route")
    p.add_argument("filters", nargs="*", help="substrings of bench ids to run")
    args = p.parse_args()
    sides = {"A": os.path.abspath(args.a), "B": os.path.abspath(args.b)}
    exes = {s: bench_executables(c) for s, c in sides.items()}
    with tempfile.TemporaryDirectory(prefix="pointsman-ab-") as tmp:
        per_round = []
        for r in range(args.rounds):
            got = {}
            for s in ("A", "B") if r % 2 == 0 else ("B", "A"):
                home = os.path.join(tmp, s)
                run_side(exes[s], sides[s], home, f"ab{r}", args)
                got[s] = medians(home, f"ab{r}")
            per_round.append(got)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    ids_a = set(per_round[0]["A"])
    ids_b = set(per_round[0]["B"])
    print(f"A = {sides['A']}\nB = {sides['B']}\n{args.rounds} rounds, "
          f"{args.time} s per bench, medians over rounds\n")
    print(f"{'bench':<44} {'A':>12} {'B':>12} {'B/A':>7}")
    worst = 0.0
    for bench_id in sorted(ids_a & ids_b):
        a = [r["A"][bench_id] for r in per_round if bench_id in r["A"]]
        b = [r["B"][bench_id] for r in per_round if bench_id in r["B"]]
        ratios = [r["B"][bench_id] / r["A"][bench_id] for r in per_round
                  if bench_id in r["A"] and bench_id in r["B"]]
        ratio = statistics.median(ratios)
        worst = max(worst, abs(ratio - 1.0))
        print(f"{bench_id:<44} {statistics.median(a):>10.0f}ns {statistics.median(b):>10.0f}ns "
              f"{ratio:>7.3f}")
    for bench_id in sorted(ids_a ^ ids_b):
        side = "A" if bench_id in ids_a else "B"
        print(f"{bench_id:<44} only in {side}")
    print(f"\nlargest change of a median ratio: {100 * worst:.1f} %")


if __name__ == "__main__":
    main()
