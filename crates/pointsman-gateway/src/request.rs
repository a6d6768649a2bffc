//! Parsing a Chat Completions request: the body (serde_json), the routing options from the
//! body's `pointsman` extension object and from `x-pointsman-*` headers, and the text to route.
//!
//! Everything a client can get wrong is an [`ApiError`] (400), never a panic; the fuzz target
//! `request` feeds arbitrary bytes to [`parse_chat_request`].

use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::ROUTED_MODEL;
use crate::error::ApiError;

/// The body key of the routing options.
pub const EXTENSION_KEY: &str = "pointsman";

/// Header names of the routing options (the body's extension object wins over them).
pub mod headers {
    /// Quality points per USD of expected cost.
    pub const COST_WEIGHT: &str = "x-pointsman-cost-weight";
    /// Maximum expected cost of the request, USD.
    pub const MAX_COST: &str = "x-pointsman-max-cost";
    /// Comma-separated upstream model ids the request may be routed to.
    pub const ALLOWED_MODELS: &str = "x-pointsman-allowed-models";
    /// The tenant (ignored when client tokens are configured: the token decides).
    pub const TENANT: &str = "x-pointsman-tenant";
    /// The session id.
    pub const SESSION_ID: &str = "x-pointsman-session-id";
}

/// Longest tenant or session id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// What the `model` field asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `"pointsman"` (`None`) or `"pointsman:<policy>"`: route.
    Routed(Option<String>),
    /// Any other id: pass the request through to that upstream, unrouted.
    Model(String),
}

impl Target {
    /// Classifies a `model` value.
    pub fn parse(model: &str) -> Target {
        match model.strip_prefix(ROUTED_MODEL) {
            Some("") => Target::Routed(None),
            Some(rest) if rest.starts_with(':') => Target::Routed(Some(rest[1..].to_string())),
            _ => Target::Model(model.to_string()),
        }
    }
}

/// Per-request routing options; every field is optional and falls back to the policy's.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteOptions {
    /// Quality points per USD of expected cost.
    pub cost_weight: Option<f64>,
    /// Maximum expected cost of the request, USD.
    pub max_cost: Option<f64>,
    /// Upstream model ids the request may be routed to.
    pub allowed_models: Option<Vec<String>>,
    /// The tenant (from the token when tokens are configured).
    pub tenant: Option<String>,
    /// The session id (logged and counted; the decision policies of a later issue act on it).
    pub session_id: Option<String>,
}

impl RouteOptions {
    /// Fields not set here are taken from `other`.
    fn or(self, other: RouteOptions) -> RouteOptions {
        RouteOptions {
            cost_weight: self.cost_weight.or(other.cost_weight),
            max_cost: self.max_cost.or(other.max_cost),
            allowed_models: self.allowed_models.or(other.allowed_models),
            tenant: self.tenant.or(other.tenant),
            session_id: self.session_id.or(other.session_id),
        }
    }

    fn validate(&self) -> Result<(), ApiError> {
        let number = |name: &str, v: Option<f64>| match v {
            Some(v) if !v.is_finite() || v < 0.0 => Err(ApiError::bad_request(
                "invalid_routing_option",
                format!("{name} {v} is not a non-negative number"),
            )
            .with_param(format!("{EXTENSION_KEY}.{name}"))),
            _ => Ok(()),
        };
        number("cost_weight", self.cost_weight)?;
        number("max_cost", self.max_cost)?;
        if let Some(allowed) = &self.allowed_models {
            if allowed.is_empty() || allowed.iter().any(|m| m.trim().is_empty()) {
                return Err(ApiError::bad_request(
                    "invalid_routing_option",
                    "allowed_models must be a non-empty list of model ids",
                )
                .with_param(format!("{EXTENSION_KEY}.allowed_models")));
            }
        }
        for (name, v) in [("tenant", &self.tenant), ("session_id", &self.session_id)] {
            if let Some(v) = v {
                if v.is_empty() || v.len() > MAX_ID_LEN || v.chars().any(char::is_control) {
                    return Err(ApiError::bad_request(
                        "invalid_routing_option",
                        format!(
                            "{name} must be 1 to {MAX_ID_LEN} bytes without control characters"
                        ),
                    )
                    .with_param(format!("{EXTENSION_KEY}.{name}")));
                }
            }
        }
        Ok(())
    }
}

/// A parsed Chat Completions request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The `model` field as sent.
    pub model: String,
    /// What the `model` field asks for.
    pub target: Target,
    /// Whether the answer is streamed (`stream: true`).
    pub stream: bool,
    /// The routing options (body extension over headers).
    pub options: RouteOptions,
    /// The body to forward, without the extension object (its `model` is replaced per call).
    pub body: Map<String, Value>,
}

/// What a request body said, as far as it could be read: kept for the decision log of a request
/// that [`parse_chat_request_seen`] refuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// The `model` field when it is a string (`None`: the body is not a JSON object, or its
    /// `model` is absent or not a string).
    pub model: Option<String>,
    /// `stream` when it is a boolean (`false` otherwise).
    pub stream: bool,
}

/// Parses a request body and its headers.
///
/// # Errors
///
/// 400 [`ApiError`]s: `invalid_json` (not a JSON object), `missing_model`, `missing_messages`
/// (absent, not a list, or empty), `invalid_messages` (an entry without a string `role`),
/// `invalid_stream`, `invalid_routing_option` (a bad extension object or header).
pub fn parse_chat_request(body: &[u8], headers: &HeaderMap) -> Result<ChatRequest, ApiError> {
    parse_chat_request_seen(body, headers, &mut Sent::default())
}

/// [`parse_chat_request`], filling `sent` with the `model` and `stream` fields as soon as the
/// body is a JSON object, so that a refused request is logged with what it asked for.
///
/// # Errors
///
/// As [`parse_chat_request`].
pub fn parse_chat_request_seen(
    body: &[u8],
    headers: &HeaderMap,
    sent: &mut Sent,
) -> Result<ChatRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}")))?;
    let Value::Object(mut body) = value else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body is not a JSON object",
        ));
    };
    sent.model = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string);
    sent.stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => {
            return Err(
                ApiError::bad_request("missing_model", "model must be a non-empty string")
                    .with_param("model"),
            )
        }
    };
    match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => {
            if let Some(i) = m
                .iter()
                .position(|m| !matches!(m.get("role"), Some(Value::String(_))))
            {
                return Err(ApiError::bad_request(
                    "invalid_messages",
                    format!("messages[{i}] is not an object with a string role"),
                )
                .with_param(format!("messages[{i}]")));
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "missing_messages",
                "messages must be a non-empty list",
            )
            .with_param("messages"))
        }
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(
                ApiError::bad_request("invalid_stream", "stream must be true or false")
                    .with_param("stream"),
            )
        }
    };
    let from_body = match body.remove(EXTENSION_KEY) {
        None | Some(Value::Null) => RouteOptions::default(),
        Some(v) => serde_json::from_value(v).map_err(|e| {
            ApiError::bad_request(
                "invalid_routing_option",
                format!("the {EXTENSION_KEY} object: {e}"),
            )
            .with_param(EXTENSION_KEY)
        })?,
    };
    let options = from_body.or(options_from_headers(headers)?);
    options.validate()?;
    Ok(ChatRequest {
        target: Target::parse(&model),
        model,
        stream,
        options,
        body,
    })
}

/// The routing options carried by `x-pointsman-*` headers.
///
/// # Errors
///
/// 400 `invalid_routing_option` for a header that is not UTF-8 or not a number where one is
/// expected.
pub fn options_from_headers(headers: &HeaderMap) -> Result<RouteOptions, ApiError> {
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim().to_string()))
                .map_err(|_| bad_header(name, "is not visible ASCII")),
        }
    };
    let number = |name: &str| -> Result<Option<f64>, ApiError> {
        match text(name)? {
            None => Ok(None),
            Some(s) => s
                .parse::<f64>()
                .map(Some)
                .map_err(|_| bad_header(name, &format!("{s:?} is not a number"))),
        }
    };
    Ok(RouteOptions {
        cost_weight: number(headers::COST_WEIGHT)?,
        max_cost: number(headers::MAX_COST)?,
        allowed_models: text(headers::ALLOWED_MODELS)?.map(|s| {
            s.split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect()
        }),
        tenant: text(headers::TENANT)?,
        session_id: text(headers::SESSION_ID)?,
    })
}

fn bad_header(name: &str, what: &str) -> ApiError {
    ApiError::bad_request("invalid_routing_option", format!("header {name} {what}"))
        .with_param(name)
}

impl ChatRequest {
    /// The text routed: the last `turns` user messages, oldest first, joined by blank lines.
    /// A message's content is a string or a list of parts, whose `text` parts are joined.
    /// Empty when no user message carries text.
    pub fn routing_text(&self, turns: usize) -> String {
        let Some(Value::Array(messages)) = self.body.get("messages") else {
            return String::new();
        };
        let mut texts: Vec<String> = messages
            .iter()
            .rev()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| content_text(m.get("content")))
            .filter(|t| !t.trim().is_empty())
            .take(turns)
            .collect();
        texts.reverse();
        texts.join("\n\n")
    }

    /// All the text of the conversation's messages (for the prompt-token estimate of the cost).
    pub fn prompt_text(&self) -> String {
        let Some(Value::Array(messages)) = self.body.get("messages") else {
            return String::new();
        };
        messages
            .iter()
            .map(|m| content_text(m.get("content")))
            .collect::<Vec<_>>()
            .concat()
    }

    /// The body to send to an upstream: this request's body with `model` set to `model` and,
    /// for a stream, `stream_options.include_usage` set so that the last event carries usage.
    pub fn upstream_body(&self, model: &str) -> Vec<u8> {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(model.to_string()));
        if self.stream {
            let opts = body
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Map::new()));
            if !opts.is_object() {
                *opts = Value::Object(Map::new());
            }
            if let Value::Object(o) = opts {
                o.insert("include_usage".into(), Value::Bool(true));
            }
        }
        serde_json::to_vec(&body).expect("a JSON map always serialises")
    }
}

fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                Value::Object(o) => o.get("text").and_then(Value::as_str),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<ChatRequest, ApiError> {
        parse_chat_request(body.as_bytes(), &HeaderMap::new())
    }

    #[test]
    fn targets() {
        assert_eq!(Target::parse("pointsman"), Target::Routed(None));
        assert_eq!(
            Target::parse("pointsman:cheap"),
            Target::Routed(Some("cheap".into()))
        );
        assert_eq!(
            Target::parse("pointsmanx"),
            Target::Model("pointsmanx".into())
        );
        assert_eq!(Target::parse("gpt-x"), Target::Model("gpt-x".into()));
    }

    #[test]
    fn errors_are_400_with_codes() {
        for (body, code) in [
            ("{", "invalid_json"),
            ("[1]", "invalid_json"),
            (
                r#"{"messages": [{"role": "user", "content": "x"}]}"#,
                "missing_model",
            ),
            (r#"{"model": "pointsman"}"#, "missing_messages"),
            (
                r#"{"model": "pointsman", "messages": []}"#,
                "missing_messages",
            ),
            (
                r#"{"model": "pointsman", "messages": [{"content": "x"}]}"#,
                "invalid_messages",
            ),
            (
                r#"{"model": "p", "messages": [{"role": "user"}], "stream": "yes"}"#,
                "invalid_stream",
            ),
            (
                r#"{"model": "p", "messages": [{"role": "user"}], "pointsman": {"cost_weight": -1}}"#,
                "invalid_routing_option",
            ),
            (
                r#"{"model": "p", "messages": [{"role": "user"}], "pointsman": {"nope": 1}}"#,
                "invalid_routing_option",
            ),
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
            assert_eq!(e.code, code, "{body}");
        }
    }

    #[test]
    fn a_refused_body_still_says_its_model_and_stream() {
        for (body, model, stream) in [
            (
                r#"{"model": "pointsman", "stream": true, "messages": []}"#,
                Some("pointsman"),
                true,
            ),
            (
                r#"{"model": "m", "stream": true, "messages": [{"content": "x"}]}"#,
                Some("m"),
                true,
            ),
            (
                r#"{"model": "m", "stream": "yes", "messages": [{"role": "user"}]}"#,
                Some("m"),
                false,
            ),
            (
                r#"{"model": "m", "stream": true, "messages": [{"role": "user"}], "pointsman": {"cost_weight": -1}}"#,
                Some("m"),
                true,
            ),
            (r#"{"model": 7, "stream": true}"#, None, true),
            ("[1]", None, false),
        ] {
            let mut sent = Sent::default();
            assert!(
                parse_chat_request_seen(body.as_bytes(), &HeaderMap::new(), &mut sent).is_err()
            );
            assert_eq!(
                (sent.model.as_deref(), sent.stream),
                (model, stream),
                "{body}"
            );
        }
    }

    #[test]
    fn options_body_over_headers() {
        let mut h = HeaderMap::new();
        h.insert(headers::COST_WEIGHT, "10".parse().unwrap());
        h.insert(headers::MAX_COST, "0.5".parse().unwrap());
        h.insert(headers::ALLOWED_MODELS, " a, b ,".parse().unwrap());
        h.insert(headers::SESSION_ID, "s1".parse().unwrap());
        let body = r#"{"model": "pointsman:cheap", "stream": true,
            "messages": [{"role": "user", "content": "hi"}],
            "pointsman": {"cost_weight": 20, "tenant": "t"}}"#;
        let r = parse_chat_request(body.as_bytes(), &h).unwrap();
        assert_eq!(r.options.cost_weight, Some(20.0));
        assert_eq!(r.options.max_cost, Some(0.5));
        assert_eq!(r.options.allowed_models, Some(vec!["a".into(), "b".into()]));
        assert_eq!(r.options.tenant.as_deref(), Some("t"));
        assert_eq!(r.options.session_id.as_deref(), Some("s1"));
        assert!(r.stream);
        assert!(!r.body.contains_key(EXTENSION_KEY));
        let up: Value = serde_json::from_slice(&r.upstream_body("m")).unwrap();
        assert_eq!(up["model"], "m");
        assert_eq!(up["stream_options"]["include_usage"], true);
        h.insert(headers::MAX_COST, "lots".parse().unwrap());
        let e = parse_chat_request(body.as_bytes(), &h).unwrap_err();
        assert_eq!(e.param.as_deref(), Some(headers::MAX_COST));
    }

    #[test]
    fn routing_text_takes_the_last_user_turns() {
        let r = parse(
            r#"{"model": "pointsman", "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}]},
                {"role": "user", "content": ""}]}"#,
        )
        .unwrap();
        assert_eq!(r.routing_text(1), "second");
        assert_eq!(r.routing_text(2), "first\n\nsecond");
        assert_eq!(r.routing_text(9), "first\n\nsecond");
        assert_eq!(r.prompt_text(), "be brieffirstoksecond");
    }
}
