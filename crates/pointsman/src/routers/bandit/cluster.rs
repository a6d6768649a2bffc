//! A cluster bandit with an additive prior: per-(cluster, model) cells whose prior is the
//! cluster's difficulty plus the model's ability.
//!
//! This router is Pointsman's own combination of standard parts (the "ClusterAdd-FL" recipe of
//! the project's research note): a fixed partition of the embedding space, as in
//! context-clustered bandits for model selection (GreenServ), cell means shrunk toward an
//! additive two-way model fitted by alternating least squares, a UCB bonus with a logarithmic
//! numerator (UCB1, Auer et al. 2002) whose scale decays over time, and a residual drift
//! detector.
//!
//! # Model
//!
//! Cells: `cluster(x) = argmax_j ⟨x, c_j⟩` over `k` unit centroids from spherical k-means on
//! unlabelled embeddings (given with [`BanditRouter::fit_unlabelled`], or the first
//! `cluster_after` prompts the router observes; until then every query is in one cell, and the
//! buffered observations are re-assigned to their cells when the clusters are fitted).
//! Statistics per cell: `n[c, m]` observations and `s[c, m]` summed scores. Decision for a query
//! in cell `c` after `t` observations:
//!
//! ```text
//! (a, b) = argmin Σ_{c,m} n[c,m]·(s[c,m]/n[c,m] − a_c − b_m)² + a_reg·Σ_c (a_c − ȳ)² + b_reg·Σ_m (b_m − b0)²
//!          (alternating least squares to convergence; ȳ = Σs/Σn, or 0.5 with no data)
//! prior_m = clip(a_c + b_m, 0, 1)                                    cluster difficulty + model ability
//! μ_m     = (s[c,m] + n0·prior_m) / (n[c,m] + n0)
//! q̂_m    = μ_m + α_t · sqrt(ln(1 + N_c) / (n[c,m] + n0)),   N_c = Σ_m n[c,m],   α_t = α0·sqrt(t0 / (t0 + t))
//! ```
//!
//! The additive prior removes the selection bias of a per-model global mean (a model tried
//! mostly on hard queries no longer looks bad everywhere), `b0` keeps untried models optimistic,
//! and the front-loaded `α_t` explores early and exploits late. Routing costs `O(k·d)` for the
//! cluster plus `O(M)`; an observation `O(k·M)` for the refit.
//!
//! Forgetting: a discount scales model `m`'s column before each observation of `m`; a window
//! keeps each model's last `W` (cell, score) pairs; the detector wipes the model's column.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::kmeans::{nearest, spherical_kmeans};
use super::{sealed, BanditRouter, Context, Forgetting, Learned};
use crate::error::{Error, Result};
use crate::kind::RouterKind;
use crate::router::Signals;
use crate::saved::{SavedRouter, Tensor};

/// Hyper-parameters of a [`ClusterUcbRouter`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterUcbConfig {
    /// Number of clusters `k`.
    pub clusters: usize,
    /// Without [`BanditRouter::fit_unlabelled`]: fit the clusters on the first this many
    /// observed prompts.
    pub cluster_after: usize,
    /// Lloyd iterations of the k-means.
    pub kmeans_iterations: usize,
    /// Seed of the k-means seeding.
    pub seed: u64,
    /// `n0`: pseudo-observations of the prior in each cell.
    pub shrinkage: f64,
    /// `b0`: the optimistic model ability an untried model starts from.
    pub ability_prior: f64,
    /// `a_reg`: pseudo-observations pulling each cluster's difficulty toward the mean score.
    pub difficulty_strength: f64,
    /// `b_reg`: pseudo-observations pulling each model's ability toward `b0`.
    pub ability_strength: f64,
    /// `α0`: the bonus scale.
    pub exploration: f64,
    /// `t0`: when set, the bonus scale decays as `α0·sqrt(t0 / (t0 + t))`.
    pub exploration_decay: Option<f64>,
    /// Forgetting.
    pub forgetting: Forgetting,
    /// Route without exploration.
    pub greedy: bool,
}

impl Default for ClusterUcbConfig {
    fn default() -> Self {
        ClusterUcbConfig {
            clusters: 16,
            cluster_after: 1000,
            kmeans_iterations: 30,
            seed: 0,
            shrinkage: 3.0,
            ability_prior: 0.3,
            difficulty_strength: 1.0,
            ability_strength: 1.0,
            exploration: 0.6,
            exploration_decay: Some(1000.0),
            forgetting: Forgetting::default(),
            greedy: false,
        }
    }
}

impl ClusterUcbConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        if self.clusters == 0 {
            return Err(Error::Config(
                "cluster-ucb clusters must be at least 1".into(),
            ));
        }
        if self.cluster_after < self.clusters {
            return Err(Error::Config(format!(
                "cluster-ucb cluster_after {} is below the {} clusters",
                self.cluster_after, self.clusters
            )));
        }
        for (name, v) in [
            ("shrinkage", self.shrinkage),
            ("difficulty_strength", self.difficulty_strength),
            ("ability_strength", self.ability_strength),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(Error::Config(format!(
                    "cluster-ucb {name} {v} is not a positive number"
                )));
            }
        }
        if !(self.exploration >= 0.0 && self.exploration.is_finite()) {
            return Err(Error::Config(format!(
                "cluster-ucb exploration {} is not a non-negative number",
                self.exploration
            )));
        }
        if !self.ability_prior.is_finite() {
            return Err(Error::Config(format!(
                "cluster-ucb ability_prior {} is not finite",
                self.ability_prior
            )));
        }
        if let Some(t0) = self.exploration_decay {
            if !(t0 > 0.0 && t0.is_finite()) {
                return Err(Error::Config(format!(
                    "cluster-ucb exploration_decay {t0} is not a positive number"
                )));
            }
        }
        self.forgetting.validate()
    }
}

/// The cluster bandit. See the [module documentation](super).
///
/// # Example
///
/// ```
/// use pointsman::routers::bandit::{ClusterUcbConfig, ClusterUcbRouter};
/// use pointsman::{FeatureBatch, Feedback, Learner, ModelCard, ModelPool, Objective, QueryFeatures, Router};
/// let pool = ModelPool::new(vec![ModelCard::new("a", 0.1, 0.1), ModelCard::new("b", 1.0, 1.0)])?;
/// let config = ClusterUcbConfig { clusters: 2, ..Default::default() };
/// let router = ClusterUcbRouter::new(pool, 2, None, config)?;
/// // Clusters from unlabelled prompts: two directions.
/// router.fit_unlabelled(&FeatureBatch::new(&[1.0, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9], 2)?)?;
/// let left = QueryFeatures::new(vec![1.0, 0.05])?;
/// let right = QueryFeatures::new(vec![0.05, 1.0])?;
/// for _ in 0..10 {
///     router.observe(&Feedback { features: &left, model: 0, quality: 1.0, cost: 1e-5 })?;
///     router.observe(&Feedback { features: &left, model: 1, quality: 0.0, cost: 1e-4 })?;
///     router.observe(&Feedback { features: &right, model: 0, quality: 0.0, cost: 1e-5 })?;
///     router.observe(&Feedback { features: &right, model: 1, quality: 1.0, cost: 1e-4 })?;
/// }
/// let greedy = router.greedy();
/// assert_eq!(greedy.route(&left, &Objective::new(0.0))?.model_id, "a");
/// assert_eq!(greedy.route(&right, &Objective::new(0.0))?.model_id, "b");
/// # Ok::<(), pointsman::Error>(())
/// ```
pub type ClusterUcbRouter = BanditRouter<ClusterUcb>;

/// Buffer marker of an observation whose model was forgotten before the clusters were fitted.
const FORGOTTEN: u32 = u32::MAX;

/// The learned state of a [`ClusterUcbRouter`].
#[derive(Debug, Clone)]
pub struct ClusterUcb {
    dim: usize,
    models: usize,
    /// `[k, dim]` unit centroids, once fitted.
    centroids: Option<Vec<f32>>,
    /// Cells: `k` once fitted, 1 before.
    cells: usize,
    n: Vec<f64>,
    s: Vec<f64>,
    /// The additive fit (derived from `n` and `s`).
    a: Vec<f64>,
    b: Vec<f64>,
    window: Vec<VecDeque<(u32, f64)>>,
    /// Before the clusters are fitted: the observed prompts and their (model, score).
    buffer: Vec<f32>,
    buffered: Vec<(u32, f64)>,
}

impl ClusterUcb {
    fn cell(&self, x: &[f32]) -> usize {
        match &self.centroids {
            Some(c) => {
                let mut sims = vec![0.0f32; self.cells];
                nearest(c, x, &mut sims)
            }
            None => 0,
        }
    }

    /// Adds one observation of model `m` in cell `c` under the forgetting rules (no refit).
    fn add(&mut self, config: &ClusterUcbConfig, c: usize, m: usize, y: f64) {
        let mm = self.models;
        if let Some(g) = config.forgetting.discount {
            for cell in 0..self.cells {
                self.n[cell * mm + m] *= g;
                self.s[cell * mm + m] *= g;
            }
        }
        self.n[c * mm + m] += 1.0;
        self.s[c * mm + m] += y;
        if let Some(w) = config.forgetting.window {
            self.window[m].push_back((c as u32, y));
            while self.window[m].len() > w {
                if let Some((old, y0)) = self.window[m].pop_front() {
                    let i = old as usize * mm + m;
                    self.n[i] -= 1.0;
                    self.s[i] -= y0;
                    if self.n[i] <= 0.0 {
                        self.n[i] = 0.0;
                        self.s[i] = 0.0;
                    }
                }
            }
        }
    }

    /// The converged additive fit of the current tables.
    fn refit(&mut self, config: &ClusterUcbConfig) {
        let (k, mm) = (self.cells, self.models);
        let (tn, ts) = (self.n.iter().sum::<f64>(), self.s.iter().sum::<f64>());
        let mean = if tn > 0.0 { ts / tn } else { 0.5 };
        let (a_reg, b_reg, b0) = (
            config.difficulty_strength,
            config.ability_strength,
            config.ability_prior,
        );
        self.a.clear();
        self.a.resize(k, mean);
        self.b.clear();
        self.b.resize(mm, b0);
        let mut prev = vec![f64::NAN; k * mm];
        // The fit is a pure function of the tables (fixed start, fixed stopping rule), so
        // replicas that hold the same tables hold the same prior. Only the sums a_c + b_m
        // matter; they converge in a few dozen sweeps even where a and b drift slowly along
        // their shared offset.
        for _ in 0..500 {
            for c in 0..k {
                let (mut num, mut den) = (a_reg * mean, a_reg);
                for m in 0..mm {
                    let i = c * mm + m;
                    num += self.s[i] - self.n[i] * self.b[m];
                    den += self.n[i];
                }
                self.a[c] = num / den;
            }
            for m in 0..mm {
                let (mut num, mut den) = (b_reg * b0, b_reg);
                for c in 0..k {
                    let i = c * mm + m;
                    num += self.s[i] - self.n[i] * self.a[c];
                    den += self.n[i];
                }
                self.b[m] = num / den;
            }
            let mut change = 0.0f64;
            for c in 0..k {
                for m in 0..mm {
                    let v = self.a[c] + self.b[m];
                    change = change.max((v - prev[c * mm + m]).abs());
                    prev[c * mm + m] = v;
                }
            }
            if change < 1e-12 {
                break;
            }
        }
    }

    fn estimate_cell(&self, config: &ClusterUcbConfig, c: usize, m: usize) -> f64 {
        let i = c * self.models + m;
        let prior = (self.a[c] + self.b[m]).clamp(0.0, 1.0);
        (self.s[i] + config.shrinkage * prior) / (self.n[i] + config.shrinkage)
    }

    /// Fits the clusters on `rows`, then re-assigns the buffered observations to their cells.
    fn fit_clusters(&mut self, config: &ClusterUcbConfig, rows: &[f32]) {
        let k = config.clusters;
        self.centroids = Some(spherical_kmeans(
            rows,
            self.dim,
            k,
            config.kmeans_iterations,
            config.seed,
        ));
        self.cells = k;
        self.n = vec![0.0; k * self.models];
        self.s = vec![0.0; k * self.models];
        for w in &mut self.window {
            w.clear();
        }
        let buffer = std::mem::take(&mut self.buffer);
        let buffered = std::mem::take(&mut self.buffered);
        for (x, &(m, y)) in buffer.chunks_exact(self.dim).zip(&buffered) {
            if m != FORGOTTEN {
                let c = self.cell(x);
                self.add(config, c, m as usize, y);
            }
        }
        self.refit(config);
    }
}

impl sealed::Sealed for ClusterUcb {}

impl Learned for ClusterUcb {
    type Config = ClusterUcbConfig;
    const KIND: &'static str = RouterKind::ClusterUcb.name();

    fn forgetting(config: &ClusterUcbConfig) -> &Forgetting {
        &config.forgetting
    }

    fn is_greedy(config: &ClusterUcbConfig) -> bool {
        config.greedy
    }

    fn with_greedy(config: &ClusterUcbConfig, greedy: bool) -> ClusterUcbConfig {
        ClusterUcbConfig {
            greedy,
            ..config.clone()
        }
    }

    fn validate(config: &ClusterUcbConfig) -> Result<()> {
        config.validate()
    }

    fn cold(config: &ClusterUcbConfig, models: usize, dim: usize) -> Result<Self> {
        let mut state = ClusterUcb {
            dim,
            models,
            centroids: None,
            cells: 1,
            n: vec![0.0; models],
            s: vec![0.0; models],
            a: Vec::new(),
            b: Vec::new(),
            window: vec![VecDeque::new(); models],
            buffer: Vec::new(),
            buffered: Vec::new(),
        };
        state.refit(config);
        Ok(state)
    }

    fn fit_unlabelled(
        &mut self,
        config: &ClusterUcbConfig,
        rows: &[f32],
        dim: usize,
    ) -> Result<()> {
        if self.centroids.is_some() {
            return Err(Error::InvalidInput(
                "cluster-ucb: the clusters are already fitted".into(),
            ));
        }
        let n = rows.len() / dim;
        if n < config.clusters {
            return Err(Error::InvalidInput(format!(
                "cluster-ucb: {n} embeddings for {} clusters",
                config.clusters
            )));
        }
        self.fit_clusters(config, rows);
        Ok(())
    }

    fn estimate(
        &self,
        config: &ClusterUcbConfig,
        x: &[f32],
        ctx: &Context,
        quality: &mut [f64],
        score: &mut [f64],
    ) -> Result<Signals> {
        let c = self.cell(x);
        let mm = self.models;
        let total: f64 = self.n[c * mm..(c + 1) * mm].iter().sum();
        let alpha = match config.exploration_decay {
            Some(t0) => config.exploration * (t0 / (t0 + ctx.observations as f64)).sqrt(),
            None => config.exploration,
        };
        let log = (1.0 + total).ln();
        for (m, (q, s)) in quality.iter_mut().zip(score.iter_mut()).enumerate() {
            let mu = self.estimate_cell(config, c, m);
            *q = mu;
            *s = if ctx.explore {
                mu + alpha * (log / (self.n[c * mm + m] + config.shrinkage)).sqrt()
            } else {
                mu
            };
        }
        Ok(Signals {
            neighbours: Some(total.round().min(f64::from(u32::MAX)) as u32),
            ood: None,
        })
    }

    fn mean(&self, config: &ClusterUcbConfig, x: &[f32], m: usize) -> Result<f64> {
        Ok(self.estimate_cell(config, self.cell(x), m))
    }

    fn observe(
        &mut self,
        config: &ClusterUcbConfig,
        x: &[f32],
        m: usize,
        quality: f64,
    ) -> Result<()> {
        let c = self.cell(x);
        self.add(config, c, m, quality);
        if self.centroids.is_none() {
            self.buffer.extend_from_slice(x);
            self.buffered.push((m as u32, quality));
            if self.buffered.len() >= config.cluster_after {
                let rows = self.buffer.clone();
                self.fit_clusters(config, &rows);
                return Ok(());
            }
        }
        self.refit(config);
        Ok(())
    }

    fn observe_all(
        &mut self,
        config: &ClusterUcbConfig,
        rows: &[f32],
        dim: usize,
        scores: &[f64],
        models: usize,
    ) -> Result<()> {
        if self.centroids.is_none() && rows.len() / dim >= config.clusters {
            // Labelled data is unlabelled data too: fit the clusters on it (and the buffer).
            let mut all = self.buffer.clone();
            all.extend_from_slice(rows);
            self.fit_clusters(config, &all);
        }
        for (r, x) in rows.chunks_exact(dim).enumerate() {
            let c = self.cell(x);
            for m in 0..models {
                self.add(config, c, m, scores[r * models + m]);
                if self.centroids.is_none() {
                    self.buffer.extend_from_slice(x);
                    self.buffered.push((m as u32, scores[r * models + m]));
                }
            }
        }
        self.refit(config);
        Ok(())
    }

    fn forget(&mut self, config: &ClusterUcbConfig, m: usize) {
        let mm = self.models;
        for c in 0..self.cells {
            self.n[c * mm + m] = 0.0;
            self.s[c * mm + m] = 0.0;
        }
        self.window[m].clear();
        for e in &mut self.buffered {
            if e.0 == m as u32 {
                e.0 = FORGOTTEN;
            }
        }
        self.refit(config);
    }

    fn add_arm(&mut self, config: &ClusterUcbConfig, weights: &[f64]) {
        let (k, mm) = (self.cells, self.models);
        let (mut n, mut s) = (
            Vec::with_capacity(k * (mm + 1)),
            Vec::with_capacity(k * (mm + 1)),
        );
        for c in 0..k {
            let (row_n, row_s) = (&self.n[c * mm..(c + 1) * mm], &self.s[c * mm..(c + 1) * mm]);
            n.extend_from_slice(row_n);
            s.extend_from_slice(row_s);
            // The card-weighted known models' evidence in this cell, scaled down to at most
            // `n0` pseudo-observations at its mean score.
            let nw: f64 = weights.iter().zip(row_n).map(|(w, x)| w * x).sum();
            let sw: f64 = weights.iter().zip(row_s).map(|(w, x)| w * x).sum();
            let pseudo = nw.min(config.shrinkage);
            n.push(pseudo);
            s.push(if nw > 0.0 {
                (pseudo * sw / nw).clamp(0.0, pseudo)
            } else {
                0.0
            });
        }
        self.n = n;
        self.s = s;
        self.models = mm + 1;
        self.window.push(VecDeque::new());
        self.refit(config);
    }

    fn fixed_parts(&self) -> Result<Vec<f32>> {
        self.centroids.clone().ok_or_else(|| {
            Error::Unsupported(
                "sharing a cluster-ucb router whose clusters are not fitted yet (fit them on \
                 unlabelled embeddings first, once, and start every replica from that router)"
                    .into(),
            )
        })
    }

    fn key_len(&self) -> usize {
        1
    }

    fn key(&self, _config: &ClusterUcbConfig, x: &[f32], out: &mut Vec<f32>) -> Result<()> {
        out.clear();
        // Cells are fewer than 2^24, so the index is exact as an f32.
        out.push(self.cell(x) as f32);
        Ok(())
    }

    fn check_key(&self, key: &[f32]) -> std::result::Result<(), String> {
        match key {
            [c] if c.fract() == 0.0 && *c >= 0.0 && (*c as usize) < self.cells => Ok(()),
            _ => Err(format!(
                "a key {key:?} that is not a cell index below {}",
                self.cells
            )),
        }
    }

    fn observe_key(
        &mut self,
        config: &ClusterUcbConfig,
        key: &[f32],
        m: usize,
        quality: f64,
    ) -> Result<()> {
        self.add(config, key[0] as usize, m, quality);
        self.refit(config);
        Ok(())
    }

    fn check_mergeable(&self, other: &Self) -> Result<()> {
        match (&self.centroids, &other.centroids) {
            (Some(a), Some(b)) if super::same_bits(a, b) && self.models == other.models => Ok(()),
            (Some(_), Some(_)) => Err(Error::Config(
                "cluster-ucb: cannot merge routers with different clusters".into(),
            )),
            _ => Err(Error::Unsupported(
                "merging cluster-ucb routers whose clusters are not fitted yet (fit them on the \
                 same unlabelled embeddings on every replica)"
                    .into(),
            )),
        }
    }

    fn absorb(
        &mut self,
        config: &ClusterUcbConfig,
        other: &Self,
        base: Option<&Self>,
        m: usize,
        new: u64,
    ) {
        let mm = self.models;
        if config.forgetting.window.is_some() {
            let ring = &other.window[m];
            let take = ring.len().min(usize::try_from(new).unwrap_or(usize::MAX));
            for &(c, y) in ring.iter().skip(ring.len() - take) {
                self.add(config, c as usize, m, y);
            }
            return;
        }
        let g = match config.forgetting.discount {
            Some(g) => g.powf(new as f64),
            None => 1.0,
        };
        for c in 0..self.cells {
            let i = c * mm + m;
            let (bn, bs) = base.map_or((0.0, 0.0), |b| (b.n[i], b.s[i]));
            self.n[i] = (g * self.n[i] + other.n[i] - g * bn).max(0.0);
            self.s[i] = (g * self.s[i] + other.s[i] - g * bs).max(0.0);
        }
    }

    fn after_merge(&mut self, config: &ClusterUcbConfig) -> Result<()> {
        self.refit(config);
        Ok(())
    }

    fn save(&self, saved: SavedRouter) -> SavedRouter {
        let (k, mm) = (self.cells, self.models);
        let mut saved = saved
            .with_tensor("cluster-ucb.n", Tensor::f64(&[k, mm], self.n.clone()))
            .with_tensor("cluster-ucb.s", Tensor::f64(&[k, mm], self.s.clone()));
        if let Some(c) = &self.centroids {
            saved = saved.with_tensor(
                "cluster-ucb.centroids",
                Tensor::f32(&[k, self.dim], c.clone()),
            );
        }
        let entries: Vec<(u32, u32, f64)> = self
            .window
            .iter()
            .enumerate()
            .flat_map(|(j, w)| w.iter().map(move |&(c, y)| (j as u32, c, y)))
            .collect();
        if !entries.is_empty() {
            let e = entries.len();
            saved = saved
                .with_tensor(
                    "cluster-ucb.window.models",
                    Tensor::u32(&[e], entries.iter().map(|t| t.0).collect()),
                )
                .with_tensor(
                    "cluster-ucb.window.cells",
                    Tensor::u32(&[e], entries.iter().map(|t| t.1).collect()),
                )
                .with_tensor(
                    "cluster-ucb.window.scores",
                    Tensor::f64(&[e], entries.iter().map(|t| t.2).collect()),
                );
        }
        if !self.buffered.is_empty() {
            let b = self.buffered.len();
            saved = saved
                .with_tensor(
                    "cluster-ucb.buffer.embeddings",
                    Tensor::f32(&[b, self.dim], self.buffer.clone()),
                )
                .with_tensor(
                    "cluster-ucb.buffer.models",
                    Tensor::u32(&[b], self.buffered.iter().map(|e| e.0).collect()),
                )
                .with_tensor(
                    "cluster-ucb.buffer.scores",
                    Tensor::f64(&[b], self.buffered.iter().map(|e| e.1).collect()),
                );
        }
        saved
    }

    fn load(
        config: &ClusterUcbConfig,
        saved: &mut SavedRouter,
        models: usize,
        dim: usize,
    ) -> Result<Self> {
        let bad = |m: &str| Error::format("saved router", m.to_string());
        let mut state = Self::cold(config, models, dim)?;
        if saved.shape("cluster-ucb.centroids").is_some() {
            let k = config.clusters;
            let c = saved.take_f32("cluster-ucb.centroids", &[k, dim])?;
            if !crate::simd::all_finite(&c) {
                return Err(bad("cluster-ucb.centroids hold non-finite values"));
            }
            state.centroids = Some(c);
            state.cells = k;
        }
        let k = state.cells;
        state.n = saved.take_f64("cluster-ucb.n", &[k, models])?;
        state.s = saved.take_f64("cluster-ucb.s", &[k, models])?;
        if state.n.iter().zip(&state.s).any(|(&n, &s)| {
            !(n >= 0.0 && s >= 0.0 && n.is_finite() && s <= n * (1.0 + 1e-9) + 1e-9)
        }) {
            return Err(bad("cluster-ucb.n and cluster-ucb.s are out of range"));
        }
        if let Some(shape) = saved.shape("cluster-ucb.window.models") {
            let e = shape.first().copied().unwrap_or(0);
            let who = saved.take_u32("cluster-ucb.window.models", &[e])?;
            let cells = saved.take_u32("cluster-ucb.window.cells", &[e])?;
            let scores = saved.take_f64("cluster-ucb.window.scores", &[e])?;
            let limit = config.forgetting.window.unwrap_or(0);
            for i in 0..e {
                let (j, c, y) = (who[i] as usize, cells[i] as usize, scores[i]);
                if j >= models
                    || c >= k
                    || !(0.0..=1.0).contains(&y)
                    || state.window[j].len() >= limit
                {
                    return Err(bad("cluster-ucb.window entries out of range"));
                }
                state.window[j].push_back((c as u32, y));
            }
        }
        if let Some(shape) = saved.shape("cluster-ucb.buffer.models") {
            let b = shape.first().copied().unwrap_or(0);
            let emb = saved.take_f32("cluster-ucb.buffer.embeddings", &[b, dim])?;
            let who = saved.take_u32("cluster-ucb.buffer.models", &[b])?;
            let scores = saved.take_f64("cluster-ucb.buffer.scores", &[b])?;
            if state.centroids.is_some()
                || !crate::simd::all_finite(&emb)
                || who.iter().any(|&j| j != FORGOTTEN && j as usize >= models)
                || scores.iter().any(|y| !(0.0..=1.0).contains(y))
            {
                return Err(bad("cluster-ucb.buffer out of range"));
            }
            state.buffer = emb;
            state.buffered = who.into_iter().zip(scores).collect();
        }
        state.refit(config);
        Ok(state)
    }
}
