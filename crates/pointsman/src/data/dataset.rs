//! [`Dataset`]: a dataset folder loaded — the pool, the train and test splits, the embeddings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::schema::{read_models, read_records};
use super::split::normalize_rows;
use super::{npy, Split, EMBEDDING_TAG};
use crate::error::{Error, Result};
use crate::features::DEFAULT_EMBEDDING_MODEL;
use crate::pool::ModelPool;

/// A routing dataset folder: the model pool with its prices, and the train and test splits.
#[derive(Debug, Clone)]
pub struct Dataset {
    name: String,
    dir: PathBuf,
    pool: ModelPool,
    roles: Vec<Option<String>>,
    rows: usize,
    train: Split,
    test: Split,
}

impl Dataset {
    /// Loads the dataset folder `dir` (its name is the folder's name). Embeddings are loaded when
    /// the folder has them, widened to `f32` and re-normalised.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] for a missing folder or file; [`Error::Format`] naming the file (and line)
    /// for malformed JSON, a missing or out-of-range score, a NaN, an unknown split or model, a
    /// repeated id, or an embedding file whose row count or dimension does not match.
    pub fn load(dir: impl AsRef<Path>) -> Result<Dataset> {
        let dir = dir.as_ref();
        let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
        if !meta.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .ok_or_else(|| Error::format(dir.display(), "cannot tell the dataset's name"))?;
        let (pool, roles) = read_models(&dir.join("models.json"))?;
        let records = read_records(&records_path(dir, &name), &pool)?;
        let rows = records.len();

        let mut embeddings = None;
        let mut embedding_model = None;
        let emb_path = embeddings_path(dir, &name);
        if emb_path.exists() {
            let arr = npy::read(&emb_path)?;
            if arr.rows != rows {
                return Err(Error::format(
                    emb_path.display(),
                    format!("{} rows, the dataset has {rows} queries", arr.rows),
                ));
            }
            embedding_model = check_embedding_meta(dir, &name, arr.cols)?;
            if arr.cols == 0 {
                return Err(Error::format(
                    emb_path.display(),
                    "embedding dimension is 0",
                ));
            }
            if let Some(r) = arr
                .data
                .chunks_exact(arr.cols)
                .position(|row| row.iter().any(|v| !v.is_finite()) || row.iter().all(|&v| v == 0.0))
            {
                return Err(Error::format(
                    emb_path.display(),
                    format!("row {r} is not a usable embedding (zero or not finite)"),
                ));
            }
            embeddings = Some(arr);
        }

        let mut splits: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            splits.entry(r.split.as_str()).or_default().push(i);
        }
        let build = |split: &str| -> Split {
            let idx = splits.get(split).cloned().unwrap_or_default();
            let m = pool.len();
            let (embs, dim) = match &embeddings {
                Some(a) => (
                    idx.iter()
                        .flat_map(|&i| a.data[i * a.cols..(i + 1) * a.cols].iter().copied())
                        .collect(),
                    a.cols,
                ),
                None => (Vec::new(), 0),
            };
            let mut s = Split {
                name: split.to_string(),
                pool: pool.clone(),
                rows: idx.clone(),
                ids: idx.iter().map(|&i| records[i].id.clone()).collect(),
                tasks: idx.iter().map(|&i| records[i].task.clone()).collect(),
                prompts: idx.iter().map(|&i| records[i].prompt.clone()).collect(),
                prompt_tokens: idx.iter().map(|&i| records[i].prompt_tokens).collect(),
                embeddings: embs,
                dim,
                embedding_model: embeddings.as_ref().map(|_| {
                    embedding_model
                        .clone()
                        .unwrap_or_else(|| DEFAULT_EMBEDDING_MODEL.to_string())
                }),
                scores: idx
                    .iter()
                    .flat_map(|&i| records[i].scores.iter().copied())
                    .collect(),
                costs: idx
                    .iter()
                    .flat_map(|&i| records[i].costs.iter().copied())
                    .collect(),
                cost_observed: idx
                    .iter()
                    .flat_map(|&i| records[i].cost_observed.iter().copied())
                    .collect(),
                output_tokens: idx
                    .iter()
                    .flat_map(|&i| records[i].output_tokens.iter().copied())
                    .collect(),
            };
            debug_assert_eq!(s.scores.len(), s.ids.len() * m);
            normalize_rows(&mut s.embeddings, dim.max(1));
            s
        };
        let train = build("train");
        let test = build("test");
        Ok(Dataset {
            name,
            dir: dir.to_path_buf(),
            pool,
            roles,
            rows,
            train,
            test,
        })
    }

    /// The dataset's name (its folder's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dataset's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The models, in `models.json` order of ids (sorted).
    pub fn pool(&self) -> &ModelPool {
        &self.pool
    }

    /// Each model's `role` in `models.json` (`"weak"`, `"strong"`), where given.
    pub fn roles(&self) -> &[Option<String>] {
        &self.roles
    }

    /// Number of queries in the file.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the dataset has no queries.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The training split.
    pub fn train(&self) -> &Split {
        &self.train
    }

    /// The test split.
    pub fn test(&self) -> &Split {
        &self.test
    }

    /// The split called `name`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a name other than `"train"` or `"test"`.
    pub fn split(&self, name: &str) -> Result<&Split> {
        match name {
            "train" => Ok(&self.train),
            "test" => Ok(&self.test),
            other => Err(Error::InvalidInput(format!(
                "unknown split {other:?} (expected \"train\" or \"test\")"
            ))),
        }
    }

    /// Whether the dataset has embeddings.
    pub fn has_embeddings(&self) -> bool {
        self.train.dim > 0 || self.test.dim > 0
    }

    /// For two-model datasets, the (weak, strong) model indices: from the `role` field
    /// (`"weak"` / `"strong"`) of `models.json` where one is given, else by mean train score.
    pub fn weak_strong(&self) -> Option<(usize, usize)> {
        if self.pool.len() != 2 {
            return None;
        }
        let role = |r: &str| self.roles.iter().position(|x| x.as_deref() == Some(r));
        if let Some(s) = role("strong") {
            return Some((1 - s, s));
        }
        if let Some(w) = role("weak") {
            return Some((w, 1 - w));
        }
        let means = self.train.mean_scores();
        Some(if means[1] > means[0] { (0, 1) } else { (1, 0) })
    }

    /// Prompts in file order.
    pub fn prompts_in_file_order(&self) -> Vec<&str> {
        let mut out = vec![""; self.rows];
        for s in [&self.train, &self.test] {
            for (&r, p) in s.rows.iter().zip(&s.prompts) {
                out[r] = p;
            }
        }
        out
    }

    /// Sets the embeddings of every query from a `[len, dim]` matrix in file order.
    ///
    /// # Errors
    ///
    /// As [`Split::set_embeddings`].
    pub fn set_embeddings(
        &mut self,
        file_order: &[f32],
        dim: usize,
        embedding_model: Option<String>,
    ) -> Result<()> {
        if dim == 0 || file_order.len() != self.rows * dim {
            return Err(Error::Shape(format!(
                "{} embedding values for {} queries of dimension {dim}",
                file_order.len(),
                self.rows
            )));
        }
        for s in [&mut self.train, &mut self.test] {
            let e: Vec<f32> = s
                .rows
                .iter()
                .flat_map(|&r| file_order[r * dim..(r + 1) * dim].iter().copied())
                .collect();
            s.set_embeddings(e, dim, embedding_model.clone())?;
        }
        Ok(())
    }
}

/// Path of the MiniLM embedding file of dataset `name` in `dir`.
pub fn embeddings_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.{EMBEDDING_TAG}.f16.npy"))
}

/// Path of the embedding metadata file of dataset `name` in `dir`.
pub fn embeddings_meta_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.{EMBEDDING_TAG}.meta.json"))
}

fn records_path(dir: &Path, name: &str) -> PathBuf {
    let gz = dir.join(format!("{name}.jsonl.gz"));
    let plain = dir.join(format!("{name}.jsonl"));
    if !gz.exists() && plain.exists() {
        plain
    } else {
        gz
    }
}

/// Checks the embeddings' `.meta.json` (when present) against the file's dimension; returns the
/// embedding model it names (`"model"`, written by `pointsman embed`), if any.
fn check_embedding_meta(dir: &Path, name: &str, cols: usize) -> Result<Option<String>> {
    let path = embeddings_meta_path(dir, name);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let meta: Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(path.display(), format!("malformed json: {e}")))?;
    if let Some(dim) = meta.get("dim").and_then(Value::as_u64) {
        if dim as usize != cols {
            return Err(Error::format(
                path.display(),
                format!("dim {dim} does not match the embedding file's {cols} columns"),
            ));
        }
    }
    match meta.get("model") {
        None => Ok(None),
        Some(Value::String(m)) if !m.is_empty() => Ok(Some(m.clone())),
        Some(other) => Err(Error::format(
            path.display(),
            format!("\"model\" {other} is not a model name"),
        )),
    }
}
