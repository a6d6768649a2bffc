//! Stickiness: with a session key, keep the model the session used last unless the router's new
//! choice beats it by more than a margin of utility. Switching models in the middle of a
//! conversation changes its voice and loses the upstream's prompt cache; the margin says how
//! much expected utility that is worth.
//!
//! The session's last model lives in the policy's state as a last-writer entry with its time; an
//! entry older than `ttl_seconds` is ignored, and the in-process state forgets the least
//! recently used sessions beyond `capacity`. A previous model that the request does not allow
//! (a rule, a cap, a budget, a required capability) is not kept.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The stickiness section of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StickyConfig {
    /// The utility by which a new choice must beat the session's model to switch (default
    /// 0.05).
    pub margin: f64,
    /// Seconds after which a session's model is forgotten (default 3600).
    pub ttl_seconds: f64,
    /// Sessions the in-process state remembers (default 100 000).
    pub capacity: usize,
}

impl Default for StickyConfig {
    fn default() -> Self {
        StickyConfig {
            margin: 0.05,
            ttl_seconds: 3600.0,
            capacity: 100_000,
        }
    }
}

impl StickyConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("sticky: {m}")));
        if !self.margin.is_finite() || self.margin < 0.0 {
            return bad(format!(
                "margin {} is not a non-negative number",
                self.margin
            ));
        }
        // Finite: a policy saved as JSON (which has no infinity) must load back.
        if !self.ttl_seconds.is_finite() || self.ttl_seconds <= 0.0 {
            return bad(format!(
                "ttl_seconds {} is not a positive number of seconds (for sessions that never \
                 expire, a large one: 1e9)",
                self.ttl_seconds
            ));
        }
        if self.capacity == 0 {
            return bad("capacity must be at least 1".into());
        }
        Ok(())
    }
}
