#!/usr/bin/env bash
# Builds the pointsman wheel into a fresh virtual environment and runs the side-by-side
# comparisons (benches/compare/compare.py) with BLAS and Pointsman pinned to one thread.
# Usage: benches/compare/run.sh [knn|mf|embed|all] [compare.py options]
# The embed comparison needs torch and sentence-transformers in the venv, which this script does
# not install (about 5 GB from PyPI: see compare.py's skip message); point
# POINTSMAN_BENCH_VENV at a venv that has them.
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
# These set default thread counts only: the embed comparison's 2-thread runs still get 2 threads,
# as compare.py sets both explicitly (torch.set_num_threads, which also sets OpenMP's and MKL's
# counts; pointsman.Embedder.load(threads=2), which starts its own pool of that size).
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 RAYON_NUM_THREADS=1 \
    "$venv/bin/python" benches/compare/compare.py "$@"
