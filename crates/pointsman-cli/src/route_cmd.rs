//! `pointsman route`: route queries read as JSON lines from stdin with a saved router. A line
//! carries either the query's text (embedded in-process) or its embedding; with `--policy`, the
//! decision-time policy's request keys too (tenant, user, session, needs, metadata, expected
//! output tokens) and each output line carries the policy's audit.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Result;
use pointsman::{Objective, QueryFeatures};
use serde::Deserialize;
use serde_json::Value;

/// Arguments of `pointsman route`.
#[derive(Debug, Clone, clap::Args)]
pub struct RouteArgs {
    /// A router saved by `pointsman train`.
    #[arg(long, value_name = "FILE")]
    pub router: PathBuf,

    /// Quality points per USD of expected cost [default: 0, or the policy's with --policy].
    #[arg(long)]
    pub cost_weight: Option<f64>,

    /// Only choose among these models (comma-separated ids).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub allowed: Option<Vec<String>>,

    /// A decision-time policy file (JSON, or TOML for .toml; docs/policies.md) applied to every
    /// line: rules, capabilities, guard, caps, budgets and stickiness, with the audit in each
    /// output line. Its budgets and sessions live for this run.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// With --policy: charge each decision's expected cost to its budgets, as if every call
    /// cost what the router expects (to plan a batch under a budget; callers that know the
    /// actual costs record them through the library or the gateway).
    #[arg(long, requires = "policy")]
    pub charge_expected: bool,

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
    // The policy's request keys (with --policy only).
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    needs: Vec<String>,
    #[serde(default)]
    metadata: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    expected_output_tokens: Option<f64>,
}

impl Query {
    /// The policy keys the line carries, by name.
    fn policy_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        for (set, name) in [
            (self.tenant.is_some(), "tenant"),
            (self.user.is_some(), "user"),
            (self.session.is_some(), "session"),
            (!self.needs.is_empty(), "needs"),
            (!self.metadata.is_empty(), "metadata"),
            (
                self.expected_output_tokens.is_some(),
                "expected_output_tokens",
            ),
        ] {
            if set {
                keys.push(name);
            }
        }
        keys
    }
}

/// What one line of input came to: a decision, or why there is none. `Fatal` errors (the
/// embedding model cannot be loaded) stop the command; a bad line does not, nor does a policy's
/// refusal (which carries the policy's audit).
enum LineError {
    Bad(String),
    Refused(String, Value),
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
    // --allowed reads as --routers does: entries trimmed, empty ones (a trailing comma) skipped.
    let mut args = args.clone();
    if let Some(ids) = &mut args.allowed {
        ids.iter_mut().for_each(|id| *id = id.trim().to_string());
        ids.retain(|id| !id.is_empty());
        if ids.is_empty() {
            anyhow::bail!("--allowed names no model");
        }
    }
    let args = &args;
    let router: std::sync::Arc<dyn pointsman::Router> =
        std::sync::Arc::from(pointsman::load_router(&args.router)?);
    let mut objective = Objective::new(args.cost_weight.unwrap_or(0.0));
    objective.allowed = args.allowed.clone().map(pointsman::Allowed::Ids);
    objective.resolve(router.models())?;
    let policy = match &args.policy {
        Some(path) => Some(pointsman::policy::PolicyRouter::new(
            router.clone(),
            pointsman::policy::Policy::load(path)?,
        )?),
        None => None,
    };
    let mut embedder: Option<pointsman::embed::Embedder> = None;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut routed, mut failed) = (0usize, Vec::new());
    // Lines as bytes: one that is not UTF-8 is a bad line like any other, not the end of input.
    for (i, line) in stdin.lock().split(b'\n').enumerate() {
        let mut line = line.map_err(|e| {
            pointsman::Error::format_at("stdin", i + 1, format!("cannot read: {e}"))
        })?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let line = String::from_utf8(line);
        if line.as_deref().is_ok_and(|l| l.trim().is_empty()) {
            continue;
        }
        let (id, routed_line) = match line.as_deref().map(serde_json::from_str::<Query>) {
            Err(e) => (
                None,
                Err(LineError::Bad(format!(
                    "not UTF-8 text (byte {} is not)",
                    e.utf8_error().valid_up_to() + 1
                ))),
            ),
            Ok(Ok(q)) => (
                q.id.clone(),
                route_query(args, &*router, policy.as_ref(), &objective, &mut embedder, q),
            ),
            // The line did not parse as a query; its id, when it is a JSON object with one,
            // still goes on the error record.
            Ok(Err(e)) => (serde_json::from_str::<Value>(line.as_deref().unwrap_or_default()).ok().and_then(|v| v.get("id").cloned()), Err(LineError::Bad(format!(
                "expected {{\"text\": \"...\"}} or {{\"embedding\": [...]}}, with \"prompt_tokens\"?, \"task\"?, \"id\"? (and with --policy \"tenant\"?, \"user\"?, \"session\"?, \"needs\"?, \"metadata\"?, \"expected_output_tokens\"?): {e}"
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
            Err(LineError::Refused(message, audit)) => {
                let mut record = error_record(id, i + 1, &message);
                record.push("audit", audit);
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
    policy: Option<&pointsman::policy::PolicyRouter>,
    objective: &Objective,
    embedder: &mut Option<pointsman::embed::Embedder>,
    mut q: Query,
) -> std::result::Result<Record, LineError> {
    if policy.is_none() {
        if let Some(key) = q.policy_keys().first() {
            return Err(LineError::Bad(format!(
                "\"{key}\" is a policy key: route with --policy FILE to use it"
            )));
        }
    }
    let text = q.text.take();
    let (mut features, tokens) = match (&text, q.embedding.take()) {
        (Some(text), None) => {
            if embedder.is_none() {
                let loaded = args.model.load().map_err(LineError::Fatal)?;
                // A router made for other embeddings cannot route any text: one error for the
                // run, not one per line.
                pointsman::embed::check_compatible(&loaded, router)
                    .map_err(|e| LineError::Fatal(e.into()))?;
                *embedder = Some(loaded);
            }
            let embedder = embedder.as_ref().expect("loaded above");
            let (features, info) = embedder.features(text)?;
            (features, Some(info))
        }
        (None, Some(embedding)) => {
            let mut features = QueryFeatures::new(embedding)?;
            if let Some(m) = q.embedding_model.take() {
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
    if let Some(t) = q.task.take() {
        features = features.with_task(t);
    }
    let (decision, audit) = match policy {
        None => (router.route(&features, objective)?, None),
        Some(policy) => {
            let req = policy_request(args, &features, text.as_deref(), &mut q);
            let (decided, audit) = policy.route_audited(&req);
            let audit = serde_json::to_value(&audit).map_err(|e| LineError::Fatal(e.into()))?;
            let decision = decided.map_err(|e| LineError::Refused(e.to_string(), audit.clone()))?;
            if args.charge_expected {
                policy.record(&req, Some(&decision.model_id), decision.cost)?;
            }
            (decision, Some(audit))
        }
    };
    let mut extra = Vec::new();
    if let Some(audit) = audit {
        extra.push(("audit", audit));
    }
    if let Some(info) = tokens {
        extra.push(("tokens", info.tokens.into()));
        extra.push(("truncated", info.truncated.into()));
    }
    decision_record(q.id, &decision, extra).map_err(|e| LineError::Fatal(e.into()))
}

/// The policy's request for one line: the line's keys, the command's cost weight and allowed
/// models.
fn policy_request<'a>(
    args: &RouteArgs,
    features: &'a QueryFeatures,
    text: Option<&'a str>,
    q: &mut Query,
) -> pointsman::policy::Request<'a> {
    let mut req = pointsman::policy::Request::new(features);
    if let Some(text) = text {
        req = req.with_text(text);
    }
    // The command's --cost-weight applies when given; otherwise the policy's own.
    if let Some(w) = args.cost_weight {
        req = req.with_cost_weight(w);
    }
    if let Some(ids) = &args.allowed {
        req = req.with_allowed(ids.iter().cloned());
    }
    if let Some(t) = q.tenant.take() {
        req = req.with_tenant(t);
    }
    if let Some(u) = q.user.take() {
        req = req.with_user(u);
    }
    if let Some(s) = q.session.take() {
        req = req.with_session(s);
    }
    for need in std::mem::take(&mut q.needs) {
        req = req.with_need(need);
    }
    for (k, v) in std::mem::take(&mut q.metadata) {
        req = req.with_metadata(k, v);
    }
    if let Some(t) = q.expected_output_tokens {
        req = req.with_expected_output_tokens(t);
    }
    req
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
