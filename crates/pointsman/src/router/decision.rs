//! [`Decision`]: the chosen model, its figures and the ranked alternatives; [`best_model`], the
//! one rule of choice.

use serde::{Deserialize, Serialize};

use super::{Estimates, Signals};
use crate::pool::ModelPool;

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
///
/// [`Objective`]: crate::Objective
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
