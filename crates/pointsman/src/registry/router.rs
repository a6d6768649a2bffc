//! [`AnyRouter`]: a router of any kind — fitting it, loading it, and typed access.

use std::path::Path;
use std::sync::Arc;

use super::{AnyLearner, RouterConfig, RouterKind};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::router::Router;
use crate::routers::bandit::{ClusterUcbRouter, KnnUcbRouter, LinTsRouter, LinUcbRouter};
use crate::routers::baseline::BaselineRouter;
use crate::routers::cascade::{CascadeConfig, CascadeRouter, CascadeSearch, SimulatedJudge};
use crate::routers::irt::{IrtConfig, IrtRouter};
use crate::routers::knn::{KnnConfig, KnnRouter, KnnSearch};
use crate::routers::mf::{MfConfig, MfRouter};
use crate::routers::stack::{StackConfig, StackRouter};
use crate::saved::SavedRouter;
use crate::tuning::SearchReport;

/// Settings of [`AnyRouter::fit`] that are not a kind's hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Seed of every random choice: the searches' folds, training shuffles, Thompson draws, the
    /// simulated judge.
    pub seed: u64,
    /// Error rate of the simulated judge whose confidences the cascade is tuned with (the
    /// datasets carry no confidences; see [`SimulatedJudge`]).
    pub judge_noise: f64,
    /// Cost weights per curve in the cascade's search.
    pub sweep_points: usize,
    /// Reports the progress of the kinds' searches (settings scored, or folds fitted, of all).
    pub progress: crate::tuning::Progress,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            seed: 0,
            judge_noise: crate::routers::cascade::DEFAULT_JUDGE_NOISE,
            sweep_points: crate::metrics::DEFAULT_SWEEP_POINTS,
            progress: crate::tuning::Progress::default(),
        }
    }
}

/// A fitted router and, for the kinds fitted by a search, what the search did (every setting as
/// a [`RouterConfig`], best first).
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The router.
    pub router: AnyRouter,
    /// The search, for `knn`, `mf`, `irt` and `cascade`.
    pub search: Option<SearchReport<RouterConfig>>,
}

/// A router of any kind: the concrete router behind a shared handle.
///
/// Cloning is cheap (a reference count, or for learners a second handle on the same learned
/// state). It dereferences to `dyn Router`, so every routing method is called on it directly;
/// [`AnyRouter::shared`] gives an `Arc<dyn Router>` for code that holds trait objects.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyRouter {
    /// A baseline.
    Baseline(Arc<BaselineRouter>),
    /// A kNN router.
    Knn(Arc<KnnRouter>),
    /// A matrix-factorisation router.
    Mf(Arc<MfRouter>),
    /// An item-response-theory router.
    Irt(Arc<IrtRouter>),
    /// A stack of routers.
    Stack(Arc<StackRouter>),
    /// A contextual bandit.
    Learner(AnyLearner),
    /// A cascade.
    Cascade(Arc<CascadeRouter>),
}

impl std::ops::Deref for AnyRouter {
    type Target = dyn Router;

    fn deref(&self) -> &(dyn Router + 'static) {
        self.router()
    }
}

impl AnyRouter {
    /// The router's kind.
    pub fn kind(&self) -> RouterKind {
        match self {
            AnyRouter::Baseline(r) => r.rule().kind(),
            AnyRouter::Knn(_) => RouterKind::Knn,
            AnyRouter::Mf(_) => RouterKind::Mf,
            AnyRouter::Irt(_) => RouterKind::Irt,
            AnyRouter::Stack(_) => RouterKind::Stack,
            AnyRouter::Learner(l) => l.kind(),
            AnyRouter::Cascade(_) => RouterKind::Cascade,
        }
    }

    /// The router through the [`Router`] trait.
    pub fn router(&self) -> &(dyn Router + 'static) {
        match self {
            AnyRouter::Baseline(r) => r.as_ref(),
            AnyRouter::Knn(r) => r.as_ref(),
            AnyRouter::Mf(r) => r.as_ref(),
            AnyRouter::Irt(r) => r.as_ref(),
            AnyRouter::Stack(r) => r.as_ref(),
            AnyRouter::Learner(l) => l.router(),
            AnyRouter::Cascade(r) => r.as_ref(),
        }
    }

    /// The router as a shared trait object (the same router, not a copy).
    pub fn shared(&self) -> Arc<dyn Router> {
        match self {
            AnyRouter::Baseline(r) => r.clone(),
            AnyRouter::Knn(r) => r.clone(),
            AnyRouter::Mf(r) => r.clone(),
            AnyRouter::Irt(r) => r.clone(),
            AnyRouter::Stack(r) => r.clone(),
            AnyRouter::Learner(l) => l.shared(),
            AnyRouter::Cascade(r) => r.clone(),
        }
    }

    /// The router as a learner, when it learns from feedback.
    pub fn as_learner(&self) -> Option<&AnyLearner> {
        match self {
            AnyRouter::Learner(l) => Some(l),
            _ => None,
        }
    }

    /// The router as a cascade, whose sessions decide after each answer.
    pub fn as_cascade(&self) -> Option<&CascadeRouter> {
        match self {
            AnyRouter::Cascade(c) => Some(c),
            _ => None,
        }
    }

    /// The router as a kNN router.
    pub fn as_knn(&self) -> Option<&KnnRouter> {
        match self {
            AnyRouter::Knn(r) => Some(r),
            _ => None,
        }
    }

    /// The router as an MF router.
    pub fn as_mf(&self) -> Option<&MfRouter> {
        match self {
            AnyRouter::Mf(r) => Some(r),
            _ => None,
        }
    }

    /// The router as an IRT router.
    pub fn as_irt(&self) -> Option<&IrtRouter> {
        match self {
            AnyRouter::Irt(r) => Some(r),
            _ => None,
        }
    }

    /// The router as a stack.
    pub fn as_stack(&self) -> Option<&StackRouter> {
        match self {
            AnyRouter::Stack(r) => Some(r),
            _ => None,
        }
    }

    /// The router as a baseline.
    pub fn as_baseline(&self) -> Option<&BaselineRouter> {
        match self {
            AnyRouter::Baseline(r) => Some(r),
            _ => None,
        }
    }

    /// Fits a router of `kind` on the labelled split `train`, as the table in the
    /// [registry's documentation](crate::registry) says: by its search for `knn`, `mf`, `irt` and
    /// `cascade`, the stack from its members' searches and out-of-fold estimates, by a warm start
    /// for the learners, from the training means for the baselines.
    ///
    /// With partial or pairwise labels (not [`Split::is_fully_labelled`]) `knn`, `mf` and `irt`
    /// are fitted with their default configuration, without a search (`irt` on observed scores
    /// only: preferences alone do not train it).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for `fixed` (use [`AnyRouter::fit_config`] with the model);
    /// [`Error::Unsupported`] for `mf` and `irt` in a build without the `train` feature; the
    /// fitting errors of the kind.
    pub fn fit(kind: RouterKind, train: &Split, options: &FitOptions) -> Result<Fitted> {
        let seed = options.seed;
        let partial = !train.is_fully_labelled();
        let (router, search): (AnyRouter, Option<SearchReport<RouterConfig>>) = match kind {
            // The searches score out-of-fold routing curves, which need every score: with
            // partial or pairwise labels the kind's default configuration is fitted instead.
            RouterKind::Knn | RouterKind::Mf | RouterKind::Irt if partial => (
                AnyRouter::fit_config(&RouterConfig::default_for(kind, seed)?, train)?,
                None,
            ),
            RouterKind::Knn => {
                let search = KnnSearch {
                    seed,
                    progress: options.progress.clone(),
                    ..Default::default()
                };
                let (r, report) = KnnRouter::tune(train, &KnnConfig::default(), &search)?;
                (r.into(), Some(report.map(RouterConfig::Knn)))
            }
            RouterKind::Mf => fit_mf(train, options)?,
            RouterKind::Irt => fit_irt(train, options)?,
            RouterKind::Stack => (
                super::auto::fit_stack(
                    &StackConfig {
                        seed,
                        ..Default::default()
                    },
                    train,
                )?,
                None,
            ),
            RouterKind::Cascade => {
                let judge = SimulatedJudge::for_training(options.judge_noise, seed)?;
                let conf = judge.confidences(train);
                let search = CascadeSearch {
                    points: options.sweep_points,
                    progress: options.progress.clone(),
                    ..Default::default()
                };
                let (r, report) =
                    CascadeRouter::tune(train, &conf, &CascadeConfig::default(), &search)?;
                (r.into(), Some(report.map(RouterConfig::Cascade)))
            }
            _ => (
                AnyRouter::fit_config(&RouterConfig::default_for(kind, seed)?, train)?,
                None,
            ),
        };
        Ok(Fitted { router, search })
    }

    /// Fits a router with the given configuration on the labelled split `train` (no search).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for `mf` in a build without the `train` feature; the fitting errors
    /// of the kind.
    pub fn fit_config(config: &RouterConfig, train: &Split) -> Result<AnyRouter> {
        Ok(match config {
            RouterConfig::Baseline(rule) => BaselineRouter::fit(rule.clone(), train)?.into(),
            RouterConfig::Knn(c) => KnnRouter::fit(train, c)?.into(),
            RouterConfig::Mf(c) => fit_mf_config(train, c)?,
            RouterConfig::Irt(c) => fit_irt_config(train, c)?,
            RouterConfig::Stack(c) => super::auto::fit_stack(c, train)?,
            RouterConfig::Cascade(c) => CascadeRouter::fit(train, c)?.into(),
            _ => AnyRouter::Learner(AnyLearner::warm_start(config, train)?),
        })
    }

    /// The router with one more model, `card`, learned from the queries of `labelled` where it
    /// has a score, or from its card alone (price and description: the documented prior of
    /// [`crate::ModelPool::prior_weights`]) when `labelled` is `None`, without refitting what
    /// the router knows about its other models (their estimates stay bit for bit). See
    /// docs/own-data.md.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for kinds other than `knn`, `mf` and the learners; the errors of
    /// [`KnnRouter::add_model`], [`MfRouter::add_model`] and
    /// [`BanditRouter::add_model`](crate::routers::bandit::BanditRouter::add_model).
    pub fn add_model(
        &self,
        card: crate::pool::ModelCard,
        labelled: Option<&Split>,
    ) -> Result<AnyRouter> {
        match self {
            AnyRouter::Knn(r) => Ok(r.add_model(card, labelled)?.into()),
            AnyRouter::Mf(r) => Ok(r.add_model(card, labelled)?.into()),
            AnyRouter::Learner(l) => Ok(AnyRouter::Learner(l.add_model(card, labelled)?)),
            _ => Err(Error::Unsupported(format!(
                "adding a model to a {} router (knn, mf and the learners onboard models)",
                self.kind()
            ))),
        }
    }

    /// The router with new prices for some of its models (cards of `prices` by id), without
    /// refitting: costs estimated from observed costs are scaled by the ratio of new to old
    /// price, quality estimates are unchanged. Every kind but the cascade: a stack reprices each
    /// member, a baseline its mean training costs (`cheapest` and `best-single` choose again).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for the cascade; [`Error::UnknownModel`] for a card of a model
    /// the router does not have; [`Error::Config`] for an empty list, a price out of range, or
    /// a model repriced from a price of 0.
    pub fn reprice(&self, prices: &[crate::pool::ModelCard]) -> Result<AnyRouter> {
        if prices.is_empty() {
            return Err(Error::Config(
                "the price list names no model: nothing to reprice".into(),
            ));
        }
        match self {
            AnyRouter::Knn(r) => Ok(r.reprice(prices)?.into()),
            AnyRouter::Mf(r) => Ok(r.reprice(prices)?.into()),
            AnyRouter::Learner(l) => Ok(AnyRouter::Learner(l.reprice(prices)?)),
            AnyRouter::Irt(r) => Ok(r.reprice(prices)?.into()),
            AnyRouter::Baseline(r) => Ok(r.reprice(prices)?.into()),
            AnyRouter::Stack(r) => {
                // Each member repriced as its own kind (through its saved form, which is how
                // the stack holds it), the weights unchanged: they combine quality estimates.
                let members = r
                    .members()
                    .iter()
                    .map(|m| {
                        AnyRouter::from_saved(m.to_saved()?)?
                            .reprice(prices)
                            .map(|r| r.shared())
                    })
                    .collect::<Result<Vec<_>>>()?;
                let weights = (0..r.models().len())
                    .flat_map(|j| r.weights(j).iter().copied())
                    .collect();
                Ok(StackRouter::new(members, weights, r.config().clone())?.into())
            }
            _ => Err(Error::Unsupported(format!(
                "repricing a {} router (every pre-call kind and the learners are repriced)",
                self.kind()
            ))),
        }
    }

    /// Rebuilds a router of any kind from its saved form.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for an unknown kind, missing or misshapen tensors and invalid values.
    pub fn from_saved(saved: SavedRouter) -> Result<AnyRouter> {
        let config: RouterConfig = serde_json::from_str(&saved.config)
            .map_err(|e| Error::format("saved router", format!("bad config: {e}")))?;
        Ok(match config {
            RouterConfig::Baseline(rule) => BaselineRouter::from_saved(rule, saved)?.into(),
            RouterConfig::Knn(c) => KnnRouter::from_saved(c, saved)?.into(),
            RouterConfig::Mf(c) => MfRouter::from_saved(c, saved)?.into(),
            RouterConfig::Irt(c) => IrtRouter::from_saved(c, saved)?.into(),
            RouterConfig::Stack(c) => StackRouter::from_saved(c, saved, &|member| {
                AnyRouter::from_saved(member).map(|r| r.shared())
            })?
            .into(),
            RouterConfig::Linucb(c) => LinUcbRouter::from_saved(c, saved)?.into(),
            RouterConfig::Thompson(c) => LinTsRouter::from_saved(c, saved)?.into(),
            RouterConfig::KnnUcb(c) => KnnUcbRouter::from_saved(c, saved)?.into(),
            RouterConfig::ClusterUcb(c) => ClusterUcbRouter::from_saved(c, saved)?.into(),
            RouterConfig::Cascade(c) => CascadeRouter::from_saved(c, saved)?.into(),
        })
    }

    /// Loads a saved router of any kind.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], [`Error::Format`] or [`Error::UnsupportedVersion`], naming the file.
    pub fn load(path: impl AsRef<Path>) -> Result<AnyRouter> {
        let path = path.as_ref();
        let what = path.display().to_string();
        AnyRouter::from_saved(SavedRouter::load(path)?).map_err(|e| rename_source(e, &what))
    }

    /// Opens a saved router of any kind memory-mapped and read-only
    /// ([`SavedRouter::open_mmap`]): a kNN router reads its reference set in place, so the
    /// processes of a host that open one file share one copy. Routes exactly as
    /// [`AnyRouter::load`]. Other kinds copy what they hold (it is small).
    ///
    /// # Errors
    ///
    /// As [`AnyRouter::load`].
    pub fn open_mmap(path: impl AsRef<Path>) -> Result<AnyRouter> {
        let path = path.as_ref();
        let what = path.display().to_string();
        AnyRouter::from_saved(SavedRouter::open_mmap(path)?).map_err(|e| rename_source(e, &what))
    }

    /// Loads a router from the bytes of a saved file (for example a pickled Python router).
    ///
    /// # Errors
    ///
    /// As [`AnyRouter::load`].
    pub fn from_bytes(bytes: &[u8]) -> Result<AnyRouter> {
        AnyRouter::from_saved(SavedRouter::from_bytes(bytes, "saved router")?)
    }

    /// Loads a saved router and checks that it was made for embeddings of `embedding_model`
    /// with `dim` dimensions.
    ///
    /// # Errors
    ///
    /// As [`AnyRouter::load`]; [`Error::DimensionMismatch`] or [`Error::EmbeddingMismatch`] for
    /// a router made for other embeddings.
    pub fn load_for(
        path: impl AsRef<Path>,
        embedding_model: &str,
        dim: usize,
    ) -> Result<AnyRouter> {
        let router = AnyRouter::load(path)?;
        // As everywhere (routing, pipelines, the embedding model below): `expected` is what the
        // router was made for, `got` what the caller brings.
        if router.dim() != dim {
            return Err(Error::DimensionMismatch {
                expected: router.dim(),
                got: dim,
            });
        }
        if let Some(m) = router.embedding_model() {
            if m != embedding_model {
                return Err(Error::EmbeddingMismatch {
                    expected: m.to_string(),
                    got: embedding_model.to_string(),
                });
            }
        }
        Ok(router)
    }

    /// The saved file's bytes.
    ///
    /// # Errors
    ///
    /// As [`Router::to_saved`].
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.router().to_saved()?.to_bytes()
    }

    /// Saves the router to `path` as one `.safetensors` file, atomically, after loading the
    /// bytes back in memory: what `save` writes always loads, and a router whose state went
    /// wrong is refused rather than written over a good file.
    ///
    /// # Errors
    ///
    /// [`Error::Numeric`] when the saved form does not load back (the file is left as it was);
    /// [`Error::Io`] naming the path; the errors of [`Router::to_saved`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.to_bytes()?;
        AnyRouter::from_bytes(&bytes).map_err(|e| {
            Error::Numeric(format!(
                "the {} router's saved form does not load back ({e}): not saved",
                self.kind()
            ))
        })?;
        crate::files::write_atomic(path.as_ref(), &bytes)
    }
}

/// Loads a saved router of any kind: [`AnyRouter::load`].
///
/// # Errors
///
/// As [`AnyRouter::load`].
pub fn load_router(path: impl AsRef<Path>) -> Result<AnyRouter> {
    AnyRouter::load(path)
}

#[cfg(feature = "train")]
fn fit_mf(
    train: &Split,
    options: &FitOptions,
) -> Result<(AnyRouter, Option<SearchReport<RouterConfig>>)> {
    let seed = options.seed;
    use crate::routers::mf::MfSearch;
    let base = MfConfig {
        seed,
        ..Default::default()
    };
    let search = MfSearch {
        seed,
        progress: options.progress.clone(),
        ..Default::default()
    };
    let (r, report) = MfRouter::tune(train, &base, &search)?;
    Ok((r.into(), Some(report.map(RouterConfig::Mf))))
}

#[cfg(not(feature = "train"))]
fn fit_mf(
    _train: &Split,
    _options: &FitOptions,
) -> Result<(AnyRouter, Option<SearchReport<RouterConfig>>)> {
    Err(mf_needs_training())
}

#[cfg(feature = "train")]
fn fit_mf_config(train: &Split, config: &MfConfig) -> Result<AnyRouter> {
    Ok(MfRouter::fit(train, config)?.into())
}

#[cfg(not(feature = "train"))]
fn fit_mf_config(_train: &Split, _config: &MfConfig) -> Result<AnyRouter> {
    Err(mf_needs_training())
}

#[cfg(feature = "train")]
fn fit_irt(
    train: &Split,
    options: &FitOptions,
) -> Result<(AnyRouter, Option<SearchReport<RouterConfig>>)> {
    let seed = options.seed;
    use crate::routers::irt::IrtSearch;
    let base = IrtConfig {
        seed,
        ..Default::default()
    };
    let search = IrtSearch {
        seed,
        progress: options.progress.clone(),
        ..Default::default()
    };
    let (r, report) = IrtRouter::tune(train, &base, &search)?;
    Ok((r.into(), Some(report.map(RouterConfig::Irt))))
}

#[cfg(not(feature = "train"))]
fn fit_irt(
    _train: &Split,
    _options: &FitOptions,
) -> Result<(AnyRouter, Option<SearchReport<RouterConfig>>)> {
    Err(needs_training(RouterKind::Irt))
}

#[cfg(feature = "train")]
fn fit_irt_config(train: &Split, config: &IrtConfig) -> Result<AnyRouter> {
    Ok(IrtRouter::fit(train, config)?.into())
}

#[cfg(not(feature = "train"))]
fn fit_irt_config(_train: &Split, _config: &IrtConfig) -> Result<AnyRouter> {
    Err(needs_training(RouterKind::Irt))
}

#[cfg(not(feature = "train"))]
fn mf_needs_training() -> Error {
    needs_training(RouterKind::Mf)
}

#[cfg(not(feature = "train"))]
fn needs_training(kind: RouterKind) -> Error {
    Error::Unsupported(format!(
        "fitting an {kind} router: this build has no `train` feature"
    ))
}

fn rename_source(e: Error, what: &str) -> Error {
    match e {
        Error::Format {
            path,
            line,
            message,
        } if path == "saved router" => Error::Format {
            path: what.to_string(),
            line,
            message,
        },
        Error::UnsupportedVersion {
            path,
            found,
            supported,
        } if path == "saved router" => Error::UnsupportedVersion {
            path: what.to_string(),
            found,
            supported,
        },
        other => other,
    }
}

macro_rules! from_router {
    ($($ty:ty => $variant:ident),* $(,)?) => {
        $(impl From<$ty> for AnyRouter {
            fn from(r: $ty) -> AnyRouter {
                AnyRouter::$variant(Arc::new(r))
            }
        })*
    };
}

from_router!(
    BaselineRouter => Baseline,
    KnnRouter => Knn,
    MfRouter => Mf,
    IrtRouter => Irt,
    StackRouter => Stack,
    CascadeRouter => Cascade,
);

macro_rules! from_learner {
    ($($ty:ty => $variant:ident),* $(,)?) => {
        $(impl From<$ty> for AnyLearner {
            fn from(r: $ty) -> AnyLearner {
                AnyLearner::$variant(r)
            }
        }
        impl From<$ty> for AnyRouter {
            fn from(r: $ty) -> AnyRouter {
                AnyRouter::Learner(AnyLearner::$variant(r))
            }
        })*
    };
}

from_learner!(
    LinUcbRouter => Linucb,
    LinTsRouter => Thompson,
    KnnUcbRouter => KnnUcb,
    ClusterUcbRouter => ClusterUcb,
);

impl From<AnyLearner> for AnyRouter {
    fn from(l: AnyLearner) -> AnyRouter {
        AnyRouter::Learner(l)
    }
}

impl From<AnyRouter> for Arc<dyn Router> {
    fn from(r: AnyRouter) -> Arc<dyn Router> {
        r.shared()
    }
}
