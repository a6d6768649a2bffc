//! The importer of the gateway's decision log with feedback (see [the module documentation](super)).

use super::*;

/// Decodes a logged embedding: `dim` little-endian float16 in standard base64.
pub(super) fn decode_f16_base64(data: &str, dim: usize) -> std::result::Result<Vec<f32>, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("embedding.data is not base64: {e}"))?;
    let expected = dim
        .checked_mul(2)
        .ok_or_else(|| format!("embedding.dim {dim} is too large"))?;
    if bytes.len() != expected {
        return Err(format!(
            "embedding.data holds {} bytes for dim {dim} (expected {expected})",
            bytes.len(),
        ));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect())
}

/// Largest logged embedding width read (MiniLM's is 384).
const MAX_LOGGED_DIM: u64 = 1 << 16;

/// A logged `cost_usd`: absent or null, or a number in [0, `MAX_COST_USD`].
fn logged_cost(v: Option<&Value>) -> std::result::Result<Option<f64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(c) => c
            .as_f64()
            .filter(|c| (0.0..=crate::pool::MAX_COST_USD).contains(c))
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "field \"cost_usd\": {c} is not a number in [0, {:e}] USD",
                    crate::pool::MAX_COST_USD
                )
            }),
    }
}

/// The `dropped` reason (stats.json) of decisions that were passed through, not routed.
pub const PASSED_THROUGH: &str = "passed through to a named model (not routed: no embedding)";

/// The `dropped` reason (stats.json) of feedback for a request whose decision carries an error.
pub const UNANSWERED_FEEDBACK: &str =
    "feedback for a request the gateway did not answer (its decision carries an error)";

/// A feedback event, joined with its decision once the whole log is read.
struct Feedback {
    display: String,
    lineno: usize,
    request: String,
    quality: f64,
    cost: Option<f64>,
}

pub(super) fn import_gateway_log(
    inputs: &[PathBuf],
    models: crate::data::schema::Models,
) -> Result<DatasetDraft> {
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
    // Requests for a model by name, passed through unrouted.
    let mut passed: std::collections::HashSet<String> = std::collections::HashSet::new();
    // Requests whose decision carries an error or no model: nothing to label.
    let mut unanswered: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut feedback: Vec<Feedback> = Vec::new();
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
                crate::data::json::parse(&line).map_err(|e| bad(format!("malformed json: {e}")))?;
            let text = |f: &str| v.get(f).and_then(Value::as_str);
            let request = text("request_id")
                .ok_or_else(|| bad("field \"request_id\" missing or not text".into()))?
                .to_string();
            match text("event") {
                Some("decision") => {
                    // Only answered requests can be labelled.
                    let (Some(model), None) = (text("model"), text("error")) else {
                        unanswered.insert(request);
                        continue;
                    };
                    let routed = v.get("router").is_some_and(|r| !r.is_null());
                    let Some(e) = v.get("embedding").filter(|e| !e.is_null()) else {
                        if routed {
                            return Err(bad("field \"embedding\" is null for a routed request: \
                                            the log predates embeddings"
                                .into()));
                        }
                        // A model asked for by name and passed through: nothing was routed, so
                        // there is no embedding to learn from (its feedback is left out too).
                        if !passed.insert(request.clone()) || decided.contains_key(&request) {
                            return Err(bad(format!("request {request:?} has a second decision")));
                        }
                        *draft.dropped.entry(PASSED_THROUGH.into()).or_default() += 1;
                        continue;
                    };
                    let j = draft.pool.index_of(model).map_err(|_| {
                        bad(format!(
                            "field \"model\": {model:?} is not in the models.json"
                        ))
                    })?;
                    let dim = e
                        .get("dim")
                        .and_then(Value::as_u64)
                        .filter(|d| (1..=MAX_LOGGED_DIM).contains(d))
                        .ok_or_else(|| {
                            bad(format!(
                                "field \"embedding.dim\" missing or not in 1..={MAX_LOGGED_DIM}"
                            ))
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
                    // An observed cost only: without usable usage the gateway logs the
                    // expected cost, which is the router's estimate, not an outcome.
                    r.cost_usd[j] = match v.get("usage").filter(|u| u.is_object()) {
                        Some(_) => logged_cost(v.get("cost_usd")).map_err(bad)?,
                        None => None,
                    };
                    // The logged probability is the chosen model's; a failover's answer has none.
                    if text("chosen") == Some(model) {
                        r.propensity[j] = match v.get("probability") {
                            None | Some(Value::Null) => None,
                            Some(p) => {
                                Some(p.as_f64().filter(|p| *p > 0.0 && *p <= 1.0).ok_or_else(
                                    || {
                                        bad(format!(
                                            "field \"probability\": {p} is not a probability in \
                                             (0, 1]"
                                        ))
                                    },
                                )?)
                            }
                        };
                    }
                    if decided.insert(request.clone(), rows.len()).is_some()
                        || passed.contains(&request)
                    {
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
                    // Observed costs only (`cost_source` given or usage; logs written before
                    // the field existed have none, and their cost is taken as it was).
                    let observed = match v.get("cost_source").and_then(Value::as_str) {
                        None => true,
                        Some(source) => matches!(source, "given" | "usage"),
                    };
                    let cost = logged_cost(v.get("cost_usd"))
                        .map_err(bad)?
                        .filter(|_| observed);
                    // Joined once every line is read: earlier gateways could log a stream's
                    // feedback before the stream's decision, and the files of a log need not
                    // be given in order.
                    feedback.push(Feedback {
                        display: display.clone(),
                        lineno,
                        request,
                        quality,
                        cost,
                    });
                }
                other => {
                    return Err(bad(format!(
                        "field \"event\": {other:?} is neither \"decision\" nor \"feedback\""
                    )))
                }
            }
        }
    }
    for f in feedback {
        let bad = |msg: String| Error::format_at(&f.display, f.lineno, msg);
        let Some(&r) = decided.get(&f.request) else {
            if passed.contains(&f.request) {
                continue;
            }
            if unanswered.contains(&f.request) {
                // Earlier gateways took feedback on a stream that then failed or was
                // abandoned: there is no answer to label.
                *draft.dropped.entry(UNANSWERED_FEEDBACK.into()).or_default() += 1;
                continue;
            }
            return Err(bad(format!(
                "feedback for request {:?}, which no decision of the log has",
                f.request
            )));
        };
        let (row, j, labelled) = &mut rows[r];
        let j = *j;
        if *labelled {
            return Err(bad(format!(
                "request {:?} has a second feedback",
                f.request
            )));
        }
        row.scores[j] = Some(f.quality);
        if let Some(c) = f.cost {
            row.cost_usd[j] = Some(c);
        }
        *labelled = true;
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
