//! The importer of LLMRouter's routing data (see [the module documentation](super)).

use super::*;

pub(super) fn import_llmrouter(dir: &Path, options: &ImportOptions) -> Result<DatasetDraft> {
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
        let given = crate::data::schema::read_models(p)?.pool;
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
            let v: Value = crate::data::json::parse(&line)
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
