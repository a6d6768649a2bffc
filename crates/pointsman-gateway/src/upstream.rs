//! Calling an upstream model: one shared HTTP client (reqwest on rustls), and per upstream a
//! concurrency limit, a timeout and a circuit breaker. A call either succeeds, fails in a way
//! that warrants the next alternative ([`Failure`]: connection error, timeout, 5xx, 429, a
//! malformed answer), or is the client's own fault (another 4xx), which is passed back unchanged.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::breaker::Breaker;
use crate::config::{FallbackConfig, UpstreamConfig};
use crate::error::GatewayError;
use crate::sse::{parse_event, Payload, Splitter};

/// One upstream model endpoint.
#[derive(Debug)]
pub struct Upstream {
    /// Its configuration.
    pub config: UpstreamConfig,
    url: reqwest::Url,
    api_key: Option<String>,
    permits: Arc<Semaphore>,
    /// Its circuit breaker.
    pub breaker: Breaker,
}

/// Why a call did not produce an answer; each one moves on to the next alternative.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The connection failed or broke.
    Connect(String),
    /// No answer (or, for a stream, no first event) within the upstream's timeout.
    Timeout,
    /// A 5xx answer (or another non-success status that is not the client's fault).
    Status(u16),
    /// 429.
    RateLimited,
    /// A success status with a body that is not the expected JSON (or SSE).
    Malformed(String),
}

impl Failure {
    /// The name used in logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Connect(_) => "connect",
            Failure::Timeout => "timeout",
            Failure::Status(_) => "status",
            Failure::RateLimited => "rate_limited",
            Failure::Malformed(_) => "malformed",
        }
    }

    /// The upstream's status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Status(s) => Some(*s),
            Failure::RateLimited => Some(429),
            _ => None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connection failed: {e}"),
            Failure::Timeout => write!(f, "timed out"),
            Failure::Status(s) => write!(f, "answered {s}"),
            Failure::RateLimited => write!(f, "answered 429 (rate limited)"),
            Failure::Malformed(e) => write!(f, "malformed answer: {e}"),
        }
    }
}

/// A successful call.
#[derive(Debug)]
pub enum Reply {
    /// A whole answer (JSON object).
    Complete(Map<String, Value>),
    /// A stream whose first event has arrived.
    Stream(OpenStream),
    /// A 4xx other than 429: the client's fault, passed back as it is.
    ClientError {
        /// The status.
        status: StatusCode,
        /// The body (bounded).
        body: Bytes,
    },
}

/// An upstream stream after its first event: the rest is read with [`OpenStream::next_chunk`].
#[derive(Debug)]
pub struct OpenStream {
    response: reqwest::Response,
    /// Events cut so far and not yet passed on (the first one at least).
    pub splitter: Splitter,
    /// The first event, already parsed and checked.
    pub first: Bytes,
    idle: Duration,
    _permit: OwnedSemaphorePermit,
}

/// What reading a stream further gave.
#[derive(Debug)]
pub enum Chunk {
    /// More bytes.
    Data(Bytes),
    /// The upstream ended the stream.
    End,
    /// The stream broke (a failure after the first byte: no fallback is possible).
    Failed(Failure),
}

impl OpenStream {
    /// The next bytes of the stream, waiting at most the upstream's timeout.
    pub async fn next_chunk(&mut self) -> Chunk {
        match tokio::time::timeout(self.idle, self.response.chunk()).await {
            Err(_) => Chunk::Failed(Failure::Timeout),
            Ok(Err(e)) => Chunk::Failed(transport_failure(&e)),
            Ok(Ok(None)) => Chunk::End,
            Ok(Ok(Some(b))) => Chunk::Data(b),
        }
    }
}

/// The shared HTTP client: rustls (reqwest's default provider), no proxies (upstreams are named
/// by address).
///
/// # Errors
///
/// [`GatewayError::Config`] when the client cannot be built.
pub fn client() -> Result<reqwest::Client, GatewayError> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| GatewayError::Config(format!("cannot build the HTTP client: {e}")))
}

impl Upstream {
    /// An upstream from its configuration; its API key is read from the environment now.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Config`] when `api_key_env` names an unset variable.
    pub fn new(
        config: UpstreamConfig,
        fallback: &FallbackConfig,
    ) -> Result<Upstream, GatewayError> {
        let mut url = reqwest::Url::parse(&config.base_url)
            .map_err(|e| GatewayError::Config(format!("{}: {e}", config.base_url)))?;
        let path = format!("{}/chat/completions", url.path().trim_end_matches('/'));
        url.set_path(&path);
        let api_key = match &config.api_key_env {
            None => None,
            Some(var) => Some(std::env::var(var).map_err(|_| {
                GatewayError::Config(format!(
                    "upstream {}: environment variable {var} (api_key_env) is not set",
                    config.model
                ))
            })?),
        };
        Ok(Upstream {
            url,
            api_key,
            permits: Arc::new(Semaphore::new(config.max_concurrency)),
            breaker: Breaker::new(
                fallback.breaker_failures,
                Duration::from_millis(fallback.breaker_cooldown_ms),
            ),
            config,
        })
    }

    /// Calls the upstream with `body` (a Chat Completions request for this upstream's model).
    /// Waiting for a free slot counts against the timeout.
    ///
    /// # Errors
    ///
    /// A [`Failure`]: the caller moves on to its next alternative.
    pub async fn call(
        &self,
        client: &reqwest::Client,
        body: Vec<u8>,
        stream: bool,
        max_body: usize,
    ) -> Result<Reply, Failure> {
        let deadline = Instant::now() + self.config.timeout();
        match tokio::time::timeout_at(deadline, self.call_inner(client, body, stream, max_body))
            .await
        {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout),
        }
    }

    async fn call_inner(
        &self,
        client: &reqwest::Client,
        body: Vec<u8>,
        stream: bool,
        max_body: usize,
    ) -> Result<Reply, Failure> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut request = client
            .post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        if stream {
            request = request.header(http::header::ACCEPT, "text/event-stream");
        }
        let mut response = request.send().await.map_err(|e| transport_failure(&e))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Failure::RateLimited);
        }
        if status.is_client_error() {
            let body = read_bounded(&mut response, max_body.min(64 << 10))
                .await
                .unwrap_or_default();
            return Ok(Reply::ClientError { status, body });
        }
        if !status.is_success() {
            return Err(Failure::Status(status.as_u16()));
        }
        if !stream {
            let bytes = read_bounded(&mut response, max_body).await?;
            return match serde_json::from_slice(&bytes) {
                Ok(Value::Object(o)) => Ok(Reply::Complete(o)),
                Ok(_) => Err(Failure::Malformed("the answer is not a JSON object".into())),
                Err(e) => Err(Failure::Malformed(format!("the answer is not JSON: {e}"))),
            };
        }
        let mut splitter = Splitter::default();
        loop {
            match splitter.next_event().map_err(Failure::Malformed)? {
                Some(first) => {
                    match parse_event(&first).map_err(Failure::Malformed)? {
                        // Comments (keep-alives) before the answer are not passed on, so that
                        // nothing reaches the client before the first real event.
                        Payload::Other => continue,
                        Payload::Done => {
                            return Err(Failure::Malformed(
                                "the stream ended before any answer".into(),
                            ))
                        }
                        Payload::Json(_) => {}
                    }
                    return Ok(Reply::Stream(OpenStream {
                        response,
                        splitter,
                        first,
                        idle: self.config.timeout(),
                        _permit: permit,
                    }));
                }
                None => match response.chunk().await {
                    Ok(Some(b)) => splitter.push(&b),
                    Ok(None) => {
                        return Err(Failure::Malformed(
                            "the stream ended before its first event".into(),
                        ))
                    }
                    Err(e) => return Err(transport_failure(&e)),
                },
            }
        }
    }
}

async fn read_bounded(response: &mut reqwest::Response, max: usize) -> Result<Bytes, Failure> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_failure(&e))? {
        if out.len() + chunk.len() > max {
            return Err(Failure::Malformed(format!(
                "the answer is longer than {max} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.into())
}

fn transport_failure(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Timeout
    } else {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            msg = format!("{msg}: {s}");
            source = s.source();
        }
        Failure::Connect(msg)
    }
}
