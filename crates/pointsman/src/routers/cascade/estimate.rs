//! What the cascade knows about a query before any call (each model's conditional success
//! estimate and expected cost), and the [`Router`] implementation built on it.

use super::engine::{self, Evidence, Patterns, Scratch, State};
use super::CascadeRouter;
use crate::error::Result;
use crate::features::FeatureBatch;
use crate::kind::RouterKind;
use crate::pool::ModelPool;
use crate::router::{Estimates, Router, Signals};
use crate::saved::SavedRouter;

impl CascadeRouter {
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
    pub(super) fn evidence(
        &self,
        batch: &FeatureBatch<'_>,
        own: Option<&[u32]>,
    ) -> Result<Vec<Evidence>> {
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
        self.saved_form()
    }
}
