//! Routing with the learned parameters in plain `f32` math: the router assembled from them (the
//! fused model vectors and the packed matrices), and the `Router` implementation.

use super::{MfConfig, MfRouter, Params, TrainReport};
use crate::error::Result;
use crate::features::{inv_norm, FeatureBatch};
use crate::kind::RouterKind;
use crate::pool::ModelPool;
use crate::router::{Estimates, Router, Signals};
use crate::saved::SavedRouter;
use crate::simd;

impl MfRouter {
    /// The configuration.
    pub fn config(&self) -> &MfConfig {
        &self.config
    }

    /// What training did.
    pub fn train_report(&self) -> &TrainReport {
        &self.report
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn assemble(
        config: MfConfig,
        pool: ModelPool,
        embedding_model: Option<String>,
        dim: usize,
        params: Params,
        cost_fit: Vec<Option<(f64, f64)>>,
        report: TrainReport,
        task_names: Vec<String>,
    ) -> MfRouter {
        let (m, k) = (pool.len(), config.dim);
        let mut fused = vec![0.0f32; m * k];
        for j in 0..m {
            let v = &params.model_vectors[j * k..(j + 1) * k];
            let scale = if config.normalize_model_vectors {
                let n2: f32 = v.iter().map(|x| x * x).sum();
                if n2 > 0.0 {
                    inv_norm(v)
                } else {
                    0.0
                }
            } else {
                1.0
            };
            for t in 0..k {
                fused[j * k + t] = params.classifier[t] * v[t] * scale;
            }
        }
        let packed = simd::PackedMatrix::new(&params.projection, k, dim);
        let packed_fused = simd::PackedMatrix::new(&fused, m, k);
        MfRouter {
            config,
            pool,
            dim,
            embedding_model,
            params,
            packed,
            packed_fused,
            cost_fit,
            report,
            task_ids: task_names
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), i))
                .collect(),
            task_names,
        }
    }

    /// The row of `u` for a query's task tag: its own, or the last for none or unseen.
    pub(super) fn task_row(&self, task: Option<&str>) -> usize {
        task.and_then(|t| self.task_ids.get(t).copied())
            .unwrap_or(self.task_names.len())
    }
}

impl Router for MfRouter {
    fn kind(&self) -> &'static str {
        RouterKind::Mf.name()
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
        // `P·x`, then every model's logit `u_m·h`, for a block of rows at a time (one pass of
        // each packed matrix per block; 64 rows at the default k = 32).
        let block = (2048 / k.max(m).max(1)).clamp(1, batch.rows().max(1));
        let (mut hs, mut logits) = (vec![0.0f32; block * k], vec![0.0f32; block * m]);
        let mut start = 0;
        while start < batch.rows() {
            let end = (start + block).min(batch.rows());
            let rows = &batch.data()[start * self.dim..end * self.dim];
            let (hs, logits) = (
                &mut hs[..(end - start) * k],
                &mut logits[..(end - start) * m],
            );
            self.packed.apply(rows, hs);
            for (r, h) in (start..end).zip(hs.chunks_exact_mut(k.max(1))) {
                // P·e with e = x / ‖x‖: project the raw row, then scale.
                let inv = inv_norm(batch.row(r));
                let u = self.task_row(batch.task(r));
                for (v, t) in h
                    .iter_mut()
                    .zip(&self.params.task_vectors[u * k..(u + 1) * k])
                {
                    *v = *v * inv + t;
                }
            }
            self.packed_fused.apply(hs, logits);
            for (r, l) in (start..end).zip(logits.chunks_exact(m.max(1))) {
                let tokens = batch.prompt_tokens(r);
                let (q, c) = out.row_mut(r);
                for j in 0..m {
                    let logit = l[j] + self.params.bias[j];
                    q[j] = 1.0 / (1.0 + (-f64::from(logit)).exp());
                    c[j] = match self.cost_fit[j] {
                        Some((a, b)) => a + b * tokens.unwrap_or(0.0),
                        None => self.pool.estimate_cost(j, tokens),
                    };
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
