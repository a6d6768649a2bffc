#!/usr/bin/env bash
# The main job: evaluate every available router on the llmrouter_dc dataset and print the table.
# Usage: scripts/main.sh [dataset dir] [output dir]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-${POINTSMAN_DATA_DIR:-../shared/data}/llmrouter_dc}
out=${2:-out/$(basename "$data")}
scripts/fetch-model.sh >&2
# A first build compiles about 180 crates (candle, tokenizers, ...): say so, and let cargo show its
# progress, rather than sit silent for minutes.
if [ ! -x "${CARGO_TARGET_DIR:-target}/release/pointsman" ]; then
    echo "main: first build of the pointsman command (release): about 5-10 minutes on 2 cores" >&2
else
    echo "main: bringing the pointsman command up to date (seconds when nothing changed, minutes after an update)" >&2
fi
cargo build --release -p pointsman-cli
echo "main: evaluating every router on $data (about half a minute on 2 cores)" >&2
"${CARGO_TARGET_DIR:-target}/release/pointsman" eval --data "$data" --routers all --out "$out" --decisions
echo "report: $out/report.md, curve: $out/curve.svg, decisions: $out/decisions.jsonl"
