//! The one error type of the engine.
//!
//! Every fallible function returns [`Result`]. Bindings map [`Error::kind`] to their own error
//! types in exactly one place, so adding a variant never changes how an existing one is reported.

use std::fmt;
use std::path::PathBuf;

/// A result whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Pointsman.
///
/// Messages are lower case, without a trailing period, and name the offending values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An embedding (or a batch of them) has the wrong dimension for this router.
    #[error("dimension mismatch: expected {expected}, got {got}")]
    DimensionMismatch {
        /// The dimension the router was built for.
        expected: usize,
        /// The dimension that was passed.
        got: usize,
    },

    /// A batch of embeddings whose length is not a multiple of its row width, or whose rows and
    /// auxiliary arrays disagree.
    #[error("shape mismatch: {0}")]
    Shape(String),

    /// A query embedding that cannot be routed: NaN or infinite values, or all zeros.
    #[error("invalid features in row {row}: {reason}")]
    InvalidFeatures {
        /// Row of the batch (0 for a single query).
        row: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// Embeddings made by another embedding model than the one a router was trained on.
    #[error("embedding model mismatch: router expects {expected:?}, got {got:?}")]
    EmbeddingMismatch {
        /// The embedding model the router was trained on.
        expected: String,
        /// The embedding model of the features passed.
        got: String,
    },

    /// A model id that is not in the router's pool: the id, then optionally ` (where it was
    /// looked up)`, shown as `unknown model "id" (where)`.
    #[error("unknown model {}", quote_id(.0))]
    UnknownModel(String),

    /// A configuration value out of its range, or settings that contradict each other.
    #[error("invalid config: {0}")]
    Config(String),

    /// An argument that is not acceptable, such as empty text or a quality outside [0, 1].
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A budget below the expected cost of the first call that could be made: a cascade
    /// session's budget, or a spend limit that no allowed model fits.
    #[error(
        "budget {:e} USD is below the expected cost {:e} USD of the {role} {model:?}",
        apart(*.budget, *.cost),
        apart(*.cost, *.budget)
    )]
    BudgetTooSmall {
        /// The budget, USD.
        budget: f64,
        /// The expected cost of that first call, USD.
        cost: f64,
        /// The model's id.
        model: String,
        /// Which model: `"first model"` of a chain, `"cheapest allowed model"` of a dynamic
        /// cascade.
        role: &'static str,
    },

    /// A decision-time policy's guard found the query unlike anything the router was trained on,
    /// and the policy's action for that is to refuse ([`crate::policy`]).
    #[error("out of distribution: guard score {score:.4} is above the threshold {threshold:.4}")]
    OutOfDistribution {
        /// The guard's score of the query.
        score: f64,
        /// The threshold it was calibrated to.
        threshold: f64,
    },

    /// A budget's hard stop: what is left of the budget does not cover the expected cost of any
    /// allowed model ([`crate::policy`]).
    #[error(
        "budget exhausted for {key}: {:e} of {limit:e} USD spent, the cheapest allowed model needs {:e} USD (its expected cost times the stop margin)",
        readable(*.spent),
        readable(*.cost)
    )]
    BudgetExhausted {
        /// The budget's key (`tenant:acme`, `episode:7`, …).
        key: String,
        /// USD spent in the budget's window.
        spent: f64,
        /// The budget's limit, USD.
        limit: f64,
        /// The expected cost of the cheapest allowed model, USD (with the stop's margin).
        cost: f64,
    },

    /// No model passes a policy's hard caps (maximum expected cost, latency or energy), required
    /// capabilities and context windows: the policy refuses rather than pick silently.
    #[error("no model fits: {0}")]
    NoModelFits(String),

    /// A file that is not in the expected format: malformed JSON, a bad value, a corrupt saved
    /// router.
    #[error("{}", format_location(path, line, message))]
    Format {
        /// The file (or, for in-memory data, a description of it).
        path: String,
        /// 1-based line number for line-oriented files.
        line: Option<usize>,
        /// What was wrong.
        message: String,
    },

    /// A saved router written by a newer (or unknown) version of the format.
    #[error("{path}: unsupported format version {found:?} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The file (or, for in-memory bytes, a description of them).
        path: String,
        /// The version found in the file.
        found: String,
        /// The version this build reads.
        supported: String,
    },

    /// An operation this router does not offer, such as `observe` on a router that does not learn.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A cascade session that has reached its decision (or was stopped) was asked for another
    /// step.
    #[error("the cascade session has ended{0}: start a new session")]
    SessionFinished(String),

    /// A cascade session was told about a model other than the one it asked for.
    #[error(
        "observed model #{got} ({got_id:?}), but the cascade asked for #{expected} ({expected_id:?})"
    )]
    SessionOutOfOrder {
        /// The model the session asked for.
        expected: usize,
        /// Its id.
        expected_id: String,
        /// The model observed.
        got: usize,
        /// Its id.
        got_id: String,
    },

    /// A cascade session was asked for its outcome before it reached a decision.
    #[error("the cascade session has not decided yet: {0}")]
    SessionRunning(String),

    /// A router's numbers went wrong: a non-finite estimate from finite inputs, a matrix that
    /// lost positive definiteness. A defect of the router or of its saved state, not of the
    /// query.
    #[error("numeric failure: {0}")]
    Numeric(String),

    /// The embedding model folder is missing or incomplete.
    #[error("embedding model not found at {}: {hint}", path.display())]
    ModelNotFound {
        /// Where the model was looked for.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },

    /// The embedder's numeric backend (candle) failed.
    #[error("embedding backend: {0}")]
    Backend(String),

    /// A shared store (Redis) could not be reached or refused a command: the learner goes on
    /// locally and catches up later ([`crate::share`]).
    #[error("shared store {store}: {message}")]
    Store {
        /// The store (its address, with any password removed).
        store: String,
        /// What failed.
        message: String,
    },
    /// Labels a task needs are missing: evaluation on a split with partial or pairwise-only
    /// labels (it needs every model's score on every query), or fitting a kind that cannot learn
    /// from what the split has.
    #[error("missing labels: {0}")]
    MissingLabels(String),

    /// Reading or writing a file failed.
    #[error("{}: {source}", shown_path(path))]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn format_location(path: &str, line: &Option<usize>, message: &str) -> String {
    match line {
        Some(line) => format!("{path}:{line}: {message}"),
        None => format!("{path}: {message}"),
    }
}

/// The category of an [`Error`]: a plain `Copy` value for bindings to map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Wrong dimension or shape ([`Error::DimensionMismatch`], [`Error::Shape`]).
    Shape,
    /// Features that cannot be routed ([`Error::InvalidFeatures`]).
    InvalidFeatures,
    /// Features of another embedding model ([`Error::EmbeddingMismatch`]).
    EmbeddingMismatch,
    /// [`Error::UnknownModel`].
    UnknownModel,
    /// [`Error::Config`].
    Config,
    /// [`Error::InvalidInput`].
    InvalidInput,
    /// [`Error::Format`].
    Format,
    /// [`Error::UnsupportedVersion`].
    UnsupportedVersion,
    /// [`Error::Unsupported`].
    Unsupported,
    /// [`Error::BudgetTooSmall`].
    BudgetTooSmall,
    /// [`Error::SessionFinished`].
    SessionFinished,
    /// [`Error::SessionOutOfOrder`].
    SessionOutOfOrder,
    /// [`Error::SessionRunning`].
    SessionRunning,
    /// [`Error::Numeric`].
    Numeric,
    /// [`Error::OutOfDistribution`].
    OutOfDistribution,
    /// [`Error::BudgetExhausted`].
    BudgetExhausted,
    /// [`Error::NoModelFits`].
    NoModelFits,
    /// [`Error::ModelNotFound`].
    ModelNotFound,
    /// [`Error::Backend`].
    Backend,
    /// [`Error::Io`].
    Io,
    /// [`Error::Store`].
    Store,
    /// [`Error::MissingLabels`].
    MissingLabels,
}

impl Error {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::DimensionMismatch { .. } | Error::Shape(_) => ErrorKind::Shape,
            Error::InvalidFeatures { .. } => ErrorKind::InvalidFeatures,
            Error::EmbeddingMismatch { .. } => ErrorKind::EmbeddingMismatch,
            Error::UnknownModel(_) => ErrorKind::UnknownModel,
            Error::Config(_) => ErrorKind::Config,
            Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::BudgetTooSmall { .. } => ErrorKind::BudgetTooSmall,
            Error::SessionFinished(_) => ErrorKind::SessionFinished,
            Error::SessionOutOfOrder { .. } => ErrorKind::SessionOutOfOrder,
            Error::SessionRunning(_) => ErrorKind::SessionRunning,
            Error::Numeric(_) => ErrorKind::Numeric,
            Error::OutOfDistribution { .. } => ErrorKind::OutOfDistribution,
            Error::BudgetExhausted { .. } => ErrorKind::BudgetExhausted,
            Error::NoModelFits(_) => ErrorKind::NoModelFits,
            Error::Format { .. } => ErrorKind::Format,
            Error::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::ModelNotFound { .. } => ErrorKind::ModelNotFound,
            Error::Backend(_) => ErrorKind::Backend,
            Error::Io { .. } => ErrorKind::Io,
            Error::Store { .. } => ErrorKind::Store,
            Error::MissingLabels(_) => ErrorKind::MissingLabels,
        }
    }

    /// Shorthand for an [`Error::Io`] about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for an [`Error::Format`] without a line number.
    pub fn format(path: impl fmt::Display, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_string(),
            line: None,
            message: message.into(),
        }
    }

    /// Shorthand for an [`Error::Format`] at a 1-based line of `path`.
    pub fn format_at(path: impl fmt::Display, line: usize, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_string(),
            line: Some(line),
            message: message.into(),
        }
    }
}

/// `"id"` or `"id" (context)` for an [`Error::UnknownModel`] message of the form `id (context)`:
/// the id quoted alone, so a reader sees exactly which string was not found.
fn quote_id(message: &str) -> String {
    match message.split_once(" (") {
        Some((id, rest)) if rest.ends_with(')') => format!("{} ({rest}", quoted(id)),
        _ => quoted(message),
    }
}

/// Longest id a message quotes whole (a 1 MiB id made a 1 MiB message).
const MAX_QUOTED: usize = 256;

/// `text` quoted, or its first [`MAX_QUOTED`] bytes (at a character boundary) quoted and how
/// long it was.
pub(crate) fn quoted(text: &str) -> String {
    match cut(text, MAX_QUOTED) {
        None => format!("{text:?}"),
        Some(head) => format!("{head:?}… ({} bytes in all)", text.len()),
    }
}

/// The first `max` bytes of `text` (cut at a character boundary) when it is longer, for a
/// message that must stay short whatever value it quotes; `None` when it fits.
pub fn cut(text: &str, max: usize) -> Option<&str> {
    if text.len() <= max {
        return None;
    }
    let end = (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    Some(&text[..end])
}

/// A path as an I/O error names it; an empty one said only ": No such file or directory".
fn shown_path(path: &std::path::Path) -> std::borrow::Cow<'_, str> {
    if path.as_os_str().is_empty() {
        "an empty path".into()
    } else {
        path.to_string_lossy()
    }
}

/// A number as a message shows it: as Rust prints it while that is short, in exponent form when
/// it is very large or very small (1e300 printed 301 digits, -1e-300 as many zeros).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shown(pub f64);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if !x.is_finite() || x == 0.0 || (1e-4..1e16).contains(&x.abs()) {
            write!(f, "{x}")
        } else {
            write!(f, "{x:e}")
        }
    }
}

/// `x` rounded as [`readable`] does, unless that would show it equal to `other` when it is not
/// ("budget 1e-3 USD is below the expected cost 1e-3 USD"): then whole.
fn apart(x: f64, other: f64) -> f64 {
    if x != other && readable(x) == readable(other) {
        x
    } else {
        readable(x)
    }
}

/// `x` rounded to 4 significant digits, for messages: an expected cost computed as
/// 1.0240000000000001e-4 prints as 1.024e-4 (the error's fields keep the exact values).
pub(crate) fn readable(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    // The double nearest the decimal rounded to four digits: through its text, which stays
    // exact at every magnitude (scaling by a power of ten overflowed past 1e308 and was
    // inexact past 1e22).
    // (The rounding can carry past the largest double: then `x` as it is.)
    format!("{x:.3e}")
        .parse()
        .ok()
        .filter(|r: &f64| r.is_finite())
        .unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ids_and_empty_paths_are_named_briefly() {
        let long = "é".repeat(1000);
        let e = Error::UnknownModel(format!("{long} (in x.json)")).to_string();
        assert!(
            e.len() < 400 && e.ends_with("\"… (2000 bytes in all) (in x.json)"),
            "{e}"
        );
        let e = Error::io("", std::io::Error::from(std::io::ErrorKind::NotFound)).to_string();
        assert!(e.starts_with("an empty path: "), "{e}");
        let e = Error::UnknownModel("m".into()).to_string();
        assert_eq!(e, "unknown model \"m\"");
    }

    #[test]
    fn a_budget_below_its_cost_never_reads_as_equal_to_it() {
        let e = Error::BudgetTooSmall {
            budget: 1e-3,
            cost: 0.0010000000474974513,
            model: "m".into(),
            role: "first model",
        };
        assert_eq!(
            e.to_string(),
            "budget 1e-3 USD is below the expected cost 1.0000000474974513e-3 USD of the first model \"m\""
        );
    }

    #[test]
    fn shown_numbers_stay_short() {
        for (x, shown) in [
            (0.5, "0.5"),
            (12.0, "12"),
            (0.0, "0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::MAX, "1.7976931348623157e308"),
            (-1e-300, "-1e-300"),
            (1e16, "1e16"),
            (123_456_789.0, "123456789"),
        ] {
            assert_eq!(Shown(x).to_string(), shown);
        }
    }

    #[test]
    fn readable_keeps_four_significant_digits() {
        for (x, shown) in [
            (1.0240000000000001e-4, "1.024e-4"),
            (3.400030000000002e-5, "3.4e-5"),
            (1e-9, "1e-9"),
            (12_345_678.0, "1.235e7"),
            (-0.000_123_456, "-1.235e-4"),
            (0.0, "0e0"),
            (1e-307, "1e-307"),
            (1e-310, "1e-310"),
            (1e-300, "1e-300"),
            (1.7976931348623157e308, "1.7976931348623157e308"),
        ] {
            assert_eq!(format!("{:e}", readable(x)), shown, "{x}");
        }
        assert!(readable(f64::NAN).is_nan());
        assert_eq!(readable(f64::INFINITY), f64::INFINITY);
        let e = Error::BudgetTooSmall {
            budget: 1e-9,
            cost: 1.0240000000000001e-4,
            model: "cheap".into(),
            role: "first model",
        };
        assert_eq!(
            e.to_string(),
            "budget 1e-9 USD is below the expected cost 1.024e-4 USD of the first model \"cheap\""
        );
    }

    #[test]
    fn messages_name_values() {
        let e = Error::DimensionMismatch {
            expected: 384,
            got: 768,
        };
        assert_eq!(e.to_string(), "dimension mismatch: expected 384, got 768");
        assert_eq!(e.kind(), ErrorKind::Shape);
        let e = Error::format_at("llmrouter_dc.jsonl.gz", 812, "score 1.7 outside [0, 1]");
        assert_eq!(
            e.to_string(),
            "llmrouter_dc.jsonl.gz:812: score 1.7 outside [0, 1]"
        );
        let e = Error::format("router.safetensors", "truncated header");
        assert_eq!(e.to_string(), "router.safetensors: truncated header");
        assert_eq!(e.kind(), ErrorKind::Format);
        let e = Error::io(
            "/nope/models.json",
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        );
        assert_eq!(e.to_string(), "/nope/models.json: no such file");
        assert_eq!(
            Error::UnknownModel("x".into()).to_string(),
            "unknown model \"x\""
        );
        // The id quoted alone, its context after it.
        assert_eq!(
            Error::UnknownModel("gpt-9 (in prices.json, not a model of the router)".into())
                .to_string(),
            "unknown model \"gpt-9\" (in prices.json, not a model of the router)"
        );
    }
}
