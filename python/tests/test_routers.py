"""Router constructors and the methods every router has."""

import numpy as np
import pytest

import pointsman


def test_knn_fit_and_route(toy, toy_knn):
    r = toy_knn
    assert isinstance(r, pointsman.KnnRouter) and isinstance(r, pointsman.Router)
    assert r.kind == "knn" and r.models == ["a", "b", "c"] and r.dim == 8
    assert r.embedding_model is None
    assert repr(r) == "KnnRouter(kind='knn', dim=8, models=['a', 'b', 'c'])"
    q = np.zeros(8, dtype=np.float32)
    q[0] = 1.0  # near e0: "a" is right, "c" is right everywhere but 100x dearer
    d = r.route(q)
    assert isinstance(d, pointsman.Decision)
    assert d.model_id == "c" and d.model == 2 and d.cost_weight == 0.0
    assert d.quality == pytest.approx(1.0)
    assert d.neighbours == 10 and 0.0 <= d.ood <= 1.0
    d = r.route(q, 500.0)
    assert d.model_id == "a"
    assert d.utility == pytest.approx(d.quality - 500.0 * d.cost)
    assert [a.model_id for a in d.alternatives] == ["c", "b"]
    assert d.alternatives[0].utility >= d.alternatives[1].utility
    assert repr(d).startswith("Decision(model_id='a', model=0, quality=")
    assert r.route(q, 500.0, allowed=["b", "c"]).model_id == "c"


def test_top_k(toy_knn):
    q = np.eye(8, dtype=np.float32)[1]
    top = toy_knn.top_k(q, 2, 500.0)
    assert [a.model_id for a in top] == ["b", "c"]
    assert repr(top[0]).startswith("Alternative(model_id='b', model=1,")
    assert len(toy_knn.top_k(q, 10)) == 3


def test_route_batch_equals_route(toy, toy_knn):
    X = toy.embeddings[:50]
    for w in [0.0, 500.0]:
        choices = toy_knn.route_batch(X, w)
        assert choices.dtype == np.uint32 and choices.shape == (50,)
        assert [toy_knn.route(x, w).model for x in X] == choices.tolist()


def test_route_batch_estimates(toy, toy_knn):
    X = toy.embeddings[:20]
    choices, quality, cost = toy_knn.route_batch(X, 500.0, return_estimates=True)
    assert quality.shape == cost.shape == (20, 3) and quality.dtype == np.float64
    assert np.array_equal(choices, toy_knn.route_batch(X, 500.0))
    utility = quality - 500.0 * cost
    assert np.array_equal(choices, utility.argmax(axis=1))
    d = toy_knn.route(X[3], 500.0)
    assert quality[3, d.model] == pytest.approx(d.quality)
    # Results are handed over, not copied: NumPy does not own their memory.
    for arr in (choices, quality, cost):
        assert not arr.flags.owndata and arr.flags.writeable and arr.flags.c_contiguous


def test_route_batch_tasks_and_tokens(dc):
    # Same-task neighbours: the task tags change the estimates, as in the CLI's evaluation.
    r = pointsman.KnnRouter.fit(dc.train, k=20, same_task=True)
    test = dc.test
    X, tokens, tasks = test.embeddings[:100], test.prompt_tokens[:100], test.tasks[:100]
    with_tags = r.route_batch(X, 500.0, prompt_tokens=tokens, tasks=tasks)
    without = r.route_batch(X, 500.0)
    assert (with_tags != without).any()
    for i in range(0, 100, 10):
        q = r.route(X[i], 500.0, prompt_tokens=float(tokens[i]), task=tasks[i])
        assert q.model == with_tags[i]


def test_config_kwargs_map_onto_the_config(toy):
    r = pointsman.KnnRouter.fit(
        toy.split(),
        k=7,
        weighting={"kind": "softmax", "temperature": 0.1},
        shrinkage=2.5,
        prior={"kind": "task", "strength": 5.0},
        same_task=True,
        ood_neighbours=3,
        index={"kind": "exact"},
    )
    c = r.config
    assert c["type"] == "knn" and c["k"] == 7 and c["shrinkage"] == 2.5
    assert c["weighting"] == {"kind": "softmax", "temperature": 0.1}
    assert c["prior"] == {"kind": "task", "strength": 5.0}
    assert c["same_task"] is True and c["ood_neighbours"] == 3
    assert c["index"] == {"kind": "exact"}
    # Defaults for what is not given; NumPy scalars are plain numbers.
    d = pointsman.KnnRouter.fit(toy.split(), k=np.int64(5)).config
    assert d["k"] == 5 and d["shrinkage"] == 0.0 and d["index"]["kind"] == "auto"


def test_hnsw_index_config(toy):
    r = pointsman.KnnRouter.fit(
        toy.split(), k=5, index={"kind": "hnsw", "m": 8, "ef_construction": 50, "ef_search": 32, "seed": 1}
    )
    assert r.config["index"]["kind"] == "hnsw"
    assert r.route_batch(toy.embeddings[:5]).shape == (5,)


def test_fit_arrays_equals_fit_on_split(toy):
    a = pointsman.KnnRouter.fit_arrays(toy.embeddings, toy.scores, toy.costs, toy.models, k=10)
    b = pointsman.KnnRouter.fit(toy.split(), k=10)
    assert a.to_bytes() == b.to_bytes()
    assert isinstance(a, pointsman.KnnRouter)


def test_knn_tune(toy):
    search = {"folds": 3, "k": [5, 20], "power": [1.0], "same_task": [False], "task_prior": [None], "shrinkage": [0.0, 1.0]}
    router, report = pointsman.KnnRouter.tune(toy.split(), search=search, ood_neighbours=4)
    assert isinstance(router, pointsman.KnnRouter)
    assert report["criterion"] == "aiq" and report["validation"] == {"k_fold": {"folds": 3}}
    assert len(report["trials"]) == 4
    scores = [t["score"] for t in report["trials"]]
    assert scores == sorted(scores, reverse=True)
    best = report["trials"][0]["config"]
    assert router.config == {"type": "knn", **best}
    assert router.config["ood_neighbours"] == 4
    with pytest.raises(pointsman.ConfigError, match="at least 2 folds"):
        pointsman.KnnRouter.tune(toy.split(), search={"folds": 1})
    with pytest.raises(pointsman.ConfigError, match="unknown field `kk`"):
        pointsman.KnnRouter.tune(toy.split(), search={"kk": [1]})


def test_mf_fit_and_tune(toy):
    m = pointsman.MfRouter.fit(toy.split(), dim=4, max_epochs=30, seed=3)
    assert isinstance(m, pointsman.MfRouter) and m.kind == "mf"
    assert m.config["dim"] == 4 and m.config["seed"] == 3
    again = pointsman.MfRouter.fit_arrays(toy.embeddings, toy.scores, toy.costs, toy.models, dim=4, max_epochs=30, seed=3)
    # Seeded: the same weights, so the same estimates (the files differ in the training time).
    _, q1, c1 = m.route_batch(toy.embeddings, return_estimates=True)
    _, q2, c2 = again.route_batch(toy.embeddings, return_estimates=True)
    assert np.array_equal(q1, q2) and np.array_equal(c1, c2)
    router, report = pointsman.MfRouter.tune(
        toy.split(), search={"folds": 2, "dim": [4], "learning_rate": [1e-2]}, max_epochs=10
    )
    assert isinstance(router, pointsman.MfRouter) and len(report["trials"]) == 1
    with pytest.raises(pointsman.ConfigError, match="mf dim must be at least 1"):
        pointsman.MfRouter.fit(toy.split(), dim=0)


def test_train_auto_and_by_kind(toy, tmp_path):
    split = toy.split()
    router, report = pointsman.train(split, "auto", kinds=["zero", "knn", "irt", "stack"], folds=3)
    assert report["criterion"] == "aiq" and report["validation"] == {"k_fold": {"folds": 3}}
    kinds = [c["kind"] for c in report["candidates"]]
    assert sorted(kinds) == ["irt", "knn", "stack", "zero"]
    scores = [c["score"] for c in report["candidates"]]
    assert scores == sorted(scores, reverse=True)
    # The figure on each of the 3 folds alone (None where undefined on a fold).
    for c in report["candidates"]:
        assert len(c["fold_scores"]) == 3
        assert all(f is None or 0.0 <= f <= 1.0 for f in c["fold_scores"])
    assert router.kind == kinds[0]
    # knn, irt and the stack are measured nested; their search winners' own figures are kept.
    own = {c["kind"]: c["search_score"] for c in report["candidates"]}
    assert own["zero"] is None
    assert all(isinstance(own[k], float) for k in ("knn", "irt", "stack"))
    _, flat = pointsman.train(split, "auto", kinds=["zero", "knn"], folds=3, nested=False)
    assert all(c["search_score"] is None for c in flat["candidates"])
    # Every kind auto may return saves and loads like any router.
    router.save(tmp_path / "auto.safetensors")
    again = pointsman.load_router(tmp_path / "auto.safetensors")
    _, q1, _ = router.route_batch(toy.embeddings, return_estimates=True)
    _, q2, _ = again.route_batch(toy.embeddings, return_estimates=True)
    assert np.array_equal(q1, q2)
    irt, search = pointsman.train(split, "irt")
    assert irt.kind == "irt" and len(search["trials"]) == 4
    # The toy split's costs were observed without prices (Split.from_arrays): they have no
    # ratio to scale by, so repricing what auto returned says so instead of ignoring the price.
    for r in (router, irt):
        with pytest.raises(pointsman.ConfigError, match="price of 0"):
            r.reprice({"c": (0.001, 0.001)})
    zero, none = pointsman.train(split, "zero")
    assert zero.kind == "zero" and none is None
    with pytest.raises(pointsman.ConfigError, match="unknown criterion"):
        pointsman.train(split, "auto", criterion="best")
    with pytest.raises(pointsman.ConfigError, match="does not try cascade"):
        pointsman.train(split, "auto", kinds=["cascade"])
    with pytest.raises(pointsman.ConfigError, match="go with"):
        pointsman.train(split, "knn", criterion="aiq")
    with pytest.raises(pointsman.ConfigError, match="nested go with"):
        pointsman.train(split, "knn", nested=False)
    # Not silently dropped: another kind's search has its own folds.
    with pytest.raises(pointsman.ConfigError, match="folds and nested go with"):
        pointsman.train(split, "knn", folds=3)
    assert pointsman.train(split, "zero", folds=5)[0].kind == "zero"  # the searches' own
    with pytest.raises(pointsman.ConfigError, match="kinds is empty"):
        pointsman.train(split, "auto", kinds=[])


def test_baselines(toy):
    split = toy.split()
    for rule, kind in [("zero", "zero"), ("best-single", "best-single"), ("cheapest", "cheapest"), ("fixed:b", "fixed"), ("random", "random")]:
        r = pointsman.BaselineRouter.fit(split, rule, seed=1)
        assert isinstance(r, pointsman.BaselineRouter) and r.kind == kind
    assert pointsman.BaselineRouter.fit(split, "fixed:b").route(toy.embeddings[0]).model_id == "b"
    with pytest.raises(pointsman.ConfigError, match='unknown baseline "nope"'):
        pointsman.BaselineRouter.fit(split, "nope")
    with pytest.raises(pointsman.UnknownModelError):
        pointsman.BaselineRouter.fit(split, "fixed:zz")


def test_observe_needs_a_learner(toy, toy_knn):
    assert toy_knn.learns is False and toy_knn.observations is None
    with pytest.raises(pointsman.UnsupportedError, match="knn routers do not learn from feedback"):
        toy_knn.observe(toy.embeddings[0], "a", 1.0, 1e-5)
    with pytest.raises(pointsman.UnsupportedError):
        toy_knn.observe(toy.embeddings[0], np.int64(1), 1.0, 1e-5)
    # Argument types are checked before anything else.
    for bad in [1.5, None, True, ["a"]]:
        with pytest.raises(TypeError, match="model must be a model id"):
            toy_knn.observe(toy.embeddings[0], bad, 1.0, 1e-5)
    with pytest.raises(TypeError, match="embedding is text but the router has no embedder"):
        toy_knn.observe("text", "a", 1.0, 1e-5)


def test_routers_cannot_be_constructed_directly():
    for cls in [pointsman.Router, pointsman.KnnRouter, pointsman.Decision]:
        with pytest.raises(TypeError):
            cls()
