//! The learning routers (contextual bandits): `BanditRouter`, a subclass of `Router` with what
//! every bandit offers (`merge`, `snapshot`, `greedy`, ...), and one subclass per kind with its
//! constructors. The engine's `BanditRouter<L>` is generic; [`Bandit`] is the closed set of its
//! kinds, so that Python can hold any of them and merge two of the same kind.

use std::sync::Arc;

use numpy::PyUntypedArrayMethods;
use pointsman::io::{RouterConfig, SavedRouter};
use pointsman::routers::bandit::{
    ClusterUcbConfig, ClusterUcbRouter, KnnUcbConfig, KnnUcbRouter, LinTsRouter, LinUcbRouter,
    LinearConfig,
};
use pointsman::{Error, ModelCard, ModelPool, Router};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pyo3::PyClassInitializer;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::arrays;
use crate::convert::from_kwargs;
use crate::data::PySplit;
use crate::embedder::PyEmbedder;
use crate::errors::{type_error, IntoPyResult};
use crate::parallel::run;
use crate::router::{wrap_engine, Engine, PyRouter};

/// A bandit router of any kind, as a handle on its learned state.
#[derive(Debug)]
pub enum Bandit {
    /// `linucb`.
    LinUcb(LinUcbRouter),
    /// `thompson`.
    Thompson(LinTsRouter),
    /// `knn-ucb`.
    KnnUcb(KnnUcbRouter),
    /// `cluster-ucb`.
    ClusterUcb(ClusterUcbRouter),
}

/// Runs `$e` with `$r` bound to the engine router, whatever the kind.
macro_rules! each {
    ($b:expr, $r:ident => $e:expr) => {
        match $b {
            Bandit::LinUcb($r) => $e,
            Bandit::Thompson($r) => $e,
            Bandit::KnnUcb($r) => $e,
            Bandit::ClusterUcb($r) => $e,
        }
    };
}

/// Rebuilds `$self` as the same kind from the handle `$e` makes of `$r`.
macro_rules! map {
    ($b:expr, $r:ident => $e:expr) => {
        match $b {
            Bandit::LinUcb($r) => Bandit::LinUcb($e),
            Bandit::Thompson($r) => Bandit::Thompson($e),
            Bandit::KnnUcb($r) => Bandit::KnnUcb($e),
            Bandit::ClusterUcb($r) => Bandit::ClusterUcb($e),
        }
    };
}

impl Bandit {
    /// The bandit a saved router holds; `Err(saved)` back for other kinds.
    pub fn from_saved(saved: SavedRouter) -> pointsman::Result<Result<Bandit, SavedRouter>> {
        Ok(Ok(match saved.config.clone() {
            RouterConfig::Linucb(c) => Bandit::LinUcb(LinUcbRouter::from_saved(c, saved)?),
            RouterConfig::Thompson(c) => Bandit::Thompson(LinTsRouter::from_saved(c, saved)?),
            RouterConfig::KnnUcb(c) => Bandit::KnnUcb(KnnUcbRouter::from_saved(c, saved)?),
            RouterConfig::ClusterUcb(c) => {
                Bandit::ClusterUcb(ClusterUcbRouter::from_saved(c, saved)?)
            }
            _ => return Ok(Err(saved)),
        }))
    }

    /// A second handle on the same learned state (routing as this one does).
    pub fn handle(&self) -> Bandit {
        map!(self, r => if r.is_greedy() { r.greedy() } else { r.exploring() })
    }

    /// The handle as the engine's router trait object (the same learned state).
    pub fn router(&self) -> Arc<dyn Router> {
        each!(self.handle(), r => Arc::new(r))
    }

    fn snapshot(&self) -> Bandit {
        map!(self, r => r.snapshot())
    }

    fn greedy(&self) -> Bandit {
        map!(self, r => r.greedy())
    }

    fn exploring(&self) -> Bandit {
        map!(self, r => r.exploring())
    }

    fn is_greedy(&self) -> bool {
        each!(self, r => r.is_greedy())
    }

    fn pulls(&self) -> Vec<u64> {
        each!(self, r => r.pulls())
    }

    fn kind(&self) -> &'static str {
        each!(self, r => r.kind())
    }

    fn forget_model(&self, id: &str) -> pointsman::Result<()> {
        each!(self, r => r.forget_model(id))
    }

    fn observe_split(&self, split: &pointsman::data::Split) -> pointsman::Result<()> {
        each!(self, r => r.observe_split(split))
    }

    fn fit_unlabelled(&self, batch: &pointsman::FeatureBatch<'_>) -> pointsman::Result<()> {
        each!(self, r => r.fit_unlabelled(batch))
    }

    fn other_kind(&self, other: &Bandit) -> Error {
        Error::Config(format!(
            "cannot merge a {} router into a {} router",
            other.kind(),
            self.kind()
        ))
    }

    fn merge(&self, other: &Bandit) -> pointsman::Result<()> {
        match (self, other) {
            (Bandit::LinUcb(a), Bandit::LinUcb(b)) => a.merge(b),
            (Bandit::Thompson(a), Bandit::Thompson(b)) => a.merge(b),
            (Bandit::KnnUcb(a), Bandit::KnnUcb(b)) => a.merge(b),
            (Bandit::ClusterUcb(a), Bandit::ClusterUcb(b)) => a.merge(b),
            _ => Err(self.other_kind(other)),
        }
    }

    fn merge_since(&self, other: &Bandit, base: &Bandit) -> pointsman::Result<()> {
        match (self, other, base) {
            (Bandit::LinUcb(a), Bandit::LinUcb(b), Bandit::LinUcb(c)) => a.merge_since(b, c),
            (Bandit::Thompson(a), Bandit::Thompson(b), Bandit::Thompson(c)) => a.merge_since(b, c),
            (Bandit::KnnUcb(a), Bandit::KnnUcb(b), Bandit::KnnUcb(c)) => a.merge_since(b, c),
            (Bandit::ClusterUcb(a), Bandit::ClusterUcb(b), Bandit::ClusterUcb(c)) => {
                a.merge_since(b, c)
            }
            (_, b, c) if b.kind() == self.kind() => Err(self.other_kind(c)),
            _ => Err(self.other_kind(other)),
        }
    }
}

/// The engine bandit of a Python router, and its embedder.
fn parts<'a>(slf: &'a Bound<'_, PyBanditRouter>) -> PyResult<(&'a Bandit, Option<Py<PyEmbedder>>)> {
    let base = slf.as_super().get();
    let bandit = base
        .bandit
        .as_ref()
        .ok_or_else(|| Error::Unsupported(format!("{} is not a bandit", base.inner.kind())))
        .py()?;
    Ok((
        bandit,
        base.embedder.as_ref().map(|e| e.clone_ref(slf.py())),
    ))
}

/// The engine bandit of another Python router given as an argument.
fn bandit_of<'a>(obj: &'a Bound<'_, PyAny>, name: &str) -> PyResult<&'a Bandit> {
    let router = obj
        .cast::<PyBanditRouter>()
        .map_err(|_| type_error(name, "a bandit router", obj))?;
    Ok(parts(router)?.0)
}

/// The model pool from a list of model ids (no prices: the cost estimate then comes from observed
/// costs only) or of model cards (`{"id": ..., "input_usd_per_mtok": ..., "output_usd_per_mtok":
/// ..., "default_output_tokens": ...}`).
pub(crate) fn pool(py: Python<'_>, models: &Bound<'_, PyAny>) -> PyResult<ModelPool> {
    if models.is_instance_of::<PyString>() {
        return Err(type_error(
            "models",
            "a list of model ids or model cards",
            models,
        ));
    }
    let mut cards = Vec::new();
    for m in models.try_iter()? {
        let m = m?;
        if m.is_instance_of::<PyString>() {
            cards.push(ModelCard::new(m.extract::<String>()?, 0.0, 0.0));
        } else if let Ok(d) = m.cast::<PyDict>() {
            let card: ModelCard = crate::convert::from_kwargs(py, Some(d), "model card")?;
            cards.push(card);
        } else {
            return Err(type_error(
                "models",
                "a list of model ids or model cards",
                &m,
            ));
        }
    }
    ModelPool::new(cards).py()
}

/// A config from keyword arguments over `base` (the kind's defaults): fields given replace the
/// base's.
pub(crate) fn config_over<T: Serialize + DeserializeOwned>(
    py: Python<'_>,
    base: T,
    kwargs: Option<&Bound<'_, PyDict>>,
    what: &str,
) -> PyResult<T> {
    let given: serde_json::Value = from_kwargs(py, kwargs, what)?;
    let mut value = serde_json::to_value(base)
        .map_err(|e| Error::Backend(format!("{what}: {e}")))
        .py()?;
    if let (Some(v), Some(g)) = (value.as_object_mut(), given.as_object()) {
        for (k, x) in g {
            v.insert(k.clone(), x.clone());
        }
    }
    serde_json::from_value(value)
        .map_err(|e| Error::Config(format!("{what}: {e}")))
        .py()
}

/// A bandit router of every kind: learns online from the outcome of the model it chose
/// (`observe`), merges replicas, and pickles with its learned state.
#[pyclass(name = "BanditRouter", module = "pointsman", extends = PyRouter, subclass, frozen)]
#[derive(Debug)]
pub struct PyBanditRouter;

#[pymethods]
impl PyBanditRouter {
    /// Observations per model so far (merges included), in the order of `models`.
    #[getter]
    fn pulls(slf: &Bound<'_, Self>) -> PyResult<Vec<u64>> {
        Ok(parts(slf)?.0.pulls())
    }

    /// Whether this handle routes without exploration (see `greedy`).
    #[getter]
    fn is_greedy(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(parts(slf)?.0.is_greedy())
    }

    /// A handle on the same learned state that routes without exploration (each model's
    /// posterior mean): observations through either handle reach both.
    fn greedy(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let (b, e) = parts(slf)?;
        wrap_engine(slf.py(), Engine::Bandit(b.greedy()), e)
    }

    /// A handle on the same learned state that explores.
    fn exploring(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let (b, e) = parts(slf)?;
        wrap_engine(slf.py(), Engine::Bandit(b.exploring()), e)
    }

    /// An independent copy of the router and its learned state (a replica).
    fn snapshot(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let (b, e) = parts(slf)?;
        let copy = slf.py().detach(|| b.snapshot());
        wrap_engine(slf.py(), Engine::Bandit(copy), e)
    }

    /// Adds everything `other` (a router of the same kind, models and configuration) observed
    /// to this router.
    fn merge(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        let (b, _) = parts(slf)?;
        let o = bandit_of(other, "other")?;
        run(slf.py(), || b.merge(o))
    }

    /// Adds what `other` observed after it was forked from `base` (by `snapshot`, or by saving
    /// and loading): replicas of one warm-started router merge without counting the warm start
    /// twice.
    fn merge_since(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        base: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (b, _) = parts(slf)?;
        let o = bandit_of(other, "other")?;
        let base = bandit_of(base, "base")?;
        run(slf.py(), || b.merge_since(o, base))
    }

    /// Wipes model `model_id`'s statistics (as a drift alarm does).
    fn forget_model(slf: &Bound<'_, Self>, model_id: &str) -> PyResult<()> {
        parts(slf)?.0.forget_model(model_id).py()
    }

    /// Learns every model's outcome on every query of a labelled split (full information).
    fn observe_split(slf: &Bound<'_, Self>, split: &Bound<'_, PySplit>) -> PyResult<()> {
        let (b, _) = parts(slf)?;
        let split = split.get().split();
        run(slf.py(), || b.observe_split(split))
    }

    /// Fits the unsupervised parts on unlabelled embeddings (float32 `[n, dim]`): the PCA
    /// projection of a linear router, the clusters of `cluster-ucb`.
    fn fit_unlabelled(slf: &Bound<'_, Self>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let (b, _) = parts(slf)?;
        let x = arrays::array::<f32>(x, "x", 2, "[n, dim]")?;
        let dim = x.shape()[1];
        let data = arrays::values(&x)?;
        run(slf.py(), || {
            b.fit_unlabelled(&pointsman::FeatureBatch::new(data, dim)?)
        })
    }
}

/// The Python class initializer of a bandit (the class is picked by its kind).
pub fn initializer(base: PyRouter) -> PyClassInitializer<PyBanditRouter> {
    PyClassInitializer::from(base).add_subclass(PyBanditRouter)
}

macro_rules! bandit_class {
    ($py:ident, $name:literal, $doc:literal, $variant:ident, $engine:ty, $config:ty, $default:expr, $what:literal) => {
        #[doc = $doc]
        #[pyclass(name = $name, module = "pointsman", extends = PyBanditRouter, frozen)]
        #[derive(Debug)]
        pub struct $py;

        #[pymethods]
        impl $py {
            /// A cold router: `models` (model ids, or model cards with prices) and embeddings
            /// of `dim` values, optionally from `embedding_model`; keyword arguments set the
            /// kind's config fields (as `pointsman train --config` takes them).
            #[new]
            #[pyo3(signature = (models, dim, *, embedding_model = None, **config))]
            fn new(
                py: Python<'_>,
                models: &Bound<'_, PyAny>,
                dim: usize,
                embedding_model: Option<String>,
                config: Option<&Bound<'_, PyDict>>,
            ) -> PyResult<PyClassInitializer<Self>> {
                let config: $config = config_over(py, $default, config, $what)?;
                let pool = pool(py, models)?;
                let router = <$engine>::new(pool, dim, embedding_model.as_deref(), config).py()?;
                let bandit = Bandit::$variant(router);
                Ok(
                    initializer(PyRouter::new(bandit.router(), None, Some(bandit)))
                        .add_subclass($py),
                )
            }

            /// Warm start: a router fitted on a labelled split (its unsupervised parts on the
            /// split's embeddings, then every model's outcome on every query); keyword
            /// arguments as for the constructor.
            #[staticmethod]
            #[pyo3(signature = (split, **config))]
            fn fit(
                py: Python<'_>,
                split: &Bound<'_, PySplit>,
                config: Option<&Bound<'_, PyDict>>,
            ) -> PyResult<Py<PyAny>> {
                let config: $config = config_over(py, $default, config, $what)?;
                let split = split.get().split();
                let router = run(py, || <$engine>::warm_start(split, config))?;
                wrap_engine(py, Engine::Bandit(Bandit::$variant(router)), None)
            }
        }
    };
}

bandit_class!(
    PyLinUcbRouter,
    "LinUcbRouter",
    "LinUCB: per-model ridge regression on the query embedding, plus an upper confidence bound.",
    LinUcb,
    LinUcbRouter,
    LinearConfig,
    LinearConfig::default(),
    "linucb config"
);
bandit_class!(
    PyThompsonRouter,
    "ThompsonRouter",
    "Linear Thompson sampling: the ridge regression of LinUCB, exploring by posterior draws.",
    Thompson,
    LinTsRouter,
    LinearConfig,
    LinearConfig::thompson(),
    "thompson config"
);
bandit_class!(
    PyKnnUcbRouter,
    "KnnUcbRouter",
    "kNN-UCB: similarity-weighted scores of each model's own past outcomes near the query, plus a bonus.",
    KnnUcb,
    KnnUcbRouter,
    KnnUcbConfig,
    KnnUcbConfig::default(),
    "knn-ucb config"
);
bandit_class!(
    PyClusterUcbRouter,
    "ClusterUcbRouter",
    "Cluster UCB: per-(cluster, model) cells with an additive prior and a logarithmic bonus.",
    ClusterUcb,
    ClusterUcbRouter,
    ClusterUcbConfig,
    ClusterUcbConfig::default(),
    "cluster-ucb config"
);
