//! Cascade router: call a cheap model first, look at how confident its answer is, and escalate
//! only when the answer does not look good enough (FrugalGPT, Chen et al. 2023; AutoMix, Madaan
//! et al. 2023), within a per-query budget and a maximum number of calls.
//!
//! A router decides before any model runs; a cascade decides after each answer. The caller
//! drives a [`Session`] per query:
//!
//! ```text
//! session = router.start(query)          → the first model to call
//! loop: call that model, rate its answer with a confidence c ∈ [0, 1]
//!       session.observe(model, c)        → Escalate(next model) | Accept(outcome)
//! ```
//!
//! The [`CascadeOutcome`] names the accepted answer, every model invoked in order, their total
//! cost and why the cascade stopped ([`StopReason`]), including a budget that ran out.
//!
//! # The rule
//!
//! Each model's chance of answering well (`score ≥ success_threshold`) is estimated *given what
//! has failed so far*: with a kNN estimator, from the query's training neighbours on which every
//! model tried so far also failed; without one, from the whole training set the same way.
//!
//! ```text
//! p_j(T) = (Σ_i w_i·A_i(T)·y_ij + s0·p0_j) / (Σ_i w_i·A_i(T) + s0)     A_i(T) = Π_{t∈T} (1 − y_it)
//! r      = p·L1 / (p·L1 + (1 − p)·L0)     L1 = c(1 − ε) + (1 − c)ε,  L0 = cε + (1 − c)(1 − ε)
//! gain_j = (1 − V)·p_j(T) − μ·cost_j                                   V = best posterior so far
//! ```
//!
//! After each answer the posterior `r` that it is right combines the estimate with the
//! confidence, read as a vote that errs with probability `ε`
//! ([`CascadeConfig::confidence_error`]). The answer is accepted when `r` reaches the stage's
//! threshold; otherwise the cascade calls the next model if its gain — the chance that it rescues
//! a query whose best answer so far is wrong, minus the cost weight `μ` times its cost — is
//! positive. A fixed chain takes its stages in order (skipping stages predicted not worth their
//! cost); a dynamic cascade takes the untried model of largest gain, optionally valued with a
//! one-step look-ahead (the gain plus the expected gain of the best follow-up call), which is
//! what makes calling a cheap model first worth it. When the cascade stops without accepting,
//! the answer with the highest posterior is used.
//!
//! The rule takes whatever confidence the caller has — a log-probability turned into a
//! probability, self-consistency, a verifier's score. Evaluations without real confidences use
//! a simulated judge (see [`SimulatedJudge`]).
//!
//! # Example
//!
//! ```
//! use pointsman::data::Split;
//! use pointsman::routers::cascade::{CascadeConfig, CascadeLimits, CascadeRouter, Step};
//! use pointsman::{ModelCard, ModelPool, QueryFeatures};
//! let pool = ModelPool::new(vec![ModelCard::new("small", 0.1, 0.1), ModelCard::new("large", 2.0, 2.0)])?;
//! let config = CascadeConfig::chain([("small", 0.8), ("large", 0.0)]);
//! let router = CascadeRouter::new(pool, 2, &config)?;
//! let query = QueryFeatures::new(vec![1.0, 0.0])?;
//! let mut session = router.start(&query, &CascadeLimits::default())?;
//! assert_eq!(session.next().unwrap().model_id, "small");
//! // The small model's answer looks wrong: escalate.
//! let Step::Escalate(next) = session.observe(0, 0.1)? else { panic!() };
//! assert_eq!(next.model_id, "large");
//! let Step::Accept(outcome) = session.observe(1, 0.9)? else { panic!() };
//! assert_eq!(outcome.accepted_id, "large");
//! assert_eq!(outcome.invoked.len(), 2);
//! # Ok::<(), pointsman::Error>(())
//! ```

mod calibrate;
mod engine;
mod judge;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::data::Split;
use crate::error::{Error, Result};
use crate::features::{FeatureBatch, QueryFeatures};
use crate::kind::RouterKind;
use crate::pool::ModelPool;
use crate::router::{Estimates, Objective, Router, Signals};
use crate::routers::knn::{KnnConfig, KnnRouter};
use crate::saved::{SavedRouter, Tensor};

pub use calibrate::{
    confidence_error, CalibrationTarget, CascadeCalibration, CascadeSearch, ChainCandidate,
    ChainReport, ChainSearch,
};
pub use judge::{SimulatedJudge, DEFAULT_JUDGE_NOISE};
/// The most models a cascade handles.
pub const MAX_CASCADE_MODELS: usize = engine::MAX_MODELS;

use engine::{BeginError, Evidence, Next, Params, Patterns, Plan, Scratch, State};

/// One stage of a fixed chain: a model and the posterior at which its answer is accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The model's id.
    pub model: String,
    /// Accept the answer when the posterior that it is right reaches this value (in [0, 1];
    /// 0 accepts any answer, so later stages are never reached).
    pub threshold: f64,
}

/// How a cascade chooses the next model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CascadeOrder {
    /// Each next model is the untried model of largest value (see the module documentation);
    /// needs training data.
    Dynamic,
    /// A fixed chain of stages, called in order; a stage whose gain is not positive is skipped.
    Chain {
        /// The stages, first first.
        stages: Vec<Stage>,
    },
}

/// Hyper-parameters of a [`CascadeRouter`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CascadeConfig {
    /// Fixed chain or dynamic choice.
    pub order: CascadeOrder,
    /// Dynamic cascades: accept an answer whose posterior reaches this value.
    pub accept_threshold: f64,
    /// μ: quality points given up per USD when deciding whether a call is worth it; the default
    /// for sessions ([`CascadeRouter::start`]) and what [`CascadeRouter::calibrate`] sets.
    pub cost_weight: f64,
    /// Most models called per query.
    pub max_steps: usize,
    /// ε: how often the caller's confidence votes wrong (in [0, 0.5]; 0.5 ignores it).
    pub confidence_error: f64,
    /// s0: pseudo-queries of the unconditional estimate in each conditional estimate.
    pub prior_strength: f64,
    /// Dynamic cascades: value each candidate with a one-step look-ahead.
    pub lookahead: bool,
    /// A score at or above this counts as a good answer.
    pub success_threshold: f64,
    /// The per-query quality estimator: a kNN over the training queries. `None`: each model's
    /// (conditional) success rate over the whole training set.
    pub estimator: Option<KnnConfig>,
}

impl Default for CascadeConfig {
    fn default() -> Self {
        CascadeConfig {
            order: CascadeOrder::Dynamic,
            accept_threshold: 0.6,
            cost_weight: 0.0,
            max_steps: 5,
            confidence_error: 0.1,
            prior_strength: 5.0,
            lookahead: true,
            success_threshold: 0.5,
            estimator: Some(KnnConfig::default()),
        }
    }
}

impl CascadeConfig {
    /// A fixed chain of `(model id, threshold)` stages without an estimator: the FrugalGPT
    /// cascade, which [`CascadeRouter::new`] builds without training data.
    pub fn chain<I, S>(stages: I) -> Self
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        CascadeConfig {
            order: CascadeOrder::Chain {
                stages: stages
                    .into_iter()
                    .map(|(model, threshold)| Stage {
                        model: model.into(),
                        threshold,
                    })
                    .collect(),
            },
            estimator: None,
            ..Default::default()
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        let unit = |name: &str, v: f64| -> Result<()> {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "cascade {name} {v} is outside [0, 1]"
                )))
            }
        };
        unit("accept_threshold", self.accept_threshold)?;
        unit("success_threshold", self.success_threshold)?;
        if !(0.0..=0.5).contains(&self.confidence_error) {
            return Err(Error::Config(format!(
                "cascade confidence_error {} is outside [0, 0.5]",
                self.confidence_error
            )));
        }
        for (name, v) in [
            ("cost_weight", self.cost_weight),
            ("prior_strength", self.prior_strength),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::Config(format!(
                    "cascade {name} {v} is not a non-negative number"
                )));
            }
        }
        if self.max_steps == 0 {
            return Err(Error::Config("cascade max_steps must be at least 1".into()));
        }
        if let CascadeOrder::Chain { stages } = &self.order {
            if stages.is_empty() {
                return Err(Error::Config(
                    "a cascade chain needs at least one stage".into(),
                ));
            }
            for (i, s) in stages.iter().enumerate() {
                unit(&format!("stage {i} threshold"), s.threshold)?;
                if stages[..i].iter().any(|t| t.model == s.model) {
                    return Err(Error::Config(format!(
                        "model {:?} appears twice in the cascade chain",
                        s.model
                    )));
                }
            }
        }
        if let Some(k) = &self.estimator {
            k.validate()
                .map_err(|e| Error::Config(format!("cascade estimator: {e}")))?;
        }
        Ok(())
    }
}

/// Per-session limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CascadeLimits {
    /// Most total expected cost (USD) the session may spend; `None`: no limit.
    pub budget: Option<f64>,
    /// Most models called; `None`: [`CascadeConfig::max_steps`].
    pub max_steps: Option<usize>,
}

impl CascadeLimits {
    /// Limits with a budget.
    pub fn with_budget(mut self, usd: f64) -> Self {
        self.budget = Some(usd);
        self
    }

    /// Limits with a maximum number of calls.
    pub fn with_max_steps(mut self, steps: usize) -> Self {
        self.max_steps = Some(steps);
        self
    }
}

/// Why a session stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The last answer's posterior reached its threshold.
    Accepted,
    /// No remaining model was worth its cost.
    NotWorthEscalating,
    /// Every allowed model (every stage of the chain) was tried.
    OutOfModels,
    /// The model worth calling next did not fit in the budget: the best answer so far is used.
    BudgetExhausted,
    /// The maximum number of calls was reached.
    MaxSteps,
    /// The caller finished the session before the cascade did ([`Session::finish`]).
    Stopped,
}

/// The model a session asks the caller to call next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextCall {
    /// Index in the router's pool.
    pub model: usize,
    /// The model's id.
    pub model_id: String,
    /// Its estimated chance of a good answer, given what has failed so far.
    pub expected_quality: f64,
    /// Its expected cost in USD.
    pub expected_cost: f64,
}

/// One model call of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// Index in the router's pool.
    pub model: usize,
    /// The model's id.
    pub model_id: String,
    /// The confidence the caller observed.
    pub confidence: f64,
    /// The posterior that the answer is right.
    pub posterior: f64,
    /// The call's cost in USD (observed when given, else expected).
    pub cost: f64,
}

/// The end of a session: which answer to use and what it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CascadeOutcome {
    /// Index of the model whose answer is used.
    pub accepted: usize,
    /// Its id.
    pub accepted_id: String,
    /// The posterior that this answer is right.
    pub posterior: f64,
    /// Every model invoked, in order.
    pub invoked: Vec<Invocation>,
    /// Sum of the invocations' costs, USD.
    pub total_cost: f64,
    /// True when the budget stopped the cascade before it would have stopped on its own: the
    /// answer is the best so far, not an accepted one.
    pub budget_exhausted: bool,
    /// Why the session stopped.
    pub stop: StopReason,
}

/// What to do after an observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Call this model next and observe its answer.
    Escalate(NextCall),
    /// The session is over.
    Accept(CascadeOutcome),
}

/// One query's run through a cascade. Owns its state (no borrow of the router), so sessions
/// are independent, `Send`, and may outlive the call that started them.
#[derive(Debug)]
pub struct Session {
    ids: Arc<[String]>,
    evidence: Evidence,
    params: Params,
    state: State,
    scratch: Scratch,
    invoked: Vec<Invocation>,
    next: Option<NextCall>,
    outcome: Option<CascadeOutcome>,
}

impl Session {
    /// The model to call now; `None` once the session is over.
    pub fn next(&self) -> Option<&NextCall> {
        self.next.as_ref()
    }

    /// The outcome, once the session is over.
    pub fn outcome(&self) -> Option<&CascadeOutcome> {
        self.outcome.as_ref()
    }

    /// The models invoked so far, in order.
    pub fn invoked(&self) -> &[Invocation] {
        &self.invoked
    }

    /// The cost spent so far, USD.
    pub fn total_cost(&self) -> f64 {
        self.state.total_cost
    }

    /// Records the confidence of the answer of `model` (which must be the model the session
    /// asked for), charging its expected cost, and says what to do next.
    ///
    /// # Errors
    ///
    /// [`Error::SessionFinished`] when the session is over; [`Error::UnknownModel`] for an index
    /// outside the pool; [`Error::SessionOutOfOrder`] when `model` is not the model asked for;
    /// [`Error::InvalidInput`] when `confidence` is NaN or outside [0, 1]. A failed call leaves
    /// the session as it was.
    pub fn observe(&mut self, model: usize, confidence: f64) -> Result<Step> {
        self.observe_inner(model, confidence, None)
    }

    /// [`Session::observe`] with the call's observed cost (USD), which counts toward the budget
    /// instead of the expected cost.
    ///
    /// # Errors
    ///
    /// As [`Session::observe`]; [`Error::InvalidInput`] for a negative or non-finite cost.
    pub fn observe_with_cost(&mut self, model: usize, confidence: f64, cost: f64) -> Result<Step> {
        if !cost.is_finite() || cost < 0.0 {
            return Err(Error::InvalidInput(format!(
                "observed cost {cost} is not a non-negative number"
            )));
        }
        self.observe_inner(model, confidence, Some(cost))
    }

    /// [`Session::observe`] by model id.
    ///
    /// # Errors
    ///
    /// As [`Session::observe`]; [`Error::UnknownModel`] for an id not in the pool.
    pub fn observe_id(&mut self, model_id: &str, confidence: f64) -> Result<Step> {
        let model = self.model_index(model_id)?;
        self.observe(model, confidence)
    }

    /// The index of the model `model_id` in the router's pool.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] for an id not in the pool.
    pub fn model_index(&self, model_id: &str) -> Result<usize> {
        self.ids
            .iter()
            .position(|id| id == model_id)
            .ok_or_else(|| Error::UnknownModel(model_id.to_string()))
    }

    fn observe_inner(&mut self, model: usize, confidence: f64, cost: Option<f64>) -> Result<Step> {
        if let Some(done) = &self.outcome {
            return Err(Error::SessionFinished(format!(
                " (answer of {:?} used)",
                done.accepted_id
            )));
        }
        if model >= self.ids.len() {
            return Err(Error::UnknownModel(format!(
                "#{model} (the pool has {} models)",
                self.ids.len()
            )));
        }
        let pending = self
            .state
            .pending
            .expect("a session that has not ended has a pending model");
        if model != pending.model {
            return Err(Error::SessionOutOfOrder {
                expected: pending.model,
                expected_id: self.ids[pending.model].clone(),
                got: model,
                got_id: self.ids[model].clone(),
            });
        }
        if !(0.0..=1.0).contains(&confidence) {
            return Err(Error::InvalidInput(format!(
                "confidence {confidence} is outside [0, 1]"
            )));
        }
        let cost = cost.unwrap_or(self.evidence.costs[model]);
        let next = engine::observe(
            &self.evidence,
            &self.evidence.costs,
            &self.params,
            &mut self.state,
            &mut self.scratch,
            confidence,
            cost,
        );
        self.invoked.push(Invocation {
            model,
            model_id: self.ids[model].clone(),
            confidence,
            posterior: engine::posterior(pending.prior, confidence, self.params.eps),
            cost,
        });
        match next {
            Next::Call(p) => {
                let call = self.call(p);
                self.next = Some(call.clone());
                Ok(Step::Escalate(call))
            }
            Next::Stop { model, reason } => {
                self.next = None;
                let outcome = self.finish_with(model, reason);
                self.outcome = Some(outcome.clone());
                Ok(Step::Accept(outcome))
            }
        }
    }

    fn call(&self, p: engine::Pending) -> NextCall {
        NextCall {
            model: p.model,
            model_id: self.ids[p.model].clone(),
            expected_quality: p.prior,
            expected_cost: self.evidence.costs[p.model],
        }
    }

    fn finish_with(&self, model: usize, stop: StopReason) -> CascadeOutcome {
        let posterior = self
            .invoked
            .iter()
            .rev()
            .find(|i| i.model == model)
            .map_or(0.0, |i| i.posterior);
        CascadeOutcome {
            accepted: model,
            accepted_id: self.ids[model].clone(),
            posterior,
            invoked: self.invoked.clone(),
            total_cost: self.state.total_cost,
            budget_exhausted: stop == StopReason::BudgetExhausted,
            stop,
        }
    }

    /// Ends the session before the cascade does (a deadline, a caller that will call no more
    /// models): the answer with the highest posterior so far is used, with
    /// [`StopReason::Stopped`]. Stopping an ended session changes nothing. A stopped session
    /// takes no further observation.
    ///
    /// # Errors
    ///
    /// [`Error::SessionRunning`] when no answer has been observed yet (there is nothing to use;
    /// the session is unchanged).
    pub fn stop(&mut self) -> Result<&CascadeOutcome> {
        if self.outcome.is_none() {
            let Some((model, _)) = self.state.best else {
                return Err(Error::SessionRunning(
                    "no answer has been observed yet, so there is none to use".into(),
                ));
            };
            self.next = None;
            self.outcome = Some(self.finish_with(model, StopReason::Stopped));
        }
        Ok(self.outcome.as_ref().expect("set above"))
    }

    /// The outcome of an ended (or stopped) session.
    ///
    /// # Errors
    ///
    /// [`Error::SessionRunning`] while the session still asks for a model.
    pub fn result(&self) -> Result<&CascadeOutcome> {
        self.outcome.as_ref().ok_or_else(|| {
            Error::SessionRunning("observe until the cascade decides, or stop the session".into())
        })
    }

    /// Ends the session and returns its outcome: [`Session::stop`], by value.
    ///
    /// # Errors
    ///
    /// As [`Session::stop`].
    pub fn finish(mut self) -> Result<CascadeOutcome> {
        self.stop()?;
        Ok(self.outcome.expect("stop sets the outcome"))
    }
}

/// Per query, its neighbours as (similarity, reference row).
type NeighbourLists = Vec<Vec<(f32, u32)>>;

/// A fitted cascade. See the [module documentation](self).
#[derive(Clone)]
pub struct CascadeRouter {
    config: CascadeConfig,
    pool: ModelPool,
    ids: Arc<[String]>,
    dim: usize,
    embedding_model: Option<String>,
    /// Resolved chain stages (empty for dynamic cascades).
    chain: Vec<(usize, f64)>,
    /// Training success masks with their counts, sorted by mask.
    table: Arc<[(u32, f64)]>,
    table_rows: f64,
    /// Success count per model over the table.
    successes: Vec<f64>,
    knn: Option<Arc<KnnRouter>>,
    /// Success mask of each kNN reference row.
    reference_masks: Vec<u32>,
    /// Fingerprint of the split this router was fitted on in this process (for leave-one-out
    /// estimates when it is calibrated on the same split).
    fitted_on: Option<u64>,
    /// With an estimator fitted in this process: each training query's leave-one-out
    /// neighbours, by split row.
    loo: Option<Arc<NeighbourLists>>,
}

impl std::fmt::Debug for CascadeRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CascadeRouter")
            .field("config", &self.config)
            .field("models", &self.ids)
            .field("dim", &self.dim)
            .field("training_rows", &self.table_rows)
            .finish()
    }
}

/// A split's identity: its query ids and models.
fn fingerprint(split: &Split) -> u64 {
    let mut h = crate::rng::mix64(split.len() as u64 ^ 0x0063_6173_6361_6465);
    let mut eat = |s: &str| {
        for chunk in s.as_bytes().chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            h = crate::rng::mix64(h ^ u64::from_le_bytes(b));
        }
        h = crate::rng::mix64(h ^ s.len() as u64);
    };
    for id in split.pool().ids() {
        eat(id);
    }
    for id in split.ids() {
        eat(id);
    }
    h
}

fn success_mask(scores: impl Iterator<Item = f64>, threshold: f64) -> u32 {
    scores.enumerate().fold(
        0u32,
        |m, (j, s)| if s >= threshold { m | (1 << j) } else { m },
    )
}

impl CascadeRouter {
    /// A fixed-chain cascade without training data: every model's success prior is 0.5, so the
    /// thresholds apply to the confidence alone (through the posterior).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid config, a dynamic order or an estimator (both need
    /// training data: use [`CascadeRouter::fit`]), or more than 32 models;
    /// [`Error::UnknownModel`] for a stage whose model is not in `pool`.
    pub fn new(pool: ModelPool, dim: usize, config: &CascadeConfig) -> Result<CascadeRouter> {
        config.validate()?;
        if config.order == CascadeOrder::Dynamic {
            return Err(Error::Config(
                "a dynamic cascade needs training data: use CascadeRouter::fit".into(),
            ));
        }
        if config.estimator.is_some() {
            return Err(Error::Config(
                "a cascade estimator needs training data: use CascadeRouter::fit, or set estimator to None".into(),
            ));
        }
        if dim == 0 {
            return Err(Error::Config("cascade dim must be at least 1".into()));
        }
        CascadeRouter::assemble(config.clone(), pool, dim, None, Vec::new(), None, None)
    }

    /// Fits a cascade on a labelled split: the training table of success patterns and, when the
    /// config has one, the kNN estimator.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid config or more than 32 models; [`Error::UnknownModel`]
    /// for a chain stage not in the split's pool; [`Error::InvalidInput`] for an empty split or,
    /// with an estimator, one without embeddings.
    pub fn fit(train: &Split, config: &CascadeConfig) -> Result<CascadeRouter> {
        config.validate()?;
        if train.is_empty() {
            return Err(Error::InvalidInput(format!(
                "cannot fit a cascade on the empty {} split",
                train.name()
            )));
        }
        let m = train.pool().len();
        if m > engine::MAX_MODELS {
            return Err(Error::Config(format!(
                "a cascade handles at most {} models, the split has {m}",
                engine::MAX_MODELS
            )));
        }
        let mut counts: BTreeMap<u32, f64> = BTreeMap::new();
        for r in 0..train.len() {
            let mask = success_mask(
                train.scores()[r * m..(r + 1) * m].iter().copied(),
                config.success_threshold,
            );
            *counts.entry(mask).or_insert(0.0) += 1.0;
        }
        if train.dim() == 0 {
            return Err(Error::InvalidInput(format!(
                "the {} split has no embeddings",
                train.name()
            )));
        }
        let (knn, loo) = match &config.estimator {
            Some(k) => {
                let (knn, lists) = KnnRouter::fit_with_neighbours(train, k, k.k)?;
                (Some(Arc::new(knn)), Some(Arc::new(lists)))
            }
            None => (None, None),
        };
        let mut router = CascadeRouter::assemble(
            config.clone(),
            train.pool().clone(),
            train.dim(),
            train.embedding_model().map(str::to_string),
            counts.into_iter().collect(),
            knn,
            Some(fingerprint(train)),
        )?;
        router.loo = loo;
        Ok(router)
    }

    fn assemble(
        config: CascadeConfig,
        pool: ModelPool,
        dim: usize,
        embedding_model: Option<String>,
        table: Vec<(u32, f64)>,
        knn: Option<Arc<KnnRouter>>,
        fitted_on: Option<u64>,
    ) -> Result<CascadeRouter> {
        let m = pool.len();
        if m > engine::MAX_MODELS {
            return Err(Error::Config(format!(
                "a cascade handles at most {} models, the pool has {m}",
                engine::MAX_MODELS
            )));
        }
        let chain = match &config.order {
            CascadeOrder::Dynamic => Vec::new(),
            CascadeOrder::Chain { stages } => stages
                .iter()
                .map(|s| Ok((pool.index_of(&s.model)?, s.threshold)))
                .collect::<Result<_>>()?,
        };
        let mut successes = vec![0.0; m];
        let mut rows = 0.0;
        for &(mask, count) in &table {
            rows += count;
            for (j, s) in successes.iter_mut().enumerate() {
                if mask & (1 << j) != 0 {
                    *s += count;
                }
            }
        }
        let reference_masks = match &knn {
            Some(k) => k
                .reference_scores()
                .chunks_exact(m)
                .map(|row| {
                    success_mask(row.iter().map(|&s| f64::from(s)), config.success_threshold)
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(CascadeRouter {
            ids: pool.ids().map(str::to_string).collect(),
            config,
            pool,
            dim,
            embedding_model,
            chain,
            table: table.into(),
            table_rows: rows,
            successes,
            knn,
            reference_masks,
            fitted_on,
            loo: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CascadeConfig {
        &self.config
    }

    /// The same router under another configuration that keeps the estimator (order, thresholds,
    /// cost weight, confidence model, …).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid config, one whose estimator differs from this router's,
    /// or a dynamic order on a router without training data; [`Error::UnknownModel`] for a
    /// chain stage not in the pool.
    pub fn with_config(&self, config: &CascadeConfig) -> Result<CascadeRouter> {
        config.validate()?;
        if config.estimator != self.config.estimator {
            return Err(Error::Config(
                "with_config keeps the estimator: refit to change it".into(),
            ));
        }
        if config.order == CascadeOrder::Dynamic && self.table_rows == 0.0 {
            return Err(Error::Config(
                "a dynamic cascade needs training data: use CascadeRouter::fit".into(),
            ));
        }
        if config.success_threshold != self.config.success_threshold {
            return Err(Error::Config(
                "with_config keeps the success threshold: refit to change it".into(),
            ));
        }
        let mut r = CascadeRouter::assemble(
            config.clone(),
            self.pool.clone(),
            self.dim,
            self.embedding_model.clone(),
            self.table.to_vec(),
            self.knn.clone(),
            self.fitted_on,
        )?;
        // Share the table, so that simulations cache its sums once.
        r.table = self.table.clone();
        r.loo = self.loo.clone();
        Ok(r)
    }

    /// Starts a session for `query` with the router's cost weight, every model allowed.
    ///
    /// # Errors
    ///
    /// As [`CascadeRouter::start_with`].
    pub fn start(&self, query: &QueryFeatures, limits: &CascadeLimits) -> Result<Session> {
        let objective = Objective::new(self.config.cost_weight);
        self.start_with(query, &objective, limits)
    }

    /// Starts a session for `query` with the objective's cost weight (μ) and allowed models.
    ///
    /// # Errors
    ///
    /// Features that do not fit the router or an invalid objective (as [`Router::route`]);
    /// [`Error::BudgetTooSmall`] for a budget smaller
    /// than the expected cost of the first model (for a dynamic cascade: of the cheapest allowed
    /// model); [`Error::InvalidInput`] for a budget that is negative or not a number, for
    /// `max_steps` 0, or when no model of the chain is allowed.
    pub fn start_with(
        &self,
        query: &QueryFeatures,
        objective: &Objective,
        limits: &CascadeLimits,
    ) -> Result<Session> {
        let batch = query.as_batch();
        self.check_batch(&batch)?;
        let mask = objective.resolve(&self.pool)?;
        let budget = match limits.budget {
            None => f64::INFINITY,
            Some(b) if b.is_finite() && b >= 0.0 => b,
            Some(b) => {
                return Err(Error::InvalidInput(format!(
                    "budget {b} is not a non-negative number of USD"
                )))
            }
        };
        let max_steps = limits.max_steps.unwrap_or(self.config.max_steps);
        if max_steps == 0 {
            return Err(Error::InvalidInput("max_steps must be at least 1".into()));
        }
        let params = self.params(objective.cost_weight, mask.as_deref(), budget, max_steps);
        let evidence = self
            .evidence(&batch, None)?
            .pop()
            .expect("one evidence per row");
        let mut state = State::default();
        let mut scratch = Scratch::new();
        let first = engine::begin(
            &evidence,
            &evidence.costs,
            &params,
            &mut state,
            &mut scratch,
        )
        .map_err(|e| self.begin_error(e, budget))?;
        let mut session = Session {
            ids: self.ids.clone(),
            evidence,
            params,
            state,
            scratch,
            invoked: Vec::new(),
            next: None,
            outcome: None,
        };
        session.next = Some(session.call(first));
        Ok(session)
    }

    fn begin_error(&self, e: BeginError, budget: f64) -> Error {
        match e {
            BeginError::NoModel => {
                Error::InvalidInput("no model of the cascade is allowed by the objective".into())
            }
            BeginError::Budget { model, cost } => Error::BudgetTooSmall {
                budget,
                cost,
                model: self.ids[model].clone(),
                role: if self.chain.is_empty() {
                    "cheapest allowed model"
                } else {
                    "first model"
                },
            },
        }
    }

    fn params(&self, mu: f64, mask: Option<&[bool]>, budget: f64, max_steps: usize) -> Params {
        let allowed = (0..self.pool.len())
            .filter(|&j| mask.is_none_or(|m| m[j]))
            .fold(0u32, |a, j| a | (1 << j));
        Params {
            plan: if self.chain.is_empty() {
                Plan::Dynamic {
                    threshold: self.config.accept_threshold,
                }
            } else {
                Plan::Chain(self.chain.clone())
            },
            mu,
            eps: self.config.confidence_error,
            s0: self.config.prior_strength,
            max_steps,
            budget,
            lookahead: self.config.lookahead,
            allowed,
        }
    }

    /// Each model's success rate over the training table, without one query of mask `exclude`.
    fn rates(&self, exclude: Option<u32>) -> Vec<f64> {
        let (mut n, mut s) = (self.table_rows, self.successes.clone());
        if let Some(own) = exclude {
            n -= 1.0;
            for (j, v) in s.iter_mut().enumerate() {
                if own & (1 << j) != 0 {
                    *v -= 1.0;
                }
            }
        }
        if n <= 0.0 {
            return vec![0.5; s.len()];
        }
        s.iter().map(|v| (v / n).clamp(0.0, 1.0)).collect()
    }

    /// What the cascade knows about each row of `batch` before any call. With `own`, the rows
    /// are the training queries themselves, in split order, with these success masks: each is
    /// left out of its own estimate.
    fn evidence(&self, batch: &FeatureBatch<'_>, own: Option<&[u32]>) -> Result<Vec<Evidence>> {
        let m = self.pool.len();
        let Some(knn) = &self.knn else {
            return Ok((0..batch.rows())
                .map(|r| {
                    let exclude = own.map(|o| o[r]);
                    Evidence {
                        patterns: Patterns::Table(self.table.clone(), exclude),
                        p0: self.rates(exclude),
                        costs: (0..m)
                            .map(|j| self.pool.estimate_cost(j, batch.prompt_tokens(r)))
                            .collect(),
                        neighbours: (self.table_rows - f64::from(u8::from(exclude.is_some())))
                            .max(0.0) as u32,
                    }
                })
                .collect());
        };
        let k = knn.config().k;
        let (lists, searched) = match (own, &self.loo) {
            // The training queries themselves: their leave-one-out neighbours from the fit.
            (Some(_), Some(loo)) if loo.len() == batch.rows() => (loo.to_vec(), false),
            _ => (knn.neighbours(batch, k + usize::from(own.is_some()))?, true),
        };
        let weighting = knn.config().weighting;
        let beta = knn.config().shrinkage;
        let mut out = Vec::with_capacity(lists.len());
        let mut quality = vec![0.0; m];
        for (r, mut pairs) in lists.into_iter().enumerate() {
            let exclude = own.map(|o| o[r]);
            if own.is_some() && searched {
                match pairs
                    .iter()
                    .position(|&(_, i)| knn.source_row(i as usize) == Some(r))
                {
                    Some(p) => {
                        pairs.remove(p);
                    }
                    None => pairs.truncate(k),
                }
            }
            let mut costs = vec![0.0; m];
            knn.estimate_from_neighbours(
                &pairs,
                batch.task(r),
                batch.prompt_tokens(r),
                &mut quality,
                &mut costs,
            );
            let mut patterns: Vec<(u32, f64)> = pairs
                .iter()
                .map(|&(s, i)| (self.reference_masks[i as usize], weighting.weight(s)))
                .filter(|p| p.1 > 0.0)
                .collect();
            patterns.sort_by_key(|p| p.0);
            patterns.dedup_by(|b, a| {
                if a.0 == b.0 {
                    a.1 += b.1;
                    true
                } else {
                    false
                }
            });
            let rates = self.rates(exclude);
            let wsum: f64 = patterns.iter().map(|p| p.1).sum();
            let p0 = (0..m)
                .map(|j| {
                    let hits: f64 = patterns
                        .iter()
                        .filter(|p| p.0 & (1 << j) != 0)
                        .map(|p| p.1)
                        .sum();
                    if wsum + beta > 0.0 {
                        ((hits + beta * rates[j]) / (wsum + beta)).clamp(0.0, 1.0)
                    } else {
                        rates[j]
                    }
                })
                .collect();
            out.push(Evidence {
                neighbours: pairs.len() as u32,
                patterns: Patterns::Own(patterns),
                p0,
                costs,
            });
        }
        Ok(out)
    }

    /// Rebuilds a cascade from its saved form.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for an invalid config, missing or misshapen tensors, or values out of
    /// range.
    pub fn from_saved(config: CascadeConfig, mut saved: SavedRouter) -> Result<CascadeRouter> {
        let bad = |m: String| Error::format("saved router", m);
        config.validate().map_err(|e| bad(e.to_string()))?;
        let m = saved.pool.len();
        if m > engine::MAX_MODELS {
            return Err(bad(format!("a cascade with {m} models")));
        }
        let p = match saved.shape("cascade.table.masks") {
            Some([p]) => *p,
            _ => return Err(bad("missing or misshapen tensor cascade.table.masks".into())),
        };
        let masks = saved.take_u32("cascade.table.masks", &[p])?;
        let counts = saved.take_f64("cascade.table.counts", &[p])?;
        let limit = if m == 32 { u32::MAX } else { (1u32 << m) - 1 };
        if masks.iter().any(|&k| k > limit) || masks.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad(
                "cascade.table.masks are out of range or not sorted".into()
            ));
        }
        if counts.iter().any(|c| !c.is_finite() || *c < 0.0) {
            return Err(bad(
                "cascade.table.counts are not non-negative numbers".into()
            ));
        }
        if p == 0 && config.order == CascadeOrder::Dynamic {
            return Err(bad("a dynamic cascade without training data".into()));
        }
        let knn = match &config.estimator {
            None => None,
            Some(kc) => {
                let mut inner = SavedRouter::new(
                    RouterKind::Knn.name(),
                    kc,
                    saved.pool.clone(),
                    saved.embedding_model.clone(),
                    saved.dim,
                );
                let names: Vec<String> = saved
                    .tensors
                    .keys()
                    .filter(|k| k.starts_with("cascade.knn."))
                    .cloned()
                    .collect();
                for name in names {
                    let t = saved.tensors.remove(&name).expect("listed above");
                    inner
                        .tensors
                        .insert(name["cascade.".len()..].to_string(), t);
                }
                inner.notes = saved
                    .notes
                    .iter()
                    .filter_map(|(k, v)| {
                        k.strip_prefix("cascade.")
                            .filter(|k| k.starts_with("knn."))
                            .map(|k| (k.to_string(), v.clone()))
                    })
                    .collect();
                Some(Arc::new(KnnRouter::from_saved(kc.clone(), inner)?))
            }
        };
        CascadeRouter::assemble(
            config,
            saved.pool,
            saved.dim,
            saved.embedding_model,
            masks.into_iter().zip(counts).collect(),
            knn,
            None,
        )
        .map_err(|e| bad(e.to_string()))
    }

    /// The chain's stages as (model index, threshold); empty for a dynamic cascade.
    pub fn stages(&self) -> &[(usize, f64)] {
        &self.chain
    }
}

impl Router for CascadeRouter {
    fn kind(&self) -> &'static str {
        RouterKind::Cascade.name()
    }

    fn models(&self) -> &ModelPool {
        &self.pool
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }

    /// Each model's unconditional chance of a good answer and its expected cost.
    fn estimate(&self, batch: &FeatureBatch<'_>, out: &mut Estimates) -> Result<()> {
        for (r, ev) in self.evidence(batch, None)?.into_iter().enumerate() {
            let (q, c) = out.row_mut(r);
            q.copy_from_slice(&ev.p0);
            c.copy_from_slice(&ev.costs);
            out.signals[r] = Signals {
                neighbours: Some(ev.neighbours),
                ood: None,
            };
        }
        Ok(())
    }

    /// The model a session would call first under cost weight `cost_weight`: routing a query
    /// through a cascade router gives its first step.
    fn choose(
        &self,
        batch: &FeatureBatch<'_>,
        est: &Estimates,
        cost_weight: f64,
        mask: Option<&[bool]>,
        out: &mut [u32],
    ) {
        let params = self.params(cost_weight, mask, f64::INFINITY, self.config.max_steps);
        let evidence = self.evidence(batch, None).unwrap_or_default();
        let mut scratch = Scratch::new();
        let mut state = State::default();
        for (r, o) in out.iter_mut().enumerate() {
            scratch.forget();
            let first = evidence.get(r).and_then(|ev| {
                engine::begin(ev, &ev.costs, &params, &mut state, &mut scratch).ok()
            });
            *o = match first {
                Some(p) => p.model as u32,
                None => crate::router::best_model(
                    est.quality_row(r),
                    est.cost_row(r),
                    cost_weight,
                    mask,
                ) as u32,
            };
        }
    }

    fn to_saved(&self) -> Result<SavedRouter> {
        let p = self.table.len();
        let mut saved = SavedRouter::new(
            RouterKind::Cascade.name(),
            &self.config,
            self.pool.clone(),
            self.embedding_model.clone(),
            self.dim,
        )
        .with_tensor(
            "cascade.table.masks",
            Tensor::u32(&[p], self.table.iter().map(|t| t.0).collect()),
        )
        .with_tensor(
            "cascade.table.counts",
            Tensor::f64(&[p], self.table.iter().map(|t| t.1).collect()),
        );
        if let Some(knn) = &self.knn {
            let inner = knn.to_saved()?;
            for (name, t) in inner.tensors {
                saved.tensors.insert(format!("cascade.{name}"), t);
            }
            for (k, v) in inner.notes {
                saved.notes.insert(format!("cascade.{k}"), v);
            }
        }
        Ok(saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pool::ModelCard;
    use crate::rng::SplitMix64;
    use crate::ErrorKind;

    fn pool() -> ModelPool {
        ModelPool::new(vec![
            ModelCard::new("cheap", 0.1, 0.1),
            ModelCard::new("mid", 1.0, 1.0),
            ModelCard::new("big", 10.0, 10.0),
        ])
        .unwrap()
    }

    /// Expected costs with no prompt tokens: 256 output tokens at each model's price.
    fn cost(m: usize) -> f64 {
        pool().estimate_cost(m, None)
    }

    fn chain_router() -> CascadeRouter {
        let config = CascadeConfig::chain([("cheap", 0.8), ("mid", 0.8), ("big", 0.0)]);
        CascadeRouter::new(pool(), 2, &config).unwrap()
    }

    fn query() -> QueryFeatures {
        QueryFeatures::new(vec![1.0, 0.0]).unwrap()
    }

    fn accept(step: Step) -> CascadeOutcome {
        match step {
            Step::Accept(o) => o,
            Step::Escalate(n) => panic!("expected the end, got a call of {}", n.model_id),
        }
    }

    fn escalate(step: Step) -> NextCall {
        match step {
            Step::Escalate(n) => n,
            Step::Accept(o) => panic!("expected a call, got the end {o:?}"),
        }
    }

    #[test]
    fn accepts_a_confident_first_answer() {
        let r = chain_router();
        let mut s = r.start(&query(), &CascadeLimits::default()).unwrap();
        assert_eq!(s.next().unwrap().model_id, "cheap");
        assert!((s.next().unwrap().expected_cost - cost(0)).abs() < 1e-15);
        // Prior 0.5 (no training data), a confident vote: posterior 0.9 ≥ 0.8.
        let o = accept(s.observe(0, 1.0).unwrap());
        assert_eq!((o.accepted, o.stop), (0, StopReason::Accepted));
        assert!((o.posterior - 0.9).abs() < 1e-12);
        assert_eq!(o.invoked.len(), 1);
        assert!(!o.budget_exhausted);
        assert!(s.next().is_none());
        assert_eq!(s.outcome(), Some(&o));
        assert_eq!(s.finish().unwrap(), o);
    }

    #[test]
    fn escalates_and_records_every_call() {
        let r = chain_router();
        let mut s = r.start(&query(), &CascadeLimits::default()).unwrap();
        assert_eq!(escalate(s.observe(0, 0.0).unwrap()).model_id, "mid");
        assert_eq!(escalate(s.observe_id("mid", 0.3).unwrap()).model, 2);
        let o = accept(s.observe_with_cost(2, 0.0, 0.5).unwrap());
        // The last stage accepts anything (threshold 0).
        assert_eq!(o.accepted_id, "big");
        let ids: Vec<&str> = o.invoked.iter().map(|i| i.model_id.as_str()).collect();
        assert_eq!(ids, ["cheap", "mid", "big"]);
        assert!((o.total_cost - (cost(0) + cost(1) + 0.5)).abs() < 1e-15);
        assert_eq!(o.invoked[1].confidence, 0.3);
        assert_eq!(o.invoked[2].cost, 0.5);
    }

    #[test]
    fn budget_exhaustion_returns_the_best_answer_so_far() {
        let r = chain_router();
        // Room for cheap and mid, not for big.
        let limits = CascadeLimits::default().with_budget(cost(0) + cost(1) + cost(2) / 2.0);
        let mut s = r.start(&query(), &limits).unwrap();
        escalate(s.observe(0, 0.6).unwrap());
        let o = accept(s.observe(1, 0.0).unwrap());
        assert!(o.budget_exhausted);
        assert_eq!(o.stop, StopReason::BudgetExhausted);
        // cheap's answer (posterior 0.5 at c = 0.6 is above mid's after a "wrong" vote).
        assert_eq!(o.accepted_id, "cheap");
        assert_eq!(o.invoked.len(), 2);
        // Observed costs count: an expensive first call leaves no room for the second.
        let mut s = r
            .start(
                &query(),
                &CascadeLimits::default().with_budget(cost(0) * 2.0),
            )
            .unwrap();
        let o = accept(s.observe_with_cost(0, 0.0, cost(0) * 1.5).unwrap());
        assert!(o.budget_exhausted && o.accepted == 0);
    }

    #[test]
    fn a_budget_below_the_first_call_is_an_error() {
        let r = chain_router();
        let e = r
            .start(
                &query(),
                &CascadeLimits::default().with_budget(cost(0) / 2.0),
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BudgetTooSmall);
        assert!(
            e.to_string().contains("is below the expected cost")
                && e.to_string().contains("of the first model \"cheap\""),
            "{e}"
        );
        match e {
            Error::BudgetTooSmall {
                budget,
                cost: c,
                model,
                ..
            } => {
                assert_eq!(
                    (budget, c, model.as_str()),
                    (cost(0) / 2.0, cost(0), "cheap")
                );
            }
            other => panic!("expected BudgetTooSmall, got {other:?}"),
        }
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let e = r
                .start(&query(), &CascadeLimits::default().with_budget(bad))
                .unwrap_err();
            assert!(
                e.to_string().contains("is not a non-negative number"),
                "{e}"
            );
        }
        // Exactly the first call's cost is enough for it.
        assert!(r
            .start(&query(), &CascadeLimits::default().with_budget(cost(0)))
            .is_ok());
    }

    #[test]
    fn max_steps_stops_the_cascade() {
        let r = chain_router();
        let mut s = r
            .start(&query(), &CascadeLimits::default().with_max_steps(1))
            .unwrap();
        let o = accept(s.observe(0, 0.0).unwrap());
        assert_eq!((o.stop, o.accepted), (StopReason::MaxSteps, 0));
        let e = r
            .start(&query(), &CascadeLimits::default().with_max_steps(0))
            .unwrap_err();
        assert_eq!(e.to_string(), "invalid input: max_steps must be at least 1");
    }

    #[test]
    fn bad_observations_are_errors_that_change_nothing() {
        let r = chain_router();
        let mut s = r.start(&query(), &CascadeLimits::default()).unwrap();
        for bad in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
            let e = s.observe(0, bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains("outside [0, 1]"), "{e}");
        }
        let e = s.observe(2, 0.5).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SessionOutOfOrder);
        assert_eq!(
            e.to_string(),
            "observed model #2 (\"big\"), but the cascade asked for #0 (\"cheap\")"
        );
        assert_eq!(
            s.observe(7, 0.5).unwrap_err().kind(),
            ErrorKind::UnknownModel
        );
        assert_eq!(
            s.observe_id("nope", 0.5).unwrap_err().kind(),
            ErrorKind::UnknownModel
        );
        assert!(s.observe_with_cost(0, 0.5, -1.0).is_err());
        assert!(s.invoked().is_empty() && s.total_cost() == 0.0);
        let e = Session::finish(r.start(&query(), &CascadeLimits::default()).unwrap());
        let e = e.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SessionRunning);
        assert!(e.to_string().contains("no answer has been observed"), "{e}");
        assert_eq!(s.result().unwrap_err().kind(), ErrorKind::SessionRunning);
        // The session still works, then refuses observations once over.
        escalate(s.observe(0, 0.0).unwrap());
        accept(s.observe(1, 1.0).unwrap());
        let e = s.observe(2, 1.0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SessionFinished);
        assert!(
            e.to_string().contains("the cascade session has ended"),
            "{e}"
        );
        assert!(s.result().is_ok() && s.stop().is_ok());
    }

    #[test]
    fn finishing_early_keeps_the_best_answer() {
        let r = chain_router();
        let mut s = r.start(&query(), &CascadeLimits::default()).unwrap();
        escalate(s.observe(0, 0.7).unwrap());
        let o = s.stop().unwrap().clone();
        assert_eq!((o.accepted, o.stop), (0, StopReason::Stopped));
        assert!(s.next().is_none());
        assert_eq!(
            s.observe(1, 1.0).unwrap_err().kind(),
            ErrorKind::SessionFinished
        );
        assert_eq!(s.finish().unwrap(), o);
    }

    #[test]
    fn objectives_restrict_and_validate() {
        let r = chain_router();
        let obj = Objective::new(0.0).with_allowed(["mid", "big"]);
        let s = r
            .start_with(&query(), &obj, &CascadeLimits::default())
            .unwrap();
        assert_eq!(s.next().unwrap().model_id, "mid");
        let e = r
            .start_with(&query(), &Objective::new(-1.0), &CascadeLimits::default())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let q3 = QueryFeatures::new(vec![1.0, 0.0, 0.0]).unwrap();
        assert_eq!(
            r.start(&q3, &CascadeLimits::default()).unwrap_err().kind(),
            ErrorKind::Shape
        );
        // Routing gives the first step.
        assert_eq!(
            r.route(&query(), &Objective::new(0.0)).unwrap().model_id,
            "cheap"
        );
        assert_eq!(r.route(&query(), &obj).unwrap().model_id, "mid");
    }

    #[test]
    fn configs_are_validated() {
        let e = CascadeRouter::new(pool(), 2, &CascadeConfig::default()).unwrap_err();
        assert!(e.to_string().contains("needs training data"), "{e}");
        let e = CascadeRouter::new(pool(), 2, &CascadeConfig::chain([("nope", 0.5)])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownModel);
        let bad = [
            CascadeConfig::chain([("cheap", 0.5), ("cheap", 0.5)]),
            CascadeConfig::chain(Vec::<(String, f64)>::new()),
            CascadeConfig::chain([("cheap", 1.5)]),
            CascadeConfig {
                confidence_error: 0.6,
                ..CascadeConfig::chain([("cheap", 0.5)])
            },
            CascadeConfig {
                max_steps: 0,
                ..CascadeConfig::chain([("cheap", 0.5)])
            },
            CascadeConfig {
                cost_weight: f64::NAN,
                ..CascadeConfig::chain([("cheap", 0.5)])
            },
        ];
        for c in bad {
            let e = CascadeRouter::new(pool(), 2, &c).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{c:?}: {e}");
        }
    }

    /// Two kinds of queries: on "easy" ones (first coordinate high) the cheap model is mostly
    /// right; on "hard" ones only the big model is.
    fn synthetic(n: usize, seed: u64) -> Split {
        let mut rng = SplitMix64::new(seed);
        let (mut e, mut sc) = (Vec::new(), Vec::new());
        for i in 0..n {
            let easy = i % 2 == 0;
            let x = if easy { 1.0 } else { -1.0 };
            e.extend_from_slice(&[x + 0.3 * rng.normal() as f32, 0.3 * rng.normal() as f32]);
            let p: [f64; 3] = if easy {
                [0.85, 0.9, 0.95]
            } else {
                [0.1, 0.4, 0.9]
            };
            for pm in p {
                sc.push(f64::from(u8::from(rng.next_f64() < pm)));
            }
        }
        let costs: Vec<f64> = (0..n).flat_map(|_| [cost(0), cost(1), cost(2)]).collect();
        Split::from_arrays(pool(), e, 2, sc, costs).unwrap()
    }

    fn knn_config() -> CascadeConfig {
        CascadeConfig {
            estimator: Some(KnnConfig {
                k: 20,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn dynamic_cascade_learns_where_to_start() {
        let train = synthetic(600, 1);
        let r = CascadeRouter::fit(
            &train,
            &CascadeConfig {
                cost_weight: 300.0,
                ..knn_config()
            },
        )
        .unwrap();
        let easy = QueryFeatures::new(vec![1.0, 0.0]).unwrap();
        let hard = QueryFeatures::new(vec![-1.0, 0.0]).unwrap();
        let s = r.start(&easy, &CascadeLimits::default()).unwrap();
        assert_eq!(s.next().unwrap().model_id, "cheap");
        // On a hard query the cheap model is predicted hopeless: start higher up.
        let mut s = r.start(&hard, &CascadeLimits::default()).unwrap();
        let first = s.next().unwrap().clone();
        assert_ne!(first.model_id, "cheap");
        // When every answer looks wrong the cascade reaches the big model, whose chance given
        // those failures is high, and stops there.
        let mut next = first;
        let outcome = loop {
            match s.observe(next.model, 0.0).unwrap() {
                Step::Escalate(n) => {
                    if n.model_id == "big" {
                        assert!(n.expected_quality > 0.7, "{n:?}");
                    }
                    next = n;
                }
                Step::Accept(o) => break o,
            }
        };
        assert!(
            outcome.invoked.iter().any(|i| i.model_id == "big"),
            "{outcome:?}"
        );
        // A dynamic cascade with a budget below the cheapest model cannot start.
        let e = r
            .start(&easy, &CascadeLimits::default().with_budget(cost(0) / 3.0))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("of the cheapest allowed model \"cheap\""),
            "{e}"
        );
        // A budget that only fits the cheap model makes it the first call on hard queries too.
        let s = r
            .start(&hard, &CascadeLimits::default().with_budget(cost(0) * 1.5))
            .unwrap();
        assert_eq!(s.next().unwrap().model_id, "cheap");
    }

    #[test]
    fn sessions_are_independent_and_threads_share_the_router() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<CascadeRouter>();
        send::<Session>();
        let train = synthetic(400, 2);
        let r = Arc::new(CascadeRouter::fit(&train, &knn_config()).unwrap());
        fn play(r: &CascadeRouter, i: usize) -> CascadeOutcome {
            let judge = SimulatedJudge::new(0.1, 5).unwrap();
            let x = (i as f32 * 0.7).sin();
            let q = QueryFeatures::new(vec![x, 0.5]).unwrap();
            let mut s = r.start(&q, &CascadeLimits::default()).unwrap();
            loop {
                let next = s.next().unwrap().clone();
                let score = 0.5 + f64::from(x) * (next.model as f64 - 1.0);
                let c = judge.confidence(&i.to_string(), &next.model_id, score);
                if let Step::Accept(o) = s.observe(next.model, c).unwrap() {
                    return o;
                }
            }
        }
        let serial: Vec<CascadeOutcome> = (0..40).map(|i| play(&r, i)).collect();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let r = r.clone();
                std::thread::spawn(move || {
                    (0..40)
                        .filter(|i| i % 4 == t)
                        .map(|i| (i, play(&r, i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in threads {
            for (i, o) in h.join().unwrap() {
                assert_eq!(o, serial[i]);
            }
        }
        // Interleaved sessions do not see each other.
        let q = QueryFeatures::new(vec![0.2, 0.9]).unwrap();
        let mut a = r.start(&q, &CascadeLimits::default()).unwrap();
        let b = r.start(&q, &CascadeLimits::default()).unwrap();
        let m = a.next().unwrap().model;
        let _ = a.observe(m, 0.0).unwrap();
        assert!(b.invoked().is_empty() && b.next().unwrap().model == m);
    }

    fn round_trip(r: &CascadeRouter) -> crate::registry::AnyRouter {
        let bytes = r.to_saved().unwrap().to_bytes().unwrap();
        let loaded = crate::registry::AnyRouter::from_bytes(&bytes).unwrap();
        assert_eq!(loaded.to_saved().unwrap().to_bytes().unwrap(), bytes);
        assert_eq!(loaded.kind(), RouterKind::Cascade);
        loaded
    }

    #[test]
    fn save_and_load_give_identical_decisions() {
        let train = synthetic(300, 3);
        let judge = SimulatedJudge::new(0.1, 9).unwrap();
        let test = synthetic(100, 4);
        let conf = judge.confidences(&test);
        for config in [
            knn_config(),
            CascadeConfig {
                estimator: None,
                lookahead: false,
                ..Default::default()
            },
            CascadeConfig::chain([("cheap", 0.7), ("big", 0.0)]),
        ] {
            let r = CascadeRouter::fit(&train, &config).unwrap();
            let loaded = round_trip(&r);
            let l = loaded.as_cascade().unwrap();
            assert_eq!(l.config(), r.config());
            for w in [0.0, 100.0, 3000.0] {
                assert_eq!(
                    r.simulate(&test, &conf, w, crate::metrics::CostBasis::Query)
                        .unwrap(),
                    l.simulate(&test, &conf, w, crate::metrics::CostBasis::Query)
                        .unwrap()
                );
                let q = QueryFeatures::new(vec![0.3, -0.2]).unwrap();
                assert_eq!(
                    r.route(&q, &Objective::new(w)).unwrap(),
                    loaded.route(&q, &Objective::new(w)).unwrap()
                );
            }
            let q = QueryFeatures::new(vec![-0.4, 0.1]).unwrap();
            let (mut a, mut b) = (
                r.start(&q, &CascadeLimits::default()).unwrap(),
                l.start(&q, &CascadeLimits::default()).unwrap(),
            );
            loop {
                let m = a.next().unwrap().model;
                assert_eq!(b.next(), a.next());
                let (sa, sb) = (a.observe(m, 0.2).unwrap(), b.observe(m, 0.2).unwrap());
                assert_eq!(sa, sb);
                if let Step::Accept(_) = sa {
                    break;
                }
            }
        }
        // A router without training data round-trips too.
        let r = chain_router();
        let loaded = round_trip(&r);
        assert_eq!(
            loaded
                .route(&query(), &Objective::new(0.0))
                .unwrap()
                .model_id,
            "cheap"
        );
        // Corrupt tables are format errors.
        let mut saved = CascadeRouter::fit(&train, &knn_config())
            .unwrap()
            .to_saved()
            .unwrap();
        saved.tensors.insert(
            "cascade.table.masks".into(),
            crate::saved::Tensor::u32(&[2], vec![9, 8]),
        );
        saved.tensors.insert(
            "cascade.table.counts".into(),
            crate::saved::Tensor::f64(&[2], vec![1.0, 1.0]),
        );
        let e = crate::registry::AnyRouter::from_saved(saved).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Format);
        assert!(e.to_string().contains("out of range or not sorted"), "{e}");
    }

    #[test]
    fn training_queries_are_left_out_of_their_own_estimates() {
        // With one neighbour, a training query's own estimate would be its own label.
        let train = synthetic(200, 5);
        let config = CascadeConfig {
            estimator: Some(KnnConfig {
                k: 1,
                ..Default::default()
            }),
            prior_strength: 0.0,
            ..Default::default()
        };
        let r = CascadeRouter::fit(&train, &config).unwrap();
        let conf = vec![0.5; train.len() * 3];
        let data = r.data(&train, &conf).unwrap();
        let mut same = 0;
        for (i, ev) in data.evidence.iter().enumerate() {
            let own: Vec<f64> = (0..3).map(|j| train.score(i, j)).collect();
            same += usize::from(ev.p0 == own);
            assert_eq!(ev.neighbours, 1);
        }
        // Easy and hard queries' labels are noisy, so a different neighbour often disagrees.
        assert!(same < train.len() * 9 / 10, "{same}");
        // A split the router was not fitted on keeps every neighbour.
        let other = synthetic(200, 6);
        let d2 = r.data(&other, &conf).unwrap();
        assert_eq!(d2.evidence.len(), 200);
    }
}
