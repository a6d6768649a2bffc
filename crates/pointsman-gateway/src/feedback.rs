//! `POST /v1/feedback`: a quality score for an earlier request, fed to an online learner.
//!
//! The gateway remembers the last `learning.feedback_window` answered requests (their query
//! features, the model that answered and its cost); a feedback call names one by its request id.
//! Each request takes one feedback call, once its answer is whole: a stream is remembered when
//! its first byte leaves but takes feedback only once it has ended well (before, 409
//! `request_in_flight`), and one that fails, is cut or is left by its client is forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use pointsman::pool::MAX_COST_USD;

use crate::body::read_body;
use crate::engine::Query;
use crate::error::ApiError;
use crate::log::{Event, FeedbackEvent, SCHEMA_VERSION};
use crate::metrics::OutcomeLabels;
use crate::server::{now_ms, AppState};

/// What is remembered of an answered request.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The routed query (`None` for a request passed through unrouted).
    pub query: Option<Query>,
    /// The model that answered.
    pub model: String,
    /// Its cost, USD, once known.
    pub cost_usd: Option<f64>,
    /// Whether that cost comes from the upstream's usage (else it is the expected cost).
    pub cost_from_usage: bool,
    /// The request's tenant.
    pub tenant: Option<String>,
    given: bool,
    /// Still being answered (a stream before its end).
    pending: bool,
}

/// A bounded map from request id to [`Answered`], forgetting the oldest first.
#[derive(Debug)]
pub struct FeedbackCache {
    capacity: usize,
    inner: Mutex<(HashMap<String, Answered>, VecDeque<String>)>,
}

impl FeedbackCache {
    /// A cache of at most `capacity` requests.
    pub fn new(capacity: usize) -> Self {
        FeedbackCache {
            capacity: capacity.max(1),
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// Remembers a request being answered; it takes feedback once [`FeedbackCache::settle`]
    /// says its answer is whole.
    pub fn insert(
        &self,
        request_id: &str,
        query: Option<Query>,
        model: &str,
        tenant: Option<String>,
    ) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        // The order holds every remembered id (and forgotten ones until they come round), so
        // bounding it bounds both.
        while order.len() >= self.capacity {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
        order.push_back(request_id.to_string());
        map.insert(
            request_id.to_string(),
            Answered {
                query,
                model: model.to_string(),
                cost_usd: None,
                cost_from_usage: false,
                tenant,
                given: false,
                pending: true,
            },
        );
    }

    /// The request's answer is whole: it takes feedback from now on.
    pub fn settle(&self, request_id: &str) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = guard.0.get_mut(request_id) {
            a.pending = false;
        }
    }

    /// The request was not answered after all (its stream failed, was cut or was left): no
    /// feedback for it. Its id leaves the order queue when it comes round.
    pub fn forget(&self, request_id: &str) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.remove(request_id);
    }

    /// Records the cost of a remembered request: from its usage (`from_usage`), or expected.
    pub fn set_cost(&self, request_id: &str, cost_usd: Option<f64>, from_usage: bool) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = guard.0.get_mut(request_id) {
            a.cost_usd = cost_usd;
            a.cost_from_usage = from_usage && cost_usd.is_some();
        }
    }

    /// Takes the request for feedback: once per request, and only by its own tenant.
    fn take(&self, request_id: &str, tenant: Option<&str>) -> Result<Answered, ApiError> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match guard.0.get_mut(request_id) {
            Some(a) if a.tenant.as_deref() == tenant || tenant.is_none() => {
                if a.given {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "invalid_request_error",
                        "feedback_already_given",
                        format!("request {request_id:?} already has its feedback"),
                    ));
                }
                if a.pending {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "invalid_request_error",
                        "request_in_flight",
                        format!(
                            "request {request_id:?} is still being answered: send its feedback \
                             once its stream has ended"
                        ),
                    ));
                }
                a.given = true;
                Ok(a.clone())
            }
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "request_not_found",
                format!(
                    "no answered request {request_id:?} (unknown, failed, or older than the last {} requests)",
                    self.capacity
                ),
            )),
        }
    }
}

/// The body of `POST /v1/feedback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackRequest {
    request_id: String,
    quality: f64,
    #[serde(default)]
    cost_usd: Option<f64>,
}

/// `POST /v1/feedback`.
pub async fn feedback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut event = FeedbackEvent {
        schema: SCHEMA_VERSION,
        request_id: String::new(),
        time_ms: now_ms(),
        tenant: None,
        quality: None,
        cost_usd: None,
        cost_source: None,
        model: None,
        learned: false,
        observations: None,
        status: 200,
        error: None,
    };
    let result = tokio::select! {
        biased;
        result = handle(&state, &headers, body, &mut event) => result,
        // Cut by shutdown before anything was learned (observing itself does not wait).
        () = state.cut_off() => Err(crate::chat::shutdown_error()),
    };
    let outcome = if result.is_ok() { "ok" } else { "error" };
    state
        .metrics
        .feedback
        .get_or_create(&OutcomeLabels { outcome })
        .inc();
    let response = match result {
        Ok(()) => axum::Json(json!({
            "request_id": event.request_id,
            "learned": event.learned,
            "observations": event.observations,
        }))
        .into_response(),
        Err(e) => {
            event.status = e.status.as_u16();
            event.error = Some(e.code.to_string());
            e.into_response()
        }
    };
    state.emit(&Event::Feedback(event));
    response
}

async fn handle(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: Body,
    event: &mut FeedbackEvent,
) -> Result<(), ApiError> {
    let tenant = state.authenticate(headers)?;
    event.tenant = tenant.clone();
    let bytes = read_body(headers, body, &state.config.limits).await?;
    let req: FeedbackRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_feedback",
            format!(
                "expected {{\"request_id\": \"...\", \"quality\": 0..1, \"cost_usd\"?: USD}}: {e}"
            ),
        )
    })?;
    event.request_id = req.request_id.clone();
    event.quality = Some(req.quality);
    if !(0.0..=1.0).contains(&req.quality) {
        return Err(ApiError::bad_request(
            "invalid_feedback",
            format!("quality {} outside [0, 1]", req.quality),
        )
        .with_param("quality"));
    }
    // The learner's own ceiling (`Feedback::validate`): a larger cost would overflow its sums
    // and fail every later save. Refused before the request is taken, so a corrected call can
    // follow.
    if let Some(c) = req.cost_usd.filter(|c| !(0.0..=MAX_COST_USD).contains(c)) {
        return Err(ApiError::bad_request(
            "invalid_feedback",
            format!("cost_usd {c} is not a number in [0, {MAX_COST_USD:e}] USD"),
        )
        .with_param("cost_usd"));
    }
    let answered = state.feedback.take(&req.request_id, tenant.as_deref())?;
    if event.tenant.is_none() {
        event.tenant = answered.tenant.clone();
    }
    event.model = Some(answered.model.clone());
    let (cost, source) = match (req.cost_usd, answered.cost_usd) {
        (Some(c), _) => (c, "given"),
        (None, Some(c)) if answered.cost_from_usage => (c, "usage"),
        (None, Some(c)) => (c, "expected"),
        (None, None) => (0.0, "none"),
    };
    event.cost_usd = Some(cost);
    event.cost_source = Some(source.into());
    let Some(query) = &answered.query else {
        return Ok(());
    };
    let _gate = state.learn_gate.read().await;
    let engine = state.engine.load_full();
    if let Some(n) = engine.observe(query, &answered.model, req.quality, cost)? {
        event.learned = true;
        event.observations = Some(n);
        state.observed(n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_waits_for_a_whole_answer_and_forgotten_requests_take_none() {
        let cache = FeedbackCache::new(3);
        cache.insert("a", None, "m", None);
        let e = cache.take("a", None).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::CONFLICT, "request_in_flight")
        );
        cache.settle("a");
        assert_eq!(cache.take("a", None).unwrap().model, "m");
        let e = cache.take("a", None).unwrap_err();
        assert_eq!(e.code, "feedback_already_given");
        cache.insert("b", None, "m", None);
        cache.forget("b");
        assert_eq!(cache.take("b", None).unwrap_err().code, "request_not_found");
        // Forgotten requests do not make the cache grow: its order stays within capacity.
        for i in 0..100 {
            let id = format!("s{i}");
            cache.insert(&id, None, "m", None);
            cache.forget(&id);
        }
        let guard = cache.inner.lock().unwrap();
        assert!(guard.1.len() <= 3 && guard.0.is_empty(), "{:?}", guard.1);
    }
}
