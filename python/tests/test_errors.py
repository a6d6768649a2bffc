"""Every engine error maps to its documented exception, case by case."""

import errno

import numpy as np
import pytest

import pointsman
from pointsman import _native


def test_hierarchy():
    for cls in [
        pointsman.ShapeError,
        pointsman.ConfigError,
        pointsman.InvalidInputError,
        pointsman.FormatError,
        pointsman.UnknownModelError,
        pointsman.UnsupportedError,
    ]:
        assert issubclass(cls, pointsman.PointsmanError)
    for cls in [pointsman.ShapeError, pointsman.ConfigError, pointsman.InvalidInputError, pointsman.FormatError]:
        assert issubclass(cls, ValueError)
    assert issubclass(pointsman.UnknownModelError, LookupError)
    assert not issubclass(pointsman.UnsupportedError, ValueError)
    assert issubclass(pointsman.PointsmanError, Exception)
    # Budgets and sessions were InvalidInputError before they had classes of their own.
    for cls in [pointsman.BudgetError, pointsman.SessionError]:
        assert issubclass(cls, pointsman.InvalidInputError)
    assert issubclass(pointsman.NumericError, pointsman.PointsmanError)
    assert issubclass(pointsman.NumericError, ArithmeticError)


# Every `pointsman::ErrorKind`: the exception it becomes and its message. The mapping is one
# function; this table is its specification.
KINDS = [
    ("Shape", pointsman.ShapeError, "dimension mismatch: expected 384, got 3"),
    ("EmbeddingMismatch", pointsman.ShapeError, 'embedding model mismatch: router expects "all-MiniLM-L6-v2", got "other"'),
    ("InvalidFeatures", pointsman.InvalidInputError, "invalid features in row 0: embedding is all zeros"),
    ("InvalidInput", pointsman.InvalidInputError, "invalid input: observed quality 2 outside [0, 1]"),
    ("Config", pointsman.ConfigError, "invalid config: knn k must be at least 1"),
    ("UnknownModel", pointsman.UnknownModelError, 'unknown model "nope"'),
    ("Format", pointsman.FormatError, "router.safetensors: truncated header"),
    ("UnsupportedVersion", pointsman.FormatError, 'router.safetensors: unsupported format version "9" (this build reads version 1)'),
    ("Unsupported", pointsman.UnsupportedError, "unsupported: knn routers do not learn from feedback"),
    ("Backend", pointsman.PointsmanError, "embedding backend: out of memory"),
    ("Numeric", pointsman.NumericError, "numeric failure: knn produced a non-finite estimate at position 3"),
    ("BudgetTooSmall", pointsman.BudgetError, 'budget 1e-6 USD is below the expected cost 1e-4 USD of the first model "cheap"'),
    ("SessionFinished", pointsman.SessionError, 'the cascade session has ended (answer of "cheap" used): start a new session'),
    ("SessionOutOfOrder", pointsman.SessionError, 'observed model #1 ("big"), but the cascade asked for #0 ("cheap")'),
    ("SessionRunning", pointsman.SessionError, "the cascade session has not decided yet: no answer has been observed yet"),
    ("OutOfDistribution", pointsman.OutOfDistributionError, "out of distribution: guard score 3.5000 is above the threshold 2.0000"),
    ("BudgetExhausted", pointsman.BudgetExhaustedError, "budget exhausted for tenant:acme: 1e1 of 1e1 USD spent, the cheapest allowed model needs 1e-4 USD (its expected cost times the stop margin)"),
    ("NoModelFits", pointsman.NoModelFitsError, "no model fits: no allowed model meets the caps"),
    ("MissingLabels", pointsman.MissingLabelsError, "missing labels: evaluation needs every model's score on the test split; 3 of 500 queries lack some"),
    ("Store", pointsman.StoreError, "shared store redis://127.0.0.1:6379/: connection refused"),
]


@pytest.mark.parametrize("kind, exc, message", KINDS, ids=[k[0] for k in KINDS])
def test_each_kind_maps_to_its_exception(kind, exc, message):
    with pytest.raises(exc) as info:
        _native._raise_error_kind(kind)
    assert type(info.value) is exc
    assert str(info.value) == message


def test_io_errors_are_oserrors_with_errno_and_filename():
    with pytest.raises(FileNotFoundError) as info:
        _native._raise_error_kind("Io")
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == "/nope/models.json"
    with pytest.raises(FileNotFoundError, match="embedding model not found at /models"):
        _native._raise_error_kind("ModelNotFound")


# The same mapping reached through real calls.


def test_shape_errors(toy_knn):
    with pytest.raises(pointsman.ShapeError, match="expected 8, got 3"):
        toy_knn.route(np.ones(3, dtype=np.float32))
    with pytest.raises(pointsman.ShapeError, match="must be a 2-D array"):
        toy_knn.route_batch(np.ones(8, dtype=np.float32))


def test_invalid_input_errors(toy_knn, toy):
    q = np.ones(8, dtype=np.float32)
    q[2] = np.nan
    with pytest.raises(pointsman.InvalidInputError, match="invalid features in row 0: value NaN at column 2"):
        toy_knn.route(q)
    X = np.ones((3, 8), dtype=np.float32)
    X[1] = 0
    with pytest.raises(pointsman.InvalidInputError, match="row 1: embedding is all zeros"):
        toy_knn.route_batch(X)
    with pytest.raises(pointsman.InvalidInputError, match="prompt token count -1"):
        toy_knn.route(np.ones(8), prompt_tokens=-1.0)
    empty = pointsman.Split.from_arrays(np.zeros((0, 8)), np.zeros((0, 3)), np.zeros((0, 3)), toy.models)
    with pytest.raises(pointsman.InvalidInputError, match="cannot fit a knn router on the empty"):
        pointsman.KnnRouter.fit(empty)


def test_config_errors(toy_knn, toy):
    x = toy.embeddings[0]
    with pytest.raises(pointsman.ConfigError, match="cost_weight -1 is not a non-negative number"):
        toy_knn.route(x, -1.0)
    with pytest.raises(pointsman.ConfigError, match="allowed model list is empty"):
        toy_knn.route(x, allowed=[])
    with pytest.raises(pointsman.ConfigError, match="unknown field `kk`"):
        pointsman.KnnRouter.fit(toy.split(), kk=1)
    with pytest.raises(pointsman.ConfigError, match="knn k must be at least 1"):
        pointsman.KnnRouter.fit(toy.split(), k=0)
    with pytest.raises(pointsman.ConfigError, match="invalid type"):
        pointsman.KnnRouter.fit(toy.split(), k="ten")
    with pytest.raises(pointsman.ConfigError, match="not JSON compliant"):
        pointsman.KnnRouter.fit(toy.split(), shrinkage=float("inf"))
    with pytest.raises(pointsman.ConfigError, match="unknown variant `cosine`"):
        pointsman.KnnRouter.fit(toy.split(), weighting={"kind": "cosine"})
    with pytest.raises(TypeError, match="a setting of type object"):
        pointsman.KnnRouter.fit(toy.split(), k=object())


def test_unknown_model_errors(toy_knn, toy):
    with pytest.raises(pointsman.UnknownModelError, match='unknown model "zz"'):
        toy_knn.route(toy.embeddings[0], allowed=["a", "zz"])
    with pytest.raises(LookupError):
        toy_knn.route(toy.embeddings[0], allowed=["zz"])


def test_format_errors(toy_knn, tmp_path):
    with pytest.raises(pointsman.FormatError, match="not a valid safetensors file"):
        pointsman.router_from_bytes(b"not a router")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(toy_knn.to_bytes()[:200])
    with pytest.raises(pointsman.FormatError, match=str(bad)):
        pointsman.load_router(bad)
    # A newer format version is refused, as a FormatError.
    data = toy_knn.to_bytes()
    assert data.count(b'"format_version":"1"') == 1
    newer = data.replace(b'"format_version":"1"', b'"format_version":"9"')
    with pytest.raises(pointsman.FormatError, match='unsupported format version "9"'):
        pointsman.router_from_bytes(newer)


def test_io_errors(toy_knn, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        pointsman.load_router(tmp_path / "missing.safetensors")
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError):
        toy_knn.save(tmp_path / "no" / "such" / "dir" / "r.safetensors")
    with pytest.raises(TypeError):
        toy_knn.save(12)


def test_type_errors(toy_knn, toy):
    with pytest.raises(TypeError, match="x is text but the router has no embedder"):
        toy_knn.route("what is 2 + 2?")
    with pytest.raises(TypeError):
        toy_knn.route(toy.embeddings[0], cost_weight="high")
    with pytest.raises(TypeError):
        pointsman.KnnRouter.fit("not a split")
    with pytest.raises(TypeError):
        pointsman.evaluate("not a router", toy.split())
    with pytest.raises(TypeError):
        pointsman.router_from_bytes("a str, not bytes")
