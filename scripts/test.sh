#!/usr/bin/env bash
# The whole test suite: formatting, lints, the Rust tests (unit, integration, quality on the shared
# datasets, doc tests). Installs what it needs. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export POINTSMAN_DATA_DIR=${POINTSMAN_DATA_DIR:-$(cd .. && pwd)/shared/data}
step() { printf '\n==> %s (%s)\n' "$*" "$(date +%T)"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --release -- -D warnings

step "the core crate without optional features (no candle)"
cargo clippy -p pointsman --no-default-features --release -- -D warnings

step "cargo test (release: the quality tests train routers on the real datasets)"
cargo test --workspace --release

step "criterion benches, once each in test mode"
cargo test --workspace --release --benches

step "examples"
cargo run --release --quiet -p pointsman-examples --example quickstart -- "$POINTSMAN_DATA_DIR/llmrouter_dc"

step "all tests passed"
