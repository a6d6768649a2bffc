//! Choosing the cost weight: calibrate it to a target mean cost per query, or to a target share
//! of calls to the costliest model (RouteLLM's "strong-model %", generalised to N models), on a
//! held-out batch of representative queries.
//!
//! Calibration uses the router's own estimates, so it needs no labels: the features of recent
//! traffic are enough. As the cost weight grows, each query's chosen model can only get cheaper,
//! so the mean cost and the costliest model's share fall monotonically; the search is exact over
//! the cost weights where some query's choice changes.
//!
//! # Example
//!
//! ```
//! use pointsman::calibrate::cost_weight_for_mean_cost;
//! use pointsman::data::Split;
//! use pointsman::routers::baseline::{Baseline, BaselineRouter};
//! use pointsman::{FeatureBatch, ModelCard, ModelPool};
//! let pool = ModelPool::new(vec![ModelCard::new("a", 0.1, 0.1), ModelCard::new("b", 1.0, 1.0)])?;
//! let train = Split::from_arrays(pool, vec![1.0, 0.0, 0.0, 1.0], 2, vec![0.2, 0.9, 0.4, 0.7], vec![1e-5, 1e-4, 1e-5, 1e-4])?;
//! let router = BaselineRouter::fit(Baseline::Zero, &train)?;
//! let heldout = [1.0_f32, 0.0, 0.5, 0.5];
//! let cal = cost_weight_for_mean_cost(&router, &FeatureBatch::new(&heldout, 2)?, 5e-5)?;
//! assert!(cal.mean_cost <= 5e-5);
//! # Ok::<(), pointsman::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{readable, Error, Result};
use crate::features::FeatureBatch;
use crate::router::{Estimates, Router};

/// The outcome of a calibration: the cost weight and what it gives on the calibration batch
/// (by the router's estimates).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The calibrated cost weight.
    pub cost_weight: f64,
    /// Mean expected cost of the chosen models.
    pub mean_cost: f64,
    /// Mean expected quality of the chosen models.
    pub mean_quality: f64,
    /// Share of queries sent to the costliest model.
    pub costliest_share: f64,
}

/// The positive cost weights at which some row's preference between two models flips, sorted and
/// deduplicated.
pub fn breakpoints(est: &Estimates) -> Vec<f64> {
    let m = est.models();
    let mut out = Vec::new();
    for r in 0..est.rows() {
        let (q, c) = (est.score_row(r), est.cost_row(r));
        for i in 0..m {
            for j in i + 1..m {
                let dc = c[i] - c[j];
                if dc != 0.0 {
                    let w = (q[i] - q[j]) / dc;
                    if w > 0.0 && w.is_finite() {
                        out.push(w);
                    }
                }
            }
        }
    }
    out.sort_by(f64::total_cmp);
    out.dedup();
    out
}

/// Cost weights strictly between breakpoints (plus 0 and one above the largest), at most about
/// `max_points` of them, spread by quantiles of the breakpoints: from "best expected quality" to
/// "cheapest expected cost" for every row.
pub fn grid(est: &Estimates, max_points: usize) -> Vec<f64> {
    let b = breakpoints(est);
    grid_from_breakpoints(&b, max_points)
}

fn grid_from_breakpoints(b: &[f64], max_points: usize) -> Vec<f64> {
    let mut grid = vec![0.0];
    if b.is_empty() {
        return grid;
    }
    let k = b.len();
    let inner = max_points.saturating_sub(2).max(1);
    for j in 1..=inner {
        let t = (j * k) / (inner + 1);
        if t >= 1 && t < k {
            grid.push(0.5 * (b[t - 1] + b[t]));
        }
    }
    grid.push(b[k - 1] * 2.0);
    grid.dedup();
    grid
}

/// The smallest cost weight whose expected mean cost on `batch` is at most `target` USD per
/// query: the best expected quality within that budget.
///
/// # Errors
///
/// [`Error::InvalidInput`] for an empty batch or a target that is negative or below the cheapest
/// achievable mean cost (named in the message); the errors of [`Router::estimate_batch`].
pub fn cost_weight_for_mean_cost(
    router: &dyn Router,
    batch: &FeatureBatch<'_>,
    target: f64,
) -> Result<Calibration> {
    if !target.is_finite() || target < 0.0 {
        return Err(Error::InvalidInput(format!(
            "target mean cost {target} is not a non-negative number"
        )));
    }
    calibrate(
        router,
        batch,
        |c| c.mean_cost <= target,
        |cheapest| {
            format!(
                "target mean cost {:e} USD is out of reach: the cheapest choice gives mean cost \
                 {:e} USD",
                readable(target),
                readable(cheapest.mean_cost)
            )
        },
    )
}

/// The smallest cost weight at which at most `target` (a share in [0, 1]) of the queries of
/// `batch` go to the costliest model (the one with the highest mean expected cost on the batch).
///
/// # Errors
///
/// As [`cost_weight_for_mean_cost`], for a target outside [0, 1].
pub fn cost_weight_for_costliest_share(
    router: &dyn Router,
    batch: &FeatureBatch<'_>,
    target: f64,
) -> Result<Calibration> {
    if !(0.0..=1.0).contains(&target) {
        return Err(Error::InvalidInput(format!(
            "target share {target} outside [0, 1]"
        )));
    }
    calibrate(
        router,
        batch,
        |c| c.costliest_share <= target,
        |cheapest| {
            format!(
                "target costliest-model share {target} is out of reach: the cheapest choice still \
                 sends {:.4} of the queries to the costliest model",
                cheapest.costliest_share
            )
        },
    )
}

fn calibrate(
    router: &dyn Router,
    batch: &FeatureBatch<'_>,
    ok: impl Fn(&Calibration) -> bool,
    out_of_reach: impl Fn(&Calibration) -> String,
) -> Result<Calibration> {
    if batch.is_empty() {
        return Err(Error::InvalidInput(
            "calibration needs at least one query".into(),
        ));
    }
    let est = router.estimate_batch(batch)?;
    let m = est.models();
    let mut mean_costs = vec![0.0; m];
    for r in 0..est.rows() {
        for (s, c) in mean_costs.iter_mut().zip(est.cost_row(r)) {
            *s += c;
        }
    }
    let costliest = (0..m)
        .max_by(|&a, &b| mean_costs[a].total_cmp(&mean_costs[b]))
        .expect("a pool has at least one model");
    let b = breakpoints(&est);
    let mut candidates = vec![0.0];
    candidates.extend(b.windows(2).map(|w| 0.5 * (w[0] + w[1])));
    if let Some(last) = b.last() {
        candidates.push(last * 2.0);
    }
    let mut choices = vec![0u32; est.rows()];
    let mut eval = |w: f64| {
        router.choose(batch, &est, w, None, &mut choices);
        let n = est.rows() as f64;
        let (mut cost, mut quality, mut top) = (0.0, 0.0, 0usize);
        for (r, &mi) in choices.iter().enumerate() {
            let mi = mi as usize;
            cost += est.cost_row(r)[mi];
            quality += est.quality_row(r)[mi];
            top += usize::from(mi == costliest);
        }
        Calibration {
            cost_weight: w,
            mean_cost: cost / n,
            mean_quality: quality / n,
            costliest_share: top as f64 / n,
        }
    };
    let last = eval(*candidates.last().expect("candidates start with 0"));
    if !ok(&last) {
        return Err(Error::InvalidInput(out_of_reach(&last)));
    }
    // Binary search for the first candidate that meets the target (monotone in the cost weight).
    let (mut lo, mut hi) = (0usize, candidates.len() - 1);
    let mut best = last;
    while lo < hi {
        let mid = (lo + hi) / 2;
        let c = eval(candidates[mid]);
        if ok(&c) {
            best = c;
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if best.cost_weight != candidates[lo] {
        best = eval(candidates[lo]);
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Split;
    use crate::pool::{ModelCard, ModelPool};
    use crate::routers::baseline::{Baseline, BaselineRouter};

    fn router() -> BaselineRouter {
        let pool = ModelPool::new(vec![
            ModelCard::new("small", 0.1, 0.1),
            ModelCard::new("mid", 1.0, 1.0),
            ModelCard::new("big", 10.0, 10.0),
        ])
        .unwrap();
        let train = Split::from_arrays(
            pool,
            vec![1.0, 0.0],
            2,
            vec![0.3, 0.6, 0.85],
            vec![1e-5, 1e-4, 1e-3],
        )
        .unwrap();
        BaselineRouter::fit(Baseline::Zero, &train).unwrap()
    }

    #[test]
    fn grid_spans_all_choices() {
        let r = router();
        let data = [1.0f32, 0.0];
        let est = r
            .estimate_batch(&FeatureBatch::new(&data, 2).unwrap())
            .unwrap();
        // Flips: big/mid at 0.25/9e-4 = 277.8, mid/small at 0.3/9e-5 = 3333.3, big/small at 561.6.
        let b = breakpoints(&est);
        assert_eq!(b.len(), 3);
        let g = grid(&est, 10);
        assert_eq!(g[0], 0.0);
        assert!(*g.last().unwrap() > 3333.4);
        assert!(g.windows(2).all(|w| w[0] < w[1]));
        assert!(grid_from_breakpoints(&[], 10) == vec![0.0]);
    }

    #[test]
    fn calibrates_to_targets() {
        let r = router();
        let data = [1.0f32, 0.0];
        let batch = FeatureBatch::new(&data, 2).unwrap();
        let c = cost_weight_for_mean_cost(&r, &batch, 2e-4).unwrap();
        assert!((c.mean_cost - 1e-4).abs() < 1e-12, "{c:?}");
        assert!(c.cost_weight > 277.7 && c.cost_weight < 3333.4);
        let c = cost_weight_for_mean_cost(&r, &batch, 1.0).unwrap();
        assert_eq!(c.cost_weight, 0.0);
        assert_eq!(c.costliest_share, 1.0);
        let c = cost_weight_for_costliest_share(&r, &batch, 0.0).unwrap();
        assert!(c.costliest_share == 0.0 && c.cost_weight > 277.7 && c.cost_weight < 561.6);
        let e = cost_weight_for_mean_cost(&r, &batch, 1e-6).unwrap_err();
        assert!(e.to_string().contains("out of reach"), "{e}");
        assert!(cost_weight_for_costliest_share(&r, &batch, 1.5).is_err());
    }
}
