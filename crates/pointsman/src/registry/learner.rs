//! [`AnyLearner`]: a contextual bandit of any kind, as a handle on its learned state.

use std::sync::Arc;

use super::{RouterConfig, RouterKind};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::features::FeatureBatch;
use crate::pool::{ModelCard, ModelPool};
use crate::router::{Learner, Router};
use crate::routers::bandit::{
    ClusterUcbRouter, Event, Journal, KnnUcbRouter, LinTsRouter, LinUcbRouter,
};

/// A contextual bandit of any kind: a handle on its learned state.
///
/// Cloning gives a second handle on the *same* state (as [`BanditRouter`]'s handles do); use
/// [`AnyLearner::snapshot`] for an independent copy. It dereferences to `dyn Learner`, so
/// `route` and `observe` are called on it directly.
///
/// [`BanditRouter`]: crate::routers::bandit::BanditRouter
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyLearner {
    /// LinUCB.
    Linucb(LinUcbRouter),
    /// Linear Thompson sampling.
    Thompson(LinTsRouter),
    /// kNN-UCB.
    KnnUcb(KnnUcbRouter),
    /// Cluster-UCB.
    ClusterUcb(ClusterUcbRouter),
}

/// Runs `$e` with `$r` bound to the concrete learner, whatever its kind.
macro_rules! each {
    ($l:expr, $r:ident => $e:expr) => {
        match $l {
            AnyLearner::Linucb($r) => $e,
            AnyLearner::Thompson($r) => $e,
            AnyLearner::KnnUcb($r) => $e,
            AnyLearner::ClusterUcb($r) => $e,
        }
    };
}

/// Rebuilds the same kind from the handle `$e` makes of `$r`.
macro_rules! map {
    ($l:expr, $r:ident => $e:expr) => {
        match $l {
            AnyLearner::Linucb($r) => AnyLearner::Linucb($e),
            AnyLearner::Thompson($r) => AnyLearner::Thompson($e),
            AnyLearner::KnnUcb($r) => AnyLearner::KnnUcb($e),
            AnyLearner::ClusterUcb($r) => AnyLearner::ClusterUcb($e),
        }
    };
}

impl std::ops::Deref for AnyLearner {
    type Target = dyn Learner;

    fn deref(&self) -> &(dyn Learner + 'static) {
        self.learner()
    }
}

impl AnyLearner {
    /// A learner of `kind` that has observed nothing, with its default configuration, for the
    /// models of `pool` and `dim`-dimensional embeddings of `embedding_model`; `seed` seeds its
    /// draws.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `kind` is not a learner, or from the constructor.
    pub fn cold(
        kind: RouterKind,
        pool: &ModelPool,
        dim: usize,
        embedding_model: Option<&str>,
        seed: u64,
    ) -> Result<AnyLearner> {
        AnyLearner::cold_config(
            &RouterConfig::default_for(kind, seed)?,
            pool,
            dim,
            embedding_model,
        )
    }

    /// A learner with `config` that has observed nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `config` is not a learner's, or from the constructor.
    pub fn cold_config(
        config: &RouterConfig,
        pool: &ModelPool,
        dim: usize,
        embedding_model: Option<&str>,
    ) -> Result<AnyLearner> {
        let pool = pool.clone();
        Ok(match config {
            RouterConfig::Linucb(c) => {
                LinUcbRouter::new(pool, dim, embedding_model, c.clone())?.into()
            }
            RouterConfig::Thompson(c) => {
                LinTsRouter::new(pool, dim, embedding_model, c.clone())?.into()
            }
            RouterConfig::KnnUcb(c) => {
                KnnUcbRouter::new(pool, dim, embedding_model, c.clone())?.into()
            }
            RouterConfig::ClusterUcb(c) => {
                ClusterUcbRouter::new(pool, dim, embedding_model, c.clone())?.into()
            }
            other => return Err(not_a_learner(other.kind())),
        })
    }

    /// A learner with `config` warm-started on the labelled split `train` (every model's
    /// outcome on every query).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `config` is not a learner's; the errors of
    /// [`BanditRouter::warm_start`](crate::routers::bandit::BanditRouter::warm_start).
    pub fn warm_start(config: &RouterConfig, train: &Split) -> Result<AnyLearner> {
        Ok(match config {
            RouterConfig::Linucb(c) => LinUcbRouter::warm_start(train, c.clone())?.into(),
            RouterConfig::Thompson(c) => LinTsRouter::warm_start(train, c.clone())?.into(),
            RouterConfig::KnnUcb(c) => KnnUcbRouter::warm_start(train, c.clone())?.into(),
            RouterConfig::ClusterUcb(c) => ClusterUcbRouter::warm_start(train, c.clone())?.into(),
            other => return Err(not_a_learner(other.kind())),
        })
    }

    /// The learner's kind.
    pub fn kind(&self) -> RouterKind {
        match self {
            AnyLearner::Linucb(_) => RouterKind::Linucb,
            AnyLearner::Thompson(_) => RouterKind::Thompson,
            AnyLearner::KnnUcb(_) => RouterKind::KnnUcb,
            AnyLearner::ClusterUcb(_) => RouterKind::ClusterUcb,
        }
    }

    /// The learner through the [`Router`] trait.
    pub fn router(&self) -> &(dyn Router + 'static) {
        each!(self, r => r)
    }

    /// The learner through the [`Learner`] trait.
    pub fn learner(&self) -> &(dyn Learner + 'static) {
        each!(self, r => r)
    }

    /// A shared trait object on the same learned state (routing as this handle does).
    pub fn shared(&self) -> Arc<dyn Router> {
        each!(self.clone(), r => Arc::new(r))
    }

    /// A handle on the same state that routes without exploration.
    pub fn greedy(&self) -> AnyLearner {
        map!(self, r => r.greedy())
    }

    /// A handle on the same state that explores.
    pub fn exploring(&self) -> AnyLearner {
        map!(self, r => r.exploring())
    }

    /// Whether this handle routes without exploration.
    pub fn is_greedy(&self) -> bool {
        each!(self, r => r.is_greedy())
    }

    /// An independent copy of the learner and its state.
    pub fn snapshot(&self) -> AnyLearner {
        map!(self, r => r.snapshot())
    }

    /// Observations per model so far (merges included).
    pub fn pulls(&self) -> Vec<u64> {
        each!(self, r => r.pulls())
    }

    /// Wipes a model's statistics (as a drift alarm does).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] for an id not in the pool.
    pub fn forget_model(&self, id: &str) -> Result<()> {
        each!(self, r => r.forget_model(id))
    }

    /// Learns every model's outcome on every query of a labelled split.
    ///
    /// # Errors
    ///
    /// As [`BanditRouter::observe_split`](crate::routers::bandit::BanditRouter::observe_split).
    pub fn observe_split(&self, split: &Split) -> Result<()> {
        each!(self, r => r.observe_split(split))
    }

    /// Fits the unsupervised parts (projection, clusters) on unlabelled embeddings.
    ///
    /// # Errors
    ///
    /// As [`BanditRouter::fit_unlabelled`](crate::routers::bandit::BanditRouter::fit_unlabelled).
    pub fn fit_unlabelled(&self, batch: &FeatureBatch<'_>) -> Result<()> {
        each!(self, r => r.fit_unlabelled(batch))
    }

    /// Adds `other`'s observations to this learner's state.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for learners of different kinds; the errors of
    /// [`BanditRouter::merge`](crate::routers::bandit::BanditRouter::merge).
    pub fn merge(&self, other: &AnyLearner) -> Result<()> {
        match (self, other) {
            (AnyLearner::Linucb(a), AnyLearner::Linucb(b)) => a.merge(b),
            (AnyLearner::Thompson(a), AnyLearner::Thompson(b)) => a.merge(b),
            (AnyLearner::KnnUcb(a), AnyLearner::KnnUcb(b)) => a.merge(b),
            (AnyLearner::ClusterUcb(a), AnyLearner::ClusterUcb(b)) => a.merge(b),
            _ => Err(self.other_kind(other)),
        }
    }

    /// Adds the observations `other` made since it was forked from `base`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for learners of different kinds; the errors of
    /// [`BanditRouter::merge_since`](crate::routers::bandit::BanditRouter::merge_since).
    pub fn merge_since(&self, other: &AnyLearner, base: &AnyLearner) -> Result<()> {
        match (self, other, base) {
            (AnyLearner::Linucb(a), AnyLearner::Linucb(b), AnyLearner::Linucb(c)) => {
                a.merge_since(b, c)
            }
            (AnyLearner::Thompson(a), AnyLearner::Thompson(b), AnyLearner::Thompson(c)) => {
                a.merge_since(b, c)
            }
            (AnyLearner::KnnUcb(a), AnyLearner::KnnUcb(b), AnyLearner::KnnUcb(c)) => {
                a.merge_since(b, c)
            }
            (AnyLearner::ClusterUcb(a), AnyLearner::ClusterUcb(b), AnyLearner::ClusterUcb(c)) => {
                a.merge_since(b, c)
            }
            (_, b, c) if b.kind() == self.kind() => Err(self.other_kind(c)),
            _ => Err(self.other_kind(other)),
        }
    }

    /// Starts recording this learner's own events for the exchange between replicas
    /// ([`crate::share`]).
    ///
    /// # Errors
    ///
    /// As [`BanditRouter::start_journal`](crate::routers::bandit::BanditRouter::start_journal).
    pub fn start_journal(&self) -> Result<()> {
        each!(self, r => r.start_journal())
    }

    /// Takes the events recorded since the last call.
    pub fn take_journal(&self) -> Journal {
        each!(self, r => r.take_journal())
    }

    /// Takes the recorded events and an independent copy of the state that includes them,
    /// under one lock.
    pub fn take_journal_and_snapshot(&self) -> (Journal, AnyLearner) {
        match self {
            AnyLearner::Linucb(r) => {
                let (j, s) = r.take_journal_and_snapshot();
                (j, s.into())
            }
            AnyLearner::Thompson(r) => {
                let (j, s) = r.take_journal_and_snapshot();
                (j, s.into())
            }
            AnyLearner::KnnUcb(r) => {
                let (j, s) = r.take_journal_and_snapshot();
                (j, s.into())
            }
            AnyLearner::ClusterUcb(r) => {
                let (j, s) = r.take_journal_and_snapshot();
                (j, s.into())
            }
        }
    }

    /// Checks events that came from another process.
    ///
    /// # Errors
    ///
    /// A message naming the first bad event.
    pub fn check_events(&self, events: &[Event]) -> std::result::Result<(), String> {
        each!(self, r => r.check_events(events))
    }

    /// Learns another replica's events.
    ///
    /// # Errors
    ///
    /// As [`BanditRouter::apply_events`](crate::routers::bandit::BanditRouter::apply_events).
    pub fn apply_events(&self, events: &[Event]) -> Result<()> {
        each!(self, r => r.apply_events(events))
    }

    /// Replaces the state with `snapshot`'s, then applies `then` and the journal's events.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a snapshot of another kind or fingerprint; as
    /// [`BanditRouter::rejoin`](crate::routers::bandit::BanditRouter::rejoin).
    pub fn rejoin(&self, snapshot: &AnyLearner, then: &[Event]) -> Result<()> {
        match (self, snapshot) {
            (AnyLearner::Linucb(a), AnyLearner::Linucb(b)) => a.rejoin(b, then),
            (AnyLearner::Thompson(a), AnyLearner::Thompson(b)) => a.rejoin(b, then),
            (AnyLearner::KnnUcb(a), AnyLearner::KnnUcb(b)) => a.rejoin(b, then),
            (AnyLearner::ClusterUcb(a), AnyLearner::ClusterUcb(b)) => a.rejoin(b, then),
            _ => Err(self.other_kind(snapshot)),
        }
    }

    /// The fingerprint of what replicas must share.
    ///
    /// # Errors
    ///
    /// As [`BanditRouter::fingerprint`](crate::routers::bandit::BanditRouter::fingerprint).
    pub fn fingerprint(&self) -> Result<u64> {
        each!(self, r => r.fingerprint())
    }

    /// An independent learner with one more model, `card`, from its card's prior and the
    /// queries of `labelled` where it has a score; the other models' statistics stay bit for bit.
    ///
    /// # Errors
    ///
    /// As [`BanditRouter::add_model`](crate::routers::bandit::BanditRouter::add_model).
    pub fn add_model(&self, card: ModelCard, labelled: Option<&Split>) -> Result<AnyLearner> {
        Ok(map!(self, r => r.add_model(card, labelled)?))
    }

    /// An independent learner with new prices for some of its models.
    ///
    /// # Errors
    ///
    /// As [`BanditRouter::reprice`](crate::routers::bandit::BanditRouter::reprice).
    pub fn reprice(&self, prices: &[ModelCard]) -> Result<AnyLearner> {
        Ok(map!(self, r => r.reprice(prices)?))
    }

    fn other_kind(&self, other: &AnyLearner) -> Error {
        Error::Config(format!(
            "cannot merge a {} router into a {} router",
            other.kind(),
            self.kind()
        ))
    }
}

fn not_a_learner(kind: RouterKind) -> Error {
    Error::Config(format!(
        "a {kind} router does not learn from feedback (learners: {})",
        RouterKind::ALL
            .iter()
            .filter(|k| k.is_learner())
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
