#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (cargo-fuzz layout, libFuzzer) for a time budget each.
#
#   scripts/fuzz.sh <target|all> <seconds>      e.g. scripts/fuzz.sh all 300
#
# This machine has only the stable toolchain: RUSTC_BOOTSTRAP=1 lets it build with the nightly
# flags cargo-fuzz needs (sanitizers, coverage). cargo-fuzz is installed from crates.io when
# missing. Each target reads its seeds and past findings from fuzz/regressions/<target>/ and grows
# its corpus in fuzz/corpus/<target>/ (not committed). A crash leaves its input in
# fuzz/artifacts/<target>/: fix the bug, then copy the input into fuzz/regressions/<target>/,
# where `cargo test` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/fuzz.sh <target|all> <seconds>" >&2
    exit 2
fi
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
if [ "$1" = all ]; then
    targets=$(cargo fuzz list --fuzz-dir fuzz)
else
    targets=$1
fi
for t in $targets; do
    mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
    printf '\n==> fuzz %s for %s s\n' "$t" "$2"
    cargo fuzz run --fuzz-dir fuzz --release "$t" "fuzz/corpus/$t" "fuzz/regressions/$t" -- \
        -max_total_time="$2" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
done
