//! The registry of router kinds: for each kind its config type, how it is fitted on a split,
//! how it is loaded from a saved file, and typed access to the concrete router.
//!
//! Every surface that has to know *which* router it holds goes through this module: the
//! command line (`pointsman train --router <kind>`, `pointsman eval --routers`), evaluation,
//! replay, the Python classes and the C library. [`AnyRouter`] is the closed set of kinds, as
//! [`RouterConfig`] is the closed set of their configs; both are built from the names in
//! [`crate::kind`]. Adding a router kind means adding its module under [`crate::routers`] and
//! its variants here.
//!
//! | kind | family | fitted by [`AnyRouter::fit`] | [`AnyRouter::fit_config`] |
//! |---|---|---|---|
//! | `random`, `cheapest`, `best-single`, `zero` | baseline | training means | the same |
//! | `fixed` (`fixed:<model id>`) | baseline | needs a model: use `fit_config` | training means |
//! | `knn` | estimator | cross-validated search ([`KnnRouter::tune`]) | [`KnnRouter::fit`] |
//! | `mf` | estimator | cross-validated search ([`MfRouter::tune`], feature `train`) | [`MfRouter::fit`] |
//! | `irt` | estimator | cross-validated search ([`IrtRouter::tune`], feature `train`) | [`IrtRouter::fit`] |
//! | `stack` | estimator | `knn`, `mf` and `irt` by their searches, weights on their out-of-fold estimates ([`StackRouter::fit`]) | the listed members by their configs, the same way |
//! | `linucb`, `thompson`, `knn-ucb`, `cluster-ucb` | learner | warm start from the split ([`BanditRouter::warm_start`]) | the same, with the given config |
//! | `cascade` | cascade | leave-one-out search with a simulated judge ([`CascadeRouter::tune`]) | [`CascadeRouter::fit`] |
//!
//! # Example
//!
//! ```
//! use pointsman::data::Split;
//! use pointsman::registry::{AnyRouter, FitOptions, RouterKind};
//! use pointsman::{ModelCard, ModelPool, Objective, QueryFeatures};
//! let pool = ModelPool::new(vec![ModelCard::new("a", 0.1, 0.1), ModelCard::new("b", 1.0, 1.0)])?;
//! let train = Split::from_arrays(pool, vec![1.0, 0.0, 0.0, 1.0], 2, vec![0.2, 0.9, 0.4, 0.7], vec![1e-5, 1e-4, 1e-5, 1e-4])?;
//! let fitted = AnyRouter::fit(RouterKind::Linucb, &train, &FitOptions::default())?;
//! let router = fitted.router;
//! assert_eq!(router.kind(), RouterKind::Linucb);
//! assert!(router.as_learner().is_some() && router.as_cascade().is_none());
//! // An AnyRouter is a router: route through it directly.
//! let d = router.route(&QueryFeatures::new(vec![0.6, 0.8])?, &Objective::new(0.0))?;
//! # let _ = d;
//! let again = AnyRouter::from_bytes(&router.to_bytes()?)?;
//! assert_eq!(again.kind(), RouterKind::Linucb);
//! # Ok::<(), pointsman::Error>(())
//! ```
//!
//! [`KnnRouter::tune`]: crate::routers::knn::KnnRouter::tune
//! [`KnnRouter::fit`]: crate::routers::knn::KnnRouter::fit
//! [`MfRouter::tune`]: crate::routers::mf::MfRouter
//! [`MfRouter::fit`]: crate::routers::mf::MfRouter
//! [`IrtRouter::tune`]: crate::routers::irt::IrtRouter
//! [`IrtRouter::fit`]: crate::routers::irt::IrtRouter
//! [`StackRouter::fit`]: crate::routers::stack::StackRouter::fit
//! [`BanditRouter::warm_start`]: crate::routers::bandit::BanditRouter::warm_start
//! [`CascadeRouter::tune`]: crate::routers::cascade::CascadeRouter::tune
//! [`CascadeRouter::fit`]: crate::routers::cascade::CascadeRouter::fit
//!
//! [`AnyRouter::fit_auto`] is the automatic choice of `pointsman train --router auto`: it
//! cross-validates every pre-call kind and a stack of the estimators on the training split and
//! keeps the best ([`auto`](self::AutoOptions)).

pub mod auto;
mod config;
mod learner;
mod router;
mod spec;

pub use crate::kind::{Family, RouterKind};
pub use auto::{AutoCandidate, AutoOptions, AutoProgress, AutoReport, STACK_SHRINKAGE};
pub use config::RouterConfig;
pub use learner::AnyLearner;
pub use router::{load_router, AnyRouter, FitOptions, Fitted};
pub use spec::RouterSpec;

#[cfg(test)]
mod tests;
