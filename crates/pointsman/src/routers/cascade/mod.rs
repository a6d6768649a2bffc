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
mod config;
mod engine;
mod estimate;
mod judge;
mod router;
mod saved;
mod session;

pub use calibrate::{
    confidence_error, CalibrationTarget, CascadeCalibration, CascadeSearch, ChainCandidate,
    ChainReport, ChainSearch,
};
pub use config::{CascadeConfig, CascadeLimits, CascadeOrder, Stage};
pub use judge::{SimulatedJudge, DEFAULT_JUDGE_NOISE};
pub use router::CascadeRouter;
pub use session::{CascadeOutcome, Invocation, NextCall, Session, Step, StopReason};
/// The most models a cascade handles.
pub const MAX_CASCADE_MODELS: usize = engine::MAX_MODELS;

#[cfg(test)]
mod tests;
