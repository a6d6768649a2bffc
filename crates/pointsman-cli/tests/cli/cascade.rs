//! `pointsman eval` of the cascade with a simulated judge: every invocation recorded.

use super::*;

#[test]
fn eval_cascade_with_a_simulated_judge_records_every_invocation() {
    let Some(root) = data_dir() else { return };
    let data = root.join("llmrouter_dc");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("eval");

    // The flag is documented, and says the judge is a simulation.
    let help = pointsman(&["eval", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--judge-noise <EPS>") && help.contains("simulation"),
        "{help}"
    );
    // A noise outside [0, 0.5] is one clear line, before any work.
    let line = stderr_line(&pointsman(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--routers",
        "cascade",
        "--judge-noise",
        "0.7",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        line.contains("judge noise 0.7 is outside [0, 0.5]"),
        "{line}"
    );

    let o = pointsman(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--routers",
        "cascade,best-single",
        "--judge-noise",
        "0.2",
        "--points",
        "9",
        "--out",
        out.to_str().unwrap(),
        "--decisions",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("quality at 0.6x best-single cost") && table.contains("cascade"),
        "{table}"
    );
    let text = std::fs::read_to_string(out.join("decisions.jsonl")).unwrap();
    let (mut cascade_lines, mut several) = (0, 0);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["router"].as_str().unwrap() {
            "cascade" => {
                let invoked: Vec<&str> = v["invoked"]
                    .as_array()
                    .expect("cascade lines carry invoked")
                    .iter()
                    .map(|m| m.as_str().unwrap())
                    .collect();
                assert!(invoked.contains(&v["model"].as_str().unwrap()), "{line}");
                cascade_lines += 1;
                several += usize::from(invoked.len() > 1);
            }
            _ => assert!(v.get("invoked").is_none(), "{line}"),
        }
    }
    assert_eq!(cascade_lines % 500, 0);
    assert!(cascade_lines >= 500 && several > 0);

    // The report recomputed from the decisions (a query costs the sum of its invoked models)
    // is the same.
    let again = tmp.path().join("again");
    let o = pointsman(&[
        "report",
        "--data",
        data.to_str().unwrap(),
        "--decisions",
        out.join("decisions.jsonl").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = json(&out.join("report.json"));
    assert_eq!(
        json(&again.join("report.json"))["entrants"],
        report["entrants"]
    );
    let cascade = &report["entrants"][0];
    assert_eq!(cascade["name"], "cascade");
    assert!(cascade["metrics"]["quality_at_cheap_share"]
        .as_f64()
        .is_some());
}
