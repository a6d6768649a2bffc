//! The search of a dynamic cascade's settings ([`CascadeRouter::tune`]): acceptance threshold,
//! prior strength and look-ahead, scored by the leave-one-out curve on the training split.

use serde::{Deserialize, Serialize};

use super::simulate::confidence_error;
use crate::data::Split;
use crate::error::{Error, Result};
use crate::metrics::{evaluate_sweep, Reference, DEFAULT_SWEEP_POINTS};
use crate::routers::cascade::{CascadeConfig, CascadeRouter};
use crate::tuning::{Criterion, SearchReport, Trial, Validation};

/// Settings searched by [`CascadeRouter::tune`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CascadeSearch {
    /// Acceptance thresholds.
    pub accept_thresholds: Vec<f64>,
    /// Prior strengths `s0`.
    pub prior_strengths: Vec<f64>,
    /// Look-ahead off and/or on.
    pub lookahead: Vec<bool>,
    /// Cost weights per curve.
    pub points: usize,
    /// Set [`CascadeConfig::confidence_error`] from the data ([`confidence_error`]).
    pub measure_confidence_error: bool,
    /// Reports the search's progress (not a setting: never saved).
    #[serde(skip)]
    pub progress: crate::tuning::Progress,
}

impl Default for CascadeSearch {
    fn default() -> Self {
        CascadeSearch {
            accept_thresholds: vec![0.5, 0.6, 0.7, 0.8],
            prior_strengths: vec![1.0, 2.0, 5.0],
            lookahead: vec![true],
            points: DEFAULT_SWEEP_POINTS,
            measure_confidence_error: true,
            progress: crate::tuning::Progress::default(),
        }
    }
}

/// (weak, strong) for a two-model split: the better mean score is the strong model.
fn weak_strong_of(split: &Split) -> Option<(usize, usize)> {
    if split.pool().len() != 2 {
        return None;
    }
    let means = split.mean_scores();
    Some(if means[1] >= means[0] { (0, 1) } else { (1, 0) })
}

impl CascadeRouter {
    /// Fits a cascade on `train` and chooses its acceptance threshold, prior strength and
    /// look-ahead by the leave-one-out curve on the training split itself: the AIQ of the cost
    /// weight sweep, or APGR on two-model data (RouterBench's and RouteLLM's headline figures).
    /// The confidence error rate is measured on the data first (see [`confidence_error`]).
    ///
    /// # Errors
    ///
    /// The errors of [`CascadeRouter::fit`] and [`CascadeRouter::sweep`]; [`Error::Config`] for
    /// an empty search grid.
    pub fn tune(
        train: &Split,
        confidences: &[f64],
        base: &CascadeConfig,
        search: &CascadeSearch,
    ) -> Result<(CascadeRouter, SearchReport<CascadeConfig>)> {
        let started = std::time::Instant::now();
        train.require_full_labels("tuning a cascade (which simulates calling each model)")?;
        if search.accept_thresholds.is_empty()
            || search.prior_strengths.is_empty()
            || search.lookahead.is_empty()
        {
            return Err(Error::Config("the cascade search grid is empty".into()));
        }
        let mut base = base.clone();
        if search.measure_confidence_error {
            base.confidence_error = confidence_error(train, confidences, base.success_threshold)?;
        }
        let router = CascadeRouter::fit(train, &base)?;
        let data = router.data(train, confidences)?;
        let weak_strong = weak_strong_of(train);
        let criterion = Criterion::for_data(weak_strong);
        let reference = Reference::new(train, train, weak_strong)?;
        let mut trials = Vec::new();
        let steps = search.progress.steps(
            search.accept_thresholds.len() * search.prior_strengths.len() * search.lookahead.len(),
        );
        for &accept_threshold in &search.accept_thresholds {
            for &prior_strength in &search.prior_strengths {
                for &lookahead in &search.lookahead {
                    let config = CascadeConfig {
                        accept_threshold,
                        prior_strength,
                        lookahead,
                        ..base.clone()
                    };
                    let r = router.with_config(&config)?;
                    let sweep = r.sweep_data(&data, search.points)?;
                    let rep = evaluate_sweep("validation", false, &sweep, train, &reference)?;
                    trials.push(Trial {
                        config,
                        score: criterion.score(&rep.metrics),
                        metrics: rep.metrics,
                    });
                    steps.step();
                }
            }
        }
        // Best first; ties keep the grid order.
        let report = SearchReport::new(criterion, Validation::LeaveOneOut, trials, started);
        let router = router.with_config(report.best())?;
        Ok((router, report))
    }
}
