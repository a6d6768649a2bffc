//! The router handle: the learned state behind its lock, the handles on it (greedy, exploring,
//! independent copies), and routing.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::forgetting::DetectorState;
use super::{Context, Learned};
use crate::error::{Error, Result};
use crate::features::{normalize_into, FeatureBatch};
use crate::pool::ModelPool;
use crate::router::{Estimates, Learner, Router};
use crate::saved::{SavedRouter, MAX_DIM};

/// Everything a router learns, behind its lock.
#[derive(Debug, Clone)]
pub(super) struct State<L> {
    pub(super) learned: L,
    pub(super) observations: u64,
    /// Observations per model, ever (merges included).
    pub(super) pulls: Vec<u64>,
    /// Times each model's statistics were wiped (detector alarms and `forget_model`).
    pub(super) forgets: Vec<u64>,
    /// Detector alarms per model.
    pub(super) alarms: Vec<u64>,
    pub(super) detector: Vec<DetectorState>,
    /// Per model: observations with a cost, Σ estimated cost, Σ observed cost.
    pub(super) cost: Vec<[f64; 3]>,
    /// This replica's own events since they were last taken, while it shares its state
    /// ([`BanditRouter::start_journal`]).
    pub(super) journal: Option<super::Journal>,
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
            journal: None,
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

pub(super) struct Shared<L: Learned> {
    pub(super) config: L::Config,
    pub(super) pool: ModelPool,
    pub(super) dim: usize,
    pub(super) embedding_model: Option<String>,
    pub(super) state: RwLock<State<L>>,
}

/// A contextual-bandit router: a [`Learned`] quality model, the cost calibration, the forgetting
/// rules and the lock that lets it route and learn at once. See the [module documentation](super).
pub struct BanditRouter<L: Learned> {
    pub(super) shared: Arc<Shared<L>>,
    pub(super) greedy: bool,
}

/// A second handle on the same learned state, routing as this one does (greedy or exploring);
/// observations through either reach both. [`BanditRouter::snapshot`] makes an independent copy.
impl<L: Learned> Clone for BanditRouter<L> {
    fn clone(&self) -> Self {
        BanditRouter {
            shared: Arc::clone(&self.shared),
            greedy: self.greedy,
        }
    }
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
        if dim > MAX_DIM {
            return Err(Error::Config(format!(
                "embedding dimension {dim} is above the ceiling of {MAX_DIM}"
            )));
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
        let mut state = self.read().clone();
        state.journal = None;
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

    pub(super) fn read(&self) -> RwLockReadGuard<'_, State<L>> {
        // A panic while holding the lock cannot leave the statistics half-updated in a way
        // routing cannot read (every update writes plain numbers), so poisoning is ignored.
        self.shared
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn write(&self) -> RwLockWriteGuard<'_, State<L>> {
        self.shared
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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
            let (q, c, s) = out.row_mut_with_score(r);
            let signals = state
                .learned
                .estimate(&self.shared.config, &x, &ctx, q, s)?;
            // The choice uses the score (the mean, unclipped, plus any exploration); the
            // expected quality reported is the mean within [0, 1].
            for q in q.iter_mut() {
                *q = q.clamp(0.0, 1.0);
            }
            let tokens = batch.prompt_tokens(r);
            for (m, c) in c.iter_mut().enumerate() {
                *c = state.cost_estimate(m, self.shared.pool.estimate_cost(m, tokens));
            }
            out.signals[r] = signals;
        }
        Ok(())
    }

    fn to_saved(&self) -> Result<SavedRouter> {
        self.saved_form()
    }

    fn as_learner(&self) -> Option<&dyn Learner> {
        Some(self)
    }

    fn choice_probability(&self, _mask: Option<&[bool]>) -> Option<f64> {
        // A posterior sample's chance of ranking first has no closed form.
        (!L::samples() || self.greedy).then_some(1.0)
    }
}
