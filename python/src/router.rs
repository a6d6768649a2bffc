//! The `Router` base class: every method a router has, whatever its kind, on one wrapper around
//! `Arc<dyn pointsman::Router>`. Each kind is a Python subclass that only adds its constructors
//! (`KnnRouter.fit`, ...); [`wrap`] picks the subclass for a router's kind, so a loaded or
//! unpickled router comes back as the class it was saved from.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{IntoPyArray, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pointsman::{Error, FeatureBatch, Feedback, ModelPool, Objective, QueryFeatures, Router};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyString, PyTuple, PyType};
use pyo3::PyClassInitializer;

use crate::arrays;
use crate::convert::repr;
use crate::errors::{to_py_err, type_error, IntoPyResult};
use crate::parallel::run;

/// A fitted router. Not constructed directly: use a kind's constructor (`KnnRouter.fit`, ...) or
/// `load_router`.
#[pyclass(name = "Router", module = "pointsman", subclass, frozen)]
#[derive(Debug)]
pub struct PyRouter {
    pub inner: Arc<dyn Router>,
}

/// A router as an instance of the Python class of its kind.
pub fn wrap(py: Python<'_>, inner: Arc<dyn Router>) -> PyResult<Py<PyAny>> {
    let kind = inner.kind();
    let base = PyClassInitializer::from(PyRouter { inner });
    Ok(match kind {
        "knn" => Py::new(py, base.add_subclass(crate::routers::PyKnnRouter))?.into_any(),
        "mf" => Py::new(py, base.add_subclass(crate::routers::PyMfRouter))?.into_any(),
        "random" | "cheapest" | "best-single" | "fixed" | "zero" => {
            Py::new(py, base.add_subclass(crate::routers::PyBaselineRouter))?.into_any()
        }
        _ => Py::new(py, base)?.into_any(),
    })
}

/// One query's features from its embedding and optional token count and task tag.
fn features(
    embedding: &[f32],
    prompt_tokens: Option<f64>,
    task: Option<String>,
) -> pointsman::Result<QueryFeatures> {
    let mut q = QueryFeatures::new(embedding.to_vec())?;
    if let Some(t) = prompt_tokens {
        q = q.with_prompt_tokens(t)?;
    }
    if let Some(t) = task {
        q = q.with_task(t);
    }
    Ok(q)
}

/// A model named by id or by index.
enum ModelRef {
    Id(String),
    Index(i64),
}

impl ModelRef {
    /// `model` as an id (str) or an index (int, NumPy integers included; not bool).
    fn extract(model: &Bound<'_, PyAny>) -> PyResult<ModelRef> {
        if model.is_instance_of::<PyString>() {
            return Ok(ModelRef::Id(model.extract()?));
        }
        if !model.is_instance_of::<PyBool>() {
            if let Ok(i) = model.extract::<i64>() {
                return Ok(ModelRef::Index(i));
            }
        }
        Err(type_error(
            "model",
            "a model id (str) or index (int)",
            model,
        ))
    }

    /// The model's index in `pool`.
    fn resolve(&self, pool: &ModelPool) -> pointsman::Result<usize> {
        match self {
            ModelRef::Id(id) => pool.index_of(id),
            ModelRef::Index(i) => {
                let index = usize::try_from(*i)
                    .map_err(|_| Error::UnknownModel(format!("#{i} (model indices start at 0)")))?;
                pool.check_index(index).map(|()| index)
            }
        }
    }
}

#[pymethods]
impl PyRouter {
    /// The router kind (`"knn"`, `"mf"`, `"zero"`, ...).
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    /// The candidate model ids; model indices refer to this list.
    #[getter]
    fn models(&self) -> Vec<String> {
        crate::data::model_ids(self.inner.models())
    }

    /// The embedding dimension the router expects.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// The embedding model the router was trained on, when known.
    #[getter]
    fn embedding_model(&self) -> Option<&str> {
        self.inner.embedding_model()
    }

    /// The router's configuration, as the JSON object its saved file holds (`{"type": "knn", ...}`).
    #[getter]
    fn config(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let saved = self.inner.to_saved().py()?;
        crate::convert::to_python(py, &saved.config)
    }

    /// Whether the router learns from feedback (`observe`).
    #[getter]
    fn learns(&self) -> bool {
        self.inner.as_learner().is_some()
    }

    /// Observations learned so far; None for a router that does not learn.
    #[getter]
    fn observations(&self) -> Option<u64> {
        self.inner.as_learner().map(|l| l.observations())
    }

    /// Routes one query: `x` is its embedding (a float32 vector `[dim]`; other numeric vectors
    /// are converted). Returns the `Decision` with the best utility
    /// `quality - cost_weight * cost` among the allowed models.
    #[pyo3(signature = (x, cost_weight = 0.0, *, allowed = None, prompt_tokens = None, task = None))]
    fn route(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        cost_weight: f64,
        allowed: Option<Vec<String>>,
        prompt_tokens: Option<f64>,
        task: Option<String>,
    ) -> PyResult<Decision> {
        let x = arrays::array::<f32>(x, "x", 1, "[dim]")?;
        let q = features(arrays::values(&x)?, prompt_tokens, task).py()?;
        let objective = Objective {
            cost_weight,
            allowed,
        };
        let router = &self.inner;
        run(py, || router.route(&q, &objective)).map(Decision::from)
    }

    /// The `k` best allowed models for one query, best first.
    #[pyo3(signature = (x, k, cost_weight = 0.0, *, allowed = None, prompt_tokens = None, task = None))]
    #[allow(clippy::too_many_arguments)]
    fn top_k(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        k: usize,
        cost_weight: f64,
        allowed: Option<Vec<String>>,
        prompt_tokens: Option<f64>,
        task: Option<String>,
    ) -> PyResult<Vec<Alternative>> {
        let x = arrays::array::<f32>(x, "x", 1, "[dim]")?;
        let q = features(arrays::values(&x)?, prompt_tokens, task).py()?;
        let objective = Objective {
            cost_weight,
            allowed,
        };
        let router = &self.inner;
        let alts = run(py, || router.top_k(&q, &objective, k))?;
        Ok(alts.into_iter().map(Alternative::from).collect())
    }

    /// Routes every row of `x` (float32 `[n, dim]`, read in place; other numeric arrays are
    /// converted once) in parallel, without the GIL. Returns the chosen model indices (uint32
    /// `[n]`); with `return_estimates=True`, the tuple `(choices, quality, cost)` with the
    /// estimates the choices were made from (float64 `[n, models]`).
    #[pyo3(signature = (x, cost_weight = 0.0, *, allowed = None, prompt_tokens = None, tasks = None, return_estimates = false))]
    #[allow(clippy::too_many_arguments)]
    fn route_batch<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        cost_weight: f64,
        allowed: Option<Vec<String>>,
        prompt_tokens: Option<&Bound<'py, PyAny>>,
        tasks: Option<Vec<Option<String>>>,
        return_estimates: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let x = arrays::array::<f32>(x, "x", 2, "[n, dim]")?;
        let tokens: Option<PyReadonlyArrayDyn<'py, f64>> = prompt_tokens
            .map(|t| arrays::array::<f64>(t, "prompt_tokens", 1, "[n]"))
            .transpose()?;
        let dim = x.shape()[1];
        let data = arrays::values(&x)?;
        let tokens = tokens.as_ref().map(arrays::values).transpose()?;
        let objective = Objective {
            cost_weight,
            allowed,
        };
        let router = &self.inner;
        let (choices, estimates) = run(py, || {
            let mut batch = FeatureBatch::new(data, dim)?;
            if let Some(t) = tokens {
                batch = batch.with_prompt_tokens(t)?;
            }
            if let Some(t) = &tasks {
                batch = batch.with_tasks(t)?;
            }
            if return_estimates {
                let (choices, est) = router.route_batch_with_estimates(&batch, &objective)?;
                Ok((choices, Some(est)))
            } else {
                Ok((router.route_batch(&batch, &objective)?, None))
            }
        })?;
        let choices = choices.into_pyarray(py).into_any();
        match estimates {
            None => Ok(choices),
            Some(est) => {
                let (rows, models) = (est.rows(), est.models());
                let quality = arrays::matrix(py, est.quality, rows, models)?;
                let cost = arrays::matrix(py, est.cost, rows, models)?;
                Ok(PyTuple::new(py, [choices, quality.into_any(), cost.into_any()])?.into_any())
            }
        }
    }

    /// Learns from one observed outcome: the query's embedding, the model that answered (id or
    /// index), the observed quality in [0, 1] and cost in USD. Raises `UnsupportedError` for a
    /// router that does not learn (see `learns`).
    #[pyo3(signature = (embedding, model, quality, cost, *, prompt_tokens = None, task = None))]
    #[allow(clippy::too_many_arguments)]
    fn observe(
        &self,
        py: Python<'_>,
        embedding: &Bound<'_, PyAny>,
        model: &Bound<'_, PyAny>,
        quality: f64,
        cost: f64,
        prompt_tokens: Option<f64>,
        task: Option<String>,
    ) -> PyResult<()> {
        let emb = arrays::array::<f32>(embedding, "embedding", 1, "[dim]")?;
        let model = ModelRef::extract(model)?;
        let learner = self
            .inner
            .as_learner()
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "{} routers do not learn from feedback",
                    self.inner.kind()
                ))
            })
            .py()?;
        let model = model.resolve(self.inner.models()).py()?;
        let features = features(arrays::values(&emb)?, prompt_tokens, task).py()?;
        run(py, || {
            learner.observe(&Feedback {
                features: &features,
                model,
                quality,
                cost,
            })
        })
    }

    /// Saves the router to `path` as one `.safetensors` file, atomically.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let router = &self.inner;
        run(py, || router.save(&path))
    }

    /// The bytes of the router's saved file (what `save` writes).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let router = &self.inner;
        let bytes = run(py, || router.to_saved()?.to_bytes())?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Loads a saved router of this class (`Router.load` accepts every kind).
    #[classmethod]
    fn load(cls: &Bound<'_, PyType>, path: PathBuf) -> PyResult<Py<PyAny>> {
        let py = cls.py();
        let what = path.display().to_string();
        let router = wrap(py, run(py, || pointsman::io::load_router(&path))?)?;
        if !router.bind(py).is_instance(cls)? {
            return Err(to_py_err(Error::format(
                what,
                format!(
                    "holds a {} router, not a {}",
                    router.bind(py).getattr("kind")?,
                    cls.qualname()?
                ),
            )));
        }
        Ok(router)
    }

    /// Pickles through the saved bytes.
    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let rebuild = py
            .import("pointsman._native")?
            .getattr("router_from_bytes")?;
        Ok((rebuild, (self.to_bytes(py)?,)))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let r = &slf.get().inner;
        Ok(format!(
            "{}(kind={}, dim={}, models={})",
            slf.get_type().qualname()?,
            repr(py, r.kind())?,
            r.dim(),
            repr(py, crate::data::model_ids(r.models()))?
        ))
    }
}

/// Loads a saved router (any kind) as an instance of its kind's class.
#[pyfunction]
pub fn load_router(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyAny>> {
    let router = run(py, || pointsman::io::load_router(&path))?;
    wrap(py, router)
}

/// A router from the bytes of a saved file (`Router.to_bytes`, pickling).
#[pyfunction]
pub fn router_from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Py<PyAny>> {
    let router = run(py, || pointsman::io::router_from_bytes(data))?;
    wrap(py, router)
}

/// One model's figures in a decision.
#[pyclass(name = "Alternative", module = "pointsman", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct Alternative {
    /// Index in the router's models.
    model: usize,
    /// The model's id.
    model_id: String,
    /// Expected quality.
    quality: f64,
    /// Expected cost in USD.
    cost: f64,
    /// `quality - cost_weight * cost`.
    utility: f64,
}

impl From<pointsman::Alternative> for Alternative {
    fn from(a: pointsman::Alternative) -> Self {
        Alternative {
            model: a.model,
            model_id: a.model_id,
            quality: a.quality,
            cost: a.cost,
            utility: a.utility,
        }
    }
}

#[pymethods]
impl Alternative {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Alternative(model_id={}, model={}, quality={}, cost={}, utility={})",
            repr(py, &self.model_id)?,
            self.model,
            repr(py, self.quality)?,
            repr(py, self.cost)?,
            repr(py, self.utility)?
        ))
    }
}

/// The outcome of routing one query: the chosen model, its figures, the ranked alternatives and
/// the signals behind the estimate.
#[pyclass(name = "Decision", module = "pointsman", frozen, get_all)]
#[derive(Debug)]
pub struct Decision {
    /// Index of the chosen model in the router's models.
    model: usize,
    /// Id of the chosen model.
    model_id: String,
    /// Its expected quality.
    quality: f64,
    /// Its expected cost in USD.
    cost: f64,
    /// Its utility under the objective.
    utility: f64,
    /// The cost weight the decision was made with.
    cost_weight: f64,
    /// The other allowed models, best utility first.
    alternatives: Vec<Alternative>,
    /// Reference queries (neighbours, observations) the estimate rests on, when known.
    neighbours: Option<u32>,
    /// Out-of-distribution score in [0, 1], when the router computes one.
    ood: Option<f32>,
}

impl From<pointsman::Decision> for Decision {
    fn from(d: pointsman::Decision) -> Self {
        Decision {
            model: d.model,
            model_id: d.model_id,
            quality: d.quality,
            cost: d.cost,
            utility: d.utility,
            cost_weight: d.cost_weight,
            alternatives: d.alternatives.into_iter().map(Alternative::from).collect(),
            neighbours: d.signals.neighbours,
            ood: d.signals.ood,
        }
    }
}

#[pymethods]
impl Decision {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Decision(model_id={}, model={}, quality={}, cost={}, utility={}, cost_weight={})",
            repr(py, &self.model_id)?,
            self.model,
            repr(py, self.quality)?,
            repr(py, self.cost)?,
            repr(py, self.utility)?,
            repr(py, self.cost_weight)?
        ))
    }
}
