//! A stub upstream for tests and benches: it speaks the Chat Completions API (whole answers and
//! SSE streams with a final usage event), answers deterministically, and can be told to fail.
//!
//! The answer to a request is `"<name> answers <model>: <digest>"`, where the digest is the
//! first 8 hex digits of the sha256 of the request's `messages`; usage counts the messages'
//! characters / 4 (rounded up) as prompt tokens and the answer's words as completion tokens.
//! A request's `stub_usage` field (any JSON value) is reported as the usage instead, as it is
//! (tests of usage an upstream gets wrong).
//!
//! Faults ([`Fault`]) come from, in order: `POST /_stub/fault {"fault": "..."}` (for every later
//! request), a `<fault>:` prefix of the requested model (`"hang:m"`), or the stub's default.
//! `GET /_stub/stats` counts the chat requests received.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

/// How the stub misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    None,
    /// 500.
    Fail,
    /// Never answer (for `hang_secs`).
    Hang,
    /// 429.
    RateLimit,
    /// 200 with a body that is not JSON (for a stream: a first event that is not JSON).
    BadJson,
    /// Stream two events, then hang (non-streaming requests answer normally).
    HangMidStream,
    /// Fail every other request with 500.
    Flaky,
    /// 400 with an OpenAI error body, as an upstream refusing a prompt over its context window.
    Reject,
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Fault, String> {
        Ok(match s {
            "none" => Fault::None,
            "fail" => Fault::Fail,
            "hang" => Fault::Hang,
            "429" => Fault::RateLimit,
            "badjson" => Fault::BadJson,
            "hang-stream" => Fault::HangMidStream,
            "flaky" => Fault::Flaky,
            "reject" => Fault::Reject,
            other => {
                return Err(format!(
                    "unknown fault {other:?} (none, fail, hang, 429, badjson, hang-stream, flaky, reject)"
                ))
            }
        })
    }
}

/// The stub's settings.
#[derive(Debug, Clone)]
pub struct StubConfig {
    /// Its name, in every answer.
    pub name: String,
    /// The fault when neither the runtime setting nor the model name gives one.
    pub fault: Fault,
    /// Pause between stream events.
    pub chunk_delay: Duration,
    /// How long a hang lasts (bounded, so a forgotten stub still stops answering late).
    pub hang: Duration,
}

impl Default for StubConfig {
    fn default() -> Self {
        StubConfig {
            name: "stub".into(),
            fault: Fault::None,
            chunk_delay: Duration::ZERO,
            hang: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Stub {
    config: StubConfig,
    fault: Mutex<Option<Fault>>,
    requests: AtomicU64,
}

/// A stub serving on a socket (stopped when dropped).
#[derive(Debug)]
pub struct StubHandle {
    /// Its address.
    pub addr: SocketAddr,
    stub: Arc<Stub>,
    task: tokio::task::JoinHandle<()>,
}

impl StubHandle {
    /// `http://ADDR/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Chat requests received so far.
    pub fn requests(&self) -> u64 {
        self.stub.requests.load(Ordering::Relaxed)
    }

    /// Sets the fault of every later request (`None`: back to the model name and default).
    pub fn set_fault(&self, fault: Option<Fault>) {
        *self.stub.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }
}

impl Drop for StubHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a stub on `listener`.
pub fn spawn(listener: TcpListener, config: StubConfig) -> std::io::Result<StubHandle> {
    let addr = listener.local_addr()?;
    let stub = Arc::new(Stub {
        config,
        fault: Mutex::new(None),
        requests: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/_stub/fault", post(set_fault))
        .route("/_stub/stats", get(stats))
        .with_state(stub.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(StubHandle { addr, stub, task })
}

async fn set_fault(State(stub): State<Arc<Stub>>, body: Bytes) -> Response {
    let parsed: Result<Option<Fault>, String> = serde_json::from_slice::<Value>(&body)
        .map_err(|e| e.to_string())
        .and_then(|v| match v.get("fault").and_then(Value::as_str) {
            None => Ok(None),
            Some(f) => f.parse().map(Some),
        });
    match parsed {
        Ok(f) => {
            *stub.fault.lock().unwrap_or_else(|p| p.into_inner()) = f;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

async fn stats(State(stub): State<Arc<Stub>>) -> Response {
    axum::Json(json!({"name": stub.config.name, "requests": stub.requests.load(Ordering::Relaxed)}))
        .into_response()
}

async fn chat(State(stub): State<Arc<Stub>>, body: Bytes) -> Response {
    let n = stub.requests.fetch_add(1, Ordering::Relaxed);
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "{\"error\":{\"message\":\"not JSON\"}}",
        )
            .into_response();
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let runtime = *stub.fault.lock().unwrap_or_else(|p| p.into_inner());
    let by_name = model.split_once(':').and_then(|(f, _)| f.parse().ok());
    let fault = runtime.or(by_name).unwrap_or(stub.config.fault);
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    match fault {
        Fault::Fail => return error(StatusCode::INTERNAL_SERVER_ERROR, "stub told to fail"),
        Fault::Flaky if n % 2 == 0 => return error(StatusCode::INTERNAL_SERVER_ERROR, "flaky"),
        Fault::RateLimit => return error(StatusCode::TOO_MANY_REQUESTS, "slow down"),
        Fault::Reject => {
            return error(
                StatusCode::BAD_REQUEST,
                "the prompt is longer than the model's context window",
            )
        }
        Fault::Hang => {
            tokio::time::sleep(stub.config.hang).await;
            return error(StatusCode::INTERNAL_SERVER_ERROR, "hung");
        }
        Fault::BadJson if !stream => {
            return (
                StatusCode::OK,
                [(http::header::CONTENT_TYPE, "application/json")],
                "{\"id\": \"x\", \"choices\": [",
            )
                .into_response()
        }
        _ => {}
    }
    let messages = req.get("messages").cloned().unwrap_or(Value::Null);
    let digest: String = Sha256::digest(messages.to_string().as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let content = format!("{} answers {model}: {digest}", stub.config.name);
    let chars: usize = messages
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .map(|c| c.chars().count())
        .sum();
    let prompt_tokens = chars.div_ceil(4) as u64;
    let words: Vec<&str> = content.split(' ').collect();
    let completion_tokens = words.len() as u64;
    let usage = req.get("stub_usage").cloned().unwrap_or_else(|| {
        json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        })
    });
    let id = format!("chatcmpl-{}-{n}", stub.config.name);
    if !stream {
        return axum::Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": usage,
        }))
        .into_response();
    }
    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events: Vec<String> = Vec::new();
    if fault == Fault::BadJson {
        events.push("{\"id\": broken".into());
    }
    events.push(chunk(json!({"role": "assistant", "content": ""}), Value::Null).to_string());
    for (i, w) in words.iter().enumerate() {
        let piece = if i + 1 < words.len() {
            format!("{w} ")
        } else {
            w.to_string()
        };
        events.push(chunk(json!({"content": piece}), Value::Null).to_string());
    }
    events.push(chunk(json!({}), json!("stop")).to_string());
    if include_usage {
        events.push(json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [], "usage": usage}).to_string());
    }
    events.push("[DONE]".into());
    let hang_after = (fault == Fault::HangMidStream).then_some(2);
    let delay = stub.config.chunk_delay;
    let hang = stub.config.hang;
    let body = futures_util::stream::unfold(0usize, move |i| {
        let event = events.get(i).cloned();
        async move {
            if hang_after == Some(i) {
                tokio::time::sleep(hang).await;
                return None;
            }
            let event = event?;
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((
                Ok::<Bytes, Infallible>(Bytes::from(format!("data: {event}\n\n"))),
                i + 1,
            ))
        }
    });
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        json!({"error": {"message": message, "type": "stub_error", "param": null, "code": null}})
            .to_string(),
    )
        .into_response()
}
