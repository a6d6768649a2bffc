//! Forgetting: discounting or a sliding window on each model's own clock, and the drift detector
//! that wipes a model's statistics when its outcomes drop well below what the router expected.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a bandit forgets, so that a model whose quality drops loses its traffic.
///
/// `discount` and `window` run on each model's own clock (they age a model's evidence when that
/// model is observed again) and exclude each other; the detector can be combined with either.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Forgetting {
    /// Exponential discounting: before each new observation of a model, its earlier evidence is
    /// multiplied by this factor in (0, 1); it remembers about `1 / (1 − discount)` outcomes.
    pub discount: Option<f64>,
    /// Sliding window: only the last `window` observations of each model count.
    pub window: Option<usize>,
    /// The drift detector (`null` turns it off).
    pub detector: Option<DriftDetector>,
}

impl Default for Forgetting {
    fn default() -> Self {
        Forgetting {
            discount: None,
            window: None,
            detector: Some(DriftDetector::default()),
        }
    }
}

impl Forgetting {
    /// No discounting, no window and no detector: every observation counts for ever.
    pub fn none() -> Self {
        Forgetting {
            discount: None,
            window: None,
            detector: None,
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the value out of range, or both `discount` and `window` set.
    pub fn validate(&self) -> Result<()> {
        if let Some(g) = self.discount {
            if !(g > 0.0 && g <= 1.0) {
                return Err(Error::Config(format!(
                    "forgetting discount {g} is not in (0, 1]"
                )));
            }
        }
        if self.window == Some(0) {
            return Err(Error::Config(
                "forgetting window must hold at least 1 observation".into(),
            ));
        }
        if self.discount.is_some() && self.window.is_some() {
            return Err(Error::Config(
                "forgetting: choose a discount or a window, not both".into(),
            ));
        }
        if let Some(d) = &self.detector {
            d.validate()?;
        }
        Ok(())
    }
}

/// A per-model drift detector on the residuals `observed − expected` of the model's outcomes,
/// where `expected` is the router's estimate (without exploration) just before the update.
///
/// It keeps a fast and a slow exponential average of the residuals; when the model has been
/// observed at least `min_pulls` times since the last alarm and `fast − slow < −threshold`, the
/// model's outcomes have dropped well below what the router expected: its statistics are wiped
/// (its estimate falls back to the optimistic prior and it is re-learned from fresh outcomes).
/// With the defaults a fast average reacts within a few dozen of the model's own pulls, and on
/// stationary data (binary scores) a false alarm needs the last ~20 outcomes to be 0.4 worse
/// than usual, about five standard deviations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftDetector {
    /// Rate of the fast average (1/20: about the last 20 outcomes).
    pub fast_rate: f64,
    /// Rate of the slow average (1/500).
    pub slow_rate: f64,
    /// Alarm when the fast average falls this far below the slow one.
    pub threshold: f64,
    /// Outcomes of the model needed since the last alarm before another can fire.
    pub min_pulls: u64,
}

impl Default for DriftDetector {
    fn default() -> Self {
        DriftDetector {
            fast_rate: 1.0 / 20.0,
            slow_rate: 1.0 / 500.0,
            threshold: 0.4,
            min_pulls: 20,
        }
    }
}

impl DriftDetector {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the value out of range.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("fast_rate", self.fast_rate), ("slow_rate", self.slow_rate)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(Error::Config(format!(
                    "drift detector {name} {v} is not in (0, 1]"
                )));
            }
        }
        if !(self.threshold > 0.0 && self.threshold.is_finite()) {
            return Err(Error::Config(format!(
                "drift detector threshold {} is not a positive number",
                self.threshold
            )));
        }
        Ok(())
    }
}

/// The detector's running state for one model.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct DetectorState {
    pub(super) fast: f64,
    pub(super) slow: f64,
    pub(super) since: u64,
}
