//! The stack's `Router` implementation: every member estimates the batch, the estimates are
//! combined per model.

use std::sync::Arc;

use super::fit::combine;
use super::{StackConfig, StackRouter};
use crate::error::Result;
use crate::features::FeatureBatch;
use crate::kind::RouterKind;
use crate::pool::ModelPool;
use crate::router::{Estimates, Router};
use crate::saved::SavedRouter;

impl StackRouter {
    /// The configuration (its `members` list is filled in the saved form).
    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// The members, in order.
    pub fn members(&self) -> &[Arc<dyn Router>] {
        &self.members
    }

    /// Model `model`'s combination: each member's weight, then the intercept.
    ///
    /// # Panics
    ///
    /// When `model` is not an index of the pool.
    pub fn weights(&self, model: usize) -> &[f64] {
        let k = self.members.len() + 1;
        &self.weights[model * k..(model + 1) * k]
    }

    /// The member whose expected costs and signals the stack reports.
    pub fn cost_member(&self) -> usize {
        self.cost_member
    }
}

impl Router for StackRouter {
    fn kind(&self) -> &'static str {
        RouterKind::Stack.name()
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
        let (rows, m, k) = (batch.rows(), self.pool.len(), self.members.len());
        let mut parts = Vec::with_capacity(k);
        for member in &self.members {
            let mut e = Estimates::new(rows, m);
            member.estimate(batch, &mut e)?;
            parts.push(e);
        }
        let costs = &parts[self.cost_member];
        for r in 0..rows {
            let (q, c) = out.row_mut(r);
            combine(
                &self.weights,
                k,
                |member, j| parts[member].quality_row(r)[j],
                q,
            );
            c.copy_from_slice(costs.cost_row(r));
            out.signals[r] = costs.signals[r];
        }
        Ok(())
    }

    fn to_saved(&self) -> Result<SavedRouter> {
        self.saved_form()
    }
}
