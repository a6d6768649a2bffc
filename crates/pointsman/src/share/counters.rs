//! Shared deployment state: additive counters with idempotent increments and a checked limit
//! (tenant budgets' spend, rate limits), and last-writer-wins entries with a time to live
//! (sticky sessions). The decision policies hold an `Arc<dyn SharedCounters>` and an
//! `Arc<dyn SharedEntries>`: [`MemoryCounters`] and [`MemoryEntries`] in one process,
//! [`super::redis::RedisCounters`] and [`super::redis::RedisEntries`] across replicas.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The outcome of [`SharedCounters::add_within`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Spend {
    /// Added: the counter's value afterwards.
    Added(f64),
    /// Refused: adding would pass the limit; the counter's value, unchanged.
    Refused(f64),
    /// This increment id was applied before (a retry): the counter's value, unchanged.
    Duplicate(f64),
}

/// Counters that several replicas add to. Every increment carries an id (a request id, a
/// feedback id): applying the same id twice counts once, for `dedupe_ms` after the first.
pub trait SharedCounters: Send + Sync + std::fmt::Debug {
    /// Adds `amount` to counter `key` unless increment `id` was added before; returns the value
    /// afterwards.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a non-finite amount; [`Error::Store`].
    fn add(&self, key: &str, id: &str, amount: f64) -> Result<f64>;

    /// Adds `amount` to counter `key` only if the result stays at or below `limit`, in one
    /// atomic step: replicas that share a budget never spend more than it in total.
    ///
    /// # Errors
    ///
    /// As [`SharedCounters::add`].
    fn add_within(&self, key: &str, id: &str, amount: f64, limit: f64) -> Result<Spend>;

    /// The counter's value (0 when it was never added to).
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    fn get(&self, key: &str) -> Result<f64>;

    /// The values of several counters (0 for those never added to), in one round trip where
    /// the store allows it.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    fn get_many(&self, keys: &[String]) -> Result<Vec<f64>> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Lets counter `key` expire `ttl_ms` from now (a time bucket no window reads any more).
    /// Counters in one process are small and kept: the default does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    fn expire(&self, key: &str, ttl_ms: u64) -> Result<()> {
        let _ = (key, ttl_ms);
        Ok(())
    }
}

/// Entries that several replicas write, the latest version winning, each kept for a time to
/// live after its last write.
pub trait SharedEntries: Send + Sync + std::fmt::Debug {
    /// Writes `value` under `key` with `version` (the writer's clock, milliseconds since the
    /// Unix epoch, or any number that grows) unless a newer version is stored; returns whether
    /// it was written. The entry expires `ttl_ms` after this write.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a zero `ttl_ms`; [`Error::Store`].
    fn put(&self, key: &str, value: &[u8], version: u64, ttl_ms: u64) -> Result<bool>;

    /// The entry's value and version, when it exists and has not expired.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>>;
}

pub(super) fn check_amount(amount: f64) -> Result<()> {
    if amount.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "counter increment {amount} is not a finite number"
        )))
    }
}

#[derive(Debug, Default)]
struct CounterState {
    values: HashMap<String, f64>,
    seen: HashMap<(String, String), Instant>,
}

/// Counters in this process (the same semantics as the Redis ones).
#[derive(Debug)]
pub struct MemoryCounters {
    state: Mutex<CounterState>,
    dedupe: Duration,
}

impl MemoryCounters {
    /// Counters that remember an increment id for `dedupe_ms`.
    pub fn new(dedupe_ms: u64) -> MemoryCounters {
        MemoryCounters {
            state: Mutex::default(),
            dedupe: Duration::from_millis(dedupe_ms),
        }
    }

    fn step(&self, key: &str, id: &str, amount: f64, limit: Option<f64>) -> Result<Spend> {
        check_amount(amount)?;
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        s.seen.retain(|_, t| *t > now);
        let value = s.values.get(key).copied().unwrap_or(0.0);
        let mark = (key.to_string(), id.to_string());
        if s.seen.contains_key(&mark) {
            return Ok(Spend::Duplicate(value));
        }
        if limit.is_some_and(|l| value + amount > l) {
            return Ok(Spend::Refused(value));
        }
        s.seen.insert(mark, now + self.dedupe);
        s.values.insert(key.to_string(), value + amount);
        Ok(Spend::Added(value + amount))
    }
}

impl SharedCounters for MemoryCounters {
    fn add(&self, key: &str, id: &str, amount: f64) -> Result<f64> {
        Ok(match self.step(key, id, amount, None)? {
            Spend::Added(v) | Spend::Refused(v) | Spend::Duplicate(v) => v,
        })
    }

    fn add_within(&self, key: &str, id: &str, amount: f64, limit: f64) -> Result<Spend> {
        self.step(key, id, amount, Some(limit))
    }

    fn get(&self, key: &str) -> Result<f64> {
        let s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(s.values.get(key).copied().unwrap_or(0.0))
    }
}

/// An entry's value, version and expiry.
type Entry = (Vec<u8>, u64, Instant);

/// Entries in this process (the same semantics as the Redis ones).
#[derive(Debug, Default)]
pub struct MemoryEntries {
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryEntries {
    /// No entries.
    pub fn new() -> MemoryEntries {
        MemoryEntries::default()
    }
}

pub(super) fn check_ttl(ttl_ms: u64) -> Result<()> {
    if ttl_ms == 0 {
        return Err(Error::InvalidInput(
            "an entry's time to live must be at least 1 ms".into(),
        ));
    }
    Ok(())
}

impl SharedEntries for MemoryEntries {
    fn put(&self, key: &str, value: &[u8], version: u64, ttl_ms: u64) -> Result<bool> {
        check_ttl(ttl_ms)?;
        let mut e = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if let Some((_, v, until)) = e.get(key) {
            if *until > now && *v > version {
                return Ok(false);
            }
        }
        e.insert(
            key.to_string(),
            (value.to_vec(), version, now + Duration::from_millis(ttl_ms)),
        );
        Ok(true)
    }

    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        let e = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(e.get(key)
            .filter(|(_, _, until)| *until > Instant::now())
            .map(|(v, ver, _)| (v.clone(), *ver)))
    }
}
