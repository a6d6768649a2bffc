//! What the MF router's training takes and reports: its hyper-parameters, the search grid, the
//! pairwise preferences it can learn from, and the report of a training run.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::FeatureBatch;
use crate::pool::ModelPool;

/// Hyper-parameters of an [`MfRouter`](super::MfRouter) and of its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfConfig {
    /// Latent dimension `k`.
    pub dim: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Training queries per minibatch.
    pub batch_size: usize,
    /// Upper bound on training epochs.
    pub max_epochs: usize,
    /// Epochs without a better validation loss before training stops.
    pub patience: usize,
    /// Share of the training queries held out for early stopping.
    pub validation_fraction: f64,
    /// Normalise each model vector to unit length, as RouteLLM does.
    pub normalize_model_vectors: bool,
    /// Learn a vector per task tag, added to the projected query.
    pub use_tasks: bool,
    /// Seed of initialisation, validation split and minibatch order.
    pub seed: u64,
    /// With partial labels from a log, weight each observed cell's loss by the inverse of the
    /// logging policy's probability of having chosen that model, where the data records one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inverse_propensity: bool,
}

impl Default for MfConfig {
    fn default() -> Self {
        MfConfig {
            dim: 32,
            learning_rate: 3e-3,
            weight_decay: 1e-2,
            batch_size: 128,
            max_epochs: 200,
            patience: 10,
            validation_fraction: 0.1,
            normalize_model_vectors: true,
            use_tasks: true,
            seed: 0,
            inverse_propensity: false,
        }
    }
}

impl MfConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.dim == 0 {
            return bad("mf dim must be at least 1".into());
        }
        if self.dim > crate::saved::MAX_DIM {
            return bad(format!(
                "mf dim {} is above the ceiling of {}",
                self.dim,
                crate::saved::MAX_DIM
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "mf learning_rate {} is not positive",
                self.learning_rate
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!("mf weight_decay {} is negative", self.weight_decay));
        }
        if self.batch_size == 0 || self.max_epochs == 0 {
            return bad("mf batch_size and max_epochs must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return bad(format!(
                "mf validation_fraction {} outside [0, 1)",
                self.validation_fraction
            ));
        }
        Ok(())
    }
}

/// Which of two models answered better (the dataset layer's type, shared with
/// [`Split::preferences`](crate::data::Split::preferences)).
pub use crate::data::Winner;

/// Pairwise preference rows over a pool: query embeddings and, per row, the two models compared
/// and the winner.
#[derive(Debug, Clone, PartialEq)]
pub struct Preferences {
    /// Query embeddings `[rows, dim]`, row-major.
    pub embeddings: Vec<f32>,
    /// Embedding dimension.
    pub dim: usize,
    /// Model a of each row (index in the pool).
    pub model_a: Vec<u32>,
    /// Model b of each row.
    pub model_b: Vec<u32>,
    /// The winner of each row.
    pub winner: Vec<Winner>,
}

impl Preferences {
    /// Checks shapes and indices against a pool.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`], [`Error::UnknownModel`], [`Error::InvalidFeatures`].
    pub fn validate(&self, pool: &ModelPool) -> Result<()> {
        let batch = FeatureBatch::new(&self.embeddings, self.dim)?;
        let n = batch.rows();
        if self.model_a.len() != n || self.model_b.len() != n || self.winner.len() != n {
            return Err(Error::Shape(format!(
                "{n} preference embeddings but {} / {} / {} models and winners",
                self.model_a.len(),
                self.model_b.len(),
                self.winner.len()
            )));
        }
        for (&a, &b) in self.model_a.iter().zip(&self.model_b) {
            pool.check_index(a as usize)?;
            pool.check_index(b as usize)?;
            if a == b {
                return Err(Error::InvalidInput(format!(
                    "a preference compares model #{a} with itself"
                )));
            }
        }
        Ok(())
    }
}

/// What a training run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Epochs run.
    pub epochs: usize,
    /// The epoch whose weights were kept (1-based).
    pub best_epoch: usize,
    /// Validation loss at the best epoch (training loss when nothing was held out).
    pub best_loss: f64,
    /// Seconds spent training.
    pub seconds: f64,
}

/// The grid an MF search tries, by cross-validation on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfSearch {
    /// Number of folds.
    pub folds: usize,
    /// Seed of the fold assignment.
    pub seed: u64,
    /// Latent dimensions.
    pub dim: Vec<usize>,
    /// Learning rates.
    pub learning_rate: Vec<f64>,
    /// Reports the search's progress (not a setting: never saved).
    #[serde(skip)]
    pub progress: crate::tuning::Progress,
}

impl Default for MfSearch {
    fn default() -> Self {
        MfSearch {
            folds: 5,
            seed: 0,
            dim: vec![16, 32, 128],
            learning_rate: vec![3e-3, 1e-2],
            progress: crate::tuning::Progress::default(),
        }
    }
}
