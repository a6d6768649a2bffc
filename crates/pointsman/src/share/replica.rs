//! One replica's side of the exchange: its increments (numbered, retained until a compaction
//! that holds them is seen), what it has applied of everyone's (its clock), and the steps of one
//! synchronisation ([`Replica::sync`]).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::entry::{
    decode_increment, decode_snapshot, encode_increment, encode_snapshot, fingerprint_hex,
    Increment, SnapshotMeta,
};
use super::store::{after, Keys, Store, START};
use crate::error::{Error, Result};
use crate::registry::AnyLearner;
use crate::routers::bandit::{now_ms, Event, Journal};

/// Settings of the exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShareConfig {
    /// The namespace of the shared router's keys (one per router; replicas of one router use
    /// the same). Empty: `<kind>-<fingerprint>`.
    pub namespace: String,
    /// This replica's name (in logs and in the store's entries). Each replica made with it
    /// adds a random part, `<name>-<random>`: a restarted process (a StatefulSet pod with a
    /// stable name) or two processes given one name are different replicas, whose increments
    /// never pass for each other's. Empty: `<host>-<pid>-<random>`.
    pub replica: String,
    /// Milliseconds between two synchronisations of the background exchange.
    pub interval_ms: u64,
    /// The most bytes of increments a replica keeps (published ones until a compaction holds
    /// them, and those not yet published while the store is unreachable); past it, new
    /// observations still teach this replica but are not shared, and are counted as dropped.
    pub max_buffer_bytes: usize,
    /// Compact when the log holds this many entries.
    pub compact_every: u64,
    /// The most log entries read per synchronisation.
    pub read_batch: usize,
}

impl Default for ShareConfig {
    fn default() -> Self {
        ShareConfig {
            namespace: String::new(),
            replica: String::new(),
            interval_ms: 100,
            max_buffer_bytes: 64 << 20,
            compact_every: 1000,
            read_batch: 10_000,
        }
    }
}

impl ShareConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        if !self.namespace.is_empty() {
            Keys::new(&self.namespace)?;
        }
        if self.interval_ms == 0 || self.compact_every == 0 || self.read_batch == 0 {
            return Err(Error::Config(
                "share: interval_ms, compact_every and read_batch must be positive".into(),
            ));
        }
        if self.max_buffer_bytes < 1024 {
            return Err(Error::Config(format!(
                "share: max_buffer_bytes {} is below 1024",
                self.max_buffer_bytes
            )));
        }
        Ok(())
    }
}

/// Counters of one replica's exchange.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShareStats {
    /// Synchronisations that reached the store.
    pub syncs: u64,
    /// Synchronisations that failed (store unreachable): the replica went on locally.
    pub failures: u64,
    /// The last failure's message while synchronisations fail; cleared by the next one that
    /// reaches the store.
    pub last_error: Option<String>,
    /// This replica's increments published.
    pub published: u64,
    /// Bytes of increments published.
    pub published_bytes: u64,
    /// Observations of this replica published.
    pub published_observations: u64,
    /// Others' increments applied.
    pub applied: u64,
    /// Others' observations applied.
    pub applied_observations: u64,
    /// Increments read twice (a duplicated delivery or a republication), ignored.
    pub duplicates: u64,
    /// Entries rejected as corrupt or foreign (never applied).
    pub rejected: u64,
    /// The last rejection's message.
    pub last_rejected: Option<String>,
    /// Observations not shared because the buffer was full (they still taught this replica).
    pub dropped_observations: u64,
    /// Increments kept (not yet held by a compaction), and their bytes.
    pub retained: u64,
    /// Bytes of the kept increments.
    pub retained_bytes: u64,
    /// Increments kept that are not published yet.
    pub unpublished: u64,
    /// Snapshots this replica wrote (compactions and seeds).
    pub snapshots_written: u64,
    /// Times this replica rebuilt its state from the snapshot (joining, falling behind a
    /// compaction, a store that lost its data).
    pub rejoins: u64,
    /// Times the store was found empty after this replica had joined it (it lost its data).
    pub reseeds: u64,
    /// Staleness of the last applied increment: milliseconds from its first (oldest) event to
    /// its application here.
    pub last_staleness_ms: u64,
    /// The largest staleness seen.
    pub max_staleness_ms: u64,
}

#[derive(Debug, Clone)]
struct Retained {
    seq: u64,
    bytes: Vec<u8>,
    observations: u64,
    published: bool,
}

/// One replica of a shared learner: the learner (a handle on the same state the application
/// routes and observes with) and its side of the exchange. [`Replica::sync`] runs one
/// synchronisation against a [`Store`]; [`super::Exchange`] runs them in the background.
#[derive(Debug)]
pub struct Replica {
    learner: AnyLearner,
    config: ShareConfig,
    keys: Keys,
    fingerprint: u64,
    epoch: Option<u64>,
    clock: BTreeMap<String, u64>,
    totals: BTreeMap<String, u64>,
    cursor: String,
    seq: u64,
    total: u64,
    retained: VecDeque<Retained>,
    retained_bytes: usize,
    /// The latest snapshot meta read from the store.
    seen: Option<SnapshotMeta>,
    log_len: u64,
    /// Polls that found the store empty while this replica's state did not cover the latest
    /// snapshot it had seen.
    waiting: u32,
    stats: ShareStats,
}

impl Replica {
    /// A replica sharing `learner`'s state (the application keeps routing and observing with
    /// its own handles on it): starts recording its events.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid `config`; [`Error::Unsupported`] for a learner whose
    /// state cannot be shared yet (an unfitted projection or clusters).
    pub fn new(learner: &AnyLearner, config: ShareConfig) -> Result<Replica> {
        config.validate()?;
        learner.start_journal()?;
        let fingerprint = learner.fingerprint()?;
        let mut config = config;
        if config.namespace.is_empty() {
            config.namespace = format!("{}-{}", learner.kind(), fingerprint_hex(fingerprint));
        }
        // Increments are numbered per replica from 1: a name used again (by a restarted
        // process, or by two at once) would number its increments from 1 again, and the other
        // replicas would drop them as repeats of the earlier life's. Each life has its own id.
        config.replica = if config.replica.is_empty() {
            default_replica_name()
        } else {
            format!("{}-{}", config.replica, life_suffix())
        };
        let keys = Keys::new(&config.namespace)?;
        Ok(Replica {
            learner: learner.clone(),
            config,
            keys,
            fingerprint,
            epoch: None,
            clock: BTreeMap::new(),
            totals: BTreeMap::new(),
            cursor: START.to_string(),
            seq: 0,
            total: 0,
            retained: VecDeque::new(),
            retained_bytes: 0,
            seen: None,
            log_len: 0,
            waiting: 0,
            stats: ShareStats::default(),
        })
    }

    /// The learner.
    pub fn learner(&self) -> &AnyLearner {
        &self.learner
    }

    /// The settings (with the namespace and replica name filled in).
    pub fn config(&self) -> &ShareConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> ShareStats {
        let mut s = self.stats.clone();
        s.retained = self.retained.len() as u64;
        s.retained_bytes = self.retained_bytes as u64;
        s.unpublished = self.retained.iter().filter(|r| !r.published).count() as u64;
        s
    }

    /// This replica's id in the store's entries: its name and a random part
    /// ([`ShareConfig::replica`]).
    pub fn id(&self) -> &str {
        &self.config.replica
    }

    /// Per replica id, the last increment this replica's state holds.
    pub fn clock(&self) -> &BTreeMap<String, u64> {
        &self.clock
    }

    /// Per replica id, its observations this replica's state holds (this replica's own
    /// included, through its last increment).
    pub fn totals(&self) -> &BTreeMap<String, u64> {
        &self.totals
    }

    /// The observations this replica's state holds from every replica that was given the name
    /// `name` (every life of a restarted process, say): what a process taking over a shard under
    /// that name resumes after.
    pub fn totals_of_name(&self, name: &str) -> u64 {
        self.totals
            .iter()
            .filter(|(id, _)| is_life_of(id, name))
            .map(|(_, &n)| n)
            .sum()
    }

    /// Whether this replica has joined the namespace (synchronised once).
    pub fn joined(&self) -> bool {
        self.epoch.is_some()
    }

    /// One synchronisation: takes this replica's new events as its next increment, seeds the
    /// namespace when the store is empty, joins it the first time, publishes what the store
    /// does not have yet, applies everyone else's new increments, drops what a compaction
    /// holds, and compacts when the log is long.
    ///
    /// When the store is unreachable the increment stays buffered and the error is returned;
    /// the learner goes on learning locally, and the next synchronisation catches up.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store fails; errors of the snapshot this replica writes.
    pub fn sync(&mut self, store: &mut dyn Store) -> Result<()> {
        match self.sync_inner(store) {
            Ok(()) => {
                self.stats.syncs += 1;
                self.stats.last_error = None;
                Ok(())
            }
            Err(e) => {
                self.stats.failures += 1;
                self.stats.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn sync_inner(&mut self, store: &mut dyn Store) -> Result<()> {
        // 1. This replica's new events, and the snapshot of a compaction it claimed.
        let compacting = self.epoch.is_some()
            && self.log_len >= self.config.compact_every
            && store.claim(&self.config.replica, 10 * self.config.interval_ms.max(1000))?;
        let snapshot = if compacting {
            let (journal, snapshot) = self.learner.take_journal_and_snapshot();
            self.enqueue(journal);
            Some((snapshot, self.meta_now()))
        } else {
            let journal = self.learner.take_journal();
            self.enqueue(journal);
            None
        };
        // 2. The namespace: seed it, join it, or notice that the store lost its data.
        let mut poll = store.poll(&self.cursor, self.config.read_batch)?;
        match poll.epoch {
            None => {
                if !self.seed(store)? {
                    return Ok(());
                }
                poll = store.poll(&self.cursor, self.config.read_batch)?;
            }
            Some(e) if Some(e) != self.epoch => {
                self.adopt(store, e, poll.meta.as_deref())?;
                poll = store.poll(&self.cursor, self.config.read_batch)?;
            }
            Some(_) => {}
        }
        let Some(epoch) = self.epoch else {
            return Ok(());
        };
        self.log_len = poll.log_len;
        // 3. Publish what the store does not have.
        let pending: Vec<Vec<u8>> = self
            .retained
            .iter()
            .filter(|r| !r.published)
            .map(|r| r.bytes.clone())
            .collect();
        if !pending.is_empty() {
            if !store.append(epoch, &pending)? {
                // The epoch changed between the poll and the append: the next sync adopts it.
                return Ok(());
            }
            for r in self.retained.iter_mut().filter(|r| !r.published) {
                r.published = true;
                self.stats.published += 1;
                self.stats.published_bytes += r.bytes.len() as u64;
                self.stats.published_observations += r.observations;
            }
        }
        // 4. Everyone's new increments.
        let meta = match &poll.meta {
            Some(m) => Some(SnapshotMeta::from_json(m, &self.keys.key("snapshot_meta"))?),
            None => None,
        };
        let mut behind = false;
        for (position, bytes) in &poll.entries {
            match self.consider(bytes, meta.as_ref()) {
                Step::Next => self.cursor = position.clone(),
                Step::Rejoin => {
                    behind = true;
                    break;
                }
            }
        }
        // 5. What the latest compaction holds: drop it, or rejoin from it when this replica
        // fell behind the log's trimmed part.
        if let Some(meta) = meta {
            if meta.epoch == epoch {
                let covered = meta.covered_by(&self.clock);
                if behind || (!covered && after(&meta.cursor, &self.cursor)) {
                    self.rejoin(store)?;
                } else if covered {
                    self.release(meta.clock.get(&self.config.replica).copied().unwrap_or(0));
                }
                self.seen = Some(meta);
            }
        }
        // 6. Compact.
        if let Some((snapshot, meta)) = snapshot {
            if self.retained.iter().all(|r| r.published) && meta.epoch == epoch {
                let bytes = encode_snapshot(&snapshot, &meta)?;
                if store.compact(epoch, &bytes, &meta.to_json(), &meta.cursor)? {
                    self.stats.snapshots_written += 1;
                }
            }
        }
        Ok(())
    }

    /// Turns `journal` into this replica's next increment (or counts it as dropped when the
    /// buffer is full).
    fn enqueue(&mut self, journal: Journal) {
        if journal.events.is_empty() {
            return;
        }
        let observations = journal.observations();
        let inc = Increment {
            replica: self.config.replica.clone(),
            seq: self.seq + 1,
            total: self.total + observations,
            journal,
        };
        let key_len = inc
            .journal
            .events
            .iter()
            .find_map(|e| match e {
                Event::Observe { key, .. } => Some(key.len()),
                Event::Forget { .. } => None,
            })
            .unwrap_or_default();
        let bytes = encode_increment(&inc, self.learner.kind().name(), self.fingerprint, key_len);
        if self.retained_bytes + bytes.len() > self.config.max_buffer_bytes {
            self.stats.dropped_observations += observations;
            tracing::warn!(
                replica = %self.config.replica,
                observations,
                "share: the buffer of increments is full ({} bytes): these observations are not \
                 shared",
                self.retained_bytes
            );
            return;
        }
        self.seq = inc.seq;
        self.total = inc.total;
        self.clock.insert(self.config.replica.clone(), self.seq);
        self.totals.insert(self.config.replica.clone(), self.total);
        self.retained_bytes += bytes.len();
        self.retained.push_back(Retained {
            seq: inc.seq,
            bytes,
            observations,
            published: false,
        });
    }

    /// The meta of a snapshot of the state now.
    fn meta_now(&self) -> SnapshotMeta {
        SnapshotMeta {
            epoch: self.epoch.unwrap_or(0),
            cursor: self.cursor.clone(),
            clock: self.clock.clone(),
            totals: self.totals.clone(),
            fingerprint: fingerprint_hex(self.fingerprint),
        }
    }

    /// Seeds an empty store with this replica's state; returns whether the namespace has an
    /// epoch afterwards.
    fn seed(&mut self, store: &mut dyn Store) -> Result<bool> {
        if self.epoch.is_some() {
            // The store lost its data (or was flushed) after this replica joined.
            let covered = self.seen.as_ref().is_none_or(|m| m.covered_by(&self.clock));
            if !covered && self.waiting < 20 {
                // Another replica holds more of the lost snapshot: let it seed.
                self.waiting += 1;
                return Ok(false);
            }
        }
        self.waiting = 0;
        let (journal, snapshot) = self.learner.take_journal_and_snapshot();
        self.enqueue(journal);
        let epoch = loop {
            let e = rand_u64();
            if e != 0 && Some(e) != self.epoch {
                break e;
            }
        };
        let meta = SnapshotMeta {
            epoch,
            cursor: START.to_string(),
            ..self.meta_now()
        };
        let bytes = encode_snapshot(&snapshot, &meta)?;
        let now = store.seed(epoch, &bytes, &meta.to_json())?;
        if now == epoch {
            if self.epoch.is_some() {
                self.stats.reseeds += 1;
                tracing::warn!(replica = %self.config.replica, "share: the store was empty: seeded it again from this replica");
            }
            self.stats.snapshots_written += 1;
            self.epoch = Some(epoch);
            self.cursor = START.to_string();
            self.seen = Some(meta);
            // The store may have lost what this replica published: publish it again.
            for r in &mut self.retained {
                r.published = false;
            }
        } else {
            let meta = store_meta(store, &self.keys)?;
            self.adopt(store, now, meta.as_deref())?;
        }
        Ok(true)
    }

    /// Adopts the namespace's epoch `epoch`: joins it (first time: the shared state replaces
    /// the local one), or after the store lost its data, keeps the local state when it holds
    /// everything the new snapshot holds and rebuilds from the snapshot otherwise. Everything
    /// this replica keeps is published again.
    fn adopt(&mut self, store: &mut dyn Store, epoch: u64, meta: Option<&[u8]>) -> Result<()> {
        let first = self.epoch.is_none();
        if !first {
            self.stats.reseeds += 1;
        }
        let meta = match meta {
            Some(m) => Some(SnapshotMeta::from_json(m, &self.keys.key("snapshot_meta"))?),
            None => None,
        };
        self.epoch = Some(epoch);
        for r in &mut self.retained {
            r.published = false;
        }
        match meta {
            Some(m) if first || !m.covered_by(&self.clock) => self.rejoin(store),
            Some(m) => {
                self.cursor = START.to_string();
                self.seen = Some(m);
                Ok(())
            }
            None => {
                self.cursor = START.to_string();
                Ok(())
            }
        }
    }

    /// Rebuilds the state from the store's snapshot, then this replica's own increments the
    /// snapshot does not hold and its journal.
    fn rejoin(&mut self, store: &mut dyn Store) -> Result<()> {
        let what = self.keys.key("snapshot");
        let Some(bytes) = store.snapshot()? else {
            return Ok(());
        };
        let (snapshot, meta) = match decode_snapshot(&bytes, &what, self.fingerprint) {
            Ok(s) => s,
            Err(e) => {
                self.reject(&e);
                return Err(e);
            }
        };
        let mine = meta.clock.get(&self.config.replica).copied().unwrap_or(0);
        let mut own: Vec<Event> = Vec::new();
        for r in self.retained.iter().filter(|r| r.seq > mine) {
            let inc = decode_increment(&r.bytes, "own increment", &self.learner, self.fingerprint)?;
            own.extend(inc.journal.events);
        }
        self.learner.rejoin(&snapshot, &own)?;
        self.clock = meta.clock.clone();
        self.totals = meta.totals.clone();
        if self.seq > 0 {
            self.clock.insert(self.config.replica.clone(), self.seq);
            self.totals.insert(self.config.replica.clone(), self.total);
        }
        self.cursor = meta.cursor.clone();
        self.release(mine);
        self.seen = Some(meta);
        self.stats.rejoins += 1;
        Ok(())
    }

    /// Drops the retained increments through `seq` (a compaction holds them).
    fn release(&mut self, seq: u64) {
        while self
            .retained
            .front()
            .is_some_and(|r| r.seq <= seq && r.published)
        {
            if let Some(r) = self.retained.pop_front() {
                self.retained_bytes -= r.bytes.len();
            }
        }
    }

    fn reject(&mut self, e: &Error) {
        self.stats.rejected += 1;
        self.stats.last_rejected = Some(e.to_string());
        tracing::warn!(replica = %self.config.replica, error = %e, "share: rejected an entry of the store");
    }

    /// Applies one log entry when it is the next increment of its replica.
    fn consider(&mut self, bytes: &[u8], meta: Option<&SnapshotMeta>) -> Step {
        let what = self.keys.key("log");
        let inc = match decode_increment(bytes, &what, &self.learner, self.fingerprint) {
            Ok(inc) => inc,
            Err(e) => {
                self.reject(&e);
                return Step::Next;
            }
        };
        let have = self.clock.get(&inc.replica).copied().unwrap_or(0);
        if inc.seq <= have {
            if inc.replica != self.config.replica {
                self.stats.duplicates += 1;
            }
            return Step::Next;
        }
        if inc.seq > have + 1 {
            // A gap: the increments in between were compacted into the snapshot (rejoin from
            // it), or the store lost them and their replica will publish them again (skip).
            if meta.is_some_and(|m| m.clock.get(&inc.replica).copied().unwrap_or(0) + 1 >= inc.seq)
            {
                return Step::Rejoin;
            }
            return Step::Next;
        }
        if let Err(e) = self.learner.apply_events(&inc.journal.events) {
            self.reject(&e);
            return Step::Next;
        }
        let observations = inc.journal.observations();
        self.clock.insert(inc.replica.clone(), inc.seq);
        self.totals.insert(inc.replica.clone(), inc.total);
        self.stats.applied += 1;
        self.stats.applied_observations += observations;
        let staleness = now_ms().saturating_sub(inc.journal.first_ms);
        self.stats.last_staleness_ms = staleness;
        self.stats.max_staleness_ms = self.stats.max_staleness_ms.max(staleness);
        Step::Next
    }
}

enum Step {
    Next,
    Rejoin,
}

fn store_meta(store: &mut dyn Store, _keys: &Keys) -> Result<Option<Vec<u8>>> {
    Ok(store.poll(START, 0)?.meta)
}

/// `<host>-<pid>-<random>`.
pub(super) fn default_replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!("{host}-{}-{}", std::process::id(), life_suffix())
}

/// Whether `id` is `<name>-<random>-<n>` (a replica made with `name`), or `name` itself (a
/// replica of a version that used the name as its id).
fn is_life_of(id: &str, name: &str) -> bool {
    if id == name {
        return true;
    }
    let Some(rest) = id.strip_prefix(name).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let Some((random, n)) = rest.split_once('-') else {
        return false;
    };
    random.len() == 8
        && random.bytes().all(|b| b.is_ascii_hexdigit())
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
}

/// `<random>-<n>`: what makes one replica's id unique. The random part tells apart processes
/// that reuse a pid or a name (a restarted container); the count tells apart the replicas of
/// one process, which the random part alone (a mix of the clock and a counter) did not always
/// do: two made at once could draw the same id, and then their increment ids (`<id>-<n>`)
/// collide and one's counts as the other's retry.
fn life_suffix() -> String {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:08x}-{n}", rand_u64() as u32)
}

/// A random 64-bit number from the clock, the process id and a counter, mixed.
fn rand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    crate::rng::mix64(
        nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed),
    )
}
