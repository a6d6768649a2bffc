//! [`Objective`]: the cost weight of a call and the models it may choose.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
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
