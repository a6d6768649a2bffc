//! Onboarding a model into a learning bandit, and repricing, without touching what the router
//! learned about its other models.
//!
//! See the [module documentation](super#onboarding-a-model-and-repricing) for each learner's
//! prior.

use std::sync::{Arc, RwLock};

use super::forgetting::DetectorState;
use super::observe::normalized_rows;
use super::router::Shared;
use super::{BanditRouter, Learned};
use crate::data::Split;
use crate::error::Result;
use crate::pool::ModelCard;

impl<L: Learned> BanditRouter<L> {
    /// An independent router with one more model, `card`, whose prior comes from its card and
    /// the other models' statistics (see the
    /// [module documentation](super#onboarding-a-model-and-repricing)), then learned from
    /// the queries of `labelled` where it has a score. What the router learned about its other
    /// models stays bit for bit what it was. The returned router learns online, saves, merges
    /// and shares as any router of its kind; this one is left as it was.
    ///
    /// `labelled` is any split whose pool has a model with the card's id (other models' columns
    /// are ignored), with embeddings of this router's dimension.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a card whose id the router already has or whose prices are out of
    /// range; [`Error::UnknownModel`] when `labelled` has no such model;
    /// [`Error::DimensionMismatch`] / [`Error::EmbeddingMismatch`] for other embeddings; the
    /// errors of the learner's updates (an unfitted PCA projection when there are labels).
    ///
    /// [`Error::Config`]: crate::Error::Config
    /// [`Error::UnknownModel`]: crate::Error::UnknownModel
    /// [`Error::DimensionMismatch`]: crate::Error::DimensionMismatch
    /// [`Error::EmbeddingMismatch`]: crate::Error::EmbeddingMismatch
    pub fn add_model(&self, card: ModelCard, labelled: Option<&Split>) -> Result<Self> {
        let pool = &self.shared.pool;
        let weights = pool.prior_weights(&card);
        let new_pool = pool.with_added(&card)?;
        // The labels are checked before anything is built.
        let labelled = match labelled {
            Some(split) => {
                let col = split.labelled_column(&card.id)?;
                let batch = split.features()?;
                batch.check_compatible(self.shared.dim, self.shared.embedding_model.as_deref())?;
                Some((split, col, normalized_rows(&batch)))
            }
            None => None,
        };
        let mut state = self.read().clone();
        state.journal = None;
        state.learned.add_arm(&self.shared.config, &weights);
        state.pulls.push(0);
        state.forgets.push(0);
        state.alarms.push(0);
        state.detector.push(DetectorState::default());
        state.cost.push([0.0; 3]);
        let router = BanditRouter {
            shared: Arc::new(Shared {
                config: self.shared.config.clone(),
                pool: new_pool,
                dim: self.shared.dim,
                embedding_model: self.shared.embedding_model.clone(),
                state: RwLock::new(state),
            }),
            greedy: self.greedy,
        };
        if let Some((split, col, rows)) = labelled {
            router.observe_cells(split, &rows, &[(pool.len(), col)])?;
        }
        Ok(router)
    }

    /// An independent router with new prices for some of its models (cards of `prices` by id,
    /// [`ModelPool::repriced`]); the learned quality statistics are unchanged. Each repriced
    /// model's cost calibration (observed over estimated cost) is kept: both sums are scaled by
    /// its ratio of new to old mean price per token, so its cost estimates follow the new
    /// prices and later observations at those prices add to sums of the same scale.
    ///
    /// # Errors
    ///
    /// As [`ModelPool::repriced`]; [`Error::Config`](crate::Error::Config) for a model with
    /// observed costs repriced from a price of 0 (they have no ratio to scale by).
    ///
    /// [`ModelPool::repriced`]: crate::ModelPool::repriced
    pub fn reprice(&self, prices: &[ModelCard]) -> Result<Self> {
        let old = &self.shared.pool;
        let pool = old.repriced(prices)?;
        let mut state = self.read().clone();
        state.journal = None;
        for (j, c) in state.cost.iter_mut().enumerate() {
            // Costs observed at a price of 0 have no ratio to scale by: refused as every other
            // kind refuses it (kept unscaled, the old observed mean was added to the new
            // estimate).
            if c[0] > 0.0 {
                let r = crate::pool::cost_scale(old.card(j), pool.card(j))?;
                c[1] *= r;
                c[2] *= r;
            }
        }
        Ok(BanditRouter {
            shared: Arc::new(Shared {
                config: self.shared.config.clone(),
                pool,
                dim: self.shared.dim,
                embedding_model: self.shared.embedding_model.clone(),
                state: RwLock::new(state),
            }),
            greedy: self.greedy,
        })
    }
}

#[cfg(test)]
#[path = "onboard_tests.rs"]
mod tests;
