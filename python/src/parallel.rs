//! Where heavy work runs: without the GIL, on a rayon pool owned by this module.
//!
//! rayon's global pool does not survive `fork()`: the child inherits the pool's bookkeeping but
//! not its threads, so the first parallel call in a child of a process that had used the pool
//! would wait forever. The module therefore owns its pool and keys it by process id: a call in a
//! forked child finds a pool of another process and builds a fresh one (the parent's pool is
//! left alone — its threads do not exist in the child, and its memory is the parent's). No lock
//! is involved, so a fork that happens while another thread is inside `pool()` cannot leave a
//! lock held in the child.
//!
//! The pool has as many threads as rayon's default (`RAYON_NUM_THREADS`, else the number of
//! logical CPUs).

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

use crate::errors::IntoPyResult;

struct ProcessPool {
    pid: u32,
    pool: rayon::ThreadPool,
}

/// The pool of the current process. Pools are never freed: at most one per process (a fork's
/// child leaks nothing of its own — the parent's pool is memory the child inherited).
static POOL: AtomicPtr<ProcessPool> = AtomicPtr::new(ptr::null_mut());

fn pool() -> Result<&'static rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    let pid = std::process::id();
    let current = POOL.load(Ordering::Acquire);
    // SAFETY: every non-null pointer stored in POOL comes from `Box::into_raw` and is never freed.
    if let Some(p) = unsafe { current.as_ref() } {
        if p.pid == pid {
            return Ok(&p.pool);
        }
    }
    let built = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("pointsman-{i}"))
        .build()?;
    let fresh = Box::into_raw(Box::new(ProcessPool { pid, pool: built }));
    match POOL.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: `fresh` was just stored and is never freed.
        Ok(_) => Ok(unsafe { &(*fresh).pool }),
        Err(winner) => {
            // Another thread of this process installed a pool first: use it, drop ours.
            // SAFETY: `fresh` was never shared; `winner` is non-null (it differs from `current`,
            // and only non-null pointers are stored) and never freed.
            unsafe {
                drop(Box::from_raw(fresh));
                Ok(&(*winner).pool)
            }
        }
    }
}

/// Runs `f` with the GIL released, on the module's pool, and maps its error: the one way heavy
/// work is done.
pub fn run<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> pointsman::Result<T> + Send,
{
    match py.detach(|| pool().map(|p| p.install(f))) {
        Ok(result) => result.py(),
        // The operating system refused the threads: a resource error, not the engine's.
        Err(e) => Err(PyOSError::new_err(format!(
            "cannot start pointsman's thread pool: {e}"
        ))),
    }
}

/// Runs `f` with the GIL released on the calling thread, and maps its error: for the work of
/// one query (a decision, an observation, a cascade step, an embedding), which uses no thread
/// pool. Handing such work to the pool and waiting for it costs two thread wake-ups — about
/// 20 µs on a busy machine, ten times a matrix-factorisation decision.
///
/// `f` must not start rayon work: from a thread outside the module's pool, rayon would use its
/// global pool, which does not survive `fork()`. The engine's single-query paths run
/// sequentially (tested by `tests/test_threads.py`, which routes in a forked child); the
/// embedder uses its own threads.
pub fn run_here<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> pointsman::Result<T> + Send,
{
    py.detach(f).py()
}

/// Number of threads of the module's pool (in this process).
#[pyfunction]
pub fn num_threads(py: Python<'_>) -> PyResult<usize> {
    run(py, || Ok(rayon::current_num_threads()))
}
