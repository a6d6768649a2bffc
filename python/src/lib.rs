//! `pointsman._native`: the Python bindings of the Pointsman engine.
//!
//! Thin by design: argument conversion (NumPy in and out), error mapping (one function,
//! [`errors::to_py_err`]) and running work without the GIL: batches and fits on a fork-safe pool
//! ([`parallel::run`]), single queries on the calling thread ([`parallel::run_here`]). Every
//! decision is made by the `pointsman` crate.
//!
//! Classes: [`router::PyRouter`] wraps any `Arc<dyn pointsman::Router>` and carries every router
//! method; each router kind is a subclass that only adds its constructors ([`routers`]), and
//! [`router::wrap`] picks the subclass for a router's kind.

mod arrays;
mod bandits;
mod cascade;
mod convert;
mod data;
mod diagnostics;
mod embedder;
mod errors;
mod eval;
mod own_data;
mod parallel;
mod policy;
mod router;
mod routers;
mod share;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    diagnostics::install();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "DEFAULT_EMBEDDING_MODEL",
        pointsman::DEFAULT_EMBEDDING_MODEL,
    )?;
    errors::register(m)?;
    m.add_class::<data::PyDataset>()?;
    m.add_class::<data::PySplit>()?;
    m.add_class::<embedder::PyEmbedder>()?;
    m.add_class::<router::PyRouter>()?;
    m.add_class::<router::Decision>()?;
    m.add_class::<router::Alternative>()?;
    m.add_class::<policy::PyPolicy>()?;
    m.add_class::<policy::PyEpisode>()?;
    m.add_class::<routers::PyKnnRouter>()?;
    m.add_class::<routers::PyMfRouter>()?;
    m.add_class::<routers::PyBaselineRouter>()?;
    m.add_class::<bandits::PyBanditRouter>()?;
    m.add_class::<bandits::PyLinUcbRouter>()?;
    m.add_class::<bandits::PyThompsonRouter>()?;
    m.add_class::<bandits::PyKnnUcbRouter>()?;
    m.add_class::<bandits::PyClusterUcbRouter>()?;
    m.add_class::<cascade::PyCascadeRouter>()?;
    m.add_class::<cascade::PyCascadeSession>()?;
    m.add_class::<cascade::NextCall>()?;
    m.add_class::<cascade::Invocation>()?;
    m.add_class::<cascade::CascadeOutcome>()?;
    m.add_class::<cascade::CascadeStep>()?;
    m.add_function(wrap_pyfunction!(cascade::simulated_confidences, m)?)?;
    m.add_function(wrap_pyfunction!(router::load_router, m)?)?;
    m.add_function(wrap_pyfunction!(routers::train, m)?)?;
    m.add_function(wrap_pyfunction!(router::router_from_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(eval::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(own_data::import_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(parallel::num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(errors::_raise_error_kind, m)?)?;
    m.add_class::<share::PyExchange>()?;
    m.add_function(wrap_pyfunction!(share::share_through_redis, m)?)?;
    Ok(())
}
