//! [`Evaluation`]: the one entry point of `pointsman eval` and Python's `pointsman.evaluate`.

use std::sync::Arc;
use std::time::Instant;

use super::{entrant_by_name, Entrant, EntrantOptions, Report, RouterEntrant};
use crate::data::{Dataset, Split};
use crate::error::Result;
use crate::metrics::{evaluate_sweep, EntrantReport, Reference, SweepPoint};
use crate::router::Router;

/// An evaluation: a labelled test split, its reference figures (single models, the best single
/// model chosen on the training split, the oracle), and the options entrants are built with.
///
/// # Example
///
/// ```no_run
/// use pointsman::data::Dataset;
/// use pointsman::eval::{EntrantOptions, Evaluation};
/// let ds = Dataset::load("../shared/data/llmrouter_dc")?;
/// let evaluation = Evaluation::of_dataset(&ds, EntrantOptions::default())?;
/// let zero = evaluation.evaluate_named("zero")?;
/// println!("zero router AIQ {:.4}", zero.report.metrics.aiq);
/// let report = evaluation.report(vec![zero.report]);
/// # let _ = report;
/// # Ok::<(), pointsman::Error>(())
/// ```
#[derive(Debug)]
pub struct Evaluation<'a> {
    dataset: String,
    train: &'a Split,
    test: &'a Split,
    reference: Reference,
    options: EntrantOptions,
}

/// One entrant's evaluation, with the sweep it was computed from and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// The curves and metrics.
    pub report: EntrantReport,
    /// The sweep: every point's model per test query (what `decisions.jsonl` holds).
    pub sweep: Vec<SweepPoint>,
    /// Seconds spent fitting the entrant on the training split (0 for a given router).
    pub fit_seconds: f64,
    /// Seconds spent sweeping the test split.
    pub sweep_seconds: f64,
}

impl<'a> Evaluation<'a> {
    /// An evaluation on `test`, with the best single model chosen on `train`, of a dataset called
    /// `dataset`; `weak_strong` names the weak and the strong model of two-model data (for APGR
    /// and CPT).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidInput`] for an empty split or splits over different models.
    pub fn new(
        dataset: impl Into<String>,
        train: &'a Split,
        test: &'a Split,
        weak_strong: Option<(usize, usize)>,
        options: EntrantOptions,
    ) -> Result<Self> {
        let reference = Reference::new(train, test, weak_strong)?;
        Ok(Evaluation {
            dataset: dataset.into(),
            train,
            test,
            reference,
            options,
        })
    }

    /// The evaluation of a dataset's test split.
    ///
    /// # Errors
    ///
    /// As [`Evaluation::new`].
    pub fn of_dataset(ds: &'a Dataset, options: EntrantOptions) -> Result<Self> {
        Evaluation::new(ds.name(), ds.train(), ds.test(), ds.weak_strong(), options)
    }

    /// The reference figures.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The test split.
    pub fn test(&self) -> &'a Split {
        self.test
    }

    /// The options entrants are built with.
    pub fn options(&self) -> &EntrantOptions {
        &self.options
    }

    /// Sweeps `entrant` over the test split and scores it.
    ///
    /// # Errors
    ///
    /// The entrant's sweep errors; [`crate::Error::Shape`] or [`crate::Error::UnknownModel`] for
    /// a sweep that does not fit the split.
    pub fn evaluate(&self, entrant: &dyn Entrant) -> Result<Evaluated> {
        let started = Instant::now();
        let sweep = entrant.sweep(self.test)?;
        let mut report = evaluate_sweep(
            entrant.name(),
            entrant.reads_test_labels(),
            &sweep,
            self.test,
            &self.reference,
        )?;
        report.simulated_judge = entrant.simulated_judge();
        Ok(Evaluated {
            report,
            sweep,
            fit_seconds: 0.0,
            sweep_seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Builds the entrant called `name` (see [`entrant_by_name`]), fitting it on the training
    /// split, and evaluates it.
    ///
    /// # Errors
    ///
    /// The errors of [`entrant_by_name`] and [`Evaluation::evaluate`].
    pub fn evaluate_named(&self, name: &str) -> Result<Evaluated> {
        let started = Instant::now();
        let entrant = entrant_by_name(name, self.train, &self.options)?;
        let fit_seconds = started.elapsed().as_secs_f64();
        Ok(Evaluated {
            fit_seconds,
            ..self.evaluate(entrant.as_ref())?
        })
    }

    /// Evaluates a fitted router under `name`: swept over the cost weight, or at exactly
    /// `cost_weights` when given (one curve point each).
    ///
    /// # Errors
    ///
    /// As [`Evaluation::evaluate`]; [`crate::Error::Config`] for an empty list of cost weights or
    /// a negative or non-finite one.
    pub fn evaluate_router(
        &self,
        name: &str,
        router: Arc<dyn Router>,
        cost_weights: Option<Vec<f64>>,
    ) -> Result<Evaluated> {
        let mut entrant = RouterEntrant::new(name, router).with_points(self.options.sweep_points);
        if let Some(w) = cost_weights {
            entrant = entrant.with_cost_weights(w);
        }
        self.evaluate(&entrant)
    }

    /// The report of the entrants evaluated, in the order given.
    pub fn report(&self, entrants: Vec<EntrantReport>) -> Report {
        Report {
            dataset: self.dataset.clone(),
            n_test: self.test.len(),
            reference: self.reference.clone(),
            entrants,
        }
    }
}
