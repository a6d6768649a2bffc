//! NumPy in and out.
//!
//! In: a C-contiguous array of the wanted dtype (`float32` for embeddings, `float64` for scores,
//! costs and token counts) is read in place. Any other real numeric array — another float or
//! integer dtype, another byte order, a strided or Fortran-ordered view — and any nested sequence
//! of numbers is converted once with `numpy.ascontiguousarray`. Booleans, complex numbers,
//! strings and objects are refused with a `TypeError` naming the argument; a wrong number of
//! dimensions is a `ShapeError`.
//!
//! Out: results computed in Rust are moved into NumPy arrays without copying; arrays held by an
//! immutable Rust object (a dataset split) are handed out as read-only views of it.

use numpy::ndarray::{Array2, ArrayView, IxDyn};
use numpy::{
    dtype, Element, IntoPyArray, PyArray2, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods,
    PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pointsman::Error;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::errors::{to_py_err, type_error, IntoPyResult};

/// `obj` as a read-only, C-contiguous array of `T` with `ndim` dimensions, read in place when it
/// already is one, else converted once. `name` (the argument's name) and `layout` (e.g.
/// `"[rows, dim]"`) go into error messages.
pub fn array<'py, T: Element>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    ndim: usize,
    layout: &str,
) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    let py = obj.py();
    let expected = format!("a numeric array {layout}");
    let numpy = py.import("numpy")?;
    let arr = match obj.cast::<PyUntypedArray>() {
        Ok(arr) => arr.clone(),
        Err(_) => {
            // Bytes are not numbers (a bytearray was read as uint8, as bytes were refused); a
            // memoryview is read by its buffer's own type.
            if obj.is_instance_of::<PyString>()
                || obj.is_instance_of::<PyBytes>()
                || obj.is_instance_of::<pyo3::types::PyByteArray>()
            {
                return Err(type_error(name, &expected, obj));
            }
            numpy
                .call_method1("asarray", (obj,))
                .map_err(|e| {
                    PyTypeError::new_err(format!("{name} must be {expected}: {}", e.value(py)))
                })?
                .cast_into::<PyUntypedArray>()?
        }
    };
    let dt = arr.dtype();
    if !matches!(dt.kind(), b'f' | b'i' | b'u') {
        return Err(PyTypeError::new_err(format!(
            "{name} must be {expected}, not an array of dtype {dt}"
        )));
    }
    if arr.ndim() != ndim {
        return Err(to_py_err(Error::Shape(format!(
            "{name} must be a {ndim}-D array {layout}, got shape {:?}",
            arr.shape()
        ))));
    }
    let arr = if dt.is_equiv_to(&dtype::<T>(py)) && arr.is_c_contiguous() {
        arr
    } else {
        let kwargs = PyDict::new(py);
        kwargs.set_item("dtype", dtype::<T>(py))?;
        numpy
            .call_method("ascontiguousarray", (arr,), Some(&kwargs))?
            .cast_into::<PyUntypedArray>()?
    };
    Ok(arr.cast_into::<PyArrayDyn<T>>()?.readonly())
}

/// The values of an array returned by [`array`], row-major.
pub fn values<'a, T: Element>(arr: &'a PyReadonlyArrayDyn<'_, T>) -> PyResult<&'a [T]> {
    arr.as_slice()
        .map_err(|e| Error::Shape(format!("array is not contiguous: {e}")))
        .py()
}

/// A `[rows, cols]` array that takes ownership of `data` (no copy).
pub fn matrix<T: Element>(
    py: Python<'_>,
    data: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'_, PyArray2<T>>> {
    let arr = Array2::from_shape_vec((rows, cols), data)
        .map_err(|e| Error::Shape(format!("{rows} x {cols} result: {e}")))
        .py()?;
    Ok(arr.into_pyarray(py))
}

/// A read-only NumPy view of `data` with the given shape, kept alive by `owner` (no copy).
///
/// # Safety
///
/// `data` must be memory that `owner` keeps alive, unmoved and unmodified for as long as `owner`
/// lives (for example a buffer of an immutable value behind an `Arc` the Python object holds).
pub unsafe fn view<'py, T: Element>(
    owner: &Bound<'py, PyAny>,
    data: &[T],
    shape: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let view = ArrayView::from_shape(IxDyn(shape), data)
        .map_err(|e| Error::Shape(format!("{shape:?} view of {} values: {e}", data.len())))
        .py()?;
    // SAFETY: the caller guarantees that `owner` keeps `data` alive and unmoved; the array holds
    // a reference to `owner`, and is made read-only so that Python cannot write into it.
    let arr = unsafe { PyArrayDyn::borrow_from_array(&view, owner.clone()) };
    arr.try_readwrite()
        .map_err(|e| Error::Shape(format!("cannot make a view read-only: {e}")))
        .py()?
        .make_nonwriteable();
    Ok(arr)
}
