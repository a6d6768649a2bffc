//! Importing a team's own log: a JSONL or CSV file with one (query, model, outcome) record per
//! line, mapped to the schema by field names ([`LogMapping`]), into a [`DatasetDraft`] with
//! partial labels (`pointsman import --from log`).
//!
//! Records with the same query id (or, without an id field, the same prompt) become one query,
//! observed for every model a record names; a second record of the same (query, model) is an
//! error unless [`LogMapping::duplicates`] says to average the records or keep the last. The
//! split is the log's own where a split field is mapped, else the rule of
//! [`SPLIT_RULE`](super::SPLIT_RULE). Every error names the file, the line and the field.
//! Embeddings are not computed here: `pointsman train`/`embed` compute them in-process with the
//! core's embedder on first use.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

use super::{DatasetDraft, DraftRow};
use crate::error::{Error, Result};
use crate::pool::{ModelCard, ModelPool};

/// Which field of a log record holds what. Only `prompt`, `model` and `score` are required.
#[derive(Debug, Clone, PartialEq)]
pub struct LogMapping {
    /// The query id (records sharing it are one query); `None`: the prompt identifies a query.
    pub id: Option<String>,
    /// The prompt text.
    pub prompt: String,
    /// The id of the model that answered (one of the pool's).
    pub model: String,
    /// The outcome, a number in [0, 1] (in JSON lines also a boolean: 1 or 0).
    pub score: String,
    /// The task tag.
    pub task: Option<String>,
    /// `"train"` or `"test"`.
    pub split: Option<String>,
    /// The observed cost in USD.
    pub cost: Option<String>,
    /// The probability with which the logging policy chose the model, in (0, 1].
    pub propensity: Option<String>,
    /// What a second record of the same (query, model) does.
    pub duplicates: Duplicates,
}

/// What a log import does with a second outcome of the same (query, model): a retry, or the same
/// question asked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Duplicates {
    /// An error naming the record's line (the default: a repeated record may be a mistake).
    #[default]
    Refuse,
    /// The mean of the records' outcomes (and of their observed costs). Records logged with
    /// different choice probabilities are not averaged: an error.
    Mean,
    /// The last record's outcome, cost and probability.
    Last,
}

impl std::str::FromStr for Duplicates {
    type Err = Error;

    fn from_str(s: &str) -> Result<Duplicates> {
        match s {
            "refuse" => Ok(Duplicates::Refuse),
            "mean" => Ok(Duplicates::Mean),
            "last" => Ok(Duplicates::Last),
            other => Err(Error::Config(format!(
                "duplicates {other:?}: expected refuse, mean or last"
            ))),
        }
    }
}

impl Default for LogMapping {
    fn default() -> Self {
        LogMapping {
            id: None,
            prompt: "prompt".into(),
            model: "model".into(),
            score: "score".into(),
            task: None,
            split: None,
            cost: None,
            propensity: None,
            duplicates: Duplicates::Refuse,
        }
    }
}

/// One record's fields as text or numbers.
type Record = HashMap<String, Value>;

/// The id of a logged query that has none of its own: `p` and the first 16 hex digits of its
/// prompt's SHA-1 (a second prompt with the same 64 bits, if one ever came, gets `-2`).
fn prompt_id(prompt: &str) -> String {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(prompt.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("p{hex}")
}

/// Reads the log at `path` (`.csv`: a header line then comma-separated values; anything else:
/// JSON lines) over the models of `pool`, as a draft with partial labels.
///
/// # Errors
///
/// [`Error::Io`] for an unreadable file; [`Error::Format`] naming the file, line and field for a
/// malformed record, a missing field, a model not in the pool, a score outside [0, 1], a
/// propensity outside (0, 1], a split other than train/test, or a repeated (query, model).
pub fn import_log(path: &Path, mapping: &LogMapping, pool: ModelPool) -> Result<DatasetDraft> {
    let display = path.display().to_string();
    let mut draft = DatasetDraft::new(pool, format!("log {}", display));
    let m = draft.pool.len();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
    // Per (row, model) with `Duplicates::Mean`: the records and the records with a cost so far.
    let mut counts: HashMap<(usize, usize), (f64, f64)> = HashMap::new();
    // The optional fields named in the mapping, and whether any record has them.
    let optional: Vec<(&str, &String)> = [
        ("id", &mapping.id),
        ("task", &mapping.task),
        ("split", &mapping.split),
        ("cost", &mapping.cost),
        ("propensity", &mapping.propensity),
    ]
    .into_iter()
    .filter_map(|(what, f)| f.as_ref().map(|f| (what, f)))
    .collect();
    let mut found = vec![false; optional.len()];
    let mut handle = |lineno: usize, rec: Record| -> Result<()> {
        let bad = |msg: String| Error::format_at(&display, lineno, msg);
        for ((_, f), found) in optional.iter().zip(&mut found) {
            *found |= rec.contains_key(f.as_str());
        }
        let text = |field: &str| -> Result<Option<String>> {
            match rec.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v @ Value::Number(_)) => Ok(Some(v.to_string())),
                Some(other) => Err(bad(format!("field {field:?}: {other} is not text"))),
            }
        };
        let required = |field: &str| -> Result<String> {
            text(field)?.ok_or_else(|| bad(format!("field {field:?} is missing or empty")))
        };
        let number = |field: &str| -> Result<Option<f64>> {
            match rec.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64()),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => s
                    .trim()
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| bad(format!("field {field:?}: {s:?} is not a number"))),
                Some(other) => Err(bad(format!("field {field:?}: {other} is not a number"))),
            }
        };
        let prompt = required(&mapping.prompt)?;
        let model = required(&mapping.model)?;
        let j = draft.pool.index_of(&model).map_err(|_| {
            bad(format!(
                "field {:?}: model {model:?} is not in the models file",
                mapping.model
            ))
        })?;
        // A thumbs up or down logged as a JSON boolean is 1 or 0.
        let score = match rec.get(&mapping.score) {
            Some(Value::Bool(b)) => Some(f64::from(u8::from(*b))),
            _ => number(&mapping.score)?,
        }
        .ok_or_else(|| bad(format!("field {:?} is missing or empty", mapping.score)))?;
        if !(0.0..=1.0).contains(&score) {
            return Err(bad(format!(
                "field {:?}: score {score} outside [0, 1]",
                mapping.score
            )));
        }
        let id = match &mapping.id {
            Some(f) => required(f)?,
            None => prompt.clone(),
        };
        let task = match &mapping.task {
            Some(f) => text(f)?,
            None => None,
        };
        let split = match &mapping.split {
            Some(f) => match text(f)?.as_deref() {
                None => None,
                Some(s @ ("train" | "test")) => Some(s.to_string()),
                Some(other) => {
                    return Err(bad(format!(
                        "field {f:?}: split {other:?} is neither \"train\" nor \"test\""
                    )))
                }
            },
            None => None,
        };
        let cost = match &mapping.cost {
            Some(f) => match number(f)? {
                Some(c) if !(c.is_finite() && c >= 0.0) => {
                    return Err(bad(format!(
                        "field {f:?}: cost {c} is not a non-negative number"
                    )))
                }
                c => c,
            },
            None => None,
        };
        let propensity = match &mapping.propensity {
            Some(f) => match number(f)? {
                Some(p) if !(p > 0.0 && p <= 1.0) => {
                    return Err(bad(format!("field {f:?}: propensity {p} outside (0, 1]")))
                }
                p => p,
            },
            None => None,
        };
        let next = draft.rows.len();
        let r = *index.entry(id.clone()).or_insert(next);
        if r == next {
            let row_id = if mapping.id.is_some() {
                id
            } else {
                // From the prompt, not the line: the split rule hashes the id, so a query keeps
                // its split when the log is reordered, rotated or grows.
                let mut candidate = prompt_id(&prompt);
                let base = candidate.clone();
                let mut n = 1;
                while !used.insert(candidate.clone()) {
                    n += 1;
                    candidate = format!("{base}-{n}");
                }
                candidate
            };
            let mut row = DraftRow::new(row_id, prompt.clone(), m);
            row.task = task.clone();
            row.split = split.clone();
            draft.rows.push(row);
        }
        let row = &mut draft.rows[r];
        if row.prompt != prompt || row.task != task || (split.is_some() && row.split != split) {
            return Err(bad(format!(
                "query {:?} appears earlier with another prompt, task or split",
                row.id
            )));
        }
        match (row.scores[j], mapping.duplicates) {
            (None, _) | (Some(_), Duplicates::Last) => {
                row.scores[j] = Some(score);
                row.cost_usd[j] = cost;
                row.propensity[j] = propensity;
                if mapping.duplicates == Duplicates::Mean {
                    counts.insert((r, j), (1.0, if cost.is_some() { 1.0 } else { 0.0 }));
                }
            }
            (Some(_), Duplicates::Refuse) => {
                return Err(bad(format!(
                    "query {:?} has a second outcome for model {model:?} (the import's \
                     duplicates option averages them or keeps the last)",
                    row.id
                )))
            }
            (Some(mean), Duplicates::Mean) => {
                if row.propensity[j] != propensity {
                    return Err(bad(format!(
                        "query {:?}: a second outcome for model {model:?} logged with another \
                         choice probability; outcomes chosen with different probabilities are \
                         not averaged",
                        row.id
                    )));
                }
                let (n, n_cost) = counts.entry((r, j)).or_insert((1.0, 0.0));
                *n += 1.0;
                row.scores[j] = Some(mean + (score - mean) / *n);
                if let Some(c) = cost {
                    *n_cost += 1.0;
                    let before = row.cost_usd[j].unwrap_or(0.0);
                    row.cost_usd[j] = Some(before + (c - before) / *n_cost);
                }
            }
        }
        Ok(())
    };
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        super::formats::read_csv(path, |lineno, headers, rec| {
            let map: Record = headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), Value::String(v.to_string())))
                .collect();
            handle(lineno, map)
        })?;
    } else {
        let (file, _) = crate::files::open_regular(path)?;
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => {
                    Error::format_at(&display, i + 1, "not UTF-8 text")
                }
                _ => Error::io(path, e),
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = crate::data::json::parse(&line)
                .map_err(|e| Error::format_at(&display, i + 1, format!("malformed json: {e}")))?;
            let Value::Object(obj) = v else {
                return Err(Error::format_at(
                    &display,
                    i + 1,
                    "line is not a JSON object",
                ));
            };
            handle(i + 1, obj.into_iter().collect())?;
        }
    }
    if draft.rows.is_empty() {
        return Err(Error::format(&display, "the log has no record"));
    }
    // A field named for a column no record has is a misspelt name: without this, the split
    // rule, or no cost, would be used without a word.
    if let Some(((what, f), _)) = optional.iter().zip(&found).find(|(_, &seen)| !seen) {
        return Err(Error::InvalidInput(format!(
            "{display}: no record has the field {f:?} named as the {what} field"
        )));
    }
    draft.apply_split_rule();
    Ok(draft)
}

/// The models of a `models.json` file (the dataset schema's): to import a log over them.
///
/// # Errors
///
/// As [`super::Dataset::load`] for that file.
pub fn read_pool(path: &Path) -> Result<ModelPool> {
    Ok(super::schema::read_models(path)?.pool)
}

/// New prices for some or all of `pool`'s models from the `models.json` at `path`, as cards for
/// [`ModelPool::repriced`] (`AnyRouter::reprice`): each listed model's card in `pool` with the
/// file's prices, and its default answer length, description, latency and energy figures,
/// context window and capabilities only where the file states them — a price list need not
/// repeat them.
///
/// # Errors
///
/// As [`read_pool`]; [`Error::UnknownModel`] for a listed model `pool` does not have.
pub fn read_prices(path: &Path, pool: &ModelPool) -> Result<Vec<ModelCard>> {
    let models = super::schema::read_models(path)?;
    models
        .pool
        .cards()
        .iter()
        .map(|new| {
            let j = pool.index_of(&new.id).map_err(|_| {
                Error::UnknownModel(format!(
                    "{} (in {}, not a model of the router)",
                    new.id,
                    path.display()
                ))
            })?;
            let mut card = pool.card(j).clone();
            card.input_usd_per_mtok = new.input_usd_per_mtok;
            card.output_usd_per_mtok = new.output_usd_per_mtok;
            if models.stated_output_tokens.contains(&new.id) {
                card.default_output_tokens = new.default_output_tokens;
            }
            if new.description.is_some() {
                card.description = new.description.clone();
            }
            // The policies' figures, where the file states them.
            card.ttft_ms = new.ttft_ms.or(card.ttft_ms);
            card.output_tokens_per_second = new
                .output_tokens_per_second
                .or(card.output_tokens_per_second);
            card.joules_per_token = new.joules_per_token.or(card.joules_per_token);
            card.context_window = new.context_window.or(card.context_window);
            if !new.capabilities.is_empty() {
                card.capabilities = new.capabilities.clone();
            }
            Ok(card)
        })
        .collect()
}

/// The card (prices, description) of `model`, a model to onboard: from the `models.json` at
/// `models` when one is given, else from `labelled`, the models of the dataset its labelled
/// queries come from.
///
/// # Errors
///
/// [`Error::Config`] when neither is given; [`Error::UnknownModel`] when the one read has no
/// such model; as [`read_pool`].
pub fn onboarding_card(
    model: &str,
    models: Option<&Path>,
    labelled: Option<&ModelPool>,
) -> Result<ModelCard> {
    let read;
    let (pool, source) = match (models, labelled) {
        (Some(path), _) => {
            read = read_pool(path)?;
            (&read, path.display().to_string())
        }
        (None, Some(pool)) => (pool, "the labelled dataset's models.json".to_string()),
        (None, None) => {
            return Err(Error::Config(format!(
                "onboarding {model:?} needs its card: a models.json with it, or a labelled \
                 dataset whose models have it"
            )))
        }
    };
    let j = pool.index_of(model).map_err(|_| {
        Error::UnknownModel(format!(
            "{model} (not in {source}, which has {})",
            pool.ids().collect::<Vec<_>>().join(", ")
        ))
    })?;
    Ok(pool.card(j).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::ModelCard;

    fn pool() -> ModelPool {
        ModelPool::new(vec![
            ModelCard::new("a", 0.1, 0.1),
            ModelCard::new("b", 1.0, 1.0),
        ])
        .unwrap()
    }

    #[test]
    fn a_price_list_changes_prices_and_only_what_else_it_states() {
        let dir = tempfile::tempdir().unwrap();
        let pool = ModelPool::new(vec![
            ModelCard::new("a", 0.1, 0.1).with_default_output_tokens(700.0),
            ModelCard::new("b", 1.0, 1.0).with_default_output_tokens(50.0),
        ])
        .unwrap();
        let path = dir.path().join("prices.json");
        std::fs::write(
            &path,
            r#"{"models": {"a": {"input_usd_per_mtok": 0.2, "output_usd_per_mtok": 0.3},
                           "b": {"input_usd_per_mtok": 2, "output_usd_per_mtok": 2,
                                 "default_output_tokens": 80, "description": "big"}}}"#,
        )
        .unwrap();
        let cards = read_prices(&path, &pool).unwrap();
        let a = cards.iter().find(|c| c.id == "a").unwrap();
        assert_eq!((a.input_usd_per_mtok, a.output_usd_per_mtok), (0.2, 0.3));
        assert_eq!(
            a.default_output_tokens, 700.0,
            "kept: the file does not state it"
        );
        let b = cards.iter().find(|c| c.id == "b").unwrap();
        assert_eq!(b.default_output_tokens, 80.0);
        assert_eq!(b.description.as_deref(), Some("big"));
        let repriced = pool.repriced(&cards).unwrap();
        assert_eq!(repriced.card(0).default_output_tokens, 700.0);
        // A file-wide default answer length counts as stated for every model.
        std::fs::write(
            &path,
            r#"{"default_output_tokens": 10,
                "models": {"a": {"input_usd_per_mtok": 0.2, "output_usd_per_mtok": 0.3}}}"#,
        )
        .unwrap();
        assert_eq!(
            read_prices(&path, &pool).unwrap()[0].default_output_tokens,
            10.0
        );
        // A model the router does not have is named.
        std::fs::write(
            &path,
            r#"{"models": {"c": {"input_usd_per_mtok": 0.2, "output_usd_per_mtok": 0.3}}}"#,
        )
        .unwrap();
        let e = read_prices(&path, &pool).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::UnknownModel);
        assert!(e.to_string().contains("prices.json"), "{e}");
    }

    #[test]
    fn a_log_becomes_a_partial_dataset_and_errors_name_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.jsonl");
        std::fs::write(
            &log,
            "{\"q\": \"what is 2+2\", \"m\": \"a\", \"ok\": 1, \"p\": 0.5}\n\
             {\"q\": \"name a prime\", \"m\": \"b\", \"ok\": 0.5, \"p\": 0.25}\n\
             {\"q\": \"what is 2+2\", \"m\": \"b\", \"ok\": 0, \"p\": 0.5}\n",
        )
        .unwrap();
        let mapping = LogMapping {
            prompt: "q".into(),
            model: "m".into(),
            score: "ok".into(),
            propensity: Some("p".into()),
            ..Default::default()
        };
        let draft = import_log(&log, &mapping, pool()).unwrap();
        assert_eq!(draft.rows.len(), 2);
        assert_eq!(draft.rows[0].scores, vec![Some(1.0), Some(0.0)]);
        assert_eq!(draft.rows[1].scores, vec![None, Some(0.5)]);
        assert_eq!(draft.rows[1].propensity, vec![None, Some(0.25)]);
        assert!(draft.rows.iter().all(|r| r.split.is_some()));
        // Without an id field a query's id, hence its split, comes from its prompt, not its
        // line: the log reversed gives the same ids and splits. A boolean score is 1 or 0.
        let reversed = dir.path().join("reversed.jsonl");
        std::fs::write(
            &reversed,
            "{\"q\": \"what is 2+2\", \"m\": \"b\", \"ok\": false, \"p\": 0.5}\n\
             {\"q\": \"name a prime\", \"m\": \"b\", \"ok\": 0.5, \"p\": 0.25}\n\
             {\"q\": \"what is 2+2\", \"m\": \"a\", \"ok\": true, \"p\": 0.5}\n",
        )
        .unwrap();
        let back = import_log(&reversed, &mapping, pool()).unwrap();
        type Key = (String, String, Option<String>, Vec<Option<f64>>);
        let key = |d: &DatasetDraft| -> Vec<Key> {
            let mut v: Vec<Key> = d
                .rows
                .iter()
                .map(|r| {
                    (
                        r.id.clone(),
                        r.prompt.clone(),
                        r.split.clone(),
                        r.scores.clone(),
                    )
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        assert_eq!(key(&back), key(&draft));
        assert_eq!(draft.rows[0].id, prompt_id("what is 2+2"));
        assert!(draft.rows[0].id.starts_with('p') && draft.rows[0].id.len() == 17);
        // Written and loaded back (no embeddings yet), with the mask and propensities.
        let out = dir.path().join("mine");
        draft.write(&out, false).unwrap();
        let ds = crate::data::Dataset::load(&out).unwrap();
        assert_eq!(ds.len(), 2);
        // The same as CSV.
        let csv = dir.path().join("log.csv");
        std::fs::write(
            &csv,
            "q,m,ok,p\nwhat is 2+2,a,1,0.5\nname a prime,b,0.5,0.25\n",
        )
        .unwrap();
        assert_eq!(import_log(&csv, &mapping, pool()).unwrap().rows.len(), 2);
        // Errors name the file, line and field.
        std::fs::write(
            &csv,
            "q,m,ok,p\nwhat is 2+2,a,1,0.5\nname a prime,zz,0.5,0.25\n",
        )
        .unwrap();
        let e = import_log(&csv, &mapping, pool()).unwrap_err().to_string();
        assert!(e.contains("log.csv:3:") && e.contains("\"m\""), "{e}");
        std::fs::write(&log, "{\"q\": \"x\", \"m\": \"a\", \"ok\": 2}\n").unwrap();
        let e = import_log(&log, &mapping, pool()).unwrap_err().to_string();
        assert!(e.contains("log.jsonl:1:") && e.contains("\"ok\""), "{e}");
        // A repeated key or column is refused, not read as its last (or first) value.
        std::fs::write(&log, "{\"q\": \"x\", \"m\": \"a\", \"ok\": 0, \"ok\": 1}\n").unwrap();
        let e = import_log(&log, &mapping, pool()).unwrap_err().to_string();
        assert!(
            e.contains("log.jsonl:1:") && e.contains("key \"ok\" appears twice"),
            "{e}"
        );
        std::fs::write(&csv, "q,m,ok,ok\nwhat is 2+2,a,0,1\n").unwrap();
        let e = import_log(&csv, &mapping, pool()).unwrap_err().to_string();
        assert!(
            e.contains("log.csv:1:") && e.contains("column \"ok\" appears twice"),
            "{e}"
        );
        std::fs::write(
            &log,
            "{\"q\": \"x\", \"m\": \"a\", \"ok\": 1}\n{\"q\": \"x\", \"m\": \"a\", \"ok\": 0}\n",
        )
        .unwrap();
        let e = import_log(&log, &mapping, pool()).unwrap_err().to_string();
        assert!(
            e.contains("log.jsonl:2:") && e.contains("second outcome"),
            "{e}"
        );
        // Averaged or the last kept, on request; costs averaged over the records that have one.
        std::fs::write(
            &log,
            "{\"q\": \"x\", \"m\": \"a\", \"ok\": 1, \"c\": 2e-5}\n\
             {\"q\": \"x\", \"m\": \"a\", \"ok\": 0}\n\
             {\"q\": \"x\", \"m\": \"a\", \"ok\": 0.5, \"c\": 4e-5}\n",
        )
        .unwrap();
        let with = |duplicates| LogMapping {
            cost: Some("c".into()),
            propensity: None,
            duplicates,
            ..mapping.clone()
        };
        let d = import_log(&log, &with(Duplicates::Mean), pool()).unwrap();
        assert_eq!(d.rows.len(), 1);
        assert!((d.rows[0].scores[0].unwrap() - 0.5).abs() < 1e-12);
        assert!((d.rows[0].cost_usd[0].unwrap() - 3e-5).abs() < 1e-15);
        let d = import_log(&log, &with(Duplicates::Last), pool()).unwrap();
        assert_eq!(
            (d.rows[0].scores[0], d.rows[0].cost_usd[0]),
            (Some(0.5), Some(4e-5))
        );
        // Outcomes chosen with different probabilities are not averaged.
        std::fs::write(
            &log,
            "{\"q\": \"x\", \"m\": \"a\", \"ok\": 1, \"p\": 0.5}\n\
             {\"q\": \"x\", \"m\": \"a\", \"ok\": 0, \"p\": 0.25}\n",
        )
        .unwrap();
        let mean = LogMapping {
            propensity: Some("p".into()),
            ..with(Duplicates::Mean)
        };
        let e = import_log(&log, &mean, pool()).unwrap_err().to_string();
        assert!(
            e.contains("log.jsonl:2:") && e.contains("probability"),
            "{e}"
        );
        assert!("median".parse::<Duplicates>().is_err());
        // A field named for a column no record has (a misspelt name) is an error, not ignored.
        std::fs::write(&log, "{\"q\": \"x\", \"m\": \"a\", \"ok\": 1, \"p\": 1}\n").unwrap();
        assert!(import_log(&log, &mapping, pool()).is_ok());
        let typo = LogMapping {
            split: Some("spilt".into()),
            ..mapping.clone()
        };
        let e = import_log(&log, &typo, pool()).unwrap_err().to_string();
        assert!(
            e.contains("no record has the field \"spilt\" named as the split field"),
            "{e}"
        );
        // A record spanning lines is named by the line it starts on; text that is not UTF-8 by
        // its line.
        std::fs::write(&csv, "q,m,ok,p\n\"two\nlines\",a,1,0.5\nx,zz,1,0.5\n").unwrap();
        let e = import_log(&csv, &mapping, pool()).unwrap_err().to_string();
        assert!(e.contains("log.csv:4:"), "{e}");
        std::fs::write(
            &log,
            b"{\"q\": \"x\", \"m\": \"a\", \"ok\": 1, \"p\": 1}\n{\"q\": \"caf\xe9\"}\n",
        )
        .unwrap();
        let e = import_log(&log, &mapping, pool()).unwrap_err().to_string();
        assert!(e.contains("log.jsonl:2: not UTF-8 text"), "{e}");
    }
}
