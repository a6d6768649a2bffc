//! IRT router: multidimensional item response theory, as in the IRT-Router line of work (Song et
//! al., 2025, "IRT-Router: Effective and interpretable multi-LLM routing via item response
//! theory"), with the task tag and the prompt's length as covariates.
//!
//! # Model
//!
//! Each query is an *item* with a discrimination vector and a difficulty, each model a
//! *respondent* with an ability per latent dimension:
//!
//! ```text
//! a_q = A·e_q + α_t(q)                     discrimination, k values   (A: k × d, α_t: k per task)
//! b_q = wᵀ·e_q                             difficulty                  (w: d)
//! P(model m answers q well) = σ( θ_mᵀ·a_q − b_q + β_t(q),m + γ_m·ℓ_q )
//! ```
//!
//! with `e_q` the query's L2-normalised embedding, `θ_m` model `m`'s ability (k values), `β_t,m`
//! the model's ease on the query's task (one row per training task and one for queries without
//! a known tag), `ℓ_q` the standardised log prompt length and `γ_m` the model's sensitivity to
//! it. The task term `β` starts at the training data's per-task success rates (in logits) and
//! is not regularised, so a model that learns nothing from the embedding still routes like the
//! task means; everything else is shrunk toward zero by an L2 penalty.
//!
//! # Training
//!
//! With candle-nn's Adam on the binary cross-entropy of the observed cells (full batch: every
//! training query and model at each step), plus the L2 penalty; a seeded 10 % of the queries is
//! held out to stop early and keep the best step. The loss is taken over a per-cell *observed*
//! mask ([`IrtRouter::fit_observed`]): a dataset with partial labels (each query scored on some
//! models only) trains the same model on the cells it has. [`IrtRouter::tune`] chooses the
//! latent dimension and the penalty by cross-validation on the training split.
//!
//! # Routing
//!
//! Plain `f32` math, no candle: one packed `(k + 1) × d` pass over the embedding gives `A·e` and
//! `wᵀ·e`, then `k` multiply-adds per model: `O(k·(d + M))` per query.
//!
//! # Cost
//!
//! Where the training data has observed costs, a per-model linear fit on the prompt's tokens (as
//! the MF router); otherwise the pool's price estimate with each model's mean answer length on
//! the query's task where the data has answer lengths (the dataset-wide default elsewhere).

use std::collections::HashMap;

use crate::pool::ModelPool;
use crate::simd;

mod config;
mod estimate;
mod saved;
#[cfg(all(test, feature = "train"))]
mod tests;
#[cfg(feature = "train")]
mod train;

pub use config::{IrtConfig, IrtSearch, IrtTrainReport};

/// The learned parameters, row-major.
#[derive(Debug, Clone, PartialEq)]
struct Params {
    /// `A`, `[k, d]`.
    discrimination: Vec<f32>,
    /// `w`, `[d]`.
    difficulty: Vec<f32>,
    /// `α`, `[tasks + 1, k]`.
    task_discrimination: Vec<f32>,
    /// `θ`, `[m, k]`.
    ability: Vec<f32>,
    /// `β`, `[tasks + 1, m]`.
    task_bias: Vec<f32>,
    /// `γ`, `[m]`.
    length_slope: Vec<f32>,
}

/// How the router predicts each model's cost on a query.
#[derive(Debug, Clone, PartialEq)]
struct CostModel {
    /// Per model, `(intercept, per prompt token)` of a linear fit of the observed costs.
    observed_fit: Vec<Option<(f64, f64)>>,
    /// `[tasks + 1, m]`: each model's mean answer length (tokens) per task, the last row over
    /// every training query; NaN where the data has none.
    output_tokens: Vec<f64>,
}

/// A fitted IRT router. See the [module documentation](self).
#[derive(Clone)]
pub struct IrtRouter {
    config: IrtConfig,
    pool: ModelPool,
    dim: usize,
    embedding_model: Option<String>,
    params: Params,
    /// Mean and standard deviation of `ln(1 + prompt tokens)` over the training queries.
    length_norm: (f64, f64),
    costs: CostModel,
    /// `[A; wᵀ]`, packed: `k + 1` outputs per query in one pass.
    packed: simd::PackedMatrix,
    report: IrtTrainReport,
    task_names: Vec<String>,
    task_ids: HashMap<String, usize>,
}

impl std::fmt::Debug for IrtRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrtRouter")
            .field("config", &self.config)
            .field("models", &self.pool.ids().collect::<Vec<_>>())
            .field("dim", &self.dim)
            .field("tasks", &self.task_names.len())
            .field("report", &self.report)
            .finish()
    }
}
