"""The cascade router and its sessions: a fixed chain driven step by step, the errors, saving and
pickling, and sessions that decide what the engine's own simulation decides on llmrouter_dc."""

import pickle

import numpy as np
import pytest

import pointsman

CARDS = [
    {"id": m, "input_usd_per_mtok": p, "output_usd_per_mtok": p, "default_output_tokens": 200}
    for m, p in (("small", 0.1), ("large", 10.0))
]
X = np.array([1.0, 0.0], dtype=np.float32)


@pytest.fixture
def chain() -> pointsman.CascadeRouter:
    return pointsman.CascadeRouter.chain(CARDS, 2, [("small", 0.8), ("large", 0.0)])


def test_chain_router(chain: pointsman.CascadeRouter) -> None:
    assert isinstance(chain, pointsman.Router)
    assert chain.kind == "cascade"
    assert chain.models == ["small", "large"]
    assert chain.stages == [("small", 0.8), ("large", 0.0)]
    # A cascade routes to its first model.
    assert chain.route(X).model_id == "small"
    assert repr(chain).startswith("CascadeRouter(kind='cascade'")


def test_accept_at_first_step(chain: pointsman.CascadeRouter) -> None:
    s = chain.start(X)
    assert isinstance(s, pointsman.CascadeSession)
    assert not s.done and s.model == 0 and s.model_id == "small"
    assert s.next is not None and s.next.expected_cost > 0
    step = s.observe("small", 0.95)
    assert isinstance(step, pointsman.CascadeStep)
    assert step.accepted and step.next is None
    out = step.outcome
    assert out is not None
    assert (out.accepted, out.accepted_id) == (0, "small")
    assert out.invoked_ids == ["small"] and out.steps == 1
    assert out.stop == "accepted" and not out.budget_exhausted
    assert out.total_cost == pytest.approx(out.invoked[0].cost)
    assert s.done and s.model is None and s.next is None
    assert s.outcome is not None and s.outcome.accepted_id == "small"
    assert s.finish().accepted_id == "small"


def test_escalate_then_accept(chain: pointsman.CascadeRouter) -> None:
    s = chain.start(X)
    first_cost = s.next.expected_cost
    step = s.observe(0, 0.1)  # by index
    assert not step.accepted and step.outcome is None
    assert step.next.model_id == "large" and s.model_id == "large"
    assert [i.model_id for i in s.invoked] == ["small"]
    assert s.total_cost == pytest.approx(first_cost)
    step = s.observe("large", 0.9, cost=0.5)  # an observed cost replaces the expected one
    assert step.accepted
    out = s.outcome
    assert out.accepted_id == "large" and out.invoked_ids == ["small", "large"]
    assert out.total_cost == pytest.approx(first_cost + 0.5)
    assert out.invoked[0].confidence == 0.1 and out.invoked[1].posterior > 0.5


def test_budget_exhaustion_is_reported(chain: pointsman.CascadeRouter) -> None:
    probe = chain.start(X)
    small = probe.next.expected_cost
    large = probe.observe("small", 0.1).next.expected_cost
    assert large > small
    s = chain.start(X, budget=small + large / 2)
    step = s.observe("small", 0.1)
    assert step.accepted
    assert step.outcome.budget_exhausted and step.outcome.stop == "budget-exhausted"
    assert step.outcome.accepted_id == "small" and step.outcome.invoked_ids == ["small"]


def test_max_steps(chain: pointsman.CascadeRouter) -> None:
    out = chain.start(X, max_steps=1).observe("small", 0.1).outcome
    assert out.stop == "max-steps" and out.invoked_ids == ["small"]


def test_finish_early(chain: pointsman.CascadeRouter) -> None:
    s = chain.start(X)
    with pytest.raises(pointsman.SessionError, match="no answer"):
        s.finish()
    s.observe("small", 0.1)
    out = s.finish()
    assert out.stop == "stopped" and out.accepted_id == "small"
    assert s.done and s.finish().stop == "stopped"
    with pytest.raises(pointsman.SessionError, match="ended"):
        s.observe("large", 0.9)


def test_budget_too_small(chain: pointsman.CascadeRouter) -> None:
    with pytest.raises(pointsman.BudgetError, match="budget .* below the expected cost"):
        chain.start(X, budget=0.0)
    with pytest.raises(pointsman.InvalidInputError, match="budget"):
        chain.start(X, budget=-1.0)
    with pytest.raises(pointsman.InvalidInputError, match="max_steps"):
        chain.start(X, max_steps=0)


def test_bad_confidence(chain: pointsman.CascadeRouter) -> None:
    s = chain.start(X)
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(pointsman.InvalidInputError, match="confidence"):
            s.observe("small", bad)
    assert s.observe("small", 0.9).accepted  # the session is unharmed


def test_unknown_or_wrong_model(chain: pointsman.CascadeRouter) -> None:
    s = chain.start(X)
    with pytest.raises(pointsman.UnknownModelError):
        s.observe("medium", 0.5)
    with pytest.raises(pointsman.UnknownModelError):
        s.observe(7, 0.5)
    with pytest.raises(pointsman.UnknownModelError):
        s.observe(-1, 0.5)
    with pytest.raises(pointsman.SessionError, match="asked for"):
        s.observe("large", 0.5)
    with pytest.raises(TypeError):
        s.observe(True, 0.5)
    with pytest.raises(pointsman.ShapeError):
        chain.start(np.ones(3, dtype=np.float32))
    with pytest.raises(TypeError, match="no embedder"):
        chain.start("a question")


def test_bad_config() -> None:
    with pytest.raises(pointsman.UnknownModelError):
        pointsman.CascadeRouter.chain(CARDS, 2, [("tiny", 0.8)])
    with pytest.raises(pointsman.ConfigError):
        pointsman.CascadeRouter.chain(CARDS, 2, [("small", 1.5)])
    # NaN is named by the config's check (it used to come back from JSON as "invalid type: null").
    with pytest.raises(pointsman.ConfigError, match="stage 0 threshold"):
        pointsman.CascadeRouter.chain(CARDS, 2, [("small", float("nan"))])
    with pytest.raises(pointsman.ConfigError):
        pointsman.CascadeRouter.chain(CARDS, 2, [("small", 0.8)], no_such_field=1)


def test_save_load_pickle(chain: pointsman.CascadeRouter, tmp_path) -> None:
    path = tmp_path / "cascade.safetensors"
    chain.save(path)
    for r in (
        pointsman.load_router(path),
        pointsman.CascadeRouter.load(path),
        pickle.loads(pickle.dumps(chain)),
    ):
        assert type(r) is pointsman.CascadeRouter
        assert r.stages == chain.stages
        s = r.start(X)
        assert s.observe("small", 0.1).next.model_id == "large"


@pytest.fixture(scope="module")
def dc_cascade(dc: pointsman.Dataset) -> pointsman.CascadeRouter:
    return pointsman.CascadeRouter.fit(dc.train)


def run_sessions(router, split, conf, rows, **start):
    """Each query of `rows` driven through a session, each answer rated by `conf`."""
    accepted, invoked = [], []
    emb, tokens, tasks = split.embeddings, split.prompt_tokens, split.tasks
    for r in rows:
        s = router.start(emb[r], prompt_tokens=float(tokens[r]), task=tasks[r], **start)
        while not s.done:
            s.observe(s.model, float(conf[r, s.model]))
        accepted.append(s.outcome.accepted)
        invoked.append([i.model for i in s.outcome.invoked])
    return accepted, invoked


def test_sessions_match_the_engine_simulation(
    dc: pointsman.Dataset, dc_cascade: pointsman.CascadeRouter
) -> None:
    test = dc.test
    conf = pointsman.simulated_confidences(test, 0.1, seed=3)
    assert conf.shape == (len(test.ids), len(dc.models)) and conf.dtype == np.float64
    rows = range(0, len(test.ids), max(1, len(test.ids) // 150))
    for mu in (0.0, 200.0):
        accepted, invoked = dc_cascade.simulate(test, conf, cost_weight=mu)
        assert accepted.dtype == np.uint32 and len(invoked) == len(test.ids)
        got_acc, got_inv = run_sessions(dc_cascade, test, conf, rows, cost_weight=mu)
        assert got_acc == [int(accepted[r]) for r in rows]
        assert got_inv == [list(invoked[r]) for r in rows]
    # The default judge is the test judge for `seed`.
    a, _ = dc_cascade.simulate(test, seed=3)
    assert np.array_equal(a, dc_cascade.simulate(test, conf)[0])
    # route() gives the first model of a session.
    r = rows[0]
    first = dc_cascade.start(
        test.embeddings[r], prompt_tokens=float(test.prompt_tokens[r]), task=test.tasks[r]
    )
    decision = dc_cascade.route(
        test.embeddings[r], prompt_tokens=float(test.prompt_tokens[r]), task=test.tasks[r]
    )
    assert first.model == decision.model


def test_dynamic_cascade_saves_and_calibrates(
    dc: pointsman.Dataset, dc_cascade: pointsman.CascadeRouter, tmp_path
) -> None:
    assert dc_cascade.stages == []
    loaded = pickle.loads(pickle.dumps(dc_cascade))
    conf = pointsman.simulated_confidences(dc.test, 0.1, seed=1)
    assert np.array_equal(
        loaded.simulate(dc.test, conf)[0], dc_cascade.simulate(dc.test, conf)[0]
    )
    full = dc_cascade.simulate(dc.test, conf)
    cheap, cal = dc_cascade.calibrate(dc.test, conf, quality=0.0)
    assert type(cheap) is pointsman.CascadeRouter
    assert set(cal) >= {"cost_weight", "thresholds", "mean_quality", "mean_cost", "mean_calls"}
    assert cal["mean_calls"] <= np.mean([len(i) for i in full[1]]) + 1e-9
    with pytest.raises(pointsman.ConfigError, match="exactly one target"):
        dc_cascade.calibrate(dc.test, conf)
    with pytest.raises(pointsman.InvalidInputError):
        dc_cascade.calibrate(dc.test, conf, quality=2.0)
    with pytest.raises(pointsman.ShapeError):
        dc_cascade.simulate(dc.test, conf[:, :1])


def test_tune_on_toy(toy) -> None:
    split = toy.split()
    search = {"accept_thresholds": [0.5, 0.8], "prior_strengths": [5.0], "points": 5}
    router, report = pointsman.CascadeRouter.tune(split, judge_noise=0.0, search=search, estimator={"k": 10})
    assert type(router) is pointsman.CascadeRouter and router.stages == []
    assert len(report["trials"]) == 2 and report["trials"][0]["config"]["confidence_error"] == 0.0
    assert report["criterion"] == "aiq" and report["validation"] == "leave_one_out"
    best = report["trials"][0]["config"]
    assert router.config == {"type": "cascade", **best}
    conf = pointsman.simulated_confidences(split, 0.0, training=True)
    again, _ = pointsman.CascadeRouter.tune(split, conf, search=search, estimator={"k": 10})
    assert again.config == router.config
    with pytest.raises(pointsman.InvalidInputError, match="judge noise"):
        pointsman.CascadeRouter.tune(split, judge_noise=0.7)
