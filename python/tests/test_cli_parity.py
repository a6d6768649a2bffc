"""The Python KnnRouter trained on llmrouter_dc is the Rust one: the same file and the same decisions
on the whole test split as `pointsman train` and `pointsman eval`. (The evaluation figures need no
parity test: `pointsman.evaluate` and `pointsman eval` call the same `Evaluation`.)"""

import json
import subprocess
from collections import defaultdict

import numpy as np
import pytest

import pointsman

# The configuration the cross-validated search picks on llmrouter_dc (docs/results.md).
CONFIG = {"k": 100, "same_task": True, "shrinkage": 30.0, "prior": {"kind": "task", "strength": 50.0}}


@pytest.fixture(scope="module")
def rust(cli, data_dir, tmp_path_factory):
    """The CLI's router file and its evaluation (report.json, decisions.jsonl)."""
    tmp = tmp_path_factory.mktemp("cli")
    data = str(data_dir / "llmrouter_dc")
    model = tmp / "knn.safetensors"

    def run(*args):
        subprocess.run([str(cli), "--quiet", *args], check=True, capture_output=True, text=True)

    run("train", "--data", data, "--router", "knn", "--config", json.dumps(CONFIG), "--out", str(model))
    run("eval", "--data", data, "--routers", f"file:{model}", "--out", str(tmp / "eval"), "--decisions")
    report = json.loads((tmp / "eval" / "report.json").read_text())
    decisions = [json.loads(line) for line in (tmp / "eval" / "decisions.jsonl").read_text().splitlines()]
    return model, report, decisions


@pytest.fixture(scope="module")
def python_knn(dc):
    return pointsman.KnnRouter.fit(dc.train, **CONFIG)


def test_same_router_file(rust, python_knn):
    model, _, _ = rust
    assert python_knn.to_bytes() == model.read_bytes()


def test_same_decisions_on_the_whole_test_split(rust, python_knn, dc):
    _, _, decisions = rust
    by_weight = defaultdict(dict)
    for d in decisions:
        assert d.get("cost_basis", "query") == "query"
        by_weight[d["cost_weight"]][d["id"]] = d["model"]
    assert len(by_weight) >= 5
    test = dc.test
    for w, chosen in by_weight.items():
        assert len(chosen) == len(test) == 500
        ours = python_knn.route_batch(test.embeddings, w, prompt_tokens=test.prompt_tokens, tasks=test.tasks)
        assert [python_knn.models[m] for m in ours] == [chosen[i] for i in test.ids], f"cost weight {w}"
    # One decision, query by query, agrees too.
    w = sorted(by_weight)[len(by_weight) // 2]
    for i in range(0, 500, 50):
        d = python_knn.route(test.embeddings[i], w, prompt_tokens=float(test.prompt_tokens[i]), task=test.tasks[i])
        assert d.model_id == by_weight[w][test.ids[i]]
