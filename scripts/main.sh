#!/usr/bin/env bash
# The main job: evaluate every available router on the llmrouter_dc dataset and print the table.
# Usage: scripts/main.sh [dataset dir] [output dir]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-${POINTSMAN_DATA_DIR:-../shared/data}/llmrouter_dc}
out=${2:-out/$(basename "$data")}
scripts/fetch-model.sh >&2
cargo build --release --quiet -p pointsman-cli
./target/release/pointsman eval --data "$data" --routers all --out "$out" --decisions
echo "report: $out/report.md, curve: $out/curve.svg, decisions: $out/decisions.jsonl"
