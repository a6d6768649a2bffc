//! Running learners over a stream: each step routes, then reveals only the chosen model's
//! outcome.

use super::Stream;
use crate::data::Split;
use crate::error::{Error, Result};
use crate::kind::RouterKind;
use crate::pool::ModelPool;
use crate::registry::{AnyLearner, AnyRouter, RouterSpec};
use crate::rng::SplitMix64;
use crate::router::{Feedback, Objective, Router};

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
    run_reporting(router, stream, weights, &|_| {})
}

/// How often a replay reports its progress, in steps.
const PROGRESS_EVERY: usize = 256;

/// [`run`], calling `progress(n)` after every `n` further steps (every few hundred, and at the
/// end), e.g. to advance a progress bar.
///
/// # Errors
///
/// As [`run`].
pub fn run_reporting(
    router: &dyn Router,
    stream: &Stream,
    weights: &CostWeights,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Run> {
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
        if (t + 1) % PROGRESS_EVERY == 0 {
            progress(PROGRESS_EVERY);
        }
    }
    progress(stream.len() % PROGRESS_EVERY);
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
    run_named_reporting(names, stream, seed, weights, &|_| {})
}

/// [`run_named`], calling `progress(n)` as each learner takes `n` further steps (so the calls
/// add up to `names.len() × stream.len()`), from the threads that run them.
///
/// # Errors
///
/// As [`run_named`].
pub fn run_named_reporting(
    names: &[String],
    stream: &Stream,
    seed: u64,
    weights: &CostWeights,
    progress: &(dyn Fn(usize) + Sync),
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
            Ok((
                name.clone(),
                run_reporting(l.router(), stream, weights, progress)?,
            ))
        })
        .collect()
}
