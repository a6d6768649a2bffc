"""evaluate(): the figures of `pointsman eval` for one router."""

import pytest

import pointsman


def test_evaluate_sweep(dc, knn):
    ev = pointsman.evaluate(knn, dc.test)
    assert ev["dataset"] == "llmrouter_dc" and ev["n_test"] == 500 and ev["router"] == "knn"
    m = ev["metrics"]
    assert set(m) == {
        "aiq",
        "max_quality",
        "quality_at_best_single_cost",
        "quality_at_cheap_share",
        "cost_to_match_best_single",
        "oracle_gap",
        "apgr",
        "cpt50",
        "cpt80",
    }
    assert m["apgr"] is None  # nine models: no weak/strong pair
    ref = ev["reference"]
    assert ref["models"][ref["best_single"]]["model"] == "llama-3.1-nemotron-51b-instruct"
    assert m["aiq"] > ref["zero_router_aiq"]
    assert m["oracle_gap"] == pytest.approx(ref["oracle_quality"] - m["max_quality"])
    assert len(ev["curve"]) >= 2 and ev["call_curve"] == []
    costs = [p["mean_cost"] for p in ev["curve"]]
    assert costs == sorted(costs, reverse=True)  # from best quality down to cheapest


def test_evaluate_at_given_cost_weights(dc, knn):
    weights = [0.0, 100.0, 100.0, 1e6]
    ev = pointsman.evaluate(knn, dc.test, weights)
    assert [p["cost_weight"] for p in ev["curve"]] == weights
    assert ev["curve"][1] == ev["curve"][2]
    # Each point is what route_batch chooses at that weight, scored on the test labels.
    test = dc.test
    for p in ev["curve"]:
        choices = knn.route_batch(test.embeddings, p["cost_weight"], prompt_tokens=test.prompt_tokens, tasks=test.tasks)
        quality = test.scores[range(len(test)), choices].mean()
        cost = test.costs[range(len(test)), choices].mean()
        assert p["mean_quality"] == pytest.approx(quality, abs=1e-12)
        assert p["mean_cost"] == pytest.approx(cost, rel=1e-12)
    with pytest.raises(pointsman.ConfigError, match="list of cost weights is empty"):
        pointsman.evaluate(knn, dc.test, [])
    with pytest.raises(pointsman.ConfigError, match="cost_weight -1"):
        pointsman.evaluate(knn, dc.test, [-1.0])


def test_reference_train_split(dc, knn, toy, toy_knn):
    # A dataset's split takes its best single model from the dataset's train split; `train=`
    # overrides it.
    default = pointsman.evaluate(knn, dc.test)["reference"]
    own = pointsman.evaluate(knn, dc.test, train=dc.test)["reference"]
    test_figures = lambda ref: [(m["model"], m["mean_quality"], m["mean_cost"]) for m in ref["models"]]
    assert test_figures(default) == test_figures(own)
    assert [m["train_mean_quality"] for m in own["models"]] == [m["mean_quality"] for m in own["models"]]
    assert [m["train_mean_quality"] for m in default["models"]] != [m["mean_quality"] for m in default["models"]]
    # A split from arrays is its own reference.
    ev = pointsman.evaluate(toy_knn, toy.split())
    assert ev["dataset"] == "arrays" and ev["n_test"] == 300


def test_two_model_data_reports_apgr(data_dir):
    rl = pointsman.Dataset.load(data_dir / "routellm")
    zero = pointsman.BaselineRouter.fit(rl.train, "zero")
    ev = pointsman.evaluate(zero, rl.test)
    assert ev["reference"]["weak_strong"] is not None
    assert ev["metrics"]["apgr"] is not None and ev["call_curve"]


def test_models_must_be_in_the_split(dc, toy_knn):
    with pytest.raises(pointsman.UnknownModelError, match="the router's model is not in the dataset"):
        pointsman.evaluate(toy_knn, dc.test)
