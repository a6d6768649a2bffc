//! The gateway's configuration: one TOML file (`pointsman serve --config gateway.toml`).
//!
//! Every field, its default and its meaning are listed in `docs/gateway.md`; relative paths are
//! resolved against the folder of the configuration file. Unknown keys are refused, so a typo is
//! an error at start rather than a setting silently ignored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use pointsman::pool::{MAX_COST_USD, MAX_OUTPUT_TOKENS, MAX_PRICE_PER_MTOK};

use crate::error::GatewayError;

/// The model names that route: `"pointsman"` (the default policy) and `"pointsman:<policy>"`.
pub const ROUTED_MODEL: &str = "pointsman";

/// The policy name plain [`ROUTED_MODEL`] requests are logged and counted under (reserved: no
/// `[policies.default]`).
pub const DEFAULT_POLICY: &str = "default";

/// Most calls in flight to one upstream, and most embeddings at once: a semaphore holds that many
/// permits (tokio's cannot hold more than 2^61, and a larger value panicked at start).
pub const MAX_CONCURRENCY: usize = 1 << 20;

/// Most request headers `limits.max_headers` may allow: the HTTP server sets aside room for that
/// many on every request (a value of 10^12 aborted the process on its first connection).
pub const MAX_HEADERS: usize = 4096;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:8080`; port 0 picks a free one).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The saved router file (`pointsman train --out ...`).
    pub router: PathBuf,
    /// How requests are routed.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Named routing policies, requested as `model: "pointsman:<name>"`.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyConfig>,
    /// Size and time limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Fallback and circuit breaking.
    #[serde(default)]
    pub fallback: FallbackConfig,
    /// Online learning from `/v1/feedback`.
    #[serde(default)]
    pub learning: LearningConfig,
    /// The decision log.
    #[serde(default)]
    pub log: LogConfig,
    /// Metrics.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Client authentication.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The upstream models.
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    /// `[state]`: the decision policies' budgets and sessions shared with the other replicas
    /// of this gateway through Redis; absent: each process keeps its own.
    #[serde(default)]
    pub state: Option<StateSection>,
}

/// `[state]`: the Redis the decision policies' state is shared through, and its settings
/// (`namespace`, `session_ttl_ms`, `dedupe_ms`, `max_pending`, `session_capacity`:
/// [`pointsman::share::SharedStateConfig`]). Each routing policy's decision policy keeps its
/// keys under `<namespace>.<policy name>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// `redis://host:port/db`.
    pub redis: String,
    /// The shared state's settings.
    #[serde(flatten)]
    pub shared: pointsman::share::SharedStateConfig,
}

impl StateSection {
    /// The shared state of routing policy `name`'s decision policy.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Config`] for a bad URL, namespace or setting.
    pub fn open(&self, name: &str) -> Result<pointsman::share::SharedPolicyState, GatewayError> {
        let config = pointsman::share::SharedStateConfig {
            namespace: format!("{}.{name}", self.shared.namespace),
            ..self.shared.clone()
        };
        pointsman::share::SharedPolicyState::redis(&self.redis, config)
            .map_err(|e| GatewayError::Config(format!("state (policy {name:?}): {e}")))
    }
}

/// `[routing]`: the default policy and the embedder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Quality points per USD of expected cost for `model: "pointsman"` (default 0: best
    /// expected quality).
    pub cost_weight: f64,
    /// When set, requests whose cheapest allowed model is expected to cost more than this (USD)
    /// get 402.
    pub max_cost: Option<f64>,
    /// When set, only these upstream models are routed to.
    pub allowed: Option<Vec<String>>,
    /// How many of the last user turns are embedded and routed (default 1: the last one).
    pub turns: usize,
    /// The embedding model folder (default: `POINTSMAN_MODEL_DIR`, else the cache folder
    /// `scripts/fetch-model.sh` fills).
    pub model_dir: Option<PathBuf>,
    /// Threads one embedding is split over (default 0: the cores, at most
    /// [`DEFAULT_EMBED_THREADS_MAX`]). The threads form one pool shared by the embeddings in
    /// flight: an embedding that finds the pool free uses all of it and finishes sooner, so
    /// fewer embeddings overlap and fewer requests wait for an embedding slot
    /// (`benches/gateway/run.sh` measures both settings; docs/benchmarks.md).
    pub embed_threads: usize,
    /// Embeddings computed at once (default 0: the number of cores).
    pub max_concurrent_embeds: usize,
    /// Whether the embedding threads are pinned one to a CPU (default `"auto"`: when they are
    /// as many as the CPUs the gateway may run on, and more than one; `"always"`, `"never"`).
    /// On 2 cores at 100 requests/s pinning takes about 1 ms off each embedding
    /// (docs/benchmarks.md, "Pinned embedding threads"); see [`pointsman::embed::Pinning`].
    pub embed_pinning: EmbedPinning,
}

/// `routing.embed_pinning`: [`pointsman::embed::Pinning`] in the configuration file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedPinning {
    /// Pin when the threads are as many as the CPUs, and more than one.
    #[default]
    Auto,
    /// Pin whenever the embedder has a pool of threads.
    Always,
    /// Let the operating system place the threads.
    Never,
}

impl From<EmbedPinning> for pointsman::embed::Pinning {
    fn from(p: EmbedPinning) -> Self {
        match p {
            EmbedPinning::Auto => pointsman::embed::Pinning::Auto,
            EmbedPinning::Always => pointsman::embed::Pinning::Always,
            EmbedPinning::Never => pointsman::embed::Pinning::Never,
        }
    }
}

/// The most threads `routing.embed_threads = 0` splits one embedding over: measured on 2 cores
/// only, and a short text split dozens of ways on a many-core machine would spend more on
/// handing out the slivers than it saves.
pub const DEFAULT_EMBED_THREADS_MAX: usize = 4;

impl RoutingConfig {
    /// The threads one embedding is split over: `embed_threads`, or for 0 the cores up to
    /// [`DEFAULT_EMBED_THREADS_MAX`].
    pub fn embed_threads(&self) -> usize {
        match self.embed_threads {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(DEFAULT_EMBED_THREADS_MAX),
            n => n,
        }
    }
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            cost_weight: 0.0,
            max_cost: None,
            allowed: None,
            turns: 1,
            model_dir: None,
            embed_threads: 0,
            max_concurrent_embeds: 0,
            embed_pinning: EmbedPinning::Auto,
        }
    }
}

/// `[policies.<name>]`: a named routing preset; unset fields take the `[routing]` values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Quality points per USD of expected cost.
    pub cost_weight: Option<f64>,
    /// Maximum expected cost of a request, USD.
    pub max_cost: Option<f64>,
    /// The upstream models this policy may route to.
    pub allowed: Option<Vec<String>>,
    /// A decision-policy file of the engine (JSON, or TOML for `.toml`; `docs/policies.md`):
    /// rules on the prompt, tenant and metadata, capabilities, an out-of-distribution guard,
    /// hard caps, paced budgets per tenant or user, stickiness per session. Applied after the
    /// router's estimates (repriced with the configured prices) and the fields above. Relative
    /// paths are relative to this configuration file.
    pub file: Option<PathBuf>,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body accepted, bytes (default 1 MiB); larger bodies get 413.
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers), bytes (default 16 KiB); larger heads
    /// get 431.
    pub max_header_bytes: usize,
    /// Most headers in one request (default 64); more get 431.
    pub max_headers: usize,
    /// Time a client has to send its request head, ms (default 10 000).
    pub header_read_timeout_ms: u64,
    /// Time a client has to send its request body once the head is in, ms (default 30 000);
    /// a body still incomplete then gets 408 (a client trickling bytes cannot hold a connection
    /// open for ever).
    pub body_read_timeout_ms: u64,
    /// Largest upstream answer read (non-streaming), bytes (default 32 MiB).
    pub max_upstream_body_bytes: usize,
    /// How long shutdown waits for in-flight requests, ms (default 30 000).
    pub shutdown_grace_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 1 << 20,
            max_header_bytes: 16 << 10,
            max_headers: 64,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            max_upstream_body_bytes: 32 << 20,
            shutdown_grace_ms: 30_000,
        }
    }
}

/// `[fallback]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FallbackConfig {
    /// Upstream calls one routed request may make, the first included (default 3).
    pub max_tries: usize,
    /// Consecutive failures that open an upstream's circuit (default 5).
    pub breaker_failures: u32,
    /// How long an open circuit skips its upstream before one trial call, ms (default 30 000).
    pub breaker_cooldown_ms: u64,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            max_tries: 3,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
        }
    }
}

/// `[learning]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearningConfig {
    /// Folder of the learner's saved state (default: `<router file>.state`). The state of the
    /// router file with sha256 `H` is `<state_dir>/<H[..16]>.safetensors`.
    pub state_dir: Option<PathBuf>,
    /// Save the state after this many observations (default 100; 0: only before a reload and at
    /// shutdown).
    pub save_every: u64,
    /// Requests remembered for feedback (default 100 000; the oldest are forgotten first).
    pub feedback_window: usize,
    /// `[learning.share]`: the learner's state shared with the other replicas of this gateway
    /// through Redis (docs/scale-out.md); absent: the learner learns alone.
    pub share: Option<ShareSection>,
}

/// `[learning.share]`: the Redis to share the learner's state through, and the exchange's
/// settings (`interval_ms`, `namespace`, `replica`, `max_buffer_bytes`, `compact_every`,
/// `read_batch`: [`pointsman::share::ShareConfig`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareSection {
    /// `redis://host:port/db`.
    pub redis: String,
    /// The exchange's settings.
    #[serde(flatten)]
    pub exchange: pointsman::share::ShareConfig,
}

impl Default for LearningConfig {
    fn default() -> Self {
        LearningConfig {
            state_dir: None,
            save_every: 100,
            feedback_window: 100_000,
            share: None,
        }
    }
}

/// `[log]`: the decision log (JSON lines, schema in `docs/gateway.md`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Where to append the events (default: no log).
    pub path: Option<PathBuf>,
    /// Also log the routed text (default false: only its embedding).
    pub prompts: bool,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Distinct tenants given their own label value; later ones are counted as `other`
    /// (default 100).
    pub max_tenants: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { max_tenants: 100 }
    }
}

/// `[auth]`: bearer tokens for clients. With none configured every client is let in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The accepted tokens and the tenant each stands for.
    pub tokens: Vec<TokenConfig>,
}

/// One client token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The tenant of every request made with this token.
    pub tenant: String,
    /// The environment variable that holds the token.
    pub token_env: Option<String>,
    /// The token itself (prefer `token_env`).
    pub token: Option<String>,
}

/// `[[upstreams]]`: one model behind an OpenAI-compatible endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The model id clients and the router use.
    pub model: String,
    /// The endpoint's base URL, up to and including `/v1` (`POST {base_url}/chat/completions`).
    pub base_url: String,
    /// The model name sent to the endpoint (default: `model`).
    pub upstream_model: Option<String>,
    /// The environment variable holding the endpoint's API key (sent as a bearer token).
    pub api_key_env: Option<String>,
    /// USD per million input tokens; overrides the router file's price for this model.
    pub input_usd_per_mtok: Option<f64>,
    /// USD per million output tokens; overrides the router file's price for this model.
    pub output_usd_per_mtok: Option<f64>,
    /// Output tokens assumed by the cost estimate (default: the router file's card, else 256).
    pub output_tokens: Option<f64>,
    /// Time allowed for one call, ms (default 60 000): until the whole answer, or for a stream
    /// until its first event and then between events.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Calls in flight at once (default 64); more wait, within the timeout.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
}

impl UpstreamConfig {
    /// The call timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The model name the endpoint is sent.
    pub fn upstream_model(&self) -> &str {
        self.upstream_model.as_deref().unwrap_or(&self.model)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_timeout_ms() -> u64 {
    60_000
}

fn default_max_concurrency() -> usize {
    64
}

impl Config {
    /// Reads and checks a configuration file; relative paths are resolved against its folder.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Config`] naming the file for unreadable or invalid TOML and for values
    /// out of range.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, GatewayError> {
        let path = path.as_ref();
        let text = pointsman::files::read_regular_to_string(path)
            .map_err(|e| GatewayError::Config(e.to_string()))?;
        let mut config = Config::from_toml(&text).map_err(|e| match e {
            GatewayError::Config(m) => GatewayError::Config(format!("{}: {m}", path.display())),
            other => other,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Parses and checks a configuration (paths stay as written).
    ///
    /// # Errors
    ///
    /// [`GatewayError::Config`] for invalid TOML and for values out of range.
    pub fn from_toml(text: &str) -> Result<Config, GatewayError> {
        let config: Config = toml::from_str(text)
            .map_err(|e| GatewayError::Config(bounded(toml_error(text, &e))))?;
        config.validate().map_err(|e| match e {
            GatewayError::Config(m) => GatewayError::Config(bounded(m)),
            other => other,
        })?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        join(&mut self.router);
        if let Some(p) = &mut self.routing.model_dir {
            join(p);
        }
        if let Some(p) = &mut self.learning.state_dir {
            join(p);
        }
        if let Some(p) = &mut self.log.path {
            join(p);
        }
        for p in self.policies.values_mut() {
            if let Some(f) = &mut p.file {
                join(f);
            }
        }
    }

    /// The folder of the learner's saved states.
    pub fn state_dir(&self) -> PathBuf {
        self.learning.state_dir.clone().unwrap_or_else(|| {
            let mut name = self.router.as_os_str().to_owned();
            name.push(".state");
            PathBuf::from(name)
        })
    }

    /// The upstream serving `model`, by its index.
    pub fn upstream_index(&self, model: &str) -> Option<usize> {
        self.upstreams.iter().position(|u| u.model == model)
    }

    /// Checks every value; called by [`Config::load`] and [`Config::from_toml`].
    ///
    /// # Errors
    ///
    /// [`GatewayError::Config`] naming the first value out of range.
    pub fn validate(&self) -> Result<(), GatewayError> {
        let bad = |m: String| Err(GatewayError::Config(m));
        check_weight("routing.cost_weight", Some(self.routing.cost_weight))?;
        check_cost("routing.max_cost", self.routing.max_cost)?;
        if self.routing.turns == 0 {
            return bad("routing.turns must be at least 1".into());
        }
        if self.routing.embed_threads > pointsman::embed::MAX_THREADS {
            return bad(format!(
                "routing.embed_threads is {}, more than the maximum of {} (0: the cores)",
                self.routing.embed_threads,
                pointsman::embed::MAX_THREADS
            ));
        }
        if self.routing.max_concurrent_embeds > MAX_CONCURRENCY {
            return bad(format!(
                "routing.max_concurrent_embeds is {}, more than the maximum of {MAX_CONCURRENCY} \
                 (0: the cores)",
                self.routing.max_concurrent_embeds
            ));
        }
        if self.upstreams.is_empty() {
            return bad("no [[upstreams]]: the gateway needs at least one model to call".into());
        }
        for (i, u) in self.upstreams.iter().enumerate() {
            if u.model.trim().is_empty() || u.model.starts_with(ROUTED_MODEL) {
                return bad(format!(
                    "upstreams[{i}].model {:?} is empty or starts with {ROUTED_MODEL:?}",
                    u.model
                ));
            }
            if self.upstreams[..i].iter().any(|o| o.model == u.model) {
                return bad(format!("upstream model {:?} appears twice", u.model));
            }
            let url = reqwest::Url::parse(&u.base_url);
            if !matches!(url.as_ref().map(|u| u.scheme()), Ok("http" | "https")) {
                return bad(format!(
                    "upstreams[{i}].base_url {:?} is not an http(s) URL",
                    u.base_url
                ));
            }
            // The engine's ceilings on a model card (docs/reliability.md): a price here replaces
            // the card's, so it must not escape them.
            for (name, v, max) in [
                (
                    "input_usd_per_mtok",
                    u.input_usd_per_mtok,
                    MAX_PRICE_PER_MTOK,
                ),
                (
                    "output_usd_per_mtok",
                    u.output_usd_per_mtok,
                    MAX_PRICE_PER_MTOK,
                ),
                ("output_tokens", u.output_tokens, MAX_OUTPUT_TOKENS),
            ] {
                check_at_most(&format!("upstreams[{i}].{name}"), v, max)?;
            }
            if u.input_usd_per_mtok.is_some() != u.output_usd_per_mtok.is_some() {
                return bad(format!(
                    "upstreams[{i}] ({}): give both input_usd_per_mtok and output_usd_per_mtok, or neither",
                    u.model
                ));
            }
            if u.timeout_ms == 0 || u.max_concurrency == 0 {
                return bad(format!(
                    "upstreams[{i}] ({}): timeout_ms and max_concurrency must be positive",
                    u.model
                ));
            }
            if u.max_concurrency > MAX_CONCURRENCY {
                return bad(format!(
                    "upstreams[{i}] ({}): max_concurrency {} is more than the maximum of \
                     {MAX_CONCURRENCY}",
                    u.model, u.max_concurrency
                ));
            }
        }
        self.check_allowed("routing.allowed", self.routing.allowed.as_deref())?;
        for (name, p) in &self.policies {
            if name == DEFAULT_POLICY {
                return bad(format!(
                    "policy name {DEFAULT_POLICY:?} is reserved: requests for plain \"pointsman\" \
                     are logged and counted under it; name the policy otherwise"
                ));
            }
            if name.is_empty() || name.contains(|c: char| c == ':' || c.is_whitespace()) {
                return bad(format!(
                    "policy name {name:?} must be non-empty, without ':' or spaces"
                ));
            }
            check_weight(&format!("policies.{name}.cost_weight"), p.cost_weight)?;
            check_cost(&format!("policies.{name}.max_cost"), p.max_cost)?;
            self.check_allowed(&format!("policies.{name}.allowed"), p.allowed.as_deref())?;
        }
        let l = &self.limits;
        if l.max_body_bytes == 0 || l.max_upstream_body_bytes == 0 || l.max_headers == 0 {
            return bad("limits: sizes must be positive".into());
        }
        if l.max_headers > MAX_HEADERS {
            return bad(format!(
                "limits.max_headers {} is more than the maximum of {MAX_HEADERS} (room for that \
                 many is set aside for every request)",
                l.max_headers
            ));
        }
        if l.header_read_timeout_ms == 0 || l.body_read_timeout_ms == 0 {
            return bad(
                "limits.header_read_timeout_ms and limits.body_read_timeout_ms must be at least 1"
                    .into(),
            );
        }
        if !(1024..=1 << 20).contains(&l.max_header_bytes) {
            return bad(format!(
                "limits.max_header_bytes {} outside [1024, 1048576]",
                l.max_header_bytes
            ));
        }
        if self.fallback.max_tries == 0 || self.fallback.breaker_failures == 0 {
            return bad(
                "fallback.max_tries and fallback.breaker_failures must be at least 1".into(),
            );
        }
        if let Some(state) = &self.state {
            for name in self.policies.keys() {
                state.open(name)?;
            }
        }
        if let Some(share) = &self.learning.share {
            share
                .exchange
                .validate()
                .map_err(|e| GatewayError::Config(format!("learning.share: {e}")))?;
        }
        if self.learning.feedback_window == 0 {
            return bad("learning.feedback_window must be at least 1".into());
        }
        for (i, t) in self.auth.tokens.iter().enumerate() {
            if t.tenant.trim().is_empty() || t.token.is_some() == t.token_env.is_some() {
                return bad(format!(
                    "auth.tokens[{i}]: give a tenant and exactly one of token and token_env"
                ));
            }
            if let Some(token) = &t.token {
                check_token(&format!("auth.tokens[{i}] (tenant {:?})", t.tenant), token)?;
            }
            // The values of token_env variables are compared when the gateway starts
            // (`AppState::new`); here the tokens and variable names as written.
            let same = |o: &TokenConfig| {
                (t.token.is_some() && o.token == t.token)
                    || (t.token_env.is_some() && o.token_env == t.token_env)
            };
            if let Some(j) = self.auth.tokens[..i].iter().position(same) {
                return bad(format!(
                    "auth.tokens[{j}] (tenant {:?}) and auth.tokens[{i}] (tenant {:?}) have the \
                     same token: each token must be different",
                    self.auth.tokens[j].tenant, t.tenant
                ));
            }
        }
        Ok(())
    }

    fn check_allowed(&self, what: &str, allowed: Option<&[String]>) -> Result<(), GatewayError> {
        let Some(allowed) = allowed else {
            return Ok(());
        };
        if allowed.is_empty() {
            return Err(GatewayError::Config(format!("{what} is empty")));
        }
        match allowed.iter().find(|m| self.upstream_index(m).is_none()) {
            Some(m) => Err(GatewayError::Config(format!(
                "{what} names {m:?}, which is not an upstream model"
            ))),
            None => Ok(()),
        }
    }
}

/// A client token's value: not empty, and without leading or trailing whitespace (the token of
/// an `Authorization` header is read trimmed, so such a token could never match).
///
/// # Errors
///
/// [`GatewayError::Config`] naming `what` (the entry).
pub fn check_token(what: &str, token: &str) -> Result<(), GatewayError> {
    if token.trim().is_empty() {
        Err(GatewayError::Config(format!("{what}: the token is empty")))
    } else if token.trim() != token {
        Err(GatewayError::Config(format!(
            "{what}: the token starts or ends with whitespace"
        )))
    } else {
        Ok(())
    }
}

/// A TOML error as one line: where, and what (toml's own text quotes the whole offending line,
/// which may be megabytes long).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}

/// Longest configuration error shown whole.
const MAX_MESSAGE: usize = 1024;

/// `message`, cut to [`MAX_MESSAGE`] bytes (at a character boundary) with its length: a value
/// quoted in it may be as long as the file (a 2 MB model name gave a 2 MB error line).
fn bounded(message: String) -> String {
    match pointsman::error::cut(&message, MAX_MESSAGE) {
        None => message,
        Some(head) => format!("{head}… ({} bytes in all)", message.len()),
    }
}

fn check_weight(what: &str, v: Option<f64>) -> Result<(), GatewayError> {
    match v {
        Some(v) if !v.is_finite() || v < 0.0 => Err(GatewayError::Config(format!(
            "{what} {v} is not a non-negative number"
        ))),
        _ => Ok(()),
    }
}

fn check_cost(what: &str, v: Option<f64>) -> Result<(), GatewayError> {
    check_at_most(what, v, MAX_COST_USD)
}

fn check_at_most(what: &str, v: Option<f64>, max: f64) -> Result<(), GatewayError> {
    check_weight(what, v)?;
    match v {
        Some(v) if v > max => Err(GatewayError::Config(format!(
            "{what} {v:e} is above the ceiling {max:e}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
router = "r.safetensors"
[[upstreams]]
model = "a"
base_url = "http://127.0.0.1:9/v1"
"#;

    #[test]
    fn defaults() {
        let c = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.routing.turns, 1);
        assert_eq!(c.routing.embed_threads, 0);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(
            c.routing.embed_threads(),
            cores.min(DEFAULT_EMBED_THREADS_MAX)
        );
        let three = Config::from_toml(&format!("{MINIMAL}[routing]\nembed_threads = 3\n")).unwrap();
        assert_eq!(three.routing.embed_threads(), 3);
        assert_eq!(c.routing.embed_pinning, EmbedPinning::Auto);
        let never =
            Config::from_toml(&format!("{MINIMAL}[routing]\nembed_pinning = \"never\"\n")).unwrap();
        assert_eq!(never.routing.embed_pinning, EmbedPinning::Never);
        let e = Config::from_toml(&format!("{MINIMAL}[routing]\nembed_pinning = \"yes\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown variant `yes`") && e.contains("`always`"),
            "{e}"
        );
        assert_eq!(c.fallback.max_tries, 3);
        assert_eq!(c.upstreams[0].upstream_model(), "a");
        assert_eq!(c.state_dir(), PathBuf::from("r.safetensors.state"));
    }

    #[test]
    fn refuses_bad_values() {
        for (extra, needle) in [
            ("[routing]\ncost_weight = -1\n", "routing.cost_weight"),
            ("[routing]\nallowed = [\"zz\"]\n", "not an upstream"),
            ("[policies.\"a:b\"]\n", "policy name"),
            ("[limits]\nmax_header_bytes = 10\n", "max_header_bytes"),
            ("[routing]\nturnz = 2\n", "unknown field"),
            ("[routing]\nembed_threads = 5000\n", "routing.embed_threads"),
            ("[limits]\nbody_read_timeout_ms = 0\n", "limits.body_read_timeout_ms"),
            ("[policies.default]\ncost_weight = 1\n", "\"default\" is reserved"),
            // Values that panicked or aborted at start or on the first connection, and prices
            // past the model cards' ceilings (MINIMAL ends inside its upstream's table).
            (
                "max_concurrency = 3000000000000000000\n",
                "max_concurrency 3000000000000000000 is more than the maximum of 1048576",
            ),
            (
                "[routing]\nmax_concurrent_embeds = 3000000000000000000\n",
                "routing.max_concurrent_embeds",
            ),
            ("[limits]\nmax_headers = 1000000000000\n", "limits.max_headers"),
            (
                "input_usd_per_mtok = 1e300\noutput_usd_per_mtok = 1\n",
                "upstreams[0].input_usd_per_mtok 1e300 is above the ceiling 1e6",
            ),
            (
                "output_tokens = 2e9\n",
                "upstreams[0].output_tokens 2e9 is above the ceiling 1e9",
            ),
            (
                "[routing]\nmax_cost = 1e13\n",
                "routing.max_cost 1e13 is above the ceiling 1e12",
            ),
            ("[[auth.tokens]]\ntenant = \"t\"\n", "auth.tokens[0]"),
            (
                "[[auth.tokens]]\ntenant = \"t\"\ntoken = \"\"\n",
                "auth.tokens[0] (tenant \"t\"): the token is empty",
            ),
            (
                "[[auth.tokens]]\ntenant = \"t\"\ntoken = \"x \"\n",
                "auth.tokens[0] (tenant \"t\"): the token starts or ends with whitespace",
            ),
            (
                "[[auth.tokens]]\ntenant = \"a\"\ntoken = \"x\"\n[[auth.tokens]]\ntenant = \"b\"\ntoken = \"y\"\n\
                 [[auth.tokens]]\ntenant = \"c\"\ntoken = \"x\"\n",
                "auth.tokens[0] (tenant \"a\") and auth.tokens[2] (tenant \"c\") have the same token",
            ),
            (
                "[[auth.tokens]]\ntenant = \"a\"\ntoken_env = \"T\"\n[[auth.tokens]]\ntenant = \"b\"\ntoken_env = \"T\"\n",
                "auth.tokens[0] (tenant \"a\") and auth.tokens[1] (tenant \"b\") have the same token",
            ),
        ] {
            let e = Config::from_toml(&format!("{MINIMAL}{extra}")).unwrap_err();
            assert!(e.to_string().contains(needle), "{extra}: {e}");
        }
        let e = Config::from_toml("router = \"r\"\n").unwrap_err();
        assert!(e.to_string().contains("no [[upstreams]]"), "{e}");
        // Errors are one bounded line, located, whatever the file holds.
        let long = "x".repeat(2 << 20);
        for extra in [
            format!("[routing]\nallowed = [\"{long}\"]\n"),
            format!("[routing]\nturns = \"{long}\"\n"),
        ] {
            let e = Config::from_toml(&format!("{MINIMAL}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(e.len() < 1200 && !e.contains('\n'), "{}", &e[..200]);
            assert!(e.contains("bytes in all)") || e.contains("line "), "{e}");
        }
        let e = Config::from_toml(&format!("{MINIMAL}[routing]\nturnz = 2\n")).unwrap_err();
        assert!(
            e.to_string()
                .contains("line 7, column 1: unknown field `turnz`"),
            "{e}"
        );
        let twice = format!("{MINIMAL}[[upstreams]]\nmodel = \"a\"\nbase_url = \"http://x/v1\"\n");
        assert!(Config::from_toml(&twice).is_err());
    }

    #[test]
    fn learning_share_section() {
        assert!(Config::from_toml(MINIMAL).unwrap().learning.share.is_none());
        let text = format!(
            "{MINIMAL}[learning.share]\nredis = \"redis://127.0.0.1:6379/\"\ninterval_ms = 250\n"
        );
        let share = Config::from_toml(&text).unwrap().learning.share.unwrap();
        assert_eq!(share.redis, "redis://127.0.0.1:6379/");
        assert_eq!(share.exchange.interval_ms, 250);
        assert_eq!(share.exchange.compact_every, 1000);
        for (extra, needle) in [
            ("interval_ms = 0\n", "interval_ms"),
            ("intervall_ms = 5\n", "unknown field"),
        ] {
            let text = format!("{MINIMAL}[learning.share]\nredis = \"redis://h/\"\n{extra}");
            let e = Config::from_toml(&text).unwrap_err();
            assert!(e.to_string().contains(needle), "{extra}: {e}");
        }
    }

    #[test]
    fn state_section() {
        assert!(Config::from_toml(MINIMAL).unwrap().state.is_none());
        let text = format!(
            "{MINIMAL}[policies.p]\n[state]\nredis = \"redis://127.0.0.1:6379/\"\nsession_ttl_ms = 5000\n"
        );
        let state = Config::from_toml(&text).unwrap().state.unwrap();
        assert_eq!(state.shared.session_ttl_ms, 5000);
        assert_eq!(state.shared.namespace, "policy");
        assert_eq!(state.open("p").unwrap().config().namespace, "policy.p");
        for (extra, needle) in [
            ("namespace = \"a b\"\n", "namespace"),
            ("session_ttl_ms = 0\n", "session_ttl_ms"),
            ("sesion_ttl_ms = 5\n", "unknown field"),
        ] {
            let text = format!("{MINIMAL}[policies.p]\n[state]\nredis = \"redis://h/\"\n{extra}");
            let e = Config::from_toml(&text).unwrap_err();
            assert!(e.to_string().contains(needle), "{extra}: {e}");
        }
    }
}
