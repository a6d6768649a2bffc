//! Training with candle-nn (feature `train`): the model, the training loop with early stopping,
//! the cross-validated search of [`MfSearch`], and the linear fits of the observed costs.

use candle_core::{DType, Device, Tensor as CTensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use super::{MfConfig, MfRouter, MfSearch, Params, Preferences, TrainReport};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::features::inv_norm;
use crate::metrics::{validation_metrics, DEFAULT_SWEEP_POINTS};
use crate::rng::SplitMix64;
use crate::router::{Estimates, Router};
use crate::tuning::{out_of_fold, Criterion, Folds, SearchReport, Trial, Validation};

/// A candle failure while training: a numeric failure of the router, not of the embedder.
fn backend(e: candle_core::Error) -> Error {
    Error::Numeric(format!("mf training: {e}"))
}

/// Stable binary cross-entropy with logits: `max(x, 0) − x·y + log(1 + e^(−|x|))`, averaged.
fn bce_with_logits(x: &CTensor, y: &CTensor) -> candle_core::Result<CTensor> {
    let loss = ((x.relu()? - (x * y)?)? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    loss.mean_all()
}

/// The cross-entropy of the cells where `w` is positive, weighted by `w` (1 for an observed
/// cell, its inverse propensity when training weights by them) and divided by `Σ w`.
fn masked_bce_with_logits(
    x: &CTensor,
    y: &CTensor,
    w: &CTensor,
    total: f32,
) -> candle_core::Result<CTensor> {
    let loss = ((x.relu()? - (x * y)?)? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    (loss * w)?.sum_all()? / f64::from(total.max(f32::MIN_POSITIVE))
}

struct Model {
    projection: Var,
    model_vectors: Var,
    classifier: Var,
    bias: Var,
    task_vectors: Var,
    normalize: bool,
}

impl Model {
    #[allow(clippy::too_many_arguments)]
    fn init(
        d: usize,
        m: usize,
        k: usize,
        tasks: usize,
        normalize: bool,
        rng: &mut SplitMix64,
        dev: &Device,
    ) -> candle_core::Result<Model> {
        // P ~ N(0, 1/d), v ~ N(0, 1), w ~ N(0, 1/k), b = 0, u = 0.
        let p: Vec<f32> = (0..k * d)
            .map(|_| (rng.normal() / (d as f64).sqrt()) as f32)
            .collect();
        let v: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
        let w: Vec<f32> = (0..k)
            .map(|_| (rng.normal() / (k as f64).sqrt()) as f32)
            .collect();
        Ok(Model {
            projection: Var::from_tensor(&CTensor::from_vec(p, (k, d), dev)?)?,
            model_vectors: Var::from_tensor(&CTensor::from_vec(v, (m, k), dev)?)?,
            classifier: Var::from_tensor(&CTensor::from_vec(w, (1, k), dev)?)?,
            bias: Var::from_tensor(&CTensor::zeros((1, m), DType::F32, dev)?)?,
            task_vectors: Var::from_tensor(&CTensor::zeros((tasks + 1, k), DType::F32, dev)?)?,
            normalize,
        })
    }

    /// The parameters under weight decay (all but the biases).
    fn decayed_vars(&self, use_tasks: bool) -> Vec<Var> {
        let mut v = vec![
            self.projection.clone(),
            self.model_vectors.clone(),
            self.classifier.clone(),
        ];
        if use_tasks {
            v.push(self.task_vectors.clone());
        }
        v
    }

    fn unit_models(&self) -> candle_core::Result<CTensor> {
        let v = self.model_vectors.as_tensor();
        if self.normalize {
            let norm = (v.sqr()?.sum_keepdim(1)? + 1e-12)?.sqrt()?;
            v.broadcast_div(&norm)
        } else {
            Ok(v.clone())
        }
    }

    /// The projected queries `z = P·x + u_t`, `[rows, k]`.
    fn project(&self, x: &CTensor, tasks: &CTensor) -> candle_core::Result<CTensor> {
        let h = x.matmul(&self.projection.as_tensor().t()?)?;
        h + self.task_vectors.as_tensor().index_select(tasks, 0)?
    }

    /// Logits `[rows, m]` of every model on a batch `[rows, d]`.
    fn logits(&self, x: &CTensor, tasks: &CTensor) -> candle_core::Result<CTensor> {
        let h = self.project(x, tasks)?; // [rows, k]
        let u = self
            .unit_models()?
            .broadcast_mul(self.classifier.as_tensor())?; // [m, k]
        h.matmul(&u.t()?)?.broadcast_add(self.bias.as_tensor())
    }

    /// Logits of "a beats b" for preference rows.
    fn pair_logits(
        &self,
        x: &CTensor,
        tasks: &CTensor,
        a: &CTensor,
        b: &CTensor,
    ) -> candle_core::Result<CTensor> {
        let h = self.project(x, tasks)?; // [rows, k]
        let v = self.unit_models()?;
        let diff = (v.index_select(a, 0)? - v.index_select(b, 0)?)?; // [rows, k]
        let z = (h * diff)?
            .broadcast_mul(self.classifier.as_tensor())?
            .sum(D::Minus1)?;
        let bias = self.bias.as_tensor().squeeze(0)?;
        z + (bias.index_select(a, 0)? - bias.index_select(b, 0)?)?
    }

    fn snapshot(&self) -> candle_core::Result<Params> {
        Ok(Params {
            projection: self.projection.as_tensor().flatten_all()?.to_vec1()?,
            model_vectors: self.model_vectors.as_tensor().flatten_all()?.to_vec1()?,
            classifier: self.classifier.as_tensor().flatten_all()?.to_vec1()?,
            bias: self.bias.as_tensor().flatten_all()?.to_vec1()?,
            task_vectors: self.task_vectors.as_tensor().flatten_all()?.to_vec1()?,
        })
    }
}

/// Preference rows: the given [`Preferences`] (no task), then the split's own judgements
/// (their query's embedding and task).
struct PairRows {
    emb: Vec<f32>,
    task: Vec<u32>,
    a: Vec<u32>,
    b: Vec<u32>,
    y: Vec<f32>,
}

impl PairRows {
    fn new(
        prefs: Option<&Preferences>,
        train: &Split,
        row_task: &[u32],
        none: u32,
        d: usize,
    ) -> PairRows {
        let mut out = PairRows {
            emb: Vec::new(),
            task: Vec::new(),
            a: Vec::new(),
            b: Vec::new(),
            y: Vec::new(),
        };
        if let Some(p) = prefs {
            let mut e = p.embeddings.clone();
            for row in e.chunks_exact_mut(d) {
                let inv = inv_norm(row);
                row.iter_mut().for_each(|v| *v *= inv);
            }
            out.emb = e;
            out.task = vec![none; p.winner.len()];
            out.a = p.model_a.clone();
            out.b = p.model_b.clone();
            out.y = p.winner.iter().map(|w| w.a_wins() as f32).collect();
        }
        for p in train.preferences() {
            let r = p.row as usize;
            out.emb
                .extend_from_slice(&train.embeddings()[r * d..(r + 1) * d]);
            out.task.push(row_task[r]);
            out.a.push(p.model_a);
            out.b.push(p.model_b);
            out.y.push(p.winner.a_wins() as f32);
        }
        out
    }
}

/// The training examples of one kind, split into train and validation rows.
struct Rows {
    train: Vec<usize>,
    val: Vec<usize>,
}

fn split_rows(n: usize, fraction: f64, rng: &mut SplitMix64) -> Rows {
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let nv = if n >= 10 {
        ((n as f64) * fraction).round() as usize
    } else {
        0
    };
    Rows {
        val: order[..nv].to_vec(),
        train: order[nv..].to_vec(),
    }
}

fn gather_f32(src: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    rows.iter()
        .flat_map(|&r| src[r * width..(r + 1) * width].iter().copied())
        .collect()
}

impl MfRouter {
    /// Trains an MF router on pointwise scores.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid config; [`Error::InvalidInput`] for an empty split or
    /// one without embeddings; [`Error::Numeric`] if training fails numerically.
    ///
    /// # Example
    ///
    /// ```
    /// use pointsman::data::Split;
    /// use pointsman::routers::mf::{MfConfig, MfRouter};
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
    /// let config = MfConfig { dim: 8, max_epochs: 60, ..Default::default() };
    /// let router = MfRouter::fit(&train, &config)?;
    /// let d = router.route(&QueryFeatures::new(vec![0.1, 0.9])?, &Objective::new(0.0))?;
    /// assert_eq!(d.model_id, "b");
    /// # Ok::<(), pointsman::Error>(())
    /// ```
    pub fn fit(train: &Split, config: &MfConfig) -> Result<MfRouter> {
        train.require_every_model_labelled(crate::kind::RouterKind::Mf.name(), true)?;
        MfRouter::fit_with_preferences(train, None, config)
    }

    /// Chooses the latent dimension and learning rate by cross-validation on `train` (out-of-
    /// fold estimates scored by AIQ, or APGR on two-model data; no test label is read) and
    /// fits the winner on the whole split. Other fields come from `base`.
    ///
    /// # Errors
    ///
    /// As [`MfRouter::fit`]; [`Error::Config`] for an empty grid or fewer than 2 folds;
    /// [`Error::InvalidInput`] for a split too small for the folds.
    pub fn tune(
        train: &Split,
        base: &MfConfig,
        search: &MfSearch,
    ) -> Result<(MfRouter, SearchReport<MfConfig>)> {
        let (router, report, _) = MfRouter::tune_with_estimates(train, base, search)?;
        Ok((router, report))
    }

    /// [`MfRouter::tune`], also returning the winning setting's out-of-fold estimates of every
    /// training query (in the split's row order): what a stack is fitted on.
    ///
    /// # Errors
    ///
    /// As [`MfRouter::tune`].
    pub fn tune_with_estimates(
        train: &Split,
        base: &MfConfig,
        search: &MfSearch,
    ) -> Result<(MfRouter, SearchReport<MfConfig>, Estimates)> {
        train.require_full_labels(
            "the mf search (which scores out-of-fold curves; fit a partial split with a fixed \
             configuration)",
        )?;
        if search.dim.is_empty() || search.learning_rate.is_empty() {
            return Err(Error::Config(
                "an mf search needs at least one value per setting".into(),
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
            for &learning_rate in &search.learning_rate {
                configs.push(MfConfig {
                    dim,
                    learning_rate,
                    ..base.clone()
                });
            }
        }
        let mut trials = Vec::new();
        let mut oof = Vec::new();
        // Every fold of every setting, then the winner on the whole split.
        let steps = search.progress.steps(configs.len() * folds.count() + 1);
        for config in configs {
            config.validate()?;
            // One fold at a time: each MF fit uses candle's threads.
            let est = out_of_fold(&folds, m, false, |rest, held| {
                let router = MfRouter::fit(&train.subset(rest, "train"), &config)?;
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
        let router = MfRouter::fit(train, &report.trials[0].config)?;
        steps.step();
        Ok((router, report, est))
    }

    /// Trains an MF router on pointwise scores and, when given, pairwise preferences over
    /// the same pool. Pass an empty split (`train.len() == 0`, with the pool and dimension
    /// set) to train on preferences alone.
    ///
    /// # Errors
    ///
    /// As [`MfRouter::fit`]; [`Error::DimensionMismatch`] when the preferences' dimension
    /// differs from the split's; the errors of [`Preferences::validate`].
    pub fn fit_with_preferences(
        train: &Split,
        prefs: Option<&Preferences>,
        config: &MfConfig,
    ) -> Result<MfRouter> {
        config.validate()?;
        let started = std::time::Instant::now();
        let pool = train.pool().clone();
        let (m, k) = (pool.len(), config.dim);
        let d = match (train.is_empty(), prefs) {
            (false, _) => {
                train.features()?;
                if train.observed_count() == 0 && train.preferences().is_empty() && prefs.is_none()
                {
                    return Err(Error::MissingLabels(format!(
                        "the {} split has neither a score nor a preference to train an mf \
                         router on",
                        train.name()
                    )));
                }
                train.dim()
            }
            (true, Some(p)) => p.dim,
            (true, None) => {
                return Err(Error::InvalidInput(format!(
                    "cannot fit an mf router on the empty {} split",
                    train.name()
                )))
            }
        };
        if let Some(p) = prefs {
            p.validate(&pool)?;
            if p.dim != d {
                return Err(Error::DimensionMismatch {
                    expected: d,
                    got: p.dim,
                });
            }
        }
        let dev = Device::Cpu;
        let mut rng = SplitMix64::new(config.seed);
        let mut task_names: Vec<String> = if config.use_tasks {
            train.tasks().iter().flatten().cloned().collect()
        } else {
            Vec::new()
        };
        task_names.sort();
        task_names.dedup();
        let none = task_names.len() as u32;
        let row_task: Vec<u32> = train
            .tasks()
            .iter()
            .map(|t| {
                t.as_ref()
                    .and_then(|t| task_names.binary_search(t).ok())
                    .map_or(none, |i| i as u32)
            })
            .collect();
        let model = Model::init(
            d,
            m,
            k,
            task_names.len(),
            config.normalize_model_vectors,
            &mut rng,
            &dev,
        )
        .map_err(backend)?;
        // Pointwise rows: every row, or with partial labels those with an observed score.
        let point_idx: Vec<usize> = match train.observed_mask() {
            None => (0..train.len()).collect(),
            Some(mask) => (0..train.len())
                .filter(|&r| mask[r * m..(r + 1) * m].iter().any(|&o| o))
                .collect(),
        };
        let mut point_rows = split_rows(point_idx.len(), config.validation_fraction, &mut rng);
        for v in [&mut point_rows.train, &mut point_rows.val] {
            v.iter_mut().for_each(|i| *i = point_idx[*i]);
        }
        // Preference rows: the given ones, then the split's own (with their query's task).
        let pairs = PairRows::new(prefs, train, &row_task, none, d);
        let np = pairs.a.len();
        let pair_rows = split_rows(np, config.validation_fraction, &mut rng);
        let scores: Vec<f32> = match train.observed_mask() {
            None => train.scores().iter().map(|&s| s as f32).collect(),
            Some(_) => train
                .scores()
                .iter()
                .map(|&s| if s.is_nan() { 0.0 } else { s as f32 })
                .collect(),
        };
        // Per-cell loss weights with partial labels: 1 where observed (the inverse propensity
        // with `inverse_propensity`), 0 elsewhere.
        let cell_weights: Option<Vec<f32>> = train.observed_mask().map(|mask| {
            mask.iter()
                .enumerate()
                .map(
                    |(c, &o)| match (o, config.inverse_propensity, train.propensities()) {
                        (false, _, _) => 0.0,
                        (true, true, Some(p)) if !p[c].is_nan() => (1.0 / p[c]) as f32,
                        (true, _, _) => 1.0,
                    },
                )
                .collect()
        });
        let adam = |wd: f64| ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: wd,
            ..Default::default()
        };
        let mut opt = AdamW::new(
            model.decayed_vars(config.use_tasks),
            adam(config.weight_decay),
        )
        .map_err(backend)?;
        let mut opt_bias = AdamW::new(vec![model.bias.clone()], adam(0.0)).map_err(backend)?;

        let tasks_of = |tasks: Vec<u32>| CTensor::from_vec(tasks.clone(), tasks.len(), &dev);
        let point_batch = |rows: &[usize]| -> candle_core::Result<(CTensor, CTensor, CTensor)> {
            let x = CTensor::from_vec(
                gather_f32(train.embeddings(), d, rows),
                (rows.len(), d),
                &dev,
            )?;
            let t = tasks_of(rows.iter().map(|&r| row_task[r]).collect())?;
            let y = CTensor::from_vec(gather_f32(&scores, m, rows), (rows.len(), m), &dev)?;
            Ok((x, t, y))
        };
        // The pointwise loss of some rows and the weight it carries in a mean over batches
        // (its rows, or with partial labels its observed cells' weights).
        let point_loss = |model: &Model, rows: &[usize]| -> candle_core::Result<(CTensor, f64)> {
            let (x, t, y) = point_batch(rows)?;
            let logits = model.logits(&x, &t)?;
            match &cell_weights {
                None => Ok((bce_with_logits(&logits, &y)?, rows.len() as f64)),
                Some(cw) => {
                    let w = gather_f32(cw, m, rows);
                    let total: f32 = w.iter().sum();
                    let w = CTensor::from_vec(w, (rows.len(), m), &dev)?;
                    Ok((
                        masked_bce_with_logits(&logits, &y, &w, total)?,
                        f64::from(total),
                    ))
                }
            }
        };
        type PairBatch = (CTensor, CTensor, CTensor, CTensor, CTensor);
        let pair_batch = |rows: &[usize]| -> candle_core::Result<PairBatch> {
            let x = CTensor::from_vec(gather_f32(&pairs.emb, d, rows), (rows.len(), d), &dev)?;
            let t = tasks_of(rows.iter().map(|&r| pairs.task[r]).collect())?;
            let a = CTensor::from_vec(
                rows.iter().map(|&r| pairs.a[r]).collect::<Vec<u32>>(),
                rows.len(),
                &dev,
            )?;
            let b = CTensor::from_vec(
                rows.iter().map(|&r| pairs.b[r]).collect::<Vec<u32>>(),
                rows.len(),
                &dev,
            )?;
            let y: Vec<f32> = rows.iter().map(|&r| pairs.y[r]).collect();
            Ok((x, t, a, b, CTensor::from_vec(y, rows.len(), &dev)?))
        };
        // Validation loss: mean over pointwise and pairwise validation rows (or the training
        // rows when nothing is held out).
        let eval_loss = |model: &Model| -> candle_core::Result<f64> {
            let (pts, pairs) = if point_rows.val.is_empty() && pair_rows.val.is_empty() {
                (&point_rows.train, &pair_rows.train)
            } else {
                (&point_rows.val, &pair_rows.val)
            };
            let mut total = 0.0;
            let mut count = 0.0;
            for chunk in pts.chunks(1024) {
                let (l, weight) = point_loss(model, chunk)?;
                total += f64::from(l.to_scalar::<f32>()?) * weight;
                count += weight;
            }
            for chunk in pairs.chunks(1024) {
                let (x, t, a, b, y) = pair_batch(chunk)?;
                let l =
                    bce_with_logits(&model.pair_logits(&x, &t, &a, &b)?, &y)?.to_scalar::<f32>()?;
                total += f64::from(l) * chunk.len() as f64;
                count += chunk.len() as f64;
            }
            Ok(total / count.max(1.0))
        };

        let mut best = (f64::INFINITY, 0usize, model.snapshot().map_err(backend)?);
        let mut epochs = 0;
        let (mut pt, mut pr) = (point_rows.train.clone(), pair_rows.train.clone());
        for epoch in 1..=config.max_epochs {
            epochs = epoch;
            rng.shuffle(&mut pt);
            rng.shuffle(&mut pr);
            let steps = pt
                .len()
                .div_ceil(config.batch_size)
                .max(pr.len().div_ceil(config.batch_size));
            for s in 0..steps {
                let slice = |v: &[usize]| -> Vec<usize> {
                    let a = (s * config.batch_size).min(v.len());
                    let b = ((s + 1) * config.batch_size).min(v.len());
                    v[a..b].to_vec()
                };
                let (bp, bq) = (slice(&pt), slice(&pr));
                let mut loss: Option<CTensor> = None;
                if !bp.is_empty() {
                    loss = Some(point_loss(&model, &bp).map_err(backend)?.0);
                }
                if !bq.is_empty() {
                    let (x, t, a, b, y) = pair_batch(&bq).map_err(backend)?;
                    let l =
                        bce_with_logits(&model.pair_logits(&x, &t, &a, &b).map_err(backend)?, &y)
                            .map_err(backend)?;
                    loss = Some(match loss {
                        Some(p) => (p + l).map_err(backend)?,
                        None => l,
                    });
                }
                if let Some(loss) = loss {
                    let grads = loss.backward().map_err(backend)?;
                    opt.step(&grads).map_err(backend)?;
                    opt_bias.step(&grads).map_err(backend)?;
                }
            }
            let val = eval_loss(&model).map_err(backend)?;
            if !val.is_finite() {
                return Err(Error::Numeric(format!(
                    "mf training diverged at epoch {epoch} (loss {val})"
                )));
            }
            if val < best.0 - 1e-5 {
                best = (val, epoch, model.snapshot().map_err(backend)?);
            } else if epoch - best.1 >= config.patience {
                break;
            }
        }
        let (best_loss, best_epoch, params) = best;
        tracing::debug!("mf: {epochs} epochs, best {best_epoch} (validation loss {best_loss:.4})");
        Ok(MfRouter::assemble(
            config.clone(),
            pool,
            train.embedding_model().map(str::to_string),
            d,
            params,
            fit_costs(train),
            TrainReport {
                epochs,
                best_epoch,
                best_loss,
                seconds: started.elapsed().as_secs_f64(),
            },
            task_names,
        ))
    }
}

/// Least-squares `cost ≈ a + c · tokens` per model over the observed costs, with `c ≥ 0` and the
/// fit never below zero on the data; `None` for models without observed costs.
fn fit_costs(train: &Split) -> Vec<Option<(f64, f64)>> {
    let m = train.pool().len();
    (0..m)
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
            let intercept = (my - slope * mx).max(0.0);
            Some((intercept, slope))
        })
        .collect()
}
