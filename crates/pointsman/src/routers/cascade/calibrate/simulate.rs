//! Simulation on labelled queries with recorded confidences: checking the confidences and
//! measuring how often they err, preparing each query's evidence (leave-one-out on the split the
//! router was fitted on), running the engine over every query, and sweeping the cost weight.

use rayon::prelude::*;

use crate::data::Split;
use crate::error::{Error, Result};
use crate::metrics::{CostBasis, SweepPoint};
use crate::routers::cascade::engine::{self, Evidence, Next, Params, Scratch, State, MAX_MODELS};
use crate::routers::cascade::router::{fingerprint, success_mask};
use crate::routers::cascade::CascadeRouter;

/// Labelled queries prepared for simulation.
pub(crate) struct Data<'a> {
    split: &'a Split,
    /// Router model → split column.
    col: Vec<usize>,
    /// Confidences, `[rows, router models]`.
    conf: Vec<f64>,
    pub(in crate::routers::cascade) evidence: Vec<Evidence>,
}

/// One simulated query: the accepted model and the models invoked, in order (router indices).
#[derive(Debug, Clone, Copy)]
pub(super) struct Run {
    accepted: u8,
    len: u8,
    order: [u8; MAX_MODELS],
}

impl Run {
    pub(super) fn invoked(&self) -> &[u8] {
        &self.order[..self.len as usize]
    }
}

/// Mean figures of a simulation on labelled data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Summary {
    pub(super) quality: f64,
    pub(super) cost: f64,
    pub(super) calls: f64,
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
pub(super) fn mu_grid(mean_costs: &[f64], points: usize) -> Vec<f64> {
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
///
/// [`CascadeConfig::confidence_error`]: crate::routers::cascade::CascadeConfig::confidence_error
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
    pub(super) fn run_one(
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
    pub(super) fn run_all(
        data: &Data<'_>,
        params: &Params,
        flat: Option<&[f64]>,
    ) -> Result<Vec<Run>> {
        Ok(
            CascadeRouter::run_grid(data, std::slice::from_ref(params), flat)?
                .pop()
                .expect("one setting"),
        )
    }

    pub(super) fn summary(data: &Data<'_>, runs: &[Run]) -> Summary {
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

    pub(super) fn base_params(&self, mu: f64) -> Params {
        self.params(mu, None, f64::INFINITY, self.config.max_steps)
    }

    pub(super) fn mean_expected_costs(data: &Data<'_>) -> Vec<f64> {
        column_means(
            data.evidence.iter().map(|e| e.costs.clone()),
            data.col.len(),
        )
    }

    /// Sweeps the cost weight over prepared data: per-query costs, and on two-model pools also
    /// flat per-call costs (each model's mean expected cost), for the strong-call share curve.
    pub(super) fn sweep_data(&self, data: &Data<'_>, points: usize) -> Result<Vec<SweepPoint>> {
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
}
