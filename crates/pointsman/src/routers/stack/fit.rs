//! Fitting the stack's weights: per-model logistic regression on the members' out-of-fold
//! estimates, by Newton's method, and the stack's own cross-validated estimates.

use std::sync::Arc;

use super::{StackConfig, StackRouter, MAX_MEMBERS};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::kind::RouterKind;
use crate::router::{Estimates, Router};
use crate::tuning::Folds;

/// Member estimates are clipped to `[EPS, 1 − EPS]` before their logit.
pub(super) const EPS: f64 = 1e-3;

/// `logit(clip(q))`.
pub(super) fn logit(q: f64) -> f64 {
    let q = q.clamp(EPS, 1.0 - EPS);
    (q / (1.0 - q)).ln()
}

/// `σ(x)`, stable for large `|x|`.
pub(super) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^x)`, stable.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Solves `a·x = b` for a symmetric positive-definite `a` (`n × n`, row-major) by Cholesky;
/// `None` when `a` is not positive definite.
fn solve_spd(a: &[f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    let mut y = vec![0.0f64; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * n + i];
    }
    let mut x = vec![0.0f64; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * n + i];
    }
    Some(x)
}

/// One model's weights: the `K` member weights then the intercept, minimising the penalised
/// cross-entropy of the rows `(z, y)` (`z`: the members' logits, `K` per row).
fn fit_one(z: &[f64], y: &[f64], k: usize, shrinkage: f64) -> Vec<f64> {
    let n = y.len();
    let p = k + 1;
    let prior = 1.0 / k as f64;
    let mut x = vec![prior; p];
    x[k] = 0.0;
    let eta =
        |x: &[f64], i: usize| -> f64 { x[k] + (0..k).map(|c| x[c] * z[i * k + c]).sum::<f64>() };
    let loss = |x: &[f64]| -> f64 {
        let data: f64 = (0..n)
            .map(|i| {
                let e = eta(x, i);
                softplus(e) - y[i] * e
            })
            .sum();
        data + 0.5 * shrinkage * (0..k).map(|c| (x[c] - prior).powi(2)).sum::<f64>()
    };
    // A tiny ridge keeps the system positive definite when members agree exactly.
    let ridge = 1e-9 * (n as f64).max(1.0);
    let mut current = loss(&x);
    for _ in 0..100 {
        let mut g = vec![0.0f64; p];
        let mut h = vec![0.0f64; p * p];
        for i in 0..n {
            let s = sigmoid(eta(&x, i));
            let r = s - y[i];
            let v = s * (1.0 - s);
            let row = &z[i * k..(i + 1) * k];
            for a in 0..p {
                let xa = if a == k { 1.0 } else { row[a] };
                g[a] += r * xa;
                for b in 0..=a {
                    let xb = if b == k { 1.0 } else { row[b] };
                    h[a * p + b] += v * xa * xb;
                }
            }
        }
        for a in 0..p {
            for b in 0..a {
                h[b * p + a] = h[a * p + b];
            }
            h[a * p + a] += ridge;
            if a < k {
                g[a] += shrinkage * (x[a] - prior);
                h[a * p + a] += shrinkage;
            }
        }
        let Some(step) = solve_spd(&h, &g, p) else {
            break;
        };
        let decrease: f64 = g.iter().zip(&step).map(|(a, b)| a * b).sum();
        // (A NaN decrease stops too.)
        if decrease.is_nan() || decrease <= 1e-12 * (n as f64).max(1.0) {
            break;
        }
        // Backtracking line search (Armijo).
        let mut t = 1.0;
        let mut accepted = false;
        for _ in 0..40 {
            let cand: Vec<f64> = x.iter().zip(&step).map(|(a, s)| a - t * s).collect();
            let l = loss(&cand);
            if l.is_finite() && l <= current - 1e-4 * t * decrease {
                x = cand;
                current = l;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    x
}

impl StackRouter {
    /// A stack of `members` (at least one, at most [`MAX_MEMBERS`], over the same models,
    /// embedding dimension and embedding model) with per-model `weights`, `[models, K + 1]`:
    /// each row the `K` members' weights then the intercept.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for no member or too many, members over other models or embeddings,
    /// weights of the wrong size or not finite, or an invalid config.
    pub fn new(
        members: Vec<Arc<dyn Router>>,
        weights: Vec<f64>,
        config: StackConfig,
    ) -> Result<StackRouter> {
        let bad = |m: String| Err(Error::Config(m));
        let Some(first) = members.first() else {
            return bad("a stack needs at least one member".into());
        };
        if members.len() > MAX_MEMBERS {
            return bad(format!(
                "a stack holds at most {MAX_MEMBERS} members, not {}",
                members.len()
            ));
        }
        let pool = first.models().clone();
        let (dim, embedding_model) = (first.dim(), first.embedding_model().map(str::to_string));
        for r in &members[1..] {
            if r.models().ids().ne(pool.ids()) {
                return bad(format!(
                    "stack members route among different models ({} and {})",
                    first.kind(),
                    r.kind()
                ));
            }
            if r.dim() != dim || r.embedding_model() != embedding_model.as_deref() {
                return bad(format!(
                    "stack members read different embeddings ({} and {})",
                    first.kind(),
                    r.kind()
                ));
            }
        }
        let (m, k) = (pool.len(), members.len());
        if weights.len() != m * (k + 1) || weights.iter().any(|w| !w.is_finite()) {
            return bad(format!(
                "a stack of {k} members over {m} models needs {} finite weights, not {}",
                m * (k + 1),
                weights.len()
            ));
        }
        let mut config = StackConfig {
            members: Vec::new(),
            ..config
        };
        config.validate()?;
        let cost_member = match config.cost_member {
            Some(c) if c < k => c,
            Some(c) => {
                return bad(format!(
                    "stack cost_member {c} is not one of its {k} members"
                ))
            }
            None => members
                .iter()
                .position(|r| r.kind() == RouterKind::Knn.name())
                .unwrap_or(0),
        };
        config.cost_member = Some(cost_member);
        Ok(StackRouter {
            config,
            pool,
            dim,
            embedding_model,
            members,
            weights,
            cost_member,
        })
    }

    /// Fits the weights of a stack of `members` on their out-of-fold estimates of `truth`
    /// (`oof[k]` for member `k`, one row per query of `truth`), over the observed cells
    /// (`observed`: `[queries, models]`, `None` for every cell).
    ///
    /// # Errors
    ///
    /// As [`StackRouter::new`] and [`StackRouter::fit_weights`].
    pub fn fit(
        members: Vec<Arc<dyn Router>>,
        oof: &[&Estimates],
        truth: &Split,
        observed: Option<&[bool]>,
        config: &StackConfig,
    ) -> Result<StackRouter> {
        let rows: Vec<usize> = (0..truth.len()).collect();
        let weights = StackRouter::fit_weights(oof, truth, &rows, observed, config.shrinkage)?;
        StackRouter::new(members, weights, config.clone())
    }

    /// The per-model weights (`[models, K + 1]`) fitted on the rows `rows` of the members'
    /// out-of-fold estimates `oof` of `truth`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when an estimate does not have one row per query and one column per
    /// model of `truth`, or the mask the wrong size; [`Error::Config`] for no member or a
    /// negative shrinkage.
    pub fn fit_weights(
        oof: &[&Estimates],
        truth: &Split,
        rows: &[usize],
        observed: Option<&[bool]>,
        shrinkage: f64,
    ) -> Result<Vec<f64>> {
        let (n, m, k) = (truth.len(), truth.pool().len(), oof.len());
        check_estimates(oof, n, m, observed, shrinkage)?;
        let mut weights = Vec::with_capacity(m * (k + 1));
        for j in 0..m {
            let seen: Vec<usize> = rows
                .iter()
                .copied()
                .filter(|&r| observed.is_none_or(|o| o[r * m + j]))
                .collect();
            let z: Vec<f64> = seen
                .iter()
                .flat_map(|&r| oof.iter().map(move |e| logit(e.quality_row(r)[j])))
                .collect();
            let y: Vec<f64> = seen.iter().map(|&r| truth.score(r, j)).collect();
            weights.extend(fit_one(&z, &y, k, shrinkage));
        }
        Ok(weights)
    }

    /// The stack's own out-of-fold estimates of `truth`: for each fold, weights fitted on the
    /// other folds' rows of the members' out-of-fold estimates, applied to the fold's rows;
    /// costs from member `cost_member`.
    ///
    /// # Errors
    ///
    /// As [`StackRouter::fit_weights`]; [`Error::Shape`] when the folds do not cover `truth`.
    pub fn cross_validate(
        oof: &[&Estimates],
        truth: &Split,
        folds: &Folds,
        observed: Option<&[bool]>,
        shrinkage: f64,
        cost_member: usize,
    ) -> Result<Estimates> {
        let (n, m, k) = (truth.len(), truth.pool().len(), oof.len());
        check_estimates(oof, n, m, observed, shrinkage)?;
        if folds.len() != n || cost_member >= k {
            return Err(Error::Shape(format!(
                "folds over {} queries (cost member {cost_member} of {k}) for {n} queries",
                folds.len()
            )));
        }
        let mut out = Estimates::new(n, m);
        for f in 0..folds.count() {
            let rest: Vec<usize> = folds.training(f).collect();
            let w = StackRouter::fit_weights(oof, truth, &rest, observed, shrinkage)?;
            for r in folds.held_out(f) {
                let (q, c) = out.row_mut(r);
                combine(&w, k, |member, j| oof[member].quality_row(r)[j], q);
                c.copy_from_slice(oof[cost_member].cost_row(r));
            }
        }
        Ok(out)
    }
}

/// Writes into `q` every model's combined estimate from the members' estimates `member(k, j)`.
pub(super) fn combine(
    weights: &[f64],
    k: usize,
    member: impl Fn(usize, usize) -> f64,
    q: &mut [f64],
) {
    for (j, qj) in q.iter_mut().enumerate() {
        let w = &weights[j * (k + 1)..(j + 1) * (k + 1)];
        let eta = w[k] + (0..k).map(|c| w[c] * logit(member(c, j))).sum::<f64>();
        *qj = sigmoid(eta);
    }
}

fn check_estimates(
    oof: &[&Estimates],
    n: usize,
    m: usize,
    observed: Option<&[bool]>,
    shrinkage: f64,
) -> Result<()> {
    if oof.is_empty() {
        return Err(Error::Config("a stack needs at least one member".into()));
    }
    if !(shrinkage.is_finite() && shrinkage >= 0.0) {
        return Err(Error::Config(format!(
            "stack shrinkage {shrinkage} is not a non-negative number"
        )));
    }
    if let Some(e) = oof.iter().find(|e| e.rows() != n || e.models() != m) {
        return Err(Error::Shape(format!(
            "{} x {} member estimates for {n} queries and {m} models",
            e.rows(),
            e.models()
        )));
    }
    if observed.is_some_and(|o| o.len() != n * m) {
        return Err(Error::Shape(format!(
            "observed mask of {} cells for {n} queries x {m} models",
            observed.map_or(0, <[bool]>::len)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn cholesky_solves_and_refuses_indefinite() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let x = solve_spd(&a, &[2.0, 1.0], 2).unwrap();
        assert!((4.0 * x[0] + 2.0 * x[1] - 2.0).abs() < 1e-12);
        assert!((2.0 * x[0] + 3.0 * x[1] - 1.0).abs() < 1e-12);
        assert!(solve_spd(&[1.0, 2.0, 2.0, 1.0], &[1.0, 1.0], 2).is_none());
    }

    #[test]
    fn newton_recovers_a_logistic_model() {
        // y = σ(2·z0 − 0.5·z1 + 0.3) exactly, as fractional targets: the fit recovers it.
        let mut z = Vec::new();
        let mut y = Vec::new();
        for i in 0..400 {
            let (a, b) = ((i % 20) as f64 / 5.0 - 2.0, (i / 20) as f64 / 5.0 - 2.0);
            z.extend_from_slice(&[a, b]);
            y.push(sigmoid(2.0 * a - 0.5 * b + 0.3));
        }
        let w = fit_one(&z, &y, 2, 0.0);
        assert!((w[0] - 2.0).abs() < 1e-4, "{w:?}");
        assert!((w[1] + 0.5).abs() < 1e-4, "{w:?}");
        assert!((w[2] - 0.3).abs() < 1e-4, "{w:?}");
        // A strong pull keeps the weights at 1/K.
        let w = fit_one(&z, &y, 2, 1e12);
        assert!(
            (w[0] - 0.5).abs() < 1e-6 && (w[1] - 0.5).abs() < 1e-6,
            "{w:?}"
        );
    }
}
