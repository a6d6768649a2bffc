//! A cascade on labelled data: simulations with known confidences, sweeps of the cost weight
//! (the cost–quality curve), calibration to a target mean cost or quality, the search of a
//! dynamic cascade's settings, and the search of fixed chains.
//!
//! Every simulation drives the same rule as a live [`super::Session`] (the `engine` module),
//! with each model's recorded confidence on each query, and charges the cascade the models'
//! *expected* costs when it decides (as in a live session) and the split's true costs when it is
//! scored. When the split is the one the router was fitted on, each query is left out of its own
//! estimates (leave-one-out), so a calibration is not flattered by queries seeing their own
//! labels.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::engine::{self, Evidence, Next, Params, Plan, Scratch, State, MAX_MODELS};
use super::router::{fingerprint, success_mask};
use super::{CascadeConfig, CascadeOrder, CascadeRouter, Stage};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::metrics::{evaluate_sweep, CostBasis, Reference, SweepPoint, DEFAULT_SWEEP_POINTS};
use crate::tuning::{Criterion, SearchReport, Trial, Validation};

/// Labelled queries prepared for simulation.
pub(crate) struct Data<'a> {
    split: &'a Split,
    /// Router model → split column.
    col: Vec<usize>,
    /// Confidences, `[rows, router models]`.
    conf: Vec<f64>,
    pub(super) evidence: Vec<Evidence>,
}

/// One simulated query: the accepted model and the models invoked, in order (router indices).
#[derive(Debug, Clone, Copy)]
struct Run {
    accepted: u8,
    len: u8,
    order: [u8; MAX_MODELS],
}

impl Run {
    fn invoked(&self) -> &[u8] {
        &self.order[..self.len as usize]
    }
}

/// Mean figures of a simulation on labelled data.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    quality: f64,
    cost: f64,
    calls: f64,
}

/// Each model's mean of `per_row` over the rows.
fn column_means(per_row: impl Iterator<Item = Vec<f64>>, m: usize) -> Vec<f64> {
    let mut sums = vec![0.0; m];
    let mut n = 0usize;
    for row in per_row {
        for (s, v) in sums.iter_mut().zip(row) {
            *s += v;
        }
        n += 1;
    }
    sums.iter().map(|s| s / n.max(1) as f64).collect()
}

/// Cost weights from "cost does not matter" to "no call is worth any cost": 0 and `points − 1`
/// values spaced geometrically from `1e-3 / costliest` to `4 / cheapest` (mean costs).
fn mu_grid(mean_costs: &[f64], points: usize) -> Vec<f64> {
    let positive: Vec<f64> = mean_costs.iter().copied().filter(|&c| c > 0.0).collect();
    let mut grid = vec![0.0];
    if positive.is_empty() || points < 2 {
        return grid;
    }
    let lo = 1e-3 / positive.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
    let hi = 4.0 / positive.iter().copied().fold(f64::INFINITY, f64::min);
    let steps = points - 1;
    for i in 0..steps {
        let t = if steps == 1 {
            1.0
        } else {
            i as f64 / (steps - 1) as f64
        };
        grid.push(lo * (hi / lo).powf(t));
    }
    grid
}

/// Mean absolute difference between confidences and good answers (`score ≥
/// success_threshold`): the rate at which a confidence, read as a vote, errs; the value to use
/// as [`CascadeConfig::confidence_error`], clamped to [0, 0.5].
///
/// # Errors
///
/// [`Error::Shape`] when `confidences` is not one value per query and model of `split`;
/// [`Error::InvalidInput`] for a confidence outside [0, 1] or an empty split.
pub fn confidence_error(split: &Split, confidences: &[f64], success_threshold: f64) -> Result<f64> {
    check_confidences(split, confidences)?;
    if split.is_empty() {
        return Err(Error::InvalidInput(
            "cannot measure the confidence error on an empty split".into(),
        ));
    }
    let wrong: f64 = confidences
        .iter()
        .zip(split.scores())
        .map(|(&c, &s)| (c - f64::from(u8::from(s >= success_threshold))).abs())
        .sum();
    Ok((wrong / confidences.len() as f64).clamp(0.0, 0.5))
}

fn check_confidences(split: &Split, confidences: &[f64]) -> Result<()> {
    let m = split.pool().len();
    if confidences.len() != split.len() * m {
        return Err(Error::Shape(format!(
            "{} confidences for {} queries x {m} models",
            confidences.len(),
            split.len()
        )));
    }
    if let Some(i) = confidences.iter().position(|c| !(0.0..=1.0).contains(c)) {
        return Err(Error::InvalidInput(format!(
            "confidence {} of query {:?} for model {:?} is outside [0, 1]",
            confidences[i],
            split.ids()[i / m],
            split.pool().id(i % m)
        )));
    }
    Ok(())
}

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
}

impl Default for CascadeSearch {
    fn default() -> Self {
        CascadeSearch {
            accept_thresholds: vec![0.5, 0.6, 0.7, 0.8],
            prior_strengths: vec![1.0, 2.0, 5.0],
            lookahead: vec![true],
            points: DEFAULT_SWEEP_POINTS,
            measure_confidence_error: true,
        }
    }
}

/// Settings of [`CascadeRouter::search_chains`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainSearch {
    /// Longest chain tried: every ordered subset of the models up to this length.
    pub max_len: usize,
    /// Acceptance thresholds (one per chain, shared by its stages).
    pub thresholds: Vec<f64>,
    /// Cost weights of the frontier.
    pub points: usize,
}

impl Default for ChainSearch {
    fn default() -> Self {
        ChainSearch {
            max_len: 3,
            thresholds: vec![0.5, 0.7, 0.9],
            points: DEFAULT_SWEEP_POINTS,
        }
    }
}

/// A fixed chain and its figures on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainCandidate {
    /// Model ids, first first.
    pub models: Vec<String>,
    /// The stages' acceptance threshold.
    pub threshold: f64,
    /// The cost weight at which this chain has the best `quality − μ·cost` on the training
    /// split (0 for a chain picked by a target).
    pub cost_weight: f64,
    /// Per-query costs, or flat per-call costs (strong-call share curves).
    pub cost_basis: CostBasis,
    /// Leave-one-out mean quality on the training split.
    pub mean_quality: f64,
    /// Mean cost per query (USD) on the training split.
    pub mean_cost: f64,
}

impl ChainCandidate {
    /// The chain as a config (on top of `base`).
    pub fn config(&self, base: &CascadeConfig) -> CascadeConfig {
        CascadeConfig {
            order: CascadeOrder::Chain {
                stages: self
                    .models
                    .iter()
                    .map(|m| Stage {
                        model: m.clone(),
                        threshold: self.threshold,
                    })
                    .collect(),
            },
            cost_weight: 0.0,
            max_steps: self.models.len(),
            estimator: None,
            ..base.clone()
        }
    }
}

/// The outcome of [`CascadeRouter::search_chains`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainReport {
    /// Number of (chain, threshold) pairs evaluated.
    pub evaluated: usize,
    /// The chains on the training split's cost–quality frontier, cheapest last, one per cost
    /// weight where the best chain changes; on two-model data followed by the frontier under
    /// flat per-call costs.
    pub frontier: Vec<ChainCandidate>,
    /// Every evaluated chain (per-query costs).
    pub all: Vec<ChainCandidate>,
    /// Wall time of the search.
    pub seconds: f64,
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
    /// Prepares labelled queries for simulation: confidences in router order and the evidence,
    /// left-one-out when `split` is the one the router was fitted on.
    pub(crate) fn data<'a>(&self, split: &'a Split, confidences: &[f64]) -> Result<Data<'a>> {
        check_confidences(split, confidences)?;
        let sm = split.pool().len();
        let col: Vec<usize> = self
            .pool
            .ids()
            .map(|id| {
                split.pool().index_of(id).map_err(|_| {
                    Error::UnknownModel(format!("{id} (the cascade's model is not in the data)"))
                })
            })
            .collect::<Result<_>>()?;
        let m = col.len();
        let mut conf = Vec::with_capacity(split.len() * m);
        for r in 0..split.len() {
            conf.extend(col.iter().map(|&c| confidences[r * sm + c]));
        }
        let own: Option<Vec<u32>> = (self.fitted_on == Some(fingerprint(split))).then(|| {
            (0..split.len())
                .map(|r| {
                    success_mask(
                        col.iter().map(|&c| split.score(r, c)),
                        self.config.success_threshold,
                    )
                })
                .collect()
        });
        let evidence = self.evidence(&split.features()?, own.as_deref())?;
        Ok(Data {
            split,
            col,
            conf,
            evidence,
        })
    }

    /// Simulates query `r` of `data` with `params`, deciding with `flat` costs when given (else
    /// the query's expected costs).
    fn run_one(
        data: &Data<'_>,
        params: &Params,
        flat: Option<&[f64]>,
        r: usize,
        st: &mut State,
        scratch: &mut Scratch,
    ) -> Result<Run> {
        let m = data.col.len();
        let ev = &data.evidence[r];
        let costs = flat.unwrap_or(&ev.costs);
        let mut run = Run {
            accepted: 0,
            len: 0,
            order: [0; MAX_MODELS],
        };
        let mut pending = engine::begin(ev, costs, params, st, scratch).map_err(|e| {
            Error::InvalidInput(format!("the cascade cannot start on query {r}: {e:?}"))
        })?;
        loop {
            run.order[run.len as usize] = pending.model as u8;
            run.len += 1;
            let c = data.conf[r * m + pending.model];
            match engine::observe(ev, costs, params, st, scratch, c, costs[pending.model]) {
                Next::Call(p) => pending = p,
                Next::Stop { model, .. } => {
                    run.accepted = model as u8;
                    return Ok(run);
                }
            }
        }
    }

    /// Simulates every query of `data` under each of `params`: `[params][rows]`. Rows are the
    /// outer loop, so each query's conditional estimates are computed once for all settings.
    fn run_grid(data: &Data<'_>, params: &[Params], flat: Option<&[f64]>) -> Result<Vec<Vec<Run>>> {
        let n = data.evidence.len();
        let chunk = (n / (rayon::current_num_threads().max(1) * 8)).clamp(16, 1024);
        let parts: Vec<Vec<Vec<Run>>> = (0..n.div_ceil(chunk))
            .into_par_iter()
            .map_init(
                || (Scratch::new(), State::default()),
                |(scratch, st), c| {
                    let rows = c * chunk..((c + 1) * chunk).min(n);
                    let mut out: Vec<Vec<Run>> = params
                        .iter()
                        .map(|_| Vec::with_capacity(rows.len()))
                        .collect();
                    for r in rows {
                        scratch.forget();
                        for (p, o) in params.iter().zip(out.iter_mut()) {
                            o.push(CascadeRouter::run_one(data, p, flat, r, st, scratch)?);
                        }
                    }
                    Ok(out)
                },
            )
            .collect::<Result<_>>()?;
        let mut all: Vec<Vec<Run>> = params.iter().map(|_| Vec::with_capacity(n)).collect();
        for part in parts {
            for (a, p) in all.iter_mut().zip(part) {
                a.extend(p);
            }
        }
        Ok(all)
    }

    /// [`CascadeRouter::run_grid`] with one setting.
    fn run_all(data: &Data<'_>, params: &Params, flat: Option<&[f64]>) -> Result<Vec<Run>> {
        Ok(
            CascadeRouter::run_grid(data, std::slice::from_ref(params), flat)?
                .pop()
                .expect("one setting"),
        )
    }

    fn summary(data: &Data<'_>, runs: &[Run]) -> Summary {
        let (mut q, mut c, mut k) = (0.0, 0.0, 0.0);
        for (r, run) in runs.iter().enumerate() {
            q += data.split.score(r, data.col[run.accepted as usize]);
            for &i in run.invoked() {
                c += data.split.cost(r, data.col[i as usize]);
            }
            k += f64::from(run.len);
        }
        let n = runs.len().max(1) as f64;
        Summary {
            quality: q / n,
            cost: c / n,
            calls: k / n,
        }
    }

    fn point(data: &Data<'_>, runs: &[Run], mu: f64, basis: CostBasis) -> SweepPoint {
        let col = |i: u8| data.col[i as usize] as u32;
        SweepPoint {
            cost_weight: mu,
            choices: runs.iter().map(|r| col(r.accepted)).collect(),
            invoked: Some(
                runs.iter()
                    .map(|r| r.invoked().iter().map(|&i| col(i)).collect())
                    .collect(),
            ),
            cost_basis: basis,
        }
    }

    fn base_params(&self, mu: f64) -> Params {
        self.params(mu, None, f64::INFINITY, self.config.max_steps)
    }

    fn mean_expected_costs(data: &Data<'_>) -> Vec<f64> {
        column_means(
            data.evidence.iter().map(|e| e.costs.clone()),
            data.col.len(),
        )
    }

    /// Sweeps the cost weight over prepared data: per-query costs, and on two-model pools also
    /// flat per-call costs (each model's mean expected cost), for the strong-call share curve.
    fn sweep_data(&self, data: &Data<'_>, points: usize) -> Result<Vec<SweepPoint>> {
        let mean = CascadeRouter::mean_expected_costs(data);
        let mut out: Vec<SweepPoint> = Vec::new();
        let mut bases = vec![(CostBasis::Query, points, None)];
        if self.pool.len() == 2 {
            bases.push((CostBasis::Call, points.max(101), Some(mean.as_slice())));
        }
        for (basis, points, flat) in bases {
            let mut last: Option<usize> = None;
            let grid = mu_grid(&mean, points);
            let params: Vec<Params> = grid.iter().map(|&mu| self.base_params(mu)).collect();
            let all = CascadeRouter::run_grid(data, &params, flat)?;
            for (&mu, runs) in grid.iter().zip(&all) {
                let p = CascadeRouter::point(data, runs, mu, basis);
                // Cost weights that change nothing add nothing to the curve.
                if let Some(l) = last {
                    if out[l].choices == p.choices && out[l].invoked == p.invoked {
                        continue;
                    }
                }
                out.push(p);
                last = Some(out.len() - 1);
            }
        }
        Ok(out)
    }

    /// The cascade's sweep on a labelled split: one point per cost weight μ (from 0, where any
    /// chance of a better answer is worth a call, to where no call after the first is worth its
    /// cost), each assigning every query its accepted model and the models it invoked. On
    /// two-model pools the sweep is repeated with flat per-call costs (each model's mean
    /// expected cost), tracing the strong-call share curve ([`CostBasis::Call`]).
    ///
    /// `confidences` holds, for every query and every model of the split (`[rows, models]`,
    /// the split's model order), the confidence the caller would observe for that answer.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] or [`Error::InvalidInput`] for confidences that do not fit the split;
    /// [`Error::UnknownModel`] when the split lacks one of the cascade's models; features that
    /// do not fit the router.
    pub fn sweep(
        &self,
        split: &Split,
        confidences: &[f64],
        points: usize,
    ) -> Result<Vec<SweepPoint>> {
        let data = self.data(split, confidences)?;
        self.sweep_data(&data, points)
    }

    /// Simulates the cascade once on a labelled split at cost weight `cost_weight`, with
    /// per-query expected costs or, for [`CostBasis::Call`], each model's mean expected cost.
    ///
    /// # Errors
    ///
    /// As [`CascadeRouter::sweep`]; [`Error::Config`] for a negative or non-finite cost weight.
    pub fn simulate(
        &self,
        split: &Split,
        confidences: &[f64],
        cost_weight: f64,
        basis: CostBasis,
    ) -> Result<SweepPoint> {
        if !cost_weight.is_finite() || cost_weight < 0.0 {
            return Err(Error::Config(format!(
                "cost_weight {cost_weight} is not a non-negative number"
            )));
        }
        let data = self.data(split, confidences)?;
        let mean = CascadeRouter::mean_expected_costs(&data);
        let flat = (basis == CostBasis::Call).then_some(mean.as_slice());
        let runs = CascadeRouter::run_all(&data, &self.base_params(cost_weight), flat)?;
        Ok(CascadeRouter::point(&data, &runs, cost_weight, basis))
    }

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
                }
            }
        }
        // Best first; ties keep the grid order.
        let report = SearchReport::new(criterion, Validation::LeaveOneOut, trials, started);
        let router = router.with_config(report.best())?;
        Ok((router, report))
    }

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
            return Err(Error::InvalidInput(format!(
                "calibration target {target:?} is out of range"
            )));
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
                    near.cost
                ),
                CalibrationTarget::Quality(q) => format!(
                    "target quality {q} is above the best the cascade reaches on this data ({})",
                    near.quality
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

    /// Searches fixed chains on a labelled training split (FrugalGPT's cascade learning):
    /// every ordered subset of the models up to [`ChainSearch::max_len`], each with each
    /// threshold, simulated with the training table's conditional success rates (no per-query
    /// estimator; leave-one-out). Returns every chain's figures and the frontier: for each cost
    /// weight μ of a grid, the chain with the best `quality − μ·cost`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty threshold list, a threshold outside [0, 1] or `max_len` 0;
    /// the errors of [`CascadeRouter::fit`] and [`CascadeRouter::sweep`].
    pub fn search_chains(
        train: &Split,
        confidences: &[f64],
        base: &CascadeConfig,
        search: &ChainSearch,
    ) -> Result<ChainReport> {
        let started = std::time::Instant::now();
        if search.max_len == 0 || search.thresholds.is_empty() {
            return Err(Error::Config(
                "a chain search needs max_len ≥ 1 and at least one threshold".into(),
            ));
        }
        if let Some(t) = search.thresholds.iter().find(|t| !(0.0..=1.0).contains(*t)) {
            return Err(Error::Config(format!(
                "chain threshold {t} is outside [0, 1]"
            )));
        }
        let m = train.pool().len();
        let first = train.pool().id(0).to_string();
        let config = CascadeConfig {
            order: CascadeOrder::Chain {
                stages: vec![Stage {
                    model: first,
                    threshold: 0.5,
                }],
            },
            estimator: None,
            ..base.clone()
        };
        let router = CascadeRouter::fit(train, &config)?;
        let data = router.data(train, confidences)?;
        let mut chains: Vec<Vec<usize>> = Vec::new();
        let mut stack: Vec<Vec<usize>> = (0..m).map(|j| vec![j]).collect();
        while let Some(c) = stack.pop() {
            if c.len() < search.max_len.min(m) {
                for j in (0..m).filter(|j| !c.contains(j)) {
                    let mut d = c.clone();
                    d.push(j);
                    stack.push(d);
                }
            }
            chains.push(c);
        }
        chains.sort();
        let pairs: Vec<(usize, f64)> = (0..chains.len())
            .flat_map(|c| search.thresholds.iter().map(move |&t| (c, t)))
            .collect();
        let true_means = train.mean_costs();
        let flat_true: Vec<f64> = router
            .pool
            .ids()
            .map(|id| {
                let c = train.pool().index_of(id).expect("fitted on this split");
                true_means[c]
            })
            .collect();
        // (quality, per-query cost, flat per-call cost) of each pair.
        let figures: Vec<(f64, f64, f64)> = pairs
            .par_iter()
            .map_init(Scratch::new, |scratch, &(c, t)| {
                let params = Params {
                    plan: Plan::Chain(chains[c].iter().map(|&j| (j, t)).collect()),
                    mu: 0.0,
                    eps: router.config.confidence_error,
                    s0: router.config.prior_strength,
                    max_steps: chains[c].len(),
                    budget: f64::INFINITY,
                    lookahead: false,
                    allowed: u32::MAX,
                };
                let mut st = State::default();
                let runs = (0..data.evidence.len())
                    .map(|r| CascadeRouter::run_one(&data, &params, None, r, &mut st, scratch))
                    .collect::<Result<Vec<Run>>>()?;
                let s = CascadeRouter::summary(&data, &runs);
                let flat: f64 = runs
                    .iter()
                    .flat_map(|r| r.invoked().iter().map(|&i| flat_true[i as usize]))
                    .sum::<f64>()
                    / runs.len().max(1) as f64;
                Ok((s.quality, s.cost, flat))
            })
            .collect::<Result<_>>()?;
        let candidate = |i: usize, mu: f64, basis: CostBasis| {
            let (c, t) = pairs[i];
            ChainCandidate {
                models: chains[c].iter().map(|&j| router.ids[j].clone()).collect(),
                threshold: t,
                cost_weight: mu,
                cost_basis: basis,
                mean_quality: figures[i].0,
                mean_cost: figures[i].1,
            }
        };
        let mut frontier = Vec::new();
        let mut bases = vec![CostBasis::Query];
        if m == 2 {
            bases.push(CostBasis::Call);
        }
        for basis in bases {
            let cost = |i: usize| match basis {
                CostBasis::Query => figures[i].1,
                CostBasis::Call => figures[i].2,
            };
            let mut last = None;
            for mu in mu_grid(&flat_true, search.points) {
                let best = (0..pairs.len())
                    .max_by(|&a, &b| {
                        let ua = figures[a].0 - mu * cost(a);
                        let ub = figures[b].0 - mu * cost(b);
                        ua.total_cmp(&ub)
                            .then(cost(b).total_cmp(&cost(a)))
                            .then(b.cmp(&a))
                    })
                    .expect("at least one chain");
                if last != Some(best) {
                    frontier.push(candidate(best, mu, basis));
                    last = Some(best);
                }
            }
        }
        Ok(ChainReport {
            evaluated: pairs.len(),
            all: (0..pairs.len())
                .map(|i| candidate(i, 0.0, CostBasis::Query))
                .collect(),
            frontier,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The fixed chain that best meets `target` on the training split among those
    /// [`CascadeRouter::search_chains`] evaluates, fitted as a cascade on `train` (with `base`'s
    /// other settings, without an estimator).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when no chain meets the target (the message gives the closest);
    /// the errors of [`CascadeRouter::search_chains`].
    pub fn fit_chain(
        train: &Split,
        confidences: &[f64],
        base: &CascadeConfig,
        search: &ChainSearch,
        target: CalibrationTarget,
    ) -> Result<(CascadeRouter, ChainCandidate)> {
        let report = CascadeRouter::search_chains(train, confidences, base, search)?;
        let pick = match target {
            CalibrationTarget::MeanCost(c) => report
                .all
                .iter()
                .filter(|x| x.mean_cost <= c)
                .max_by(|a, b| {
                    a.mean_quality
                        .total_cmp(&b.mean_quality)
                        .then(b.mean_cost.total_cmp(&a.mean_cost))
                }),
            CalibrationTarget::Quality(q) => report
                .all
                .iter()
                .filter(|x| x.mean_quality >= q)
                .min_by(|a, b| {
                    a.mean_cost
                        .total_cmp(&b.mean_cost)
                        .then(b.mean_quality.total_cmp(&a.mean_quality))
                }),
        };
        let Some(pick) = pick.cloned() else {
            return Err(Error::InvalidInput(match target {
                CalibrationTarget::MeanCost(c) => format!(
                    "no chain spends at most {c:e} USD per query on this data (least: {:e})",
                    report
                        .all
                        .iter()
                        .map(|x| x.mean_cost)
                        .fold(f64::INFINITY, f64::min)
                ),
                CalibrationTarget::Quality(q) => format!(
                    "no chain reaches quality {q} on this data (best: {})",
                    report
                        .all
                        .iter()
                        .map(|x| x.mean_quality)
                        .fold(0.0, f64::max)
                ),
            }));
        };
        let router = CascadeRouter::fit(train, &pick.config(base))?;
        Ok((router, pick))
    }
}

#[cfg(test)]
mod tests {
    use super::super::SimulatedJudge;
    use super::*;
    use crate::pool::{ModelCard, ModelPool};
    use crate::rng::SplitMix64;
    use crate::routers::knn::KnnConfig;

    fn pool() -> ModelPool {
        ModelPool::new(vec![
            ModelCard::new("cheap", 0.1, 0.1),
            ModelCard::new("mid", 1.0, 1.0),
            ModelCard::new("big", 10.0, 10.0),
        ])
        .unwrap()
    }

    /// As in the module tests of the router: easy queries suit the cheap model, hard ones only
    /// the big one.
    fn synthetic(n: usize, seed: u64) -> Split {
        let mut rng = SplitMix64::new(seed);
        let p = pool();
        let (mut e, mut sc) = (Vec::new(), Vec::new());
        for i in 0..n {
            let easy = i % 2 == 0;
            let x = if easy { 1.0 } else { -1.0 };
            e.extend_from_slice(&[x + 0.3 * rng.normal() as f32, 0.3 * rng.normal() as f32]);
            let pm: [f64; 3] = if easy {
                [0.85, 0.9, 0.95]
            } else {
                [0.1, 0.4, 0.9]
            };
            for q in pm {
                sc.push(f64::from(u8::from(rng.next_f64() < q)));
            }
        }
        let costs: Vec<f64> = (0..n)
            .flat_map(|_| [0, 1, 2].map(|m| p.estimate_cost(m, None)))
            .collect();
        Split::from_arrays(p, e, 2, sc, costs).unwrap()
    }

    fn config() -> CascadeConfig {
        CascadeConfig {
            estimator: Some(KnnConfig {
                k: 20,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// (mean quality, mean cost) of one sweep point, scored by the evaluation code.
    fn score(p: SweepPoint, split: &Split) -> (f64, f64) {
        let reference = Reference::new(split, split, None).unwrap();
        let rep = evaluate_sweep("x", false, &[p], split, &reference).unwrap();
        (rep.curve[0].mean_quality, rep.curve[0].mean_cost)
    }

    #[test]
    fn grid_and_error_rate_by_hand() {
        let g = mu_grid(&[1.0, 4.0], 3);
        assert_eq!(g.len(), 3);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 1e-3 / 4.0).abs() < 1e-15 && (g[2] - 4.0).abs() < 1e-12);
        assert_eq!(mu_grid(&[0.0, 0.0], 10), vec![0.0]);
        let split = synthetic(10, 1);
        let right: Vec<f64> = split
            .scores()
            .iter()
            .map(|&s| f64::from(u8::from(s >= 0.5)))
            .collect();
        assert_eq!(confidence_error(&split, &right, 0.5).unwrap(), 0.0);
        let wrong: Vec<f64> = right.iter().map(|c| 1.0 - c).collect();
        assert_eq!(confidence_error(&split, &wrong, 0.5).unwrap(), 0.5);
        let half = vec![0.5; 30];
        assert_eq!(confidence_error(&split, &half, 0.5).unwrap(), 0.5);
        let e = confidence_error(&split, &half[..29], 0.5).unwrap_err();
        assert!(
            e.to_string()
                .contains("29 confidences for 10 queries x 3 models"),
            "{e}"
        );
        let mut bad = half.clone();
        bad[4] = f64::NAN;
        let e = confidence_error(&split, &bad, 0.5).unwrap_err();
        assert!(
            e.to_string()
                .contains("of query \"1\" for model \"mid\" is outside [0, 1]"),
            "{e}"
        );
    }

    #[test]
    fn calibration_meets_its_target_on_the_training_split() {
        let train = synthetic(600, 11);
        let conf = SimulatedJudge::new(0.1, 2).unwrap().confidences(&train);
        let router = CascadeRouter::fit(&train, &config()).unwrap();
        let big = train.mean_costs()[2];
        for target in [0.2 * big, 0.5 * big] {
            let (r, cal) = router
                .calibrate(&train, &conf, CalibrationTarget::MeanCost(target))
                .unwrap();
            assert!(cal.mean_cost <= target, "{cal:?}");
            assert_eq!(r.config().cost_weight, cal.cost_weight);
            assert_eq!(r.config().accept_threshold, cal.thresholds[0]);
            // Re-simulated at the calibrated setting and scored by the evaluation code.
            let p = r
                .simulate(&train, &conf, cal.cost_weight, CostBasis::Query)
                .unwrap();
            let (q, c) = score(p, &train);
            assert!((q - cal.mean_quality).abs() < 1e-12 && (c - cal.mean_cost).abs() < 1e-15);
            // Better than the cheapest single model, and than anything cheaper on the grid.
            assert!(q > train.mean_scores()[0], "{q}");
        }
        let (_, cal) = router
            .calibrate(&train, &conf, CalibrationTarget::Quality(0.8))
            .unwrap();
        assert!(cal.mean_quality >= 0.8, "{cal:?}");
        assert!(cal.mean_cost < big, "{cal:?}");
        let e = router
            .calibrate(&train, &conf, CalibrationTarget::MeanCost(1e-9))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("is below the least the cascade spends"),
            "{e}"
        );
        let e = router
            .calibrate(&train, &conf, CalibrationTarget::Quality(1.0))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("is above the best the cascade reaches"),
            "{e}"
        );
        assert!(router
            .calibrate(&train, &conf, CalibrationTarget::MeanCost(-1.0))
            .is_err());
        // A chain's stage thresholds are calibrated one by one.
        let chain = CascadeRouter::fit(
            &train,
            &CascadeConfig::chain([("cheap", 0.5), ("mid", 0.5), ("big", 0.0)]),
        )
        .unwrap();
        let (r, cal) = chain
            .calibrate(&train, &conf, CalibrationTarget::MeanCost(0.3 * big))
            .unwrap();
        assert_eq!(cal.thresholds.len(), 3);
        assert_eq!(
            r.stages().iter().map(|s| s.1).collect::<Vec<_>>(),
            cal.thresholds
        );
        assert!(cal.mean_cost <= 0.3 * big);
    }

    #[test]
    fn sweep_spans_cheap_to_thorough() {
        let train = synthetic(400, 12);
        let test = synthetic(200, 13);
        let conf = SimulatedJudge::new(0.1, 3).unwrap().confidences(&test);
        let r = CascadeRouter::fit(&train, &config()).unwrap();
        let sweep = r.sweep(&test, &conf, 21).unwrap();
        assert!(sweep.len() >= 3, "{}", sweep.len());
        let first = score(sweep[0].clone(), &test);
        let last = score(sweep.last().unwrap().clone(), &test);
        // μ = 0 is the most thorough, the largest μ the cheapest.
        assert!(first.0 > last.0 && first.1 > last.1, "{first:?} {last:?}");
        for p in &sweep {
            let inv = p.invoked.as_ref().unwrap();
            for (r, calls) in inv.iter().enumerate() {
                assert!(calls.contains(&p.choices[r]) && !calls.is_empty());
                assert!(calls.len() <= 3);
            }
        }
        // The split must hold the cascade's models.
        let other = Split::from_arrays(
            ModelPool::new(vec![ModelCard::new("x", 1.0, 1.0)]).unwrap(),
            vec![1.0, 0.0],
            2,
            vec![1.0],
            vec![1e-4],
        )
        .unwrap();
        let e = r.sweep(&other, &[1.0], 5).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::UnknownModel);
    }

    #[test]
    fn tune_and_chain_search() {
        let train = synthetic(400, 14);
        let conf = SimulatedJudge::new(0.2, 4).unwrap().confidences(&train);
        let search = CascadeSearch {
            accept_thresholds: vec![0.5, 0.8],
            prior_strengths: vec![2.0],
            lookahead: vec![false, true],
            points: 15,
            measure_confidence_error: true,
        };
        let (r, rep) = CascadeRouter::tune(&train, &conf, &config(), &search).unwrap();
        assert_eq!(rep.trials.len(), 4);
        assert!(rep.trials.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(rep.describe(), "loo aiq");
        let measured = rep.best().confidence_error;
        assert!((measured - 0.2).abs() < 0.05, "{measured}");
        assert!(rep
            .trials
            .iter()
            .all(|t| t.config.confidence_error == measured));
        assert_eq!(r.config(), rep.best());
        let empty = CascadeSearch {
            lookahead: vec![],
            ..search
        };
        assert!(CascadeRouter::tune(&train, &conf, &config(), &empty).is_err());

        let chains = ChainSearch {
            max_len: 3,
            thresholds: vec![0.5, 0.9],
            points: 21,
        };
        let base = config();
        let rep = CascadeRouter::search_chains(&train, &conf, &base, &chains).unwrap();
        // 3 + 6 + 6 ordered subsets, two thresholds each.
        assert_eq!(rep.evaluated, 30);
        assert_eq!(rep.all.len(), 30);
        assert!(!rep.frontier.is_empty());
        // The frontier runs from the best quality (μ = 0) to the cheapest.
        let best_q = rep.all.iter().map(|c| c.mean_quality).fold(0.0, f64::max);
        assert_eq!(rep.frontier[0].mean_quality, best_q);
        let cheapest = rep.frontier.last().unwrap();
        assert_eq!(cheapest.models, ["cheap"]);
        let big = train.mean_costs()[2];
        let (r, pick) = CascadeRouter::fit_chain(
            &train,
            &conf,
            &base,
            &chains,
            CalibrationTarget::MeanCost(0.3 * big),
        )
        .unwrap();
        assert!(pick.mean_cost <= 0.3 * big);
        assert_eq!(r.stages().len(), pick.models.len());
        // Simulated again (leave-one-out on the fitted split) it gives the search's figures.
        let p = r.simulate(&train, &conf, 0.0, CostBasis::Query).unwrap();
        let (q, c) = score(p, &train);
        assert!((q - pick.mean_quality).abs() < 1e-12 && (c - pick.mean_cost).abs() < 1e-15);
        let e = CascadeRouter::fit_chain(
            &train,
            &conf,
            &base,
            &chains,
            CalibrationTarget::Quality(1.0),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no chain reaches quality 1"), "{e}");
    }
}
