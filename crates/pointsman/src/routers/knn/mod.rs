//! kNN router: predict each model's quality on a query from how it did on the most similar
//! training queries.
//!
//! # Estimate
//!
//! For a query `x` (L2-normalised), let `N(x)` be its `k` most cosine-similar training queries
//! (restricted to the query's task when [`KnnConfig::same_task`] is set and the task is known)
//! with similarities `s_i`, and `w_i = weight(s_i)` ([`Weighting`]). Model `m`'s expected quality
//! is the neighbours' similarity-weighted mean score, shrunk toward a prior:
//!
//! ```text
//! q_m(x) = (Σ_i w_i · y_im + β · prior_m(x)) / (Σ_i w_i + β)
//! ```
//!
//! where `β` is [`KnnConfig::shrinkage`] (in units of one fully similar neighbour) and `prior_m`
//! is the model's mean training score, or its mean on the query's task ([`Prior`]): with few or
//! far neighbours the estimate falls back to what is known without them.
//!
//! Expected cost: the neighbours' weighted mean *observed* cost where the training data has
//! observed costs; otherwise the pool's price estimate for the query's prompt tokens, with the
//! answer length predicted from the neighbours' answer lengths where the data has them.
//!
//! # Partial labels
//!
//! Fitted on a split with unobserved cells ([`Split::observed`](crate::data::Split::observed)),
//! each model's estimate uses only the neighbours labelled for that model: its `k` nearest
//! reference queries among those where it has a score (within the task when `same_task` is set),
//! shrunk toward its prior computed from its observed scores. Such a router (and any router
//! after [`KnnRouter::add_model`]) scans the reference queries exactly for every query, without
//! the prefilter or the graph, and selects neighbours per model; a model observed on every row
//! gets exactly the neighbours, and the estimate, of the full-label router. With
//! [`KnnConfig::inverse_propensity`] a neighbour's weight is divided by the logging policy's
//! probability of having chosen that model for it (where the data records one): the neighbours
//! a policy favoured count less, which removes the policy's selection bias from the mean at the
//! price of variance (`docs/own-data.md`).
//!
//! # Out-of-distribution score
//!
//! At fit time every training query's mean similarity to its `ood_neighbours` nearest other
//! training queries is recorded, and their quantiles are kept. A query's OOD score is the share
//! of training queries whose neighbourhood is tighter than the query's: 0.5 is typical, 0.99
//! means the query is farther from the training data than 99 % of the training queries are from
//! each other. A caller can refuse a query above a threshold, or send it to a default model.
//!
//! # Search
//!
//! Exact search scans one contiguous `f32` matrix (rows grouped by task) with AVX2/FMA dot
//! products, in blocks of 32 queries × 256 reference rows, so each block is read from memory
//! once for all the queries (the same operations per pair as a row-by-row scan: results are
//! bit-identical); per-thread scratch buffers mean no allocation per query.
//!
//! Each query (single or in a batch) goes through an exact prefilter first (module `quant`): an
//! `int8` copy of the matrix with a guaranteed error bound per row selects the rows that can
//! still be neighbours, and only those are scored in `f32` — the same neighbours, similarities
//! and order as the full scan, for a quarter of the memory traffic (a third of the time of a
//! four-query block scan, per query). The block scan serves routers built without it.

use std::collections::HashMap;

use crate::pool::ModelPool;

mod config;
mod estimate;
mod fit;
pub mod hnsw;
pub mod partial;
mod quant;
mod saved;
mod search;
#[cfg(test)]
mod tests;
mod tune;

pub use config::{Index, KnnConfig, Prior, Weighting};
pub use partial::Anchor;
pub use tune::KnnSearch;

const NO_TASK: u32 = u32::MAX;

/// A fitted kNN router. See the [module documentation](self).
#[derive(Clone)]
pub struct KnnRouter {
    config: KnnConfig,
    pool: ModelPool,
    dim: usize,
    embedding_model: Option<String>,
    /// `[n, dim]`, normalised, rows grouped by task.
    embeddings: crate::saved::F32s,
    /// `[n, m]`.
    scores: Vec<f32>,
    /// `[n, m]` observed costs, NaN where not observed.
    costs: Vec<f32>,
    /// `[n, m]` answer lengths in tokens, NaN where unknown.
    output_tokens: Vec<f32>,
    /// Task id per row (`NO_TASK` for none); rows of one task are contiguous.
    tasks: Vec<u32>,
    task_names: Vec<String>,
    task_ids: HashMap<String, u32>,
    /// Row range of each task.
    task_rows: Vec<(usize, usize)>,
    global_prior: Vec<f64>,
    /// `[tasks, m]`.
    task_prior: Vec<f64>,
    any_observed_cost: Vec<bool>,
    any_output_tokens: Vec<bool>,
    /// Sorted quantiles of the training queries' leave-one-out neighbourhood similarity.
    ood_quantiles: Vec<f32>,
    /// The approximate index, when the config asks for one.
    graph: Option<std::sync::Arc<hnsw::Hnsw>>,
    /// For a router fitted in this process, the split row of each reference row.
    source_rows: Vec<usize>,
    /// The exact prefilter of single-query scans (exact search only).
    prefilter: Option<std::sync::Arc<quant::QuantIndex>>,
    /// `[n, m]`: whether each reference score is observed; `None` when every one is.
    observed: Option<Vec<bool>>,
    /// Per model, its observed reference rows in order (routers with `observed` only).
    observed_rows: Vec<Vec<u32>>,
    /// `[n, m]`: each neighbour's weight factor (the inverse propensity), when used.
    ipw: Option<Vec<f32>>,
    /// Per model: the prior of a model onboarded by [`KnnRouter::add_model`].
    anchors: Vec<Option<Anchor>>,
}

impl std::fmt::Debug for KnnRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnnRouter")
            .field("config", &self.config)
            .field("models", &self.pool.ids().collect::<Vec<_>>())
            .field("dim", &self.dim)
            .field("rows", &self.len())
            .field("tasks", &self.task_names.len())
            .finish()
    }
}
