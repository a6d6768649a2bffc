"""Dataset and Split: loading, zero-copy views, splits from arrays."""

import gc
import json

import numpy as np
import pytest

import pointsman


def test_dataset_load(dc):
    assert dc.name == "llmrouter_dc"
    assert len(dc.models) == 9 and dc.models == sorted(dc.models)
    assert len(dc) == len(dc.train) + len(dc.test)
    assert len(dc.test) == 500
    assert repr(dc) == "Dataset(name='llmrouter_dc', train=5489, test=500, models=9)"
    assert str(dc.path).endswith("llmrouter_dc")


def test_split_arrays_are_read_only_views(dc):
    test = dc.test
    emb = test.embeddings
    assert emb.dtype == np.float32 and emb.shape == (500, 384)
    assert emb.flags.c_contiguous and not emb.flags.writeable
    # Views of the dataset's own memory, never copies: every read shares it.
    assert emb.base is not None and not emb.flags.owndata
    assert np.shares_memory(emb, test.embeddings)
    assert np.shares_memory(emb, dc.test.embeddings)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError):
        emb[0, 0] = 1.0
    for arr in [test.scores, test.costs]:
        assert arr.dtype == np.float64 and arr.shape == (500, 9) and not arr.flags.writeable
    assert ((test.scores >= 0) & (test.scores <= 1)).all()
    assert (test.costs > 0).all()
    assert test.prompt_tokens.shape == (500,)
    assert len(test.ids) == len(test.prompts) == len(test.tasks) == 500
    assert test.dim == 384 and test.models == dc.models and test.name == "test"
    assert test.dataset is not None and test.dataset.name == "llmrouter_dc"
    # prompt_tokens follow the schema: characters / 4.
    assert test.prompt_tokens[3] == pytest.approx(len(test.prompts[3]) / 4)


def test_views_keep_the_dataset_alive(data_dir):
    emb = pointsman.Dataset.load(data_dir / "llmrouter_dc").test.embeddings
    gc.collect()
    assert np.isfinite(emb).all() and emb.shape == (500, 384)


def test_split_from_arrays(toy):
    s = toy.split()
    assert len(s) == 300 and s.dim == 8 and s.models == ["a", "b", "c"]
    assert s.dataset is None and s.name == "arrays"
    assert s.ids[:3] == ["0", "1", "2"]
    assert np.allclose(np.linalg.norm(s.embeddings, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(s.scores, toy.scores)
    tagged = pointsman.Split.from_arrays(
        toy.embeddings[:2], toy.scores[:2], toy.costs[:2], toy.models, tasks=["x", None]
    )
    assert tagged.tasks == ["x", None]
    assert repr(tagged) == "Split(name='arrays', n=2, dim=8, models=3)"


def test_split_from_arrays_errors(toy):
    with pytest.raises(pointsman.ShapeError, match="scores have 2 columns for 3 models"):
        pointsman.Split.from_arrays(toy.embeddings, toy.scores[:, :2], toy.costs, toy.models)
    with pytest.raises(pointsman.ShapeError, match="scores hold"):
        pointsman.Split.from_arrays(toy.embeddings, toy.scores[:10], toy.costs, toy.models)
    bad = toy.scores.copy()
    bad[4, 1] = 1.5
    with pytest.raises(pointsman.InvalidInputError, match='score 1.5 in row 4 for model "b"'):
        pointsman.Split.from_arrays(toy.embeddings, bad, toy.costs, toy.models)
    with pytest.raises(pointsman.ConfigError, match='model "a" appears twice'):
        pointsman.Split.from_arrays(toy.embeddings, toy.scores, toy.costs, ["a", "a", "c"])
    with pytest.raises(pointsman.ShapeError, match="2 task tags for 300 queries"):
        pointsman.Split.from_arrays(
            toy.embeddings, toy.scores, toy.costs, toy.models, tasks=["x", "y"]
        )
    with pytest.raises(TypeError, match="embeddings must be a numeric array"):
        pointsman.Split.from_arrays("x", toy.scores, toy.costs, toy.models)


def test_dataset_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        pointsman.Dataset.load(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        pointsman.Dataset.load(tmp_path / "file")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "models.json").write_text("{not json")
    with pytest.raises(pointsman.FormatError, match="models.json"):
        pointsman.Dataset.load(bad)
    with pytest.raises(TypeError):
        pointsman.Dataset.load(42)


def test_dataset_with_bad_scores_is_a_format_error(tmp_path, data_dir):
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "models.json").write_text((data_dir / "llmrouter_dc" / "models.json").read_text())
    ids = list(json.loads((d / "models.json").read_text())["models"])
    line = {"id": "q1", "split": "train", "prompt": "hi", "scores": {i: 0.5 for i in ids}}
    line["scores"][ids[0]] = 1.7
    (d / "tiny.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(pointsman.FormatError, match=r"tiny.jsonl:1: .*1.7"):
        pointsman.Dataset.load(d)
