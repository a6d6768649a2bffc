//! Cost–quality curves and their metrics: RouterBench's AIQ, RouteLLM's APGR and CPT, and the
//! figures around the best single model. Definitions: `docs/metrics.md`.
//!
//! A *sweep* assigns a model to every query of a labelled split at each of several settings of a
//! router's trade-off ([`SweepPoint`]); [`evaluate_sweep`] turns it into a curve of (mean cost,
//! mean quality) points and its [`Metrics`] against the split's [`Reference`] figures (single
//! models, best single model, oracle). Evaluation ([`crate::eval`]) sweeps test splits; the
//! routers' searches ([`crate::tuning`]) score out-of-fold estimates of the training split with
//! [`validation_metrics`]. This module sits below the routers and knows none of them.
//!
//! # Metric definitions
//!
//! - **Curve**: per sweep point, the mean true score and mean true cost of the chosen models on
//!   the test split. A query that invoked several models (a cascade) costs the sum of their
//!   costs and scores what the accepted model scored.
//! - **AIQ**: area under the non-decreasing upper convex hull of the router's points together
//!   with the single-model points, over the cost range from the cheapest to the costliest single
//!   model, divided by that range; below the hull's first point the hull counts as 0.
//! - **Max quality**: the best mean quality of the router's points.
//! - **Quality at the best single model's cost**: the router's own hull (without the single
//!   models) at the best single model's mean cost; `None` when the router never gets that cheap.
//! - **Cost to match the best single model**: the least cost at which the router's own hull
//!   reaches the best single model's quality, as a fraction of that model's cost; `None` when
//!   it never does.
//! - **Quality at 0.6 × the best single model's cost**: the best mean quality among the
//!   router's own points (sweep points, not the hull) whose mean cost is at most
//!   [`CHEAP_SHARE`] × the best single model's mean cost; `None` when none is that cheap.
//! - **Oracle gap**: oracle quality minus the router's max quality.
//! - Two-model datasets: **PGR** = (q − q_weak) / (q_strong − q_weak) at a strong-call share
//!   (share of queries on which the strong model was invoked); **APGR** = the area under the PGR
//!   curve over shares 0–1, piecewise linear through the router's points and the end points
//!   (0, 0) and (1, 1); **CPT(x)** = the least share at which that curve reaches PGR x.
//!
//! # Two cost bases
//!
//! The cost curve charges each query its own cost, which grows with the prompt: sweeping the
//! cost weight then sends long prompts to the cheap model first. RouteLLM's APGR counts *calls*
//! instead, ranking queries by the router's expected quality gain of the strong model over the
//! weak. On two-model datasets a router is therefore swept twice: once with per-query costs
//! ([`CostBasis::Query`]: the curve, AIQ and the cost figures) and once with flat per-call costs
//! — each model's mean expected cost over the test queries — ([`CostBasis::Call`]: the
//! strong-call share curve, APGR and CPT). Both are utility sweeps over the same estimates;
//! `decisions.jsonl` marks the second with `"cost_basis": "call"`.
//!
//! The best single model is the one with the best mean score on the *training* split; the oracle
//! picks, per test query, the cheapest of the models with the best score (it reads test labels:
//! a ceiling, not a router).

use serde::{Deserialize, Serialize};

use crate::calibrate;
use crate::data::Split;
use crate::error::{Error, Result};
use crate::router::{Estimates, Router};

/// Default number of cost weights in a router's sweep.
pub const DEFAULT_SWEEP_POINTS: usize = 41;

/// What the cost weight of a sweep point charges for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostBasis {
    /// Each query's own expected cost (the cost curve).
    #[default]
    Query,
    /// A flat expected cost per call of each model (the strong-call share curve).
    Call,
}

impl CostBasis {
    /// Whether this is [`CostBasis::Query`] (the default, left out of `decisions.jsonl`).
    pub fn is_query(&self) -> bool {
        *self == CostBasis::Query
    }
}

/// One setting of an entrant's trade-off and the model it assigns to each test query.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    /// The cost weight of this point (for cascades, the cost weight its thresholds were
    /// calibrated for).
    pub cost_weight: f64,
    /// Per test query, the index (in the test split's pool) of the model whose answer was used.
    pub choices: Vec<u32>,
    /// Per test query, every model invoked in order, when more than one model may run (cascades).
    pub invoked: Option<Vec<Vec<u32>>>,
    /// What the cost weight charges for.
    pub cost_basis: CostBasis,
}

/// Maps a router's model indices to a split's by model id.
///
/// # Errors
///
/// [`Error::UnknownModel`] when the router has a model the split has no labels for.
pub fn model_map(router: &dyn Router, split: &Split) -> Result<Vec<u32>> {
    router
        .models()
        .ids()
        .map(|id| {
            split.pool().index_of(id).map(|i| i as u32).map_err(|_| {
                Error::UnknownModel(format!("{id} (the router's model is not in the dataset)"))
            })
        })
        .collect()
}

/// Cost weights in a strong-call share sweep: fine enough that APGR's trapezoids sit within
/// a fraction of a point of the exact curve.
const CALL_SWEEP_POINTS: usize = 101;

/// Sweeps the cost weight over a grid derived from `est`, choosing with `choose`, and appends one
/// point per distinct assignment (model indices mapped through `map`).
fn sweep_estimates(
    est: &Estimates,
    map: &[u32],
    cost_basis: CostBasis,
    points: usize,
    mut choose: impl FnMut(&Estimates, f64, &mut [u32]),
    out: &mut Vec<SweepPoint>,
) {
    let mut choices = vec![0u32; est.rows()];
    let mut last: Option<Vec<u32>> = None;
    for w in calibrate::grid(est, points) {
        choose(est, w, &mut choices);
        let mapped: Vec<u32> = choices.iter().map(|&c| map[c as usize]).collect();
        // Consecutive cost weights that change nothing add nothing to the curve.
        if last.as_ref() == Some(&mapped) {
            continue;
        }
        last = Some(mapped.clone());
        out.push(SweepPoint {
            cost_weight: w,
            choices: mapped,
            invoked: None,
            cost_basis,
        });
    }
}

/// `est` with every row's costs replaced by each model's mean expected cost: flat per-call costs.
fn flat_costs(est: &Estimates) -> Estimates {
    let m = est.models();
    let mut flat = est.clone();
    let mut means = vec![0.0; m];
    for r in 0..est.rows() {
        for (a, c) in means.iter_mut().zip(est.cost_row(r)) {
            *a += c / est.rows() as f64;
        }
    }
    for r in 0..est.rows() {
        flat.row_mut(r).1.copy_from_slice(&means);
    }
    flat
}

/// Both sweeps of estimates made by a utility-maximising router (see the module documentation):
/// the cost curve over a grid of cost weights derived from `est`, and on two-model data the
/// strong-call share curve with flat per-call costs. `choose` assigns a model to every row at a
/// cost weight; `map` maps the router's model indices to the split's; consecutive cost weights
/// that change no assignment give one point.
pub fn utility_sweeps(
    est: &Estimates,
    map: &[u32],
    points: usize,
    mut choose: impl FnMut(&Estimates, f64, &mut [u32]),
) -> Vec<SweepPoint> {
    let mut out = Vec::new();
    sweep_estimates(est, map, CostBasis::Query, points, &mut choose, &mut out);
    if est.models() == 2 {
        let flat = flat_costs(est);
        let points = points.max(CALL_SWEEP_POINTS);
        sweep_estimates(&flat, map, CostBasis::Call, points, &mut choose, &mut out);
    }
    out
}

/// Metrics of estimates for a labelled split whose rows they follow, scored against the split
/// itself (its own best single model and oracle): the validation score of hyper-parameter
/// searches. Choices maximise utility; both sweeps are run as for a router.
///
/// # Errors
///
/// [`Error::Shape`] when the estimates do not match the split.
pub fn validation_metrics(
    est: &Estimates,
    truth: &Split,
    weak_strong: Option<(usize, usize)>,
    points: usize,
) -> Result<Metrics> {
    if est.rows() != truth.len() || est.models() != truth.pool().len() {
        return Err(Error::Shape(format!(
            "{} x {} estimates for {} queries and {} models",
            est.rows(),
            est.models(),
            truth.len(),
            truth.pool().len()
        )));
    }
    let map: Vec<u32> = (0..est.models() as u32).collect();
    let sweep = utility_sweeps(est, &map, points, |e, w, out| {
        for (r, o) in out.iter_mut().enumerate() {
            *o = crate::router::best_model(e.score_row(r), e.cost_row(r), w, None) as u32;
        }
    });
    let reference = Reference::new(truth, truth, weak_strong)?;
    Ok(evaluate_sweep("validation", false, &sweep, truth, &reference)?.metrics)
}

/// A (mean cost, mean quality) point of a curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// The cost weight of the sweep point.
    pub cost_weight: f64,
    /// Mean cost per test query in USD.
    pub mean_cost: f64,
    /// Mean quality per test query.
    pub mean_quality: f64,
    /// Two-model datasets: share of queries on which the strong model was invoked.
    pub strong_share: Option<f64>,
}

/// The share of the best single model's cost at which [`Metrics::quality_at_cheap_share`] is
/// read.
pub const CHEAP_SHARE: f64 = 0.6;

/// The metrics of one entrant. See the [module documentation](self) for definitions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// RouterBench's average improvement in quality.
    pub aiq: f64,
    /// Best mean quality of the curve.
    pub max_quality: f64,
    /// Quality of the router's hull at the best single model's cost.
    pub quality_at_best_single_cost: Option<f64>,
    /// Least cost to reach the best single model's quality, as a fraction of its cost.
    pub cost_to_match_best_single: Option<f64>,
    /// Best mean quality among the router's own points that cost at most
    /// [`CHEAP_SHARE`] × the best single model's cost (a point of the curve, not the hull).
    #[serde(default)]
    pub quality_at_cheap_share: Option<f64>,
    /// Oracle quality minus max quality.
    pub oracle_gap: f64,
    /// Two-model datasets: average performance gap recovered.
    pub apgr: Option<f64>,
    /// Two-model datasets: strong-call share needed to recover 50 % of the gap.
    pub cpt50: Option<f64>,
    /// Two-model datasets: strong-call share needed to recover 80 % of the gap.
    pub cpt80: Option<f64>,
}

/// A single model's figures on the test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFigures {
    /// The model's id.
    pub model: String,
    /// Mean test score.
    pub mean_quality: f64,
    /// Mean test cost in USD.
    pub mean_cost: f64,
    /// Mean training score.
    pub train_mean_quality: f64,
}

/// The reference figures of a test split: single models, best single model, oracle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Every model on the test split.
    pub models: Vec<ModelFigures>,
    /// Index of the best single model (best mean training score).
    pub best_single: usize,
    /// The oracle's mean quality on the test split.
    pub oracle_quality: f64,
    /// The oracle's mean cost on the test split.
    pub oracle_cost: f64,
    /// The zero router's AIQ: the AIQ of the single models alone.
    pub zero_router_aiq: f64,
    /// Two-model datasets: (weak, strong) model indices.
    pub weak_strong: Option<(usize, usize)>,
}

impl Reference {
    /// Reference figures of `test`, with the best single model chosen on `train`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an empty split, or splits over different pools;
    /// [`Error::MissingLabels`] when the test split lacks scores (figures on it need every
    /// model's score on every query), or the train split ranks no model (no score and no
    /// preference for some model).
    pub fn new(train: &Split, test: &Split, weak_strong: Option<(usize, usize)>) -> Result<Self> {
        if test.is_empty() || train.is_empty() {
            return Err(Error::InvalidInput(
                "evaluation needs a non-empty train and test split".into(),
            ));
        }
        if train.pool().ids().ne(test.pool().ids()) {
            return Err(Error::InvalidInput(
                "train and test splits have different models".into(),
            ));
        }
        test.require_full_labels("evaluation")?;
        // With partial labels on train: the observed means, or the preferences' win shares.
        let tq = train.model_ranking().ok_or_else(|| {
            Error::MissingLabels(format!(
                "choosing the best single model needs a score or a preference of every model on \
                 the {} split",
                train.name()
            ))
        })?;
        let (q, c) = (test.mean_scores(), test.mean_costs());
        let models: Vec<ModelFigures> = (0..q.len())
            .map(|m| ModelFigures {
                model: test.pool().id(m).to_string(),
                mean_quality: q[m],
                mean_cost: c[m],
                train_mean_quality: tq[m],
            })
            .collect();
        let best_single = crate::router::best_model(&tq, &train.mean_costs(), 0.0, None);
        let oracle = SweepPoint {
            cost_weight: 0.0,
            choices: oracle_choices(test),
            invoked: None,
            cost_basis: CostBasis::Query,
        };
        let oracle_point = curve_point(test, &oracle, None)?;
        let singles: Vec<(f64, f64)> = models
            .iter()
            .map(|f| (f.mean_cost, f.mean_quality))
            .collect();
        let zero_router_aiq = aiq(&[], &singles);
        Ok(Reference {
            models,
            best_single,
            oracle_quality: oracle_point.mean_quality,
            oracle_cost: oracle_point.mean_cost,
            zero_router_aiq,
            weak_strong,
        })
    }

    fn singles(&self) -> Vec<(f64, f64)> {
        self.models
            .iter()
            .map(|f| (f.mean_cost, f.mean_quality))
            .collect()
    }
}

/// The oracle's choices on a labelled split: per query, the cheapest of the models with the best
/// score. It reads the labels, so it is a ceiling, not a router.
pub fn oracle_choices(split: &Split) -> Vec<u32> {
    let m = split.pool().len();
    (0..split.len())
        .map(|r| {
            crate::router::best_model(
                &split.scores()[r * m..(r + 1) * m],
                &split.costs()[r * m..(r + 1) * m],
                0.0,
                None,
            ) as u32
        })
        .collect()
}

/// One entrant's evaluation: its curves and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntrantReport {
    /// The entrant's name.
    pub name: String,
    /// Whether it reads test labels (a ceiling, not a router).
    pub reads_test_labels: bool,
    /// Whether its decisions rest on a simulated judge's confidences (cascades in `pointsman
    /// eval`): its figures say what such a confidence is worth, not how a real one performs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated_judge: bool,
    /// The cost curve (per-query costs).
    pub curve: Vec<CurvePoint>,
    /// Two-model datasets: the strong-call share curve (flat per-call costs), when the entrant
    /// swept one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub call_curve: Vec<CurvePoint>,
    /// The metrics.
    pub metrics: Metrics,
}

fn curve_point(test: &Split, p: &SweepPoint, strong: Option<usize>) -> Result<CurvePoint> {
    let n = test.len();
    let m = test.pool().len() as u32;
    if p.choices.len() != n || p.invoked.as_ref().is_some_and(|v| v.len() != n) {
        return Err(Error::Shape(format!(
            "a sweep point assigns {} queries, the test split has {n}",
            p.choices.len()
        )));
    }
    let (mut q, mut c, mut strong_calls) = (0.0, 0.0, 0usize);
    for r in 0..n {
        let chosen = p.choices[r];
        if chosen >= m {
            return Err(Error::UnknownModel(format!("#{chosen}")));
        }
        q += test.score(r, chosen as usize);
        match &p.invoked {
            Some(inv) => {
                if !inv[r].contains(&chosen) {
                    return Err(Error::InvalidInput(format!(
                        "query {}: the accepted model was not invoked",
                        test.ids()[r]
                    )));
                }
                for &i in &inv[r] {
                    if i >= m {
                        return Err(Error::UnknownModel(format!("#{i}")));
                    }
                    c += test.cost(r, i as usize);
                }
                strong_calls += usize::from(strong.is_some_and(|s| inv[r].contains(&(s as u32))));
            }
            None => {
                c += test.cost(r, chosen as usize);
                strong_calls += usize::from(strong == Some(chosen as usize));
            }
        }
    }
    let n = n as f64;
    Ok(CurvePoint {
        cost_weight: p.cost_weight,
        mean_cost: c / n,
        mean_quality: q / n,
        strong_share: strong.map(|_| strong_calls as f64 / n),
    })
}

/// Evaluates a sweep on `test` against `reference`.
///
/// # Errors
///
/// [`Error::Shape`] when a point does not assign every test query; [`Error::UnknownModel`] for a
/// model index outside the pool.
pub fn evaluate_sweep(
    name: &str,
    reads_test_labels: bool,
    sweep: &[SweepPoint],
    test: &Split,
    reference: &Reference,
) -> Result<EntrantReport> {
    if sweep.is_empty() {
        return Err(Error::InvalidInput(format!("{name}: empty sweep")));
    }
    let strong = reference.weak_strong.map(|(_, s)| s);
    let points = |basis: CostBasis| -> Result<Vec<CurvePoint>> {
        sweep
            .iter()
            .filter(|p| p.cost_basis == basis)
            .map(|p| curve_point(test, p, strong))
            .collect()
    };
    let curve = points(CostBasis::Query)?;
    let call_curve = points(CostBasis::Call)?;
    if curve.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{name}: the sweep has no per-query cost points"
        )));
    }
    Ok(EntrantReport {
        name: name.to_string(),
        reads_test_labels,
        simulated_judge: false,
        metrics: metrics(&curve, &call_curve, reference),
        curve,
        call_curve,
    })
}

/// Metrics of a cost curve and, for APGR and CPT on two-model datasets, a strong-call share
/// curve (the cost curve's shares when `call_curve` is empty), against the reference figures.
pub fn metrics(curve: &[CurvePoint], call_curve: &[CurvePoint], reference: &Reference) -> Metrics {
    let pts: Vec<(f64, f64)> = curve
        .iter()
        .map(|p| (p.mean_cost, p.mean_quality))
        .collect();
    let best = &reference.models[reference.best_single];
    let own = upper_hull(&pts);
    let max_quality = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let quality_at_best_single_cost = hull_at(&own, best.mean_cost);
    let cost_to_match_best_single = if best.mean_cost > 0.0 {
        hull_reaches(&own, best.mean_quality).map(|c| c / best.mean_cost)
    } else {
        None
    };
    let quality_at_cheap_share = pts
        .iter()
        .filter(|p| p.0 <= CHEAP_SHARE * best.mean_cost)
        .map(|p| p.1)
        .reduce(f64::max);
    let (apgr, cpt50, cpt80) = match reference.weak_strong {
        Some((w, s)) => {
            let (qw, qs) = (
                reference.models[w].mean_quality,
                reference.models[s].mean_quality,
            );
            let share_curve = if call_curve.is_empty() {
                curve
            } else {
                call_curve
            };
            let pgr: Vec<(f64, f64)> = share_curve
                .iter()
                .filter_map(|p| {
                    p.strong_share
                        .map(|sh| (sh, (p.mean_quality - qw) / (qs - qw)))
                })
                .collect();
            if qs != qw {
                let (a, c5, c8) = pgr_metrics(&pgr);
                (Some(a), c5, c8)
            } else {
                (None, None, None)
            }
        }
        None => (None, None, None),
    };
    Metrics {
        aiq: aiq(&pts, &reference.singles()),
        max_quality,
        quality_at_best_single_cost,
        cost_to_match_best_single,
        quality_at_cheap_share,
        oracle_gap: reference.oracle_quality - max_quality,
        apgr,
        cpt50,
        cpt80,
    }
}

/// The non-decreasing upper convex hull of `(cost, quality)` points, by increasing cost: the
/// upper hull up to its highest point, flat after it.
pub fn upper_hull(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = points.to_vec();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    pts.dedup_by(|b, a| a.0 == b.0); // keep the best quality per cost
    let mut hull: Vec<(f64, f64)> = Vec::with_capacity(pts.len());
    for p in pts {
        while hull.len() >= 2 {
            let (a, b) = (hull[hull.len() - 2], hull[hull.len() - 1]);
            // Drop b when it lies on or below the segment a→p.
            let cross = (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0);
            if cross >= 0.0 {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(p);
    }
    // Non-decreasing: stop at the highest point (the first one, if several tie).
    if let Some(top) = hull
        .iter()
        .enumerate()
        .fold(None::<(usize, f64)>, |acc, (i, p)| match acc {
            Some((_, q)) if q >= p.1 => acc,
            _ => Some((i, p.1)),
        })
        .map(|(i, _)| i)
    {
        hull.truncate(top + 1);
    }
    hull
}

/// The hull's quality at `cost`: linear between vertices, flat after the last, `None` before the
/// first.
pub fn hull_at(hull: &[(f64, f64)], cost: f64) -> Option<f64> {
    let first = hull.first()?;
    if cost < first.0 {
        return None;
    }
    for w in hull.windows(2) {
        let (a, b) = (w[0], w[1]);
        if cost <= b.0 {
            return Some(a.1 + (b.1 - a.1) * (cost - a.0) / (b.0 - a.0));
        }
    }
    Some(hull.last().expect("hull is not empty").1)
}

/// The least cost at which the hull reaches `quality`, `None` if it never does.
pub fn hull_reaches(hull: &[(f64, f64)], quality: f64) -> Option<f64> {
    let first = hull.first()?;
    if first.1 >= quality {
        return Some(first.0);
    }
    for w in hull.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.1 >= quality {
            return Some(a.0 + (b.0 - a.0) * (quality - a.1) / (b.1 - a.1));
        }
    }
    None
}

/// RouterBench's AIQ of `points` together with the single-model points `singles`.
pub fn aiq(points: &[(f64, f64)], singles: &[(f64, f64)]) -> f64 {
    if singles.is_empty() {
        return 0.0;
    }
    let lo = singles.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = singles
        .iter()
        .map(|p| p.0)
        .fold(f64::NEG_INFINITY, f64::max);
    let all: Vec<(f64, f64)> = points.iter().chain(singles).copied().collect();
    let hull = upper_hull(&all);
    if hi <= lo {
        return hull_at(&hull, lo).unwrap_or(0.0);
    }
    // Integrate the piecewise-linear hull (flat after its last vertex, 0 before its first) over
    // [lo, hi].
    let mut area = 0.0;
    let mut knots: Vec<f64> = vec![lo, hi];
    knots.extend(hull.iter().map(|p| p.0).filter(|&c| c > lo && c < hi));
    knots.sort_by(f64::total_cmp);
    for w in knots.windows(2) {
        let (a, b) = (w[0], w[1]);
        let qa = hull_at(&hull, a).unwrap_or(0.0);
        let qb = hull_at(&hull, b).unwrap_or(0.0);
        area += 0.5 * (qa + qb) * (b - a);
    }
    area / (hi - lo)
}

/// APGR, CPT(50 %) and CPT(80 %) of `(share, pgr)` points with the end points (0, 0), (1, 1).
fn pgr_metrics(points: &[(f64, f64)]) -> (f64, Option<f64>, Option<f64>) {
    let mut pts: Vec<(f64, f64)> = vec![(0.0, 0.0)];
    pts.extend_from_slice(points);
    pts.push((1.0, 1.0));
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let apgr: f64 = pts
        .windows(2)
        .map(|w| 0.5 * (w[0].1 + w[1].1) * (w[1].0 - w[0].0))
        .sum();
    let cpt = |x: f64| -> Option<f64> {
        if pts[0].1 >= x {
            return Some(pts[0].0);
        }
        pts.windows(2).find(|w| w[1].1 >= x).map(|w| {
            let (a, b) = (w[0], w[1]);
            if b.1 == a.1 {
                b.0
            } else {
                a.0 + (b.0 - a.0) * (x - a.1) / (b.1 - a.1)
            }
        })
    };
    (apgr, cpt(0.5), cpt(0.8))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pool::{ModelCard, ModelPool};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hull_and_aiq_by_hand() {
        // Singles: (1, 0.2), (2, 0.6), (4, 0.7), (3, 0.3) (dominated).
        let singles = [(1.0, 0.2), (2.0, 0.6), (4.0, 0.7), (3.0, 0.3)];
        let hull = upper_hull(&singles);
        assert_eq!(hull, vec![(1.0, 0.2), (2.0, 0.6), (4.0, 0.7)]);
        // Area: [1,2]: (0.2+0.6)/2 = 0.4; [2,4]: (0.6+0.7)/2*2 = 1.3; total 1.7 over a range of 3.
        assert!(close(aiq(&[], &singles), 1.7 / 3.0));
        // A router point (1.5, 0.65) above the hull: hull becomes (1,.2),(1.5,.65),(4,.7)...
        // [1,1.5]: .2125; [1.5,4]: (.65+.7)/2*2.5 = 1.6875; total 1.9 / 3.
        assert!(close(aiq(&[(1.5, 0.65)], &singles), 1.9 / 3.0));
        // A router point at (3, 0.9) makes the hull flat after cost 3 ((2, .6) stays on it):
        // [1,2]: .4; [2,3]: (.6+.9)/2 = .75; [3,4]: .9. Total 2.05 / 3.
        assert!(close(aiq(&[(3.0, 0.9)], &singles), 2.05 / 3.0));
        // A point below the cheapest single model: the hull (0.5,.2)→(2,.6)→(4,.7) drops (1,.2);
        // over [1,4]: at 1 the hull is .2 + .4/1.5*.5 = .3333; [1,2]: (.3333+.6)/2; [2,4]: 1.3.
        let expected = (0.5 * (0.2 + 0.4 / 1.5 * 0.5 + 0.6) + 1.3) / 3.0;
        assert!(close(aiq(&[(0.5, 0.2)], &singles), expected));
    }

    #[test]
    fn hull_queries() {
        let hull = upper_hull(&[(1.0, 0.2), (2.0, 0.6), (4.0, 0.7)]);
        assert_eq!(hull_at(&hull, 0.5), None);
        assert!(close(hull_at(&hull, 1.5).unwrap(), 0.4));
        assert!(close(hull_at(&hull, 9.0).unwrap(), 0.7));
        assert!(close(hull_reaches(&hull, 0.65).unwrap(), 3.0));
        assert_eq!(hull_reaches(&hull, 0.8), None);
        assert!(close(hull_reaches(&hull, 0.1).unwrap(), 1.0));
        // Non-decreasing: a costlier, worse point is cut.
        assert_eq!(upper_hull(&[(1.0, 0.5), (2.0, 0.4)]), vec![(1.0, 0.5)]);
    }

    #[test]
    fn pgr_by_hand() {
        // Points (0.5, 0.8): area = [0,.5]: (0+.8)/2*.5 = .2; [.5,1]: (.8+1)/2*.5 = .45 → .65.
        let (a, c5, c8) = pgr_metrics(&[(0.5, 0.8)]);
        assert!(close(a, 0.65));
        assert!(close(c5.unwrap(), 0.5 * 0.5 / 0.8));
        assert!(close(c8.unwrap(), 0.5));
        // Random routing is the diagonal: APGR 0.5, CPT(50%) = 0.5.
        let (a, c5, _) = pgr_metrics(&[(0.25, 0.25), (0.75, 0.75)]);
        assert!(close(a, 0.5) && close(c5.unwrap(), 0.5));
    }

    /// Two models, a train split of 2 queries and a test split of 4.
    pub(crate) fn tiny() -> (Split, Split) {
        let pool = ModelPool::new(vec![
            ModelCard::new("weak", 1.0, 1.0),
            ModelCard::new("strong", 10.0, 10.0),
        ])
        .unwrap();
        let train = Split::from_arrays(
            pool.clone(),
            vec![1.0, 0.0, 0.0, 1.0],
            2,
            vec![0.0, 1.0, 1.0, 1.0],
            vec![1.0, 10.0, 1.0, 10.0],
        )
        .unwrap();
        // Test: q0 both right, q1 only strong right, q2 neither, q3 only weak right.
        let test = Split::from_arrays(
            pool,
            vec![1.0; 8],
            2,
            vec![1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0],
            vec![1.0, 10.0, 1.0, 10.0, 2.0, 20.0, 1.0, 10.0],
        )
        .unwrap();
        (train, test)
    }

    #[test]
    fn reference_and_metrics_by_hand() {
        let (train, test) = tiny();
        let r = Reference::new(&train, &test, Some((0, 1))).unwrap();
        assert_eq!(r.best_single, 1);
        assert!(close(r.models[0].mean_quality, 0.5) && close(r.models[1].mean_quality, 0.5));
        assert!(close(r.models[0].mean_cost, 1.25) && close(r.models[1].mean_cost, 12.5));
        // Oracle: q0 weak (cheaper), q1 strong, q2 weak (tie at 0, cheaper), q3 weak → 3/4 at (1+10+2+1)/4.
        assert!(close(r.oracle_quality, 0.75) && close(r.oracle_cost, 3.5));
        // Singles (1.25, .5), (12.5, .5): flat hull → AIQ .5.
        assert!(close(r.zero_router_aiq, 0.5));
        // A router that sends only q1 to strong: quality 1.0? q0 w=1, q1 s=1, q2 w=0, q3 w=1 → .75.
        let sweep = vec![SweepPoint {
            cost_weight: 1.0,
            choices: vec![0, 1, 0, 0],
            invoked: None,
            cost_basis: CostBasis::Query,
        }];
        let rep = evaluate_sweep("x", false, &sweep, &test, &r).unwrap();
        let p = rep.curve[0];
        assert!(close(p.mean_quality, 0.75) && close(p.mean_cost, (1.0 + 10.0 + 2.0 + 1.0) / 4.0));
        assert!(close(p.strong_share.unwrap(), 0.25));
        assert!(close(rep.metrics.max_quality, 0.75));
        assert!(close(rep.metrics.oracle_gap, 0.0));
        // q_weak = q_strong = 0.5 here, so PGR is undefined.
        assert_eq!(rep.metrics.apgr, None);
        // Own hull: a single point at cost 3.5 → quality at best-single cost 12.5 is 0.75,
        // and it matches the best single's 0.5 at cost 3.5 = 0.28 of 12.5.
        assert!(close(
            rep.metrics.quality_at_best_single_cost.unwrap(),
            0.75
        ));
        assert!(close(
            rep.metrics.cost_to_match_best_single.unwrap(),
            3.5 / 12.5
        ));
        // Cascade: q3 invoked weak then strong, accepted weak's answer? Accepted must be invoked.
        let sweep = vec![SweepPoint {
            cost_weight: 0.0,
            choices: vec![0, 1, 0, 0],
            invoked: Some(vec![vec![0], vec![0, 1], vec![0], vec![0]]),
            cost_basis: CostBasis::Query,
        }];
        let rep = evaluate_sweep("c", false, &sweep, &test, &r).unwrap();
        assert!(close(
            rep.curve[0].mean_cost,
            (1.0 + 11.0 + 2.0 + 1.0) / 4.0
        ));
        let bad = vec![SweepPoint {
            cost_weight: 0.0,
            choices: vec![0, 1, 0, 0],
            invoked: Some(vec![vec![0], vec![0], vec![0], vec![0]]),
            cost_basis: CostBasis::Query,
        }];
        assert!(evaluate_sweep("c", false, &bad, &test, &r).is_err());
        let short = vec![SweepPoint {
            cost_weight: 0.0,
            choices: vec![0],
            invoked: None,
            cost_basis: CostBasis::Query,
        }];
        assert!(evaluate_sweep("c", false, &short, &test, &r).is_err());
    }
}
