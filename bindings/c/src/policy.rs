//! `pm_policy`: a decision-time policy (docs/policies.md) bound to a router, `pm_episode`: an
//! agent episode's budget, and `pm_policy_audit`: what the policy did to one decision, as JSON.

use std::ffi::{c_char, CString};

use pointsman::policy::{Audit, Episode, Policy, PolicyConfig, PolicyRouter, Request};
use pointsman::QueryFeatures;

use crate::error::{pm_error, Failure};
use crate::guard::{self, arg_opt_str, arg_out, arg_ref, arg_slice, arg_str};
use crate::router::{pm_decision, pm_router};
use crate::status::pm_status;

/// A decision-time policy bound to one router: rules, caps, budgets that pace, stickiness and
/// an out-of-distribution guard. Create with `pm_policy_load` or `pm_policy_from_json`, free
/// with `pm_policy_free`. Thread-safe: any number of threads may route and record at once; its
/// budgets and sessions are shared by them.
#[derive(Debug)]
pub struct pm_policy {
    inner: PolicyRouter,
}

/// An agent episode: one budget for all its steps. Create with `pm_episode_new`, free with
/// `pm_episode_free`; pass it to each step's `pm_policy_route` and `pm_policy_record`.
#[derive(Debug)]
pub struct pm_episode {
    inner: Episode,
}

/// What a policy did to one decision, as one line of JSON (`pm_policy_audit_json`): the rules
/// that fired, the models excluded and why, the guard's score and verdict, each budget's state,
/// the cost weight used, stickiness, and the refusal if any. Free with `pm_policy_audit_free`.
#[derive(Debug)]
pub struct pm_policy_audit {
    json: CString,
}

fn bind(router: &pm_router, policy: Policy) -> Result<pm_policy, Failure> {
    Ok(pm_policy {
        inner: PolicyRouter::new(router.router.clone(), policy)?,
    })
}

/// Reads a policy file (JSON, or TOML for a `.toml` path; docs/policies.md) and binds it to
/// `router` (its rules' model ids are checked against the router's models). On success `*out`
/// receives a new policy, freed with `pm_policy_free`.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_INVALID_UTF8`, `PM_STATUS_IO`,
/// `PM_STATUS_FORMAT` (not JSON or TOML, an unknown key), `PM_STATUS_CONFIG` (a value out of
/// range, a model the router does not have), `PM_STATUS_UNSUPPORTED_VERSION`.
///
/// Thread safety: may be called from any thread.
///
/// # Safety
///
/// `router` NULL or a live router (it must outlive nothing: the policy keeps its own handle);
/// `path` NULL or NUL-terminated; `out` and `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_policy_load(
    router: *const pm_router,
    path: *const c_char,
    out: *mut *mut pm_policy,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY (both): forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        let path = unsafe { arg_str(path, "path") }?;
        let out = arg_out(out, "out")?;
        let policy = bind(router, Policy::load(path.as_ref())?)?;
        // SAFETY: non-NULL, aligned, writable per the caller.
        unsafe { out.write(Box::into_raw(Box::new(policy))) };
        Ok(())
    })
}

/// `pm_policy_load` from the policy's JSON text instead of a file (a guard of source
/// `embeddings` needs a file: use `pm_policy_load`).
///
/// Errors: as `pm_policy_load`, without `PM_STATUS_IO`.
///
/// Thread safety: may be called from any thread.
///
/// # Safety
///
/// As `pm_policy_load`, with `json` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn pm_policy_from_json(
    router: *const pm_router,
    json: *const c_char,
    out: *mut *mut pm_policy,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY (both): forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        let json = unsafe { arg_str(json, "json") }?;
        let out = arg_out(out, "out")?;
        let config = PolicyConfig::from_json(json, "policy")?;
        let policy = bind(router, Policy::new(config)?)?;
        // SAFETY: non-NULL, aligned, writable per the caller.
        unsafe { out.write(Box::into_raw(Box::new(policy))) };
        Ok(())
    })
}

/// Frees a policy (its budgets and sessions with it). `pm_policy_free(NULL)` does nothing. No
/// other thread may be using it.
///
/// # Safety
///
/// `policy` is NULL or a policy from `pm_policy_load`/`pm_policy_from_json`, freed only once.
#[no_mangle]
pub unsafe extern "C" fn pm_policy_free(policy: *mut pm_policy) {
    guard::query((), || {
        if !policy.is_null() {
            // SAFETY: from Box::into_raw in this module, freed once.
            drop(unsafe { Box::from_raw(policy) });
        }
    })
}

/// A new episode `id` with `budget_usd` for `steps` steps; `stop_margin` (1 to 1e6) keeps
/// room for steps costlier than their estimate. On success `*out` receives it, freed with
/// `pm_episode_free`.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_INVALID_UTF8`, `PM_STATUS_CONFIG` (empty or
/// blank id, budget not positive, no steps, margin outside [1, 1e6]).
///
/// Thread safety: may be called from any thread.
///
/// # Safety
///
/// `id` NULL or NUL-terminated; `out` and `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_episode_new(
    id: *const c_char,
    budget_usd: f64,
    steps: u64,
    stop_margin: f64,
    out: *mut *mut pm_episode,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let id = unsafe { arg_str(id, "id") }?;
        let out = arg_out(out, "out")?;
        let inner = Episode::new(id, budget_usd, steps)?.with_stop_margin(stop_margin)?;
        // SAFETY: non-NULL, aligned, writable per the caller.
        unsafe { out.write(Box::into_raw(Box::new(pm_episode { inner }))) };
        Ok(())
    })
}

/// Frees an episode. `pm_episode_free(NULL)` does nothing. (Its spend stays in the policy.)
///
/// # Safety
///
/// `episode` is NULL or an episode from `pm_episode_new`, freed only once.
#[no_mangle]
pub unsafe extern "C" fn pm_episode_free(episode: *mut pm_episode) {
    guard::query((), || {
        if !episode.is_null() {
            // SAFETY: from Box::into_raw in `pm_episode_new`, freed once.
            drop(unsafe { Box::from_raw(episode) });
        }
    })
}

/// The request keys a policy call reads, checked.
struct Keys<'a> {
    tenant: Option<&'a str>,
    user: Option<&'a str>,
    session: Option<&'a str>,
    episode: Option<&'a Episode>,
}

impl<'a> Keys<'a> {
    /// # Safety
    ///
    /// Each pointer NULL or valid (NUL-terminated strings, a live episode).
    unsafe fn read(
        tenant: *const c_char,
        user: *const c_char,
        session: *const c_char,
        episode: *const pm_episode,
    ) -> Result<Keys<'a>, Failure> {
        // SAFETY (all): forwarded.
        Ok(Keys {
            tenant: unsafe { arg_opt_str(tenant, "tenant") }?,
            user: unsafe { arg_opt_str(user, "user") }?,
            session: unsafe { arg_opt_str(session, "session") }?,
            episode: if episode.is_null() {
                None
            } else {
                Some(&unsafe { arg_ref(episode, "episode") }?.inner)
            },
        })
    }

    fn apply<'q>(&self, mut req: Request<'q>) -> Request<'q> {
        if let Some(t) = self.tenant {
            req = req.with_tenant(t);
        }
        if let Some(u) = self.user {
            req = req.with_user(u);
        }
        if let Some(s) = self.session {
            req = req.with_session(s);
        }
        if let Some(e) = self.episode {
            req = req.with_episode(e.clone());
        }
        req
    }
}

fn audit_object(audit: &Audit) -> Result<pm_policy_audit, Failure> {
    Ok(pm_policy_audit {
        json: CString::new(audit.to_json()).map_err(|_| {
            Failure::new(pm_status::PM_STATUS_OTHER, "the audit contains a NUL byte")
        })?,
    })
}

/// Routes one query through the policy: the router's estimates, then the policy's rules,
/// capabilities, guard, caps, budgets, the choice and stickiness.
///
/// - `features`/`dim`: the query's embedding (as `pm_router_route`); `prompt_tokens`: its token
///   count, negative for unknown; `task`: its task tag or NULL.
/// - `text`: the prompt, for the policy's text rules (keywords, regular expressions), or NULL
///   (text rules then do not match; rules on tenant, task and prompt tokens still apply).
/// - `tenant`, `user`, `session`: the request's keys (budgets per tenant or user, stickiness per
///   session), each NULL for none; `episode`: the agent episode this step belongs to, or NULL.
/// - `cost_weight`: replaces the policy's cost weight; negative: the policy's.
/// - `audit`: NULL, or receives (on success and on a policy's refusal) a new audit, freed with
///   `pm_policy_audit_free`.
///
/// On success `*out` receives the decision. After the call, report its actual cost with
/// `pm_policy_record`.
///
/// Errors: those of `pm_router_rank`; the refusals `PM_STATUS_OUT_OF_DISTRIBUTION`,
/// `PM_STATUS_BUDGET_EXHAUSTED`, `PM_STATUS_NO_MODEL_FITS`.
///
/// Thread safety: any number of threads may route with the same policy at once.
///
/// # Safety
///
/// `policy` NULL or live; `features` NULL or `dim` floats; the strings NULL or NUL-terminated;
/// `episode` NULL or live; `out`, `audit` and `err` NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn pm_policy_route(
    policy: *const pm_policy,
    features: *const f32,
    dim: usize,
    prompt_tokens: f64,
    task: *const c_char,
    text: *const c_char,
    tenant: *const c_char,
    user: *const c_char,
    session: *const c_char,
    episode: *const pm_episode,
    cost_weight: f64,
    out: *mut pm_decision,
    audit: *mut *mut pm_policy_audit,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY (all): forwarded from the caller.
        let policy = unsafe { arg_ref(policy, "policy") }?;
        let features = unsafe { arg_slice(features, dim, "features") }?;
        let task = unsafe { arg_opt_str(task, "task") }?;
        let text = unsafe { arg_opt_str(text, "text") }?;
        let keys = unsafe { Keys::read(tenant, user, session, episode) }?;
        let out = arg_out(out, "out")?;
        let audit_out = if audit.is_null() {
            None
        } else {
            Some(arg_out(audit, "audit")?)
        };
        if prompt_tokens.is_nan() {
            return Err(Failure::new(
                pm_status::PM_STATUS_INVALID_ARGUMENT,
                "prompt_tokens is NaN (pass a negative value for unknown)",
            ));
        }
        if cost_weight.is_nan() {
            return Err(Failure::new(
                pm_status::PM_STATUS_INVALID_ARGUMENT,
                "cost_weight is NaN (pass a negative value for the policy's)",
            ));
        }
        let router = policy.inner.router();
        router.check_batch(&pointsman::FeatureBatch::new(features, dim)?)?;
        let mut q = QueryFeatures::new(features.to_vec())?;
        if prompt_tokens >= 0.0 {
            q = q.with_prompt_tokens(prompt_tokens)?;
        }
        if let Some(t) = task {
            q = q.with_task(t);
        }
        let mut req = keys.apply(Request::new(&q));
        if let Some(t) = text {
            req = req.with_text(t);
        }
        if cost_weight >= 0.0 {
            req = req.with_cost_weight(cost_weight);
        }
        let (decision, a) = policy.inner.route_audited(&req);
        if let (Some(slot), true) = (audit_out, decision.is_ok() || a.refused.is_some()) {
            let boxed = Box::new(audit_object(&a)?);
            // SAFETY: non-NULL, aligned, writable per the caller.
            unsafe { slot.write(Box::into_raw(boxed)) };
        }
        let d = decision?;
        let value = crate::router::decision_value(d.model, d.quality, d.cost, d.utility)?;
        // SAFETY: non-NULL, aligned, writable per the caller.
        unsafe { out.write(value) };
        Ok(())
    })
}

/// After a call routed with the policy: charges `cost_usd` (the actual cost the upstream
/// reported) to the request's budgets and records `model` (an id, or NULL) as its session's
/// model. The keys are those the route call was given.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_INVALID_UTF8`, `PM_STATUS_INVALID_ARGUMENT`
/// (a cost negative, non-finite or over 1e12 USD), `PM_STATUS_UNKNOWN_MODEL`.
///
/// Thread safety: any number of threads may record with the same policy at once.
///
/// # Safety
///
/// As `pm_policy_route`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn pm_policy_record(
    policy: *const pm_policy,
    model: *const c_char,
    cost_usd: f64,
    tenant: *const c_char,
    user: *const c_char,
    session: *const c_char,
    episode: *const pm_episode,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY (all): forwarded from the caller.
        let policy = unsafe { arg_ref(policy, "policy") }?;
        let model = unsafe { arg_opt_str(model, "model") }?;
        let keys = unsafe { Keys::read(tenant, user, session, episode) }?;
        // Recording reads the request's keys only, not its features.
        let none = QueryFeatures::new(vec![1.0])?;
        policy
            .inner
            .record(&keys.apply(Request::new(&none)), model, cost_usd)?;
        Ok(())
    })
}

/// The audit as one line of JSON (docs/policies.md, "The audit"), owned by the audit: valid
/// until `pm_policy_audit_free`. NULL for a NULL audit.
///
/// # Safety
///
/// `audit` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pm_policy_audit_json(audit: *const pm_policy_audit) -> *const c_char {
    guard::query(std::ptr::null(), || {
        if audit.is_null() {
            return std::ptr::null();
        }
        // SAFETY: non-NULL and live per the caller.
        unsafe { &*audit }.json.as_ptr()
    })
}

/// Frees an audit. `pm_policy_audit_free(NULL)` does nothing.
///
/// # Safety
///
/// `audit` NULL or from `pm_policy_route`, freed once.
#[no_mangle]
pub unsafe extern "C" fn pm_policy_audit_free(audit: *mut pm_policy_audit) {
    guard::query((), || {
        if !audit.is_null() {
            // SAFETY: from Box::into_raw in `pm_policy_route`, freed once.
            drop(unsafe { Box::from_raw(audit) });
        }
    })
}
