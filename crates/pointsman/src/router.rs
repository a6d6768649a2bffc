//! The [`Router`] and [`Learner`] traits, the [`Objective`] of a call and the [`Decision`] it
//! returns.
//!
//! A router only has to *estimate*: for each query of a batch, each candidate model's expected
//! quality (in [0, 1]) and expected cost (USD). Choosing is shared by every router and explicit:
//!
//! ```text
//! utility = expected quality − cost_weight × expected cost
//! ```
//!
//! where `cost_weight` (quality points per USD) is a field of the per-call [`Objective`], so one
//! fitted router serves every trade-off. Ties go to the cheaper model, then to the lower index.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::{FeatureBatch, QueryFeatures};
use crate::pool::ModelPool;

/// Which models a call may choose: by id, or one flag per model of the router's pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Allowed {
    /// These model ids.
    Ids(Vec<String>),
    /// One flag per model, in the order of the router's pool (`true`: may be chosen).
    Mask(Vec<bool>),
}

/// What a routing call optimises: the cost weight, and optionally which models may be chosen.
///
/// # Example
///
/// ```
/// use pointsman::Objective;
/// let cheap = Objective::new(500.0).with_allowed(["gemma-2-9b-it", "qwen2.5-7b-instruct"]);
/// assert_eq!(cheap.cost_weight, 500.0);
/// let first_two = Objective::new(0.0).with_allowed_mask(vec![true, true, false]);
/// # let _ = first_two;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// Quality points given up per USD of expected cost; 0 picks the best expected quality.
    pub cost_weight: f64,
    /// When set, only these models may be chosen.
    pub allowed: Option<Allowed>,
}

impl Objective {
    /// An objective with the given cost weight and every model allowed.
    pub fn new(cost_weight: f64) -> Self {
        Objective {
            cost_weight,
            allowed: None,
        }
    }

    /// Restricts the choice to the models `ids`.
    pub fn with_allowed<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed = Some(Allowed::Ids(ids.into_iter().map(Into::into).collect()));
        self
    }

    /// Restricts the choice to the models whose flag in `mask` (one per model of the router's
    /// pool, in pool order) is `true`.
    pub fn with_allowed_mask(mut self, mask: impl Into<Vec<bool>>) -> Self {
        self.allowed = Some(Allowed::Mask(mask.into()));
        self
    }

    /// Checks the cost weight and resolves the allowed models against `pool`: `None` when every
    /// model is allowed, else one flag per model.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a negative or non-finite cost weight or an allowed set that allows
    /// no model; [`Error::UnknownModel`] for an allowed id that is not in the pool;
    /// [`Error::Shape`] for a mask whose length is not the pool's.
    pub fn resolve(&self, pool: &ModelPool) -> Result<Option<Vec<bool>>> {
        if !self.cost_weight.is_finite() || self.cost_weight < 0.0 {
            return Err(Error::Config(format!(
                "cost_weight {} is not a non-negative number",
                self.cost_weight
            )));
        }
        match &self.allowed {
            None => Ok(None),
            Some(Allowed::Ids(ids)) => {
                if ids.is_empty() {
                    return Err(Error::Config("the allowed model list is empty".into()));
                }
                let mut mask = vec![false; pool.len()];
                for id in ids {
                    mask[pool.index_of(id)?] = true;
                }
                Ok(Some(mask))
            }
            Some(Allowed::Mask(mask)) => {
                if mask.len() != pool.len() {
                    return Err(Error::Shape(format!(
                        "allowed holds {} flags for {} models",
                        mask.len(),
                        pool.len()
                    )));
                }
                if !mask.contains(&true) {
                    return Err(Error::Config("the allowed mask allows no model".into()));
                }
                Ok(Some(mask.clone()))
            }
        }
    }
}

/// Per-query signals behind an estimate, for auditing a decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// Number of reference queries (neighbours, observations) the estimate rests on.
    pub neighbours: Option<u32>,
    /// Out-of-distribution score in [0, 1]: the share of training queries that are closer to
    /// their own neighbourhood than this query is to the training data (0.99: farther out than
    /// 99 % of the training queries).
    pub ood: Option<f32>,
}

/// Per-query, per-model estimates of a batch: `rows × models` row-major matrices.
///
/// `quality` is the expected quality, in [0, 1]. A router that explores (a bandit) chooses by
/// another figure — the expected quality plus an exploration bonus, or a posterior draw — and
/// writes it to `score`; for every other router `score` is empty and the choice uses `quality`
/// ([`Estimates::score_row`] gives whichever the choice uses).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Estimates {
    rows: usize,
    models: usize,
    /// Expected quality in [0, 1], `quality[r * models + m]`.
    pub quality: Vec<f64>,
    /// Expected cost in USD, `cost[r * models + m]`.
    pub cost: Vec<f64>,
    /// The quality figure the choice maximises when it is not `quality` (empty otherwise):
    /// `score[r * models + m]`.
    pub score: Vec<f64>,
    /// Signals per row.
    pub signals: Vec<Signals>,
}

impl Estimates {
    /// Zeroed estimates for `rows` queries and `models` models.
    pub fn new(rows: usize, models: usize) -> Self {
        Estimates {
            rows,
            models,
            quality: vec![0.0; rows * models],
            cost: vec![0.0; rows * models],
            score: Vec::new(),
            signals: vec![Signals::default(); rows],
        }
    }

    /// Resizes (and zeroes) for `rows` queries and `models` models, reusing the allocation.
    pub fn reset(&mut self, rows: usize, models: usize) {
        self.rows = rows;
        self.models = models;
        self.quality.clear();
        self.quality.resize(rows * models, 0.0);
        self.cost.clear();
        self.cost.resize(rows * models, 0.0);
        self.score.clear();
        self.signals.clear();
        self.signals.resize(rows, Signals::default());
    }

    /// Number of queries.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of models.
    pub fn models(&self) -> usize {
        self.models
    }

    /// Expected qualities of row `r`.
    pub fn quality_row(&self, r: usize) -> &[f64] {
        &self.quality[r * self.models..(r + 1) * self.models]
    }

    /// Expected costs of row `r`.
    pub fn cost_row(&self, r: usize) -> &[f64] {
        &self.cost[r * self.models..(r + 1) * self.models]
    }

    /// The quality figure the choice maximises for row `r`: [`Estimates::score`] when the
    /// router wrote one, else the expected quality.
    pub fn score_row(&self, r: usize) -> &[f64] {
        let range = r * self.models..(r + 1) * self.models;
        if self.score.is_empty() {
            &self.quality[range]
        } else {
            &self.score[range]
        }
    }

    /// Mutable expected qualities and costs of row `r`.
    pub fn row_mut(&mut self, r: usize) -> (&mut [f64], &mut [f64]) {
        let range = r * self.models..(r + 1) * self.models;
        (&mut self.quality[range.clone()], &mut self.cost[range])
    }

    /// Mutable expected qualities, costs and scores of row `r` (a router that explores); the
    /// scores are allocated on first use.
    pub fn row_mut_with_score(&mut self, r: usize) -> (&mut [f64], &mut [f64], &mut [f64]) {
        if self.score.len() != self.quality.len() {
            self.score.resize(self.quality.len(), 0.0);
        }
        let range = r * self.models..(r + 1) * self.models;
        (
            &mut self.quality[range.clone()],
            &mut self.cost[range.clone()],
            &mut self.score[range],
        )
    }

    fn check(&self, what: &str) -> Result<()> {
        let bad = self
            .quality
            .iter()
            .chain(&self.cost)
            .chain(&self.score)
            .position(|v| !v.is_finite());
        match bad {
            None => Ok(()),
            Some(i) => Err(Error::Numeric(format!(
                "{what} produced a non-finite estimate at position {i}"
            ))),
        }
    }
}

/// One model's figures in a [`Decision`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    /// Index in the router's pool.
    pub model: usize,
    /// The model's id.
    pub model_id: String,
    /// Expected quality, in [0, 1].
    pub quality: f64,
    /// The quality figure the choice used: the expected quality, plus the exploration bonus of
    /// a router that explores (or its posterior draw), which may exceed 1.
    pub score: f64,
    /// Expected cost in USD.
    pub cost: f64,
    /// What the choice maximised: `score − cost_weight × cost`.
    pub utility: f64,
}

/// The outcome of routing one query: the chosen model, its figures, the ranked alternatives and
/// the signals behind them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Index of the chosen model in the router's pool.
    pub model: usize,
    /// Id of the chosen model.
    pub model_id: String,
    /// Its expected quality, in [0, 1].
    pub quality: f64,
    /// The quality figure the choice used: the expected quality, plus the exploration bonus of
    /// a router that explores (or its posterior draw), which may exceed 1.
    pub score: f64,
    /// Its expected cost in USD.
    pub cost: f64,
    /// Its utility under the objective, what the choice maximised:
    /// `score − cost_weight × cost`.
    pub utility: f64,
    /// The cost weight the decision was made with.
    pub cost_weight: f64,
    /// The other allowed models, best utility first.
    pub alternatives: Vec<Alternative>,
    /// Signals behind the estimate.
    pub signals: Signals,
}

impl Decision {
    /// Builds the decision for row `r` of `est`, given the chosen model.
    pub fn from_estimates(
        pool: &ModelPool,
        est: &Estimates,
        r: usize,
        chosen: usize,
        cost_weight: f64,
        mask: Option<&[bool]>,
    ) -> Decision {
        let q = est.quality_row(r);
        let s = est.score_row(r);
        let c = est.cost_row(r);
        let alt = |m: usize| Alternative {
            model: m,
            model_id: pool.id(m).to_string(),
            quality: q[m],
            score: s[m],
            cost: c[m],
            utility: s[m] - cost_weight * c[m],
        };
        let mut alternatives: Vec<Alternative> = (0..pool.len())
            .filter(|&m| m != chosen && mask.is_none_or(|mask| mask[m]))
            .map(alt)
            .collect();
        alternatives.sort_by(|a, b| {
            b.utility
                .total_cmp(&a.utility)
                .then(a.cost.total_cmp(&b.cost))
                .then(a.model.cmp(&b.model))
        });
        let best = alt(chosen);
        Decision {
            model: chosen,
            model_id: best.model_id,
            quality: best.quality,
            score: best.score,
            cost: best.cost,
            utility: best.utility,
            cost_weight,
            alternatives,
            signals: est.signals[r],
        }
    }
}

/// The model with the best utility `quality − cost_weight × cost` among the allowed ones; ties go
/// to the cheaper model, then to the lower index.
///
/// # Panics
///
/// When `mask` allows no model (an [`Objective`] never resolves to such a mask).
pub fn best_model(quality: &[f64], cost: &[f64], cost_weight: f64, mask: Option<&[bool]>) -> usize {
    let mut best: Option<(usize, f64)> = None;
    for m in 0..quality.len() {
        if mask.is_some_and(|mask| !mask[m]) {
            continue;
        }
        let u = quality[m] - cost_weight * cost[m];
        best = match best {
            None => Some((m, u)),
            Some((b, bu)) => {
                if u > bu || (u == bu && cost[m] < cost[b]) {
                    Some((m, u))
                } else {
                    Some((b, bu))
                }
            }
        };
    }
    best.expect("the objective allows at least one model").0
}

/// A fitted router: estimates each candidate's quality and cost for a batch of queries, and
/// chooses by utility.
///
/// Implementors provide [`Router::models`], [`Router::dim`] and [`Router::estimate`]; routing is
/// provided on top. The trait is object safe: bindings hold `Arc<dyn Router>`.
///
/// # Example
///
/// ```
/// use pointsman::data::Split;
/// use pointsman::routers::baseline::{Baseline, BaselineRouter};
/// use pointsman::{ModelCard, ModelPool, Objective, QueryFeatures, Router};
/// let pool = ModelPool::new(vec![ModelCard::new("a", 0.1, 0.1), ModelCard::new("b", 1.0, 1.0)])?;
/// let train = Split::from_arrays(pool, vec![1.0, 0.0], 2, vec![0.4, 0.7], vec![1e-5, 1e-4])?;
/// let router = BaselineRouter::fit(Baseline::Fixed { model: "b".into() }, &train)?;
/// let query = QueryFeatures::new(vec![1.0, 0.0])?;
/// let decision = router.route(&query, &Objective::new(0.0))?;
/// assert_eq!(decision.model_id, "b");
/// assert_eq!(decision.alternatives[0].model_id, "a");
/// # Ok::<(), pointsman::Error>(())
/// ```
pub trait Router: Send + Sync + std::fmt::Debug {
    /// Short name of the router kind (`"knn"`, `"mf"`, …).
    fn kind(&self) -> &'static str;

    /// The candidate models; indices in estimates and decisions refer to this pool.
    fn models(&self) -> &ModelPool;

    /// The embedding dimension the router expects.
    fn dim(&self) -> usize;

    /// The embedding model the router was trained on, when known; features that name another
    /// model are refused.
    fn embedding_model(&self) -> Option<&str> {
        None
    }

    /// Writes the expected quality and cost of every model for every row of `batch` into `out`,
    /// which the caller has sized with [`Estimates::reset`] to `batch.rows() × models().len()`.
    /// The batch has been checked against [`Router::dim`].
    ///
    /// # Errors
    ///
    /// Router specific; the provided methods pass them on.
    fn estimate(&self, batch: &FeatureBatch<'_>, out: &mut Estimates) -> Result<()>;

    /// Chooses a model for every row given its estimates. The default takes the best utility
    /// ([`best_model`]); baselines such as the random router override it.
    fn choose(
        &self,
        batch: &FeatureBatch<'_>,
        est: &Estimates,
        cost_weight: f64,
        mask: Option<&[bool]>,
        out: &mut [u32],
    ) {
        let _ = batch;
        for (r, o) in out.iter_mut().enumerate() {
            *o = best_model(est.score_row(r), est.cost_row(r), cost_weight, mask) as u32;
        }
    }

    /// The probability with which [`Router::choose`] picks the model it picks, given the
    /// estimates, for logs that later train or evaluate routers off-policy: 1 for a
    /// deterministic choice (the default: the best utility), `1 / allowed` for a uniform random
    /// draw, `None` when the choice is randomised but its probability has no closed form (a
    /// posterior sample).
    fn choice_probability(&self, mask: Option<&[bool]>) -> Option<f64> {
        let _ = mask;
        Some(1.0)
    }

    /// The router in its saved form (see [`crate::saved`]).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for routers that cannot be saved.
    fn to_saved(&self) -> Result<crate::saved::SavedRouter> {
        Err(Error::Unsupported(format!(
            "saving a {} router",
            self.kind()
        )))
    }

    /// Saves the router to `path` as one `.safetensors` file, atomically.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path; the errors of [`Router::to_saved`].
    fn save(&self, path: &std::path::Path) -> Result<()> {
        self.to_saved()?.save(path)
    }

    /// This router as a [`Learner`], if it learns from feedback.
    fn as_learner(&self) -> Option<&dyn Learner> {
        None
    }

    /// Checks that `batch` fits this router.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] or [`Error::EmbeddingMismatch`].
    fn check_batch(&self, batch: &FeatureBatch<'_>) -> Result<()> {
        batch.check_compatible(self.dim(), self.embedding_model())
    }

    /// Estimates for a whole batch, computed in parallel chunks.
    ///
    /// # Errors
    ///
    /// A batch that does not fit the router, or an error of [`Router::estimate`].
    fn estimate_batch(&self, batch: &FeatureBatch<'_>) -> Result<Estimates> {
        self.check_batch(batch)?;
        let m = self.models().len();
        let rows = batch.rows();
        let chunk = chunk_rows(rows);
        let parts: Vec<Estimates> = (0..rows.div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                let (start, end) = (c * chunk, ((c + 1) * chunk).min(rows));
                let mut est = Estimates::new(end - start, m);
                self.estimate(&batch.slice(start, end), &mut est)?;
                Ok(est)
            })
            .collect::<Result<_>>()?;
        let mut all = Estimates::new(0, m);
        all.rows = rows;
        for part in parts {
            all.quality.extend_from_slice(&part.quality);
            all.score.extend_from_slice(&part.score);
            all.cost.extend_from_slice(&part.cost);
            all.signals.extend_from_slice(&part.signals);
        }
        all.check(self.kind())?;
        Ok(all)
    }

    /// Routes one query.
    ///
    /// # Errors
    ///
    /// Features that do not fit the router, an invalid objective, or a router error.
    fn route(&self, query: &QueryFeatures, objective: &Objective) -> Result<Decision> {
        let batch = query.as_batch();
        self.check_batch(&batch)?;
        let mask = objective.resolve(self.models())?;
        let mut est = Estimates::new(1, self.models().len());
        self.estimate(&batch, &mut est)?;
        est.check(self.kind())?;
        let mut chosen = [0u32];
        self.choose(
            &batch,
            &est,
            objective.cost_weight,
            mask.as_deref(),
            &mut chosen,
        );
        Ok(Decision::from_estimates(
            self.models(),
            &est,
            0,
            chosen[0] as usize,
            objective.cost_weight,
            mask.as_deref(),
        ))
    }

    /// Routes every row of `batch`, in parallel, writing the chosen model indices into `out`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `out.len() != batch.rows()`, and the errors of [`Router::route`].
    fn route_batch_into(
        &self,
        batch: &FeatureBatch<'_>,
        objective: &Objective,
        out: &mut [u32],
    ) -> Result<()> {
        if out.len() != batch.rows() {
            return Err(Error::Shape(format!(
                "output holds {} entries for {} rows",
                out.len(),
                batch.rows()
            )));
        }
        self.check_batch(batch)?;
        let mask = objective.resolve(self.models())?;
        let m = self.models().len();
        let chunk = chunk_rows(batch.rows());
        out.par_chunks_mut(chunk).enumerate().try_for_each_init(
            || Estimates::new(0, m),
            |est, (c, out)| {
                let start = c * chunk;
                let part = batch.slice(start, start + out.len());
                est.reset(out.len(), m);
                self.estimate(&part, est)?;
                est.check(self.kind())?;
                self.choose(&part, est, objective.cost_weight, mask.as_deref(), out);
                Ok(())
            },
        )
    }

    /// Routes every row of `batch`, in parallel, and returns the chosen model indices.
    ///
    /// # Errors
    ///
    /// As [`Router::route_batch_into`].
    fn route_batch(&self, batch: &FeatureBatch<'_>, objective: &Objective) -> Result<Vec<u32>> {
        let mut out = vec![0u32; batch.rows()];
        self.route_batch_into(batch, objective, &mut out)?;
        Ok(out)
    }

    /// Routes every row of `batch` and returns the chosen model indices together with the
    /// estimates they were chosen from (`rows × models` expected quality and cost, and the
    /// signals), for callers that want to inspect or log them. The choices equal
    /// [`Router::route_batch`]'s.
    ///
    /// # Errors
    ///
    /// As [`Router::route`].
    fn route_batch_with_estimates(
        &self,
        batch: &FeatureBatch<'_>,
        objective: &Objective,
    ) -> Result<(Vec<u32>, Estimates)> {
        let mask = objective.resolve(self.models())?;
        let est = self.estimate_batch(batch)?;
        let mut out = vec![0u32; batch.rows()];
        self.choose(
            batch,
            &est,
            objective.cost_weight,
            mask.as_deref(),
            &mut out,
        );
        Ok((out, est))
    }

    /// The `k` best allowed models for one query, best first.
    ///
    /// # Errors
    ///
    /// As [`Router::route`].
    fn top_k(
        &self,
        query: &QueryFeatures,
        objective: &Objective,
        k: usize,
    ) -> Result<Vec<Alternative>> {
        let d = self.route(query, objective)?;
        let first = Alternative {
            model: d.model,
            model_id: d.model_id,
            quality: d.quality,
            score: d.score,
            cost: d.cost,
            utility: d.utility,
        };
        Ok(std::iter::once(first)
            .chain(d.alternatives)
            .take(k)
            .collect())
    }
}

/// Rows per parallel chunk: enough chunks to balance the threads, few enough to amortise setup.
fn chunk_rows(rows: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    (rows / (threads * 4)).clamp(1, 256)
}

/// What a caller observed after calling a model: the outcome a [`Learner`] learns from.
#[derive(Debug, Clone, Copy)]
pub struct Feedback<'a> {
    /// The query.
    pub features: &'a QueryFeatures,
    /// Index of the model that answered, in the router's pool.
    pub model: usize,
    /// Observed quality of the answer, in [0, 1].
    pub quality: f64,
    /// Observed cost of the call in USD.
    pub cost: f64,
}

impl Feedback<'_> {
    /// Checks the feedback against a router's pool and dimension.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`], [`Error::DimensionMismatch`], or [`Error::InvalidInput`] for a
    /// quality outside [0, 1] or a negative or non-finite cost.
    pub fn validate(&self, pool: &ModelPool, dim: usize) -> Result<()> {
        pool.check_index(self.model)?;
        if self.features.dim() != dim {
            return Err(Error::DimensionMismatch {
                expected: dim,
                got: self.features.dim(),
            });
        }
        if !(0.0..=1.0).contains(&self.quality) {
            return Err(Error::InvalidInput(format!(
                "observed quality {} outside [0, 1]",
                self.quality
            )));
        }
        if !self.cost.is_finite() || self.cost < 0.0 {
            return Err(Error::InvalidInput(format!(
                "observed cost {} is not a non-negative number",
                self.cost
            )));
        }
        Ok(())
    }
}

/// A router that learns online from feedback on the models it chose.
///
/// `observe` takes `&self` and locks internally, so one `Arc` can route on some threads while it
/// learns on others.
pub trait Learner: Router {
    /// Learns from one observed outcome.
    ///
    /// # Errors
    ///
    /// Invalid feedback (see [`Feedback::validate`]).
    fn observe(&self, feedback: &Feedback<'_>) -> Result<()>;

    /// Number of observations learned so far.
    fn observations(&self) -> u64;

    /// Drift-detector alarms so far, per model (empty for learners without a detector).
    fn alarms(&self) -> Vec<u64> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::ModelCard;

    /// Quality and cost proportional to the first two embedding coordinates.
    #[derive(Debug)]
    struct Linear {
        pool: ModelPool,
    }

    impl Router for Linear {
        fn kind(&self) -> &'static str {
            "linear-test"
        }
        fn models(&self) -> &ModelPool {
            &self.pool
        }
        fn dim(&self) -> usize {
            2
        }
        fn estimate(&self, batch: &FeatureBatch<'_>, out: &mut Estimates) -> Result<()> {
            for r in 0..batch.rows() {
                let x = batch.row(r);
                let x0 = f64::from(x[0] * crate::features::inv_norm(x));
                let (q, c) = out.row_mut(r);
                q.copy_from_slice(&[0.5, 0.5 + x0.abs() * 0.4, 0.3]);
                c.copy_from_slice(&[1e-4, 1e-3, 1e-5]);
            }
            Ok(())
        }
    }

    fn router() -> Linear {
        Linear {
            pool: ModelPool::new(vec![
                ModelCard::new("mid", 1.0, 1.0),
                ModelCard::new("big", 10.0, 10.0),
                ModelCard::new("small", 0.1, 0.1),
            ])
            .unwrap(),
        }
    }

    #[test]
    fn utility_trade_off() {
        let r = router();
        let q = QueryFeatures::new(vec![1.0, 0.0]).unwrap();
        let d = r.route(&q, &Objective::new(0.0)).unwrap();
        assert_eq!(d.model_id, "big");
        assert_eq!(d.alternatives.len(), 2);
        assert_eq!(d.alternatives[0].model_id, "mid");
        // 0.9 - w*1e-3 < 0.5 - w*1e-4  <=>  w > 444.4
        let d = r.route(&q, &Objective::new(500.0)).unwrap();
        assert_eq!(d.model_id, "mid");
        let d = r.route(&q, &Objective::new(1e6)).unwrap();
        assert_eq!(d.model_id, "small");
        assert!((d.utility - (0.3 - 1e6 * 1e-5)).abs() < 1e-12);
        let d = r
            .route(&q, &Objective::new(0.0).with_allowed(["small", "mid"]))
            .unwrap();
        assert_eq!(d.model_id, "mid");
        assert_eq!(d.alternatives.len(), 1);
    }

    #[test]
    fn objective_errors() {
        let r = router();
        let q = QueryFeatures::new(vec![1.0, 0.0]).unwrap();
        let e = r
            .route(&q, &Objective::new(0.0).with_allowed(["nope"]))
            .unwrap_err();
        assert_eq!(e.to_string(), "unknown model \"nope\"");
        let e = r.route(&q, &Objective::new(-1.0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid config: cost_weight -1 is not a non-negative number"
        );
        let e = r
            .route(&q, &Objective::new(0.0).with_allowed(Vec::<String>::new()))
            .unwrap_err();
        assert!(e.to_string().contains("empty"));
        let q3 = QueryFeatures::new(vec![1.0, 0.0, 0.0]).unwrap();
        assert!(r.route(&q3, &Objective::new(0.0)).is_err());
    }

    #[test]
    fn deterministic_choices_have_probability_one() {
        assert_eq!(router().choice_probability(None), Some(1.0));
    }

    #[test]
    fn ties_prefer_cheaper_then_lower_index() {
        assert_eq!(best_model(&[0.5, 0.5], &[2.0, 1.0], 0.0, None), 1);
        assert_eq!(best_model(&[0.5, 0.5], &[1.0, 1.0], 0.0, None), 0);
        assert_eq!(
            best_model(&[0.9, 0.5], &[1.0, 1.0], 0.0, Some(&[false, true])),
            1
        );
    }

    #[test]
    fn batch_equals_single() {
        let r = router();
        let mut data = Vec::new();
        for i in 0..1000 {
            let a = (i as f32 * 0.37).sin();
            data.extend_from_slice(&[a, 1.0]);
        }
        let batch = FeatureBatch::new(&data, 2).unwrap();
        for w in [0.0, 300.0, 1000.0] {
            let obj = Objective::new(w);
            let all = r.route_batch(&batch, &obj).unwrap();
            for (i, &m) in all.iter().enumerate() {
                let q = QueryFeatures::new(batch.row(i).to_vec()).unwrap();
                assert_eq!(r.route(&q, &obj).unwrap().model, m as usize);
            }
        }
        let mut short = vec![0u32; 3];
        assert!(r
            .route_batch_into(&batch, &Objective::new(0.0), &mut short)
            .is_err());
        let est = r.estimate_batch(&batch).unwrap();
        assert_eq!(est.rows(), 1000);
        assert_eq!(est.quality_row(999).len(), 3);
        let obj = Objective::new(300.0).with_allowed(["mid", "small"]);
        let (choices, with_est) = r.route_batch_with_estimates(&batch, &obj).unwrap();
        assert_eq!(choices, r.route_batch(&batch, &obj).unwrap());
        assert_eq!(with_est, est);
        assert!(choices.iter().all(|&c| c != 1), "the mask excludes big");
        let e = r
            .route_batch_with_estimates(&batch, &Objective::new(-1.0))
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config);
    }
}
