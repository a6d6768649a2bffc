//! `pm_cascade_session`: one query's run through a cascade router, driven by the caller.

use pointsman::routers::cascade::{CascadeLimits, Session, StopReason};
use pointsman::Objective;

use crate::error::{pm_error, Failure};
use crate::guard::{self, arg_out, arg_ref, arg_slice, arg_slice_mut};
use crate::router::pm_router;
use crate::status::pm_status;

/// One query's run through a cascade router (a router whose `pm_router_is_cascade` is true):
/// the session names a model to call, the caller calls it and reports how confident it is in
/// the answer (`pm_cascade_observe`), and the session names the next model or finishes with the
/// answer to use (`pm_cascade_result`).
///
/// Created by `pm_cascade_start`, freed with `pm_cascade_session_free`. A session owns its state:
/// it does not borrow the router, so it may outlive it.
///
/// Thread safety: a session is used by one thread at a time (it may move between threads between
/// calls); `pm_cascade_observe` and `pm_cascade_stop` change it, so they must not run while any
/// other thread uses the same session. Different sessions, and the router they came from, may be
/// used by any number of threads at once.
#[derive(Debug)]
pub struct pm_cascade_session {
    session: Session,
}

/// What a cascade session asks for next.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct pm_cascade_step {
    /// True when the session is over: `model` is the model whose answer to use, and
    /// `pm_cascade_result` tells why it stopped. False: call `model` and observe its answer.
    pub finished: bool,
    /// Not finished: the model to call next (an index in the router's pool). Finished: the model
    /// whose answer to use.
    pub model: u32,
    /// Not finished: the next model's estimated chance of a good answer, given what has failed
    /// so far. Finished: the posterior that the answer used is right.
    pub expected_quality: f64,
    /// Not finished: the next call's expected cost in USD. Finished: the total cost spent.
    pub expected_cost: f64,
}

/// Why a cascade session stopped.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum pm_cascade_stop_reason {
    /// The session has not stopped (not used in a finished session's result).
    #[default]
    PM_CASCADE_STOP_NONE = 0,
    /// The last answer's posterior reached its threshold.
    PM_CASCADE_STOP_ACCEPTED = 1,
    /// No remaining model was worth its cost.
    PM_CASCADE_STOP_NOT_WORTH_ESCALATING = 2,
    /// Every allowed model (every stage of the chain) was tried.
    PM_CASCADE_STOP_OUT_OF_MODELS = 3,
    /// The model worth calling next did not fit in the budget: the best answer so far is used.
    PM_CASCADE_STOP_BUDGET_EXHAUSTED = 4,
    /// The maximum number of calls was reached.
    PM_CASCADE_STOP_MAX_STEPS = 5,
    /// The caller ended the session early with `pm_cascade_stop`.
    PM_CASCADE_STOP_STOPPED = 6,
}

impl From<StopReason> for pm_cascade_stop_reason {
    fn from(r: StopReason) -> Self {
        use pm_cascade_stop_reason::*;
        match r {
            StopReason::Accepted => PM_CASCADE_STOP_ACCEPTED,
            StopReason::NotWorthEscalating => PM_CASCADE_STOP_NOT_WORTH_ESCALATING,
            StopReason::OutOfModels => PM_CASCADE_STOP_OUT_OF_MODELS,
            StopReason::BudgetExhausted => PM_CASCADE_STOP_BUDGET_EXHAUSTED,
            StopReason::MaxSteps => PM_CASCADE_STOP_MAX_STEPS,
            StopReason::Stopped => PM_CASCADE_STOP_STOPPED,
        }
    }
}

/// The end of a cascade session: which answer to use and what it took.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct pm_cascade_outcome {
    /// The model whose answer to use (an index in the router's pool).
    pub model: u32,
    /// The posterior that this answer is right.
    pub posterior: f64,
    /// The sum of the calls' costs, USD (observed costs where given, else expected ones).
    pub total_cost: f64,
    /// How many models were called.
    pub steps: usize,
    /// True when the budget stopped the cascade before it would have stopped on its own: the
    /// answer is the best so far, not an accepted one.
    pub budget_exhausted: bool,
    /// Why the session stopped.
    pub stop: pm_cascade_stop_reason,
}

/// One model call of a cascade session.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct pm_cascade_call {
    /// The model called (an index in the router's pool).
    pub model: u32,
    /// The confidence the caller observed, in [0, 1].
    pub confidence: f64,
    /// The posterior that its answer is right.
    pub posterior: f64,
    /// The call's cost in USD (observed when given, else expected).
    pub cost: f64,
}

fn index(model: usize) -> Result<u32, Failure> {
    u32::try_from(model).map_err(|_| {
        Failure::new(
            pm_status::PM_STATUS_OTHER,
            format!("model index {model} does not fit 32 bits"),
        )
    })
}

impl pm_cascade_session {
    /// The step the session is at.
    fn step(&self) -> Result<pm_cascade_step, Failure> {
        if let Ok(o) = self.session.result() {
            return Ok(pm_cascade_step {
                finished: true,
                model: index(o.accepted)?,
                expected_quality: o.posterior,
                expected_cost: o.total_cost,
            });
        }
        let next = self.session.next().ok_or_else(|| {
            Failure::new(
                pm_status::PM_STATUS_OTHER,
                "the cascade session has neither a next call nor an outcome",
            )
        })?;
        Ok(pm_cascade_step {
            finished: false,
            model: index(next.model)?,
            expected_quality: next.expected_quality,
            expected_cost: next.expected_cost,
        })
    }
}

/// Starts a cascade session for one query.
///
/// - `features`: the query's `dim` embedding values, as for `pm_router_route`.
/// - `prompt_tokens`: the prompt's token count for the cost model; any negative value means
///   unknown (costs then assume none). NaN is an error.
/// - `cost_weight`: quality points given up per USD when deciding whether a call is worth it;
///   any negative value means the router's own (the one its training calibrated).
/// - `budget`: the most total expected cost in USD the session may spend; any negative value or
///   `INFINITY` means no budget. 0 is a budget of nothing (`PM_STATUS_BUDGET_TOO_SMALL` unless a
///   model is free). NaN is an error.
/// - `max_steps`: the most models called; 0 means the router's default.
///
/// On success `*out` receives a new session (free it with `pm_cascade_session_free`) and, when
/// `first` is not NULL, `*first` the first step: the model to call first (never finished).
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_UNSUPPORTED` (the router is not a cascade),
/// `PM_STATUS_SHAPE`, `PM_STATUS_INVALID_FEATURES`, `PM_STATUS_CONFIG` (NaN cost weight),
/// `PM_STATUS_BUDGET_TOO_SMALL` (the budget is below the expected cost of the first model, for a
/// dynamic cascade of the cheapest one), `PM_STATUS_INVALID_ARGUMENT` (NaN budget or prompt
/// tokens).
///
/// Thread safety: any number of threads may start sessions with the same router at once.
///
/// # Safety
///
/// `router` is NULL or a live router; `features` NULL or `dim` floats; `out`, `first` and `err`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_cascade_start(
    router: *const pm_router,
    features: *const f32,
    dim: usize,
    prompt_tokens: f64,
    cost_weight: f64,
    budget: f64,
    max_steps: u32,
    out: *mut *mut pm_cascade_session,
    first: *mut pm_cascade_step,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        // SAFETY: forwarded from the caller.
        let features = unsafe { arg_slice(features, dim, "features") }?;
        let out = arg_out(out, "out")?;
        let first = if first.is_null() {
            None
        } else {
            Some(arg_out(first, "first")?)
        };
        let Some(cascade) = router.as_cascade() else {
            return Err(pointsman::Error::Unsupported(format!(
                "cascade sessions: the {} router is not a cascade",
                router.router.kind()
            ))
            .into());
        };
        // The C conventions: a negative count or budget means none, an infinite budget none;
        // NaN is passed on for the core to refuse.
        let tokens = (prompt_tokens.is_nan() || prompt_tokens >= 0.0).then_some(prompt_tokens);
        let query = router.query(features, dim, tokens, None)?;
        let limits = CascadeLimits {
            budget: (budget.is_nan() || (budget >= 0.0 && budget.is_finite())).then_some(budget),
            max_steps: (max_steps > 0).then_some(max_steps as usize),
        };
        let session = if cost_weight < 0.0 {
            cascade.start(&query, &limits)?
        } else {
            cascade.start_with(&query, &Objective::new(cost_weight), &limits)?
        };
        let session = pm_cascade_session { session };
        let step = session.step()?;
        if let Some(first) = first {
            // SAFETY: non-NULL, aligned, writable per the caller.
            unsafe { first.write(step) };
        }
        // SAFETY: non-NULL, aligned, writable per the caller.
        unsafe { out.write(Box::into_raw(Box::new(session))) };
        Ok(())
    })
}

/// Reports the answer of the model the session asked for: `confidence` in [0, 1] is how likely
/// the caller thinks the answer is right (a probability from log-probabilities, a verifier's
/// score, self-consistency...); `cost` is the call's observed cost in USD, or any finite
/// negative value to charge its expected cost. On success `*out` receives what to do next: call
/// `out->model`, or, when `out->finished`, use the answer of `out->model` (details in
/// `pm_cascade_result`).
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_SESSION_FINISHED` (the session has already
/// finished or was stopped), `PM_STATUS_UNKNOWN_MODEL` (an index outside the pool),
/// `PM_STATUS_SESSION_OUT_OF_ORDER` (not the model the session asked for),
/// `PM_STATUS_INVALID_ARGUMENT` (confidence NaN or outside [0, 1], NaN or infinite cost). A
/// failed call leaves the session as it was.
///
/// Thread safety: changes the session: no other thread may use it during the call.
///
/// # Safety
///
/// `session` is NULL or a live session not used by another thread during the call; `out` and
/// `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_cascade_observe(
    session: *mut pm_cascade_session,
    model: u32,
    confidence: f64,
    cost: f64,
    out: *mut pm_cascade_step,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        arg_out(session, "session")?;
        // SAFETY: non-NULL and aligned (checked above); live and not shared per the caller.
        let session = unsafe { &mut *session };
        let out = arg_out(out, "out")?;
        // The C convention: a negative cost charges the call's expected cost; an infinite one
        // is an error, as the header says (-INFINITY was taken for "expected").
        if cost < 0.0 && cost.is_finite() {
            session.session.observe(model as usize, confidence)?;
        } else {
            session
                .session
                .observe_with_cost(model as usize, confidence, cost)?;
        }
        let step = session.step()?;
        // SAFETY: non-NULL, aligned, writable per the caller.
        unsafe { out.write(step) };
        Ok(())
    })
}

/// The step a session is at: what `pm_cascade_start` or the last `pm_cascade_observe` returned
/// (or, after `pm_cascade_stop`, the finished step).
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`.
///
/// Thread safety: reads the session: may run on several threads at once, but not while another
/// thread changes it.
///
/// # Safety
///
/// `session` is NULL or a live session; `out` and `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_cascade_next(
    session: *const pm_cascade_session,
    out: *mut pm_cascade_step,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let session = unsafe { arg_ref(session, "session") }?;
        let out = arg_out(out, "out")?;
        let step = session.step()?;
        // SAFETY: non-NULL, aligned, writable per the caller.
        unsafe { out.write(step) };
        Ok(())
    })
}

/// Ends a session before the cascade does (a deadline, a caller that will call no more models):
/// the answer with the highest posterior so far is used, with stop reason
/// `PM_CASCADE_STOP_STOPPED`. Stopping a finished session changes nothing and succeeds.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_SESSION_RUNNING` (no answer has been observed
/// yet: there is nothing to use; the session is unchanged).
///
/// Thread safety: changes the session: no other thread may use it during the call.
///
/// # Safety
///
/// `session` is NULL or a live session not used by another thread during the call; `err` NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_cascade_stop(
    session: *mut pm_cascade_session,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        arg_out(session, "session")?;
        // SAFETY: non-NULL and aligned (checked above); live and not shared per the caller.
        let session = unsafe { &mut *session };
        session.session.stop()?;
        Ok(())
    })
}

/// The end of a finished session: on success `*out` receives the answer to use and what it
/// took, and `calls` (room for `calls_len` entries; NULL when `calls_len` is 0) the models
/// called, in order, as many as fit; `*calls_count` (when not NULL) receives how many entries
/// were written (`out->steps` is how many there are).
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_SESSION_RUNNING` (the session has not finished:
/// observe until a step is finished, or call `pm_cascade_stop`).
///
/// Thread safety: as `pm_cascade_next`.
///
/// # Safety
///
/// `session` is NULL or a live session; `out` NULL or writable; `calls` NULL or `calls_len`
/// writable entries; `calls_count` and `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_cascade_result(
    session: *const pm_cascade_session,
    out: *mut pm_cascade_outcome,
    calls: *mut pm_cascade_call,
    calls_len: usize,
    calls_count: *mut usize,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let session = unsafe { arg_ref(session, "session") }?;
        let out = arg_out(out, "out")?;
        // SAFETY: forwarded from the caller.
        let calls = unsafe { arg_slice_mut(calls, calls_len, "calls") }?;
        let calls_count = if calls_count.is_null() {
            None
        } else {
            Some(arg_out(calls_count, "calls_count")?)
        };
        let o = session.session.result()?;
        let outcome = pm_cascade_outcome {
            model: index(o.accepted)?,
            posterior: o.posterior,
            total_cost: o.total_cost,
            steps: o.invoked.len(),
            budget_exhausted: o.budget_exhausted,
            stop: o.stop.into(),
        };
        let values = o
            .invoked
            .iter()
            .take(calls.len())
            .map(|i| {
                Ok(pm_cascade_call {
                    model: index(i.model)?,
                    confidence: i.confidence,
                    posterior: i.posterior,
                    cost: i.cost,
                })
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        calls[..values.len()].copy_from_slice(&values);
        if let Some(count) = calls_count {
            // SAFETY: non-NULL, aligned, writable per the caller.
            unsafe { count.write(values.len()) };
        }
        // SAFETY: non-NULL, aligned, writable per the caller.
        unsafe { out.write(outcome) };
        Ok(())
    })
}

/// Frees a session. `pm_cascade_session_free(NULL)` does nothing.
///
/// # Safety
///
/// `session` is NULL or a session from `pm_cascade_start`, freed only once, not in use by
/// another thread.
#[no_mangle]
pub unsafe extern "C" fn pm_cascade_session_free(session: *mut pm_cascade_session) {
    guard::query((), || {
        if !session.is_null() {
            // SAFETY: the session came from Box::into_raw in `pm_cascade_start`, freed once.
            drop(unsafe { Box::from_raw(session) });
        }
    })
}

/// Whether the router is a cascade, whose queries run as sessions (`pm_cascade_start`); false
/// when `router` is NULL. Routing a cascade router with `pm_router_route` gives the model a
/// session would call first.
///
/// # Safety
///
/// `router` is NULL or a live router.
#[no_mangle]
pub unsafe extern "C" fn pm_router_is_cascade(router: *const pm_router) -> bool {
    guard::query(false, || {
        // SAFETY: the caller passes NULL or a live router.
        unsafe { arg_ref(router, "router") }.is_ok_and(|r| r.as_cascade().is_some())
    })
}
