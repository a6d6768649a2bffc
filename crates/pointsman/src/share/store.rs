//! The shared store the exchange runs on: the operations it needs ([`Store`]), the keys of a
//! namespace ([`Keys`]), and an in-process store for tests and single-host use
//! ([`MemoryStore`]). The Redis store is [`super::redis::RedisStore`] (feature `redis`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// The version of the key layout, part of every key.
pub const KEY_VERSION: u32 = 1;

/// The keys of one namespace: `pointsman:v1:<namespace>:<what>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The namespace (one per shared router).
    pub namespace: String,
}

impl Keys {
    /// The keys of `namespace`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty namespace or one with characters other than ASCII
    /// letters, digits, `-`, `_` and `.`.
    pub fn new(namespace: &str) -> Result<Keys> {
        let ok = !namespace.is_empty()
            && namespace.len() <= 200
            && namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            return Err(Error::Config(format!(
                "shared namespace {namespace:?}: use 1 to 200 ASCII letters, digits, '-', '_' \
                 or '.'"
            )));
        }
        Ok(Keys {
            namespace: namespace.to_string(),
        })
    }

    /// The key `pointsman:v1:<namespace>:<what>`.
    pub fn key(&self, what: &str) -> String {
        format!("pointsman:v{KEY_VERSION}:{}:{what}", self.namespace)
    }
}

/// What one poll of the store returns: the namespace's epoch (none when the namespace is empty:
/// new, or the store lost its data), the snapshot's meta (JSON), the log's length, and the log
/// entries after the cursor (position, bytes).
#[derive(Debug, Clone, Default)]
pub struct Poll {
    /// The epoch.
    pub epoch: Option<u64>,
    /// The snapshot's [`super::SnapshotMeta`] as JSON.
    pub meta: Option<Vec<u8>>,
    /// Entries in the log.
    pub log_len: u64,
    /// Entries after the cursor, oldest first.
    pub entries: Vec<(String, Vec<u8>)>,
}

/// The operations the exchange needs from a shared store. Every call is one round trip; a
/// failure is an [`Error::Store`] and the exchange retries at its next interval.
pub trait Store: Send {
    /// The store's address, for messages (no password).
    fn name(&self) -> String;

    /// The epoch, the snapshot meta, the log length and up to `max` log entries after `cursor`.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    fn poll(&mut self, cursor: &str, max: usize) -> Result<Poll>;

    /// Seeds an empty namespace, atomically: when it has no epoch, sets `epoch`, the snapshot
    /// and its meta. Returns the epoch in force afterwards (`epoch` when this call seeded it).
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    fn seed(&mut self, epoch: u64, snapshot: &[u8], meta: &[u8]) -> Result<u64>;

    /// Appends `entries` to the log, atomically and only while the namespace's epoch is
    /// `epoch`; returns whether they were appended.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    fn append(&mut self, epoch: u64, entries: &[Vec<u8>]) -> Result<bool>;

    /// The snapshot.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>>;

    /// Claims the next compaction for `replica` for `ttl_ms` (a lease, so that replicas do not
    /// all compact at once); returns whether this replica holds it.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    fn claim(&mut self, replica: &str, ttl_ms: u64) -> Result<bool>;

    /// Replaces the snapshot with one covering the log through `cursor` and trims the log
    /// through it, atomically, when the epoch is `epoch` and `cursor` is past the current
    /// snapshot's; returns whether it did.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    fn compact(&mut self, epoch: u64, snapshot: &[u8], meta: &[u8], cursor: &str) -> Result<bool>;
}

/// A stream position `<milliseconds>-<sequence>` as two numbers (`None` when malformed).
pub fn parse_position(id: &str) -> Option<(u64, u64)> {
    let (a, b) = id.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Whether position `a` comes after `b` (malformed positions come before every other).
pub fn after(a: &str, b: &str) -> bool {
    parse_position(a) > parse_position(b)
}

/// The start of a log: before every entry.
pub const START: &str = "0-0";

#[derive(Debug, Default)]
struct Namespace {
    epoch: Option<u64>,
    snapshot: Option<Vec<u8>>,
    meta: Option<Vec<u8>>,
    cursor: String,
    log: VecDeque<(u64, Vec<u8>)>,
    next: u64,
    claim: Option<(String, std::time::Instant)>,
}

/// An in-process store: the same semantics as the Redis store, for tests and for replicas that
/// are threads of one process. Clones share the data; [`MemoryStore::wipe`] loses it, as a
/// Redis that restarts empty does.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    data: Arc<Mutex<BTreeMap<String, Namespace>>>,
    keys: Option<Keys>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl MemoryStore {
    /// An empty store, for `namespace`.
    ///
    /// # Errors
    ///
    /// As [`Keys::new`].
    pub fn new(namespace: &str) -> Result<MemoryStore> {
        Ok(MemoryStore {
            keys: Some(Keys::new(namespace)?),
            ..Default::default()
        })
    }

    /// Loses every namespace's data.
    pub fn wipe(&self) {
        self.lock().clear();
    }

    /// Makes every call fail (`true`) as an unreachable store does, or work again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Appends raw bytes to the log, as a foreign writer (or a duplicated delivery) would.
    pub fn inject(&self, bytes: Vec<u8>) {
        let mut data = self.lock();
        let ns = data.entry(self.namespace()).or_default();
        ns.next += 1;
        let id = ns.next;
        ns.log.push_back((id, bytes));
    }

    /// The log entries' bytes, oldest first.
    pub fn log(&self) -> Vec<Vec<u8>> {
        let mut data = self.lock();
        let ns = data.entry(self.namespace()).or_default();
        ns.log.iter().map(|(_, b)| b.clone()).collect()
    }

    fn namespace(&self) -> String {
        self.keys
            .as_ref()
            .map_or_else(String::new, |k| k.namespace.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Namespace>> {
        self.data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Namespace) -> T) -> Result<T> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Store {
                store: self.name(),
                message: "unreachable (set down by a test)".into(),
            });
        }
        let mut data = self.lock();
        Ok(f(data.entry(self.namespace()).or_default()))
    }
}

fn position(id: u64) -> String {
    format!("0-{id}")
}

impl Store for MemoryStore {
    fn name(&self) -> String {
        format!("memory:{}", self.namespace())
    }

    fn poll(&mut self, cursor: &str, max: usize) -> Result<Poll> {
        let after_id = parse_position(cursor).map_or(0, |(_, b)| b);
        self.with(|ns| Poll {
            epoch: ns.epoch,
            meta: ns.meta.clone(),
            log_len: ns.log.len() as u64,
            entries: ns
                .log
                .iter()
                .filter(|(id, _)| *id > after_id)
                .take(max)
                .map(|(id, b)| (position(*id), b.clone()))
                .collect(),
        })
    }

    fn seed(&mut self, epoch: u64, snapshot: &[u8], meta: &[u8]) -> Result<u64> {
        self.with(|ns| match ns.epoch {
            Some(e) => e,
            None => {
                ns.epoch = Some(epoch);
                ns.snapshot = Some(snapshot.to_vec());
                ns.meta = Some(meta.to_vec());
                ns.cursor = START.to_string();
                epoch
            }
        })
    }

    fn append(&mut self, epoch: u64, entries: &[Vec<u8>]) -> Result<bool> {
        self.with(|ns| {
            if ns.epoch != Some(epoch) {
                return false;
            }
            for e in entries {
                ns.next += 1;
                let id = ns.next;
                ns.log.push_back((id, e.clone()));
            }
            true
        })
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        self.with(|ns| ns.snapshot.clone())
    }

    fn claim(&mut self, replica: &str, ttl_ms: u64) -> Result<bool> {
        self.with(|ns| {
            let now = std::time::Instant::now();
            match &ns.claim {
                Some((who, until)) if *until > now && who != replica => false,
                _ => {
                    ns.claim = Some((
                        replica.to_string(),
                        now + std::time::Duration::from_millis(ttl_ms),
                    ));
                    true
                }
            }
        })
    }

    fn compact(&mut self, epoch: u64, snapshot: &[u8], meta: &[u8], cursor: &str) -> Result<bool> {
        let through = parse_position(cursor).map_or(0, |(_, b)| b);
        self.with(|ns| {
            if ns.epoch != Some(epoch) || !after(cursor, &ns.cursor) {
                return false;
            }
            ns.snapshot = Some(snapshot.to_vec());
            ns.meta = Some(meta.to_vec());
            ns.cursor = cursor.to_string();
            while ns.log.front().is_some_and(|(id, _)| *id <= through) {
                ns.log.pop_front();
            }
            true
        })
    }
}
