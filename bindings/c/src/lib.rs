//! The C ABI of Pointsman: `libpointsman.so` / `libpointsman.a` and `include/pointsman.h`.
//!
//! This crate only converts types and maps errors; everything that decides lives in the
//! `pointsman` crate. The header is generated from this crate's doc comments by cbindgen
//! (`cbindgen.toml`) and checked in; a test fails when regenerating it changes anything.
//!
//! Conventions (docs/c-api.md):
//!
//! - Every exported function checks its pointer arguments and runs inside `catch_unwind`: a panic
//!   returns `PM_STATUS_PANIC` (or 0 / NULL for functions without a status), never unwinds into
//!   C and never aborts the host.
//! - Fallible functions return a [`pm_status`]; on failure, when `err` is not NULL, `*err`
//!   receives a new [`pm_error`] that the caller frees with [`pm_error_free`].
//! - Outputs are written only on success.

#![deny(missing_docs)]
#![allow(non_camel_case_types)]

mod cascade;
mod embedder;
mod error;
mod guard;
mod policy;
mod router;
mod status;

pub use cascade::{
    pm_cascade_call, pm_cascade_next, pm_cascade_observe, pm_cascade_outcome, pm_cascade_result,
    pm_cascade_session, pm_cascade_session_free, pm_cascade_start, pm_cascade_step,
    pm_cascade_stop, pm_cascade_stop_reason, pm_router_is_cascade,
};
pub use embedder::{
    pm_embedder, pm_embedder_dim, pm_embedder_embed, pm_embedder_embed_batch, pm_embedder_free,
    pm_embedder_load, pm_embedder_load_with_options, pm_embedder_max_tokens,
    pm_embedder_model_name, pm_embedder_threads, pm_router_rank_text, pm_router_route_text,
};
pub use error::{pm_error, pm_error_free, pm_error_message, pm_error_status};
pub use policy::{
    pm_episode, pm_episode_free, pm_episode_new, pm_policy, pm_policy_audit, pm_policy_audit_free,
    pm_policy_audit_json, pm_policy_free, pm_policy_from_json, pm_policy_load, pm_policy_record,
    pm_policy_route,
};
pub use router::{
    pm_decision, pm_router, pm_router_dim, pm_router_embedding_model, pm_router_free,
    pm_router_is_learner, pm_router_kind, pm_router_load, pm_router_model_index,
    pm_router_model_name, pm_router_num_models, pm_router_observe, pm_router_rank, pm_router_route,
    pm_router_route_batch, pm_router_route_batch_ex,
};
pub use status::{pm_status, pm_status_name};

use std::ffi::c_char;

/// The version of the linked library, such as `"0.1.0"`: a static string, never freed.
///
/// Thread safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn pm_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    guard::query(std::ptr::null(), || VERSION.as_ptr().cast())
}

#[cfg(test)]
mod tests;
