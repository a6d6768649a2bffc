//! [`SharedPolicyState`]: a decision policy's state — its budgets' spend and its sessions'
//! last models — shared by the replicas of a service through [`SharedCounters`] and
//! [`SharedEntries`] (Redis across processes, [`super::MemoryCounters`] and
//! [`super::MemoryEntries`] in one).
//!
//! # Budgets: counters and holds
//!
//! A fixed total (a tenant's total, an episode) is one pair of counters, `spend:<budget>` and
//! `requests:<budget>`. A rolling window keeps one pair per time bucket,
//! `spend:<budget>@<bucket>`, summed over the window's buckets when read, and each bucket's
//! counters expire once no window reads them.
//!
//! Counters alone would let N replicas each read "one dollar left" and each spend it. So this
//! state **holds** ([`PolicyState::holds`]): at each decision the policy adds the chosen
//! model's expected cost (times the budget's stop margin) to the spend with
//! [`SharedCounters::add_within`] — one atomic step in the store that adds only if the total
//! stays within the limit — and after the call [`crate::policy::PolicyRouter::settle`] takes
//! the hold back and charges the actual cost. Replicas therefore never hold more than a limit
//! together: spend passes it only when calls cost more than their holds (a stop margin above 1
//! leaves room for that).
//!
//! For a rolling window the atomic step covers the bucket of now: the hold is added to it
//! within the limit minus the spend of the window's earlier buckets, read just before. Earlier
//! buckets only shrink meanwhile (holds taken back), so the window's total stays within the
//! limit — provided the replicas' clocks agree to well within a bucket's width (NTP).
//!
//! Every increment carries an id, `<replica>-<n>`: a retried increment counts once (for
//! `dedupe_ms`).
//!
//! # Sessions
//!
//! A session's last model is an entry `session:<id>` (JSON), last writer wins by its time,
//! expiring `session_ttl_ms` after its last write: what one replica's decision recorded, the
//! next decision on any replica reads.
//!
//! # When the store is unreachable
//!
//! - **Holds fail closed**: a decision under a budget cannot hold its cost and is refused with
//!   [`Error::Store`] (the gateway answers 503), rather than risk passing a hard stop. Requests
//!   that no budget applies to route as usual.
//! - **Charges and request counts wait**: each replica keeps them, in order, up to
//!   `max_pending` (past it they are dropped and counted: [`SharedStateStats::dropped`]), and
//!   delivers them at its next call that reaches the store (the ids make a redelivery count
//!   once). Meanwhile a budget reads as it last did, plus this replica's waiting charges.
//! - **Sessions fall back to this replica**: each replica keeps its sessions' last models in
//!   memory too (bounded by `session_capacity`), and reads them when the store cannot answer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::counters::{SharedCounters, SharedEntries, Spend};
use super::store::Keys;
use crate::error::{Error, Result};
use crate::policy::{MemoryState, PolicyState, SessionEntry, Totals};

/// Settings of a [`SharedPolicyState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedStateConfig {
    /// The keys' namespace: `pointsman:v1:<namespace>:…` (default `policy`). Replicas that
    /// share budgets use the same one; another policy, another namespace.
    pub namespace: String,
    /// How long a session's entry lives after its last write, ms (default one day).
    pub session_ttl_ms: u64,
    /// How long an increment's id is remembered, ms (default 10 minutes): a retry within it
    /// counts once.
    pub dedupe_ms: u64,
    /// Charges kept while the store is unreachable (default 100 000).
    pub max_pending: usize,
    /// Sessions each replica also keeps in memory, for when the store is unreachable
    /// (default 100 000).
    pub session_capacity: usize,
}

impl Default for SharedStateConfig {
    fn default() -> Self {
        SharedStateConfig {
            namespace: "policy".into(),
            session_ttl_ms: 86_400_000,
            dedupe_ms: 600_000,
            max_pending: 100_000,
            session_capacity: 100_000,
        }
    }
}

impl SharedStateConfig {
    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad namespace or a zero time to live.
    pub fn validate(&self) -> Result<()> {
        Keys::new(&self.namespace)?;
        if self.session_ttl_ms == 0 || self.dedupe_ms == 0 {
            return Err(Error::Config(format!(
                "shared policy state: session_ttl_ms ({}) and dedupe_ms ({}) must be at least 1",
                self.session_ttl_ms, self.dedupe_ms
            )));
        }
        Ok(())
    }
}

/// Counters of a [`SharedPolicyState`] (this replica's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedStateStats {
    /// Calls to the store that failed.
    pub store_errors: u64,
    /// Charges waiting for the store.
    pub pending: u64,
    /// Charges dropped because `max_pending` were waiting.
    pub dropped: u64,
    /// Charges delivered after waiting.
    pub delivered_late: u64,
    /// Holds the store refused (another replica had taken what was left).
    pub holds_refused: u64,
}

/// A charge waiting for the store.
#[derive(Debug, Clone)]
struct Pending {
    budget: String,
    counter: String,
    spend: bool,
    id: String,
    amount: f64,
}

#[derive(Debug, Default)]
struct Local {
    pending: VecDeque<Pending>,
    /// The last totals read per budget, for when the store cannot answer.
    last: HashMap<String, Totals>,
    /// Counters already given their expiry.
    expiring: HashSet<String>,
    /// Budgets whose first bucket this replica recorded.
    first: HashSet<String>,
    stats: SharedStateStats,
}

/// Bound of the local memos (`last`, `expiring`, `first`): cleared when passed.
const MEMO_CAPACITY: usize = 100_000;

/// A fixed total's first bucket is kept this long after its last write, ms (400 days).
const FIRST_TTL_MS: u64 = 400 * 86_400_000;

/// A decision policy's state shared between replicas (see the [module documentation](self)).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use pointsman::policy::PolicyState;
/// use pointsman::share::{MemoryCounters, MemoryEntries, SharedPolicyState, SharedStateConfig};
/// let counters = Arc::new(MemoryCounters::new(60_000));
/// let entries = Arc::new(MemoryEntries::new());
/// let a = SharedPolicyState::new(counters.clone(), entries.clone(), SharedStateConfig::default())?;
/// let b = SharedPolicyState::new(counters, entries, SharedStateConfig::default())?;
/// // One dollar for the two replicas together.
/// assert!(a.reserve("tenant:acme", 0, i64::MIN, i64::MIN, 0.75, 1.0)?);
/// assert!(!b.reserve("tenant:acme", 0, i64::MIN, i64::MIN, 0.75, 1.0)?);
/// assert_eq!(b.totals("tenant:acme", i64::MIN).spent, 0.75);
/// # Ok::<(), pointsman::Error>(())
/// ```
#[derive(Debug)]
pub struct SharedPolicyState {
    counters: Arc<dyn SharedCounters>,
    entries: Arc<dyn SharedEntries>,
    config: SharedStateConfig,
    replica: String,
    seq: AtomicU64,
    local: Mutex<Local>,
    sessions: MemoryState,
}

impl SharedPolicyState {
    /// A state on `counters` and `entries` (whose own namespace holds the keys).
    ///
    /// # Errors
    ///
    /// The errors of [`SharedStateConfig::validate`].
    pub fn new(
        counters: Arc<dyn SharedCounters>,
        entries: Arc<dyn SharedEntries>,
        config: SharedStateConfig,
    ) -> Result<SharedPolicyState> {
        config.validate()?;
        Ok(SharedPolicyState {
            counters,
            entries,
            replica: super::replica::default_replica_name(),
            seq: AtomicU64::new(0),
            local: Mutex::default(),
            sessions: MemoryState::new(config.session_capacity),
            config,
        })
    }

    /// A state on the Redis at `url` (feature `redis`), under `config.namespace`. Nothing is
    /// connected until the first call.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad URL or settings.
    #[cfg(feature = "redis")]
    pub fn redis(url: &str, config: SharedStateConfig) -> Result<SharedPolicyState> {
        config.validate()?;
        let counters = super::redis::RedisCounters::new(url, &config.namespace, config.dedupe_ms)?;
        let entries = super::redis::RedisEntries::new(url, &config.namespace)?;
        SharedPolicyState::new(Arc::new(counters), Arc::new(entries), config)
    }

    /// The settings.
    pub fn config(&self) -> &SharedStateConfig {
        &self.config
    }

    /// This replica's counters.
    pub fn stats(&self) -> SharedStateStats {
        let local = self.lock();
        SharedStateStats {
            pending: local.pending.len() as u64,
            ..local.stats
        }
    }

    /// Whether the store answers now: one read, nothing written, no statistics changed.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when it does not.
    pub fn ping(&self) -> Result<()> {
        self.counters.get("ping").map(|_| ())
    }

    /// Delivers the charges waiting for the store, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store is still unreachable (the rest keep waiting).
    pub fn flush(&self) -> Result<()> {
        let mut local = self.lock();
        while let Some(p) = local.pending.front() {
            match self.counters.add(&p.counter, &p.id, p.amount) {
                Ok(_) => {
                    local.pending.pop_front();
                    local.stats.delivered_late += 1;
                }
                Err(e) => {
                    local.stats.store_errors += 1;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next_id(&self) -> String {
        format!(
            "{}-{}",
            self.replica,
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn failed(&self) {
        self.lock().stats.store_errors += 1;
    }

    /// Adds to a counter, or keeps the charge for later when the store cannot be reached (or
    /// earlier charges still wait: order is kept).
    fn charge(&self, budget: &str, counter: String, spend: bool, amount: f64) {
        let id = self.next_id();
        let waiting = !self.lock().pending.is_empty();
        if !waiting {
            match self.counters.add(&counter, &id, amount) {
                Ok(_) => return,
                Err(_) => self.failed(),
            }
        }
        let mut local = self.lock();
        if local.pending.len() >= self.config.max_pending {
            local.stats.dropped += 1;
            return;
        }
        local.pending.push_back(Pending {
            budget: budget.to_string(),
            counter,
            spend,
            id,
            amount,
        });
    }

    /// Gives a rolling window's bucket counter its expiry, once per process.
    fn expire(&self, counter: &str, bucket: i64, keep_from: i64) {
        {
            let mut local = self.lock();
            if local.expiring.len() > MEMO_CAPACITY {
                local.expiring.clear();
            }
            if !local.expiring.insert(counter.to_string()) {
                return;
            }
        }
        if self
            .counters
            .expire(counter, bucket_ttl_ms(bucket, keep_from))
            .is_err()
        {
            self.failed();
            self.lock().expiring.remove(counter);
        }
    }

    /// Records a fixed total's first bucket (the earliest wins: its version is the largest).
    fn first_bucket(&self, budget: &str, bucket: i64) {
        if self.lock().first.contains(budget) {
            return;
        }
        let version = u64::try_from(i64::MAX - bucket.max(0)).unwrap_or(0);
        let key = format!("first:{budget}");
        match self
            .entries
            .put(&key, bucket.to_string().as_bytes(), version, FIRST_TTL_MS)
        {
            Ok(_) => {
                let mut local = self.lock();
                if local.first.len() > MEMO_CAPACITY {
                    local.first.clear();
                }
                local.first.insert(budget.to_string());
            }
            Err(_) => self.failed(),
        }
    }

    fn read(&self, key: &str, from: i64, to: i64) -> Result<Totals> {
        if from == i64::MIN {
            let v = self
                .counters
                .get_many(&[format!("spend:{key}"), format!("requests:{key}")])?;
            let first = self
                .entries
                .get(&format!("first:{key}"))?
                .and_then(|(b, _)| std::str::from_utf8(&b).ok()?.parse::<i64>().ok());
            let requests = v[1].round().max(0.0) as u64;
            return Ok(Totals {
                spent: v[0],
                requests,
                first_bucket: first.filter(|_| v[0] != 0.0 || requests > 0),
            });
        }
        let buckets: Vec<i64> = (from..=to).collect();
        let mut names: Vec<String> = buckets.iter().map(|b| format!("spend:{key}@{b}")).collect();
        names.extend(buckets.iter().map(|b| format!("requests:{key}@{b}")));
        let v = self.counters.get_many(&names)?;
        let n = buckets.len();
        let mut t = Totals::default();
        for (i, &b) in buckets.iter().enumerate() {
            let (usd, requests) = (v[i], v[n + i].round().max(0.0) as u64);
            if usd.abs() > 1e-12 || requests > 0 {
                t.first_bucket.get_or_insert(b);
            }
            t.spent += usd;
            t.requests += requests;
        }
        Ok(t)
    }
}

/// How long a rolling window's bucket counter is kept ([`crate::policy::window_ttl_seconds`]).
fn bucket_ttl_ms(bucket: i64, keep_from: i64) -> u64 {
    let now = crate::policy::now_seconds();
    (crate::policy::window_ttl_seconds(bucket, keep_from, now) * 1000.0).min(1e15) as u64
}

impl PolicyState for SharedPolicyState {
    fn add(&self, key: &str, bucket: i64, usd: f64, requests: u64, keep_from: i64) {
        let _ = self.flush();
        let total = keep_from == i64::MIN;
        let name = |what: &str| {
            if total {
                format!("{what}:{key}")
            } else {
                format!("{what}:{key}@{bucket}")
            }
        };
        if usd != 0.0 {
            let counter = name("spend");
            if !total {
                self.expire(&counter, bucket, keep_from);
            }
            self.charge(key, counter, true, usd);
        }
        if requests > 0 {
            let counter = name("requests");
            if !total {
                self.expire(&counter, bucket, keep_from);
            }
            self.charge(key, counter, false, requests as f64);
        }
        if total && (usd > 0.0 || requests > 0) {
            self.first_bucket(key, bucket);
        }
    }

    fn totals(&self, key: &str, from: i64) -> Totals {
        // Without the bucket of now only a fixed total can be read; a window reads to `from`.
        self.totals_in(key, from, from)
    }

    fn totals_in(&self, key: &str, from: i64, to: i64) -> Totals {
        let read = self.read(key, from, to);
        let mut local = self.lock();
        let mut t = match read {
            Ok(t) => {
                if local.last.len() > MEMO_CAPACITY {
                    local.last.clear();
                }
                local.last.insert(key.to_string(), t);
                t
            }
            Err(_) => {
                local.stats.store_errors += 1;
                local.last.get(key).copied().unwrap_or_default()
            }
        };
        for p in local.pending.iter().filter(|p| p.budget == key) {
            if p.spend {
                t.spent += p.amount;
            } else {
                t.requests += p.amount as u64;
            }
        }
        t
    }

    fn holds(&self) -> bool {
        true
    }

    fn reserve(
        &self,
        key: &str,
        bucket: i64,
        from: i64,
        keep_from: i64,
        usd: f64,
        limit: f64,
    ) -> Result<bool> {
        let result = (|| {
            self.flush()?;
            let total = from == i64::MIN;
            let (counter, room) = if total {
                (format!("spend:{key}"), limit)
            } else {
                let earlier: Vec<String> =
                    (from..bucket).map(|b| format!("spend:{key}@{b}")).collect();
                let spent: f64 = self.counters.get_many(&earlier)?.iter().sum();
                (format!("spend:{key}@{bucket}"), limit - spent)
            };
            let id = self.next_id();
            // One retry with the same id: a hold whose reply was lost counts once.
            let spend = self
                .counters
                .add_within(&counter, &id, usd, room)
                .or_else(|_| {
                    self.failed();
                    self.counters.add_within(&counter, &id, usd, room)
                })?;
            if total {
                self.first_bucket(key, bucket);
            } else {
                self.expire(&counter, bucket, keep_from);
            }
            Ok(!matches!(spend, Spend::Refused(_)))
        })();
        match &result {
            Ok(false) => self.lock().stats.holds_refused += 1,
            Err(_) => self.failed(),
            Ok(true) => {}
        }
        result
    }

    fn session(&self, session: &str) -> Option<SessionEntry> {
        match self.entries.get(&format!("session:{session}")) {
            Ok(Some((bytes, _))) => serde_json::from_slice(&bytes).ok(),
            Ok(None) => None,
            Err(_) => {
                self.failed();
                self.sessions.session(session)
            }
        }
    }

    fn set_session(&self, session: &str, entry: SessionEntry) {
        let version = (entry.time.max(0.0) * 1000.0) as u64;
        let bytes = serde_json::to_vec(&entry).expect("a session entry always serialises");
        let put = self.entries.put(
            &format!("session:{session}"),
            &bytes,
            version,
            self.config.session_ttl_ms,
        );
        if put.is_err() {
            self.failed();
        }
        self.sessions.set_session(session, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::{MemoryCounters, MemoryEntries};

    fn pair() -> (SharedPolicyState, SharedPolicyState) {
        let counters: Arc<dyn SharedCounters> = Arc::new(MemoryCounters::new(60_000));
        let entries: Arc<dyn SharedEntries> = Arc::new(MemoryEntries::new());
        let make = || {
            SharedPolicyState::new(
                counters.clone(),
                entries.clone(),
                SharedStateConfig::default(),
            )
            .unwrap()
        };
        (make(), make())
    }

    #[test]
    fn replicas_share_totals_windows_and_sessions() {
        let (a, b) = pair();
        a.add("tenant:x", 0, 0.5, 1, i64::MIN);
        b.add("tenant:x", 0, 0.25, 2, i64::MIN);
        let t = a.totals_in("tenant:x", i64::MIN, 0);
        assert_eq!((t.spent, t.requests, t.first_bucket), (0.75, 3, Some(0)));
        // A rolling window of 3 buckets: bucket 10 leaves the window at bucket 13.
        a.add("user:u", 10, 1.0, 1, 8);
        b.add("user:u", 12, 2.0, 1, 10);
        assert_eq!(b.totals_in("user:u", 10, 12).spent, 3.0);
        assert_eq!(b.totals_in("user:u", 10, 12).first_bucket, Some(10));
        assert_eq!(a.totals_in("user:u", 11, 13).spent, 2.0);
        // The window's earlier buckets count against the hold in the bucket of now.
        assert!(!a.reserve("user:u", 12, 10, 10, 1.5, 4.0).unwrap());
        assert!(a.reserve("user:u", 12, 10, 10, 1.0, 4.0).unwrap());
        assert!(b.reserve("user:u", 13, 11, 11, 1.0, 4.0).unwrap());
        assert_eq!(b.stats().holds_refused, 0);
        assert_eq!(a.stats().holds_refused, 1);
        let e = SessionEntry {
            model: "m1".into(),
            time: 5.0,
        };
        a.set_session("s", e.clone());
        assert_eq!(b.session("s"), Some(e));
        // An older write loses.
        b.set_session(
            "s",
            SessionEntry {
                model: "m0".into(),
                time: 4.0,
            },
        );
        assert_eq!(a.session("s").unwrap().model, "m1");
    }

    #[test]
    fn concurrent_holds_never_pass_the_limit() {
        let (a, b) = pair();
        let held = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for state in [&a, &b, &a, &b] {
                let held = &held;
                s.spawn(move || {
                    for _ in 0..200 {
                        if state
                            .reserve("global", 0, i64::MIN, i64::MIN, 0.125, 10.0)
                            .unwrap()
                        {
                            held.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        // Amounts exact in binary: 80 holds fill the limit exactly.
        assert_eq!(held.load(Ordering::Relaxed), 80);
        assert_eq!(a.totals("global", i64::MIN).spent, 10.0);
    }

    #[test]
    fn settings_are_checked() {
        let bad = SharedStateConfig {
            namespace: "a b".into(),
            ..SharedStateConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = SharedStateConfig {
            session_ttl_ms: 0,
            ..SharedStateConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().kind(), crate::ErrorKind::Config);
    }
}
