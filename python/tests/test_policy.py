"""Decision-time policies from Python: pm.Policy, pm.Episode, the policy keyword arguments of
Router.route, the audit, record() and the typed refusals (docs/policies.md)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pointsman as pm


def test_rules_exclude_and_the_audit_names_the_rule(toy, toy_knn):
    policy = pm.Policy(
        {
            "rules": [
                {"name": "no-c-for-free", "when": {"tenant": ["free"]}, "then": {"exclude": ["c"]}}
            ]
        }
    )
    x = toy.embeddings[0]
    # Cost weight 0: the plain router takes the always-right, dear model.
    assert toy_knn.route(x).model_id == "c"
    d = toy_knn.route(x, policy=policy, tenant="free")
    assert d.model_id != "c"
    assert d.audit["rules"] == ["no-c-for-free"]
    assert d.audit["excluded"] == [{"model": "c", "reason": "rule no-c-for-free"}]
    # Another tenant: the rule does not fire, the audit says so.
    d = toy_knn.route(x, policy=policy, tenant="paid")
    assert d.model_id == "c" and d.audit["rules"] == []
    # Without a policy there is no audit, and policy keywords alone are a TypeError.
    assert toy_knn.route(x).audit is None
    with pytest.raises(TypeError, match="tenant is read by a policy"):
        toy_knn.route(x, tenant="free")


def test_text_rules_and_metadata(toy, toy_knn):
    policy = pm.Policy(
        json.dumps(
            {
                "rules": [
                    {"name": "code", "when": {"regex": [r"\bdef \w+\("]}, "then": {"force": "a"}},
                    {"name": "eu", "when": {"metadata": {"region": "eu"}}, "then": {"force": "b"}},
                ]
            }
        )
    )
    x = toy.embeddings[1]
    assert toy_knn.route(x, policy=policy, text="def f(x): return x").model_id == "a"
    assert toy_knn.route(x, policy=policy, metadata={"region": "eu"}).model_id == "b"
    # Features only: the text rule cannot match.
    assert toy_knn.route(x, policy=policy).audit["rules"] == []


def test_caps_refuse_with_a_typed_error(toy, toy_knn):
    policy = pm.Policy({"caps": {"max_cost": 1e-12}})
    with pytest.raises(pm.NoModelFitsError, match="max_cost") as info:
        toy_knn.route(toy.embeddings[0], policy=policy)
    assert isinstance(info.value, pm.PolicyRefusal)


def test_budget_is_charged_by_record_and_stops(toy, toy_knn):
    policy = pm.Policy(
        {"budgets": [{"key": "tenant", "limit_usd": 2.5e-3, "window": {"kind": "total"}, "pace": False}]}
    )
    x = toy.embeddings[2]
    d = toy_knn.route(x, policy=policy, tenant="acme")
    assert d.model_id == "c"
    assert d.audit["budgets"][0]["key"] == "tenant:acme"
    policy.record(toy_knn, 2e-3, model=d.model_id, tenant="acme")
    assert policy.budgets(toy_knn, tenant="acme")[0]["spent"] == pytest.approx(2e-3)
    # 0.5e-3 left: the dear model no longer fits, a cheap one does.
    d = toy_knn.route(x, policy=policy, tenant="acme")
    assert d.model_id in ("a", "b")
    assert {"model": "c", "reason": "budget tenant:acme"} in d.audit["excluded"]
    policy.record(toy_knn, 5e-4, model=d.model_id, tenant="acme")
    with pytest.raises(pm.BudgetExhaustedError, match="tenant:acme"):
        toy_knn.route(x, policy=policy, tenant="acme")
    # Another tenant has its own budget.
    assert toy_knn.route(x, policy=policy, tenant="other").model_id == "c"


def test_episode_paces_its_steps(toy, toy_knn):
    policy = pm.Policy({})
    episode = pm.Episode("run-1", budget_usd=2e-3, steps=4)
    assert (episode.id, episode.budget_usd, episode.steps) == ("run-1", 2e-3, 4)
    spent = 0.0
    for step in range(4):
        try:
            d = toy_knn.route(toy.embeddings[step], policy=policy, episode=episode)
        except pm.BudgetExhaustedError:
            continue
        assert d.audit["budgets"][0]["key"] == "episode:run-1"
        policy.record(toy_knn, d.cost, model=d.model_id, episode=episode)
        spent += d.cost
    assert spent <= 2e-3
    with pytest.raises(pm.ConfigError):
        pm.Episode("e", budget_usd=-1.0, steps=3)


def test_stickiness_keeps_the_session_model(toy, toy_knn):
    policy = pm.Policy({"sticky": {"margin": 10.0}})
    first = toy_knn.route(toy.embeddings[0], policy=policy, session="s1")
    policy.record(toy_knn, first.cost, model=first.model_id, session="s1")
    for i in range(1, 6):
        d = toy_knn.route(toy.embeddings[i], 1e4, policy=policy, session="s1")
        assert d.model_id == first.model_id
        assert d.audit["sticky"]["previous"] == first.model_id


def test_fitted_guard_save_and_load(toy, toy_knn, tmp_path):
    # Training queries in the first four dimensions (tiny noise elsewhere); the far query
    # points along the eighth.
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(400, 8)).astype(np.float32)
    emb[:, 4:] *= 0.01
    split = pm.Split.from_arrays(
        emb, np.resize(toy.scores, (400, 3)), np.resize(toy.costs, (400, 3)), toy.models
    )
    policy = pm.Policy({"guard": {"source": "embeddings", "action": "refuse"}})
    fitted = policy.fit_guard(split, false_alarm=0.05)
    assert fitted.has_fitted_guard and not policy.has_fitted_guard
    d = toy_knn.route(emb[0], policy=fitted)
    assert d.audit["guard"]["verdict"] in ("pass", "refuse")
    far = np.zeros(8, dtype=np.float32)
    far[7] = 1.0
    with pytest.raises(pm.OutOfDistributionError):
        toy_knn.route(far, policy=fitted)
    path = tmp_path / "policy.toml"
    fitted.save(path)
    assert (tmp_path / "policy.toml.guard.safetensors").is_file()
    loaded = pm.Policy.load(path)
    assert loaded.has_fitted_guard
    assert loaded.config["guard"] == {**fitted.config["guard"], "file": "policy.toml.guard.safetensors"}
    with pytest.raises(pm.OutOfDistributionError):
        toy_knn.route(far, policy=loaded)


def test_bad_policies_are_typed_errors():
    with pytest.raises(pm.FormatError, match="unknown field `rulez`"):
        pm.Policy({"rulez": []})
    with pytest.raises(pm.ConfigError, match="margin"):
        pm.Policy({"sticky": {"margin": -1}})
    with pytest.raises(TypeError):
        pm.Policy(3)


def test_engine_warnings_reach_stderr():
    """The engine's warnings are not lost in Python: a tenant budget that a request without a
    tenant escapes is said once on stderr; POINTSMAN_LOG=off silences it, a bad filter is named."""
    code = textwrap.dedent(
        """
        import numpy as np, pointsman as pm
        rng = np.random.default_rng(0)
        x = rng.normal(size=(50, 8)).astype(np.float32)
        split = pm.Split.from_arrays(x, rng.random((50, 2)), np.tile([1e-5, 1e-3], (50, 1)), ["a", "b"])
        router = pm.KnnRouter.fit(split, k=5)
        policy = pm.Policy({"budgets": [{"key": "tenant", "limit_usd": 1.0, "window": {"kind": "total"}}]})
        for _ in range(3):
            router.route(x[0], policy=policy)
        """
    )

    def stderr(**env: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stderr

    said = stderr(POINTSMAN_LOG="warn")
    assert said.count("does not apply to requests without a tenant") == 1, said
    assert "WARN pointsman::policy" in said, said
    assert stderr(POINTSMAN_LOG="off") == ""
    said = stderr(POINTSMAN_LOG="pointsman=loud")
    assert "ignoring POINTSMAN_LOG" in said and "does not apply" in said, said


def test_a_policy_does_not_keep_the_routers_it_routed_through_alive(toy, toy_knn):
    """A service that swaps in a retrained router routes each through the same policy: the
    policy's bindings must not keep the old router objects alive (their bindings, and with them
    the engine's reference sets, are dropped at the policy's next use)."""
    import gc
    import weakref

    policy = pm.Policy({"version": 1, "cost_weight": 100, "sticky": {}})
    blob = toy_knn.to_bytes()
    x = toy.embeddings[0]
    refs = []
    for _ in range(3):
        r = pm.router_from_bytes(blob)
        r.route(x, policy=policy, session="s")
        refs.append(weakref.ref(r))
        del r
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]
    # The sessions outlive the routers: they are the policy's.
    r = pm.router_from_bytes(blob)
    d = r.route(x, policy=policy, session="s")
    assert d.audit["sticky"]["previous"] is not None
