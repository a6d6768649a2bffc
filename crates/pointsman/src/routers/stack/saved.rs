//! The stack's saved form: the weights, and every member's tensors and notes under its prefix.

use std::sync::Arc;

use super::{StackConfig, StackRouter};
use crate::error::{Error, Result};
use crate::kind::{Family, RouterKind};
use crate::router::Router;
use crate::saved::{SavedRouter, Tensor};

/// The prefix of member `i`'s tensors and notes.
fn prefix(i: usize) -> String {
    format!("{}.{i}.", RouterKind::Stack.name())
}

impl StackRouter {
    /// Rebuilds a stack from its saved form; `load` rebuilds each member from the saved form
    /// the stack holds for it (the registry's loader, so any kind a stack may hold loads).
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for no member, a member of a kind a stack cannot hold (a stack, a
    /// learner, a cascade), missing or misshapen tensors, non-finite weights; the errors of
    /// `load`.
    pub fn from_saved(
        config: StackConfig,
        mut saved: SavedRouter,
        load: &dyn Fn(SavedRouter) -> Result<Arc<dyn Router>>,
    ) -> Result<StackRouter> {
        let bad = |m: String| Error::format("saved router", m);
        config.validate().map_err(|e| bad(e.to_string()))?;
        let k = config.members.len();
        if k == 0 {
            return Err(bad("a stack without members".into()));
        }
        let mut members = Vec::with_capacity(k);
        for (i, member) in config.members.iter().enumerate() {
            let tag = member
                .get("type")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let allowed = tag == RouterKind::BASELINE_TAG
                || RouterKind::from_name(tag).is_some_and(|kind| {
                    kind.family() == Family::Estimator && kind != RouterKind::Stack
                });
            if !allowed {
                return Err(bad(format!(
                    "stack member {i} is a {tag:?} router: a stack holds pre-call estimators \
                     and baselines only"
                )));
            }
            let p = prefix(i);
            let part = saved.split_off(
                &p,
                serde_json::to_string(member).expect("JSON values serialise"),
            );
            let router = load(part).map_err(|e| match e {
                Error::Format { message, .. } => bad(format!("stack member {i}: {message}")),
                other => other,
            })?;
            if router.kind() != tag && tag != RouterKind::BASELINE_TAG {
                return Err(bad(format!(
                    "stack member {i} loaded as a {} router, not {tag}",
                    router.kind()
                )));
            }
            members.push(router);
        }
        let m = saved.pool.len();
        let weights = saved.take_f64("stack.weights", &[m, k + 1])?;
        let config = StackConfig {
            members: Vec::new(),
            ..config
        };
        StackRouter::new(members, weights, config).map_err(|e| bad(e.to_string()))
    }

    /// The stack's saved form ([`Router::to_saved`]).
    pub(super) fn saved_form(&self) -> Result<SavedRouter> {
        let (m, k) = (self.pool.len(), self.members.len());
        let mut config = self.config.clone();
        let mut tensors = Vec::new();
        let mut notes = Vec::new();
        for (i, member) in self.members.iter().enumerate() {
            let part = member.to_saved()?;
            let value: serde_json::Value = serde_json::from_str(&part.config)
                .map_err(|e| Error::format("saved router", format!("member config: {e}")))?;
            config.members.push(value);
            let p = prefix(i);
            tensors.extend(
                part.tensors
                    .into_iter()
                    .map(|(n, t)| (format!("{p}{n}"), t)),
            );
            notes.extend(part.notes.into_iter().map(|(n, v)| (format!("{p}{n}"), v)));
        }
        let mut saved = SavedRouter::new(
            RouterKind::Stack.name(),
            &config,
            self.pool.clone(),
            self.embedding_model.clone(),
            self.dim,
        )
        .with_tensor(
            "stack.weights",
            Tensor::f64(&[m, k + 1], self.weights.clone()),
        );
        for (name, t) in tensors {
            saved = saved.with_tensor(&name, t);
        }
        saved.notes.extend(notes);
        Ok(saved)
    }
}
