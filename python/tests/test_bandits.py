"""The learning routers: cold and warm start, observe, merge, replicas, saving, text."""

import pickle
import subprocess
import sys

import numpy as np
import pytest

import pointsman

KINDS = [
    (pointsman.LinUcbRouter, "linucb"),
    (pointsman.ThompsonRouter, "thompson"),
    (pointsman.KnnUcbRouter, "knn-ucb"),
    (pointsman.ClusterUcbRouter, "cluster-ucb"),
]
NO_FORGETTING = {"forgetting": {"detector": None}}


def feed(router, toy, rows, cost_weight=0.0):
    """Routes each row and observes the chosen model's outcome (partial feedback)."""
    for i in rows:
        d = router.route(toy.embeddings[i], cost_weight)
        router.observe(toy.embeddings[i], d.model, toy.scores[i, d.model], toy.costs[i, d.model])


@pytest.mark.parametrize("cls,kind", KINDS)
def test_quality_is_expected_quality_and_score_what_decided(cls, kind, toy):
    """A cold bandit's optimism is its score, not its quality: quality stays in [0, 1]."""
    r = cls(toy.models, 8)
    d = r.route(toy.embeddings[0], 0.0)
    assert 0.0 <= d.quality <= 1.0
    if kind != "thompson":  # a posterior draw may fall below the mean
        assert d.score >= d.quality
    assert d.utility == d.score - 0.0 * d.cost
    for a in d.alternatives:
        assert 0.0 <= a.quality <= 1.0 and a.utility <= d.utility
    g = r.greedy().route(toy.embeddings[0], 0.0)
    assert g.score == pytest.approx(g.quality) or g.quality in (0.0, 1.0)
    assert "score=" in repr(d)


@pytest.mark.parametrize("cls,kind", KINDS)
def test_cold_start_learns(cls, kind, toy):
    r = cls(toy.models, 8)
    assert isinstance(r, cls) and isinstance(r, pointsman.BanditRouter)
    assert isinstance(r, pointsman.Router)
    assert (r.kind, r.models, r.dim, r.learns, r.observations) == (kind, toy.models, 8, True, 0)
    assert r.pulls == [0, 0, 0] and not r.is_greedy and r.embedding_model is None
    assert repr(r).startswith(f"{cls.__name__}(kind='{kind}'")
    feed(r, toy, range(200))
    assert r.observations == 200 and sum(r.pulls) == 200
    # At cost weight 0, "c" (right everywhere) is the best model: the greedy handle knows it.
    g = r.greedy()
    assert g.is_greedy and g.observations == 200
    choices = g.route_batch(toy.embeddings[200:], 0.0)
    assert np.mean(choices == 2) > 0.8


@pytest.mark.parametrize("cls,kind", KINDS)
def test_warm_start_save_load_pickle(cls, kind, toy, tmp_path):
    r = cls.fit(toy.split())
    assert isinstance(r, cls) and r.pulls == [300, 300, 300]
    X = toy.embeddings[:50]
    path = tmp_path / "bandit.safetensors"
    r.save(path)
    for again in [pointsman.load_router(path), cls.load(path), pickle.loads(pickle.dumps(r))]:
        assert type(again) is cls and again.pulls == r.pulls
        assert again.to_bytes() == r.to_bytes()
        assert np.array_equal(again.greedy().route_batch(X), r.greedy().route_batch(X))
    # A loaded router keeps learning.
    again = pointsman.load_router(path)
    feed(again, toy, range(10))
    assert again.observations == r.observations + 10


def test_observe_by_id_or_index(toy):
    a = pointsman.LinUcbRouter(toy.models, 8)
    b = pointsman.LinUcbRouter(toy.models, 8)
    for i in range(30):
        m = i % 3
        a.observe(toy.embeddings[i], m, toy.scores[i, m], toy.costs[i, m])
        b.observe(toy.embeddings[i], toy.models[m], toy.scores[i, m], toy.costs[i, m])
    assert a.to_bytes() == b.to_bytes() and a.pulls == [10, 10, 10]


@pytest.mark.parametrize("cls", [pointsman.LinUcbRouter, pointsman.KnnUcbRouter])
def test_merge_equals_one_router_that_saw_everything(cls, toy):
    whole = cls(toy.models, 8, **NO_FORGETTING)
    one = cls(toy.models, 8, **NO_FORGETTING)
    two = cls(toy.models, 8, **NO_FORGETTING)
    for i in range(120):
        m = i % 3
        args = (toy.embeddings[i], m, toy.scores[i, m], toy.costs[i, m])
        whole.observe(*args)
        (one if i % 2 else two).observe(*args)
    one.merge(two)
    assert one.pulls == whole.pulls and one.observations == whole.observations
    X = toy.embeddings[150:]
    _, q1, c1 = one.greedy().route_batch(X, return_estimates=True)
    _, q2, c2 = whole.greedy().route_batch(X, return_estimates=True)
    assert np.allclose(q1, q2, atol=1e-6) and np.allclose(c1, c2)


def test_replicas_snapshot_greedy_merge_since(toy):
    base = pointsman.LinUcbRouter.fit(toy.split(), **NO_FORGETTING)
    replica = base.snapshot()  # independent
    feed(replica, toy, range(20))
    assert replica.observations == base.observations + 20
    shared = base.greedy()  # same state
    feed(shared, toy, range(5))
    assert base.observations == shared.observations == 905
    main = base.snapshot()
    main.merge_since(replica, pointsman.LinUcbRouter.fit(toy.split(), **NO_FORGETTING))
    assert main.observations == 925
    main.forget_model("c")  # back to the prior: estimated as by a cold router
    X = toy.embeddings[:20]
    _, q, _ = main.greedy().route_batch(X, return_estimates=True)
    _, q0, _ = pointsman.LinUcbRouter(toy.models, 8).greedy().route_batch(X, return_estimates=True)
    assert np.allclose(q[:, 2], q0[:, 2]) and not np.allclose(q[:, 0], q0[:, 0])


def test_bandit_errors(toy, toy_knn):
    lin = pointsman.LinUcbRouter(toy.models, 8)
    with pytest.raises(pointsman.ConfigError, match="cannot merge a knn-ucb router into a linucb"):
        lin.merge(pointsman.KnnUcbRouter(toy.models, 8))
    with pytest.raises(TypeError, match="other must be a bandit router"):
        lin.merge(toy_knn)
    with pytest.raises(pointsman.ConfigError):
        lin.merge(pointsman.LinUcbRouter(["a", "b"], 8))
    with pytest.raises(pointsman.ConfigError, match="ridge 10.0 here, 3.0 in the other router"):
        lin.merge(pointsman.LinUcbRouter(toy.models, 8, ridge=3.0))
    assert lin.observations == 0
    with pytest.raises(pointsman.ConfigError, match="ridge"):
        pointsman.LinUcbRouter(toy.models, 8, ridge=-1.0)
    with pytest.raises(pointsman.ConfigError, match="unknown field"):
        pointsman.KnnUcbRouter(toy.models, 8, nope=1)
    with pytest.raises(pointsman.ConfigError):
        pointsman.LinUcbRouter(toy.models, 0)
    with pytest.raises(TypeError, match="models must be a list of model ids or model cards"):
        pointsman.LinUcbRouter("abc", 8)
    with pytest.raises(TypeError):
        pointsman.LinUcbRouter([1, 2], 8)
    with pytest.raises(pointsman.InvalidInputError):
        lin.observe(toy.embeddings[0], "a", 2.0, 0.0)
    with pytest.raises(pointsman.UnknownModelError):
        lin.observe(toy.embeddings[0], "z", 1.0, 0.0)
    with pytest.raises(pointsman.UnknownModelError):
        lin.observe(toy.embeddings[0], 3, 1.0, 0.0)
    with pytest.raises(pointsman.ShapeError):
        lin.observe(np.ones(5, dtype=np.float32), "a", 1.0, 0.0)
    with pytest.raises(pointsman.UnknownModelError):
        lin.forget_model("z")


def test_config_defaults_and_model_cards(toy):
    assert pointsman.ThompsonRouter(toy.models, 8).config["exploration"] == 0.1
    assert pointsman.LinUcbRouter(toy.models, 8).config["exploration"] == 0.3
    cards = [
        {"id": "small", "input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.2,
         "default_output_tokens": 100.0},
        {"id": "big", "input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0,
         "default_output_tokens": 100.0},
    ]
    r = pointsman.KnnUcbRouter(cards, 8, embedding_model="m", exploration=0.0)
    assert r.models == ["small", "big"] and r.embedding_model == "m"
    d = r.route(toy.embeddings[0], 0.0, prompt_tokens=1000.0)
    costs = {a.model_id: a.cost for a in [d, *d.alternatives]}
    assert costs["big"] > costs["small"] > 0


def test_text_in_text_out(embedder):
    r = pointsman.LinUcbRouter(["cheap", "strong"], 384, embedding_model=embedder.model_name)
    t = r.with_embedder(embedder)
    assert isinstance(t, pointsman.LinUcbRouter) and t.embedder is embedder
    for text in ["What is 2 + 2?", "Prove Fermat's little theorem.", "Say hello."]:
        d = t.route(text)
        t.observe(text, d.model, 1.0, 0.001)
    assert r.observations == 3  # one learned state behind both objects
    assert t.greedy().embedder is embedder and t.snapshot().embedder is embedder
    with pytest.raises(pointsman.ShapeError):
        pointsman.LinUcbRouter(["a"], 384, embedding_model="other").with_embedder(embedder)


def test_dc_warm_start(dc):
    r = pointsman.KnnUcbRouter.fit(dc.train)
    assert r.observations == len(dc.train) * len(dc.models)
    choices = r.greedy().route_batch(dc.test.embeddings[:200], 0.0)
    assert choices.dtype == np.uint32 and len(choices) == 200


def test_dc_model_cards_price_a_cold_start(dc):
    cards = dc.model_cards
    assert [c["id"] for c in cards] == dc.models
    assert all(c["input_usd_per_mtok"] > 0 and c["output_usd_per_mtok"] > 0 for c in cards)
    d = pointsman.LinUcbRouter(cards, 384).route(dc.test.embeddings[0], 500.0, prompt_tokens=100.0)
    assert d.cost > 0  # priced from the cards, unlike a pool of bare ids
    assert pointsman.LinUcbRouter(dc.models, 384).route(dc.test.embeddings[0], 500.0).cost == 0.0


@pytest.fixture
def redis_url(tmp_path):
    """A redis-server on a free loopback port with its own folder, killed after the test."""
    import shutil
    import socket
    import subprocess
    import time

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not found (scripts/test.sh installs it with apt-get)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/"
    finally:
        proc.kill()
        proc.wait()


def test_share_through_redis(toy, tmp_path, redis_url):
    """Two replicas of one saved learner exchange their observations through Redis."""
    path = tmp_path / "linucb.safetensors"
    pointsman.LinUcbRouter(toy.models, toy.embeddings.shape[1]).save(path)
    a, b = pointsman.load_router(path), pointsman.load_router(path)
    ea = pointsman.share_through_redis(a, redis_url, interval_ms=50, namespace="pytest")
    eb = pointsman.share_through_redis(b, redis_url, interval_ms=50, namespace="pytest")
    feed(a, toy, range(0, 20))
    feed(b, toy, range(20, 30))
    for _ in range(2):
        ea.sync()
        eb.sync()
    assert a.observations == b.observations == 30
    stats = ea.stats()
    assert stats["published_observations"] == 20
    # b's 10 observations reach a as b's increment, or (when b's background exchange compacted
    # the log before a read it) through a rejoin from b's snapshot, which holds them.
    assert stats["applied_observations"] == 10 or stats["rejoins"] >= 1, stats
    assert stats["rejected"] == 0
    ea.stop()
    eb.stop()
    eb.stop()
    assert ea.stopped
    with pytest.raises(RuntimeError, match="stopped"):
        ea.sync()
    with pytest.raises(pointsman.UnsupportedError):
        pointsman.share_through_redis(pointsman.KnnRouter.fit(toy.split(), k=3), redis_url)
    with pytest.raises(pointsman.ConfigError):
        pointsman.share_through_redis(a, "not a url")
    with pytest.raises(pointsman.ConfigError):
        pointsman.share_through_redis(a, redis_url, interval_ms=0)


def test_an_exchange_called_from_many_threads_at_once_does_not_deadlock(redis_url):
    """sync, stats and stop from several threads at once: each takes the exchange's lock without
    the GIL (a sync holding the lock while another thread waited for it with the GIL froze the
    whole interpreter, so this runs in a child process with a time limit)."""
    code = f"""
import threading
import numpy as np
import pointsman
r = pointsman.LinUcbRouter(["a", "b"], 8)
ex = pointsman.share_through_redis(r, {redis_url!r}, interval_ms=100_000, namespace="pytest-threads")
x = np.ones(8, np.float32)
def work(i):
    for j in range(30):
        r.observe(x, j % 2, 1.0, 0.001)
        ex.sync() if (i + j) % 2 else ex.stats()
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ex.stop()
print(r.observations, ex.stopped)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["120", "True"]


def test_stopping_an_exchange_whose_store_is_unreachable_names_what_was_not_published(toy, tmp_path):
    """Nothing listens on port 1: the replica learns locally; stop() says what was never shared."""
    path = tmp_path / "linucb.safetensors"
    pointsman.LinUcbRouter(toy.models, toy.embeddings.shape[1]).save(path)
    a = pointsman.load_router(path)
    ex = pointsman.share_through_redis(a, "redis://127.0.0.1:1/", interval_ms=50, namespace="pytest")
    feed(a, toy, range(0, 5))
    assert a.observations == 5
    with pytest.raises(pointsman.StoreError, match="never published"):
        ex.stop()
    assert ex.stopped
    assert a.observations == 5
