//! [`Dataset`]: a dataset folder loaded — the pool, the train and test splits, the embeddings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::draft::{DatasetDraft, DraftEmbeddings, DraftRow};
use super::schema::{read_models, read_records, Record};
use super::split::normalize_rows;
use super::{npy, Preference, Split, EMBEDDING_TAG};
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
        Dataset::load_with(dir.as_ref(), true)
    }

    /// [`Dataset::load`] without reading the embedding files, even when the folder has them:
    /// to recompute them (`pointsman embed --force`), which must work when the cached ones are
    /// damaged.
    ///
    /// # Errors
    ///
    /// As [`Dataset::load`], but for the embedding files.
    pub fn load_without_embeddings(dir: impl AsRef<Path>) -> Result<Dataset> {
        Dataset::load_with(dir.as_ref(), false)
    }

    fn load_with(dir: &Path, with_embeddings: bool) -> Result<Dataset> {
        // The path names what it is: a dataset folder.
        let meta = std::fs::metadata(dir).map_err(|e| {
            Error::io(
                dir,
                std::io::Error::new(e.kind(), format!("no dataset folder here ({e})")),
            )
        })?;
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
        let models = read_models(&dir.join("models.json"))?;
        let (pool, roles) = (models.pool, models.roles);
        let (gz, plain) = (
            dir.join(format!("{name}.jsonl.gz")),
            dir.join(format!("{name}.jsonl")),
        );
        // Which one is the dataset is not for the reader to guess (the .gz was read silently).
        if gz.exists() && plain.exists() {
            return Err(Error::InvalidInput(format!(
                "{} holds both {name}.jsonl.gz and {name}.jsonl: keep the one that is the dataset",
                dir.display()
            )));
        }
        let records = read_records(&records_path(dir, &name), &pool, models.partial)?;
        let rows = records.len();

        let mut embeddings = None;
        let mut embedding_model = None;
        let emb_path = embeddings_path(dir, &name);
        if with_embeddings && emb_path.exists() {
            let arr = npy::read(&emb_path)?;
            if arr.rows != rows {
                return Err(Error::format(
                    emb_path.display(),
                    format!("{} rows, the dataset has {rows} queries", arr.rows),
                ));
            }
            embedding_model = check_embedding_meta(dir, &name, arr.rows, arr.cols)?;
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

        Ok(Dataset::assemble(
            name,
            dir.to_path_buf(),
            pool,
            roles,
            records,
            embeddings.map(|a| (a.data, a.cols)),
            embedding_model,
        ))
    }

    /// A dataset in memory (no folder) from a draft: what an importer made, or arrays. Its
    /// splits are the draft's; its embeddings the draft's when it has them (re-normalised).
    ///
    /// # Errors
    ///
    /// The errors of [`DatasetDraft::validate`].
    pub fn from_draft(name: impl Into<String>, draft: &DatasetDraft) -> Result<Dataset> {
        draft.validate()?;
        let pool = draft.pool.clone();
        let records: Vec<Record> = draft
            .rows
            .iter()
            .map(|r| {
                let prompt_tokens = super::prompt_tokens_of(&r.prompt);
                let (mut costs, mut cost_observed, mut output_tokens) =
                    (Vec::new(), Vec::new(), Vec::new());
                for (j, card) in pool.cards().iter().enumerate() {
                    let out = r.output_chars[j].map(|c| c as f64 / 4.0);
                    costs.push(
                        r.cost_usd[j].unwrap_or_else(|| card.estimate_cost(prompt_tokens, out)),
                    );
                    cost_observed.push(r.cost_usd[j].is_some());
                    output_tokens.push(out.unwrap_or(f64::NAN));
                }
                Record {
                    id: r.id.clone(),
                    split: r.split.clone().unwrap_or_default(),
                    task: r.task.clone(),
                    prompt: r.prompt.clone(),
                    prompt_tokens,
                    scores: r.scores.iter().map(|s| s.unwrap_or(f64::NAN)).collect(),
                    costs,
                    cost_observed,
                    output_tokens,
                    observed: r.scores.iter().map(Option::is_some).collect(),
                    preferences: r.preferences.clone(),
                    propensity: r.propensity.iter().map(|p| p.unwrap_or(f64::NAN)).collect(),
                }
            })
            .collect();
        let (embeddings, model) = match &draft.embeddings {
            Some(e) => (Some((e.data.clone(), e.dim)), Some(e.model.clone())),
            None => (None, None),
        };
        Ok(Dataset::assemble(
            name.into(),
            PathBuf::new(),
            pool,
            draft.roles.clone(),
            records,
            embeddings,
            model,
        ))
    }

    /// The dataset as a draft, to write it elsewhere ([`DatasetDraft::write`]): its rows in file
    /// order with their labels, costs observed, answer lengths and embeddings.
    pub fn to_draft(&self, source: impl Into<String>) -> DatasetDraft {
        let m = self.pool.len();
        let mut rows: Vec<Option<DraftRow>> = vec![None; self.rows];
        let dim = self.train.dim.max(self.test.dim);
        let mut data = vec![0.0f32; self.rows * dim];
        for s in [&self.train, &self.test] {
            for i in 0..s.len() {
                let mut r = DraftRow::new(s.ids[i].clone(), s.prompts[i].clone(), m);
                r.split = Some(s.name.clone());
                r.task = s.tasks[i].clone();
                for j in 0..m {
                    let c = i * m + j;
                    if s.observed(i, j) {
                        r.scores[j] = Some(s.scores[c]);
                    }
                    if s.cost_observed[c] {
                        r.cost_usd[j] = Some(s.costs[c]);
                    }
                    if !s.output_tokens[c].is_nan() {
                        r.output_chars[j] = Some((s.output_tokens[c] * 4.0).round() as u64);
                    }
                    if let Some(p) = &s.propensities {
                        r.propensity[j] = (!p[c].is_nan()).then_some(p[c]);
                    }
                }
                let file_row = s.rows[i];
                if dim > 0 {
                    data[file_row * dim..(file_row + 1) * dim]
                        .copy_from_slice(&s.embeddings[i * dim..(i + 1) * dim]);
                }
                rows[file_row] = Some(r);
            }
            for p in &s.preferences {
                let file_row = s.rows[p.row as usize];
                if let Some(r) = rows[file_row].as_mut() {
                    r.preferences.push((p.model_a, p.model_b, p.winner));
                }
            }
        }
        let mut draft = DatasetDraft::new(self.pool.clone(), source);
        draft.roles = self.roles.clone();
        draft.rows = rows.into_iter().flatten().collect();
        if dim > 0 {
            draft.embeddings = Some(DraftEmbeddings {
                data,
                dim,
                model: self
                    .train
                    .embedding_model
                    .clone()
                    .unwrap_or_else(|| DEFAULT_EMBEDDING_MODEL.to_string()),
                meta: serde_json::Map::new(),
            });
        }
        draft
    }

    /// Writes the dataset as a folder in the shared schema ([`DatasetDraft::write`]).
    ///
    /// # Errors
    ///
    /// As [`DatasetDraft::write`].
    pub fn save(&self, dir: impl AsRef<Path>, replace: bool) -> Result<PathBuf> {
        self.to_draft(format!("the dataset {}", self.name))
            .write(dir.as_ref(), replace)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        name: String,
        dir: PathBuf,
        pool: ModelPool,
        roles: Vec<Option<String>>,
        records: Vec<Record>,
        embeddings: Option<(Vec<f32>, usize)>,
        embedding_model: Option<String>,
    ) -> Dataset {
        let rows = records.len();
        let mut splits: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            splits.entry(r.split.as_str()).or_default().push(i);
        }
        let build = |split: &str| -> Split {
            let idx = splits.get(split).cloned().unwrap_or_default();
            let m = pool.len();
            let (embs, dim) = match &embeddings {
                Some((data, cols)) => (
                    idx.iter()
                        .flat_map(|&i| data[i * cols..(i + 1) * cols].iter().copied())
                        .collect(),
                    *cols,
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
                observed: None,
                preferences: Vec::new(),
                propensities: None,
            };
            if idx.iter().any(|&i| records[i].observed.iter().any(|&o| !o)) {
                s.observed = Some(
                    idx.iter()
                        .flat_map(|&i| records[i].observed.iter().copied())
                        .collect(),
                );
            }
            s.preferences = idx
                .iter()
                .enumerate()
                .flat_map(|(row, &i)| {
                    records[i]
                        .preferences
                        .iter()
                        .map(move |&(model_a, model_b, winner)| Preference {
                            row: row as u32,
                            model_a,
                            model_b,
                            winner,
                        })
                })
                .collect();
            if idx
                .iter()
                .any(|&i| records[i].propensity.iter().any(|p| !p.is_nan()))
            {
                s.propensities = Some(
                    idx.iter()
                        .flat_map(|&i| records[i].propensity.iter().copied())
                        .collect(),
                );
            }
            debug_assert_eq!(s.scores.len(), s.ids.len() * m);
            normalize_rows(&mut s.embeddings, dim.max(1));
            s
        };
        let train = build("train");
        let test = build("test");
        Dataset {
            name,
            dir,
            pool,
            roles,
            rows,
            train,
            test,
        }
    }

    /// The dataset's name (its folder's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dataset's folder (empty for a dataset made in memory).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files the dataset was loaded from (records, `models.json`, embeddings and their
    /// metadata, those that exist); none for a dataset made in memory. A command writing beside
    /// its data checks its output against these
    /// ([`refuse_output_among_inputs`](crate::files::refuse_output_among_inputs)).
    pub fn files(&self) -> Vec<PathBuf> {
        if self.dir.as_os_str().is_empty() {
            return Vec::new();
        }
        [
            self.dir.join("models.json"),
            records_path(&self.dir, &self.name),
            embeddings_path(&self.dir, &self.name),
            embeddings_meta_path(&self.dir, &self.name),
        ]
        .into_iter()
        .filter(|p| p.exists())
        .collect()
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
fn check_embedding_meta(
    dir: &Path,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Option<String>> {
    let path = embeddings_meta_path(dir, name);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let meta: Value = crate::data::json::parse(&text)
        .map_err(|e| Error::format(path.display(), format!("malformed json: {e}")))?;
    if let Some(n) = meta.get("rows").and_then(Value::as_u64) {
        if n as usize != rows {
            return Err(Error::format(
                path.display(),
                format!("rows {n} does not match the embedding file's {rows} rows"),
            ));
        }
    }
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
