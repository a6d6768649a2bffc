//! `pointsman import`: a RouterBench table and a team's own log become dataset folders that
//! `pointsman train` fits on; bad input is one line naming the file, the line and the field.

use super::*;

/// `pointsman import --from routerbench`: a sample in RouterBench's column layout becomes a
/// dataset folder with in-process embeddings that `pointsman train` fits on; bad input is one
/// line naming the file, the line and the field, and leaves no folder behind.
#[test]
fn import_a_routerbench_table_then_train() {
    let Some(model) = model_dir_flag() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut csv = String::from(
        "sample_id,prompt,eval_name,small,small|model_response,small|total_cost,\
         large,large|model_response,large|total_cost\n",
    );
    for i in 0..40 {
        let (task, prompt) = if i % 2 == 0 {
            ("gsm8k", format!("What is {i} plus {}?", i + 3))
        } else {
            (
                "poetry",
                format!("Write a short poem about the number {i}."),
            )
        };
        // The small model solves arithmetic, the large one everything.
        let small = if i % 2 == 0 { 1 } else { 0 };
        csv.push_str(&format!(
            "rb.{i},{prompt:?},{task},{small},answer,0.0001,1,a longer answer,0.002\n"
        ));
    }
    let input = tmp.path().join("routerbench.csv");
    std::fs::write(&input, &csv).unwrap();
    let out = tmp.path().join("rb");
    let mut args = vec![
        "import".to_string(),
        "--from".into(),
        "routerbench".into(),
        input.to_str().unwrap().into(),
        "--out".into(),
        out.to_str().unwrap().into(),
        "--quiet".into(),
    ];
    args.extend(model.iter().cloned());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = pointsman(&argv);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("imported 40 queries"));
    assert!(out.join("rb.minilm_l6_v2.f16.npy").is_file());
    let stats = json(&out.join("stats.json"));
    assert_eq!(stats["n_queries"], 40);
    let router = tmp.path().join("rb.safetensors");
    let o = pointsman(&[
        "train",
        "--data",
        out.to_str().unwrap(),
        "--router",
        "knn",
        "--out",
        router.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Bad input: one line naming the file, the line and the field; no folder left.
    std::fs::write(
        &input,
        csv.replace("rb.3,", "rb.3x,")
            .replace(",1,a longer answer,0.002\n", ",1,a longer answer,free\n"),
    )
    .unwrap();
    let bad_out = tmp.path().join("bad");
    let o = pointsman(&[
        "import",
        "--from",
        "routerbench",
        input.to_str().unwrap(),
        "--out",
        bad_out.to_str().unwrap(),
        "--no-embed",
    ]);
    let line = stderr_line(&o);
    assert!(
        line.contains("routerbench.csv:2:") && line.contains("large|total_cost"),
        "{line}"
    );
    assert!(!bad_out.exists());
    let o = pointsman(&[
        "import",
        "--from",
        "routerbanch",
        input.to_str().unwrap(),
        "--out",
        bad_out.to_str().unwrap(),
    ]);
    assert!(stderr_line(&o).contains("unknown import format \"routerbanch\""));

    // A team's log where the same question came twice: refused by default, naming the line and
    // the option; averaged with --duplicates mean.
    std::fs::write(
        tmp.path().join("models.json"),
        r#"{"models": {"small": {"input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.1},
                       "large": {"input_usd_per_mtok": 2, "output_usd_per_mtok": 2}}}"#,
    )
    .unwrap();
    let log = tmp.path().join("log.jsonl");
    std::fs::write(
        &log,
        "{\"prompt\": \"2+2?\", \"model\": \"small\", \"score\": 1}\n\
         {\"prompt\": \"2+2?\", \"model\": \"small\", \"score\": 0}\n\
         {\"prompt\": \"a poem\", \"model\": \"large\", \"score\": true}\n",
    )
    .unwrap();
    let models = tmp.path().join("models.json");
    let import_log = |extra: &[&str]| {
        pointsman(
            &[
                &[
                    "import",
                    "--from",
                    "log",
                    log.to_str().unwrap(),
                    "--models",
                    models.to_str().unwrap(),
                    "--out",
                    tmp.path().join("fromlog").to_str().unwrap(),
                    "--no-embed",
                    "--replace",
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    let line = stderr_line(&import_log(&[]));
    assert!(
        line.contains("log.jsonl:2:") && line.contains("duplicates option"),
        "{line}"
    );
    let o = import_log(&["--duplicates", "mean"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("imported 2 queries"));
    let line = stderr_line(&import_log(&["--duplicates", "median"]));
    assert!(line.contains("expected refuse, mean or last"), "{line}");
}
