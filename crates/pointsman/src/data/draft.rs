//! [`DatasetDraft`]: a dataset being made (by an importer, or from arrays) and how it is written
//! as a folder in the shared schema — whole or not at all.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{embeddings_meta_path, embeddings_path, npy, Winner, EMBEDDING_TAG};
use crate::error::{Error, Result};
use crate::files::AtomicDir;
use crate::pool::{ModelPool, MAX_COST_USD};

/// The split rule of the shipped datasets that have no split of their own (their `stats.json`
/// says so): a query is in the test split when the SHA-1 digest of its id, read as a big-endian
/// integer, is divisible by 5; otherwise in train.
pub const SPLIT_RULE: &str =
    "test = rows whose sha1(id) as an integer is divisible by 5; the rest train";

/// The split [`SPLIT_RULE`] puts the query `id` in: `"test"` or `"train"`.
///
/// # Example
///
/// ```
/// use pointsman::data::split_of_id;
/// assert!(["train", "test"].contains(&split_of_id("gsm8k-0")));
/// ```
pub fn split_of_id(id: &str) -> &'static str {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(id.as_bytes());
    let rem = digest
        .iter()
        .fold(0u32, |r, &b| (r * 256 + u32::from(b)) % 5);
    if rem == 0 {
        "test"
    } else {
        "train"
    }
}

/// One query of a dataset being made. Vectors indexed by model follow the draft's pool.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DraftRow {
    /// Unique id.
    pub id: String,
    /// `"train"` or `"test"`; `None` until [`DatasetDraft::apply_split_rule`] assigns one.
    pub split: Option<String>,
    /// Task tag.
    pub task: Option<String>,
    /// The task's scoring metric.
    pub metric: Option<String>,
    /// The prompt (empty when the source kept only an embedding).
    pub prompt: String,
    /// Per model: the score in [0, 1], `None` when not observed.
    pub scores: Vec<Option<f64>>,
    /// Per model: the observed cost in USD.
    pub cost_usd: Vec<Option<f64>>,
    /// Per model: the answer's length in characters.
    pub output_chars: Vec<Option<u64>>,
    /// Preference judgements: (model a, model b, winner).
    pub preferences: Vec<(u32, u32, Winner)>,
    /// Per model: the logging policy's probability of having chosen it.
    pub propensity: Vec<Option<f64>>,
    /// The query's embedding, when the source carries one (a gateway log).
    pub embedding: Option<Vec<f32>>,
}

impl DraftRow {
    /// A row with no label yet for a pool of `models` models.
    pub fn new(id: impl Into<String>, prompt: impl Into<String>, models: usize) -> DraftRow {
        DraftRow {
            id: id.into(),
            prompt: prompt.into(),
            scores: vec![None; models],
            cost_usd: vec![None; models],
            output_chars: vec![None; models],
            propensity: vec![None; models],
            ..Default::default()
        }
    }
}

/// Embeddings of a draft's prompts, in row order.
#[derive(Debug, Clone, PartialEq)]
pub struct DraftEmbeddings {
    /// `[rows, dim]`, row-major.
    pub data: Vec<f32>,
    /// Dimension.
    pub dim: usize,
    /// The embedding model's name.
    pub model: String,
    /// More facts for the `.meta.json` (truncation, token counts), merged in.
    pub meta: serde_json::Map<String, serde_json::Value>,
}

/// A dataset given as columns (`Dataset.from_arrays` and `Dataset.from_pandas` in Python):
/// `n` queries over the `m` models of a pool. Only `scores` is required.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DraftColumns {
    /// Query ids; default `q<row>`.
    pub ids: Option<Vec<String>>,
    /// Prompts; default empty (then embeddings must be given).
    pub prompts: Option<Vec<String>>,
    /// Task tags.
    pub tasks: Option<Vec<Option<String>>>,
    /// `"train"` / `"test"` per query; default [`SPLIT_RULE`] on the ids.
    pub splits: Option<Vec<String>>,
    /// `[n, m]` row-major scores in [0, 1]; NaN: not observed (a partial label).
    pub scores: Vec<f64>,
    /// `[n, m]` observed costs in USD; NaN: not observed (estimated from the prices).
    pub costs: Option<Vec<f64>>,
    /// `[n, m]` choice probabilities of a logging policy; NaN: none.
    pub propensities: Option<Vec<f64>>,
    /// `[n, dim]` row-major embeddings and their dimension.
    pub embeddings: Option<(Vec<f32>, usize)>,
}

/// Whether `dir/name` is a regular file (not a folder, a link or anything else).
fn is_plain_file(dir: &Path, name: &str) -> bool {
    std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.is_file())
}

/// A dataset being made: its models, its rows and (once computed) the embeddings of its
/// prompts; [`DatasetDraft::write`] writes it as a folder in the shared schema
/// (`docs/datasets.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetDraft {
    /// The models, with their prices (and descriptions, when the source has them).
    pub pool: ModelPool,
    /// Each model's role (`"weak"`, `"strong"`), where the source names one.
    pub roles: Vec<Option<String>>,
    /// Where the data comes from (written to `models.json` and the README).
    pub source: String,
    /// Where the prices come from.
    pub price_note: String,
    /// The rule behind the split, when the source has none of its own ([`SPLIT_RULE`]).
    pub split_rule: Option<String>,
    /// The queries.
    pub rows: Vec<DraftRow>,
    /// The prompts' embeddings.
    pub embeddings: Option<DraftEmbeddings>,
    /// Rows of the source left out, by reason (written to `stats.json` as `dropped`).
    pub dropped: BTreeMap<String, usize>,
    /// The files and folders the draft was read from (set by [`import`](super::import)):
    /// [`DatasetDraft::write`] never replaces a folder that holds one of them.
    pub inputs: Vec<PathBuf>,
}

impl DatasetDraft {
    /// An empty draft over `pool`.
    pub fn new(pool: ModelPool, source: impl Into<String>) -> DatasetDraft {
        DatasetDraft {
            roles: vec![None; pool.len()],
            pool,
            source: source.into(),
            price_note: String::new(),
            split_rule: None,
            rows: Vec::new(),
            embeddings: None,
            dropped: BTreeMap::new(),
            inputs: Vec::new(),
        }
    }

    /// A draft from columns over `pool` (the embeddings, when given, are named
    /// `embedding_model`), split by [`SPLIT_RULE`] where no split is given.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when a column's length does not match the scores' rows; the errors of
    /// [`DatasetDraft::validate`].
    pub fn from_columns(
        pool: ModelPool,
        source: impl Into<String>,
        columns: DraftColumns,
        embedding_model: &str,
    ) -> Result<DatasetDraft> {
        let m = pool.len();
        if m == 0 || !columns.scores.len().is_multiple_of(m) {
            return Err(Error::Shape(format!(
                "{} scores for {m} models: not a [queries, models] table",
                columns.scores.len()
            )));
        }
        let n = columns.scores.len() / m;
        let check = |what: &str, len: usize, want: usize| -> Result<()> {
            if len == want {
                Ok(())
            } else {
                Err(Error::Shape(format!(
                    "{what} has {len} values, expected {want}"
                )))
            }
        };
        for (what, len) in [
            ("ids", columns.ids.as_ref().map(Vec::len)),
            ("prompts", columns.prompts.as_ref().map(Vec::len)),
            ("tasks", columns.tasks.as_ref().map(Vec::len)),
            ("splits", columns.splits.as_ref().map(Vec::len)),
        ] {
            if let Some(len) = len {
                check(what, len, n)?;
            }
        }
        for (what, v) in [
            ("costs", &columns.costs),
            ("propensities", &columns.propensities),
        ] {
            if let Some(v) = v {
                check(what, v.len(), n * m)?;
            }
        }
        let mut draft = DatasetDraft::new(pool, source);
        for i in 0..n {
            let id = columns
                .ids
                .as_ref()
                .map_or_else(|| format!("q{i}"), |ids| ids[i].clone());
            let prompt = columns
                .prompts
                .as_ref()
                .map_or_else(String::new, |p| p[i].clone());
            let mut r = DraftRow::new(id, prompt, m);
            r.task = columns.tasks.as_ref().and_then(|t| t[i].clone());
            r.split = columns.splits.as_ref().map(|s| s[i].clone());
            let cell = |v: &Option<Vec<f64>>, j: usize| {
                v.as_ref().map(|v| v[i * m + j]).filter(|x| !x.is_nan())
            };
            for j in 0..m {
                r.scores[j] = Some(columns.scores[i * m + j]).filter(|x| !x.is_nan());
                r.cost_usd[j] = cell(&columns.costs, j);
                r.propensity[j] = cell(&columns.propensities, j);
            }
            draft.rows.push(r);
        }
        if let Some((data, dim)) = columns.embeddings {
            check("embeddings", data.len(), n * dim)?;
            draft.embeddings = Some(DraftEmbeddings {
                data,
                dim,
                model: embedding_model.to_string(),
                meta: serde_json::Map::new(),
            });
        }
        draft.apply_split_rule();
        draft.validate()?;
        Ok(draft)
    }

    /// Gives every row without a split the one [`SPLIT_RULE`] assigns, and records the rule.
    pub fn apply_split_rule(&mut self) {
        let mut applied = false;
        for r in &mut self.rows {
            if r.split.is_none() {
                r.split = Some(split_of_id(&r.id).to_string());
                applied = true;
            }
        }
        if applied {
            self.split_rule = Some(SPLIT_RULE.to_string());
        }
    }

    /// The prompts, in row order.
    pub fn prompts(&self) -> Vec<&str> {
        self.rows.iter().map(|r| r.prompt.as_str()).collect()
    }

    /// Takes the embeddings the rows carry (every row must carry one, of one dimension) as the
    /// draft's embeddings, made by `model`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when some rows carry none or their dimensions differ.
    pub fn embeddings_from_rows(&mut self, model: &str) -> Result<()> {
        let dim = self
            .rows
            .first()
            .and_then(|r| r.embedding.as_ref())
            .map_or(0, Vec::len);
        let mut data = Vec::with_capacity(self.rows.len() * dim);
        for r in &self.rows {
            match &r.embedding {
                Some(e) if e.len() == dim && dim > 0 => data.extend_from_slice(e),
                Some(e) => {
                    return Err(Error::Shape(format!(
                        "query {:?} has a {}-dimensional embedding, others {dim}",
                        r.id,
                        e.len()
                    )))
                }
                None => {
                    return Err(Error::Shape(format!(
                        "query {:?} has no embedding while others do",
                        r.id
                    )))
                }
            }
        }
        self.embeddings = Some(DraftEmbeddings {
            data,
            dim,
            model: model.to_string(),
            meta: serde_json::Map::new(),
        });
        Ok(())
    }

    /// Checks the draft: splits assigned and known, ids unique and not empty, one value per model
    /// in every row, scores in [0, 1], costs and propensities in range, preferences between two
    /// models of the pool, embeddings one finite non-zero row per query.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the query and the field.
    pub fn validate(&self) -> Result<()> {
        let m = self.pool.len();
        let mut seen = HashSet::new();
        let bad = |id: &str, what: String| Error::InvalidInput(format!("query {id:?}: {what}"));
        for r in &self.rows {
            if r.id.is_empty() {
                return Err(Error::InvalidInput("a query with an empty id".into()));
            }
            if !seen.insert(r.id.as_str()) {
                return Err(bad(&r.id, "the id appears twice".into()));
            }
            match r.split.as_deref() {
                Some("train" | "test") => {}
                other => return Err(bad(&r.id, format!("split {other:?} is not train or test"))),
            }
            for (what, len) in [
                ("scores", r.scores.len()),
                ("cost_usd", r.cost_usd.len()),
                ("output_chars", r.output_chars.len()),
                ("propensity", r.propensity.len()),
            ] {
                if len != m {
                    return Err(bad(&r.id, format!("{len} {what} for {m} models")));
                }
            }
            for (j, s) in r.scores.iter().enumerate() {
                if let Some(s) = s {
                    if !(0.0..=1.0).contains(s) {
                        return Err(bad(
                            &r.id,
                            format!("score {s} for model {:?} outside [0, 1]", self.pool.id(j)),
                        ));
                    }
                }
            }
            for (j, c) in r.cost_usd.iter().enumerate() {
                if let Some(c) = c {
                    if !(c.is_finite() && (0.0..=MAX_COST_USD).contains(c)) {
                        return Err(bad(
                            &r.id,
                            format!(
                                "cost_usd {c} for model {:?} is not a number in [0, \
                                 {MAX_COST_USD:e}] USD",
                                self.pool.id(j)
                            ),
                        ));
                    }
                }
            }
            for (j, p) in r.propensity.iter().enumerate() {
                if let Some(p) = p {
                    if !(*p > 0.0 && *p <= 1.0) || r.scores[j].is_none() {
                        return Err(bad(
                            &r.id,
                            format!(
                                "propensity {p} for model {:?} outside (0, 1] or without a score",
                                self.pool.id(j)
                            ),
                        ));
                    }
                }
            }
            for &(a, b, _) in &r.preferences {
                if a == b || a as usize >= m || b as usize >= m {
                    return Err(bad(
                        &r.id,
                        format!("a preference between models #{a} and #{b}"),
                    ));
                }
            }
        }
        if let Some(e) = &self.embeddings {
            if e.dim == 0 || e.data.len() != self.rows.len() * e.dim {
                return Err(Error::Shape(format!(
                    "{} embedding values for {} queries of dimension {}",
                    e.data.len(),
                    self.rows.len(),
                    e.dim
                )));
            }
            if let Some(r) = e
                .data
                .chunks_exact(e.dim)
                .position(|row| row.iter().any(|v| !v.is_finite()) || row.iter().all(|&v| v == 0.0))
            {
                return Err(bad(
                    &self.rows[r].id,
                    "its embedding is zero or not finite".into(),
                ));
            }
        }
        Ok(())
    }

    /// Checks, before any long work (embedding the prompts), that [`DatasetDraft::write`]
    /// could write the folder `dir`: its name, what is there already (with `replace`, a
    /// dataset folder alone), a writable parent. Returns the dataset's name.
    ///
    /// # Errors
    ///
    /// As [`DatasetDraft::write`] for the folder (not for the draft's rows).
    pub fn check_destination(&self, dir: &Path, replace: bool) -> Result<String> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty() && n != "." && n != "..")
            .ok_or_else(|| {
                Error::InvalidInput(format!("{} does not name a folder", dir.display()))
            })?;
        if replace {
            self.check_replaceable(dir, &name)?;
        }
        // What writing would try first: the temporary folder beside `dir` (removed again).
        drop(AtomicDir::create(dir, replace)?);
        Ok(name)
    }

    /// Refuses to replace a folder `dir` that holds anything but a dataset's files, or one of
    /// the draft's inputs: either would be deleted with the old folder.
    fn check_replaceable(&self, dir: &Path, name: &str) -> Result<()> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            // Missing (nothing to lose), or not a folder (AtomicDir says so).
            return Ok(());
        };
        let refuse = |why: String| {
            Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, why),
            ))
        };
        if let Ok(here) = dir.canonicalize() {
            for input in &self.inputs {
                if input.canonicalize().is_ok_and(|i| i.starts_with(&here)) {
                    return refuse(format!(
                        "holds this import's input {}: replacing the folder would delete it \
                         (write the dataset to another folder)",
                        input.display()
                    ));
                }
            }
        }
        let dataset_files: HashSet<String> = [
            format!("{name}.jsonl.gz"),
            format!("{name}.jsonl"),
            "models.json".into(),
            "stats.json".into(),
            "README.md".into(),
        ]
        .into_iter()
        .chain(
            [embeddings_path, embeddings_meta_path]
                .iter()
                .map(|f| f(Path::new(""), name).to_string_lossy().into_owned()),
        )
        .collect();
        let mut others: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !(dataset_files.contains(n) && is_plain_file(dir, n)))
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        others.sort();
        let shown = others
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = if others.len() > 3 {
            format!(" and {} more", others.len() - 3)
        } else {
            String::new()
        };
        refuse(format!(
            "holds more than a dataset ({shown}{more}): replacing the folder would delete it \
             (choose another folder, or move those out first)"
        ))
    }

    /// Whether every row has every model's score.
    pub fn fully_labelled(&self) -> bool {
        self.rows
            .iter()
            .all(|r| r.scores.iter().all(Option::is_some))
    }

    /// Writes the draft as the dataset folder `dir` (named after its last component):
    /// `<name>.jsonl.gz`, `models.json`, `stats.json`, `README.md` and, with embeddings,
    /// `<name>.minilm_l6_v2.f16.npy` and its `.meta.json`. The folder appears whole or not at
    /// all ([`AtomicDir`]); an existing `dir` is replaced only with `replace`, and only when it
    /// is empty or holds a dataset's files alone (those above, `<name>.jsonl` too) and none of
    /// the draft's [`inputs`](DatasetDraft::inputs): replacing deletes the old folder.
    ///
    /// # Errors
    ///
    /// The errors of [`DatasetDraft::validate`]; [`Error::Io`] naming the folder, which names
    /// what it holds besides a dataset when that is why it is not replaced.
    pub fn write(&self, dir: &Path, replace: bool) -> Result<PathBuf> {
        self.validate()?;
        let name = self.check_destination(dir, replace)?;
        let out = AtomicDir::create(dir, replace)?;
        let tmp = out.dir().to_path_buf();
        let io = |p: &Path, e: std::io::Error| Error::io(p, e);
        // The records.
        let records = tmp.join(format!("{name}.jsonl.gz"));
        {
            let file = std::fs::File::create(&records).map_err(|e| io(&records, e))?;
            let mut gz = flate2::write::GzEncoder::new(
                std::io::BufWriter::new(file),
                flate2::Compression::default(),
            );
            for r in &self.rows {
                let line = serde_json::to_string(&self.line(r))
                    .map_err(|e| Error::InvalidInput(format!("query {:?}: {e}", r.id)))?;
                writeln!(gz, "{line}").map_err(|e| io(&records, e))?;
            }
            let w = gz.finish().map_err(|e| io(&records, e))?;
            w.into_inner()
                .map_err(|e| io(&records, e.into_error()))?
                .sync_all()
                .map_err(|e| io(&records, e))?;
        }
        let json = |value: &serde_json::Value| -> Vec<u8> {
            let mut text = serde_json::to_string_pretty(value).expect("JSON values print");
            text.push('\n');
            text.into_bytes()
        };
        let write = |path: PathBuf, bytes: &[u8]| -> Result<()> {
            std::fs::write(&path, bytes).map_err(|e| io(&path, e))
        };
        write(tmp.join("models.json"), &json(&self.models_json()))?;
        write(tmp.join("stats.json"), &json(&self.stats_json()))?;
        write(tmp.join("README.md"), self.readme(&name).as_bytes())?;
        if let Some(e) = &self.embeddings {
            let bytes = npy::to_bytes(&e.data, self.rows.len(), e.dim, npy::Dtype::F16);
            write(embeddings_path(&tmp, &name), &bytes)?;
            let mut meta = serde_json::Map::new();
            meta.insert("rows".into(), self.rows.len().into());
            meta.insert("dim".into(), e.dim.into());
            meta.insert("model".into(), e.model.clone().into());
            for (k, v) in &e.meta {
                meta.insert(k.clone(), v.clone());
            }
            write(
                embeddings_meta_path(&tmp, &name),
                &json(&serde_json::Value::Object(meta)),
            )?;
        }
        out.commit()?;
        debug_assert!(EMBEDDING_TAG.starts_with("minilm"));
        Ok(dir.to_path_buf())
    }

    fn line<'a>(&'a self, r: &'a DraftRow) -> Line<'a> {
        let by_model = |v: &[Option<f64>]| -> BTreeMap<&'a str, f64> {
            v.iter()
                .enumerate()
                .filter_map(|(j, x)| x.map(|x| (self.pool.id(j), x)))
                .collect()
        };
        let costs = by_model(&r.cost_usd);
        let chars: BTreeMap<&str, u64> = r
            .output_chars
            .iter()
            .enumerate()
            .filter_map(|(j, x)| x.map(|x| (self.pool.id(j), x)))
            .collect();
        let propensity = by_model(&r.propensity);
        Line {
            id: &r.id,
            split: r.split.as_deref().unwrap_or("train"),
            task: r.task.as_deref(),
            metric: r.metric.as_deref(),
            prompt: &r.prompt,
            scores: by_model(&r.scores),
            cost_usd: (!costs.is_empty()).then_some(costs),
            output_chars: (!chars.is_empty()).then_some(chars),
            preferences: r
                .preferences
                .iter()
                .map(|&(a, b, w)| LinePreference {
                    model_a: self.pool.id(a as usize),
                    model_b: self.pool.id(b as usize),
                    winner: w.name(),
                })
                .collect(),
            propensity: (!propensity.is_empty()).then_some(propensity),
        }
    }

    fn models_json(&self) -> serde_json::Value {
        let mut models = serde_json::Map::new();
        // The dataset-wide answer length: the most common one; others per model.
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for c in self.pool.cards() {
            *counts.entry(c.default_output_tokens.to_bits()).or_default() += 1;
        }
        let default_out = counts
            .iter()
            .max_by_key(|(_, n)| **n)
            .map_or(256.0, |(bits, _)| f64::from_bits(*bits));
        for (card, role) in self.pool.cards().iter().zip(&self.roles) {
            let mut m = serde_json::Map::new();
            m.insert("input_usd_per_mtok".into(), card.input_usd_per_mtok.into());
            m.insert(
                "output_usd_per_mtok".into(),
                card.output_usd_per_mtok.into(),
            );
            if card.default_output_tokens != default_out {
                m.insert(
                    "default_output_tokens".into(),
                    card.default_output_tokens.into(),
                );
            }
            if let Some(r) = role {
                m.insert("role".into(), r.clone().into());
            }
            if let Some(d) = &card.description {
                m.insert("description".into(), d.clone().into());
            }
            for (key, figure) in card.figures() {
                if let Some(x) = figure {
                    m.insert(key.into(), x.into());
                }
            }
            if !card.capabilities.is_empty() {
                m.insert("capabilities".into(), card.capabilities.clone().into());
            }
            models.insert(card.id.clone(), serde_json::Value::Object(m));
        }
        let mut v = serde_json::json!({
            "source": self.source,
            "default_output_tokens": default_out,
            "price_note": self.price_note,
            "models": models,
        });
        if !self.fully_labelled() {
            v["labels"] = "partial".into();
        }
        v
    }

    fn stats_json(&self) -> serde_json::Value {
        let m = self.pool.len();
        let mut splits: BTreeMap<&str, usize> = BTreeMap::new();
        let mut tasks: BTreeMap<&str, usize> = BTreeMap::new();
        let mut n = vec![0usize; m];
        let mut sums = vec![0.0f64; m];
        let mut train_n = vec![0usize; m];
        let mut train_sums = vec![0.0f64; m];
        let (mut prefs, mut oracle, mut full_rows) = (0usize, 0.0f64, 0usize);
        for r in &self.rows {
            let split = r.split.as_deref().unwrap_or("train");
            *splits.entry(split).or_default() += 1;
            if let Some(t) = &r.task {
                *tasks.entry(t).or_default() += 1;
            }
            prefs += r.preferences.len();
            for (j, s) in r.scores.iter().enumerate() {
                if let Some(s) = s {
                    n[j] += 1;
                    sums[j] += s;
                    if split == "train" {
                        train_n[j] += 1;
                        train_sums[j] += s;
                    }
                }
            }
            if r.scores.iter().all(Option::is_some) {
                full_rows += 1;
                oracle += r.scores.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
            }
        }
        let round = |x: f64| (x * 1e4).round() / 1e4;
        let mut models = serde_json::Map::new();
        for j in 0..m {
            models.insert(
                self.pool.id(j).to_string(),
                serde_json::json!({
                    "n": n[j],
                    "mean_score": (n[j] > 0).then(|| round(sums[j] / n[j] as f64)),
                }),
            );
        }
        let best = (0..m)
            .filter(|&j| train_n[j] > 0)
            .max_by(|&a, &b| {
                (train_sums[a] / train_n[a] as f64).total_cmp(&(train_sums[b] / train_n[b] as f64))
            })
            .map(|j| self.pool.id(j).to_string());
        let labels = match (self.fully_labelled(), prefs) {
            (true, 0) => "full",
            (true, _) => "full+pairwise",
            (false, 0) => "partial",
            (false, _) if n.iter().all(|&c| c == 0) => "pairwise",
            (false, _) => "partial+pairwise",
        };
        let mut v = serde_json::json!({
            "n_queries": self.rows.len(),
            "splits": splits,
            "tasks": tasks,
            "models": models,
            "best_single": best,
            "labels": labels,
            "preferences": prefs,
        });
        if full_rows == self.rows.len() && full_rows > 0 {
            v["oracle_mean_score"] = round(oracle / full_rows as f64).into();
        }
        if let Some(rule) = &self.split_rule {
            v["split_rule"] = rule.clone().into();
        }
        if !self.dropped.is_empty() {
            v["dropped"] = serde_json::json!(self.dropped);
        }
        v
    }

    fn readme(&self, name: &str) -> String {
        let mut s = format!(
            "# {name}\n\nImported by `pointsman import` from: {}.\n\n- {} queries, {} models; labels: \
             {}.\n",
            self.source,
            self.rows.len(),
            self.pool.len(),
            if self.fully_labelled() {
                "every model's score on every query"
            } else {
                "partial (see stats.json)"
            }
        );
        if let Some(rule) = &self.split_rule {
            s.push_str(&format!("- Split: {rule}.\n"));
        }
        if !self.price_note.is_empty() {
            s.push_str(&format!("- Prices: {}.\n", self.price_note));
        }
        s.push_str("\nSchema: docs/datasets.md of the Pointsman repository.\n");
        s
    }
}

#[derive(Serialize)]
struct LinePreference<'a> {
    model_a: &'a str,
    model_b: &'a str,
    winner: &'a str,
}

/// One line of the records file, in the schema's field order.
#[derive(Serialize)]
struct Line<'a> {
    id: &'a str,
    split: &'a str,
    task: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<&'a str>,
    prompt: &'a str,
    scores: BTreeMap<&'a str, f64>,
    cost_usd: Option<BTreeMap<&'a str, f64>>,
    output_chars: Option<BTreeMap<&'a str, u64>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    preferences: Vec<LinePreference<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    propensity: Option<BTreeMap<&'a str, f64>>,
}
