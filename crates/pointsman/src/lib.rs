#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

// The modules in layers, bottom-up (docs/architecture.md): a module uses only modules of the
// layers above it in this list, never one below. `tests/layers.rs` fails on an import cycle.
//
// 1. foundations: error, rng, simd
pub mod error;
pub mod rng;
pub mod simd;
// 2. the vocabulary: one query's features, the model pool, the kinds' names, files
pub mod features;
pub mod files;
pub mod kind;
pub mod pool;
// 3. data: datasets and splits, the saved-router container
pub mod data;
pub mod saved;
// 4. the traits every router implements, and what is computed from them alone
pub mod calibrate;
pub mod router;
// 5. metrics and the searches' shared parts
pub mod metrics;
pub mod tuning;
// 6. the routers
pub mod routers;
// 7. the registry of router kinds
pub mod registry;
// 8. what runs routers: evaluation, replay, the text pipeline
#[cfg(feature = "embed")]
pub mod embed;
pub mod eval;
pub mod replay;

pub use error::{Error, ErrorKind, Result};
pub use features::{FeatureBatch, QueryFeatures, DEFAULT_EMBEDDING_MODEL};
pub use pool::{ModelCard, ModelPool};
pub use registry::{load_router, AnyLearner, AnyRouter, RouterConfig, RouterKind};
pub use router::{
    Allowed, Alternative, Decision, Estimates, Feedback, Learner, Objective, Router, Signals,
};

/// The repository README's examples, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
