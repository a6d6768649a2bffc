#!/usr/bin/env python3
"""Peak memory (max resident set) of `pointsman route` with the embedder loaded.

Trains a kNN router on llmrouter_dc with the CLI (unless --router is given), then pipes the test
split's prompts as text lines into `pointsman route` and reads the child's peak RSS from the
kernel (os.wait4). Usage: python3 benches/peak_memory.py [--bin target/release/pointsman]
[--data DIR] [--router FILE] [--queries N] [--embed-threads N]
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="target/release/pointsman")
    data = os.path.join(os.environ.get("POINTSMAN_DATA_DIR", "../shared/data"), "llmrouter_dc")
    parser.add_argument("--data", default=data)
    parser.add_argument("--router")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embed-threads", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        router = args.router
        if router is None:
            router = os.path.join(tmp, "knn.safetensors")
            subprocess.run([args.bin, "train", "--data", args.data, "--router", "knn", "--out",
                            router, "--config", '{"k": 100}', "-q"], check=True,
                           stdout=subprocess.DEVNULL)
        name = os.path.basename(os.path.normpath(args.data))
        with gzip.open(os.path.join(args.data, f"{name}.jsonl.gz"), "rt") as f:
            prompts = [json.loads(line)["prompt"] for line in f][: args.queries]
        lines = "".join(json.dumps({"id": i, "text": p}) + "\n" for i, p in enumerate(prompts))
        cmd = [args.bin, "route", "--router", router, "--cost-weight", "300",
               "--embed-threads", str(args.embed_threads)]
        out_path = os.path.join(tmp, "decisions.jsonl")
        with open(out_path, "wb") as out, open(os.path.join(tmp, "stderr"), "w+b") as err:
            child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=err)
            child.stdin.write(lines.encode())
            child.stdin.close()
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = 0  # reaped by wait4
            if status != 0:
                err.seek(0)
                sys.exit(f"pointsman route failed: {err.read().decode()}")
        with open(out_path) as f:
            decided = sum(1 for _ in f)
    peak_mb = usage.ru_maxrss / 1024
    print(f"pointsman route, embedder + kNN router, {len(prompts)} text queries "
          f"({decided} decisions): peak RSS {peak_mb:.0f} MB (target <= 250 MB)")


if __name__ == "__main__":
    main()
