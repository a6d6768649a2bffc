//! Training with candle-nn (feature `train`): the model, the full-batch loop with early
//! stopping over the observed cells, the cross-validated search of [`IrtSearch`], and the cost
//! model's fit.

use candle_core::{Device, Tensor as CTensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use super::estimate::length_feature;
use super::{CostModel, IrtConfig, IrtRouter, IrtSearch, IrtTrainReport, Params};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::metrics::{validation_metrics, DEFAULT_SWEEP_POINTS};
use crate::rng::SplitMix64;
use crate::router::{Estimates, Router};
use crate::tuning::{out_of_fold, Criterion, Folds, SearchReport, Trial, Validation};

/// A candle failure while training: a numeric failure of the router.
fn backend(e: candle_core::Error) -> Error {
    Error::Numeric(format!("irt training: {e}"))
}

/// The task tags of a split: sorted names and each row's index (`names.len()` for none).
pub(super) fn task_index(train: &Split, use_tasks: bool) -> (Vec<String>, Vec<u32>) {
    let mut names: Vec<String> = if use_tasks {
        train.tasks().iter().flatten().cloned().collect()
    } else {
        Vec::new()
    };
    names.sort();
    names.dedup();
    let none = names.len() as u32;
    let rows = train
        .tasks()
        .iter()
        .map(|t| {
            t.as_ref()
                .and_then(|t| names.binary_search(t).ok())
                .map_or(none, |i| i as u32)
        })
        .collect();
    (names, rows)
}

struct Model {
    a: Var,
    w: Var,
    alpha: Var,
    theta: Var,
    beta: Var,
    gamma: Var,
}

/// One set of rows as tensors: embeddings, task ids, lengths, targets and the observed mask.
struct Rows {
    x: CTensor,
    t: CTensor,
    l: CTensor,
    y: CTensor,
    mask: CTensor,
    observed: f64,
}

impl Model {
    fn logits(&self, r: &Rows) -> candle_core::Result<CTensor> {
        let h =
            r.x.matmul(&self.a.as_tensor().t()?)?
                .add(&self.alpha.as_tensor().index_select(&r.t, 0)?)?; // [n, k]
        let z = h.matmul(&self.theta.as_tensor().t()?)?; // [n, m]
        let b = r.x.matmul(self.w.as_tensor())?; // [n, 1]
        let bias = self.beta.as_tensor().index_select(&r.t, 0)?; // [n, m]
        let len = r.l.matmul(self.gamma.as_tensor())?; // [n, 1] x [1, m]
        z.broadcast_sub(&b)?.add(&bias)?.add(&len)
    }

    /// Mean binary cross-entropy over the observed cells (stable, from the logits).
    fn loss(&self, r: &Rows) -> candle_core::Result<CTensor> {
        let x = self.logits(r)?;
        let cell = ((x.relu()? - (&x * &r.y)?)? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
        (cell * &r.mask)?.sum_all()? / r.observed.max(1.0)
    }

    fn penalty(&self, l2: f64) -> candle_core::Result<CTensor> {
        let mut total = self.a.as_tensor().sqr()?.sum_all()?;
        for v in [&self.w, &self.alpha, &self.theta, &self.gamma] {
            total = (total + v.as_tensor().sqr()?.sum_all()?)?;
        }
        total * (0.5 * l2)
    }

    fn vars(&self) -> Vec<Var> {
        vec![
            self.a.clone(),
            self.w.clone(),
            self.alpha.clone(),
            self.theta.clone(),
            self.beta.clone(),
            self.gamma.clone(),
        ]
    }

    fn snapshot(&self) -> candle_core::Result<Params> {
        let v = |t: &Var| t.as_tensor().flatten_all()?.to_vec1::<f32>();
        Ok(Params {
            discrimination: v(&self.a)?,
            difficulty: v(&self.w)?,
            task_discrimination: v(&self.alpha)?,
            ability: v(&self.theta)?,
            task_bias: v(&self.beta)?,
            length_slope: v(&self.gamma)?,
        })
    }
}

impl IrtRouter {
    /// Trains an IRT router on the scores of `train`: every model's on every query, or with
    /// partial labels the observed ones ([`IrtRouter::fit_observed`] with the split's mask).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid config; [`Error::InvalidInput`] for an empty split or
    /// one without embeddings; [`Error::MissingLabels`] when a model has no score in the split;
    /// [`Error::Numeric`] if training diverges.
    ///
    /// # Example
    ///
    /// ```
    /// use pointsman::data::Split;
    /// use pointsman::routers::irt::{IrtConfig, IrtRouter};
    /// use pointsman::{ModelCard, ModelPool, Objective, QueryFeatures, Router};
    /// let pool = ModelPool::new(vec![ModelCard::new("a", 0.1, 0.1), ModelCard::new("b", 1.0, 1.0)])?;
    /// // Model a is right on queries along the first axis, b along the second.
    /// let mut emb = Vec::new();
    /// let mut scores = Vec::new();
    /// for i in 0..200 {
    ///     let t = i as f32 / 200.0;
    ///     emb.extend_from_slice(&[1.0 - t, t]);
    ///     scores.extend_from_slice(&[if t < 0.5 { 1.0 } else { 0.0 }, if t < 0.5 { 0.0 } else { 1.0 }]);
    /// }
    /// let train = Split::from_arrays(pool, emb, 2, scores, vec![1e-5; 400])?;
    /// let router = IrtRouter::fit(&train, &IrtConfig { dim: 2, ..Default::default() })?;
    /// let d = router.route(&QueryFeatures::new(vec![0.1, 0.9])?, &Objective::new(0.0))?;
    /// assert_eq!(d.model_id, "b");
    /// # Ok::<(), pointsman::Error>(())
    /// ```
    pub fn fit(train: &Split, config: &IrtConfig) -> Result<IrtRouter> {
        train.require_every_model_labelled(crate::kind::RouterKind::Irt.name(), false)?;
        IrtRouter::fit_observed(train, train.observed_mask(), config)
    }

    /// Trains on the cells of `train` marked observed in `observed` (`[queries, models]`,
    /// row-major; `None`: every cell): the loss, the task biases' starting points and the
    /// validation loss count observed cells only, so data with partial labels trains the same
    /// model on what it has.
    ///
    /// # Errors
    ///
    /// As [`IrtRouter::fit`]; [`Error::Shape`] for a mask of the wrong size;
    /// [`Error::InvalidInput`] when no cell is observed.
    pub fn fit_observed(
        train: &Split,
        observed: Option<&[bool]>,
        config: &IrtConfig,
    ) -> Result<IrtRouter> {
        config.validate()?;
        let started = std::time::Instant::now();
        if train.is_empty() {
            return Err(Error::InvalidInput(format!(
                "cannot fit an irt router on the empty {} split",
                train.name()
            )));
        }
        train.features()?;
        let (n, m, d, k) = (train.len(), train.pool().len(), train.dim(), config.dim);
        if let Some(mask) = observed {
            if mask.len() != n * m {
                return Err(Error::Shape(format!(
                    "observed mask holds {} cells, expected {n} queries x {m} models",
                    mask.len()
                )));
            }
        }
        let seen = |r: usize, j: usize| observed.is_none_or(|mask| mask[r * m + j]);
        if !(0..n).any(|r| (0..m).any(|j| seen(r, j))) {
            return Err(Error::InvalidInput(format!(
                "no observed score in the {} split",
                train.name()
            )));
        }
        let (task_names, row_task) = task_index(train, config.use_tasks);
        let t = task_names.len();
        // The length covariate, standardised over the training queries.
        let logs: Vec<f64> = train
            .prompt_tokens()
            .iter()
            .map(|&p| (1.0 + p.max(0.0)).ln())
            .collect();
        let mean = logs.iter().sum::<f64>() / n as f64;
        let var = logs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        let length_norm = if config.use_prompt_length && var > 1e-12 {
            (mean, var.sqrt())
        } else {
            (0.0, 0.0)
        };
        // Task biases start at each task's observed success rate (shrunk by one pseudo-query
        // of the global rate), in logits; the last row (no known task) at the global rate.
        let mut sums = vec![0.0f64; (t + 1) * m];
        let mut counts = vec![0.0f64; (t + 1) * m];
        for (r, &task) in row_task.iter().enumerate() {
            for j in 0..m {
                if seen(r, j) {
                    let slot = task as usize * m + j;
                    sums[slot] += train.score(r, j);
                    counts[slot] += 1.0;
                }
            }
        }
        let global: Vec<f64> = (0..m)
            .map(|j| {
                let (s, c) = (0..=t).fold((0.0, 0.0), |(s, c), u| {
                    (s + sums[u * m + j], c + counts[u * m + j])
                });
                if c > 0.0 {
                    s / c
                } else {
                    0.5
                }
            })
            .collect();
        let logit = |p: f64| {
            let p = p.clamp(0.01, 0.99);
            (p / (1.0 - p)).ln() as f32
        };
        let mut beta0 = vec![0.0f32; (t + 1) * m];
        for u in 0..=t {
            for (j, &g) in global.iter().enumerate() {
                let slot = u * m + j;
                let rate = if u == t && counts[slot] == 0.0 {
                    g
                } else {
                    (sums[slot] + g) / (counts[slot] + 1.0)
                };
                beta0[slot] = logit(rate);
            }
        }

        let dev = Device::Cpu;
        let mut rng = SplitMix64::new(config.seed);
        let init = |len: usize, scale: f64, rng: &mut SplitMix64| -> Vec<f32> {
            (0..len).map(|_| (rng.normal() * scale) as f32).collect()
        };
        let var_of = |v: Vec<f32>, shape: (usize, usize)| -> Result<Var> {
            Var::from_tensor(&CTensor::from_vec(v, shape, &dev).map_err(backend)?).map_err(backend)
        };
        let model = Model {
            a: var_of(init(k * d, 0.1, &mut rng), (k, d))?,
            w: var_of(vec![0.0; d], (d, 1))?,
            alpha: var_of(vec![0.0; (t + 1) * k], (t + 1, k))?,
            theta: var_of(init(m * k, 0.1, &mut rng), (m, k))?,
            beta: var_of(beta0, (t + 1, m))?,
            gamma: var_of(vec![0.0; m], (1, m))?,
        };

        // A seeded share of the queries stops training early.
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        let nv = if n >= 20 {
            ((n as f64) * config.validation_fraction).round() as usize
        } else {
            0
        };
        let (val_rows, fit_rows) = order.split_at(nv);
        let rows = |idx: &[usize]| -> Result<Rows> {
            let x: Vec<f32> = idx
                .iter()
                .flat_map(|&r| train.embeddings()[r * d..(r + 1) * d].iter().copied())
                .collect();
            let mut y = Vec::with_capacity(idx.len() * m);
            let mut mask = Vec::with_capacity(idx.len() * m);
            for &r in idx {
                for j in 0..m {
                    let s = seen(r, j);
                    y.push(if s { train.score(r, j) as f32 } else { 0.0 });
                    mask.push(f32::from(u8::from(s)));
                }
            }
            let observed = mask.iter().map(|&v| f64::from(v)).sum();
            let l: Vec<f32> = idx
                .iter()
                .map(|&r| length_feature(train.prompt_tokens()[r], length_norm) as f32)
                .collect();
            let tasks: Vec<u32> = idx.iter().map(|&r| row_task[r]).collect();
            let b = idx.len();
            let mk = |v: Vec<f32>, s: (usize, usize)| CTensor::from_vec(v, s, &dev);
            Ok(Rows {
                x: mk(x, (b, d)).map_err(backend)?,
                t: CTensor::from_vec(tasks, b, &dev).map_err(backend)?,
                l: mk(l, (b, 1)).map_err(backend)?,
                y: mk(y, (b, m)).map_err(backend)?,
                mask: mk(mask, (b, m)).map_err(backend)?,
                observed,
            })
        };
        let fit = rows(fit_rows)?;
        let val = if val_rows.is_empty() {
            None
        } else {
            Some(rows(val_rows)?)
        };
        let mut opt = AdamW::new(
            model.vars(),
            ParamsAdamW {
                lr: config.learning_rate,
                weight_decay: 0.0,
                ..Default::default()
            },
        )
        .map_err(backend)?;
        let mut best = (f64::INFINITY, 0usize, model.snapshot().map_err(backend)?);
        let mut steps = 0;
        for step in 1..=config.max_steps {
            steps = step;
            let loss =
                (model.loss(&fit).map_err(backend)? + model.penalty(config.l2)).map_err(backend)?;
            opt.backward_step(&loss).map_err(backend)?;
            let check = match &val {
                Some(v) => model.loss(v),
                None => model.loss(&fit),
            }
            .and_then(|l| l.to_scalar::<f32>())
            .map_err(backend)?;
            let check = f64::from(check);
            if !check.is_finite() {
                return Err(Error::Numeric(format!(
                    "irt training diverged at step {step} (loss {check})"
                )));
            }
            if check < best.0 - 1e-6 {
                best = (check, step, model.snapshot().map_err(backend)?);
            } else if step - best.1 >= config.patience {
                break;
            }
        }
        let (best_loss, best_step, params) = best;
        tracing::debug!("irt: {steps} steps, best {best_step} (validation loss {best_loss:.4})");
        let costs = fit_costs(train, &row_task, t);
        Ok(IrtRouter::assemble(
            config.clone(),
            train.pool().clone(),
            train.embedding_model().map(str::to_string),
            d,
            params,
            length_norm,
            costs,
            IrtTrainReport {
                steps,
                best_step,
                best_loss,
                seconds: started.elapsed().as_secs_f64(),
            },
            task_names,
        ))
    }

    /// Chooses the latent dimension and the L2 penalty by cross-validation on `train` (out-of-
    /// fold estimates scored by AIQ, or APGR on two-model data; no test label is read) and fits
    /// the winner on the whole split. Other fields come from `base`.
    ///
    /// # Errors
    ///
    /// As [`IrtRouter::fit`]; [`Error::Config`] for an empty grid or fewer than 2 folds;
    /// [`Error::InvalidInput`] for a split too small for the folds.
    pub fn tune(
        train: &Split,
        base: &IrtConfig,
        search: &IrtSearch,
    ) -> Result<(IrtRouter, SearchReport<IrtConfig>)> {
        let (router, report, _) = IrtRouter::tune_with_estimates(train, base, search)?;
        Ok((router, report))
    }

    /// [`IrtRouter::tune`], also returning the winning setting's out-of-fold estimates of every
    /// training query (in the split's row order): what a stack is fitted on.
    ///
    /// # Errors
    ///
    /// As [`IrtRouter::tune`].
    pub fn tune_with_estimates(
        train: &Split,
        base: &IrtConfig,
        search: &IrtSearch,
    ) -> Result<(IrtRouter, SearchReport<IrtConfig>, Estimates)> {
        if search.dim.is_empty() || search.l2.is_empty() {
            return Err(Error::Config(
                "an irt search needs at least one value per setting".into(),
            ));
        }
        let n = train.len();
        let folds = Folds::new(n, search.folds, search.seed)?;
        let started = std::time::Instant::now();
        let m = train.pool().len();
        let weak_strong = train.weak_strong();
        let criterion = Criterion::for_data(weak_strong);
        let mut configs = Vec::new();
        for &dim in &search.dim {
            for &l2 in &search.l2 {
                let c = IrtConfig {
                    dim,
                    l2,
                    ..base.clone()
                };
                c.validate()?;
                configs.push(c);
            }
        }
        let mut trials = Vec::new();
        let mut oof = Vec::new();
        // Every fold of every setting, then the winner on the whole split.
        let steps = search.progress.steps(configs.len() * folds.count() + 1);
        for config in configs {
            let est = out_of_fold(&folds, m, true, |rest, held| {
                let router = IrtRouter::fit(&train.subset(rest, "train"), &config)?;
                let est = router.estimate_batch(&train.subset(held, "validation").features()?);
                steps.step();
                est
            })?;
            let metrics = validation_metrics(&est, train, weak_strong, DEFAULT_SWEEP_POINTS)?;
            trials.push(Trial {
                config,
                score: criterion.score(&metrics),
                metrics,
            });
            oof.push(est);
        }
        // The winner's estimates: the first trial with the best score, in the order tried.
        let best = trials
            .iter()
            .enumerate()
            .fold(0, |b, (i, t)| if t.score > trials[b].score { i } else { b });
        let est = oof.swap_remove(best);
        let report = SearchReport::new(
            criterion,
            Validation::KFold {
                folds: search.folds,
            },
            trials,
            started,
        );
        let router = IrtRouter::fit(train, report.best())?;
        steps.step();
        Ok((router, report, est))
    }
}

/// The cost model of a training split: per model, a linear fit of the observed costs on the
/// prompt's tokens, and each model's mean answer length per task (and overall) where the data
/// has answer lengths.
fn fit_costs(train: &Split, row_task: &[u32], tasks: usize) -> CostModel {
    let m = train.pool().len();
    let observed_fit = (0..m)
        .map(|j| {
            let pts: Vec<(f64, f64)> = (0..train.len())
                .filter(|&r| train.cost_observed()[r * m + j])
                .map(|r| (train.prompt_tokens()[r], train.cost(r, j)))
                .collect();
            if pts.is_empty() {
                return None;
            }
            let n = pts.len() as f64;
            let (mx, my) = (
                pts.iter().map(|p| p.0).sum::<f64>() / n,
                pts.iter().map(|p| p.1).sum::<f64>() / n,
            );
            let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
            let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
            let slope = if sxx > 0.0 { (sxy / sxx).max(0.0) } else { 0.0 };
            Some(((my - slope * mx).max(0.0), slope))
        })
        .collect();
    // Rows: one per task, the last over every query.
    let mut sums = vec![0.0f64; (tasks + 1) * m];
    let mut counts = vec![0.0f64; (tasks + 1) * m];
    for (r, &task) in row_task.iter().enumerate() {
        for j in 0..m {
            let o = train.output_tokens()[r * m + j];
            if !o.is_finite() {
                continue;
            }
            let (own, all) = (task as usize * m + j, tasks * m + j);
            sums[all] += o;
            counts[all] += 1.0;
            if own != all {
                sums[own] += o;
                counts[own] += 1.0;
            }
        }
    }
    let output_tokens = sums
        .iter()
        .zip(&counts)
        .map(|(&s, &c)| if c > 0.0 { s / c } else { f64::NAN })
        .collect();
    CostModel {
        observed_fit,
        output_tokens,
    }
}
