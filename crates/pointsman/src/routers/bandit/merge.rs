//! Merging replicas: adding another router's observations, or those it made since a common
//! snapshot, to this one.

use std::sync::Arc;

use serde_json::Value;

use super::router::State;
use super::{BanditRouter, Learned};
use crate::error::{Error, Result};

/// Settings two replicas may differ in: they change how a router explores (and draws), not
/// what it learned.
const EXPLORATION_ONLY: [&str; 4] = ["greedy", "seed", "exploration", "exploration_decay"];

impl<L: Learned> BanditRouter<L> {
    /// Adds everything `other` observed (beyond its prior) to this router. See the
    /// [module documentation](super#merging-replicas) for what this means with forgetting.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the routers differ in configuration (any setting but `greedy`,
    /// `seed`, `exploration` and `exploration_decay`, which change how a router explores, not
    /// what it learned), models, dimension, projection or clusters; [`Error::Unsupported`] for `cluster-ucb` routers whose clusters
    /// are not fitted yet; [`Error::InvalidInput`] when `other` is this router (or a handle on
    /// its state, such as its greedy view): it would count everything twice. A merge that fails
    /// leaves this router as it was.
    pub fn merge(&self, other: &Self) -> Result<()> {
        self.refuse_itself(other)?;
        self.check_config(other, "the other router")?;
        let other = other.read().clone();
        self.merge_state(&other, None)
    }

    /// Adds what `other` observed after it was forked (by [`BanditRouter::snapshot`], or by
    /// saving and loading) from `base`: replicas that start from one warm-started router merge
    /// their traffic without counting the warm start twice.
    ///
    /// # Errors
    ///
    /// As [`BanditRouter::merge`]; [`Error::InvalidInput`] when `other` has fewer observations of
    /// some model than `base` (it does not descend from `base`).
    pub fn merge_since(&self, other: &Self, base: &Self) -> Result<()> {
        self.refuse_itself(other)?;
        self.check_config(other, "the other router")?;
        self.check_config(base, "the base")?;
        let other = other.read().clone();
        let base = base.read().clone();
        self.merge_state(&other, Some(&base))
    }

    /// [`Error::InvalidInput`] when `other` shares this router's state.
    fn refuse_itself(&self, other: &Self) -> Result<()> {
        if Arc::ptr_eq(&self.shared, &other.shared) {
            return Err(Error::InvalidInput(
                "a router merged with itself (or a handle on its state, such as its greedy view) \
                 would count everything it observed twice"
                    .into(),
            ));
        }
        Ok(())
    }

    /// [`Error::Config`] naming the settings in which `other` (`what`) differs.
    fn check_config(&self, other: &Self, what: &str) -> Result<()> {
        let (ours, theirs) = (&self.shared.config, &other.shared.config);
        if ours == theirs {
            return Ok(());
        }
        let value = |c: &L::Config| serde_json::to_value(c).ok();
        let differences: Vec<String> = match (value(ours), value(theirs)) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => a
                .iter()
                .filter(|(k, _)| !EXPLORATION_ONLY.contains(&k.as_str()))
                .filter(|(k, v)| b.get(k.as_str()) != Some(v))
                .map(|(k, v)| {
                    let t = b.get(k.as_str()).map_or("nothing".into(), Value::to_string);
                    format!("{k} {v} here, {t} in {what}")
                })
                .collect(),
            _ => vec![format!("{ours:?} here, {theirs:?} in {what}")],
        };
        if differences.is_empty() {
            return Ok(());
        }
        Err(Error::Config(format!(
            "{}: cannot merge routers with different settings: {}",
            L::KIND,
            differences.join("; ")
        )))
    }

    fn merge_state(&self, other: &State<L>, base: Option<&State<L>>) -> Result<()> {
        let m = self.shared.pool.len();
        if other.pulls.len() != m || base.is_some_and(|b| b.pulls.len() != m) {
            return Err(Error::Config(
                "cannot merge routers over different model pools".into(),
            ));
        }
        let mut guard = self.write();
        guard.learned.check_mergeable(&other.learned)?;
        if let Some(b) = base {
            guard.learned.check_mergeable(&b.learned)?;
        }
        let mut new = vec![0u64; m];
        for (j, n) in new.iter_mut().enumerate() {
            let before = base.map_or(0, |b| b.pulls[j]);
            *n = other.pulls[j].checked_sub(before).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "the other router has {} observations of {:?}, its base {before}: it does not \
                     descend from the base",
                    other.pulls[j],
                    self.shared.pool.id(j)
                ))
            })?;
        }
        // Merged into a copy, swapped in only when every step succeeded: a merge that fails
        // half way (a matrix that is no longer positive definite) leaves the router as it was,
        // still routing and saving. The checks above ran on the state itself, before the copy.
        let mut state = guard.clone();
        let config = &self.shared.config;
        for (j, &new_j) in new.iter().enumerate() {
            let forgot = other.forgets[j] > base.map_or(0, |b| b.forgets[j]);
            if forgot {
                state.learned.forget(config, j);
                state.forgets[j] += 1;
            }
            let b = if forgot {
                None
            } else {
                base.map(|b| &b.learned)
            };
            state.learned.absorb(config, &other.learned, b, j, new_j);
            state.pulls[j] += new_j;
            for k in 0..3 {
                state.cost[j][k] += other.cost[j][k] - base.map_or(0.0, |b| b.cost[j][k]);
            }
        }
        state.observations += other.observations - base.map_or(0, |b| b.observations);
        state.learned.after_merge(config)?;
        *guard = state;
        Ok(())
    }
}
