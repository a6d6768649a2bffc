//! Embeddings for a dataset that has none: `pointsman embed`, and `pointsman eval` on such a
//! dataset.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Embedder;
use crate::data::{
    embeddings_meta_path, embeddings_path, npy, Dataset, DatasetDraft, DraftEmbeddings,
};
use crate::{Error, Result};

/// The embeddings of a dataset's prompts in file order, with the facts its `.meta.json` records.
///
/// The values are rounded to float16, as the file stores them, so a dataset embedded in this run
/// and one loaded from the written file route identically.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetEmbeddings {
    /// `[rows, dim]` row-major, unit length up to float16 rounding.
    pub embeddings: Vec<f32>,
    /// Number of prompts.
    pub rows: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// The embedding model's name.
    pub model: String,
    /// The truncation window in word pieces.
    pub max_tokens: usize,
    /// How many prompts were longer than the window and truncated.
    pub truncated_rows: usize,
    /// Mean word pieces per prompt before truncation (`[CLS]` and `[SEP]` included).
    pub mean_tokens: f64,
    /// Wall-clock seconds spent embedding.
    pub seconds: f64,
}

/// Prompts per progress step of [`embed_dataset`].
pub const PROGRESS_BATCH: usize = 256;

/// Embeds every prompt of `dataset` (file order). `progress(done, total)` is called after each
/// batch of [`PROGRESS_BATCH`] prompts.
///
/// # Errors
///
/// [`Error::Backend`] when the tokenizer fails.
pub fn embed_dataset(
    dataset: &Dataset,
    embedder: &Embedder,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<DatasetEmbeddings> {
    embed_prompts(&dataset.prompts_in_file_order(), embedder, progress)
}

/// Embeds `prompts` in order, as [`embed_dataset`] does a dataset's.
///
/// # Errors
///
/// [`Error::Backend`] when the tokenizer fails.
pub fn embed_prompts(
    prompts: &[&str],
    embedder: &Embedder,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<DatasetEmbeddings> {
    let started = std::time::Instant::now();
    let dim = embedder.dim();
    let mut embeddings = vec![0f32; prompts.len() * dim];
    let (mut truncated_rows, mut tokens) = (0usize, 0usize);
    for (i, batch) in prompts.chunks(PROGRESS_BATCH).enumerate() {
        let start = i * PROGRESS_BATCH * dim;
        let out = &mut embeddings[start..start + batch.len() * dim];
        for info in embedder.embed_into(batch, out)? {
            truncated_rows += usize::from(info.truncated);
            tokens += info.tokens;
        }
        progress(
            (i * PROGRESS_BATCH + batch.len()).min(prompts.len()),
            prompts.len(),
        );
    }
    for v in &mut embeddings {
        *v = half::f16::from_f32(*v).to_f32();
    }
    Ok(DatasetEmbeddings {
        embeddings,
        rows: prompts.len(),
        dim,
        model: embedder.model_name().to_string(),
        max_tokens: embedder.max_tokens(),
        truncated_rows,
        mean_tokens: tokens as f64 / prompts.len().max(1) as f64,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Computes the embeddings of an imported draft's prompts in-process (`pointsman import`), unless
/// the source carried them (the gateway log): written with the draft as
/// `<name>.minilm_l6_v2.f16.npy` and its `.meta.json`.
///
/// # Errors
///
/// [`Error::Backend`] when the tokenizer fails.
pub fn embed_draft(
    draft: &mut DatasetDraft,
    embedder: &Embedder,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    if draft.embeddings.is_some() {
        return Ok(());
    }
    let e = embed_prompts(&draft.prompts(), embedder, progress)?;
    let mut meta = serde_json::Map::new();
    meta.insert("max_tokens".into(), e.max_tokens.into());
    meta.insert("truncated_rows".into(), e.truncated_rows.into());
    meta.insert("mean_tokens".into(), e.mean_tokens.into());
    meta.insert("seconds".into(), e.seconds.into());
    draft.embeddings = Some(DraftEmbeddings {
        data: e.embeddings,
        dim: e.dim,
        model: e.model,
        meta,
    });
    Ok(())
}

impl DatasetEmbeddings {
    /// Writes `<name>.minilm_l6_v2.f16.npy` and `<name>.minilm_l6_v2.meta.json` into the dataset
    /// folder `dir` (the layout of the shared datasets, `SCHEMA.md`), together
    /// ([`commit_all`](crate::files::commit_all)): a reader never sees half a file, and a failure
    /// (a write-protected `meta.json`, a full disk) leaves the pair as it was rather than
    /// mismatched. Returns the two paths.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file that could not be written (a read-only folder, for one).
    pub fn write(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
        let npy_path = embeddings_path(dir, name);
        let meta_path = embeddings_meta_path(dir, name);
        let bytes = npy::to_bytes(&self.embeddings, self.rows, self.dim, npy::Dtype::F16);
        let meta = serde_json::json!({
            "rows": self.rows,
            "dim": self.dim,
            "model": self.model,
            "max_tokens": self.max_tokens,
            "truncated_rows": self.truncated_rows,
            "mean_tokens": self.mean_tokens,
            "seconds": self.seconds,
        });
        let text =
            serde_json::to_string_pretty(&meta).map_err(|e| Error::Backend(e.to_string()))?;
        let mut files = Vec::new();
        for (path, content) in [
            (&npy_path, bytes),
            (&meta_path, format!("{text}\n").into_bytes()),
        ] {
            let mut file = crate::files::AtomicFile::create(path)?;
            file.write_all(&content)
                .map_err(|e| Error::io(path.as_path(), e))?;
            files.push(file);
        }
        crate::files::commit_all(files)?;
        Ok((npy_path, meta_path))
    }

    /// Gives `dataset` these embeddings (for a run that could not write them).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when they were computed for another dataset.
    pub fn apply(&self, dataset: &mut Dataset) -> Result<()> {
        dataset.set_embeddings(&self.embeddings, self.dim, Some(self.model.clone()))
    }
}
