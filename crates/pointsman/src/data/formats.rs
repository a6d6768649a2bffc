//! Importers of the anchors' published formats and of the gateway's decision log, into a
//! [`DatasetDraft`] in the shared schema (`pointsman import --from <format>`,
//! `pointsman.import_dataset`). Embeddings are not computed here (the data layer does not embed):
//! `embed::embed_draft` computes them in-process before the draft is written; the gateway log
//! carries its own.
//!
//! Each importer derives what the shipped datasets derived, so that importing the raw files
//! reproduces `llmrouter_dc` and `routellm` (tested in `tests/quality.rs`):
//!
//! - [`ImportFormat::Llmrouter`]: LLMRouter's `dcrouter_preprocessed/{train,test}.json` (question,
//!   per-model scores), task and metric joined by question text from
//!   `example_data/query_data/default_query_{train,test}.jsonl` (first occurrence, train file
//!   first), prices and descriptions from `example_data/llm_candidates/default_llm.json`. The
//!   source's split is kept; a train row whose question is also a test question is dropped.
//!   Rows: test then train, ids `llmrouter-<split>-<index in the source file>`.
//! - [`ImportFormat::Routellm`]: RouteLLM's `mmlu/responses/mmlu_<subject>.csv` (subjects in
//!   file-name order) then `gsm8k/gsm8k_responses.csv`: a prompt column, one True/False column
//!   per model, for GSM8K `<model>_response` (kept as the answer's length in characters). Ids
//!   `mmlu-<subject>-<row>` and `gsm8k-<row>`; split by [`SPLIT_RULE`](super::SPLIT_RULE). Prices
//!   are not in the data: a `models.json` gives them. MT-Bench's judgements (one 1–10 grade per
//!   model and turn) are added as preference pairs only on request (`mt_bench`), since the
//!   shipped dataset leaves them out.
//! - [`ImportFormat::Routerbench`]: RouterBench's wide table as CSV: `sample_id`, `prompt`,
//!   `eval_name`, and per model `<model>` (score), `<model>|model_response`,
//!   `<model>|total_cost` (observed cost). An empty score is a missing label.
//! - [`ImportFormat::GatewayLog`]: the gateway's decision log (docs/gateway.md, schema 1): each
//!   answered `decision` joined by `request_id` with its `feedback` gives one query labelled for
//!   the one model that answered, with the logged embedding and the choice probability.
//! - [`ImportFormat::Log`]: a team's own JSONL/CSV log ([`super::import_log`]).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{import_log, DatasetDraft, DraftRow, LogMapping, Winner};
use crate::error::{Error, Result};
use crate::pool::{ModelCard, ModelPool};

/// A source format `pointsman import --from` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImportFormat {
    /// A team's own JSONL/CSV log with a field mapping.
    Log,
    /// LLMRouter's routing data.
    Llmrouter,
    /// RouteLLM's evaluation data.
    Routellm,
    /// RouterBench's wide table (CSV; its pickle through the Python package).
    Routerbench,
    /// The gateway's decision log with feedback.
    GatewayLog,
}

impl ImportFormat {
    /// Every format, in the order the help lists them.
    pub const ALL: [ImportFormat; 5] = [
        ImportFormat::Log,
        ImportFormat::Llmrouter,
        ImportFormat::Routellm,
        ImportFormat::Routerbench,
        ImportFormat::GatewayLog,
    ];

    /// The format's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ImportFormat::Log => "log",
            ImportFormat::Llmrouter => "llmrouter",
            ImportFormat::Routellm => "routellm",
            ImportFormat::Routerbench => "routerbench",
            ImportFormat::GatewayLog => "gateway-log",
        }
    }
}

impl std::fmt::Display for ImportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ImportFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<ImportFormat> {
        ImportFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = ImportFormat::ALL.iter().map(|f| f.name()).collect();
                Error::InvalidInput(format!(
                    "unknown import format {s:?} (known: {})",
                    known.join(", ")
                ))
            })
    }
}

/// What an import needs besides its input files.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// A `models.json` in the dataset schema: the models' prices (and roles, descriptions).
    /// Required by `log`, `routellm` and `gateway-log`; for `llmrouter` it replaces the
    /// candidates file's prices; for `routerbench`, without it, each model's price is fitted to
    /// its observed costs.
    pub models: Option<PathBuf>,
    /// The field mapping of a `log`.
    pub mapping: LogMapping,
    /// Output tokens assumed per answer where the source has no answer (the cost estimate of
    /// SCHEMA.md); default: 256 (LLMRouter, RouterBench), 16 (RouteLLM).
    pub default_output_tokens: Option<f64>,
    /// RouteLLM: add MT-Bench's judgements as preference pairs.
    pub mt_bench: bool,
}

/// Imports `inputs` in `format` as a draft (no embeddings, except the gateway log's).
///
/// Inputs: `log`, `gateway-log`, `routerbench`: one or more files (concatenated); `llmrouter`:
/// LLMRouter's `data/` folder (holding `dcrouter_preprocessed/` and `example_data/`);
/// `routellm`: RouteLLM's `evals/` folder (holding `mmlu/responses/` and `gsm8k/`).
///
/// # Errors
///
/// [`Error::InvalidInput`] for a wrong number of inputs or a missing `models.json`;
/// [`Error::Io`] for an unreadable file; [`Error::Format`] naming the file, line and field of
/// bad input.
pub fn import(
    format: ImportFormat,
    inputs: &[PathBuf],
    options: &ImportOptions,
) -> Result<DatasetDraft> {
    if inputs.is_empty() {
        return Err(Error::InvalidInput(format!(
            "import --from {format}: no input given"
        )));
    }
    let one = || -> Result<&Path> {
        match inputs {
            [one] => Ok(one.as_path()),
            _ => Err(Error::InvalidInput(format!(
                "import --from {format} takes one folder, got {} inputs",
                inputs.len()
            ))),
        }
    };
    let models = || -> Result<super::schema::Models> {
        match &options.models {
            Some(p) => super::schema::read_models(p),
            None => Err(Error::InvalidInput(format!(
                "import --from {format} needs a models.json with the models' prices"
            ))),
        }
    };
    let mut draft = match format {
        ImportFormat::Log => {
            if inputs.len() != 1 {
                return Err(Error::InvalidInput(format!(
                    "import --from log takes one file, got {}",
                    inputs.len()
                )));
            }
            import_log(&inputs[0], &options.mapping, models()?.pool)?
        }
        ImportFormat::Llmrouter => import_llmrouter(one()?, options)?,
        ImportFormat::Routellm => import_routellm(one()?, models()?, options)?,
        ImportFormat::Routerbench => import_routerbench_csv(inputs, options)?,
        ImportFormat::GatewayLog => import_gateway_log(inputs, models()?)?,
    };
    draft.apply_split_rule();
    Ok(draft)
}

fn read_text(path: &Path) -> Result<String> {
    let (mut file, _) = crate::files::open_regular(path)?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| Error::io(path, e))?;
    Ok(text)
}

fn parse_json_file(path: &Path) -> Result<Value> {
    serde_json::from_str(&read_text(path)?)
        .map_err(|e| Error::format_at(path.display(), e.line(), format!("malformed json: {e}")))
}

/// A score in [0, 1] from a JSON value, or an error message naming the field.
fn unit_score(v: &Value, field: &str) -> std::result::Result<f64, String> {
    match v.as_f64() {
        Some(s) if (0.0..=1.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "field {field:?}: score {v} is not a number in [0, 1]"
        )),
    }
}

fn import_llmrouter(dir: &Path, options: &ImportOptions) -> Result<DatasetDraft> {
    let routing = |split: &str| {
        dir.join("dcrouter_preprocessed")
            .join(format!("{split}.json"))
    };
    let queries = |split: &str| {
        dir.join("example_data")
            .join("query_data")
            .join(format!("default_query_{split}.jsonl"))
    };
    let candidates = dir
        .join("example_data")
        .join("llm_candidates")
        .join("default_llm.json");
    // The pool: the candidates file's prices and descriptions (or a models.json's prices).
    let default_out = options.default_output_tokens.unwrap_or(256.0);
    let cand = parse_json_file(&candidates)?;
    let cand = cand
        .as_object()
        .ok_or_else(|| Error::format(candidates.display(), "not a JSON object of models"))?;
    // The pool: the candidates with a score in the routing data (the file lists more).
    let parsed: Vec<(&str, PathBuf, Value)> = ["test", "train"]
        .into_iter()
        .map(|split| {
            let path = routing(split);
            parse_json_file(&path).map(|v| (split, path, v))
        })
        .collect::<Result<_>>()?;
    let scored: std::collections::BTreeSet<&str> = parsed
        .iter()
        .filter_map(|(_, _, v)| v.as_array())
        .flatten()
        .filter_map(|row| row.get("scores").and_then(Value::as_object))
        .flat_map(|s| s.keys().map(String::as_str))
        .collect();
    let mut ids: Vec<&String> = cand
        .keys()
        .filter(|k| scored.contains(k.as_str()))
        .collect();
    ids.sort();
    let mut cards = Vec::new();
    for id in ids {
        let m = &cand[id];
        let price = |key: &str| {
            m.get(key)
                .and_then(Value::as_f64)
                .filter(|p| p.is_finite() && *p >= 0.0)
                .ok_or_else(|| {
                    Error::format(
                        candidates.display(),
                        format!("model {id:?}: {key} missing or not a non-negative number"),
                    )
                })
        };
        let mut card = ModelCard::new(id.clone(), price("input_price")?, price("output_price")?)
            .with_default_output_tokens(default_out);
        if let Some(d) = m.get("feature").and_then(Value::as_str) {
            card = card.with_description(d);
        }
        cards.push(card);
    }
    let mut pool = ModelPool::new(cards)?;
    let mut price_note = "list prices published with the dataset (default_llm.json); the data \
                          has no per-query token counts, so per-query cost is an estimate"
        .to_string();
    if let Some(p) = &options.models {
        let given = super::schema::read_models(p)?.pool;
        pool = pool.repriced(given.cards())?;
        price_note = format!("prices from {}", p.display());
    }
    // Task and metric by question: first occurrence, train file first.
    let mut task_of: HashMap<String, (String, Option<String>)> = HashMap::new();
    for split in ["train", "test"] {
        let path = queries(split);
        let display = path.display().to_string();
        let (file, _) = crate::files::open_regular(&path)?;
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| Error::io(&path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line)
                .map_err(|e| Error::format_at(&display, i + 1, format!("malformed json: {e}")))?;
            let field = |f: &str| v.get(f).and_then(Value::as_str);
            let (Some(q), Some(t)) = (field("query"), field("task_name")) else {
                return Err(Error::format_at(
                    &display,
                    i + 1,
                    "field \"query\" or \"task_name\" missing or not text",
                ));
            };
            task_of
                .entry(q.to_string())
                .or_insert_with(|| (t.to_string(), field("metric").map(str::to_string)));
        }
    }
    let m = pool.len();
    let mut draft = DatasetDraft::new(
        pool,
        "github.com/ulab-uiuc/LLMRouter data/dcrouter_preprocessed + \
         data/example_data/llm_candidates/default_llm.json (MIT)",
    );
    draft.price_note = price_note;
    let mut test_questions = std::collections::HashSet::new();
    let mut dropped = 0usize;
    for (split, path, v) in &parsed {
        let split = *split;
        let display = path.display().to_string();
        let rows = v
            .as_array()
            .ok_or_else(|| Error::format(&display, "not a JSON array of rows"))?;
        for (i, row) in rows.iter().enumerate() {
            let bad = |msg: String| Error::format(&display, format!("row {i}: {msg}"));
            let q = row
                .get("question")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("field \"question\" missing or not text".into()))?;
            if split == "test" {
                test_questions.insert(q.to_string());
            } else if test_questions.contains(q) {
                dropped += 1;
                continue;
            }
            let scores = row
                .get("scores")
                .and_then(Value::as_object)
                .ok_or_else(|| bad("field \"scores\" missing or not an object".into()))?;
            let mut r = DraftRow::new(format!("llmrouter-{split}-{i}"), q, m);
            for (model, s) in scores {
                let j = draft.pool.index_of(model).map_err(|_| {
                    bad(format!(
                        "field \"scores\": model {model:?} is not in default_llm.json"
                    ))
                })?;
                r.scores[j] = Some(unit_score(s, "scores").map_err(bad)?);
            }
            let (task, metric) = task_of.get(q).cloned().ok_or_else(|| {
                bad("its question is in neither query_data file (no task to give it)".into())
            })?;
            r.task = Some(task);
            r.metric = metric;
            r.split = Some(split.to_string());
            draft.rows.push(r);
        }
    }
    if dropped > 0 {
        draft
            .dropped
            .insert("train_row_also_in_test".to_string(), dropped);
    }
    Ok(draft)
}

/// Reads a CSV with a header line, calling `each(line number, header, record)`.
fn read_csv(
    path: &Path,
    mut each: impl FnMut(usize, &csv::StringRecord, &csv::StringRecord) -> Result<()>,
) -> Result<()> {
    let display = path.display().to_string();
    let (file, _) = crate::files::open_regular(path)?;
    let mut reader = csv::Reader::from_reader(file);
    let headers = reader
        .headers()
        .map_err(|e| Error::format_at(&display, 1, format!("bad csv header: {e}")))?
        .clone();
    for rec in reader.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            Error::format_at(&display, line, format!("bad csv: {e}"))
        })?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        each(line, &headers, &rec)?;
    }
    Ok(())
}

fn bool_score(v: &str) -> Option<f64> {
    match v.trim() {
        "True" | "true" | "1" | "1.0" => Some(1.0),
        "False" | "false" | "0" | "0.0" => Some(0.0),
        _ => None,
    }
}

fn import_routellm(
    dir: &Path,
    models: super::schema::Models,
    options: &ImportOptions,
) -> Result<DatasetDraft> {
    let mut pool = models.pool;
    if let Some(t) = options.default_output_tokens {
        let cards: Vec<ModelCard> = pool
            .cards()
            .iter()
            .map(|c| c.clone().with_default_output_tokens(t))
            .collect();
        pool = ModelPool::new(cards)?;
    }
    let m = pool.len();
    let mut draft = DatasetDraft::new(
        pool,
        "github.com/lm-sys/RouteLLM routellm/evals (Apache-2.0)",
    );
    draft.roles = models.roles;
    draft.price_note =
        "prices are not in the data: the models.json given to the import (estimates)".into();
    let responses = dir.join("mmlu").join("responses");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&responses)
        .map_err(|e| Error::io(&responses, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("mmlu_") && n.ends_with(".csv"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::format(
            responses.display(),
            "no mmlu_<subject>.csv response file",
        ));
    }
    files.push(dir.join("gsm8k").join("gsm8k_responses.csv"));
    for path in &files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let task = match stem.strip_prefix("mmlu_") {
            Some(subject) => format!("mmlu-{subject}"),
            None => "gsm8k".to_string(),
        };
        let display = path.display().to_string();
        let mut n = 0usize;
        let pool = &draft.pool;
        let rows = &mut draft.rows;
        read_csv(path, |line, header, rec| {
            let bad = |msg: String| Error::format_at(&display, line, msg);
            let mut prompt = None;
            let mut r = DraftRow::new(format!("{task}-{n}"), "", m);
            for (h, v) in header.iter().zip(rec.iter()) {
                if h == "prompt" {
                    prompt = Some(v);
                } else if let Some(model) = h.strip_suffix("_response") {
                    if let Ok(j) = pool.index_of(model) {
                        r.output_chars[j] = Some(v.chars().count() as u64);
                    }
                } else {
                    let j = pool.index_of(h).map_err(|_| {
                        bad(format!("column {h:?} is not a model of the models.json"))
                    })?;
                    r.scores[j] = Some(bool_score(v).ok_or_else(|| {
                        bad(format!("field {h:?}: {v:?} is neither True nor False"))
                    })?);
                }
            }
            r.prompt = prompt
                .ok_or_else(|| bad("no \"prompt\" column".into()))?
                .to_string();
            if let Some(j) = r.scores.iter().position(Option::is_none) {
                return Err(bad(format!("no column for model {:?}", pool.id(j))));
            }
            r.task = Some(task.clone());
            rows.push(r);
            n += 1;
            Ok(())
        })?;
    }
    if options.mt_bench {
        add_mt_bench(&mut draft, &dir.join("mt_bench"))?;
    }
    Ok(draft)
}

/// MT-Bench: per (question, turn), the judge's grades of the models become preference pairs
/// (the higher grade wins; equal grades tie); no absolute score is kept (grades from 1 to 10
/// are not a probability of a good answer).
fn add_mt_bench(draft: &mut DatasetDraft, dir: &Path) -> Result<()> {
    let questions = dir.join("question.jsonl");
    let judgements = dir.join("judgements.jsonl");
    let mut text_of: HashMap<i64, (String, Vec<String>)> = HashMap::new();
    let lines = |path: &Path| -> Result<Vec<(usize, Value)>> {
        let display = path.display().to_string();
        read_text(path)?
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map(|v| (i + 1, v))
                    .map_err(|e| Error::format_at(&display, i + 1, format!("malformed json: {e}")))
            })
            .collect()
    };
    for (line, v) in lines(&questions)? {
        let bad = |f: &str| {
            Error::format_at(
                questions.display(),
                line,
                format!("field {f:?} missing or malformed"),
            )
        };
        let id = v
            .get("question_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("question_id"))?;
        let category = v
            .get("category")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("category"))?;
        let turns = v
            .get("turns")
            .and_then(Value::as_array)
            .and_then(|t| t.iter().map(|x| x.as_str().map(str::to_string)).collect())
            .ok_or_else(|| bad("turns"))?;
        text_of.insert(id, (category.to_string(), turns));
    }
    // (question, turn) -> per model grade.
    let mut grades: std::collections::BTreeMap<(i64, i64), Vec<Option<f64>>> = Default::default();
    let m = draft.pool.len();
    for (line, v) in lines(&judgements)? {
        let bad = |f: &str| {
            Error::format_at(
                judgements.display(),
                line,
                format!("field {f:?} missing or malformed"),
            )
        };
        let q = v
            .get("question_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("question_id"))?;
        let turn = v
            .get("turn")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("turn"))?;
        let model = v
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("model"))?;
        let score = v
            .get("score")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite())
            .ok_or_else(|| bad("score"))?;
        let Ok(j) = draft.pool.index_of(model) else {
            continue;
        };
        if !text_of.contains_key(&q) {
            return Err(Error::format_at(
                judgements.display(),
                line,
                format!("question_id {q} is not in question.jsonl"),
            ));
        }
        grades.entry((q, turn)).or_insert_with(|| vec![None; m])[j] = Some(score);
    }
    for ((q, turn), g) in grades {
        let (category, turns) = &text_of[&q];
        let upto = usize::try_from(turn)
            .unwrap_or(0)
            .clamp(1, turns.len().max(1));
        let mut r = DraftRow::new(
            format!("mt_bench-{q}-{turn}"),
            turns[..upto.min(turns.len())].join("\n\n"),
            m,
        );
        r.task = Some(format!("mt_bench-{category}"));
        for a in 0..m {
            for b in a + 1..m {
                if let (Some(x), Some(y)) = (g[a], g[b]) {
                    let w = if x > y {
                        Winner::ModelA
                    } else if y > x {
                        Winner::ModelB
                    } else {
                        Winner::Tie
                    };
                    r.preferences.push((a as u32, b as u32, w));
                }
            }
        }
        if !r.preferences.is_empty() {
            draft.rows.push(r);
        }
    }
    Ok(())
}

/// The columns of RouterBench's wide table that are not per-model.
const ROUTERBENCH_FIXED: [&str; 4] = [
    "sample_id",
    "prompt",
    "eval_name",
    "oracle_model_to_route_to",
];

/// RouterBench's wide table from CSV files. Public to the crate's bindings through
/// [`import_routerbench_rows`], which the Python package feeds from the pandas pickle.
fn import_routerbench_csv(inputs: &[PathBuf], options: &ImportOptions) -> Result<DatasetDraft> {
    let mut table = WideTable::default();
    for path in inputs {
        let display = path.display().to_string();
        read_csv(path, |line, header, rec| {
            let cells: Vec<(String, String)> = header
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect();
            table.push(&display, line, cells)
        })?;
    }
    table.into_draft(options)
}

/// Imports RouterBench's wide table given as rows of (column, value-as-text) pairs, as its
/// pandas pickle holds it once loaded (`pointsman.import_dataset("routerbench", ["x.pkl"])`).
/// `where_` names the source in errors; each row's line is its index + 1.
///
/// # Errors
///
/// As [`import`] for the `routerbench` format.
pub fn import_routerbench_rows(
    where_: &str,
    rows: Vec<Vec<(String, String)>>,
    options: &ImportOptions,
) -> Result<DatasetDraft> {
    let mut table = WideTable::default();
    for (i, cells) in rows.into_iter().enumerate() {
        table.push(where_, i + 1, cells)?;
    }
    let mut draft = table.into_draft(options)?;
    draft.apply_split_rule();
    Ok(draft)
}

#[derive(Default)]
struct WideTable {
    models: Vec<String>,
    /// Per row: id, prompt, task, per model (score, cost, answer length).
    rows: Vec<WideRow>,
    ids: HashMap<String, (String, usize)>,
}

struct WideRow {
    id: String,
    prompt: String,
    task: Option<String>,
    cells: Vec<(Option<f64>, Option<f64>, Option<u64>)>,
}

impl WideTable {
    fn push(&mut self, file: &str, line: usize, cells: Vec<(String, String)>) -> Result<()> {
        let bad = |msg: String| Error::format_at(file, line, msg);
        let mut models: Vec<&str> = cells
            .iter()
            .map(|(h, _)| h.as_str())
            .filter(|h| !ROUTERBENCH_FIXED.contains(h) && !h.contains('|'))
            .collect();
        models.sort_unstable();
        if self.models.is_empty() {
            if models.is_empty() {
                return Err(bad("no model score column".into()));
            }
            self.models = models.iter().map(|s| s.to_string()).collect();
        } else if self.models != models {
            return Err(bad(format!(
                "its model columns {models:?} differ from the first row's {:?}",
                self.models
            )));
        }
        let get = |name: &str| {
            cells
                .iter()
                .find(|(h, _)| h == name)
                .map(|(_, v)| v.as_str())
        };
        let prompt = get("prompt")
            .ok_or_else(|| bad("field \"prompt\" is missing".into()))?
            .to_string();
        let id = match get("sample_id") {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => format!("routerbench-{}", self.rows.len()),
        };
        if let Some((f, l)) = self.ids.insert(id.clone(), (file.to_string(), line)) {
            return Err(bad(format!("sample_id {id:?} appears earlier, at {f}:{l}")));
        }
        let number = |field: &str, v: Option<&str>| -> Result<Option<f64>> {
            match v.map(str::trim) {
                None | Some("" | "nan" | "NaN" | "None") => Ok(None),
                Some(s) => s
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| bad(format!("field {field:?}: {s:?} is not a number"))),
            }
        };
        let mut out = Vec::with_capacity(self.models.len());
        for model in &self.models {
            let score = match get(model).map(str::trim) {
                Some(s) if bool_score(s).is_some() && !s.contains('.') => bool_score(s),
                v => number(model, v)?,
            };
            if let Some(s) = score {
                if !(0.0..=1.0).contains(&s) {
                    return Err(bad(format!("field {model:?}: score {s} outside [0, 1]")));
                }
            }
            let cost_field = format!("{model}|total_cost");
            let cost = number(&cost_field, get(&cost_field))?;
            if let Some(c) = cost {
                if !(c.is_finite() && c >= 0.0) {
                    return Err(bad(format!(
                        "field {cost_field:?}: cost {c} is not a non-negative number"
                    )));
                }
            }
            let chars = get(&format!("{model}|model_response"))
                .filter(|s| !s.is_empty())
                .map(|s| s.chars().count() as u64);
            out.push((score, cost.filter(|_| score.is_some()), chars));
        }
        self.rows.push(WideRow {
            id,
            prompt,
            task: get("eval_name")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            cells: out,
        });
        Ok(())
    }

    fn into_draft(self, options: &ImportOptions) -> Result<DatasetDraft> {
        if self.rows.is_empty() {
            return Err(Error::InvalidInput(
                "the RouterBench table has no row".into(),
            ));
        }
        let default_out = options.default_output_tokens.unwrap_or(256.0);
        let (pool, note, roles) = match &options.models {
            Some(p) => {
                let given = super::schema::read_models(p)?;
                let mut cards = Vec::new();
                let mut roles = Vec::new();
                for id in &self.models {
                    let j = given.pool.index_of(id).map_err(|_| {
                        Error::InvalidInput(format!(
                            "model {id:?} of the table is not in {}",
                            p.display()
                        ))
                    })?;
                    cards.push(given.pool.card(j).clone());
                    roles.push(given.roles[j].clone());
                }
                (
                    ModelPool::new(cards)?,
                    format!("prices from {}", p.display()),
                    roles,
                )
            }
            None => {
                // One price per model (input = output) such that the SCHEMA.md estimate, summed
                // over the rows with an observed cost, equals the observed costs' sum.
                let mut cards = Vec::new();
                for (j, id) in self.models.iter().enumerate() {
                    let (mut cost, mut mtok) = (0.0f64, 0.0f64);
                    for r in &self.rows {
                        if let (_, Some(c), chars) = r.cells[j] {
                            cost += c;
                            let out = chars.map_or(default_out, |n| n as f64 / 4.0);
                            mtok += (super::prompt_tokens_of(&r.prompt) + out) / 1e6;
                        }
                    }
                    let price = if mtok > 0.0 { cost / mtok } else { 0.0 };
                    cards.push(
                        ModelCard::new(id.clone(), price, price)
                            .with_default_output_tokens(default_out),
                    );
                }
                (
                    ModelPool::new(cards)?,
                    "no price list given: each model's price (input = output, USD per 1M tokens) \
                     is fitted to its observed total_cost; per-query costs are the observed ones"
                        .to_string(),
                    vec![None; self.models.len()],
                )
            }
        };
        let m = pool.len();
        let mut draft = DatasetDraft::new(pool, "RouterBench wide table (withmartian/routerbench)");
        draft.roles = roles;
        draft.price_note = note;
        for w in self.rows {
            let mut r = DraftRow::new(w.id, w.prompt, m);
            r.task = w.task;
            for (j, (s, c, chars)) in w.cells.into_iter().enumerate() {
                r.scores[j] = s;
                r.cost_usd[j] = c;
                r.output_chars[j] = chars;
            }
            draft.rows.push(r);
        }
        Ok(draft)
    }
}

/// Decodes a logged embedding: `dim` little-endian float16 in standard base64.
fn decode_f16_base64(data: &str, dim: usize) -> std::result::Result<Vec<f32>, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("embedding.data is not base64: {e}"))?;
    if bytes.len() != dim * 2 {
        return Err(format!(
            "embedding.data holds {} bytes for dim {dim} (expected {})",
            bytes.len(),
            dim * 2
        ));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect())
}

fn import_gateway_log(inputs: &[PathBuf], models: super::schema::Models) -> Result<DatasetDraft> {
    let m = models.pool.len();
    let mut draft = DatasetDraft::new(models.pool, "the Pointsman gateway's decision log");
    draft.roles = models.roles;
    draft.price_note = "prices from the models.json given to the import; per-query costs are the \
                        logged ones"
        .into();
    // request id -> row index, and the embedding model's name.
    let mut decided: HashMap<String, usize> = HashMap::new();
    let mut rows: Vec<(DraftRow, usize, bool)> = Vec::new();
    let mut embedding_model: Option<String> = None;
    for path in inputs {
        let display = path.display().to_string();
        let (file, _) = crate::files::open_regular(path)?;
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let lineno = i + 1;
            let line = line.map_err(|e| Error::io(path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |msg: String| Error::format_at(&display, lineno, msg);
            let v: Value =
                serde_json::from_str(&line).map_err(|e| bad(format!("malformed json: {e}")))?;
            let text = |f: &str| v.get(f).and_then(Value::as_str);
            let request = text("request_id")
                .ok_or_else(|| bad("field \"request_id\" missing or not text".into()))?
                .to_string();
            match text("event") {
                Some("decision") => {
                    // Only answered requests can be labelled.
                    let (Some(model), None) = (text("model"), text("error")) else {
                        continue;
                    };
                    let j = draft.pool.index_of(model).map_err(|_| {
                        bad(format!(
                            "field \"model\": {model:?} is not in the models.json"
                        ))
                    })?;
                    let e = v
                        .get("embedding")
                        .filter(|e| !e.is_null())
                        .ok_or_else(|| bad("field \"embedding\" is null: the request was not routed, or the log predates embeddings".into()))?;
                    let dim = e
                        .get("dim")
                        .and_then(Value::as_u64)
                        .filter(|d| *d > 0)
                        .ok_or_else(|| {
                            bad("field \"embedding.dim\" missing or not positive".into())
                        })?;
                    match e.get("encoding").and_then(Value::as_str) {
                        Some("f16le-base64") => {}
                        other => {
                            return Err(bad(format!(
                                "field \"embedding.encoding\": {other:?} is not \"f16le-base64\""
                            )))
                        }
                    }
                    let data = e.get("data").and_then(Value::as_str).ok_or_else(|| {
                        bad("field \"embedding.data\" missing or not text".into())
                    })?;
                    let vector = decode_f16_base64(data, dim as usize).map_err(bad)?;
                    let name = e.get("model").and_then(Value::as_str).unwrap_or_default();
                    match &embedding_model {
                        None => embedding_model = Some(name.to_string()),
                        Some(seen) if seen != name => {
                            return Err(bad(format!(
                                "field \"embedding.model\": {name:?}, earlier lines {seen:?}"
                            )))
                        }
                        Some(_) => {}
                    }
                    let mut r =
                        DraftRow::new(request.clone(), text("prompt").unwrap_or_default(), m);
                    r.embedding = Some(vector);
                    r.cost_usd[j] = v.get("cost_usd").and_then(Value::as_f64);
                    // The logged probability is the chosen model's; a failover's answer has none.
                    if text("chosen") == Some(model) {
                        r.propensity[j] = v
                            .get("probability")
                            .and_then(Value::as_f64)
                            .filter(|p| *p > 0.0 && *p <= 1.0);
                    }
                    if decided.insert(request.clone(), rows.len()).is_some() {
                        return Err(bad(format!("request {request:?} has a second decision")));
                    }
                    rows.push((r, j, false));
                }
                Some("feedback") => {
                    if text("error").is_some() {
                        continue;
                    }
                    let Some(quality) = v.get("quality").and_then(Value::as_f64) else {
                        continue;
                    };
                    if !(0.0..=1.0).contains(&quality) {
                        return Err(bad(format!("field \"quality\": {quality} outside [0, 1]")));
                    }
                    let &r = decided.get(&request).ok_or_else(|| {
                        bad(format!(
                            "feedback for request {request:?} before (or without) its decision"
                        ))
                    })?;
                    let (row, j, labelled) = &mut rows[r];
                    let j = *j;
                    if *labelled {
                        return Err(bad(format!("request {request:?} has a second feedback")));
                    }
                    row.scores[j] = Some(quality);
                    if let Some(c) = v.get("cost_usd").and_then(Value::as_f64) {
                        row.cost_usd[j] = Some(c);
                    }
                    *labelled = true;
                }
                other => {
                    return Err(bad(format!(
                        "field \"event\": {other:?} is neither \"decision\" nor \"feedback\""
                    )))
                }
            }
        }
    }
    for (mut row, _, labelled) in rows {
        if !labelled {
            continue;
        }
        // The answering model's propensity only counts with its score.
        for j in 0..m {
            if row.scores[j].is_none() {
                row.propensity[j] = None;
                row.cost_usd[j] = None;
            }
        }
        draft.rows.push(row);
    }
    if draft.rows.is_empty() {
        return Err(Error::InvalidInput(
            "the decision log has no answered request with feedback".into(),
        ));
    }
    draft.embeddings_from_rows(embedding_model.as_deref().unwrap_or_default())?;
    Ok(draft)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A RouterBench sample in its column layout: two models, one score missing.
    const ROUTERBENCH: &str = "sample_id,prompt,eval_name,oracle_model_to_route_to,\
gpt-4-1106-preview,gpt-4-1106-preview|model_response,gpt-4-1106-preview|total_cost,\
meta/llama-2-70b-chat,meta/llama-2-70b-chat|model_response,meta/llama-2-70b-chat|total_cost\n\
mmlu.a.1,\"['What is 2+2?']\",mmlu-a,gpt-4-1106-preview,1.0,four,0.0003,0.0,five,0.00009\n\
gsm8k.7,\"['Tom has 3 apples, then 2 more.']\",gsm8k,meta/llama-2-70b-chat,1,\"5, he has 5\",0.0021,1,5,0.0004\n\
mtbench.3,\"['Write a haiku']\",mt-bench,gpt-4-1106-preview,0.9,\"Autumn moonlight\",0.0010,,,\n";

    #[test]
    fn a_routerbench_table_becomes_a_dataset_with_observed_costs() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(dir.path(), "routerbench_0shot.csv", ROUTERBENCH);
        let draft = import(
            ImportFormat::Routerbench,
            std::slice::from_ref(&csv),
            &ImportOptions::default(),
        )
        .unwrap();
        assert_eq!(
            draft.pool.ids().collect::<Vec<_>>(),
            ["gpt-4-1106-preview", "meta/llama-2-70b-chat"]
        );
        assert_eq!(draft.rows.len(), 3);
        let r = &draft.rows[1];
        assert_eq!(
            (r.id.as_str(), r.task.as_deref()),
            ("gsm8k.7", Some("gsm8k"))
        );
        assert_eq!(r.scores, vec![Some(1.0), Some(1.0)]);
        assert_eq!(r.cost_usd, vec![Some(0.0021), Some(0.0004)]);
        assert_eq!(r.output_chars, vec![Some(11), Some(1)]);
        // The missing score is a missing label, and its cost is not kept.
        assert_eq!(draft.rows[2].scores, vec![Some(0.9), None]);
        assert_eq!(draft.rows[2].cost_usd[1], None);
        assert!(draft.split_rule.is_some());
        // Without a price list, the fitted price reproduces the observed costs' sum.
        let ds = super::super::Dataset::from_draft("rb", &draft).unwrap();
        let card = ds.pool().card(0);
        let estimated: f64 = draft
            .rows
            .iter()
            .map(|r| {
                card.estimate_cost(
                    super::super::prompt_tokens_of(&r.prompt),
                    r.output_chars[0].map(|c| c as f64 / 4.0),
                )
            })
            .sum();
        assert!(
            (estimated - (0.0003 + 0.0021 + 0.0010)).abs() < 1e-12,
            "{estimated}"
        );
        // Bad input names the file, the line and the field.
        let bad = write(
            dir.path(),
            "bad.csv",
            &ROUTERBENCH.replace("0.0,five,0.00009", "0.0,five,lots"),
        );
        let e = import(ImportFormat::Routerbench, &[bad], &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad.csv:2:") && e.contains("meta/llama-2-70b-chat|total_cost"),
            "{e}"
        );
        let bad = write(
            dir.path(),
            "bad2.csv",
            &ROUTERBENCH.replace(",1.0,four", ",1.5,four"),
        );
        let e = import(ImportFormat::Routerbench, &[bad], &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad2.csv:2:") && e.contains("outside [0, 1]"),
            "{e}"
        );
        // The same rows as (column, value) pairs, as the Python package passes a pickle's.
        let rows: Vec<Vec<(String, String)>> = {
            let mut reader = csv::Reader::from_path(&csv).unwrap();
            let h = reader.headers().unwrap().clone();
            reader
                .records()
                .map(|r| {
                    let r = r.unwrap();
                    h.iter()
                        .zip(r.iter())
                        .map(|(a, b)| (a.into(), b.into()))
                        .collect()
                })
                .collect()
        };
        let again = import_routerbench_rows("x.pkl", rows, &ImportOptions::default()).unwrap();
        assert_eq!(again.rows, draft.rows);
    }

    fn embedding(values: &[f32]) -> String {
        use base64::Engine;
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn decision(id: &str, chosen: &str, model: &str, p: f64, e: &[f32]) -> String {
        serde_json::json!({
            "event": "decision", "schema": 1, "request_id": id, "time_ms": 1,
            "embedding": {"model": "all-MiniLM-L6-v2", "dim": e.len(), "encoding": "f16le-base64",
                          "data": embedding(e)},
            "chosen": chosen, "probability": p, "model": model, "status": 200, "error": null,
            "cost_usd": 0.001, "prompt": null
        })
        .to_string()
    }

    fn feedback(id: &str, quality: f64) -> String {
        serde_json::json!({"event": "feedback", "schema": 1, "request_id": id, "time_ms": 2,
                           "quality": quality, "cost_usd": null, "model": null, "learned": false,
                           "status": 200, "error": null})
        .to_string()
    }

    #[test]
    fn a_decision_log_with_feedback_becomes_partial_labels_with_propensities() {
        let dir = tempfile::tempdir().unwrap();
        let models = write(
            dir.path(),
            "models.json",
            r#"{"models": {"small": {"input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.1},
                           "large": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}}}"#,
        );
        let failed = serde_json::json!({"event": "decision", "schema": 1, "request_id": "pm-4",
            "embedding": null, "model": null, "status": 502, "error": "upstream_failed"});
        let log = [
            decision("pm-1", "small", "small", 0.5, &[0.6, 0.8]),
            decision("pm-2", "large", "large", 1.0, &[1.0, 0.0]),
            decision("pm-3", "large", "small", 0.5, &[0.0, 1.0]),
            failed.to_string(),
            feedback("pm-1", 1.0),
            feedback("pm-3", 0.25),
        ]
        .join("\n");
        let path = write(dir.path(), "decisions.jsonl", &log);
        let options = ImportOptions {
            models: Some(models),
            ..Default::default()
        };
        let draft = import(ImportFormat::GatewayLog, &[path], &options).unwrap();
        // pm-2 has no feedback and pm-4 no answer: two queries, one model each.
        assert_eq!(draft.rows.len(), 2);
        let large = draft.pool.index_of("large").unwrap();
        let small = draft.pool.index_of("small").unwrap();
        let r = &draft.rows[0];
        assert_eq!(r.id, "pm-1");
        assert_eq!((r.scores[small], r.scores[large]), (Some(1.0), None));
        assert_eq!(r.propensity[small], Some(0.5));
        assert_eq!(r.cost_usd[small], Some(0.001));
        // A failover's answer (chosen large, answered by small) has no known propensity.
        assert_eq!(draft.rows[1].scores[small], Some(0.25));
        assert_eq!(draft.rows[1].propensity[small], None);
        let e = draft.embeddings.as_ref().unwrap();
        assert_eq!((e.dim, e.model.as_str()), (2, "all-MiniLM-L6-v2"));
        assert_eq!(
            &e.data[..2],
            &[
                half::f16::from_f32(0.6).to_f32(),
                half::f16::from_f32(0.8).to_f32()
            ]
        );
        // Written and loaded back: a partial dataset with the logged embeddings.
        let out = dir.path().join("fromlog");
        draft.write(&out, false).unwrap();
        let ds = super::super::Dataset::load(&out).unwrap();
        assert!(ds.has_embeddings() && ds.len() == 2);
        // Errors name the file, the line and the field.
        let bad = write(
            dir.path(),
            "bad.jsonl",
            &[decision("pm-1", "tiny", "tiny", 1.0, &[1.0, 0.0])].join("\n"),
        );
        let e = import(ImportFormat::GatewayLog, &[bad], &options)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.jsonl:1:") && e.contains("\"model\""), "{e}");
        let bad = write(
            dir.path(),
            "bad2.jsonl",
            &[
                decision("pm-1", "small", "small", 1.0, &[1.0, 0.0]),
                feedback("pm-1", 3.0),
            ]
            .join("\n"),
        );
        let e = import(ImportFormat::GatewayLog, &[bad], &options)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad2.jsonl:2:") && e.contains("\"quality\""),
            "{e}"
        );
        // A models.json is required.
        let e = import(ImportFormat::GatewayLog, &[out], &ImportOptions::default()).unwrap_err();
        assert!(e.to_string().contains("models.json"), "{e}");
    }

    #[test]
    fn format_names_round_trip_and_unknown_ones_are_refused() {
        for f in ImportFormat::ALL {
            assert_eq!(f.name().parse::<ImportFormat>().unwrap(), f);
        }
        let e = "routerbanch"
            .parse::<ImportFormat>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("routerbanch") && e.contains("gateway-log"),
            "{e}"
        );
    }
}
