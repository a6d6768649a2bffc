//! A cascade's configuration: the chain's stages or the dynamic order, the confidence model and
//! the estimator ([`CascadeConfig`]), and the per-session limits ([`CascadeLimits`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::routers::knn::KnnConfig;

/// One stage of a fixed chain: a model and the posterior at which its answer is accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The model's id.
    pub model: String,
    /// Accept the answer when the posterior that it is right reaches this value (in [0, 1];
    /// 0 accepts any answer, so later stages are never reached).
    pub threshold: f64,
}

/// How a cascade chooses the next model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CascadeOrder {
    /// Each next model is the untried model of largest value (see the module documentation);
    /// needs training data.
    Dynamic,
    /// A fixed chain of stages, called in order; a stage whose gain is not positive is skipped.
    Chain {
        /// The stages, first first.
        stages: Vec<Stage>,
    },
}

/// Hyper-parameters of a [`CascadeRouter`](super::CascadeRouter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CascadeConfig {
    /// Fixed chain or dynamic choice.
    pub order: CascadeOrder,
    /// Dynamic cascades: accept an answer whose posterior reaches this value.
    pub accept_threshold: f64,
    /// μ: quality points given up per USD when deciding whether a call is worth it; the default
    /// for sessions ([`CascadeRouter::start`]) and what [`CascadeRouter::calibrate`] sets.
    ///
    /// [`CascadeRouter::start`]: super::CascadeRouter::start
    /// [`CascadeRouter::calibrate`]: super::CascadeRouter::calibrate
    pub cost_weight: f64,
    /// Most models called per query.
    pub max_steps: usize,
    /// ε: how often the caller's confidence votes wrong (in [0, 0.5]; 0.5 ignores it).
    pub confidence_error: f64,
    /// s0: pseudo-queries of the unconditional estimate in each conditional estimate.
    pub prior_strength: f64,
    /// Dynamic cascades: value each candidate with a one-step look-ahead.
    pub lookahead: bool,
    /// A score at or above this counts as a good answer.
    pub success_threshold: f64,
    /// The per-query quality estimator: a kNN over the training queries. `None`: each model's
    /// (conditional) success rate over the whole training set.
    pub estimator: Option<KnnConfig>,
}

impl Default for CascadeConfig {
    fn default() -> Self {
        CascadeConfig {
            order: CascadeOrder::Dynamic,
            accept_threshold: 0.6,
            cost_weight: 0.0,
            max_steps: 5,
            confidence_error: 0.1,
            prior_strength: 5.0,
            lookahead: true,
            success_threshold: 0.5,
            estimator: Some(KnnConfig::default()),
        }
    }
}

impl CascadeConfig {
    /// A fixed chain of `(model id, threshold)` stages without an estimator: the FrugalGPT
    /// cascade, which [`CascadeRouter::new`] builds without training data.
    ///
    /// [`CascadeRouter::new`]: super::CascadeRouter::new
    pub fn chain<I, S>(stages: I) -> Self
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        CascadeConfig {
            order: CascadeOrder::Chain {
                stages: stages
                    .into_iter()
                    .map(|(model, threshold)| Stage {
                        model: model.into(),
                        threshold,
                    })
                    .collect(),
            },
            estimator: None,
            ..Default::default()
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        let unit = |name: &str, v: f64| -> Result<()> {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "cascade {name} {v} is outside [0, 1]"
                )))
            }
        };
        unit("accept_threshold", self.accept_threshold)?;
        unit("success_threshold", self.success_threshold)?;
        if !(0.0..=0.5).contains(&self.confidence_error) {
            return Err(Error::Config(format!(
                "cascade confidence_error {} is outside [0, 0.5]",
                self.confidence_error
            )));
        }
        for (name, v) in [
            ("cost_weight", self.cost_weight),
            ("prior_strength", self.prior_strength),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::Config(format!(
                    "cascade {name} {v} is not a non-negative number"
                )));
            }
        }
        if self.max_steps == 0 {
            return Err(Error::Config("cascade max_steps must be at least 1".into()));
        }
        if let CascadeOrder::Chain { stages } = &self.order {
            if stages.is_empty() {
                return Err(Error::Config(
                    "a cascade chain needs at least one stage".into(),
                ));
            }
            for (i, s) in stages.iter().enumerate() {
                unit(&format!("stage {i} threshold"), s.threshold)?;
                if stages[..i].iter().any(|t| t.model == s.model) {
                    return Err(Error::Config(format!(
                        "model {:?} appears twice in the cascade chain",
                        s.model
                    )));
                }
            }
        }
        if let Some(k) = &self.estimator {
            k.validate()
                .map_err(|e| Error::Config(format!("cascade estimator: {e}")))?;
        }
        Ok(())
    }
}

/// Per-session limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CascadeLimits {
    /// Most total expected cost (USD) the session may spend; `None`: no limit.
    pub budget: Option<f64>,
    /// Most models called; `None`: [`CascadeConfig::max_steps`].
    pub max_steps: Option<usize>,
}

impl CascadeLimits {
    /// Limits with a budget.
    pub fn with_budget(mut self, usd: f64) -> Self {
        self.budget = Some(usd);
        self
    }

    /// Limits with a maximum number of calls.
    pub fn with_max_steps(mut self, steps: usize) -> Self {
        self.max_steps = Some(steps);
        self
    }
}
