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
//!
//! [`Learner`]: crate::Learner
//! [`Learner::observe`]: crate::Learner::observe

mod lines;
mod report;
mod run;
mod stream;

pub use lines::{lines, runs_from_lines, ReplayLine};
pub use report::{Alarm, ModelReplay, ReplayBin, ReplayReference, ReplayReport, RouterReplay};
pub use run::{
    check_learner_name, learn, learner_by_name, run, run_named, run_named_reporting, run_reporting,
    CostWeights, Run,
};
pub use stream::{Drift, Stream};

#[cfg(test)]
mod tests;
