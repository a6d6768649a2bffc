//! Response header names.

/// The request id (also in the decision log).
pub const REQUEST_ID: &str = "x-request-id";
/// The model that answered.
pub const MODEL: &str = "x-pointsman-model";
/// The model the router chose (differs from [`MODEL`] after a fallback).
pub const CHOSEN: &str = "x-pointsman-chosen";
/// The chosen model's utility.
pub const UTILITY: &str = "x-pointsman-utility";
/// The second-ranked model.
pub const RUNNER_UP: &str = "x-pointsman-runner-up";
/// The second-ranked model's utility.
pub const RUNNER_UP_UTILITY: &str = "x-pointsman-runner-up-utility";
/// The routing policy.
pub const POLICY: &str = "x-pointsman-policy";
/// Upstream calls made.
pub const TRIES: &str = "x-pointsman-tries";
/// The USD cost of the answer (not on streams: it is in the final usage event).
pub const COST: &str = "x-pointsman-cost-usd";
/// The W3C `Server-Timing` header of a routed request: `queue` (waiting for an embedding
/// slot), `embed` (embedding the routed text) and `route` (estimates, policies, choice), in
/// milliseconds.
pub const SERVER_TIMING: &str = "server-timing";
