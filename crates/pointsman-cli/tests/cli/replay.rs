//! `pointsman replay`: learners streamed over a dataset, with the lines, the report and the plot.

use super::*;

#[test]
fn replay_writes_lines_report_and_plot() {
    let Some(root) = data_dir() else { return };
    let data = root.join("llmrouter_dc");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("replay");
    let o = pointsman(&[
        "replay",
        "--data",
        data.to_str().unwrap(),
        "--routers",
        "linucb,thompson,knn-ucb",
        "--cost-weight",
        "500",
        "--seed",
        "3",
        "--drift",
        "llama-3.1-nemotron-51b-instruct@2000",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("best fixed model in hindsight") && table.contains("2500-3000"),
        "{table}"
    );
    for f in ["replay.jsonl", "report.json", "report.md", "replay.svg"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let svg = std::fs::read_to_string(out.join("replay.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("knn-ucb"));

    // One line per router and step, in the exact format of the issue, every id once per router.
    let text = std::fs::read_to_string(out.join("replay.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3 * 5989);
    let first = lines[0];
    assert!(
        first.starts_with(r#"{"router": "linucb", "t": 0, "id": ""#) && first.ends_with(r#""}"#),
        "{first}"
    );
    let mut ids = std::collections::BTreeSet::new();
    let mut shares = std::collections::BTreeMap::<String, usize>::new();
    for (k, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{line}");
        assert_eq!(v["t"], (k % 5989) as u64, "{line}");
        assert_eq!(
            v["router"],
            ["linucb", "thompson", "knn-ucb"][k / 5989],
            "{line}"
        );
        if k < 5989 {
            ids.insert(v["id"].as_str().unwrap().to_string());
        }
        let t = v["t"].as_u64().unwrap();
        if (2500..3000).contains(&t) && v["model"] == "llama-3.1-nemotron-51b-instruct" {
            *shares
                .entry(v["router"].as_str().unwrap().into())
                .or_default() += 1;
        }
    }
    assert_eq!(ids.len(), 5989);

    // The report: one entry per router, regrets consistent with the utilities, and the drifted
    // model's share in steps 2500-3000 equal to the count in replay.jsonl.
    let report = json(&out.join("report.json"));
    assert_eq!(report["drift"]["step"], 2000);
    let reference = &report["reference"];
    let best = reference["best_fixed_utility_second_half"]
        .as_f64()
        .unwrap();
    let oracle = reference["oracle_utility_second_half"].as_f64().unwrap();
    let m = report["model_ids"]
        .as_array()
        .unwrap()
        .iter()
        .position(|id| id == "llama-3.1-nemotron-51b-instruct")
        .unwrap();
    for r in report["routers"].as_array().unwrap() {
        let u = r["mean_utility_second_half"].as_f64().unwrap();
        let rb = r["regret_best_fixed_second_half"].as_f64().unwrap();
        let ro = r["regret_oracle_second_half"].as_f64().unwrap();
        assert!(
            (best - u - rb).abs() < 1e-9 && (oracle - u - ro).abs() < 1e-9,
            "{r}"
        );
        let bin = r["bins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["start"] == 2500)
            .unwrap();
        let share = bin["shares"][m].as_f64().unwrap();
        let count = shares
            .get(r["name"].as_str().unwrap())
            .copied()
            .unwrap_or(0);
        assert!((share - count as f64 / 500.0).abs() < 1e-12, "{r}");
    }

    // Bad input: one clear line.
    let o = pointsman(&[
        "replay",
        "--data",
        data.to_str().unwrap(),
        "--routers",
        "linucb,nope",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stderr_line(&o).contains("unknown learner \"nope\""));
    let o = pointsman(&[
        "replay",
        "--data",
        data.to_str().unwrap(),
        "--routers",
        "linucb",
        "--drift",
        "no-such-model@10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stderr_line(&o).contains("no-such-model"));
}
