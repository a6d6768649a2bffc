//! Choosing the kNN router's hyper-parameters by cross-validation on the training split.
//!
//! The training queries are split into seeded folds. Every query's nearest neighbours among the
//! *other* folds' queries are found once (overall and within its task), with the task priors of
//! the other folds; each candidate configuration then only re-weights those neighbour lists.
//! The pooled out-of-fold estimates are scored like a test split
//! ([`crate::metrics::validation_metrics`]): AIQ, or APGR on two-model data. The best
//! configuration is refitted on the whole split. No test label is read.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::search::top_k;
use super::{KnnConfig, KnnRouter, Prior, Weighting, NO_TASK};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::metrics::{validation_metrics, DEFAULT_SWEEP_POINTS};
use crate::router::Estimates;
use crate::simd;
use crate::tuning::{Criterion, Folds, SearchReport, Trial, Validation};

/// The grid a search tries: every combination of the listed values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnnSearch {
    /// Number of folds.
    pub folds: usize,
    /// Seed of the fold assignment.
    pub seed: u64,
    /// Neighbour counts.
    pub k: Vec<usize>,
    /// Exponents of power weighting (`max(s, 0)^p`).
    pub power: Vec<f64>,
    /// Whether neighbours come from the query's task only.
    pub same_task: Vec<bool>,
    /// Priors: `None` for the global mean, `Some(α)` for task means shrunk by α pseudo-queries.
    pub task_prior: Vec<Option<f64>>,
    /// Shrinkage strengths β.
    pub shrinkage: Vec<f64>,
    /// Reports the search's progress (not a setting: never saved).
    #[serde(skip)]
    pub progress: crate::tuning::Progress,
}

impl Default for KnnSearch {
    fn default() -> Self {
        KnnSearch {
            folds: 5,
            seed: 0,
            k: vec![50, 100, 200],
            power: vec![1.0, 4.0],
            same_task: vec![false, true],
            task_prior: vec![None, Some(5.0), Some(50.0)],
            shrinkage: vec![0.0, 1.0, 10.0, 30.0],
            progress: crate::tuning::Progress::default(),
        }
    }
}

impl KnnSearch {
    /// The configurations of the grid (duplicates that cannot differ are dropped: the prior is
    /// irrelevant without shrinkage), each based on `base` for the fields not searched.
    pub fn configs(&self, base: &KnnConfig) -> Vec<KnnConfig> {
        let mut out: Vec<KnnConfig> = Vec::new();
        for &same_task in &self.same_task {
            for &k in &self.k {
                for &power in &self.power {
                    for &shrinkage in &self.shrinkage {
                        for &tp in &self.task_prior {
                            let prior = match tp {
                                Some(strength) if shrinkage > 0.0 => Prior::Task { strength },
                                _ => Prior::Global,
                            };
                            let c = KnnConfig {
                                k,
                                weighting: Weighting::Power { power },
                                shrinkage,
                                prior,
                                same_task,
                                ..base.clone()
                            };
                            if !out.contains(&c) {
                                out.push(c);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    fn validate(&self) -> Result<()> {
        if self.folds < 2 {
            return Err(Error::Config("knn search needs at least 2 folds".into()));
        }
        if self.k.is_empty()
            || self.power.is_empty()
            || self.same_task.is_empty()
            || self.task_prior.is_empty()
            || self.shrinkage.is_empty()
        {
            return Err(Error::Config(
                "knn search has an empty list of values".into(),
            ));
        }
        Ok(())
    }
}

impl KnnRouter {
    /// Chooses the hyper-parameters by cross-validation on `train` (see the
    /// module documentation) and fits the winner on the whole split. Fields of `base`
    /// not in the search (index, OOD neighbours) are kept.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid search or base config; [`Error::InvalidInput`] for a split
    /// too small for the folds or without embeddings.
    pub fn tune(
        train: &Split,
        base: &KnnConfig,
        search: &KnnSearch,
    ) -> Result<(KnnRouter, SearchReport<KnnConfig>)> {
        let (router, report, _) = KnnRouter::tune_with_estimates(train, base, search)?;
        Ok((router, report))
    }

    /// [`KnnRouter::tune`], also returning the winning configuration's out-of-fold estimates of
    /// every training query (in the split's row order): what a stack is fitted on.
    ///
    /// # Errors
    ///
    /// As [`KnnRouter::tune`].
    pub fn tune_with_estimates(
        train: &Split,
        base: &KnnConfig,
        search: &KnnSearch,
    ) -> Result<(KnnRouter, SearchReport<KnnConfig>, Estimates)> {
        search.validate()?;
        base.validate()?;
        train.require_full_labels(
            "the knn search (which scores out-of-fold curves; fit a partial split with a fixed \
             configuration)",
        )?;
        let started = std::time::Instant::now();
        let configs = search.configs(base);
        for c in &configs {
            c.validate()?;
        }
        let steps = search.progress.steps(configs.len());
        // One router over the whole split holds the data in its (task-grouped) row order.
        let all = KnnRouter::fit_without_ood(train, &configs[0])?;
        let n = all.len();
        // Folds over the router's (task-grouped) rows.
        let folds = Folds::new(n, search.folds, search.seed)?;
        let fold: Vec<usize> = (0..n).map(|r| folds.fold_of(r)).collect();
        let m = all.pool.len();
        let k_max = configs.iter().map(|c| c.k).max().unwrap_or(1).min(n);
        // Neighbour lists among the other folds: overall and within the query's task.
        // Per query: (neighbours overall, neighbours within its task), best first.
        type Lists = (Vec<(f32, u32)>, Vec<(f32, u32)>);
        let lists: Vec<Lists> = (0..n)
            .into_par_iter()
            .map_init(
                || (vec![0.0f32; n], Vec::new()),
                |(sims, pairs), i| {
                    simd::dot_rows(&all.embeddings, all.row(i), sims);
                    for (j, s) in sims.iter_mut().enumerate() {
                        if fold[j] == fold[i] {
                            *s = f32::NEG_INFINITY;
                        }
                    }
                    top_k(sims, 0, k_max, pairs);
                    let global: Vec<(f32, u32)> =
                        pairs.iter().copied().filter(|p| p.0.is_finite()).collect();
                    let task = all.tasks[i];
                    let same = if task == NO_TASK {
                        global.clone()
                    } else {
                        let (lo, hi) = all.task_rows[task as usize];
                        top_k(&sims[lo..hi], lo, k_max.min(hi - lo), pairs);
                        pairs.iter().copied().filter(|p| p.0.is_finite()).collect()
                    };
                    (global, same)
                },
            )
            .collect();
        // Per-fold priors from the other folds: global means and per-task sums and counts.
        let t = all.task_names.len();
        let mut sums = vec![0.0f64; search.folds * (t + 1) * m];
        let mut counts = vec![0.0f64; search.folds * (t + 1)];
        for (r, (&own, &task)) in fold.iter().zip(&all.tasks).enumerate() {
            let slot = if task == NO_TASK { t } else { task as usize };
            for f in (0..search.folds).filter(|&f| f != own) {
                counts[f * (t + 1) + slot] += 1.0;
                for j in 0..m {
                    sums[(f * (t + 1) + slot) * m + j] += f64::from(all.scores[r * m + j]);
                }
            }
        }
        let prior_of = |f: usize, task: u32, prior: Prior| -> Vec<f64> {
            let total: f64 = (0..=t).map(|s| counts[f * (t + 1) + s]).sum();
            let global: Vec<f64> = (0..m)
                .map(|j| {
                    (0..=t)
                        .map(|s| sums[(f * (t + 1) + s) * m + j])
                        .sum::<f64>()
                        / total.max(1.0)
                })
                .collect();
            match (prior, task) {
                (Prior::Task { strength }, task) if task != NO_TASK => {
                    let c = counts[f * (t + 1) + task as usize];
                    (0..m)
                        .map(|j| {
                            let s = sums[(f * (t + 1) + task as usize) * m + j];
                            if c + strength > 0.0 {
                                (s + strength * global[j]) / (c + strength)
                            } else {
                                global[j]
                            }
                        })
                        .collect()
                }
                _ => global,
            }
        };
        let weak_strong = train.weak_strong();
        let criterion = Criterion::for_data(weak_strong);
        let truth = train.subset(&all.source_rows, "cross-validation");
        // The out-of-fold estimates of one configuration, in the router's row order.
        let estimates = |config: &KnnConfig| -> Estimates {
            let mut est = Estimates::new(n, m);
            let mut priors: std::collections::HashMap<(usize, u32), Vec<f64>> = Default::default();
            for i in 0..n {
                let (global, same) = &lists[i];
                let list = if config.same_task { same } else { global };
                let pairs = &list[..config.k.min(list.len())];
                let prior = priors
                    .entry((fold[i], all.tasks[i]))
                    .or_insert_with(|| prior_of(fold[i], all.tasks[i], config.prior));
                let (q, c) = est.row_mut(i);
                all.estimate_from_pairs(config, prior, pairs, Some(truth.prompt_tokens()[i]), q, c);
            }
            est
        };
        let trials: Vec<Trial<KnnConfig>> = configs
            .par_iter()
            .map(|config| -> Result<Trial<KnnConfig>> {
                let est = estimates(config);
                let metrics = validation_metrics(&est, &truth, weak_strong, DEFAULT_SWEEP_POINTS)?;
                steps.step();
                Ok(Trial {
                    config: config.clone(),
                    score: criterion.score(&metrics),
                    metrics,
                })
            })
            .collect::<Result<_>>()?;
        // Best first; ties keep the grid order (the simpler settings come first).
        let report = SearchReport::new(
            criterion,
            Validation::KFold {
                folds: search.folds,
            },
            trials,
            started,
        );
        // The winner's estimates again (cheaper than keeping every configuration's), moved
        // from the router's row order to the split's.
        let winner = estimates(report.best());
        let mut oof = Estimates::new(n, m);
        for (i, &r) in all.source_rows.iter().enumerate() {
            let (q, c) = oof.row_mut(r);
            q.copy_from_slice(winner.quality_row(i));
            c.copy_from_slice(winner.cost_row(i));
        }
        let router = KnnRouter::fit(train, report.best())?;
        Ok((router, report, oof))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{ModelCard, ModelPool};
    use crate::rng::SplitMix64;

    #[test]
    fn grid_dedupes_and_search_picks_the_signal() {
        let s = KnnSearch::default();
        let configs = s.configs(&KnnConfig::default());
        // β = 0 makes the prior irrelevant: 2 × 3 × 2 × (1 + 3 × 3) = 120.
        assert_eq!(configs.len(), 120);

        // Two tasks; within task "a" model 0 is right, within "b" model 1, with noise on the
        // embeddings that carries no signal: the task prior with strong shrinkage wins.
        let pool = ModelPool::new(vec![
            ModelCard::new("x", 1.0, 1.0),
            ModelCard::new("y", 1.0, 1.0),
            ModelCard::new("z", 9.0, 9.0),
        ])
        .unwrap();
        let mut rng = SplitMix64::new(1);
        let (mut e, mut sc, mut tasks) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..300 {
            for _ in 0..4 {
                e.push(rng.normal() as f32);
            }
            let a = i % 2 == 0;
            sc.extend_from_slice(&[f64::from(u8::from(a)), f64::from(u8::from(!a)), 0.5]);
            tasks.push(Some(if a { "a" } else { "b" }.to_string()));
        }
        let split = Split::from_arrays(pool, e, 4, sc, vec![1e-5; 900])
            .unwrap()
            .with_tasks(tasks)
            .unwrap();
        // Every report the search makes: (settings scored, settings in all).
        let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = reports.clone();
        let search = KnnSearch {
            folds: 3,
            k: vec![10],
            power: vec![1.0],
            shrinkage: vec![0.0, 30.0],
            progress: crate::tuning::Progress::new(move |done, total| {
                seen.lock().unwrap().push((done, total));
            }),
            ..Default::default()
        };
        let (router, report) = KnnRouter::tune(&split, &KnnConfig::default(), &search).unwrap();
        assert_eq!(report.describe(), "cv aiq");
        // The start, then one report per setting, ending at all of them.
        let mut reports = reports.lock().unwrap().clone();
        let n = report.trials.len();
        assert_eq!(reports.len(), n + 1);
        assert!(reports.iter().all(|&(_, total)| total == n));
        reports.sort();
        assert_eq!(
            reports.iter().map(|r| r.0).collect::<Vec<_>>(),
            (0..=n).collect::<Vec<_>>()
        );
        assert!(report.trials.windows(2).all(|w| w[0].score >= w[1].score));
        let best = report.best();
        assert!(
            best.same_task || matches!(best.prior, Prior::Task { .. }),
            "{best:?}"
        );
        assert!(report.trials[0].metrics.max_quality > 0.95);
        assert_eq!(router.config(), best);
        let e = KnnRouter::tune(
            &split,
            &KnnConfig::default(),
            &KnnSearch {
                folds: 1,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("2 folds"));
    }
}
