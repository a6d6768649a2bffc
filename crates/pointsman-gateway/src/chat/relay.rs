//! A streamed answer passed on to the client event by event (no buffering of the whole answer):
//! the model set to the one that answered, the final usage event priced, a failure after the
//! first byte (a broken, stalled or truncated upstream stream) ended with an error event, and
//! the stream cut when shutdown's grace period is over. Split from `chat.rs`, whose request
//! path it ends.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde_json::Value;

use super::{
    account, breaker_outcome, set_headers, shutdown_error, Answer, Plan, Record, SHUTDOWN,
};
use crate::engine::Price;
use crate::error::ApiError;
use crate::metrics::ErrorLabels;
use crate::server::AppState;
use crate::sse::{encode_event, parse_event, Payload};
use crate::upstream::{Chunk, Failure, OpenStream};

/// A stream being passed on: one upstream event in, one event out.
struct Relay {
    open: OpenStream,
    record: Record,
    state: Arc<AppState>,
    model: String,
    price: Option<Price>,
    expected: Option<f64>,
    first: Option<Bytes>,
    saw_done: bool,
    finished: bool,
    /// Turns true when shutdown's grace period is over: the stream is then cut.
    cut: tokio::sync::watch::Receiver<bool>,
}

impl Relay {
    fn event(&mut self, raw: &[u8], out: &mut BytesMut) {
        match parse_event(raw) {
            Ok(Payload::Json(mut object)) => {
                object.insert("model".into(), Value::String(self.model.clone()));
                if object.get("usage").is_some_and(Value::is_object) {
                    let (usage, cost) = account(&mut object, self.price, self.expected);
                    let request_id = self.record.request_id();
                    let ev = self.record.ev();
                    let from_usage = usage.is_some();
                    ev.usage = usage;
                    ev.cost_usd = cost;
                    self.state.feedback.set_cost(&request_id, cost, from_usage);
                }
                out.extend_from_slice(&encode_event(&object));
            }
            Ok(Payload::Done) => {
                self.saw_done = true;
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
            Ok(Payload::Other) | Err(_) => {
                // Passed on as it came: the first byte has left, there is no going back.
                out.extend_from_slice(raw);
                out.extend_from_slice(b"\n\n");
            }
        }
    }

    fn drain(&mut self, out: &mut BytesMut) {
        loop {
            if self.saw_done {
                // The answer is whole at `[DONE]`: logged, charged and open to feedback before
                // the client reads it (a client may post feedback, or close, right after); what
                // an upstream sends after it is not passed on.
                self.finished = true;
                self.record.finish(200, None);
                return;
            }
            match self.open.splitter.next_event() {
                Ok(Some(raw)) => self.event(&raw, out),
                Ok(None) => return,
                Err(e) => {
                    let failure = Failure::Malformed(e);
                    self.fail(&format!("{failure} during the stream"), out);
                    return;
                }
            }
        }
    }

    /// Ends a stream whose upstream failed after the first byte (`what`: how, for the error
    /// event and the warning): the try becomes `stream_error`, the failure is counted and told
    /// to the circuit breaker, and the client gets an `upstream_stream_failed` error event.
    fn fail(&mut self, what: &str, out: &mut BytesMut) {
        self.fail_as(what, "upstream_stream_failed", out);
    }

    /// [`Relay::fail`], logging the decision with the error `logged`.
    fn fail_as(&mut self, what: &str, logged: &'static str, out: &mut BytesMut) {
        self.finished = true;
        let index = self
            .state
            .config
            .upstream_index(&self.model)
            .expect("streams come from upstream models");
        breaker_outcome(&self.state, index, false);
        self.state
            .metrics
            .upstream_errors
            .get_or_create(&ErrorLabels {
                model: self.model.clone(),
                kind: "stream_error",
            })
            .inc();
        if let Some(t) = self.record.ev().tries.last_mut() {
            t.outcome = "stream_error".into();
        }
        tracing::warn!(model = %self.model, error = %what, "upstream stream failed after its first byte");
        let error = ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_stream_failed",
            format!("the upstream {} {what}", self.model),
        );
        error_event(&error, out);
        self.record.finish(200, Some(logged));
    }

    /// Ends the stream because shutdown's grace period is over: an error event `shutdown`
    /// (the upstream did nothing wrong: neither counted nor told to its breaker).
    fn cut_short(&mut self, out: &mut BytesMut) {
        self.finished = true;
        let error = shutdown_error();
        error_event(&error, out);
        self.record.finish(200, Some(SHUTDOWN));
    }

    async fn next(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        let mut out = BytesMut::new();
        if let Some(first) = self.first.take() {
            self.event(&first, &mut out);
            self.drain(&mut out);
            return Some(out.freeze());
        }
        loop {
            // Checked before each read too: a stream whose chunks are always ready would
            // otherwise win every race below and never see the cut.
            if self.state.is_cut() {
                self.cut_short(&mut out);
                return Some(out.freeze());
            }
            let chunk = tokio::select! {
                biased;
                chunk = self.open.next_chunk() => chunk,
                () = crate::server::cut_signal(&mut self.cut) => {
                    self.cut_short(&mut out);
                    return Some(out.freeze());
                }
            };
            match chunk {
                Chunk::Data(bytes) => {
                    self.open.splitter.push(&bytes);
                    self.drain(&mut out);
                    if !out.is_empty() {
                        return Some(out.freeze());
                    }
                }
                Chunk::End => {
                    if let Some(rest) = self.open.splitter.rest() {
                        self.event(&rest, &mut out);
                    }
                    if self.saw_done {
                        self.finished = true;
                        self.record.finish(200, None);
                    } else {
                        // A clean end without `[DONE]`: the answer was cut short, a failure
                        // like a stall or a broken connection.
                        self.fail_as(
                            "closed the stream before its end (no data: [DONE])",
                            "upstream_stream_truncated",
                            &mut out,
                        );
                    }
                    return (!out.is_empty()).then(|| out.freeze());
                }
                Chunk::Failed(failure) => {
                    self.fail(&format!("{failure} during the stream"), &mut out);
                    return Some(out.freeze());
                }
            }
        }
    }
}

/// `data: <error object>` and the blank line.
fn error_event(error: &ApiError, out: &mut BytesMut) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(error.body().as_bytes());
    out.extend_from_slice(b"\n\n");
}

pub(super) fn stream(
    state: &Arc<AppState>,
    rec: &mut Record,
    plan: &Plan,
    answer: Answer,
    mut open: OpenStream,
) -> Response {
    let request_id = rec.request_id();
    rec.sent_status = Some(200);
    rec.answered = true;
    let ev = rec.ev();
    ev.model = Some(answer.model.clone());
    // The expected cost until the final usage event says otherwise (a stream without one, or
    // with unusable usage, costs its expected cost).
    ev.cost_usd = answer.expected;
    let tenant = ev.tenant.clone();
    state
        .feedback
        .insert(&request_id, plan.query.clone(), &answer.model, tenant);
    state.feedback.set_cost(&request_id, answer.expected, false);
    let first = std::mem::take(&mut open.first);
    let relay = Relay {
        open,
        record: rec.take(),
        state: state.clone(),
        model: answer.model,
        price: answer.price,
        expected: answer.expected,
        first: Some(first),
        saw_done: false,
        finished: false,
        cut: state.cut_receiver(),
    };
    let body = futures_util::stream::unfold(relay, |mut relay| async move {
        relay
            .next()
            .await
            .map(|bytes| (Ok::<Bytes, Infallible>(bytes), relay))
    });
    let mut r = (
        StatusCode::OK,
        [
            (http::header::CONTENT_TYPE, "text/event-stream"),
            (http::header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response();
    set_headers(&mut r, &answer.headers);
    r
}
