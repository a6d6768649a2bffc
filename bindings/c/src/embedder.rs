//! `pm_embedder`: the in-process text embedder (the core's `pointsman::embed`), and routing text
//! with it.
//!
//! Built without the `embed` feature, the functions keep their signatures: `pm_embedder_load`
//! returns `PM_STATUS_EMBEDDER_UNAVAILABLE`, so no embedder can exist, and the functions that take
//! one only ever see NULL.

use std::ffi::c_char;

use pointsman::Objective;

use crate::error::{pm_error, Failure};
use crate::guard::{self, arg_opt_str, arg_out, arg_ref, arg_slice, arg_slice_mut, arg_str};
use crate::router::{pm_decision, pm_router};
use crate::status::pm_status;

/// A loaded text embedding model (all-MiniLM-L6-v2 by default): text in, a unit-length
/// embedding of `pm_embedder_dim` floats out, computed in-process like sentence-transformers
/// (WordPiece, BERT forward, mean pooling, L2 normalisation).
///
/// Thread safety: an embedder is immutable after loading. One embedder may be shared freely
/// between threads and used by any number of them at once (`pm_embedder_embed` and
/// `pm_router_route_text` take a `const pm_embedder *`; each call uses its own scratch space).
/// Its own worker threads are set at load (`pm_embedder_load_with_options`). Free it once, after
/// every thread has finished with it.
#[derive(Debug)]
pub struct pm_embedder {
    inner: imp::Inner,
}

#[cfg(feature = "embed")]
mod imp {
    use std::ffi::{c_char, CString};

    use pointsman::embed::{default_model_dir, Embedder, EmbedderOptions};
    use pointsman::QueryFeatures;

    use crate::error::Failure;

    #[derive(Debug)]
    pub(crate) struct Inner {
        embedder: Embedder,
        name: CString,
    }

    pub(crate) fn load(
        dir: Option<&str>,
        threads: usize,
        max_tokens: usize,
    ) -> Result<Inner, Failure> {
        let mut opts = EmbedderOptions {
            threads,
            ..EmbedderOptions::default()
        };
        if max_tokens != 0 {
            opts.max_tokens = max_tokens;
        }
        let embedder = match dir {
            Some(dir) => Embedder::load(dir, &opts)?,
            None => Embedder::load(default_model_dir()?, &opts)?,
        };
        let name = CString::new(embedder.model_name()).map_err(|_| {
            Failure::new(
                crate::status::pm_status::PM_STATUS_FORMAT,
                format!("model name {:?} contains a NUL byte", embedder.model_name()),
            )
        })?;
        Ok(Inner { embedder, name })
    }

    impl Inner {
        pub(crate) fn dim(&self) -> usize {
            self.embedder.dim()
        }

        pub(crate) fn threads(&self) -> usize {
            self.embedder.threads()
        }

        pub(crate) fn max_tokens(&self) -> usize {
            self.embedder.max_tokens()
        }

        pub(crate) fn name(&self) -> *const c_char {
            self.name.as_ptr()
        }

        /// Embeds `texts` into `out` (`texts.len() × dim` floats, checked by the core).
        pub(crate) fn embed_into(&self, texts: &[&str], out: &mut [f32]) -> Result<(), Failure> {
            self.embedder.embed_into(texts, out)?;
            Ok(())
        }

        /// The routing features of one text (refuses empty and whitespace-only text).
        pub(crate) fn features(&self, text: &str) -> Result<QueryFeatures, Failure> {
            Ok(self.embedder.features(text)?.0)
        }
    }
}

#[cfg(not(feature = "embed"))]
mod imp {
    use std::ffi::c_char;

    use pointsman::QueryFeatures;

    use crate::error::Failure;
    use crate::status::pm_status;

    /// No embedder exists in this build.
    #[derive(Debug)]
    pub(crate) enum Inner {}

    pub(crate) fn load(_: Option<&str>, _: usize, _: usize) -> Result<Inner, Failure> {
        Err(Failure::new(
            pm_status::PM_STATUS_EMBEDDER_UNAVAILABLE,
            "this libpointsman was built without the embed feature: it has no text embedder",
        ))
    }

    impl Inner {
        pub(crate) fn dim(&self) -> usize {
            match *self {}
        }

        pub(crate) fn threads(&self) -> usize {
            match *self {}
        }

        pub(crate) fn max_tokens(&self) -> usize {
            match *self {}
        }

        pub(crate) fn name(&self) -> *const c_char {
            match *self {}
        }

        pub(crate) fn embed_into(&self, _: &[&str], _: &mut [f32]) -> Result<(), Failure> {
            match *self {}
        }

        pub(crate) fn features(&self, _: &str) -> Result<QueryFeatures, Failure> {
            match *self {}
        }
    }
}

/// Loads an embedding model folder with the default options: as
/// `pm_embedder_load_with_options(model_dir, 0, 0, out, err)` (one worker thread per core, the
/// model's 256-word-piece window).
///
/// `model_dir` is a sentence-transformers model folder (`config.json`, `tokenizer.json`,
/// `model.safetensors`), NUL-terminated UTF-8, or NULL for the default folder:
/// `$POINTSMAN_MODEL_DIR`, else `$XDG_CACHE_HOME/pointsman/models/all-MiniLM-L6-v2`, else
/// `$HOME/.cache/pointsman/models/all-MiniLM-L6-v2` (`scripts/fetch-model.sh` installs it there).
/// On success `*out` receives a new embedder, freed with `pm_embedder_free`.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT` (out), `PM_STATUS_INVALID_UTF8` (model_dir),
/// `PM_STATUS_MODEL_NOT_FOUND` (missing folder or file; the message says how to get the model),
/// `PM_STATUS_FORMAT` (a corrupt or inconsistent file), `PM_STATUS_IO`,
/// `PM_STATUS_EMBEDDER_UNAVAILABLE` (a library built without the `embed` feature).
///
/// Thread safety: may be called from any thread.
///
/// # Safety
///
/// `model_dir` is NULL or a NUL-terminated string; `out` and `err` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_embedder_load(
    model_dir: *const c_char,
    out: *mut *mut pm_embedder,
    err: *mut *mut pm_error,
) -> pm_status {
    // SAFETY: forwarded from the caller.
    unsafe { pm_embedder_load_with_options(model_dir, 0, 0, out, err) }
}

/// Loads an embedding model folder (see `pm_embedder_load`) with explicit options.
///
/// - `threads`: the worker threads one `pm_embedder_embed` call may use. 1 runs everything on the
///   calling thread: the right choice for a server that embeds on its own worker threads, and
///   the way to keep the embedder on the cores the host pins it to. N > 1 starts a private pool
///   of N threads for this embedder (rayon workers, which spin briefly before sleeping; the
///   host's and the library's other pools are not touched). 0 means one per core; at most 1024.
/// - `max_tokens`: the truncation window in word pieces, [CLS] and [SEP] included; 0 means the
///   model's default (256). Longer text is cut to the window.
///
/// Errors: as `pm_embedder_load`, and `PM_STATUS_INVALID_ARGUMENT` for more than 1024 threads or
/// a `max_tokens` that leaves no room for text or exceeds the model's positions (512),
/// `PM_STATUS_BACKEND` when the threads cannot be started.
///
/// Thread safety: may be called from any thread.
///
/// # Safety
///
/// As `pm_embedder_load`.
#[no_mangle]
pub unsafe extern "C" fn pm_embedder_load_with_options(
    model_dir: *const c_char,
    threads: usize,
    max_tokens: usize,
    out: *mut *mut pm_embedder,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let dir = unsafe { arg_opt_str(model_dir, "model_dir") }?;
        let out = arg_out(out, "out")?;
        let inner = imp::load(dir, threads, max_tokens)?;
        let embedder = Box::new(pm_embedder { inner });
        // SAFETY: `out` is non-NULL and aligned; writable per the caller.
        unsafe { out.write(Box::into_raw(embedder)) };
        Ok(())
    })
}

/// Frees an embedder. `pm_embedder_free(NULL)` does nothing. No other thread may be using it.
///
/// # Safety
///
/// `embedder` is NULL or an embedder from `pm_embedder_load`, freed only once.
#[no_mangle]
pub unsafe extern "C" fn pm_embedder_free(embedder: *mut pm_embedder) {
    guard::query((), || {
        if !embedder.is_null() {
            // SAFETY: the embedder came from Box::into_raw in `pm_embedder_load_with_options`,
            // freed once.
            drop(unsafe { Box::from_raw(embedder) });
        }
    })
}

/// The embedding dimension (384 for all-MiniLM-L6-v2); 0 when `embedder` is NULL.
///
/// # Safety
///
/// `embedder` is NULL or a live embedder.
#[no_mangle]
pub unsafe extern "C" fn pm_embedder_dim(embedder: *const pm_embedder) -> usize {
    guard::query(0, || {
        // SAFETY: the caller passes NULL or a live embedder.
        unsafe { arg_ref(embedder, "embedder") }.map_or(0, |e| e.inner.dim())
    })
}

/// The model's name, borrowed (valid until the embedder is freed): `"all-MiniLM-L6-v2"` for the
/// default weights (recognised by content), otherwise the model folder's name. Routers trained
/// on this model's embeddings name it too (`pm_router_embedding_model`). NULL when `embedder` is
/// NULL.
///
/// # Safety
///
/// `embedder` is NULL or a live embedder.
#[no_mangle]
pub unsafe extern "C" fn pm_embedder_model_name(embedder: *const pm_embedder) -> *const c_char {
    guard::query(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live embedder.
        unsafe { arg_ref(embedder, "embedder") }.map_or(std::ptr::null(), |e| e.inner.name())
    })
}

/// The number of worker threads one embedding call may use (the `threads` option, 0 resolved to
/// the number of cores); 0 when `embedder` is NULL.
///
/// # Safety
///
/// `embedder` is NULL or a live embedder.
#[no_mangle]
pub unsafe extern "C" fn pm_embedder_threads(embedder: *const pm_embedder) -> usize {
    guard::query(0, || {
        // SAFETY: the caller passes NULL or a live embedder.
        unsafe { arg_ref(embedder, "embedder") }.map_or(0, |e| e.inner.threads())
    })
}

/// The truncation window in word pieces, [CLS] and [SEP] included; 0 when `embedder` is NULL.
///
/// # Safety
///
/// `embedder` is NULL or a live embedder.
#[no_mangle]
pub unsafe extern "C" fn pm_embedder_max_tokens(embedder: *const pm_embedder) -> usize {
    guard::query(0, || {
        // SAFETY: the caller passes NULL or a live embedder.
        unsafe { arg_ref(embedder, "embedder") }.map_or(0, |e| e.inner.max_tokens())
    })
}

/// Embeds one text: on success `out` receives its unit-length embedding, `out_len` floats, which
/// must equal `pm_embedder_dim`.
///
/// `text` is NUL-terminated UTF-8. Any text is embedded, the empty string included (it becomes
/// `[CLS] [SEP]`, as in sentence-transformers); text longer than the window is truncated. Routing
/// refuses empty text (`pm_router_route_text`), embedding does not.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_INVALID_UTF8` (text), `PM_STATUS_SHAPE`
/// (`out_len` is not the dimension), `PM_STATUS_BACKEND` (the tokenizer failed).
///
/// Thread safety: any number of threads may embed with the same embedder at once.
///
/// # Safety
///
/// `embedder` is NULL or a live embedder; `text` NULL or NUL-terminated; `out` NULL or `out_len`
/// writable floats; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_embedder_embed(
    embedder: *const pm_embedder,
    text: *const c_char,
    out: *mut f32,
    out_len: usize,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY (all three): forwarded from the caller.
        let embedder = unsafe { arg_ref(embedder, "embedder") }?;
        let text = unsafe { arg_str(text, "text") }?;
        let out = unsafe { arg_slice_mut(out, out_len, "out") }?;
        embed_into(embedder, &[text], out)
    })
}

/// Embeds into a buffer of our own, so that the caller's is written only on success.
fn embed_into(embedder: &pm_embedder, texts: &[&str], out: &mut [f32]) -> Result<(), Failure> {
    let dim = embedder.inner.dim();
    if Some(out.len()) != texts.len().checked_mul(dim) {
        return Err(pointsman::Error::Shape(format!(
            "out holds {} floats, expected {} ({} texts x {dim})",
            out.len(),
            texts.len().saturating_mul(dim),
            texts.len()
        ))
        .into());
    }
    let mut values = vec![0f32; out.len()];
    embedder.inner.embed_into(texts, &mut values)?;
    out.copy_from_slice(&values);
    Ok(())
}

/// Embeds `count` texts as one batch (sorted by length and packed, on the embedder's threads):
/// on success `out` receives the row-major `count × dim` embeddings, row `i` for `texts[i]`;
/// `out_len` must equal `count × pm_embedder_dim`.
///
/// Errors: as `pm_embedder_embed` (an invalid string is named by its index).
///
/// Thread safety: as `pm_embedder_embed`.
///
/// # Safety
///
/// `embedder` is NULL or a live embedder; `texts` NULL or `count` pointers, each NULL or
/// NUL-terminated; `out` NULL or `out_len` writable floats; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_embedder_embed_batch(
    embedder: *const pm_embedder,
    texts: *const *const c_char,
    count: usize,
    out: *mut f32,
    out_len: usize,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY: forwarded from the caller.
        let embedder = unsafe { arg_ref(embedder, "embedder") }?;
        // SAFETY: forwarded from the caller.
        let ptrs = unsafe { arg_slice(texts, count, "texts") }?;
        let texts = ptrs
            .iter()
            .enumerate()
            // SAFETY: each pointer is NULL or NUL-terminated, per the caller.
            .map(|(i, &p)| unsafe { arg_str(p, &format!("texts[{i}]")) })
            .collect::<Result<Vec<&str>, Failure>>()?;
        // SAFETY: forwarded from the caller.
        let out = unsafe { arg_slice_mut(out, out_len, "out") }?;
        embed_into(embedder, &texts, out)
    })
}

/// Embeds `text` with `embedder` and routes it with `router` at `cost_weight`: on success `*out`
/// receives the decision. The same as `pm_embedder_embed` followed by `pm_router_rank` with the
/// text's prompt token count estimated as the datasets do (Unicode characters / 4), except that
/// the embedder's model must be the router's.
///
/// Errors: `PM_STATUS_NULL_ARGUMENT`, `PM_STATUS_INVALID_UTF8` (text),
/// `PM_STATUS_INVALID_ARGUMENT` (empty, whitespace-only or invisible text: nothing to route),
/// `PM_STATUS_EMBEDDING_MISMATCH` (the router was trained on another embedding model than the
/// embedder's), `PM_STATUS_SHAPE` (the dimensions differ), `PM_STATUS_CONFIG` (negative or
/// non-finite cost weight), `PM_STATUS_BACKEND`.
///
/// Thread safety: any number of threads may route text with the same router and embedder at once.
///
/// # Safety
///
/// `router` is NULL or a live router; `embedder` NULL or a live embedder; `text` NULL or
/// NUL-terminated; `out` and `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pm_router_route_text(
    router: *const pm_router,
    embedder: *const pm_embedder,
    text: *const c_char,
    cost_weight: f64,
    out: *mut pm_decision,
    err: *mut *mut pm_error,
) -> pm_status {
    guard::call(err, || {
        // SAFETY (all three): forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        let embedder = unsafe { arg_ref(embedder, "embedder") }?;
        let text = unsafe { arg_str(text, "text") }?;
        let out = arg_out(out, "out")?;
        let query = embedder.inner.features(text)?;
        let value = router.route_query(&query, &Objective::new(cost_weight))?;
        // SAFETY: non-NULL, aligned, writable per the caller.
        unsafe { out.write(value) };
        Ok(())
    })
}

/// `pm_router_route_text` with everything `pm_router_rank` takes: embeds `text` and ranks the
/// models for it.
///
/// - `prompt_tokens`: the prompt's token count for the cost model; any negative value means
///   estimate it from the text (Unicode characters / 4, as the datasets do). NaN is an error.
/// - `task`, `allowed`, `ranked`, `ranked_len`, `ranked_count`: as in `pm_router_rank`
///   (`ranked[0]` is the decision).
///
/// Errors: those of `pm_router_route_text` and `pm_router_rank`.
///
/// Thread safety: as `pm_router_route_text`.
///
/// # Safety
///
/// As `pm_router_route_text` and `pm_router_rank`.
#[no_mangle]
pub unsafe extern "C" fn pm_router_rank_text(
    router: *const pm_router,
    embedder: *const pm_embedder,
    text: *const c_char,
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
        // SAFETY (all five): forwarded from the caller.
        let router = unsafe { arg_ref(router, "router") }?;
        let embedder = unsafe { arg_ref(embedder, "embedder") }?;
        let text = unsafe { arg_str(text, "text") }?;
        let task = unsafe { arg_opt_str(task, "task") }?;
        let allowed = unsafe { arg_slice(allowed, allowed_len, "allowed") }?;
        // SAFETY: forwarded from the caller.
        let (ranked, ranked_count) =
            unsafe { crate::router::rank_outputs(ranked, ranked_len, ranked_count) }?;
        let objective = router.objective(cost_weight, allowed)?;
        let mut query = embedder.inner.features(text)?;
        if prompt_tokens >= 0.0 || prompt_tokens.is_nan() {
            query = query.with_prompt_tokens(prompt_tokens)?;
        }
        if let Some(task) = task {
            query = query.with_task(task);
        }
        router.rank_into(&query, &objective, ranked, ranked_count)
    })
}
