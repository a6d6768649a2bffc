//! Errors: [`GatewayError`] for starting and reloading, [`ApiError`] for what a client is told,
//! in the error shape of OpenAI's API (`{"error": {"message", "type", "param", "code"}}`).

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

/// What can stop the gateway from starting or a reload from taking effect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// An invalid configuration value, or a router that does not fit the configuration.
    #[error("config: {0}")]
    Config(String),
    /// The engine refused the router file or the embedder.
    #[error(transparent)]
    Engine(#[from] pointsman::Error),
    /// A socket, file or runtime failure.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl GatewayError {
    /// Shorthand for [`GatewayError::Io`].
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        GatewayError::Io {
            what: what.into(),
            source,
        }
    }
}

/// An error answer to a client: a status and OpenAI's error object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, `budget_error`,
    /// `upstream_error`, `server_error`.
    pub kind: &'static str,
    /// A stable machine-readable code (`invalid_json`, `model_not_found`, …; see
    /// `docs/gateway.md`).
    pub code: &'static str,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// A human-readable message naming the offending value.
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
}

impl ApiError {
    /// An error with the given status, type and code.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            kind,
            code,
            param: None,
            message: message.into(),
        }
    }

    /// A 400 `invalid_request_error`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    /// Names the request field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// A 500 `server_error`.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            message,
        )
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::to_string(&Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        })
        .expect("an error object always serialises")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(http::header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_shape() {
        let e = ApiError::bad_request("missing_messages", "messages is required")
            .with_param("messages");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "missing_messages");
        assert_eq!(v["error"]["param"], "messages");
        assert_eq!(v["error"]["message"], "messages is required");
    }
}
