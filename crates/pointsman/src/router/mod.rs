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

mod decision;
mod estimates;
mod learner;
mod objective;

use rayon::prelude::*;

pub use decision::{best_model, Alternative, Decision};
pub use estimates::{Estimates, Signals};
pub use learner::{Feedback, Learner};
pub use objective::{Allowed, Objective};

use crate::error::{Error, Result};
use crate::features::{FeatureBatch, QueryFeatures};
use crate::pool::ModelPool;

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

#[cfg(test)]
mod tests;
