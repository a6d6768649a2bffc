//! What the IRT router's training takes and reports: its hyper-parameters, the search grid and
//! the report of a training run.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Hyper-parameters of an [`IrtRouter`](super::IrtRouter) and of its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IrtConfig {
    /// Latent dimensions `k` of discrimination and ability.
    pub dim: usize,
    /// L2 penalty on every parameter but the task biases (per unit of the mean cross-entropy).
    pub l2: f64,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Upper bound on full-batch steps.
    pub max_steps: usize,
    /// Steps without a better validation loss before training stops.
    pub patience: usize,
    /// Share of the training queries held out for early stopping.
    pub validation_fraction: f64,
    /// Learn a discrimination offset and a bias per task tag.
    pub use_tasks: bool,
    /// Use the prompt's length (`ln(1 + tokens)`, standardised) as a covariate.
    pub use_prompt_length: bool,
    /// Seed of initialisation and of the validation split.
    pub seed: u64,
}

impl Default for IrtConfig {
    fn default() -> Self {
        IrtConfig {
            dim: 8,
            l2: 1e-3,
            learning_rate: 2e-2,
            max_steps: 400,
            patience: 30,
            validation_fraction: 0.1,
            use_tasks: true,
            use_prompt_length: true,
            seed: 0,
        }
    }
}

impl IrtConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.dim == 0 {
            return bad("irt dim must be at least 1".into());
        }
        if self.dim > crate::saved::MAX_DIM {
            return bad(format!(
                "irt dim {} is above the ceiling of {}",
                self.dim,
                crate::saved::MAX_DIM
            ));
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad(format!("irt l2 {} is not a non-negative number", self.l2));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "irt learning_rate {} is not positive",
                self.learning_rate
            ));
        }
        if self.max_steps == 0 || self.patience == 0 {
            return bad("irt max_steps and patience must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return bad(format!(
                "irt validation_fraction {} outside [0, 1)",
                self.validation_fraction
            ));
        }
        Ok(())
    }
}

/// What a training run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IrtTrainReport {
    /// Full-batch steps run.
    pub steps: usize,
    /// The step whose weights were kept (1-based).
    pub best_step: usize,
    /// Validation loss at the best step (training loss when nothing was held out).
    pub best_loss: f64,
    /// Seconds spent training.
    pub seconds: f64,
}

/// The grid an IRT search tries, by cross-validation on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IrtSearch {
    /// Number of folds.
    pub folds: usize,
    /// Seed of the fold assignment.
    pub seed: u64,
    /// Latent dimensions.
    pub dim: Vec<usize>,
    /// L2 penalties.
    pub l2: Vec<f64>,
    /// Reports the search's progress (not a setting: never saved).
    #[serde(skip)]
    pub progress: crate::tuning::Progress,
}

impl Default for IrtSearch {
    fn default() -> Self {
        IrtSearch {
            folds: 5,
            seed: 0,
            dim: vec![4, 16],
            l2: vec![3e-4, 3e-3],
            progress: crate::tuning::Progress::default(),
        }
    }
}
