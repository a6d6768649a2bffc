#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod calibrate;
pub mod data;
#[cfg(feature = "embed")]
pub mod embed;
pub mod error;
pub mod eval;
pub mod features;
pub mod io;
pub mod pool;
pub mod replay;
pub mod rng;
pub mod router;
pub mod routers;
pub mod simd;

pub use error::{Error, ErrorKind, Result};
pub use features::{FeatureBatch, QueryFeatures, DEFAULT_EMBEDDING_MODEL};
pub use io::load_router;
pub use pool::{ModelCard, ModelPool};
pub use router::{Alternative, Decision, Estimates, Feedback, Learner, Objective, Router, Signals};

/// The repository README's examples, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
