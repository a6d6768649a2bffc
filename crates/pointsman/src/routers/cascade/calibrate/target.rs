//! Calibration to a target: the cost weight and acceptance thresholds that give the best mean
//! quality within a mean cost per query, or the least mean cost that reaches a mean quality.

use serde::{Deserialize, Serialize};

use super::simulate::{mu_grid, Summary};
use crate::data::Split;
use crate::error::{readable, Error, Result};
use crate::routers::cascade::engine::Plan;
use crate::routers::cascade::{CascadeOrder, CascadeRouter};

/// What a calibration aims for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum CalibrationTarget {
    /// The best mean quality at a mean cost per query of at most this many USD.
    MeanCost(f64),
    /// The least mean cost at a mean quality of at least this.
    Quality(f64),
}

/// What a calibration chose and what it gives on the calibration data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CascadeCalibration {
    /// The cost weight μ.
    pub cost_weight: f64,
    /// The acceptance thresholds: one for a dynamic cascade, one per stage for a chain.
    pub thresholds: Vec<f64>,
    /// Mean quality on the calibration data.
    pub mean_quality: f64,
    /// Mean cost per query (USD) on the calibration data.
    pub mean_cost: f64,
    /// Mean number of calls per query.
    pub mean_calls: f64,
}

impl CascadeRouter {
    /// Calibrates the cost weight μ and the acceptance thresholds on labelled data to meet a
    /// target: the best mean quality within a mean cost per query, or the least mean cost that
    /// reaches a mean quality. Thresholds are searched over {0.5, 0.6, 0.7, 0.8, 0.9} and the
    /// current ones (shared by a chain's stages, then refined stage by stage), μ over a
    /// geometric grid refined by bisection where the target is crossed.
    ///
    /// Use data the router was not fitted on, or the training split itself (leave-one-out
    /// estimates; only for a router fitted in this process). Under a shift between the
    /// calibration data and live traffic the target holds on the calibration data only.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a target out of range or one the cascade cannot meet on the
    /// data (the message gives the closest it gets); the errors of [`CascadeRouter::sweep`].
    pub fn calibrate(
        &self,
        split: &Split,
        confidences: &[f64],
        target: CalibrationTarget,
    ) -> Result<(CascadeRouter, CascadeCalibration)> {
        let ok = match target {
            CalibrationTarget::MeanCost(c) => c.is_finite() && c >= 0.0,
            CalibrationTarget::Quality(q) => (0.0..=1.0).contains(&q),
        };
        if !ok {
            return Err(Error::InvalidInput(match target {
                CalibrationTarget::MeanCost(c) => format!(
                    "target mean cost {} USD is not a non-negative number",
                    crate::error::Shown(c)
                ),
                CalibrationTarget::Quality(q) => format!(
                    "target quality {} is outside [0, 1]",
                    crate::error::Shown(q)
                ),
            }));
        }
        let data = self.data(split, confidences)?;
        let mean = CascadeRouter::mean_expected_costs(&data);
        let grid = mu_grid(&mean, 41);
        let stages = self.chain.len();
        // Threshold vectors: one per dynamic cascade, one per stage of a chain.
        let current: Vec<f64> = if stages == 0 {
            vec![self.config.accept_threshold]
        } else {
            self.chain.iter().map(|s| s.1).collect()
        };
        let levels = [0.5, 0.6, 0.7, 0.8, 0.9];
        let mut candidates: Vec<Vec<f64>> = vec![current.clone()];
        for &l in &levels {
            candidates.push(vec![l; current.len()]);
        }
        let evaluate = |thresholds: &[f64], mu: f64| -> Result<Summary> {
            let mut params = self.base_params(mu);
            match &mut params.plan {
                Plan::Dynamic { threshold } => *threshold = thresholds[0],
                Plan::Chain(st) => {
                    for (s, &t) in st.iter_mut().zip(thresholds) {
                        s.1 = t;
                    }
                }
            }
            let runs = CascadeRouter::run_all(&data, &params, None)?;
            Ok(CascadeRouter::summary(&data, &runs))
        };
        // (thresholds, μ, summary) of the best feasible setting, and the closest miss.
        type Best = Option<(Vec<f64>, f64, Summary)>;
        let feasible = |s: &Summary| match target {
            CalibrationTarget::MeanCost(c) => s.cost <= c,
            CalibrationTarget::Quality(q) => s.quality >= q,
        };
        let improves = |s: &Summary, b: &Best| match (b, target) {
            (None, _) => true,
            (Some((_, _, o)), CalibrationTarget::MeanCost(_)) => {
                s.quality > o.quality || (s.quality == o.quality && s.cost < o.cost)
            }
            (Some((_, _, o)), CalibrationTarget::Quality(_)) => {
                s.cost < o.cost || (s.cost == o.cost && s.quality > o.quality)
            }
        };
        let mut best: Best = None;
        let mut closest: Option<Summary> = None;
        let mut consider = |t: &[f64], mu: f64, s: Summary, best: &mut Best| {
            if feasible(&s) {
                if improves(&s, best) {
                    *best = Some((t.to_vec(), mu, s));
                }
            } else {
                let nearer = closest.is_none_or(|c| match target {
                    CalibrationTarget::MeanCost(_) => s.cost < c.cost,
                    CalibrationTarget::Quality(_) => s.quality > c.quality,
                });
                if nearer {
                    closest = Some(s);
                }
            }
        };
        // A μ search for one threshold vector: the grid, then bisection where feasibility flips.
        let mut search_mu = |t: &[f64], best: &mut Best| -> Result<()> {
            let mut prev: Option<(f64, bool)> = None;
            for &mu in &grid {
                let s = evaluate(t, mu)?;
                let f = feasible(&s);
                consider(t, mu, s, best);
                if let Some((pm, pf)) = prev {
                    if pf != f {
                        let (mut lo, mut hi) = (pm, mu);
                        for _ in 0..10 {
                            let mid = 0.5 * (lo + hi);
                            let s = evaluate(t, mid)?;
                            let fm = feasible(&s);
                            consider(t, mid, s, best);
                            if fm == pf {
                                lo = mid;
                            } else {
                                hi = mid;
                            }
                        }
                    }
                }
                prev = Some((mu, f));
            }
            Ok(())
        };
        for t in &candidates {
            search_mu(t, &mut best)?;
        }
        // A chain's stages one at a time, at the chosen μ.
        if stages > 1 {
            if let Some((mut t, mu, _)) = best.clone() {
                for s in 0..stages {
                    for &l in &levels {
                        let mut tt = t.clone();
                        tt[s] = l;
                        let sum = evaluate(&tt, mu)?;
                        if feasible(&sum) && improves(&sum, &best) {
                            best = Some((tt.clone(), mu, sum));
                            t = tt;
                        }
                    }
                }
            }
        }
        let Some((thresholds, mu, s)) = best else {
            let near = closest.expect("the grid is not empty");
            return Err(Error::InvalidInput(match target {
                CalibrationTarget::MeanCost(c) => format!(
                    "target mean cost {c:e} USD is below the least the cascade spends on this data ({:e} USD)",
                    readable(near.cost)
                ),
                CalibrationTarget::Quality(q) => format!(
                    "target quality {q} is above the best the cascade reaches on this data ({})",
                    readable(near.quality)
                ),
            }));
        };
        let mut config = self.config.clone();
        config.cost_weight = mu;
        match &mut config.order {
            CascadeOrder::Dynamic => config.accept_threshold = thresholds[0],
            CascadeOrder::Chain { stages } => {
                for (st, &t) in stages.iter_mut().zip(&thresholds) {
                    st.threshold = t;
                }
            }
        }
        let router = self.with_config(&config)?;
        Ok((
            router,
            CascadeCalibration {
                cost_weight: mu,
                thresholds,
                mean_quality: s.quality,
                mean_cost: s.cost,
                mean_calls: s.calls,
            },
        ))
    }
}
