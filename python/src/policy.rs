//! `Policy` and `Episode`: decision-time policies (`docs/policies.md`) over any router. A policy
//! is bound to each router it is used with once (its rules compiled against the router's
//! models) and the binding is kept; every binding shares the policy's budgets and sessions.
//! `Router.route(..., policy=...)` routes through it ([`route`]); the decision carries the
//! audit as a dict.

use std::collections::HashMap;
use std::sync::Mutex;

use pointsman::policy::{Episode, GuardFit, Policy, PolicyConfig, PolicyRouter, Request};
use pointsman::QueryFeatures;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyWeakrefMethods, PyWeakrefReference};

use crate::errors::IntoPyResult;
use crate::parallel::run_here;
use crate::router::PyRouter;

/// A decision-time policy: rules, caps, budgets that pace, stickiness and an out-of-distribution
/// guard (docs/policies.md). `Policy(config)` takes the policy as a dict or a JSON string;
/// `Policy.load(path)` reads a JSON or TOML file. Thread-safe; its budgets and sessions are
/// shared by every router it is used with.
#[pyclass(name = "Policy", module = "pointsman", frozen)]
#[derive(Debug)]
pub struct PyPolicy {
    policy: Policy,
    /// Bindings to the live routers it was used with: (a weak reference to the router object,
    /// binding). Weak, so that a policy does not keep every router it ever routed through
    /// alive (a service that swaps in a retrained router every hour); the bindings of routers
    /// that are gone are dropped at the next binding.
    bound: Mutex<Vec<(Py<PyWeakrefReference>, PolicyRouter)>>,
}

impl PyPolicy {
    fn new(policy: Policy) -> PyPolicy {
        PyPolicy {
            policy,
            bound: Mutex::new(Vec::new()),
        }
    }

    /// The policy bound to `router` (bound on first use).
    fn binding(&self, router: &Bound<'_, PyRouter>) -> PyResult<PolicyRouter> {
        let py = router.py();
        let mut bound = self.bound.lock().expect("policy lock");
        bound.retain(|(r, _)| r.bind(py).upgrade().is_some());
        let same = |r: &Py<PyWeakrefReference>| r.bind(py).upgrade().is_some_and(|o| o.is(router));
        if let Some((_, b)) = bound.iter().find(|(r, _)| same(r)) {
            return Ok(b.clone());
        }
        let b = PolicyRouter::new(router.get().inner.shared(), self.policy.clone()).py()?;
        bound.push((PyWeakrefReference::new(router)?.unbind(), b.clone()));
        Ok(b)
    }
}

/// Keys and facts of one request, as `route` and `record` take them.
pub struct Keys {
    pub tenant: Option<String>,
    pub user: Option<String>,
    pub session: Option<String>,
    pub episode: Option<Episode>,
}

impl Keys {
    fn apply<'a>(&self, mut req: Request<'a>) -> Request<'a> {
        if let Some(t) = &self.tenant {
            req = req.with_tenant(t.clone());
        }
        if let Some(u) = &self.user {
            req = req.with_user(u.clone());
        }
        if let Some(s) = &self.session {
            req = req.with_session(s.clone());
        }
        if let Some(e) = &self.episode {
            req = req.with_episode(e.clone());
        }
        req
    }
}

/// What `Router.route` passes on when it is given a policy.
pub struct PolicyCall {
    pub text: Option<String>,
    pub keys: Keys,
    pub needs: Vec<String>,
    pub metadata: Vec<(String, String)>,
    pub expected_output_tokens: Option<f64>,
    pub cost_weight: Option<f64>,
    pub allowed: Option<Vec<String>>,
}

/// Routes `features` through `policy` bound to `router`: the decision and the audit (a dict).
pub fn route(
    py: Python<'_>,
    router: &Bound<'_, PyRouter>,
    policy: &PyPolicy,
    features: QueryFeatures,
    call: PolicyCall,
) -> PyResult<(pointsman::Decision, Py<PyAny>)> {
    let binding = policy.binding(router)?;
    let (decision, audit) = run_here(py, || {
        let mut req = call.keys.apply(Request::new(&features));
        if let Some(t) = &call.text {
            req = req.with_text(t);
        }
        for n in &call.needs {
            req = req.with_need(n.clone());
        }
        for (k, v) in &call.metadata {
            req = req.with_metadata(k.clone(), v.clone());
        }
        if let Some(t) = call.expected_output_tokens {
            req = req.with_expected_output_tokens(t);
        }
        if let Some(w) = call.cost_weight {
            req = req.with_cost_weight(w);
        }
        if let Some(a) = &call.allowed {
            req = req.with_allowed(a.clone());
        }
        let (d, audit) = binding.route_audited(&req);
        Ok((d, audit))
    })?;
    let decision = decision.py()?;
    Ok((decision, crate::convert::to_python(py, &audit)?))
}

#[pymethods]
impl PyPolicy {
    /// A policy from its configuration: a dict, or a JSON string.
    #[new]
    fn py_new(_py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<PyPolicy> {
        let json: String = if config.is_instance_of::<PyString>() {
            config.extract()?
        } else if config.is_instance_of::<PyDict>() {
            // As keyword configs are read: NumPy scalars taken, NaN a ConfigError (it was a
            // FormatError about JSON syntax, and a NumPy float a TypeError).
            crate::convert::dumps(config, "policy")?
        } else {
            return Err(crate::errors::type_error(
                "config",
                "a dict or a JSON string",
                config,
            ));
        };
        let config = PolicyConfig::from_json(&json, "policy").py()?;
        Ok(PyPolicy::new(Policy::new(config).py()?))
    }

    /// Reads a policy file (JSON, or TOML for `.toml`) and its fitted guard, if it names one.
    #[staticmethod]
    fn load(py: Python<'_>, path: std::path::PathBuf) -> PyResult<PyPolicy> {
        let policy = run_here(py, || Policy::load(&path))?;
        Ok(PyPolicy::new(policy))
    }

    /// Writes the policy file (JSON, or TOML for `.toml`) atomically, and a fitted guard beside
    /// it (`<file name>.guard.safetensors`).
    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        run_here(py, || self.policy.save(&path))
    }

    /// The configuration, as the dict the policy file holds.
    #[getter]
    fn config(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::convert::to_python(py, self.policy.config())
    }

    /// Whether a fitted embedding guard is attached.
    #[getter]
    fn has_fitted_guard(&self) -> bool {
        self.policy.guard().is_some()
    }

    /// A copy of this policy (fresh budgets and sessions) with an out-of-distribution guard
    /// fitted on `split`'s embeddings: the relative Mahalanobis distance, calibrated to
    /// `false_alarm` on a held-out `holdout` share of `split`. The guard's action stays the
    /// policy's (`refuse` when it has no guard section).
    #[pyo3(signature = (split, *, holdout = 0.2, false_alarm = 0.05, seed = 0))]
    fn fit_guard(
        &self,
        py: Python<'_>,
        split: PyRef<'_, crate::data::PySplit>,
        holdout: f64,
        false_alarm: f64,
        seed: u64,
    ) -> PyResult<PyPolicy> {
        let fit = GuardFit {
            holdout,
            false_alarm,
            seed,
            ..GuardFit::default()
        };
        let split = split.split();
        let policy = py.detach(|| self.policy.fit_guard(split, &fit)).py()?;
        Ok(PyPolicy::new(policy))
    }

    /// After a call routed with this policy: charges `cost_usd` (the actual cost the upstream
    /// reported) to the request's budgets and records `model` as the session's model.
    #[pyo3(signature = (router, cost_usd, *, model = None, tenant = None, user = None, session = None, episode = None))]
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        router: &Bound<'_, PyRouter>,
        cost_usd: f64,
        model: Option<String>,
        tenant: Option<String>,
        user: Option<String>,
        session: Option<String>,
        episode: Option<PyRef<'_, PyEpisode>>,
    ) -> PyResult<()> {
        let binding = self.binding(router)?;
        let keys = Keys {
            tenant,
            user,
            session,
            episode: episode.map(|e| e.inner.clone()),
        };
        // Recording reads only the request's keys, not its features.
        let none = QueryFeatures::new(vec![1.0]).py()?;
        binding
            .record(&keys.apply(Request::new(&none)), model.as_deref(), cost_usd)
            .py()
    }

    /// The state of the budgets a request with these keys would be charged to, as dicts.
    #[pyo3(signature = (router, *, tenant = None, user = None, episode = None))]
    fn budgets(
        &self,
        py: Python<'_>,
        router: &Bound<'_, PyRouter>,
        tenant: Option<String>,
        user: Option<String>,
        episode: Option<PyRef<'_, PyEpisode>>,
    ) -> PyResult<Py<PyAny>> {
        let binding = self.binding(router)?;
        let keys = Keys {
            tenant,
            user,
            session: None,
            episode: episode.map(|e| e.inner.clone()),
        };
        let none = QueryFeatures::new(vec![1.0]).py()?;
        crate::convert::to_python(py, &binding.budgets(&keys.apply(Request::new(&none))))
    }

    fn __repr__(&self) -> String {
        let c = self.policy.config();
        let py_bool = |b: bool| if b { "True" } else { "False" };
        format!(
            "Policy({} rules, {} budgets, sticky={}, guard={})",
            c.rules.len(),
            c.budgets.len(),
            py_bool(c.sticky.is_some()),
            py_bool(c.guard.is_some())
        )
    }
}

/// An agent episode: a budget for all its steps. Pass it to each step's `route(...,
/// episode=...)` and `Policy.record(..., episode=...)`; each step is paced with the remaining
/// budget over the remaining steps.
#[pyclass(name = "Episode", module = "pointsman", frozen)]
#[derive(Debug)]
pub struct PyEpisode {
    pub inner: Episode,
}

#[pymethods]
impl PyEpisode {
    /// An episode `id` with `budget_usd` for `steps` steps; `stop_margin` ≥ 1 keeps room for
    /// steps costlier than their estimate.
    #[new]
    #[pyo3(signature = (id, budget_usd, steps, *, stop_margin = 1.0))]
    fn py_new(id: String, budget_usd: f64, steps: u64, stop_margin: f64) -> PyResult<PyEpisode> {
        let inner = Episode::new(id, budget_usd, steps)
            .and_then(|e| e.with_stop_margin(stop_margin))
            .py()?;
        Ok(PyEpisode { inner })
    }

    /// The episode's id.
    #[getter]
    fn id(&self) -> String {
        self.inner.id.clone()
    }

    /// Its budget, USD.
    #[getter]
    fn budget_usd(&self) -> f64 {
        self.inner.budget_usd
    }

    /// Its steps.
    #[getter]
    fn steps(&self) -> u64 {
        self.inner.steps
    }

    fn __repr__(&self) -> String {
        format!(
            "Episode({:?}, budget_usd={}, steps={})",
            self.inner.id, self.inner.budget_usd, self.inner.steps
        )
    }
}

/// Metadata as pairs, sorted by key (a dict's order does not matter to the rules).
pub fn metadata_pairs(metadata: Option<HashMap<String, String>>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = metadata.unwrap_or_default().into_iter().collect();
    v.sort();
    v
}
