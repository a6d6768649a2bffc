//! Routing datasets in the shared schema: load a dataset folder, its splits and costs.
//!
//! A dataset folder `<name>/` holds `<name>.jsonl.gz` (or plain `<name>.jsonl`): one query per
//! line with its per-model scores; `models.json`: the pool and its prices; and, optionally,
//! `<name>.minilm_l6_v2.f16.npy`: the MiniLM embeddings of the prompts in file order.
//!
//! Every problem in these files is an [`Error::Format`] that names the file, the line where there
//! is one, and what was wrong. Nothing panics on bad data.
//!
//! # Example
//!
//! ```no_run
//! use pointsman::data::Dataset;
//! let ds = Dataset::load("../shared/data/llmrouter_dc")?;
//! println!("{} train / {} test queries, {} models", ds.train().len(), ds.test().len(), ds.pool().len());
//! # Ok::<(), pointsman::Error>(())
//! ```
//!
//! [`Error::Format`]: crate::Error::Format

mod dataset;
mod draft;
mod formats;
mod import;
pub(crate) mod json;
mod labels;
pub mod npy;
mod schema;
mod split;

pub use dataset::{embeddings_meta_path, embeddings_path, Dataset};
pub use draft::{split_of_id, DatasetDraft, DraftColumns, DraftEmbeddings, DraftRow, SPLIT_RULE};
pub use formats::{import, import_routerbench_rows, ImportFormat, ImportOptions};
pub use import::{import_log, onboarding_card, read_pool, read_prices, Duplicates, LogMapping};
pub use labels::{keep_cells, label_kind, to_preferences, uniform_log, Preference, Winner};
pub use split::Split;

/// A prompt's length in LLM tokens as the datasets estimate it (`SCHEMA.md`): Unicode characters
/// divided by 4, without rounding.
pub fn prompt_tokens_of(prompt: &str) -> f64 {
    prompt.chars().count() as f64 / 4.0
}

/// File-name tag of the MiniLM embeddings in a dataset folder.
pub const EMBEDDING_TAG: &str = "minilm_l6_v2";

#[cfg(test)]
mod tests;
