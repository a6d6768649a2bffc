#!/usr/bin/env python3
"""Side-by-side comparisons: Pointsman against what a Python user would write instead.

Each comparison runs both contenders in the same process, on the same data, checks that they
make the same decisions, and prints the medians and their ratio:

  knn    exact kNN decision (k=100, similarity weights) vs a NumPy brute-force kNN router
  mf     MF decision vs a NumPy implementation of RouteLLM's MF forward pass
  embed  text -> embedding vs sentence-transformers on PyTorch CPU (skipped, with a message,
         when sentence-transformers is not installed: it is large and not a dependency)

Usage: python benches/compare/compare.py [knn|mf|embed|all] [--data DIR] [--reps N]
Needs the pointsman wheel (benches/compare/run.sh builds and installs it into a venv) and NumPy.
Pin BLAS and Pointsman to one thread for single-query latency (run.sh does:
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 RAYON_NUM_THREADS=1).
"""

import argparse
import json
import os
import statistics
import struct
import sys
import tempfile
import time

import numpy as np

import pointsman


def median_us(fn, items, reps):
    """Median wall time in microseconds of fn(item), over reps passes of items."""
    for item in items[:20]:
        fn(item)
    times = []
    for _ in range(reps):
        for item in items:
            t0 = time.perf_counter_ns()
            fn(item)
            times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1e3


def read_safetensors(path):
    """The tensors of a safetensors file as NumPy arrays (little-endian F32/F64/U32)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    dtypes = {"F32": np.float32, "F64": np.float64, "U32": np.uint32}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        arr = np.frombuffer(data[8 + n + a : 8 + n + b], dtype=dtypes[meta["dtype"]])
        out[name] = arr.reshape(meta["shape"])
    return out


def prices(ds, models):
    """Per-model input and output USD per 1M tokens, and default output tokens (SCHEMA.md)."""
    with open(os.path.join(ds.path, "models.json")) as f:
        spec = json.load(f)
    cards = spec["models"]
    default = spec.get("default_output_tokens", 256.0)
    inp = np.array([cards[m]["input_usd_per_mtok"] for m in models], dtype=np.float64)
    out = np.array([cards[m]["output_usd_per_mtok"] for m in models], dtype=np.float64)
    dflt = np.array([cards[m].get("default_output_tokens", default) for m in models],
                    dtype=np.float64)
    return inp, out, dflt


def report(name, ours, theirs, agree, n):
    print(f"{name}: pointsman {ours:.1f} us, numpy {theirs:.1f} us (medians), "
          f"numpy/pointsman = {theirs / ours:.2f}x; same decision on {agree}/{n} test queries")


def compare_knn(ds, cost_weight, reps):
    k = 100
    router = pointsman.KnnRouter.fit(ds.train, k=k)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "knn.safetensors")
        router.save(path)
        t = read_safetensors(path)
    emb = np.ascontiguousarray(t["knn.embeddings"], dtype=np.float32)
    scores = t["knn.scores"].astype(np.float64)
    out_tokens = t["knn.output_tokens"].astype(np.float64)
    p_in, p_out, default_out = prices(ds, router.models)
    has_out = ~np.isnan(out_tokens)
    out_tokens = np.nan_to_num(out_tokens)
    if not np.isnan(t["knn.costs"]).all():
        sys.exit("knn comparison: this dataset has observed costs; the NumPy router prices only")

    def numpy_route(item):
        x, tokens = item
        q = x / np.linalg.norm(x)
        sims = emb @ q
        idx = np.argpartition(-sims, k)[:k]
        w = np.maximum(sims[idx], 0.0).astype(np.float64)
        quality = np.clip(w @ scores[idx] / w.sum(), 0.0, 1.0)
        den = w @ has_out[idx]
        out = np.where(den > 0, (w @ out_tokens[idx]) / np.maximum(den, 1e-300), default_out)
        cost = (p_in * tokens + p_out * out) / 1e6
        return int(np.argmax(quality - cost_weight * cost))

    X = ds.test.embeddings
    tokens = ds.test.prompt_tokens
    items = [(X[i], float(tokens[i])) for i in range(len(X))]
    agree = sum(
        numpy_route(it) == router.route(it[0], cost_weight, prompt_tokens=it[1]).model
        for it in items
    )
    ours = median_us(lambda it: router.route(it[0], cost_weight, prompt_tokens=it[1]), items, reps)
    theirs = median_us(numpy_route, items, reps)
    report(f"exact kNN (k={k}, {emb.shape[0]} x {emb.shape[1]})", ours, theirs, agree, len(items))


def compare_mf(ds, cost_weight, reps):
    router = pointsman.MfRouter.fit(ds.train, use_tasks=False, max_epochs=20)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mf.safetensors")
        router.save(path)
        t = read_safetensors(path)
    proj = t["mf.projection"]  # [k, d]: RouteLLM's text_proj
    model_vectors = t["mf.model_vectors"]  # [m, k]: RouteLLM's P
    classifier = t["mf.classifier"]  # [k]: RouteLLM's classifier
    bias = t["mf.bias"].astype(np.float64)
    task = t["mf.task_vectors"][-1]  # the "no task" row
    fits = t["mf.cost_fit"]
    p_in, p_out, default_out = prices(ds, router.models)

    def numpy_route(item):
        # RouteLLM's MFModel.forward: normalise the model embeddings, project the prompt
        # embedding, multiply element-wise, classify; then a sigmoid. Costs as Pointsman's.
        x, tokens = item
        me = model_vectors / np.linalg.norm(model_vectors, axis=1, keepdims=True)
        h = proj @ (x / np.linalg.norm(x)) + task
        logits = (me * h) @ classifier + bias
        quality = 1.0 / (1.0 + np.exp(-logits))
        priced = (p_in * tokens + p_out * default_out) / 1e6
        cost = np.where(fits[:, 0] > 0, fits[:, 1] + fits[:, 2] * tokens, priced)
        return int(np.argmax(quality - cost_weight * cost))

    X = ds.test.embeddings
    tokens = ds.test.prompt_tokens
    items = [(X[i], float(tokens[i])) for i in range(len(X))]
    agree = sum(
        numpy_route(it) == router.route(it[0], cost_weight, prompt_tokens=it[1]).model
        for it in items
    )
    ours = median_us(lambda it: router.route(it[0], cost_weight, prompt_tokens=it[1]), items, reps)
    theirs = median_us(numpy_route, items, reps)
    report(f"MF (dim {proj.shape[0]})", ours, theirs, agree, len(items))


def compare_embed(ds, reps):
    try:
        from sentence_transformers import SentenceTransformer
        import torch
    except ImportError:
        print("embed: skipped: sentence-transformers is not installed "
              "(pip install sentence-transformers torch --index-url https://download.pytorch.org/whl/cpu)")
        return
    model_dir = os.environ.get("POINTSMAN_MODEL_DIR") or os.path.expanduser(
        "~/.cache/pointsman/models/all-MiniLM-L6-v2")
    torch.set_num_threads(1)
    st = SentenceTransformer(model_dir, device="cpu")
    ours = pointsman.Embedder.load(model_dir, threads=1)
    short = "Write a Python function that reverses a linked list."
    a = st.encode([short], normalize_embeddings=True)
    b = ours.embed([short])
    print(f"embed: max abs difference {np.abs(a - b).max():.2e}")
    t_ours = median_us(lambda s: ours.embed([s]), [short] * 20, reps)
    t_st = median_us(lambda s: st.encode([s], normalize_embeddings=True), [short] * 20, reps)
    print(f"embed short prompt, 1 thread: pointsman {t_ours / 1e3:.2f} ms, "
          f"sentence-transformers {t_st / 1e3:.2f} ms, ratio {t_st / t_ours:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="all", choices=["knn", "mf", "embed", "all"])
    default_data = os.path.join(os.environ.get("POINTSMAN_DATA_DIR", "../shared/data"), "llmrouter_dc")
    parser.add_argument("--data", default=default_data)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cost-weight", type=float, default=300.0)
    args = parser.parse_args()
    ds = pointsman.Dataset.load(args.data)
    print(f"{ds.name}: {len(ds.train)} train / {len(ds.test)} test queries, {len(ds.models)} models; "
          f"pointsman {pointsman.__version__}, numpy {np.__version__}")
    if args.what in ("knn", "all"):
        compare_knn(ds, args.cost_weight, args.reps)
    if args.what in ("mf", "all"):
        compare_mf(ds, args.cost_weight, args.reps)
    if args.what in ("embed", "all"):
        compare_embed(ds, args.reps)


if __name__ == "__main__":
    main()
