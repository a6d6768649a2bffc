//! Reading the files of the shared schema: `models.json` and the JSONL records, each problem a
//! [`Error::Format`] naming the file, the line and the value.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

use super::json::parse as parse_json;
use super::{prompt_tokens_of, Winner};
use crate::error::{Error, Result};
use crate::pool::{ModelCard, ModelPool};

/// What `models.json` says: the pool, each model's role, and whether lines may lack scores.
pub(super) struct Models {
    pub(super) pool: ModelPool,
    pub(super) roles: Vec<Option<String>>,
    /// `"labels": "partial"`: a line may lack some models' scores (or all of them).
    pub(super) partial: bool,
    /// The models whose default answer length the file states (for the model, or for every
    /// model) rather than leaving it to the schema's default.
    pub(super) stated_output_tokens: std::collections::HashSet<String>,
}

pub(super) fn read_models(path: &Path) -> Result<Models> {
    let (mut file, _) = crate::files::open_regular(path)?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| Error::io(path, e))?;
    let bad = |m: String| Error::format(path.display(), m);
    let v: Value = parse_json(&text).map_err(|e| bad(format!("malformed json: {e}")))?;
    let default_out = match v.get("default_output_tokens") {
        None => 256.0,
        // The ranges of this and of the prices are the pool's, checked by `ModelPool::new`
        // below (a configuration error, as wherever prices are given).
        Some(x) => x
            .as_f64()
            .ok_or_else(|| bad(format!("default_output_tokens {x} is not a number")))?,
    };
    let models = v
        .get("models")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no \"models\" object".into()))?;
    if models.is_empty() {
        return Err(bad("its \"models\" object names no model".into()));
    }
    let mut cards = Vec::new();
    let mut roles = Vec::new();
    let mut stated_output_tokens = std::collections::HashSet::new();
    for (id, m) in models {
        let price = |key: &str| -> Result<f64> {
            m.get(key)
                .and_then(Value::as_f64)
                .ok_or_else(|| bad(format!("model {id:?}: {key} missing or not a number")))
        };
        let description = match m.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(other) => {
                return Err(bad(format!(
                    "model {id:?}: description {other} is not a string"
                )))
            }
        };
        if m.get("default_output_tokens").is_some() || v.get("default_output_tokens").is_some() {
            stated_output_tokens.insert(id.clone());
        }
        let out = match m.get("default_output_tokens") {
            Some(x) => x.as_f64().ok_or_else(|| {
                bad(format!(
                    "model {id:?}: default_output_tokens {x} is not a number"
                ))
            })?,
            None => default_out,
        };
        let mut card = ModelCard::new(
            id.clone(),
            price("input_usd_per_mtok")?,
            price("output_usd_per_mtok")?,
        )
        .with_default_output_tokens(out);
        card.description = description;
        // The optional figures the decision policies read (docs/policies.md); their ranges are
        // checked with the prices' by `ModelPool::new` below.
        let figure = |key: &str| -> Result<Option<f64>> {
            match m.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| bad(format!("model {id:?}: {key} {x} is not a number"))),
            }
        };
        card.ttft_ms = figure("ttft_ms")?;
        card.output_tokens_per_second = figure("output_tokens_per_second")?;
        card.joules_per_token = figure("joules_per_token")?;
        card.context_window = figure("context_window")?;
        match m.get("capabilities") {
            None | Some(Value::Null) => {}
            Some(Value::Array(flags)) => {
                let flags = flags
                    .iter()
                    .map(|f| {
                        f.as_str().map(str::to_string).ok_or_else(|| {
                            bad(format!("model {id:?}: capability {f} is not a string"))
                        })
                    })
                    .collect::<Result<Vec<String>>>()?;
                card = card.with_capabilities(flags);
            }
            Some(other) => {
                return Err(bad(format!(
                    "model {id:?}: capabilities {other} is not a list of strings"
                )))
            }
        }
        cards.push(card);
        roles.push(m.get("role").and_then(Value::as_str).map(str::to_string));
    }
    let partial = match v.get("labels") {
        None | Some(Value::Null) => false,
        Some(Value::String(l)) if l == "full" => false,
        Some(Value::String(l)) if l == "partial" => true,
        Some(other) => {
            return Err(bad(format!(
                "labels {other} is neither \"full\" nor \"partial\""
            )))
        }
    };
    // A price out of the pool's range is a configuration error, as wherever prices are given.
    let pool = ModelPool::new(cards).map_err(|e| match e {
        Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
        other => bad(other.to_string()),
    })?;
    Ok(Models {
        pool,
        roles,
        partial,
        stated_output_tokens,
    })
}

/// One line of the records file, parsed and checked.
pub(super) struct Record {
    pub(super) id: String,
    pub(super) split: String,
    pub(super) task: Option<String>,
    pub(super) prompt: String,
    pub(super) prompt_tokens: f64,
    pub(super) scores: Vec<f64>,
    pub(super) costs: Vec<f64>,
    pub(super) cost_observed: Vec<bool>,
    pub(super) output_tokens: Vec<f64>,
    /// Whether each score is observed (all true unless the dataset has partial labels).
    pub(super) observed: Vec<bool>,
    /// Preference judgements on this query: (model a, model b, winner).
    pub(super) preferences: Vec<(u32, u32, Winner)>,
    /// The logging policy's probability of each observed choice, NaN where not recorded.
    pub(super) propensity: Vec<f64>,
}

pub(super) fn read_records(path: &Path, pool: &ModelPool, partial: bool) -> Result<Vec<Record>> {
    let (file, _) = crate::files::open_regular(path)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let display = path.display().to_string();
    let mut records = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let lineno = i + 1;
        let line =
            line.map_err(|e| Error::format_at(&display, lineno, format!("cannot read line: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec = parse_record(&line, pool, partial)
            .map_err(|m| Error::format_at(&display, lineno, m))?;
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

fn parse_record(
    line: &str,
    pool: &ModelPool,
    partial: bool,
) -> std::result::Result<Record, String> {
    let v: Value = parse_json(line).map_err(|e| json_error(line, &e))?;
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
    let empty = serde_json::Map::new();
    let scores_obj = match obj.get("scores") {
        Some(Value::Object(o)) => o,
        None | Some(Value::Null) if partial => &empty,
        _ => return Err("missing or malformed \"scores\" object".into()),
    };
    for key in scores_obj.keys() {
        if pool.index_of(key).is_err() {
            return Err(format!(
                "score for unknown model {key:?} (not in models.json)"
            ));
        }
    }
    let mut scores = Vec::with_capacity(pool.len());
    let mut observed = Vec::with_capacity(pool.len());
    for id in pool.ids() {
        let s = match scores_obj.get(id) {
            None | Some(Value::Null) if partial => {
                scores.push(f64::NAN);
                observed.push(false);
                continue;
            }
            None | Some(Value::Null) => {
                return Err(format!(
                    "no score for model {id:?} (a dataset whose lines may lack scores says \
                     \"labels\": \"partial\" in models.json)"
                ))
            }
            Some(x) => x
                .as_f64()
                .ok_or_else(|| format!("score {x} for model {id:?} is not a number"))?,
        };
        if !(0.0..=1.0).contains(&s) {
            return Err(format!("score {s} for model {id:?} outside [0, 1]"));
        }
        scores.push(s);
        observed.push(true);
    }
    let preferences = parse_preferences(obj.get("preferences"), pool)?;
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
    for (key, values) in [("cost_usd", cost_usd), ("output_chars", output_chars)] {
        for model in values.into_iter().flat_map(|m| m.keys()) {
            if pool.index_of(model).is_err() {
                return Err(format!(
                    "{key} for unknown model {model:?} (not in models.json)"
                ));
            }
        }
    }
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
                    .filter(|c| c.is_finite() && *c >= 0.0 && c.fract() == 0.0)
                    .ok_or_else(|| {
                        format!(
                            "output_chars {x} for model {:?} is not a whole number of \
                             characters",
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
    let propensity = match per_model("propensity")? {
        None => vec![f64::NAN; pool.len()],
        Some(p) => {
            let mut out = vec![f64::NAN; pool.len()];
            for (model, v) in p {
                let j = pool.index_of(model).map_err(|_| {
                    format!("propensity for unknown model {model:?} (not in models.json)")
                })?;
                let x = v
                    .as_f64()
                    .filter(|x| *x > 0.0 && *x <= 1.0)
                    .ok_or_else(|| format!("propensity {v} for model {model:?} outside (0, 1]"))?;
                if !observed[j] {
                    return Err(format!(
                        "propensity for model {model:?}, which has no score on this line"
                    ));
                }
                out[j] = x;
            }
            out
        }
    };
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
        observed,
        preferences,
        propensity,
    })
}

/// The `preferences` field: a list of `{"model_a", "model_b", "winner"}` objects.
fn parse_preferences(
    v: Option<&Value>,
    pool: &ModelPool,
) -> std::result::Result<Vec<(u32, u32, Winner)>, String> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(format!("preferences {other} is not a list")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let field = |key: &str| -> std::result::Result<&str, String> {
            p.get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("preference #{i}: {key} missing or not a string (in {p})"))
        };
        let model = |key: &str| -> std::result::Result<u32, String> {
            let id = field(key)?;
            pool.index_of(id)
                .map(|j| j as u32)
                .map_err(|_| format!("preference #{i}: {key} {id:?} is not in models.json"))
        };
        let (a, b) = (model("model_a")?, model("model_b")?);
        if a == b {
            return Err(format!(
                "preference #{i} compares model {:?} with itself",
                pool.id(a as usize)
            ));
        }
        let w = field("winner")?;
        let winner = Winner::from_name(w).ok_or_else(|| {
            format!("preference #{i}: winner {w:?} is not \"model_a\", \"model_b\" or \"tie\"")
        })?;
        out.push((a, b, winner));
    }
    Ok(out)
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
