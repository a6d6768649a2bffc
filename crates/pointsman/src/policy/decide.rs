//! [`PolicyRouter`]: a policy bound to a router, and the decision flow of
//! [the module documentation](super): rules, capabilities, guard, caps, budgets, choice,
//! stickiness.

use std::sync::Arc;

use super::audit::{Audit, Exclusion, GuardAudit, StickyAudit};
use super::budget::{self, BudgetKey, BudgetStatus, Span};
use super::caps::{self, Dimensions};
use super::guard::{GuardAction, GuardSource};
use super::request::Request;
use super::rules::{CompiledRule, Facts};
use super::state::{Hold, SessionEntry};
use super::{now_seconds, BudgetConfig, Policy};
use crate::error::{Error, Result};
use crate::features::FeatureBatch;
use crate::pool::MAX_COST_USD;
use crate::router::{Decision, Estimates, Objective, Router};

/// A decision and what the policy did to it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDecision {
    /// The decision: the chosen model, its figures, the alternatives allowed.
    pub decision: Decision,
    /// What each part of the policy did.
    pub audit: Audit,
}

/// The parts of a policy resolved against one router's pool.
#[derive(Debug)]
struct Compiled {
    rules: Vec<CompiledRule>,
    lowercase: bool,
    fallback: Option<usize>,
    threshold: Option<f64>,
    /// Whether a request without the key of a per-tenant (0) or per-user (1) budget was
    /// warned of.
    unkeyed_warned: [std::sync::atomic::AtomicBool; 2],
}

/// A policy bound to a router: routes [`Request`]s through the router and the policy.
///
/// Thread-safe and cheap to clone (handles on the router, the policy and its state).
#[derive(Debug, Clone)]
pub struct PolicyRouter {
    router: Arc<dyn Router>,
    policy: Policy,
    compiled: Arc<Compiled>,
}

/// A budget that applies to one request: its key, limit and window.
struct Applied<'a> {
    key: String,
    config: std::borrow::Cow<'a, BudgetConfig>,
}

/// Why a guard of source `router` cannot run on a router of `kind`, and what to do instead.
fn no_router_signal(kind: &str) -> String {
    format!(
        "the policy's guard reads the router's out-of-distribution signal, which the {kind} \
         router does not give: fit an embedding guard (`pointsman fit-guard`, \
         `Policy::fit_guard`, Python's `Policy.fit_guard`) or route with a knn router"
    )
}

impl PolicyRouter {
    /// Binds `policy` to `router`: compiles its rules against the router's pool and checks the
    /// guard against the router.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a rule or guard fallback naming a model not in the pool, a guard
    /// of source `embeddings` without a fitted guard, or one of source `router` on a router that
    /// gives no out-of-distribution signal; [`Error::DimensionMismatch`] for a guard
    /// fitted on other embeddings.
    pub fn new(router: Arc<dyn Router>, policy: Policy) -> Result<PolicyRouter> {
        let pool = router.models();
        // A cap on a dimension the cards do not give applies to no model: say so once.
        let caps = &policy.config.caps;
        for (cap, set, lacking) in [
            (
                "caps.max_latency_s",
                caps.max_latency_s.is_some(),
                pool.cards()
                    .iter()
                    .filter(|c| c.expected_latency_s(1.0).is_none())
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>(),
            ),
            (
                "caps.max_energy_j",
                caps.max_energy_j.is_some(),
                pool.cards()
                    .iter()
                    .filter(|c| c.expected_energy_j(1.0, 1.0).is_none())
                    .map(|c| c.id.as_str())
                    .collect(),
            ),
        ] {
            if set && !lacking.is_empty() {
                tracing::warn!(
                    models = lacking.join(", "),
                    "{cap} does not apply to {} of the router's {} models: their cards carry no figure for it",
                    lacking.len(),
                    pool.len()
                );
            }
        }
        let rules = policy
            .config
            .rules
            .iter()
            .map(|r| r.compile(pool))
            .collect::<Result<Vec<_>>>()?;
        let (fallback, threshold) = match &policy.config.guard {
            None => (None, None),
            Some(g) => {
                let fallback = match &g.action {
                    GuardAction::Refuse => None,
                    GuardAction::Fallback(m) => Some(pool.index_of(m).map_err(|_| {
                        Error::Config(format!("guard fallback {m:?} is not a model of the router"))
                    })?),
                };
                let threshold = match g.source {
                    GuardSource::Router => {
                        // Fail now, not at the first request: a router that gives no OOD
                        // signal (MF, IRT, the bandits) cannot feed this guard. One probe
                        // query asks the router itself, on the calling thread.
                        let mut probe = vec![0.0f32; router.dim().max(1)];
                        probe[0] = 1.0;
                        let probe = crate::QueryFeatures::new(probe)?;
                        let batch = probe.as_batch();
                        router.check_batch(&batch)?;
                        let mut est = Estimates::new(1, pool.len());
                        router.estimate(&batch, &mut est)?;
                        if est.signals[0].ood.is_none() {
                            return Err(Error::Config(no_router_signal(router.kind())));
                        }
                        g.threshold.unwrap_or(0.95)
                    }
                    GuardSource::Embeddings => {
                        let guard = policy.guard.as_ref().ok_or_else(|| {
                            Error::Config(
                                "the guard's source is \"embeddings\" but no fitted guard is attached"
                                    .into(),
                            )
                        })?;
                        if guard.dim() != router.dim() {
                            return Err(Error::DimensionMismatch {
                                expected: router.dim(),
                                got: guard.dim(),
                            });
                        }
                        g.threshold.unwrap_or(guard.threshold())
                    }
                };
                (fallback, Some(threshold))
            }
        };
        Ok(PolicyRouter {
            compiled: Arc::new(Compiled {
                lowercase: rules.iter().any(CompiledRule::needs_lowercase),
                rules,
                fallback,
                threshold,
                unkeyed_warned: Default::default(),
            }),
            router,
            policy,
        })
    }

    /// The router.
    pub fn router(&self) -> &Arc<dyn Router> {
        &self.router
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Routes one request.
    ///
    /// # Errors
    ///
    /// The refusals [`Error::OutOfDistribution`], [`Error::NoModelFits`] and
    /// [`Error::BudgetExhausted`]; features that do not fit the router; an unknown model in
    /// `allowed`; router errors.
    pub fn route(&self, req: &Request<'_>) -> Result<PolicyDecision> {
        let (decision, audit) = self.route_audited(req);
        decision.map(|decision| PolicyDecision { decision, audit })
    }

    /// Routes one request and returns the audit whatever the outcome (a refusal's audit says
    /// which part refused and why).
    pub fn route_audited(&self, req: &Request<'_>) -> (Result<Decision>, Audit) {
        let prepared = (|| {
            let batch = req.features.as_batch();
            self.router.check_batch(&batch)?;
            let mut est = Estimates::new(1, self.router.models().len());
            self.router.estimate(&batch, &mut est)?;
            Ok(est)
        })();
        match prepared {
            Ok(mut est) => self.decide(req, &mut est, None),
            Err(e) => (Err(e), Audit::default()),
        }
    }

    /// The policy over estimates computed elsewhere (a gateway that reprices them): `est` holds
    /// one row for `req`'s features, `mask` the models the caller allows (`None`: all).
    pub fn decide(
        &self,
        req: &Request<'_>,
        est: &mut Estimates,
        mask: Option<Vec<bool>>,
    ) -> (Result<Decision>, Audit) {
        let mut audit = Audit::default();
        let result = self.decide_inner(req, est, mask, &mut audit);
        if let Err(e) = &result {
            audit.refused = match e {
                Error::OutOfDistribution { .. } => Some("out_of_distribution".into()),
                Error::BudgetExhausted { .. } => Some("budget_exhausted".into()),
                Error::NoModelFits(_) => Some("no_model_fits".into()),
                _ => None,
            };
        }
        (result, audit)
    }

    fn decide_inner(
        &self,
        req: &Request<'_>,
        est: &mut Estimates,
        mask: Option<Vec<bool>>,
        audit: &mut Audit,
    ) -> Result<Decision> {
        let router = &*self.router;
        let pool = router.models();
        let m = pool.len();
        if est.rows() != 1 || est.models() != m {
            return Err(Error::Shape(format!(
                "the policy decides one query over {m} models, got estimates of {} × {}",
                est.rows(),
                est.models()
            )));
        }
        let config = &self.policy.config;
        let now = req.now.unwrap_or_else(now_seconds);
        let prompt_tokens = req.features.prompt_tokens();
        let mut allowed = match mask {
            Some(mask) if mask.len() == m => mask,
            Some(mask) => {
                return Err(Error::Shape(format!(
                    "allowed holds {} flags for {m} models",
                    mask.len()
                )))
            }
            None => vec![true; m],
        };
        if let Some(ids) = &req.allowed {
            let mut only = vec![false; m];
            for id in ids {
                only[pool.index_of(id)?] = true;
            }
            allowed.iter_mut().zip(&only).for_each(|(a, o)| *a &= o);
        }
        if let Some(t) = req.expected_output_tokens {
            if !t.is_finite() || t < 0.0 {
                return Err(Error::InvalidInput(format!(
                    "expected_output_tokens {} is not a non-negative number",
                    crate::error::Shown(t)
                )));
            }
        }
        let mut cost_weight = req.cost_weight.or(config.cost_weight).unwrap_or(0.0);
        if !cost_weight.is_finite() || cost_weight < 0.0 {
            return Err(Error::Config(format!(
                "cost_weight {} is not a non-negative number",
                crate::error::Shown(cost_weight)
            )));
        }
        let exclude = |allowed: &mut [bool], audit: &mut Audit, i: usize, reason: String| {
            if allowed[i] {
                allowed[i] = false;
                audit.excluded.push(Exclusion {
                    model: pool.id(i).to_string(),
                    reason,
                });
            }
        };
        // 1. Rules.
        let mut forced: Option<(usize, String)> = None;
        if !self.compiled.rules.is_empty() {
            let facts = Facts {
                text: req.text,
                prompt_tokens,
                task: req.features.task(),
                tenant: req.tenant.as_deref(),
                metadata: &req.metadata,
            };
            let lower = match (self.compiled.lowercase, req.text) {
                (true, Some(t)) => Some(t.to_lowercase()),
                _ => None,
            };
            for rule in &self.compiled.rules {
                if !rule.matches(&facts, lower.as_deref()) {
                    continue;
                }
                audit.rules.push(rule.name.clone());
                if let Some(only) = &rule.allow {
                    for i in 0..m {
                        if !only.contains(&i) {
                            exclude(&mut allowed, audit, i, format!("rule {}", rule.name));
                        }
                    }
                }
                for &i in &rule.exclude {
                    exclude(&mut allowed, audit, i, format!("rule {}", rule.name));
                }
                if let Some(f) = rule.force {
                    forced = Some((f, format!("rule {}", rule.name)));
                }
                if let Some(w) = rule.cost_weight {
                    cost_weight = w;
                }
                if !rule.continue_ {
                    break;
                }
            }
        }
        // 2. Capabilities and context windows.
        let tokens = prompt_tokens.unwrap_or(0.0);
        for i in 0..m {
            if let Some(reason) = caps::missing(pool.card(i), &req.needs, tokens) {
                exclude(&mut allowed, audit, i, reason);
            }
        }
        if !allowed.contains(&true) {
            return Err(Error::NoModelFits(format!(
                "every model is excluded by the rules, the allowed list or the required capabilities ({})",
                describe(&audit.excluded)
            )));
        }
        // 3. The guard.
        if let Some(threshold) = self.compiled.threshold {
            let score = match &self.policy.guard {
                Some(g)
                    if config.guard.as_ref().map(|c| c.source) == Some(GuardSource::Embeddings) =>
                {
                    g.score_unit(req.features.embedding())
                }
                _ => f64::from(
                    est.signals[0]
                        .ood
                        .ok_or_else(|| Error::Unsupported(no_router_signal(router.kind())))?,
                ),
            };
            let over = score > threshold;
            let verdict = match (over, self.compiled.fallback) {
                (false, _) => "pass",
                (true, None) => "refuse",
                (true, Some(_)) => "fallback",
            };
            audit.guard = Some(GuardAudit {
                score,
                threshold,
                verdict: verdict.into(),
            });
            if over {
                match self.compiled.fallback {
                    None => return Err(Error::OutOfDistribution { score, threshold }),
                    Some(f) => forced = Some((f, "guard".into())),
                }
            }
        }
        // 4. Hard caps, on the expected cost, latency and energy.
        let caps = &config.caps;
        let weights = &config.weights;
        let mut dims = [Dimensions::default(); 64];
        let mut dims_heap;
        let dims: &mut [Dimensions] = if m <= dims.len() {
            &mut dims[..m]
        } else {
            dims_heap = vec![Dimensions::default(); m];
            &mut dims_heap
        };
        let need_dims =
            weights.any() || caps.max_latency_s.is_some() || caps.max_energy_j.is_some();
        if need_dims {
            for (i, d) in dims.iter_mut().enumerate() {
                *d = caps::dimensions(pool.card(i), tokens, req.expected_output_tokens);
            }
        }
        for (i, d) in dims.iter().enumerate() {
            if let Some(cap) = caps::broken_cap(caps, est.cost_row(0)[i], d) {
                exclude(&mut allowed, audit, i, cap.to_string());
            }
        }
        if !allowed.contains(&true) {
            return Err(Error::NoModelFits(format!(
                "no allowed model meets the caps ({})",
                describe(&audit.excluded)
            )));
        }
        // Latency and energy in the utility: folded into the score the choice reads.
        if weights.any() {
            let had_score = !est.score.is_empty();
            let (q, _, s) = est.row_mut_with_score(0);
            for i in 0..m {
                let base = if had_score { s[i] } else { q[i] };
                s[i] = base
                    - weights.latency_per_s * dims[i].latency_s.unwrap_or(0.0)
                    - weights.energy_per_j * dims[i].energy_j.unwrap_or(0.0);
            }
        }
        // 5. Budgets: the controller's cost weight, then the hard stop.
        let applied = self.applied_budgets(req);
        let mut spans: Vec<Span> = Vec::with_capacity(applied.len());
        if !applied.is_empty() {
            let mut paced = false;
            for b in &applied {
                let (status, span) = budget::status(
                    b.key.clone(),
                    b.config.limit_usd,
                    &b.config.window,
                    b.config.pace,
                    &*self.policy.state,
                    &self.policy.curve,
                    now,
                );
                paced |= b.config.pace;
                if let Some(w) = status.cost_weight {
                    cost_weight = cost_weight.max(w);
                }
                audit.budgets.push(status);
                spans.push(span);
            }
            if paced {
                self.policy
                    .curve
                    .observe(est.score_row(0), est.cost_row(0), Some(&allowed));
            }
            // The models the budgets exclude are the exclusions from here on.
            let excluded_before = audit.excluded.len();
            for (j, b) in applied.iter().enumerate() {
                let left = audit.budgets[j].remaining;
                for i in 0..m {
                    if allowed[i] && est.cost_row(0)[i] * b.config.stop_margin > left {
                        let reason = format!("budget {}", audit.budgets[j].key);
                        exclude(&mut allowed, audit, i, reason);
                    }
                }
            }
            if !allowed.contains(&true) {
                let by_budget = &audit.excluded[excluded_before..];
                let cheapest = (0..m)
                    .filter(|&i| by_budget.iter().any(|e| e.model == pool.id(i)))
                    .min_by(|&a, &b| est.cost_row(0)[a].total_cmp(&est.cost_row(0)[b]))
                    .expect("some model was allowed before the budgets");
                let (b, status) = applied
                    .iter()
                    .zip(&audit.budgets)
                    .find(|(b, s)| est.cost_row(0)[cheapest] * b.config.stop_margin > s.remaining)
                    .expect("a budget excluded the cheapest model");
                return Err(Error::BudgetExhausted {
                    key: status.key.clone(),
                    spent: status.spent,
                    limit: status.limit,
                    cost: est.cost_row(0)[cheapest] * b.config.stop_margin,
                });
            }
        }
        audit.cost_weight = cost_weight;
        // 6. The choice.
        let chosen = match &forced {
            Some((f, by)) => {
                if !allowed[*f] {
                    let why = audit
                        .excluded
                        .iter()
                        .find(|e| e.model == pool.id(*f))
                        .map_or("not allowed".to_string(), |e| e.reason.clone());
                    return Err(Error::NoModelFits(format!(
                        "{by} sends the query to {:?}, which is excluded ({why})",
                        pool.id(*f)
                    )));
                }
                audit.forced = Some(pool.id(*f).to_string());
                *f
            }
            None => {
                let batch: FeatureBatch<'_> = req.features.as_batch();
                let mut out = [0u32];
                router.choose(&batch, est, cost_weight, Some(&allowed), &mut out);
                out[0] as usize
            }
        };
        // 7. Stickiness.
        let mut chosen = chosen;
        if let (Some(sticky), Some(session)) = (&config.sticky, &req.session) {
            let previous = self
                .policy
                .state
                .session(session)
                .filter(|e| now - e.time <= sticky.ttl_seconds)
                .and_then(|e| pool.index_of(&e.model).ok());
            let mut a = StickyAudit {
                previous: previous.map(|p| pool.id(p).to_string()),
                kept: false,
                gain: None,
            };
            if let Some(p) = previous {
                if p != chosen && allowed[p] && forced.is_none() {
                    let u = |i: usize| est.score_row(0)[i] - cost_weight * est.cost_row(0)[i];
                    let gain = u(chosen) - u(p);
                    a.gain = Some(gain);
                    if gain <= sticky.margin {
                        chosen = p;
                        a.kept = true;
                    }
                } else if p == chosen {
                    a.kept = true;
                }
            }
            audit.sticky = Some(a);
        }
        // A state shared between replicas: hold the chosen model's expected cost on every
        // budget, atomically, so that replicas never pass a hard stop together.
        if self.policy.state.holds() {
            self.hold(&applied, &spans, est.cost_row(0)[chosen], audit)?;
        }
        if let (Some(_), Some(session), false) =
            (&config.sticky, &req.session, req.session_on_settle)
        {
            self.policy.state.set_session(
                session,
                SessionEntry {
                    model: pool.id(chosen).to_string(),
                    time: now,
                },
            );
        }
        // The request counts toward its budgets' pace.
        for (b, span) in applied.iter().zip(&spans) {
            self.policy
                .state
                .add(&b.key, span.bucket, 0.0, 1, span.keep_from);
        }
        Ok(Decision::from_estimates(
            pool,
            est,
            0,
            chosen,
            cost_weight,
            Some(&allowed),
        ))
    }

    /// Holds `cost` (times each budget's stop margin) on every budget, recording the holds in
    /// the audit; when one budget refuses (another replica took what was left since the
    /// totals were read), takes back the holds already made and refuses the request.
    fn hold(
        &self,
        applied: &[Applied<'_>],
        spans: &[Span],
        cost: f64,
        audit: &mut Audit,
    ) -> Result<()> {
        let state = &*self.policy.state;
        for (b, span) in applied.iter().zip(spans) {
            let usd = cost * b.config.stop_margin;
            let limit = b.config.limit_usd;
            let done = state.reserve(&b.key, span.bucket, span.from, span.keep_from, usd, limit);
            if !matches!(done, Ok(true)) {
                for h in audit.held.drain(..) {
                    state.add(&h.key, h.bucket, -h.usd, 0, h.keep_from);
                }
                done?;
                let spent = state.totals_in(&b.key, span.from, span.bucket).spent;
                return Err(Error::BudgetExhausted {
                    key: b.key.clone(),
                    spent,
                    limit,
                    cost: usd,
                });
            }
            audit.held.push(Hold {
                key: b.key.clone(),
                bucket: span.bucket,
                keep_from: span.keep_from,
                usd,
            });
        }
        Ok(())
    }

    /// The budgets that apply to `req`: the configured ones whose key it carries, and its
    /// episode's.
    fn applied_budgets<'a>(&'a self, req: &Request<'_>) -> Vec<Applied<'a>> {
        let mut out = Vec::new();
        for b in &self.policy.config.budgets {
            let key = match b.key {
                BudgetKey::Tenant => req.tenant.as_ref().map(|t| format!("tenant:{t}")),
                BudgetKey::User => req.user.as_ref().map(|u| format!("user:{u}")),
                BudgetKey::Global => Some("global".to_string()),
            };
            match key {
                Some(key) => out.push(Applied {
                    key,
                    config: std::borrow::Cow::Borrowed(b),
                }),
                None => {
                    // Not an error (such requests are meant to go unlimited), but a policy
                    // whose traffic never carries the key spends without limit: say so once.
                    use std::sync::atomic::Ordering;
                    let flag = &self.compiled.unkeyed_warned[usize::from(b.key == BudgetKey::User)];
                    if !flag.load(Ordering::Relaxed) && !flag.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "a budget per {key} does not apply to requests without a {key}: \
                             this one has none, so no such budget limits it (warned once per \
                             policy; give requests a {key} to be limited)",
                            key = b.key.name()
                        );
                    }
                }
            }
        }
        if let Some(e) = &req.episode {
            out.push(Applied {
                key: e.key(),
                config: std::borrow::Cow::Owned(e.budget()),
            });
        }
        out
    }

    /// The state of `req`'s budgets now (what the next decision would see).
    pub fn budgets(&self, req: &Request<'_>) -> Vec<BudgetStatus> {
        let now = req.now.unwrap_or_else(now_seconds);
        self.applied_budgets(req)
            .into_iter()
            .map(|b| {
                budget::status(
                    b.key,
                    b.config.limit_usd,
                    &b.config.window,
                    b.config.pace,
                    &*self.policy.state,
                    &self.policy.curve,
                    now,
                )
                .0
            })
            .collect()
    }

    /// After a call: charges `usd` (the actual cost the call reported) to every budget of `req`,
    /// and records `model` (the model that answered) as the session's.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a negative or non-finite cost; [`Error::UnknownModel`] for a
    /// model not in the pool.
    pub fn record(&self, req: &Request<'_>, model: Option<&str>, usd: f64) -> Result<()> {
        self.settle(req, &[], model, usd)
    }

    /// After a call decided under a state that holds ([`super::PolicyState::holds`]): takes
    /// back the decision's holds (`held`: its audit's [`Audit::held`]) and charges `usd`, the
    /// actual cost, as [`PolicyRouter::record`] does. A call that never happened settles with
    /// `model` `None` and `usd` 0, which frees its holds. Holds never settled stay charged
    /// (the budget then counts the expected cost and the actual one: it stops early, never
    /// late).
    ///
    /// # Errors
    ///
    /// As [`PolicyRouter::record`].
    pub fn settle(
        &self,
        req: &Request<'_>,
        held: &[Hold],
        model: Option<&str>,
        usd: f64,
    ) -> Result<()> {
        if !usd.is_finite() || !(0.0..=MAX_COST_USD).contains(&usd) {
            return Err(Error::InvalidInput(format!(
                "cost {usd} is not a number in [0, {MAX_COST_USD:e}] USD"
            )));
        }
        if let Some(model) = model {
            self.router.models().index_of(model)?;
        }
        let now = req.now.unwrap_or_else(now_seconds);
        // The actual cost first, then the holds released: another replica reading the shared
        // total in between sees both (it may refuse early, never admit past the limit). The
        // other order opened a window where the total lacked this call, and a hold another
        // replica took in it plus this call's actual cost could pass the limit.
        for b in self.applied_budgets(req) {
            let span = budget::span(&b.config.window, now);
            self.policy
                .state
                .add(&b.key, span.bucket, usd, 0, span.keep_from);
        }
        for h in held {
            self.policy
                .state
                .add(&h.key, h.bucket, -h.usd, 0, h.keep_from);
        }
        if let (Some(_), Some(session), Some(model)) =
            (&self.policy.config.sticky, &req.session, model)
        {
            self.policy.state.set_session(
                session,
                SessionEntry {
                    model: model.to_string(),
                    time: now,
                },
            );
        }
        Ok(())
    }

    /// Teaches the pacing curve the traffic to expect before any budget has seen a query:
    /// the router's estimates of `batch` (for example a sample of training queries; only their
    /// features are read).
    ///
    /// # Errors
    ///
    /// A batch that does not fit the router; router errors.
    pub fn warm_pacing(&self, batch: &FeatureBatch<'_>) -> Result<()> {
        let est = self.router.estimate_batch(batch)?;
        for r in 0..est.rows() {
            self.policy
                .curve
                .observe(est.score_row(r), est.cost_row(r), None);
        }
        Ok(())
    }

    /// Routes with the router alone under an objective (no policy): for comparisons.
    ///
    /// # Errors
    ///
    /// As [`Router::route`].
    pub fn route_plain(
        &self,
        features: &crate::features::QueryFeatures,
        objective: &Objective,
    ) -> Result<Decision> {
        self.router.route(features, objective)
    }
}

fn describe(excluded: &[Exclusion]) -> String {
    if excluded.is_empty() {
        return "nothing excluded".into();
    }
    excluded
        .iter()
        .map(|e| format!("{}: {}", e.model, e.reason))
        .collect::<Vec<_>>()
        .join(", ")
}
