//! In-process text embedder: text in, [`QueryFeatures`] out, no network and no API key
//! (feature `embed`).
//!
//! [`Embedder`] loads a sentence-transformers model folder in the Hugging Face layout
//! (`config.json`, `tokenizer.json`, `model.safetensors`, optional `1_Pooling/config.json`; only
//! mean pooling is accepted) and embeds text the way sentence-transformers does: WordPiece
//! tokenisation truncated at [`EmbedderOptions::max_tokens`] word pieces (256, `[CLS]` and
//! `[SEP]` included; the padding and truncation baked into `tokenizer.json` are switched off), a
//! BERT forward in `f32`, mean pooling over each text's tokens, L2 normalisation. The default
//! model is all-MiniLM-L6-v2 (384 dimensions), installed by `scripts/fetch-model.sh` into
//! [`default_model_dir`].
//!
//! The weights are read with candle; the forward pass runs on kernels written for this model's
//! shapes (weights pre-packed into 16-column panels at load, an AVX2/FMA micro-kernel with a
//! portable fallback, GELU fused into the first feed-forward projection, no allocation inside
//! the layer loop). It matches the reference sentence-transformers embeddings within 1e-5 (the
//! tolerance the tests check).
//!
//! * **Backends**: that lean forward is [`Backend::Fast`], the default.
//!   [`EmbedderOptions::backend`] = [`Backend::Candle`] runs a second, independent forward
//!   written with stock candle tensor ops (candle's `gemm` matrix products, `candle_nn`
//!   softmax, `gelu_erf`): each batch is sorted by length, cut into batches of at most
//!   [`CHUNK_TOKENS`] tokens once padded to their longest member, and run with an attention
//!   mask (padded keys get a large negative score before the softmax; mean pooling runs over
//!   the mask). It matches the reference as closely, and is about 2.5-3x slower on one short
//!   text at one thread (the ignored test `timing_short_prompt_both_backends` in
//!   `tests/embed_candle.rs` prints both); it is kept as a cross-check of the fast kernels
//!   and for platforms where one would rather trust candle's kernels. Only the chosen backend's form of the weights is kept
//!   (packed panels or candle tensors), so choosing one costs no memory for the other. Its
//!   threads: see [`EmbedderOptions::threads`].
//! * **Batches** (fast backend) are sorted by length and cut into chunks of at most
//!   [`CHUNK_TOKENS`] tokens, so memory stays bounded for any batch; within a chunk the
//!   sequences are packed without padding, which is the same computation as padding to the
//!   longest and masking. Results come back in input order.
//! * **Threads**: [`EmbedderOptions::threads`] is the number of threads the embedder may use.
//!   With 1, everything runs on the calling thread (the candle backend: on a private pool of one
//!   thread); otherwise on a private pool of that size (the host's own rayon pool is not
//!   touched). Set it to pin the embedder next to other work.
//! * **Text**: [`Embedder::embed`] embeds any string, the empty one included (it becomes
//!   `[CLS] [SEP]`, as in sentence-transformers). [`Embedder::features`] and
//!   [`Pipeline::route_text`] refuse empty or whitespace-only text: there is nothing to route.
//!   Text longer than the window is truncated, and [`TokenInfo::truncated`] says so.
//! * **Model identity**: the features carry the model's name ([`Embedder::model_name`]), so a
//!   router trained on another model's embeddings refuses them with
//!   [`Error::EmbeddingMismatch`](crate::Error::EmbeddingMismatch).
//!
//! # Example
//!
//! ```no_run
//! use pointsman::embed::{Embedder, EmbedderOptions, Pipeline};
//! use pointsman::Objective;
//!
//! let embedder = Embedder::load_default(&EmbedderOptions { threads: 1, ..Default::default() })?;
//! let router = pointsman::load_router("router.safetensors")?;
//! let pipeline = Pipeline::new(embedder, router.shared())?;
//! let decision = pipeline.route_text("Prove that sqrt(2) is irrational.", &Objective::new(500.0))?;
//! println!("{} (expected quality {:.3})", decision.model_id, decision.quality);
//! # Ok::<(), pointsman::Error>(())
//! ```
//!
//! [`QueryFeatures`]: crate::QueryFeatures

mod candle_bert;
mod chunks;
mod config;
mod dataset;
mod embedder;
mod folder;
mod kernels;
mod matmul;
mod model;
mod pipeline;

pub use crate::data::prompt_tokens_of;
pub use dataset::{embed_dataset, embed_draft, embed_prompts, DatasetEmbeddings, PROGRESS_BATCH};
pub use embedder::{
    Backend, Embedder, EmbedderOptions, Pinning, TextBatch, TokenInfo, MAX_THREADS,
};
pub use folder::{default_model_dir, verify_default_weights, verify_model_dir};
pub use pipeline::{check_compatible, Pipeline};

/// Name of the default model (and of its cache folder).
pub const DEFAULT_MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// Token budget of one forward chunk (packed tokens). Bounds the scratch memory
/// to roughly `CHUNK_TOKENS * (6 * hidden + intermediate) * 4` bytes per thread.
pub const CHUNK_TOKENS: usize = 1024;

/// A model recognised by its content.
struct KnownModel {
    name: &'static str,
    /// sha256 of `model.safetensors` (checked by [`verify_model_dir`]).
    file_sha256: &'static str,
    /// sha256 of the raw f32 bytes of `embeddings.LayerNorm.weight`: read from the file's
    /// header alone, to recognise the model before hashing the whole file.
    fingerprint: &'static str,
    /// `TensorSource::content_digest`: a sample of every tensor, checked when the weights are
    /// loaded, so that a model sharing the embedding layer norm is not taken for this one.
    content: &'static str,
}

/// Known models.
const KNOWN_MODELS: &[KnownModel] = &[KnownModel {
    name: DEFAULT_MODEL_NAME,
    file_sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    fingerprint: "75076e095d717aab96f8b6beeee503c27940d9a76f2b891a0e3de72f8a6043e4",
    content: "bec72f6e2348b0be42e32c1c1d6fbf201c2a1cd3d52ce0dae32c252d69740753",
}];

const FETCH_HINT: &str =
    "run scripts/fetch-model.sh or set POINTSMAN_MODEL_DIR to a sentence-transformers model folder";

#[cfg(test)]
mod tests;
