"""Saving, loading and pickling: through the saved-router bytes, bit for bit."""

import copy
import json
import pickle
import subprocess

import numpy as np
import pytest

import pointsman


@pytest.fixture(scope="module")
def routers(toy):
    split = toy.split()
    return [
        pointsman.KnnRouter.fit(split, k=10),
        pointsman.MfRouter.fit(split, dim=4, max_epochs=10),
        pointsman.BaselineRouter.fit(split, "zero"),
        pointsman.BaselineRouter.fit(split, "random", seed=7),
        pointsman.CascadeRouter.fit(split, estimator={"k": 5}),
        pointsman.LinUcbRouter.fit(split),
        pointsman.ThompsonRouter.fit(split, seed=3),
        pointsman.KnnUcbRouter.fit(split),
        pointsman.ClusterUcbRouter.fit(split, clusters=2),
    ]


def test_every_kind_loads_as_its_class_with_its_state(routers, tmp_path):
    """A loaded router is the class of its kind, built from the file once: a learner comes back
    with its observations and goes on learning in the object returned."""
    kinds = set()
    for i, r in enumerate(routers):
        path = tmp_path / f"k{i}.safetensors"
        r.save(path)
        loaded = pointsman.load_router(path)
        assert type(loaded) is type(r) and loaded.kind == r.kind
        kinds.add(loaded.kind)
        if loaded.learns:
            assert isinstance(loaded, pointsman.BanditRouter)
            before = loaded.observations
            assert before == r.observations > 0
            x = np.ones(loaded.dim, dtype=np.float32)
            loaded.observe(x, 0, quality=1.0, cost=0.0)
            assert loaded.observations == before + 1
            assert loaded.greedy().observations == before + 1  # one state, two handles
    assert kinds == {"knn", "mf", "zero", "random", "cascade", "linucb", "thompson", "knn-ucb", "cluster-ucb"}


def same_router(a, b, X):
    assert type(a) is type(b)
    assert (a.kind, a.models, a.dim, a.config) == (b.kind, b.models, b.dim, b.config)
    assert a.to_bytes() == b.to_bytes()
    for w in [0.0, 500.0]:
        assert np.array_equal(a.route_batch(X, w), b.route_batch(X, w))


def test_pickle_round_trip(routers, toy):
    for r in routers:
        for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
            same_router(r, pickle.loads(pickle.dumps(r, protocol=protocol)), toy.embeddings)
        same_router(r, copy.deepcopy(r), toy.embeddings)
        same_router(r, copy.copy(r), toy.embeddings)


def test_save_and_load(routers, toy, tmp_path):
    for i, r in enumerate(routers):
        path = tmp_path / f"r{i}.safetensors"
        r.save(path)
        assert path.read_bytes() == r.to_bytes()
        same_router(r, pointsman.load_router(path), toy.embeddings)
        same_router(r, pointsman.load_router(str(path)), toy.embeddings)
        same_router(r, type(r).load(path), toy.embeddings)
        same_router(r, pointsman.Router.load(path), toy.embeddings)
        same_router(r, pointsman.router_from_bytes(r.to_bytes()), toy.embeddings)


def test_load_checks_the_class(routers, tmp_path):
    path = tmp_path / "knn.safetensors"
    routers[0].save(path)
    with pytest.raises(pointsman.FormatError, match="holds a knn router, not a MfRouter"):
        pointsman.MfRouter.load(path)


def test_save_is_atomic_over_an_existing_file(routers, tmp_path):
    path = tmp_path / "r.safetensors"
    routers[0].save(path)
    routers[1].save(path)
    assert pointsman.load_router(path).kind == "mf"
    assert [p.name for p in tmp_path.iterdir()] == ["r.safetensors"]


def test_the_cli_routes_with_a_python_router(routers, toy, tmp_path, cli):
    """A router saved from Python is the same file the Rust CLI reads: same decisions."""
    router = routers[0]
    path = tmp_path / "knn.safetensors"
    router.save(path)
    X = toy.embeddings[:25]
    lines = "".join(json.dumps({"id": i, "embedding": x.tolist()}) + "\n" for i, x in enumerate(X))
    out = subprocess.run(
        [str(cli), "--quiet", "route", "--router", str(path), "--cost-weight", "500"],
        input=lines,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(out) == 25
    for i, line in enumerate(out):
        rust = json.loads(line)
        py = router.route(X[i], 500.0)
        assert rust["id"] == i
        assert (rust["model_id"], rust["quality"], rust["cost"]) == (py.model_id, py.quality, py.cost)
        assert [a["model_id"] for a in rust["alternatives"]] == [a.model_id for a in py.alternatives]


def test_mmap_load_is_the_same_router(routers, toy, tmp_path):
    """`mmap=True` opens the file memory-mapped: every kind comes back the same router, from
    `load_router` and from `Router.load`."""
    for i, r in enumerate(routers):
        path = tmp_path / f"m{i}.safetensors"
        r.save(path)
        same_router(r, pointsman.load_router(path, mmap=True), toy.embeddings)
        same_router(r, type(r).load(path, mmap=True), toy.embeddings)
