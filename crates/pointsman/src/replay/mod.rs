//! Replay evaluation of learning routers under bandit feedback.
//!
//! A [`Stream`] holds a dataset's queries in a seeded random order, each with every model's
//! score and cost. [`run`] streams it through a [`Learner`]: at each step the router chooses a
//! model, and only that model's score and cost are revealed to it ([`Learner::observe`]).
//! [`ReplayReport::new`] scores the choices: cumulative mean utility, regret against the best
//! fixed model in hindsight and against the oracle, the share of each model over time.
//! Utility is `score − cost_weight × cost`, with the stream's (drifted) scores and its costs.
//!
//! A [`Drift`] simulates a regression or an outage: from a given step on, one model scores 0 (in
//! what the router observes and in the reference figures alike).
//!
//! [`learn`] is the same loop over a labelled split, for the offline evaluation of a learner
//! (`pointsman eval --routers linucb`): the router learns from partial feedback on the train
//! split, then is evaluated greedily on the test split.
//!
//! Every figure of a report is a function of the stream and the choices, so
//! [`runs_from_lines`] rebuilds the runs from `replay.jsonl` and the dataset alone.
//!
//! # Example
//!
//! ```no_run
//! use pointsman::data::Dataset;
//! use pointsman::replay::{self, CostWeights, Stream};
//! let ds = Dataset::load("../shared/data/llmrouter_dc")?;
//! let stream = Stream::from_dataset(&ds, 0)?;
//! let learner = replay::learner_by_name("cluster-ucb", ds.pool(), stream.dim(), None, 0)?;
//! let run = replay::run(learner.router(), &stream, &CostWeights::Fixed(0.0))?;
//! let report = replay::ReplayReport::new(ds.name(), &stream, 0.0, &[("cluster-ucb".into(), run)], 500)?;
//! println!("{:.4}", report.routers[0].mean_utility_second_half);
//! # Ok::<(), pointsman::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::features::QueryFeatures;
use crate::kind::RouterKind;
use crate::pool::ModelPool;
use crate::registry::{AnyLearner, AnyRouter, RouterSpec};
use crate::rng::SplitMix64;
use crate::router::{Feedback, Objective, Router};

/// From a step on, one model scores 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// The model's id.
    pub model: String,
    /// The first step at which it scores 0.
    pub step: usize,
}

impl std::str::FromStr for Drift {
    type Err = Error;

    /// Parses `<model id>@<step>`.
    fn from_str(s: &str) -> Result<Drift> {
        let (model, step) = s
            .rsplit_once('@')
            .ok_or_else(|| Error::InvalidInput(format!("drift {s:?} is not <model id>@<step>")))?;
        let step = step.trim().parse::<usize>().map_err(|_| {
            Error::InvalidInput(format!("drift {s:?}: step {step:?} is not a number"))
        })?;
        if model.trim().is_empty() {
            return Err(Error::InvalidInput(format!("drift {s:?} names no model")));
        }
        Ok(Drift {
            model: model.trim().to_string(),
            step,
        })
    }
}

/// Queries in replay order with every model's score and cost.
#[derive(Debug, Clone)]
pub struct Stream {
    pool: ModelPool,
    dim: usize,
    embedding_model: Option<String>,
    ids: Vec<String>,
    embeddings: Vec<f32>,
    prompt_tokens: Vec<f64>,
    scores: Vec<f64>,
    costs: Vec<f64>,
    drift: Option<Drift>,
}

impl Stream {
    /// Every query of the dataset (train and test) in the order of a shuffle seeded by `seed`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a dataset without embeddings or without queries.
    pub fn from_dataset(ds: &Dataset, seed: u64) -> Result<Stream> {
        Stream::from_splits(&[ds.train(), ds.test()], seed)
    }

    /// The queries of `split` in the order of a shuffle seeded by `seed`.
    ///
    /// # Errors
    ///
    /// As [`Stream::from_dataset`].
    pub fn from_split(split: &Split, seed: u64) -> Result<Stream> {
        Stream::from_splits(&[split], seed)
    }

    fn from_splits(splits: &[&Split], seed: u64) -> Result<Stream> {
        let first = splits[0];
        let (dim, m) = (first.dim(), first.pool().len());
        let mut rows: Vec<(usize, usize)> = Vec::new();
        for (s, split) in splits.iter().enumerate() {
            if !split.is_empty() {
                split.features()?;
                if split.dim() != dim || split.pool().ids().ne(first.pool().ids()) {
                    return Err(Error::InvalidInput(
                        "splits of a stream must share models and embeddings".into(),
                    ));
                }
            }
            rows.extend((0..split.len()).map(|r| (s, r)));
        }
        if rows.is_empty() {
            return Err(Error::InvalidInput(
                "a replay needs at least one query".into(),
            ));
        }
        SplitMix64::new(seed).shuffle(&mut rows);
        let n = rows.len();
        let mut stream = Stream {
            pool: first.pool().clone(),
            dim,
            embedding_model: first.embedding_model().map(str::to_string),
            ids: Vec::with_capacity(n),
            embeddings: Vec::with_capacity(n * dim),
            prompt_tokens: Vec::with_capacity(n),
            scores: Vec::with_capacity(n * m),
            costs: Vec::with_capacity(n * m),
            drift: None,
        };
        for (s, r) in rows {
            let split = splits[s];
            stream.ids.push(split.ids()[r].clone());
            stream
                .embeddings
                .extend_from_slice(&split.embeddings()[r * dim..(r + 1) * dim]);
            stream.prompt_tokens.push(split.prompt_tokens()[r]);
            stream
                .scores
                .extend_from_slice(&split.scores()[r * m..(r + 1) * m]);
            stream
                .costs
                .extend_from_slice(&split.costs()[r * m..(r + 1) * m]);
        }
        Ok(stream)
    }

    /// The stream with `drift` applied: the model scores 0 from the drift's step on.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] for a model not in the pool; [`Error::InvalidInput`] for a step
    /// beyond the stream or a second drift.
    pub fn with_drift(mut self, drift: Drift) -> Result<Stream> {
        let m = self.pool.index_of(&drift.model)?;
        if drift.step >= self.len() {
            return Err(Error::InvalidInput(format!(
                "drift step {} is beyond the stream's {} steps",
                drift.step,
                self.len()
            )));
        }
        if self.drift.is_some() {
            return Err(Error::InvalidInput("a stream takes one drift".into()));
        }
        let k = self.pool.len();
        for t in drift.step..self.len() {
            self.scores[t * k + m] = 0.0;
        }
        self.drift = Some(drift);
        Ok(self)
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the stream is empty (never: constructors refuse it).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The models.
    pub fn pool(&self) -> &ModelPool {
        &self.pool
    }

    /// The embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The embedding model, when known.
    pub fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }

    /// Query ids in stream order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The drift applied, if any.
    pub fn drift(&self) -> Option<&Drift> {
        self.drift.as_ref()
    }

    /// Model `m`'s (drifted) score at step `t`.
    pub fn score(&self, t: usize, m: usize) -> f64 {
        self.scores[t * self.pool.len() + m]
    }

    /// Model `m`'s cost at step `t`.
    pub fn cost(&self, t: usize, m: usize) -> f64 {
        self.costs[t * self.pool.len() + m]
    }

    /// The features of step `t`'s query.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidFeatures`] for an embedding that cannot be routed.
    pub fn features(&self, t: usize) -> Result<QueryFeatures> {
        let mut q = QueryFeatures::new(self.embeddings[t * self.dim..(t + 1) * self.dim].to_vec())?
            .with_prompt_tokens(self.prompt_tokens[t])?;
        if let Some(e) = &self.embedding_model {
            q = q.with_embedding_model(e.clone());
        }
        Ok(q)
    }
}

/// The cost weight of each step of a replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CostWeights {
    /// The same cost weight at every step.
    Fixed(f64),
    /// A fresh cost weight per step, seeded: 0 with probability 1/4, otherwise log-uniform in
    /// [10, 10⁴]. Learning under every trade-off at once spreads exploration over cheap and
    /// costly models, which a router that serves every cost weight afterwards needs.
    Mixed {
        /// Seed of the draws.
        seed: u64,
    },
}

/// What one learner did over a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The chosen model per step (index in the stream's pool).
    pub choices: Vec<u32>,
    /// Drift-detector alarms: (step, model index in the stream's pool).
    pub alarms: Vec<(usize, usize)>,
    /// Wall-clock seconds of the replay.
    pub seconds: f64,
}

/// For each of `router`'s models, its index in `pool`.
fn map_models(router: &dyn Router, pool: &ModelPool) -> Result<Vec<usize>> {
    router
        .models()
        .ids()
        .map(|id| {
            pool.index_of(id).map_err(|_| {
                Error::UnknownModel(format!("{id} (the router's model is not in the data)"))
            })
        })
        .collect()
}

fn learner_of(router: &dyn Router) -> Result<&dyn crate::router::Learner> {
    router.as_learner().ok_or_else(|| {
        Error::Unsupported(format!(
            "replaying a {} router: it does not learn from feedback",
            router.kind()
        ))
    })
}

/// Streams `stream` through `router` (which must be a [`crate::Learner`]): route each query at
/// that step's cost weight, reveal only the chosen model's score and cost.
///
/// # Errors
///
/// [`Error::Unsupported`] for a router that does not learn; [`Error::UnknownModel`] when its
/// models are not in the stream's pool; routing and feedback errors.
pub fn run(router: &dyn Router, stream: &Stream, weights: &CostWeights) -> Result<Run> {
    let learner = learner_of(router)?;
    let map = map_models(router, &stream.pool)?;
    let started = std::time::Instant::now();
    let mut draws = match weights {
        CostWeights::Mixed { seed } => Some(SplitMix64::new(*seed ^ 0xC057_5EED)),
        CostWeights::Fixed(_) => None,
    };
    let mut choices = Vec::with_capacity(stream.len());
    let mut alarms = Vec::new();
    let mut fired = learner.alarms();
    for t in 0..stream.len() {
        let w = match (&mut draws, weights) {
            (Some(rng), _) => {
                if rng.next_f64() < 0.25 {
                    0.0
                } else {
                    10f64.powf(1.0 + 3.0 * rng.next_f64())
                }
            }
            (None, CostWeights::Fixed(w)) => *w,
            (None, CostWeights::Mixed { .. }) => 0.0,
        };
        let q = stream.features(t)?;
        let decision = router.route(&q, &Objective::new(w))?;
        let m = map[decision.model];
        learner.observe(&Feedback {
            features: &q,
            model: decision.model,
            quality: stream.score(t, m),
            cost: stream.cost(t, m),
        })?;
        choices.push(m as u32);
        let now = learner.alarms();
        if now != fired {
            for (j, (a, b)) in now
                .iter()
                .zip(fired.iter().chain(std::iter::repeat(&0)))
                .enumerate()
            {
                for _ in *b..*a {
                    alarms.push((t, map[j]));
                }
            }
            fired = now;
        }
    }
    Ok(Run {
        choices,
        alarms,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Lets `router` learn from the labelled `split` with partial feedback only: a replay of the
/// split in the order seeded by `seed`, at the cost weights `weights`.
///
/// # Errors
///
/// As [`run`].
pub fn learn(router: &dyn Router, split: &Split, seed: u64, weights: &CostWeights) -> Result<Run> {
    run(router, &Stream::from_split(split, seed)?, weights)
}

/// Checks that `name` names a learner kind (`linucb`, `thompson`, `knn-ucb`, `cluster-ucb`) or
/// an existing saved router (`file:<path>`), without building anything.
///
/// # Errors
///
/// [`Error::InvalidInput`] listing the learners; [`Error::Io`] for a missing file.
pub fn check_learner_name(name: &str) -> Result<()> {
    match RouterSpec::parse(name) {
        Ok(RouterSpec::Kind(k)) if k.is_learner() => Ok(()),
        Ok(RouterSpec::File(path)) => std::fs::metadata(&path)
            .map(|_| ())
            .map_err(|e| Error::io(path, e)),
        _ => Err(Error::InvalidInput(format!(
            "unknown learner {name:?} (known: {}, {}<saved learner>)",
            RouterKind::ALL
                .iter()
                .filter(|k| k.is_learner())
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", "),
            RouterSpec::FILE_PREFIX
        ))),
    }
}

/// The learner called `name`: a cold learner of that kind with its default configuration for
/// the models of `pool` and `dim`-dimensional embeddings (`seed` seeds its draws), or, for
/// `file:<path>`, a saved learner with the state it saved. The handle explores; its
/// [`AnyLearner::greedy`] twin shares its state.
///
/// # Errors
///
/// As [`check_learner_name`]; loading errors; [`Error::Unsupported`] for a saved router that
/// does not learn; [`Error::Config`] from the constructors.
pub fn learner_by_name(
    name: &str,
    pool: &ModelPool,
    dim: usize,
    embedding_model: Option<&str>,
    seed: u64,
) -> Result<AnyLearner> {
    check_learner_name(name)?;
    match RouterSpec::parse(name)? {
        RouterSpec::File(path) => {
            let router = AnyRouter::load(&path)?;
            router.as_learner().cloned().ok_or_else(|| {
                Error::Unsupported(format!(
                    "{}: a saved {} router does not learn from feedback",
                    path.display(),
                    router.kind()
                ))
            })
        }
        spec => Ok(AnyLearner::cold(
            spec.kind().expect("a kind, checked above"),
            pool,
            dim,
            embedding_model,
            seed,
        )?
        .exploring()),
    }
}

/// Replays `stream` through a cold learner per name (see [`learner_by_name`]; `seed` seeds their
/// draws), in parallel, at the cost weights `weights`. Results follow the order of `names`.
///
/// # Errors
///
/// The first error of [`learner_by_name`] or [`run`].
pub fn run_named(
    names: &[String],
    stream: &Stream,
    seed: u64,
    weights: &CostWeights,
) -> Result<Vec<(String, Run)>> {
    use rayon::prelude::*;
    for name in names {
        check_learner_name(name)?;
    }
    names
        .par_iter()
        .map(|name| {
            let l = learner_by_name(
                name,
                &stream.pool,
                stream.dim,
                stream.embedding_model.as_deref(),
                seed,
            )?;
            Ok((name.clone(), run(l.router(), stream, weights)?))
        })
        .collect()
}

/// One line of `replay.jsonl`: the model a router chose at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayLine {
    /// The router's name.
    pub router: String,
    /// The step (0-based).
    pub t: usize,
    /// The query's id.
    pub id: String,
    /// The chosen model's id.
    pub model: String,
}

impl ReplayLine {
    /// The line as written to `replay.jsonl`, with the field order and spacing the format
    /// specifies: `{"router": "<name>", "t": <step>, "id": "<query id>", "model": "<model id>"}`.
    pub fn to_json(&self) -> String {
        let quote = |s: &str| serde_json::Value::from(s).to_string();
        format!(
            "{{\"router\": {}, \"t\": {}, \"id\": {}, \"model\": {}}}",
            quote(&self.router),
            self.t,
            quote(&self.id),
            quote(&self.model)
        )
    }
}

/// The lines of a run.
pub fn lines<'a>(
    name: &'a str,
    run: &'a Run,
    stream: &'a Stream,
) -> impl Iterator<Item = ReplayLine> + 'a {
    run.choices
        .iter()
        .enumerate()
        .map(move |(t, &m)| ReplayLine {
            router: name.to_string(),
            t,
            id: stream.ids[t].clone(),
            model: stream.pool.id(m as usize).to_string(),
        })
}

/// Rebuilds runs (choices only) from replay lines and the stream they were made on, grouped by
/// router in order of first appearance.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming the router and step of a line whose query id differs from
/// the stream's at that step, a repeated or missing step; [`Error::UnknownModel`].
pub fn runs_from_lines(
    stream: &Stream,
    lines: impl IntoIterator<Item = ReplayLine>,
) -> Result<Vec<(String, Run)>> {
    let mut runs: Vec<(String, Vec<Option<u32>>)> = Vec::new();
    for line in lines {
        let pos = match runs.iter().position(|(n, _)| *n == line.router) {
            Some(p) => p,
            None => {
                runs.push((line.router.clone(), vec![None; stream.len()]));
                runs.len() - 1
            }
        };
        let slot = runs[pos].1.get_mut(line.t).ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: step {} is beyond the stream's {} steps",
                line.router,
                line.t,
                stream.len()
            ))
        })?;
        if stream.ids[line.t] != line.id {
            return Err(Error::InvalidInput(format!(
                "{} step {}: query {:?}, the stream has {:?} (another seed?)",
                line.router, line.t, line.id, stream.ids[line.t]
            )));
        }
        if slot
            .replace(stream.pool.index_of(&line.model)? as u32)
            .is_some()
        {
            return Err(Error::InvalidInput(format!(
                "{} step {} appears twice",
                line.router, line.t
            )));
        }
    }
    runs.into_iter()
        .map(|(name, choices)| {
            let choices = choices
                .into_iter()
                .enumerate()
                .map(|(t, c)| {
                    c.ok_or_else(|| Error::InvalidInput(format!("{name}: no choice at step {t}")))
                })
                .collect::<Result<Vec<u32>>>()?;
            Ok((
                name,
                Run {
                    choices,
                    alarms: Vec::new(),
                    seconds: 0.0,
                },
            ))
        })
        .collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::ModelCard;

    fn split() -> Split {
        let pool = ModelPool::new(vec![
            ModelCard::new("cheap", 0.1, 0.1),
            ModelCard::new("good", 1.0, 1.0),
        ])
        .unwrap();
        let mut rng = SplitMix64::new(3);
        let n = 400;
        let mut emb = Vec::new();
        let mut scores = Vec::new();
        let mut costs = Vec::new();
        for _ in 0..n {
            let a = rng.next_f64() as f32;
            emb.extend_from_slice(&[1.0, a, 1.0 - a]);
            scores.push(if rng.next_f64() < 0.4 { 1.0 } else { 0.0 });
            scores.push(if rng.next_f64() < 0.8 { 1.0 } else { 0.0 });
            costs.extend_from_slice(&[1e-5, 1e-4]);
        }
        Split::from_arrays(pool, emb, 3, scores, costs).unwrap()
    }

    #[test]
    fn drift_parses_and_applies() {
        let d: Drift = "llama-3.1-nemotron-51b-instruct@2000".parse().unwrap();
        assert_eq!(d.model, "llama-3.1-nemotron-51b-instruct");
        assert_eq!(d.step, 2000);
        assert!("nope".parse::<Drift>().is_err());
        assert!("m@x".parse::<Drift>().is_err());
        assert!("@3".parse::<Drift>().is_err());
        let s = Stream::from_split(&split(), 1).unwrap();
        let drifted = s
            .clone()
            .with_drift(Drift {
                model: "good".into(),
                step: 100,
            })
            .unwrap();
        assert!((100..400).all(|t| drifted.score(t, 1) == 0.0));
        assert!((0..100).all(|t| drifted.score(t, 1) == s.score(t, 1)));
        let e = s
            .clone()
            .with_drift(Drift {
                model: "other".into(),
                step: 1,
            })
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::UnknownModel);
        assert!(s
            .with_drift(Drift {
                model: "good".into(),
                step: 400
            })
            .is_err());
    }

    #[test]
    fn replay_reveals_only_the_chosen_model_and_reports() {
        let split = split();
        let stream = Stream::from_split(&split, 7).unwrap();
        // The order is a seeded permutation of the split.
        let mut ids = stream.ids().to_vec();
        ids.sort_by_key(|s| s.parse::<usize>().unwrap());
        assert_eq!(ids, split.ids());
        assert_ne!(stream.ids(), split.ids());
        let learner = learner_by_name("cluster-ucb", split.pool(), 3, None, 0).unwrap();
        let run1 = run(learner.router(), &stream, &CostWeights::Fixed(0.0)).unwrap();
        assert_eq!(run1.choices.len(), 400);
        let l = learner.learner();
        assert_eq!(l.observations(), 400);
        // Deterministic: a fresh learner makes the same choices.
        let again = learner_by_name("cluster-ucb", split.pool(), 3, None, 0).unwrap();
        let run2 = run(again.router(), &stream, &CostWeights::Fixed(0.0)).unwrap();
        assert_eq!(run1.choices, run2.choices);
        let fixed_good = Run {
            choices: vec![1; 400],
            alarms: Vec::new(),
            seconds: 0.0,
        };
        let runs = vec![
            ("cluster-ucb".to_string(), run1),
            ("good".to_string(), fixed_good),
        ];
        let rep = ReplayReport::new("t", &stream, 0.0, &runs, 100).unwrap();
        assert_eq!(rep.reference.best_fixed, "good");
        let good = &rep.routers[1];
        assert!((good.regret_best_fixed).abs() < 1e-12);
        assert!((good.mean_utility - rep.reference.models[1].mean_utility).abs() < 1e-12);
        assert_eq!(good.bins.len(), 4);
        assert_eq!(good.share(1, 0, 400), Some(1.0));
        assert!(rep.routers[0].share(1, 200, 400).unwrap() > 0.6);
        assert!(rep.reference.oracle_utility >= rep.reference.best_fixed_utility);
        // The report is a function of the lines and the stream.
        let lines: Vec<ReplayLine> = runs
            .iter()
            .flat_map(|(n, r)| lines(n, r, &stream).collect::<Vec<_>>())
            .collect();
        let rebuilt = runs_from_lines(&stream, lines.clone()).unwrap();
        let again = ReplayReport::new("t", &stream, 0.0, &rebuilt, 100).unwrap();
        for (a, b) in again.routers.iter().zip(&rep.routers) {
            assert_eq!(a.bins, b.bins);
            assert_eq!(a.mean_utility, b.mean_utility);
        }
        let other = Stream::from_split(&split, 8).unwrap();
        let e = runs_from_lines(&other, lines[..10].to_vec()).unwrap_err();
        assert!(e.to_string().contains("another seed"), "{e}");
        let e = runs_from_lines(&stream, lines[..399].to_vec()).unwrap_err();
        assert!(e.to_string().contains("no choice at step 399"), "{e}");
        assert!(ReplayReport::new("t", &stream, -1.0, &runs, 100).is_err());
    }

    #[test]
    fn learners_by_name_and_refusals() {
        let split = split();
        for name in ["linucb", "thompson", "knn-ucb", "cluster-ucb"] {
            let l = learner_by_name(name, split.pool(), 3, None, 1).unwrap();
            assert_eq!(l.router().kind(), name);
            learn(l.router(), &split, 2, &CostWeights::Mixed { seed: 2 }).unwrap();
            assert_eq!(l.greedy().observations(), 400);
        }
        let e = learner_by_name("bandit", split.pool(), 3, None, 0).unwrap_err();
        assert!(e.to_string().contains("unknown learner \"bandit\""), "{e}");
        let zero = crate::routers::baseline::BaselineRouter::fit(
            crate::routers::baseline::Baseline::Zero,
            &split,
        )
        .unwrap();
        let stream = Stream::from_split(&split, 0).unwrap();
        let e = run(&zero, &stream, &CostWeights::Fixed(0.0)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zero.safetensors");
        zero.save(&path).unwrap();
        let e = learner_by_name(
            &format!("file:{}", path.display()),
            split.pool(),
            3,
            None,
            0,
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
        // A saved learner resumes with its state.
        let l = learner_by_name("knn-ucb", split.pool(), 3, None, 0).unwrap();
        learn(l.router(), &split, 0, &CostWeights::Fixed(0.0)).unwrap();
        let path = dir.path().join("knn.safetensors");
        l.save(&path).unwrap();
        let back = learner_by_name(
            &format!("file:{}", path.display()),
            split.pool(),
            3,
            None,
            0,
        )
        .unwrap();
        assert_eq!(back.observations(), 400);
    }
}
