//! [`Learner`]: a router that learns from the outcome of the model it chose ([`Feedback`]).

use super::Router;
use crate::error::{Error, Result, Shown};
use crate::features::QueryFeatures;
use crate::pool::{ModelPool, MAX_COST_USD};

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
    /// quality outside [0, 1], or a cost that is negative, not finite or above
    /// [`MAX_COST_USD`].
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
                Shown(self.quality)
            )));
        }
        if !self.cost.is_finite() || self.cost < 0.0 {
            return Err(Error::InvalidInput(format!(
                "observed cost {} is not a non-negative number",
                Shown(self.cost)
            )));
        }
        if self.cost > MAX_COST_USD {
            return Err(Error::InvalidInput(format!(
                "observed cost {} USD is above the ceiling {MAX_COST_USD:e}",
                Shown(self.cost)
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
