//! The cascade router and its sessions. `CascadeRouter` is a subclass of `Router` (routing a
//! query gives the cascade's first model) that adds its constructors, calibration and `start`;
//! a `CascadeSession` drives one query: call the model it names, `observe` the answer's
//! confidence, until it accepts an answer.

use std::sync::{Mutex, MutexGuard};

use numpy::IntoPyArray;
use numpy::PyUntypedArrayMethods;
use pointsman::data::Split;
use pointsman::metrics::CostBasis;
use pointsman::routers::cascade::{
    CalibrationTarget, CascadeConfig, CascadeLimits, CascadeOrder, CascadeRouter, CascadeSearch,
    Session, SimulatedJudge, Stage, Step,
};
use pointsman::{Error, Objective};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays;
use crate::bandits::pool;
use crate::convert::{config_over, from_kwargs, repr, to_python};
use crate::data::PySplit;
use crate::embedder::PyEmbedder;
use crate::errors::IntoPyResult;
use crate::parallel::{run, run_here};
use crate::router::{wrap_with, PyRouter};

/// The engine cascade of a Python cascade router, and its embedder.
fn parts<'a>(
    slf: &'a Bound<'_, PyCascadeRouter>,
) -> PyResult<(&'a PyRouter, &'a CascadeRouter, Option<Py<PyEmbedder>>)> {
    let base = slf.as_super().get();
    let cascade = base
        .inner
        .as_cascade()
        .ok_or_else(|| Error::Unsupported(format!("{} is not a cascade", base.inner.kind())))
        .py()?;
    Ok((
        base,
        cascade,
        base.embedder.as_ref().map(|e| e.clone_ref(slf.py())),
    ))
}

/// The chain's stages from `(model id, threshold)` pairs.
fn stages_of(stages: Vec<(String, f64)>) -> CascadeOrder {
    CascadeOrder::Chain {
        stages: stages
            .into_iter()
            .map(|(model, threshold)| Stage { model, threshold })
            .collect(),
    }
}

/// The confidences `[rows, models]` given (float64, converted once), or those of the simulated
/// judge: the training judge of `pointsman eval` when `training`, else its test judge.
fn confidences(
    split: &Split,
    given: Option<&Bound<'_, PyAny>>,
    noise: f64,
    seed: u64,
    training: bool,
) -> PyResult<Vec<f64>> {
    match given {
        Some(c) => {
            let c = arrays::array::<f64>(c, "confidences", 2, "[n, models]")?;
            // The shape, not only the total: a transposed array was read as other queries'.
            let (rows, models) = (split.len(), split.pool().len());
            if c.shape() != [rows, models] {
                return Err(Error::Shape(format!(
                    "confidences are [{}, {}], not [{rows}, {models}] (one row per query of the \
                     split, one column per model)",
                    c.shape()[0],
                    c.shape()[1]
                )))
                .py();
            }
            Ok(arrays::values(&c)?.to_vec())
        }
        None => {
            let judge = if training {
                SimulatedJudge::for_training(noise, seed)
            } else {
                SimulatedJudge::new(noise, seed)
            }
            .py()?;
            Ok(judge.confidences(split))
        }
    }
}

/// A cascade: calls a cheap model first, reads how confident its answer is, and escalates only
/// when the answer does not look good enough, within a per-query budget. `route` gives the first
/// model; `start` runs a query's session.
#[pyclass(name = "CascadeRouter", module = "pointsman", extends = PyRouter, frozen)]
#[derive(Debug)]
pub struct PyCascadeRouter;

#[pymethods]
impl PyCascadeRouter {
    /// A fixed chain without training data (FrugalGPT's cascade): `models` (ids, or model cards
    /// with prices), embeddings of `dim` values, and `stages`, the `(model id, threshold)` pairs
    /// in calling order (an answer is accepted when the posterior that it is right reaches the
    /// stage's threshold). Keyword arguments set other `CascadeConfig` fields (`cost_weight`,
    /// `max_steps`, `confidence_error`, ...).
    #[staticmethod]
    #[pyo3(signature = (models, dim, stages, **config))]
    fn chain(
        py: Python<'_>,
        models: &Bound<'_, PyAny>,
        dim: usize,
        stages: Vec<(String, f64)>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        // The stages are set after the keyword arguments, not through their JSON: a NaN
        // threshold is then named by the config's own check rather than read back as null.
        let base = CascadeConfig::chain(Vec::<(String, f64)>::new());
        let mut config: CascadeConfig = config_over(py, base, config, "cascade config")?;
        config.order = stages_of(stages);
        let pool = pool(py, models)?;
        let router = CascadeRouter::new(pool, dim, &config).py()?;
        wrap_with(py, router.into(), None)
    }

    /// Fits on a labelled split: the table of which models succeed together and, unless
    /// `estimator=None`, a kNN estimator of each model's chance on a query. Without `stages` the
    /// cascade is dynamic (it picks each next model); with `stages` (`(model id, threshold)`
    /// pairs) it is a fixed chain. Keyword arguments set `CascadeConfig` fields
    /// (`accept_threshold`, `cost_weight`, `max_steps`, `confidence_error`, `prior_strength`,
    /// `lookahead`, `success_threshold`, `estimator` — a kNN config dict or None).
    #[staticmethod]
    #[pyo3(signature = (split, *, stages = None, **config))]
    fn fit(
        py: Python<'_>,
        split: &Bound<'_, PySplit>,
        stages: Option<Vec<(String, f64)>>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let mut config: CascadeConfig = from_kwargs(py, config, "cascade config")?;
        if let Some(s) = stages {
            config.order = stages_of(s);
        }
        let split = split.get().split();
        let router = run(py, || CascadeRouter::fit(split, &config))?;
        wrap_with(py, router.into(), None)
    }

    /// Fits on a labelled split and chooses the acceptance threshold, prior strength and
    /// look-ahead by the leave-one-out cost-quality curve on the split (as `pointsman eval`'s
    /// `cascade` policy does). `confidences` (float64 `[n, models]`) are the confidences the
    /// caller would observe for each answer; None simulates a judge that errs with probability
    /// `judge_noise` (`pointsman eval`'s training judge for `seed`). `search` sets
    /// `CascadeSearch` fields (`accept_thresholds`, `prior_strengths`, `lookahead`, `points`,
    /// `measure_confidence_error`); keyword arguments set the base `CascadeConfig`. Returns
    /// `(router, report)`.
    #[staticmethod]
    #[pyo3(signature = (split, confidences = None, *, judge_noise = 0.1, seed = 0, search = None, **config))]
    fn tune(
        py: Python<'_>,
        split: &Bound<'_, PySplit>,
        confidences: Option<&Bound<'_, PyAny>>,
        judge_noise: f64,
        seed: u64,
        search: Option<&Bound<'_, PyDict>>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let base: CascadeConfig = from_kwargs(py, config, "cascade config")?;
        let grid: CascadeSearch = from_kwargs(py, search, "cascade search")?;
        let split = split.get().split();
        let conf = self::confidences(split, confidences, judge_noise, seed, true)?;
        let (router, report) = run(py, || CascadeRouter::tune(split, &conf, &base, &grid))?;
        Ok((wrap_with(py, router.into(), None)?, to_python(py, &report)?))
    }

    /// The chain's stages as `(model id, threshold)` pairs; empty for a dynamic cascade.
    #[getter]
    fn stages(slf: &Bound<'_, Self>) -> PyResult<Vec<(String, f64)>> {
        let (base, c, _) = parts(slf)?;
        Ok(c.stages()
            .iter()
            .map(|&(m, t)| (base.inner.models().id(m).to_string(), t))
            .collect())
    }

    /// Calibrates the cost weight and the acceptance thresholds on a labelled split to meet
    /// one target: `mean_cost` (the best mean quality at a mean cost per query of at most this
    /// many USD) or `quality` (the least mean cost at a mean quality of at least this).
    /// `confidences` as for `tune` (None: the simulated training judge). Returns
    /// `(router, calibration)`, the new router keeping this one's embedder, the calibration a
    /// dict (`cost_weight`, `thresholds`, `mean_quality`, `mean_cost`, `mean_calls`).
    #[pyo3(signature = (split, confidences = None, *, mean_cost = None, quality = None, judge_noise = 0.1, seed = 0))]
    #[allow(clippy::too_many_arguments)]
    fn calibrate(
        slf: &Bound<'_, Self>,
        split: &Bound<'_, PySplit>,
        confidences: Option<&Bound<'_, PyAny>>,
        mean_cost: Option<f64>,
        quality: Option<f64>,
        judge_noise: f64,
        seed: u64,
    ) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let py = slf.py();
        let target = match (mean_cost, quality) {
            (Some(c), None) => CalibrationTarget::MeanCost(c),
            (None, Some(q)) => CalibrationTarget::Quality(q),
            _ => {
                return Err(Error::Config(
                    "calibrate takes exactly one target: mean_cost or quality".into(),
                ))
                .py()
            }
        };
        let (_, cascade, embedder) = parts(slf)?;
        let split = split.get().split();
        let conf = self::confidences(split, confidences, judge_noise, seed, true)?;
        let (router, calibration) = run(py, || cascade.calibrate(split, &conf, target))?;
        Ok((
            wrap_with(py, router.into(), embedder)?,
            to_python(py, &calibration)?,
        ))
    }

    /// Simulates the cascade on every query of a labelled split, each answer rated with its
    /// confidence (`confidences` float64 `[n, models]`; None: the simulated test judge of
    /// `pointsman eval` for `judge_noise` and `seed`), at `cost_weight` (None: the router's).
    /// Exactly what sessions started with default limits decide. Returns `(accepted, invoked)`:
    /// per query, the index of the model whose answer is used (uint32 `[n]`) and the list of
    /// the models called, in order.
    #[pyo3(signature = (split, confidences = None, cost_weight = None, *, judge_noise = 0.1, seed = 0))]
    #[allow(clippy::type_complexity)]
    fn simulate<'py>(
        slf: &Bound<'py, Self>,
        split: &Bound<'_, PySplit>,
        confidences: Option<&Bound<'_, PyAny>>,
        cost_weight: Option<f64>,
        judge_noise: f64,
        seed: u64,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<Vec<u32>>)> {
        let py = slf.py();
        let (_, cascade, _) = parts(slf)?;
        let split = split.get().split();
        let conf = self::confidences(split, confidences, judge_noise, seed, false)?;
        let mu = cost_weight.unwrap_or(cascade.config().cost_weight);
        let point = run(py, || cascade.simulate(split, &conf, mu, CostBasis::Query))?;
        let invoked = point.invoked.unwrap_or_default();
        Ok((point.choices.into_pyarray(py).into_any(), invoked))
    }

    /// Starts the cascade on one query: `x` is its embedding (a float32 vector `[dim]`) or,
    /// with an embedder attached, its text. `budget` caps the session's total expected cost
    /// (USD; None: no cap), `max_steps` the models called (None: the config's); `cost_weight`
    /// (None: the router's) and `allowed` as for `route`. Raises `BudgetError` (an
    /// `InvalidInputError`) when the budget is below the expected cost of the first call.
    #[pyo3(signature = (x, budget = None, max_steps = None, *, cost_weight = None, allowed = None, prompt_tokens = None, task = None))]
    #[allow(clippy::too_many_arguments)]
    fn start(
        slf: &Bound<'_, Self>,
        x: &Bound<'_, PyAny>,
        budget: Option<f64>,
        max_steps: Option<usize>,
        cost_weight: Option<f64>,
        allowed: Option<Vec<String>>,
        prompt_tokens: Option<f64>,
        task: Option<String>,
    ) -> PyResult<PyCascadeSession> {
        let py = slf.py();
        let (base, cascade, _) = parts(slf)?;
        let x = base.input(x, "x")?;
        let x = x.query()?;
        let objective = Objective {
            cost_weight: cost_weight.unwrap_or(cascade.config().cost_weight),
            allowed: allowed.map(pointsman::Allowed::Ids),
        };
        let limits = CascadeLimits { budget, max_steps };
        let session = run_here(py, || {
            cascade.start_with(&x.features(prompt_tokens, task)?, &objective, &limits)
        })?;
        Ok(PyCascadeSession {
            session: Mutex::new(session),
        })
    }
}

/// One query's run through a cascade (from `CascadeRouter.start`). Call the model `model_id`
/// names, rate its answer with a confidence in [0, 1], pass it to `observe`; repeat until
/// `done`, then read `outcome`. Sessions are independent of each other and of the router.
#[pyclass(name = "CascadeSession", module = "pointsman", frozen)]
#[derive(Debug)]
pub struct PyCascadeSession {
    session: Mutex<Session>,
}

impl PyCascadeSession {
    fn lock(&self) -> MutexGuard<'_, Session> {
        // A panic while the lock was held left a consistent session (observe checks before it
        // changes anything).
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_call(&self) -> Option<NextCall> {
        self.lock().next().cloned().map(NextCall::from)
    }
}

#[pymethods]
impl PyCascadeSession {
    /// The model to call now, or None once the session is over.
    #[getter]
    fn next(&self) -> Option<NextCall> {
        self.next_call()
    }

    /// Index of the model to call now, or None once the session is over.
    #[getter]
    fn model(&self) -> Option<usize> {
        self.next_call().map(|c| c.model)
    }

    /// Id of the model to call now, or None once the session is over.
    #[getter]
    fn model_id(&self) -> Option<String> {
        self.next_call().map(|c| c.model_id)
    }

    /// Whether the session is over (`outcome` is set).
    #[getter]
    fn done(&self) -> bool {
        self.outcome().is_some()
    }

    /// The models invoked so far, in order.
    #[getter]
    fn invoked(&self) -> Vec<Invocation> {
        let s = self.lock();
        let invoked = match s.result() {
            Ok(o) => &o.invoked,
            Err(_) => s.invoked(),
        };
        invoked.iter().cloned().map(Invocation::from).collect()
    }

    /// The cost spent so far, USD.
    #[getter]
    fn total_cost(&self) -> f64 {
        let s = self.lock();
        s.result().map_or_else(|_| s.total_cost(), |o| o.total_cost)
    }

    /// The outcome once the session is over, else None.
    #[getter]
    fn outcome(&self) -> Option<CascadeOutcome> {
        self.lock().outcome().cloned().map(CascadeOutcome::from)
    }

    /// Records the confidence (in [0, 1]) of the answer of `model` (its id or index: the model
    /// the session asked for), charging its expected cost or, when given, the observed `cost`
    /// (USD). Returns a `CascadeStep`: `accepted` with the `outcome`, or the `next` model to call.
    /// Raises `InvalidInputError` for a confidence outside [0, 1], `SessionError` for a model
    /// other than the one asked for or a session that is over, `UnknownModelError` for a model
    /// not in the pool.
    #[pyo3(signature = (model, confidence, *, cost = None))]
    fn observe(
        &self,
        model: &Bound<'_, PyAny>,
        confidence: f64,
        cost: Option<f64>,
    ) -> PyResult<CascadeStep> {
        // Read before the lock: `__index__` is Python code, which may release the GIL while a
        // thread holding it waits for the lock, or use this session (both deadlocked).
        let model = crate::router::ModelRef::extract(model)?;
        let mut session = self.lock();
        let index = match &model {
            crate::router::ModelRef::Id(id) => session.model_index(id).py()?,
            index => index.index().py()?,
        };
        let step = match cost {
            Some(c) => session.observe_with_cost(index, confidence, c),
            None => session.observe(index, confidence),
        }
        .py()?;
        Ok(match step {
            Step::Escalate(next) => CascadeStep {
                accepted: false,
                next: Some(next.into()),
                outcome: None,
            },
            Step::Accept(outcome) => CascadeStep {
                accepted: true,
                next: None,
                outcome: Some(outcome.into()),
            },
        })
    }

    /// Ends the session and returns its outcome: the cascade's own when it is over, else the
    /// best answer so far (`stop == "stopped"`). Raises `SessionError` when no answer has been
    /// observed yet.
    fn finish(&self) -> PyResult<CascadeOutcome> {
        Ok(self.lock().stop().py()?.clone().into())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let steps = self.invoked().len();
        Ok(match (self.outcome(), self.model_id()) {
            (Some(o), _) => format!(
                "CascadeSession(done=True, accepted_id={}, steps={steps})",
                repr(py, o.accepted_id)?
            ),
            (None, id) => format!(
                "CascadeSession(done=False, next={}, steps={steps})",
                repr(py, id)?
            ),
        })
    }
}

/// The model a session asks the caller to call next.
#[pyclass(name = "NextCall", module = "pointsman", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct NextCall {
    /// Index in the router's models.
    model: usize,
    /// The model's id.
    model_id: String,
    /// Its estimated chance of a good answer, given what has failed so far.
    expected_quality: f64,
    /// Its expected cost in USD.
    expected_cost: f64,
}

impl From<pointsman::routers::cascade::NextCall> for NextCall {
    fn from(c: pointsman::routers::cascade::NextCall) -> Self {
        NextCall {
            model: c.model,
            model_id: c.model_id,
            expected_quality: c.expected_quality,
            expected_cost: c.expected_cost,
        }
    }
}

#[pymethods]
impl NextCall {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "NextCall(model_id={}, model={}, expected_quality={}, expected_cost={})",
            repr(py, &self.model_id)?,
            self.model,
            repr(py, self.expected_quality)?,
            repr(py, self.expected_cost)?
        ))
    }
}

/// One model call of a session.
#[pyclass(name = "Invocation", module = "pointsman", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Index in the router's models.
    model: usize,
    /// The model's id.
    model_id: String,
    /// The confidence observed.
    confidence: f64,
    /// The posterior that the answer is right.
    posterior: f64,
    /// The call's cost in USD (observed when given, else expected).
    cost: f64,
}

impl From<pointsman::routers::cascade::Invocation> for Invocation {
    fn from(i: pointsman::routers::cascade::Invocation) -> Self {
        Invocation {
            model: i.model,
            model_id: i.model_id,
            confidence: i.confidence,
            posterior: i.posterior,
            cost: i.cost,
        }
    }
}

#[pymethods]
impl Invocation {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Invocation(model_id={}, model={}, confidence={}, posterior={}, cost={})",
            repr(py, &self.model_id)?,
            self.model,
            repr(py, self.confidence)?,
            repr(py, self.posterior)?,
            repr(py, self.cost)?
        ))
    }
}

/// The end of a session: which answer to use and what it took.
#[pyclass(name = "CascadeOutcome", module = "pointsman", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct CascadeOutcome {
    /// Index of the model whose answer is used.
    accepted: usize,
    /// Its id.
    accepted_id: String,
    /// The posterior that this answer is right.
    posterior: f64,
    /// Every model invoked, in order.
    invoked: Vec<Invocation>,
    /// Sum of the invocations' costs, USD.
    total_cost: f64,
    /// True when the budget stopped the cascade: the answer is the best so far.
    budget_exhausted: bool,
    /// Why the session stopped: `"accepted"`, `"not-worth-escalating"`, `"out-of-models"`,
    /// `"budget-exhausted"`, `"max-steps"` or `"stopped"`.
    stop: String,
}

impl From<pointsman::routers::cascade::CascadeOutcome> for CascadeOutcome {
    fn from(o: pointsman::routers::cascade::CascadeOutcome) -> Self {
        let stop = serde_json::to_value(o.stop)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        CascadeOutcome {
            accepted: o.accepted,
            accepted_id: o.accepted_id,
            posterior: o.posterior,
            invoked: o.invoked.into_iter().map(Invocation::from).collect(),
            total_cost: o.total_cost,
            budget_exhausted: o.budget_exhausted,
            stop,
        }
    }
}

#[pymethods]
impl CascadeOutcome {
    /// The ids of the models invoked, in order.
    #[getter]
    fn invoked_ids(&self) -> Vec<String> {
        self.invoked.iter().map(|i| i.model_id.clone()).collect()
    }

    /// The number of models invoked.
    #[getter]
    fn steps(&self) -> usize {
        self.invoked.len()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "CascadeOutcome(accepted_id={}, invoked={}, total_cost={}, budget_exhausted={}, stop={})",
            repr(py, &self.accepted_id)?,
            repr(py, self.invoked_ids())?,
            repr(py, self.total_cost)?,
            if self.budget_exhausted { "True" } else { "False" },
            repr(py, &self.stop)?
        ))
    }
}

/// What `CascadeSession.observe` says: the session accepted an answer (`accepted`, with the
/// `outcome`), or asks for the `next` model.
#[pyclass(name = "CascadeStep", module = "pointsman", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct CascadeStep {
    /// Whether the session is over (the outcome names the answer to use).
    accepted: bool,
    /// The model to call next, when not accepted.
    next: Option<NextCall>,
    /// The outcome, when accepted.
    outcome: Option<CascadeOutcome>,
}

#[pymethods]
impl CascadeStep {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        match (&self.outcome, &self.next) {
            (Some(o), _) => Ok(format!(
                "CascadeStep(accepted=True, outcome={})",
                o.__repr__(py)?
            )),
            (None, Some(n)) => Ok(format!(
                "CascadeStep(accepted=False, next={})",
                n.__repr__(py)?
            )),
            (None, None) => Ok("CascadeStep(accepted=False)".into()),
        }
    }
}

/// The confidences of `pointsman eval`'s simulated judge for every query and model of `split`
/// (float64 `[n, models]`, 1.0 or 0.0): a judge that says whether an answer scored at least 0.5
/// and errs with probability `noise`, a fixed draw per (query id, model id, seed). `training`
/// gives the judge `eval` uses on the training split (independent of the test judge).
#[pyfunction]
#[pyo3(signature = (split, noise = 0.1, seed = 0, *, training = false))]
pub fn simulated_confidences<'py>(
    py: Python<'py>,
    split: &Bound<'py, PySplit>,
    noise: f64,
    seed: u64,
    training: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let split = split.get().split();
    let conf = confidences(split, None, noise, seed, training)?;
    let m = split.pool().len();
    Ok(arrays::matrix(py, conf, split.len(), m)?.into_any())
}
