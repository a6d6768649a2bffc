//! Live sessions: one query's run through a cascade, observation by observation, and the
//! router's methods that start one.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::engine::{self, BeginError, Evidence, Next, Params, Scratch, State};
use super::{CascadeLimits, CascadeRouter};
use crate::error::{Error, Result};
use crate::features::QueryFeatures;
use crate::pool::MAX_COST_USD;
use crate::router::{Objective, Router};

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
    /// As [`Session::observe`]; [`Error::InvalidInput`] for a cost that is negative, not
    /// finite or above [`MAX_COST_USD`].
    pub fn observe_with_cost(&mut self, model: usize, confidence: f64, cost: f64) -> Result<Step> {
        if !cost.is_finite() || !(0.0..=MAX_COST_USD).contains(&cost) {
            return Err(Error::InvalidInput(format!(
                "observed cost {} is not a number in [0, {MAX_COST_USD:e}] USD",
                crate::error::Shown(cost)
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

impl CascadeRouter {
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
}
