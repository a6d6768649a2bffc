//! The adapter to the Pointsman engine: the only module of the gateway that calls it.
//!
//! The gateway translates HTTP into the engine's calls and back; every decision is the engine's.
//! This module loads the router file and the embedder, embeds the routed text, asks the router
//! for its per-model estimates, reprices them with the configuration's prices (one source of
//! prices: an upstream's configured price overrides the router file's model card, so repricing
//! needs no refit), lets the router choose under the request's objective, and feeds feedback to
//! learners and saves them. When the engine's API changes, only this file changes.
//!
//! [`Engine::decide`] is the routing step: one function from a query and its objective to a
//! ranked decision. A routing policy with a decision-policy file (`[policies.<name>] file`)
//! hands the repriced estimates to the engine's policy layer (`pointsman::policy`: rules,
//! capabilities, guard, caps, paced budgets, stickiness), which makes the choice and says what
//! acted; [`settle_policy`] charges the answer's cost to its budgets afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::StatusCode;
use pointsman::embed::{Embedder, EmbedderOptions};
use pointsman::policy::{Hold, Policy, PolicyRouter, Request as PolicyRequest};
use pointsman::router::best_model;
use pointsman::{AnyRouter, Decision, ErrorKind, Feedback, Objective, QueryFeatures};
use sha2::{Digest, Sha256};

use crate::config::{Config, RoutingConfig, UpstreamConfig};
use crate::error::{ApiError, GatewayError};

/// The in-process text embedder, shared by every request and kept across reloads.
#[derive(Debug, Clone)]
pub struct TextEmbedder {
    inner: Arc<Embedder>,
}

/// A routed query: the features the router reads.
#[derive(Debug, Clone)]
pub struct Query {
    features: QueryFeatures,
    /// Word pieces of the routed text (`[CLS]` and `[SEP]` included), before truncation.
    pub word_pieces: usize,
    /// Whether the routed text was cut to the embedder's window.
    pub truncated: bool,
}

impl Query {
    /// The unit-length embedding.
    pub fn embedding(&self) -> &[f32] {
        self.features.embedding()
    }

    /// The prompt length in tokens the cost estimate uses.
    pub fn prompt_tokens(&self) -> f64 {
        self.features.prompt_tokens().unwrap_or(0.0)
    }

    /// The embedding model's name.
    pub fn embedding_model(&self) -> Option<&str> {
        self.features.embedding_model()
    }
}

impl TextEmbedder {
    /// Loads the embedding model named by the configuration (or the default one).
    ///
    /// # Errors
    ///
    /// [`GatewayError::Engine`] when the model folder is missing or corrupt.
    pub fn load(config: &RoutingConfig) -> Result<TextEmbedder, GatewayError> {
        let opts = EmbedderOptions {
            threads: config.embed_threads(),
            pinning: config.embed_pinning.into(),
            ..Default::default()
        };
        let inner = match &config.model_dir {
            Some(dir) => Embedder::load(dir, &opts)?,
            None => Embedder::load_default(&opts)?,
        };
        Ok(TextEmbedder {
            inner: Arc::new(inner),
        })
    }

    /// The embedding model's name.
    pub fn model_name(&self) -> &str {
        self.inner.model_name()
    }

    /// The threads one embedding is split over.
    pub fn threads(&self) -> usize {
        self.inner.threads()
    }

    /// Whether those threads are pinned one to a CPU (`routing.embed_pinning`).
    pub fn pinned(&self) -> bool {
        self.inner.pinned()
    }

    /// Embeds `text` (CPU-bound: call it off the async executor); the cost estimate will count
    /// `prompt` as the prompt (the whole conversation), in tokens as the datasets estimate them.
    ///
    /// # Errors
    ///
    /// 400 `invalid_input` for empty text; 500 when the embedder fails.
    pub fn embed(&self, text: &str, prompt: &str) -> Result<Query, ApiError> {
        let (features, info) = self.inner.features(text).map_err(api_error)?;
        let features = features
            .with_prompt_tokens(pointsman::embed::prompt_tokens_of(prompt))
            .map_err(api_error)?;
        Ok(Query {
            features,
            word_pieces: info.tokens,
            truncated: info.truncated,
        })
    }

    /// A query from an embedding computed elsewhere (tests, replays).
    ///
    /// # Errors
    ///
    /// 400 for an embedding that cannot be routed (empty, all zeros, not finite).
    pub fn query_from_embedding(
        &self,
        embedding: Vec<f32>,
        prompt_tokens: f64,
    ) -> Result<Query, ApiError> {
        let features = QueryFeatures::new(embedding)
            .and_then(|f| f.with_prompt_tokens(prompt_tokens))
            .map_err(api_error)?
            .with_embedding_model(self.model_name());
        Ok(Query {
            features,
            word_pieces: 0,
            truncated: false,
        })
    }
}

/// Prices of one model, from the configuration or else the router file's card.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// USD per million input tokens.
    pub input_usd_per_mtok: f64,
    /// USD per million output tokens.
    pub output_usd_per_mtok: f64,
    /// Output tokens the estimate assumes.
    pub output_tokens: f64,
}

impl Price {
    /// USD for `input` prompt tokens and `output` answer tokens, at most
    /// [`MAX_COST_USD`](pointsman::pool::MAX_COST_USD): a cost the engine would refuse (a
    /// learner's feedback, a decision policy's charge) is clamped to that ceiling.
    pub fn cost(&self, input: f64, output: f64) -> f64 {
        ((self.input_usd_per_mtok * input + self.output_usd_per_mtok * output) / 1e6)
            .min(pointsman::pool::MAX_COST_USD)
    }

    /// The expected USD cost of a call with `input` prompt tokens.
    pub fn estimate(&self, input: f64) -> f64 {
        self.cost(input, self.output_tokens)
    }
}

/// What a routed request optimises, after the policy and the request's options are merged.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteObjective {
    /// Quality points per USD of expected cost.
    pub cost_weight: f64,
    /// Maximum expected cost, USD.
    pub max_cost: Option<f64>,
    /// Upstream models the request may go to (`None`: all).
    pub allowed: Option<Vec<String>>,
    /// The request's tenant; logged and counted, for the decision policies (budgets per
    /// tenant) to act on once the engine has them.
    pub tenant: Option<String>,
    /// The request's session id (stickiness under a decision policy).
    pub session_id: Option<String>,
    /// The routing policy whose decision-policy file applies (`None`: no file).
    pub decision_policy: Option<String>,
    /// The cost weight the request or its routing policy set explicitly; under a decision
    /// policy, `None` leaves the policy file's own weight (or `[routing]`'s) in charge.
    pub cost_weight_override: Option<f64>,
}

/// One model of a ranked decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The model id.
    pub model: String,
    /// Expected quality.
    pub quality: f64,
    /// Expected cost, USD, at the configured prices.
    pub cost: f64,
    /// What the choice maximised: `quality − cost_weight × cost`, where a router that explores
    /// (LinUCB, Thompson sampling, knn-ucb, cluster-ucb) uses its score instead of the quality
    /// (plus the exploration bonus, or the posterior draw).
    pub utility: f64,
}

/// A routing decision: the chosen model first, then the other eligible models by utility.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// The chosen model, then the alternatives in fallback order; all within the budget.
    pub ranked: Vec<Candidate>,
    /// The probability with which the router made its choice (`None`: randomised, not known).
    pub probability: Option<f64>,
    /// The cost weight used.
    pub cost_weight: f64,
}

/// What [`Engine::decide`] returns: the decision or the reason there is none, and the decision
/// policy's audit when one applied (a refusal's audit says which part refused).
#[derive(Debug)]
pub struct Decided {
    /// The decision.
    pub result: Result<Routed, ApiError>,
    /// The audit (`pointsman::policy::Audit` as JSON), when a decision policy applied.
    pub audit: Option<serde_json::Value>,
    /// The expected cost the decision policy holds on its budgets until the call is settled
    /// ([`settle_policy`]): non-empty only with a shared state (`[state]`).
    pub held: Vec<Hold>,
    /// The decision policy that decided, bound to this engine's router: the call is settled
    /// with it even when a reload has replaced the engine meanwhile (its budgets and sessions
    /// are the same; the new router may lack the model that answered).
    pub policy: Option<PolicyRouter>,
}

/// A loaded router and what the gateway derived from it at load.
#[derive(Debug)]
pub struct Engine {
    router: AnyRouter,
    file_sha256: String,
    state_path: PathBuf,
    generation: u64,
    /// Per pool model: whether an upstream serves it.
    served: Vec<bool>,
    /// Per pool model: its prices (configuration over card).
    prices: Vec<Price>,
    /// Per upstream: its prices, when known.
    upstream_prices: Vec<Option<Price>>,
    /// The learner's state exchanged with the other replicas (`[learning.share]`); stopped
    /// (after a last synchronisation) when the engine is dropped at a reload or shutdown.
    exchange: Option<pointsman::share::Exchange>,
    /// Per routing policy with a decision-policy file: the policy bound to this router.
    policies: BTreeMap<String, PolicyRouter>,
}

impl Engine {
    /// Loads the router file named by `config` (or, for a learner, its saved state when one
    /// exists for this exact file) and checks it against the embedder and the upstreams.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Io`] for an unreadable file; [`GatewayError::Engine`] for a corrupt one
    /// or one made for other embeddings; [`GatewayError::Config`] when no model of the router has
    /// an upstream.
    /// `policies` are the routing policies' decision policies, loaded once by the caller so
    /// that their budgets and sessions outlive a reload.
    pub fn load(
        config: &Config,
        embedder: &TextEmbedder,
        generation: u64,
        policies: &BTreeMap<String, Policy>,
    ) -> Result<Engine, GatewayError> {
        let bytes = pointsman::files::read_regular(&config.router)?;
        let file_sha256 = hex(&Sha256::digest(&bytes));
        let state_path = config
            .state_dir()
            .join(format!("{}.safetensors", &file_sha256[..16]));
        let fitted = AnyRouter::from_bytes(&bytes).map_err(|e| {
            GatewayError::Config(format!("router {}: {e}", config.router.display()))
        })?;
        let router = if fitted.as_learner().is_some() && state_path.is_file() {
            let state = pointsman::load_router(&state_path)?;
            let same = state.kind() == fitted.kind()
                && state.dim() == fitted.dim()
                && state.models().ids().eq(fitted.models().ids());
            if !same {
                return Err(GatewayError::Config(format!(
                    "learner state {} does not match router {} (kind, models or dimension)",
                    state_path.display(),
                    config.router.display()
                )));
            }
            state
        } else {
            fitted
        };
        pointsman::embed::check_compatible(&embedder.inner, router.router())?;
        let pool = router.models();
        let served: Vec<bool> = pool
            .ids()
            .map(|id| config.upstream_index(id).is_some())
            .collect();
        if !served.iter().any(|&s| s) {
            return Err(GatewayError::Config(format!(
                "no model of the router ({}) has an upstream",
                pool.ids().collect::<Vec<_>>().join(", ")
            )));
        }
        let unserved: Vec<&str> = pool
            .ids()
            .filter(|id| config.upstream_index(id).is_none())
            .collect();
        if !unserved.is_empty() {
            tracing::warn!(
                models = unserved.join(", "),
                "{} of the router's {} models {} no upstream: never routed to",
                unserved.len(),
                pool.len(),
                if unserved.len() == 1 { "has" } else { "have" }
            );
        }
        // An upstream the router does not know is only called by name (passed through); when
        // its id is close to a model left without an upstream, it is most likely a typo.
        for upstream in &config.upstreams {
            if pool.index_of(&upstream.model).is_ok() {
                continue;
            }
            match likely_meant(&upstream.model, &unserved) {
                Some(id) => tracing::warn!(
                    upstream = upstream.model.as_str(),
                    "upstream {:?} is not a model of the router, only reachable by name: did you \
                     mean {id:?}, which has no upstream?",
                    upstream.model
                ),
                None => tracing::info!(
                    upstream = upstream.model.as_str(),
                    "upstream {:?} is not a model of the router: reachable by name only \
                     (passed through, never routed to)",
                    upstream.model
                ),
            }
        }
        let prices = pool
            .cards()
            .iter()
            .map(|card| {
                let card_price = Price {
                    input_usd_per_mtok: card.input_usd_per_mtok,
                    output_usd_per_mtok: card.output_usd_per_mtok,
                    output_tokens: card.default_output_tokens,
                };
                match config.upstream_index(&card.id) {
                    Some(u) => configured_price(&config.upstreams[u], Some(card_price))
                        .unwrap_or(card_price),
                    None => card_price,
                }
            })
            .collect();
        let upstream_prices = config
            .upstreams
            .iter()
            .map(|u| {
                let card = pool.index_of(&u.model).ok().map(|m| Price {
                    input_usd_per_mtok: pool.card(m).input_usd_per_mtok,
                    output_usd_per_mtok: pool.card(m).output_usd_per_mtok,
                    output_tokens: pool.card(m).default_output_tokens,
                });
                configured_price(u, card).or(card)
            })
            .collect();
        let exchange = match (&config.learning.share, router.as_learner()) {
            (Some(share), Some(learner)) => Some(
                pointsman::share::share_through_redis(
                    learner,
                    &share.redis,
                    share.exchange.clone(),
                )
                .map_err(|e| GatewayError::Config(format!("learning.share: {e}")))?,
            ),
            _ => None,
        };
        let policies = policies
            .iter()
            .map(|(name, policy)| {
                PolicyRouter::new(router.shared(), policy.clone())
                    .map(|p| (name.clone(), p))
                    .map_err(|e| GatewayError::Config(format!("policies.{name}.file: {e}")))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        Ok(Engine {
            policies,
            exchange,
            router,
            file_sha256,
            state_path,
            generation,
            served,
            prices,
            upstream_prices,
        })
    }

    /// The exchange's counters, when the learner's state is shared.
    pub fn share_stats(&self) -> Option<pointsman::share::ShareStats> {
        self.exchange
            .as_ref()
            .map(pointsman::share::Exchange::stats)
    }

    /// The router kind (as the engine names it).
    pub fn kind(&self) -> &'static str {
        self.router.kind().name()
    }

    /// The sha256 of the router file this engine was loaded from (hex).
    pub fn file_sha256(&self) -> &str {
        &self.file_sha256
    }

    /// How many times the router has been reloaded before this load.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The router's models that an upstream serves, in pool order.
    pub fn routed_models(&self) -> Vec<&str> {
        self.router
            .models()
            .ids()
            .zip(&self.served)
            .filter(|(_, &s)| s)
            .map(|(id, _)| id)
            .collect()
    }

    /// Whether the router learns from feedback.
    pub fn is_learner(&self) -> bool {
        self.router.as_learner().is_some()
    }

    /// Observations a learner has learned from (`None`: not a learner).
    pub fn observations(&self) -> Option<u64> {
        self.router.as_learner().map(|l| l.observations())
    }

    /// The prices of upstream `index` (configuration over the router's card), when known.
    pub fn upstream_price(&self, index: usize) -> Option<Price> {
        self.upstream_prices.get(index).copied().flatten()
    }

    /// The routing step: the router's estimates for `query`, repriced with the configured
    /// prices, restricted to the allowed models an upstream serves and to those within the
    /// budget, and the router's choice among them, with the rest ranked by utility.
    ///
    /// # Errors
    ///
    /// 402 `budget_exhausted` when no allowed model is expected to cost at most `max_cost`;
    /// 400 `no_routable_model` when none of the allowed models is one the router knows;
    /// 500 when the router fails.
    ///
    /// Under a decision policy (`objective.decision_policy`), the policy chooses among the
    /// allowed models within `max_cost`, reading `text` for its rules: 402 `budget_exhausted`
    /// when its budget's hard stop leaves no model, 422 `out_of_distribution` when its guard
    /// refuses, 422 `no_model_fits` when no model meets its caps or capabilities.
    pub fn decide(&self, query: &Query, objective: &RouteObjective, text: Option<&str>) -> Decided {
        let mut audit = None;
        let mut held = Vec::new();
        let result = self.decide_inner(query, objective, text, &mut audit, &mut held);
        let policy = objective
            .decision_policy
            .as_ref()
            .and_then(|name| self.policies.get(name))
            .cloned();
        Decided {
            result,
            audit,
            held,
            policy,
        }
    }

    fn decide_inner(
        &self,
        query: &Query,
        objective: &RouteObjective,
        text: Option<&str>,
        audit_out: &mut Option<serde_json::Value>,
        held_out: &mut Vec<Hold>,
    ) -> Result<Routed, ApiError> {
        let pool = self.router.models();
        let ids: Vec<&str> = pool
            .ids()
            .zip(&self.served)
            .filter(|(id, &served)| {
                served
                    && objective
                        .allowed
                        .as_ref()
                        .is_none_or(|a| a.iter().any(|x| x == id))
            })
            .map(|(id, _)| id)
            .collect();
        if ids.is_empty() {
            return Err(ApiError::bad_request(
                "no_routable_model",
                "none of the allowed models is one the router chooses from",
            ));
        }
        let mut mask = Objective::new(objective.cost_weight)
            .with_allowed(ids)
            .resolve(pool)
            .map_err(api_error)?
            .expect("an allowed list resolves to a mask");
        let batch = query.features.as_batch();
        self.router.check_batch(&batch).map_err(api_error)?;
        let mut est = pointsman::Estimates::new(1, pool.len());
        self.router.estimate(&batch, &mut est).map_err(api_error)?;
        let tokens = query.prompt_tokens();
        {
            let (quality, cost) = est.row_mut(0);
            if quality.iter().any(|q| !q.is_finite()) {
                return Err(ApiError::internal(format!(
                    "the {} router produced a non-finite estimate",
                    self.router.kind()
                )));
            }
            for (c, price) in cost.iter_mut().zip(&self.prices) {
                *c = price.estimate(tokens);
            }
        }
        if let Some(max_cost) = objective.max_cost {
            let cost = est.cost_row(0);
            let cheapest = best_model(&vec![0.0; cost.len()], cost, 1.0, Some(&mask));
            for (m, allowed) in mask.iter_mut().enumerate() {
                *allowed &= cost[m] <= max_cost;
            }
            if !mask.iter().any(|&a| a) {
                return Err(ApiError::new(
                    StatusCode::PAYMENT_REQUIRED,
                    "budget_error",
                    "budget_exhausted",
                    format!(
                        "no allowed model fits the maximum cost {max_cost:e} USD: the cheapest, {}, is expected to cost {:e} USD",
                        pool.id(cheapest),
                        cost[cheapest]
                    ),
                ));
            }
        }
        if let Some(name) = &objective.decision_policy {
            let policy = self.policies.get(name).ok_or_else(|| {
                ApiError::internal(format!(
                    "routing policy {name:?} has no decision policy loaded"
                ))
            })?;
            let request = policy_request(query, objective, text);
            let (result, audit) = policy.decide(&request, &mut est, Some(mask.clone()));
            *audit_out = serde_json::to_value(&audit).ok();
            held_out.clone_from(&audit.held);
            let d = result.map_err(policy_error)?;
            let ranked = std::iter::once(Candidate {
                model: d.model_id,
                quality: d.quality,
                cost: d.cost,
                utility: d.utility,
            })
            .chain(d.alternatives.into_iter().map(|a| Candidate {
                model: a.model_id,
                quality: a.quality,
                cost: a.cost,
                utility: a.utility,
            }))
            .collect();
            // A deterministic router stays deterministic under a policy; a randomised one's
            // probability over the policy's narrower set is not known.
            let probability = self
                .router
                .choice_probability(Some(&mask))
                .filter(|&p| p == 1.0);
            return Ok(Routed {
                ranked,
                probability,
                cost_weight: audit.cost_weight,
            });
        }
        let mut chosen = [0u32];
        self.router.choose(
            &batch,
            &est,
            objective.cost_weight,
            Some(&mask),
            &mut chosen,
        );
        let d = Decision::from_estimates(
            pool,
            &est,
            0,
            chosen[0] as usize,
            objective.cost_weight,
            Some(&mask),
        );
        let first = Candidate {
            model: d.model_id,
            quality: d.quality,
            cost: d.cost,
            utility: d.utility,
        };
        let ranked = std::iter::once(first)
            .chain(d.alternatives.into_iter().map(|a| Candidate {
                model: a.model_id,
                quality: a.quality,
                cost: a.cost,
                utility: a.utility,
            }))
            .collect();
        Ok(Routed {
            ranked,
            probability: self.router.choice_probability(Some(&mask)),
            cost_weight: objective.cost_weight,
        })
    }

    /// Feeds one observed outcome to a learner: `model` answered `query` with `quality` at
    /// `cost` USD. Returns the learner's observation count, or `None` when the router does not
    /// learn or does not know `model`.
    ///
    /// # Errors
    ///
    /// 400 for a quality outside [0, 1] or a bad cost (the engine checks).
    pub fn observe(
        &self,
        query: &Query,
        model: &str,
        quality: f64,
        cost: f64,
    ) -> Result<Option<u64>, ApiError> {
        let Some(learner) = self.router.as_learner() else {
            return Ok(None);
        };
        let Ok(index) = self.router.models().index_of(model) else {
            return Ok(None);
        };
        learner
            .observe(&Feedback {
                features: &query.features,
                model: index,
                quality,
                cost,
            })
            .map_err(api_error)?;
        Ok(Some(learner.observations()))
    }

    /// Saves a learner's state atomically to `<state_dir>/<file sha256[..16]>.safetensors`;
    /// nothing for a router that does not learn. Returns the path written.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Io`] when the folder cannot be made; the engine's save errors.
    pub fn save_state(&self) -> Result<Option<&Path>, GatewayError> {
        if self.router.as_learner().is_none() {
            return Ok(None);
        }
        if let Some(dir) = self.state_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| GatewayError::io(format!("creating {}", dir.display()), e))?;
        }
        self.router.save(&self.state_path)?;
        Ok(Some(&self.state_path))
    }
}

/// The configured prices of an upstream: both list prices given in the configuration, with the
/// configured output length, else the card's, else 256 tokens.
fn configured_price(u: &UpstreamConfig, card: Option<Price>) -> Option<Price> {
    let output_tokens = u
        .output_tokens
        .or(card.map(|c| c.output_tokens))
        .unwrap_or(256.0);
    match (u.input_usd_per_mtok, u.output_usd_per_mtok) {
        (Some(input), Some(output)) => Some(Price {
            input_usd_per_mtok: input,
            output_usd_per_mtok: output,
            output_tokens,
        }),
        _ => card.map(|c| Price { output_tokens, ..c }),
    }
}

/// After a call: takes back the decision's holds (`held`, with a shared `[state]`), charges
/// `usd` (its cost from the upstream's usage, or else the expected cost) to the budgets of the
/// decision policy that decided ([`Decided::policy`]), and records `model`, the model that
/// answered, as the session's (stickiness). With no answer (`model` `None`, `usd` 0) it only
/// frees the holds, and the session stays where it was.
///
/// # Errors
///
/// The engine's: a negative or non-finite cost, a model not in the router's pool.
pub fn settle_policy(
    policy: &PolicyRouter,
    query: &Query,
    objective: &RouteObjective,
    held: &[Hold],
    model: Option<&str>,
    usd: f64,
) -> Result<(), pointsman::Error> {
    policy.settle(&policy_request(query, objective, None), held, model, usd)
}

/// The policy layer's request for a routed query; the session is written when the call is
/// settled, with the model that answered.
fn policy_request<'a>(
    query: &'a Query,
    objective: &RouteObjective,
    text: Option<&'a str>,
) -> PolicyRequest<'a> {
    let mut request = PolicyRequest::new(&query.features);
    request.text = text;
    request.tenant = objective.tenant.clone();
    request.session = objective.session_id.clone();
    request.cost_weight = objective.cost_weight_override;
    request.session_on_settle = true;
    request
}

/// A decision policy's refusals, as the gateway's error table says; anything else as
/// [`api_error`].
fn policy_error(e: pointsman::Error) -> ApiError {
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    match e.kind() {
        ErrorKind::BudgetExhausted => ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "budget_error",
            "budget_exhausted",
            e.to_string(),
        ),
        ErrorKind::OutOfDistribution => ApiError::new(
            unprocessable,
            "invalid_request_error",
            "out_of_distribution",
            e.to_string(),
        ),
        ErrorKind::NoModelFits => ApiError::new(
            unprocessable,
            "invalid_request_error",
            "no_model_fits",
            e.to_string(),
        ),
        ErrorKind::Store => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "shared_state_unavailable",
            e.to_string(),
        ),
        _ => api_error(e),
    }
}

/// The one mapping from the engine's error kinds to what a client is told.
fn api_error(e: pointsman::Error) -> ApiError {
    match e.kind() {
        ErrorKind::InvalidInput | ErrorKind::InvalidFeatures => {
            ApiError::bad_request("invalid_input", e.to_string())
        }
        ErrorKind::UnknownModel | ErrorKind::Config | ErrorKind::Shape => {
            ApiError::bad_request("invalid_routing_option", e.to_string())
        }
        _ => ApiError::internal(format!("routing engine: {e}")),
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The model of `candidates` that `id` most likely misspells: the most similar with a
/// normalised Damerau–Levenshtein similarity of at least 0.8, if any.
fn likely_meant<'a>(id: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(c, id), *c))
        .filter(|(similarity, _)| *similarity >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_id_one_typo_away_names_the_model_meant() {
        let unserved = ["gemma-2-9b-it", "qwen2.5-7b-instruct"];
        assert_eq!(
            likely_meant("gemma-2-9b-itt", &unserved),
            Some("gemma-2-9b-it")
        );
        assert_eq!(
            likely_meant("qwen2.5-7b-instrcut", &unserved),
            Some("qwen2.5-7b-instruct")
        );
        assert_eq!(likely_meant("gpt-4o-mini", &unserved), None);
        assert_eq!(likely_meant("gemma-2-9b-itt", &[]), None);
    }
}
