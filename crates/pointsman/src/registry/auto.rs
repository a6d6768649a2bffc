//! The automatic choice (`pointsman train --router auto`): cross-validate every pre-call kind
//! and a stack of the estimators on the training split, and keep the best.
//!
//! [`AnyRouter::fit_auto`] receives the training split and nothing else, so no test label can
//! reach the choice. Every candidate is measured the same way: its *out-of-fold* estimates of
//! every training query — made without that query's labels — scored like a test split
//! ([`validation_metrics`]) by one [`Criterion`]: AIQ, APGR on two-model data, or the one the
//! caller names. The report adds the criterion on each fold alone
//! ([`AutoCandidate::fold_scores`]): how much the figure moves with the queries it is measured
//! on, and, paired fold by fold, whether one candidate's lead over another holds on every fold.
//!
//! | candidate | out-of-fold estimates | the router kept |
//! |---|---|---|
//! | `zero` | its training means, refitted per fold | fitted on the whole split |
//! | `knn`, `mf`, `irt` | nested: on each fold, the winner of the kind's own search run on the other folds ([`AutoOptions::nested`]) | the winner of the search on the whole split, fitted on it |
//! | `linucb`, `thompson`, `knn-ucb`, `cluster-ucb` | warm-started per fold, routed greedily | warm-started on the whole split |
//! | `stack` | weights fitted on the other folds' out-of-fold estimates of `knn`, `mf` and `irt` (those of the row above), shrinkage chosen among [`STACK_SHRINKAGE`] on the other folds alone (nested; the members' estimates of those folds came from searches that saw the fold) | the members above, weights fitted on all their out-of-fold estimates |
//!
//! Why nested: a search's winner is the setting whose out-of-fold figure came out highest, so
//! that figure is flattered by the choice — the more settings, the more (the winner's curse of
//! model selection; Cawley & Talbot, 2010, "On over-fitting in model selection and subsequent
//! selection bias in performance evaluation"). kNN's grid has over a hundred settings, MF's 6,
//! IRT's 4: ranked by their winners' own figures, kNN came first on both shipped datasets by
//! margins its nested figure does not keep (docs/results.md). The un-nested figure stays in the
//! report ([`AutoCandidate::search_score`]).
//!
//! `random`, `cheapest` and `best-single` are left out: their choice is a fixed rule rather
//! than their estimates, and the zero router's curve passes through the best single model and
//! the cheapest. `fixed` needs a model, and the cascade decides after answers (not pre-call).
//! Ties keep the order above (the simpler candidate first).

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{AnyRouter, Family, RouterConfig, RouterKind};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::metrics::{validation_metrics, Metrics, DEFAULT_SWEEP_POINTS};
use crate::router::{Estimates, Router};
use crate::routers::knn::{KnnConfig, KnnRouter, KnnSearch};
use crate::routers::stack::{StackConfig, StackRouter};
use crate::tuning::{out_of_fold, Criterion, Folds, Validation};

/// The stack's shrinkage values (toward equal weights, in queries) the automatic choice tries.
pub const STACK_SHRINKAGE: [f64; 3] = [1.0, 10.0, 100.0];

/// Settings of [`AnyRouter::fit_auto`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoOptions {
    /// Seed of the folds, of the kinds' searches and of training.
    pub seed: u64,
    /// Number of folds.
    pub folds: usize,
    /// The metric the candidates are ranked by; `None`: AIQ, or APGR on two-model data.
    pub criterion: Option<Criterion>,
    /// The kinds to try; empty: every pre-call kind this build can fit (the table of the
    /// [module documentation](self)). `stack` in the list (or an empty list) adds the stack of
    /// the listed estimators.
    pub kinds: Vec<RouterKind>,
    /// Whether a searched kind (`knn`, `mf`, `irt`) is measured by nested cross-validation:
    /// its whole search run again on each fold's complement, the winner there estimating the
    /// fold; and the stack with its shrinkage chosen per fold on the fold's complement alone
    /// (its members' estimates of the complement still come from searches that saw the fold:
    /// a smaller leak, as in any stacking over nested estimates). Without it a candidate's
    /// figure is its search winner's own cross-validated one, which the choice among the
    /// search's settings biases upward (more for a larger grid), so the kinds are not compared
    /// on equal terms. On (the default): up to `folds + 1` times the
    /// searches' time (3.7 times the whole choice on llmrouter_dc).
    pub nested: bool,
    /// Reports the progress of each candidate's own search (settings scored, or folds fitted,
    /// of all), beside the per-candidate events of [`AnyRouter::fit_auto`]'s callback.
    #[serde(skip)]
    pub progress: crate::tuning::Progress,
}

impl Default for AutoOptions {
    fn default() -> Self {
        AutoOptions {
            seed: 0,
            folds: 5,
            criterion: None,
            kinds: Vec::new(),
            nested: true,
            progress: crate::tuning::Progress::default(),
        }
    }
}

impl AutoOptions {
    /// The candidates, in the order they are tried (and ties broken).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a kind the automatic choice cannot try (naming why), or fewer than
    /// 2 folds.
    pub fn candidates(&self) -> Result<Vec<RouterKind>> {
        if self.folds < 2 {
            return Err(Error::Config(format!(
                "the automatic choice needs at least 2 folds, not {}",
                self.folds
            )));
        }
        let all: Vec<RouterKind> = RouterKind::ALL
            .into_iter()
            .filter(|&k| candidate(k) && fittable(k))
            .collect();
        if self.kinds.is_empty() {
            return Ok(all);
        }
        for &k in &self.kinds {
            if !candidate(k) {
                return Err(Error::Config(format!(
                    "the automatic choice does not try {k}: {}",
                    why_not(k)
                )));
            }
            if !fittable(k) {
                return Err(Error::Unsupported(format!(
                    "fitting an {k} router: this build has no `train` feature"
                )));
            }
        }
        Ok(all.into_iter().filter(|k| self.kinds.contains(k)).collect())
    }
}

/// Whether the automatic choice tries `kind` (see the module documentation).
fn candidate(kind: RouterKind) -> bool {
    kind.is_pre_call()
        && !matches!(
            kind,
            RouterKind::Random | RouterKind::Cheapest | RouterKind::BestSingle | RouterKind::Fixed
        )
}

fn why_not(kind: RouterKind) -> &'static str {
    match kind {
        RouterKind::Cascade => "it decides after answers, not before the call",
        RouterKind::Fixed => "it needs a model",
        _ => "its choice is a fixed rule, and the zero router's curve passes through it",
    }
}

/// Whether this build can fit `kind` (MF and IRT train with the `train` feature).
fn fittable(kind: RouterKind) -> bool {
    cfg!(feature = "train") || !matches!(kind, RouterKind::Mf | RouterKind::Irt)
}

/// One candidate's cross-validated figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoCandidate {
    /// The kind.
    pub kind: RouterKind,
    /// The setting kept (for searched kinds, the winner of the search on the whole split — a
    /// nested figure measures the search, whose winner may differ from fold to fold; for the
    /// stack, its members' configs and the shrinkage chosen on every fold).
    pub config: RouterConfig,
    /// The criterion's value.
    pub score: f64,
    /// Every validation metric of the out-of-fold estimates.
    pub metrics: Metrics,
    /// The criterion on each fold's held-out queries alone, in fold order: the spread behind
    /// `score`. Two candidates' figures on the same fold are paired (the same queries, the same
    /// training rows), so a lead that changes sign between folds is within the noise. `None`
    /// where the figure is undefined on that fold (APGR when its weak and strong models score
    /// the same there). Empty in reports written before this field existed.
    #[serde(default)]
    pub fold_scores: Vec<Option<f64>>,
    /// For a candidate measured nested ([`AutoOptions::nested`]: `knn`, `mf`, `irt`, `stack`),
    /// the criterion on the out-of-fold estimates of its whole-split search's winner (the
    /// stack's: of the shrinkage best on every fold) — the figure it was ranked by without
    /// nesting, flattered by the choice among its settings. For kNN part of the difference may
    /// also come from its search's own folds, which group rows by task and so differ from the
    /// automatic choice's. `None` otherwise.
    #[serde(default)]
    pub search_score: Option<f64>,
    /// Settings the candidate's own search tried (1 without a search).
    pub settings: usize,
    /// Wall-clock seconds: its search (nested: the search on the whole split and on every
    /// fold's complement) or per-fold fits, and the final fit (for the stack, the weights only:
    /// its members' time is theirs).
    pub seconds: f64,
}

/// What the automatic choice did: every candidate, best first, and the one kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoReport {
    /// The ranking metric.
    pub criterion: Criterion,
    /// How the estimates were held out.
    pub validation: Validation,
    /// Every candidate, best first (ties keep the order tried).
    pub candidates: Vec<AutoCandidate>,
    /// Wall-clock seconds of the whole choice.
    pub seconds: f64,
}

impl AutoReport {
    /// The candidate kept.
    pub fn chosen(&self) -> &AutoCandidate {
        &self.candidates[0]
    }
}

/// Progress of [`AnyRouter::fit_auto`], for a caller that shows it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum AutoProgress<'a> {
    /// Candidate `index` (0-based) of `total` starts.
    Started {
        /// Its kind.
        kind: RouterKind,
        /// Its position.
        index: usize,
        /// How many candidates there are.
        total: usize,
    },
    /// A candidate was measured.
    Finished {
        /// Its figures.
        candidate: &'a AutoCandidate,
        /// Its position.
        index: usize,
        /// How many candidates there are.
        total: usize,
    },
}

/// A candidate measured: its figures, out-of-fold estimates and, when its search fitted it
/// already, the router.
struct Measured {
    report: AutoCandidate,
    oof: Estimates,
    router: Option<AnyRouter>,
}

impl AnyRouter {
    /// Cross-validates the candidates of `options` on `train` (and only `train`), ranks them by
    /// the criterion and returns the best, fitted on the whole split, with the report.
    /// `progress` is called as each candidate starts and ends.
    ///
    /// # Errors
    ///
    /// The errors of [`AutoOptions::candidates`]; [`Error::InvalidInput`] for a split too small
    /// for the folds or without embeddings; the fitting errors of the candidates.
    ///
    /// # Example
    ///
    /// ```
    /// use pointsman::data::Split;
    /// use pointsman::registry::{AnyRouter, AutoOptions, RouterKind};
    /// use pointsman::{ModelCard, ModelPool};
    /// let pool = ModelPool::new(vec![ModelCard::new("a", 0.1, 0.1), ModelCard::new("b", 1.0, 1.0)])?;
    /// let (mut emb, mut scores) = (Vec::new(), Vec::new());
    /// for i in 0..60 {
    ///     let t = i as f32 / 60.0;
    ///     emb.extend_from_slice(&[1.0 - t, t]);
    ///     scores.extend_from_slice(&[if t < 0.5 { 1.0 } else { 0.0 }, 0.7]);
    /// }
    /// let train = Split::from_arrays(pool, emb, 2, scores, vec![1e-5; 120])?;
    /// let options = AutoOptions { kinds: vec![RouterKind::Zero, RouterKind::Knn], ..Default::default() };
    /// let (router, report) = AnyRouter::fit_auto(&train, &options, &mut |_| {})?;
    /// assert_eq!(report.candidates.len(), 2);
    /// assert!(report.candidates.iter().all(|c| c.fold_scores.len() == 5));
    /// assert_eq!(router.kind(), report.chosen().kind);
    /// # Ok::<(), pointsman::Error>(())
    /// ```
    pub fn fit_auto(
        train: &Split,
        options: &AutoOptions,
        progress: &mut dyn FnMut(AutoProgress<'_>),
    ) -> Result<(AnyRouter, AutoReport)> {
        let started = Instant::now();
        let kinds = options.candidates()?;
        train.features()?;
        train.require_full_labels(
            "the automatic choice (it scores every candidate's cross-validated routing curve; \
             with partial, pairwise or logged labels fit one kind: knn, mf or irt)",
        )?;
        let folds = Folds::new(train.len(), options.folds, options.seed)?;
        // Nested, each fold's complement is cross-validated again over as many folds.
        let nests = options.nested
            && kinds.iter().any(|k| {
                matches!(
                    k,
                    RouterKind::Knn | RouterKind::Mf | RouterKind::Irt | RouterKind::Stack
                )
            });
        let complement = train.len() - train.len().div_ceil(options.folds);
        if nests && complement < 2 * options.folds {
            return Err(Error::InvalidInput(format!(
                "{} training queries are too few for nested cross-validation over {} folds (each \
                 fold's {complement} other queries are cross-validated again; at least {} \
                 queries are needed): use fewer folds (--folds, Python's folds=), or turn nesting \
                 off (--no-nested, nested=False)",
                train.len(),
                options.folds,
                (2 * options.folds * options.folds).div_ceil(options.folds - 1)
            )));
        }
        let weak_strong = train.weak_strong();
        if options.criterion == Some(Criterion::Apgr) && weak_strong.is_none() {
            return Err(Error::Config(format!(
                "the criterion apgr needs two-model data (a weak and a strong model, \
                 docs/metrics.md); this split has {} model{}: rank by aiq or max_quality",
                train.pool().len(),
                if train.pool().len() == 1 { "" } else { "s" }
            )));
        }
        let criterion = options
            .criterion
            .unwrap_or_else(|| Criterion::for_data(weak_strong));
        let total = kinds.len();
        let mut measured: Vec<Measured> = Vec::new();
        for (index, &kind) in kinds.iter().enumerate() {
            progress(AutoProgress::Started { kind, index, total });
            let t0 = Instant::now();
            let m = if kind == RouterKind::Stack {
                let members: Vec<&Measured> = measured
                    .iter()
                    .filter(|c| c.report.kind.family() == Family::Estimator)
                    .collect();
                if members.is_empty() {
                    return Err(Error::Config(
                        "the stack candidate needs knn, mf or irt among the candidates".into(),
                    ));
                }
                measure_stack(train, &members, &folds, criterion, options)?
            } else {
                measure(kind, train, &folds, criterion, options)?
            };
            let mut m = m;
            m.report.seconds = t0.elapsed().as_secs_f64();
            progress(AutoProgress::Finished {
                candidate: &m.report,
                index,
                total,
            });
            measured.push(m);
        }
        // Best first; a stable sort keeps ties in the order tried.
        let mut order: Vec<usize> = (0..measured.len()).collect();
        order.sort_by(|&a, &b| {
            measured[b]
                .report
                .score
                .total_cmp(&measured[a].report.score)
        });
        let best = order[0];
        let router = match measured[best].router.take() {
            Some(r) => r,
            None => AnyRouter::fit_config(&measured[best].report.config, train)?,
        };
        let candidates = order.iter().map(|&i| measured[i].report.clone()).collect();
        let report = AutoReport {
            criterion,
            validation: Validation::KFold {
                folds: options.folds,
            },
            candidates,
            seconds: started.elapsed().as_secs_f64(),
        };
        Ok((router, report))
    }
}

/// Metrics of out-of-fold estimates under `criterion` (pooled: what the ranking uses).
fn score(est: &Estimates, train: &Split, criterion: Criterion) -> Result<(f64, Metrics)> {
    let metrics = validation_metrics(est, train, train.weak_strong(), DEFAULT_SWEEP_POINTS)?;
    Ok((criterion.score(&metrics), metrics))
}

/// The criterion on each fold's held-out rows alone ([`AutoCandidate::fold_scores`]).
fn fold_scores(
    est: &Estimates,
    train: &Split,
    folds: &Folds,
    criterion: Criterion,
) -> Result<Vec<Option<f64>>> {
    (0..folds.count())
        .map(|f| {
            let held: Vec<usize> = folds.held_out(f).collect();
            let truth = train.subset(&held, "validation");
            let m = validation_metrics(
                &est.select(&held),
                &truth,
                train.weak_strong(),
                DEFAULT_SWEEP_POINTS,
            )?;
            Ok(Some(criterion.score(&m)).filter(|v| v.is_finite()))
        })
        .collect()
}

/// Out-of-fold estimates of `config` by refitting it on every fold's complement; learners
/// route greedily (their posterior mean, no exploration).
fn refit_oof(config: &RouterConfig, train: &Split, folds: &Folds) -> Result<Estimates> {
    out_of_fold(folds, train.pool().len(), true, |rest, held| {
        let router = AnyRouter::fit_config(config, &train.subset(rest, "train"))?;
        let router: Arc<dyn Router> = match router.as_learner() {
            Some(l) => l.greedy().shared(),
            None => router.shared(),
        };
        router.estimate_batch(&train.subset(held, "validation").features()?)
    })
}

/// Measures one candidate that is not the stack.
fn measure(
    kind: RouterKind,
    train: &Split,
    folds: &Folds,
    criterion: Criterion,
    options: &AutoOptions,
) -> Result<Measured> {
    let seed = options.seed;
    let searched = |config: RouterConfig,
                    router: AnyRouter,
                    settings: usize,
                    oof: Estimates,
                    search_score: Option<f64>|
     -> Result<Measured> {
        let (score, metrics) = score(&oof, train, criterion)?;
        let fold_scores = fold_scores(&oof, train, folds, criterion)?;
        Ok(Measured {
            report: AutoCandidate {
                kind,
                config,
                score,
                metrics,
                fold_scores,
                search_score,
                settings,
                seconds: 0.0,
            },
            oof,
            router: Some(router),
        })
    };
    // A searched kind: its search on `split` (reporting through `progress`) → the winner
    // fitted on `split`, its config, the settings tried and the winner's out-of-fold estimates.
    type Searched = (AnyRouter, RouterConfig, usize, Estimates);
    let search = |split: &Split, progress: crate::tuning::Progress| -> Result<Searched> {
        match kind {
            RouterKind::Knn => {
                let search = KnnSearch {
                    seed,
                    folds: options.folds,
                    progress,
                    ..Default::default()
                };
                let (r, report, oof) =
                    KnnRouter::tune_with_estimates(split, &KnnConfig::default(), &search)?;
                let config = RouterConfig::Knn(report.best().clone());
                Ok((r.into(), config, report.trials.len(), oof))
            }
            #[cfg(feature = "train")]
            RouterKind::Mf => {
                use crate::routers::mf::{MfConfig, MfRouter, MfSearch};
                let base = MfConfig {
                    seed,
                    ..Default::default()
                };
                let search = MfSearch {
                    seed,
                    folds: options.folds,
                    progress,
                    ..Default::default()
                };
                let (r, report, oof) = MfRouter::tune_with_estimates(split, &base, &search)?;
                let config = RouterConfig::Mf(report.best().clone());
                Ok((r.into(), config, report.trials.len(), oof))
            }
            #[cfg(feature = "train")]
            RouterKind::Irt => {
                use crate::routers::irt::{IrtConfig, IrtRouter, IrtSearch};
                let base = IrtConfig {
                    seed,
                    ..Default::default()
                };
                let search = IrtSearch {
                    seed,
                    folds: options.folds,
                    progress,
                    ..Default::default()
                };
                let (r, report, oof) = IrtRouter::tune_with_estimates(split, &base, &search)?;
                let config = RouterConfig::Irt(report.best().clone());
                Ok((r.into(), config, report.trials.len(), oof))
            }
            _ => unreachable!("only the searched kinds reach the search"),
        }
    };
    match kind {
        RouterKind::Knn | RouterKind::Mf | RouterKind::Irt if fittable(kind) => {
            if !options.nested {
                let (router, config, settings, oof) = search(train, options.progress.clone())?;
                return searched(config, router, settings, oof, None);
            }
            // Nested: the whole search again on each fold's complement, its winner estimating
            // the fold, so that no query's estimate comes from a setting chosen with its label.
            // Progress counts the whole-split search and the fold searches as one run.
            let runs = folds.count() + 1;
            let part = |run: usize| options.progress.part(run, runs);
            let (router, config, settings, search_oof) = search(train, part(0))?;
            let nested = out_of_fold(folds, train.pool().len(), false, |rest, held| {
                let run = folds.fold_of(held[0]);
                let (r, _, _, _) = search(&train.subset(rest, "train"), part(run + 1))?;
                r.shared()
                    .estimate_batch(&train.subset(held, "validation").features()?)
            })?;
            let (search_score, _) = score(&search_oof, train, criterion)?;
            searched(config, router, settings, nested, Some(search_score))
        }
        _ => {
            let config = RouterConfig::default_for(kind, seed)?;
            let oof = refit_oof(&config, train, folds)?;
            let (score, metrics) = score(&oof, train, criterion)?;
            let fold_scores = fold_scores(&oof, train, folds, criterion)?;
            Ok(Measured {
                report: AutoCandidate {
                    kind,
                    config,
                    score,
                    metrics,
                    fold_scores,
                    search_score: None,
                    settings: 1,
                    seconds: 0.0,
                },
                oof,
                router: None,
            })
        }
    }
}

/// Measures the stack of the estimator candidates: for each shrinkage, the stack's own
/// out-of-fold estimates (weights fitted on the other folds). Nested (`options.nested`), each
/// fold takes the shrinkage that cross-validation on the other folds alone prefers, and the
/// figure of the shrinkage best on every fold becomes the search's own; otherwise that figure
/// is the stack's. The router kept has the shrinkage best on every fold, its weights fitted on
/// every row.
fn measure_stack(
    train: &Split,
    members: &[&Measured],
    folds: &Folds,
    criterion: Criterion,
    options: &AutoOptions,
) -> Result<Measured> {
    let seed = options.seed;
    let oof: Vec<&Estimates> = members.iter().map(|c| &c.oof).collect();
    let routers: Vec<Arc<dyn Router>> = members
        .iter()
        .map(|c| match &c.router {
            Some(r) => Ok(r.shared()),
            None => AnyRouter::fit_config(&c.report.config, train).map(|r| r.shared()),
        })
        .collect::<Result<_>>()?;
    let cost_member = members
        .iter()
        .position(|c| c.report.kind == RouterKind::Knn)
        .unwrap_or(0);
    // Per shrinkage, the out-of-fold estimates; the best on every fold.
    let (mut per_shrinkage, best_i) =
        stack_per_shrinkage(&oof, train, folds, criterion, cost_member)?;
    let shrinkage = STACK_SHRINKAGE[best_i];
    let (score, metrics, search_score, est) = if options.nested {
        // Fold f's rows from the shrinkage chosen by cross-validating on the other folds.
        let mut est = Estimates::new(train.len(), train.pool().len());
        for f in 0..folds.count() {
            let rest: Vec<usize> = folds.training(f).collect();
            let truth = train.subset(&rest, "train");
            let inner = Folds::new(rest.len(), folds.count(), seed)?;
            let sub: Vec<Estimates> = oof.iter().map(|e| e.select(&rest)).collect();
            let sub: Vec<&Estimates> = sub.iter().collect();
            let (_, chosen) = stack_per_shrinkage(&sub, &truth, &inner, criterion, cost_member)?;
            let from = &per_shrinkage[chosen].2;
            for r in folds.held_out(f) {
                let (q, c) = est.row_mut(r);
                q.copy_from_slice(from.quality_row(r));
                c.copy_from_slice(from.cost_row(r));
                est.signals[r] = from.signals[r];
            }
        }
        let (s, metrics) = self::score(&est, train, criterion)?;
        (s, metrics, Some(per_shrinkage[best_i].0), est)
    } else {
        let (s, metrics, est) = per_shrinkage.swap_remove(best_i);
        (s, metrics, None, est)
    };
    let fold_scores = fold_scores(&est, train, folds, criterion)?;
    let config = StackConfig {
        shrinkage,
        cost_member: Some(cost_member),
        seed,
        ..Default::default()
    };
    let stack = StackRouter::fit(routers, &oof, train, None, &config)?;
    let router: AnyRouter = stack.into();
    // The config as saved: with the members' own configs.
    let saved: RouterConfig = serde_json::from_str(&router.to_saved()?.config)
        .map_err(|e| Error::Numeric(format!("a stack's config does not parse back: {e}")))?;
    Ok(Measured {
        report: AutoCandidate {
            kind: RouterKind::Stack,
            config: saved,
            score,
            metrics,
            fold_scores,
            search_score,
            settings: STACK_SHRINKAGE.len(),
            seconds: 0.0,
        },
        oof: est,
        router: Some(router),
    })
}

/// One shrinkage's figure on the criterion, its metrics and its out-of-fold estimates.
type ShrinkageFigures = (f64, Metrics, Estimates);

/// The stack's out-of-fold estimates over `folds` and their figure on `truth`, for each of
/// [`STACK_SHRINKAGE`] in order, and the index of the best (the first of equals).
fn stack_per_shrinkage(
    oof: &[&Estimates],
    truth: &Split,
    folds: &Folds,
    criterion: Criterion,
    cost_member: usize,
) -> Result<(Vec<ShrinkageFigures>, usize)> {
    let mut all: Vec<ShrinkageFigures> = Vec::with_capacity(STACK_SHRINKAGE.len());
    let mut best = 0;
    for shrinkage in STACK_SHRINKAGE {
        let est = StackRouter::cross_validate(oof, truth, folds, None, shrinkage, cost_member)?;
        let (s, metrics) = score(&est, truth, criterion)?;
        if !all.is_empty() && s > all[best].0 {
            best = all.len();
        }
        all.push((s, metrics, est));
    }
    Ok((all, best))
}

/// Fits a stack as [`AnyRouter::fit`] and [`AnyRouter::fit_config`] do: the members of
/// `config` (by their configs; by their searches when it lists none: `knn`, `mf`, `irt`), their
/// out-of-fold estimates over folds seeded by `config.seed`, and the weights on those.
pub(super) fn fit_stack(config: &StackConfig, train: &Split) -> Result<AnyRouter> {
    config.validate()?;
    train.require_full_labels(
        "fitting a stack (its members' out-of-fold estimates are scored against every model's \
         score; with partial, pairwise or logged labels fit knn, mf or irt alone)",
    )?;
    // The members' own figures are not compared here, so their searches are not nested.
    let options = AutoOptions {
        seed: config.seed,
        nested: false,
        ..Default::default()
    };
    let folds = Folds::new(train.len(), options.folds, options.seed)?;
    let criterion = Criterion::for_data(train.weak_strong());
    let mut members: Vec<Measured> = Vec::new();
    if config.members.is_empty() {
        for kind in [RouterKind::Knn, RouterKind::Mf, RouterKind::Irt] {
            if fittable(kind) {
                members.push(measure(kind, train, &folds, criterion, &options)?);
            }
        }
    } else {
        for (i, value) in config.members.iter().enumerate() {
            let member: RouterConfig = serde_json::from_value(value.clone())
                .map_err(|e| Error::Config(format!("stack member {i}: {e}")))?;
            let kind = member.kind();
            if !(kind.family() == Family::Baseline
                || (kind.family() == Family::Estimator && kind != RouterKind::Stack))
            {
                return Err(Error::Config(format!(
                    "stack member {i} is a {kind} router: a stack holds pre-call estimators and \
                     baselines only"
                )));
            }
            let oof = refit_oof(&member, train, &folds)?;
            let router = AnyRouter::fit_config(&member, train)?;
            members.push(Measured {
                report: AutoCandidate {
                    kind,
                    config: member,
                    score: 0.0,
                    metrics: score(&oof, train, criterion)?.1,
                    fold_scores: Vec::new(),
                    search_score: None,
                    settings: 1,
                    seconds: 0.0,
                },
                oof,
                router: Some(router),
            });
        }
    }
    let oof: Vec<&Estimates> = members.iter().map(|c| &c.oof).collect();
    let routers: Vec<Arc<dyn Router>> = members
        .iter()
        .map(|c| c.router.as_ref().expect("members are fitted").shared())
        .collect();
    let config = StackConfig {
        members: Vec::new(),
        ..config.clone()
    };
    Ok(StackRouter::fit(routers, &oof, train, None, &config)?.into())
}

#[cfg(test)]
#[path = "auto_tests.rs"]
mod tests;
