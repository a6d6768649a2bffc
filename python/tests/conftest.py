"""Shared fixtures: the shared datasets, the `pointsman` binary, small synthetic data.

Tests that need ../shared/data or the CLI binary skip when they are missing, and fail under
CI=true (where a skip would hide a broken setup).
"""

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

import pointsman

REPO = Path(__file__).resolve().parents[2]


def _answer(conn, fn, args) -> None:
    """In the forked child: send ("ok", fn(*args)) or ("error", its repr); never hang the parent."""
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as e:
        conn.send(("error", repr(e)))
    finally:
        conn.close()


@pytest.fixture
def in_forked_child():
    """`run(fn, *args, hangs=...)`: calls `fn(*args)` in a child forked from this process and
    returns its result; fails with the child's error, or, after 60 s without an answer, with
    "the forked child did not answer in 60 s: <hangs>". (Python 3.12+ warns about fork() in a
    process with threads; tests that fork filter that warning.)"""

    def run(fn, *args, hangs: str):
        ctx = multiprocessing.get_context("fork")
        parent, child = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_answer, args=(child, fn, args))
        p.start()
        child.close()
        try:
            assert parent.poll(60), f"the forked child did not answer in 60 s: {hangs}"
            status, value = parent.recv()
        finally:
            p.join(10)
            if p.is_alive():
                p.kill()
        assert status == "ok", value
        return value

    return run


def missing(what: str) -> None:
    """Skip locally, fail under CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI=true: not skipping)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = Path(os.environ.get("POINTSMAN_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (d / "llmrouter_dc").is_dir():
        missing(f"shared datasets not found at {d} (set POINTSMAN_DATA_DIR)")
    return d


@pytest.fixture(scope="session")
def cli() -> Path:
    """The `pointsman` binary built by `cargo build --release` (POINTSMAN_CLI overrides)."""
    if "POINTSMAN_CLI" in os.environ:
        path = Path(os.environ["POINTSMAN_CLI"])
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        path = target / "release" / "pointsman"
    if not path.is_file():
        missing(f"the pointsman binary is not at {path} (cargo build --release -p pointsman-cli)")
    return path


@pytest.fixture(scope="session")
def testkit(cli: Path) -> Path:
    """The gateway's stub upstream and load driver, `pointsman-testkit`, built beside the CLI
    (POINTSMAN_TESTKIT overrides)."""
    path = Path(os.environ.get("POINTSMAN_TESTKIT", cli.parent / "pointsman-testkit"))
    if not path.is_file():
        missing(f"pointsman-testkit is not at {path} (cargo build --release -p pointsman-gateway)")
    return path


@pytest.fixture(scope="session")
def dc(data_dir: Path) -> pointsman.Dataset:
    return pointsman.Dataset.load(data_dir / "llmrouter_dc")


@pytest.fixture(scope="session")
def knn(dc: pointsman.Dataset) -> pointsman.KnnRouter:
    return pointsman.KnnRouter.fit(dc.train, k=50)


class Toy:
    """Three models, 8-dim embeddings: model "a" is right on 80 % of the queries nearer e0 than
    e1, "b" on 80 % of the others, and "c" (a hundred times dearer) is right everywhere."""

    models = ["a", "b", "c"]

    def __init__(self, n: int = 300, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.embeddings = rng.normal(size=(n, 8)).astype(np.float32)
        near_a = self.embeddings[:, 0] > self.embeddings[:, 1]
        right = rng.random(n) < 0.8
        self.scores = np.stack(
            [near_a & right, ~near_a & right, np.ones(n, dtype=bool)], axis=1
        ).astype(np.float64)
        self.costs = np.tile(np.array([1e-5, 1e-5, 1e-3]), (n, 1))

    def split(self) -> pointsman.Split:
        return pointsman.Split.from_arrays(self.embeddings, self.scores, self.costs, self.models)


@pytest.fixture(scope="session")
def toy() -> Toy:
    return Toy()


@pytest.fixture(scope="session")
def toy_knn(toy: Toy) -> pointsman.KnnRouter:
    return pointsman.KnnRouter.fit(toy.split(), k=10)


@pytest.fixture(scope="session")
def embedder() -> pointsman.Embedder:
    """The default embedding model (scripts/fetch-model.sh installs it), on one thread."""
    try:
        return pointsman.Embedder.load(threads=1)
    except FileNotFoundError as e:
        missing(f"the default embedding model is not installed ({e}; run scripts/fetch-model.sh)")
        raise


@pytest.fixture(scope="session")
def reference() -> dict:
    """Reference sentence embeddings computed outside Pointsman (../shared/models)."""
    import json

    path = Path(
        os.environ.get(
            "POINTSMAN_EMBED_REFERENCE",
            REPO.parent / "shared" / "models" / "all-MiniLM-L6-v2.reference.json",
        )
    )
    if not path.is_file():
        missing(f"reference embeddings not found at {path} (set POINTSMAN_EMBED_REFERENCE)")
    return json.loads(path.read_text())
