//! [`Audit`]: what each part of a policy did to one decision, so that it can be explained later:
//! the rules that fired, the models excluded and why, the guard's score and verdict, each
//! budget's state, the cost weight actually used, and whether stickiness kept or broke the
//! session's model. It serialises to JSON (the CLI's decisions, the gateway's decision log, the
//! C library's accessor); Python gets it as a dict.

use serde::{Deserialize, Serialize};

use super::budget::BudgetStatus;
use super::state::Hold;

/// Why a model was excluded from a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exclusion {
    /// The model.
    pub model: String,
    /// Why: `rule <name>`, `capability <flag>`, `context_window`, `max_cost`, `max_latency`,
    /// `max_energy`, `budget <key>`.
    pub reason: String,
}

/// The guard's part in a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardAudit {
    /// The query's score.
    pub score: f64,
    /// The threshold.
    pub threshold: f64,
    /// `pass`, `fallback` or `refuse`.
    pub verdict: String,
}

/// Stickiness's part in a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StickyAudit {
    /// The session's previous model, if it had a live one.
    pub previous: Option<String>,
    /// Whether the previous model was kept over the router's choice.
    pub kept: bool,
    /// The router's choice's utility minus the previous model's (`None`: no comparison was
    /// made: no previous model, the same model, or the previous one is not allowed now).
    pub gain: Option<f64>,
}

/// What the parts of a policy did to one decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    /// The rules that matched, in order.
    pub rules: Vec<String>,
    /// The model a rule or the guard forced, if any.
    pub forced: Option<String>,
    /// The models excluded, with the reason (the first that applied).
    pub excluded: Vec<Exclusion>,
    /// The guard, when the policy has one.
    pub guard: Option<GuardAudit>,
    /// Each budget of the request, as it stood before this decision.
    pub budgets: Vec<BudgetStatus>,
    /// The cost weight the choice used.
    pub cost_weight: f64,
    /// Stickiness, when the request carried a session and the policy keeps sessions.
    pub sticky: Option<StickyAudit>,
    /// The refusal, when the policy refused: `out_of_distribution`, `budget_exhausted` or
    /// `no_model_fits`.
    pub refused: Option<String>,
    /// The expected cost held on each budget until the call's cost is settled, when the
    /// policy's state holds ([`super::PolicyState::holds`]: a state shared between replicas).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<Hold>,
}

impl Audit {
    /// The audit as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an audit always serialises")
    }
}
