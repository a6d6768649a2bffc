//! The HTTP server: the shared state, the routes, the accept loop with bounded request heads,
//! graceful shutdown and reload.
//!
//! Every answer carries `x-request-id` and every error OpenAI's error object (`envelope`).
//! Shutdown lets requests in flight finish for `limits.shutdown_grace_ms`, then cuts the rest
//! ([`AppState::cut_off`]) and waits until every connection is gone, so that each request's
//! decision event is in the log before it is closed.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower_http::trace::TraceLayer;

use crate::chat::headers::REQUEST_ID;
use crate::config::{check_token, Config, ROUTED_MODEL};
use crate::engine::{Engine, TextEmbedder};
use crate::error::{ApiError, GatewayError};
use crate::feedback::FeedbackCache;
use crate::log::{Event, LogWriter};
use crate::metrics::{Metrics, ModelLabels, OutcomeLabels};
use crate::upstream::Upstream;

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// The embedder (kept across reloads).
    pub embedder: TextEmbedder,
    /// The routing policies' decision policies (`[policies.<name>] file`), loaded once: their
    /// budgets' spend and sessions outlive router reloads.
    pub decision_policies: std::collections::BTreeMap<String, pointsman::policy::Policy>,
    /// The current router; swapped whole on reload, so in-flight requests keep theirs.
    pub engine: ArcSwap<Engine>,
    /// The upstreams, in configuration order.
    pub upstreams: Vec<Upstream>,
    /// The HTTP client.
    pub client: reqwest::Client,
    /// The metrics.
    pub metrics: Metrics,
    /// The decision log, when configured.
    pub log: Option<LogWriter>,
    /// Requests remembered for feedback.
    pub feedback: FeedbackCache,
    /// Held (shared) while a learner observes, (exclusively) while its state is saved and
    /// swapped on reload, so no observation falls between the save and the swap.
    pub learn_gate: tokio::sync::RwLock<()>,
    /// Observations since the last periodic save.
    pub since_save: AtomicU64,
    embed_permits: Semaphore,
    tokens: HashMap<[u8; 32], String>,
    save_lock: std::sync::Mutex<()>,
    reload_lock: tokio::sync::Mutex<()>,
    ids: RequestIds,
    /// Turns true when shutdown's grace period is over and the requests still in flight are
    /// cut (see [`AppState::cut_off`]).
    cut: watch::Sender<bool>,
}

impl AppState {
    /// Builds the state: loads the router, reads the upstreams' keys and the client tokens,
    /// opens the log.
    ///
    /// # Errors
    ///
    /// Any [`GatewayError`] of those steps.
    pub fn new(config: Config, embedder: TextEmbedder) -> Result<AppState, GatewayError> {
        let mut decision_policies = std::collections::BTreeMap::new();
        for (name, p) in &config.policies {
            if let Some(file) = &p.file {
                let mut policy = pointsman::policy::Policy::load(file).map_err(|e| {
                    GatewayError::Config(format!("policies.{name}.file {}: {e}", file.display()))
                })?;
                if let Some(state) = &config.state {
                    let shared = state.open(name)?;
                    // Not an error (what needs no budget is served, and Redis may come up
                    // later), but budgeted requests get 503 until it answers: say so at start.
                    if let Err(e) = shared.ping() {
                        tracing::warn!(
                            policy = name.as_str(),
                            error = %e,
                            "the [state] Redis does not answer now: requests a budget applies \
                             to get 503 shared_state_unavailable until it does"
                        );
                    }
                    policy = policy.with_state(std::sync::Arc::new(shared));
                }
                decision_policies.insert(name.clone(), policy);
            }
        }
        let engine = Engine::load(&config, &embedder, 0, &decision_policies)?;
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| Upstream::new(u.clone(), &config.fallback))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tokens = HashMap::new();
        let mut index_of: HashMap<[u8; 32], usize> = HashMap::new();
        for (i, t) in config.auth.tokens.iter().enumerate() {
            let token = match (&t.token, &t.token_env) {
                (Some(token), _) => token.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    GatewayError::Config(format!(
                        "auth token of tenant {:?}: environment variable {var} is not set",
                        t.tenant
                    ))
                })?,
                (None, None) => unreachable!("validated: exactly one of token and token_env"),
            };
            check_token(&format!("auth.tokens[{i}] (tenant {:?})", t.tenant), &token)?;
            let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            // One token, one tenant: a token listed twice would silently stand for the last.
            if let Some(j) = index_of.insert(key, i) {
                return Err(GatewayError::Config(format!(
                    "auth.tokens[{j}] (tenant {:?}) and auth.tokens[{i}] (tenant {:?}) have the \
                     same token: each token must be different",
                    config.auth.tokens[j].tenant, t.tenant
                )));
            }
            tokens.insert(key, t.tenant.clone());
        }
        let log = config
            .log
            .path
            .as_deref()
            .map(LogWriter::open)
            .transpose()?;
        let permits = match config.routing.max_concurrent_embeds {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let metrics = Metrics::new(config.metrics.max_tenants);
        metrics
            .learner_observations
            .set(engine.observations().unwrap_or(0) as i64);
        Ok(AppState {
            feedback: FeedbackCache::new(config.learning.feedback_window),
            engine: ArcSwap::from_pointee(engine),
            decision_policies,
            upstreams,
            client: crate::upstream::client()?,
            metrics,
            log,
            learn_gate: tokio::sync::RwLock::new(()),
            since_save: AtomicU64::new(0),
            embed_permits: Semaphore::new(permits),
            tokens,
            save_lock: std::sync::Mutex::new(()),
            reload_lock: tokio::sync::Mutex::new(()),
            ids: RequestIds::default(),
            cut: watch::channel(false).0,
            embedder,
            config,
        })
    }

    /// A fresh request id (`pm-` and hex digits; unique within the process, unpredictable).
    pub fn next_request_id(&self) -> String {
        self.ids.next()
    }

    /// Whether shutdown's grace period is over: requests still in flight are being cut.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// Resolves when shutdown's grace period is over: a request still unanswered then gets
    /// 503 `shutdown`, a stream an error event `shutdown`, each logged with that error.
    pub async fn cut_off(&self) {
        cut_signal(&mut self.cut.subscribe()).await;
    }

    /// A receiver of the cut (for [`cut_signal`]), for a task that waits on it repeatedly.
    pub fn cut_receiver(&self) -> watch::Receiver<bool> {
        self.cut.subscribe()
    }

    /// Queues an event on the decision log, if there is one.
    pub fn emit(&self, event: &Event) {
        if let Some(log) = &self.log {
            log.emit(event);
        }
    }

    /// The tenant a request's bearer token stands for. Without configured tokens every request
    /// is let in and the tenant is whatever the request says (`Ok(None)` here).
    ///
    /// # Errors
    ///
    /// 401 `invalid_api_key` when tokens are configured and the request's is missing or unknown.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        if self.tokens.is_empty() {
            return Ok(None);
        }
        // `Bearer <token>`; the scheme is case-insensitive (RFC 7235).
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let tenant = token.and_then(|t| {
            let key: [u8; 32] = Sha256::digest(t.as_bytes()).into();
            self.tokens.get(&key)
        });
        match tenant {
            Some(t) => Ok(Some(t.clone())),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_api_key",
                "a valid bearer token is required (Authorization: Bearer <token>)",
            )),
        }
    }

    /// Takes a permit to embed (bounded to `routing.max_concurrent_embeds` at once).
    pub async fn embed_permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.embed_permits
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// Saves a learner's state now (blocking; a second save waits for the first).
    pub fn save_learner(&self) -> Result<(), GatewayError> {
        let _one = self.save_lock.lock().unwrap_or_else(|p| p.into_inner());
        let engine = self.engine.load_full();
        let result = engine.save_state();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        match &result {
            Ok(Some(path)) => {
                tracing::info!(path = %path.display(), observations = ?engine.observations(), "saved the learner's state")
            }
            Ok(None) => return Ok(()),
            Err(e) => tracing::error!(error = %e, "cannot save the learner's state"),
        }
        self.metrics
            .learner_saves
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        result.map(|_| ())
    }

    /// Counts one observation and starts a background save every `learning.save_every`.
    pub fn observed(self: &Arc<Self>, observations: u64) {
        self.metrics.learner_observations.set(observations as i64);
        let every = self.config.learning.save_every;
        if every > 0 && self.since_save.fetch_add(1, Ordering::AcqRel) + 1 >= every {
            self.since_save.store(0, Ordering::Release);
            let state = self.clone();
            tokio::task::spawn_blocking(move || {
                let _ = state.save_learner();
            });
        }
    }

    /// Reloads the router file: saves a learner's state first, then loads the file (or the
    /// saved state of that exact file) and swaps it in. Requests in flight finish on the router
    /// they started with; on error the current router stays.
    ///
    /// # Errors
    ///
    /// The [`GatewayError`] of the save or the load.
    pub async fn reload(self: &Arc<Self>) -> Result<(), GatewayError> {
        let _one = self.reload_lock.lock().await;
        let _gate = self.learn_gate.write().await;
        let state = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            state.save_learner()?;
            let generation = state.engine.load().generation() + 1;
            Engine::load(
                &state.config,
                &state.embedder,
                generation,
                &state.decision_policies,
            )
        })
        .await
        .map_err(|e| GatewayError::io("reload", std::io::Error::other(e)))?;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .reloads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        let engine = result.inspect_err(
            |e| tracing::error!(error = %e, "reload failed: the current router stays"),
        )?;
        tracing::info!(
            kind = engine.kind(),
            sha256 = engine.file_sha256(),
            generation = engine.generation(),
            "reloaded the router"
        );
        self.metrics
            .learner_observations
            .set(engine.observations().unwrap_or(0) as i64);
        self.since_save.store(0, Ordering::Release);
        self.engine.store(Arc::new(engine));
        Ok(())
    }
}

/// Resolves once `cut` turns true (at once when it already is).
pub async fn cut_signal(cut: &mut watch::Receiver<bool>) {
    // The sender lives in the state, as long as any request: it is never dropped first.
    let _ = cut.wait_for(|&c| c).await;
}

#[derive(Debug, Default)]
struct RequestIds {
    keys: std::hash::RandomState,
    counter: AtomicU64,
}

impl RequestIds {
    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("pm-{:016x}{n:x}", self.keys.hash_one(n))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The axum router of every endpoint.
pub fn routes(state: Arc<AppState>) -> axum::Router {
    let admin_timeout = tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(30),
    );
    let admin = axum::Router::new()
        .route("/v1/models", get(models))
        .route("/v1/feedback", post(crate::feedback::feedback))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(admin_timeout);
    axum::Router::new()
        .route("/v1/chat/completions", post(crate::chat::chat_completions))
        .merge(admin)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            envelope,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// What every answer gets: an `x-request-id` (a chat request's own, else a fresh one), and for
/// an error without a body (405 from the router, 408 from the admin timeout) OpenAI's error
/// object. A chat answer (it has its id already) is left as it is: an upstream's own 4xx is
/// passed through with its body, whatever that is.
async fn envelope(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    if response.headers().contains_key(REQUEST_ID) {
        return response;
    }
    let status = response.status();
    if (status.is_client_error() || status.is_server_error())
        && response.body().size_hint().exact() == Some(0)
    {
        response = with_error_body(response, &method, &path);
    }
    if let Ok(id) = HeaderValue::from_str(&state.next_request_id()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), id);
    }
    response
}

/// An error answer without a body, given OpenAI's error object (its status and other headers,
/// `Allow` included, kept).
fn with_error_body(response: Response, method: &Method, path: &str) -> Response {
    let status = response.status();
    let kind = if status.is_client_error() {
        "invalid_request_error"
    } else {
        "server_error"
    };
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = response
                .headers()
                .get(http::header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            ApiError::new(
                status,
                kind,
                "method_not_allowed",
                format!("{path} does not take {method} (it takes {allowed})"),
            )
        }
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            status,
            kind,
            "request_timeout",
            format!("{method} {path} was not answered in time"),
        ),
        _ => ApiError::new(
            status,
            kind,
            "http_error",
            format!(
                "{method} {path}: {}",
                status.canonical_reason().unwrap_or("error")
            ),
        ),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(error.body()))
}

async fn not_found(uri: http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "not_found",
        format!("no such endpoint: {}", uri.path()),
    )
}

async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = state.authenticate(&headers) {
        return e.into_response();
    }
    let entry = |id: String, owner: &str| json!({"id": id, "object": "model", "created": 0, "owned_by": owner});
    let mut data = vec![entry(ROUTED_MODEL.to_string(), "pointsman")];
    data.extend(
        state
            .config
            .policies
            .keys()
            .map(|p| entry(format!("{ROUTED_MODEL}:{p}"), "pointsman")),
    );
    data.extend(
        state
            .config
            .upstreams
            .iter()
            .map(|u| entry(u.model.clone(), "upstream")),
    );
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let engine = state.engine.load();
    let upstreams: Vec<_> = state
        .upstreams
        .iter()
        .map(|u| json!({"model": u.config.model, "circuit_open": u.breaker.is_open()}))
        .collect();
    axum::Json(json!({
        "status": "ok",
        "router": {
            "kind": engine.kind(),
            "sha256": engine.file_sha256(),
            "generation": engine.generation(),
            "observations": engine.observations(),
            "models": engine.routed_models(),
        },
        "upstreams": upstreams,
        // The learner's exchange with other replicas, when configured: still "ok" while the
        // store is down (the replica learns locally), but the failures and last error show.
        "share": engine.share_stats().map(|s| json!({
            "syncs": s.syncs,
            "failures": s.failures,
            "last_error": s.last_error,
            "unpublished": s.unpublished,
            "rejected": s.rejected,
        })),
    }))
    .into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    for u in &state.upstreams {
        state
            .metrics
            .circuit_open
            .get_or_create(&ModelLabels {
                model: u.config.model.clone(),
            })
            .set(i64::from(u.breaker.is_open()));
    }
    if let Some(n) = state.engine.load().observations() {
        state.metrics.learner_observations.set(n as i64);
    }
    if let Some(s) = state.engine.load().share_stats() {
        state.metrics.set_share(&s);
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// A gateway serving on a socket.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    state: Arc<AppState>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (for reloads and inspection).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Reloads the router file (see [`AppState::reload`]).
    ///
    /// # Errors
    ///
    /// As [`AppState::reload`].
    pub async fn reload(&self) -> Result<(), GatewayError> {
        self.state.reload().await
    }

    /// Stops accepting connections, lets requests in flight finish (within
    /// `limits.shutdown_grace_ms`; then cuts those still in flight, each logged with the error
    /// `shutdown`), saves a learner's state and closes the log once every request's event is
    /// in it.
    ///
    /// # Errors
    ///
    /// The error of the final save.
    pub async fn shutdown(self) -> Result<(), GatewayError> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let state = self.state.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let result = state.save_learner();
            if let Some(log) = &state.log {
                log.close();
            }
            result
        })
        .await
        .map_err(|e| GatewayError::io("shutdown", std::io::Error::other(e)))?;
        tracing::info!("stopped");
        saved
    }
}

/// Loads everything the configuration names and starts serving on its `listen` address.
///
/// # Errors
///
/// A [`GatewayError`] when the router, the embedder, an upstream or the socket cannot be set up.
pub async fn start(config: Config) -> Result<Running, GatewayError> {
    let routing = config.routing.clone();
    let embedder = tokio::task::spawn_blocking(move || TextEmbedder::load(&routing))
        .await
        .map_err(|e| GatewayError::io("loading the embedder", std::io::Error::other(e)))??;
    start_with(config, embedder).await
}

/// [`start`] with an embedder already loaded (tests share one).
///
/// # Errors
///
/// As [`start`].
pub async fn start_with(config: Config, embedder: TextEmbedder) -> Result<Running, GatewayError> {
    let listen = config.listen;
    let state = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || AppState::new(config, embedder))
            .await
            .map_err(|e| GatewayError::io("starting", std::io::Error::other(e)))??
    };
    let state = Arc::new(state);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| GatewayError::io(format!("listening on {listen}"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| GatewayError::io("reading the listening address", e))?;
    let engine = state.engine.load();
    tracing::info!(
        %addr,
        router = engine.kind(),
        models = ?engine.routed_models(),
        embed_threads = state.embedder.threads(),
        embed_threads_pinned = state.embedder.pinned(),
        "serving"
    );
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, state.clone(), stop_rx));
    Ok(Running {
        addr,
        state,
        stop,
        task,
    })
}

async fn accept_loop(listener: TcpListener, state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let limits = state.config.limits.clone();
    let app = routes(state.clone());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes.max(8192) + (64 << 10));
    let graceful = GracefulShutdown::new();
    // Every connection's task, so that shutdown can cut those still running after the grace
    // period and wait until they are gone (their requests' decision events written) before
    // the log is closed.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a moment, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                connections.spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let grace = Duration::from_millis(limits.shutdown_grace_ms);
    let drained = graceful.shutdown();
    tokio::pin!(drained);
    if tokio::time::timeout(grace, &mut drained).await.is_err() {
        tracing::warn!(
            ?grace,
            in_flight = state.metrics.in_flight.get(),
            "requests still in flight after the grace period: cutting them"
        );
        // Unanswered requests get 503 `shutdown`, streams an error event `shutdown`; a
        // connection that still has not ended (a client that does not read) is then aborted,
        // its request logged with the same error as it is dropped.
        state.cut.send_replace(true);
        if tokio::time::timeout(CUT_WAIT, &mut drained).await.is_err() {
            connections.abort_all();
        }
    }
    // Every connection task has ended (or been aborted and dropped) before this returns, so
    // every decision event has been queued on the log.
    while connections.join_next().await.is_some() {}
}

/// How long requests cut at the end of the grace period have to send their last bytes before
/// their connections are aborted.
const CUT_WAIT: Duration = Duration::from_secs(1);

/// Serves until SIGTERM or SIGINT (graceful shutdown), reloading the router on SIGHUP. Prints
/// `pointsman serve: listening on http://ADDR` on stdout once ready.
///
/// # Errors
///
/// As [`start`], and the final save's error.
pub async fn serve(config: Config) -> Result<(), GatewayError> {
    use tokio::signal::unix::{signal, SignalKind};
    let sig = |kind| signal(kind).map_err(|e| GatewayError::io("installing a signal handler", e));
    let mut hup = sig(SignalKind::hangup())?;
    let mut term = sig(SignalKind::terminate())?;
    let mut int = sig(SignalKind::interrupt())?;
    let running = start(config).await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "pointsman serve: listening on http://{}",
            running.local_addr()
        );
        let _ = out.flush();
    }
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the router");
                let _ = running.reload().await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down: finishing requests in flight");
    running.shutdown().await
}
