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

mod chains;
mod search;
mod simulate;
mod target;

pub use chains::{ChainCandidate, ChainReport, ChainSearch};
pub use search::CascadeSearch;
pub use simulate::confidence_error;
pub use target::{CalibrationTarget, CascadeCalibration};

#[cfg(test)]
mod tests;
