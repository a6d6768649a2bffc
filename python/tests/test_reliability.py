"""What a hostile or broken file cannot do (issue 23): abort the process, allocate gigabytes, block
on a FIFO, or leave temporary files behind; and what a save always does: write a file that loads.

The crafted router files are fuzz/regressions/router_file/ (written by fuzz/make_seeds.py)."""

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import pointsman

REGRESSIONS = Path(__file__).resolve().parents[2] / "fuzz" / "regressions" / "router_file"
CRAFTED = [
    "linucb_dim_100000",
    "linucb_dim_100000000000",
    "linucb_dim_30000",
    "thompson_dim_30000",
    "thompson_tampered_inverse",
    "knn_price_1e308",
    "zero_format_version_01",
    "zero_format_version_+1",
    "zero_format_version_3",
    "header_longer_than_file",
    "mf_truncated_100",
]

# Loads every crafted file in a fresh interpreter and reports, per file, the exception, the time
# and how much the process's peak memory grew (a fresh process: the peak is this load's own).
PROBE = r"""
import json, resource, sys, time
import pointsman
out = []
for path in sys.argv[1:]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    try:
        pointsman.load_router(path)
        kind = None
    except Exception as e:  # the class is what the test checks
        kind = type(e).__name__
    ms = (time.perf_counter() - t) * 1e3
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    out.append({"path": path, "error": kind, "ms": ms, "grew_kb": grew})
print(json.dumps(out))
"""


def test_crafted_files_raise_quickly_within_bounded_memory(tmp_path):
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    sparse = tmp_path / "sparse.safetensors"
    with open(sparse, "wb") as f:
        f.truncate(1 << 30)
    paths = [str(REGRESSIONS / f"{n}.safetensors") for n in CRAFTED] + ["/dev/zero", str(fifo), str(sparse)]
    done = subprocess.run([sys.executable, "-c", PROBE, *paths], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for r in json.loads(done.stdout):
        name = Path(r["path"]).name
        expected = "OSError" if name in ("zero", "fifo.safetensors") else "FormatError"
        assert r["error"] == expected, r
        assert r["ms"] < 100, r
        assert r["grew_kb"] < 50 * 1024, r


def test_the_cli_exits_1_with_one_line(cli, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in [*(REGRESSIONS / f"{n}.safetensors" for n in CRAFTED), Path("/dev/zero"), fifo]:
        t = time.perf_counter()
        done = subprocess.run([str(cli), "route", "--router", str(path)], input="", capture_output=True, text=True, timeout=20)
        seconds = time.perf_counter() - t
        assert done.returncode == 1, (path, done.stderr)
        lines = [l for l in done.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (path, done.stderr)
        assert seconds < 2.0, (path, seconds)  # process start included


def test_thread_counts_are_bounded(embedder):
    with pytest.raises(pointsman.InvalidInputError, match="maximum of 1024"):
        pointsman.Embedder.load(threads=10**9)


def _big_learner(dim: int = 384, n: int = 4000) -> pointsman.KnnUcbRouter:
    rng = np.random.default_rng(0)
    r = pointsman.KnnUcbRouter(["a", "b", "c"], dim)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    for i in range(n):
        r.observe(x[i], i % 3, quality=float(i % 2), cost=1e-4)
    return r


def test_kill_9_during_saves_leaves_a_loadable_file_and_at_most_one_temporary(tmp_path):
    """100 saves killed at a random moment: the target always loads, and the temporary files of
    the killed writers are cleaned up by the next save (at most the last one is left)."""
    router = _big_learner()
    target = tmp_path / "learner.safetensors"
    router.save(target)
    rng = random.Random(7)
    killed_mid_write = 0
    for _ in range(100):
        pid = os.fork()
        if pid == 0:  # the child saves until it is killed
            try:
                while True:
                    router.save(target)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        temps = [p for p in tmp_path.iterdir() if p.name.startswith(".learner.safetensors.tmp-")]
        assert len(temps) <= 1, temps
        killed_mid_write += len(temps)
        assert pointsman.load_router(target).observations == router.observations
    assert killed_mid_write > 0, "no kill landed inside a write: the test did not test anything"
    router.save(target)  # a save in this process removes the last dead writer's file
    assert [p.name for p in tmp_path.iterdir()] == ["learner.safetensors"]


def test_estimates_too_large_for_memory_are_a_memory_error():
    """route_batch(return_estimates=True) asks the allocator before computing: estimates of 2e6
    queries x 1e5 models (3.2 TB) are a MemoryError, where the interpreter aborted."""
    models = [f"m{i}" for i in range(100_000)]
    split = pointsman.Split.from_arrays(
        np.ones((2, 1), np.float32),
        np.full((2, len(models)), 0.5),
        np.full((2, len(models)), 1e-4),
        models,
    )
    zero = pointsman.BaselineRouter.fit(split, "zero")
    x = np.ones((2_000_000, 1), np.float32)
    with pytest.raises(MemoryError, match="do not fit in memory"):
        zero.route_batch(x, return_estimates=True)
    # A batch that fits still routes.
    choices, quality, cost = zero.route_batch(x[:3], return_estimates=True)
    assert quality.shape == (3, len(models)) and cost.shape == (3, len(models))


CHAIN = r"""
import threading, time, numpy as np, pointsman as pm
cards = [{"id": m, "input_usd_per_mtok": p, "output_usd_per_mtok": p} for m, p in zip("abc", [0.1, 1, 10])]
s = pm.CascadeRouter.chain(cards, 8, stages=[("a", 0.8), ("b", 0.8), ("c", 0.0)]).start(np.ones(8, np.float32))
class Index:
    # Python code run while the index is read: it releases the GIL and uses the session.
    def __index__(self):
        time.sleep(0.2)
        assert not s.done
        return 0
reader = threading.Thread(target=lambda: (time.sleep(0.05), s.done))
reader.start()
step = s.observe(Index(), 0.9)
reader.join()
print("accepted" if step.accepted else "next", flush=True)
"""


def test_a_model_index_read_by_python_code_cannot_deadlock_a_session():
    """CascadeSession.observe read `__index__` holding the session's lock: a thread waiting for
    the lock with the GIL, or the index's own code using the session, hung for good."""
    out = subprocess.run(
        [sys.executable, "-c", CHAIN], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "accepted", out.stderr


def test_hostile_shapes_and_values_are_typed_errors(toy, toy_knn):
    """What the Python pass of the fifteenth session found read silently or with the wrong
    error: tables of the wrong shape, a router merged with itself, a policy dict with NaN or
    NumPy scalars, a bytearray read as numbers, an index past 64 bits."""
    emb = toy.embeddings[:40]
    prices = {m: (0.1, 0.1) for m in toy.models}
    scores = toy.scores[:40]
    for bad in (scores.T.copy(), np.resize(scores, (30, 4))):
        with pytest.raises(pointsman.ShapeError, match="not \\[.*, 3\\]"):
            pointsman.Dataset.from_arrays(toy.models, bad, embeddings=emb, prices=prices)
    with pytest.raises(pointsman.ShapeError, match="costs are|costs is"):
        pointsman.Dataset.from_arrays(
            toy.models, scores, embeddings=emb, prices=prices, costs=np.full((3, 40), 0.01)
        )
    split = toy.split()
    cascade = pointsman.CascadeRouter.fit(split)
    conf = np.zeros((len(split), 3))
    with pytest.raises(pointsman.ShapeError, match="confidences are"):
        cascade.simulate(split, conf.T.copy())
    bandit = pointsman.LinUcbRouter(toy.models, 8)
    bandit.observe(toy.embeddings[0], 0, 1.0, 1e-5)
    for other in (bandit, bandit.greedy()):
        with pytest.raises(pointsman.InvalidInputError, match="merged with itself"):
            bandit.merge(other)
    assert bandit.observations == 1
    with pytest.raises(pointsman.ConfigError, match="policy"):
        pointsman.Policy({"cost_weight": float("nan")})
    assert pointsman.Policy({"cost_weight": np.float32(2)}).config["cost_weight"] == 2
    with pytest.raises(TypeError):
        toy_knn.route(bytearray(b"abcdefgh"))
    with pytest.raises(pointsman.UnknownModelError, match="outside the pool"):
        bandit.observe(toy.embeddings[0], 2**70, 1.0, 1e-5)
