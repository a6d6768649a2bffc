//! Matrix-factorisation router: RouteLLM's MF router generalised to N models.
//!
//! # Model
//!
//! ```text
//! quality_m(q) = σ( wᵀ (v̂_m ⊙ z_q) + b_m ),    z_q = P·e_q + u_task(q)
//! ```
//!
//! with `e_q` the query's L2-normalised embedding (`d` values), `u_t` a learned `k`-vector per
//! task tag seen in training (one more for queries without a known tag; all zero when
//! [`MfConfig::use_tasks`] is off), `P` a learned `k × d` projection,
//! `v_m` a learned `k`-vector per model (`v̂_m = v_m / ‖v_m‖` when
//! [`MfConfig::normalize_model_vectors`] is set, as RouteLLM does), `w` a learned `k`-vector and
//! `b_m` a per-model bias.
//!
//! # Training
//!
//! With candle-nn's AdamW on binary cross-entropy (computed stably from the logits), from
//! pointwise scores in [0, 1] (every model's score on every training query) and, when given,
//! pairwise preference rows `(query, model a, model b, winner)` as in Chatbot Arena data, whose
//! logit is `wᵀ((v̂_a − v̂_b) ⊙ P·e_q) + b_a − b_b`. A validation split carved from the training
//! data stops training early and picks the best epoch; a fixed seed gives identical weights on
//! every run (parameters are initialised by Pointsman's own seeded generator, minibatches are
//! shuffled by it, and candle's CPU kernels reduce in a fixed order).
//!
//! # Routing
//!
//! Plain `f32` math, no candle: `h = P·e + u_t` (a `k × d` matrix–vector product), then `m` dot
//! products with `u_m = w ⊙ v̂_m` precomputed at fit and load. Expected cost: a per-model linear
//! fit `a_m + c_m · prompt_tokens` of the training data's observed costs where it has them, else
//! the pool's price estimate.

use serde::{Deserialize, Serialize};

#[cfg(feature = "train")]
use crate::data::Split;
use crate::error::{Error, Result};
use crate::features::{inv_norm, FeatureBatch};
use crate::kind::RouterKind;
use crate::pool::ModelPool;
use crate::router::{Estimates, Router, Signals};
use crate::saved::{SavedRouter, Tensor};
use crate::simd;

/// Hyper-parameters of an [`MfRouter`] and of its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfConfig {
    /// Latent dimension `k`.
    pub dim: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Training queries per minibatch.
    pub batch_size: usize,
    /// Upper bound on training epochs.
    pub max_epochs: usize,
    /// Epochs without a better validation loss before training stops.
    pub patience: usize,
    /// Share of the training queries held out for early stopping.
    pub validation_fraction: f64,
    /// Normalise each model vector to unit length, as RouteLLM does.
    pub normalize_model_vectors: bool,
    /// Learn a vector per task tag, added to the projected query.
    pub use_tasks: bool,
    /// Seed of initialisation, validation split and minibatch order.
    pub seed: u64,
}

impl Default for MfConfig {
    fn default() -> Self {
        MfConfig {
            dim: 32,
            learning_rate: 3e-3,
            weight_decay: 1e-2,
            batch_size: 128,
            max_epochs: 200,
            patience: 10,
            validation_fraction: 0.1,
            normalize_model_vectors: true,
            use_tasks: true,
            seed: 0,
        }
    }
}

impl MfConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.dim == 0 {
            return bad("mf dim must be at least 1".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "mf learning_rate {} is not positive",
                self.learning_rate
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!("mf weight_decay {} is negative", self.weight_decay));
        }
        if self.batch_size == 0 || self.max_epochs == 0 {
            return bad("mf batch_size and max_epochs must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return bad(format!(
                "mf validation_fraction {} outside [0, 1)",
                self.validation_fraction
            ));
        }
        Ok(())
    }
}

/// A pairwise preference: on the query, `winner` says which of two models answered better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Winner {
    /// Model a won.
    ModelA,
    /// Model b won.
    ModelB,
    /// A tie.
    Tie,
}

/// Pairwise preference rows over a pool: query embeddings and, per row, the two models compared
/// and the winner.
#[derive(Debug, Clone, PartialEq)]
pub struct Preferences {
    /// Query embeddings `[rows, dim]`, row-major.
    pub embeddings: Vec<f32>,
    /// Embedding dimension.
    pub dim: usize,
    /// Model a of each row (index in the pool).
    pub model_a: Vec<u32>,
    /// Model b of each row.
    pub model_b: Vec<u32>,
    /// The winner of each row.
    pub winner: Vec<Winner>,
}

impl Preferences {
    /// Checks shapes and indices against a pool.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`], [`Error::UnknownModel`], [`Error::InvalidFeatures`].
    pub fn validate(&self, pool: &ModelPool) -> Result<()> {
        let batch = FeatureBatch::new(&self.embeddings, self.dim)?;
        let n = batch.rows();
        if self.model_a.len() != n || self.model_b.len() != n || self.winner.len() != n {
            return Err(Error::Shape(format!(
                "{n} preference embeddings but {} / {} / {} models and winners",
                self.model_a.len(),
                self.model_b.len(),
                self.winner.len()
            )));
        }
        for (&a, &b) in self.model_a.iter().zip(&self.model_b) {
            pool.check_index(a as usize)?;
            pool.check_index(b as usize)?;
            if a == b {
                return Err(Error::InvalidInput(format!(
                    "a preference compares model #{a} with itself"
                )));
            }
        }
        Ok(())
    }
}

/// The learned parameters, row-major.
#[derive(Debug, Clone, PartialEq)]
struct Params {
    /// `[k, d]`.
    projection: Vec<f32>,
    /// `[m, k]`.
    model_vectors: Vec<f32>,
    /// `[k]`.
    classifier: Vec<f32>,
    /// `[m]`.
    bias: Vec<f32>,
    /// `[tasks + 1, k]`: one row per training task, the last for queries without a known tag.
    task_vectors: Vec<f32>,
}

/// A fitted matrix-factorisation router. See the [module documentation](self).
#[derive(Clone)]
pub struct MfRouter {
    config: MfConfig,
    pool: ModelPool,
    dim: usize,
    embedding_model: Option<String>,
    params: Params,
    /// `P`, packed for projecting many rows at once.
    packed: simd::PackedMatrix,
    /// `u_m = w ⊙ v̂_m` (`[m, k]`), packed: every model's logit for many rows at once.
    packed_fused: simd::PackedMatrix,
    /// Per-model linear cost fit `(intercept, per prompt token)`, where observed costs exist.
    cost_fit: Vec<Option<(f64, f64)>>,
    /// What training did: epochs run, best epoch, losses.
    report: TrainReport,
    task_names: Vec<String>,
    task_ids: std::collections::HashMap<String, usize>,
}

impl std::fmt::Debug for MfRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfRouter")
            .field("config", &self.config)
            .field("models", &self.pool.ids().collect::<Vec<_>>())
            .field("dim", &self.dim)
            .field("report", &self.report)
            .finish()
    }
}

/// What a training run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Epochs run.
    pub epochs: usize,
    /// The epoch whose weights were kept (1-based).
    pub best_epoch: usize,
    /// Validation loss at the best epoch (training loss when nothing was held out).
    pub best_loss: f64,
    /// Seconds spent training.
    pub seconds: f64,
}

impl MfRouter {
    /// The configuration.
    pub fn config(&self) -> &MfConfig {
        &self.config
    }

    /// What training did.
    pub fn train_report(&self) -> &TrainReport {
        &self.report
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        config: MfConfig,
        pool: ModelPool,
        embedding_model: Option<String>,
        dim: usize,
        params: Params,
        cost_fit: Vec<Option<(f64, f64)>>,
        report: TrainReport,
        task_names: Vec<String>,
    ) -> MfRouter {
        let (m, k) = (pool.len(), config.dim);
        let mut fused = vec![0.0f32; m * k];
        for j in 0..m {
            let v = &params.model_vectors[j * k..(j + 1) * k];
            let scale = if config.normalize_model_vectors {
                let n2: f32 = v.iter().map(|x| x * x).sum();
                if n2 > 0.0 {
                    inv_norm(v)
                } else {
                    0.0
                }
            } else {
                1.0
            };
            for t in 0..k {
                fused[j * k + t] = params.classifier[t] * v[t] * scale;
            }
        }
        let packed = simd::PackedMatrix::new(&params.projection, k, dim);
        let packed_fused = simd::PackedMatrix::new(&fused, m, k);
        MfRouter {
            config,
            pool,
            dim,
            embedding_model,
            params,
            packed,
            packed_fused,
            cost_fit,
            report,
            task_ids: task_names
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), i))
                .collect(),
            task_names,
        }
    }

    /// The row of `u` for a query's task tag: its own, or the last for none or unseen.
    fn task_row(&self, task: Option<&str>) -> usize {
        task.and_then(|t| self.task_ids.get(t).copied())
            .unwrap_or(self.task_names.len())
    }

    /// Rebuilds an MF router from its saved form.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for missing or misshapen tensors or non-finite weights.
    pub fn from_saved(config: MfConfig, mut saved: SavedRouter) -> Result<MfRouter> {
        config
            .validate()
            .map_err(|e| Error::format("saved router", e.to_string()))?;
        let (m, k, d) = (saved.pool.len(), config.dim, saved.dim);
        let task_names: Vec<String> = match saved.notes.get("mf.tasks") {
            Some(j) => serde_json::from_str(j)
                .map_err(|e| Error::format("saved router", format!("bad note mf.tasks: {e}")))?,
            None => Vec::new(),
        };
        let params = Params {
            projection: saved.take_f32("mf.projection", &[k, d])?,
            model_vectors: saved.take_f32("mf.model_vectors", &[m, k])?,
            classifier: saved.take_f32("mf.classifier", &[k])?,
            bias: saved.take_f32("mf.bias", &[m])?,
            task_vectors: saved.take_f32("mf.task_vectors", &[task_names.len() + 1, k])?,
        };
        let fits = saved.take_f64("mf.cost_fit", &[m, 3])?;
        let all = [
            &params.projection,
            &params.model_vectors,
            &params.classifier,
            &params.bias,
            &params.task_vectors,
        ];
        if all.iter().any(|v| v.iter().any(|x| !x.is_finite()))
            || fits.iter().any(|x| !x.is_finite())
        {
            return Err(Error::format("saved router", "mf weights are not finite"));
        }
        let cost_fit = fits
            .chunks_exact(3)
            .map(|f| (f[0] != 0.0).then_some((f[1], f[2])))
            .collect();
        let report = saved
            .notes
            .get("mf.train_report")
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        Ok(MfRouter::assemble(
            config,
            saved.pool,
            saved.embedding_model,
            d,
            params,
            cost_fit,
            report,
            task_names,
        ))
    }
}

/// Least-squares `cost ≈ a + c · tokens` per model over the observed costs, with `c ≥ 0` and the
/// fit never below zero on the data; `None` for models without observed costs.
#[cfg(feature = "train")]
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

impl Router for MfRouter {
    fn kind(&self) -> &'static str {
        RouterKind::Mf.name()
    }

    fn models(&self) -> &ModelPool {
        &self.pool
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }

    fn estimate(&self, batch: &FeatureBatch<'_>, out: &mut Estimates) -> Result<()> {
        let (m, k) = (self.pool.len(), self.config.dim);
        // `P·x`, then every model's logit `u_m·h`, for a block of rows at a time (one pass of
        // each packed matrix per block; 64 rows at the default k = 32).
        let block = (2048 / k.max(m).max(1)).clamp(1, batch.rows().max(1));
        let (mut hs, mut logits) = (vec![0.0f32; block * k], vec![0.0f32; block * m]);
        let mut start = 0;
        while start < batch.rows() {
            let end = (start + block).min(batch.rows());
            let rows = &batch.data()[start * self.dim..end * self.dim];
            let (hs, logits) = (
                &mut hs[..(end - start) * k],
                &mut logits[..(end - start) * m],
            );
            self.packed.apply(rows, hs);
            for (r, h) in (start..end).zip(hs.chunks_exact_mut(k.max(1))) {
                // P·e with e = x / ‖x‖: project the raw row, then scale.
                let inv = inv_norm(batch.row(r));
                let u = self.task_row(batch.task(r));
                for (v, t) in h
                    .iter_mut()
                    .zip(&self.params.task_vectors[u * k..(u + 1) * k])
                {
                    *v = *v * inv + t;
                }
            }
            self.packed_fused.apply(hs, logits);
            for (r, l) in (start..end).zip(logits.chunks_exact(m.max(1))) {
                let tokens = batch.prompt_tokens(r);
                let (q, c) = out.row_mut(r);
                for j in 0..m {
                    let logit = l[j] + self.params.bias[j];
                    q[j] = 1.0 / (1.0 + (-f64::from(logit)).exp());
                    c[j] = match self.cost_fit[j] {
                        Some((a, b)) => a + b * tokens.unwrap_or(0.0),
                        None => self.pool.estimate_cost(j, tokens),
                    };
                }
                out.signals[r] = Signals::default();
            }
            start = end;
        }
        Ok(())
    }

    fn to_saved(&self) -> Result<SavedRouter> {
        let (m, k, d) = (self.pool.len(), self.config.dim, self.dim);
        let fits: Vec<f64> = self
            .cost_fit
            .iter()
            .flat_map(|f| match f {
                Some((a, b)) => [1.0, *a, *b],
                None => [0.0, 0.0, 0.0],
            })
            .collect();
        let mut saved = SavedRouter::new(
            RouterKind::Mf.name(),
            &self.config,
            self.pool.clone(),
            self.embedding_model.clone(),
            d,
        )
        .with_tensor(
            "mf.projection",
            Tensor::f32(&[k, d], self.params.projection.clone()),
        )
        .with_tensor(
            "mf.model_vectors",
            Tensor::f32(&[m, k], self.params.model_vectors.clone()),
        )
        .with_tensor(
            "mf.classifier",
            Tensor::f32(&[k], self.params.classifier.clone()),
        )
        .with_tensor("mf.bias", Tensor::f32(&[m], self.params.bias.clone()))
        .with_tensor("mf.cost_fit", Tensor::f64(&[m, 3], fits))
        .with_tensor(
            "mf.task_vectors",
            Tensor::f32(
                &[self.task_names.len() + 1, k],
                self.params.task_vectors.clone(),
            ),
        );
        saved.notes.insert(
            "mf.tasks".into(),
            serde_json::to_string(&self.task_names).expect("strings serialise to JSON"),
        );
        saved.notes.insert(
            "mf.train_report".into(),
            serde_json::to_string(&self.report).expect("reports serialise to JSON"),
        );
        Ok(saved)
    }
}

/// The grid an MF search tries, by cross-validation on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfSearch {
    /// Number of folds.
    pub folds: usize,
    /// Seed of the fold assignment.
    pub seed: u64,
    /// Latent dimensions.
    pub dim: Vec<usize>,
    /// Learning rates.
    pub learning_rate: Vec<f64>,
}

impl Default for MfSearch {
    fn default() -> Self {
        MfSearch {
            folds: 5,
            seed: 0,
            dim: vec![16, 32, 128],
            learning_rate: vec![3e-3, 1e-2],
        }
    }
}

#[cfg(feature = "train")]
mod train {
    //! Training with candle-nn.

    use candle_core::{DType, Device, Tensor as CTensor, Var, D};
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    use super::*;
    use crate::metrics::{validation_metrics, DEFAULT_SWEEP_POINTS};
    use crate::rng::SplitMix64;
    use crate::router::Estimates;
    use crate::tuning::{Criterion, Folds, SearchReport, Trial, Validation};

    /// A candle failure while training: a numeric failure of the router, not of the embedder.
    fn backend(e: candle_core::Error) -> Error {
        Error::Numeric(format!("mf training: {e}"))
    }

    /// Stable binary cross-entropy with logits: `max(x, 0) − x·y + log(1 + e^(−|x|))`, averaged.
    fn bce_with_logits(x: &CTensor, y: &CTensor) -> candle_core::Result<CTensor> {
        let loss = ((x.relu()? - (x * y)?)? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
        loss.mean_all()
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
            for config in configs {
                config.validate()?;
                let mut est = Estimates::new(n, m);
                for f in 0..folds.count() {
                    let rest: Vec<usize> = folds.training(f).collect();
                    let held: Vec<usize> = folds.held_out(f).collect();
                    let router = MfRouter::fit(&train.subset(&rest, "train"), &config)?;
                    let part = train.subset(&held, "validation");
                    let e = router.estimate_batch(&part.features()?)?;
                    for (i, &r) in held.iter().enumerate() {
                        let (q, c) = est.row_mut(r);
                        q.copy_from_slice(e.quality_row(i));
                        c.copy_from_slice(e.cost_row(i));
                    }
                }
                let metrics = validation_metrics(&est, train, weak_strong, DEFAULT_SWEEP_POINTS)?;
                trials.push(Trial {
                    config,
                    score: criterion.score(&metrics),
                    metrics,
                });
            }
            let report = SearchReport::new(
                criterion,
                Validation::KFold {
                    folds: search.folds,
                },
                trials,
                started,
            );
            let router = MfRouter::fit(train, &report.trials[0].config)?;
            Ok((router, report))
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
            let point_rows = split_rows(train.len(), config.validation_fraction, &mut rng);
            let np = prefs.map_or(0, |p| p.winner.len());
            let pair_rows = split_rows(np, config.validation_fraction, &mut rng);
            let scores: Vec<f32> = train.scores().iter().map(|&s| s as f32).collect();
            let pair_emb: Vec<f32> = prefs
                .map(|p| {
                    let mut e = p.embeddings.clone();
                    for row in e.chunks_exact_mut(d) {
                        let inv = inv_norm(row);
                        row.iter_mut().for_each(|v| *v *= inv);
                    }
                    e
                })
                .unwrap_or_default();
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
            type PairBatch = (CTensor, CTensor, CTensor, CTensor, CTensor);
            let pair_batch = |rows: &[usize]| -> candle_core::Result<PairBatch> {
                let p = prefs.expect("pair rows exist only with preferences");
                let x = CTensor::from_vec(gather_f32(&pair_emb, d, rows), (rows.len(), d), &dev)?;
                // Preference rows carry no task tag: they use the "no known tag" vector.
                let t = tasks_of(vec![none; rows.len()])?;
                let a = CTensor::from_vec(
                    rows.iter().map(|&r| p.model_a[r]).collect::<Vec<u32>>(),
                    rows.len(),
                    &dev,
                )?;
                let b = CTensor::from_vec(
                    rows.iter().map(|&r| p.model_b[r]).collect::<Vec<u32>>(),
                    rows.len(),
                    &dev,
                )?;
                let y: Vec<f32> = rows
                    .iter()
                    .map(|&r| match p.winner[r] {
                        Winner::ModelA => 1.0,
                        Winner::ModelB => 0.0,
                        Winner::Tie => 0.5,
                    })
                    .collect();
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
                    let (x, t, y) = point_batch(chunk)?;
                    let l = bce_with_logits(&model.logits(&x, &t)?, &y)?.to_scalar::<f32>()?;
                    total += f64::from(l) * chunk.len() as f64;
                    count += chunk.len() as f64;
                }
                for chunk in pairs.chunks(1024) {
                    let (x, t, a, b, y) = pair_batch(chunk)?;
                    let l = bce_with_logits(&model.pair_logits(&x, &t, &a, &b)?, &y)?
                        .to_scalar::<f32>()?;
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
                        let (x, t, y) = point_batch(&bp).map_err(backend)?;
                        loss = Some(
                            bce_with_logits(&model.logits(&x, &t).map_err(backend)?, &y)
                                .map_err(backend)?,
                        );
                    }
                    if !bq.is_empty() {
                        let (x, t, a, b, y) = pair_batch(&bq).map_err(backend)?;
                        let l = bce_with_logits(
                            &model.pair_logits(&x, &t, &a, &b).map_err(backend)?,
                            &y,
                        )
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
            tracing::debug!(
                "mf: {epochs} epochs, best {best_epoch} (validation loss {best_loss:.4})"
            );
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
}

#[cfg(all(test, feature = "train"))]
mod tests {
    use super::*;
    use crate::pool::ModelCard;
    use crate::rng::SplitMix64;
    use crate::{Objective, QueryFeatures};

    /// Three models; model j is right when the query points along axis j.
    fn data(n: usize, seed: u64) -> Split {
        let pool = ModelPool::new(vec![
            ModelCard::new("a", 0.1, 0.1),
            ModelCard::new("b", 1.0, 1.0),
            ModelCard::new("c", 5.0, 5.0),
        ])
        .unwrap();
        let mut rng = SplitMix64::new(seed);
        let (mut e, mut s) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let axis = rng.below(3);
            let mut v = [0.0f32; 6];
            for x in v.iter_mut() {
                *x = rng.normal() as f32 * 0.2;
            }
            v[axis] += 1.0;
            e.extend_from_slice(&v);
            for j in 0..3 {
                s.push(f64::from(u8::from(j == axis)));
            }
        }
        let costs: Vec<f64> = (0..n).flat_map(|_| [1e-5, 1e-4, 5e-4]).collect();
        Split::from_arrays(pool, e, 6, s, costs).unwrap()
    }

    fn config() -> MfConfig {
        MfConfig {
            dim: 8,
            max_epochs: 40,
            learning_rate: 1e-2,
            ..Default::default()
        }
    }

    #[test]
    fn learns_and_is_deterministic() {
        let train = data(600, 1);
        let r1 = MfRouter::fit(&train, &config()).unwrap();
        let r2 = MfRouter::fit(&train, &config()).unwrap();
        assert_eq!(r1.params, r2.params, "same seed, same weights");
        let r3 = MfRouter::fit(
            &train,
            &MfConfig {
                seed: 9,
                ..config()
            },
        )
        .unwrap();
        assert_ne!(r1.params, r3.params);
        let test = data(300, 2);
        let choices = r1
            .route_batch(&test.features().unwrap(), &Objective::new(0.0))
            .unwrap();
        let right = choices
            .iter()
            .enumerate()
            .filter(|(r, &m)| test.score(*r, m as usize) == 1.0)
            .count();
        assert!(right > 270, "{right}/300");
        assert!(r1.train_report().best_epoch >= 1);
        // Observed costs (arrays count as observed) are fitted per model.
        let d = r1
            .route(
                &QueryFeatures::new(vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0]).unwrap(),
                &Objective::new(0.0),
            )
            .unwrap();
        assert_eq!(d.model_id, "a");
        assert!((d.cost - 1e-5).abs() < 1e-9, "{}", d.cost);
    }

    #[test]
    fn trains_from_preferences_alone() {
        let pointwise = data(600, 3);
        let (mut e, mut a, mut b, mut w) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut rng = SplitMix64::new(4);
        for r in 0..pointwise.len() {
            let (x, y) = (rng.below(3), rng.below(3));
            if x == y {
                continue;
            }
            e.extend_from_slice(&pointwise.embeddings()[r * 6..(r + 1) * 6]);
            a.push(x as u32);
            b.push(y as u32);
            let (sx, sy) = (pointwise.score(r, x), pointwise.score(r, y));
            w.push(if sx > sy {
                Winner::ModelA
            } else if sy > sx {
                Winner::ModelB
            } else {
                Winner::Tie
            });
        }
        let prefs = Preferences {
            embeddings: e,
            dim: 6,
            model_a: a,
            model_b: b,
            winner: w,
        };
        let empty = pointwise.subset(&[], "train");
        let r = MfRouter::fit_with_preferences(&empty, Some(&prefs), &config()).unwrap();
        let test = data(300, 5);
        let choices = r
            .route_batch(&test.features().unwrap(), &Objective::new(0.0))
            .unwrap();
        let right = choices
            .iter()
            .enumerate()
            .filter(|(r, &m)| test.score(*r, m as usize) == 1.0)
            .count();
        assert!(right > 240, "{right}/300");
        let mut bad = prefs.clone();
        bad.model_b[0] = 7;
        assert!(MfRouter::fit_with_preferences(&empty, Some(&bad), &config()).is_err());
        let mut bad = prefs.clone();
        bad.winner.pop();
        assert!(MfRouter::fit_with_preferences(&empty, Some(&bad), &config()).is_err());
    }

    #[test]
    fn save_load_round_trip() {
        let train = data(300, 6);
        let r = MfRouter::fit(&train, &config()).unwrap();
        let bytes = r.to_saved().unwrap().to_bytes().unwrap();
        let loaded = crate::registry::AnyRouter::from_bytes(&bytes).unwrap();
        let b = train.features().unwrap();
        assert_eq!(
            r.estimate_batch(&b).unwrap(),
            loaded.estimate_batch(&b).unwrap()
        );
        assert_eq!(loaded.to_saved().unwrap().to_bytes().unwrap(), bytes);
        let mut saved = r.to_saved().unwrap();
        saved
            .tensors
            .insert("mf.bias".into(), Tensor::f32(&[3], vec![f32::NAN; 3]));
        let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
        assert!(e.to_string().contains("not finite"), "{e}");
        assert!(MfConfig { dim: 0, ..config() }.validate().is_err());
        assert!(MfConfig {
            validation_fraction: 1.0,
            ..config()
        }
        .validate()
        .is_err());
    }
}
