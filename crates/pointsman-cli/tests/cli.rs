//! The `pointsman` binary end to end: evaluation on the shared datasets, reports recomputed from
//! decisions.jsonl, and one clear line on stderr for every bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "cli/auto.rs"]
mod auto;
#[path = "cli/cascade.rs"]
mod cascade;
#[path = "cli/import.rs"]
mod import;
#[path = "cli/onboard.rs"]
mod onboard;
#[path = "cli/policy.rs"]
mod policy;
#[path = "cli/replay.rs"]
mod replay;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("POINTSMAN_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if dir.join("llmrouter_dc").is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "shared datasets not found at {} (set POINTSMAN_DATA_DIR)",
        dir.display()
    );
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
    eprintln!("skipping: {msg}");
    None
}

fn pointsman(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pointsman"))
        .args(args)
        .output()
        .expect("the pointsman binary runs")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn stderr_line(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got {err:?}");
    lines[0].to_string()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn eval_and_recompute(name: &str) {
    let Some(root) = data_dir() else { return };
    let data = root.join(name);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("eval");
    let o = pointsman(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--routers",
        "random,cheapest,best-single,oracle,zero",
        "--out",
        out.to_str().unwrap(),
        "--decisions",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("oracle (reads test labels)"), "{table}");
    for f in ["report.json", "report.md", "curve.svg", "decisions.jsonl"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Both the table and report.md say why the baselines share an AIQ, and link the definitions
    // (report.md relative to out/<name>/, where the README's commands write it).
    assert!(table.contains("docs/metrics.md"), "{table}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("[docs/metrics.md](../../docs/metrics.md)"),
        "{md}"
    );
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/metrics.md")
        .is_file());
    let svg = std::fs::read_to_string(out.join("curve.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("best-single"));

    // Best single and oracle equal stats.json's test_split section (3 decimals).
    let report = json(&out.join("report.json"));
    let stats = json(&data.join("stats.json"));
    let t = &stats["test_split"];
    let policy = |n: &str| {
        report["entrants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()
            .clone()
    };
    // The note names the entrants whose AIQ is the zero router's (on llmrouter_dc all four
    // baselines; on routellm random's point lies a little above the two models' line).
    let zero_aiq = report["reference"]["zero_router_aiq"].as_f64().unwrap();
    let sharing: Vec<&str> = report["entrants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| (p["metrics"]["aiq"].as_f64().unwrap() - zero_aiq).abs() <= 1e-9)
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    if name == "llmrouter_dc" {
        assert_eq!(sharing, ["random", "cheapest", "best-single", "zero"]);
    }
    let (last, rest) = sharing.split_last().unwrap();
    let note = format!(
        "{} and {last} have the zero router's AIQ ({zero_aiq:.4})",
        rest.join(", ")
    );
    assert!(table.contains(&note), "{note:?} not in {table}");
    let best = &t["models"][t["best_single_by_train"].as_str().unwrap()];
    let best_curve = &policy("best-single")["curve"][0];
    assert_eq!(
        round3(best_curve["mean_quality"].as_f64().unwrap()),
        round3(best["mean_score"].as_f64().unwrap())
    );
    let (c, sc) = (
        best_curve["mean_cost"].as_f64().unwrap(),
        best["mean_cost_usd"].as_f64().unwrap(),
    );
    assert!((c - sc).abs() < 1e-6 * sc);
    let oracle_curve = &policy("oracle")["curve"][0];
    assert_eq!(
        round3(oracle_curve["mean_quality"].as_f64().unwrap()),
        round3(t["oracle_mean_score"].as_f64().unwrap())
    );
    let (c, sc) = (
        oracle_curve["mean_cost"].as_f64().unwrap(),
        t["oracle_mean_cost_usd"].as_f64().unwrap(),
    );
    assert!((c - sc).abs() < 1e-6 * sc);
    assert_eq!(
        round3(report["reference"]["zero_router_aiq"].as_f64().unwrap()),
        round3(t["zero_router_aiq"].as_f64().unwrap())
    );

    // Decision lines have exactly the documented fields.
    let first = std::fs::read_to_string(out.join("decisions.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let mut keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["cost_weight", "id", "model", "points", "router", "routers"]
    );

    // The report recomputed from decisions.jsonl and the dataset alone is the same.
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
    let recomputed = json(&again.join("report.json"));
    assert_eq!(recomputed["entrants"], report["entrants"]);
    assert_eq!(recomputed["reference"], report["reference"]);
    // The file cut at its last sweep point (on routellm, a router's per-call sweep): refused,
    // not reported from what is left.
    let last = first.lines().last().unwrap();
    let last: serde_json::Value = serde_json::from_str(last).unwrap();
    let cut: Vec<&str> = first
        .lines()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["router"] != last["router"]
                || v["cost_weight"] != last["cost_weight"]
                || v["cost_basis"] != last["cost_basis"]
        })
        .collect();
    let cut_path = tmp.path().join("cut.jsonl");
    std::fs::write(&cut_path, cut.join("\n")).unwrap();
    let e = stderr_line(&pointsman(&[
        "report",
        "--data",
        data.to_str().unwrap(),
        "--decisions",
        cut_path.to_str().unwrap(),
    ]));
    assert!(e.contains("sweep points: the file was cut short"), "{e}");
    // Run again into the same folder without --decisions: the earlier decisions.jsonl would no
    // longer match the report, so the run is refused before any work and the folder kept.
    let before = std::fs::read(out.join("report.json")).unwrap();
    let e = stderr_line(&pointsman(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--routers",
        "cheapest",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(e.contains("decisions.jsonl is from an earlier run"), "{e}");
    assert_eq!(std::fs::read(out.join("report.json")).unwrap(), before);
}

#[test]
fn eval_llmrouter_dc_and_recompute_from_decisions() {
    eval_and_recompute("llmrouter_dc");
}

#[test]
fn eval_routellm_and_recompute_from_decisions() {
    eval_and_recompute("routellm");
}

fn fixture(dir: &Path, lines: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("models.json"),
        r#"{"models": {"a": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}, "b": {"input_usd_per_mtok": 5, "output_usd_per_mtok": 5}}, "default_output_tokens": 10}"#,
    )
    .unwrap();
    let name = dir.file_name().unwrap().to_str().unwrap();
    std::fs::write(dir.join(format!("{name}.jsonl")), lines.join("\n")).unwrap();
}

#[test]
fn bad_input_gives_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap();

    // Missing folder.
    let missing = tmp.path().join("nope");
    let line = stderr_line(&pointsman(&[
        "eval",
        "--data",
        missing.to_str().unwrap(),
        "--routers",
        "random",
        "--out",
        out_s,
    ]));
    assert!(
        line.starts_with("error: ") && line.contains("nope") && line.contains("No such file"),
        "{line}"
    );
    // Each cause once: the I/O error's text is part of the path's message, not repeated after it.
    assert_eq!(line.matches("No such file").count(), 1, "{line}");
    let missing_router = tmp.path().join("nonexistent.safetensors");
    let line = stderr_line(&pointsman_stdin(
        &["route", "--router", missing_router.to_str().unwrap()],
        "",
    ));
    assert_eq!(
        line,
        format!(
            "error: {}: No such file or directory (os error 2)",
            missing_router.display()
        )
    );

    // A bad line in the dataset file: named by file and line.
    let ds = tmp.path().join("fx");
    fixture(
        &ds,
        &[
            r#"{"id": "1", "split": "train", "prompt": "p", "scores": {"a": 1, "b": 0}}"#,
            r#"{"id": "2", "split": "test", "prompt": "p", "scores": {"a": 1.7, "b": 0}}"#,
        ],
    );
    let line = stderr_line(&pointsman(&[
        "eval",
        "--data",
        ds.to_str().unwrap(),
        "--routers",
        "random",
        "--out",
        out_s,
    ]));
    assert!(
        line.ends_with("fx.jsonl:2: score 1.7 for model \"a\" outside [0, 1]"),
        "{line}"
    );

    // Unknown router names, checked before any work.
    fixture(
        &ds,
        &[
            r#"{"id": "1", "split": "train", "prompt": "p", "scores": {"a": 1, "b": 0}}"#,
            r#"{"id": "2", "split": "test", "prompt": "p", "scores": {"a": 1, "b": 0}}"#,
        ],
    );
    let line = stderr_line(&pointsman(&[
        "eval",
        "--data",
        ds.to_str().unwrap(),
        "--routers",
        "random,knnn",
        "--out",
        out_s,
    ]));
    assert!(
        line.starts_with("error: invalid input: unknown router \"knnn\" (known: random,"),
        "{line}"
    );
    let line = stderr_line(&pointsman(&[
        "eval",
        "--data",
        ds.to_str().unwrap(),
        "--routers",
        "fixed:c",
        "--out",
        out_s,
    ]));
    assert_eq!(line, "error: unknown model \"c\"");

    // A dataset without embeddings cannot be routed by a router that reads them.
    let line = stderr_line(&pointsman(&[
        "eval",
        "--data",
        ds.to_str().unwrap(),
        "--routers",
        "random",
        "--out",
        out_s,
    ]));
    assert!(line.contains("has no embeddings"), "{line}");

    // A corrupt embedding file.
    std::fs::write(ds.join("fx.minilm_l6_v2.f16.npy"), b"\x93NUMPY garbage").unwrap();
    let line = stderr_line(&pointsman(&[
        "eval",
        "--data",
        ds.to_str().unwrap(),
        "--routers",
        "random",
        "--out",
        out_s,
    ]));
    assert!(line.contains("fx.minilm_l6_v2.f16.npy: "), "{line}");

    // A malformed decisions file.
    let dec = tmp.path().join("d.jsonl");
    std::fs::write(&dec, "{\"router\": 1}\n").unwrap();
    std::fs::remove_file(ds.join("fx.minilm_l6_v2.f16.npy")).unwrap();
    let line = stderr_line(&pointsman(&[
        "report",
        "--data",
        ds.to_str().unwrap(),
        "--decisions",
        dec.to_str().unwrap(),
    ]));
    assert!(line.contains("d.jsonl:1: malformed decision"), "{line}");
    assert!(!out.join("report.json").exists());
    // An empty one is an error, not an empty table.
    std::fs::write(&dec, "\n").unwrap();
    let o = pointsman(&[
        "report",
        "--data",
        ds.to_str().unwrap(),
        "--decisions",
        dec.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr_line(&o).contains("no decision line"), "{o:?}");
    // A sweep needs two cost weights; --decisions belongs to the sweep, not to --policy.
    for (flags, says) in [
        (&["--points", "1"][..], "--points 1 is too few"),
        (
            &["--policy", "p.toml", "--decisions"][..],
            "with --policy there is no sweep",
        ),
        // Accepted and ignored before.
        (
            &["--policy", "p.toml", "--points", "3"][..],
            "--points sets the cost-weight sweep; with --policy there is no sweep",
        ),
    ] {
        let mut args = vec![
            "eval",
            "--data",
            ds.to_str().unwrap(),
            "--routers",
            "random",
            "--out",
            out_s,
        ];
        args.extend_from_slice(flags);
        let line = stderr_line(&pointsman(&args));
        assert!(line.contains(says), "{flags:?}: {line}");
    }
}

/// The keys of a JSON object line in the order they appear (serde_json's `Value` sorts them).
fn top_level_keys(line: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Keys>(line).unwrap().0
}

fn pointsman_stdin(args: &[&str], input: impl AsRef<[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pointsman"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the pointsman binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_ref())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `pointsman train --router <kind>` works for every kind the registry knows (searches skipped
/// with `--config` to keep it quick; the searches have their own tests), and the file it writes
/// routes through `pointsman route`.
#[test]
fn train_every_kind_then_route() {
    let Some(root) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = root.join("llmrouter_dc");
    let ds = pointsman::data::Dataset::load(&data).unwrap();
    let row = &ds.test().embeddings()[..384];
    let line = serde_json::json!({"id": "q", "embedding": row}).to_string();
    for kind in pointsman::RouterKind::ALL {
        let name = match kind {
            pointsman::RouterKind::Fixed => "fixed:gemma-2-9b-it".to_string(),
            _ => kind.to_string(),
        };
        let file = tmp.path().join(format!("{kind}.safetensors"));
        let mut args = vec![
            "train".to_string(),
            "--data".into(),
            data.to_str().unwrap().into(),
            "--router".into(),
            name.clone(),
            "--out".into(),
            file.to_str().unwrap().into(),
            "-q".into(),
        ];
        let quick = match kind {
            pointsman::RouterKind::Knn => Some(r#"{"k": 20}"#),
            pointsman::RouterKind::Mf => Some(r#"{"dim": 8, "max_epochs": 3}"#),
            pointsman::RouterKind::Cascade => Some(r#"{"estimator": {"k": 20}}"#),
            pointsman::RouterKind::Irt => Some(r#"{"dim": 2, "max_steps": 20}"#),
            pointsman::RouterKind::Stack => Some(
                r#"{"members": [{"type": "knn", "k": 20}, {"type": "irt", "dim": 2, "max_steps": 20}]}"#,
            ),
            _ => None,
        };
        if let Some(config) = quick {
            args.extend(["--config".to_string(), config.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = pointsman(&args);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout.contains(&format!("trained {kind} on 5489 queries")),
            "{stdout}"
        );
        let o = pointsman_stdin(&["route", "--router", file.to_str().unwrap()], &line);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(d["model_id"].is_string(), "{name}: {d}");
    }
    let e = stderr_line(&pointsman(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--router",
        "fixed",
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]));
    assert!(e.contains("fixed:<model id>"), "{e}");
}

/// `pointsman train --router auto` prints every candidate with its cross-validated figures and
/// saves the best; bad `--criterion` and `--kinds` are one clear line.
#[test]
fn train_then_route_json_lines() {
    let Some(root) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("knn.safetensors");
    let data = root.join("llmrouter_dc");
    let o = pointsman(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--router",
        "knn",
        "--out",
        file.to_str().unwrap(),
        "--config",
        r#"{"k": 50}"#,
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ds = pointsman::data::Dataset::load(&data).unwrap();
    let row = &ds.test().embeddings()[..384];
    let line = serde_json::json!({"id": "q1", "embedding": row, "prompt_tokens": 40.0}).to_string();
    let r = file.to_str().unwrap();
    let o = pointsman_stdin(
        &["route", "--router", r, "--cost-weight", "300"],
        format!("{line}\n{line}\n"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "q1");
    assert_eq!(lines[0]["alternatives"].as_array().unwrap().len(), 8);
    assert!(lines[0]["signals"]["ood"].as_f64().is_some());
    assert_eq!(lines[0], lines[1]);

    // Text in: the prompt embedded in-process routes as its shipped embedding does.
    if let Some(model_flag) = model_dir_flag() {
        let text = serde_json::json!({"id": 7, "text": ds.test().prompts()[0]}).to_string();
        let by_embedding = serde_json::json!({"embedding": row}).to_string();
        let mut args = vec!["route", "--router", r, "--cost-weight", "300"];
        args.extend(model_flag.iter().map(String::as_str));
        let o = pointsman_stdin(&args, format!("{text}\n{by_embedding}\n"));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["id"], 7);
        assert!(lines[0]["tokens"].as_u64().unwrap() > 2);
        assert_eq!(lines[0]["truncated"], false);
        assert_eq!(lines[0]["model_id"], lines[1]["model_id"]);
        let dq = lines[0]["quality"].as_f64().unwrap() - lines[1]["quality"].as_f64().unwrap();
        assert!(dq.abs() < 1e-3, "{dq}");
        // A router made for other embeddings: one error before any line, not one per line.
        let pool = pointsman::ModelPool::new(vec![
            pointsman::ModelCard::new("a", 1.0, 1.0),
            pointsman::ModelCard::new("b", 2.0, 2.0),
        ])
        .unwrap();
        let narrow = pointsman::data::Split::from_arrays(
            pool,
            vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
            2,
            vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5],
            vec![1e-5; 6],
        )
        .unwrap();
        let config = pointsman::RouterConfig::Knn(pointsman::routers::knn::KnnConfig {
            k: 1,
            ..Default::default()
        });
        let narrow_file = tmp.path().join("narrow.safetensors");
        pointsman::AnyRouter::fit_config(&config, &narrow)
            .unwrap()
            .save(&narrow_file)
            .unwrap();
        let mut args = vec!["route", "--router", narrow_file.to_str().unwrap()];
        args.extend(model_flag.iter().map(String::as_str));
        let o = pointsman_stdin(&args, format!("{text}\n{text}\n"));
        assert!(!o.status.success() && o.stdout.is_empty(), "{o:?}");
        let e = stderr_line(&o);
        assert!(e.contains("dimension mismatch"), "{e}");
    }

    // Keys in reading order: the id and the chosen model first, the alternatives last.
    let first_line = out.lines().next().unwrap();
    let keys = top_level_keys(first_line);
    assert_eq!(
        keys[..7],
        ["id", "model_id", "model", "quality", "score", "cost", "utility"],
        "{keys:?}"
    );
    assert_eq!(keys.last().map(String::as_str), Some("alternatives"));
    assert!(
        first_line.contains(r#""alternatives":[{"model_id":"#),
        "{first_line}"
    );

    // A reader that stops early (`pointsman route … | head -1`): a quiet exit, no panic.
    {
        use std::io::{BufRead, Write};
        let mut child = Command::new(env!("CARGO_BIN_EXE_pointsman"))
            .args(["route", "--router", r])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = format!("{line}\n").repeat(2000);
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("{\"id\":\"q1\""), "{first}");
        // stdout is closed here: the rest of the output has nowhere to go.
        let o = child.wait_with_output().unwrap();
        writer.join().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{:?}: {stderr}", o.status);
        assert_eq!(stderr, "");
    }

    // Bad lines: each gets an error record with its line number, the lines after it are still
    // routed, and the command fails at the end with one line on stderr.
    let short = serde_json::json!({"id": "s", "embedding": [1.0, 2.0]}).to_string();
    let o = pointsman_stdin(
        &["route", "--router", r, "--cost-weight", "300"],
        format!("{line}\n{short}\n\n{{\"id\": \"p\", \"prompt\": \"hi\"}}\n{line}\n"),
    );
    let summary = stderr_line(&o);
    assert_eq!(
        summary,
        "error: 2 of 4 lines not routed (error records on stdout); the first: stdin:2: \
         dimension mismatch: expected 384, got 2"
    );
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "{records:?}");
    assert_eq!(records[0], lines[0]);
    assert_eq!(
        records[1],
        serde_json::json!({"id": "s", "line": 2, "error": "dimension mismatch: expected 384, got 2"})
    );
    // A line that is not a query keeps its id on the error record.
    assert_eq!(
        (&records[2]["line"], &records[2]["id"]),
        (&serde_json::json!(4), &serde_json::json!("p"))
    );
    assert!(
        records[2]["error"]
            .as_str()
            .unwrap()
            .starts_with("expected {\"text\": \"...\"} or {\"embedding\""),
        "{}",
        records[2]
    );
    assert_eq!(records[3], lines[0]);
    // A line that is not UTF-8 is a bad line too: the lines after it are routed.
    let mut input = b"{\"id\": \"caf\xe9\"}\r\n".to_vec();
    input.extend_from_slice(format!("{line}\r\n").as_bytes());
    let o = pointsman_stdin(&["route", "--router", r, "--cost-weight", "300"], input);
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records,
        [
            serde_json::json!({"line": 1, "error": "not UTF-8 text (byte 12 is not)"}),
            lines[0].clone()
        ]
    );
    assert!(
        stderr_line(&o).starts_with("error: 1 of 2 lines not routed"),
        "{o:?}"
    );
    let route_error = |input: &str| {
        let o = pointsman_stdin(&["route", "--router", r], input);
        stderr_line(&o);
        let record: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
        record["error"].as_str().unwrap().to_string()
    };
    let both = serde_json::json!({"text": "hi", "embedding": row}).to_string();
    assert_eq!(
        route_error(&both),
        "give exactly one of \"text\" and \"embedding\""
    );
    assert_eq!(
        route_error("{\"text\": \" \\n \"}\n"),
        "invalid input: the text is empty or whitespace only: there is nothing to route"
    );
    let line2 = stderr_line(&pointsman_stdin(
        &["route", "--router", r, "--model-dir", "/nonexistent/model"],
        "{\"text\": \"hi\"}\n",
    ));
    assert!(
        line2.starts_with("error: embedding model not found at /nonexistent/model"),
        "{line2}"
    );
    // Entries trimmed and empty ones skipped, as --routers reads them.
    let line2 = stderr_line(&pointsman_stdin(
        &["route", "--router", r, "--allowed", " nope ,"],
        "",
    ));
    assert_eq!(line2, "error: unknown model \"nope\"");
    let line2 = stderr_line(&pointsman_stdin(
        &["route", "--router", r, "--allowed", " ,"],
        "",
    ));
    assert_eq!(line2, "error: --allowed names no model");
    std::fs::write(&file, b"not a router").unwrap();
    let line2 = stderr_line(&pointsman_stdin(&["route", "--router", r], ""));
    assert!(
        line2.contains("knn.safetensors: not a valid safetensors file"),
        "{line2}"
    );
    let line2 = stderr_line(&pointsman(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--router",
        "forest",
        "--out",
        r,
    ]));
    assert!(line2.contains("unknown router \"forest\""), "{line2}");
}

/// `--model-dir <dir>` when the embedding model is installed (empty when it is found at its default
/// place); `None` (the text checks are skipped) when it is missing, except under `CI=true`.
fn model_dir_flag() -> Option<Vec<String>> {
    let dir = pointsman::embed::default_model_dir().ok()?;
    if dir.join("model.safetensors").is_file() {
        return Some(vec!["--model-dir".into(), dir.to_str().unwrap().into()]);
    }
    let msg = format!("embedding model not found at {}", dir.display());
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
    eprintln!("skipping: {msg}");
    None
}

/// A small dataset without embeddings: `n` queries of llmrouter_dc, half from its test split (the
/// file starts with it) and half from its train split. Returns their rows in the file.
fn mini_dataset(root: &Path, dir: &Path, n: usize) -> Vec<usize> {
    use std::io::BufRead;
    std::fs::create_dir_all(dir).unwrap();
    let src = root.join("llmrouter_dc");
    std::fs::copy(src.join("models.json"), dir.join("models.json")).unwrap();
    let gz = std::fs::File::open(src.join("llmrouter_dc.jsonl.gz")).unwrap();
    let rows: Vec<usize> = (0..n / 2).chain(1000..1000 + n - n / 2).collect();
    let all: Vec<String> = std::io::BufReader::new(flate2::read::GzDecoder::new(gz))
        .lines()
        .take(1000 + n)
        .map(Result::unwrap)
        .collect();
    let lines: Vec<&str> = rows.iter().map(|&r| all[r].as_str()).collect();
    let name = dir.file_name().unwrap().to_str().unwrap();
    std::fs::write(dir.join(format!("{name}.jsonl")), lines.join("\n")).unwrap();
    rows
}

#[test]
fn embed_a_dataset_and_eval_one_without_embeddings() {
    let Some(root) = data_dir() else { return };
    let Some(model_flag) = model_dir_flag() else {
        return;
    };
    let model_flag: Vec<&str> = model_flag.iter().map(String::as_str).collect();
    let tmp = tempfile::tempdir().unwrap();
    let n = 60;

    // `pointsman embed` writes the shared layout, matching the shipped embeddings.
    let mini = tmp.path().join("mini");
    let rows = mini_dataset(&root, &mini, n);
    let mut args = vec!["embed", "--data", mini.to_str().unwrap(), "-q"];
    args.extend(&model_flag);
    let o = pointsman(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("{n} prompts × 384 (all-MiniLM-L6-v2)")),
        "{stdout}"
    );
    let meta = json(&mini.join("mini.minilm_l6_v2.meta.json"));
    assert_eq!(meta["rows"], n);
    assert_eq!(meta["model"], "all-MiniLM-L6-v2");
    let ours = pointsman::data::npy::read(&mini.join("mini.minilm_l6_v2.f16.npy")).unwrap();
    let shipped =
        pointsman::data::npy::read(&root.join("llmrouter_dc/llmrouter_dc.minilm_l6_v2.f16.npy"))
            .unwrap();
    assert_eq!((ours.rows, ours.cols), (n, 384));
    let diff = rows
        .iter()
        .enumerate()
        .flat_map(|(i, &r)| {
            let ours = &ours.data[i * 384..(i + 1) * 384];
            let shipped = &shipped.data[r * 384..(r + 1) * 384];
            ours.iter().zip(shipped).map(|(a, b)| (a - b).abs())
        })
        .fold(0f32, f32::max);
    assert!(diff < 2e-3, "max abs diff {diff}");
    // Existing embeddings are not overwritten without --force.
    let line = stderr_line(&pointsman(&args));
    assert!(line.contains("already has embeddings"), "{line}");
    assert!(line.contains("--force"), "{line}");

    // `pointsman eval` on a dataset without embeddings computes and caches them.
    let fresh = tmp.path().join("fresh");
    mini_dataset(&root, &fresh, n);
    let out = tmp.path().join("eval");
    let mut args = vec![
        "eval",
        "--data",
        fresh.to_str().unwrap(),
        "--routers",
        "zero,knn",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    args.extend(&model_flag);
    let o = pointsman(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cached = pointsman::data::npy::read(&fresh.join("fresh.minilm_l6_v2.f16.npy")).unwrap();
    assert_eq!(cached.data, ours.data);
    assert!(json(&out.join("report.json"))["entrants"][1]["metrics"]["aiq"].is_number());
}
