//! Partial labels and onboarding: which reference scores are observed, neighbours chosen per
//! model among the rows labelled for it, and models added to a fitted router
//! ([`KnnRouter::add_model`]) with a prior built from the other models' estimates.
//!
//! # Onboarding a model
//!
//! A model added to a fitted router gets an [`Anchor`]: its prior on a query is a linear
//! combination of the other models' estimates on that query, `π(x) = b + Σ a_i q_i(x)`, clipped
//! to [0, 1]. Without labels, `a` is the card prior of [`ModelPool::prior_weights`] (the known
//! models weighted by how close their price and description are to the new card) and `b = 0`.
//! With `k` labelled queries, `(a, b)` is the ridge regression of the new model's scores on the
//! other models' estimates for those queries (each query's own reference row left out), pulled
//! toward the card prior with strength [`ANCHOR_RIDGE`], plus a per-task offset: the mean of
//! the regression's residuals on the labelled queries of the task, shrunk toward 0 with
//! [`TASK_OFFSET_RIDGE`] pseudo-queries (`π_t(x) = b + Σ a_i q_i(x) + o_t`). The offsets carry
//! what a combination of the other models cannot: a model that fails one task that the others
//! pass (on `llmrouter_dc`, `qwen2.5-7b-instruct` scores 0.08 on `mmlu`'s test queries, which
//! the other models pass more often). The
//! labelled queries also become reference rows observed for the new model only, so its
//! estimate is its labelled neighbours' weighted mean shrunk toward `π(x)` with
//! [`Anchor::strength`] pseudo-neighbours. Nothing the
//! router knew of the other models changes: their neighbours are chosen among their own
//! observed rows, so their estimates are bit for bit what they were.
//!
//! [`ModelPool::prior_weights`]: crate::ModelPool::prior_weights

use serde::{Deserialize, Serialize};

use super::search::select_top;
use super::{KnnConfig, KnnRouter, NO_TASK};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::features::normalize_into;
use crate::pool::ModelCard;
use crate::router::{Estimates, Signals};
use crate::simd;

/// Ridge strength pulling an onboarded model's anchor weights toward its card prior, in units of
/// one labelled query's squared error.
pub const ANCHOR_RIDGE: f64 = 2.0;

/// Pseudo-neighbours of an onboarded model's anchor prior in its estimate (the shrinkage of
/// its labelled neighbours toward it), at least the router's own shrinkage.
pub const ANCHOR_STRENGTH: f64 = 10.0;

/// Pseudo-queries of residual 0 that shrink an onboarded model's per-task offset: a task with
/// `n` labelled queries gets `n / (n + TASK_OFFSET_RIDGE)` of their mean residual.
pub const TASK_OFFSET_RIDGE: f64 = 5.0;

/// A reference row whose similarity to a labelled query is at least this is the query itself:
/// left out of the features its anchor is fitted on.
const SELF_SIMILARITY: f32 = 0.9999;

/// The prior of a model onboarded by [`KnnRouter::add_model`]: `clip(intercept + Σ weights[i] ·
/// q_i(x) + task_offsets[t], 0, 1)` over the other models' estimates `q_i(x)` (weights of
/// onboarded models are zero) for a query of task `t`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anchor {
    /// One weight per model of the router (zero for the model itself and other onboarded ones).
    pub weights: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
    /// Pseudo-neighbours of the prior in the model's estimate.
    pub strength: f64,
    /// Labelled queries the anchor was fitted on (0: the card prior alone).
    pub labelled: usize,
    /// One offset per task of the router, in the order of its task names (empty: none).
    #[serde(default)]
    pub task_offsets: Vec<f64>,
}

impl Anchor {
    fn prior(&self, quality: &[f64], task: Option<u32>) -> f64 {
        let q: f64 = self
            .weights
            .iter()
            .zip(quality)
            .map(|(w, q)| w * q)
            .sum::<f64>();
        let offset = task
            .and_then(|t| self.task_offsets.get(t as usize))
            .copied()
            .unwrap_or(0.0);
        (self.intercept + q + offset).clamp(0.0, 1.0)
    }
}

/// Which reference scores are observed, their weights, and onboarded models' anchors.
#[derive(Debug, Clone, Default)]
pub(super) struct RefLabels {
    pub(super) observed: Option<Vec<bool>>,
    pub(super) ipw: Option<Vec<f32>>,
    pub(super) anchors: Vec<Option<Anchor>>,
}

impl RefLabels {
    /// The labels of `train`'s rows in the router's row `order`.
    pub(super) fn of_split(train: &Split, order: &[usize], config: &KnnConfig) -> Result<Self> {
        let m = train.pool().len();
        let observed = train.observed_mask().map(|mask| {
            order
                .iter()
                .flat_map(|&r| mask[r * m..(r + 1) * m].iter().copied())
                .collect::<Vec<bool>>()
        });
        train.require_every_model_labelled(crate::kind::RouterKind::Knn.name(), false)?;
        let ipw = match (config.inverse_propensity, train.propensities()) {
            (true, Some(p)) => Some(
                order
                    .iter()
                    .flat_map(|&r| {
                        p[r * m..(r + 1) * m].iter().map(|&v| {
                            if v.is_nan() {
                                1.0
                            } else {
                                (1.0 / v) as f32
                            }
                        })
                    })
                    .collect(),
            ),
            _ => None,
        };
        Ok(RefLabels {
            observed,
            ipw,
            anchors: vec![None; m],
        })
    }

    pub(super) fn check(&self, n: usize, m: usize) -> std::result::Result<(), String> {
        if self.observed.as_ref().is_some_and(|o| o.len() != n * m)
            || self.ipw.as_ref().is_some_and(|w| w.len() != n * m)
            || self.anchors.len() != m
        {
            return Err("knn observed cells, weights or anchors disagree in size".into());
        }
        if self
            .ipw
            .as_ref()
            .is_some_and(|w| w.iter().any(|v| !(v.is_finite() && *v >= 1.0)))
        {
            return Err("knn inverse-propensity weights below 1 or not finite".into());
        }
        for (j, a) in self.anchors.iter().enumerate() {
            let Some(a) = a else { continue };
            let bad = a.weights.len() != m
                || a.weights[j] != 0.0
                || a.weights.iter().any(|w| !w.is_finite())
                || !a.intercept.is_finite()
                || !(a.strength.is_finite() && a.strength >= 0.0)
                || a.task_offsets.iter().any(|o| !o.is_finite())
                || a.weights
                    .iter()
                    .zip(&self.anchors)
                    .any(|(w, other)| *w != 0.0 && other.is_some());
            if bad {
                return Err(format!("knn anchor of model #{j} is invalid"));
            }
        }
        // A model without an anchor needs observed scores to have a prior.
        if let Some(mask) = &self.observed {
            for j in 0..m {
                if self.anchors[j].is_none() && !mask.iter().skip(j).step_by(m).any(|&o| o) {
                    return Err(format!(
                        "knn model #{j} has no observed score and no anchor"
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn observed_rows(&self, n: usize, m: usize) -> Vec<Vec<u32>> {
        match &self.observed {
            None => Vec::new(),
            Some(mask) => (0..m)
                .map(|j| {
                    (0..n)
                        .filter(|&r| mask[r * m + j])
                        .map(|r| r as u32)
                        .collect()
                })
                .collect(),
        }
    }
}

/// Global and per-task priors from the observed scores: per model its observed mean (0 for a
/// model with none, which has an anchor instead), per task its observed task mean shrunk
/// toward the global one by `strength` pseudo-queries.
pub(super) fn priors(
    scores: &[f32],
    mask: &[bool],
    m: usize,
    task_rows: &[(usize, usize)],
    strength: f64,
) -> (Vec<f64>, Vec<f64>) {
    let sums = |rows: std::ops::Range<usize>| -> (Vec<f64>, Vec<f64>) {
        let (mut s, mut c) = (vec![0.0f64; m], vec![0.0f64; m]);
        for r in rows {
            for j in 0..m {
                if mask[r * m + j] {
                    s[j] += f64::from(scores[r * m + j]);
                    c[j] += 1.0;
                }
            }
        }
        (s, c)
    };
    let n = scores.len() / m.max(1);
    let (s, c) = sums(0..n);
    let global: Vec<f64> = s
        .iter()
        .zip(&c)
        .map(|(s, &c)| if c > 0.0 { s / c } else { 0.0 })
        .collect();
    let mut task = Vec::with_capacity(task_rows.len() * m);
    for &(a, b) in task_rows {
        let (s, c) = sums(a..b);
        for j in 0..m {
            // The full-label arithmetic (mean × count), so that a model observed on every row
            // gets the same bits as in a full-label router.
            let mean = s[j] / c[j].max(1.0);
            let den = c[j] + strength;
            task.push(if den > 0.0 {
                (mean * c[j] + strength * global[j]) / den.max(f64::MIN_POSITIVE)
            } else {
                global[j]
            });
        }
    }
    (global, task)
}

/// Per-thread buffers of the per-model neighbour selection.
#[derive(Default)]
pub(super) struct PartialScratch {
    sims: Vec<f32>,
    query: Vec<f32>,
    pairs: Vec<(f32, u32)>,
}

impl KnnRouter {
    pub(super) fn ref_labels(&self) -> RefLabels {
        RefLabels {
            observed: self.observed.clone(),
            ipw: self.ipw.clone(),
            anchors: self.anchors.clone(),
        }
    }

    /// Whether the router chooses neighbours per model (partial labels or onboarded models).
    pub fn has_partial_labels(&self) -> bool {
        self.observed.is_some()
    }

    /// The anchor of model `m`, when it was onboarded by [`KnnRouter::add_model`].
    pub fn anchor(&self, m: usize) -> Option<&Anchor> {
        self.anchors.get(m).and_then(Option::as_ref)
    }

    /// Every query of `batch`, per model over its own observed rows.
    pub(super) fn estimate_partial_batch(
        &self,
        batch: &crate::features::FeatureBatch<'_>,
        out: &mut Estimates,
    ) {
        thread_local! {
            static SCRATCH: std::cell::RefCell<PartialScratch> =
                std::cell::RefCell::new(PartialScratch::default());
        }
        SCRATCH.with(|cell| {
            let scratch = &mut *cell.borrow_mut();
            for row in 0..batch.rows() {
                scratch.query.resize(self.dim, 0.0);
                normalize_into(batch.row(row), &mut scratch.query);
                let query = std::mem::take(&mut scratch.query);
                let (q, c) = out.row_mut(row);
                out.signals[row] = self.estimate_per_model(
                    &query,
                    batch.task(row),
                    batch.prompt_tokens(row),
                    None,
                    scratch,
                    q,
                    c,
                );
                scratch.query = query;
            }
        });
    }

    /// One normalised query's estimate with neighbours chosen per model among its observed rows
    /// (every row when the router has full labels), leaving out reference rows at least
    /// `exclude` similar (the query itself, when it is a reference row).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn estimate_per_model(
        &self,
        query: &[f32],
        task: Option<&str>,
        prompt_tokens: Option<f64>,
        exclude: Option<f32>,
        scratch: &mut PartialScratch,
        quality: &mut [f64],
        cost: &mut [f64],
    ) -> Signals {
        let n = self.len();
        let m = self.pool.len();
        scratch.sims.resize(n, 0.0);
        simd::dot_rows(&self.embeddings, query, &mut scratch.sims);
        if let Some(limit) = exclude {
            for s in scratch.sims.iter_mut() {
                if *s >= limit {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        let sims = &scratch.sims;
        let pairs = &mut scratch.pairs;
        let ko = self.config.ood_neighbours.min(n);
        pairs.clear();
        pairs.extend(sims.iter().enumerate().map(|(i, &s)| (s, i as u32)));
        select_top(pairs, ko);
        let ood = self.ood_score(pairs.iter().map(|p| p.0).sum::<f32>() / ko as f32);
        let task_id = task.and_then(|t| self.task_ids.get(t).copied());
        let (lo, hi) = match (self.config.same_task, task_id) {
            (true, Some(t)) => self.task_rows[t as usize],
            _ => (0, n),
        };
        let prior = self.prior_for(task_id);
        let mut fewest = u32::MAX;
        for pass in [false, true] {
            for j in 0..m {
                let anchor = self.anchors.get(j).and_then(Option::as_ref);
                if anchor.is_some() != pass {
                    continue;
                }
                pairs.clear();
                match self.observed_rows.get(j) {
                    Some(rows) => {
                        let a = rows.partition_point(|&r| (r as usize) < lo);
                        let b = rows.partition_point(|&r| (r as usize) < hi);
                        pairs.extend(rows[a..b].iter().map(|&r| (sims[r as usize], r)));
                    }
                    None => pairs.extend((lo..hi).map(|r| (sims[r], r as u32))),
                }
                if exclude.is_some() {
                    pairs.retain(|p| p.0.is_finite());
                }
                let k = self.config.k.min(pairs.len());
                select_top(pairs, k);
                fewest = fewest.min(pairs.len() as u32);
                let (p, beta) = match anchor {
                    Some(a) => (a.prior(quality, task_id), a.strength),
                    None => (prior[j], self.config.shrinkage),
                };
                let (q, c) = self.model_estimate(j, beta, p, pairs, prompt_tokens);
                quality[j] = q;
                cost[j] = c;
            }
        }
        Signals {
            neighbours: Some(if fewest == u32::MAX { 0 } else { fewest }),
            ood: Some(ood),
        }
    }

    /// Model `j`'s estimate from its neighbours: the arithmetic of
    /// [`KnnRouter::estimate_from_pairs`] for one model (the same bits for the same pairs),
    /// with each weight divided by the neighbour's propensity when the router keeps them.
    fn model_estimate(
        &self,
        j: usize,
        beta: f64,
        prior: f64,
        pairs: &[(f32, u32)],
        prompt_tokens: Option<f64>,
    ) -> (f64, f64) {
        let m = self.pool.len();
        let (mut wsum, mut quality) = (0.0f64, 0.0f64);
        let (mut cost_num, mut cost_den, mut out_num, mut out_den) = (0.0, 0.0, 0.0, 0.0);
        for &(s, i) in pairs {
            let i = i as usize;
            let mut w = self.config.weighting.weight(s);
            if let Some(ipw) = &self.ipw {
                w *= f64::from(ipw[i * m + j]);
            }
            wsum += w;
            quality += w * f64::from(self.scores[i * m + j]);
            let c = self.costs[i * m + j];
            if !c.is_nan() {
                cost_num += w * f64::from(c);
                cost_den += w;
            }
            let o = self.output_tokens[i * m + j];
            if !o.is_nan() {
                out_num += w * f64::from(o);
                out_den += w;
            }
        }
        let den = wsum + beta;
        let q = if den > 0.0 {
            ((quality + beta * prior) / den).clamp(0.0, 1.0)
        } else {
            prior
        };
        let c = if self.any_observed_cost[j] && cost_den > 0.0 {
            cost_num / cost_den
        } else {
            let out = (self.any_output_tokens[j] && out_den > 0.0).then(|| out_num / out_den);
            self.pool
                .card(j)
                .estimate_cost(prompt_tokens.unwrap_or(0.0), out)
        };
        (q, c)
    }

    /// The router with new prices ([`ModelPool::repriced`]) without refitting: prices are data,
    /// not weights. The neighbours' costs of each repriced model are scaled by its ratio of new
    /// to old mean price per token; quality estimates are unchanged.
    ///
    /// # Errors
    ///
    /// As [`ModelPool::repriced`]; [`Error::Config`] for a model repriced from a price of 0
    /// (its costs have no ratio to scale by).
    ///
    /// [`ModelPool::repriced`]: crate::ModelPool::repriced
    pub fn reprice(&self, prices: &[ModelCard]) -> Result<KnnRouter> {
        let pool = self.pool.repriced(prices)?;
        let m = pool.len();
        let mut out = self.clone();
        for j in 0..m {
            let r = crate::pool::cost_scale(self.pool.card(j), pool.card(j))?;
            if r != 1.0 {
                for c in out.costs.iter_mut().skip(j).step_by(m) {
                    *c = (f64::from(*c) * r) as f32;
                }
            }
        }
        out.pool = pool;
        Ok(out)
    }

    /// The router with one more model, `card`, learned from the queries of `labelled` where it
    /// has a score (none: from its card alone), without refitting what the router knows about
    /// the other models: their estimates stay bit for bit what they were. See the
    /// [module documentation](self) for the prior.
    ///
    /// `labelled` is any split whose pool has a model with the card's id (other models' columns
    /// are ignored), with embeddings of this router's dimension.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a card whose id the router already has or whose prices are out of
    /// range; [`Error::UnknownModel`] when `labelled` has no such model;
    /// [`Error::DimensionMismatch`] / [`Error::EmbeddingMismatch`] for other embeddings.
    pub fn add_model(&self, card: ModelCard, labelled: Option<&Split>) -> Result<KnnRouter> {
        let m_old = self.pool.len();
        let pool = self.pool.with_added(&card)?;
        let mut prior_weights = self.pool.prior_weights(&card);
        for (w, a) in prior_weights.iter_mut().zip(&self.anchors) {
            if a.is_some() {
                *w = 0.0;
            }
        }
        let total: f64 = prior_weights.iter().sum();
        if total > 0.0 {
            prior_weights.iter_mut().for_each(|w| *w /= total);
        }
        // The labelled queries of the new model: (normalised embedding, task, score, cost,
        // answer length, propensity).
        struct Labelled {
            emb: Vec<f32>,
            task: Option<String>,
            tokens: f64,
            score: f64,
            cost: f32,
            out: f32,
            ipw: f32,
        }
        let mut rows: Vec<Labelled> = Vec::new();
        if let Some(split) = labelled {
            let col = split.labelled_column(&card.id)?;
            let batch = split.features()?;
            batch.check_compatible(self.dim, self.embedding_model.as_deref())?;
            let ms = split.pool().len();
            for r in 0..split.len() {
                if !split.observed(r, col) {
                    continue;
                }
                let mut emb = vec![0.0f32; self.dim];
                normalize_into(batch.row(r), &mut emb);
                let c = r * ms + col;
                rows.push(Labelled {
                    emb,
                    task: split.tasks()[r].clone(),
                    tokens: split.prompt_tokens()[r],
                    score: split.score(r, col),
                    cost: if split.cost_observed()[c] {
                        split.costs()[c] as f32
                    } else {
                        f32::NAN
                    },
                    out: split.output_tokens()[c] as f32,
                    ipw: match (self.config.inverse_propensity, split.propensities()) {
                        (true, Some(p)) if !p[c].is_nan() => (1.0 / p[c]) as f32,
                        _ => 1.0,
                    },
                });
            }
        }
        // The anchor: ridge regression of the scores on the other models' estimates.
        let free: Vec<usize> = (0..m_old).filter(|&j| self.anchors[j].is_none()).collect();
        let mut features = Vec::with_capacity(rows.len() * (free.len() + 1));
        let mut scratch = PartialScratch::default();
        let (mut q, mut c) = (vec![0.0; m_old], vec![0.0; m_old]);
        for l in &rows {
            self.estimate_per_model(
                &l.emb,
                l.task.as_deref(),
                Some(l.tokens),
                Some(SELF_SIMILARITY),
                &mut scratch,
                &mut q,
                &mut c,
            );
            features.push(1.0);
            features.extend(free.iter().map(|&j| q[j]));
        }
        let targets: Vec<f64> = rows.iter().map(|l| l.score).collect();
        let mut start = vec![0.0];
        start.extend(free.iter().map(|&j| prior_weights[j]));
        let solved = ridge(&features, &targets, &start, ANCHOR_RIDGE);
        let mut weights = vec![0.0; m_old + 1];
        for (&j, &w) in free.iter().zip(&solved[1..]) {
            weights[j] = w;
        }
        // The task names of the new router: the old ones and the labelled queries'.
        let mut names: Vec<String> = self.task_names.clone();
        names.extend(rows.iter().filter_map(|l| l.task.clone()));
        names.sort();
        names.dedup();
        let id_of = |t: Option<&str>| -> u32 {
            t.and_then(|t| names.binary_search_by(|x| x.as_str().cmp(t)).ok())
                .map_or(NO_TASK, |i| i as u32)
        };
        // Per task, the regression's residuals on its labelled queries, shrunk toward 0.
        let mut anchor = Anchor {
            weights,
            intercept: solved[0],
            strength: self.config.shrinkage.max(ANCHOR_STRENGTH),
            labelled: rows.len(),
            task_offsets: Vec::new(),
        };
        let mut residuals = vec![(0.0f64, 0usize); names.len()];
        for (l, x) in rows.iter().zip(features.chunks_exact(free.len() + 1)) {
            let t = id_of(l.task.as_deref());
            if t == NO_TASK {
                continue;
            }
            // Unclamped, as the prior adds the offset before it clamps.
            let combined: f64 = x.iter().zip(&solved).map(|(a, b)| a * b).sum();
            let r = &mut residuals[t as usize];
            r.0 += l.score - combined;
            r.1 += 1;
        }
        if residuals.iter().any(|r| r.1 > 0) {
            anchor.task_offsets = residuals
                .iter()
                .map(|&(sum, n)| sum / (n as f64 + TASK_OFFSET_RIDGE))
                .collect();
        }
        // The reference rows: the old ones, then the labelled queries, regrouped by task.
        let m = m_old + 1;
        let n_old = self.len();
        let n = n_old + rows.len();
        let task_of = |r: usize| -> u32 {
            if r < n_old {
                match self.tasks[r] {
                    NO_TASK => NO_TASK,
                    t => id_of(Some(&self.task_names[t as usize])),
                }
            } else {
                id_of(rows[r - n_old].task.as_deref())
            }
        };
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&r| task_of(r));
        let (mut emb, mut scores, mut costs, mut outs) = (
            Vec::with_capacity(n * self.dim),
            Vec::with_capacity(n * m),
            Vec::with_capacity(n * m),
            Vec::with_capacity(n * m),
        );
        let mut observed = Vec::with_capacity(n * m);
        let mut ipw = self.ipw.as_ref().map(|_| Vec::with_capacity(n * m));
        let any_ipw = self.ipw.is_some() || rows.iter().any(|l| l.ipw != 1.0);
        if any_ipw && ipw.is_none() {
            ipw = Some(Vec::with_capacity(n * m));
        }
        for &r in &order {
            if r < n_old {
                emb.extend_from_slice(self.row(r));
                scores.extend_from_slice(&self.scores[r * m_old..(r + 1) * m_old]);
                scores.push(0.0);
                costs.extend_from_slice(&self.costs[r * m_old..(r + 1) * m_old]);
                costs.push(f32::NAN);
                outs.extend_from_slice(&self.output_tokens[r * m_old..(r + 1) * m_old]);
                outs.push(f32::NAN);
                match &self.observed {
                    Some(o) => observed.extend_from_slice(&o[r * m_old..(r + 1) * m_old]),
                    None => observed.extend(std::iter::repeat_n(true, m_old)),
                }
                observed.push(false);
                if let Some(w) = &mut ipw {
                    match &self.ipw {
                        Some(old) => w.extend_from_slice(&old[r * m_old..(r + 1) * m_old]),
                        None => w.extend(std::iter::repeat_n(1.0, m_old)),
                    }
                    w.push(1.0);
                }
            } else {
                let l = &rows[r - n_old];
                emb.extend_from_slice(&l.emb);
                scores.extend(std::iter::repeat_n(0.0, m_old));
                scores.push(l.score as f32);
                costs.extend(std::iter::repeat_n(f32::NAN, m_old));
                costs.push(l.cost);
                outs.extend(std::iter::repeat_n(f32::NAN, m_old));
                outs.push(l.out);
                observed.extend(std::iter::repeat_n(false, m_old));
                observed.push(true);
                if let Some(w) = &mut ipw {
                    w.extend(std::iter::repeat_n(1.0, m_old));
                    w.push(l.ipw);
                }
            }
        }
        // Earlier onboarded models keep their offsets under the new task numbering.
        let mut anchors: Vec<Option<Anchor>> = self
            .anchors
            .iter()
            .map(|a| {
                a.clone().map(|mut a| {
                    a.weights.push(0.0);
                    if !a.task_offsets.is_empty() {
                        let mut offsets = vec![0.0; names.len()];
                        for (name, o) in self.task_names.iter().zip(&a.task_offsets) {
                            offsets[id_of(Some(name)) as usize] = *o;
                        }
                        a.task_offsets = offsets;
                    }
                    a
                })
            })
            .collect();
        anchors.push(Some(anchor));
        let tasks: Vec<u32> = order.iter().map(|&r| task_of(r)).collect();
        KnnRouter::assemble(
            self.config.clone(),
            pool,
            self.embedding_model.clone(),
            self.dim,
            emb.into(),
            scores,
            costs,
            outs,
            tasks,
            names,
            self.ood_quantiles.clone(),
            None,
            RefLabels {
                observed: Some(observed),
                ipw,
                anchors,
            },
        )
        .map_err(|e| Error::Numeric(format!("onboarding {:?}: {e}", card.id)))
    }
}

/// `argmin_x ‖A x − y‖² + λ ‖x − x0‖²` for `A` with `x0.len()` columns (row-major), by the
/// normal equations `(AᵀA + λI) x = Aᵀy + λ x0` and Gaussian elimination with partial pivoting
/// (`λ > 0` makes the system positive definite). Hand-written: a system of at most a few dozen
/// unknowns solved once per onboarding does not earn a linear-algebra dependency.
fn ridge(a: &[f64], y: &[f64], x0: &[f64], lambda: f64) -> Vec<f64> {
    let p = x0.len();
    let mut m = vec![0.0f64; p * (p + 1)];
    for (row, &t) in a.chunks_exact(p).zip(y) {
        for i in 0..p {
            for j in 0..p {
                m[i * (p + 1) + j] += row[i] * row[j];
            }
            m[i * (p + 1) + p] += row[i] * t;
        }
    }
    for i in 0..p {
        m[i * (p + 1) + i] += lambda;
        m[i * (p + 1) + p] += lambda * x0[i];
    }
    for col in 0..p {
        let pivot = (col..p)
            .max_by(|&r, &s| {
                m[r * (p + 1) + col]
                    .abs()
                    .total_cmp(&m[s * (p + 1) + col].abs())
            })
            .unwrap_or(col);
        if pivot != col {
            for j in 0..=p {
                m.swap(col * (p + 1) + j, pivot * (p + 1) + j);
            }
        }
        let d = m[col * (p + 1) + col];
        if d.abs() < 1e-300 {
            return x0.to_vec();
        }
        for r in 0..p {
            if r != col {
                let f = m[r * (p + 1) + col] / d;
                if f != 0.0 {
                    for j in col..=p {
                        m[r * (p + 1) + j] -= f * m[col * (p + 1) + j];
                    }
                }
            }
        }
    }
    let x: Vec<f64> = (0..p)
        .map(|i| m[i * (p + 1) + p] / m[i * (p + 1) + i])
        .collect();
    if x.iter().all(|v| v.is_finite()) {
        x
    } else {
        x0.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::ridge;

    #[test]
    fn ridge_solves_and_shrinks() {
        // y = 1 + 2 x exactly; a tiny λ recovers it, a huge one stays at x0.
        let a: Vec<f64> = (0..10).flat_map(|i| [1.0, i as f64]).collect();
        let y: Vec<f64> = (0..10).map(|i| 1.0 + 2.0 * i as f64).collect();
        let x = ridge(&a, &y, &[0.0, 0.0], 1e-9);
        assert!(
            (x[0] - 1.0).abs() < 1e-6 && (x[1] - 2.0).abs() < 1e-6,
            "{x:?}"
        );
        let x = ridge(&a, &y, &[0.5, 0.5], 1e12);
        assert!(
            (x[0] - 0.5).abs() < 1e-6 && (x[1] - 0.5).abs() < 1e-6,
            "{x:?}"
        );
        assert_eq!(ridge(&[], &[], &[0.3], 1.0), vec![0.3]);
    }
}
