//! The importer of RouteLLM's evaluation data (MMLU, GSM8K, MT-Bench) (see [the module documentation](super)).

use super::*;

pub(super) fn bool_score(v: &str) -> Option<f64> {
    match v.trim() {
        "True" | "true" | "1" | "1.0" => Some(1.0),
        "False" | "false" | "0" | "0.0" => Some(0.0),
        _ => None,
    }
}

pub(super) fn import_routellm(
    dir: &Path,
    models: crate::data::schema::Models,
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
pub(super) fn add_mt_bench(draft: &mut DatasetDraft, dir: &Path) -> Result<()> {
    let questions = dir.join("question.jsonl");
    let judgements = dir.join("judgements.jsonl");
    let mut text_of: HashMap<i64, (String, Vec<String>)> = HashMap::new();
    let lines = |path: &Path| -> Result<Vec<(usize, Value)>> {
        let display = path.display().to_string();
        crate::files::read_regular_to_string(path)?
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                crate::data::json::parse(l)
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
pub(super) const ROUTERBENCH_FIXED: [&str; 4] = [
    "sample_id",
    "prompt",
    "eval_name",
    "oracle_model_to_route_to",
];
