//! [`PolicyState`]: the state a policy keeps between decisions — spend counters per budget key
//! and the last model of each session — behind a small trait, and [`MemoryState`], the
//! in-process implementation.
//!
//! The trait is shaped so that several replicas can share one state (a Redis implementation
//! plugs in without touching the policy's logic):
//!
//! - **spend is additive**: [`PolicyState::add`] adds USD and a request count to a key's
//!   counter for one time bucket (a Redis `HINCRBYFLOAT` on `key`, field `bucket`), and
//!   [`PolicyState::totals`] sums the buckets of a window. Replicas never overwrite each other's
//!   spend; the order of additions does not matter.
//! - **sessions are last-writer entries**: [`PolicyState::set_session`] replaces a session's
//!   entry (the model it used and when), [`PolicyState::session`] reads it (a Redis `SET` with a
//!   time-to-live, and `GET`). Two replicas racing on one session leave one of the two models,
//!   either of which is a valid "previous model".
//!
//! A fixed-total budget (an episode, a total per tenant) uses one bucket, 0; a rolling window of
//! `W` seconds uses buckets of `W / buckets` seconds, numbered from the Unix epoch, and may drop
//! buckets older than the window.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The sums of a key's counters over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// USD spent.
    pub spent: f64,
    /// Requests decided.
    pub requests: u64,
    /// The earliest bucket of the window that holds anything (`None`: nothing yet).
    pub first_bucket: Option<i64>,
}

/// A session's last model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEntry {
    /// The model the session last used.
    pub model: String,
    /// When, seconds since the Unix epoch.
    pub time: f64,
}

/// Where a policy keeps its budgets' spend and its sessions' last models: per process
/// ([`MemoryState`]) or shared between replicas (an implementation over a shared store).
///
/// Implementations are thread-safe; every method takes `&self`.
pub trait PolicyState: Send + Sync + std::fmt::Debug {
    /// Adds `usd` and `requests` to `key`'s counter of time bucket `bucket`. Buckets before
    /// `keep_from` are no longer read and may be dropped.
    fn add(&self, key: &str, bucket: i64, usd: f64, requests: u64, keep_from: i64);

    /// The sums of `key`'s counters over the buckets `from..` (every bucket from `from` on).
    fn totals(&self, key: &str, from: i64) -> Totals;

    /// The session's last entry, if any (expired entries may be returned: the caller checks
    /// their time).
    fn session(&self, session: &str) -> Option<SessionEntry>;

    /// Replaces the session's entry (last writer wins).
    fn set_session(&self, session: &str, entry: SessionEntry);

    /// The sums of `key`'s counters over the buckets `from..=to` (`to`: the bucket of now).
    /// A state that keeps buckets in separate keys (a shared one) reads only these; the
    /// default is [`PolicyState::totals`].
    fn totals_in(&self, key: &str, from: i64, to: i64) -> Totals {
        let _ = to;
        self.totals(key, from)
    }

    /// Whether decisions *hold* their chosen model's expected cost on their budgets
    /// ([`PolicyState::reserve`]) until [`crate::policy::PolicyRouter::settle`] replaces it
    /// with the actual cost: what makes a hard stop hold across replicas that share the state.
    /// Default false (the in-process [`MemoryState`]: spend is charged after the call only).
    fn holds(&self) -> bool {
        false
    }

    /// Adds `usd` to `key`'s bucket `bucket` only if the window's spend (buckets
    /// `from..=bucket`) stays at or below `limit`, in one atomic step for everyone that
    /// shares the state; returns whether it was added. The default reads, then adds (atomic
    /// within one process only when the implementation is, as [`MemoryState`]'s is).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when a shared store cannot be reached (the caller refuses rather than
    /// risk passing the limit).
    fn reserve(
        &self,
        key: &str,
        bucket: i64,
        from: i64,
        keep_from: i64,
        usd: f64,
        limit: f64,
    ) -> Result<bool> {
        if self.totals_in(key, from, bucket).spent + usd > limit {
            return Ok(false);
        }
        self.add(key, bucket, usd, 0, keep_from);
        Ok(true)
    }
}

/// A decision's hold on one budget: the chosen model's expected cost (times the budget's stop
/// margin), added to the budget's spend at the decision ([`PolicyState::reserve`]) and taken
/// back when the actual cost is charged ([`crate::policy::PolicyRouter::settle`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// The budget's key (`tenant:acme`).
    pub key: String,
    /// The time bucket the hold was added to.
    pub bucket: i64,
    /// Buckets before this may be dropped (the window's start at the decision).
    pub keep_from: i64,
    /// USD held.
    pub usd: f64,
}

/// How long a rolling window's counters are kept after a write at `now` (Unix seconds) to bucket
/// `bucket` of a window starting at `keep_from`: the window and one bucket more. Bucket numbers
/// count bucket widths since the Unix epoch, so a width is the clock over the bucket number; at
/// least an hour whatever the estimate.
pub(crate) fn window_ttl_seconds(bucket: i64, keep_from: i64, now: f64) -> f64 {
    let width = if bucket > 0 { now / bucket as f64 } else { 0.0 };
    let buckets = (bucket - keep_from + 2).max(1) as f64;
    (buckets * width).max(3600.0)
}

/// Per-key counters: buckets in increasing order.
type Buckets = VecDeque<(i64, f64, u64)>;

/// When the rolling-window keys of a [`MemoryState`] fall out of their windows: a key written
/// once (a tenant or user seen once) is otherwise never written again, so its buckets were never
/// dropped and a service with per-user budgets kept every user it ever saw.
#[derive(Debug, Default)]
struct Expiry {
    /// Key → Unix seconds after which none of its buckets is in its window any more.
    stale_at: HashMap<String, f64>,
    /// Keys held after the last sweep: the next sweep waits until they have doubled, so that
    /// sweeping costs O(1) per addition on average.
    swept_len: usize,
}

impl Expiry {
    /// Records `key`'s last write (bucket `bucket` of a window starting at `keep_from`) and, when
    /// the keys have doubled since the last sweep, removes those past their windows.
    fn touch(
        &mut self,
        spend: &mut HashMap<String, Buckets>,
        key: &str,
        (bucket, keep_from): (i64, i64),
        now: f64,
    ) {
        if keep_from == i64::MIN {
            return; // A total: kept for good.
        }
        // The shared state's counters' time-to-live, from the last write.
        let stale_at = now + super::window_ttl_seconds(bucket, keep_from, now);
        match self.stale_at.get_mut(key) {
            Some(t) => *t = stale_at,
            None => {
                self.stale_at.insert(key.to_string(), stale_at);
            }
        }
        if spend.len() > (2 * self.swept_len).max(1024) {
            self.stale_at.retain(|k, t| {
                let keep = *t > now;
                if !keep {
                    spend.remove(k);
                }
                keep
            });
            self.swept_len = spend.len();
        }
    }
}

/// Session ids are kept once, shared by the map and the use order (one allocation for a new
/// session, none for a known one).
#[derive(Debug, Default)]
struct Sessions {
    entries: HashMap<Arc<str>, (SessionEntry, u64)>,
    /// Use order for the least-recently-used eviction: (session, tick of that use); stale
    /// pairs (an older tick than the entry's) are skipped when evicting.
    order: VecDeque<(Arc<str>, u64)>,
    tick: u64,
}

/// The in-process [`PolicyState`]: spend counters in a map behind a lock, sessions in a map
/// bounded to `session_capacity` entries, the least recently used evicted first.
///
/// # Example
///
/// ```
/// use pointsman::policy::{MemoryState, PolicyState};
/// let state = MemoryState::new(1000);
/// state.add("tenant:acme", 0, 0.25, 1, 0);
/// state.add("tenant:acme", 0, 0.5, 1, 0);
/// assert_eq!(state.totals("tenant:acme", 0).spent, 0.75);
/// assert_eq!(state.totals("tenant:acme", 0).requests, 2);
/// ```
#[derive(Debug)]
pub struct MemoryState {
    spend: Mutex<HashMap<String, Buckets>>,
    expiry: Mutex<Expiry>,
    sessions: Mutex<Sessions>,
    session_capacity: usize,
}

/// The saved form of a [`MemoryState`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    format: String,
    format_version: u32,
    session_capacity: usize,
    spend: Vec<KeyBuckets>,
    sessions: Vec<(String, SessionEntry)>,
}

/// A key and its buckets `(bucket, usd, requests)`, as saved.
type KeyBuckets = (String, Vec<(i64, f64, u64)>);

const STATE_FORMAT: &str = "pointsman-policy-state";

impl MemoryState {
    /// An empty state that remembers at most `session_capacity` sessions (at least 1).
    pub fn new(session_capacity: usize) -> MemoryState {
        MemoryState {
            spend: Mutex::new(HashMap::new()),
            expiry: Mutex::new(Expiry::default()),
            sessions: Mutex::new(Sessions::default()),
            session_capacity: session_capacity.max(1),
        }
    }

    /// Number of sessions remembered.
    pub fn sessions_len(&self) -> usize {
        self.sessions.lock().expect("state lock").entries.len()
    }

    /// The state as JSON (every counter and session), for [`MemoryState::from_json`].
    pub fn to_json(&self) -> String {
        let spend = self.spend.lock().expect("state lock");
        let mut spend: Vec<KeyBuckets> = spend
            .iter()
            .map(|(k, b)| (k.clone(), b.iter().copied().collect()))
            .collect();
        spend.sort_by(|a, b| a.0.cmp(&b.0));
        let sessions = self.sessions.lock().expect("state lock");
        // Oldest use first, so that restoring replays the use order.
        let mut list: Vec<(&Arc<str>, &(SessionEntry, u64))> = sessions.entries.iter().collect();
        list.sort_by_key(|(_, (_, tick))| *tick);
        let snapshot = Snapshot {
            format: STATE_FORMAT.into(),
            format_version: 1,
            session_capacity: self.session_capacity,
            spend,
            sessions: list
                .into_iter()
                .map(|(k, (e, _))| (k.to_string(), e.clone()))
                .collect(),
        };
        serde_json::to_string(&snapshot).expect("a snapshot always serialises")
    }

    /// A state from [`MemoryState::to_json`]'s text; `what` names the source in errors.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for text that is not a saved policy state;
    /// [`Error::UnsupportedVersion`] for a newer one.
    pub fn from_json(text: &str, what: &str) -> Result<MemoryState> {
        let s: Snapshot =
            serde_json::from_str(text).map_err(|e| Error::format(what, e.to_string()))?;
        if s.format != STATE_FORMAT {
            return Err(Error::format(
                what,
                format!("format {:?} is not {STATE_FORMAT:?}", s.format),
            ));
        }
        if s.format_version != 1 {
            return Err(Error::UnsupportedVersion {
                path: what.into(),
                found: s.format_version.to_string(),
                supported: "1".into(),
            });
        }
        let state = MemoryState::new(s.session_capacity);
        {
            let mut spend = state.spend.lock().expect("state lock");
            for (key, buckets) in s.spend {
                if buckets.iter().any(|b| !b.1.is_finite() || b.1 < 0.0) {
                    return Err(Error::format(
                        what,
                        format!("key {key:?}: a spend that is not a non-negative number"),
                    ));
                }
                let mut b: Buckets = buckets.into();
                b.make_contiguous().sort_by_key(|x| x.0);
                spend.insert(key, b);
            }
        }
        for (session, entry) in s.sessions {
            state.set_session(&session, entry);
        }
        Ok(state)
    }

    /// Saves the state atomically as JSON.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::files::write_atomic(path, self.to_json().as_bytes())
    }

    /// Loads a state saved by [`MemoryState::save`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path; the errors of [`MemoryState::from_json`].
    pub fn load(path: &Path) -> Result<MemoryState> {
        let text = crate::files::read_regular_to_string(path)?;
        MemoryState::from_json(&text, &path.display().to_string())
    }
}

impl Default for MemoryState {
    fn default() -> Self {
        MemoryState::new(100_000)
    }
}

impl MemoryState {
    /// [`PolicyState::add`] at `now` (Unix seconds).
    fn add_at(
        &self,
        key: &str,
        (bucket, keep_from): (i64, i64),
        usd: f64,
        requests: u64,
        now: f64,
    ) {
        let mut spend = self.spend.lock().expect("state lock");
        let buckets = match spend.get_mut(key) {
            Some(b) => b,
            None => spend.entry(key.to_string()).or_default(),
        };
        add_to(buckets, bucket, usd, requests, keep_from);
        self.expiry
            .lock()
            .expect("state lock")
            .touch(&mut spend, key, (bucket, keep_from), now);
    }
}

impl PolicyState for MemoryState {
    fn add(&self, key: &str, bucket: i64, usd: f64, requests: u64, keep_from: i64) {
        self.add_at(
            key,
            (bucket, keep_from),
            usd,
            requests,
            super::now_seconds(),
        );
    }

    fn totals(&self, key: &str, from: i64) -> Totals {
        let spend = self.spend.lock().expect("state lock");
        let mut t = Totals::default();
        if let Some(buckets) = spend.get(key) {
            for &(b, usd, n) in buckets.iter().filter(|b| b.0 >= from) {
                t.first_bucket.get_or_insert(b);
                t.spent += usd;
                t.requests += n;
            }
        }
        t
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
        // Under one lock: threads of one process never pass the limit together.
        let mut spend = self.spend.lock().expect("state lock");
        let spent: f64 = spend.get(key).map_or(0.0, |b| {
            b.iter()
                .filter(|b| b.0 >= from && b.0 <= bucket)
                .map(|b| b.1)
                .sum()
        });
        if spent + usd > limit {
            return Ok(false);
        }
        let buckets = spend.entry(key.to_string()).or_default();
        add_to(buckets, bucket, usd, 0, keep_from);
        self.expiry.lock().expect("state lock").touch(
            &mut spend,
            key,
            (bucket, keep_from),
            super::now_seconds(),
        );
        Ok(true)
    }

    fn session(&self, session: &str) -> Option<SessionEntry> {
        let s = self.sessions.lock().expect("state lock");
        s.entries.get(session).map(|(e, _)| e.clone())
    }

    fn set_session(&self, session: &str, entry: SessionEntry) {
        let mut s = self.sessions.lock().expect("state lock");
        s.tick += 1;
        let tick = s.tick;
        let id = match s.entries.get_key_value(session) {
            Some((id, _)) => id.clone(),
            None => Arc::from(session),
        };
        s.entries.insert(id.clone(), (entry, tick));
        s.order.push_back((id, tick));
        while s.entries.len() > self.session_capacity {
            let Some((old, t)) = s.order.pop_front() else {
                break;
            };
            if s.entries
                .get(&old)
                .is_some_and(|(_, current)| *current == t)
            {
                s.entries.remove(&old);
            }
        }
        // Stale use records pile up when a few sessions are used again and again: compact.
        if s.order.len() > 4 * self.session_capacity.max(16) {
            let Sessions { entries, order, .. } = &mut *s;
            order.retain(|(id, t)| entries.get(id).is_some_and(|(_, cur)| cur == t));
        }
    }
}

/// Adds to one bucket of a key's counters, dropping buckets before `keep_from`.
fn add_to(buckets: &mut Buckets, bucket: i64, usd: f64, requests: u64, keep_from: i64) {
    while buckets.front().is_some_and(|b| b.0 < keep_from) {
        buckets.pop_front();
    }
    match buckets.iter().rposition(|b| b.0 <= bucket) {
        Some(i) if buckets[i].0 == bucket => {
            buckets[i].1 += usd;
            buckets[i].2 += requests;
        }
        Some(i) => buckets.insert(i + 1, (bucket, usd, requests)),
        None => buckets.push_front((bucket, usd, requests)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_by_bucket_and_window() {
        let s = MemoryState::new(10);
        s.add("k", 5, 1.0, 1, 0);
        s.add("k", 3, 2.0, 1, 0);
        s.add("k", 5, 0.5, 0, 0);
        s.add("k", 9, 4.0, 2, 0);
        assert_eq!(
            s.totals("k", 0),
            Totals {
                spent: 7.5,
                requests: 4,
                first_bucket: Some(3)
            }
        );
        assert_eq!(s.totals("k", 5).spent, 5.5);
        assert_eq!(s.totals("other", 0), Totals::default());
        // Buckets before keep_from are dropped.
        s.add("k", 10, 0.0, 0, 6);
        assert_eq!(s.totals("k", 0).spent, 4.0);
    }

    #[test]
    fn rolling_keys_past_their_windows_are_forgotten() {
        let state = MemoryState::new(10);
        let t0 = 1.8e9;
        // 10 buckets of 60 s: bucket numbers count minutes since the epoch.
        let at = |t: f64| {
            let b = (t / 60.0) as i64;
            (b, b - 9)
        };
        for i in 0..2000 {
            state.add_at(&format!("user:{i}"), at(t0), 0.01, 1, t0);
        }
        // Totals are kept for good.
        state.add("tenant:acme", 0, 1.0, 1, i64::MIN);
        let t1 = t0 + 7200.0;
        for i in 0..3000 {
            state.add_at(&format!("late:{i}"), at(t1), 0.01, 1, t1);
        }
        let spend = state.spend.lock().unwrap();
        assert!(
            !spend.contains_key("user:0"),
            "a key past its window is dropped"
        );
        assert!(spend.len() < 3100, "{}", spend.len());
        assert!(spend.contains_key("late:0") && spend.contains_key("tenant:acme"));
    }

    #[test]
    fn sessions_are_bounded_least_recently_used_first() {
        let s = MemoryState::new(2);
        let e = |m: &str| SessionEntry {
            model: m.into(),
            time: 1.0,
        };
        s.set_session("a", e("x"));
        s.set_session("b", e("y"));
        s.set_session("a", e("z")); // a used again: b is now the oldest
        s.set_session("c", e("w"));
        assert_eq!(s.sessions_len(), 2);
        assert!(s.session("b").is_none());
        assert_eq!(s.session("a").unwrap().model, "z");
        for i in 0..1000 {
            s.set_session("a", e(&i.to_string()));
        }
        assert!(s.sessions.lock().unwrap().order.len() <= 4 * 16 + 1);
    }

    #[test]
    fn saves_and_restores() {
        let s = MemoryState::new(3);
        s.add("tenant:a", 0, 1.25, 3, 0);
        s.set_session(
            "s1",
            SessionEntry {
                model: "m".into(),
                time: 2.0,
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        s.save(&path).unwrap();
        let back = MemoryState::load(&path).unwrap();
        assert_eq!(back.totals("tenant:a", 0), s.totals("tenant:a", 0));
        assert_eq!(back.session("s1"), s.session("s1"));
        assert_eq!(back.to_json(), s.to_json());
        let e = MemoryState::from_json("{}", "x.json").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Format);
    }

    #[test]
    fn concurrent_additions_are_not_lost() {
        let s = std::sync::Arc::new(MemoryState::new(10));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let s = s.clone();
                scope.spawn(move || {
                    for _ in 0..1000 {
                        s.add("k", 0, 0.5, 1, 0);
                    }
                });
            }
        });
        assert_eq!(s.totals("k", 0).spent, 2000.0);
        assert_eq!(s.totals("k", 0).requests, 4000);
    }
}
