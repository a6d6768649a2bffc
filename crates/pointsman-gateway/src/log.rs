//! The decision log: JSON lines, one `decision` event per chat request and one `feedback` event
//! per feedback call, joined by `request_id`. The schema is specified in `docs/gateway.md`
//! ("Decision log"); [`read`] reads it back (the "bring your own data" import builds on it).
//!
//! The query's embedding is kept compactly ([`LoggedEmbedding`]: base64 of little-endian IEEE
//! half floats), so logs can train routers without keeping users' text; the text itself is
//! logged only when the configuration says so.
//!
//! Events are written by one background thread, in the order they were emitted; nothing is
//! dropped: [`LogWriter::close`] writes everything still queued before it returns.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::GatewayError;

/// The schema version written, and the only one [`read`] accepts.
pub const SCHEMA_VERSION: u32 = 1;

/// The encoding name of [`LoggedEmbedding::data`].
pub const EMBEDDING_ENCODING: &str = "f16le-base64";

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A chat request and how it was answered.
    Decision(Box<DecisionEvent>),
    /// A feedback call.
    Feedback(FeedbackEvent),
}

/// The router that made a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterInfo {
    /// The router kind, as the engine names it.
    pub kind: String,
    /// sha256 (hex) of the router file the gateway loaded.
    pub sha256: String,
    /// Reloads before the one that loaded this router (0: loaded at start).
    pub generation: u64,
    /// A learner's observation count when it decided (`null`: not a learner).
    pub observations: Option<u64>,
}

/// A query embedding, compactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEmbedding {
    /// The embedding model's name.
    pub model: Option<String>,
    /// Number of values.
    pub dim: usize,
    /// Always [`EMBEDDING_ENCODING`].
    pub encoding: String,
    /// Standard base64 (with padding) of `dim` little-endian IEEE 754 half floats.
    pub data: String,
}

impl LoggedEmbedding {
    /// Encodes `values` (rounded to the nearest half float).
    pub fn encode(model: Option<&str>, values: &[f32]) -> Self {
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        LoggedEmbedding {
            model: model.map(str::to_string),
            dim: values.len(),
            encoding: EMBEDDING_ENCODING.to_string(),
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// The values as `f32`.
    ///
    /// # Errors
    ///
    /// An unknown encoding, invalid base64, a length that is not `2 × dim` bytes, or a value
    /// that is not finite.
    pub fn decode(&self) -> Result<Vec<f32>, String> {
        if self.encoding != EMBEDDING_ENCODING {
            return Err(format!(
                "embedding encoding {:?} is not {EMBEDDING_ENCODING:?}",
                self.encoding
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .map_err(|e| format!("embedding data is not base64: {e}"))?;
        if Some(bytes.len()) != self.dim.checked_mul(2) {
            return Err(format!(
                "embedding data holds {} bytes for dim {}",
                bytes.len(),
                self.dim
            ));
        }
        let values: Vec<f32> = bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        match values.iter().position(|v| !v.is_finite()) {
            Some(i) => Err(format!("embedding value {i} is not finite")),
            None => Ok(values),
        }
    }
}

/// The routing objective of a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedObjective {
    /// Quality points per USD.
    pub cost_weight: f64,
    /// Maximum expected cost, USD.
    pub max_cost: Option<f64>,
    /// The allowed models (`null`: every model with an upstream).
    pub allowed: Option<Vec<String>>,
}

/// One model of the ranked decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedCandidate {
    /// The model id.
    pub model: String,
    /// Expected quality.
    pub quality: f64,
    /// Expected cost, USD, at the configured prices.
    pub cost: f64,
    /// What the choice maximised: `quality − cost_weight × cost` for most routers; for one that
    /// explores (LinUCB, Thompson sampling, knn-ucb, cluster-ucb) its score (the quality plus
    /// the exploration bonus, or the posterior draw) takes the place of the quality.
    pub utility: f64,
}

/// One upstream call (or skipped candidate) of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedTry {
    /// The model id.
    pub model: String,
    /// `ok`, `connect`, `timeout`, `status` (5xx), `rate_limited` (429), `malformed`,
    /// `client_error` (another 4xx, passed to the client), `circuit_open` (skipped, no call),
    /// `stream_error` (failed after the first byte was sent).
    pub outcome: String,
    /// The upstream's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Time spent on this try, ms.
    pub latency_ms: f64,
}

/// Token usage as the upstream reported it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoggedUsage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Total tokens (the sum of the two when the upstream did not report a usable total).
    pub total_tokens: u64,
}

/// Latencies of a request, ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LoggedLatency {
    /// Embedding the routed text (queueing for the embedder included).
    pub embed_ms: Option<f64>,
    /// The routing step.
    pub route_ms: Option<f64>,
    /// From the first upstream call to the answer's headers (the whole answer when not
    /// streamed), fallbacks included.
    pub upstream_ms: Option<f64>,
    /// From receiving the request to its end (the last byte sent).
    pub total_ms: f64,
}

/// A `decision` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionEvent {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// The request id (also the `x-request-id` response header).
    pub request_id: String,
    /// Milliseconds since the Unix epoch when the request arrived.
    pub time_ms: u64,
    /// The tenant.
    pub tenant: Option<String>,
    /// The session id.
    pub session_id: Option<String>,
    /// The `model` field as sent (`null` when the body could not be parsed).
    pub requested_model: Option<String>,
    /// The routing policy (`default` for `model: "pointsman"`); `null` when not routed.
    pub policy: Option<String>,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// The router; `null` when not routed.
    pub router: Option<RouterInfo>,
    /// The routed query's embedding; `null` when not routed.
    pub embedding: Option<LoggedEmbedding>,
    /// The prompt length in tokens the cost estimate used.
    pub prompt_tokens_estimate: Option<f64>,
    /// The objective.
    pub objective: Option<LoggedObjective>,
    /// The model the router chose (the requested one when passed through).
    pub chosen: Option<String>,
    /// The probability of that choice (1 when deterministic or passed through; `null` when
    /// randomised with no closed form).
    pub probability: Option<f64>,
    /// The eligible models, chosen first, then by utility (the fallback order).
    pub alternatives: Vec<LoggedCandidate>,
    /// The model that answered (`null` when none did).
    pub model: Option<String>,
    /// The HTTP status returned to the client.
    pub status: u16,
    /// The error code returned to the client, if any (see the error table).
    pub error: Option<String>,
    /// Every upstream call and skipped candidate, in order.
    pub tries: Vec<LoggedTry>,
    /// Latencies.
    pub latency: LoggedLatency,
    /// Token usage of the answer, when the upstream reported it usably (non-negative integer
    /// `prompt_tokens` and `completion_tokens`).
    pub usage: Option<LoggedUsage>,
    /// USD cost of the answer from its usage and the configured prices; the expected cost when
    /// the upstream reported no usable usage (`usage` is then `null`).
    pub cost_usd: Option<f64>,
    /// The routed text, only when `log.prompts` is set.
    pub prompt: Option<String>,
    /// What the policy's decision-policy file did (`pointsman::policy::Audit`: rules fired,
    /// exclusions, guard score and verdict, budgets, the cost weight used, stickiness, a
    /// refusal); absent when the policy has no file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<serde_json::Value>,
}

/// A `feedback` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackEvent {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// The request the feedback is about.
    pub request_id: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The tenant.
    pub tenant: Option<String>,
    /// The quality score given, in [0, 1].
    pub quality: Option<f64>,
    /// The cost the learner was told, USD.
    pub cost_usd: Option<f64>,
    /// Where that cost came from: `given` (the feedback's own `cost_usd`), `usage` (the
    /// upstream's usage at the configured prices), `expected` (the decision's expected cost: the
    /// upstream reported no usable usage) or `none` (no cost known: 0 was learned). An importer
    /// keeps only the observed ones (`given`, `usage`); absent in logs written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_source: Option<String>,
    /// The model that answered the request.
    pub model: Option<String>,
    /// Whether a learner learned from it.
    pub learned: bool,
    /// The learner's observation count afterwards.
    pub observations: Option<u64>,
    /// The HTTP status returned.
    pub status: u16,
    /// The error code returned, if any.
    pub error: Option<String>,
}

/// Appends events to a file from a background thread.
#[derive(Debug)]
pub struct LogWriter {
    tx: Mutex<Option<mpsc::Sender<String>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl LogWriter {
    /// Opens `path` for appending (creating it and its folder).
    ///
    /// # Errors
    ///
    /// [`GatewayError::Io`] when the file cannot be opened.
    pub fn open(path: &Path) -> Result<LogWriter, GatewayError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| GatewayError::io(format!("creating {}", dir.display()), e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| GatewayError::io(format!("opening {}", path.display()), e))?;
        let (tx, rx) = mpsc::channel::<String>();
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("pointsman-log".into())
            .spawn(move || {
                let mut out = BufWriter::new(file);
                while let Ok(line) = rx.recv() {
                    let mut result = out.write_all(line.as_bytes());
                    // Drain what is queued, then flush once.
                    while let (Ok(()), Ok(line)) = (&result, rx.try_recv()) {
                        result = out.write_all(line.as_bytes());
                    }
                    if let Err(e) = result.and_then(|()| out.flush()) {
                        tracing::error!(path = %shown, error = %e, "cannot write the decision log");
                    }
                }
            })
            .map_err(|e| GatewayError::io("starting the log thread", e))?;
        Ok(LogWriter {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues one event (never blocks on the disk).
    pub fn emit(&self, event: &Event) {
        let mut line = serde_json::to_string(event).expect("events always serialise");
        line.push('\n');
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = tx.as_ref() {
            // The receiver lives until close(), which takes the sender first.
            let _ = tx.send(line);
        } else {
            tracing::error!(
                "decision event after the log was closed: {}",
                line.trim_end()
            );
        }
    }

    /// Writes every queued event, flushes and stops the thread.
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// An error reading a log: the 1-based line and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("decision log line {line}: {message}")]
pub struct ReadError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

/// Reads a decision log: one [`Event`] per non-empty line, or an error naming the line (an
/// unreadable line, invalid JSON, an unknown event, another schema version, or an embedding that
/// does not decode). The iterator goes on after an error.
///
/// # Example
///
/// ```
/// let log = br#"{"event":"feedback","schema":1,"request_id":"r1","time_ms":1,"tenant":null,"quality":0.5,"cost_usd":null,"model":"m","learned":true,"observations":3,"status":200,"error":null}"#;
/// let events: Vec<_> = pointsman_gateway::log::read(&log[..]).collect();
/// assert!(matches!(&events[0], Ok(pointsman_gateway::log::Event::Feedback(f)) if f.request_id == "r1"));
/// ```
pub fn read<R: BufRead>(reader: R) -> impl Iterator<Item = Result<Event, ReadError>> {
    reader.split(b'\n').enumerate().filter_map(|(i, line)| {
        let err = |message: String| ReadError {
            line: i + 1,
            message,
        };
        let line = match line {
            Ok(l) => l,
            Err(e) => return Some(Err(err(format!("cannot read: {e}")))),
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        Some(parse_line(&line).map_err(err))
    })
}

/// Reads a whole log file (see [`read`]).
///
/// # Errors
///
/// An I/O error opening the file, or the first [`ReadError`].
pub fn read_file(path: &Path) -> Result<Vec<Event>, GatewayError> {
    let file = std::fs::File::open(path)
        .map_err(|e| GatewayError::io(format!("opening {}", path.display()), e))?;
    read(std::io::BufReader::new(file))
        .collect::<Result<_, _>>()
        .map_err(|e| GatewayError::Config(format!("{}: {e}", path.display())))
}

fn parse_line(line: &[u8]) -> Result<Event, String> {
    let event: Event = serde_json::from_slice(line).map_err(|e| format!("{e}"))?;
    let schema = match &event {
        Event::Decision(d) => d.schema,
        Event::Feedback(f) => f.schema,
    };
    if schema != SCHEMA_VERSION {
        return Err(format!(
            "schema {schema} (this build reads {SCHEMA_VERSION})"
        ));
    }
    if let Event::Decision(d) = &event {
        if let Some(e) = &d.embedding {
            e.decode()?;
        }
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn decision(id: &str) -> DecisionEvent {
        DecisionEvent {
            schema: SCHEMA_VERSION,
            request_id: id.into(),
            time_ms: 1,
            tenant: Some("t".into()),
            session_id: None,
            requested_model: Some("pointsman".into()),
            policy: Some("default".into()),
            stream: false,
            router: Some(RouterInfo {
                kind: "k".into(),
                sha256: "00".into(),
                generation: 0,
                observations: None,
            }),
            embedding: Some(LoggedEmbedding::encode(Some("m"), &[0.6, -0.8, 0.0])),
            prompt_tokens_estimate: Some(3.0),
            objective: None,
            chosen: Some("a".into()),
            probability: Some(1.0),
            alternatives: vec![],
            model: Some("a".into()),
            status: 200,
            error: None,
            tries: vec![],
            latency: LoggedLatency::default(),
            usage: None,
            cost_usd: Some(1e-6),
            prompt: None,
            audit: None,
        }
    }

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/log.jsonl");
        let w = LogWriter::open(&path).unwrap();
        for i in 0..100 {
            w.emit(&Event::Decision(Box::new(decision(&format!("r{i}")))));
        }
        w.close();
        let events = read_file(&path).unwrap();
        assert_eq!(events.len(), 100);
        let Event::Decision(d) = &events[99] else {
            panic!("a decision")
        };
        assert_eq!(d.request_id, "r99");
        let e = d.embedding.as_ref().unwrap().decode().unwrap();
        assert!((e[0] - 0.6).abs() < 1e-3 && (e[1] + 0.8).abs() < 1e-3 && e[2] == 0.0);
    }

    #[test]
    fn bad_lines_name_their_number() {
        let mut d = decision("x");
        d.embedding.as_mut().unwrap().dim = 4;
        let good = serde_json::to_string(&Event::Decision(Box::new(decision("y")))).unwrap();
        let bad_dim = serde_json::to_string(&Event::Decision(Box::new(d))).unwrap();
        let text = format!(
            "{good}\n\n{{\"event\":\"nope\"}}\n{bad_dim}\n{}\n",
            good.replace("\"schema\":1", "\"schema\":2")
        );
        let out: Vec<_> = read(text.as_bytes()).collect();
        assert_eq!(out.len(), 4);
        assert!(out[0].is_ok());
        assert_eq!(out[1].as_ref().unwrap_err().line, 3);
        assert!(out[2]
            .as_ref()
            .unwrap_err()
            .message
            .contains("6 bytes for dim 4"));
        assert!(out[3].as_ref().unwrap_err().message.contains("schema 2"));
    }
}
