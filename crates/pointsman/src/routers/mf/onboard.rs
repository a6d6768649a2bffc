//! Onboarding a model into a fitted MF router, and repricing: the learned projection, task
//! vectors and the other models' vectors stay as they are.
//!
//! A new model `n` needs a vector `v_n` and a bias `b_n`. Its logit on a query is
//! `(w ⊙ z_q) · v̂_n + b_n` with `z_q = P·e_q + u_task(q)` the router's fixed projection, so with
//! `h_q = w ⊙ z_q` learning the new model is a logistic regression of its scores on `h_q` (with
//! `v̂_n = v_n / ‖v_n‖` when the router normalises its model vectors, as the others are). It
//! starts at the card prior — `v̂_n = Σ a_i v̂_i`, `b_n = Σ a_i b_i` with the weights `a` of
//! [`ModelPool::prior_weights`] — and, with labelled queries, runs [`ONBOARD_STEPS`] steps of
//! full-batch gradient descent on their mean cross-entropy plus [`ONBOARD_RIDGE`] `· (‖v̂_n −
//! v̂_prior‖² + (b_n − b_prior)²) / k`, so a handful of labels move it little and many move it
//! far. No candle: onboarding works in a build without the `train` feature.
//!
//! [`ModelPool::prior_weights`]: crate::ModelPool::prior_weights

use super::{MfRouter, Params};
use crate::data::Split;
use crate::error::Result;
use crate::features::inv_norm;
use crate::pool::ModelCard;

/// Gradient steps of an onboarding with labels.
pub const ONBOARD_STEPS: usize = 400;

/// Strength of the pull toward the card prior, in labelled queries' worth of cross-entropy.
pub const ONBOARD_RIDGE: f64 = 8.0;

/// Step size of the onboarding's gradient descent.
const ONBOARD_RATE: f64 = 0.5;

impl MfRouter {
    /// The router with one more model, `card`, learned from the queries of `labelled` where it
    /// has a score (none: from its card alone), without changing the projection or the other
    /// models' vectors: their estimates stay bit for bit what they were. See the
    /// [module documentation](self).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a card whose id the router already has or whose prices are out of
    /// range; [`Error::UnknownModel`] when `labelled` has no such model;
    /// [`Error::DimensionMismatch`] / [`Error::EmbeddingMismatch`] for other embeddings.
    ///
    /// [`Error::Config`]: crate::Error::Config
    /// [`Error::UnknownModel`]: crate::Error::UnknownModel
    /// [`Error::DimensionMismatch`]: crate::Error::DimensionMismatch
    /// [`Error::EmbeddingMismatch`]: crate::Error::EmbeddingMismatch
    pub fn add_model(&self, card: ModelCard, labelled: Option<&Split>) -> Result<MfRouter> {
        let (m, k) = (self.pool.len(), self.config.dim);
        let pool = self.pool.with_added(&card)?;
        let a = self.pool.prior_weights(&card);
        let unit = |j: usize| -> Vec<f64> {
            let v = &self.params.model_vectors[j * k..(j + 1) * k];
            let s = if self.config.normalize_model_vectors {
                let n2: f32 = v.iter().map(|x| x * x).sum();
                if n2 > 0.0 {
                    f64::from(inv_norm(v))
                } else {
                    0.0
                }
            } else {
                1.0
            };
            v.iter().map(|&x| f64::from(x) * s).collect()
        };
        let mut v_prior = vec![0.0f64; k];
        let mut b_prior = 0.0f64;
        for (j, &w) in a.iter().enumerate() {
            for (p, u) in v_prior.iter_mut().zip(unit(j)) {
                *p += w * u;
            }
            b_prior += w * f64::from(self.params.bias[j]);
        }
        // The labelled queries' features h_q = w ⊙ (P·e_q + u_t) and scores.
        let mut hs: Vec<f64> = Vec::new();
        let mut ys: Vec<f64> = Vec::new();
        if let Some(split) = labelled {
            let col = split.labelled_column(&card.id)?;
            let batch = split.features()?;
            batch.check_compatible(self.dim, self.embedding_model.as_deref())?;
            let rows: Vec<usize> = (0..split.len())
                .filter(|&r| split.observed(r, col))
                .collect();
            let mut h = vec![0.0f32; k];
            for &r in &rows {
                self.packed.apply(batch.row(r), &mut h);
                let inv = inv_norm(batch.row(r));
                let t = self.task_row(batch.task(r));
                for (i, x) in h.iter().enumerate() {
                    let z = x * inv + self.params.task_vectors[t * k + i];
                    hs.push(f64::from(z * self.params.classifier[i]));
                }
                ys.push(split.score(r, col));
            }
        }
        let (v, b) = fit_logistic(
            &hs,
            &ys,
            k,
            &v_prior,
            b_prior,
            self.config.normalize_model_vectors,
        );
        let mut params: Params = self.params.clone();
        params.model_vectors.extend(v.iter().map(|&x| x as f32));
        params.bias.push(b as f32);
        let mut cost_fit = self.cost_fit.clone();
        cost_fit.push(None);
        debug_assert_eq!(params.bias.len(), m + 1);
        Ok(MfRouter::assemble(
            self.config.clone(),
            pool,
            self.embedding_model.clone(),
            self.dim,
            params,
            cost_fit,
            self.report.clone(),
            self.task_names.clone(),
        ))
    }

    /// The router with new prices ([`ModelPool::repriced`]); the cost fits learned from observed
    /// costs are scaled by each repriced model's ratio of new to old mean price per token.
    ///
    /// # Errors
    ///
    /// As [`ModelPool::repriced`]; [`Error::Config`] for a model with a cost fit repriced from a
    /// price of 0 (its fit has no ratio to scale by).
    ///
    /// [`ModelPool::repriced`]: crate::ModelPool::repriced
    /// [`Error::Config`]: crate::Error::Config
    pub fn reprice(&self, prices: &[ModelCard]) -> Result<MfRouter> {
        let pool = self.pool.repriced(prices)?;
        let cost_fit = crate::pool::scale_cost_fits(&self.pool, &pool, &self.cost_fit)?;
        Ok(MfRouter::assemble(
            self.config.clone(),
            pool,
            self.embedding_model.clone(),
            self.dim,
            self.params.clone(),
            cost_fit,
            self.report.clone(),
            self.task_names.clone(),
        ))
    }
}

/// Logistic regression of `ys` on the rows of `hs` (`k` features each) with logit `h · v̂ + b`
/// (`v̂` the unit vector of `v` when `normalize`), started at and pulled toward the prior.
fn fit_logistic(
    hs: &[f64],
    ys: &[f64],
    k: usize,
    v0: &[f64],
    b0: f64,
    normalize: bool,
) -> (Vec<f64>, f64) {
    let n = ys.len();
    let mut v = v0.to_vec();
    if normalize && v.iter().all(|x| *x == 0.0) {
        v[0] = 1.0;
    }
    let mut b = b0;
    if n == 0 {
        return (v, b);
    }
    let lambda = ONBOARD_RIDGE / n as f64;
    let mut gv = vec![0.0f64; k];
    let mut u = vec![0.0f64; k];
    for _ in 0..ONBOARD_STEPS {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        let scale = if normalize { 1.0 / norm } else { 1.0 };
        u.iter_mut().zip(&v).for_each(|(u, x)| *u = x * scale);
        gv.iter_mut().for_each(|g| *g = 0.0);
        let mut gb = 0.0;
        for (h, &y) in hs.chunks_exact(k).zip(ys) {
            let logit: f64 = h.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>() + b;
            let err = 1.0 / (1.0 + (-logit).exp()) - y;
            for (g, x) in gv.iter_mut().zip(h) {
                *g += err * x / n as f64;
            }
            gb += err / n as f64;
        }
        // The pull toward the prior, on the unit vector and the bias.
        for i in 0..k {
            gv[i] += 2.0 * lambda * (u[i] - v0[i]);
        }
        gb += 2.0 * lambda * (b - b0);
        if normalize {
            // Through v̂ = v / ‖v‖: (I − v̂ v̂ᵀ) g / ‖v‖.
            let along: f64 = gv.iter().zip(&u).map(|(g, x)| g * x).sum();
            for i in 0..k {
                gv[i] = (gv[i] - along * u[i]) / norm;
            }
        }
        for i in 0..k {
            v[i] -= ONBOARD_RATE * gv[i];
        }
        b -= ONBOARD_RATE * gb;
    }
    if v.iter().chain(std::iter::once(&b)).any(|x| !x.is_finite()) {
        return (v0.to_vec(), b0);
    }
    (v, b)
}
