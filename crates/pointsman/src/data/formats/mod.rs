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

use std::collections::{HashMap, HashSet};
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
    // Options of another format are refused rather than ignored.
    if options.mt_bench && format != ImportFormat::Routellm {
        return Err(Error::InvalidInput(format!(
            "import --from {format}: the MT-Bench judgements are RouteLLM's (--from routellm)"
        )));
    }
    if format != ImportFormat::Log && options.mapping != LogMapping::default() {
        let what = if options.mapping.duplicates == LogMapping::default().duplicates {
            "the field mapping (--prompt-field, --split-field, ...)"
        } else {
            "--duplicates"
        };
        return Err(Error::InvalidInput(format!(
            "import --from {format}: {what} is for --from log"
        )));
    }
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
    draft.inputs = inputs
        .iter()
        .cloned()
        .chain(options.models.clone())
        .collect();
    Ok(draft)
}

/// Reads the CSV file `path` (a header line, then records), calling `each` with each record's
/// line number (the line it starts on: quoted fields may span lines), the header and the record.
///
/// # Errors
///
/// [`Error::Format`] naming the file and line of malformed CSV; the errors of `each`.
pub(crate) fn read_csv(
    path: &Path,
    mut each: impl FnMut(usize, &csv::StringRecord, &csv::StringRecord) -> Result<()>,
) -> Result<()> {
    let display = path.display().to_string();
    let (file, _) = crate::files::open_regular(path)?;
    // Lines counted from the records' byte offsets: the csv crate's own line count is off
    // after a CRLF line ending (Python's csv module writes CRLF by default).
    let newlines = std::rc::Rc::new(std::cell::RefCell::new(Newlines::default()));
    let mut reader = csv::Reader::from_reader(CountNewlines {
        inner: file,
        offset: 0,
        newlines: newlines.clone(),
    });
    let headers = reader
        .headers()
        .map_err(|e| Error::format_at(&display, 1, format!("bad csv header: {e}")))?
        .clone();
    // A repeated column name would leave which of its values is read to the importer's lookup
    // (the first, or the last): refused, as a JSON line's repeated key is.
    let mut seen = HashSet::new();
    if let Some(name) = headers.iter().find(|h| !seen.insert(*h)) {
        return Err(Error::format_at(
            &display,
            1,
            format!("column {name:?} appears twice in the header"),
        ));
    }
    let line_of =
        |pos: Option<&csv::Position>| pos.map_or(0, |p| newlines.borrow_mut().line_at(p.byte()));
    for rec in reader.records() {
        let rec = rec.map_err(|e| {
            let line = line_of(e.position());
            Error::format_at(&display, line, format!("bad csv: {e}"))
        })?;
        let line = line_of(rec.position());
        each(line, &headers, &rec)?;
    }
    Ok(())
}

/// The byte offsets of the newlines read so far and not yet passed, and of the first byte of
/// each line that is not a line ending (where a record's text can start).
#[derive(Debug)]
struct Newlines {
    ahead: std::collections::VecDeque<u64>,
    starts: std::collections::VecDeque<u64>,
    passed: usize,
    after_ending: bool,
}

impl Default for Newlines {
    fn default() -> Self {
        Newlines {
            ahead: Default::default(),
            starts: Default::default(),
            passed: 0,
            after_ending: true,
        }
    }
}

impl Newlines {
    /// The line of a record whose position is byte `offset` (1-based); offsets must not
    /// decrease between calls. The csv crate places a record where the last one ended, before
    /// the line endings and blank lines it skips: the record's line is that of its first byte
    /// that is not a line ending.
    fn line_at(&mut self, offset: u64) -> usize {
        while self.starts.front().is_some_and(|&s| s < offset) {
            self.starts.pop_front();
        }
        let start = self.starts.front().copied().unwrap_or(offset);
        while self.ahead.front().is_some_and(|&n| n < start) {
            self.ahead.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

/// A reader that notes where its newlines and its lines' first bytes are.
struct CountNewlines<R> {
    inner: R,
    offset: u64,
    newlines: std::rc::Rc<std::cell::RefCell<Newlines>>,
}

impl<R: Read> Read for CountNewlines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut lines = self.newlines.borrow_mut();
        for (i, &b) in buf[..n].iter().enumerate() {
            let at = self.offset + i as u64;
            let ending = b == b'\n' || b == b'\r';
            if b == b'\n' {
                lines.ahead.push_back(at);
            } else if !ending && lines.after_ending {
                lines.starts.push_back(at);
            }
            lines.after_ending = ending;
        }
        self.offset += n as u64;
        Ok(n)
    }
}

fn parse_json_file(path: &Path) -> Result<Value> {
    crate::data::json::parse(&crate::files::read_regular_to_string(path)?)
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

mod gateway_log;
mod llmrouter;
mod routellm;
mod routerbench;
#[cfg(test)]
mod tests;

use gateway_log::*;
use llmrouter::*;
use routellm::*;
pub use routerbench::import_routerbench_rows;
use routerbench::*;
