//! The search of fixed chains (FrugalGPT's cascade learning): every ordered subset of the models
//! up to a length, with each threshold, simulated on the training split; the cost–quality
//! frontier, and the chain that best meets a target.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::simulate::{mu_grid, Run};
use super::target::CalibrationTarget;
use crate::data::Split;
use crate::error::{readable, Error, Result};
use crate::metrics::{CostBasis, DEFAULT_SWEEP_POINTS};
use crate::routers::cascade::engine::{Params, Plan, Scratch, State};
use crate::routers::cascade::{CascadeConfig, CascadeOrder, CascadeRouter, Stage};

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

impl CascadeRouter {
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
        train.require_full_labels("searching cascade chains (which simulates each call)")?;
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
                    readable(
                        report
                            .all
                            .iter()
                            .map(|x| x.mean_cost)
                            .fold(f64::INFINITY, f64::min)
                    )
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
