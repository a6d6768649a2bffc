//! Beyond one process: a learner's state shared by the replicas of a service through a store
//! (Redis), and the shared counters and entries of a deployment.
//!
//! # The exchange
//!
//! Every replica keeps its own learner and routes and learns locally, with no network hop on
//! the request path. Its learner records its own events ([`crate::routers::bandit::Event`]:
//! observations in the form its state keeps them, and wiped models); every `interval_ms` the
//! replica publishes them as its next **increment** and applies everyone else's
//! ([`Replica::sync`], on a background thread: [`Exchange`]). Applying an observation runs the
//! same update as observing it, so once every increment has reached every replica, each holds
//! the state of one learner that observed all the feedback.
//!
//! - **Idempotent.** Increments are numbered per replica (1, 2, 3, …). A replica's clock says,
//!   for every replica, the last increment its state holds; it applies an increment only when
//!   it is the next one of its replica, so a duplicated delivery (a retried publish, a
//!   republication) counts once.
//! - **Bounded.** When the log reaches `compact_every` entries, one replica (holding a lease)
//!   writes its state as the **snapshot**, with its clock and the log position it covers, and
//!   trims the log through that position, in one atomic step that only moves forward. New
//!   replicas start from the snapshot and the log after it.
//! - **Every learner kind.** The key of an observation is what the state keeps of it: the
//!   linear features `φ(x)` (LinUCB, Thompson; 385 floats on raw MiniLM embeddings), the
//!   embedding (kNN-UCB), the cluster's index (cluster-UCB). Projections and clusters must be
//!   fitted before sharing starts, once, so that keys mean the same everywhere: replicas start
//!   from one saved router.
//!
//! # Forgetting
//!
//! Without forgetting the order of updates does not matter (to float tolerance), and every
//! replica converges to one learner that saw everything. With forgetting, each model's clock
//! counts the observations as *this replica applied them*: its own at once, the others' up to
//! one interval (plus the network) later, in batches. A window keeps the last `W`
//! observations of the model across the fleet as this replica received them; a discount
//! weighs others' observations by arrival. Replicas then agree up to the order of the last
//! interval's observations — unlike [`BanditRouter::merge`], which equals observing one
//! replica's traffic *and then* the other's, the exchange interleaves them at interval
//! granularity, which is closer to the one learner that saw the merged stream. Drift alarms
//! travel as events: a model wiped on one replica is wiped on every replica at the same
//! point of that replica's stream. The detectors' running averages stay per replica.
//!
//! # Faults
//!
//! - **Store unreachable**: replicas route and learn locally; increments wait in a buffer of
//!   `max_buffer_bytes`; past it, observations still teach their replica but are not shared
//!   and are counted ([`ShareStats::dropped_observations`]). The next synchronisation
//!   publishes the buffer and catches up.
//! - **A replica dies**: it loses what it observed since its last publication (at most one
//!   interval); everything it published is in the log or the snapshot. A restarted process is a
//!   new replica (a new name): it joins from the snapshot and the log.
//! - **The store restarts empty** (no persistence, or a flush): each replica keeps the
//!   increments it published until it sees a compaction that holds them *and* its own state
//!   holds that compaction; a replica that finds the namespace empty seeds it with its state
//!   (the first one wins, atomically; a replica whose state does not hold the last snapshot it
//!   saw waits for another to seed), and every replica publishes again what it keeps. Replicas
//!   whose state does not hold the new snapshot rebuild from it and reapply their own
//!   increments. An observation is lost only when the store loses its data within one
//!   interval of a compaction and every replica that had applied the compaction dies too.
//! - **Corrupt or foreign entries** (another router's fingerprint, another kind, a newer
//!   format, bad values) are rejected with a typed error, counted
//!   ([`ShareStats::rejected`]) and never applied ([`entry::decode_increment`], fuzzed).
//!
//! Keys are namespaced per router and carry the layout's version:
//! `pointsman:v1:<namespace>:…` (the `redis` module, feature `redis`, lists them).
//!
//! # Shared counters and entries
//!
//! [`SharedCounters`] (additive, idempotent per increment id, with an atomic
//! "add within a limit") and [`SharedEntries`] (last writer wins, with a time to live) are what
//! deployment policies share: a tenant's spend, a session's sticky model, an upstream's rate.
//! [`SharedPolicyState`] is a decision policy's state on them: budgets that replicas never
//! pass together (holds added within the limit atomically) and sessions seen by every replica.
//!
//! [`BanditRouter::merge`]: crate::routers::bandit::BanditRouter::merge

mod counters;
pub mod entry;
mod exchange;
pub mod policy_state;
#[cfg(feature = "redis")]
pub mod redis;
mod replica;
mod store;

pub use counters::{MemoryCounters, MemoryEntries, SharedCounters, SharedEntries, Spend};
pub use entry::{Increment, SnapshotMeta};
pub use exchange::Exchange;
pub use policy_state::{SharedPolicyState, SharedStateConfig, SharedStateStats};
pub use replica::{Replica, ShareConfig, ShareStats};
pub use store::{Keys, MemoryStore, Poll, Store, KEY_VERSION};

/// Starts sharing `learner` through the Redis at `url` (feature `redis`): an [`Exchange`] on a
/// [`redis::RedisStore`] of `config.namespace` (`<kind>-<fingerprint>` when empty).
///
/// # Errors
///
/// [`crate::Error::Config`] for a bad URL or settings; as [`Replica::new`].
#[cfg(feature = "redis")]
pub fn share_through_redis(
    learner: &crate::AnyLearner,
    url: &str,
    config: ShareConfig,
) -> crate::Result<Exchange> {
    let replica = Replica::new(learner, config)?;
    let namespace = replica.config().namespace.clone();
    let config = replica.config().clone();
    let store = redis::RedisStore::new(url, &namespace)?;
    Exchange::start(learner, Box::new(store), config)
}

#[cfg(test)]
mod tests;
