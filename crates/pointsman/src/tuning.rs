//! What the routers' hyper-parameter searches share: the folds of a k-fold cross-validation,
//! the selection criterion, and one report type.
//!
//! kNN and MF choose their settings by k-fold cross-validation on the training split, the
//! cascade by leave-one-out estimates; all three score the out-of-fold estimates of the training
//! split like a test split ([`crate::metrics::validation_metrics`]) and select by the same
//! [`Criterion`]: AIQ, or APGR on two-model data. No search reads a test label.
//!
//! # Example
//!
//! ```
//! use pointsman::tuning::Folds;
//! let folds = Folds::new(10, 3, 0)?;
//! assert_eq!(folds.count(), 3);
//! let held: Vec<usize> = folds.held_out(0).collect();
//! assert!(held.iter().all(|&i| folds.fold_of(i) == 0));
//! assert_eq!((0..3).map(|f| folds.held_out(f).count()).sum::<usize>(), 10);
//! # Ok::<(), pointsman::Error>(())
//! ```

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::rng::SplitMix64;
use crate::router::Estimates;

/// Out-of-fold estimates over `models` models: for each fold, `estimate(training, held_out)`
/// fits on the training rows and returns the held-out rows' estimates (in `held_out`'s order);
/// they are gathered into one table in the items' order, signals included. The folds run in
/// parallel when `parallel` (fits that use several threads themselves may prefer not to).
///
/// # Errors
///
/// The first error of `estimate`.
pub fn out_of_fold<F>(
    folds: &Folds,
    models: usize,
    parallel: bool,
    estimate: F,
) -> Result<Estimates>
where
    F: Fn(&[usize], &[usize]) -> Result<Estimates> + Sync,
{
    let one = |f: usize| {
        let rest: Vec<usize> = folds.training(f).collect();
        let held: Vec<usize> = folds.held_out(f).collect();
        let e = estimate(&rest, &held)?;
        Ok((held, e))
    };
    let parts: Vec<(Vec<usize>, Estimates)> = if parallel {
        (0..folds.count())
            .into_par_iter()
            .map(one)
            .collect::<Result<_>>()?
    } else {
        (0..folds.count()).map(one).collect::<Result<_>>()?
    };
    let mut est = Estimates::new(folds.len(), models);
    for (held, e) in parts {
        for (i, &r) in held.iter().enumerate() {
            let (q, c) = est.row_mut(r);
            q.copy_from_slice(e.quality_row(i));
            c.copy_from_slice(e.cost_row(i));
            est.signals[r] = e.signals[i];
        }
    }
    Ok(est)
}

/// A search's progress hook: called with (steps done, steps in all) each time a step of the
/// search ends (a setting scored, or one fold of a setting fitted), from whichever thread ran
/// it. The default reports nothing. A hook is not a setting: two hooks compare equal, and a
/// search saved or parsed as JSON has none.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use pointsman::tuning::Progress;
/// let last = Arc::new(AtomicUsize::new(0));
/// let seen = last.clone();
/// let progress = Progress::new(move |done, _total| { seen.store(done, Ordering::Relaxed); });
/// let steps = progress.steps(3);
/// (0..3).for_each(|_| steps.step());
/// assert_eq!(last.load(Ordering::Relaxed), 3);
/// ```
#[derive(Clone, Default)]
pub struct Progress(Option<std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>>);

impl Progress {
    /// A hook that calls `report(done, total)`.
    pub fn new(report: impl Fn(usize, usize) + Send + Sync + 'static) -> Progress {
        Progress(Some(std::sync::Arc::new(report)))
    }

    /// The hook of run `run` (0-based) of `runs` runs of the same search, reporting through
    /// this one as a single count: `(run · total + done, runs · total)`. None when this hook
    /// reports nothing.
    pub fn part(&self, run: usize, runs: usize) -> Progress {
        match &self.0 {
            None => Progress(None),
            Some(f) => {
                let f = f.clone();
                Progress::new(move |done, total| f(run * total + done, runs * total))
            }
        }
    }

    /// A counter of `total` steps that reports through this hook.
    pub fn steps(&self, total: usize) -> Steps<'_> {
        if let Some(f) = &self.0 {
            f(0, total);
        }
        Steps {
            progress: self,
            done: std::sync::atomic::AtomicUsize::new(0),
            total,
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(reporting)"
        } else {
            "Progress(none)"
        })
    }
}

impl PartialEq for Progress {
    fn eq(&self, _: &Progress) -> bool {
        true
    }
}

/// The steps of one search, counted across threads ([`Progress::steps`]).
#[derive(Debug)]
pub struct Steps<'a> {
    progress: &'a Progress,
    done: std::sync::atomic::AtomicUsize,
    total: usize,
}

impl Steps<'_> {
    /// One more step done.
    pub fn step(&self) {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if let Some(f) = &self.progress.0 {
            f(done.min(self.total), self.total);
        }
    }
}

/// A seeded assignment of `n` items to `k` folds of (almost) equal size.
///
/// The items are shuffled by the seed; the item at position `p` of the shuffle goes to fold
/// `p % k`, so fold sizes differ by at most one and the folds depend on `n`, `k` and the seed
/// only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folds {
    k: usize,
    /// The shuffled items: position `p` is in fold `p % k`.
    order: Vec<usize>,
    /// The fold of each item.
    fold: Vec<usize>,
}

impl Folds {
    /// Assigns `n` items to `k` folds, shuffled by `seed`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for fewer than 2 folds; [`Error::InvalidInput`] when `n` is smaller than
    /// `2 k` (every fold needs items to hold out and to train on).
    pub fn new(n: usize, k: usize, seed: u64) -> Result<Folds> {
        if k < 2 {
            return Err(Error::Config(format!(
                "a cross-validation needs at least 2 folds, not {k}"
            )));
        }
        if n < 2 * k {
            return Err(Error::InvalidInput(format!(
                "{n} training queries are too few for {k} folds"
            )));
        }
        let mut order: Vec<usize> = (0..n).collect();
        SplitMix64::new(seed).shuffle(&mut order);
        let mut fold = vec![0usize; n];
        for (p, &i) in order.iter().enumerate() {
            fold[i] = p % k;
        }
        Ok(Folds { k, order, fold })
    }

    /// The number of folds.
    pub fn count(&self) -> usize {
        self.k
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.fold.len()
    }

    /// Whether there are no items (never: [`Folds::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.fold.is_empty()
    }

    /// The fold of item `i`.
    pub fn fold_of(&self, i: usize) -> usize {
        self.fold[i]
    }

    /// The items of fold `f`, in shuffled order.
    pub fn held_out(&self, f: usize) -> impl Iterator<Item = usize> + '_ {
        self.order.iter().skip(f).step_by(self.k).copied()
    }

    /// The items of every fold but `f`, fold by fold, each in shuffled order.
    pub fn training(&self, f: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.k)
            .filter(move |&g| g != f)
            .flat_map(move |g| self.held_out(g))
    }
}

/// The metric a search selects by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// RouterBench's AIQ (any number of models).
    Aiq,
    /// RouteLLM's APGR (two-model data; AIQ when the two models score alike).
    Apgr,
    /// The best mean quality of the curve.
    MaxQuality,
}

impl Criterion {
    /// AIQ, or APGR when the data has a weak and a strong model.
    pub fn for_data(weak_strong: Option<(usize, usize)>) -> Criterion {
        if weak_strong.is_some() {
            Criterion::Apgr
        } else {
            Criterion::Aiq
        }
    }

    /// The criterion's value in `metrics`.
    pub fn score(self, metrics: &Metrics) -> f64 {
        match self {
            Criterion::Aiq => metrics.aiq,
            Criterion::Apgr => metrics.apgr.unwrap_or(metrics.aiq),
            Criterion::MaxQuality => metrics.max_quality,
        }
    }

    /// The criterion's name in reports (`aiq`, `apgr`, `max_quality`).
    pub fn name(self) -> &'static str {
        match self {
            Criterion::Aiq => "aiq",
            Criterion::Apgr => "apgr",
            Criterion::MaxQuality => "max_quality",
        }
    }

    /// Every criterion.
    pub const ALL: [Criterion; 3] = [Criterion::Aiq, Criterion::Apgr, Criterion::MaxQuality];

    /// The criterion called `name` ([`Criterion::name`]; `max-quality` is accepted too).
    pub fn from_name(name: &str) -> Option<Criterion> {
        let name = name.replace('-', "_");
        Criterion::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// How a search's estimates were held out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// k-fold cross-validation on the training split.
    KFold {
        /// The number of folds.
        folds: usize,
    },
    /// Leave-one-out estimates on the training split.
    LeaveOneOut,
}

/// One setting a search tried, with its validation figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial<C> {
    /// The setting, as a config of the router kind.
    pub config: C,
    /// The criterion's value.
    pub score: f64,
    /// Every validation metric.
    pub metrics: Metrics,
}

/// What a search did: how it validated, by which criterion, every setting it tried (best first)
/// and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReport<C> {
    /// The selection criterion.
    pub criterion: Criterion,
    /// How the estimates were held out.
    pub validation: Validation,
    /// Every setting tried, best first (ties keep the order in which they were tried).
    pub trials: Vec<Trial<C>>,
    /// Wall-clock seconds of the search (not the final fit).
    pub seconds: f64,
}

impl<C> SearchReport<C> {
    /// Sorts `trials` best first (a stable sort: ties keep the order tried) into a report.
    ///
    /// # Panics
    ///
    /// When `trials` is empty (a search validates its grid first).
    pub fn new(
        criterion: Criterion,
        validation: Validation,
        mut trials: Vec<Trial<C>>,
        started: std::time::Instant,
    ) -> Self {
        assert!(!trials.is_empty(), "a search tries at least one setting");
        trials.sort_by(|a, b| b.score.total_cmp(&a.score));
        SearchReport {
            criterion,
            validation,
            trials,
            seconds: started.elapsed().as_secs_f64(),
        }
    }

    /// The winning setting.
    pub fn best(&self) -> &C {
        &self.trials[0].config
    }

    /// How the criterion was measured, as reports print it: `"cv aiq"` (k-fold) or `"loo apgr"`
    /// (leave-one-out).
    pub fn describe(&self) -> String {
        let how = match self.validation {
            Validation::KFold { .. } => "cv",
            Validation::LeaveOneOut => "loo",
        };
        format!("{how} {}", self.criterion.name())
    }

    /// The report with its settings mapped by `f` (for example into saved-router configs).
    pub fn map<D>(self, mut f: impl FnMut(C) -> D) -> SearchReport<D> {
        SearchReport {
            criterion: self.criterion,
            validation: self.validation,
            trials: self
                .trials
                .into_iter()
                .map(|t| Trial {
                    config: f(t.config),
                    score: t.score,
                    metrics: t.metrics,
                })
                .collect(),
            seconds: self.seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_partition_the_items() {
        let f = Folds::new(11, 3, 7).unwrap();
        let mut all: Vec<usize> = (0..3).flat_map(|g| f.held_out(g)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..11).collect::<Vec<_>>());
        let sizes: Vec<usize> = (0..3).map(|g| f.held_out(g).count()).collect();
        assert_eq!(sizes, vec![4, 4, 3]);
        for g in 0..3 {
            assert!(f.training(g).all(|i| f.fold_of(i) != g));
            assert_eq!(f.training(g).count() + f.held_out(g).count(), 11);
        }
        assert_eq!(Folds::new(11, 3, 7).unwrap(), f);
        assert_ne!(Folds::new(11, 3, 8).unwrap(), f);
        assert_eq!(
            Folds::new(5, 3, 0).unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
        assert_eq!(
            Folds::new(50, 1, 0).unwrap_err().kind(),
            crate::ErrorKind::Config
        );
    }

    #[test]
    fn reports_sort_best_first_and_keep_ties_in_order() {
        let m = |aiq| Metrics {
            aiq,
            max_quality: aiq,
            quality_at_best_single_cost: None,
            cost_to_match_best_single: None,
            quality_at_cheap_share: None,
            oracle_gap: 0.0,
            apgr: None,
            cpt50: None,
            cpt80: None,
        };
        let trials = [(1, 0.5), (2, 0.7), (3, 0.7), (4, 0.1)]
            .map(|(c, s)| Trial {
                config: c,
                score: Criterion::Aiq.score(&m(s)),
                metrics: m(s),
            })
            .to_vec();
        let r = SearchReport::new(
            Criterion::Aiq,
            Validation::KFold { folds: 5 },
            trials,
            std::time::Instant::now(),
        );
        assert_eq!(
            r.trials.iter().map(|t| t.config).collect::<Vec<_>>(),
            [2, 3, 1, 4]
        );
        assert_eq!(*r.best(), 2);
        assert_eq!(r.describe(), "cv aiq");
        assert_eq!(r.map(|c| c * 10).trials[0].config, 20);
        assert_eq!(Criterion::for_data(Some((0, 1))), Criterion::Apgr);
        assert_eq!(Criterion::Apgr.score(&m(0.3)), 0.3);
        assert_eq!(Criterion::MaxQuality.score(&m(0.4)), 0.4);
        for c in Criterion::ALL {
            assert_eq!(Criterion::from_name(c.name()), Some(c));
        }
        assert_eq!(
            Criterion::from_name("max-quality"),
            Some(Criterion::MaxQuality)
        );
        assert_eq!(Criterion::from_name("best"), None);
    }
}
