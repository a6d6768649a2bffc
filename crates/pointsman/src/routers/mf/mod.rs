//! Matrix-factorisation router: RouteLLM's MF router generalised to N models.
//!
//! # Model
//!
//! ```text
//! quality_m(q) = σ( wᵀ (v̂_m ⊙ z_q) + b_m ),    z_q = P·e_q + u_task(q)
//! ```
//!
//! with `e_q` the query's L2-normalised embedding (`d` values), `u_t` a learned `k`-vector per
//! task tag seen in training (one more for queries without a known tag; all zero when
//! [`MfConfig::use_tasks`] is off), `P` a learned `k × d` projection,
//! `v_m` a learned `k`-vector per model (`v̂_m = v_m / ‖v_m‖` when
//! [`MfConfig::normalize_model_vectors`] is set, as RouteLLM does), `w` a learned `k`-vector and
//! `b_m` a per-model bias.
//!
//! # Training
//!
//! With candle-nn's AdamW on binary cross-entropy (computed stably from the logits), from
//! pointwise scores in [0, 1] (every model's score on every training query) and, when given,
//! pairwise preference rows `(query, model a, model b, winner)` as in Chatbot Arena data, whose
//! logit is `wᵀ((v̂_a − v̂_b) ⊙ P·e_q) + b_a − b_b`. A validation split carved from the training
//! data stops training early and picks the best epoch; a fixed seed gives identical weights on
//! every run (parameters are initialised by Pointsman's own seeded generator, minibatches are
//! shuffled by it, and candle's CPU kernels reduce in a fixed order).
//!
//! With partial labels (unobserved cells, [`Split::observed`](crate::data::Split::observed)) the
//! pointwise loss covers the observed cells only (optionally weighted by the inverse of the
//! logging policy's choice probability, [`MfConfig::inverse_propensity`]); a split's own
//! preference judgements ([`Split::preferences`](crate::data::Split::preferences)) train the
//! pairwise loss with their query's task vector, so a split of preferences alone trains a router
//! (the Bradley–Terry model of RouteLLM's MF). [`MfRouter::add_model`] onboards a model without
//! retraining ([`onboard`](self#onboarding)); [`MfRouter::reprice`] applies new prices.
//!
//! # Onboarding
//!
//! See `onboard.rs`: the new model's vector is a logistic regression on the fixed projection,
//! started at (and pulled toward) the card prior of
//! [`ModelPool::prior_weights`](crate::ModelPool::prior_weights).
//!
//! # Routing
//!
//! Plain `f32` math, no candle: `h = P·e + u_t` (a `k × d` matrix–vector product), then `m` dot
//! products with `u_m = w ⊙ v̂_m` precomputed at fit and load. Expected cost: a per-model linear
//! fit `a_m + c_m · prompt_tokens` of the training data's observed costs where it has them, else
//! the pool's price estimate.

use crate::pool::ModelPool;
use crate::simd;

mod config;
mod estimate;
pub mod onboard;
mod saved;
#[cfg(all(test, feature = "train"))]
mod tests;
#[cfg(feature = "train")]
mod train;

pub use config::{MfConfig, MfSearch, Preferences, TrainReport, Winner};

/// The learned parameters, row-major.
#[derive(Debug, Clone, PartialEq)]
struct Params {
    /// `[k, d]`.
    projection: Vec<f32>,
    /// `[m, k]`.
    model_vectors: Vec<f32>,
    /// `[k]`.
    classifier: Vec<f32>,
    /// `[m]`.
    bias: Vec<f32>,
    /// `[tasks + 1, k]`: one row per training task, the last for queries without a known tag.
    task_vectors: Vec<f32>,
}

/// A fitted matrix-factorisation router. See the [module documentation](self).
#[derive(Clone)]
pub struct MfRouter {
    config: MfConfig,
    pool: ModelPool,
    dim: usize,
    embedding_model: Option<String>,
    params: Params,
    /// `P`, packed for projecting many rows at once.
    packed: simd::PackedMatrix,
    /// `u_m = w ⊙ v̂_m` (`[m, k]`), packed: every model's logit for many rows at once.
    packed_fused: simd::PackedMatrix,
    /// Per-model linear cost fit `(intercept, per prompt token)`, where observed costs exist.
    cost_fit: Vec<Option<(f64, f64)>>,
    /// What training did: epochs run, best epoch, losses.
    report: TrainReport,
    task_names: Vec<String>,
    task_ids: std::collections::HashMap<String, usize>,
}

impl std::fmt::Debug for MfRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfRouter")
            .field("config", &self.config)
            .field("models", &self.pool.ids().collect::<Vec<_>>())
            .field("dim", &self.dim)
            .field("report", &self.report)
            .finish()
    }
}
