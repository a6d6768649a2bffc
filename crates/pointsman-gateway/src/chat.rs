//! `POST /v1/chat/completions`: parse, route (or pass through), call the upstreams with
//! fallback, answer, and log exactly one `decision` event per request.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value};

use crate::body::read_body;
use crate::breaker::Transition;
use crate::engine::{Price, Query, RouteObjective, Routed};
use crate::error::ApiError;
use crate::log::{
    DecisionEvent, Event, LoggedCandidate, LoggedEmbedding, LoggedLatency, LoggedObjective,
    LoggedTry, LoggedUsage, RouterInfo, SCHEMA_VERSION,
};
use crate::metrics::{DecisionLabels, ErrorLabels, ModelLabels, RequestLabels, TenantLabels};
use crate::request::{parse_chat_request_seen, ChatRequest, RouteOptions, Sent, Target};
use crate::server::{now_ms, AppState};
use crate::upstream::{Failure, Reply};

pub mod headers;
mod relay;

/// The one `decision` event of a request, emitted exactly once: by [`Record::finish`], or when
/// the request is dropped unfinished (the client went away).
struct Record {
    state: Arc<AppState>,
    event: Option<DecisionEvent>,
    started: Instant,
    route: &'static str,
    sent_status: Option<u16>,
    /// A decision policy to charge once the answer's cost is known.
    charge: Option<Charge>,
    /// Whether a model answered (a complete answer, or a stream whose first byte left): only
    /// then is the answer charged, made the session's, and open to feedback.
    answered: bool,
}

/// What [`Record::finish`] needs to charge a decision policy's budgets and record the session.
struct Charge {
    /// The decision policy that decided, bound to the router of the engine that decided.
    policy: pointsman::policy::PolicyRouter,
    query: Query,
    objective: RouteObjective,
    /// The expected cost the decision holds on its budgets (a shared `[state]`).
    held: Vec<pointsman::policy::Hold>,
}

impl Record {
    fn new(state: Arc<AppState>) -> Record {
        state.metrics.in_flight.inc();
        let event = DecisionEvent {
            schema: SCHEMA_VERSION,
            request_id: state.next_request_id(),
            time_ms: now_ms(),
            tenant: None,
            session_id: None,
            requested_model: None,
            policy: None,
            stream: false,
            router: None,
            embedding: None,
            prompt_tokens_estimate: None,
            objective: None,
            chosen: None,
            probability: None,
            alternatives: Vec::new(),
            model: None,
            status: 0,
            error: None,
            tries: Vec::new(),
            latency: LoggedLatency::default(),
            usage: None,
            cost_usd: None,
            prompt: None,
            audit: None,
        };
        Record {
            state,
            event: Some(event),
            started: Instant::now(),
            route: "invalid",
            sent_status: None,
            charge: None,
            answered: false,
        }
    }

    fn ev(&mut self) -> &mut DecisionEvent {
        self.event
            .as_mut()
            .expect("a record is finished only once, at the end")
    }

    fn request_id(&self) -> String {
        self.event
            .as_ref()
            .map(|e| e.request_id.clone())
            .unwrap_or_default()
    }

    /// Moves the unfinished event into a new record (for a stream's body), leaving this one
    /// empty.
    fn take(&mut self) -> Record {
        Record {
            state: self.state.clone(),
            event: self.event.take(),
            started: self.started,
            route: self.route,
            sent_status: self.sent_status,
            charge: self.charge.take(),
            answered: self.answered,
        }
    }

    fn finish(&mut self, status: u16, error: Option<&str>) {
        let Some(mut ev) = self.event.take() else {
            return;
        };
        self.state.metrics.in_flight.dec();
        ev.status = status;
        if ev.error.is_none() {
            ev.error = error.map(str::to_string);
        }
        ev.latency.total_ms = ms(self.started);
        let m = &self.state.metrics;
        let tenant = m.tenant_label(ev.tenant.as_deref());
        if ev.session_id.is_some() {
            m.session_requests
                .get_or_create(&TenantLabels {
                    tenant: tenant.clone(),
                })
                .inc();
        }
        m.requests
            .get_or_create(&RequestLabels {
                route: self.route,
                status,
                tenant,
            })
            .inc();
        if let (Some(model), Some(cost)) = (&ev.model, ev.cost_usd) {
            m.cost_usd
                .get_or_create(&ModelLabels {
                    model: model.clone(),
                })
                .inc_by(cost);
        }
        // An upstream's refusal (its 4xx, passed on) is logged with its model but is no answer.
        let model = ev.model.as_deref().filter(|_| self.answered);
        let charge = self
            .charge
            .take()
            .filter(|c| model.is_some() || !c.held.is_empty());
        if let Some(charge) = charge {
            // The upstream's usage priced, else (no usage reported) the expected cost; no
            // answer: nothing, which frees the decision's holds. Settled with the policy that
            // decided: a reload since then may have loaded a router without this model.
            let usd = model.and_then(|model| {
                ev.cost_usd.or_else(|| {
                    ev.alternatives
                        .iter()
                        .find(|c| c.model == model)
                        .map(|c| c.cost)
                })
            });
            let charged = crate::engine::settle_policy(
                &charge.policy,
                &charge.query,
                &charge.objective,
                &charge.held,
                model,
                usd.unwrap_or(0.0),
            );
            if let Err(e) = charged {
                tracing::warn!(request_id = %ev.request_id, "policy budget not charged: {e}");
            }
        }
        // Feedback is taken for a whole answer only: not before a stream has ended, not for a
        // stream that failed, was cut or that the client left; and only once the decision is
        // logged, so that its feedback event follows it in the log.
        let whole = self.answered && status == 200 && ev.error.is_none();
        let request_id = ev.request_id.clone();
        self.state.emit(&Event::Decision(Box::new(ev)));
        if whole {
            self.state.feedback.settle(&request_id);
        } else {
            self.state.feedback.forget(&request_id);
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if self.event.is_some() {
            // Dropped unfinished: either the gateway cut the request at the end of shutdown's
            // grace period (its connection task aborted), or the client went away.
            if self.state.is_cut() {
                self.finish(self.sent_status.unwrap_or(503), Some(SHUTDOWN));
            } else {
                self.finish(self.sent_status.unwrap_or(499), Some("client_disconnected"));
            }
        } else {
            // finish() or take() already accounted for this record.
        }
    }
}

/// The error code of a request cut by shutdown (the grace period is over).
pub const SHUTDOWN: &str = "shutdown";

/// The answer to a request still unanswered when shutdown's grace period ends.
pub(crate) fn shutdown_error() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        SHUTDOWN,
        "the gateway is shutting down: the request was cut at the end of the grace period \
         (limits.shutdown_grace_ms)",
    )
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut record = Record::new(state.clone());
    let request_id = record.request_id();
    let result = tokio::select! {
        biased;
        result = handle(&state, &headers, body, &mut record) => result,
        () = state.cut_off() => Err(shutdown_error()),
    };
    let response = match result {
        Ok(response) => response,
        Err(e) => {
            if e.status == StatusCode::PAYMENT_REQUIRED {
                state.metrics.budget_exhausted.inc();
            }
            record.finish(e.status.as_u16(), Some(e.code));
            e.into_response()
        }
    };
    with_header(response, headers::REQUEST_ID, &request_id)
}

fn with_header(mut response: Response, name: &'static str, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(name), v);
    }
    response
}

async fn handle(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: Body,
    rec: &mut Record,
) -> Result<Response, ApiError> {
    let token_tenant = state.authenticate(headers)?;
    rec.ev().tenant = token_tenant.clone();
    let bytes = read_body(headers, body, &state.config.limits).await?;
    let mut sent = Sent::default();
    let parsed = parse_chat_request_seen(&bytes, headers, &mut sent);
    // What the body said is logged even when it is refused.
    let ev = rec.ev();
    ev.requested_model = sent.model;
    ev.stream = sent.stream;
    let req = parsed?;
    let ev = rec.ev();
    // With tokens configured the token decides the tenant, never the request.
    ev.tenant = token_tenant.or_else(|| req.options.tenant.clone());
    ev.session_id = req.options.session_id.clone();
    match &req.target {
        Target::Model(id) => {
            rec.route = "passthrough";
            if state.config.upstream_index(id).is_none() {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "model_not_found",
                    format!("the model {id:?} is not served here (see GET /v1/models)"),
                )
                .with_param("model"));
            }
            let ev = rec.ev();
            ev.chosen = Some(id.clone());
            ev.probability = Some(1.0);
            let plan = Plan {
                candidates: vec![id.clone()],
                max_tries: 1,
                query: None,
                routed: None,
                policy: None,
                timing: None,
            };
            forward(state, &req, plan, rec).await
        }
        Target::Routed(policy) => {
            rec.route = "routed";
            let tenant = rec.ev().tenant.clone();
            let (policy, objective) =
                objective_for(state, policy.as_deref(), &req.options, tenant)?;
            rec.ev().policy = Some(policy.clone());
            let (query, routed, timing) = route(state, &req, &objective, &policy, rec).await?;
            let plan = Plan {
                candidates: routed.ranked.iter().map(|c| c.model.clone()).collect(),
                max_tries: state.config.fallback.max_tries,
                query: Some(query),
                routed: Some(routed),
                policy: Some(policy),
                timing: Some(timing),
            };
            forward(state, &req, plan, rec).await
        }
    }
}

/// The policy's objective with the request's options applied: the request's cost weight wins;
/// its maximum cost and allowed models can only narrow the policy's. `tenant` is the request's
/// tenant as authenticated (the token's when tokens are configured).
fn objective_for(
    state: &AppState,
    policy: Option<&str>,
    options: &RouteOptions,
    tenant: Option<String>,
) -> Result<(String, RouteObjective), ApiError> {
    let routing = &state.config.routing;
    let (name, cost_weight, max_cost, allowed, explicit_weight) = match policy {
        None => (
            crate::config::DEFAULT_POLICY.to_string(),
            routing.cost_weight,
            routing.max_cost,
            routing.allowed.clone(),
            None,
        ),
        Some(name) => {
            let p = state.config.policies.get(name).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "model_not_found",
                    format!("no routing policy {name:?} (see GET /v1/models)"),
                )
                .with_param("model")
            })?;
            (
                name.to_string(),
                p.cost_weight.unwrap_or(routing.cost_weight),
                p.max_cost.or(routing.max_cost),
                p.allowed.clone().or_else(|| routing.allowed.clone()),
                p.cost_weight,
            )
        }
    };
    if let Some(unknown) = options
        .allowed_models
        .iter()
        .flatten()
        .find(|m| state.config.upstream_index(m).is_none())
    {
        return Err(ApiError::bad_request(
            "invalid_routing_option",
            format!("allowed_models names {unknown:?}, which is not served here"),
        )
        .with_param("pointsman.allowed_models"));
    }
    let allowed = match (allowed, &options.allowed_models) {
        (None, requested) => requested.clone(),
        (Some(policy), None) => Some(policy),
        (Some(policy), Some(requested)) => Some(
            policy
                .into_iter()
                .filter(|m| requested.contains(m))
                .collect(),
        ),
    };
    let max_cost = match (max_cost, options.max_cost) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // Under a decision policy the request's weight, else the routing policy's, else the
    // policy file's own, else `[routing]`'s.
    let decision = state.decision_policies.get(&name);
    let cost_weight_override = options.cost_weight.or(explicit_weight).or_else(|| {
        decision
            .filter(|d| d.config().cost_weight.is_none())
            .map(|_| cost_weight)
    });
    let cost_weight = options
        .cost_weight
        .or(explicit_weight)
        .or_else(|| decision.and_then(|d| d.config().cost_weight))
        .unwrap_or(cost_weight);
    Ok((
        name.clone(),
        RouteObjective {
            cost_weight,
            max_cost,
            allowed,
            tenant,
            session_id: options.session_id.clone(),
            decision_policy: decision.map(|_| name),
            cost_weight_override,
        },
    ))
}

/// Embeds the routed text and decides; fills the event's routing fields. Returns the query, the
/// decision and its `Server-Timing` value.
async fn route(
    state: &Arc<AppState>,
    req: &ChatRequest,
    objective: &RouteObjective,
    policy: &str,
    rec: &mut Record,
) -> Result<(Query, Routed, String), ApiError> {
    let text = req.routing_text(state.config.routing.turns);
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "nothing_to_route",
            "no user message carries text to route",
        )
        .with_param("messages"));
    }
    let t0 = Instant::now();
    let (query, compute_s) = {
        let _permit = state.embed_permit().await;
        let embedder = state.embedder.clone();
        let prompt = req.prompt_text();
        let text = text.clone();
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            embedder
                .embed(&text, &prompt)
                .map(|q| (q, t.elapsed().as_secs_f64()))
        })
        .await
        .map_err(|e| ApiError::internal(format!("the embedding task failed: {e}")))??
    };
    let embed_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let engine = state.engine.load_full();
    let decided = engine.decide(&query, objective, Some(&text));
    let route_s = t1.elapsed().as_secs_f64();
    let timing = format!(
        "queue;dur={:.3}, embed;dur={:.3}, route;dur={:.3}",
        (embed_s - compute_s).max(0.0) * 1e3,
        compute_s * 1e3,
        route_s * 1e3
    );
    let m = &state.metrics;
    m.embed_seconds.observe(embed_s);
    m.routing_seconds.observe(embed_s + route_s);
    let ev = rec.ev();
    ev.latency.embed_ms = Some(embed_s * 1e3);
    ev.latency.route_ms = Some(route_s * 1e3);
    ev.router = Some(RouterInfo {
        kind: engine.kind().to_string(),
        sha256: engine.file_sha256().to_string(),
        generation: engine.generation(),
        observations: engine.observations(),
    });
    ev.embedding = Some(LoggedEmbedding::encode(
        query.embedding_model(),
        query.embedding(),
    ));
    ev.prompt_tokens_estimate = Some(query.prompt_tokens());
    ev.objective = Some(LoggedObjective {
        cost_weight: objective.cost_weight,
        max_cost: objective.max_cost,
        allowed: objective.allowed.clone(),
    });
    if state.config.log.prompts {
        ev.prompt = Some(text);
    }
    ev.audit = decided.audit;
    let held = decided.held;
    let bound = decided.policy;
    let routed = decided.result?;
    ev.chosen = Some(routed.ranked[0].model.clone());
    ev.probability = routed.probability;
    ev.alternatives = routed
        .ranked
        .iter()
        .map(|c| LoggedCandidate {
            model: c.model.clone(),
            quality: c.quality,
            cost: c.cost,
            utility: c.utility,
        })
        .collect();
    m.decisions
        .get_or_create(&DecisionLabels {
            model: routed.ranked[0].model.clone(),
            policy: policy.to_string(),
        })
        .inc();
    if let Some(policy) = bound {
        rec.charge = Some(Charge {
            policy,
            query: query.clone(),
            objective: objective.clone(),
            held,
        });
    }
    Ok((query, routed, timing))
}

/// Who to call, in order.
struct Plan {
    candidates: Vec<String>,
    max_tries: usize,
    query: Option<Query>,
    routed: Option<Routed>,
    policy: Option<String>,
    /// The `Server-Timing` value of a routed request.
    timing: Option<String>,
}

impl Plan {
    fn headers(&self, model: &str, tries: usize) -> Vec<(&'static str, String)> {
        let mut out = vec![(headers::MODEL, model.to_string())];
        if let Some(r) = &self.routed {
            out.push((headers::CHOSEN, r.ranked[0].model.clone()));
            out.push((headers::UTILITY, r.ranked[0].utility.to_string()));
            if let Some(second) = r.ranked.get(1) {
                out.push((headers::RUNNER_UP, second.model.clone()));
                out.push((headers::RUNNER_UP_UTILITY, second.utility.to_string()));
            }
        }
        if let Some(p) = &self.policy {
            out.push((headers::POLICY, p.clone()));
        }
        out.push((headers::TRIES, tries.to_string()));
        if let Some(t) = &self.timing {
            out.push((headers::SERVER_TIMING, t.clone()));
        }
        out
    }
}

/// Calls the candidates in order until one answers: skipping open circuits, at most
/// `max_tries` calls, never after the first byte of a stream has been sent.
async fn forward(
    state: &Arc<AppState>,
    req: &ChatRequest,
    plan: Plan,
    rec: &mut Record,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let m = &state.metrics;
    let mut calls = 0;
    let mut only_timeouts = true;
    let mut failed: Option<String> = None;
    for model in &plan.candidates {
        if calls >= plan.max_tries {
            break;
        }
        let index = state
            .config
            .upstream_index(model)
            .expect("candidates are upstream models");
        let upstream = &state.upstreams[index];
        let Some(permit) = upstream.breaker.allow() else {
            rec.ev().tries.push(LoggedTry {
                model: model.clone(),
                outcome: "circuit_open".into(),
                status: None,
                latency_ms: 0.0,
            });
            continue;
        };
        if let Some(from) = failed.take() {
            m.fallbacks
                .get_or_create(&ModelLabels { model: from })
                .inc();
        }
        calls += 1;
        let t0 = Instant::now();
        let result = upstream
            .call(
                &state.client,
                req.upstream_body(upstream.config.upstream_model()),
                req.stream,
                state.config.limits.max_upstream_body_bytes,
            )
            .await;
        let labels = ModelLabels {
            model: model.clone(),
        };
        m.upstream_seconds
            .get_or_create(&labels)
            .observe(t0.elapsed().as_secs_f64());
        let record_try = |rec: &mut Record, outcome: &str, status: Option<u16>| {
            rec.ev().tries.push(LoggedTry {
                model: model.clone(),
                outcome: outcome.into(),
                status,
                latency_ms: ms(t0),
            });
        };
        let failure = match result {
            Ok(reply) => {
                note_transition(state, index, permit.record(true));
                rec.ev().latency.upstream_ms = Some(ms(started));
                let price = state.engine.load().upstream_price(index);
                // The cost an answer without usable usage is charged: the decision's expected
                // cost of this model, or for a passed-through one its prices' estimate; under
                // the engine's ceiling like every cost (a learner's cost factor can scale an
                // expectation past it).
                let expected = match &plan.routed {
                    Some(r) => r.ranked.iter().find(|c| &c.model == model).map(|c| c.cost),
                    None => price.map(|p| {
                        p.estimate(pointsman::embed::prompt_tokens_of(&req.prompt_text()))
                    }),
                }
                .map(|c| c.min(pointsman::pool::MAX_COST_USD));
                let answer = Answer {
                    model: model.clone(),
                    price,
                    expected,
                    headers: plan.headers(model, calls),
                };
                return Ok(match reply {
                    Reply::ClientError { status, body } => {
                        record_try(rec, "client_error", Some(status.as_u16()));
                        rec.ev().model = Some(model.clone());
                        rec.finish(status.as_u16(), Some("upstream_client_error"));
                        let mut r = (
                            status,
                            [(http::header::CONTENT_TYPE, "application/json")],
                            body,
                        )
                            .into_response();
                        set_headers(&mut r, &answer.headers);
                        r
                    }
                    Reply::Complete(object) => {
                        record_try(rec, "ok", Some(200));
                        complete(state, rec, &plan, answer, object)
                    }
                    Reply::Stream(open) => {
                        record_try(rec, "ok", Some(200));
                        relay::stream(state, rec, &plan, answer, open)
                    }
                });
            }
            Err(f) => f,
        };
        note_transition(state, index, permit.record(false));
        m.upstream_errors
            .get_or_create(&ErrorLabels {
                model: model.clone(),
                kind: failure.kind(),
            })
            .inc();
        record_try(rec, failure.kind(), failure.status());
        tracing::warn!(model = %model, error = %failure, "upstream call failed");
        only_timeouts &= failure == Failure::Timeout;
        failed = Some(model.clone());
    }
    rec.ev().latency.upstream_ms = Some(ms(started));
    let summary: Vec<String> = rec
        .ev()
        .tries
        .iter()
        .map(|t| format!("{} {}", t.model, t.outcome))
        .collect();
    Err(if calls == 0 {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_unavailable",
            format!("no upstream could be called: {}", summary.join(", ")),
        )
    } else if only_timeouts {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_error",
            "upstream_timeout",
            format!("every upstream call timed out: {}", summary.join(", ")),
        )
    } else {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_failed",
            format!("every upstream call failed: {}", summary.join(", ")),
        )
    })
}

/// Tells upstream `index`'s breaker of a failure after its call was let through and recorded
/// (a stream that fails after its first byte).
fn breaker_outcome(state: &AppState, index: usize, success: bool) {
    note_transition(state, index, state.upstreams[index].breaker.record(success));
}

/// Logs and counts what an outcome did to upstream `index`'s circuit.
fn note_transition(state: &AppState, index: usize, transition: Transition) {
    let upstream = &state.upstreams[index];
    let labels = ModelLabels {
        model: upstream.config.model.clone(),
    };
    match transition {
        Transition::Opened => {
            tracing::warn!(model = %labels.model, "circuit opened: the upstream is skipped for the cool-down");
            state.metrics.circuit_opened.get_or_create(&labels).inc();
            state.metrics.circuit_open.get_or_create(&labels).set(1);
        }
        Transition::Closed => {
            tracing::info!(model = %labels.model, "circuit closed");
            state.metrics.circuit_open.get_or_create(&labels).set(0);
        }
        Transition::None => {}
    }
}

/// The model that answered, its prices, its expected cost and the response headers.
struct Answer {
    model: String,
    price: Option<Price>,
    /// The cost of an answer whose usage is missing or unusable.
    expected: Option<f64>,
    headers: Vec<(&'static str, String)>,
}

fn set_headers(response: &mut Response, pairs: &[(&'static str, String)]) {
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), v);
        }
    }
}

/// A token count as an upstream may report it: a non-negative integer (also written as an
/// integral float up to 2^53, where floats are still exact); anything else is unusable.
fn token_count(v: Option<&Value>) -> Option<u64> {
    let v = v?;
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| (0.0..=9_007_199_254_740_992.0).contains(f) && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}

/// The usage an upstream reported, when usable: `prompt_tokens` and `completion_tokens` both
/// token counts ([`token_count`]); `total_tokens` as reported, else their sum.
fn usable_usage(usage: &Map<String, Value>) -> Option<LoggedUsage> {
    let prompt_tokens = token_count(usage.get("prompt_tokens"))?;
    let completion_tokens = token_count(usage.get("completion_tokens"))?;
    let total_tokens = token_count(usage.get("total_tokens"))
        .unwrap_or_else(|| prompt_tokens.saturating_add(completion_tokens));
    Some(LoggedUsage {
        prompt_tokens,
        completion_tokens,
        total_tokens,
    })
}

/// Reads `usage` and prices it: with usable usage ([`usable_usage`]) its cost at the configured
/// prices, else (no usage, or unusable counts) the expected cost, as when the upstream reports
/// none. Adds `cost_usd` to the answer's `usage` object when there is one and the cost is
/// known. Returns the usable usage and the cost (never above [`MAX_COST_USD`]: `Price::cost`
/// clamps).
///
/// [`MAX_COST_USD`]: pointsman::pool::MAX_COST_USD
fn account(
    object: &mut Map<String, Value>,
    price: Option<Price>,
    expected: Option<f64>,
) -> (Option<LoggedUsage>, Option<f64>) {
    let usage = match object.get_mut("usage") {
        Some(Value::Object(usage)) => Some(usage),
        _ => None,
    };
    let logged = usage.as_deref().and_then(usable_usage);
    let cost = match logged {
        Some(u) => price.map(|p| p.cost(u.prompt_tokens as f64, u.completion_tokens as f64)),
        None => expected,
    };
    if let (Some(usage), Some(c)) = (usage, cost) {
        usage.insert("cost_usd".into(), Value::from(c));
    }
    (logged, cost)
}

fn complete(
    state: &Arc<AppState>,
    rec: &mut Record,
    plan: &Plan,
    mut answer: Answer,
    mut object: Map<String, Value>,
) -> Response {
    object.insert("model".into(), Value::String(answer.model.clone()));
    let (usage, cost) = account(&mut object, answer.price, answer.expected);
    let request_id = rec.request_id();
    rec.answered = true;
    let ev = rec.ev();
    ev.model = Some(answer.model.clone());
    let from_usage = usage.is_some();
    ev.usage = usage;
    ev.cost_usd = cost;
    let tenant = ev.tenant.clone();
    state
        .feedback
        .insert(&request_id, plan.query.clone(), &answer.model, tenant);
    state.feedback.set_cost(&request_id, cost, from_usage);
    rec.finish(200, None);
    if let Some(c) = cost {
        answer.headers.push((headers::COST, c.to_string()));
    }
    let body = serde_json::to_vec(&object).expect("a JSON map always serialises");
    let mut r = (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    set_headers(&mut r, &answer.headers);
    r
}
