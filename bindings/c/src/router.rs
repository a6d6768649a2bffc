//! `pm_router`: a saved router loaded for routing (and, for learners, for feedback).

use std::ffi::{c_char, CString};
use std::sync::Arc;

use pointsman::routers::cascade::CascadeRouter;
use pointsman::{AnyRouter, FeatureBatch, Feedback, Objective, QueryFeatures, Router};

use crate::error::{pm_error, Failure};
use crate::guard::{self, arg_opt_str, arg_out, arg_ref, arg_slice, arg_slice_mut, arg_str};
use crate::status::pm_status;

/// A router loaded from a saved `.safetensors` file.
///
/// Thread safety: a router is immutable after loading, so one router may be shared freely
/// between threads and used by any number of them at once (`pm_router_route`,
/// `pm_router_route_batch`, ... take a `const pm_router *`). Routers that learn from feedback
/// lock internally in `pm_router_observe`, so observing on one thread while routing on others is
/// safe too. Free it once, after every thread has finished with it.
#[derive(Debug)]
pub struct pm_router {
    pub(crate) router: Arc<dyn Router>,
    /// The same router with its kind, for typed access (cascades); `None` only for routers
    /// the tests build from a trait object.
    any: Option<AnyRouter>,
    /// The model ids, NUL-terminated, borrowed by `pm_router_model_name`.
    names: Vec<CString>,
    kind: CString,
    embedding_model: Option<CString>,
}

impl pm_router {
    pub(crate) fn new(router: AnyRouter) -> Result<Self, Failure> {
        let mut r = pm_router::from_dyn(router.shared())?;
        r.any = Some(router);
        Ok(r)
    }

    /// A router known only through the trait (the tests' own routers).
    pub(crate) fn from_dyn(router: Arc<dyn Router>) -> Result<Self, Failure> {
        let c = |what: &str, s: &str| {
            CString::new(s).map_err(|_| {
                Failure::new(
                    pm_status::PM_STATUS_FORMAT,
                    format!("{what} {s:?} contains a NUL byte"),
                )
            })
        };
        let names = router
            .models()
            .ids()
            .map(|id| c("model id", id))
            .collect::<Result<Vec<_>, _>>()?;
        let kind = c("router kind", router.kind())?;
        let embedding_model = router
            .embedding_model()
            .map(|m| c("embedding model", m))
            .transpose()?;
        Ok(pm_router {
            router,
            any: None,
            names,
            kind,
            embedding_model,
        })
    }

    /// The router with its kind, for `what` ("saving", ...): only the tests' own routers, known
    /// through the trait alone, have none.
    pub(crate) fn typed(&self, what: &str) -> Result<&AnyRouter, Failure> {
        self.any.as_ref().ok_or_else(|| {
            pointsman::Error::Unsupported(format!("{what} a {} router", self.router.kind())).into()
        })
    }

    /// One query's features, checked against the router.
    pub(crate) fn query(
        &self,
        features: &[f32],
        dim: usize,
        prompt_tokens: Option<f64>,
        task: Option<&str>,
    ) -> Result<QueryFeatures, Failure> {
        // The batch view reports a zero or wrong dimension as a shape error before anything is
        // copied; `route` then checks the rest.
        self.router
            .check_batch(&FeatureBatch::new(features, dim)?)?;
        let mut q = QueryFeatures::new(features.to_vec())?;
        if let Some(t) = prompt_tokens {
            q = q.with_prompt_tokens(t)?;
        }
        if let Some(task) = task {
            q = q.with_task(task);
        }
        Ok(q)
    }

    /// The router as a cascade, when it is one.
    pub(crate) fn as_cascade(&self) -> Option<&CascadeRouter> {
        self.any.as_ref().and_then(AnyRouter::as_cascade)
    }

    /// The objective of a call: the cost weight and the allowed-model flags (none: all).
    pub(crate) fn objective(&self, cost_weight: f64, allowed: &[u8]) -> Result<Objective, Failure> {
        let mut objective = Objective::new(cost_weight);
        if !allowed.is_empty() {
            objective =
                objective.with_allowed_mask(allowed.iter().map(|&a| a != 0).collect::<Vec<_>>());
        }
        Ok(objective)
    }

    /// The decision for one query.
    pub(crate) fn route_query(
        &self,
        query: &QueryFeatures,
        objective: &Objective,
    ) -> Result<pm_decision, Failure> {
        let d = self.router.route(query, objective)?;
        decision(d.model, d.quality, d.cost, d.utility)
    }

    /// Ranks the models for one query into `ranked` (the decision first), and writes how many
    /// entries it filled to `ranked_count` when there is one.
    pub(crate) fn rank_into(
        &self,
        query: &QueryFeatures,
        objective: &Objective,
        ranked: &mut [pm_decision],
        ranked_count: Option<*mut usize>,
    ) -> Result<(), Failure> {
        let top = self.router.top_k(query, objective, ranked.len())?;
        let values = top
            .iter()
            .map(|a| decision(a.model, a.quality, a.cost, a.utility))
            .collect::<Result<Vec<_>, _>>()?;
        ranked[..values.len()].copy_from_slice(&values);
        if let Some(count) = ranked_count {
            // SAFETY: non-NULL and aligned (checked by `rank_outputs`), writable per the caller.
            unsafe { count.write(values.len()) };
        }
        Ok(())
    }
}

/// The output arguments of a ranking call, checked: `ranked` not empty (a `ranked_len` of 0 is
/// a shape error whether `ranked` is NULL or not, as the header's convention that a pointer
/// may be NULL when its length is 0 implies) and not NULL, `ranked_count` NULL or aligned.
///
/// # Safety
///
/// `ranked` is NULL or `ranked_len` writable entries.
pub(crate) unsafe fn rank_outputs<'a>(
    ranked: *mut pm_decision,
    ranked_len: usize,
    ranked_count: *mut usize,
) -> Result<(&'a mut [pm_decision], Option<*mut usize>), Failure> {
    // SAFETY: forwarded from the caller (NULL with a length other than 0 is refused there).
    let ranked = unsafe { arg_slice_mut(ranked, ranked_len, "ranked") }?;
    if ranked.is_empty() {
        return Err(pointsman::Error::Shape(
            "ranked holds 0 entries: it needs room for the decision at least".into(),
        )
        .into());
    }
    let ranked_count = if ranked_count.is_null() {
        None
    } else {
        Some(arg_out(ranked_count, "ranked_count")?)
    };
    Ok((ranked, ranked_count))
}

/// A routing decision: the chosen model and its expected figures.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct pm_decision {
    /// Index of the chosen model in the router's pool (see `pm_router_model_name`).
    pub model: u32,
    /// Its expected quality, in [0, 1].
    pub quality: f64,
    /// Its expected cost in USD.
    pub cost: f64,
    /// Its utility: `score - cost_weight * cost`, the score being the expected quality or, for an
    /// exploring learner, the value its choice used (an optimistic bound, a posterior draw).
    pub utility: f64,
}

/// A `pm_decision` from a decision's figures.
pub(crate) fn decision_value(
    model: usize,
    quality: f64,
    cost: f64,
    utility: f64,
) -> Result<pm_decision, Failure> {
    decision(model, quality, cost, utility)
}

fn decision(model: usize, quality: f64, cost: f64, utility: f64) -> Result<pm_decision, Failure> {
    let model = u32::try_from(model).map_err(|_| {
        Failure::new(
            pm_status::PM_STATUS_OTHER,
            format!("model index {model} does not fit 32 bits"),
        )
    })?;
    Ok(pm_decision {
        model,
        quality,
        cost,
        utility,
    })
}

/// Loads a router saved by `pointsman train` (or by `Router::save` in Rust).
///
/// `path` is a NUL-terminated UTF-8 path. On success `*out` receives a new router, freed with
/// `pm_router_free`.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_INVALID_UTF8` (path), `PM_STATUS_IO` (missing or
/// unreadable file), `PM_STATUS_FORMAT` (not a saved router, truncated or corrupt),
/// `PM_STATUS_UNSUPPORTED_VERSION` (written by a newer format version).
///
/// Thread safety: may be called from any thread.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable; `err` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn pm_router_load(
    path: *const c_char,
    out: *mut *mut pm_router,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let path = unsafe { arg_str(path, "path") }?;
        let out = arg_out(out, "out")?;
        let router = pm_router::new(pointsman::load_router(path)?)?;
        // SAFETY: `out` is non-NULL and aligned; writable per the caller.
        unsafe { out.write(Box::into_raw(Box::new(router))) };
        Ok(())
    })
}

/// Opens a saved router memory-mapped and read-only: as `pm_router_load`, but a kNN router
/// reads its reference set in place from the mapping, so the worker processes of a host that
/// open one file share one copy of it (docs/scale-out.md). Files saved by Pointsman are
/// replaced only by an atomic rename, so a mapped router keeps the file it opened.
///
/// Errors: as `pm_router_load`.
///
/// Thread safety: may be called from any thread.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable; `err` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn pm_router_open_mmap(
    path: *const c_char,
    out: *mut *mut pm_router,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let path = unsafe { arg_str(path, "path") }?;
        let out = arg_out(out, "out")?;
        let router = pm_router::new(pointsman::registry::AnyRouter::open_mmap(path)?)?;
        // SAFETY: `out` is non-NULL and aligned; writable per the caller.
        unsafe { out.write(Box::into_raw(Box::new(router))) };
        Ok(())
    })
}

/// Frees a router. `pm_router_free(NULL)` does nothing. No other thread may be using it.
///
/// # Safety
///
/// `router` is NULL or a router from `pm_router_load`, freed only once.
#[no_mangle]
pub unsafe extern "C" fn pm_router_free(router: *mut pm_router) {
    guard::query((), || {
        if !router.is_null() {
            // SAFETY: the router came from Box::into_raw in `pm_router_load`, freed once.
            drop(unsafe { Box::from_raw(router) });
        }
    })
}

/// Number of candidate models; 0 when `router` is NULL.
///
/// # Safety
///
/// `router` is NULL or a live router.
#[no_mangle]
pub unsafe extern "C" fn pm_router_num_models(router: *const pm_router) -> usize {
    guard::query(0, || {
        // SAFETY: the caller passes NULL or a live router.
        unsafe { arg_ref(router, "router") }.map_or(0, |r| r.names.len())
    })
}

/// The id of model `index`, NUL-terminated UTF-8, borrowed: valid until the router is freed.
/// NULL when `router` is NULL or `index` is out of range.
///
/// # Safety
///
/// `router` is NULL or a live router.
#[no_mangle]
pub unsafe extern "C" fn pm_router_model_name(
    router: *const pm_router,
    index: usize,
) -> *const c_char {
    guard::query(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live router.
        unsafe { arg_ref(router, "router") }
            .ok()
            .and_then(|r| r.names.get(index))
            .map_or(std::ptr::null(), |n| n.as_ptr())
    })
}

/// Finds a model by id: on success `*index` receives its index in the pool.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_INVALID_UTF8`, `PM_STATUS_UNKNOWN_MODEL`.
///
/// # Safety
///
/// `router` is NULL or a live router; `id` NULL or NUL-terminated; `index` and `err` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn pm_router_model_index(
    router: *const pm_router,
    id: *const c_char,
    index: *mut usize,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        // SAFETY: forwarded from the caller.
        let id = unsafe { arg_str(id, "id") }?;
        let index = arg_out(index, "index")?;
        let m = router.router.models().index_of(id)?;
        // SAFETY: non-NULL, aligned, writable per the caller.
        unsafe { index.write(m) };
        Ok(())
    })
}

/// The embedding dimension the router expects; 0 when `router` is NULL.
///
/// # Safety
///
/// `router` is NULL or a live router.
#[no_mangle]
pub unsafe extern "C" fn pm_router_dim(router: *const pm_router) -> usize {
    guard::query(0, || {
        // SAFETY: the caller passes NULL or a live router.
        unsafe { arg_ref(router, "router") }.map_or(0, |r| r.router.dim())
    })
}

/// The router's kind (`"knn"`, `"mf"`, `"best-single"`, ...), borrowed: valid until the router
/// is freed. NULL when `router` is NULL.
///
/// # Safety
///
/// `router` is NULL or a live router.
#[no_mangle]
pub unsafe extern "C" fn pm_router_kind(router: *const pm_router) -> *const c_char {
    guard::query(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live router.
        unsafe { arg_ref(router, "router") }.map_or(std::ptr::null(), |r| r.kind.as_ptr())
    })
}

/// The name of the embedding model the router was trained on (such as `"all-MiniLM-L6-v2"`),
/// borrowed: valid until the router is freed. NULL when unknown or when `router` is NULL.
///
/// # Safety
///
/// `router` is NULL or a live router.
#[no_mangle]
pub unsafe extern "C" fn pm_router_embedding_model(router: *const pm_router) -> *const c_char {
    guard::query(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live router.
        unsafe { arg_ref(router, "router") }
            .ok()
            .and_then(|r| r.embedding_model.as_ref())
            .map_or(std::ptr::null(), |m| m.as_ptr())
    })
}

/// Whether the router learns from feedback (`pm_router_observe`); false when `router` is NULL.
///
/// # Safety
///
/// `router` is NULL or a live router.
#[no_mangle]
pub unsafe extern "C" fn pm_router_is_learner(router: *const pm_router) -> bool {
    guard::query(false, || {
        // SAFETY: the caller passes NULL or a live router.
        unsafe { arg_ref(router, "router") }.is_ok_and(|r| r.router.as_learner().is_some())
    })
}

/// Routes one query: `features` holds its `dim` embedding values (of any norm: the router
/// normalises them), `cost_weight` is the quality points given up per USD of expected cost (0
/// picks the best expected quality). On success `*out` receives the decision.
///
/// The prompt's token count is unknown here, so cost estimates that depend on it assume none;
/// `pm_router_rank` takes it.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_SHAPE` (`dim` is not `pm_router_dim`),
/// `PM_STATUS_INVALID_FEATURES` (NaN, infinite or all zero), `PM_STATUS_CONFIG` (negative or
/// non-finite cost weight), `PM_STATUS_BACKEND`.
///
/// Thread safety: any number of threads may route with the same router at once.
///
/// # Safety
///
/// `router` is NULL or a live router; `features` is NULL or points to `dim` floats; `out` and
/// `err` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_router_route(
    router: *const pm_router,
    features: *const f32,
    dim: usize,
    cost_weight: f64,
    out: *mut pm_decision,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        // SAFETY: forwarded from the caller.
        let features = unsafe { arg_slice(features, dim, "features") }?;
        let out = arg_out(out, "out")?;
        let query = router.query(features, dim, None, None)?;
        let value = router.route_query(&query, &Objective::new(cost_weight))?;
        // SAFETY: non-NULL, aligned, writable per the caller.
        unsafe { out.write(value) };
        Ok(())
    })
}

/// Routes one query with everything a decision can use, and ranks the models.
///
/// - `prompt_tokens`: the prompt's token count for the cost model; any negative value means
///   unknown (NaN is an error).
/// - `task`: an optional task tag (NUL-terminated UTF-8, NULL for none) that some routers use.
/// - `allowed`: NULL (with `allowed_len` 0) to allow every model, or one flag per model
///   (`allowed_len == pm_router_num_models`), non-zero for the models that may be chosen.
/// - `ranked`: room for `ranked_len >= 1` entries. On success it receives the decision in
///   `ranked[0]` (the model `pm_router_route` would choose with the same inputs), then the other
///   allowed models, best utility first, as many as fit; `*ranked_count` (when not NULL)
///   receives how many entries were written.
///
/// Errors: as `pm_router_route`, and `PM_STATUS_INVALID_UTF8` (task), `PM_STATUS_SHAPE`
/// (`allowed_len` neither 0 nor the number of models, or `ranked_len` 0), `PM_STATUS_CONFIG` (no
/// model allowed),
/// `PM_STATUS_INVALID_ARGUMENT` (NaN prompt tokens).
///
/// Thread safety: as `pm_router_route`.
///
/// # Safety
///
/// `router` is NULL or a live router; `features` NULL or `dim` floats; `task` NULL or
/// NUL-terminated; `allowed` NULL or `allowed_len` bytes; `ranked` NULL or `ranked_len` writable
/// entries; `ranked_count` and `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_router_rank(
    router: *const pm_router,
    features: *const f32,
    dim: usize,
    prompt_tokens: f64,
    task: *const c_char,
    cost_weight: f64,
    allowed: *const u8,
    allowed_len: usize,
    ranked: *mut pm_decision,
    ranked_len: usize,
    ranked_count: *mut usize,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY (all four): forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        let features = unsafe { arg_slice(features, dim, "features") }?;
        let task = unsafe { arg_opt_str(task, "task") }?;
        let allowed = unsafe { arg_slice(allowed, allowed_len, "allowed") }?;
        // SAFETY: forwarded from the caller.
        let (ranked, ranked_count) = unsafe { rank_outputs(ranked, ranked_len, ranked_count) }?;
        let tokens = if prompt_tokens < 0.0 {
            None
        } else {
            Some(prompt_tokens)
        };
        let query = router.query(features, dim, tokens, task)?;
        let objective = router.objective(cost_weight, allowed)?;
        router.rank_into(&query, &objective, ranked, ranked_count)
    })
}

/// Routes `rows` queries at once, in parallel on the library's worker threads: `features` holds
/// `rows × dim` floats, row-major (a C-contiguous `float[rows][dim]`). On success
/// `models_out[i]` receives the model chosen for row `i`; `models_len` must equal `rows`.
///
/// Errors: as `pm_router_route` (a failing row is named in the message), and `PM_STATUS_SHAPE`
/// when `models_len != rows`.
///
/// Thread safety: as `pm_router_route`.
///
/// # Safety
///
/// `router` is NULL or a live router; `features` NULL or `rows × dim` floats; `models_out` NULL
/// or `models_len` writable values; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_router_route_batch(
    router: *const pm_router,
    features: *const f32,
    rows: usize,
    dim: usize,
    cost_weight: f64,
    models_out: *mut u32,
    models_len: usize,
    err: *mut *mut pm_error,
) -> pm_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        pm_router_route_batch_ex(
            router,
            features,
            rows,
            dim,
            std::ptr::null(),
            0,
            cost_weight,
            std::ptr::null(),
            0,
            models_out,
            models_len,
            err,
        )
    }
}

/// `pm_router_route_batch` with per-row prompt token counts and allowed models.
///
/// - `prompt_tokens`: NULL (with `prompt_tokens_len` 0) when unknown, else one non-negative
///   count per row (`prompt_tokens_len == rows`).
/// - `allowed`: as in `pm_router_rank`.
///
/// Errors: as `pm_router_route_batch`, and `PM_STATUS_SHAPE` for a `prompt_tokens_len` or
/// `allowed_len` that does not match, `PM_STATUS_INVALID_ARGUMENT` for a negative or NaN count,
/// `PM_STATUS_CONFIG` when no model is allowed.
///
/// Thread safety: as `pm_router_route`.
///
/// # Safety
///
/// As `pm_router_route_batch`; `prompt_tokens` NULL or `prompt_tokens_len` doubles; `allowed`
/// NULL or `allowed_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn pm_router_route_batch_ex(
    router: *const pm_router,
    features: *const f32,
    rows: usize,
    dim: usize,
    prompt_tokens: *const f64,
    prompt_tokens_len: usize,
    cost_weight: f64,
    allowed: *const u8,
    allowed_len: usize,
    models_out: *mut u32,
    models_len: usize,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        let values = rows.checked_mul(dim).ok_or_else(|| {
            Failure::new(
                pm_status::PM_STATUS_INVALID_ARGUMENT,
                format!("{rows} rows × {dim} values overflow"),
            )
        })?;
        // SAFETY (all four): forwarded from the caller.
        let features = unsafe { arg_slice(features, values, "features") }?;
        let tokens = unsafe { arg_slice(prompt_tokens, prompt_tokens_len, "prompt_tokens") }?;
        let allowed = unsafe { arg_slice(allowed, allowed_len, "allowed") }?;
        if models_out.is_null() && rows > 0 {
            return Err(Failure::null("models_out"));
        }
        let models_out = unsafe { arg_slice_mut(models_out, models_len, "models_out") }?;
        let mut batch = FeatureBatch::new(features, dim)?;
        if !tokens.is_empty() {
            batch = batch.with_prompt_tokens(tokens)?;
        }
        let objective = router.objective(cost_weight, allowed)?;
        // Route into a buffer of our own, so that the caller's is written only on success.
        let mut chosen = vec![0u32; models_out.len()];
        router
            .router
            .route_batch_into(&batch, &objective, &mut chosen)?;
        models_out.copy_from_slice(&chosen);
        Ok(())
    })
}

/// Teaches a learning router what model `model` achieved on a query: observed `quality` in
/// [0, 1] and `cost` in USD. Routers that do not learn (kNN, MF, baselines) return
/// `PM_STATUS_UNSUPPORTED`; `pm_router_is_learner` tells in advance.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_UNSUPPORTED`, `PM_STATUS_SHAPE`,
/// `PM_STATUS_INVALID_FEATURES`, `PM_STATUS_UNKNOWN_MODEL` (index out of range),
/// `PM_STATUS_INVALID_ARGUMENT` (quality outside [0, 1], a cost negative, non-finite or over 1e12).
///
/// Thread safety: learners lock internally; observing and routing may run on different threads
/// at once with the same router.
///
/// # Safety
///
/// `router` is NULL or a live router; `features` NULL or `dim` floats; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_router_observe(
    router: *const pm_router,
    features: *const f32,
    dim: usize,
    model: u32,
    quality: f64,
    cost: f64,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        // SAFETY: forwarded from the caller.
        let features = unsafe { arg_slice(features, dim, "features") }?;
        let Some(learner) = router.router.as_learner() else {
            return Err(pointsman::Error::Unsupported(format!(
                "observe: the {} router does not learn from feedback",
                router.router.kind()
            ))
            .into());
        };
        let query = router.query(features, dim, None, None)?;
        learner.observe(&Feedback {
            features: &query,
            model: model as usize,
            quality,
            cost,
        })?;
        Ok(())
    })
}

/// Saves the router to `path` (one `.safetensors` file), atomically: the bytes go to a
/// temporary file beside `path`, which replaces it only once complete, and they are loaded back
/// in memory first, so what is written always loads. For a router that learns, this is how its
/// state is kept: saving while other threads route and observe writes a consistent snapshot
/// (`pm_router_observations` of the saved router is the count at that moment).
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_INVALID_UTF8`, `PM_STATUS_IO` (the folder is
/// missing or not writable), `PM_STATUS_NUMERIC` (the learned state went wrong; the file is left
/// as it was).
///
/// Thread safety: may run while other threads route and observe with the same router.
///
/// # Safety
///
/// `router` is NULL or a live router; `path` NULL or a NUL-terminated string; `err` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn pm_router_save(
    router: *const pm_router,
    path: *const c_char,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        // SAFETY: forwarded from the caller.
        let path = unsafe { arg_str(path, "path") }?;
        router.typed("saving")?.save(path)?;
        Ok(())
    })
}

/// A new router: `router` with new prices, without refitting (docs/own-data.md, "Repricing").
/// `models_json` is the path of a `models.json` in the dataset schema with some or all of the
/// router's models; the models it does not list keep their prices, a listed model keeps its
/// default answer length and description unless the file states them, and every estimate of
/// quality stays what it was. Any kind but a cascade (a learner keeps its state; a stack
/// reprices each member); `router` itself is not changed. On success `*out` receives a new
/// router, freed with `pm_router_free`.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_INVALID_UTF8`, `PM_STATUS_IO` (the file),
/// `PM_STATUS_FORMAT` (not a `models.json`), `PM_STATUS_UNKNOWN_MODEL` (a model the router does
/// not have), `PM_STATUS_CONFIG` (a price out of range, or a model repriced from a price of 0
/// whose learned costs have no ratio to scale by), `PM_STATUS_UNSUPPORTED` (a cascade).
///
/// Thread safety: may run while other threads route and observe with `router`.
///
/// # Safety
///
/// `router` is NULL or a live router; `models_json` NULL or a NUL-terminated string; `out`
/// NULL or writable; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_router_reprice(
    router: *const pm_router,
    models_json: *const c_char,
    out: *mut *mut pm_router,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        // SAFETY: forwarded from the caller.
        let path = unsafe { arg_str(models_json, "models_json") }?;
        let out = arg_out(out, "out")?;
        let any = router.typed("repricing")?;
        let prices = pointsman::data::read_prices(std::path::Path::new(path), any.models())?;
        let repriced = pm_router::new(any.reprice(&prices)?)?;
        // SAFETY: `out` is non-NULL and aligned; writable per the caller.
        unsafe { out.write(Box::into_raw(Box::new(repriced))) };
        Ok(())
    })
}

/// A new router: `router` with one more model, `model`, onboarded without refitting what it
/// knows of the others (docs/own-data.md, "Onboarding a model"): their estimates stay bit for
/// bit what they were. Its card (prices, description) comes from the `models.json` at
/// `models_json` when that is not NULL, else from the models of the dataset at `labelled_dir`.
/// Its labelled queries are the train split of the dataset folder `labelled_dir` (in the
/// dataset schema, with embeddings of the router's model, as `pointsman import` writes it)
/// where `model` has a score; with `labelled_dir` NULL it is onboarded from its card alone (the
/// documented prior). A kNN, MF or bandit router; `router` itself is not changed. On success
/// `*out` receives a new router, freed with `pm_router_free`.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT` (`router`, `model` or `out`), `PM_STATUS_INVALID_UTF8`,
/// `PM_STATUS_CONFIG` (neither `models_json` nor `labelled_dir`; a model the router already
/// has; a price out of range), `PM_STATUS_UNKNOWN_MODEL` (the card's source has no such model),
/// `PM_STATUS_INVALID_ARGUMENT` (a dataset folder without embeddings),
/// `PM_STATUS_IO` / `PM_STATUS_FORMAT` (the files), `PM_STATUS_SHAPE` /
/// `PM_STATUS_EMBEDDING_MISMATCH` (the dataset's embeddings are not the router's),
/// `PM_STATUS_UNSUPPORTED` (a kind that cannot onboard).
///
/// Thread safety: may run while other threads route and observe with `router`.
///
/// # Safety
///
/// `router` is NULL or a live router; `model`, `models_json` and `labelled_dir` NULL or
/// NUL-terminated strings; `out` NULL or writable; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_router_add_model(
    router: *const pm_router,
    model: *const c_char,
    models_json: *const c_char,
    labelled_dir: *const c_char,
    out: *mut *mut pm_router,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        // SAFETY: forwarded from the caller.
        let model = unsafe { arg_str(model, "model") }?;
        // SAFETY: forwarded from the caller.
        let models_json = unsafe { arg_opt_str(models_json, "models_json") }?;
        // SAFETY: forwarded from the caller.
        let labelled_dir = unsafe { arg_opt_str(labelled_dir, "labelled_dir") }?;
        let out = arg_out(out, "out")?;
        let any = router.typed("onboarding a model into")?;
        let labelled = labelled_dir
            .map(pointsman::data::Dataset::load)
            .transpose()?;
        let card = pointsman::data::onboarding_card(
            model,
            models_json.map(std::path::Path::new),
            labelled.as_ref().map(|d| d.pool()),
        )?;
        let added = pm_router::new(any.add_model(card, labelled.as_ref().map(|d| d.train()))?)?;
        // SAFETY: `out` is non-NULL and aligned; writable per the caller.
        unsafe { out.write(Box::into_raw(Box::new(added))) };
        Ok(())
    })
}

/// The number of observations a router that learns has learned (its saved ones included), into
/// `*out`.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_UNSUPPORTED` (the router does not learn).
///
/// Thread safety: may run while other threads route and observe.
///
/// # Safety
///
/// `router` is NULL or a live router; `out` and `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_router_observations(
    router: *const pm_router,
    out: *mut u64,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        let out = arg_out(out, "out")?;
        let Some(learner) = router.router.as_learner() else {
            return Err(pointsman::Error::Unsupported(format!(
                "observations: the {} router does not learn from feedback",
                router.router.kind()
            ))
            .into());
        };
        let n = learner.observations();
        // SAFETY: non-NULL, aligned, writable per the caller.
        unsafe { out.write(n) };
        Ok(())
    })
}
