//! `pointsman fit-guard` and `pointsman route --policy`: a guard fitted on the shared data, a
//! policy's rules, guard, budget and stickiness applied line by line with each line's audit.

use super::{data_dir, pointsman, pointsman_stdin, stderr_line};

#[test]
fn fit_a_guard_then_route_under_the_policy() {
    let Some(root) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = root.join("llmrouter_dc");
    let router = dir.join("knn.safetensors");
    let o = pointsman(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--router",
        "knn",
        "--config",
        "{}",
        "--out",
        router.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A tenant budget of 0.2 mUSD, a rule for the free tier, stickiness, and a guard that
    // falls back to the cheapest model.
    let base = dir.join("base.toml");
    std::fs::write(
        &base,
        r#"cost_weight = 300
[[rules]]
name = "free-tier"
when = { tenant = ["free"] }
then = { exclude = ["llama-3.3-nemotron-super-49b-v1"] }
[[budgets]]
key = "tenant"
limit_usd = 0.0002
window = { kind = "total" }
[sticky]
margin = 0.05
[guard]
source = "router"
action = { fallback = "qwen2.5-7b-instruct" }
"#,
    )
    .unwrap();
    let policy = dir.join("guarded.toml");
    let fit_guard = |policy: &std::path::Path, out: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "fit-guard",
            "--data",
            data.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ];
        args.extend(extra);
        pointsman(&args)
    };
    let o = fit_guard(&base, &policy, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("5.0 % false alarms"), "{said}");
    assert!(dir.join("guarded.toml.guard.safetensors").is_file());
    let saved = std::fs::read_to_string(&policy).unwrap();
    assert!(saved.contains("source = \"embeddings\"") && saved.contains("free-tier"));
    // The policy given is not rewritten in place, and a file at the guard's derived path that
    // is not a guard is not replaced: both were, silently.
    let base_text = std::fs::read_to_string(&base).unwrap();
    let not_a_guard = dir.join("other.toml.guard.safetensors");
    std::fs::write(&not_a_guard, "a user's file").unwrap();
    for (out, needle) in [
        (base.clone(), "is one of this command's inputs"),
        (dir.join("other.toml"), "holds a file that is not a guard"),
    ] {
        let e = stderr_line(&fit_guard(&base, &out, &[]));
        assert!(e.contains(needle), "{e}");
    }
    assert_eq!(std::fs::read_to_string(&base).unwrap(), base_text);
    assert_eq!(
        std::fs::read_to_string(&not_a_guard).unwrap(),
        "a user's file"
    );
    assert!(!dir.join("other.toml").exists());
    // Nor the guard the given policy names: `--out guarded.json` (the same stem) derived the
    // same guard path and replaced it; the file name, extension included, keeps them apart.
    let guard_bytes = std::fs::read(dir.join("guarded.toml.guard.safetensors")).unwrap();
    let o = fit_guard(&policy, &dir.join("guarded.json"), &["--seed", "7"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.join("guarded.json.guard.safetensors").is_file());
    assert_eq!(
        std::fs::read(dir.join("guarded.toml.guard.safetensors")).unwrap(),
        guard_bytes
    );

    // Test queries by embedding: every line carries a tenant; the first two share a session.
    let ds = pointsman::data::Dataset::load(&data).unwrap();
    let test = ds.test();
    let row = |i: usize| &test.embeddings()[i * 384..(i + 1) * 384];
    let far: Vec<f32> = row(0).iter().rev().copied().collect();
    let mut lines = Vec::new();
    for i in 0..12 {
        let mut line = serde_json::json!({"id": i, "embedding": row(i), "tenant": "free"});
        if i < 2 {
            line["session"] = "s1".into();
        }
        lines.push(line.to_string());
    }
    // A query unlike any training query: the guard sends it to its fallback.
    lines.push(serde_json::json!({"id": "far", "embedding": far, "tenant": "acme"}).to_string());
    let args = [
        "route",
        "--router",
        router.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--charge-expected",
    ];
    let o = pointsman_stdin(&args, &(lines.join("\n") + "\n"));
    let out: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out.len(), lines.len(), "one line out per line in");
    let decided: Vec<&serde_json::Value> = out.iter().filter(|l| l["error"].is_null()).collect();
    let refused: Vec<&serde_json::Value> = out.iter().filter(|l| !l["error"].is_null()).collect();
    for l in &decided {
        let audit = &l["audit"];
        assert!(audit["guard"]["verdict"].is_string(), "{l}");
        assert_ne!(l["model_id"], "llama-3.3-nemotron-super-49b-v1", "{l}");
        if l["id"] != "far" {
            assert_eq!(audit["rules"][0], "free-tier", "{l}");
        }
    }
    // The session's second query sees the first's model.
    assert_eq!(out[1]["audit"]["sticky"]["previous"], out[0]["model_id"]);
    // The far query falls back to the guard's model.
    let far = out.iter().find(|l| l["id"] == "far").unwrap();
    assert_eq!(far["audit"]["guard"]["verdict"], "fallback", "{far}");
    assert_eq!(far["model_id"], "qwen2.5-7b-instruct");
    // The free tier's budget is charged with each decision's expected cost until it refuses;
    // the refusal's record carries its audit, and the command fails at the end naming it.
    assert!(
        !refused.is_empty(),
        "a 0.2 mUSD budget runs out in 12 queries"
    );
    let spent: f64 = decided
        .iter()
        .filter(|l| l["id"] != "far")
        .map(|l| l["cost"].as_f64().unwrap())
        .sum();
    assert!(spent <= 0.0002 + 1e-12, "{spent}");
    assert_eq!(
        refused[0]["audit"]["refused"], "budget_exhausted",
        "{}",
        refused[0]
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("budget"), "{err}");

    // Policy keys without --policy are a clear per-line error.
    let o = pointsman_stdin(
        &["route", "--router", router.to_str().unwrap()],
        format!("{}\n", lines[0]),
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("is a policy key"));
}

/// `eval --policy` and `replay --policy` write `policy.json` into `--out`: a policy file of that
/// name in that folder is refused before any work, and left as it was.
#[test]
fn a_policy_file_is_never_replaced_by_the_run_it_drives() {
    let Some(root) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pol");
    std::fs::create_dir(&dir).unwrap();
    let policy = dir.join("policy.json");
    let text = r#"{"version": 1, "cost_weight": 100}"#;
    std::fs::write(&policy, text).unwrap();
    let data = root.join("llmrouter_dc");
    for (command, routers) in [("replay", "linucb"), ("eval", "knn")] {
        let o = pointsman(&[
            command,
            "--data",
            data.to_str().unwrap(),
            "--routers",
            routers,
            "--policy",
            policy.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
            "-q",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("is one of this command's inputs"),
            "{command}: {err}"
        );
        assert_eq!(std::fs::read_to_string(&policy).unwrap(), text, "{command}");
    }
}
