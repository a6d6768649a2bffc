//! Per-model ridge regression on the query features, with an upper confidence bound (LinUCB,
//! Li et al. 2010, "A contextual-bandit approach to personalized news article recommendation")
//! or a posterior sample (linear Thompson sampling, Agrawal & Goyal 2013, "Thompson sampling
//! for contextual bandits with linear payoffs") as exploration.
//!
//! # Model
//!
//! Features `φ(x) = [z(x), 1]`: the unit embedding itself, or its projection on fewer dimensions
//! (a fixed random Gaussian matrix, or the top principal components of unlabelled embeddings),
//! re-normalised, plus a bias. Per model `m`, with the outcomes `y_i` of its observations:
//!
//! ```text
//! A_m = λ·I + Σ_i φ_i φ_iᵀ          b_m = Σ_i (y_i − μ0)·φ_i          θ_m = A_m⁻¹ b_m
//! mean_m(x) = μ0 + θ_mᵀ φ(x)          sd_m(x) = sqrt(φ(x)ᵀ A_m⁻¹ φ(x))
//! LinUCB:    q̂_m(x) = mean_m(x) + α·sd_m(x)
//! Thompson:  q̂_m(x) = mean_m(x) + v·sd_m(x)·ξ_m,   ξ_m ~ N(0, 1)
//! ```
//!
//! The ridge shrinks toward the constant `μ0` (`prior_mean`), which is optimistic at its
//! default 1: an untried model looks good until it has been tried. `A_m⁻¹` is kept by
//! Sherman–Morrison rank-one updates (`O(p²)` per observation, no inverse per query), `θ_m` is
//! cached, and routing reads a packed `bfloat16` copy of the upper triangle of `λ·A_m⁻¹`
//! (whose entries are at most 1 in magnitude, as `A_m ⪰ λI`): one pass over about `p²/2`
//! values per model per query ([`crate::simd::quadratic_form`]; the width moves by less than
//! 0.1 %), 2 bytes each, so the nine models of a 385-feature state read 1.4 MB per query. For
//! one query the Thompson score of the disjoint model is exactly a draw of `θ̃_mᵀφ(x)` with
//! `θ̃_m ~ N(θ_m, v²A_m⁻¹)`; the draws `ξ_m` are a function of the seed, the observation count
//! and the query's bits, so routing stays a pure read.
//!
//! Forgetting: a sliding window (each model's last `W` observations; older ones are removed by a
//! Sherman–Morrison downdate) and the drift detector. Exponential discounting is refused: it
//! would decay the ridge prior too, and restoring it needs an `O(p³)` inverse per observation.

use std::collections::VecDeque;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use super::linalg;
use super::{sealed, BanditRouter, Context, Forgetting, Learned};
use crate::error::{Error, Result};
use crate::kind::RouterKind;
use crate::rng::{hash_f32s_4, mix64, SplitMix64};
use crate::router::Signals;
use crate::saved::{SavedRouter, Tensor};
use crate::simd;

/// The observations of one model in a batch, in units of its feature count `p`, from which
/// `Learned::observe_keys` re-inverts `A_m` once rather than updating it per observation (an
/// inverse costs about `p³`, a Sherman–Morrison update with its refresh about `5 p²`).
const BATCH_REINVERT: f64 = 0.25;

/// The most memory a linear router's matrices may take when it is made (per model `A` and its
/// inverse in `f64` and the inverse's packed upper triangle in `bfloat16`: about 17 bytes per
/// squared feature): 4 GiB, 15 models of 4,096 features; above, a projection is the way (the
/// process would otherwise abort when the allocation fails).
pub const MAX_LINEAR_STATE_BYTES: u64 = 4 << 30;

/// A fixed projection of the embeddings on fewer dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Projection {
    /// The embedding itself.
    None,
    /// A seeded Gaussian random matrix (`dim` rows, entries N(0, 1/dim)).
    Random {
        /// Output dimension.
        dim: usize,
        /// Seed of the matrix.
        seed: u64,
    },
    /// The top `dim` principal components of unlabelled embeddings
    /// ([`BanditRouter::fit_unlabelled`]), after centring.
    Pca {
        /// Output dimension.
        dim: usize,
    },
}

/// Hyper-parameters of the linear routers ([`LinUcbRouter`], [`LinTsRouter`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearConfig {
    /// Ridge `λ`: the prior's weight, in units of one observation.
    pub ridge: f64,
    /// LinUCB's `α`, or Thompson sampling's scale `v` of the posterior spread.
    pub exploration: f64,
    /// The constant `μ0` the ridge shrinks toward.
    pub prior_mean: f64,
    /// The feature map.
    pub projection: Projection,
    /// Forgetting (the window and the detector; no discounting).
    pub forgetting: Forgetting,
    /// Seed of the Thompson draws.
    pub seed: u64,
    /// Route without exploration.
    pub greedy: bool,
}

impl Default for LinearConfig {
    /// LinUCB's defaults on the raw 384-dimensional MiniLM embeddings: `λ = 10`, `α = 0.3`,
    /// `μ0 = 1` (chosen by replays on llmrouter_dc stream seeds 100–107, see docs/results.md).
    fn default() -> Self {
        LinearConfig {
            ridge: 10.0,
            exploration: 0.3,
            prior_mean: 1.0,
            projection: Projection::None,
            forgetting: Forgetting::default(),
            seed: 0,
            greedy: false,
        }
    }
}

impl LinearConfig {
    /// Thompson sampling's defaults: as [`LinearConfig::default`] with the posterior scale
    /// `v = 0.1` (a draw's spread is wider than LinUCB's one-sided bonus needs).
    pub fn thompson() -> Self {
        LinearConfig {
            exploration: 0.1,
            ..LinearConfig::default()
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        if !(self.ridge > 0.0 && self.ridge.is_finite()) {
            return Err(Error::Config(format!(
                "linear ridge {} is not a positive number",
                self.ridge
            )));
        }
        if !(self.exploration >= 0.0 && self.exploration.is_finite()) {
            return Err(Error::Config(format!(
                "linear exploration {} is not a non-negative number",
                self.exploration
            )));
        }
        if !self.prior_mean.is_finite() {
            return Err(Error::Config(format!(
                "linear prior_mean {} is not finite",
                self.prior_mean
            )));
        }
        match self.projection {
            Projection::Random { dim: 0, .. } | Projection::Pca { dim: 0 } => {
                return Err(Error::Config(
                    "linear projection dim must be at least 1".into(),
                ))
            }
            _ => {}
        }
        self.forgetting.validate()?;
        if self.forgetting.discount.is_some() {
            return Err(Error::Config(
                "linear routers forget with a window, not a discount (discounting would decay \
                 the ridge prior and need a matrix inverse per observation)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// How a linear router explores.
pub trait Exploration:
    sealed::Sealed + Clone + Copy + std::fmt::Debug + Default + Send + Sync + 'static
{
    /// The router kind.
    const KIND: &'static str;
    /// Whether the exploration term is a random draw.
    const SAMPLES: bool;
}

/// Upper confidence bound: LinUCB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ucb;

/// Posterior sampling: linear Thompson sampling.
#[derive(Debug, Clone, Copy, Default)]
pub struct Thompson;

impl sealed::Sealed for Ucb {}
impl sealed::Sealed for Thompson {}

impl Exploration for Ucb {
    const KIND: &'static str = RouterKind::Linucb.name();
    const SAMPLES: bool = false;
}

impl Exploration for Thompson {
    const KIND: &'static str = RouterKind::Thompson.name();
    const SAMPLES: bool = true;
}

/// LinUCB: per-model ridge regression with an upper confidence bound. See the
/// [module documentation](super).
///
/// # Example
///
/// ```
/// use pointsman::routers::bandit::{LinUcbRouter, LinearConfig};
/// use pointsman::{Feedback, Learner, ModelCard, ModelPool, Objective, QueryFeatures, Router};
/// let pool = ModelPool::new(vec![ModelCard::new("a", 0.1, 0.1), ModelCard::new("b", 1.0, 1.0)])?;
/// let router = LinUcbRouter::new(pool, 2, None, LinearConfig::default())?;
/// let q = QueryFeatures::new(vec![1.0, 0.0])?;
/// router.observe(&Feedback { features: &q, model: 0, quality: 0.0, cost: 1e-5 })?;
/// // Model a did badly on this query; b, untried, keeps its optimistic prior.
/// assert_eq!(router.route(&q, &Objective::new(0.0))?.model_id, "b");
/// # Ok::<(), pointsman::Error>(())
/// ```
pub type LinUcbRouter = BanditRouter<Linear<Ucb>>;

/// Linear Thompson sampling: per-model ridge regression, routing on a posterior draw. See the
/// [module documentation](super).
pub type LinTsRouter = BanditRouter<Linear<Thompson>>;

/// The learned state of the linear routers.
#[derive(Clone)]
pub struct Linear<E> {
    models: usize,
    dim: usize,
    /// Feature dimension, bias included.
    p: usize,
    /// `[k, dim]` projection and the `[dim]` centre, when projecting.
    projection: Option<(Vec<f32>, Vec<f32>)>,
    /// A PCA projection is configured but not fitted yet.
    pending_pca: bool,
    a: Vec<f64>,
    a_inv: Vec<f64>,
    b: Vec<f64>,
    theta: Vec<f64>,
    /// `bfloat16` bits of the packed `λ·A_m⁻¹`, per model.
    packed: simd::PackedForms,
    /// `λ`, the scale of `packed`.
    ridge: f64,
    window: Vec<VecDeque<(Vec<f32>, f64)>>,
    /// Models whose `A⁻¹` must be recomputed after a merge.
    dirty: Vec<bool>,
    /// Per model the prior part of `b` (`λ·θ_prior` for a model added with a card prior by
    /// [`Learned::add_arm`], zeros otherwise, and empty when every model's is zero): what
    /// [`Learned::absorb`] leaves out of what another router learned, as it leaves out `λ·I`.
    prior_b: Vec<f64>,
    _exploration: PhantomData<E>,
}

impl<E: Exploration> std::fmt::Debug for Linear<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linear")
            .field("kind", &E::KIND)
            .field("models", &self.models)
            .field("features", &self.p)
            .finish()
    }
}

impl<E: Exploration> Linear<E> {
    fn reset_model(&mut self, config: &LinearConfig, m: usize) {
        let p = self.p;
        let (a, a_inv) = (
            &mut self.a[m * p * p..(m + 1) * p * p],
            &mut self.a_inv[m * p * p..(m + 1) * p * p],
        );
        a.fill(0.0);
        a_inv.fill(0.0);
        for i in 0..p {
            a[i * p + i] = config.ridge;
            a_inv[i * p + i] = 1.0 / config.ridge;
        }
        self.b[m * p..(m + 1) * p].fill(0.0);
        if !self.prior_b.is_empty() {
            self.prior_b[m * p..(m + 1) * p].fill(0.0);
        }
        self.window[m].clear();
        self.refresh(m);
    }

    /// The state's shape for `models` models with every statistic zero, no projection matrix
    /// and nothing derived yet: [`Learned::cold`] draws the projection and sets each model's
    /// prior on it, and a load fills in the saved ones, so neither pays for the other's work.
    /// The number of linear features `p` (projected dimension + 1) of `config` on
    /// `dim`-dimensional embeddings, and whether a PCA projection is still to be fitted.
    fn features_dim(config: &LinearConfig, dim: usize) -> Result<(usize, bool)> {
        let (k, pending_pca) = match config.projection {
            Projection::None => (dim, false),
            Projection::Random { dim: k, .. } => (k, false),
            Projection::Pca { dim: k } => (k, true),
        };
        if k > dim {
            return Err(Error::Config(format!(
                "linear projection to {k} dimensions of {dim}-dimensional embeddings"
            )));
        }
        Ok((k + 1, pending_pca))
    }

    fn unprimed(config: &LinearConfig, models: usize, dim: usize) -> Result<Self> {
        let (p, pending_pca) = Self::features_dim(config, dim)?;
        Ok(Linear {
            models,
            dim,
            p,
            projection: None,
            pending_pca,
            a: vec![0.0; models * p * p],
            a_inv: vec![0.0; models * p * p],
            b: vec![0.0; models * p],
            theta: vec![0.0; models * p],
            packed: simd::PackedForms::new(models, p),
            ridge: config.ridge,
            window: vec![VecDeque::new(); models],
            dirty: vec![false; models],
            prior_b: Vec::new(),
            _exploration: PhantomData,
        })
    }

    /// Recomputes the cached `θ_m` and the packed inverse of model `m`.
    fn refresh(&mut self, m: usize) {
        let p = self.p;
        let a_inv = &self.a_inv[m * p * p..(m + 1) * p * p];
        linalg::mat_vec(
            a_inv,
            &self.b[m * p..(m + 1) * p],
            &mut self.theta[m * p..(m + 1) * p],
        );
        simd::pack_quadratic_form(a_inv, p, self.ridge, self.packed.form_mut(m));
    }

    /// `φ(x)` for a unit-length embedding.
    fn features(&self, x: &[f32], out: &mut Vec<f32>) -> Result<()> {
        if self.pending_pca {
            return Err(Error::Config(format!(
                "{}: the pca projection is not fitted (call fit_unlabelled with unlabelled \
                 embeddings first)",
                E::KIND
            )));
        }
        out.clear();
        match &self.projection {
            None => out.extend_from_slice(x),
            Some((matrix, centre)) => {
                let centred: Vec<f32> = x.iter().zip(centre).map(|(a, c)| a - c).collect();
                let k = self.p - 1;
                out.resize(k, 0.0);
                simd::dot_rows(matrix, &centred, out);
                let norm: f64 = out.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
                if norm > 0.0 {
                    let inv = (1.0 / norm.sqrt()) as f32;
                    for v in out.iter_mut() {
                        *v *= inv;
                    }
                }
            }
        }
        out.push(1.0);
        Ok(())
    }

    /// Adds (`sign = 1`) or removes (`-1`) one observation of model `m` without refreshing.
    fn update(&mut self, m: usize, phi: &[f32], target: f64, sign: f64) -> Result<()> {
        let p = self.p;
        let phi: Vec<f64> = phi.iter().map(|&v| f64::from(v)).collect();
        let a = &mut self.a[m * p * p..(m + 1) * p * p];
        linalg::rank_one(a, &phi, sign);
        let mut u = vec![0.0; p];
        let a_inv = &mut self.a_inv[m * p * p..(m + 1) * p * p];
        if !linalg::sherman_morrison(a_inv, &phi, sign, &mut u) {
            // Rounding made the downdate unsafe: recompute the inverse exactly.
            let inv = linalg::spd_inverse(&self.a[m * p * p..(m + 1) * p * p], p)?;
            self.a_inv[m * p * p..(m + 1) * p * p].copy_from_slice(&inv);
        }
        for (b, v) in self.b[m * p..(m + 1) * p].iter_mut().zip(&phi) {
            *b += sign * target * v;
        }
        Ok(())
    }

    /// Adds an observation to model `m`'s window (evicting the oldest beyond `window`) and
    /// statistics, then refreshes.
    fn push(&mut self, config: &LinearConfig, m: usize, phi: Vec<f32>, target: f64) -> Result<()> {
        self.update(m, &phi, target, 1.0)?;
        if let Some(w) = config.forgetting.window {
            self.window[m].push_back((phi, target));
            while self.window[m].len() > w {
                if let Some((old, y)) = self.window[m].pop_front() {
                    self.update(m, &old, y, -1.0)?;
                }
            }
        }
        self.refresh(m);
        Ok(())
    }

    fn draws(config: &LinearConfig, x: &[f32], ctx: &Context) -> SplitMix64 {
        SplitMix64::new(mix64(
            config.seed ^ mix64(ctx.observations ^ 0x7A3C_91E5) ^ hash_f32s_4(0, x),
        ))
    }
}

impl<E: Exploration> sealed::Sealed for Linear<E> {}

impl<E: Exploration> Learned for Linear<E> {
    type Config = LinearConfig;
    const KIND: &'static str = E::KIND;

    fn forgetting(config: &LinearConfig) -> &Forgetting {
        &config.forgetting
    }

    fn is_greedy(config: &LinearConfig) -> bool {
        config.greedy
    }

    fn samples() -> bool {
        E::SAMPLES
    }

    fn with_greedy(config: &LinearConfig, greedy: bool) -> LinearConfig {
        LinearConfig {
            greedy,
            ..config.clone()
        }
    }

    fn validate(config: &LinearConfig) -> Result<()> {
        config.validate()
    }

    fn cold(config: &LinearConfig, models: usize, dim: usize) -> Result<Self> {
        let (p, _) = Self::features_dim(config, dim)?;
        // A and its inverse (f64) and the packed form per model: refused before allocating
        // rather than aborting the process when the allocation fails.
        let per_model = (p as u128) * (p as u128) * 16 + simd::quadratic_form_len(p) as u128 * 2;
        let bytes = per_model * models as u128;
        if bytes > MAX_LINEAR_STATE_BYTES as u128 {
            return Err(Error::Config(format!(
                "{} over {models} models with {p} features per query needs {:.1} GiB for its \
                 matrices, above the limit of {} GiB: project the embedding first \
                 (projection {{\"kind\": \"random\", \"dim\": 64, \"seed\": 0}}, or \"pca\")",
                E::KIND,
                bytes as f64 / f64::from(1u32 << 30),
                MAX_LINEAR_STATE_BYTES >> 30
            )));
        }
        let mut state = Self::unprimed(config, models, dim)?;
        if let Projection::Random { dim: k, seed } = config.projection {
            let mut rng = SplitMix64::new(seed);
            let scale = 1.0 / (k as f64).sqrt();
            let matrix = (0..k * dim)
                .map(|_| (rng.normal() * scale) as f32)
                .collect();
            state.projection = Some((matrix, vec![0.0; dim]));
        }
        for m in 0..models {
            state.reset_model(config, m);
        }
        Ok(state)
    }

    fn fit_unlabelled(&mut self, config: &LinearConfig, rows: &[f32], dim: usize) -> Result<()> {
        let Projection::Pca { dim: k } = config.projection else {
            return Err(Error::Unsupported(format!(
                "{} without a pca projection has nothing to fit",
                E::KIND
            )));
        };
        if !self.pending_pca {
            return Err(Error::InvalidInput(format!(
                "{}: the pca projection is already fitted",
                E::KIND
            )));
        }
        let n = rows.len() / dim;
        if n < 2 {
            return Err(Error::InvalidInput(format!(
                "{}: a pca projection needs at least 2 embeddings, got {n}",
                E::KIND
            )));
        }
        let mut mean = vec![0.0f64; dim];
        for x in rows.chunks_exact(dim) {
            for (a, &v) in mean.iter_mut().zip(x) {
                *a += f64::from(v);
            }
        }
        for a in &mut mean {
            *a /= n as f64;
        }
        let mut cov = vec![0.0f64; dim * dim];
        let mut c = vec![0.0f64; dim];
        for x in rows.chunks_exact(dim) {
            for (ci, (&v, &mu)) in c.iter_mut().zip(x.iter().zip(&mean)) {
                *ci = f64::from(v) - mu;
            }
            linalg::rank_one(&mut cov, &c, 1.0 / n as f64);
        }
        let vectors = linalg::top_eigenvectors(&cov, dim, k, 0);
        self.projection = Some((
            vectors.iter().map(|&v| v as f32).collect(),
            mean.iter().map(|&v| v as f32).collect(),
        ));
        self.pending_pca = false;
        Ok(())
    }

    fn estimate(
        &self,
        config: &LinearConfig,
        x: &[f32],
        ctx: &Context,
        quality: &mut [f64],
        score: &mut [f64],
    ) -> Result<Signals> {
        let mut phi = Vec::with_capacity(self.p);
        self.features(x, &mut phi)?;
        let phi64: Vec<f64> = phi.iter().map(|&v| f64::from(v)).collect();
        let p = self.p;
        // Thompson: one standard normal per model, drawn from the query's own stream.
        let draws = (E::SAMPLES && ctx.explore).then(|| {
            let mut z = vec![0.0; quality.len()];
            Self::draws(config, x, ctx).normals(&mut z);
            z
        });
        let prepared = ctx.explore.then(|| simd::FormVector::new(&phi));
        let mut dots = vec![0.0; quality.len()];
        linalg::dot64_rows(&self.theta[..quality.len() * p], &phi64, &mut dots);
        for (m, ((q, s), dot)) in quality
            .iter_mut()
            .zip(score.iter_mut())
            .zip(dots)
            .enumerate()
        {
            let mean = config.prior_mean + dot;
            *q = mean;
            *s = if let Some(prepared) = &prepared {
                let var = simd::quadratic_form_prepared(self.packed.form(m), prepared).max(0.0)
                    / self.ridge;
                let scale = draws.as_ref().map_or(1.0, |z| z[m]);
                mean + config.exploration * var.sqrt() * scale
            } else {
                mean
            };
        }
        Ok(Signals::default())
    }

    fn mean(&self, config: &LinearConfig, x: &[f32], m: usize) -> Result<f64> {
        let mut phi = Vec::with_capacity(self.p);
        self.features(x, &mut phi)?;
        let phi64: Vec<f64> = phi.iter().map(|&v| f64::from(v)).collect();
        let p = self.p;
        Ok(config.prior_mean + linalg::dot64(&self.theta[m * p..(m + 1) * p], &phi64))
    }

    fn observe(&mut self, config: &LinearConfig, x: &[f32], m: usize, quality: f64) -> Result<()> {
        let mut phi = Vec::with_capacity(self.p);
        self.features(x, &mut phi)?;
        self.push(config, m, phi, quality - config.prior_mean)
    }

    fn observe_all(
        &mut self,
        config: &LinearConfig,
        rows: &[f32],
        dim: usize,
        scores: &[f64],
        models: usize,
    ) -> Result<()> {
        let n = rows.len() / dim;
        let p = self.p;
        if let Some(w) = config.forgetting.window {
            // Only the last `w` queries survive the window (every model sees every query).
            let start = if n >= w {
                for m in 0..models {
                    self.reset_model(config, m);
                }
                n - w
            } else {
                0
            };
            for r in start..n {
                let mut phi = Vec::with_capacity(p);
                self.features(&rows[r * dim..(r + 1) * dim], &mut phi)?;
                for m in 0..models {
                    self.push(
                        config,
                        m,
                        phi.clone(),
                        scores[r * models + m] - config.prior_mean,
                    )?;
                }
            }
            return Ok(());
        }
        // Every model observes every query: one Gram matrix serves all, then one inverse each.
        let mut gram = vec![0.0f64; p * p];
        let mut phi = Vec::with_capacity(p);
        for r in 0..n {
            self.features(&rows[r * dim..(r + 1) * dim], &mut phi)?;
            let phi64: Vec<f64> = phi.iter().map(|&v| f64::from(v)).collect();
            for i in 0..p {
                let xi = phi64[i];
                for (g, &xj) in gram[i * p + i..(i + 1) * p].iter_mut().zip(&phi64[i..]) {
                    *g += xi * xj;
                }
            }
            for m in 0..models {
                let y = scores[r * models + m] - config.prior_mean;
                for (b, &v) in self.b[m * p..(m + 1) * p].iter_mut().zip(&phi64) {
                    *b += y * v;
                }
            }
        }
        for i in 0..p {
            for j in 0..i {
                gram[i * p + j] = gram[j * p + i];
            }
        }
        for m in 0..models {
            let a = &mut self.a[m * p * p..(m + 1) * p * p];
            for (x, g) in a.iter_mut().zip(&gram) {
                *x += g;
            }
            let inv = linalg::spd_inverse(a, p)?;
            self.a_inv[m * p * p..(m + 1) * p * p].copy_from_slice(&inv);
            self.refresh(m);
        }
        Ok(())
    }

    fn forget(&mut self, config: &LinearConfig, m: usize) {
        self.reset_model(config, m);
    }

    fn add_arm(&mut self, config: &LinearConfig, weights: &[f64]) {
        let (m, p) = (self.models, self.p);
        // The card prior's coefficients: the weighted mean of the known models' posterior means.
        let mut prior = vec![0.0f64; p];
        for (i, &w) in weights.iter().enumerate().take(m) {
            for (t, &x) in prior.iter_mut().zip(&self.theta[i * p..(i + 1) * p]) {
                *t += w * x;
            }
        }
        self.a.resize((m + 1) * p * p, 0.0);
        self.a_inv.resize((m + 1) * p * p, 0.0);
        self.b.resize((m + 1) * p, 0.0);
        self.theta.resize((m + 1) * p, 0.0);
        let mut packed = simd::PackedForms::new(m + 1, p);
        for i in 0..m {
            packed.form_mut(i).copy_from_slice(self.packed.form(i));
        }
        self.packed = packed;
        self.window.push(VecDeque::new());
        self.dirty.push(false);
        self.models = m + 1;
        // The ridge prior `λ·I`, centred on the card prior: `b = λ·θ_prior`, so `θ = θ_prior`
        // until the model's own observations move it (a Bayesian update from that prior).
        self.prior_b.resize((m + 1) * p, 0.0);
        self.reset_model(config, m);
        for (b, t) in self.prior_b[m * p..(m + 1) * p].iter_mut().zip(&prior) {
            *b = config.ridge * t;
        }
        self.b[m * p..(m + 1) * p].copy_from_slice(&self.prior_b[m * p..(m + 1) * p]);
        self.refresh(m);
    }

    fn fixed_parts(&self) -> Result<Vec<f32>> {
        if self.pending_pca {
            return Err(Error::Unsupported(format!(
                "sharing a {} router whose pca projection is not fitted (fit it on unlabelled \
                 embeddings first, once, and start every replica from that router)",
                E::KIND
            )));
        }
        Ok(match &self.projection {
            Some((matrix, centre)) => matrix.iter().chain(centre).copied().collect(),
            None => Vec::new(),
        })
    }

    fn key_len(&self) -> usize {
        self.p
    }

    fn key(&self, _config: &LinearConfig, x: &[f32], out: &mut Vec<f32>) -> Result<()> {
        self.features(x, out)
    }

    fn check_key(&self, key: &[f32]) -> std::result::Result<(), String> {
        if key.len() != self.p {
            return Err(format!(
                "a key of {} values, expected {}",
                key.len(),
                self.p
            ));
        }
        // φ is a unit vector (or the embedding itself, unit length) and a bias of 1.
        let norm: f64 = key[..self.p - 1]
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum();
        if !norm.is_finite() || norm > 1.0 + 1e-3 || key[self.p - 1] != 1.0 {
            return Err("a key that is not a feature vector (norm above 1 or no bias)".into());
        }
        Ok(())
    }

    fn observe_key(
        &mut self,
        config: &LinearConfig,
        key: &[f32],
        m: usize,
        quality: f64,
    ) -> Result<()> {
        self.push(config, m, key.to_vec(), quality - config.prior_mean)
    }

    /// Without a window, a model with at least `BATCH_REINVERT · p` observations in the
    /// batch adds them to `A_m` and `b_m` and re-inverts `A_m` once (`O(n p²/2 + p³)` instead of
    /// `n` Sherman–Morrison updates and refreshes, about `O(5 n p²)`); other models, and every
    /// model with a window, take them one at a time. This is what makes applying another
    /// replica's increment cheap (`benches/benches/share.rs`).
    fn observe_keys(
        &mut self,
        config: &LinearConfig,
        batch: &[(&[f32], usize, f64)],
    ) -> Result<()> {
        let p = self.p;
        let mut counts = vec![0usize; self.models];
        for &(_, m, _) in batch {
            counts[m] += 1;
        }
        let bulk: Vec<bool> = counts
            .iter()
            .map(|&n| config.forgetting.window.is_none() && n as f64 >= BATCH_REINVERT * p as f64)
            .collect();
        let mut gram = vec![0.0f64; if bulk.iter().any(|&b| b) { p * p } else { 0 }];
        for (m, _) in bulk.iter().enumerate().filter(|(_, &b)| b) {
            gram.fill(0.0);
            for &(key, _, quality) in batch.iter().filter(|e| e.1 == m) {
                let y = quality - config.prior_mean;
                for i in 0..p {
                    let xi = f64::from(key[i]);
                    for (g, &xj) in gram[i * p + i..(i + 1) * p].iter_mut().zip(&key[i..]) {
                        *g += xi * f64::from(xj);
                    }
                    self.b[m * p + i] += y * xi;
                }
            }
            let a = &mut self.a[m * p * p..(m + 1) * p * p];
            for i in 0..p {
                for j in i..p {
                    a[i * p + j] += gram[i * p + j];
                    if j != i {
                        a[j * p + i] += gram[i * p + j];
                    }
                }
            }
            let inv = linalg::spd_inverse(a, p)?;
            self.a_inv[m * p * p..(m + 1) * p * p].copy_from_slice(&inv);
            self.refresh(m);
        }
        for &(key, m, quality) in batch.iter().filter(|e| !bulk[e.1]) {
            self.observe_key(config, key, m, quality)?;
        }
        Ok(())
    }

    fn check_mergeable(&self, other: &Self) -> Result<()> {
        let same_projection = match (&self.projection, &other.projection) {
            (None, None) => self.pending_pca == other.pending_pca,
            (Some((a, c)), Some((b, d))) => super::same_bits(a, b) && super::same_bits(c, d),
            _ => false,
        };
        if self.p != other.p || self.models != other.models || !same_projection {
            return Err(Error::Config(format!(
                "{}: cannot merge routers with different feature maps",
                E::KIND
            )));
        }
        Ok(())
    }

    fn absorb(
        &mut self,
        config: &LinearConfig,
        other: &Self,
        base: Option<&Self>,
        m: usize,
        new: u64,
    ) {
        let p = self.p;
        if config.forgetting.window.is_some() {
            let ring = &other.window[m];
            let take = ring.len().min(usize::try_from(new).unwrap_or(usize::MAX));
            for (phi, y) in ring.iter().skip(ring.len() - take) {
                // A failure here means a singular matrix, which `after_merge` reports.
                if self.push(config, m, phi.clone(), *y).is_err() {
                    self.dirty[m] = true;
                }
            }
            return;
        }
        let (pa, pb) = (m * p * p..(m + 1) * p * p, m * p..(m + 1) * p);
        for i in 0..p * p {
            let prior = match base {
                Some(b) => b.a[pa.start + i],
                None => {
                    if i % (p + 1) == 0 {
                        config.ridge
                    } else {
                        0.0
                    }
                }
            };
            self.a[pa.start + i] += other.a[pa.start + i] - prior;
        }
        for i in 0..p {
            let prior = match base {
                Some(b) => b.b[pb.start + i],
                None => other.prior_b.get(pb.start + i).copied().unwrap_or(0.0),
            };
            self.b[pb.start + i] += other.b[pb.start + i] - prior;
        }
        self.dirty[m] = true;
    }

    fn after_merge(&mut self, _config: &LinearConfig) -> Result<()> {
        let p = self.p;
        for m in 0..self.models {
            if std::mem::take(&mut self.dirty[m]) {
                let inv = linalg::spd_inverse(&self.a[m * p * p..(m + 1) * p * p], p)?;
                self.a_inv[m * p * p..(m + 1) * p * p].copy_from_slice(&inv);
                self.refresh(m);
            }
        }
        Ok(())
    }

    fn check(&self) -> std::result::Result<(), String> {
        if !(simd::all_finite(&self.a)
            && simd::all_finite(&self.a_inv)
            && simd::all_finite(&self.b))
        {
            return Err("the statistics hold non-finite values".into());
        }
        linalg::check_statistics(&self.a, &self.a_inv, self.models, self.p)
    }

    fn save(&self, saved: SavedRouter) -> SavedRouter {
        self.save_tensors(saved)
    }

    fn load(
        config: &LinearConfig,
        saved: &mut SavedRouter,
        models: usize,
        dim: usize,
    ) -> Result<Self> {
        Self::load_tensors(config, saved, models, dim)
    }
}

#[path = "linear_saved.rs"]
mod saved;

#[cfg(test)]
#[path = "linear_tests.rs"]
mod tests;
