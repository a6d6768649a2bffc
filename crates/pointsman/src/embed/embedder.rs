//! [`Embedder`]: the tokenizer and the BERT forward pass, text in, unit-length embeddings out.

use std::path::Path;
use std::sync::Mutex;

use rayon::prelude::*;
use tokenizers::{PostProcessor, Tokenizer, TruncationDirection};

use super::candle_bert::CandleBert;
use super::chunks::{plan_chunks, plan_padded_chunks};
use super::config::{self, format_err, BertConfig};
use super::folder::{default_model_dir, require_files};
use super::kernels::Par;
use super::model::{Bert, TensorSource, Workspace};
use super::KNOWN_MODELS;
use crate::data::prompt_tokens_of;
use crate::{Error, FeatureBatch, QueryFeatures, Result};

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

/// The most worker threads an [`Embedder`] may start: many times the cores of any machine it
/// runs on, so that a mistyped count is an error rather than thousands of threads.
pub const MAX_THREADS: usize = 1024;

/// How to load an [`Embedder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderOptions {
    /// Worker threads; 0 = all cores (`std::thread::available_parallelism`); at most
    /// [`MAX_THREADS`].
    ///
    /// With [`Backend::Fast`] and 1 thread everything runs on the calling thread, otherwise on
    /// a private rayon pool of this size. With [`Backend::Candle`] the forward always runs
    /// inside a private pool of this size (even of 1), so candle's parallel ops (matrix
    /// products, softmax) use at most this many threads and never rayon's global pool; candle
    /// itself splits a matrix product into as many tasks as it counts cores
    /// (`RAYON_NUM_THREADS` or the physical cores), so more threads than that do not help it.
    pub threads: usize,
    /// Truncation length in word pieces, `[CLS]` and `[SEP]` included (default 256,
    /// the model's `max_seq_length`); must not exceed `max_position_embeddings`.
    pub max_tokens: usize,
    /// The forward implementation (default [`Backend::Fast`]).
    pub backend: Backend,
    /// Whether the worker threads are pinned one to a CPU (default [`Pinning::Auto`]).
    pub pinning: Pinning,
}

/// Whether an [`Embedder`]'s worker threads are pinned to CPUs, thread `i` to the `i`-th CPU
/// this process may run on (cycling when there are more threads than CPUs).
///
/// Why: an embedding split over two threads waits for both halves of every matrix product. On
/// a 2-core machine with idle gaps between texts (a gateway at 100 requests/s), the kernel
/// appears to wake both workers on the same core and move one away only later, so the split
/// runs on one core with two threads switching for a while. `benches/gateway/run.sh` and
/// `pointsman-testkit embed --rate 100` show it (docs/benchmarks.md, "Pinned embedding
/// threads"; 2 Zen 5 cores): unpinned, the same texts took about 1 ms longer at that pace than
/// back to back, with about five times the context switches; pinned, about as long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pinning {
    /// Pin when the pool has more than one thread and as many threads as there are CPUs this
    /// process may run on (the loading thread's affinity mask, normally the process's, as
    /// `taskset` or a container's cpuset sets it):
    /// then every CPU gets one worker whatever is pinned, and only the stacking of two workers
    /// on one CPU is ruled out. With fewer threads than CPUs nothing is pinned, so that several
    /// processes on a large machine do not all crowd its first CPUs.
    #[default]
    Auto,
    /// Pin whenever there is a pool (more than one thread, or the candle backend).
    Always,
    /// Never pin: the operating system places the threads.
    Never,
}

impl Pinning {
    /// The CPUs the pool's threads are pinned to, thread `i` to `cpus[i % len]`; empty for none.
    /// `allowed` is the process's affinity mask in order.
    pub(crate) fn plan<T: Copy>(self, threads: usize, pool: bool, allowed: &[T]) -> Vec<T> {
        let pin = pool
            && !allowed.is_empty()
            && match self {
                Pinning::Auto => threads > 1 && threads == allowed.len(),
                Pinning::Always => true,
                Pinning::Never => false,
            };
        if pin {
            allowed.to_vec()
        } else {
            Vec::new()
        }
    }
}

impl Default for EmbedderOptions {
    fn default() -> Self {
        EmbedderOptions {
            threads: 0,
            max_tokens: 256,
            backend: Backend::Fast,
            pinning: Pinning::Auto,
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
    /// Word pieces including `[CLS]`/`[SEP]`, before truncation. A text of more than 64
    /// bytes per piece of the window is counted over its beginning only, once that overflows
    /// the window: the count is then a lower bound (above the window all the same).
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
    /// Where a long text's beginning may be cut (`tokenize_info`).
    cuts: WordCuts,
    name: String,
    max_tokens: usize,
    threads: usize,
    pool: Option<rayon::ThreadPool>,
    /// Whether the pool's threads are pinned to CPUs ([`Pinning`]).
    pinned: bool,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &self.name)
            .field("dim", &self.dim())
            .field("max_tokens", &self.max_tokens)
            .field("threads", &self.threads)
            .field("pinned", &self.pinned)
            .field("backend", &self.backend())
            .finish()
    }
}

pub(super) fn load_tokenizer(path: &Path, vocab: usize) -> Result<(Tokenizer, usize)> {
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
/// of `embeddings.LayerNorm.weight` and one of a sample of every tensor, see
/// `KNOWN_MODELS`), otherwise the name of the model folder (its last path
/// component, after resolving `.`/symlinks).
fn derive_name(dir: &Path, src: &TensorSource<'_>, hidden: usize) -> Result<String> {
    let fingerprint = src.fingerprint(hidden)?;
    if let Some(known) = KNOWN_MODELS.iter().find(|k| k.fingerprint == fingerprint) {
        if src.content_digest()? == known.content {
            return Ok(known.name.to_string());
        }
    }
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    Ok(canon
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unknown".to_string()))
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
        let cuts = WordCuts::of(&tokenizer);
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
        if opts.threads > MAX_THREADS {
            return Err(Error::InvalidInput(format!(
                "{} embedder threads is more than the maximum of {MAX_THREADS}",
                opts.threads
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
        let has_pool = threads > 1 || opts.backend == Backend::Candle;
        let allowed = if opts.pinning == Pinning::Never {
            Vec::new()
        } else {
            core_affinity::get_core_ids().unwrap_or_default()
        };
        let cpus = opts.pinning.plan(threads, has_pool, &allowed);
        let pinned = !cpus.is_empty();
        let pool = if has_pool {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("pointsman-embed-{i}"))
                    .start_handler(move |i| {
                        // A hint: where the kernel refuses, the thread stays where it is.
                        if let Some(&cpu) = cpus.get(i % cpus.len().max(1)) {
                            core_affinity::set_for_current(cpu);
                        }
                    })
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
        let name = derive_name(dir, &src, cfg.hidden)?;
        drop(src);
        Ok(Embedder {
            engine,
            cfg,
            tokenizer,
            added_tokens,
            cuts,
            name,
            max_tokens: opts.max_tokens,
            threads,
            pool,
            pinned,
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

    /// The truncation window in word pieces, `[CLS]` and `[SEP]` included.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The number of threads an `embed` call may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Whether the worker threads were pinned to CPUs ([`EmbedderOptions::pinning`]): asked of
    /// the kernel as each thread starts; a thread whose request it refuses (a sandbox that
    /// forbids `sched_setaffinity`) runs unpinned, as a hint would.
    pub fn pinned(&self) -> bool {
        self.pinned
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
        // A text far longer than the window: its beginning first, cut where the tokenizer
        // always ends a word (`WordCuts`), so the beginning's pieces are the text's first
        // pieces. When they overflow the window, the rest of the text cannot change what
        // is embedded. Tokenizing 20 MB whole took 30 s and 2 GB for 254 pieces; millions of
        // Chinese characters, which have no spaces, took seconds and gigabytes too.
        let budget = self.max_tokens.saturating_mul(PREFIX_BYTES_PER_PIECE);
        let prefix = (text.len() > budget)
            .then(|| {
                let mut end = budget;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text[..end]
                    .char_indices()
                    .rev()
                    .find(|&(_, c)| self.cuts.ends_word(c))
                    .map(|(at, c)| &text[..at + c.len_utf8()])
            })
            .flatten();
        let mut enc = match prefix {
            Some(p) => {
                let enc = self.tokenizer.encode_fast(p, false).map_err(backend)?;
                if enc.len() + self.added_tokens > self.max_tokens {
                    enc
                } else {
                    self.tokenizer.encode_fast(text, false).map_err(backend)?
                }
            }
            None => self.tokenizer.encode_fast(text, false).map_err(backend)?,
        };
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
    /// [`Error::InvalidInput`] when the text is empty, whitespace only or holds no word the model
    /// reads; [`Error::Backend`] when the tokenizer fails.
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
        check_read(&info, self.added_tokens)?;
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
        check_read(&info, self.added_tokens)?;
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

/// Bytes of text per word piece of the window read before the whole text is: far more than a
/// piece takes in any language (a few bytes), so the beginning almost always fills the window.
const PREFIX_BYTES_PER_PIECE: usize = 64;

/// The characters after which a tokenizer always ends a word, whatever follows, so that a text
/// cut after one tokenizes to a prefix of the whole text's pieces: a space, tab or line break
/// (not other ASCII whitespace: BERT's normalizer deletes a form feed, joining its neighbours);
/// with `BertPreTokenizer` (all-MiniLM-L6-v2's), ASCII punctuation, which it isolates as a word
/// of its own whatever follows; and with `BertNormalizer`'s `handle_chinese_chars` too, the CJK
/// ideographs it pads with spaces (the ranges of tokenizers' `is_chinese_char`). Another
/// tokenizer gets the whitespace alone.
#[derive(Debug, Clone, Copy)]
struct WordCuts {
    punctuation: bool,
    cjk: bool,
}

impl WordCuts {
    fn of(tokenizer: &Tokenizer) -> WordCuts {
        use tokenizers::normalizers::NormalizerWrapper;
        use tokenizers::pre_tokenizers::PreTokenizerWrapper;
        let bert_pre = matches!(
            tokenizer.get_pre_tokenizer(),
            Some(PreTokenizerWrapper::BertPreTokenizer(_))
        );
        let cjk = bert_pre
            && matches!(
                tokenizer.get_normalizer(),
                Some(NormalizerWrapper::BertNormalizer(n)) if n.handle_chinese_chars
            );
        WordCuts {
            punctuation: bert_pre,
            cjk,
        }
    }

    fn ends_word(self, c: char) -> bool {
        matches!(c, ' ' | '\t' | '\n' | '\r')
            || (self.punctuation && c.is_ascii_punctuation())
            || (self.cjk
                && matches!(u32::from(c),
                    0x4E00..=0x9FFF
                    | 0x3400..=0x4DBF
                    | 0x20000..=0x2A6DF
                    | 0x2A700..=0x2B73F
                    | 0x2B740..=0x2B81F
                    | 0x2B920..=0x2CEAF
                    | 0xF900..=0xFAFF
                    | 0x2F800..=0x2FA1F))
    }
}

/// Refuses texts the model read no word piece of (only the special tokens the tokenizer adds,
/// `[CLS]` and `[SEP]`: zero-width or control characters, lone combining marks), naming the
/// first: each embeds as the empty text.
fn check_read(info: &[TokenInfo], added_tokens: usize) -> Result<()> {
    if let Some(i) = info.iter().position(|t| t.tokens <= added_tokens) {
        let which = if info.len() == 1 {
            "the text".to_string()
        } else {
            format!("text {i}")
        };
        return Err(Error::InvalidInput(format!(
            "{which} holds no word the model reads (only invisible or control characters): \
             there is nothing to route"
        )));
    }
    Ok(())
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
