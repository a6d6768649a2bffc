#!/usr/bin/env python3
"""Side-by-side comparisons: Pointsman against what a Python user would write instead.

Each comparison runs both contenders in the same process, on the same data, checks that they
make the same decisions, and prints the medians and their ratio:

  knn    exact kNN decision (k=100, similarity weights) vs a NumPy brute-force kNN router
  mf     MF decision vs a NumPy implementation of RouteLLM's MF forward pass
  embed  text -> embedding vs sentence-transformers on PyTorch CPU, on the inputs of the
         criterion bench benches/benches/embed.rs (short and long prompt, batch32-short,
         batch32-dataset), on 1 and 2 threads, checking the embeddings agree (skipped, with a
         message, when sentence-transformers is not importable: it is large and not a dependency)

Usage: python benches/compare/compare.py [knn|mf|embed|all] [--data DIR] [--reps N]
                                         [--batch-reps N]
Needs the pointsman wheel (benches/compare/run.sh builds and installs it into a venv) and NumPy.
Pin BLAS and Pointsman to one thread for single-query latency (run.sh does:
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 RAYON_NUM_THREADS=1). The embed comparison sets its
thread counts itself (torch.set_num_threads, Embedder.load(threads=n)); those variables cap
neither.
"""

import argparse
import gzip
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


# The inputs of the criterion embedder bench (benches/benches/embed.rs), from the file it reads
# too, so the two sets of figures can be read side by side.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "prompts.json"),
          encoding="utf-8") as _f:
    _PROMPTS = json.load(_f)
SHORT_PROMPT = _PROMPTS["short"]
LONG_PROMPT = _PROMPTS["long"]
SHORT_PROMPTS = _PROMPTS["batch32_short"]

ST_INSTALL_HINT = (
    "PyTorch comes from PyPI here (its CPU-only index is not reachable), and PyPI's Linux torch "
    "wheel is the CUDA build: `pip install --no-deps torch` imports only once its nvidia-*/cuda-* "
    "dependencies are there too (about 5 GB; no GPU is needed to run on the CPU). So: "
    "python3 -m venv VENV && VENV/bin/pip install torch sentence-transformers "
    "-r python/requirements-test.txt, then POINTSMAN_BENCH_VENV=VENV benches/compare/run.sh embed"
)


def dataset_prompts_in_file_order(data_dir):
    """The prompts of the dataset folder's records in file order, read as Rust's
    Dataset::load and Dataset::prompts_in_file_order do: <name>.jsonl.gz, else a plain
    <name>.jsonl, where <name> is the folder's name; blank lines skipped."""
    name = os.path.basename(os.path.realpath(data_dir))
    gz = os.path.join(data_dir, f"{name}.jsonl.gz")
    plain = os.path.join(data_dir, f"{name}.jsonl")
    path = plain if not os.path.exists(gz) and os.path.exists(plain) else gz
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)["prompt"] for line in f if line.strip()]


def timed_ms(fn, items, reps):
    """Median wall time in milliseconds of fn(item) over reps passes of items (after one warm-up
    pass over at most 20 items), the number of samples, and the process's CPU time over wall
    time while measuring (about the number of busy threads)."""
    for item in items[:20]:
        fn(item)
    times = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(reps):
        for item in items:
            t0 = time.perf_counter_ns()
            fn(item)
            times.append(time.perf_counter_ns() - t0)
    cpu = (time.process_time() - cpu0) / max(time.perf_counter() - wall0, 1e-9)
    return statistics.median(times) / 1e6, len(times), cpu


def runnable_elsewhere(samples=10, interval=0.1):
    """The mean number of runnable threads of other processes over samples * interval seconds,
    from Linux's /proc (None elsewhere): other work competing for the cores."""
    try:
        total = 0
        for _ in range(samples):
            with open("/proc/loadavg") as f:
                total += int(f.read().split()[3].split("/")[0])
            for task in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{task}/stat") as f:
                        total -= f.read().rsplit(")", 1)[1].split()[0] == "R"
                except OSError:  # the thread ended
                    pass
            time.sleep(interval)
        return max(total / samples, 0.0)
    except (OSError, ValueError, IndexError):
        return None


def load_sentence_transformer(model_dir, dim, max_tokens):
    """sentence-transformers' model for the folder, on the CPU, truncating at max_tokens word
    pieces as Pointsman does. A folder without modules.json (scripts/fetch-model.sh checks only
    config.json, tokenizer.json and model.safetensors) is assembled from its modules instead:
    Transformer + mean Pooling + Normalize, which is what all-MiniLM-L6-v2's modules.json names."""
    from sentence_transformers import SentenceTransformer

    if os.path.exists(os.path.join(model_dir, "modules.json")):
        st = SentenceTransformer(model_dir, device="cpu")
        how = "modules.json"
    else:
        try:
            from sentence_transformers.sentence_transformer import modules
        except ImportError:  # sentence-transformers < 6
            from sentence_transformers import models as modules
        st = SentenceTransformer(
            modules=[
                modules.Transformer(model_dir, max_seq_length=max_tokens),
                modules.Pooling(dim, "mean"),
                modules.Normalize(),
            ],
            device="cpu",
        )
        how = "Transformer + Pooling(mean) + Normalize (no modules.json)"
    st.max_seq_length = max_tokens
    return st, how


def compare_embed(ds, data_dir, reps, batch_reps):
    # The model is a local folder: never ask the Hugging Face hub for anything.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        import sentence_transformers
        import transformers
    except Exception as e:  # ImportError; a torch without its CUDA libraries raises others
        print(f"embed: skipped: sentence-transformers is not importable "
              f"({type(e).__name__}: {e}). {ST_INSTALL_HINT}")
        return
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:
        pass
    model_dir = os.environ.get("POINTSMAN_MODEL_DIR") or os.path.expanduser(
        "~/.cache/pointsman/models/all-MiniLM-L6-v2")

    prompts = dataset_prompts_in_file_order(data_dir)
    if sorted(prompts) != sorted(ds.train.prompts + ds.test.prompts):
        sys.exit(f"embed comparison: the prompts read from {data_dir} are not the dataset's")
    step = len(prompts) // 32
    spread = [prompts[i * step] for i in range(32)]
    # (name, texts, single): a single text is timed 20 times per rep, a batch once per rep.
    cases = [
        ("short", [SHORT_PROMPT], True),
        ("long", [LONG_PROMPT], True),
        ("batch32-short", SHORT_PROMPTS, False),
        ("batch32-dataset", spread, False),
    ]

    probe = pointsman.Embedder.load(model_dir, threads=1)
    st, how = load_sentence_transformer(model_dir, probe.dim, probe.max_tokens)
    print(f"embed: {os.path.basename(model_dir)} from {model_dir}; torch {torch.__version__}, "
          f"sentence-transformers {sentence_transformers.__version__}, transformers "
          f"{transformers.__version__}; sentence-transformers model built from {how}, "
          f"max_seq_length {st.max_seq_length}, pointsman max_tokens {probe.max_tokens}")
    pieces = {}
    for name, texts, _ in cases:
        _, tokens, truncated = probe.embed_with_info(texts)
        kept = int(np.minimum(tokens, probe.max_tokens).sum())
        pieces[name] = f"{kept} word pieces" + (
            f"; {int(tokens.sum())} before truncating {int(truncated.sum())} at {probe.max_tokens}"
            if truncated.any() else "")
    del probe

    def st_encode(texts):
        return st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)

    for threads in (1, 2):
        # Both are told explicitly; the OMP/MKL/RAYON_NUM_THREADS=1 that run.sh exports cap
        # neither (torch.set_num_threads also sets OpenMP's and MKL's counts).
        torch.set_num_threads(threads)
        ours = pointsman.Embedder.load(model_dir, threads=threads)
        for name, texts, single in cases:
            others = runnable_elsewhere()
            diff = float(np.abs(st_encode(texts) - ours.embed(texts)).max())
            items, n = ([texts] * 20, reps) if single else ([texts], batch_reps)
            t_ours, samples, cpu_ours = timed_ms(ours.embed, items, n)
            t_st, _, cpu_st = timed_ms(st_encode, items, n)
            print(f"embed {name} ({len(texts)} x, {pieces[name]}), {threads} thread"
                  f"{'s' if threads > 1 else ''} (torch {torch.get_num_threads()}): "
                  f"pointsman {t_ours:.2f} ms, sentence-transformers {t_st:.2f} ms "
                  f"(medians of {samples}; cpu/wall {cpu_ours:.2f} and {cpu_st:.2f}), "
                  f"sentence-transformers/pointsman = {t_st / t_ours:.2f}x; "
                  f"max abs difference {diff:.1e}")
            if others is not None and others + threads > (os.cpu_count() or 1) + 0.5:
                # A thread without a core stalls the others at every barrier (OpenMP's spin):
                # the figures then measure the contention more than the contenders.
                print(f"  warning: {others:.1f} threads of other processes were runnable on "
                      f"{os.cpu_count()} cores just before: not a fair measurement")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="all", choices=["knn", "mf", "embed", "all"])
    default_data = os.path.join(os.environ.get("POINTSMAN_DATA_DIR", "../shared/data"), "llmrouter_dc")
    parser.add_argument("--data", default=default_data)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch-reps", type=int, default=10,
                        help="timed calls per batch of 32 in the embed comparison")
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
        compare_embed(ds, args.data, args.reps, args.batch_reps)


if __name__ == "__main__":
    main()
