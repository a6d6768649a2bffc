//! The figures of a replay: cumulative utility, regret against the best fixed model and the
//! oracle, each model's share over time.

use serde::{Deserialize, Serialize};

use super::{Drift, Run, Stream};
use crate::error::{Error, Result};

/// A single model's figures over a replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReplay {
    /// The model's id.
    pub model: String,
    /// Mean utility over the whole stream had it been chosen every time.
    pub mean_utility: f64,
    /// The same over the second half.
    pub mean_utility_second_half: f64,
}

/// The reference figures of a replay: every fixed model and the oracle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayReference {
    /// Every model as a fixed choice.
    pub models: Vec<ModelReplay>,
    /// The best fixed model over the whole stream, in hindsight.
    pub best_fixed: String,
    /// Its mean utility.
    pub best_fixed_utility: f64,
    /// The best fixed model over the second half, in hindsight.
    pub best_fixed_second_half: String,
    /// Its mean utility over the second half.
    pub best_fixed_utility_second_half: f64,
    /// The oracle's mean utility (the best model of every step).
    pub oracle_utility: f64,
    /// The oracle's mean utility over the second half.
    pub oracle_utility_second_half: f64,
}

/// Figures at the end of each bin of steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayBin {
    /// First step of the bin.
    pub start: usize,
    /// One past its last step.
    pub end: usize,
    /// The router's mean utility over steps `0..end`.
    pub cumulative_mean_utility: f64,
    /// Its mean utility within the bin.
    pub bin_mean_utility: f64,
    /// Cumulative regret over steps `0..end` against the best fixed model of the whole stream.
    pub cumulative_regret_best_fixed: f64,
    /// Cumulative regret over steps `0..end` against the oracle.
    pub cumulative_regret_oracle: f64,
    /// Share of each model (pool order) among the bin's choices.
    pub shares: Vec<f64>,
}

/// A detector alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// The step after whose feedback it fired.
    pub step: usize,
    /// The model whose statistics were wiped.
    pub model: String,
}

/// One router's replay figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterReplay {
    /// The router's name.
    pub name: String,
    /// Mean utility over the whole stream.
    pub mean_utility: f64,
    /// Mean utility over the second half.
    pub mean_utility_second_half: f64,
    /// Mean quality over the second half.
    pub mean_quality_second_half: f64,
    /// Mean cost over the second half (USD per query).
    pub mean_cost_second_half: f64,
    /// Best fixed model's second-half utility minus the router's (negative: the router wins).
    pub regret_best_fixed_second_half: f64,
    /// The oracle's second-half utility minus the router's.
    pub regret_oracle_second_half: f64,
    /// Best fixed model's whole-stream utility minus the router's.
    pub regret_best_fixed: f64,
    /// The oracle's whole-stream utility minus the router's.
    pub regret_oracle: f64,
    /// Per bin of steps.
    pub bins: Vec<ReplayBin>,
    /// Detector alarms.
    pub alarms: Vec<Alarm>,
    /// Wall-clock seconds of the replay (0 when rebuilt from lines).
    pub seconds: f64,
}

impl RouterReplay {
    /// Model `m`'s share of the choices in steps `start..end`, from the bins that lie within.
    pub fn share(&self, m: usize, start: usize, end: usize) -> Option<f64> {
        let bins: Vec<&ReplayBin> = self
            .bins
            .iter()
            .filter(|b| b.start >= start && b.end <= end)
            .collect();
        let steps: usize = bins.iter().map(|b| b.end - b.start).sum();
        (steps > 0).then(|| {
            bins.iter()
                .map(|b| b.shares[m] * (b.end - b.start) as f64)
                .sum::<f64>()
                / steps as f64
        })
    }
}

/// A whole replay report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayReport {
    /// The dataset's name.
    pub dataset: String,
    /// Steps in the stream.
    pub steps: usize,
    /// The cost weight utility is measured at.
    pub cost_weight: f64,
    /// The first step of the second half.
    pub second_half_start: usize,
    /// Steps per bin.
    pub bin: usize,
    /// The drift applied, if any.
    pub drift: Option<Drift>,
    /// The models' ids, in pool order (the order of every `shares` vector).
    pub model_ids: Vec<String>,
    /// Fixed models and the oracle.
    pub reference: ReplayReference,
    /// One entry per router, in the order given.
    pub routers: Vec<RouterReplay>,
}

impl ReplayReport {
    /// Scores `runs` over `stream` at `cost_weight`, with per-bin figures every `bin` steps.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] for a run that does not cover the stream; [`Error::InvalidInput`] for a
    /// zero bin or a negative or non-finite cost weight; [`Error::UnknownModel`] for a choice
    /// outside the pool.
    pub fn new(
        dataset: &str,
        stream: &Stream,
        cost_weight: f64,
        runs: &[(String, Run)],
        bin: usize,
    ) -> Result<ReplayReport> {
        if bin == 0 {
            return Err(Error::InvalidInput(
                "replay bins must hold at least 1 step".into(),
            ));
        }
        if !(cost_weight >= 0.0 && cost_weight.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "cost weight {cost_weight} is not a non-negative number"
            )));
        }
        let (n, k) = (stream.len(), stream.pool.len());
        let half = n / 2;
        let utility = |t: usize, m: usize| stream.score(t, m) - cost_weight * stream.cost(t, m);
        let mean_over = |f: &dyn Fn(usize) -> f64, from: usize| -> f64 {
            (from..n).map(f).sum::<f64>() / (n - from).max(1) as f64
        };
        let models: Vec<ModelReplay> = (0..k)
            .map(|m| ModelReplay {
                model: stream.pool.id(m).to_string(),
                mean_utility: mean_over(&|t| utility(t, m), 0),
                mean_utility_second_half: mean_over(&|t| utility(t, m), half),
            })
            .collect();
        let argmax = |f: &dyn Fn(&ModelReplay) -> f64| -> usize {
            (0..k).fold(0, |b, m| if f(&models[m]) > f(&models[b]) { m } else { b })
        };
        let best_all = argmax(&|r| r.mean_utility);
        let best_half = argmax(&|r| r.mean_utility_second_half);
        let oracle = |t: usize| {
            (0..k)
                .map(|m| utility(t, m))
                .fold(f64::NEG_INFINITY, f64::max)
        };
        let reference = ReplayReference {
            best_fixed: models[best_all].model.clone(),
            best_fixed_utility: models[best_all].mean_utility,
            best_fixed_second_half: models[best_half].model.clone(),
            best_fixed_utility_second_half: models[best_half].mean_utility_second_half,
            oracle_utility: mean_over(&oracle, 0),
            oracle_utility_second_half: mean_over(&oracle, half),
            models,
        };
        let mut routers = Vec::with_capacity(runs.len());
        for (name, run) in runs {
            if run.choices.len() != n {
                return Err(Error::Shape(format!(
                    "{name}: {} choices for a stream of {n} steps",
                    run.choices.len()
                )));
            }
            if let Some(&bad) = run.choices.iter().find(|&&m| m as usize >= k) {
                return Err(Error::UnknownModel(format!("#{bad}")));
            }
            let u: Vec<f64> = (0..n)
                .map(|t| utility(t, run.choices[t] as usize))
                .collect();
            let second: f64 = u[half..].iter().sum::<f64>() / (n - half).max(1) as f64;
            let all: f64 = u.iter().sum::<f64>() / n as f64;
            let q2 = (half..n)
                .map(|t| stream.score(t, run.choices[t] as usize))
                .sum::<f64>()
                / (n - half).max(1) as f64;
            let c2 = (half..n)
                .map(|t| stream.cost(t, run.choices[t] as usize))
                .sum::<f64>()
                / (n - half).max(1) as f64;
            let mut bins = Vec::new();
            let (mut cum, mut reg_fixed, mut reg_oracle) = (0.0, 0.0, 0.0);
            let mut start = 0;
            while start < n {
                let end = (start + bin).min(n);
                let mut counts = vec![0usize; k];
                let mut within = 0.0;
                for t in start..end {
                    counts[run.choices[t] as usize] += 1;
                    within += u[t];
                    reg_fixed += utility(t, best_all) - u[t];
                    reg_oracle += oracle(t) - u[t];
                }
                cum += within;
                bins.push(ReplayBin {
                    start,
                    end,
                    cumulative_mean_utility: cum / end as f64,
                    bin_mean_utility: within / (end - start) as f64,
                    cumulative_regret_best_fixed: reg_fixed,
                    cumulative_regret_oracle: reg_oracle,
                    shares: counts
                        .iter()
                        .map(|&c| c as f64 / (end - start) as f64)
                        .collect(),
                });
                start = end;
            }
            routers.push(RouterReplay {
                name: name.clone(),
                mean_utility: all,
                mean_utility_second_half: second,
                mean_quality_second_half: q2,
                mean_cost_second_half: c2,
                regret_best_fixed_second_half: reference.best_fixed_utility_second_half - second,
                regret_oracle_second_half: reference.oracle_utility_second_half - second,
                regret_best_fixed: reference.best_fixed_utility - all,
                regret_oracle: reference.oracle_utility - all,
                bins,
                alarms: run
                    .alarms
                    .iter()
                    .map(|&(step, m)| Alarm {
                        step,
                        model: stream.pool.id(m).to_string(),
                    })
                    .collect(),
                seconds: run.seconds,
            });
        }
        Ok(ReplayReport {
            dataset: dataset.to_string(),
            steps: n,
            cost_weight,
            second_half_start: half,
            bin,
            drift: stream.drift.clone(),
            model_ids: stream.pool.ids().map(str::to_string).collect(),
            reference,
            routers,
        })
    }
}
