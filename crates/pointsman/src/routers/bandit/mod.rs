//! Contextual bandits: routers that learn online from the outcome of the model they chose.
//!
//! In production the only labels are the outcomes of the model that was actually called. A
//! bandit router routes, is told how the chosen model did ([`Feedback`]: the query, the model,
//! the observed quality in [0, 1] and the observed cost), and learns from that partial feedback
//! while it serves. Four learners share one wrapper, [`BanditRouter`]:
//!
//! | router | `--routers` | per-model quality model | exploration |
//! |---|---|---|---|
//! | [`LinUcbRouter`] | `linucb` | ridge regression on the query features | upper confidence bound (Li et al. 2010) |
//! | [`LinTsRouter`] | `thompson` | the same ridge regression | a posterior sample (Agrawal & Goyal 2013) |
//! | [`KnnUcbRouter`] | `knn-ucb` | similarity-weighted scores of the model's own past observations near the query | a bonus that shrinks with the neighbourhood's evidence |
//! | [`ClusterUcbRouter`] | `cluster-ucb` | per-(cluster, model) cells with an additive (cluster difficulty + model ability) prior | a logarithmic bonus that shrinks with the cell's evidence and over time |
//!
//! Every learner estimates quality; the exploration bonus (or sample) applies to quality only.
//! Cost is the pool's price estimate for the query, scaled per model by the ratio of observed
//! to estimated cost in the feedback so far, and `cost_weight` is applied at decision time, so
//! one learned state serves every trade-off.
//!
//! # Sharing and threads
//!
//! A [`BanditRouter`] is a handle: its learned state sits behind a read–write lock, routing
//! reads a consistent snapshot, and [`Learner::observe`] takes `&self`, so one handle (or an
//! `Arc` of it) routes on many threads while it learns on others. [`BanditRouter::greedy`]
//! returns a second handle on the *same* state that routes without exploration (the posterior
//! mean), for evaluation or for traffic that must not explore; [`BanditRouter::snapshot`] makes
//! an independent copy.
//!
//! # Cold and warm start
//!
//! [`BanditRouter::new`] starts from nothing: every model has its optimistic prior.
//! [`BanditRouter::observe_split`] learns from labelled data with every model's outcome on every
//! query (full information), and [`BanditRouter::warm_start`] does both at once for a dataset's
//! train split. Unsupervised parts (the PCA projection of the linear routers, the clusters of
//! `cluster-ucb`) are fitted on unlabelled embeddings by [`BanditRouter::fit_unlabelled`];
//! `cluster-ucb` fits its clusters on the first prompts it observes when it was given none.
//!
//! # Onboarding a model and repricing
//!
//! [`BanditRouter::add_model`] returns an independent router with one more model (arm). The
//! other models' statistics are copied bit for bit; the new one starts from a prior built from
//! its card — the weights `w` of [`crate::ModelPool::prior_weights`] (price and description) over the
//! known models — in the form each learner keeps its statistics, so that the prior is saved,
//! merged and exchanged like any statistic, and real feedback outweighs it after a few
//! observations:
//!
//! | learner | the new model's prior | its strength |
//! |---|---|---|
//! | `linucb`, `thompson` | the ridge prior centred on `θ_new = Σ w_i θ_i` instead of 0 (`A = λ·I`, `b = λ·θ_new`): its mean on any query is `Σ w_i mean_i(x)`, and its observations update it as Bayesian linear regression from that prior | `λ` (`ridge`) pseudo-observations, as every model's prior; its confidence width is an untried model's, so the exploring router tries it |
//! | `knn-ucb` | an anchor: `π(x) = clip(Σ w_i μ_i(x), 0, 1)` over the models that have their own observations, replacing the running mean `g` its labelled neighbours are shrunk toward | `max(n0, 10)` pseudo-neighbours ([`ANCHOR_STRENGTH`], as the kNN router's onboarding) |
//! | `cluster-ucb` | per cluster, `min(n0, Σ w_i n[c,i])` pseudo-observations at the weighted mean score `Σ w_i s[c,i] / Σ w_i n[c,i]` of the known models in that cluster | at most `n0` (`shrinkage`) per cluster |
//!
//! The new model has no pulls: its pseudo-observations are not counted as observations. With
//! `labelled` queries, its observed outcomes are learned as the warm start learns logged
//! single-model outcomes ([`BanditRouter::observe_split`]), in the split's order.
//!
//! What stays bit for bit: every other model's statistics, pulls, cost calibration and detector
//! state, hence the estimates of `linucb`, `thompson` and `knn-ucb` for them. The new model's
//! labelled queries are observations: they advance the router's observation count, the clock of
//! Thompson's draws and of the decaying bonus of `knn-ucb` and `cluster-ucb`, so those exploring
//! scores move as after any observation (greedy estimates do not). `cluster-ucb`'s
//! prior for a cell is its cluster's difficulty plus the model's ability, fitted jointly over
//! every model's cells, so the new model's pseudo-observations move the other models' priors a
//! little, as any observation of any model does. Onboarded before its clusters are fitted, a
//! `cluster-ucb` router keeps the pseudo-observations in its one cell until the clusters are
//! fitted, which re-assigns only real observations: the new model then starts from the additive
//! prior alone.
//!
//! A wiped model ([`BanditRouter::forget_model`], a drift alarm) falls back to its kind's cold
//! prior for `linucb`, `thompson` and `cluster-ucb` (the card prior was statistics); `knn-ucb`
//! keeps its anchor.
//!
//! [`BanditRouter::reprice`] applies new prices: quality statistics are unchanged, and each
//! model's cost calibration is rescaled by its price ratio.
//!
//! # Forgetting
//!
//! [`Forgetting`] is available on every learner: exponential discounting or a sliding window on
//! each model's own clock (the linear routers support the window only: a discounted ridge prior
//! would need a matrix inverse per observation), and a drift detector that wipes a model's
//! statistics when its recent outcomes fall well below what the router expected
//! ([`DriftDetector`], on by default).
//!
//! # Merging replicas
//!
//! The learned state is a sum of sufficient statistics. [`BanditRouter::merge`] adds another
//! router's observations to this one; [`BanditRouter::merge_since`] adds only those another
//! router made after it was forked from a common snapshot (for replicas warm-started once and
//! shipped). Without forgetting the result equals, to float tolerance, one router that observed
//! all the traffic, in any order. With forgetting it equals one router that observed this
//! router's traffic and *then* the other's: discounting and windows run on each model's own
//! clock, so the merged router weighs the other's observations as the more recent ones. A
//! detector alarm on the other router since the fork counts as having happened after this
//! router's traffic: the model's statistics here are wiped before the other's post-alarm
//! statistics are added. The detectors' running averages are per-replica control state and are
//! not merged; [`BanditRouter::forget_model`] broadcasts an alarm by hand.
//!
//! # Sharing between processes
//!
//! [`BanditRouter::start_journal`] makes a router record its own events (observations in the
//! form its state keeps them, and wiped models); [`BanditRouter::apply_events`] learns another
//! replica's events as if they had been observed here, and [`BanditRouter::rejoin`] rebuilds
//! from a snapshot. [`crate::share`] moves them between processes (through Redis): see there
//! for what the exchange guarantees and how forgetting composes with it.
//!
//! # Example
//!
//! ```
//! use pointsman::routers::bandit::{ClusterUcbConfig, ClusterUcbRouter};
//! use pointsman::{Feedback, Learner, ModelCard, ModelPool, Objective, QueryFeatures, Router};
//! let pool = ModelPool::new(vec![ModelCard::new("small", 0.1, 0.1), ModelCard::new("big", 1.0, 1.0)])?;
//! let config = ClusterUcbConfig { clusters: 2, cluster_after: 4, ..Default::default() };
//! let router = ClusterUcbRouter::new(pool, 3, None, config)?;
//! for i in 0..40 {
//!     let query = QueryFeatures::new(vec![1.0, (i % 5) as f32 * 0.1, 0.0])?;
//!     let decision = router.route(&query, &Objective::new(0.0))?;
//!     // Only the chosen model's outcome is revealed: the big model is right, the small one not.
//!     let quality = if decision.model_id == "big" { 1.0 } else { 0.0 };
//!     router.observe(&Feedback { features: &query, model: decision.model, quality, cost: decision.cost })?;
//! }
//! let query = QueryFeatures::new(vec![1.0, 0.2, 0.0])?;
//! assert_eq!(router.greedy().route(&query, &Objective::new(0.0))?.model_id, "big");
//! assert_eq!(router.observations(), 40);
//! # Ok::<(), pointsman::Error>(())
//! ```
//!
//! [`Feedback`]: crate::router::Feedback
//! [`Learner::observe`]: crate::router::Learner::observe

mod cluster;
mod exchange;
mod forgetting;
mod kmeans;
pub(crate) use kmeans::{nearest, spherical_kmeans};
mod knn_ucb;
mod learned;
mod linalg;
pub(crate) use linalg::cholesky_whitener;
mod linear;
mod merge;
mod observe;
mod onboard;
mod router;
mod saved;

pub use cluster::{ClusterUcb, ClusterUcbConfig, ClusterUcbRouter};
pub use exchange::{now_ms, Event, Journal};
pub use forgetting::{DriftDetector, Forgetting};
pub use knn_ucb::{KnnUcb, KnnUcbConfig, KnnUcbRouter, ANCHOR_STRENGTH};
pub use learned::{Context, Learned};
pub use linear::{
    LinTsRouter, LinUcbRouter, Linear, LinearConfig, Projection, Thompson, Ucb,
    MAX_LINEAR_STATE_BYTES,
};
pub use router::BanditRouter;

// For the learners' files: the seal of `Learned` and the bit-for-bit check of their merges.
use learned::{same_bits, sealed};

#[cfg(test)]
mod tests;
