//! Evaluation on a labelled test split: every *entrant* — a router, a cascade, the oracle —
//! swept over its trade-off and scored by the metrics of [`crate::metrics`].
//!
//! An [`Entrant`] turns a test split into a *sweep*: one [`SweepPoint`] per setting of its
//! trade-off, each assigning a model to every test query. Routers sweep the cost weight over a
//! grid that runs from "best expected quality" to "cheapest" ([`crate::calibrate::grid`]); the
//! oracle has a single point. [`Evaluation`] is the one entry point the command line (`pointsman
//! eval`) and the Python package (`pointsman.evaluate`) share: it holds a dataset's reference
//! figures, builds entrants by name ([`entrant_by_name`]), evaluates them into a [`Report`], and
//! writes the decisions they made. [`report_from_decisions`] rebuilds a report from a
//! `decisions.jsonl` file and the dataset alone, so every figure can be recomputed.
//!
//! Metric definitions: [`crate::metrics`] and `docs/metrics.md`.
//!
//! The best single model is the one with the best mean score on the *training* split; the oracle
//! picks, per test query, the cheapest of the models with the best score (it reads test labels:
//! a ceiling, not a router).

pub mod cascade;
mod entrant;
mod evaluation;
pub mod policies;
mod report;

pub use crate::metrics::{
    CostBasis, CurvePoint, EntrantReport, Metrics, ModelFigures, Reference, SweepPoint,
    CHEAP_SHARE, DEFAULT_SWEEP_POINTS,
};
pub use entrant::{
    all_entrants, check_entrant_name, entrant_by_name, entrant_names, expand_entrant_names,
    needs_embeddings, Entrant, EntrantOptions, Oracle, RouterEntrant, CASCADE_CHAIN, ORACLE,
};
pub use evaluation::{Evaluated, Evaluation};
pub use report::{decision_lines, report_from_decisions, DecisionLine, Report};

#[cfg(test)]
mod tests;
