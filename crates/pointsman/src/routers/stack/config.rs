//! The stack's configuration: its members' configs, the pull toward equal weights, and which
//! member's costs it reports.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Configuration of a [`StackRouter`](super::StackRouter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StackConfig {
    /// The members' configs, each a JSON object tagged by kind as a saved router holds it
    /// (`{"type": "knn", …}`). In a saved stack they are the members' own; when fitting, an
    /// empty list means the default members (`knn`, `mf` and `irt`, each by its
    /// cross-validated search).
    pub members: Vec<serde_json::Value>,
    /// L2 pull of each model's member weights toward equal weights, in units of one query.
    pub shrinkage: f64,
    /// The member whose expected costs and signals the stack reports; `None`: the first member
    /// whose costs come from neighbours (a kNN router), else the first member.
    pub cost_member: Option<usize>,
    /// Seed of the folds whose out-of-fold estimates the weights are fitted on (and of the
    /// members' searches), when the stack is fitted.
    pub seed: u64,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            members: Vec::new(),
            shrinkage: 10.0,
            cost_member: None,
            seed: 0,
        }
    }
}

impl StackConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        if !(self.shrinkage.is_finite() && self.shrinkage >= 0.0) {
            return Err(Error::Config(format!(
                "stack shrinkage {} is not a non-negative number",
                self.shrinkage
            )));
        }
        if self.members.len() > super::MAX_MEMBERS {
            return Err(Error::Config(format!(
                "a stack holds at most {} members, not {}",
                super::MAX_MEMBERS,
                self.members.len()
            )));
        }
        if let Some(c) = self.cost_member {
            if !self.members.is_empty() && c >= self.members.len() {
                return Err(Error::Config(format!(
                    "stack cost_member {c} is not one of its {} members",
                    self.members.len()
                )));
            }
        }
        if self
            .members
            .iter()
            .any(|m| !m.is_object() || m.get("type").and_then(serde_json::Value::as_str).is_none())
        {
            return Err(Error::Config(
                "every stack member is a JSON object with a \"type\"".into(),
            ));
        }
        Ok(())
    }
}
