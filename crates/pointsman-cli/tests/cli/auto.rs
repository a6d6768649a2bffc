//! `pointsman train --router auto`: the candidates' table, the saved choice and its options.

use super::*;

#[test]
fn train_auto_prints_candidates_and_saves_the_best() {
    let Some(root) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = root.join("llmrouter_dc");
    let file = tmp.path().join("auto.safetensors");
    let base = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--router",
        "auto",
        "--out",
        file.to_str().unwrap(),
    ];
    let o = pointsman(&[&base[..], &["-q", "--kinds", "zero,knn,stack"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("auto: 3 candidates ranked by cv aiq over 5 folds of the train split"),
        "{stdout}"
    );
    for kind in ["zero", "knn", "stack"] {
        assert!(stdout.contains(&format!("  {kind} ")), "{stdout}");
    }
    // The spread over the folds, and the paired count against the chosen one ("-" on its own
    // row; the zero router beats kNN on no fold of this data).
    assert!(
        stdout.contains("cv per fold") && stdout.contains("beats chosen"),
        "{stdout}"
    );
    let row = |kind: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("  {kind} ")))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let chosen = stdout
        .lines()
        .find_map(|l| l.strip_prefix("chose "))
        .expect("a chose line");
    let chosen_kind = chosen.split_whitespace().next().unwrap();
    assert_eq!(row(chosen_kind)[4], "-", "{stdout}");
    assert_eq!(row("zero")[4], "0/5", "{stdout}");
    // kNN measured nested: its search winner's own figure beside it, and what it means.
    assert!(
        stdout.contains("search's own") && stdout.contains("(nested: each fold estimated"),
        "{stdout}"
    );
    assert_eq!(row("zero")[5], "-", "{stdout}");
    assert!(row("knn")[5].parse::<f64>().is_ok(), "{stdout}");
    assert!(row("stack")[5].parse::<f64>().is_ok(), "{stdout}");
    // The chosen setting in full, in the form --config takes.
    let config = stdout
        .lines()
        .find_map(|l| l.strip_prefix("config "))
        .expect("a config line");
    let config: serde_json::Value = serde_json::from_str(config).unwrap();
    assert_eq!(config["type"], chosen_kind, "{stdout}");
    // --limit: a seeded sample of the train split, for a quick trial.
    // (and --no-nested: the search winners' own figures, no column for them)
    let o = pointsman(
        &[
            &base[..],
            &[
                "-q",
                "--kinds",
                "zero,knn",
                "--limit",
                "300",
                "--no-nested",
                "--folds",
                "3",
            ],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let quick = String::from_utf8_lossy(&o.stdout);
    assert!(
        quick.contains("auto: 2 candidates ranked by cv aiq over 3 folds")
            && !quick.contains("search's own"),
        "{quick}"
    );
    // APGR on nine models would have been AIQ under another name.
    let e = stderr_line(&pointsman(&[&base[..], &["--criterion", "apgr"]].concat()));
    assert!(e.contains("apgr needs two-model data"), "{e}");
    let e = stderr_line(&pointsman(&[&base[..], &["--limit", "0"]].concat()));
    assert!(e.contains("--limit takes a positive number"), "{e}");
    let router = pointsman::registry::AnyRouter::load(&file).unwrap();
    assert!(chosen.starts_with(router.kind().name()), "{chosen}");
    let e = stderr_line(&pointsman(&[&base[..], &["--criterion", "best"]].concat()));
    assert!(
        e.contains("unknown --criterion") && e.contains("max-quality"),
        "{e}"
    );
    let e = stderr_line(&pointsman(&[&base[..], &["--kinds", "cascade"]].concat()));
    assert!(e.contains("does not try cascade"), "{e}");
    // The options of the automatic choice, given with another router.
    let knn = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--router",
        "knn",
        "--out",
        file.to_str().unwrap(),
    ];
    for (extra, says) in [
        (&["--criterion", "aiq"][..], "go with --router auto"),
        (
            &["--no-nested"][..],
            "--no-nested and --folds go with --router auto",
        ),
        (
            &["--folds", "3"][..],
            "--no-nested and --folds go with --router auto",
        ),
        // The judge only tunes a cascade (it was accepted and ignored).
        (
            &["--judge-noise", "0.3"][..],
            "--judge-noise tunes a cascade: it does not go with --router knn",
        ),
    ] {
        let e = stderr_line(&pointsman(&[&knn[..], extra].concat()));
        assert!(e.contains(says), "{e}");
    }
    // Nor with a cascade's --config, which fits without a search.
    let mut cascade = knn.to_vec();
    cascade[4] = "cascade";
    cascade.extend(["--config", "{}", "--judge-noise", "0.3"]);
    let e = stderr_line(&pointsman(&cascade));
    assert!(e.contains("with --config there is no search"), "{e}");
}
