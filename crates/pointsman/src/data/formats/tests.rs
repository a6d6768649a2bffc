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
    let ds = crate::data::Dataset::from_draft("rb", &draft).unwrap();
    let card = ds.pool().card(0);
    let estimated: f64 = draft
        .rows
        .iter()
        .map(|r| {
            card.estimate_cost(
                crate::data::prompt_tokens_of(&r.prompt),
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
    // A repeated column, a `|` column RouterBench does not have (a misspelt suffix, or one of a
    // model without its score column) and a stray column are refused or named as such: they
    // were read as the first, dropped, or reported as a bad score.
    let header_end = ROUTERBENCH.find('\n').unwrap();
    let (header, rest) = ROUTERBENCH.split_at(header_end);
    for (extra, needle) in [
        ("prompt", "column \"prompt\" appears twice"),
        (
            "gpt-4-1106-preview|totl_cost",
            "column \"gpt-4-1106-preview|totl_cost\" is not one",
        ),
        ("gpt-5|total_cost", "column \"gpt-5|total_cost\" is not one"),
        (
            "notes",
            "field \"notes\": \"x\" is not a number (a column other than sample_id, prompt, \
             eval_name, oracle_model_to_route_to is a model's score)",
        ),
    ] {
        let rows: String = rest[1..].lines().map(|l| format!("{l},x\n")).collect();
        let bad = write(
            dir.path(),
            "columns.csv",
            &format!("{header},{extra}\n{rows}"),
        );
        let e = import(ImportFormat::Routerbench, &[bad], &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("columns.csv:") && e.contains(needle),
            "{extra}: {e}"
        );
    }
    // Lines counted as an editor does, with CRLF endings and a quoted field over two lines.
    let crlf = ROUTERBENCH
        .replace("\n", "\r\n")
        .replace("'What is 2+2?'", "'What is\r\n2+2?'")
        .replace(",1,\"5, he has 5\"", ",7,\"5, he has 5\"");
    let bad = write(dir.path(), "crlf.csv", &crlf);
    let e = import(ImportFormat::Routerbench, &[bad], &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("crlf.csv:4:") && e.contains("outside [0, 1]"),
        "{e}"
    );
    // Blank lines between records (which the csv crate skips) counted too, LF and CRLF.
    for ending in ["\n", "\r\n"] {
        let blank = ROUTERBENCH
            .replace(",1,\"5, he has 5\"", ",7,\"5, he has 5\"")
            .replace("\ngsm8k.7", "\n\n\ngsm8k.7")
            .replace('\n', ending);
        let bad = write(dir.path(), "blank.csv", &blank);
        let e = import(ImportFormat::Routerbench, &[bad], &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("blank.csv:5:"), "{ending:?}: {e}");
    }
    // Without a price list, a model without any observed cost has no price to fit.
    let no_costs: String = ROUTERBENCH
        .replace(",0.0003,", ",,")
        .replace(",0.0021,", ",,")
        .replace(",0.0010,", ",,");
    let e = import(
        ImportFormat::Routerbench,
        &[write(dir.path(), "no_costs.csv", &no_costs)],
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("\"gpt-4-1106-preview\" has no observed cost") && e.contains("--models"),
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
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
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
    // A model asked for by name is passed through: no router, no embedding.
    let passed = serde_json::json!({"event": "decision", "schema": 1, "request_id": "pm-5",
        "router": null, "embedding": null, "chosen": null, "model": "small", "status": 200,
        "error": null, "cost_usd": 0.001});
    // Also to an upstream the router (and the models.json) does not have.
    let mut elsewhere = passed.clone();
    elsewhere["request_id"] = "pm-6".into();
    elsewhere["model"] = "gpt-elsewhere".into();
    // Without usable usage the logged cost is the router's expectation, not an observation: left
    // out, as is a feedback's cost whose source says the same; a cost given with feedback is kept.
    let mut expected_cost_only: serde_json::Value =
        serde_json::from_str(&decision("pm-3", "large", "small", 0.5, &[0.0, 1.0])).unwrap();
    expected_cost_only["usage"] = serde_json::Value::Null;
    let mut told_expected: serde_json::Value =
        serde_json::from_str(&feedback("pm-1", 1.0)).unwrap();
    told_expected["cost_usd"] = 0.5.into();
    told_expected["cost_source"] = "expected".into();
    let mut given: serde_json::Value = serde_json::from_str(&feedback("pm-3", 0.25)).unwrap();
    given["cost_usd"] = 0.002.into();
    given["cost_source"] = "given".into();
    // pm-7: an expected cost and a feedback without one: no cost at all.
    let mut estimated: serde_json::Value =
        serde_json::from_str(&decision("pm-7", "small", "small", 1.0, &[0.8, 0.6])).unwrap();
    estimated["usage"] = serde_json::Value::Null;
    let log = [
        decision("pm-1", "small", "small", 0.5, &[0.6, 0.8]),
        decision("pm-2", "large", "large", 1.0, &[1.0, 0.0]),
        passed.to_string(),
        elsewhere.to_string(),
        // pm-3's feedback before its decision (a stream's, from an earlier gateway): joined.
        given.to_string(),
        expected_cost_only.to_string(),
        failed.to_string(),
        // Feedback on a request that failed (earlier gateways took it): nothing to label.
        feedback("pm-4", 0.0),
        told_expected.to_string(),
        feedback("pm-5", 1.0),
        feedback("pm-6", 0.5),
        estimated.to_string(),
        feedback("pm-7", 0.5),
    ]
    .join("\n");
    let path = write(dir.path(), "decisions.jsonl", &log);
    let options = ImportOptions {
        models: Some(models),
        ..Default::default()
    };
    let draft = import(ImportFormat::GatewayLog, &[path], &options).unwrap();
    // pm-2 has no feedback, pm-4 no answer and pm-5 was not routed: three queries, one model
    // each; the passed-through request is counted as dropped.
    assert_eq!(draft.rows.len(), 3);
    assert_eq!(draft.dropped.get(PASSED_THROUGH), Some(&2));
    assert_eq!(draft.dropped.get(UNANSWERED_FEEDBACK), Some(&1));
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
    assert_eq!(draft.rows[1].cost_usd[small], Some(0.002));
    assert_eq!(draft.rows[2].id, "pm-7");
    assert_eq!(draft.rows[2].cost_usd[small], None);
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
    let ds = crate::data::Dataset::load(&out).unwrap();
    assert!(ds.has_embeddings() && ds.len() == 3);
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
    // Feedback whose request no decision of the log has, named by its own line.
    let bad = write(
        dir.path(),
        "bad4.jsonl",
        &[
            decision("pm-1", "small", "small", 1.0, &[1.0, 0.0]),
            feedback("pm-9", 1.0),
        ]
        .join("\n"),
    );
    let e = import(ImportFormat::GatewayLog, &[bad], &options)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad4.jsonl:2:") && e.contains("\"pm-9\", which no decision"),
        "{e}"
    );
    // A routed decision without its embedding (a log from before embeddings were logged).
    let mut routed = passed.clone();
    routed["router"] = serde_json::json!({"kind": "knn"});
    let bad = write(dir.path(), "bad3.jsonl", &routed.to_string());
    let e = import(ImportFormat::GatewayLog, &[bad], &options)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad3.jsonl:1:") && e.contains("\"embedding\""),
        "{e}"
    );
    // Values out of range name their file, line and field (a probability of 5 was dropped
    // silently, a negative cost reported without its line, and a huge width overflowed).
    let with = |field: &str, value: serde_json::Value| {
        let mut d: serde_json::Value =
            serde_json::from_str(&decision("pm-1", "small", "small", 0.5, &[0.6, 0.8])).unwrap();
        d[field] = value;
        d.to_string()
    };
    let mut wide = with("probability", 0.5.into());
    wide = wide.replace("\"dim\":2", "\"dim\":9223372036854775808");
    assert!(wide.contains("9223372036854775808"), "{wide}");
    for (line, needle) in [
        (
            with("probability", 5.into()),
            "\"probability\": 5 is not a probability",
        ),
        (
            with("probability", 0.into()),
            "\"probability\": 0 is not a probability",
        ),
        (
            with("cost_usd", (-5).into()),
            "\"cost_usd\": -5 is not a number in [0, 1e12] USD",
        ),
        (wide, "\"embedding.dim\" missing or not in 1..=65536"),
        (
            decision("pm-1", "small", "small", 0.5, &[0.6, 0.8]).replacen(
                '{',
                "{\"model\": \"large\", ",
                1,
            ),
            "key \"model\" appears twice",
        ),
    ] {
        let bad = write(dir.path(), "range.jsonl", &format!("{line}\n"));
        let e = import(ImportFormat::GatewayLog, &[bad], &options)
            .unwrap_err()
            .to_string();
        assert!(e.contains("range.jsonl:1:") && e.contains(needle), "{e}");
    }
    let mut negative: serde_json::Value = serde_json::from_str(&feedback("pm-1", 1.0)).unwrap();
    negative["cost_usd"] = (-5).into();
    let bad = write(
        dir.path(),
        "range.jsonl",
        &[
            decision("pm-1", "small", "small", 1.0, &[1.0, 0.0]),
            negative.to_string(),
        ]
        .join("\n"),
    );
    let e = import(ImportFormat::GatewayLog, &[bad], &options)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("range.jsonl:2:") && e.contains("\"cost_usd\": -5"),
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
