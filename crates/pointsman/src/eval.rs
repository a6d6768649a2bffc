//! Evaluation on a labelled test split: cost–quality curves and the metrics of the datasets'
//! schema (RouterBench's AIQ, RouteLLM's APGR and CPT, and the figures around the best single
//! model).
//!
//! A [`Policy`] turns a test split into a *sweep*: one [`SweepPoint`] per setting of its
//! trade-off, each assigning a model to every test query. Routers sweep the cost weight over a
//! grid that runs from "best expected quality" to "cheapest" ([`crate::calibrate::grid`]); the
//! oracle has a single point. [`evaluate_sweep`] turns a sweep into a curve of (mean cost, mean
//! quality) points and its [`Metrics`]; the same function rebuilds a report from a
//! `decisions.jsonl` file ([`report_from_decisions`]), so every figure can be recomputed from the
//! dataset and the decisions alone.
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

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::calibrate;
use crate::data::Split;
use crate::error::{Error, Result};
use crate::router::Router;

pub mod cascade;

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
    fn is_query(&self) -> bool {
        *self == CostBasis::Query
    }
}

/// One setting of a policy's trade-off and the model it assigns to each test query.
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

/// Something that can be evaluated on a test split: a router, the oracle, a cascade.
pub trait Policy: Send + Sync + std::fmt::Debug {
    /// Name in reports.
    fn name(&self) -> &str;

    /// Whether the policy reads the test labels (the oracle): such a policy is a ceiling, not a
    /// router, and reports say so.
    fn reads_test_labels(&self) -> bool {
        false
    }

    /// The policy's sweep over `test`.
    ///
    /// # Errors
    ///
    /// Policy specific (a router's estimate errors, features that do not fit).
    fn sweep(&self, test: &Split) -> Result<Vec<SweepPoint>>;
}

/// A router evaluated by sweeping the cost weight.
pub struct RouterPolicy {
    name: String,
    router: Arc<dyn Router>,
    points: usize,
    cost_weights: Option<Vec<f64>>,
}

impl std::fmt::Debug for RouterPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterPolicy")
            .field("name", &self.name)
            .field("kind", &self.router.kind())
            .finish()
    }
}

impl RouterPolicy {
    /// Evaluates `router` under `name` with [`DEFAULT_SWEEP_POINTS`] cost weights.
    pub fn new(name: impl Into<String>, router: Arc<dyn Router>) -> Self {
        RouterPolicy {
            name: name.into(),
            router,
            points: DEFAULT_SWEEP_POINTS,
            cost_weights: None,
        }
    }

    /// Sets the number of cost weights of the sweep (at least 2).
    pub fn with_points(mut self, points: usize) -> Self {
        self.points = points.max(2);
        self
    }

    /// Evaluates at exactly these cost weights instead of a sweep: one point per weight, in the
    /// given order, all charging per-query costs ([`CostBasis::Query`]; on two-model datasets
    /// APGR and CPT then come from the cost curve's strong-call shares).
    pub fn with_cost_weights(mut self, cost_weights: Vec<f64>) -> Self {
        self.cost_weights = Some(cost_weights);
        self
    }

    /// The router.
    pub fn router(&self) -> &Arc<dyn Router> {
        &self.router
    }
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
    est: &crate::Estimates,
    map: &[u32],
    cost_basis: CostBasis,
    points: usize,
    mut choose: impl FnMut(&crate::Estimates, f64, &mut [u32]),
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
fn flat_costs(est: &crate::Estimates) -> crate::Estimates {
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

/// Both sweeps of estimates made by a utility-maximising router (see the module documentation).
fn sweeps_of(
    est: &crate::Estimates,
    map: &[u32],
    points: usize,
    mut choose: impl FnMut(&crate::Estimates, f64, &mut [u32]),
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
    est: &crate::Estimates,
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
    let sweep = sweeps_of(est, &map, points, |e, w, out| {
        for (r, o) in out.iter_mut().enumerate() {
            *o = crate::router::best_model(e.quality_row(r), e.cost_row(r), w, None) as u32;
        }
    });
    let reference = Reference::new(truth, truth, weak_strong)?;
    Ok(evaluate_sweep("validation", false, &sweep, truth, &reference)?.metrics)
}

impl Policy for RouterPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    /// # Errors
    ///
    /// [`Error::Config`] for an empty list of cost weights or a negative or non-finite one;
    /// [`Error::UnknownModel`] when the router has a model the split has no labels for; the
    /// router's estimate errors.
    fn sweep(&self, test: &Split) -> Result<Vec<SweepPoint>> {
        if let Some(weights) = &self.cost_weights {
            if weights.is_empty() {
                return Err(Error::Config("the list of cost weights is empty".into()));
            }
            for &w in weights {
                crate::Objective::new(w).resolve(self.router.models())?;
            }
        }
        let map = model_map(self.router.as_ref(), test)?;
        let batch = test.features()?;
        let est = self.router.estimate_batch(&batch)?;
        if let Some(weights) = &self.cost_weights {
            let mut choices = vec![0u32; test.len()];
            return Ok(weights
                .iter()
                .map(|&w| {
                    self.router.choose(&batch, &est, w, None, &mut choices);
                    SweepPoint {
                        cost_weight: w,
                        choices: choices.iter().map(|&c| map[c as usize]).collect(),
                        invoked: None,
                        cost_basis: CostBasis::Query,
                    }
                })
                .collect());
        }
        Ok(sweeps_of(&est, &map, self.points, |e, w, out| {
            self.router.choose(&batch, e, w, None, out)
        }))
    }
}

/// The oracle: per test query, the cheapest of the models with the best score. It reads the
/// test labels, so it is a ceiling, not a router.
#[derive(Debug, Clone, Copy, Default)]
pub struct Oracle;

impl Policy for Oracle {
    fn name(&self) -> &str {
        "oracle"
    }

    fn reads_test_labels(&self) -> bool {
        true
    }

    fn sweep(&self, test: &Split) -> Result<Vec<SweepPoint>> {
        let m = test.pool().len();
        let choices = (0..test.len())
            .map(|r| {
                crate::router::best_model(
                    &test.scores()[r * m..(r + 1) * m],
                    &test.costs()[r * m..(r + 1) * m],
                    0.0,
                    None,
                ) as u32
            })
            .collect();
        Ok(vec![SweepPoint {
            cost_weight: 0.0,
            choices,
            invoked: None,
            cost_basis: CostBasis::Query,
        }])
    }
}

/// Options for [`policy_by_name`].
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyOptions {
    /// Seed of every random choice (random routing, training shuffles, simulated judges).
    pub seed: u64,
    /// Number of cost weights in a router's sweep.
    pub sweep_points: usize,
    /// Error rate of the simulated judge that gives cascades their confidences (see
    /// [`cascade`]).
    pub judge_noise: f64,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            seed: 0,
            sweep_points: DEFAULT_SWEEP_POINTS,
            judge_noise: cascade::DEFAULT_JUDGE_NOISE,
        }
    }
}

/// The names [`policy_by_name`] knows.
pub const POLICY_NAMES: &[&str] = &[
    "random",
    "cheapest",
    "best-single",
    "fixed:<model id>",
    "zero",
    "oracle",
    "knn",
    #[cfg(feature = "train")]
    "mf",
    "linucb",
    "thompson",
    "knn-ucb",
    "cluster-ucb",
    "cascade",
    "cascade-chain",
    "file:<saved router>",
];

/// Every policy `all` stands for in a list of names: each kind with its default settings (the
/// `fixed:<model id>` family is left out).
pub const ALL_POLICIES: &[&str] = &[
    "random",
    "cheapest",
    "best-single",
    "zero",
    "oracle",
    "knn",
    #[cfg(feature = "train")]
    "mf",
    "linucb",
    "thompson",
    "knn-ucb",
    "cluster-ucb",
    "cascade",
    "cascade-chain",
];

/// Splits a comma-separated list of policy names, trimming blanks and expanding `all` to
/// [`ALL_POLICIES`]; repeated names are kept once.
pub fn expand_policy_names(list: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let names: Vec<&str> = if name == "all" {
            ALL_POLICIES.to_vec()
        } else {
            vec![name]
        };
        for n in names {
            if !out.iter().any(|o| o == n) {
                out.push(n.to_string());
            }
        }
    }
    out
}

/// Checks that `name` is one of [`POLICY_NAMES`] (and, for `fixed:<id>`, that the model is in
/// `pool`) without fitting anything.
///
/// # Errors
///
/// As [`policy_by_name`].
pub fn check_policy_name(name: &str, pool: &crate::ModelPool) -> Result<()> {
    use crate::routers::baseline::Baseline;
    if let Some(path) = name.strip_prefix("file:") {
        return std::fs::metadata(path)
            .map(|_| ())
            .map_err(|e| Error::io(path, e));
    }
    match Baseline::from_name(name, 0) {
        Some(Baseline::Fixed { model }) => pool.index_of(&model).map(|_| ()),
        Some(_) => Ok(()),
        None if ["oracle", "knn", "mf", "cascade", "cascade-chain"].contains(&name) => Ok(()),
        None if crate::replay::check_learner_name(name).is_ok() => Ok(()),
        None => Err(unknown_policy(name)),
    }
}

fn unknown_policy(name: &str) -> Error {
    Error::InvalidInput(format!(
        "unknown router {name:?} (known: {})",
        POLICY_NAMES.join(", ")
    ))
}

/// Builds the policy called `name` (one of [`POLICY_NAMES`]), fitting it on `train`.
///
/// # Errors
///
/// [`Error::InvalidInput`] for an unknown name (the message lists the known ones);
/// [`Error::UnknownModel`] for `fixed:<id>` with an id not in the pool; fitting errors.
pub fn policy_by_name(
    name: &str,
    train: &Split,
    options: &PolicyOptions,
) -> Result<Box<dyn Policy>> {
    use crate::routers::baseline::{Baseline, BaselineRouter};
    if name == "oracle" {
        return Ok(Box::new(Oracle));
    }
    if let Some(path) = name.strip_prefix("file:") {
        let router = crate::io::load_router(path)?;
        if router.as_cascade().is_some() {
            let judge = cascade::SimulatedJudge::new(options.judge_noise, options.seed)?;
            return Ok(Box::new(cascade::CascadePolicy::new(
                name,
                router,
                judge,
                options.sweep_points,
            )?));
        }
        return Ok(Box::new(
            RouterPolicy::new(name, router).with_points(options.sweep_points),
        ));
    }
    if name == "cascade" {
        return Ok(Box::new(cascade::cascade_policy(name, train, options)?));
    }
    if name == "cascade-chain" {
        return Ok(Box::new(cascade::chain_policy(name, train, options)?));
    }
    if name == "knn" {
        use crate::routers::knn::{KnnRouter, KnnSearch};
        let search = KnnSearch {
            seed: options.seed,
            ..Default::default()
        };
        let (router, report) = KnnRouter::tune(train, &Default::default(), &search)?;
        tracing::info!(
            "knn: {} configurations by {} in {:.1} s; chosen {:?}",
            report.trials.len(),
            report.criterion,
            report.seconds,
            report.best()
        );
        return Ok(Box::new(
            RouterPolicy::new(name, Arc::new(router)).with_points(options.sweep_points),
        ));
    }
    #[cfg(feature = "train")]
    if name == "mf" {
        use crate::routers::mf::{MfConfig, MfRouter, MfSearch};
        let base = MfConfig {
            seed: options.seed,
            ..Default::default()
        };
        let search = MfSearch {
            seed: options.seed,
            ..Default::default()
        };
        let (router, report) = MfRouter::tune(train, &base, &search)?;
        tracing::info!(
            "mf: {} configurations by {} in {:.1} s; chosen dim {} learning rate {}",
            report.trials.len(),
            report.criterion,
            report.seconds,
            report.trials[0].config.dim,
            report.trials[0].config.learning_rate
        );
        return Ok(Box::new(
            RouterPolicy::new(name, Arc::new(router)).with_points(options.sweep_points),
        ));
    }
    if crate::replay::check_learner_name(name).is_ok() {
        return crate::replay::learned_policy(name, train, options);
    }
    if let Some(rule) = Baseline::from_name(name, options.seed) {
        let router = BaselineRouter::fit(rule, train)?;
        return Ok(Box::new(
            RouterPolicy::new(name, Arc::new(router)).with_points(options.sweep_points),
        ));
    }
    Err(unknown_policy(name))
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

/// The metrics of one policy. See the [module documentation](self) for definitions.
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
    /// [`Error::InvalidInput`] for an empty split, or splits over different pools.
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
        let (q, c, tq) = (test.mean_scores(), test.mean_costs(), train.mean_scores());
        let models: Vec<ModelFigures> = (0..q.len())
            .map(|m| ModelFigures {
                model: test.pool().id(m).to_string(),
                mean_quality: q[m],
                mean_cost: c[m],
                train_mean_quality: tq[m],
            })
            .collect();
        let best_single = crate::router::best_model(&tq, &train.mean_costs(), 0.0, None);
        let oracle = &Oracle.sweep(test)?[0];
        let oracle_point = curve_point(test, oracle, None)?;
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

/// One policy's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// The policy's name.
    pub name: String,
    /// Whether it reads test labels (a ceiling, not a router).
    pub reads_test_labels: bool,
    /// The cost curve (per-query costs).
    pub curve: Vec<CurvePoint>,
    /// Two-model datasets: the strong-call share curve (flat per-call costs), when the policy
    /// swept one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub call_curve: Vec<CurvePoint>,
    /// The metrics.
    pub metrics: Metrics,
}

/// A whole evaluation: the reference figures and every policy's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The dataset's name.
    pub dataset: String,
    /// Number of test queries.
    pub n_test: usize,
    /// Reference figures.
    pub reference: Reference,
    /// One report per policy, in the order evaluated.
    pub policies: Vec<PolicyReport>,
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
) -> Result<PolicyReport> {
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
    Ok(PolicyReport {
        name: name.to_string(),
        reads_test_labels,
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

/// One line of `decisions.jsonl`: which model a router chose for one test query at one point of
/// its sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionLine {
    /// The policy's name.
    pub router: String,
    /// The sweep point's cost weight.
    pub cost_weight: f64,
    /// The query's id.
    pub id: String,
    /// The model whose answer was used.
    pub model: String,
    /// Every model invoked, in order (cascades only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked: Option<Vec<String>>,
    /// What the cost weight charges for; absent for per-query costs.
    #[serde(default, skip_serializing_if = "CostBasis::is_query")]
    pub cost_basis: CostBasis,
}

/// The decision lines of a sweep.
pub fn decision_lines<'a>(
    name: &'a str,
    sweep: &'a [SweepPoint],
    test: &'a Split,
) -> impl Iterator<Item = DecisionLine> + 'a {
    sweep.iter().flat_map(move |p| {
        (0..test.len()).map(move |r| DecisionLine {
            router: name.to_string(),
            cost_weight: p.cost_weight,
            id: test.ids()[r].clone(),
            model: test.pool().id(p.choices[r] as usize).to_string(),
            invoked: p.invoked.as_ref().map(|inv| {
                inv[r]
                    .iter()
                    .map(|&m| test.pool().id(m as usize).to_string())
                    .collect()
            }),
            cost_basis: p.cost_basis,
        })
    })
}

/// Rebuilds every policy's report from decision lines and the dataset alone.
///
/// Lines are grouped by router (in order of first appearance), then by cost basis and cost
/// weight (in order of appearance); every group must assign every test query exactly once. Policies named `oracle`
/// are marked as reading test labels.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming the router and cost weight of a group that misses or repeats a
/// query or names an unknown query id; [`Error::UnknownModel`] for an unknown model.
pub fn report_from_decisions(
    dataset: &str,
    train: &Split,
    test: &Split,
    weak_strong: Option<(usize, usize)>,
    lines: impl IntoIterator<Item = DecisionLine>,
) -> Result<Report> {
    let reference = Reference::new(train, test, weak_strong)?;
    let row_of: HashMap<&str, usize> = test
        .ids()
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let model = |id: &str| -> Result<u32> { Ok(test.pool().index_of(id)? as u32) };
    struct Pending {
        key: (CostBasis, u64),
        point: SweepPoint,
        seen: Vec<bool>,
    }
    // Routers in order of appearance, each with its points in order of appearance.
    let mut routers: Vec<(String, Vec<Pending>)> = Vec::new();
    for line in lines {
        let r = *row_of.get(line.id.as_str()).ok_or_else(|| {
            Error::InvalidInput(format!(
                "{} at cost weight {}: unknown query id {:?}",
                line.router, line.cost_weight, line.id
            ))
        })?;
        let pos = match routers.iter().position(|(n, _)| *n == line.router) {
            Some(p) => p,
            None => {
                routers.push((line.router.clone(), Vec::new()));
                routers.len() - 1
            }
        };
        let points = &mut routers[pos].1;
        let key = (line.cost_basis, line.cost_weight.to_bits());
        let idx = match points.iter().position(|p| p.key == key) {
            Some(i) => i,
            None => {
                points.push(Pending {
                    key,
                    point: SweepPoint {
                        cost_weight: line.cost_weight,
                        choices: vec![0; test.len()],
                        invoked: None,
                        cost_basis: line.cost_basis,
                    },
                    seen: vec![false; test.len()],
                });
                points.len() - 1
            }
        };
        let Pending { point, seen, .. } = &mut points[idx];
        if std::mem::replace(&mut seen[r], true) {
            return Err(Error::InvalidInput(format!(
                "{} at cost weight {}: query {:?} appears twice",
                line.router, line.cost_weight, line.id
            )));
        }
        point.choices[r] = model(&line.model)?;
        if let Some(inv) = &line.invoked {
            let inv: Vec<u32> = inv.iter().map(|m| model(m)).collect::<Result<_>>()?;
            point
                .invoked
                .get_or_insert_with(|| vec![Vec::new(); test.len()])[r] = inv;
        }
    }
    let mut policies = Vec::new();
    for (name, points) in routers {
        let mut sweep = Vec::new();
        for Pending {
            point: mut p, seen, ..
        } in points
        {
            if let Some(missing) = seen.iter().position(|s| !s) {
                return Err(Error::InvalidInput(format!(
                    "{name} at cost weight {}: no decision for query {:?}",
                    p.cost_weight,
                    test.ids()[missing]
                )));
            }
            if let Some(inv) = &mut p.invoked {
                for (r, v) in inv.iter_mut().enumerate() {
                    if v.is_empty() {
                        v.push(p.choices[r]);
                    }
                }
            }
            sweep.push(p);
        }
        let labels = name == "oracle";
        policies.push(evaluate_sweep(&name, labels, &sweep, test, &reference)?);
    }
    Ok(Report {
        dataset: dataset.to_string(),
        n_test: test.len(),
        reference,
        policies,
    })
}

#[cfg(test)]
mod tests {
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

    fn tiny() -> (Split, Split) {
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

    #[test]
    fn router_policy_at_given_cost_weights() {
        use crate::routers::baseline::{Baseline, BaselineRouter};
        let (train, test) = tiny();
        let router: Arc<dyn Router> =
            Arc::new(BaselineRouter::fit(Baseline::Zero, &train).unwrap());
        // Training means: weak quality 0.5 at cost 1, strong 1.0 at cost 10. At w = 0 the strong
        // model wins; at w = 1 (0.5 - 1 > 1 - 10) and beyond, the weak one. Repeated assignments
        // are kept: one point per weight asked for.
        let policy =
            RouterPolicy::new("zero", router.clone()).with_cost_weights(vec![0.0, 1.0, 1e9]);
        let sweep = policy.sweep(&test).unwrap();
        assert_eq!(sweep.len(), 3);
        assert_eq!(sweep[0].choices, vec![1; 4]);
        assert_eq!(sweep[1].choices, vec![0; 4]);
        assert_eq!(sweep[2].choices, vec![0; 4]);
        assert!(sweep.iter().all(|p| p.cost_basis == CostBasis::Query));
        assert_eq!(sweep[2].cost_weight, 1e9);
        // The default sweep drops repeated assignments and adds the call-basis points.
        let full = RouterPolicy::new("zero", router.clone())
            .sweep(&test)
            .unwrap();
        assert!(full.iter().any(|p| p.cost_basis == CostBasis::Call));
        for bad in [vec![], vec![0.0, -1.0], vec![f64::NAN]] {
            let e = RouterPolicy::new("zero", router.clone())
                .with_cost_weights(bad)
                .sweep(&test)
                .unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Config, "{e}");
        }
    }

    #[test]
    fn policies_by_name() {
        let (train, test) = tiny();
        let opts = PolicyOptions::default();
        for name in [
            "random",
            "cheapest",
            "best-single",
            "fixed:weak",
            "zero",
            "oracle",
        ] {
            let p = policy_by_name(name, &train, &opts).unwrap();
            assert_eq!(p.name(), name);
            assert_eq!(p.reads_test_labels(), name == "oracle");
            assert!(!p.sweep(&test).unwrap().is_empty());
        }
        let e = policy_by_name("knnn", &train, &opts).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid input: unknown router \"knnn\" (known: random,"),
            "{e}"
        );
        assert!(policy_by_name("fixed:nope", &train, &opts).is_err());
        assert_eq!(
            expand_policy_names(" zero, all ,oracle,,fixed:a")[..5],
            ["zero", "random", "cheapest", "best-single", "oracle"]
        );
        assert_eq!(
            expand_policy_names("all,fixed:a")
                .last()
                .map(String::as_str),
            Some("fixed:a")
        );
    }

    #[test]
    fn decisions_round_trip() {
        let (train, test) = tiny();
        let r = Reference::new(&train, &test, Some((0, 1))).unwrap();
        let sweep = vec![
            SweepPoint {
                cost_weight: 0.0,
                choices: vec![1, 1, 1, 1],
                invoked: None,
                cost_basis: CostBasis::Query,
            },
            SweepPoint {
                cost_weight: 0.1,
                choices: vec![0, 1, 0, 0],
                invoked: None,
                cost_basis: CostBasis::Query,
            },
        ];
        let rep = evaluate_sweep("x", false, &sweep, &test, &r).unwrap();
        let lines: Vec<DecisionLine> = decision_lines("x", &sweep, &test).collect();
        assert_eq!(lines.len(), 8);
        let again = report_from_decisions("t", &train, &test, Some((0, 1)), lines.clone()).unwrap();
        assert_eq!(again.policies[0], rep);
        let mut dup = lines.clone();
        dup.push(lines[0].clone());
        let e = report_from_decisions("t", &train, &test, None, dup).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
        let e = report_from_decisions("t", &train, &test, None, lines[..7].to_vec()).unwrap_err();
        assert!(e.to_string().contains("no decision for query \"3\""), "{e}");
    }
}
