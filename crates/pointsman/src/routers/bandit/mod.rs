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

mod cluster;
mod kmeans;
mod knn_ucb;
mod linalg;
mod linear;

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::data::Split;
use crate::error::{Error, Result};
use crate::features::{normalize_into, FeatureBatch};
use crate::io::{RouterConfig, SavedRouter, Tensor};
use crate::pool::ModelPool;
use crate::router::{Estimates, Feedback, Learner, Router, Signals};

pub use cluster::{ClusterUcb, ClusterUcbConfig, ClusterUcbRouter};
pub use knn_ucb::{KnnUcb, KnnUcbConfig, KnnUcbRouter};
pub use linear::{LinTsRouter, LinUcbRouter, Linear, LinearConfig, Projection, Thompson, Ucb};

/// How a bandit forgets, so that a model whose quality drops loses its traffic.
///
/// `discount` and `window` run on each model's own clock (they age a model's evidence when that
/// model is observed again) and exclude each other; the detector can be combined with either.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Forgetting {
    /// Exponential discounting: before each new observation of a model, its earlier evidence is
    /// multiplied by this factor in (0, 1); it remembers about `1 / (1 − discount)` outcomes.
    pub discount: Option<f64>,
    /// Sliding window: only the last `window` observations of each model count.
    pub window: Option<usize>,
    /// The drift detector (`null` turns it off).
    pub detector: Option<DriftDetector>,
}

impl Default for Forgetting {
    fn default() -> Self {
        Forgetting {
            discount: None,
            window: None,
            detector: Some(DriftDetector::default()),
        }
    }
}

impl Forgetting {
    /// No discounting, no window and no detector: every observation counts for ever.
    pub fn none() -> Self {
        Forgetting {
            discount: None,
            window: None,
            detector: None,
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the value out of range, or both `discount` and `window` set.
    pub fn validate(&self) -> Result<()> {
        if let Some(g) = self.discount {
            if !(g > 0.0 && g <= 1.0) {
                return Err(Error::Config(format!(
                    "forgetting discount {g} is not in (0, 1]"
                )));
            }
        }
        if self.window == Some(0) {
            return Err(Error::Config(
                "forgetting window must hold at least 1 observation".into(),
            ));
        }
        if self.discount.is_some() && self.window.is_some() {
            return Err(Error::Config(
                "forgetting: choose a discount or a window, not both".into(),
            ));
        }
        if let Some(d) = &self.detector {
            d.validate()?;
        }
        Ok(())
    }
}

/// A per-model drift detector on the residuals `observed − expected` of the model's outcomes,
/// where `expected` is the router's estimate (without exploration) just before the update.
///
/// It keeps a fast and a slow exponential average of the residuals; when the model has been
/// observed at least `min_pulls` times since the last alarm and `fast − slow < −threshold`, the
/// model's outcomes have dropped well below what the router expected: its statistics are wiped
/// (its estimate falls back to the optimistic prior and it is re-learned from fresh outcomes).
/// With the defaults a fast average reacts within a few dozen of the model's own pulls, and on
/// stationary data (binary scores) a false alarm needs the last ~20 outcomes to be 0.4 worse
/// than usual, about five standard deviations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftDetector {
    /// Rate of the fast average (1/20: about the last 20 outcomes).
    pub fast_rate: f64,
    /// Rate of the slow average (1/500).
    pub slow_rate: f64,
    /// Alarm when the fast average falls this far below the slow one.
    pub threshold: f64,
    /// Outcomes of the model needed since the last alarm before another can fire.
    pub min_pulls: u64,
}

impl Default for DriftDetector {
    fn default() -> Self {
        DriftDetector {
            fast_rate: 1.0 / 20.0,
            slow_rate: 1.0 / 500.0,
            threshold: 0.4,
            min_pulls: 20,
        }
    }
}

impl DriftDetector {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the value out of range.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("fast_rate", self.fast_rate), ("slow_rate", self.slow_rate)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(Error::Config(format!(
                    "drift detector {name} {v} is not in (0, 1]"
                )));
            }
        }
        if !(self.threshold > 0.0 && self.threshold.is_finite()) {
            return Err(Error::Config(format!(
                "drift detector threshold {} is not a positive number",
                self.threshold
            )));
        }
        Ok(())
    }
}

/// The detector's running state for one model.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct DetectorState {
    fast: f64,
    slow: f64,
    since: u64,
}

/// What a learner's estimate may depend on besides its statistics.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Observations learned so far (the clock of front-loaded exploration and of Thompson
    /// draws).
    pub observations: u64,
    /// Whether to explore (upper confidence bound or posterior sample) or to report the mean.
    pub explore: bool,
}

mod sealed {
    pub trait Sealed {}
}

/// The learned per-model quality model behind a [`BanditRouter`]: [`Linear`], [`KnnUcb`] or
/// [`ClusterUcb`]. Sealed: the wrapper relies on its exact contract.
pub trait Learned: sealed::Sealed + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The learner's hyper-parameters.
    type Config: Clone
        + std::fmt::Debug
        + PartialEq
        + Default
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;

    /// The router kind (`"linucb"`, …), also the prefix of its saved tensors.
    const KIND: &'static str;

    /// The forgetting settings of `config`.
    fn forgetting(config: &Self::Config) -> &Forgetting;

    /// Whether `config` routes without exploration.
    fn is_greedy(config: &Self::Config) -> bool;

    /// `config` with its greedy flag set to `greedy`.
    fn with_greedy(config: &Self::Config, greedy: bool) -> Self::Config;

    /// Whether exploring routes on a random draw (a posterior sample) rather than a
    /// deterministic bonus.
    fn samples() -> bool {
        false
    }

    /// Checks `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field out of range.
    fn validate(config: &Self::Config) -> Result<()>;

    /// `config` as a saved-router config.
    fn router_config(config: &Self::Config) -> RouterConfig;

    /// The learner's config inside a saved-router config of its kind, `None` for another kind.
    fn config_from(config: &RouterConfig) -> Option<Self::Config>;

    /// The state of a router that has observed nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the configuration does not fit the dimensions.
    fn cold(config: &Self::Config, models: usize, dim: usize) -> Result<Self>;

    /// Fits the unsupervised parts (projection, clusters) on unit-length rows of `dim` values.
    ///
    /// # Errors
    ///
    /// Learner specific: nothing to fit, already fitted, too few rows.
    fn fit_unlabelled(&mut self, config: &Self::Config, rows: &[f32], dim: usize) -> Result<()>;

    /// Writes every model's quality estimate (with exploration when `ctx.explore`) for the
    /// unit-length query `x` into `quality`.
    ///
    /// # Errors
    ///
    /// When the learner cannot route yet (an unfitted projection).
    fn estimate(
        &self,
        config: &Self::Config,
        x: &[f32],
        ctx: &Context,
        quality: &mut [f64],
    ) -> Result<Signals>;

    /// Model `m`'s estimate without exploration.
    ///
    /// # Errors
    ///
    /// As [`Learned::estimate`].
    fn mean(&self, config: &Self::Config, x: &[f32], m: usize) -> Result<f64>;

    /// Learns that model `m` scored `quality` on `x`, applying the forgetting rules.
    ///
    /// # Errors
    ///
    /// As [`Learned::estimate`].
    fn observe(&mut self, config: &Self::Config, x: &[f32], m: usize, quality: f64) -> Result<()>;

    /// Learns every model's score on every row (full information), row by row.
    ///
    /// # Errors
    ///
    /// As [`Learned::observe`].
    fn observe_all(
        &mut self,
        config: &Self::Config,
        rows: &[f32],
        dim: usize,
        scores: &[f64],
        models: usize,
    ) -> Result<()> {
        for (r, x) in rows.chunks_exact(dim).enumerate() {
            for m in 0..models {
                self.observe(config, x, m, scores[r * models + m])?;
            }
        }
        Ok(())
    }

    /// Wipes model `m`'s statistics: it falls back to its prior.
    fn forget(&mut self, config: &Self::Config, m: usize);

    /// Checks that `other`'s statistics can be added to these (same projection, same clusters).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] or [`Error::Unsupported`] naming the difference.
    fn check_mergeable(&self, other: &Self) -> Result<()>;

    /// Adds model `m`'s statistics that `other` gathered beyond `base` (beyond the prior when
    /// `base` is `None`): `new` observations of `m`, the most recent ones of `other`.
    fn absorb(
        &mut self,
        config: &Self::Config,
        other: &Self,
        base: Option<&Self>,
        m: usize,
        new: u64,
    );

    /// Recomputes derived state after [`Learned::absorb`] calls.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the merged statistics are not usable.
    fn after_merge(&mut self, config: &Self::Config) -> Result<()>;

    /// Adds the learner's tensors to `saved`.
    fn save(&self, saved: SavedRouter) -> SavedRouter;

    /// Rebuilds the learner from `saved`'s tensors.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for missing or misshapen tensors and values out of range.
    fn load(
        config: &Self::Config,
        saved: &mut SavedRouter,
        models: usize,
        dim: usize,
    ) -> Result<Self>;
}

/// Everything a router learns, behind its lock.
#[derive(Debug, Clone)]
struct State<L> {
    learned: L,
    observations: u64,
    /// Observations per model, ever (merges included).
    pulls: Vec<u64>,
    /// Times each model's statistics were wiped (detector alarms and `forget_model`).
    forgets: Vec<u64>,
    /// Detector alarms per model.
    alarms: Vec<u64>,
    detector: Vec<DetectorState>,
    /// Per model: observations with a cost, Σ estimated cost, Σ observed cost.
    cost: Vec<[f64; 3]>,
}

impl<L: Learned> State<L> {
    fn cold(learned: L, models: usize) -> Self {
        State {
            learned,
            observations: 0,
            pulls: vec![0; models],
            forgets: vec![0; models],
            alarms: vec![0; models],
            detector: vec![DetectorState::default(); models],
            cost: vec![[0.0; 3]; models],
        }
    }

    /// The learned multiplier of model `m`'s price estimate, or its mean observed cost when the
    /// prices make it free.
    fn cost_estimate(&self, m: usize, price_estimate: f64) -> f64 {
        let [n, est, obs] = self.cost[m];
        if n <= 0.0 {
            return price_estimate;
        }
        if est > 0.0 {
            // One pseudo-observation at the price estimate.
            let prior = est / n;
            price_estimate * (obs + prior) / (est + prior)
        } else {
            price_estimate + obs / n
        }
    }
}

struct Shared<L: Learned> {
    config: L::Config,
    pool: ModelPool,
    dim: usize,
    embedding_model: Option<String>,
    state: RwLock<State<L>>,
}

/// A contextual-bandit router: a [`Learned`] quality model, the cost calibration, the forgetting
/// rules and the lock that lets it route and learn at once. See the [module documentation](self).
pub struct BanditRouter<L: Learned> {
    shared: Arc<Shared<L>>,
    greedy: bool,
}

impl<L: Learned> std::fmt::Debug for BanditRouter<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BanditRouter")
            .field("kind", &L::KIND)
            .field("models", &self.shared.pool.ids().collect::<Vec<_>>())
            .field("dim", &self.shared.dim)
            .field("observations", &self.observations())
            .field("greedy", &self.greedy)
            .finish()
    }
}

impl<L: Learned> BanditRouter<L> {
    /// A router for the models of `pool` and embeddings of `dim` values (made by
    /// `embedding_model`, when known) that has observed nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid configuration.
    pub fn new(
        pool: ModelPool,
        dim: usize,
        embedding_model: Option<&str>,
        config: L::Config,
    ) -> Result<Self> {
        L::validate(&config)?;
        if dim == 0 {
            return Err(Error::Config("embedding dimension must be positive".into()));
        }
        let learned = L::cold(&config, pool.len(), dim)?;
        let greedy = L::is_greedy(&config);
        let state = State::cold(learned, pool.len());
        Ok(BanditRouter {
            shared: Arc::new(Shared {
                config,
                pool,
                dim,
                embedding_model: embedding_model.map(str::to_string),
                state: RwLock::new(state),
            }),
            greedy,
        })
    }

    /// A router fitted on the labelled split `train`: its unsupervised parts on the split's
    /// embeddings, then every model's outcome on every query (full information).
    ///
    /// # Errors
    ///
    /// A split without embeddings, an invalid configuration, and the errors of
    /// [`BanditRouter::observe_split`].
    pub fn warm_start(train: &Split, config: L::Config) -> Result<Self> {
        let batch = train.features()?;
        let router = BanditRouter::new(
            train.pool().clone(),
            train.dim(),
            train.embedding_model(),
            config,
        )?;
        router.fit_unlabelled_if_needed(&batch)?;
        router.observe_split(train)?;
        Ok(router)
    }

    fn fit_unlabelled_if_needed(&self, batch: &FeatureBatch<'_>) -> Result<()> {
        match self.fit_unlabelled(batch) {
            Err(Error::Unsupported(_)) => Ok(()),
            other => other,
        }
    }

    /// Fits the unsupervised parts on unlabelled embeddings: the PCA projection of a linear
    /// router, the clusters of `cluster-ucb`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the configuration has nothing to fit; [`Error::InvalidInput`]
    /// when it is already fitted or there are too few rows; the batch's shape errors.
    pub fn fit_unlabelled(&self, batch: &FeatureBatch<'_>) -> Result<()> {
        batch.check_compatible(self.shared.dim, self.shared.embedding_model.as_deref())?;
        let rows = normalized_rows(batch);
        let mut state = self.write();
        let config = &self.shared.config;
        state.learned.fit_unlabelled(config, &rows, self.shared.dim)
    }

    /// Learns every model's outcome on every query of the labelled `split` (full information),
    /// in the split's order. The drift detector is not fed: labelled data is trusted.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] when the split's models differ from the router's; a split without
    /// embeddings or of another dimension.
    pub fn observe_split(&self, split: &Split) -> Result<()> {
        let map = split_map(&self.shared.pool, split)?;
        let batch = split.features()?;
        batch.check_compatible(self.shared.dim, self.shared.embedding_model.as_deref())?;
        let m = self.shared.pool.len();
        let rows = normalized_rows(&batch);
        let mut scores = vec![0.0; split.len() * m];
        for r in 0..split.len() {
            for (j, &col) in map.iter().enumerate() {
                scores[r * m + j] = split.score(r, col);
            }
        }
        let mut state = self.write();
        let config = &self.shared.config;
        state
            .learned
            .observe_all(config, &rows, self.shared.dim, &scores, m)?;
        for r in 0..split.len() {
            let tokens = Some(split.prompt_tokens()[r]);
            for (j, &col) in map.iter().enumerate() {
                let c = &mut state.cost[j];
                c[0] += 1.0;
                c[1] += self.shared.pool.estimate_cost(j, tokens);
                c[2] += split.cost(r, col);
            }
        }
        let n = split.len() as u64;
        for p in &mut state.pulls {
            *p += n;
        }
        state.observations += n * m as u64;
        Ok(())
    }

    /// A handle on the same learned state that routes without exploration: each model's
    /// estimate is its posterior mean. Observations through either handle reach both.
    pub fn greedy(&self) -> Self {
        BanditRouter {
            shared: Arc::clone(&self.shared),
            greedy: true,
        }
    }

    /// A handle on the same learned state that explores (the opposite of
    /// [`BanditRouter::greedy`]).
    pub fn exploring(&self) -> Self {
        BanditRouter {
            shared: Arc::clone(&self.shared),
            greedy: false,
        }
    }

    /// Whether this handle routes without exploration.
    pub fn is_greedy(&self) -> bool {
        self.greedy
    }

    /// An independent copy of the router and its learned state.
    pub fn snapshot(&self) -> Self {
        let state = self.read().clone();
        BanditRouter {
            shared: Arc::new(Shared {
                config: self.shared.config.clone(),
                pool: self.shared.pool.clone(),
                dim: self.shared.dim,
                embedding_model: self.shared.embedding_model.clone(),
                state: RwLock::new(state),
            }),
            greedy: self.greedy,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &L::Config {
        &self.shared.config
    }

    /// Observations per model so far (merges included).
    pub fn pulls(&self) -> Vec<u64> {
        self.read().pulls.clone()
    }

    /// Wipes model `id`'s statistics, as a detector alarm does: its estimate falls back to the
    /// optimistic prior and it is re-learned from fresh outcomes. Use it to broadcast an alarm
    /// raised on another replica, or after a known change of a model.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] when `id` is not in the pool.
    pub fn forget_model(&self, id: &str) -> Result<()> {
        let m = self.shared.pool.index_of(id)?;
        let mut state = self.write();
        state.learned.forget(&self.shared.config, m);
        state.forgets[m] += 1;
        state.detector[m] = DetectorState::default();
        Ok(())
    }

    /// Adds everything `other` observed (beyond its prior) to this router. See the
    /// [module documentation](self#merging-replicas) for what this means with forgetting.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the routers differ in configuration, models, dimension, projection
    /// or clusters; [`Error::Unsupported`] for `cluster-ucb` routers whose clusters are not
    /// fitted yet.
    pub fn merge(&self, other: &Self) -> Result<()> {
        let other = other.read().clone();
        self.merge_state(&other, None)
    }

    /// Adds what `other` observed after it was forked (by [`BanditRouter::snapshot`], or by
    /// saving and loading) from `base`: replicas that start from one warm-started router merge
    /// their traffic without counting the warm start twice.
    ///
    /// # Errors
    ///
    /// As [`BanditRouter::merge`]; [`Error::InvalidInput`] when `other` has fewer observations of
    /// some model than `base` (it does not descend from `base`).
    pub fn merge_since(&self, other: &Self, base: &Self) -> Result<()> {
        let other = other.read().clone();
        let base = base.read().clone();
        self.merge_state(&other, Some(&base))
    }

    fn merge_state(&self, other: &State<L>, base: Option<&State<L>>) -> Result<()> {
        let m = self.shared.pool.len();
        if other.pulls.len() != m || base.is_some_and(|b| b.pulls.len() != m) {
            return Err(Error::Config(
                "cannot merge routers over different model pools".into(),
            ));
        }
        let mut state = self.write();
        state.learned.check_mergeable(&other.learned)?;
        if let Some(b) = base {
            state.learned.check_mergeable(&b.learned)?;
        }
        let mut new = vec![0u64; m];
        for (j, n) in new.iter_mut().enumerate() {
            let before = base.map_or(0, |b| b.pulls[j]);
            *n = other.pulls[j].checked_sub(before).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "the other router has {} observations of {:?}, its base {before}: it does not \
                     descend from the base",
                    other.pulls[j],
                    self.shared.pool.id(j)
                ))
            })?;
        }
        let config = &self.shared.config;
        for (j, &new_j) in new.iter().enumerate() {
            let forgot = other.forgets[j] > base.map_or(0, |b| b.forgets[j]);
            if forgot {
                state.learned.forget(config, j);
                state.forgets[j] += 1;
            }
            let b = if forgot {
                None
            } else {
                base.map(|b| &b.learned)
            };
            state.learned.absorb(config, &other.learned, b, j, new_j);
            state.pulls[j] += new_j;
            for k in 0..3 {
                state.cost[j][k] += other.cost[j][k] - base.map_or(0.0, |b| b.cost[j][k]);
            }
        }
        state.observations += other.observations - base.map_or(0, |b| b.observations);
        state.learned.after_merge(config)
    }

    /// Rebuilds a router from its saved form.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for missing or misshapen tensors, values out of range, or a file of
    /// another router kind.
    pub fn from_saved(config: L::Config, mut saved: SavedRouter) -> Result<Self> {
        let bad = |m: String| Error::format("saved router", m);
        L::validate(&config).map_err(|e| bad(e.to_string()))?;
        let m = saved.pool.len();
        let dim = saved.dim;
        let k = L::KIND;
        let counts = |v: Vec<f64>, what: &str| -> Result<Vec<u64>> {
            v.into_iter()
                .map(|x| {
                    if x >= 0.0 && x.fract() == 0.0 && x < 9.0e15 {
                        Ok(x as u64)
                    } else {
                        Err(bad(format!("{k}.{what}: {x} is not a count")))
                    }
                })
                .collect()
        };
        let observations = counts(
            saved.take_f64(&format!("{k}.observations"), &[1])?,
            "observations",
        )?[0];
        let pulls = counts(saved.take_f64(&format!("{k}.pulls"), &[m])?, "pulls")?;
        let forgets = counts(saved.take_f64(&format!("{k}.forgets"), &[m])?, "forgets")?;
        let alarms = counts(saved.take_f64(&format!("{k}.alarms"), &[m])?, "alarms")?;
        let det = saved.take_f64(&format!("{k}.detector"), &[m, 3])?;
        let since = counts(det.chunks_exact(3).map(|c| c[2]).collect(), "detector")?;
        let detector: Vec<DetectorState> = det
            .chunks_exact(3)
            .zip(since)
            .map(|(c, since)| DetectorState {
                fast: c[0],
                slow: c[1],
                since,
            })
            .collect();
        if detector
            .iter()
            .any(|d| !d.fast.is_finite() || !d.slow.is_finite())
        {
            return Err(bad(format!("{k}.detector holds non-finite values")));
        }
        let cost_flat = saved.take_f64(&format!("{k}.cost"), &[m, 3])?;
        if cost_flat.iter().any(|c| !c.is_finite() || *c < 0.0) {
            return Err(bad(format!("{k}.cost holds values out of range")));
        }
        let cost = cost_flat
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        let learned = L::load(&config, &mut saved, m, dim)?;
        let greedy = L::is_greedy(&config);
        Ok(BanditRouter {
            shared: Arc::new(Shared {
                config,
                pool: saved.pool,
                dim,
                embedding_model: saved.embedding_model,
                state: RwLock::new(State {
                    learned,
                    observations,
                    pulls,
                    forgets,
                    alarms,
                    detector,
                    cost,
                }),
            }),
            greedy,
        })
    }

    /// Loads a router of this kind saved by [`Router::save`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`], [`Error::Format`] naming the file (also for a file of another kind).
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let what = path.display().to_string();
        let saved = SavedRouter::load(path)?;
        Self::from_saved_any(saved).map_err(|e| match e {
            Error::Format {
                path,
                line,
                message,
            } if path == "saved router" => Error::Format {
                path: what.clone(),
                line,
                message,
            },
            other => other,
        })
    }

    /// Rebuilds a router from a saved form of any config, refusing other kinds.
    fn from_saved_any(saved: SavedRouter) -> Result<Self> {
        let config = L::config_from(&saved.config).ok_or_else(|| {
            Error::format(
                "saved router",
                format!("not a {} router: {:?}", L::KIND, saved.config),
            )
        })?;
        Self::from_saved(config, saved)
    }

    fn read(&self) -> RwLockReadGuard<'_, State<L>> {
        // A panic while holding the lock cannot leave the statistics half-updated in a way
        // routing cannot read (every update writes plain numbers), so poisoning is ignored.
        self.shared
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State<L>> {
        self.shared
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Rows of `batch`, L2-normalised, row-major.
fn normalized_rows(batch: &FeatureBatch<'_>) -> Vec<f32> {
    let dim = batch.dim();
    let mut rows = vec![0.0f32; batch.rows() * dim];
    for (r, out) in rows.chunks_exact_mut(dim).enumerate() {
        normalize_into(batch.row(r), out);
    }
    rows
}

/// For each of the router's models, its column in `split`.
fn split_map(pool: &ModelPool, split: &Split) -> Result<Vec<usize>> {
    pool.ids()
        .map(|id| {
            split.pool().index_of(id).map_err(|_| {
                Error::UnknownModel(format!("{id} (the router's model is not in the split)"))
            })
        })
        .collect()
}

impl<L: Learned> Router for BanditRouter<L> {
    fn kind(&self) -> &'static str {
        L::KIND
    }

    fn models(&self) -> &ModelPool {
        &self.shared.pool
    }

    fn dim(&self) -> usize {
        self.shared.dim
    }

    fn embedding_model(&self) -> Option<&str> {
        self.shared.embedding_model.as_deref()
    }

    fn estimate(&self, batch: &FeatureBatch<'_>, out: &mut Estimates) -> Result<()> {
        let state = self.read();
        let ctx = Context {
            observations: state.observations,
            explore: !self.greedy,
        };
        let mut x = vec![0.0f32; self.shared.dim];
        for r in 0..batch.rows() {
            normalize_into(batch.row(r), &mut x);
            let (q, c) = out.row_mut(r);
            let signals = state.learned.estimate(&self.shared.config, &x, &ctx, q)?;
            let tokens = batch.prompt_tokens(r);
            for (m, c) in c.iter_mut().enumerate() {
                *c = state.cost_estimate(m, self.shared.pool.estimate_cost(m, tokens));
            }
            out.signals[r] = signals;
        }
        Ok(())
    }

    fn to_saved(&self) -> Result<SavedRouter> {
        let state = self.read();
        let config = L::with_greedy(&self.shared.config, self.greedy);
        let k = L::KIND;
        let m = self.shared.pool.len();
        let f = |v: &[u64]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let saved = SavedRouter::new(
            L::router_config(&config),
            self.shared.pool.clone(),
            self.shared.embedding_model.clone(),
            self.shared.dim,
        )
        .with_tensor(
            &format!("{k}.observations"),
            Tensor::f64(&[1], vec![state.observations as f64]),
        )
        .with_tensor(&format!("{k}.pulls"), Tensor::f64(&[m], f(&state.pulls)))
        .with_tensor(
            &format!("{k}.forgets"),
            Tensor::f64(&[m], f(&state.forgets)),
        )
        .with_tensor(&format!("{k}.alarms"), Tensor::f64(&[m], f(&state.alarms)))
        .with_tensor(
            &format!("{k}.detector"),
            Tensor::f64(
                &[m, 3],
                state
                    .detector
                    .iter()
                    .flat_map(|d| [d.fast, d.slow, d.since as f64])
                    .collect(),
            ),
        )
        .with_tensor(
            &format!("{k}.cost"),
            Tensor::f64(&[m, 3], state.cost.iter().flatten().copied().collect()),
        );
        Ok(state.learned.save(saved))
    }

    fn as_learner(&self) -> Option<&dyn Learner> {
        Some(self)
    }

    fn choice_probability(&self, _mask: Option<&[bool]>) -> Option<f64> {
        // A posterior sample's chance of ranking first has no closed form.
        (!L::samples() || self.greedy).then_some(1.0)
    }
}

impl<L: Learned> Learner for BanditRouter<L> {
    fn observe(&self, feedback: &Feedback<'_>) -> Result<()> {
        let pool = &self.shared.pool;
        feedback.validate(pool, self.shared.dim)?;
        feedback
            .features
            .as_batch()
            .check_compatible(self.shared.dim, self.shared.embedding_model.as_deref())?;
        let x = feedback.features.embedding();
        let m = feedback.model;
        let config = &self.shared.config;
        let detector = L::forgetting(config).detector.as_ref();
        let price = pool.estimate_cost(m, feedback.features.prompt_tokens());
        let mut state = self.write();
        let residual = match detector {
            Some(_) => Some(feedback.quality - state.learned.mean(config, x, m)?),
            None => None,
        };
        state.learned.observe(config, x, m, feedback.quality)?;
        state.pulls[m] += 1;
        state.observations += 1;
        let c = &mut state.cost[m];
        c[0] += 1.0;
        c[1] += price;
        c[2] += feedback.cost;
        if let (Some(det), Some(e)) = (detector, residual) {
            let s = &mut state.detector[m];
            s.fast += det.fast_rate * (e - s.fast);
            s.slow += det.slow_rate * (e - s.slow);
            s.since += 1;
            if s.since >= det.min_pulls && s.fast - s.slow < -det.threshold {
                *s = DetectorState::default();
                state.learned.forget(config, m);
                state.forgets[m] += 1;
                state.alarms[m] += 1;
                tracing::info!(
                    "{}: drift detector alarm for {:?} after {} observations: its statistics \
                     are wiped",
                    L::KIND,
                    pool.id(m),
                    state.observations
                );
            }
        }
        Ok(())
    }

    fn observations(&self) -> u64 {
        self.read().observations
    }

    fn alarms(&self) -> Vec<u64> {
        self.read().alarms.clone()
    }
}

/// Checks that `a` and `b` hold the same `f32` values, bit for bit (projections, centroids).
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[cfg(test)]
mod tests;
