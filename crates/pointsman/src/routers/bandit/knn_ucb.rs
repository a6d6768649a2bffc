//! A neighbourhood bandit: each model's quality near the query, from that model's own past
//! observations.
//!
//! # Model
//!
//! Per model `m`, its observations `(x_i, y_i)` in order (the last one is the most recent), with
//! forgetting weights `d_i` (1, or `γ^(age on m's own clock)` with a discount):
//!
//! ```text
//! g_m     = (Σ_i d_i·y_i + a0·μ0) / (Σ_i d_i + a0)                 the model's running mean, shrunk to μ0
//! w_i     = max(⟨x, x_i⟩, 0)^p · d_i                              similarity weights
//! N_k(x)  = the k observations of m with the largest w_i
//! n_m(x)  = Σ_{N_k} w_i,   μ_m(x) = (Σ_{N_k} w_i·y_i + n0·g_m) / (n_m(x) + n0)
//! q̂_m(x) = μ_m(x) + α_t / sqrt(n_m(x) + n0),   α_t = α·sqrt(t0 / (t0 + t))  (or α)
//! ```
//!
//! An untried model sits at the optimistic `μ0` (default 1), and the bonus shrinks as evidence
//! near the query accumulates. Routing costs `O(n·d)` for `n` stored observations (one exact
//! scan per query); memory grows with traffic unless a window bounds it.
//!
//! This is the "neighbourhood UCB" of the research note: on llmrouter_dc it beats the best fixed
//! model at cost weight 0 by about 0.01 but is not robust across stream orders and cost weights
//! (MiniLM neighbourhoods are diffuse, so a fixed `k` caps the evidence and the bonus never
//! shrinks); [`super::ClusterUcbRouter`] is.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use super::{sealed, BanditRouter, Context, Forgetting, Learned};
use crate::error::{Error, Result};
use crate::kind::RouterKind;
use crate::router::Signals;
use crate::saved::{SavedRouter, Tensor};
use crate::simd;

/// Hyper-parameters of a [`KnnUcbRouter`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnnUcbConfig {
    /// Neighbours per model.
    pub k: usize,
    /// Similarity weight exponent `p`.
    pub power: f64,
    /// `n0`: pseudo-observations of the model's running mean in each estimate.
    pub shrinkage: f64,
    /// `μ0`: the optimistic prior of an untried model.
    pub prior_mean: f64,
    /// `a0`: pseudo-observations of `μ0` in the running mean.
    pub prior_strength: f64,
    /// `α`: the bonus scale.
    pub exploration: f64,
    /// `t0`: when set, the bonus scale decays as `α·sqrt(t0 / (t0 + t))` over `t` observations.
    pub exploration_decay: Option<f64>,
    /// Forgetting.
    pub forgetting: Forgetting,
    /// Route without exploration.
    pub greedy: bool,
}

impl Default for KnnUcbConfig {
    fn default() -> Self {
        KnnUcbConfig {
            k: 50,
            power: 1.0,
            shrinkage: 1.0,
            prior_mean: 1.0,
            prior_strength: 1.0,
            exploration: 0.6,
            exploration_decay: Some(1000.0),
            forgetting: Forgetting::default(),
            greedy: false,
        }
    }
}

impl KnnUcbConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(Error::Config("knn-ucb k must be at least 1".into()));
        }
        for (name, v) in [
            ("power", self.power),
            ("exploration", self.exploration),
            ("prior_strength", self.prior_strength),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::Config(format!(
                    "knn-ucb {name} {v} is not a non-negative number"
                )));
            }
        }
        if !(self.shrinkage > 0.0 && self.shrinkage.is_finite()) {
            return Err(Error::Config(format!(
                "knn-ucb shrinkage {} is not a positive number",
                self.shrinkage
            )));
        }
        if !self.prior_mean.is_finite() {
            return Err(Error::Config(format!(
                "knn-ucb prior_mean {} is not finite",
                self.prior_mean
            )));
        }
        if let Some(t0) = self.exploration_decay {
            if !(t0 > 0.0 && t0.is_finite()) {
                return Err(Error::Config(format!(
                    "knn-ucb exploration_decay {t0} is not a positive number"
                )));
            }
        }
        self.forgetting.validate()
    }
}

/// The neighbourhood bandit. See the [module documentation](super).
///
/// # Example
///
/// ```
/// use pointsman::routers::bandit::{KnnUcbConfig, KnnUcbRouter};
/// use pointsman::{Feedback, Learner, ModelCard, ModelPool, Objective, QueryFeatures, Router};
/// let pool = ModelPool::new(vec![ModelCard::new("a", 0.1, 0.1), ModelCard::new("b", 1.0, 1.0)])?;
/// let router = KnnUcbRouter::new(pool, 2, None, KnnUcbConfig::default())?;
/// let q = QueryFeatures::new(vec![1.0, 0.0])?;
/// router.observe(&Feedback { features: &q, model: 1, quality: 1.0, cost: 1e-4 })?;
/// router.observe(&Feedback { features: &q, model: 0, quality: 0.0, cost: 1e-5 })?;
/// assert_eq!(router.greedy().route(&q, &Objective::new(0.0))?.model_id, "b");
/// # Ok::<(), pointsman::Error>(())
/// ```
pub type KnnUcbRouter = BanditRouter<KnnUcb>;

/// One model's observations: rows `start..` of the buffers are live.
#[derive(Debug, Clone, Default)]
struct Memory {
    embeddings: Vec<f32>,
    scores: Vec<f64>,
    start: usize,
}

impl Memory {
    fn len(&self) -> usize {
        self.scores.len() - self.start
    }

    fn clear(&mut self) {
        *self = Memory::default();
    }

    fn push(&mut self, x: &[f32], y: f64, window: Option<usize>) {
        self.embeddings.extend_from_slice(x);
        self.scores.push(y);
        if let Some(w) = window {
            if self.len() > w {
                self.start = self.scores.len() - w;
            }
            // Compact once the dead prefix outgrows the live part.
            if self.start > w.max(64) {
                let dim = x.len();
                self.embeddings.drain(..self.start * dim);
                self.scores.drain(..self.start);
                self.start = 0;
            }
        }
    }
}

/// Pseudo-neighbours of an onboarded model's card prior in its estimate (at least the router's
/// own shrinkage `n0`), the strength the kNN router's onboarding gives its anchor too.
pub const ANCHOR_STRENGTH: f64 = 10.0;

/// The learned state of a [`KnnUcbRouter`]: every model's stored observations, and the card
/// prior of each model onboarded by [`BanditRouter::add_model`].
#[derive(Debug, Clone)]
pub struct KnnUcb {
    dim: usize,
    memory: Vec<Memory>,
    /// Per model: for one onboarded by [`BanditRouter::add_model`], the weights of the other
    /// models' estimates in its prior (zero for itself and for other onboarded models).
    anchors: Vec<Option<Vec<f64>>>,
}

/// Per-thread buffers of an estimate: similarities, and (weight, score) pairs.
type Scratch = (Vec<f32>, Vec<(f64, f64)>);

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl KnnUcb {
    /// An onboarded model's card prior at a query: the anchor's weighted sum of the other
    /// models' estimates `quality` there, clipped to [0, 1].
    fn anchor_prior(anchor: &[f64], quality: &[f64]) -> f64 {
        anchor
            .iter()
            .zip(quality)
            .filter(|(w, _)| **w != 0.0)
            .map(|(w, q)| w * q)
            .sum::<f64>()
            .clamp(0.0, 1.0)
    }

    /// Model `m`'s mean estimate near `x` and the evidence `n_m(x)` behind it; for an onboarded
    /// model, `prior` is its card prior at `x`.
    fn model_estimate(
        &self,
        config: &KnnUcbConfig,
        x: &[f32],
        m: usize,
        prior: Option<f64>,
    ) -> (f64, f64) {
        let mem = &self.memory[m];
        let n = mem.len();
        if n == 0 {
            return (prior.unwrap_or(config.prior_mean), 0.0);
        }
        let dim = self.dim;
        SCRATCH.with(|cell| {
            let mut cell = cell.borrow_mut();
            let (sims, pairs) = &mut *cell;
            sims.resize(n, 0.0);
            simd::dot_rows(&mem.embeddings[mem.start * dim..], x, sims);
            let scores = &mem.scores[mem.start..];
            pairs.clear();
            let (mut dsum, mut dysum) = (0.0f64, 0.0f64);
            let gamma = config.forgetting.discount;
            let mut decay = 1.0f64;
            for i in (0..n).rev() {
                let y = scores[i];
                dsum += decay;
                dysum += decay * y;
                let s = f64::from(sims[i]).max(0.0);
                let w = if config.power == 1.0 {
                    s
                } else {
                    s.powf(config.power)
                } * decay;
                pairs.push((w, y));
                if let Some(g) = gamma {
                    decay *= g;
                }
            }
            let g = (dysum + config.prior_strength * config.prior_mean)
                / (dsum + config.prior_strength);
            if pairs.len() > config.k {
                pairs.select_nth_unstable_by(config.k - 1, |a, b| b.0.total_cmp(&a.0));
                pairs.truncate(config.k);
            }
            let (wsum, wysum) = pairs
                .iter()
                .fold((0.0, 0.0), |(a, b), &(w, y)| (a + w, b + w * y));
            let (g, n0) = match prior {
                // Onboarded: the labelled neighbours shrunk toward the card prior.
                Some(p) => (p, config.shrinkage.max(ANCHOR_STRENGTH)),
                None => (g, config.shrinkage),
            };
            ((wysum + n0 * g) / (wsum + n0), wsum)
        })
    }
}

impl sealed::Sealed for KnnUcb {}

impl Learned for KnnUcb {
    type Config = KnnUcbConfig;
    const KIND: &'static str = RouterKind::KnnUcb.name();

    fn forgetting(config: &KnnUcbConfig) -> &Forgetting {
        &config.forgetting
    }

    fn is_greedy(config: &KnnUcbConfig) -> bool {
        config.greedy
    }

    fn with_greedy(config: &KnnUcbConfig, greedy: bool) -> KnnUcbConfig {
        KnnUcbConfig {
            greedy,
            ..config.clone()
        }
    }

    fn validate(config: &KnnUcbConfig) -> Result<()> {
        config.validate()
    }

    fn cold(_config: &KnnUcbConfig, models: usize, dim: usize) -> Result<Self> {
        Ok(KnnUcb {
            dim,
            memory: vec![Memory::default(); models],
            anchors: vec![None; models],
        })
    }

    fn fit_unlabelled(&mut self, _: &KnnUcbConfig, _: &[f32], _: usize) -> Result<()> {
        Err(Error::Unsupported(
            "knn-ucb has nothing to fit on unlabelled embeddings".into(),
        ))
    }

    fn estimate(
        &self,
        config: &KnnUcbConfig,
        x: &[f32],
        ctx: &Context,
        quality: &mut [f64],
        score: &mut [f64],
    ) -> Result<Signals> {
        let alpha = match config.exploration_decay {
            Some(t0) => config.exploration * (t0 / (t0 + ctx.observations as f64)).sqrt(),
            None => config.exploration,
        };
        let mut used = 0usize;
        // The models with observations of their own first: an onboarded model's prior is a
        // mix of their estimates.
        for pass in [false, true] {
            for m in 0..quality.len() {
                let anchor = self.anchors[m].as_deref();
                if anchor.is_some() != pass {
                    continue;
                }
                let prior = anchor.map(|a| Self::anchor_prior(a, quality));
                let (mu, evidence) = self.model_estimate(config, x, m, prior);
                used += self.memory[m].len().min(config.k);
                quality[m] = mu;
                score[m] = if ctx.explore {
                    mu + alpha / (evidence + config.shrinkage).sqrt()
                } else {
                    mu
                };
            }
        }
        Ok(Signals {
            neighbours: Some(u32::try_from(used).unwrap_or(u32::MAX)),
            ood: None,
        })
    }

    fn mean(&self, config: &KnnUcbConfig, x: &[f32], m: usize) -> Result<f64> {
        let prior = self.anchors[m].as_deref().map(|a| {
            let quality: Vec<f64> = a
                .iter()
                .enumerate()
                .map(|(i, &w)| {
                    if w == 0.0 {
                        0.0
                    } else {
                        self.model_estimate(config, x, i, None).0
                    }
                })
                .collect();
            Self::anchor_prior(a, &quality)
        });
        Ok(self.model_estimate(config, x, m, prior).0)
    }

    fn observe(&mut self, config: &KnnUcbConfig, x: &[f32], m: usize, quality: f64) -> Result<()> {
        self.memory[m].push(x, quality, config.forgetting.window);
        Ok(())
    }

    fn forget(&mut self, _config: &KnnUcbConfig, m: usize) {
        // An onboarded model keeps its card prior: it is the prior, not a statistic.
        self.memory[m].clear();
    }

    fn add_arm(&mut self, _config: &KnnUcbConfig, weights: &[f64]) {
        let m = self.memory.len();
        // Onboarded models have no estimate of their own to lend: their weight goes to the rest.
        let mut anchor: Vec<f64> = (0..=m)
            .map(|i| match (weights.get(i), self.anchors.get(i)) {
                (Some(&w), Some(None)) => w,
                _ => 0.0,
            })
            .collect();
        let total: f64 = anchor.iter().sum();
        if total > 0.0 {
            anchor.iter_mut().for_each(|w| *w /= total);
        }
        for a in self.anchors.iter_mut().flatten() {
            a.push(0.0);
        }
        self.memory.push(Memory::default());
        self.anchors.push(Some(anchor));
    }

    fn fixed_parts(&self) -> Result<Vec<f32>> {
        Ok(Vec::new())
    }

    fn key_len(&self) -> usize {
        self.dim
    }

    fn key(&self, _config: &KnnUcbConfig, x: &[f32], out: &mut Vec<f32>) -> Result<()> {
        out.clear();
        out.extend_from_slice(x);
        Ok(())
    }

    fn check_key(&self, key: &[f32]) -> std::result::Result<(), String> {
        if key.len() != self.dim {
            return Err(format!(
                "a key of {} values, expected {}",
                key.len(),
                self.dim
            ));
        }
        let norm: f64 = key.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        if !norm.is_finite() || (norm - 1.0).abs() > 1e-3 {
            return Err("a key that is not a unit embedding".into());
        }
        Ok(())
    }

    fn observe_key(
        &mut self,
        config: &KnnUcbConfig,
        key: &[f32],
        m: usize,
        quality: f64,
    ) -> Result<()> {
        self.observe(config, key, m, quality)
    }

    fn check_mergeable(&self, other: &Self) -> Result<()> {
        if self.dim != other.dim || self.memory.len() != other.memory.len() {
            return Err(Error::Config(
                "knn-ucb: cannot merge routers of different shapes".into(),
            ));
        }
        let bits = |a: &Option<Vec<f64>>| {
            a.as_ref()
                .map(|w| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        };
        if self
            .anchors
            .iter()
            .map(bits)
            .ne(other.anchors.iter().map(bits))
        {
            return Err(Error::Config(
                "knn-ucb: cannot merge routers whose onboarded models have different card priors"
                    .into(),
            ));
        }
        Ok(())
    }

    fn absorb(
        &mut self,
        config: &KnnUcbConfig,
        other: &Self,
        _base: Option<&Self>,
        m: usize,
        new: u64,
    ) {
        let theirs = &other.memory[m];
        let take = theirs.len().min(usize::try_from(new).unwrap_or(usize::MAX));
        let dim = self.dim;
        for i in theirs.scores.len() - take..theirs.scores.len() {
            self.memory[m].push(
                &theirs.embeddings[i * dim..(i + 1) * dim],
                theirs.scores[i],
                config.forgetting.window,
            );
        }
    }

    fn after_merge(&mut self, _config: &KnnUcbConfig) -> Result<()> {
        Ok(())
    }

    fn save(&self, saved: SavedRouter) -> SavedRouter {
        let m = self.memory.len();
        let saved = if self.anchors.iter().any(Option::is_some) {
            // Per model: 1 and the anchor's weights for an onboarded model, zeros otherwise.
            let rows: Vec<f64> = self
                .anchors
                .iter()
                .flat_map(|a| match a {
                    Some(w) => std::iter::once(1.0).chain(w.iter().copied()).collect(),
                    None => vec![0.0; m + 1],
                })
                .collect();
            saved.with_tensor("knn-ucb.anchors", Tensor::f64(&[m, m + 1], rows))
        } else {
            saved
        };
        let total: usize = self.memory.iter().map(Memory::len).sum();
        if total == 0 {
            return saved;
        }
        let dim = self.dim;
        let mut embeddings = Vec::with_capacity(total * dim);
        let mut models = Vec::with_capacity(total);
        let mut scores = Vec::with_capacity(total);
        for (j, mem) in self.memory.iter().enumerate() {
            embeddings.extend_from_slice(&mem.embeddings[mem.start * dim..]);
            scores.extend_from_slice(&mem.scores[mem.start..]);
            models.extend(std::iter::repeat_n(j as u32, mem.len()));
        }
        saved
            .with_tensor("knn-ucb.embeddings", Tensor::f32(&[total, dim], embeddings))
            .with_tensor("knn-ucb.models", Tensor::u32(&[total], models))
            .with_tensor("knn-ucb.scores", Tensor::f64(&[total], scores))
    }

    fn load(
        config: &KnnUcbConfig,
        saved: &mut SavedRouter,
        models: usize,
        dim: usize,
    ) -> Result<Self> {
        let bad = |m: &str| Error::format("saved router", m.to_string());
        let mut state = Self::cold(config, models, dim)?;
        if saved.shape("knn-ucb.anchors").is_some() {
            let rows = saved.take_f64("knn-ucb.anchors", &[models, models + 1])?;
            let flags: Vec<f64> = rows.chunks_exact(models + 1).map(|r| r[0]).collect();
            for (j, row) in rows.chunks_exact(models + 1).enumerate() {
                let w = &row[1..];
                let ok = match row[0] {
                    0.0 => w.iter().all(|&v| v == 0.0),
                    1.0 => {
                        w.iter().all(|v| v.is_finite() && *v >= 0.0)
                            && w.iter().zip(&flags).all(|(&v, &f)| v == 0.0 || f == 0.0)
                    }
                    _ => false,
                };
                if !ok {
                    return Err(bad(&format!("knn-ucb.anchors row {j} is not a card prior")));
                }
                state.anchors[j] = (row[0] == 1.0).then(|| w.to_vec());
            }
        }
        let Some(shape) = saved.shape("knn-ucb.models") else {
            return Ok(state);
        };
        let n = shape.first().copied().unwrap_or(0);
        let who = saved.take_u32("knn-ucb.models", &[n])?;
        let embeddings = saved.take_f32("knn-ucb.embeddings", &[n, dim])?;
        let scores = saved.take_f64("knn-ucb.scores", &[n])?;
        if who.windows(2).any(|w| w[0] > w[1]) || who.iter().any(|&j| j as usize >= models) {
            return Err(bad("knn-ucb.models are out of range or not grouped"));
        }
        if scores.iter().any(|s| !(0.0..=1.0).contains(s)) {
            return Err(bad("knn-ucb.scores outside [0, 1]"));
        }
        if !crate::simd::all_finite(&embeddings) {
            return Err(bad("knn-ucb.embeddings hold non-finite values"));
        }
        // The rows are grouped by model (checked above): each model's rows are one run, copied
        // in one piece into memory sized for it.
        let mut start = 0;
        for run in who.chunk_by(|a, b| a == b) {
            let (mem, end) = (&mut state.memory[run[0] as usize], start + run.len());
            mem.embeddings = embeddings[start * dim..end * dim].to_vec();
            mem.scores = scores[start..end].to_vec();
            start = end;
        }
        if let Some(w) = config.forgetting.window {
            if state.memory.iter().any(|m| m.len() > w) {
                return Err(bad("knn-ucb holds more observations than its window"));
            }
        }
        Ok(state)
    }
}
