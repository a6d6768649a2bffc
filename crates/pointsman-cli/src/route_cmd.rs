//! `pointsman route`: route queries read as JSON lines from stdin with a saved router. A line
//! carries either the query's text (embedded in-process) or its embedding.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Result;
use pointsman::{Objective, QueryFeatures};
use serde::Deserialize;
use serde_json::Value;

/// Arguments of `pointsman route`.
#[derive(Debug, clap::Args)]
pub struct RouteArgs {
    /// A router saved by `pointsman train`.
    #[arg(long, value_name = "FILE")]
    pub router: PathBuf,

    /// Quality points per USD of expected cost.
    #[arg(long, default_value_t = 0.0)]
    pub cost_weight: f64,

    /// Only choose among these models (comma-separated ids).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub allowed: Option<Vec<String>>,

    /// The embedding model for lines that carry text (loaded at the first such line).
    #[command(flatten)]
    pub model: crate::embed_cmd::ModelArgs,
}

/// One input line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    embedding: Option<Vec<f32>>,
    #[serde(default)]
    prompt_tokens: Option<f64>,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    embedding_model: Option<String>,
}

/// What one line of input came to: a decision, or why there is none. `Fatal` errors (the
/// embedding model cannot be loaded) stop the command; a bad line does not.
enum LineError {
    Bad(String),
    Fatal(anyhow::Error),
}

impl From<pointsman::Error> for LineError {
    fn from(e: pointsman::Error) -> Self {
        LineError::Bad(e.to_string())
    }
}

/// `pointsman route`: one output line per input line that is not blank, in input order. A line
/// that cannot be routed gets an error record (`{"id"?, "line", "error"}`) and the lines after it
/// are still routed; the command then fails at the end, naming how many lines failed and the
/// first of them.
pub fn route(args: &RouteArgs) -> Result<()> {
    let router = pointsman::load_router(&args.router)?;
    let mut objective = Objective::new(args.cost_weight);
    objective.allowed = args.allowed.clone().map(pointsman::Allowed::Ids);
    objective.resolve(router.models())?;
    let mut embedder: Option<pointsman::embed::Embedder> = None;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut routed, mut failed) = (0usize, Vec::new());
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = line.map_err(|e| {
            pointsman::Error::format_at("stdin", i + 1, format!("cannot read: {e}"))
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let (id, routed_line) = match serde_json::from_str::<Query>(&line) {
            Ok(q) => (q.id.clone(), route_query(args, &*router, &objective, &mut embedder, q)),
            Err(e) => (None, Err(LineError::Bad(format!(
                "expected {{\"text\": \"...\"}} or {{\"embedding\": [...]}}, with \"prompt_tokens\"?, \"task\"?, \"id\"?: {e}"
            )))),
        };
        let record = match routed_line {
            Ok(record) => {
                routed += 1;
                record
            }
            Err(LineError::Fatal(e)) => {
                out.flush()?;
                return Err(e);
            }
            Err(LineError::Bad(message)) => {
                let record = error_record(id, i + 1, &message);
                failed.push(format!("stdin:{}: {message}", i + 1));
                record
            }
        };
        serde_json::to_writer(&mut out, &record)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    match failed.first() {
        None => Ok(()),
        Some(first) => anyhow::bail!(
            "{} of {} lines not routed (error records on stdout); the first: {first}",
            failed.len(),
            failed.len() + routed
        ),
    }
}

/// Routes one parsed line.
fn route_query(
    args: &RouteArgs,
    router: &dyn pointsman::Router,
    objective: &Objective,
    embedder: &mut Option<pointsman::embed::Embedder>,
    q: Query,
) -> std::result::Result<Record, LineError> {
    let (mut features, tokens) = match (q.text, q.embedding) {
        (Some(text), None) => {
            if embedder.is_none() {
                *embedder = Some(args.model.load().map_err(LineError::Fatal)?);
            }
            let embedder = embedder.as_ref().expect("loaded above");
            let (features, info) = embedder.features(&text)?;
            (features, Some(info))
        }
        (None, Some(embedding)) => {
            let mut features = QueryFeatures::new(embedding)?;
            if let Some(m) = q.embedding_model {
                features = features.with_embedding_model(m);
            }
            (features, None)
        }
        _ => {
            return Err(LineError::Bad(
                "give exactly one of \"text\" and \"embedding\"".into(),
            ))
        }
    };
    if let Some(t) = q.prompt_tokens {
        features = features.with_prompt_tokens(t)?;
    }
    if let Some(t) = q.task {
        features = features.with_task(t);
    }
    let decision = router.route(&features, objective)?;
    let mut extra = Vec::new();
    if let Some(info) = tokens {
        extra.push(("tokens", info.tokens.into()));
        extra.push(("truncated", info.truncated.into()));
    }
    decision_record(q.id, &decision, extra).map_err(|e| LineError::Fatal(e.into()))
}

/// One output object whose keys keep the order they were added in (serde_json's own map sorts
/// them), with a decision's alternatives, each ordered the same way, last.
#[derive(Debug, Default)]
struct Record {
    fields: Vec<(String, Value)>,
    alternatives: Option<Vec<Record>>,
}

impl serde::Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in &self.fields {
            map.serialize_entry(k, v)?;
        }
        if let Some(alternatives) = &self.alternatives {
            map.serialize_entry("alternatives", alternatives)?;
        }
        map.end()
    }
}

impl Record {
    /// A record that starts with `id`, when there is one.
    fn with_id(id: Option<Value>) -> Record {
        Record {
            fields: id.map(|id| ("id".to_string(), id)).into_iter().collect(),
            alternatives: None,
        }
    }

    fn push(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.push((key.to_string(), value.into()));
    }

    /// Appends `object`'s fields in reading order: `first` as listed, then any others (sorted),
    /// then `last`.
    fn extend_ordered(&mut self, object: Value, first: &[&str], last: &[&str]) {
        let Value::Object(mut map) = object else {
            return;
        };
        let mut take = |keys: &[&str]| -> Vec<(String, Value)> {
            keys.iter()
                .filter_map(|k| map.remove(*k).map(|v| (k.to_string(), v)))
                .collect()
        };
        let head = take(first);
        let tail = take(last);
        self.fields.extend(head);
        self.fields.extend(map);
        self.fields.extend(tail);
    }
}

/// The order of a decision's keys: what was chosen and its figures first, the signals after any
/// other fields, the long list of alternatives last.
const DECISION_FIRST: &[&str] = &[
    "model_id",
    "model",
    "quality",
    "score",
    "cost",
    "utility",
    "cost_weight",
];

/// One decision as an output line: `id`, the decision's fields in reading order, `extra`, and the
/// alternatives last.
fn decision_record(
    id: Option<Value>,
    decision: &pointsman::Decision,
    extra: Vec<(&str, Value)>,
) -> serde_json::Result<Record> {
    let mut value = serde_json::to_value(decision)?;
    let alternatives = match value.as_object_mut().and_then(|m| m.remove("alternatives")) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    let mut record = Record::with_id(id);
    record.extend_ordered(value, DECISION_FIRST, &["signals"]);
    for (k, v) in extra {
        record.push(k, v);
    }
    record.alternatives = Some(
        alternatives
            .into_iter()
            .map(|a| {
                let mut r = Record::default();
                r.extend_ordered(a, DECISION_FIRST, &[]);
                r
            })
            .collect(),
    );
    Ok(record)
}

/// The output line of a line that could not be routed.
fn error_record(id: Option<Value>, line: usize, message: &str) -> Record {
    let mut record = Record::with_id(id);
    record.push("line", line);
    record.push("error", message);
    record
}
