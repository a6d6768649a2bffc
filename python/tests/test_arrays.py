"""NumPy inputs: what is read in place, what is converted once, what is refused."""

import numpy as np
import pytest

import pointsman


@pytest.fixture(scope="module")
def X(toy):
    return np.ascontiguousarray(toy.embeddings[:40])


@pytest.fixture(scope="module")
def expected(toy_knn, X):
    return toy_knn.route_batch(X, 500.0)


@pytest.mark.parametrize(
    "convert",
    [
        lambda X: X.astype(np.float64),
        np.asfortranarray,
        lambda X: X.astype(">f4"),  # big-endian
        lambda X: np.repeat(X, 2, axis=1)[:, ::2],  # strided, not contiguous
        lambda X: X.tolist(),
    ],
    ids=["float64", "fortran", "big-endian", "strided", "list"],
)
def test_other_layouts_are_converted(toy_knn, X, expected, convert):
    # The same values in another dtype or layout route the same way.
    assert np.array_equal(toy_knn.route_batch(convert(X), 500.0), expected)


def test_integer_arrays_are_converted(toy_knn):
    Xi = np.array([[3, 0, 0, 0, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0, 0, 0]], dtype=np.int32)
    Xf = Xi.astype(np.float32)
    assert np.array_equal(toy_knn.route_batch(Xi, 500.0), toy_knn.route_batch(Xf, 500.0))
    assert toy_knn.route(np.array([0, 5, 0, 0, 0, 0, 0, 0], dtype=np.uint8), 500.0).model_id == "b"


def test_single_query_accepts_lists_and_float64(toy_knn, X):
    d32 = toy_knn.route(X[0], 500.0)
    assert toy_knn.route(X[0].astype(np.float64), 500.0).model == d32.model
    assert toy_knn.route([float(v) for v in X[0]], 500.0).model == d32.model


def test_inputs_are_not_modified(toy_knn, X):
    before = X.copy()
    toy_knn.route_batch(X, 500.0)
    toy_knn.route(X[1])
    assert np.array_equal(X, before)


def test_empty_batch(toy_knn):
    out = toy_knn.route_batch(np.zeros((0, 8), dtype=np.float32))
    assert out.shape == (0,) and out.dtype == np.uint32


@pytest.mark.parametrize(
    "arg, match",
    [
        (np.ones((2, 3, 8), dtype=np.float32), r"x must be a 2-D array \[n, dim\], got shape \[2, 3, 8\]"),
        (np.ones(8, dtype=np.float32), r"x must be a 2-D array \[n, dim\], got shape \[8\]"),
        (np.ones((4, 5), dtype=np.float32), "dimension mismatch: expected 8, got 5"),
        (np.ones((4, 0), dtype=np.float32), "embedding dimension must be positive"),
    ],
)
def test_wrong_shapes_are_shape_errors(toy_knn, arg, match):
    with pytest.raises(pointsman.ShapeError, match=match):
        toy_knn.route_batch(arg)


def test_single_query_shapes(toy_knn):
    with pytest.raises(pointsman.ShapeError, match=r"x must be a 1-D array \[dim\], got shape \[1, 8\]"):
        toy_knn.route(np.ones((1, 8), dtype=np.float32))
    with pytest.raises(pointsman.ShapeError, match="expected 8, got 3"):
        toy_knn.route(np.ones(3))
    with pytest.raises(pointsman.ShapeError, match=r"got shape \[\]"):
        toy_knn.route(1.0)


@pytest.mark.parametrize(
    "arg, match",
    [
        ("a query", "x must be a numeric array \\[n, dim\\] or a list of str, not str"),
        (b"bytes", "not bytes"),
        (np.array([["a", "b"]]), "not an array of dtype <U1"),
        (np.array([[object(), object()]]), "not an array of dtype object"),
        (np.ones((2, 8), dtype=bool), "not an array of dtype bool"),
        (np.ones((2, 8), dtype=np.complex64), "not an array of dtype complex64"),
        ([[1.0, 2.0], [3.0]], "x must be a numeric array"),
        ({"x": 1}, "not an array of dtype object"),
    ],
    ids=["str", "bytes", "unicode-array", "object-array", "bool", "complex", "ragged", "dict"],
)
def test_non_numeric_inputs_are_type_errors(toy_knn, arg, match):
    with pytest.raises(TypeError, match=match):
        toy_knn.route_batch(arg)


def test_mixed_text_lists_and_transposed_arrays_say_what_is_wrong(toy_knn, X):
    with pytest.raises(TypeError, match=r"x\[1\] must be a str, not int"):
        toy_knn.route_batch(["a query", 3])
    # [dim, n] instead of [n, dim]: the width is checked before the rows (one of which is all
    # zeros here, the error that used to come first).
    zeroed = X.copy()
    zeroed[:, 0] = 0.0
    with pytest.raises(pointsman.ShapeError, match="expected 8, got 40"):
        toy_knn.route_batch(np.ascontiguousarray(zeroed.T))


def test_auxiliary_arrays(toy_knn, X):
    with pytest.raises(pointsman.ShapeError, match="3 prompt token counts for 40 rows"):
        toy_knn.route_batch(X, prompt_tokens=np.ones(3))
    with pytest.raises(pointsman.ShapeError, match="2 task tags for 40 rows"):
        toy_knn.route_batch(X, tasks=["a", None])
    with pytest.raises(TypeError, match="prompt_tokens must be a numeric array"):
        toy_knn.route_batch(X, prompt_tokens="many")
    with pytest.raises(TypeError):
        toy_knn.route_batch(X, tasks=[1, 2])
    ok = toy_knn.route_batch(X, prompt_tokens=np.arange(40), tasks=[None] * 40)  # ints converted
    assert ok.shape == (40,)
