//! The router kinds: subclasses of `Router` that add their constructors. Every other method is
//! the base class's.

use pointsman::registry::{Family, RouterSpec};
use pointsman::routers::baseline::{Baseline, BaselineRouter};
use pointsman::routers::knn::{KnnConfig, KnnRouter, KnnSearch};
use pointsman::routers::mf::{MfConfig, MfRouter, MfSearch};
use pointsman::{AnyRouter, Error, RouterKind};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{from_kwargs, to_python};
use crate::data::PySplit;
use crate::errors::IntoPyResult;
use crate::parallel::run;
use crate::router::{wrap, PyRouter};

/// `(router, report)` for Python.
fn tuned<S: serde::Serialize>(
    py: Python<'_>,
    router: impl Into<AnyRouter>,
    report: &S,
) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
    Ok((wrap(py, router)?, to_python(py, report)?))
}

/// kNN router: each model's expected quality on a query is the similarity-weighted mean score of
/// its nearest training queries, shrunk toward a prior.
#[pyclass(name = "KnnRouter", module = "pointsman", extends = PyRouter, frozen)]
#[derive(Debug)]
pub struct PyKnnRouter;

#[pymethods]
impl PyKnnRouter {
    /// Fits on a labelled split. Keyword arguments set `KnnConfig` fields (the JSON object of
    /// `pointsman train --config`): `k`, `weighting` (e.g. `{"kind": "power", "power": 1.0}`),
    /// `shrinkage`, `prior` (`{"kind": "global"}` or `{"kind": "task", "strength": 50.0}`),
    /// `same_task`, `ood_neighbours`, `index` (`{"kind": "exact"}`, ...).
    #[staticmethod]
    #[pyo3(signature = (split, **config))]
    fn fit(
        py: Python<'_>,
        split: &Bound<'_, PySplit>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let config: KnnConfig = from_kwargs(py, config, "knn config")?;
        let split = split.get().split();
        let router = run(py, || KnnRouter::fit(split, &config))?;
        wrap(py, router)
    }

    /// Fits on arrays: `embeddings` `[n, dim]`, `scores` and `costs` `[n, len(models)]` (see
    /// `Split.from_arrays`); keyword arguments as for `fit`.
    #[staticmethod]
    #[pyo3(signature = (embeddings, scores, costs, models, **config))]
    fn fit_arrays(
        py: Python<'_>,
        embeddings: &Bound<'_, PyAny>,
        scores: &Bound<'_, PyAny>,
        costs: &Bound<'_, PyAny>,
        models: Vec<String>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let split = PySplit::from_arrays(py, embeddings, scores, costs, models, None)?;
        Self::fit(py, &Bound::new(py, split)?, config)
    }

    /// Chooses the hyper-parameters by cross-validation on the split (no test label is read)
    /// and fits the best configuration. `search` sets `KnnSearch` fields (`folds`, `seed`, and
    /// the lists `k`, `power`, `same_task`, `task_prior`, `shrinkage`); keyword arguments set the
    /// fields of the base config that are not searched. Returns `(router, report)`, the report
    /// listing every configuration tried, best first.
    #[staticmethod]
    #[pyo3(signature = (split, search = None, **config))]
    fn tune(
        py: Python<'_>,
        split: &Bound<'_, PySplit>,
        search: Option<&Bound<'_, PyDict>>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let base: KnnConfig = from_kwargs(py, config, "knn config")?;
        let grid: KnnSearch = from_kwargs(py, search, "knn search")?;
        let split = split.get().split();
        let (router, report) = run(py, || KnnRouter::tune(split, &base, &grid))?;
        tuned(py, router, &report)
    }
}

/// Matrix-factorisation router (RouteLLM's MF, generalised to N models).
#[pyclass(name = "MfRouter", module = "pointsman", extends = PyRouter, frozen)]
#[derive(Debug)]
pub struct PyMfRouter;

#[pymethods]
impl PyMfRouter {
    /// Trains on a labelled split. Keyword arguments set `MfConfig` fields: `dim`,
    /// `learning_rate`, `weight_decay`, `batch_size`, `max_epochs`, `patience`,
    /// `validation_fraction`, `normalize_model_vectors`, `use_tasks`, `seed`.
    #[staticmethod]
    #[pyo3(signature = (split, **config))]
    fn fit(
        py: Python<'_>,
        split: &Bound<'_, PySplit>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let config: MfConfig = from_kwargs(py, config, "mf config")?;
        let split = split.get().split();
        let router = run(py, || MfRouter::fit(split, &config))?;
        wrap(py, router)
    }

    /// Trains on arrays (see `KnnRouter.fit_arrays`); keyword arguments as for `fit`.
    #[staticmethod]
    #[pyo3(signature = (embeddings, scores, costs, models, **config))]
    fn fit_arrays(
        py: Python<'_>,
        embeddings: &Bound<'_, PyAny>,
        scores: &Bound<'_, PyAny>,
        costs: &Bound<'_, PyAny>,
        models: Vec<String>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let split = PySplit::from_arrays(py, embeddings, scores, costs, models, None)?;
        Self::fit(py, &Bound::new(py, split)?, config)
    }

    /// Chooses the latent dimension and learning rate by cross-validation on the split and
    /// trains the best. `search` sets `MfSearch` fields (`folds`, `seed`, the lists `dim` and
    /// `learning_rate`); keyword arguments set the other `MfConfig` fields. Returns
    /// `(router, report)`.
    #[staticmethod]
    #[pyo3(signature = (split, search = None, **config))]
    fn tune(
        py: Python<'_>,
        split: &Bound<'_, PySplit>,
        search: Option<&Bound<'_, PyDict>>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let base: MfConfig = from_kwargs(py, config, "mf config")?;
        let grid: MfSearch = from_kwargs(py, search, "mf search")?;
        let split = split.get().split();
        let (router, report) = run(py, || MfRouter::tune(split, &base, &grid))?;
        tuned(py, router, &report)
    }
}

/// The baselines a learned router must beat: `"random"`, `"cheapest"`, `"best-single"`,
/// `"fixed:<model id>"` and `"zero"` (RouterBench's zero router).
#[pyclass(name = "BaselineRouter", module = "pointsman", extends = PyRouter, frozen)]
#[derive(Debug)]
pub struct PyBaselineRouter;

#[pymethods]
impl PyBaselineRouter {
    /// Fits the baseline `rule` on a labelled split; `seed` is the random router's.
    #[staticmethod]
    #[pyo3(signature = (split, rule, seed = 0))]
    fn fit(
        py: Python<'_>,
        split: &Bound<'_, PySplit>,
        rule: &str,
        seed: u64,
    ) -> PyResult<Py<PyAny>> {
        let rule = match RouterSpec::parse(rule) {
            Ok(RouterSpec::Fixed(model)) => Some(Baseline::Fixed { model }),
            Ok(RouterSpec::Kind(kind)) => Baseline::of(kind, seed),
            _ => None,
        }
        .ok_or_else(|| {
            let known: Vec<String> = RouterKind::ALL
                .iter()
                .filter(|k| k.family() == Family::Baseline)
                .map(|k| match k {
                    RouterKind::Fixed => format!("{k}:<model id>"),
                    _ => k.to_string(),
                })
                .collect();
            Error::Config(format!(
                "unknown baseline {rule:?} (known: {})",
                known.join(", ")
            ))
        })
        .py()?;
        let split = split.get().split();
        let router = run(py, || BaselineRouter::fit(rule, split))?;
        wrap(py, router)
    }
}

/// `pointsman.train(split, router, ...)`: fits a router of the kind `router` on a labelled split
/// as `pointsman train --router <kind>` does, and returns `(router, report)`. With `"auto"`,
/// every pre-call kind and a stack of them are cross-validated on `split` (and only `split`: pass
/// the train split), ranked by `criterion` (`"aiq"`, `"apgr"`, `"max_quality"`; default AIQ, or
/// APGR on two-model data) and the best is returned; the report lists every candidate's
/// cross-validated figures and seconds; `knn`, `mf` and `irt` are measured by nested
/// cross-validation (their search rerun without each fold) unless `nested=False`. For another
/// kind, the report is its search's (or
/// `None` for kinds fitted without one).
#[pyfunction]
#[allow(clippy::too_many_arguments)] // the Python keyword arguments, one each
#[pyo3(signature = (split, router, *, criterion = None, kinds = None, folds = None, seed = 0, nested = true))]
pub fn train(
    py: Python<'_>,
    split: &Bound<'_, PySplit>,
    router: &str,
    criterion: Option<&str>,
    kinds: Option<Vec<String>>,
    folds: Option<usize>,
    seed: u64,
    nested: bool,
) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
    use pointsman::registry::{AutoOptions, FitOptions};
    use pointsman::tuning::Criterion;
    let split = split.get().split();
    if router != RouterKind::AUTO {
        // folds=5, what the other kinds' searches use, is accepted: it changes nothing.
        let other_folds = folds.is_some_and(|f| f != AutoOptions::default().folds);
        if criterion.is_some() || kinds.is_some() || other_folds || !nested {
            return Err(Error::Config(
                "criterion, kinds, folds and nested go with router=\"auto\" (the other kinds' \
                 searches use 5 folds)"
                    .into(),
            ))
            .py();
        }
        let kind = RouterKind::from_name(router)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown router kind {router:?} (known: {}, {})",
                    RouterKind::AUTO,
                    RouterKind::names()
                ))
            })
            .py()?;
        let options = FitOptions {
            seed,
            ..Default::default()
        };
        let fitted = run(py, || AnyRouter::fit(kind, split, &options))?;
        return Ok((wrap(py, fitted.router)?, to_python(py, &fitted.search)?));
    }
    let criterion = criterion
        .map(|name| {
            Criterion::from_name(name).ok_or_else(|| {
                Error::Config(format!(
                    "unknown criterion {name:?} (known: {})",
                    Criterion::ALL.map(Criterion::name).join(", ")
                ))
            })
        })
        .transpose()
        .py()?;
    if kinds.as_ref().is_some_and(Vec::is_empty) {
        return Err(Error::Config(
            "kinds is empty: leave it out to try every kind auto can fit".into(),
        ))
        .py();
    }
    let kinds = kinds
        .unwrap_or_default()
        .iter()
        .map(|k| {
            RouterKind::from_name(k).ok_or_else(|| {
                Error::Config(format!(
                    "unknown kind {k:?} in kinds (known: {})",
                    RouterKind::names()
                ))
            })
        })
        .collect::<pointsman::Result<Vec<_>>>()
        .py()?;
    let options = AutoOptions {
        seed,
        folds: folds.unwrap_or(AutoOptions::default().folds),
        criterion,
        kinds,
        nested,
        ..Default::default()
    };
    let (router, report) = run(py, || AnyRouter::fit_auto(split, &options, &mut |_| {}))?;
    tuned(py, router, &report)
}
