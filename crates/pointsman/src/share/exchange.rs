//! [`Exchange`]: a replica synchronised with its store on a background thread, every
//! `interval_ms`.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::replica::{Replica, ShareConfig, ShareStats};
use super::store::Store;
use crate::error::{Error, Result};
use crate::registry::AnyLearner;

struct Inner {
    replica: Mutex<(Replica, Box<dyn Store>)>,
    /// The statistics as of the last synchronisation: what [`Exchange::stats`] returns while a
    /// synchronisation holds the replica (a slow or silent store can hold it for its timeout).
    last_stats: Mutex<ShareStats>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// A learner shared with the other replicas of a namespace: a [`Replica`] and its [`Store`],
/// synchronised every `interval_ms` on a background thread (and on demand with
/// [`Exchange::sync`]). The application goes on routing and observing with its own handles on
/// the learner. Dropping it (or [`Exchange::stop`]) stops the thread after a last
/// synchronisation.
///
/// # Example
///
/// ```
/// use pointsman::share::{Exchange, MemoryStore, ShareConfig};
/// use pointsman::routers::bandit::{KnnUcbConfig, KnnUcbRouter};
/// use pointsman::{AnyLearner, Feedback, Learner, ModelCard, ModelPool, QueryFeatures};
/// let pool = ModelPool::new(vec![ModelCard::new("a", 0.1, 0.1), ModelCard::new("b", 1.0, 1.0)])?;
/// let base = KnnUcbRouter::new(pool, 2, None, KnnUcbConfig::default())?;
/// let store = MemoryStore::new("demo")?;
/// let config = ShareConfig { namespace: "demo".into(), ..Default::default() };
/// // Two replicas of one router, each with its own state, sharing through the store.
/// let (one, two) = (AnyLearner::from(base.snapshot()), AnyLearner::from(base.snapshot()));
/// let a = Exchange::start(&one, Box::new(store.clone()), ShareConfig { replica: "a".into(), ..config.clone() })?;
/// let b = Exchange::start(&two, Box::new(store.clone()), ShareConfig { replica: "b".into(), ..config })?;
/// let q = QueryFeatures::new(vec![1.0, 0.0])?;
/// one.observe(&Feedback { features: &q, model: 1, quality: 1.0, cost: 1e-4 })?;
/// a.sync()?; // publishes a's observation
/// b.sync()?; // applies it
/// assert_eq!(two.observations(), 1);
/// # Ok::<(), pointsman::Error>(())
/// ```
pub struct Exchange {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
    learner: AnyLearner,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("learner", &self.learner.kind())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Exchange {
    /// Starts sharing `learner` (a handle on the state the application uses) through `store`.
    /// The first synchronisation runs on the background thread: a store that is unreachable at
    /// start does not stop the application, which learns locally until it is reachable.
    ///
    /// # Errors
    ///
    /// As [`Replica::new`].
    pub fn start(
        learner: &AnyLearner,
        store: Box<dyn Store>,
        config: ShareConfig,
    ) -> Result<Exchange> {
        let replica = Replica::new(learner, config)?;
        let interval = Duration::from_millis(replica.config().interval_ms);
        let inner = Arc::new(Inner {
            last_stats: Mutex::new(replica.stats()),
            replica: Mutex::new((replica, store)),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let worker = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("pointsman-share".into())
            .spawn(move || run(&worker, interval))
            .map_err(|e| crate::error::Error::Store {
                store: "exchange".into(),
                message: format!("cannot start the exchange thread: {e}"),
            })?;
        Ok(Exchange {
            inner,
            thread: Some(thread),
            learner: learner.clone(),
        })
    }

    /// The shared learner.
    pub fn learner(&self) -> &AnyLearner {
        &self.learner
    }

    /// Synchronises now (on the calling thread).
    ///
    /// # Errors
    ///
    /// As [`Replica::sync`].
    pub fn sync(&self) -> Result<()> {
        let mut guard = lock(&self.inner.replica);
        let (replica, store) = &mut *guard;
        let result = replica.sync(store.as_mut());
        *lock(&self.inner.last_stats) = replica.stats();
        result
    }

    /// The counters. Never waits for a synchronisation in progress (a health check must not
    /// hang on a silent store): then they are as of the last one that finished.
    pub fn stats(&self) -> ShareStats {
        match self.inner.replica.try_lock() {
            Ok(guard) => guard.0.stats(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().0.stats(),
            Err(std::sync::TryLockError::WouldBlock) => lock(&self.inner.last_stats).clone(),
        }
    }

    /// Runs `f` on the replica (its clock, totals, settings).
    pub fn with_replica<T>(&self, f: impl FnOnce(&Replica) -> T) -> T {
        f(&lock(&self.inner.replica).0)
    }

    /// Stops the background thread after a last synchronisation (whose error, when the store
    /// is unreachable, is returned: what was not published is lost with this replica).
    ///
    /// # Errors
    ///
    /// As [`Replica::sync`].
    pub fn stop(mut self) -> Result<()> {
        self.halt();
        self.sync().map_err(|e| match e {
            Error::Store { store, message } => match self.stats().unpublished {
                0 => Error::Store { store, message },
                lost => Error::Store {
                    store,
                    message: format!(
                        "{message} (the last synchronisation at stop: {lost} increment(s) of \
                         this replica's observations were never published, and stay only in \
                         this process's learner: save it to keep them)"
                    ),
                },
            },
            other => other,
        })
    }

    fn halt(&mut self) {
        *lock(&self.inner.stop) = true;
        self.inner.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.halt();
            let _ = self.sync();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn run(inner: &Inner, interval: Duration) {
    let mut next = Instant::now();
    // Whether the last synchronisation failed: the first failure of a streak is a warning (the
    // replica learns alone until the store is back), the rest are debug lines, and the
    // recovery is said once.
    let mut failing = false;
    loop {
        {
            let mut stop = lock(&inner.stop);
            loop {
                if *stop {
                    return;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                stop = inner
                    .wake
                    .wait_timeout(stop, next - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        {
            let mut guard = lock(&inner.replica);
            let (replica, store) = &mut *guard;
            match replica.sync(store.as_mut()) {
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(
                        error = %e,
                        "share: synchronisation failed; this replica learns locally and catches \
                         up when the store is back (ShareStats.failures counts the attempts)"
                    );
                }
                Err(e) => {
                    tracing::debug!(error = %e, "share: synchronisation failed again");
                }
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("share: the store is reachable again; synchronising");
                }
                Ok(_) => {}
            }
            *lock(&inner.last_stats) = replica.stats();
        }
        next += interval;
        let now = Instant::now();
        if next < now {
            next = now;
        }
    }
}
