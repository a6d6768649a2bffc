//! The learning routers (contextual bandits): `BanditRouter`, a subclass of `Router` with what
//! every bandit offers (`merge`, `snapshot`, `greedy`, ...), and one subclass per kind with its
//! constructors. The engine's `AnyLearner` is the closed set of bandit kinds, so that Python can
//! hold any of them and merge two of the same kind.

use numpy::PyUntypedArrayMethods;
use pointsman::registry::{AnyLearner, RouterConfig, RouterKind};
use pointsman::{Error, ModelCard, ModelPool};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pyo3::PyClassInitializer;

use crate::arrays;
use crate::convert::router_config;
use crate::data::PySplit;
use crate::embedder::PyEmbedder;
use crate::errors::{type_error, IntoPyResult};
use crate::parallel::run;
use crate::router::{wrap_with, PyRouter};

/// The engine bandit of a Python router, and its embedder.
fn parts<'a>(
    slf: &'a Bound<'_, PyBanditRouter>,
) -> PyResult<(&'a AnyLearner, Option<Py<PyEmbedder>>)> {
    let base = slf.as_super().get();
    let bandit = base
        .inner
        .as_learner()
        .ok_or_else(|| Error::Unsupported(format!("{} is not a bandit", base.inner.kind())))
        .py()?;
    Ok((
        bandit,
        base.embedder.as_ref().map(|e| e.clone_ref(slf.py())),
    ))
}

/// The engine bandit of another Python router given as an argument.
fn bandit_of<'a>(obj: &'a Bound<'_, PyAny>, name: &str) -> PyResult<&'a AnyLearner> {
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
        wrap_with(slf.py(), b.greedy().into(), e)
    }

    /// A handle on the same learned state that explores.
    fn exploring(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let (b, e) = parts(slf)?;
        wrap_with(slf.py(), b.exploring().into(), e)
    }

    /// An independent copy of the router and its learned state (a replica).
    fn snapshot(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let (b, e) = parts(slf)?;
        let copy = slf.py().detach(|| b.snapshot());
        wrap_with(slf.py(), copy.into(), e)
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

macro_rules! bandit_class {
    ($py:ident, $name:literal, $doc:literal, $kind:expr) => {
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
                let config: RouterConfig = router_config(py, $kind, config)?;
                let pool = pool(py, models)?;
                let learner =
                    AnyLearner::cold_config(&config, &pool, dim, embedding_model.as_deref())
                        .py()?;
                let base = PyRouter {
                    inner: learner.into(),
                    embedder: None,
                };
                Ok(PyClassInitializer::from(base)
                    .add_subclass(PyBanditRouter)
                    .add_subclass($py))
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
                let config: RouterConfig = router_config(py, $kind, config)?;
                let split = split.get().split();
                let learner = run(py, || AnyLearner::warm_start(&config, split))?;
                wrap_with(py, learner.into(), None)
            }
        }
    };
}

bandit_class!(
    PyLinUcbRouter,
    "LinUcbRouter",
    "LinUCB: per-model ridge regression on the query embedding, plus an upper confidence bound.",
    RouterKind::Linucb
);
bandit_class!(
    PyThompsonRouter,
    "ThompsonRouter",
    "Linear Thompson sampling: the ridge regression of LinUCB, exploring by posterior draws.",
    RouterKind::Thompson
);
bandit_class!(
    PyKnnUcbRouter,
    "KnnUcbRouter",
    "kNN-UCB: similarity-weighted scores of each model's own past outcomes near the query, plus a bonus.",
    RouterKind::KnnUcb
);
bandit_class!(
    PyClusterUcbRouter,
    "ClusterUcbRouter",
    "Cluster UCB: per-(cluster, model) cells with an additive prior and a logarithmic bonus.",
    RouterKind::ClusterUcb
);
