//! The out-of-distribution guard: a score of how unlike the training queries a query is, a
//! threshold calibrated on held-out training queries to a chosen false-alarm rate, and an
//! action when the score is above it (refuse, or send the query to a fallback model).
//!
//! Two sources of the score:
//!
//! - **the router's own signal** ([`GuardSource::Router`]): a kNN router's `Signals::ood`, the
//!   share of training queries whose neighbourhood is tighter than the query's. The guard then
//!   costs nothing beyond the router's decision.
//! - **a guard fitted on the training embeddings** ([`EmbeddingGuard`], for routers without an
//!   OOD signal, or to detect better than a neighbourhood distance): the *relative Mahalanobis
//!   distance* (Ren et al., 2021, "A simple fix to Mahalanobis distance for improving near-OOD
//!   detection"),
//!
//!   ```text
//!   score(x) = min_c (x − μ_c)ᵀ Σ⁻¹ (x − μ_c)  −  (x − μ₀)ᵀ Σ₀⁻¹ (x − μ₀)
//!   ```
//!
//!   with one Gaussian per class sharing the covariance `Σ` and one background Gaussian
//!   `(μ₀, Σ₀)` over all training queries. Classes are the training queries' task tags when
//!   there are at least two, else spherical k-means clusters. Both covariances are shrunk toward
//!   a multiple of the identity (`shrinkage × trace / dim`), factored once at fit (Cholesky), and
//!   a query is whitened by two triangular products: about `dim²` multiply-adds, less than
//!   one exact kNN scan over the training set.
//!
//!   The background term cancels the directions in which every training query varies, so what
//!   is left is how far the query is from the nearest class *relative to* how unusual it is in
//!   general. On `llmrouter_dc`, leaving one task group out at a time, it separates the unseen
//!   group from the test queries of the seen ones with a mean AUROC of 0.92, where the plain
//!   10-nearest-neighbour distance gives 0.78 (`docs/results.md`, `tests/quality.rs`).
//!
//! Calibration: the guard is fitted on the training queries minus a seeded held-out share
//! ([`GuardFit::holdout`]), and its threshold is the `1 − false_alarm` quantile of the held-out
//! queries' scores. Nothing of a test split is read.
//!
//! The saved form is a `.safetensors` file of its own (format `pointsman-guard`, docs/format.md).

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::Split;
use crate::error::{Error, Result};
use crate::rng::SplitMix64;
use crate::routers::bandit::{cholesky_whitener, nearest, spherical_kmeans};
use crate::simd;

/// The fewest held-out queries a guard's threshold is calibrated on.
pub const MIN_CALIBRATION: usize = 10;
/// Where a guard's score comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardSource {
    /// The router's own out-of-distribution signal (`Signals::ood`, kNN routers).
    Router,
    /// An [`EmbeddingGuard`] fitted on the training embeddings.
    Embeddings,
}

/// What the guard does with a query whose score is above its threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardAction {
    /// Refuse: the routing call fails with [`Error::OutOfDistribution`].
    Refuse,
    /// Send the query to this model (a safe, general model).
    Fallback(String),
}

/// The guard section of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// Where the score comes from.
    pub source: GuardSource,
    /// The threshold; default: the fitted guard's calibrated one, or 0.95 for the router's
    /// signal (a share of training queries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// What happens above the threshold.
    pub action: GuardAction,
    /// The fitted guard's file (source `embeddings`), relative to the policy file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<std::path::PathBuf>,
}

/// How an [`EmbeddingGuard`] is fitted and calibrated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardFit {
    /// Share of the training queries held out for calibration (default 0.2).
    pub holdout: f64,
    /// The false-alarm rate the threshold is calibrated to on the held-out queries (default
    /// 0.05).
    pub false_alarm: f64,
    /// Shrinkage of the covariances toward a multiple of the identity (default 0.01).
    pub shrinkage: f64,
    /// Clusters when the training queries carry fewer than two task tags (default 16).
    pub clusters: usize,
    /// Seed of the held-out draw and the clustering.
    pub seed: u64,
}

impl Default for GuardFit {
    fn default() -> Self {
        GuardFit {
            holdout: 0.2,
            false_alarm: 0.05,
            shrinkage: 0.01,
            clusters: 16,
            seed: 0,
        }
    }
}

impl GuardFit {
    fn validate(&self) -> Result<()> {
        // The first setting out of range, by name (the CLI's --holdout, --false-alarm).
        let bad = |m: String| Err(Error::Config(format!("guard fit: {m}")));
        for (name, v) in [("holdout", self.holdout), ("false_alarm", self.false_alarm)] {
            if v.is_nan() || v <= 0.0 || v >= 1.0 {
                return bad(format!("{name} {v} is not a share in (0, 1)"));
            }
        }
        if !self.shrinkage.is_finite() || self.shrinkage <= 0.0 {
            return bad(format!(
                "shrinkage {} is not a positive number",
                self.shrinkage
            ));
        }
        if self.clusters < 2 {
            return bad(format!("clusters {} is below 2", self.clusters));
        }
        Ok(())
    }
}

/// A fitted relative-Mahalanobis guard (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingGuard {
    dim: usize,
    /// Whitener of the shared class covariance, `[dim, dim]`, lower triangular.
    w_class: Vec<f32>,
    /// Whitened class means, `[classes, dim]`.
    means: Vec<f32>,
    /// Whitener of the background covariance.
    w_background: Vec<f32>,
    /// Whitened background mean.
    mean_background: Vec<f32>,
    /// Sorted quantiles (0, 1, …, 100 %) of the held-out training queries' scores.
    quantiles: Vec<f32>,
    threshold: f64,
    fit: GuardFit,
    embedding_model: Option<String>,
    classes: Vec<String>,
}

/// The format name in a guard file's metadata.
pub const GUARD_FORMAT: &str = "pointsman-guard";

impl EmbeddingGuard {
    /// Fits a guard on the training split's embeddings (classes: its task tags when it has at
    /// least two, else k-means clusters) and calibrates its threshold on a held-out share.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for bad settings; [`Error::InvalidInput`] for a split too small to
    /// fit on (fewer than 20 queries), whose embeddings hardly vary, or whose covariance is
    /// singular after shrinkage.
    pub fn fit(train: &Split, fit: &GuardFit) -> Result<EmbeddingGuard> {
        let tasks: Vec<Option<String>> = train.tasks().to_vec();
        EmbeddingGuard::fit_rows(
            train.embeddings(),
            train.dim(),
            Some(&tasks),
            train.embedding_model(),
            fit,
        )
    }

    /// Fits a guard on `rows` (`n × dim`, row-major) with optional per-row class labels.
    ///
    /// # Errors
    ///
    /// As [`EmbeddingGuard::fit`].
    pub fn fit_rows(
        rows: &[f32],
        dim: usize,
        labels: Option<&[Option<String>]>,
        embedding_model: Option<&str>,
        fit: &GuardFit,
    ) -> Result<EmbeddingGuard> {
        fit.validate()?;
        if dim == 0 || !rows.len().is_multiple_of(dim) {
            return Err(Error::Shape(format!(
                "{} values do not make rows of {dim}",
                rows.len()
            )));
        }
        let n = rows.len() / dim;
        if n < 20 {
            return Err(Error::InvalidInput(format!(
                "a guard needs at least 20 training queries, got {n}"
            )));
        }
        let unit: Vec<f32> = rows
            .chunks_exact(dim)
            .flat_map(|r| {
                let inv = crate::features::inv_norm(r);
                r.iter().map(move |v| v * inv)
            })
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        SplitMix64::new(fit.seed).shuffle(&mut order);
        let held = ((n as f64 * fit.holdout).round() as usize).clamp(1, n - 10);
        // A quantile at 1 − false_alarm needs about 1/false_alarm held-out scores to stand on
        // (a holdout of 0.001 calibrated on no query and still claimed its rate).
        let need = ((1.0 / fit.false_alarm).ceil() as usize).max(MIN_CALIBRATION);
        if held < need {
            return Err(Error::InvalidInput(format!(
                "holdout {} of {n} training queries leaves {held} to calibrate on: a \
                 false-alarm rate of {} needs at least {need} (raise the holdout or the rate)",
                fit.holdout, fit.false_alarm
            )));
        }
        let (held_out, fitted) = order.split_at(held);
        let fit_rows: Vec<f32> = fitted
            .iter()
            .flat_map(|&i| unit[i * dim..(i + 1) * dim].iter().copied())
            .collect();
        let nf = fitted.len();
        // Class labels: task tags when there are two or more, else clusters.
        let mut names: BTreeMap<String, u32> = BTreeMap::new();
        if let Some(labels) = labels.filter(|l| l.len() == n) {
            for l in fitted.iter().filter_map(|&i| labels[i].as_ref()) {
                names.entry(l.clone()).or_insert(0);
            }
            for (i, v) in names.values_mut().enumerate() {
                *v = i as u32;
            }
        }
        let (class_of, classes): (Vec<u32>, Vec<String>) = if names.len() >= 2 {
            let labels = labels.expect("names come from labels");
            let none = names.len() as u32;
            let class_of: Vec<u32> = fitted
                .iter()
                .map(|&i| labels[i].as_ref().map_or(none, |l| names[l]))
                .collect();
            let mut classes = vec![String::new(); names.len()];
            for (name, &c) in &names {
                classes[c as usize] = name.clone();
            }
            if class_of.contains(&none) {
                classes.push("(no task)".into());
            }
            (class_of, classes)
        } else {
            let k = fit.clusters.min(nf / 2).max(2);
            let centroids = spherical_kmeans(&fit_rows, dim, k, 20, fit.seed);
            let mut sims = vec![0.0f32; k];
            let class_of = fit_rows
                .chunks_exact(dim)
                .map(|r| nearest(&centroids, r, &mut sims) as u32)
                .collect();
            (class_of, (0..k).map(|c| format!("cluster {c}")).collect())
        };
        let c = classes.len();
        // Means.
        let mut means = vec![0.0f64; c * dim];
        let mut counts = vec![0usize; c];
        let mut mean0 = vec![0.0f64; dim];
        for (r, &k) in fit_rows.chunks_exact(dim).zip(&class_of) {
            counts[k as usize] += 1;
            for j in 0..dim {
                means[k as usize * dim + j] += f64::from(r[j]);
                mean0[j] += f64::from(r[j]);
            }
        }
        for k in 0..c {
            let cnt = counts[k].max(1) as f64;
            means[k * dim..(k + 1) * dim]
                .iter_mut()
                .for_each(|v| *v /= cnt);
        }
        mean0.iter_mut().for_each(|v| *v /= nf as f64);
        // Covariances (lower triangles), in parallel over chunks of rows.
        let cov = |centre: &(dyn Fn(usize) -> Vec<f64> + Sync)| -> Vec<f64> {
            let parts: Vec<Vec<f64>> = (0..nf)
                .collect::<Vec<_>>()
                .par_chunks(256)
                .map(|chunk| {
                    let mut acc = vec![0.0f64; dim * dim];
                    let mut d = vec![0.0f64; dim];
                    for &i in chunk {
                        let r = &fit_rows[i * dim..(i + 1) * dim];
                        let mu = centre(i);
                        let mu = &mu[..];
                        for j in 0..dim {
                            d[j] = f64::from(r[j]) - mu[j];
                        }
                        for a in 0..dim {
                            let da = d[a];
                            let row = &mut acc[a * dim..a * dim + a + 1];
                            for (x, &db) in row.iter_mut().zip(&d[..=a]) {
                                *x += da * db;
                            }
                        }
                    }
                    acc
                })
                .collect();
            let mut sum = vec![0.0f64; dim * dim];
            for p in parts {
                for (s, v) in sum.iter_mut().zip(p) {
                    *s += v;
                }
            }
            for a in 0..dim {
                for b in 0..=a {
                    let v = sum[a * dim + b] / nf as f64;
                    sum[a * dim + b] = v;
                    sum[b * dim + a] = v;
                }
            }
            let trace: f64 = (0..dim).map(|a| sum[a * dim + a]).sum();
            let ridge = fit.shrinkage * trace / dim as f64;
            for a in 0..dim {
                sum[a * dim + a] += ridge.max(1e-12);
            }
            sum
        };
        let class_cov = cov(&|i| {
            let k = class_of[i] as usize;
            means[k * dim..(k + 1) * dim].to_vec()
        });
        let background_cov = cov(&|_| mean0.clone());
        // Rows that (nearly) do not vary leave only the ridge's floor: the whitened scores are
        // rounding noise, and a guard made of them let every query through.
        let mean_sq = |centre: &[f64]| {
            fit_rows
                .chunks_exact(dim)
                .map(|r| {
                    r.iter()
                        .zip(centre)
                        .map(|(&x, &m)| (f64::from(x) - m).powi(2))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / nf as f64
        };
        let spread = mean_sq(&mean0);
        // (NaN spreads fail the comparison: refused too.)
        let varied = spread > 1e-9 * mean_sq(&vec![0.0; dim]);
        if !varied {
            return Err(Error::InvalidInput(format!(
                "the guard's {nf} fitting queries hardly differ (their embeddings' total \
                 variance is {spread:.3e}): no threshold could tell a query out of distribution; \
                 fit the guard on varied queries"
            )));
        }
        let w_class = cholesky_whitener(&class_cov, dim)?;
        let w_background = cholesky_whitener(&background_cov, dim)?;
        let whiten64 = |w: &[f64], x: &[f64]| -> Vec<f32> {
            (0..dim)
                .map(|i| {
                    w[i * dim..i * dim + i + 1]
                        .iter()
                        .zip(&x[..=i])
                        .map(|(a, b)| a * b)
                        .sum::<f64>() as f32
                })
                .collect()
        };
        let means_w: Vec<f32> = means
            .chunks_exact(dim)
            .flat_map(|m| whiten64(&w_class, m))
            .collect();
        let mean_background = whiten64(&w_background, &mean0);
        let mut guard = EmbeddingGuard {
            dim,
            w_class: w_class.iter().map(|&v| v as f32).collect(),
            means: means_w,
            w_background: w_background.iter().map(|&v| v as f32).collect(),
            mean_background,
            quantiles: Vec::new(),
            threshold: 0.0,
            fit: fit.clone(),
            embedding_model: embedding_model.map(str::to_string),
            classes,
        };
        let mut held_scores: Vec<f64> = held_out
            .par_iter()
            .map(|&i| guard.score_unit(&unit[i * dim..(i + 1) * dim]))
            .collect();
        held_scores.sort_by(f64::total_cmp);
        guard.quantiles = (0..=100)
            .map(|p| quantile(&held_scores, p as f64 / 100.0) as f32)
            .collect();
        guard.threshold = quantile(&held_scores, 1.0 - fit.false_alarm);
        Ok(guard)
    }

    /// The embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The threshold calibrated at fit (the `1 − false_alarm` quantile of held-out scores).
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The class names (task tags, or `cluster <i>`).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The fit settings.
    pub fn fit_settings(&self) -> &GuardFit {
        &self.fit
    }

    /// The share of held-out training queries whose score is below `score` (0 to 1), read off
    /// the saved quantiles.
    pub fn percentile(&self, score: f64) -> f64 {
        let below = self
            .quantiles
            .iter()
            .filter(|&&q| f64::from(q) < score)
            .count();
        (below as f64 / self.quantiles.len() as f64).min(1.0)
    }

    /// The guard's score of one embedding (any length; it is normalised here).
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] for an embedding of another dimension.
    pub fn score(&self, embedding: &[f32]) -> Result<f64> {
        if embedding.len() != self.dim {
            return Err(Error::DimensionMismatch {
                expected: self.dim,
                got: embedding.len(),
            });
        }
        let inv = crate::features::inv_norm(embedding);
        if inv == 1.0 {
            return Ok(self.score_unit(embedding));
        }
        let unit: Vec<f32> = embedding.iter().map(|v| v * inv).collect();
        Ok(self.score_unit(&unit))
    }

    /// The score of a unit-length embedding.
    pub(crate) fn score_unit(&self, x: &[f32]) -> f64 {
        let d = self.dim;
        let mut z = [0.0f32; 1024];
        let mut heap;
        let z: &mut [f32] = if d <= z.len() {
            &mut z[..d]
        } else {
            heap = vec![0.0f32; d];
            &mut heap
        };
        whiten(&self.w_class, x, z);
        let mut best = f64::INFINITY;
        for m in self.means.chunks_exact(d) {
            let dist: f64 = z
                .iter()
                .zip(m)
                .map(|(a, b)| f64::from(a - b) * f64::from(a - b))
                .sum();
            best = best.min(dist);
        }
        whiten(&self.w_background, x, z);
        let background: f64 = z
            .iter()
            .zip(&self.mean_background)
            .map(|(a, b)| f64::from(a - b) * f64::from(a - b))
            .sum();
        best - background
    }

    /// The guard as a `.safetensors` file's bytes (format `pointsman-guard`, version 1).
    ///
    /// # Errors
    ///
    /// [`Error::Format`] if the serialiser refuses the data.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let d = self.dim;
        let c = self.means.len() / d;
        let f32_bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let tensors: Vec<(&str, Vec<usize>, Vec<u8>)> = vec![
            (
                "guard.background_mean",
                vec![d],
                f32_bytes(&self.mean_background),
            ),
            (
                "guard.background_whitener",
                vec![d, d],
                f32_bytes(&self.w_background),
            ),
            ("guard.class_means", vec![c, d], f32_bytes(&self.means)),
            ("guard.class_whitener", vec![d, d], f32_bytes(&self.w_class)),
            ("guard.quantiles", vec![101], f32_bytes(&self.quantiles)),
        ];
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .map(|(name, shape, bytes)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (name.to_string(), v))
                    .map_err(|e| Error::format("guard", e.to_string()))
            })
            .collect::<Result<_>>()?;
        let mut meta = std::collections::HashMap::new();
        meta.insert("format".to_string(), GUARD_FORMAT.to_string());
        meta.insert("format_version".to_string(), "1".to_string());
        meta.insert("dim".to_string(), d.to_string());
        meta.insert("threshold".to_string(), format!("{:?}", self.threshold));
        meta.insert(
            "fit".to_string(),
            serde_json::to_string(&self.fit).expect("fit settings serialise"),
        );
        meta.insert(
            "classes".to_string(),
            serde_json::to_string(&self.classes).expect("names serialise"),
        );
        if let Some(m) = &self.embedding_model {
            meta.insert("embedding_model".to_string(), m.clone());
        }
        safetensors::serialize(views, Some(meta)).map_err(|e| Error::format("guard", e.to_string()))
    }

    /// A guard from [`EmbeddingGuard::to_bytes`]; `what` names the source in errors.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] naming what is wrong; [`Error::UnsupportedVersion`] for a newer file.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<EmbeddingGuard> {
        let bad = |m: String| Error::format(what, m);
        let (st, header) = crate::saved::open_safetensors(bytes, what)?;
        let meta = header
            .metadata()
            .clone()
            .ok_or_else(|| bad("no metadata: not a guard file".into()))?;
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| bad(format!("metadata has no {k:?}")))
        };
        if get("format")? != GUARD_FORMAT {
            return Err(bad(format!("format is not {GUARD_FORMAT:?}")));
        }
        if get("format_version")? != "1" {
            return Err(Error::UnsupportedVersion {
                path: what.into(),
                found: get("format_version")?.clone(),
                supported: "1".into(),
            });
        }
        let dim: usize = get("dim")?
            .parse()
            .ok()
            .filter(|&d| (1..=65_536).contains(&d))
            .ok_or_else(|| bad("bad dim".into()))?;
        let threshold: f64 = get("threshold")?
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite())
            .ok_or_else(|| bad("bad threshold".into()))?;
        let fit: GuardFit =
            serde_json::from_str(get("fit")?).map_err(|e| bad(format!("bad fit: {e}")))?;
        let classes: Vec<String> =
            serde_json::from_str(get("classes")?).map_err(|e| bad(format!("bad classes: {e}")))?;
        let c = classes.len();
        let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = st
                .tensor(name)
                .map_err(|_| bad(format!("no tensor {name}")))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
                return Err(bad(format!(
                    "tensor {name}: expected F32 {shape:?}, got {:?} {:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            let v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(bad(format!("tensor {name} holds a non-finite value")));
            }
            Ok(v)
        };
        if c == 0 {
            return Err(bad("no classes".into()));
        }
        Ok(EmbeddingGuard {
            dim,
            w_class: tensor("guard.class_whitener", &[dim, dim])?,
            means: tensor("guard.class_means", &[c, dim])?,
            w_background: tensor("guard.background_whitener", &[dim, dim])?,
            mean_background: tensor("guard.background_mean", &[dim])?,
            quantiles: tensor("guard.quantiles", &[101])?,
            threshold,
            fit,
            embedding_model: meta.get("embedding_model").cloned(),
            classes,
        })
    }

    /// Saves the guard atomically.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::files::write_atomic(path, &self.to_bytes()?)
    }

    /// Loads a guard saved by [`EmbeddingGuard::save`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path; the errors of [`EmbeddingGuard::from_bytes`].
    pub fn load(path: &Path) -> Result<EmbeddingGuard> {
        let bytes = crate::files::read_regular(path)?;
        EmbeddingGuard::from_bytes(&bytes, &path.display().to_string())
    }

    /// The embedding model the guard was fitted on, when known.
    pub fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }
}

/// `z = W x` for a lower-triangular `W` (row `i` has `i + 1` entries).
fn whiten(w: &[f32], x: &[f32], z: &mut [f32]) {
    let d = x.len();
    for (i, zi) in z.iter_mut().enumerate() {
        *zi = simd::dot(&w[i * d..i * d + i + 1], &x[..=i]);
    }
}

/// The `p` quantile of sorted values (linear interpolation).
pub(crate) fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The threshold on a router's OOD signal that flags `false_alarm` of the held-out queries
/// `heldout` (training queries the router was not fitted on): the `1 − false_alarm` quantile of
/// their signals.
///
/// # Errors
///
/// [`Error::Unsupported`] when the router reports no OOD signal; the router's errors.
pub fn calibrate_router_signal(
    router: &dyn crate::router::Router,
    heldout: &crate::features::FeatureBatch<'_>,
    false_alarm: f64,
) -> Result<f64> {
    let est = router.estimate_batch(heldout)?;
    let mut s: Vec<f64> = est
        .signals
        .iter()
        .map(|s| s.ood.map(f64::from))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "the {} router reports no out-of-distribution signal: fit an embedding guard",
                router.kind()
            ))
        })?;
    s.sort_by(f64::total_cmp);
    Ok(quantile(&s, 1.0 - false_alarm))
}

/// The area under the ROC curve of scores: the chance that a random positive scores above a
/// random negative (ties count half).
pub fn auroc(positives: &[f64], negatives: &[f64]) -> f64 {
    let mut all: Vec<(f64, bool)> = positives
        .iter()
        .map(|&s| (s, true))
        .chain(negatives.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann–Whitney U with mid-ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let mid = (i + j + 1) as f64 / 2.0;
        rank_sum += mid * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (p, n) = (positives.len() as f64, negatives.len() as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tight classes on the first axes; an outlier direction far from both.
    fn rows(seed: u64) -> (Vec<f32>, Vec<Option<String>>) {
        let mut rng = SplitMix64::new(seed);
        let dim = 8;
        let mut data = Vec::new();
        let mut labels = Vec::new();
        for i in 0..200 {
            let mut r = vec![0.0f32; dim];
            r[i % 2] = 1.0;
            for v in r.iter_mut() {
                *v += 0.05 * rng.normal() as f32;
            }
            data.extend(r);
            labels.push(Some(format!("t{}", i % 2)));
        }
        (data, labels)
    }

    #[test]
    fn flags_an_unseen_direction_and_round_trips() {
        let (data, labels) = rows(1);
        let g =
            EmbeddingGuard::fit_rows(&data, 8, Some(&labels), None, &GuardFit::default()).unwrap();
        assert_eq!(g.classes(), ["t0", "t1"]);
        let mut inside = vec![0.0f32; 8];
        inside[0] = 1.0;
        let mut outside = vec![0.0f32; 8];
        outside[5] = 1.0;
        let (si, so) = (g.score(&inside).unwrap(), g.score(&outside).unwrap());
        assert!(
            si < g.threshold() && so > g.threshold(),
            "{si} {so} {}",
            g.threshold()
        );
        assert!(g.percentile(so) > 0.99 && g.percentile(si) < 0.9);
        let back = EmbeddingGuard::from_bytes(&g.to_bytes().unwrap(), "g").unwrap();
        assert_eq!(back, g);
        assert!(g.score(&[1.0; 3]).is_err());
        // Rows that do not vary cannot make a guard (it had passed every query).
        let same: Vec<f32> = data[..8].repeat(200);
        let e = EmbeddingGuard::fit_rows(&same, 8, None, None, &GuardFit::default()).unwrap_err();
        assert!(e.to_string().contains("hardly differ"), "{e}");
        // Too few held-out queries for the rate asked.
        for (holdout, false_alarm) in [(0.001, 0.05), (0.2, 0.001)] {
            let fit = GuardFit {
                holdout,
                false_alarm,
                ..GuardFit::default()
            };
            let e = EmbeddingGuard::fit_rows(&data, 8, None, None, &fit).unwrap_err();
            assert!(e.to_string().contains("to calibrate on"), "{e}");
        }
        // Without labels, clusters.
        let g2 = EmbeddingGuard::fit_rows(&data, 8, None, None, &GuardFit::default()).unwrap();
        assert!(g2.classes()[0].starts_with("cluster"));
        assert!(g2.score(&outside).unwrap() > g2.threshold());
        let e = EmbeddingGuard::from_bytes(b"nope", "g.safetensors").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Format);
    }

    #[test]
    fn auroc_counts_ties_half() {
        assert_eq!(auroc(&[2.0, 3.0], &[1.0, 0.0]), 1.0);
        assert_eq!(auroc(&[1.0], &[1.0]), 0.5);
        assert_eq!(auroc(&[0.0], &[1.0]), 0.0);
    }
}
