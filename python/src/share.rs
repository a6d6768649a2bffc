//! Sharing a learner's state between processes through Redis: [`share_through_redis`] starts
//! the engine's exchange (`pointsman::share::Exchange`, a background thread) on a learner and
//! returns it as an `Exchange` object (`stats`, `sync`, `stop`). docs/scale-out.md.

use std::sync::Mutex;

use pointsman::share::{Exchange, ShareConfig};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors::IntoPyResult;
use crate::router::PyRouter;

/// The background exchange of one learner's state with the other replicas (through Redis).
/// Stopped by `stop()` (after a last synchronisation) or when garbage-collected.
#[pyclass(name = "Exchange", module = "pointsman", frozen)]
pub struct PyExchange {
    inner: Mutex<Option<Exchange>>,
}

impl std::fmt::Debug for PyExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").finish_non_exhaustive()
    }
}

impl PyExchange {
    /// Runs `f` on the exchange with the GIL released *before* its lock is taken: a thread
    /// that holds the lock (a `sync` in progress) never waits for the GIL while another waits
    /// for the lock with the GIL held — the deadlock of two threads calling `sync` and `stats`.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Exchange) -> pointsman::Result<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let guard = self
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.as_ref().map(f)
        })
        .ok_or_else(|| PyRuntimeError::new_err("the exchange was stopped"))?
        .py()
    }
}

#[pymethods]
impl PyExchange {
    /// This replica's counters (`ShareStats` as a dict: `syncs`, `failures`, `published`,
    /// `published_bytes`, `published_observations`, `applied`, `applied_observations`,
    /// `duplicates`, `rejected`, `dropped_observations`, `last_staleness_ms`, ...).
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let stats = self.with(py, |e| Ok(e.stats()))?;
        let text = serde_json::to_string(&stats)
            .map_err(|e| PyRuntimeError::new_err(format!("share stats: {e}")))?;
        Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
    }

    /// Runs one synchronisation now (publish this replica's increment, apply the others'),
    /// without the GIL.
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, Exchange::sync)
    }

    /// Stops the background thread after a last synchronisation. Calling it twice does nothing.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        // The lock is taken without the GIL, as in `with`.
        py.detach(|| {
            let taken = self
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            taken.map_or(Ok(()), Exchange::stop)
        })
        .py()
    }

    /// Whether `stop()` was called.
    #[getter]
    fn stopped(&self, py: Python<'_>) -> bool {
        py.detach(|| {
            self.inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_none()
        })
    }
}

/// Starts sharing `router`'s learner state with the other replicas through the Redis at `url`:
/// every `interval_ms` a background thread publishes this replica's observations and applies
/// everyone else's. Start every replica from one saved router.
#[pyfunction]
#[pyo3(signature = (router, url, *, interval_ms = 100, namespace = String::new(), replica = String::new(), max_buffer_bytes = 64 << 20, compact_every = 1000, read_batch = 10_000))]
#[allow(clippy::too_many_arguments)]
pub fn share_through_redis(
    py: Python<'_>,
    router: PyRef<'_, PyRouter>,
    url: &str,
    interval_ms: u64,
    namespace: String,
    replica: String,
    max_buffer_bytes: usize,
    compact_every: u64,
    read_batch: usize,
) -> PyResult<PyExchange> {
    let learner = router.inner.as_learner().cloned().ok_or_else(|| {
        crate::errors::to_py_err(pointsman::Error::Unsupported(format!(
            "{} routers do not learn: nothing to share",
            router.inner.kind()
        )))
    })?;
    let config = ShareConfig {
        namespace,
        replica,
        interval_ms,
        max_buffer_bytes,
        compact_every,
        read_batch,
    };
    let url = url.to_string();
    let exchange = py
        .detach(|| pointsman::share::share_through_redis(&learner, &url, config))
        .py()?;
    Ok(PyExchange {
        inner: Mutex::new(Some(exchange)),
    })
}
