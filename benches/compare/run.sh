#!/usr/bin/env bash
# Builds the pointsman wheel into a fresh virtual environment and runs the side-by-side
# comparisons (benches/compare/compare.py) with BLAS and Pointsman pinned to one thread.
# Usage: benches/compare/run.sh [knn|mf|embed|all] [compare.py options]
set -euo pipefail
cd "$(dirname "$0")/../.."
export POINTSMAN_DATA_DIR=${POINTSMAN_DATA_DIR:-$(cd .. && pwd)/shared/data}
venv=${POINTSMAN_BENCH_VENV:-target/bench-venv}
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r python/requirements-test.txt
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$venv/bin/maturin" build --release --quiet -m python/Cargo.toml --out "$wheels"
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/pointsman-*.whl
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 RAYON_NUM_THREADS=1 \
    "$venv/bin/python" benches/compare/compare.py "$@"
