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

pub mod npy;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::features::{inv_norm, FeatureBatch, DEFAULT_EMBEDDING_MODEL};
use crate::pool::{ModelCard, ModelPool};

/// A prompt's length in LLM tokens as the datasets estimate it (`SCHEMA.md`): Unicode characters
/// divided by 4, without rounding.
pub fn prompt_tokens_of(prompt: &str) -> f64 {
    prompt.chars().count() as f64 / 4.0
}

/// File-name tag of the MiniLM embeddings in a dataset folder.
pub const EMBEDDING_TAG: &str = "minilm_l6_v2";

/// One split of a dataset (or any labelled set of queries): embeddings, per-model scores and
/// costs, and the queries' metadata. Matrices are row-major `[rows, models]` / `[rows, dim]`.
#[derive(Debug, Clone)]
pub struct Split {
    name: String,
    pool: ModelPool,
    rows: Vec<usize>,
    ids: Vec<String>,
    tasks: Vec<Option<String>>,
    prompts: Vec<String>,
    prompt_tokens: Vec<f64>,
    embeddings: Vec<f32>,
    dim: usize,
    embedding_model: Option<String>,
    scores: Vec<f64>,
    costs: Vec<f64>,
    cost_observed: Vec<bool>,
    output_tokens: Vec<f64>,
}

impl Split {
    /// A split from arrays, for data that is not in a dataset folder.
    ///
    /// `embeddings` is `[n, dim]`, `scores` and `costs` are `[n, pool.len()]`, row-major. Rows of
    /// `embeddings` are L2-normalised here. Query ids are `"0"`, `"1"`, …; prompts are unknown.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when the arrays disagree in size; [`Error::InvalidFeatures`] for an
    /// embedding row that is not finite or all zeros; [`Error::InvalidInput`] for a score outside
    /// [0, 1] or a negative or non-finite cost.
    pub fn from_arrays(
        pool: ModelPool,
        embeddings: Vec<f32>,
        dim: usize,
        scores: Vec<f64>,
        costs: Vec<f64>,
    ) -> Result<Split> {
        FeatureBatch::new(&embeddings, dim)?;
        let n = embeddings.len() / dim;
        let m = pool.len();
        for (what, len) in [("scores", scores.len()), ("costs", costs.len())] {
            if len != n * m {
                return Err(Error::Shape(format!(
                    "{what} hold {len} values, expected {n} rows x {m} models = {}",
                    n * m
                )));
            }
        }
        for (i, &s) in scores.iter().enumerate() {
            if !(0.0..=1.0).contains(&s) {
                return Err(Error::InvalidInput(format!(
                    "score {s} in row {} for model {:?} outside [0, 1]",
                    i / m,
                    pool.id(i % m)
                )));
            }
        }
        for (i, &c) in costs.iter().enumerate() {
            if !c.is_finite() || c < 0.0 {
                return Err(Error::InvalidInput(format!(
                    "cost {c} in row {} for model {:?} is not a non-negative number",
                    i / m,
                    pool.id(i % m)
                )));
            }
        }
        let mut split = Split {
            name: "arrays".into(),
            pool,
            rows: (0..n).collect(),
            ids: (0..n).map(|i| i.to_string()).collect(),
            tasks: vec![None; n],
            prompts: vec![String::new(); n],
            prompt_tokens: vec![0.0; n],
            embeddings,
            dim,
            embedding_model: None,
            cost_observed: vec![true; scores.len()],
            output_tokens: vec![f64::NAN; scores.len()],
            scores,
            costs,
        };
        normalize_rows(&mut split.embeddings, dim);
        Ok(split)
    }

    /// Sets the task tags, one per query.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `tasks.len()` differs from the number of queries.
    pub fn with_tasks(mut self, tasks: Vec<Option<String>>) -> Result<Split> {
        if tasks.len() != self.len() {
            return Err(Error::Shape(format!(
                "{} task tags for {} queries",
                tasks.len(),
                self.len()
            )));
        }
        self.tasks = tasks;
        Ok(self)
    }

    /// The split's name (`"train"`, `"test"`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of queries.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the split has no queries.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The models the scores and costs are for.
    pub fn pool(&self) -> &ModelPool {
        &self.pool
    }

    /// Row of each query in the dataset file.
    pub fn file_rows(&self) -> &[usize] {
        &self.rows
    }

    /// Query ids.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Task tags.
    pub fn tasks(&self) -> &[Option<String>] {
        &self.tasks
    }

    /// Prompts (empty strings when the split was built from arrays).
    pub fn prompts(&self) -> &[String] {
        &self.prompts
    }

    /// Prompt token counts as the schema estimates them (characters / 4).
    pub fn prompt_tokens(&self) -> &[f64] {
        &self.prompt_tokens
    }

    /// Embeddings `[len, dim]`, row-major and L2-normalised; empty when the dataset has none.
    pub fn embeddings(&self) -> &[f32] {
        &self.embeddings
    }

    /// Embedding dimension (0 when the dataset has no embeddings).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The embedding model of the embeddings, when known.
    pub fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }

    /// Scores `[len, models]`, in [0, 1].
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// Costs in USD `[len, models]`: observed where the data has them, else the price estimate.
    pub fn costs(&self) -> &[f64] {
        &self.costs
    }

    /// Whether each cost `[len, models]` was observed (`true`) or estimated from the prices.
    pub fn cost_observed(&self) -> &[bool] {
        &self.cost_observed
    }

    /// Answer lengths in tokens `[len, models]` where the data has them (characters / 4), NaN
    /// elsewhere.
    pub fn output_tokens(&self) -> &[f64] {
        &self.output_tokens
    }

    /// Score of query `r` on model `m`.
    pub fn score(&self, r: usize, m: usize) -> f64 {
        self.scores[r * self.pool.len() + m]
    }

    /// Cost of query `r` on model `m`.
    pub fn cost(&self, r: usize, m: usize) -> f64 {
        self.costs[r * self.pool.len() + m]
    }

    /// Each model's mean score over the split.
    pub fn mean_scores(&self) -> Vec<f64> {
        column_means(&self.scores, self.pool.len())
    }

    /// Each model's mean cost over the split.
    pub fn mean_costs(&self) -> Vec<f64> {
        column_means(&self.costs, self.pool.len())
    }

    /// For two-model splits, the (weak, strong) model indices by mean score (the better mean is
    /// the strong model; a tie makes model 1 the strong one); `None` for other pools. A
    /// [`Dataset`] can also name them in `models.json` ([`Dataset::weak_strong`]).
    pub fn weak_strong(&self) -> Option<(usize, usize)> {
        if self.pool.len() != 2 {
            return None;
        }
        let means = self.mean_scores();
        Some(if means[1] >= means[0] { (0, 1) } else { (1, 0) })
    }

    /// The split's queries as a feature batch (with prompt token counts, task tags and the
    /// embedding model).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the split has no embeddings.
    pub fn features(&self) -> Result<FeatureBatch<'_>> {
        if self.dim == 0 {
            return Err(Error::InvalidInput(format!(
                "the {} split has no embeddings (run `pointsman embed` on the dataset)",
                self.name
            )));
        }
        let mut b = FeatureBatch::new(&self.embeddings, self.dim)?
            .with_prompt_tokens(&self.prompt_tokens)?
            .with_tasks(&self.tasks)?;
        if let Some(m) = &self.embedding_model {
            b = b.with_embedding_model(m);
        }
        Ok(b)
    }

    /// The queries at `indices` (in that order) as a split of their own, named `name`.
    ///
    /// # Panics
    ///
    /// When an index is out of range.
    pub fn subset(&self, indices: &[usize], name: &str) -> Split {
        let m = self.pool.len();
        let pick = |v: &[f64], width: usize| -> Vec<f64> {
            indices
                .iter()
                .flat_map(|&i| v[i * width..(i + 1) * width].iter().copied())
                .collect()
        };
        Split {
            name: name.to_string(),
            pool: self.pool.clone(),
            rows: indices.iter().map(|&i| self.rows[i]).collect(),
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
            tasks: indices.iter().map(|&i| self.tasks[i].clone()).collect(),
            prompts: indices.iter().map(|&i| self.prompts[i].clone()).collect(),
            prompt_tokens: indices.iter().map(|&i| self.prompt_tokens[i]).collect(),
            embeddings: if self.dim == 0 {
                Vec::new()
            } else {
                indices
                    .iter()
                    .flat_map(|&i| {
                        self.embeddings[i * self.dim..(i + 1) * self.dim]
                            .iter()
                            .copied()
                    })
                    .collect()
            },
            dim: self.dim,
            embedding_model: self.embedding_model.clone(),
            scores: pick(&self.scores, m),
            costs: pick(&self.costs, m),
            cost_observed: indices
                .iter()
                .flat_map(|&i| self.cost_observed[i * m..(i + 1) * m].iter().copied())
                .collect(),
            output_tokens: pick(&self.output_tokens, m),
        }
    }

    /// Replaces the embeddings (`[len, dim]`, normalised here), for example with freshly computed
    /// ones.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `embeddings.len() != len * dim`, and the errors of
    /// [`FeatureBatch::new`].
    pub fn set_embeddings(
        &mut self,
        mut embeddings: Vec<f32>,
        dim: usize,
        embedding_model: Option<String>,
    ) -> Result<()> {
        if embeddings.len() != self.len() * dim {
            return Err(Error::Shape(format!(
                "{} embedding values for {} queries of dimension {dim}",
                embeddings.len(),
                self.len()
            )));
        }
        FeatureBatch::new(&embeddings, dim)?;
        normalize_rows(&mut embeddings, dim);
        self.embeddings = embeddings;
        self.dim = dim;
        self.embedding_model = embedding_model;
        Ok(())
    }
}

fn column_means(matrix: &[f64], width: usize) -> Vec<f64> {
    let rows = matrix.len() / width.max(1);
    let mut sums = vec![0.0; width];
    for row in matrix.chunks_exact(width) {
        for (s, v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
    sums.iter().map(|s| s / rows.max(1) as f64).collect()
}

fn normalize_rows(data: &mut [f32], dim: usize) {
    for row in data.chunks_exact_mut(dim) {
        let inv = inv_norm(row);
        for v in row {
            *v *= inv;
        }
    }
}

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

fn read_models(path: &Path) -> Result<(ModelPool, Vec<Option<String>>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: String| Error::format(path.display(), m);
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(format!("malformed json: {e}")))?;
    let default_out = match v.get("default_output_tokens") {
        None => 256.0,
        Some(x) => x
            .as_f64()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| {
                bad(format!(
                    "default_output_tokens {x} is not a non-negative number"
                ))
            })?,
    };
    let models = v
        .get("models")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no \"models\" object".into()))?;
    let mut cards = Vec::new();
    let mut roles = Vec::new();
    for (id, m) in models {
        let price = |key: &str| -> Result<f64> {
            m.get(key)
                .and_then(Value::as_f64)
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    bad(format!(
                        "model {id:?}: {key} missing or not a non-negative number"
                    ))
                })
        };
        let out = match m.get("default_output_tokens") {
            Some(x) => x
                .as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| bad(format!("model {id:?}: bad default_output_tokens {x}")))?,
            None => default_out,
        };
        cards.push(
            ModelCard::new(
                id.clone(),
                price("input_usd_per_mtok")?,
                price("output_usd_per_mtok")?,
            )
            .with_default_output_tokens(out),
        );
        roles.push(m.get("role").and_then(Value::as_str).map(str::to_string));
    }
    let pool = ModelPool::new(cards).map_err(|e| bad(e.to_string()))?;
    Ok((pool, roles))
}

struct Record {
    id: String,
    split: String,
    task: Option<String>,
    prompt: String,
    prompt_tokens: f64,
    scores: Vec<f64>,
    costs: Vec<f64>,
    cost_observed: Vec<bool>,
    output_tokens: Vec<f64>,
}

fn read_records(path: &Path, pool: &ModelPool) -> Result<Vec<Record>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let display = path.display().to_string();
    let mut records = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let lineno = i + 1;
        let line =
            line.map_err(|e| Error::format_at(&display, lineno, format!("cannot read line: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec = parse_record(&line, pool).map_err(|m| Error::format_at(&display, lineno, m))?;
        if !seen.insert(rec.id.clone()) {
            return Err(Error::format_at(
                &display,
                lineno,
                format!("id {:?} appears twice", rec.id),
            ));
        }
        records.push(rec);
    }
    Ok(records)
}

fn parse_record(line: &str, pool: &ModelPool) -> std::result::Result<Record, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| json_error(line, &e))?;
    let obj = v.as_object().ok_or("line is not a JSON object")?;
    let string = |key: &str| -> std::result::Result<String, String> {
        match obj.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("{key} {other} is not a string")),
            None => Err(format!("missing field {key:?}")),
        }
    };
    let id = string("id")?;
    let split = string("split")?;
    if split != "train" && split != "test" {
        return Err(format!(
            "unknown split {split:?} (expected \"train\" or \"test\")"
        ));
    }
    let prompt = string("prompt")?;
    let task = match obj.get("task") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("task {other} is not a string")),
    };
    let scores_obj = obj
        .get("scores")
        .and_then(Value::as_object)
        .ok_or("missing or malformed \"scores\" object")?;
    for key in scores_obj.keys() {
        if pool.index_of(key).is_err() {
            return Err(format!(
                "score for unknown model {key:?} (not in models.json)"
            ));
        }
    }
    let mut scores = Vec::with_capacity(pool.len());
    for id in pool.ids() {
        let s = match scores_obj.get(id) {
            None | Some(Value::Null) => return Err(format!("no score for model {id:?}")),
            Some(x) => x
                .as_f64()
                .ok_or_else(|| format!("score {x} for model {id:?} is not a number"))?,
        };
        if !(0.0..=1.0).contains(&s) {
            return Err(format!("score {s} for model {id:?} outside [0, 1]"));
        }
        scores.push(s);
    }
    let per_model =
        |key: &str| -> std::result::Result<Option<&serde_json::Map<String, Value>>, String> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(m)) => Ok(Some(m)),
                Some(other) => Err(format!("{key} {other} is neither null nor an object")),
            }
        };
    let cost_usd = per_model("cost_usd")?;
    let output_chars = per_model("output_chars")?;
    let prompt_tokens = prompt_tokens_of(&prompt);
    let mut costs = Vec::with_capacity(pool.len());
    let mut cost_observed = Vec::with_capacity(pool.len());
    let mut output_tokens = Vec::with_capacity(pool.len());
    for card in pool.cards() {
        let observed = match cost_usd.and_then(|c| c.get(&card.id)) {
            None | Some(Value::Null) => None,
            Some(x) => Some(
                x.as_f64()
                    .filter(|c| c.is_finite() && *c >= 0.0)
                    .ok_or_else(|| {
                        format!(
                            "cost_usd {x} for model {:?} is not a non-negative number",
                            card.id
                        )
                    })?,
            ),
        };
        let out = match output_chars.and_then(|c| c.get(&card.id)) {
            None | Some(Value::Null) => None,
            Some(x) => Some(
                x.as_f64()
                    .filter(|c| c.is_finite() && *c >= 0.0)
                    .ok_or_else(|| {
                        format!(
                            "output_chars {x} for model {:?} is not a non-negative number",
                            card.id
                        )
                    })?
                    / 4.0,
            ),
        };
        costs.push(observed.unwrap_or_else(|| card.estimate_cost(prompt_tokens, out)));
        cost_observed.push(observed.is_some());
        output_tokens.push(out.unwrap_or(f64::NAN));
    }
    Ok(Record {
        id,
        split,
        task,
        prompt,
        prompt_tokens,
        scores,
        costs,
        cost_observed,
        output_tokens,
    })
}

/// A readable message for a JSON syntax error; JSON has no NaN or Infinity, so name them.
fn json_error(line: &str, e: &serde_json::Error) -> String {
    let col = e.column().saturating_sub(1);
    let rest = line.get(col..).unwrap_or("");
    for token in ["NaN", "-Infinity", "Infinity"] {
        if rest.starts_with(token) {
            return format!(
                "{token} at column {} is not a number JSON allows (scores must be in [0, 1])",
                e.column()
            );
        }
    }
    format!("malformed json: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_fixture(dir: &Path, lines: &[&str]) {
        std::fs::write(
            dir.join("models.json"),
            r#"{"models": {"a": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0},
                           "b": {"input_usd_per_mtok": 10.0, "output_usd_per_mtok": 20.0, "role": "strong"}},
               "default_output_tokens": 100}"#,
        )
        .unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        std::fs::write(dir.join(format!("{name}.jsonl")), lines.join("\n")).unwrap();
    }

    fn fixture(lines: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("fx");
        std::fs::create_dir(&dir).unwrap();
        write_fixture(&dir, lines);
        (tmp, dir)
    }

    const GOOD: [&str; 3] = [
        r#"{"id": "q1", "split": "train", "task": "t", "prompt": "abcdefgh", "scores": {"a": 0, "b": 1}, "cost_usd": null, "output_chars": null}"#,
        r#"{"id": "q2", "split": "test", "prompt": "abcd", "scores": {"a": 0.5, "b": 1}, "cost_usd": {"a": 0.25}, "output_chars": {"b": 40}}"#,
        r#"{"id": "q3", "split": "train", "prompt": "", "scores": {"a": 1, "b": 0}}"#,
    ];

    #[test]
    fn loads_and_costs_follow_the_schema() {
        let (_tmp, dir) = fixture(&GOOD);
        let ds = Dataset::load(&dir).unwrap();
        assert_eq!(ds.name(), "fx");
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.train().len(), 2);
        assert_eq!(ds.test().ids(), &["q2".to_string()]);
        assert!(!ds.has_embeddings());
        // q1: 8 chars = 2 tokens, default 100 output tokens.
        assert!((ds.train().cost(0, 0) - (1.0 * 2.0 + 2.0 * 100.0) / 1e6).abs() < 1e-18);
        assert!((ds.train().cost(0, 1) - (10.0 * 2.0 + 20.0 * 100.0) / 1e6).abs() < 1e-18);
        // q2: observed cost wins for a; b uses its output length (40 chars = 10 tokens).
        assert_eq!(ds.test().cost(0, 0), 0.25);
        assert_eq!(ds.test().cost_observed(), &[true, false]);
        assert!(ds.test().output_tokens()[0].is_nan());
        assert_eq!(ds.test().output_tokens()[1], 10.0);
        assert!((ds.test().cost(0, 1) - (10.0 * 1.0 + 20.0 * 10.0) / 1e6).abs() < 1e-18);
        assert_eq!(ds.train().tasks()[0].as_deref(), Some("t"));
        assert_eq!(ds.weak_strong(), Some((0, 1)));
        assert_eq!(ds.prompts_in_file_order(), vec!["abcdefgh", "abcd", ""]);
        assert!(ds.split("dev").is_err());
        assert!(ds.train().features().is_err());
        assert_eq!(ds.train().mean_scores(), vec![0.5, 0.5]);
    }

    fn load_err(lines: &[&str]) -> String {
        let (_tmp, dir) = fixture(lines);
        let e = Dataset::load(&dir).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Format, "{e}");
        e.to_string()
    }

    #[test]
    fn bad_lines_name_file_line_and_problem() {
        let e = load_err(&[
            GOOD[0],
            r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": 1.7, "b": 0}}"#,
        ]);
        assert!(
            e.ends_with("fx.jsonl:2: score 1.7 for model \"a\" outside [0, 1]"),
            "{e}"
        );
        let e = load_err(&[r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": 1}}"#]);
        assert!(e.ends_with("fx.jsonl:1: no score for model \"b\""), "{e}");
        let e = load_err(&[GOOD[0], GOOD[1], r#"{"id": "x", "split": "train", "#]);
        assert!(e.contains("fx.jsonl:3: malformed json"), "{e}");
        let e = load_err(&[
            r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": NaN, "b": 0}}"#,
        ]);
        assert!(e.contains("fx.jsonl:1: NaN at column"), "{e}");
        let e = load_err(&[
            r#"{"id": "x", "split": "dev", "prompt": "p", "scores": {"a": 1, "b": 0}}"#,
        ]);
        assert!(
            e.ends_with("fx.jsonl:1: unknown split \"dev\" (expected \"train\" or \"test\")"),
            "{e}"
        );
        let e = load_err(&[
            r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": 1, "b": 0, "c": 1}}"#,
        ]);
        assert!(e.contains("unknown model \"c\""), "{e}");
        let e = load_err(&[GOOD[0], GOOD[0]]);
        assert!(e.ends_with("fx.jsonl:2: id \"q1\" appears twice"), "{e}");
        let e = load_err(&[
            r#"{"id": "x", "split": "train", "prompt": 3, "scores": {"a": 1, "b": 0}}"#,
        ]);
        assert!(e.ends_with("prompt 3 is not a string"), "{e}");
        let e = load_err(&[
            r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": "high", "b": 0}}"#,
        ]);
        assert!(
            e.ends_with("score \"high\" for model \"a\" is not a number"),
            "{e}"
        );
    }

    #[test]
    fn bad_embeddings_and_models() {
        let (_tmp, dir) = fixture(&GOOD);
        let npy_path = embeddings_path(&dir, "fx");
        npy::write(&npy_path, &[1.0; 8], 2, 4, npy::Dtype::F16).unwrap();
        let e = Dataset::load(&dir).unwrap_err().to_string();
        assert!(
            e.ends_with("fx.minilm_l6_v2.f16.npy: 2 rows, the dataset has 3 queries"),
            "{e}"
        );
        npy::write(&npy_path, &[1.0; 12], 3, 4, npy::Dtype::F16).unwrap();
        std::fs::write(
            embeddings_meta_path(&dir, "fx"),
            r#"{"rows": 3, "dim": 384}"#,
        )
        .unwrap();
        let e = Dataset::load(&dir).unwrap_err().to_string();
        assert!(
            e.ends_with("dim 384 does not match the embedding file's 4 columns"),
            "{e}"
        );
        std::fs::write(embeddings_meta_path(&dir, "fx"), r#"{"rows": 3, "dim": 4}"#).unwrap();
        let ds = Dataset::load(&dir).unwrap();
        assert_eq!(ds.train().dim(), 4);
        assert!((ds.train().embeddings()[0] - 0.5).abs() < 1e-6);
        assert_eq!(
            ds.train().features().unwrap().embedding_model(),
            Some(DEFAULT_EMBEDDING_MODEL)
        );

        std::fs::write(dir.join("models.json"), "{").unwrap();
        let e = Dataset::load(&dir).unwrap_err().to_string();
        assert!(e.contains("models.json: malformed json"), "{e}");
        std::fs::write(
            dir.join("models.json"),
            r#"{"models": {"a": {"input_usd_per_mtok": -1, "output_usd_per_mtok": 1}}}"#,
        )
        .unwrap();
        let e = Dataset::load(&dir).unwrap_err().to_string();
        assert!(
            e.contains("input_usd_per_mtok missing or not a non-negative number"),
            "{e}"
        );
        let e = Dataset::load(dir.join("missing")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Io);
    }

    #[test]
    fn split_from_arrays_checks_shapes() {
        let pool = ModelPool::new(vec![
            ModelCard::new("a", 1.0, 1.0),
            ModelCard::new("b", 2.0, 2.0),
        ])
        .unwrap();
        let s = Split::from_arrays(
            pool.clone(),
            vec![2.0, 0.0, 0.0, 1.0],
            2,
            vec![0.0, 1.0, 1.0, 0.5],
            vec![0.1; 4],
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.embeddings()[0], 1.0);
        // Mean scores a 0.5, b 0.75: b is the strong model; a's lead flips it; a tie makes b strong.
        assert_eq!(s.weak_strong(), Some((0, 1)));
        let flipped = Split::from_arrays(
            pool.clone(),
            vec![1.0, 0.0],
            2,
            vec![0.9, 0.1],
            vec![0.1; 2],
        );
        assert_eq!(flipped.unwrap().weak_strong(), Some((1, 0)));
        let tie = Split::from_arrays(
            pool.clone(),
            vec![1.0, 0.0],
            2,
            vec![0.5, 0.5],
            vec![0.1; 2],
        );
        assert_eq!(tie.unwrap().weak_strong(), Some((0, 1)));
        let e = Split::from_arrays(pool.clone(), vec![1.0, 0.0], 2, vec![0.0], vec![0.1; 2])
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("scores hold 1 values, expected 1 rows x 2 models"),
            "{e}"
        );
        let e =
            Split::from_arrays(pool, vec![1.0, 0.0], 2, vec![0.0, 2.0], vec![0.1; 2]).unwrap_err();
        assert!(
            e.to_string()
                .contains("score 2 in row 0 for model \"b\" outside [0, 1]"),
            "{e}"
        );
    }
}
