//! Estimating queries: the neighbours' weighted scores and costs shrunk toward the prior, the
//! out-of-distribution score, and the `Router` implementation with its per-thread scratch
//! buffers.

use std::cell::RefCell;

use super::search::top_k;
use super::{hnsw, quant, KnnConfig, KnnRouter, Prior};
use crate::error::Result;
use crate::features::{normalize_into, FeatureBatch};
use crate::kind::RouterKind;
use crate::pool::ModelPool;
use crate::router::{Estimates, Router, Signals};
use crate::saved::SavedRouter;
use crate::simd;

struct Scratch {
    sims: [Vec<f32>; 4],
    pairs: Vec<(f32, u32)>,
    query: [Vec<f32>; 4],
    graph: hnsw::SearchScratch,
    found: Vec<(u32, f32)>,
    quant: quant::QuantScratch,
    ood: Vec<(f32, u32)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        sims: Default::default(),
        pairs: Vec::new(),
        query: Default::default(),
        graph: hnsw::SearchScratch::default(),
        found: Vec::new(),
        quant: Default::default(),
        ood: Vec::new(),
    });
}

impl KnnRouter {
    /// The OOD score of a query whose mean similarity to its nearest training queries is `s`.
    pub(super) fn ood_score(&self, s: f32) -> f32 {
        let q = &self.ood_quantiles;
        // Share of training queries whose neighbourhood similarity exceeds s.
        let below = q.partition_point(|&v| v < s);
        if below == 0 {
            return 1.0;
        }
        if below >= q.len() {
            return 0.0;
        }
        let (a, b) = (q[below - 1], q[below]);
        let frac = if b > a { (s - a) / (b - a) } else { 0.5 };
        let rank = (below - 1) as f32 + frac;
        1.0 - rank / (q.len() - 1) as f32
    }

    /// Estimates one query from its similarities to every reference row (exact search).
    #[allow(clippy::too_many_arguments)]
    fn estimate_from_sims(
        &self,
        sims: &[f32],
        task: Option<&str>,
        prompt_tokens: Option<f64>,
        pairs: &mut Vec<(f32, u32)>,
        quality: &mut [f64],
        cost: &mut [f64],
    ) -> Signals {
        let n = self.len();
        // Out-of-distribution: mean similarity of the nearest rows overall.
        let ko = self.config.ood_neighbours.min(n);
        top_k(sims, 0, ko, pairs);
        let ood = self.ood_score(pairs.iter().map(|p| p.0).sum::<f32>() / ko as f32);
        let task_id = task.and_then(|t| self.task_ids.get(t).copied());
        let (lo, hi) = match (self.config.same_task, task_id) {
            (true, Some(t)) => self.task_rows[t as usize],
            _ => (0, n),
        };
        top_k(&sims[lo..hi], lo, self.config.k.min(hi - lo), pairs);
        let prior = self.prior_for(task_id);
        self.estimate_from_pairs(&self.config, prior, pairs, prompt_tokens, quality, cost);
        Signals {
            neighbours: Some(pairs.len() as u32),
            ood: Some(ood),
        }
    }

    /// Estimates one query with the HNSW graph.
    #[allow(clippy::too_many_arguments)]
    fn estimate_with_graph(
        &self,
        graph: &hnsw::Hnsw,
        query: &[f32],
        task: Option<&str>,
        prompt_tokens: Option<f64>,
        scratch: &mut hnsw::SearchScratch,
        found: &mut Vec<(u32, f32)>,
        pairs: &mut Vec<(f32, u32)>,
        quality: &mut [f64],
        cost: &mut [f64],
    ) -> Signals {
        let task_id = task.and_then(|t| self.task_ids.get(t).copied());
        let restrict = self.config.same_task && task_id.is_some();
        // With a task restriction, over-fetch and keep the query's task.
        let want = self.config.k.max(self.config.ood_neighbours) * if restrict { 4 } else { 1 };
        let ef = graph.config().ef_search.max(want);
        graph.search(&self.embeddings, query, want, ef, scratch, found);
        let ko = self.config.ood_neighbours.min(found.len()).max(1);
        let ood = self.ood_score(found.iter().take(ko).map(|f| f.1).sum::<f32>() / ko as f32);
        pairs.clear();
        pairs.extend(
            found
                .iter()
                .filter(|f| !restrict || Some(self.tasks[f.0 as usize]) == task_id)
                .take(self.config.k)
                .map(|&(i, s)| (s, i)),
        );
        let prior = self.prior_for(task_id);
        self.estimate_from_pairs(&self.config, prior, pairs, prompt_tokens, quality, cost);
        Signals {
            neighbours: Some(pairs.len() as u32),
            ood: Some(ood),
        }
    }

    /// The prior of a query of task `task_id` under this router's config.
    pub(super) fn prior_for(&self, task_id: Option<u32>) -> &[f64] {
        let m = self.pool.len();
        match (self.config.prior, task_id) {
            (Prior::Task { .. }, Some(t)) => &self.task_prior[t as usize * m..(t as usize + 1) * m],
            _ => &self.global_prior,
        }
    }

    /// The estimate from the chosen neighbours `(similarity, row)` under `config`'s weighting
    /// and shrinkage toward `prior`.
    pub(super) fn estimate_from_pairs(
        &self,
        config: &KnnConfig,
        prior: &[f64],
        pairs: &[(f32, u32)],
        prompt_tokens: Option<f64>,
        quality: &mut [f64],
        cost: &mut [f64],
    ) {
        let m = self.pool.len();
        let beta = config.shrinkage;
        let mut wsum = 0.0f64;
        quality.fill(0.0);
        let mut cost_num = vec_zero::<16>(m);
        let mut cost_den = vec_zero::<16>(m);
        let mut out_num = vec_zero::<16>(m);
        let mut out_den = vec_zero::<16>(m);
        for &(s, i) in pairs {
            let w = config.weighting.weight(s);
            wsum += w;
            let i = i as usize;
            for j in 0..m {
                quality[j] += w * f64::from(self.scores[i * m + j]);
                let c = self.costs[i * m + j];
                if !c.is_nan() {
                    cost_num[j] += w * f64::from(c);
                    cost_den[j] += w;
                }
                let o = self.output_tokens[i * m + j];
                if !o.is_nan() {
                    out_num[j] += w * f64::from(o);
                    out_den[j] += w;
                }
            }
        }
        let den = wsum + beta;
        for j in 0..m {
            quality[j] = if den > 0.0 {
                ((quality[j] + beta * prior[j]) / den).clamp(0.0, 1.0)
            } else {
                prior[j]
            };
            let card = self.pool.card(j);
            cost[j] = if self.any_observed_cost[j] && cost_den[j] > 0.0 {
                cost_num[j] / cost_den[j]
            } else {
                let out = (self.any_output_tokens[j] && out_den[j] > 0.0)
                    .then(|| out_num[j] / out_den[j]);
                card.estimate_cost(prompt_tokens.unwrap_or(0.0), out)
            };
        }
    }

    /// The router's estimate from given neighbours `(similarity, reference row)` (for example
    /// [`KnnRouter::neighbours`] with some rows left out): expected quality and cost of every
    /// model under the router's weighting, shrinkage and prior.
    ///
    /// # Panics
    ///
    /// When `quality` or `cost` is not one value per model, or a reference row is out of range.
    pub fn estimate_from_neighbours(
        &self,
        neighbours: &[(f32, u32)],
        task: Option<&str>,
        prompt_tokens: Option<f64>,
        quality: &mut [f64],
        cost: &mut [f64],
    ) {
        let task_id = task.and_then(|t| self.task_ids.get(t).copied());
        let prior = self.prior_for(task_id);
        self.estimate_from_pairs(
            &self.config,
            prior,
            neighbours,
            prompt_tokens,
            quality,
            cost,
        );
    }
}

/// `m` zeros, on the stack for up to `N` models.
fn vec_zero<const N: usize>(m: usize) -> SmallF64<N> {
    SmallF64::new(m)
}

/// A small zeroed `f64` buffer: inline for up to `N` values, heap beyond.
enum SmallF64<const N: usize> {
    Inline([f64; N], usize),
    Heap(Vec<f64>),
}

impl<const N: usize> SmallF64<N> {
    fn new(m: usize) -> Self {
        if m <= N {
            SmallF64::Inline([0.0; N], m)
        } else {
            SmallF64::Heap(vec![0.0; m])
        }
    }
}

impl<const N: usize> std::ops::Deref for SmallF64<N> {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        match self {
            SmallF64::Inline(a, m) => &a[..*m],
            SmallF64::Heap(v) => v,
        }
    }
}

impl<const N: usize> std::ops::DerefMut for SmallF64<N> {
    fn deref_mut(&mut self) -> &mut [f64] {
        match self {
            SmallF64::Inline(a, m) => &mut a[..*m],
            SmallF64::Heap(v) => v,
        }
    }
}

impl Router for KnnRouter {
    fn kind(&self) -> &'static str {
        RouterKind::Knn.name()
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
        if self.has_partial_labels() {
            self.estimate_partial_batch(batch, out);
            return Ok(());
        }
        let n = self.len();
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let scratch = &mut *guard;
            if self.graph.is_none() {
                for buf in scratch.sims.iter_mut() {
                    buf.resize(n, 0.0);
                }
            }
            for q in scratch.query.iter_mut() {
                q.resize(self.dim, 0.0);
            }
            if let Some(graph) = &self.graph {
                let Scratch {
                    pairs,
                    query,
                    graph: gs,
                    found,
                    ..
                } = scratch;
                for row in 0..batch.rows() {
                    normalize_into(batch.row(row), &mut query[0]);
                    let (q, c) = out.row_mut(row);
                    out.signals[row] = self.estimate_with_graph(
                        graph,
                        &query[0],
                        batch.task(row),
                        batch.prompt_tokens(row),
                        gs,
                        found,
                        pairs,
                        q,
                        c,
                    );
                }
                return;
            }
            let mut r = 0;
            while r < batch.rows() {
                let take = (batch.rows() - r).min(4);
                for j in 0..take {
                    normalize_into(batch.row(r + j), &mut scratch.query[j]);
                }
                if let Some(index) = &self.prefilter {
                    for j in 0..take {
                        let row = r + j;
                        let (q, c) = out.row_mut(row);
                        let (query, task) = (&scratch.query[j], batch.task(row));
                        let tokens = batch.prompt_tokens(row);
                        out.signals[row] = match self.estimate_prefiltered(
                            index,
                            query,
                            task,
                            tokens,
                            &mut scratch.quant,
                            &mut scratch.ood,
                            &mut scratch.pairs,
                            q,
                            c,
                        ) {
                            Some(signals) => signals,
                            None => {
                                simd::dot_rows(&self.embeddings, query, &mut scratch.sims[j]);
                                let sims = &scratch.sims[j];
                                self.estimate_from_sims(
                                    sims,
                                    task,
                                    tokens,
                                    &mut scratch.pairs,
                                    q,
                                    c,
                                )
                            }
                        };
                    }
                    r += take;
                    continue;
                }
                let [s0, s1, s2, s3] = &mut scratch.sims;
                if take == 4 {
                    let [q0, q1, q2, q3] = &scratch.query;
                    simd::dot_rows4(&self.embeddings, [q0, q1, q2, q3], [s0, s1, s2, s3]);
                } else {
                    for (j, s) in [s0, s1, s2].into_iter().enumerate().take(take) {
                        simd::dot_rows(&self.embeddings, &scratch.query[j], s);
                    }
                }
                for j in 0..take {
                    let row = r + j;
                    let (q, c) = out.row_mut(row);
                    out.signals[row] = self.estimate_from_sims(
                        &scratch.sims[j],
                        batch.task(row),
                        batch.prompt_tokens(row),
                        &mut scratch.pairs,
                        q,
                        c,
                    );
                }
                r += take;
            }
        });
        Ok(())
    }
    fn to_saved(&self) -> Result<SavedRouter> {
        self.saved_form()
    }
}
