"""Bring your own data (docs/own-data.md): datasets from arrays and DataFrames with partial
labels, the importers, onboarding a model and repricing a fitted router."""

import json
from pathlib import Path

import numpy as np
import pytest

import pointsman

pd = pytest.importorskip("pandas")

MODELS = ["small", "medium", "large"]


def toy(n: int = 120, seed: int = 0):
    """Two clusters of queries: `small` answers cluster 0, `large` both, `medium` half."""
    rng = np.random.default_rng(seed)
    centers = np.eye(8, dtype=np.float32)[:2]
    cluster = np.arange(n) % 2
    emb = centers[cluster] + 0.1 * rng.standard_normal((n, 8)).astype(np.float32)
    scores = np.stack([1.0 - cluster, rng.integers(0, 2, n).astype(float), np.ones(n)], axis=1)
    return emb, scores, cluster


PRICES = {"small": (0.1, 0.1), "medium": (0.5, 0.5), "large": (2.0, 2.0)}


def test_from_arrays_with_partial_labels_saves_loads_and_refuses_evaluation(tmp_path):
    emb, scores, _ = toy()
    partial = scores.copy()
    partial[::3, 1] = np.nan  # medium not observed on a third of the queries
    ds = pointsman.Dataset.from_arrays(MODELS, partial, embeddings=emb, prices=PRICES)
    assert len(ds) == 120 and ds.models == MODELS
    assert len(ds.train) + len(ds.test) == 120 and len(ds.test) > 0
    for split in (ds.train, ds.test):
        obs = split.observed
        assert obs.shape == (len(split), 3) and obs.dtype == np.bool_
        assert np.array_equal(obs, ~np.isnan(split.scores))
    assert (~ds.train.observed[:, 1]).sum() + (~ds.test.observed[:, 1]).sum() == 40
    # kNN trains on what is there; evaluation needs full labels on the test split.
    router = pointsman.KnnRouter.fit(ds.train, k=5)
    with pytest.raises(pointsman.MissingLabelsError, match="missing labels"):
        pointsman.evaluate(router, ds.test)
    # Saved in the shared schema and loaded back, same splits and mask.
    out = ds.save(tmp_path / "mine")
    back = pointsman.Dataset.load(out)
    assert back.train.ids == ds.train.ids
    assert np.array_equal(back.test.observed, ds.test.observed)
    with pytest.raises(FileExistsError):
        ds.save(tmp_path / "mine")
    # Bad columns are typed errors naming what was wrong.
    with pytest.raises(pointsman.ShapeError, match="ids has 2 values, expected 120"):
        pointsman.Dataset.from_arrays(
            MODELS, scores, embeddings=emb, ids=["a", "b"], prices=PRICES
        )
    with pytest.raises(pointsman.InvalidInputError, match="outside"):
        pointsman.Dataset.from_arrays(MODELS, scores * 2, embeddings=emb, prices=PRICES)
    with pytest.raises(pointsman.InvalidInputError, match="embeddings, or a prompt"):
        pointsman.Dataset.from_arrays(MODELS, scores, prices=PRICES)
    # Prices are asked for, not assumed to be 0 (a cost weight would do nothing).
    with pytest.raises(pointsman.InvalidInputError, match="no price for model 'large'|no price for model \"large\""):
        pointsman.Dataset.from_arrays(MODELS, scores, embeddings=emb, prices={"small": (0.1, 0.1), "medium": (0.5, 0.5)})
    with pytest.raises(TypeError, match="prices"):
        pointsman.Dataset.from_arrays(MODELS, scores, embeddings=emb)
    with pytest.raises(pointsman.UnknownModelError, match="huge"):
        pointsman.Dataset.from_arrays(MODELS, scores, embeddings=emb, prices={**PRICES, "huge": (9, 9)})


def test_from_pandas_reads_a_routerbench_style_frame():
    emb, scores, cluster = toy(60)
    df = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(60)],
            "eval_name": np.where(cluster == 0, "gsm8k", "poetry"),
            "vec": list(emb),
            **{m: scores[:, j] for j, m in enumerate(MODELS)},
            **{f"{m}|total_cost": np.full(60, 0.001 * (j + 1)) for j, m in enumerate(MODELS)},
        }
    )
    df.loc[3, "medium"] = np.nan
    ds = pointsman.Dataset.from_pandas(
        df,
        MODELS,
        embedding="vec",
        id="sample_id",
        task="eval_name",
        cost="{model}|total_cost",
        prices=PRICES,
    )
    both = {i: (s, r) for s in (ds.train, ds.test) for r, i in enumerate(s.ids)}
    split, row = both["s3"]
    assert not split.observed[row, 1] and split.tasks[row] == "poetry"
    split, row = both["s4"]
    assert split.costs[row].tolist() == [0.001, 0.002, 0.003]
    with pytest.raises(pointsman.InvalidInputError, match="no column 'nope'|no column \"nope\""):
        pointsman.Dataset.from_pandas(df, ["nope"], embedding="vec", prices={"nope": (1, 1)})


def test_from_pandas_missing_cells_are_missing_not_text(tmp_path):
    """None and NaN cells are not read as the text "None"/"nan": a query without a task, or an
    error naming the column and the row; odd frames get an error that says what is wrong."""
    emb, scores, _ = toy(8)
    df = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(8)],
            "eval_name": pd.Series(["math", None, np.nan, "math", pd.NA, "x", "x", "x"], dtype=object),
            "vec": list(emb),
            **{m: scores[:, j] for j, m in enumerate(MODELS)},
        }
    )
    ds = pointsman.Dataset.from_pandas(df, MODELS, embedding="vec", id="sample_id", task="eval_name", prices=PRICES)
    tasks = {i: t for s in (ds.train, ds.test) for i, t in zip(s.ids, s.tasks)}
    assert tasks["s1"] is None and tasks["s2"] is None and tasks["s4"] is None and tasks["s0"] == "math"
    missing_id = df.assign(sample_id=df.sample_id.where(df.index != 5, None))
    with pytest.raises(pointsman.InvalidInputError, match="'sample_id' has no value in row 5|\"sample_id\" has no value in row 5"):
        pointsman.Dataset.from_pandas(missing_id, MODELS, embedding="vec", id="sample_id", prices=PRICES)
    ragged = df.copy()
    ragged.at[2, "vec"] = emb[2][:5]
    with pytest.raises(pointsman.InvalidInputError, match="5 values in row 2"):
        pointsman.Dataset.from_pandas(ragged, MODELS, embedding="vec", prices=PRICES)
    with pytest.raises(pointsman.InvalidInputError, match="no rows"):
        pointsman.Dataset.from_pandas(df.iloc[:0], MODELS, embedding="vec", prices=PRICES)
    with pytest.raises(TypeError, match="DataFrame, not dict"):
        pointsman.Dataset.from_pandas(dict(df), MODELS, embedding="vec", prices=PRICES)
    # Scores written as text are refused, not parsed ("1" -> 1.0, "nan" -> unlabelled).
    texty = df.assign(**{MODELS[0]: [str(v) for v in scores[:, 0]]})
    with pytest.raises(TypeError, match=rf'column "{MODELS[0]}" holds \w+ values, not numbers'):
        pointsman.Dataset.from_pandas(texty, MODELS, embedding="vec", prices=PRICES)
    twice = pd.concat([df, df[["small"]]], axis=1)
    with pytest.raises(pointsman.InvalidInputError, match="more than one column named"):
        pointsman.Dataset.from_pandas(twice, MODELS, embedding="vec", prices=PRICES)
    # Replacing replaces a folder, never a file of the same name.
    target = tmp_path / "target"
    target.write_text("keep")
    with pytest.raises(OSError, match="is a file, not a folder"):
        ds.save(target, replace=True)
    assert target.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["target"]


ROUTERBENCH = pd.DataFrame(
    {
        "sample_id": ["mmlu.1", "gsm8k.2", "mtbench.3"],
        "prompt": ["['What is 2+2?']", "['Tom has 3 apples, then 2 more.']", "['Write a haiku']"],
        "eval_name": ["mmlu", "gsm8k", "mt-bench"],
        "oracle_model_to_route_to": ["a", "b", "a"],
        "a": [1.0, 0.0, 0.9],
        "a|model_response": ["four", "six", "Autumn moonlight"],
        "a|total_cost": [0.0003, 0.0021, 0.001],
        "b": [0.0, 1.0, np.nan],
        "b|model_response": ["five", "5", None],
        "b|total_cost": [0.00009, 0.0004, np.nan],
    }
)


def test_import_routerbench_from_pickle_equals_csv(tmp_path):
    pkl = tmp_path / "routerbench_0shot.pkl"
    ROUTERBENCH.to_pickle(pkl)
    csv = tmp_path / "routerbench_0shot.csv"
    ROUTERBENCH.to_csv(csv, index=False)
    a = pointsman.import_dataset("routerbench", [pkl], tmp_path / "from_pkl", embed=False)
    b = pointsman.import_dataset("routerbench", [csv], tmp_path / "from_csv", embed=False)
    for x, y in ((a.train, b.train), (a.test, b.test)):
        assert x.ids == y.ids and x.prompts == y.prompts and x.tasks == y.tasks
        assert np.array_equal(x.scores, y.scores, equal_nan=True)
        assert np.array_equal(x.costs, y.costs)
    assert sorted(a.train.ids + a.test.ids) == ["gsm8k.2", "mmlu.1", "mtbench.3"]
    # Bad input: the file, the line and the field; nothing written.
    bad = ROUTERBENCH.copy()
    bad.loc[1, "a"] = 1.5
    bad.to_pickle(pkl)
    with pytest.raises(pointsman.FormatError, match=r"routerbench_0shot.pkl:2: .*outside \[0, 1\]"):
        pointsman.import_dataset("routerbench", [pkl], tmp_path / "bad", embed=False)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(pointsman.InvalidInputError, match="unknown import format"):
        pointsman.import_dataset("routerbanch", [csv], tmp_path / "bad")


def test_import_routerbench_embeds_in_process(tmp_path, embedder):
    csv = tmp_path / "rb.csv"
    ROUTERBENCH.to_csv(csv, index=False)
    ds = pointsman.import_dataset("routerbench", [csv], tmp_path / "rb", embedder=embedder)
    split = ds.train if len(ds.train) else ds.test
    assert split.dim == 384
    want = embedder.embed(split.prompts)
    assert np.abs(split.embeddings - want).max() < 2e-3


def test_import_llmrouter_keeps_its_split(tmp_path, data_dir):
    ds = pointsman.import_dataset(
        "llmrouter", [data_dir / "raw" / "llmrouter"], tmp_path / "dc", embed=False
    )
    shipped = pointsman.Dataset.load(data_dir / "llmrouter_dc")
    assert (len(ds.train), len(ds.test)) == (5489, 500)
    assert ds.test.ids == shipped.test.ids and ds.train.tasks == shipped.train.tasks
    assert np.array_equal(ds.test.scores, shipped.test.scores)


def test_add_model_and_reprice_without_refitting():
    emb, scores, cluster = toy(200)
    ds = pointsman.Dataset.from_arrays(MODELS, scores, embeddings=emb, prices=PRICES)
    two = pointsman.Dataset.from_arrays(
        MODELS[:2], scores[:, :2], embeddings=emb, prices={k: PRICES[k] for k in MODELS[:2]}
    )
    router = pointsman.KnnRouter.fit(two.train, k=10)
    x = ds.test.embeddings
    before = router.route_batch(x, 0.0, return_estimates=True)[1]
    # From labelled queries: the card (prices) comes from the labelled split's pool.
    added = router.add_model("large", ds.train)
    assert isinstance(added, pointsman.KnnRouter) and added.models == MODELS
    after = added.route_batch(x, 0.0, return_estimates=True)[1]
    assert np.array_equal(after[:, :2], before)  # the other models' estimates, bit for bit
    assert after[:, 2].mean() > 0.9  # large answers everything
    # From the card alone (the prior), and errors.
    card_only = router.add_model("large", input_usd_per_mtok=2.0, output_usd_per_mtok=2.0)
    assert card_only.models == MODELS
    with pytest.raises(pointsman.InvalidInputError, match="input_usd_per_mtok"):
        router.add_model("large")
    # Repricing: costs change, qualities do not.
    cheaper = added.reprice({"large": (0.2, 0.2)})
    q0, c0 = added.route_batch(x, 0.0, return_estimates=True)[1:]
    q1, c1 = cheaper.route_batch(x, 0.0, return_estimates=True)[1:]
    assert np.array_equal(q0, q1)
    assert np.allclose(c1[:, 2], c0[:, 2] / 10) and np.array_equal(c1[:, :2], c0[:, :2])
    with pytest.raises(pointsman.UnknownModelError, match='unknown model "huge"'):
        added.reprice({"huge": (1.0, 1.0)})
    with pytest.raises(pointsman.ConfigError, match="names no model"):
        added.reprice({})
    # What `train(..., "auto")` may return beyond knn: IRT and a stack reprice the same way.
    for kind in ("irt", "stack"):
        r, _ = pointsman.train(ds.train, kind)
        q0, c0 = r.route_batch(x, 0.0, return_estimates=True)[1:]
        q1, c1 = r.reprice({"large": (0.2, 0.2)}).route_batch(x, 0.0, return_estimates=True)[1:]
        assert np.array_equal(q0, q1), kind
        assert np.allclose(c1[:, 2], c0[:, 2] / 10) and np.array_equal(c1[:, :2], c0[:, :2]), kind


@pytest.mark.parametrize(
    "cls", [pointsman.LinUcbRouter, pointsman.ThompsonRouter, pointsman.KnnUcbRouter, pointsman.ClusterUcbRouter]
)
def test_add_model_to_a_bandit_keeps_learning(cls, tmp_path):
    emb, scores, _ = toy(200)
    ds = pointsman.Dataset.from_arrays(MODELS, scores, embeddings=emb, prices=PRICES)
    two = pointsman.Dataset.from_arrays(
        MODELS[:2], scores[:, :2], embeddings=emb, prices={k: PRICES[k] for k in MODELS[:2]}
    )
    config = {"clusters": 2} if cls is pointsman.ClusterUcbRouter else {}
    router = cls.fit(two.train, **config)
    x = ds.test.embeddings
    before = router.greedy().route_batch(x, 0.0, return_estimates=True)[1]
    added = router.add_model("large", ds.train)
    assert isinstance(added, cls) and added.models == MODELS
    assert added.pulls == router.pulls + [len(ds.train)]
    after = added.greedy().route_batch(x, 0.0, return_estimates=True)[1]
    if cls is not pointsman.ClusterUcbRouter:  # its cluster difficulties are shared
        assert np.array_equal(after[:, :2], before)  # the other models, bit for bit
    assert after[:, 2].mean() > 0.8  # large answers everything
    card_only = router.add_model("large", input_usd_per_mtok=2.0, output_usd_per_mtok=2.0)
    assert card_only.pulls[2] == 0
    # It keeps learning with three models, and saves and loads.
    added.observe(x[0], 2, 1.0, 1e-4)
    assert added.pulls[2] == len(ds.train) + 1
    added.save(tmp_path / "r.safetensors")
    back = pointsman.Router.load(tmp_path / "r.safetensors")
    assert back.models == MODELS
    assert np.array_equal(
        back.greedy().route_batch(x, 0.0, return_estimates=True)[1],
        added.greedy().route_batch(x, 0.0, return_estimates=True)[1],
    )
    # Repricing: costs change, qualities do not.
    cheaper = added.reprice({"large": (0.2, 0.2)})
    q0, c0 = added.greedy().route_batch(x, 0.0, return_estimates=True)[1:]
    q1, c1 = cheaper.greedy().route_batch(x, 0.0, return_estimates=True)[1:]
    assert np.array_equal(q0, q1)
    assert np.allclose(c1[:, 2], c0[:, 2] / 10) and np.array_equal(c1[:, :2], c0[:, :2])
    # A replica without the model does not mix in.
    with pytest.raises(pointsman.ConfigError):
        router.merge(added)


def test_log_import_with_repeated_records(tmp_path):
    """The same (prompt, model) twice: refused by default, averaged or the last kept on request."""
    (tmp_path / "models.json").write_text(
        json.dumps({"models": {m: {"input_usd_per_mtok": p[0], "output_usd_per_mtok": p[1]}
                               for m, p in PRICES.items()}})
    )
    log = tmp_path / "log.jsonl"
    log.write_text(
        "\n".join(json.dumps(r) for r in [
            {"prompt": "2+2?", "model": "small", "score": 1},
            {"prompt": "2+2?", "model": "small", "score": 0},
            {"prompt": "a poem", "model": "large", "score": 1},
        ])
    )
    args = ("log", [log])
    kw = dict(models=tmp_path / "models.json", embed=False, replace=True)
    with pytest.raises(pointsman.FormatError, match="log.jsonl:2:.*second outcome"):
        pointsman.import_dataset(*args, tmp_path / "a", **kw)
    ds = pointsman.import_dataset(*args, tmp_path / "a", duplicates="mean", **kw)
    scores = np.concatenate([ds.train.scores, ds.test.scores])
    assert sorted(np.nan_to_num(scores, nan=-1).max(axis=1)) == [0.5, 1.0]
    ds = pointsman.import_dataset(*args, tmp_path / "a", duplicates="last", **kw)
    scores = np.concatenate([ds.train.scores, ds.test.scores])
    assert sorted(np.nan_to_num(scores, nan=-1).max(axis=1)) == [0.0, 1.0]
    with pytest.raises(pointsman.ConfigError, match="refuse, mean or last"):
        pointsman.import_dataset(*args, tmp_path / "a", duplicates="median", **kw)
