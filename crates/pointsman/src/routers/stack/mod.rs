//! Stack router: several pre-call routers' estimates combined, per model, by weights fitted out
//! of fold (stacked generalisation: Wolpert, 1992; Breiman, 1996, "Stacked regressions").
//!
//! # Estimate
//!
//! For a query, each member `k` estimates every model's quality `q_k,m`; the stack's estimate
//! is a logistic combination per model,
//!
//! ```text
//! q_m = σ( c_m + Σ_k w_k,m · logit(clip(q_k,m)) )        clip to [ε, 1 − ε], ε = 10⁻³
//! ```
//!
//! so a member that knows more about a model gets more weight for it, and `c_m` recalibrates
//! the combination. The expected cost is one member's (by default the first member that
//! predicts costs from neighbours: the kNN router, whose answer lengths and observed costs come
//! from the query's neighbours), and the signals (neighbour count, OOD score) are that member's.
//!
//! # Fitting
//!
//! The weights are fitted on *out-of-fold* estimates of the training split — each member's
//! estimate of a training query made without that query's labels ([`crate::tuning::Folds`]) —
//! by per-model logistic regression with an L2 pull toward equal weights:
//!
//! ```text
//! minimise  Σ_i o_i,m · BCE(c_m + Σ_k w_k,m z_i,k,m ; y_i,m)  +  λ/2 · Σ_k (w_k,m − 1/K)²
//! ```
//!
//! over the observed cells (`o`), with `λ` ([`StackConfig::shrinkage`]) in units of one query.
//! The problem has `K + 1` parameters per model, so it is solved by Newton's method with a
//! backtracking line search, written here: a dense `(K + 1)²` system per step, a few dozen
//! steps in all, well under a millisecond for 5,000 queries (no optimiser library earns its
//! place at that size). [`StackRouter::cross_validate`] gives the stack's own out-of-fold
//! estimates, which is how the automatic choice (`pointsman train --router auto`) measures it.
//!
//! # Saved form
//!
//! One file holds the members: each member's tensors and notes under the prefix `stack.<i>.`
//! and its config in [`StackConfig::members`]; loading rebuilds each member through a loader
//! the caller provides (the registry's), so a stack loads wherever its members do.

use std::sync::Arc;

use crate::pool::ModelPool;
use crate::router::Router;

mod config;
mod estimate;
mod fit;
mod saved;
#[cfg(test)]
mod tests;

pub use config::StackConfig;

/// The most members a stack may have.
pub const MAX_MEMBERS: usize = 16;

/// A fitted stack of routers. See the [module documentation](self).
#[derive(Clone)]
pub struct StackRouter {
    config: StackConfig,
    pool: ModelPool,
    dim: usize,
    embedding_model: Option<String>,
    members: Vec<Arc<dyn Router>>,
    /// `[m, K + 1]`: per model, the members' weights then the intercept.
    weights: Vec<f64>,
    /// The member whose costs and signals the stack reports.
    cost_member: usize,
}

impl std::fmt::Debug for StackRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackRouter")
            .field(
                "members",
                &self.members.iter().map(|r| r.kind()).collect::<Vec<_>>(),
            )
            .field("models", &self.pool.ids().collect::<Vec<_>>())
            .field("dim", &self.dim)
            .field("shrinkage", &self.config.shrinkage)
            .finish()
    }
}
