//! The exception hierarchy and the one function that maps [`pointsman::Error`] onto it.
//!
//! ```text
//! Exception
//! └── PointsmanError                          (also: the embedding backend failed)
//!     ├── ShapeError(ValueError)              wrong dimension or shape; another embedding model
//!     ├── ConfigError(ValueError)             a configuration value out of range, unknown key
//!     ├── InvalidInputError(ValueError)       NaN / all-zero embeddings, quality outside [0, 1]
//!     │   ├── BudgetError                     a budget below the first call's expected cost
//!     │   └── SessionError                    a cascade session used out of order or after its end
//!     ├── FormatError(ValueError)             a corrupt file, a newer format version
//!     ├── UnknownModelError(LookupError)      a model id or index not in the pool
//!     ├── UnsupportedError                    e.g. observe() on a router that does not learn
//!     ├── NumericError(ArithmeticError)       a router's numbers went wrong (non-finite estimate)
//!     ├── MissingLabelsError(ValueError)      evaluating on partial labels, fitting on too few
//!     ├── StoreError(ConnectionError)         a shared store (Redis) unreachable or refusing
//!     └── PolicyRefusal                       a decision-time policy refused the request
//!         ├── OutOfDistributionError          the guard found the query unlike the training data
//!         ├── BudgetExhaustedError            a budget's hard stop: nothing left to pay a model
//!         └── NoModelFitsError                rules, caps or capabilities leave no model
//! OSError (FileNotFoundError, PermissionError, ...)   reading or writing a file
//! TypeError                                           an argument of the wrong type
//! ```
//!
//! The classes are built once per interpreter with `type(name, bases, namespace)` so that they can
//! have two bases (a `ValueError` subclass is what Python code expects for a bad value).

use pointsman::{Error, ErrorKind};
use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyLookupError, PyOSError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// The exception classes, created on first use.
pub struct Exceptions {
    /// `PointsmanError`: the base of every error the engine reports.
    pub base: Py<PyType>,
    /// `ShapeError`.
    pub shape: Py<PyType>,
    /// `ConfigError`.
    pub config: Py<PyType>,
    /// `InvalidInputError`.
    pub invalid_input: Py<PyType>,
    /// `FormatError`.
    pub format: Py<PyType>,
    /// `UnknownModelError`.
    pub unknown_model: Py<PyType>,
    /// `UnsupportedError`.
    pub unsupported: Py<PyType>,
    /// `BudgetError`.
    pub budget: Py<PyType>,
    /// `SessionError`.
    pub session: Py<PyType>,
    /// `NumericError`.
    pub numeric: Py<PyType>,
    /// `MissingLabelsError`.
    pub missing_labels: Py<PyType>,
    /// `PolicyRefusal`.
    pub refusal: Py<PyType>,
    /// `OutOfDistributionError`.
    pub out_of_distribution: Py<PyType>,
    /// `BudgetExhaustedError`.
    pub budget_exhausted: Py<PyType>,
    /// `NoModelFitsError`.
    pub no_model_fits: Py<PyType>,
    /// `StoreError`.
    pub store: Py<PyType>,
}

static EXCEPTIONS: PyOnceLock<Exceptions> = PyOnceLock::new();

fn class(
    py: Python<'_>,
    name: &str,
    doc: &str,
    bases: &[Bound<'_, PyType>],
) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__module__", "pointsman")?;
    namespace.set_item("__doc__", doc)?;
    let bases = PyTuple::new(py, bases)?;
    Ok(py
        .get_type::<PyType>()
        .call1((name, bases, namespace))?
        .cast_into::<PyType>()?
        .unbind())
}

/// The exception classes of this interpreter.
pub fn exceptions(py: Python<'_>) -> PyResult<&Exceptions> {
    EXCEPTIONS.get_or_try_init(py, || {
        let base = class(
            py,
            "PointsmanError",
            "Base class of every error Pointsman reports (I/O errors are OSError).",
            &[py.get_type::<PyException>()],
        )?;
        let b = base.bind(py).clone();
        let value = py.get_type::<PyValueError>();
        let invalid_input = class(
            py,
            "InvalidInputError",
            "A value that cannot be used: a NaN or all-zero embedding, a quality outside [0, 1], an empty split.",
            &[b.clone(), value.clone()],
        )?;
        let invalid = invalid_input.bind(py).clone();
        let refusal = class(
            py,
            "PolicyRefusal",
            "A decision-time policy refused the request (docs/policies.md): never a silent pick.",
            std::slice::from_ref(&b),
        )?;
        let r = refusal.bind(py).clone();
        Ok(Exceptions {
            out_of_distribution: class(
                py,
                "OutOfDistributionError",
                "The policy's guard found the query unlike the training queries, and its action is to refuse.",
                std::slice::from_ref(&r),
            )?,
            budget_exhausted: class(
                py,
                "BudgetExhaustedError",
                "A budget's hard stop: what is left does not cover the expected cost of any allowed model.",
                std::slice::from_ref(&r),
            )?,
            no_model_fits: class(
                py,
                "NoModelFitsError",
                "The policy's rules, hard caps, required capabilities or context windows leave no model.",
                std::slice::from_ref(&r),
            )?,
            refusal,
            store: class(
                py,
                "StoreError",
                "A shared store (Redis) could not be reached or refused a command: shared learner state goes on locally; a shared budget refuses rather than risk passing its limit.",
                &[b.clone(), py.get_type::<pyo3::exceptions::PyConnectionError>()],
            )?,
            budget: class(
                py,
                "BudgetError",
                "A budget below the expected cost of the first call that could be made.",
                std::slice::from_ref(&invalid),
            )?,
            session: class(
                py,
                "SessionError",
                "A cascade session asked for what its state does not allow: an observation after it ended or of another model than it asked for, or an outcome before it decided.",
                &[invalid],
            )?,
            numeric: class(
                py,
                "NumericError",
                "A router's numbers went wrong (a non-finite estimate from finite inputs, a training run that diverged): a defect of the router or its saved state, not of the query.",
                &[b.clone(), py.get_type::<pyo3::exceptions::PyArithmeticError>()],
            )?,
            missing_labels: class(
                py,
                "MissingLabelsError",
                "The labels a step needs are not there: evaluating on a split without every model's score on every query, or fitting a kind that cannot learn from what the split has (docs/own-data.md).",
                &[b.clone(), value.clone()],
            )?,
            shape: class(
                py,
                "ShapeError",
                "An array of the wrong shape or dimension, or embeddings of another embedding model.",
                &[b.clone(), value.clone()],
            )?,
            config: class(
                py,
                "ConfigError",
                "A configuration value out of range, an unknown setting, or contradicting settings.",
                &[b.clone(), value.clone()],
            )?,
            invalid_input,
            format: class(
                py,
                "FormatError",
                "A file that is not in the expected format (a corrupt or newer saved router, a malformed dataset).",
                &[b.clone(), value],
            )?,
            unknown_model: class(
                py,
                "UnknownModelError",
                "A model id or index that is not in the router's (or the dataset's) pool.",
                &[b.clone(), py.get_type::<PyLookupError>()],
            )?,
            unsupported: class(
                py,
                "UnsupportedError",
                "An operation this router does not offer, such as observe() on a router that does not learn.",
                &[b],
            )?,
            base,
        })
    })
}

/// Maps an engine error to its Python exception. The only place that decides which exception an
/// error becomes.
pub fn to_py_err(e: Error) -> PyErr {
    Python::attach(|py| {
        let exc = match exceptions(py) {
            Ok(exc) => exc,
            Err(err) => return err,
        };
        let ty = match e.kind() {
            ErrorKind::Shape | ErrorKind::EmbeddingMismatch => &exc.shape,
            ErrorKind::Config => &exc.config,
            ErrorKind::InvalidInput | ErrorKind::InvalidFeatures => &exc.invalid_input,
            ErrorKind::Format | ErrorKind::UnsupportedVersion => &exc.format,
            ErrorKind::UnknownModel => &exc.unknown_model,
            ErrorKind::Unsupported => &exc.unsupported,
            ErrorKind::BudgetTooSmall => &exc.budget,
            ErrorKind::SessionFinished
            | ErrorKind::SessionOutOfOrder
            | ErrorKind::SessionRunning => &exc.session,
            ErrorKind::Numeric => &exc.numeric,
            ErrorKind::OutOfDistribution => &exc.out_of_distribution,
            ErrorKind::BudgetExhausted => &exc.budget_exhausted,
            ErrorKind::NoModelFits => &exc.no_model_fits,
            ErrorKind::MissingLabels => &exc.missing_labels,
            ErrorKind::Store => &exc.store,
            ErrorKind::Io => return io_error(py, e),
            ErrorKind::ModelNotFound => return PyFileNotFoundError::new_err(e.to_string()),
            // The embedding backend, and kinds added to the engine later.
            _ => &exc.base,
        };
        PyErr::from_type(ty.bind(py).clone(), e.to_string())
    })
}

/// An I/O error as Python's own `OSError(errno, strerror, filename)`, which picks the subclass
/// (`FileNotFoundError`, `PermissionError`, ...) from the error number.
fn io_error(py: Python<'_>, e: Error) -> PyErr {
    let Error::Io { path, source } = e else {
        return PyOSError::new_err(e.to_string());
    };
    let filename = path.display().to_string();
    match source.raw_os_error() {
        Some(code) => {
            let strerror = py
                .import("os")
                .and_then(|os| os.call_method1("strerror", (code,))?.extract::<String>())
                .unwrap_or_else(|_| source.to_string());
            PyOSError::new_err((code, strerror, filename))
        }
        None => {
            // No error number: keep the subclass pyo3 picks for the error's kind.
            let kind = PyErr::from(std::io::Error::new(source.kind(), String::new()));
            PyErr::from_type(kind.get_type(py), format!("{filename}: {source}"))
        }
    }
}

/// Shorthand: an engine result as a Python result.
pub trait IntoPyResult<T> {
    /// Maps the error with [`to_py_err`].
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for pointsman::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py_err)
    }
}

/// A `TypeError` about the argument `name`.
pub fn type_error(name: &str, expected: &str, got: &Bound<'_, PyAny>) -> PyErr {
    let got = got
        .get_type()
        .qualname()
        .map(|q| q.to_string())
        .unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!("{name} must be {expected}, not {got}"))
}

/// Raises what an engine error of `kind` (an `ErrorKind` name, e.g. `"Shape"`) becomes: lets the
/// tests check the mapping for the kinds no Python call can provoke yet (private).
#[pyfunction]
pub fn _raise_error_kind(kind: &str) -> PyResult<()> {
    let e = match kind {
        "Shape" => Error::DimensionMismatch {
            expected: 384,
            got: 3,
        },
        "InvalidFeatures" => Error::InvalidFeatures {
            row: 0,
            reason: "embedding is all zeros".into(),
        },
        "EmbeddingMismatch" => Error::EmbeddingMismatch {
            expected: "all-MiniLM-L6-v2".into(),
            got: "other".into(),
        },
        "UnknownModel" => Error::UnknownModel("nope".into()),
        "Config" => Error::Config("knn k must be at least 1".into()),
        "InvalidInput" => Error::InvalidInput("observed quality 2 outside [0, 1]".into()),
        "Format" => Error::format("router.safetensors", "truncated header"),
        "UnsupportedVersion" => Error::UnsupportedVersion {
            path: "router.safetensors".into(),
            found: "9".into(),
            supported: "1".into(),
        },
        "Unsupported" => Error::Unsupported("knn routers do not learn from feedback".into()),
        "ModelNotFound" => Error::ModelNotFound {
            path: "/models/all-MiniLM-L6-v2".into(),
            hint: "download it first".into(),
        },
        "Backend" => Error::Backend("out of memory".into()),
        "Numeric" => Error::Numeric("knn produced a non-finite estimate at position 3".into()),
        "BudgetTooSmall" => Error::BudgetTooSmall {
            budget: 1e-6,
            cost: 1e-4,
            model: "cheap".into(),
            role: "first model",
        },
        "SessionFinished" => Error::SessionFinished(" (answer of \"cheap\" used)".into()),
        "SessionOutOfOrder" => Error::SessionOutOfOrder {
            expected: 0,
            expected_id: "cheap".into(),
            got: 1,
            got_id: "big".into(),
        },
        "SessionRunning" => Error::SessionRunning("no answer has been observed yet".into()),
        "OutOfDistribution" => Error::OutOfDistribution {
            score: 3.5,
            threshold: 2.0,
        },
        "BudgetExhausted" => Error::BudgetExhausted {
            key: "tenant:acme".into(),
            spent: 10.0,
            limit: 10.0,
            cost: 1e-4,
        },
        "NoModelFits" => Error::NoModelFits("no allowed model meets the caps".into()),
        "MissingLabels" => Error::MissingLabels(
            "evaluation needs every model's score on the test split; 3 of 500 queries lack some"
                .into(),
        ),
        "Store" => Error::Store {
            store: "redis://127.0.0.1:6379/".into(),
            message: "connection refused".into(),
        },
        "Io" => Error::io("/nope/models.json", std::io::Error::from_raw_os_error(2)),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown error kind {other:?}"
            )))
        }
    };
    Err(to_py_err(e))
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let exc = exceptions(py)?;
    for ty in [
        &exc.base,
        &exc.shape,
        &exc.config,
        &exc.invalid_input,
        &exc.format,
        &exc.unknown_model,
        &exc.unsupported,
        &exc.budget,
        &exc.session,
        &exc.numeric,
        &exc.refusal,
        &exc.out_of_distribution,
        &exc.budget_exhausted,
        &exc.no_model_fits,
        &exc.missing_labels,
        &exc.store,
    ] {
        let ty = ty.bind(py);
        m.add(ty.name()?, ty)?;
    }
    Ok(())
}
