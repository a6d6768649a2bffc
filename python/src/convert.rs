//! Plain Python values to and from the engine's serde types (configs, reports), through JSON: a
//! config given as keyword arguments is exactly the JSON object `pointsman train --config` takes.

use pointsman::Error;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::BoundObject;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::errors::IntoPyResult;

/// `json.dumps` fallback: NumPy scalars and arrays become plain numbers and lists.
#[pyfunction]
pub fn _json_default(obj: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    for method in ["item", "tolist"] {
        if obj.hasattr(method)? {
            return Ok(obj.call_method0(method)?.unbind());
        }
    }
    Err(PyTypeError::new_err(format!(
        "a setting of type {} is not a number, string, bool, list or dict",
        obj.get_type().qualname()?
    )))
}

/// `value` (a dict of plain values, NumPy scalars and arrays included) as JSON. A value JSON
/// cannot hold (NaN, infinity) is a `ConfigError` naming `what`; an object that is not a plain
/// value a `TypeError`.
pub(crate) fn dumps(value: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let py = value.py();
    let dumps_kwargs = PyDict::new(py);
    dumps_kwargs.set_item("default", pyo3::wrap_pyfunction!(_json_default, py)?)?;
    dumps_kwargs.set_item("allow_nan", false)?;
    py.import("json")?
        .call_method("dumps", (value,), Some(&dumps_kwargs))
        .map_err(|e| {
            if e.is_instance_of::<pyo3::exceptions::PyValueError>(py) {
                crate::errors::to_py_err(Error::Config(format!("{what}: {}", e.value(py))))
            } else {
                e
            }
        })?
        .extract()
}

/// A config struct from keyword arguments (fields not given keep their defaults). `what` names
/// the config in errors (`"knn config"`).
pub fn from_kwargs<T: DeserializeOwned>(
    _py: Python<'_>,
    kwargs: Option<&Bound<'_, PyDict>>,
    what: &str,
) -> PyResult<T> {
    let json: String = match kwargs {
        None => "{}".into(),
        Some(kwargs) => dumps(kwargs.as_any(), what)?,
    };
    serde_json::from_str(&json)
        .map_err(|e| Error::Config(format!("{what}: {e}")))
        .py()
}

/// A config from keyword arguments over `base`: fields given replace the base's.
pub(crate) fn config_over<T: Serialize + DeserializeOwned>(
    py: Python<'_>,
    base: T,
    kwargs: Option<&Bound<'_, PyDict>>,
    what: &str,
) -> PyResult<T> {
    let given: serde_json::Value = from_kwargs(py, kwargs, what)?;
    let mut value = serde_json::to_value(base)
        .map_err(|e| Error::Config(format!("{what}: {e}")))
        .py()?;
    if let (Some(v), Some(g)) = (value.as_object_mut(), given.as_object()) {
        for (k, x) in g {
            v.insert(k.clone(), x.clone());
        }
    }
    serde_json::from_value(value)
        .map_err(|e| Error::Config(format!("{what}: {e}")))
        .py()
}

/// A router kind's config from keyword arguments: fields not given keep the kind's defaults (as
/// `pointsman train --router <kind> --config` takes them; see `RouterConfig::parse`).
pub fn router_config(
    py: Python<'_>,
    kind: pointsman::RouterKind,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<pointsman::RouterConfig> {
    let what = format!("{kind} config");
    let given: serde_json::Value = from_kwargs(py, kwargs, &what)?;
    pointsman::RouterConfig::parse(kind, &given.to_string(), 0).py()
}

/// A serde value as plain Python objects (dicts, lists, numbers, strings, None).
pub fn to_python<T: Serialize>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    let json = serde_json::to_string(value)
        .map_err(|e| Error::Backend(format!("cannot serialise a result: {e}")))
        .py()?;
    Ok(py.import("json")?.call_method1("loads", (json,))?.unbind())
}

/// Python's `repr()` of a Rust value, for `__repr__` methods.
pub fn repr<'py, T: IntoPyObject<'py>>(py: Python<'py>, value: T) -> PyResult<String> {
    let obj = value.into_pyobject(py).map_err(Into::into)?;
    Ok(obj.into_bound().into_any().repr()?.to_string())
}
