//! `evaluate`: the figures of `pointsman eval` for one router, through the same entry point.

use pointsman::eval::{EntrantOptions, Evaluation};
use pyo3::prelude::*;

use crate::convert::to_python;
use crate::data::PySplit;
use crate::parallel::run;
use crate::router::PyRouter;

/// Evaluates `router` on the labelled `split` and returns the figures of `pointsman eval` as a
/// dict: `metrics` (AIQ, max quality, quality at the best single model's cost, cost to match it,
/// quality at the cheap share, oracle gap, and APGR/CPT on two-model data), the cost `curve` (and
/// the strong-call share `call_curve` of two-model data), and the `reference` figures (single
/// models, best single model, oracle, zero router).
///
/// `cost_weights`: None sweeps the cost weight exactly as `pointsman eval` does; a list
/// evaluates at those weights only (one curve point each). The best single model is chosen on
/// `train` when given, else on the training split of the dataset `split` belongs to, else on
/// `split` itself.
#[pyfunction]
#[pyo3(signature = (router, split, cost_weights = None, *, train = None))]
pub fn evaluate(
    py: Python<'_>,
    router: &Bound<'_, PyRouter>,
    split: &Bound<'_, PySplit>,
    cost_weights: Option<Vec<f64>>,
    train: Option<&Bound<'_, PySplit>>,
) -> PyResult<Py<PyAny>> {
    let router = router.get().inner.clone();
    let test_split = split.get();
    let train_split = train.map(Bound::get).unwrap_or(test_split);
    let (reference_train, weak_strong) = match (train, test_split.source_dataset()) {
        (None, Some(ds)) => (ds.train(), ds.weak_strong()),
        _ => (
            train_split.split(),
            match train_split.source_dataset() {
                Some(ds) => ds.weak_strong(),
                None => train_split.split().weak_strong(),
            },
        ),
    };
    let test = test_split.split();
    let dataset = match test_split.source_dataset() {
        Some(ds) => ds.name().to_string(),
        None => test.name().to_string(),
    };
    let report = run(py, || {
        let evaluation = Evaluation::new(
            dataset,
            reference_train,
            test,
            weak_strong,
            EntrantOptions::default(),
        )?;
        let name = router.kind().name();
        let evaluated = evaluation.evaluate_router(name, router.shared(), cost_weights)?;
        let report = evaluation.report(vec![evaluated.report]);
        let entrant = &report.entrants[0];
        Ok(serde_json::json!({
            "dataset": report.dataset,
            "n_test": report.n_test,
            "router": entrant.name,
            "metrics": entrant.metrics,
            "curve": entrant.curve,
            "call_curve": entrant.call_curve,
            "reference": report.reference,
        }))
    })?;
    to_python(py, &report)
}
