//! The status codes, and the one place where core error kinds become status codes.

use std::ffi::c_char;

use pointsman::ErrorKind;

/// The outcome of a call. The numbers are fixed and never reused: a status removed from a later
/// version leaves a gap.
///
/// Ranges: 0 success; 1–9 arguments and the call boundary; 10–29 errors of the routing engine;
/// 30–39 the embedder; 40–49 cascade sessions; 50–59 decision-time policies' refusals; 60–69
/// data and shared stores (labels missing, a store unreachable). Numbers not listed are reserved.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum pm_status {
    /// Success.
    PM_STATUS_OK = 0,
    /// A panic (a bug in Pointsman) was caught at the C boundary. The objects passed to the call
    /// may be in an inconsistent state: free them. Please report the message.
    PM_STATUS_PANIC = 1,
    /// A required pointer argument was NULL.
    PM_STATUS_NULL_ARGUMENT = 2,
    /// A string argument is not valid UTF-8.
    PM_STATUS_INVALID_UTF8 = 3,
    /// An argument out of range: a misaligned pointer, an array too large to address, a
    /// non-finite or negative number where a count is expected, a quality outside [0, 1].
    PM_STATUS_INVALID_ARGUMENT = 4,
    /// A status this build does not know how to name (an error kind newer than the binding).
    PM_STATUS_OTHER = 9,
    /// Wrong dimension or length: features whose dimension is not the router's, an output
    /// buffer whose length does not match the number of rows, a zero dimension.
    PM_STATUS_SHAPE = 10,
    /// Features that cannot be routed: NaN or infinite values, or all zeros.
    PM_STATUS_INVALID_FEATURES = 11,
    /// Features made by another embedding model than the router's.
    PM_STATUS_EMBEDDING_MISMATCH = 12,
    /// A model index or id that is not in the router's pool.
    PM_STATUS_UNKNOWN_MODEL = 13,
    /// An invalid setting, such as a negative or non-finite cost weight or an empty allowed set.
    PM_STATUS_CONFIG = 14,
    /// A file that is not a valid saved router: truncated, corrupt, or with bad values.
    PM_STATUS_FORMAT = 15,
    /// A saved router written by a newer version of the format.
    PM_STATUS_UNSUPPORTED_VERSION = 16,
    /// An operation this object does not offer, such as observing feedback on a router that
    /// does not learn.
    PM_STATUS_UNSUPPORTED = 17,
    /// Reading a file failed (missing, unreadable).
    PM_STATUS_IO = 18,
    /// The embedding model folder is missing or incomplete.
    PM_STATUS_MODEL_NOT_FOUND = 19,
    /// The embedder's numeric backend failed.
    PM_STATUS_BACKEND = 20,
    /// A router's numbers went wrong: a non-finite estimate from finite inputs, a training run
    /// that diverged. A defect of the router or of its saved state, not of the query.
    PM_STATUS_NUMERIC = 21,
    /// Reserved for the embedder functions: this build of libpointsman has no embedder (it was
    /// built without the `embed` feature).
    PM_STATUS_EMBEDDER_UNAVAILABLE = 30,
    /// A cascade session has already reached its decision (or was stopped), so it takes no
    /// further step.
    PM_STATUS_SESSION_FINISHED = 40,
    /// Feedback for a cascade session that does not match the step the session proposed.
    PM_STATUS_SESSION_OUT_OF_ORDER = 41,
    /// A budget below the expected cost of the first model that could be called (for a dynamic
    /// cascade, of the cheapest allowed one).
    PM_STATUS_BUDGET_TOO_SMALL = 42,
    /// A cascade session has not reached its decision yet, so it has no result (or, for
    /// `pm_cascade_stop`, no answer to use).
    PM_STATUS_SESSION_RUNNING = 43,
    /// A policy's out-of-distribution guard found the query unlike the training queries, and its
    /// action is to refuse.
    PM_STATUS_OUT_OF_DISTRIBUTION = 50,
    /// A budget's hard stop: what is left does not cover the expected cost of any allowed model.
    PM_STATUS_BUDGET_EXHAUSTED = 51,
    /// A policy's rules, hard caps, required capabilities or context windows leave no model.
    PM_STATUS_NO_MODEL_FITS = 52,
    /// The labels a step needs are not there: evaluating on a split without every model's score
    /// on every query, or fitting a kind that cannot learn from what the split has.
    PM_STATUS_MISSING_LABELS = 60,
    /// A shared store (Redis) could not be reached or refused a command.
    PM_STATUS_STORE = 61,
}

/// The status of a core error kind: the one mapping from `pointsman::ErrorKind` to C.
pub(crate) fn status_of(kind: ErrorKind) -> pm_status {
    use pm_status::*;
    match kind {
        ErrorKind::Shape => PM_STATUS_SHAPE,
        ErrorKind::InvalidFeatures => PM_STATUS_INVALID_FEATURES,
        ErrorKind::EmbeddingMismatch => PM_STATUS_EMBEDDING_MISMATCH,
        ErrorKind::UnknownModel => PM_STATUS_UNKNOWN_MODEL,
        ErrorKind::Config => PM_STATUS_CONFIG,
        ErrorKind::InvalidInput => PM_STATUS_INVALID_ARGUMENT,
        ErrorKind::Format => PM_STATUS_FORMAT,
        ErrorKind::UnsupportedVersion => PM_STATUS_UNSUPPORTED_VERSION,
        ErrorKind::Unsupported => PM_STATUS_UNSUPPORTED,
        ErrorKind::ModelNotFound => PM_STATUS_MODEL_NOT_FOUND,
        ErrorKind::Backend => PM_STATUS_BACKEND,
        ErrorKind::Numeric => PM_STATUS_NUMERIC,
        ErrorKind::BudgetTooSmall => PM_STATUS_BUDGET_TOO_SMALL,
        ErrorKind::SessionFinished => PM_STATUS_SESSION_FINISHED,
        ErrorKind::SessionOutOfOrder => PM_STATUS_SESSION_OUT_OF_ORDER,
        ErrorKind::SessionRunning => PM_STATUS_SESSION_RUNNING,
        ErrorKind::Io => PM_STATUS_IO,
        ErrorKind::OutOfDistribution => PM_STATUS_OUT_OF_DISTRIBUTION,
        ErrorKind::BudgetExhausted => PM_STATUS_BUDGET_EXHAUSTED,
        ErrorKind::NoModelFits => PM_STATUS_NO_MODEL_FITS,
        ErrorKind::MissingLabels => PM_STATUS_MISSING_LABELS,
        ErrorKind::Store => PM_STATUS_STORE,
        // ErrorKind is non-exhaustive: a kind added to the core without a status here is still
        // reported, with its message, rather than mislabelled.
        _ => PM_STATUS_OTHER,
    }
}

impl pm_status {
    /// The constant's name without the `PM_STATUS_` prefix, NUL-terminated.
    fn name(self) -> &'static str {
        use pm_status::*;
        match self {
            PM_STATUS_OK => "OK\0",
            PM_STATUS_PANIC => "PANIC\0",
            PM_STATUS_NULL_ARGUMENT => "NULL_ARGUMENT\0",
            PM_STATUS_INVALID_UTF8 => "INVALID_UTF8\0",
            PM_STATUS_INVALID_ARGUMENT => "INVALID_ARGUMENT\0",
            PM_STATUS_OTHER => "OTHER\0",
            PM_STATUS_SHAPE => "SHAPE\0",
            PM_STATUS_INVALID_FEATURES => "INVALID_FEATURES\0",
            PM_STATUS_EMBEDDING_MISMATCH => "EMBEDDING_MISMATCH\0",
            PM_STATUS_UNKNOWN_MODEL => "UNKNOWN_MODEL\0",
            PM_STATUS_CONFIG => "CONFIG\0",
            PM_STATUS_FORMAT => "FORMAT\0",
            PM_STATUS_UNSUPPORTED_VERSION => "UNSUPPORTED_VERSION\0",
            PM_STATUS_UNSUPPORTED => "UNSUPPORTED\0",
            PM_STATUS_IO => "IO\0",
            PM_STATUS_MODEL_NOT_FOUND => "MODEL_NOT_FOUND\0",
            PM_STATUS_BACKEND => "BACKEND\0",
            PM_STATUS_NUMERIC => "NUMERIC\0",
            PM_STATUS_EMBEDDER_UNAVAILABLE => "EMBEDDER_UNAVAILABLE\0",
            PM_STATUS_SESSION_FINISHED => "SESSION_FINISHED\0",
            PM_STATUS_SESSION_OUT_OF_ORDER => "SESSION_OUT_OF_ORDER\0",
            PM_STATUS_BUDGET_TOO_SMALL => "BUDGET_TOO_SMALL\0",
            PM_STATUS_SESSION_RUNNING => "SESSION_RUNNING\0",
            PM_STATUS_OUT_OF_DISTRIBUTION => "OUT_OF_DISTRIBUTION\0",
            PM_STATUS_BUDGET_EXHAUSTED => "BUDGET_EXHAUSTED\0",
            PM_STATUS_NO_MODEL_FITS => "NO_MODEL_FITS\0",
            PM_STATUS_MISSING_LABELS => "MISSING_LABELS\0",
            PM_STATUS_STORE => "STORE\0",
        }
    }
}

/// The name of a status without its `PM_STATUS_` prefix (`"SHAPE"` for `PM_STATUS_SHAPE`), for
/// logs: a static string, never freed. A number that is not a status of this build gives
/// `"UNKNOWN"`.
///
/// The argument is a plain integer, so any value read from a log or a newer library is safe to
/// pass.
///
/// Thread safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn pm_status_name(status: i32) -> *const c_char {
    crate::guard::query(std::ptr::null(), || {
        let name = ALL
            .iter()
            .find(|s| **s as i32 == status)
            .map_or("UNKNOWN\0", |s| s.name());
        name.as_ptr().cast()
    })
}

/// Every status, for [`pm_status_name`] and the tests.
pub(crate) const ALL: [pm_status; 28] = {
    use pm_status::*;
    [
        PM_STATUS_OK,
        PM_STATUS_PANIC,
        PM_STATUS_NULL_ARGUMENT,
        PM_STATUS_INVALID_UTF8,
        PM_STATUS_INVALID_ARGUMENT,
        PM_STATUS_OTHER,
        PM_STATUS_SHAPE,
        PM_STATUS_INVALID_FEATURES,
        PM_STATUS_EMBEDDING_MISMATCH,
        PM_STATUS_UNKNOWN_MODEL,
        PM_STATUS_CONFIG,
        PM_STATUS_FORMAT,
        PM_STATUS_UNSUPPORTED_VERSION,
        PM_STATUS_UNSUPPORTED,
        PM_STATUS_IO,
        PM_STATUS_MODEL_NOT_FOUND,
        PM_STATUS_BACKEND,
        PM_STATUS_NUMERIC,
        PM_STATUS_EMBEDDER_UNAVAILABLE,
        PM_STATUS_SESSION_FINISHED,
        PM_STATUS_SESSION_OUT_OF_ORDER,
        PM_STATUS_BUDGET_TOO_SMALL,
        PM_STATUS_SESSION_RUNNING,
        PM_STATUS_OUT_OF_DISTRIBUTION,
        PM_STATUS_BUDGET_EXHAUSTED,
        PM_STATUS_NO_MODEL_FITS,
        PM_STATUS_MISSING_LABELS,
        PM_STATUS_STORE,
    ]
};
