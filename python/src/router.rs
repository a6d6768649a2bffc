//! The `Router` base class: every method a router has, whatever its kind, on one wrapper around
//! the engine's `AnyRouter`. Each kind is a Python subclass that only adds its constructors
//! (`KnnRouter.fit`, ...); [`wrap`] picks the subclass for a router's kind, so a loaded or
//! unpickled router comes back as the class it was saved from.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{IntoPyArray, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pointsman::registry::AnyLearner;
use pointsman::{
    Allowed, AnyRouter, Error, FeatureBatch, Feedback, ModelPool, Objective, QueryFeatures,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyString, PyTuple, PyType};
use pyo3::PyClassInitializer;

use crate::arrays;
use crate::convert::repr;
use crate::embedder::PyEmbedder;
use crate::errors::{to_py_err, type_error, IntoPyResult};
use crate::parallel::{run, run_here};

/// A fitted router. Not constructed directly: use a kind's constructor (`KnnRouter.fit`, ...) or
/// `load_router`.
#[pyclass(name = "Router", module = "pointsman", subclass, frozen, weakref)]
#[derive(Debug)]
pub struct PyRouter {
    /// The engine router, whatever its kind.
    pub inner: AnyRouter,
    /// The embedder that turns text into this router's input, when one is attached.
    pub embedder: Option<Py<PyEmbedder>>,
}

/// A router as an instance of the Python class of its kind.
pub fn wrap(py: Python<'_>, inner: impl Into<AnyRouter>) -> PyResult<Py<PyAny>> {
    wrap_with(py, inner.into(), None)
}

/// [`wrap`] with an embedder attached (checked to make the router's input).
pub fn wrap_with(
    py: Python<'_>,
    inner: AnyRouter,
    embedder: Option<Py<PyEmbedder>>,
) -> PyResult<Py<PyAny>> {
    if let Some(e) = &embedder {
        let e = e.get().embedder().py()?;
        pointsman::embed::check_compatible(&e, inner.router()).py()?;
    }
    let learner = inner.as_learner().cloned();
    let base = PyClassInitializer::from(PyRouter {
        inner: inner.clone(),
        embedder,
    });
    if let Some(l) = learner {
        use crate::bandits as b;
        let base = base.add_subclass(b::PyBanditRouter);
        return Ok(match l {
            AnyLearner::Linucb(_) => Py::new(py, base.add_subclass(b::PyLinUcbRouter))?.into_any(),
            AnyLearner::Thompson(_) => {
                Py::new(py, base.add_subclass(b::PyThompsonRouter))?.into_any()
            }
            AnyLearner::KnnUcb(_) => Py::new(py, base.add_subclass(b::PyKnnUcbRouter))?.into_any(),
            _ => Py::new(py, base.add_subclass(b::PyClusterUcbRouter))?.into_any(),
        });
    }
    Ok(match inner {
        AnyRouter::Knn(_) => {
            Py::new(py, base.add_subclass(crate::routers::PyKnnRouter))?.into_any()
        }
        AnyRouter::Mf(_) => Py::new(py, base.add_subclass(crate::routers::PyMfRouter))?.into_any(),
        AnyRouter::Cascade(_) => {
            Py::new(py, base.add_subclass(crate::cascade::PyCascadeRouter))?.into_any()
        }
        AnyRouter::Baseline(_) => {
            Py::new(py, base.add_subclass(crate::routers::PyBaselineRouter))?.into_any()
        }
        _ => Py::new(py, base)?.into_any(),
    })
}

/// An objective from a call's cost weight and allowed model ids.
fn objective(cost_weight: f64, allowed: Option<Vec<String>>) -> Objective {
    Objective {
        cost_weight,
        allowed: allowed.map(Allowed::Ids),
    }
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

/// One query as given: text (read through the attached embedder) or an embedding.
pub(crate) enum Input<'py> {
    Text(Arc<pointsman::embed::Embedder>, String),
    Vector(PyReadonlyArrayDyn<'py, f32>),
}

impl Input<'_> {
    /// The query as values that can cross to a thread without the GIL.
    pub(crate) fn query(&self) -> PyResult<Query<'_>> {
        Ok(match self {
            Input::Text(embedder, text) => Query::Text(embedder, text),
            Input::Vector(x) => Query::Vector(arrays::values(x)?),
        })
    }
}

/// [`Input`], borrowed.
pub(crate) enum Query<'a> {
    Text(&'a pointsman::embed::Embedder, &'a str),
    Vector(&'a [f32]),
}

impl Query<'_> {
    /// The query's features. Embeds text: call without the GIL. `prompt_tokens`, when given,
    /// replaces the estimate made from the text.
    pub(crate) fn features(
        &self,
        prompt_tokens: Option<f64>,
        task: Option<String>,
    ) -> pointsman::Result<QueryFeatures> {
        match *self {
            Query::Text(embedder, text) => {
                let (mut q, _) = embedder.features(text)?;
                if let Some(t) = prompt_tokens {
                    q = q.with_prompt_tokens(t)?;
                }
                if let Some(t) = task {
                    q = q.with_task(t);
                }
                Ok(q)
            }
            Query::Vector(values) => features(values, prompt_tokens, task),
        }
    }
}

/// The hint for text given to a router without an embedder.
fn no_embedder(name: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{name} is text but the router has no embedder: attach one with \
         router.with_embedder(pointsman.Embedder.load()), or pass a float32 embedding"
    ))
}

impl PyRouter {
    /// The engine embedder, when one is attached (loaded again in a forked child).
    fn engine_embedder(&self, py: Python<'_>) -> PyResult<Option<Arc<pointsman::embed::Embedder>>> {
        match &self.embedder {
            None => Ok(None),
            Some(e) => {
                let e = e.get();
                Ok(Some(py.detach(|| e.embedder()).py()?))
            }
        }
    }

    /// `x` as one query: a `str` (with an embedder attached) or a numeric vector `[dim]`.
    pub(crate) fn input<'py>(&self, x: &Bound<'py, PyAny>, name: &str) -> PyResult<Input<'py>> {
        if x.is_instance_of::<PyString>() {
            return match self.engine_embedder(x.py())? {
                Some(e) => Ok(Input::Text(e, x.extract()?)),
                None => Err(no_embedder(name)),
            };
        }
        Ok(Input::Vector(arrays::array::<f32>(x, name, 1, "[dim]")?))
    }
}

/// A model named by id or by index.
pub(crate) enum ModelRef {
    Id(String),
    Index(i64),
}

impl ModelRef {
    /// `model` as an id (str) or an index (int, NumPy integers included; not bool). Read before
    /// any lock is taken: an object's `__index__` is Python code, which may release the GIL or
    /// use the same router or session.
    pub(crate) fn extract(model: &Bound<'_, PyAny>) -> PyResult<ModelRef> {
        if model.is_instance_of::<PyString>() {
            return Ok(ModelRef::Id(model.extract()?));
        }
        if !model.is_instance_of::<PyBool>() {
            if let Ok(i) = model.extract::<i64>() {
                return Ok(ModelRef::Index(i));
            }
            // An int past 64 bits is an index outside any pool, not a wrong type.
            if model.is_instance_of::<pyo3::types::PyInt>() {
                return Err(Error::UnknownModel(format!("#{model} (outside the pool)"))).py();
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
            ModelRef::Index(_) => {
                let index = self.index()?;
                pool.check_index(index).map(|()| index)
            }
        }
    }

    /// An index as a `usize` (unchecked against a pool); an id is resolved by its owner.
    pub(crate) fn index(&self) -> pointsman::Result<usize> {
        match self {
            ModelRef::Id(id) => Err(Error::UnknownModel(id.clone())),
            ModelRef::Index(i) => usize::try_from(*i)
                .map_err(|_| Error::UnknownModel(format!("#{i} (model indices start at 0)"))),
        }
    }
}

#[pymethods]
impl PyRouter {
    /// The router kind (`"knn"`, `"mf"`, `"zero"`, ...).
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind().name()
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
        let config: serde_json::Value = serde_json::from_str(&saved.config)
            .map_err(|e| Error::format("saved router", format!("bad config: {e}")))
            .py()?;
        crate::convert::to_python(py, &config)
    }

    /// The attached embedder (see `with_embedder`), or None.
    #[getter]
    fn embedder(&self, py: Python<'_>) -> Option<Py<PyEmbedder>> {
        self.embedder.as_ref().map(|e| e.clone_ref(py))
    }

    /// This router with `embedder` attached (None detaches): `route`, `top_k`, `observe` then
    /// take a `str` and `route_batch` a list of str, embedded with it. The result shares the
    /// engine router with this one (what one learns from `observe`, the other knows); this
    /// object is unchanged. Raises `ShapeError` when the router reads embeddings of another
    /// dimension or embedding model than the embedder makes.
    #[pyo3(signature = (embedder))]
    fn with_embedder(
        &self,
        py: Python<'_>,
        embedder: Option<Py<PyEmbedder>>,
    ) -> PyResult<Py<PyAny>> {
        wrap_with(py, self.inner.clone(), embedder)
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
    ///
    /// With `policy` (a `Policy`), the decision goes through it (docs/policies.md): `text` (or
    /// `x` itself when it is a str) feeds its text rules; `tenant`, `user`, `session` and
    /// `episode` key its budgets and stickiness; `needs` lists capabilities the answer needs;
    /// `metadata` (a dict of str) feeds its rules; `expected_output_tokens` its latency and
    /// energy estimates; `cost_weight`, when given, replaces the policy's. The decision's
    /// `audit` says what each part of the policy did. A refusal raises `OutOfDistributionError`,
    /// `BudgetExhaustedError` or `NoModelFitsError` (all `PolicyRefusal`). After the call,
    /// report its actual cost with `policy.record(...)`.
    #[pyo3(signature = (x, cost_weight = None, *, allowed = None, prompt_tokens = None, task = None, policy = None, text = None, tenant = None, user = None, session = None, episode = None, needs = None, metadata = None, expected_output_tokens = None))]
    #[allow(clippy::too_many_arguments)]
    fn route(
        slf: &Bound<'_, Self>,
        x: &Bound<'_, PyAny>,
        cost_weight: Option<f64>,
        allowed: Option<Vec<String>>,
        prompt_tokens: Option<f64>,
        task: Option<String>,
        policy: Option<PyRef<'_, crate::policy::PyPolicy>>,
        text: Option<String>,
        tenant: Option<String>,
        user: Option<String>,
        session: Option<String>,
        episode: Option<PyRef<'_, crate::policy::PyEpisode>>,
        needs: Option<Vec<String>>,
        metadata: Option<std::collections::HashMap<String, String>>,
        expected_output_tokens: Option<f64>,
    ) -> PyResult<Decision> {
        let py = slf.py();
        let this = slf.get();
        let input = this.input(x, "x")?;
        let q = input.query()?;
        let Some(policy) = policy else {
            let given = [
                ("text", text.is_some()),
                ("tenant", tenant.is_some()),
                ("user", user.is_some()),
                ("session", session.is_some()),
                ("episode", episode.is_some()),
                ("needs", needs.is_some()),
                ("metadata", metadata.is_some()),
                ("expected_output_tokens", expected_output_tokens.is_some()),
            ];
            if let Some((name, _)) = given.iter().find(|(_, g)| *g) {
                return Err(PyTypeError::new_err(format!(
                    "{name} is read by a policy: pass policy=pointsman.Policy(...) as well"
                )));
            }
            let objective = objective(cost_weight.unwrap_or(0.0), allowed);
            let router = &this.inner;
            return run_here(py, || {
                router.route(&q.features(prompt_tokens, task)?, &objective)
            })
            .map(Decision::from);
        };
        let text = text.or_else(|| match &q {
            Query::Text(_, t) => Some((*t).to_string()),
            Query::Vector(_) => None,
        });
        let features = run_here(py, || q.features(prompt_tokens, task))?;
        let call = crate::policy::PolicyCall {
            text,
            keys: crate::policy::Keys {
                tenant,
                user,
                session,
                episode: episode.map(|e| e.inner.clone()),
            },
            needs: needs.unwrap_or_default(),
            metadata: crate::policy::metadata_pairs(metadata),
            expected_output_tokens,
            cost_weight,
            allowed,
        };
        let (d, audit) = crate::policy::route(py, slf, &policy, features, call)?;
        let mut d = Decision::from(d);
        d.audit = Some(audit);
        Ok(d)
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
        let x = self.input(x, "x")?;
        let x = x.query()?;
        let objective = objective(cost_weight, allowed);
        let router = &self.inner;
        let alts = run_here(py, || {
            router.top_k(&x.features(prompt_tokens, task)?, &objective, k)
        })?;
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
        // Text: a list of str, read through the attached embedder.
        if x.is_instance_of::<PyString>() {
            return Err(type_error(
                "x",
                "a numeric array [n, dim] or a list of str",
                x,
            ));
        }
        let text = match x.cast::<PyUntypedArray>() {
            Ok(_) => None,
            Err(_) => match x.extract::<Vec<String>>() {
                Ok(t) if !t.is_empty() => match self.engine_embedder(py)? {
                    Some(e) => Some((e, t)),
                    None => return Err(no_embedder("x")),
                },
                // A list that starts with a str is texts: name the item that is not one,
                // rather than failing as an array of strings.
                Err(_) if starts_with_str(x) => {
                    return Err(crate::embedder::bad_text_item(x, "x")
                        .unwrap_or_else(|| type_error("x", "a list of str", x)))
                }
                _ => None,
            },
        };
        let x = match text {
            Some(text) => Err(text),
            None => Ok(arrays::array::<f32>(x, "x", 2, "[n, dim]")?),
        };
        let tokens: Option<PyReadonlyArrayDyn<'py, f64>> = prompt_tokens
            .map(|t| arrays::array::<f64>(t, "prompt_tokens", 1, "[n]"))
            .transpose()?;
        let tokens = tokens.as_ref().map(arrays::values).transpose()?;
        let objective = objective(cost_weight, allowed);
        let router = &self.inner;
        let tasks = tasks.as_deref();
        let route = |batch: FeatureBatch<'_>| {
            let batch = match tasks {
                Some(t) => batch.with_tasks(t)?,
                None => batch,
            };
            if return_estimates {
                let (choices, est) = router.route_batch_with_estimates(&batch, &objective)?;
                Ok((choices, Some(est)))
            } else {
                Ok((router.route_batch(&batch, &objective)?, None))
            }
        };
        if return_estimates {
            // The two [n, models] matrices returned are allocated whole: asked of the allocator
            // first, so that too little memory is a MemoryError, not an abort of the interpreter.
            let rows = match &x {
                Ok(x) => x.shape()[0],
                Err((_, texts)) => texts.len(),
            };
            let cells = rows.saturating_mul(router.models().len());
            if Vec::<f64>::new()
                .try_reserve_exact(cells.saturating_mul(2))
                .is_err()
            {
                return Err(pyo3::exceptions::PyMemoryError::new_err(format!(
                    "the estimates of {rows} queries x {} models ({} MB) do not fit in memory",
                    router.models().len(),
                    cells.saturating_mul(16) >> 20
                )));
            }
        }
        let (choices, estimates) = match &x {
            Err((embedder, texts)) => {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                run(py, || {
                    let mut batch = embedder.text_batch(&refs)?;
                    if let Some(t) = tokens {
                        batch.prompt_tokens = t.to_vec();
                    }
                    route(batch.as_batch()?)
                })?
            }
            Ok(x) => {
                let dim = x.shape()[1];
                if dim != 0 && dim != router.dim() {
                    // Before the rows are checked: a transposed array is a shape error, not
                    // an all-zero row.
                    return Err(Error::DimensionMismatch {
                        expected: router.dim(),
                        got: dim,
                    })
                    .py();
                }
                let data = arrays::values(x)?;
                run(py, || {
                    let mut batch = FeatureBatch::new(data, dim)?;
                    if let Some(t) = tokens {
                        batch = batch.with_prompt_tokens(t)?;
                    }
                    route(batch)
                })?
            }
        };
        let choices = choices.into_pyarray(py).into_any();
        match estimates {
            None => Ok(choices),
            Some(est) => {
                // The engine's `rows × models` matrices, moved into NumPy without a copy.
                let (quality, cost) = est.into_arrays().py()?;
                let (quality, cost) = (quality.into_pyarray(py), cost.into_pyarray(py));
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
        let emb = self.input(embedding, "embedding")?;
        let emb = emb.query()?;
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
        run_here(py, || {
            learner.observe(&Feedback {
                features: &emb.features(prompt_tokens, task)?,
                model,
                quality,
                cost,
            })
        })
    }

    /// A new router with `model` added, without refitting what this one knows of its other
    /// models (knn, mf and the bandits; docs/own-data.md). From `labelled` queries (a split holding
    /// the model's scores; its card — prices, description — comes from the split's pool unless
    /// prices are given), or from the card alone (`input_usd_per_mtok`, `output_usd_per_mtok`,
    /// `description`: the documented prior, for the first hours).
    #[pyo3(signature = (model, labelled = None, *, input_usd_per_mtok = None, output_usd_per_mtok = None, description = None))]
    fn add_model(
        &self,
        py: Python<'_>,
        model: String,
        labelled: Option<PyRef<'_, crate::data::PySplit>>,
        input_usd_per_mtok: Option<f64>,
        output_usd_per_mtok: Option<f64>,
        description: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let split = labelled.as_ref().map(|l| l.split().clone());
        let card = match (input_usd_per_mtok, output_usd_per_mtok, &split) {
            (Some(i), Some(o), _) => {
                let card = pointsman::ModelCard::new(model.as_str(), i, o);
                match description {
                    Some(d) => card.with_description(d),
                    None => card,
                }
            }
            (None, None, Some(s)) => {
                let mut card = s.pool().card(s.pool().index_of(&model).py()?).clone();
                if let Some(d) = description {
                    card = card.with_description(d);
                }
                card
            }
            _ => {
                return Err(to_py_err(Error::InvalidInput(format!(
                    "add_model({model:?}): give both input_usd_per_mtok and output_usd_per_mtok, \
                     or labelled queries whose pool has the model's card"
                ))))
            }
        };
        let router = &self.inner;
        let added = run(py, || router.add_model(card, split.as_ref()))?;
        wrap_with(py, added, self.embedder.as_ref().map(|e| e.clone_ref(py)))
    }

    /// A new router with new prices (`{model: (input, output)}` USD per 1M tokens) for some of
    /// its models, without refitting: prices are data, not weights (every kind but the cascade).
    fn reprice(
        &self,
        py: Python<'_>,
        prices: std::collections::HashMap<String, (f64, f64)>,
    ) -> PyResult<Py<PyAny>> {
        let pool = self.inner.router().models();
        let cards: Vec<pointsman::ModelCard> = prices
            .iter()
            .map(|(id, &(i, o))| {
                let j = pool.index_of(id)?;
                let mut card = pool.card(j).clone();
                card.input_usd_per_mtok = i;
                card.output_usd_per_mtok = o;
                Ok(card)
            })
            .collect::<pointsman::Result<_>>()
            .py()?;
        let router = &self.inner;
        let repriced = run(py, || router.reprice(&cards))?;
        wrap_with(
            py,
            repriced,
            self.embedder.as_ref().map(|e| e.clone_ref(py)),
        )
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

    /// Loads a saved router of this class (`Router.load` accepts every kind), with `embedder`
    /// attached when given; `mmap=True` maps the file read-only and reads a kNN router's
    /// reference set in place (one copy per host, shared by the processes that open it).
    #[classmethod]
    #[pyo3(signature = (path, embedder = None, *, mmap = false))]
    fn load(
        cls: &Bound<'_, PyType>,
        path: PathBuf,
        embedder: Option<Py<PyEmbedder>>,
        mmap: bool,
    ) -> PyResult<Py<PyAny>> {
        let py = cls.py();
        let what = path.display().to_string();
        let router = wrap_with(py, run(py, || open(&path, mmap))?, embedder)?;
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

    /// Pickles through the saved bytes (and the attached embedder, which pickles as its model
    /// folder and options).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, RebuildArgs<'py>)> {
        let rebuild = py
            .import("pointsman._native")?
            .getattr("router_from_bytes")?;
        Ok((rebuild, (self.to_bytes(py)?, self.embedder(py))))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let r = &slf.get().inner;
        let embedder = match &slf.get().embedder {
            Some(e) => format!(", embedder={}", repr(py, e.get().model_name())?),
            None => String::new(),
        };
        Ok(format!(
            "{}(kind={}, dim={}, models={}{embedder})",
            slf.get_type().qualname()?,
            repr(py, r.kind().name())?,
            r.dim(),
            repr(py, crate::data::model_ids(r.models()))?
        ))
    }
}

/// The arguments of `router_from_bytes` that rebuild a pickled router.
type RebuildArgs<'py> = (Bound<'py, PyBytes>, Option<Py<PyEmbedder>>);

/// Loads a saved router (any kind) as an instance of its kind's class, with `embedder` attached
/// when given; `mmap=True` opens it memory-mapped (`Router.load`).
#[pyfunction]
#[pyo3(signature = (path, embedder = None, *, mmap = false))]
pub fn load_router(
    py: Python<'_>,
    path: PathBuf,
    embedder: Option<Py<PyEmbedder>>,
    mmap: bool,
) -> PyResult<Py<PyAny>> {
    let router = run(py, || open(&path, mmap))?;
    wrap_with(py, router, embedder)
}

/// Loads, or opens memory-mapped, the saved router at `path`.
fn open(path: &std::path::Path, mmap: bool) -> pointsman::Result<AnyRouter> {
    if mmap {
        AnyRouter::open_mmap(path)
    } else {
        pointsman::load_router(path)
    }
}

/// A router from the bytes of a saved file (`Router.to_bytes`, pickling), with `embedder`
/// attached when given.
#[pyfunction]
#[pyo3(signature = (data, embedder = None))]
pub fn router_from_bytes(
    py: Python<'_>,
    data: &[u8],
    embedder: Option<Py<PyEmbedder>>,
) -> PyResult<Py<PyAny>> {
    let router = run(py, || AnyRouter::from_bytes(data))?;
    wrap_with(py, router, embedder)
}

/// One model's figures in a decision.
#[pyclass(name = "Alternative", module = "pointsman", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct Alternative {
    /// Index in the router's models.
    model: usize,
    /// The model's id.
    model_id: String,
    /// Expected quality, in [0, 1].
    quality: f64,
    /// The quality figure the choice used: `quality` plus the exploration bonus of a router
    /// that explores (may exceed 1).
    score: f64,
    /// Expected cost in USD.
    cost: f64,
    /// `score - cost_weight * cost`, what the choice maximised.
    utility: f64,
}

impl From<pointsman::Alternative> for Alternative {
    fn from(a: pointsman::Alternative) -> Self {
        Alternative {
            model: a.model,
            model_id: a.model_id,
            quality: a.quality,
            score: a.score,
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
    /// Its expected quality, in [0, 1].
    quality: f64,
    /// The quality figure the choice used: `quality` plus the exploration bonus of a router
    /// that explores (a bandit's upper confidence bound or posterior draw; may exceed 1).
    score: f64,
    /// Its expected cost in USD.
    cost: f64,
    /// Its utility under the objective, what the choice maximised: `score - cost_weight * cost`.
    utility: f64,
    /// The cost weight the decision was made with.
    cost_weight: f64,
    /// The other allowed models, best utility first.
    alternatives: Vec<Alternative>,
    /// Reference queries (neighbours, observations) the estimate rests on, when known.
    neighbours: Option<u32>,
    /// Out-of-distribution score in [0, 1], when the router computes one.
    ood: Option<f32>,
    /// What each part of a policy did (a dict, docs/policies.md), when routed with one.
    audit: Option<Py<PyAny>>,
}

impl From<pointsman::Decision> for Decision {
    fn from(d: pointsman::Decision) -> Self {
        Decision {
            model: d.model,
            model_id: d.model_id,
            quality: d.quality,
            score: d.score,
            cost: d.cost,
            utility: d.utility,
            cost_weight: d.cost_weight,
            alternatives: d.alternatives.into_iter().map(Alternative::from).collect(),
            neighbours: d.signals.neighbours,
            ood: d.signals.ood,
            audit: None,
        }
    }
}

#[pymethods]
impl Decision {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Decision(model_id={}, model={}, quality={}, score={}, cost={}, utility={}, cost_weight={})",
            repr(py, &self.model_id)?,
            self.model,
            repr(py, self.quality)?,
            repr(py, self.score)?,
            repr(py, self.cost)?,
            repr(py, self.utility)?,
            repr(py, self.cost_weight)?
        ))
    }
}

/// Whether `x` is a sequence whose first item is a `str`.
fn starts_with_str(x: &Bound<'_, PyAny>) -> bool {
    x.get_item(0)
        .is_ok_and(|first| first.is_instance_of::<PyString>())
}
