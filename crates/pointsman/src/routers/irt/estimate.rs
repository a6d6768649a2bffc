//! Routing with the learned parameters in plain `f32` math: the router assembled from them (the
//! packed projection), the cost model, and the `Router` implementation.

use super::{CostModel, IrtConfig, IrtRouter, IrtTrainReport, Params};
use crate::error::Result;
use crate::features::{inv_norm, FeatureBatch};
use crate::kind::RouterKind;
use crate::pool::ModelPool;
use crate::router::{Estimates, Router, Signals};
use crate::saved::SavedRouter;
use crate::simd;

/// `ln(1 + tokens)` standardised by `norm` (mean, standard deviation); 0 when the covariate is
/// off (a standard deviation of 0).
pub(super) fn length_feature(tokens: f64, norm: (f64, f64)) -> f64 {
    if norm.1 > 0.0 {
        ((1.0 + tokens.max(0.0)).ln() - norm.0) / norm.1
    } else {
        0.0
    }
}

impl IrtRouter {
    /// The configuration.
    pub fn config(&self) -> &IrtConfig {
        &self.config
    }

    /// What training did.
    pub fn train_report(&self) -> &IrtTrainReport {
        &self.report
    }

    /// The task tags the router knows (it learned a bias and a discrimination offset for each).
    pub fn tasks(&self) -> &[String] {
        &self.task_names
    }

    /// Model `model`'s ability per latent dimension (`θ_m`).
    ///
    /// # Panics
    ///
    /// When `model` is not an index of the pool.
    pub fn ability(&self, model: usize) -> &[f32] {
        let k = self.config.dim;
        &self.params.ability[model * k..(model + 1) * k]
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn assemble(
        config: IrtConfig,
        pool: ModelPool,
        embedding_model: Option<String>,
        dim: usize,
        params: Params,
        length_norm: (f64, f64),
        costs: CostModel,
        report: IrtTrainReport,
        task_names: Vec<String>,
    ) -> IrtRouter {
        let k = config.dim;
        let mut stacked = params.discrimination.clone();
        stacked.extend_from_slice(&params.difficulty);
        let packed = simd::PackedMatrix::new(&stacked, k + 1, dim);
        IrtRouter {
            config,
            pool,
            dim,
            embedding_model,
            params,
            length_norm,
            costs,
            packed,
            report,
            task_ids: task_names
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), i))
                .collect(),
            task_names,
        }
    }

    /// The router with new prices ([`ModelPool::repriced`]) without refitting: prices are data,
    /// not weights. A repriced model's linear fit of observed costs is scaled by its ratio of new
    /// to old mean price per token; the answer lengths are kept; quality estimates are unchanged.
    ///
    /// # Errors
    ///
    /// As [`ModelPool::repriced`]; [`crate::Error::Config`] for a model with a cost fit repriced
    /// from a price of 0 (its fit has no ratio to scale by).
    pub fn reprice(&self, prices: &[crate::pool::ModelCard]) -> Result<IrtRouter> {
        let pool = self.pool.repriced(prices)?;
        let mut out = self.clone();
        out.costs.observed_fit =
            crate::pool::scale_cost_fits(&self.pool, &pool, &self.costs.observed_fit)?;
        out.pool = pool;
        Ok(out)
    }

    /// The row of the task tables for a query's tag: its own, or the last for none or unseen.
    fn task_row(&self, task: Option<&str>) -> usize {
        task.and_then(|t| self.task_ids.get(t).copied())
            .unwrap_or(self.task_names.len())
    }

    /// Model `j`'s expected cost on a query of task row `u` with `tokens` prompt tokens.
    fn cost(&self, j: usize, u: usize, tokens: Option<f64>) -> f64 {
        let m = self.pool.len();
        if let Some((a, b)) = self.costs.observed_fit[j] {
            return a + b * tokens.unwrap_or(0.0);
        }
        let all = self.task_names.len();
        let out = [u, all]
            .into_iter()
            .map(|row| self.costs.output_tokens[row * m + j])
            .find(|o| o.is_finite());
        self.pool.card(j).estimate_cost(tokens.unwrap_or(0.0), out)
    }
}

impl Router for IrtRouter {
    fn kind(&self) -> &'static str {
        RouterKind::Irt.name()
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

    fn estimate(&self, batch: &FeatureBatch<'_>, out: &mut Estimates) -> Result<()> {
        let (m, k) = (self.pool.len(), self.config.dim);
        let p = &self.params;
        // `[A; wᵀ]·x` for a block of rows at a time (one pass of the packed matrix per block).
        let block = (2048 / (k + 1)).clamp(1, batch.rows().max(1));
        let mut hs = vec![0.0f32; block * (k + 1)];
        let mut start = 0;
        while start < batch.rows() {
            let end = (start + block).min(batch.rows());
            let rows = &batch.data()[start * self.dim..end * self.dim];
            let hs = &mut hs[..(end - start) * (k + 1)];
            self.packed.apply(rows, hs);
            for (r, h) in (start..end).zip(hs.chunks_exact(k + 1)) {
                // The projections of e = x / ‖x‖: project the raw row, then scale.
                let inv = inv_norm(batch.row(r));
                let u = self.task_row(batch.task(r));
                let alpha = &p.task_discrimination[u * k..(u + 1) * k];
                let difficulty = h[k] * inv;
                let tokens = batch.prompt_tokens(r);
                let len = length_feature(tokens.unwrap_or(0.0), self.length_norm) as f32;
                let len = if tokens.is_some() { len } else { 0.0 };
                let (q, c) = out.row_mut(r);
                for j in 0..m {
                    let theta = &p.ability[j * k..(j + 1) * k];
                    let mut logit = p.task_bias[u * m + j] - difficulty + p.length_slope[j] * len;
                    for t in 0..k {
                        logit += theta[t] * (h[t] * inv + alpha[t]);
                    }
                    q[j] = 1.0 / (1.0 + (-f64::from(logit)).exp());
                    c[j] = self.cost(j, u, tokens);
                }
                out.signals[r] = Signals::default();
            }
            start = end;
        }
        Ok(())
    }

    fn to_saved(&self) -> Result<SavedRouter> {
        self.saved_form()
    }
}
