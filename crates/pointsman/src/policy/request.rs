//! [`Request`]: one query and what a policy may know about it besides its features — the text,
//! the tenant, user, session and episode keys, metadata, required capabilities, the expected
//! answer length, and per-request overrides.

use super::episode::Episode;
use crate::features::QueryFeatures;

/// A query to route under a policy.
///
/// # Example
///
/// ```
/// use pointsman::policy::Request;
/// use pointsman::QueryFeatures;
/// let features = QueryFeatures::new(vec![1.0, 0.0])?.with_prompt_tokens(12.0)?;
/// let request = Request::new(&features)
///     .with_text("Write a Python function")
///     .with_tenant("acme")
///     .with_session("s-42")
///     .with_metadata("channel", "api");
/// assert_eq!(request.tenant.as_deref(), Some("acme"));
/// # Ok::<(), pointsman::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The query's features.
    pub features: &'a QueryFeatures,
    /// The text, for text rules (absent: text rules do not match).
    pub text: Option<&'a str>,
    /// The tenant (budgets per tenant, rules on the tenant).
    pub tenant: Option<String>,
    /// The user (budgets per user).
    pub user: Option<String>,
    /// The session (stickiness).
    pub session: Option<String>,
    /// The agent episode this step belongs to (its budget).
    pub episode: Option<Episode>,
    /// Metadata for rules, `(key, value)` pairs.
    pub metadata: Vec<(String, String)>,
    /// Capabilities the answer needs (`tools`, `vision`, `json_mode`, …).
    pub needs: Vec<String>,
    /// The answer's expected length in tokens (default: each card's default output tokens).
    pub expected_output_tokens: Option<f64>,
    /// The cost weight, replacing the policy's.
    pub cost_weight: Option<f64>,
    /// Only these models may be chosen (intersected with what the policy allows).
    pub allowed: Option<Vec<String>>,
    /// The time of the request, seconds since the Unix epoch (default: now). Budgets' windows
    /// and sessions' time-to-live read it.
    pub now: Option<f64>,
    /// Whether the session is written only when the call is settled ([`PolicyRouter::record`]
    /// or [`PolicyRouter::settle`] with the model that answered), not when it is decided.
    /// False by default: a decision makes its model the session's, for callers that never
    /// report an outcome. A caller that always settles (the gateway) sets it, so that a call
    /// that fails leaves the session where it was.
    ///
    /// [`PolicyRouter::record`]: super::PolicyRouter::record
    /// [`PolicyRouter::settle`]: super::PolicyRouter::settle
    pub session_on_settle: bool,
}

impl<'a> Request<'a> {
    /// A request with nothing but its features.
    pub fn new(features: &'a QueryFeatures) -> Request<'a> {
        Request {
            features,
            text: None,
            tenant: None,
            user: None,
            session: None,
            episode: None,
            metadata: Vec::new(),
            needs: Vec::new(),
            expected_output_tokens: None,
            cost_weight: None,
            allowed: None,
            now: None,
            session_on_settle: false,
        }
    }

    /// Sets the text.
    pub fn with_text(mut self, text: &'a str) -> Self {
        self.text = Some(text);
        self
    }

    /// Sets the tenant.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets the user.
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Sets the session.
    pub fn with_session(mut self, session: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self
    }

    /// Sets the episode.
    pub fn with_episode(mut self, episode: Episode) -> Self {
        self.episode = Some(episode);
        self
    }

    /// Adds a metadata pair.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// Adds a required capability.
    pub fn with_need(mut self, capability: impl Into<String>) -> Self {
        self.needs.push(capability.into());
        self
    }

    /// Sets the expected answer length, tokens.
    pub fn with_expected_output_tokens(mut self, tokens: f64) -> Self {
        self.expected_output_tokens = Some(tokens);
        self
    }

    /// Sets the cost weight.
    pub fn with_cost_weight(mut self, cost_weight: f64) -> Self {
        self.cost_weight = Some(cost_weight);
        self
    }

    /// Restricts the models.
    pub fn with_allowed<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the request's time, seconds since the Unix epoch.
    pub fn at(mut self, now: f64) -> Self {
        self.now = Some(now);
        self
    }
}
