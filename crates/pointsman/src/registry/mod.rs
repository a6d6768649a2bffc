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
//! [`BanditRouter::warm_start`]: crate::routers::bandit::BanditRouter::warm_start
//! [`CascadeRouter::tune`]: crate::routers::cascade::CascadeRouter::tune
//! [`CascadeRouter::fit`]: crate::routers::cascade::CascadeRouter::fit

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::data::Split;
use crate::error::{Error, Result};
use crate::features::FeatureBatch;
use crate::pool::ModelPool;
use crate::router::{Learner, Router};
use crate::routers::bandit::{
    ClusterUcbConfig, ClusterUcbRouter, KnnUcbConfig, KnnUcbRouter, LinTsRouter, LinUcbRouter,
    LinearConfig,
};
use crate::routers::baseline::{Baseline, BaselineRouter};
use crate::routers::cascade::{CascadeConfig, CascadeRouter, CascadeSearch, SimulatedJudge};
use crate::routers::knn::{KnnConfig, KnnRouter, KnnSearch};
use crate::routers::mf::{MfConfig, MfRouter};
use crate::saved::SavedRouter;
use crate::tuning::SearchReport;

pub use crate::kind::{Family, RouterKind};

/// A router's configuration, tagged by kind: what a saved file holds (`{"type": "knn", …}`) and
/// what [`AnyRouter::fit_config`] fits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RouterConfig {
    /// A baseline (its rule is a second tag, `"rule"`).
    Baseline(Baseline),
    /// A kNN router.
    Knn(KnnConfig),
    /// A matrix-factorisation router.
    Mf(MfConfig),
    /// A LinUCB bandit.
    Linucb(LinearConfig),
    /// A linear Thompson-sampling bandit.
    Thompson(LinearConfig),
    /// A neighbourhood (kNN-UCB) bandit.
    KnnUcb(KnnUcbConfig),
    /// A cluster bandit with an additive prior.
    ClusterUcb(ClusterUcbConfig),
    /// A cascade.
    Cascade(CascadeConfig),
}

impl RouterConfig {
    /// The kind this config makes.
    pub fn kind(&self) -> RouterKind {
        match self {
            RouterConfig::Baseline(b) => b.kind(),
            RouterConfig::Knn(_) => RouterKind::Knn,
            RouterConfig::Mf(_) => RouterKind::Mf,
            RouterConfig::Linucb(_) => RouterKind::Linucb,
            RouterConfig::Thompson(_) => RouterKind::Thompson,
            RouterConfig::KnnUcb(_) => RouterKind::KnnUcb,
            RouterConfig::ClusterUcb(_) => RouterKind::ClusterUcb,
            RouterConfig::Cascade(_) => RouterKind::Cascade,
        }
    }

    /// The default configuration of `kind`, with `seed` for every kind whose config has one
    /// (random draws, training shuffles, projections).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for `fixed`, which needs a model (`fixed:<model id>`).
    pub fn default_for(kind: RouterKind, seed: u64) -> Result<RouterConfig> {
        let config = match kind.family() {
            crate::kind::Family::Baseline => RouterConfig::Baseline(
                Baseline::of(kind, seed).ok_or_else(|| fixed_needs_a_model(kind))?,
            ),
            _ => match kind {
                RouterKind::Knn => RouterConfig::Knn(KnnConfig::default()),
                RouterKind::Mf => RouterConfig::Mf(MfConfig::default()),
                RouterKind::Linucb => RouterConfig::Linucb(LinearConfig::default()),
                RouterKind::Thompson => RouterConfig::Thompson(LinearConfig::thompson()),
                RouterKind::KnnUcb => RouterConfig::KnnUcb(KnnUcbConfig::default()),
                RouterKind::ClusterUcb => RouterConfig::ClusterUcb(ClusterUcbConfig::default()),
                _ => RouterConfig::Cascade(CascadeConfig::default()),
            },
        };
        // Every kind whose config has a seed takes the caller's.
        let mut value = config.to_value();
        match value.get_mut("seed") {
            Some(s) => *s = seed.into(),
            None => return Ok(config),
        }
        Ok(serde_json::from_value(value).expect("a config with its seed replaced parses"))
    }

    /// A configuration of `kind` from a JSON object of its fields: fields not given keep the
    /// kind's defaults ([`RouterConfig::default_for`], with `seed`).
    /// The object may carry the kind's own `"type"` tag (as saved files and
    /// [`RouterConfig::to_json`] write it).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for JSON that is not an object, a tag of another kind, an unknown field
    /// or a value of the wrong type, naming it.
    ///
    /// # Example
    ///
    /// ```
    /// use pointsman::registry::{RouterConfig, RouterKind};
    /// let c = RouterConfig::parse(RouterKind::Knn, r#"{"k": 50, "same_task": true}"#, 0)?;
    /// assert_eq!(c.kind(), RouterKind::Knn);
    /// assert!(RouterConfig::parse(RouterKind::Knn, r#"{"kk": 50}"#, 0).is_err());
    /// # Ok::<(), pointsman::Error>(())
    /// ```
    pub fn parse(kind: RouterKind, json: &str, seed: u64) -> Result<RouterConfig> {
        let bad = |m: String| Error::Config(format!("{kind} config: {m}"));
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| bad(format!("not JSON: {e}")))?;
        let serde_json::Value::Object(mut fields) = value else {
            return Err(bad(format!("{json} is not a JSON object")));
        };
        let tag = kind_tag(kind);
        if let Some(t) = fields.remove("type") {
            if t.as_str() != Some(tag) {
                return Err(bad(format!("\"type\" is {t}, not {tag:?}")));
            }
        }
        if kind.family() == crate::kind::Family::Baseline {
            if let Some(r) = fields.remove("rule") {
                if r.as_str() != Some(kind.name()) {
                    return Err(bad(format!("\"rule\" is {r}, not {:?}", kind.name())));
                }
            }
        }
        // Start from the kind's defaults (with the caller's seed); the fields given replace them.
        let mut value = match RouterConfig::default_for(kind, seed) {
            Ok(d) => d.to_value(),
            Err(_) => serde_json::json!({}),
        };
        let object = value.as_object_mut().expect("configs are JSON objects");
        object.extend(fields);
        object.insert("type".into(), tag.into());
        if kind.family() == crate::kind::Family::Baseline {
            object.insert("rule".into(), kind.name().into());
        }
        let config: RouterConfig = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        Ok(config)
    }

    /// The configuration as a JSON value, tagged by kind.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("router configs serialise to JSON")
    }

    /// The configuration's own fields as a JSON object, without the kind's tags: what
    /// `pointsman train --router <kind> --config` accepts.
    pub fn to_json(&self) -> String {
        let mut v = self.to_value();
        if let Some(o) = v.as_object_mut() {
            o.remove("type");
            if self.kind().family() == crate::kind::Family::Baseline {
                o.remove("rule");
            }
        }
        v.to_string()
    }
}

impl RouterConfig {
    /// The fields that differ from the kind's defaults, as a JSON object: a short form that
    /// `pointsman train --config` (and [`RouterConfig::parse`]) turns back into this config.
    pub fn changes(&self) -> String {
        let kind = self.kind();
        let mine = self.to_value();
        let seed = mine
            .get("seed")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let base = RouterConfig::default_for(kind, seed).map(|d| d.to_value());
        let mut out = serde_json::Map::new();
        if let Some(fields) = mine.as_object() {
            for (k, v) in fields {
                let tag = k == "type" || (kind.family() == Family::Baseline && k == "rule");
                let default = base.as_ref().ok().and_then(|b| b.get(k));
                if !tag && default != Some(v) {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        serde_json::Value::Object(out).to_string()
    }
}

/// The `"type"` tag under which a kind's config is saved.
fn kind_tag(kind: RouterKind) -> &'static str {
    if kind.family() == crate::kind::Family::Baseline {
        RouterKind::BASELINE_TAG
    } else {
        kind.name()
    }
}

fn fixed_needs_a_model(kind: RouterKind) -> Error {
    Error::Config(format!(
        "the {kind} baseline needs a model: name it {kind}:<model id>"
    ))
}

/// A router as named on the command line: a kind, the fixed baseline with its model
/// (`fixed:<model id>`), or a saved router file (`file:<path>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterSpec {
    /// A kind, fitted by [`AnyRouter::fit`].
    Kind(RouterKind),
    /// The fixed baseline for this model id.
    Fixed(String),
    /// A saved router, loaded by [`AnyRouter::load`].
    File(std::path::PathBuf),
}

impl RouterSpec {
    /// The prefix of a saved router's name.
    pub const FILE_PREFIX: &'static str = "file:";

    /// Parses `knn`, `zero`, `fixed:<model id>`, `file:<path>`, …
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an unknown name (listing the known ones), `fixed` without a
    /// model or `file:` without a path.
    pub fn parse(name: &str) -> Result<RouterSpec> {
        if let Some(path) = name.strip_prefix(RouterSpec::FILE_PREFIX) {
            if path.is_empty() {
                return Err(Error::InvalidInput(format!("{name:?} names no file")));
            }
            return Ok(RouterSpec::File(path.into()));
        }
        let fixed = RouterKind::Fixed.name();
        if let Some(model) = name
            .strip_prefix(fixed)
            .and_then(|rest| rest.strip_prefix(':'))
        {
            if model.is_empty() {
                return Err(Error::InvalidInput(format!("{name:?} names no model")));
            }
            return Ok(RouterSpec::Fixed(model.to_string()));
        }
        match RouterKind::from_name(name) {
            Some(RouterKind::Fixed) => Err(Error::InvalidInput(
                fixed_needs_a_model(RouterKind::Fixed)
                    .to_string()
                    .replace("invalid config: ", ""),
            )),
            Some(kind) => Ok(RouterSpec::Kind(kind)),
            None => Err(Error::InvalidInput(format!(
                "unknown router {name:?} (known: {}, {fixed}:<model id>, file:<saved router>)",
                RouterKind::ALL
                    .iter()
                    .filter(|k| **k != RouterKind::Fixed)
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The kind named; `None` for a file, whose kind is known once it is loaded.
    pub fn kind(&self) -> Option<RouterKind> {
        match self {
            RouterSpec::Kind(k) => Some(*k),
            RouterSpec::Fixed(_) => Some(RouterKind::Fixed),
            RouterSpec::File(_) => None,
        }
    }

    /// Checks what can be checked without fitting or loading: the fixed model is in `pool`, the
    /// file exists.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] or [`Error::Io`].
    pub fn check(&self, pool: &ModelPool) -> Result<()> {
        match self {
            RouterSpec::Kind(_) => Ok(()),
            RouterSpec::Fixed(model) => pool.index_of(model).map(|_| ()),
            RouterSpec::File(path) => std::fs::metadata(path)
                .map(|_| ())
                .map_err(|e| Error::io(path, e)),
        }
    }
}

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
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            seed: 0,
            judge_noise: crate::routers::cascade::DEFAULT_JUDGE_NOISE,
            sweep_points: crate::metrics::DEFAULT_SWEEP_POINTS,
        }
    }
}

/// A fitted router and, for the kinds fitted by a search, what the search did (every setting as
/// a [`RouterConfig`], best first).
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The router.
    pub router: AnyRouter,
    /// The search, for `knn`, `mf` and `cascade`.
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

    /// The router as a baseline.
    pub fn as_baseline(&self) -> Option<&BaselineRouter> {
        match self {
            AnyRouter::Baseline(r) => Some(r),
            _ => None,
        }
    }

    /// Fits a router of `kind` on the labelled split `train`, as the table in the
    /// [module documentation](self) says: by its search for `knn`, `mf` and `cascade`, by a warm
    /// start for the learners, from the training means for the baselines.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for `fixed` (use [`AnyRouter::fit_config`] with the model);
    /// [`Error::Unsupported`] for `mf` in a build without the `train` feature; the fitting
    /// errors of the kind.
    pub fn fit(kind: RouterKind, train: &Split, options: &FitOptions) -> Result<Fitted> {
        let seed = options.seed;
        let (router, search): (AnyRouter, Option<SearchReport<RouterConfig>>) = match kind {
            RouterKind::Knn => {
                let search = KnnSearch {
                    seed,
                    ..Default::default()
                };
                let (r, report) = KnnRouter::tune(train, &KnnConfig::default(), &search)?;
                (r.into(), Some(report.map(RouterConfig::Knn)))
            }
            RouterKind::Mf => fit_mf(train, seed)?,
            RouterKind::Cascade => {
                let judge = SimulatedJudge::for_training(options.judge_noise, seed)?;
                let conf = judge.confidences(train);
                let search = CascadeSearch {
                    points: options.sweep_points,
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
            RouterConfig::Cascade(c) => CascadeRouter::fit(train, c)?.into(),
            _ => AnyRouter::Learner(AnyLearner::warm_start(config, train)?),
        })
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
        if router.dim() != dim {
            return Err(Error::DimensionMismatch {
                expected: dim,
                got: router.dim(),
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
fn fit_mf(train: &Split, seed: u64) -> Result<(AnyRouter, Option<SearchReport<RouterConfig>>)> {
    use crate::routers::mf::MfSearch;
    let base = MfConfig {
        seed,
        ..Default::default()
    };
    let search = MfSearch {
        seed,
        ..Default::default()
    };
    let (r, report) = MfRouter::tune(train, &base, &search)?;
    Ok((r.into(), Some(report.map(RouterConfig::Mf))))
}

#[cfg(not(feature = "train"))]
fn fit_mf(_train: &Split, _seed: u64) -> Result<(AnyRouter, Option<SearchReport<RouterConfig>>)> {
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

#[cfg(not(feature = "train"))]
fn mf_needs_training() -> Error {
    Error::Unsupported(format!(
        "fitting an {} router: this build has no `train` feature",
        RouterKind::Mf
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
        other => other,
    }
}

/// A contextual bandit of any kind: a handle on its learned state.
///
/// Cloning gives a second handle on the *same* state (as [`BanditRouter`]'s handles do); use
/// [`AnyLearner::snapshot`] for an independent copy. It dereferences to `dyn Learner`, so
/// `route` and `observe` are called on it directly.
///
/// [`BanditRouter`]: crate::routers::bandit::BanditRouter
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyLearner {
    /// LinUCB.
    Linucb(LinUcbRouter),
    /// Linear Thompson sampling.
    Thompson(LinTsRouter),
    /// kNN-UCB.
    KnnUcb(KnnUcbRouter),
    /// Cluster-UCB.
    ClusterUcb(ClusterUcbRouter),
}

/// Runs `$e` with `$r` bound to the concrete learner, whatever its kind.
macro_rules! each {
    ($l:expr, $r:ident => $e:expr) => {
        match $l {
            AnyLearner::Linucb($r) => $e,
            AnyLearner::Thompson($r) => $e,
            AnyLearner::KnnUcb($r) => $e,
            AnyLearner::ClusterUcb($r) => $e,
        }
    };
}

/// Rebuilds the same kind from the handle `$e` makes of `$r`.
macro_rules! map {
    ($l:expr, $r:ident => $e:expr) => {
        match $l {
            AnyLearner::Linucb($r) => AnyLearner::Linucb($e),
            AnyLearner::Thompson($r) => AnyLearner::Thompson($e),
            AnyLearner::KnnUcb($r) => AnyLearner::KnnUcb($e),
            AnyLearner::ClusterUcb($r) => AnyLearner::ClusterUcb($e),
        }
    };
}

impl std::ops::Deref for AnyLearner {
    type Target = dyn Learner;

    fn deref(&self) -> &(dyn Learner + 'static) {
        self.learner()
    }
}

impl AnyLearner {
    /// A learner of `kind` that has observed nothing, with its default configuration, for the
    /// models of `pool` and `dim`-dimensional embeddings of `embedding_model`; `seed` seeds its
    /// draws.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `kind` is not a learner, or from the constructor.
    pub fn cold(
        kind: RouterKind,
        pool: &ModelPool,
        dim: usize,
        embedding_model: Option<&str>,
        seed: u64,
    ) -> Result<AnyLearner> {
        AnyLearner::cold_config(
            &RouterConfig::default_for(kind, seed)?,
            pool,
            dim,
            embedding_model,
        )
    }

    /// A learner with `config` that has observed nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `config` is not a learner's, or from the constructor.
    pub fn cold_config(
        config: &RouterConfig,
        pool: &ModelPool,
        dim: usize,
        embedding_model: Option<&str>,
    ) -> Result<AnyLearner> {
        let pool = pool.clone();
        Ok(match config {
            RouterConfig::Linucb(c) => {
                LinUcbRouter::new(pool, dim, embedding_model, c.clone())?.into()
            }
            RouterConfig::Thompson(c) => {
                LinTsRouter::new(pool, dim, embedding_model, c.clone())?.into()
            }
            RouterConfig::KnnUcb(c) => {
                KnnUcbRouter::new(pool, dim, embedding_model, c.clone())?.into()
            }
            RouterConfig::ClusterUcb(c) => {
                ClusterUcbRouter::new(pool, dim, embedding_model, c.clone())?.into()
            }
            other => return Err(not_a_learner(other.kind())),
        })
    }

    /// A learner with `config` warm-started on the labelled split `train` (every model's
    /// outcome on every query).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `config` is not a learner's; the errors of
    /// [`BanditRouter::warm_start`](crate::routers::bandit::BanditRouter::warm_start).
    pub fn warm_start(config: &RouterConfig, train: &Split) -> Result<AnyLearner> {
        Ok(match config {
            RouterConfig::Linucb(c) => LinUcbRouter::warm_start(train, c.clone())?.into(),
            RouterConfig::Thompson(c) => LinTsRouter::warm_start(train, c.clone())?.into(),
            RouterConfig::KnnUcb(c) => KnnUcbRouter::warm_start(train, c.clone())?.into(),
            RouterConfig::ClusterUcb(c) => ClusterUcbRouter::warm_start(train, c.clone())?.into(),
            other => return Err(not_a_learner(other.kind())),
        })
    }

    /// The learner's kind.
    pub fn kind(&self) -> RouterKind {
        match self {
            AnyLearner::Linucb(_) => RouterKind::Linucb,
            AnyLearner::Thompson(_) => RouterKind::Thompson,
            AnyLearner::KnnUcb(_) => RouterKind::KnnUcb,
            AnyLearner::ClusterUcb(_) => RouterKind::ClusterUcb,
        }
    }

    /// The learner through the [`Router`] trait.
    pub fn router(&self) -> &(dyn Router + 'static) {
        each!(self, r => r)
    }

    /// The learner through the [`Learner`] trait.
    pub fn learner(&self) -> &(dyn Learner + 'static) {
        each!(self, r => r)
    }

    /// A shared trait object on the same learned state (routing as this handle does).
    pub fn shared(&self) -> Arc<dyn Router> {
        each!(self.clone(), r => Arc::new(r))
    }

    /// A handle on the same state that routes without exploration.
    pub fn greedy(&self) -> AnyLearner {
        map!(self, r => r.greedy())
    }

    /// A handle on the same state that explores.
    pub fn exploring(&self) -> AnyLearner {
        map!(self, r => r.exploring())
    }

    /// Whether this handle routes without exploration.
    pub fn is_greedy(&self) -> bool {
        each!(self, r => r.is_greedy())
    }

    /// An independent copy of the learner and its state.
    pub fn snapshot(&self) -> AnyLearner {
        map!(self, r => r.snapshot())
    }

    /// Observations per model so far (merges included).
    pub fn pulls(&self) -> Vec<u64> {
        each!(self, r => r.pulls())
    }

    /// Wipes a model's statistics (as a drift alarm does).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] for an id not in the pool.
    pub fn forget_model(&self, id: &str) -> Result<()> {
        each!(self, r => r.forget_model(id))
    }

    /// Learns every model's outcome on every query of a labelled split.
    ///
    /// # Errors
    ///
    /// As [`BanditRouter::observe_split`](crate::routers::bandit::BanditRouter::observe_split).
    pub fn observe_split(&self, split: &Split) -> Result<()> {
        each!(self, r => r.observe_split(split))
    }

    /// Fits the unsupervised parts (projection, clusters) on unlabelled embeddings.
    ///
    /// # Errors
    ///
    /// As [`BanditRouter::fit_unlabelled`](crate::routers::bandit::BanditRouter::fit_unlabelled).
    pub fn fit_unlabelled(&self, batch: &FeatureBatch<'_>) -> Result<()> {
        each!(self, r => r.fit_unlabelled(batch))
    }

    /// Adds `other`'s observations to this learner's state.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for learners of different kinds; the errors of
    /// [`BanditRouter::merge`](crate::routers::bandit::BanditRouter::merge).
    pub fn merge(&self, other: &AnyLearner) -> Result<()> {
        match (self, other) {
            (AnyLearner::Linucb(a), AnyLearner::Linucb(b)) => a.merge(b),
            (AnyLearner::Thompson(a), AnyLearner::Thompson(b)) => a.merge(b),
            (AnyLearner::KnnUcb(a), AnyLearner::KnnUcb(b)) => a.merge(b),
            (AnyLearner::ClusterUcb(a), AnyLearner::ClusterUcb(b)) => a.merge(b),
            _ => Err(self.other_kind(other)),
        }
    }

    /// Adds the observations `other` made since it was forked from `base`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for learners of different kinds; the errors of
    /// [`BanditRouter::merge_since`](crate::routers::bandit::BanditRouter::merge_since).
    pub fn merge_since(&self, other: &AnyLearner, base: &AnyLearner) -> Result<()> {
        match (self, other, base) {
            (AnyLearner::Linucb(a), AnyLearner::Linucb(b), AnyLearner::Linucb(c)) => {
                a.merge_since(b, c)
            }
            (AnyLearner::Thompson(a), AnyLearner::Thompson(b), AnyLearner::Thompson(c)) => {
                a.merge_since(b, c)
            }
            (AnyLearner::KnnUcb(a), AnyLearner::KnnUcb(b), AnyLearner::KnnUcb(c)) => {
                a.merge_since(b, c)
            }
            (AnyLearner::ClusterUcb(a), AnyLearner::ClusterUcb(b), AnyLearner::ClusterUcb(c)) => {
                a.merge_since(b, c)
            }
            (_, b, c) if b.kind() == self.kind() => Err(self.other_kind(c)),
            _ => Err(self.other_kind(other)),
        }
    }

    fn other_kind(&self, other: &AnyLearner) -> Error {
        Error::Config(format!(
            "cannot merge a {} router into a {} router",
            other.kind(),
            self.kind()
        ))
    }
}

fn not_a_learner(kind: RouterKind) -> Error {
    Error::Config(format!(
        "a {kind} router does not learn from feedback (learners: {})",
        RouterKind::ALL
            .iter()
            .filter(|k| k.is_learner())
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::ModelCard;
    use crate::{Objective, QueryFeatures};

    fn split() -> Split {
        let pool = ModelPool::new(vec![
            ModelCard::new("a", 0.1, 0.1),
            ModelCard::new("b", 1.0, 1.0),
        ])
        .unwrap();
        let mut emb = Vec::new();
        let mut scores = Vec::new();
        for i in 0..40 {
            let t = i as f32 / 40.0;
            emb.extend_from_slice(&[1.0 - t, t, 0.3]);
            scores.extend_from_slice(&[f64::from(u8::from(t < 0.5)), 0.8]);
        }
        let n = scores.len();
        Split::from_arrays(pool, emb, 3, scores, vec![1e-5; n]).unwrap()
    }

    #[test]
    fn config_tags_are_the_kind_names() {
        for kind in RouterKind::ALL {
            match RouterConfig::default_for(kind, 3) {
                Ok(config) => {
                    assert_eq!(config.kind(), kind);
                    let v = config.to_value();
                    assert_eq!(v["type"], kind_tag(kind), "{kind}");
                    if kind.family() == Family::Baseline {
                        assert_eq!(v["rule"], kind.name());
                    }
                    let again = RouterConfig::parse(kind, &config.to_json(), 3).unwrap();
                    assert_eq!(again, config, "{kind}");
                    let tagged = RouterConfig::parse(kind, &v.to_string(), 3).unwrap();
                    assert_eq!(tagged, config, "{kind}");
                    assert_eq!(config.changes(), "{}", "{kind}");
                    let short = RouterConfig::parse(kind, &config.changes(), 3).unwrap();
                    assert_eq!(short, config, "{kind}");
                }
                Err(e) => {
                    assert_eq!(kind, RouterKind::Fixed);
                    assert_eq!(e.kind(), crate::ErrorKind::Config);
                }
            }
        }
    }

    #[test]
    fn parse_takes_the_seed_unless_given_and_names_bad_fields() {
        let c = RouterConfig::parse(RouterKind::Thompson, "{}", 9).unwrap();
        let RouterConfig::Thompson(c) = c else {
            panic!("{c:?}")
        };
        assert_eq!(c.seed, 9);
        let c = RouterConfig::parse(RouterKind::Mf, r#"{"seed": 4, "dim": 8}"#, 9).unwrap();
        assert!(matches!(
            c,
            RouterConfig::Mf(MfConfig {
                seed: 4,
                dim: 8,
                ..
            })
        ));
        let c = RouterConfig::parse(RouterKind::Knn, r#"{"k": 7, "same_task": true}"#, 0).unwrap();
        assert_eq!(c.changes(), r#"{"k":7,"same_task":true}"#);
        let e = RouterConfig::parse(RouterKind::Knn, r#"{"kk": 1}"#, 0).unwrap_err();
        assert!(
            e.to_string().contains("knn config") && e.to_string().contains("kk"),
            "{e}"
        );
        let e = RouterConfig::parse(RouterKind::Knn, r#"{"type": "mf"}"#, 0).unwrap_err();
        assert!(e.to_string().contains("not \"knn\""), "{e}");
        assert!(RouterConfig::parse(RouterKind::Knn, "[1]", 0).is_err());
        assert!(RouterConfig::parse(RouterKind::Knn, "{", 0).is_err());
    }

    #[test]
    fn specs_parse_and_refuse_clearly() {
        assert_eq!(
            RouterSpec::parse("knn-ucb").unwrap(),
            RouterSpec::Kind(RouterKind::KnnUcb)
        );
        assert_eq!(
            RouterSpec::parse("fixed:gpt").unwrap(),
            RouterSpec::Fixed("gpt".into())
        );
        assert_eq!(
            RouterSpec::parse("file:r.safetensors").unwrap(),
            RouterSpec::File("r.safetensors".into())
        );
        for bad in ["fixed", "fixed:", "quantum", "file:"] {
            let e = RouterSpec::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad}: {e}");
        }
        let e = RouterSpec::parse("quantum").unwrap_err().to_string();
        assert!(
            e.contains("known: random, cheapest") && e.contains("fixed:<model id>"),
            "{e}"
        );
    }

    #[test]
    fn every_kind_fits_saves_loads_and_gives_typed_access() {
        let train = split();
        let q = QueryFeatures::new(vec![0.9, 0.1, 0.3]).unwrap();
        for kind in RouterKind::ALL {
            if kind == RouterKind::Fixed {
                assert!(AnyRouter::fit(kind, &train, &FitOptions::default()).is_err());
                continue;
            }
            if matches!(kind, RouterKind::Knn | RouterKind::Mf | RouterKind::Cascade) {
                // The searches are covered by their own tests and the quality tests.
                let config = RouterConfig::default_for(kind, 0).unwrap();
                let config = match config {
                    RouterConfig::Knn(c) => RouterConfig::Knn(KnnConfig { k: 5, ..c }),
                    RouterConfig::Mf(c) => RouterConfig::Mf(MfConfig {
                        dim: 4,
                        max_epochs: 5,
                        ..c
                    }),
                    other => other,
                };
                let r = AnyRouter::fit_config(&config, &train);
                #[cfg(not(feature = "train"))]
                if kind == RouterKind::Mf {
                    assert_eq!(r.unwrap_err().kind(), crate::ErrorKind::Unsupported);
                    continue;
                }
                check(&r.unwrap(), kind, &q);
                continue;
            }
            let fitted = AnyRouter::fit(kind, &train, &FitOptions::default()).unwrap();
            assert!(fitted.search.is_none());
            check(&fitted.router, kind, &q);
        }
        let fixed = AnyRouter::fit_config(
            &RouterConfig::Baseline(Baseline::Fixed { model: "b".into() }),
            &train,
        )
        .unwrap();
        check(&fixed, RouterKind::Fixed, &q);
    }

    fn check(r: &AnyRouter, kind: RouterKind, q: &QueryFeatures) {
        assert_eq!(r.kind(), kind);
        assert_eq!(r.router().kind(), kind.name());
        assert_eq!(r.as_learner().is_some(), kind.is_learner(), "{kind}");
        assert_eq!(r.as_cascade().is_some(), kind == RouterKind::Cascade);
        assert_eq!(r.as_knn().is_some(), kind == RouterKind::Knn);
        let d = r.route(q, &Objective::new(0.0)).unwrap();
        let bytes = r.to_bytes().unwrap();
        let again = AnyRouter::from_bytes(&bytes).unwrap();
        assert_eq!(again.kind(), kind);
        assert_eq!(
            again.to_bytes().unwrap(),
            bytes,
            "{kind}: save is not stable"
        );
        assert_eq!(again.route(q, &Objective::new(0.0)).unwrap(), d, "{kind}");
        assert_eq!(r.shared().kind(), kind.name());
    }

    #[test]
    fn learners_merge_by_kind_and_share_handles() {
        let train = split();
        let a = AnyLearner::cold(RouterKind::KnnUcb, train.pool(), 3, None, 0).unwrap();
        let handle = a.clone();
        let b = a.snapshot();
        b.observe_split(&train).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(handle.observations(), b.observations());
        assert!(a.greedy().is_greedy() && !a.exploring().is_greedy());
        let other = AnyLearner::cold(RouterKind::Linucb, train.pool(), 3, None, 0).unwrap();
        let e = a.merge(&other).unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot merge a linucb router into a knn-ucb"),
            "{e}"
        );
        let e = AnyLearner::cold(RouterKind::Knn, train.pool(), 3, None, 0).unwrap_err();
        assert!(e.to_string().contains("does not learn"), "{e}");
    }

    #[test]
    fn corrupt_configs_are_format_errors() {
        let train = split();
        let r = AnyRouter::fit(RouterKind::Zero, &train, &FitOptions::default())
            .unwrap()
            .router;
        let mut saved = r.to_saved().unwrap();
        saved.config = r#"{"type":"quantum"}"#.into();
        let e = AnyRouter::from_saved(saved).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Format);
        assert!(
            e.to_string()
                .contains("bad config: unknown variant `quantum`"),
            "{e}"
        );
    }
}
