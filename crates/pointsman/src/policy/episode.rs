//! [`Episode`]: a multi-step agent run with one budget for all its steps. Each step is routed
//! with the episode's remaining budget and remaining steps in mind (the budget controller of
//! [`super::budget`], per episode: target cost per step = remaining USD / remaining steps), and
//! refused with [`crate::Error::BudgetExhausted`] when nothing allowed fits what is left.
//!
//! An episode is a key and its limits; its spend lives in the policy's state under
//! `episode:<id>`, like any budget, so it is shared the same way across replicas.

use serde::{Deserialize, Serialize};

use super::budget::{BudgetConfig, BudgetKey, BudgetWindow};
use crate::error::{quoted, Error, Result};

/// An agent episode: an id, a budget for the whole episode and the number of steps it is
/// expected to take.
///
/// # Example
///
/// ```
/// use pointsman::policy::Episode;
/// let episode = Episode::new("run-7", 0.05, 5)?;
/// assert_eq!(episode.key(), "episode:run-7");
/// # Ok::<(), pointsman::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// The episode's id (unique per run).
    pub id: String,
    /// The budget for every step together, USD.
    pub budget_usd: f64,
    /// The steps the episode is expected to take.
    pub steps: u64,
    /// The hard stop's margin (see [`BudgetConfig::stop_margin`]; default 1).
    pub stop_margin: f64,
}

impl Episode {
    /// An episode of `steps` steps with `budget_usd` for all of them.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty or blank id, a budget that is not positive or no steps.
    pub fn new(id: impl Into<String>, budget_usd: f64, steps: u64) -> Result<Episode> {
        let id = id.into();
        if id.trim().is_empty() {
            return Err(Error::Config(format!(
                "an episode needs an id that is not empty or blank (got {})",
                quoted(&id)
            )));
        }
        if !budget_usd.is_finite() || budget_usd <= 0.0 {
            return Err(Error::Config(format!(
                "episode {}: budget {} USD is not a positive number",
                quoted(&id),
                crate::error::Shown(budget_usd)
            )));
        }
        if steps == 0 {
            return Err(Error::Config(format!(
                "episode {}: steps must be at least 1",
                quoted(&id)
            )));
        }
        Ok(Episode {
            id,
            budget_usd,
            steps,
            stop_margin: 1.0,
        })
    }

    /// Sets the hard stop's margin.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a margin below 1 or above
    /// [`MAX_STOP_MARGIN`](super::budget::MAX_STOP_MARGIN).
    pub fn with_stop_margin(mut self, margin: f64) -> Result<Episode> {
        if !(1.0..=super::budget::MAX_STOP_MARGIN).contains(&margin) {
            return Err(Error::Config(format!(
                "episode {}: stop_margin {} is not in [1, {:e}]",
                quoted(&self.id),
                crate::error::Shown(margin),
                super::budget::MAX_STOP_MARGIN
            )));
        }
        self.stop_margin = margin;
        Ok(self)
    }

    /// The state key of the episode's spend.
    pub fn key(&self) -> String {
        format!("episode:{}", self.id)
    }

    /// The episode as a paced budget: a total over `steps` requests.
    pub(crate) fn budget(&self) -> BudgetConfig {
        BudgetConfig {
            key: BudgetKey::Global,
            limit_usd: self.budget_usd,
            window: BudgetWindow::Total {
                requests: Some(self.steps),
                seconds: None,
            },
            pace: true,
            stop_margin: self.stop_margin,
        }
    }
}
