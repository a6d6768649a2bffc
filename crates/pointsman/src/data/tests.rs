use std::path::{Path, PathBuf};

use super::*;
use crate::features::DEFAULT_EMBEDDING_MODEL;
use crate::pool::{ModelCard, ModelPool};

fn write_fixture(dir: &Path, lines: &[&str]) {
    std::fs::write(
        dir.join("models.json"),
        r#"{"models": {"a": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0},
                       "b": {"input_usd_per_mtok": 10.0, "output_usd_per_mtok": 20.0, "role": "strong"}},
           "default_output_tokens": 100}"#,
    )
    .unwrap();
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    std::fs::write(dir.join(format!("{name}.jsonl")), lines.join("\n")).unwrap();
}

fn fixture(lines: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fx");
    std::fs::create_dir(&dir).unwrap();
    write_fixture(&dir, lines);
    (tmp, dir)
}

const GOOD: [&str; 3] = [
    r#"{"id": "q1", "split": "train", "task": "t", "prompt": "abcdefgh", "scores": {"a": 0, "b": 1}, "cost_usd": null, "output_chars": null}"#,
    r#"{"id": "q2", "split": "test", "prompt": "abcd", "scores": {"a": 0.5, "b": 1}, "cost_usd": {"a": 0.25}, "output_chars": {"b": 40}}"#,
    r#"{"id": "q3", "split": "train", "prompt": "", "scores": {"a": 1, "b": 0}}"#,
];

#[test]
fn loads_and_costs_follow_the_schema() {
    let (_tmp, dir) = fixture(&GOOD);
    let ds = Dataset::load(&dir).unwrap();
    assert_eq!(ds.name(), "fx");
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.train().len(), 2);
    assert_eq!(ds.test().ids(), &["q2".to_string()]);
    assert!(!ds.has_embeddings());
    // q1: 8 chars = 2 tokens, default 100 output tokens.
    assert!((ds.train().cost(0, 0) - (1.0 * 2.0 + 2.0 * 100.0) / 1e6).abs() < 1e-18);
    assert!((ds.train().cost(0, 1) - (10.0 * 2.0 + 20.0 * 100.0) / 1e6).abs() < 1e-18);
    // q2: observed cost wins for a; b uses its output length (40 chars = 10 tokens).
    assert_eq!(ds.test().cost(0, 0), 0.25);
    assert_eq!(ds.test().cost_observed(), &[true, false]);
    assert!(ds.test().output_tokens()[0].is_nan());
    assert_eq!(ds.test().output_tokens()[1], 10.0);
    assert!((ds.test().cost(0, 1) - (10.0 * 1.0 + 20.0 * 10.0) / 1e6).abs() < 1e-18);
    assert_eq!(ds.train().tasks()[0].as_deref(), Some("t"));
    assert_eq!(ds.weak_strong(), Some((0, 1)));
    assert_eq!(ds.prompts_in_file_order(), vec!["abcdefgh", "abcd", ""]);
    assert!(ds.split("dev").is_err());
    assert!(ds.train().features().is_err());
    assert_eq!(ds.train().mean_scores(), vec![0.5, 0.5]);
    // Both a .jsonl.gz and a .jsonl: which is the dataset is not guessed (the .gz was read).
    std::fs::write(dir.join("fx.jsonl.gz"), b"").unwrap();
    let e = Dataset::load(&dir).unwrap_err().to_string();
    assert!(e.contains("holds both fx.jsonl.gz and fx.jsonl"), "{e}");
}

fn load_err(lines: &[&str]) -> String {
    let (_tmp, dir) = fixture(lines);
    let e = Dataset::load(&dir).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Format, "{e}");
    e.to_string()
}

#[test]
fn bad_lines_name_file_line_and_problem() {
    let e = load_err(&[
        GOOD[0],
        r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": 1.7, "b": 0}}"#,
    ]);
    assert!(
        e.ends_with("fx.jsonl:2: score 1.7 for model \"a\" outside [0, 1]"),
        "{e}"
    );
    let e = load_err(&[r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": 1}}"#]);
    assert!(
        e.contains("fx.jsonl:1: no score for model \"b\" (a dataset whose lines may lack"),
        "{e}"
    );
    let e = load_err(&[GOOD[0], GOOD[1], r#"{"id": "x", "split": "train", "#]);
    assert!(e.contains("fx.jsonl:3: malformed json"), "{e}");
    let e = load_err(&[
        r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": NaN, "b": 0}}"#,
    ]);
    assert!(e.contains("fx.jsonl:1: NaN at column"), "{e}");
    let e =
        load_err(&[r#"{"id": "x", "split": "dev", "prompt": "p", "scores": {"a": 1, "b": 0}}"#]);
    assert!(
        e.ends_with("fx.jsonl:1: unknown split \"dev\" (expected \"train\" or \"test\")"),
        "{e}"
    );
    let e = load_err(&[
        r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": 1, "b": 0, "c": 1}}"#,
    ]);
    assert!(e.contains("unknown model \"c\""), "{e}");
    let e = load_err(&[GOOD[0], GOOD[0]]);
    assert!(e.ends_with("fx.jsonl:2: id \"q1\" appears twice"), "{e}");
    let e =
        load_err(&[r#"{"id": "x", "split": "train", "prompt": 3, "scores": {"a": 1, "b": 0}}"#]);
    assert!(e.ends_with("prompt 3 is not a string"), "{e}");
    let e = load_err(&[
        r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": "high", "b": 0}}"#,
    ]);
    assert!(
        e.ends_with("score \"high\" for model \"a\" is not a number"),
        "{e}"
    );
    // Silently accepted before: a cost for a model not in models.json, a fractional length,
    // a key repeated inside one line (the last one won).
    let e = load_err(&[
        r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": 1, "b": 0}, "cost_usd": {"z": 0.1}}"#,
    ]);
    assert!(
        e.ends_with("fx.jsonl:1: cost_usd for unknown model \"z\" (not in models.json)"),
        "{e}"
    );
    let e = load_err(&[
        r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": 1, "b": 0}, "output_chars": {"a": 1.5}}"#,
    ]);
    assert!(
        e.ends_with("output_chars 1.5 for model \"a\" is not a whole number of characters"),
        "{e}"
    );
    let e = load_err(&[
        r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": 1, "b": 0, "a": 0.2}}"#,
    ]);
    assert!(
        e.contains("fx.jsonl:1: malformed json: key \"a\" appears twice in one object"),
        "{e}"
    );
    // Neither a folder nor a FIFO is read as a file.
    let (_tmp, dir) = fixture(&[GOOD[0]]);
    let records = dir.join("fx.jsonl");
    std::fs::remove_file(&records).unwrap();
    std::fs::create_dir(&records).unwrap();
    let e = Dataset::load(&dir).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Io, "{e}");
}

#[test]
fn bad_embeddings_and_models() {
    let (_tmp, dir) = fixture(&GOOD);
    let npy_path = embeddings_path(&dir, "fx");
    npy::write(&npy_path, &[1.0; 8], 2, 4, npy::Dtype::F16).unwrap();
    let e = Dataset::load(&dir).unwrap_err().to_string();
    assert!(
        e.ends_with("fx.minilm_l6_v2.f16.npy: 2 rows, the dataset has 3 queries"),
        "{e}"
    );
    // What `embed --force` reads to repair them: the records alone.
    let records = Dataset::load_without_embeddings(&dir).unwrap();
    assert!(!records.has_embeddings() && records.len() == 3);
    npy::write(&npy_path, &[1.0; 12], 3, 4, npy::Dtype::F16).unwrap();
    std::fs::write(
        embeddings_meta_path(&dir, "fx"),
        r#"{"rows": 3, "dim": 384}"#,
    )
    .unwrap();
    let e = Dataset::load(&dir).unwrap_err().to_string();
    assert!(
        e.ends_with("dim 384 does not match the embedding file's 4 columns"),
        "{e}"
    );
    std::fs::write(
        embeddings_meta_path(&dir, "fx"),
        r#"{"rows": 30, "dim": 4}"#,
    )
    .unwrap();
    let e = Dataset::load(&dir).unwrap_err().to_string();
    assert!(
        e.ends_with("rows 30 does not match the embedding file's 3 rows"),
        "{e}"
    );
    std::fs::write(embeddings_meta_path(&dir, "fx"), r#"{"rows": 3, "dim": 4}"#).unwrap();
    let ds = Dataset::load(&dir).unwrap();
    assert_eq!(ds.train().dim(), 4);
    assert!((ds.train().embeddings()[0] - 0.5).abs() < 1e-6);
    assert_eq!(
        ds.train().features().unwrap().embedding_model(),
        Some(DEFAULT_EMBEDDING_MODEL)
    );

    std::fs::write(dir.join("models.json"), "{").unwrap();
    let e = Dataset::load(&dir).unwrap_err().to_string();
    assert!(e.contains("models.json: malformed json"), "{e}");
    std::fs::write(
        dir.join("models.json"),
        r#"{"models": {"a": {"input_usd_per_mtok": -1, "output_usd_per_mtok": 1}}}"#,
    )
    .unwrap();
    let e = Dataset::load(&dir).unwrap_err();
    assert!(
        matches!(&e, crate::Error::Config(m) if m.contains("models.json: model \"a\": input_usd_per_mtok -1 is not a non-negative number")),
        "{e}"
    );
    std::fs::write(
        dir.join("models.json"),
        r#"{"models": {"a": {"input_usd_per_mtok": "1", "output_usd_per_mtok": 1}}}"#,
    )
    .unwrap();
    let e = Dataset::load(&dir).unwrap_err().to_string();
    assert!(
        e.contains("models.json: model \"a\": input_usd_per_mtok missing or not a number"),
        "{e}"
    );
    // A price above the pool's ceiling is a configuration error (as wherever prices are given),
    // naming the file.
    std::fs::write(
        dir.join("models.json"),
        r#"{"models": {"a": {"input_usd_per_mtok": 1e300, "output_usd_per_mtok": 1}}}"#,
    )
    .unwrap();
    let e = Dataset::load(&dir).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("models.json: "), "{e}");
    let e = Dataset::load(dir.join("missing")).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Io);
}

#[test]
fn split_from_arrays_checks_shapes() {
    let pool = ModelPool::new(vec![
        ModelCard::new("a", 1.0, 1.0),
        ModelCard::new("b", 2.0, 2.0),
    ])
    .unwrap();
    let s = Split::from_arrays(
        pool.clone(),
        vec![2.0, 0.0, 0.0, 1.0],
        2,
        vec![0.0, 1.0, 1.0, 0.5],
        vec![0.1; 4],
    )
    .unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s.embeddings()[0], 1.0);
    // Mean scores a 0.5, b 0.75: b is the strong model; a's lead flips it; a tie makes b strong.
    assert_eq!(s.weak_strong(), Some((0, 1)));
    let flipped = Split::from_arrays(
        pool.clone(),
        vec![1.0, 0.0],
        2,
        vec![0.9, 0.1],
        vec![0.1; 2],
    );
    assert_eq!(flipped.unwrap().weak_strong(), Some((1, 0)));
    let tie = Split::from_arrays(
        pool.clone(),
        vec![1.0, 0.0],
        2,
        vec![0.5, 0.5],
        vec![0.1; 2],
    );
    assert_eq!(tie.unwrap().weak_strong(), Some((0, 1)));
    let e =
        Split::from_arrays(pool.clone(), vec![1.0, 0.0], 2, vec![0.0], vec![0.1; 2]).unwrap_err();
    assert!(
        e.to_string()
            .contains("scores hold 1 values, expected 1 rows x 2 models"),
        "{e}"
    );
    let e = Split::from_arrays(pool, vec![1.0, 0.0], 2, vec![0.0, 2.0], vec![0.1; 2]).unwrap_err();
    assert!(
        e.to_string()
            .contains("score 2 in row 0 for model \"b\" outside [0, 1]"),
        "{e}"
    );
}

fn partial_fixture(lines: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = fixture(lines);
    std::fs::write(
        dir.join("models.json"),
        r#"{"models": {"a": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0},
                       "b": {"input_usd_per_mtok": 10.0, "output_usd_per_mtok": 20.0,
                             "description": "the big one"}},
           "default_output_tokens": 100, "labels": "partial"}"#,
    )
    .unwrap();
    (tmp, dir)
}

const PARTIAL: [&str; 4] = [
    r#"{"id": "q1", "split": "train", "task": "t", "prompt": "abcdefgh", "scores": {"a": 0.5}, "propensity": {"a": 0.25}}"#,
    r#"{"id": "q2", "split": "test", "prompt": "abcd", "scores": {"a": 0.5, "b": 1}}"#,
    r#"{"id": "q3", "split": "train", "prompt": "x", "preferences": [{"model_a": "b", "model_b": "a", "winner": "model_a"}]}"#,
    r#"{"id": "q4", "split": "train", "prompt": "y", "scores": {"b": 0.0, "a": null}, "preferences": [{"model_a": "a", "model_b": "b", "winner": "tie"}]}"#,
];

#[test]
fn partial_and_pairwise_labels_load() {
    let (_tmp, dir) = partial_fixture(&PARTIAL);
    let ds = Dataset::load(&dir).unwrap();
    assert_eq!(
        ds.pool().card(1).description.as_deref(),
        Some("the big one")
    );
    let train = ds.train();
    assert!(!train.is_fully_labelled());
    assert!(ds.test().is_fully_labelled());
    assert_eq!(
        train.observed_mask().unwrap(),
        &[true, false, false, false, false, true]
    );
    assert!(train.observed(0, 0) && !train.observed(0, 1));
    assert!(train.score(0, 1).is_nan());
    assert_eq!(train.observed_count(), 2);
    // Unobserved cells still have the price estimate as their cost.
    assert!((train.cost(0, 1) - (10.0 * 2.0 + 20.0 * 100.0) / 1e6).abs() < 1e-18);
    assert_eq!(
        train.preferences(),
        &[
            Preference {
                row: 1,
                model_a: 1,
                model_b: 0,
                winner: Winner::ModelA
            },
            Preference {
                row: 2,
                model_a: 0,
                model_b: 1,
                winner: Winner::Tie
            },
        ]
    );
    assert_eq!(train.mean_scores(), vec![0.5, 0.0]);
    assert_eq!(train.win_shares(), vec![0.25, 0.75]);
    let p = train.propensities().unwrap();
    assert_eq!(p[0], 0.25);
    assert!(p[1..].iter().all(|v| v.is_nan()));
    assert_eq!(label_kind(train), "partial+pairwise");
    let e = train.require_full_labels("evaluation").unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::MissingLabels);
    assert!(
        e.to_string()
            .contains("4 of its 6 scores are missing (the first: model \"b\" on query \"q1\")"),
        "{e}"
    );
    // Subsets keep the mask, the preferences (renumbered) and the propensities.
    let sub = train.subset(&[2, 0], "sub");
    assert_eq!(sub.observed_mask().unwrap(), &[false, true, true, false]);
    assert_eq!(sub.preferences()[0].row, 0);
    assert_eq!(sub.propensities().unwrap()[2], 0.25);
    assert!(train.subset(&[1], "none").observed_mask().is_some());
}

#[test]
fn bad_partial_lines_name_the_field() {
    let err = |line: &str| {
        let (_tmp, dir) = partial_fixture(&[line]);
        Dataset::load(&dir).unwrap_err().to_string()
    };
    let e = err(
        r#"{"id": "x", "split": "train", "prompt": "p", "preferences": [{"model_a": "a", "model_b": "a", "winner": "tie"}]}"#,
    );
    assert!(
        e.ends_with("fx.jsonl:1: preference #0 compares model \"a\" with itself"),
        "{e}"
    );
    let e = err(
        r#"{"id": "x", "split": "train", "prompt": "p", "preferences": [{"model_a": "a", "model_b": "b", "winner": "a"}]}"#,
    );
    assert!(e.contains("winner \"a\" is not \"model_a\""), "{e}");
    let e = err(
        r#"{"id": "x", "split": "train", "prompt": "p", "preferences": [{"model_a": "a", "model_b": "z", "winner": "tie"}]}"#,
    );
    assert!(e.contains("model_b \"z\" is not in models.json"), "{e}");
    let e = err(
        r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": 1}, "propensity": {"a": 0}}"#,
    );
    assert!(
        e.contains("propensity 0 for model \"a\" outside (0, 1]"),
        "{e}"
    );
    let e = err(
        r#"{"id": "x", "split": "train", "prompt": "p", "scores": {"a": 1}, "propensity": {"b": 0.5}}"#,
    );
    assert!(
        e.contains("propensity for model \"b\", which has no score"),
        "{e}"
    );
    let (_tmp, dir) = fixture(&GOOD);
    std::fs::write(
        dir.join("models.json"),
        r#"{"models": {"a": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}}, "labels": "some"}"#,
    )
    .unwrap();
    let e = Dataset::load(&dir).unwrap_err().to_string();
    assert!(e.contains("labels \"some\" is neither"), "{e}");
}

#[test]
fn models_json_carries_the_policies_card_figures() {
    let (_tmp, dir) = fixture(&GOOD);
    std::fs::write(
        dir.join("models.json"),
        r#"{"models": {"a": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2, "ttft_ms": 300,
                             "output_tokens_per_second": 50, "joules_per_token": 0.5,
                             "context_window": 8192, "capabilities": ["vision", "tools", "tools"]},
                       "b": {"input_usd_per_mtok": 10, "output_usd_per_mtok": 20}}}"#,
    )
    .unwrap();
    let ds = Dataset::load(&dir).unwrap();
    let a = ds.train().pool().card(0);
    assert_eq!(
        (a.ttft_ms, a.output_tokens_per_second, a.joules_per_token),
        (Some(300.0), Some(50.0), Some(0.5))
    );
    assert_eq!(a.context_window, Some(8192.0));
    assert_eq!(a.capabilities, ["tools", "vision"]);
    let b = ds.train().pool().card(1);
    assert_eq!((b.ttft_ms, b.capabilities.len()), (None, 0));
    // Written back by a draft and read again: the same cards.
    let out = tempfile::tempdir().unwrap();
    ds.save(out.path().join("copy"), false).unwrap();
    let back = Dataset::load(out.path().join("copy")).unwrap();
    assert_eq!(back.train().pool(), ds.train().pool());
    // Bad figures name the model and field.
    for (card, says) in [
        (
            r#""ttft_ms": "fast""#,
            r#"model "a": ttft_ms "fast" is not a number"#,
        ),
        (
            r#""context_window": -1"#,
            "context_window -1 is not a whole number in [1, 1e9]",
        ),
        // Accepted before, and then excluded the model from every prompt with a token count.
        (
            r#""context_window": 0.5"#,
            "context_window 0.5 is not a whole number in [1, 1e9]",
        ),
        // A speed this low made every latency infinite and the policy's utility null.
        (
            r#""output_tokens_per_second": 5e-324"#,
            "output_tokens_per_second 5e-324 is not a number in [0.001, 1e9]",
        ),
        (
            r#""ttft_ms": 1e300"#,
            "ttft_ms 1e300 is not a number in [0, 1e9]",
        ),
        // A price out of range is a configuration error wherever it is given.
        (r#""default_output_tokens": -1"#, "invalid config: "),
        (
            r#""capabilities": "tools""#,
            "capabilities \"tools\" is not a list of strings",
        ),
        (r#""capabilities": [1]"#, "capability 1 is not a string"),
    ] {
        std::fs::write(
            dir.join("models.json"),
            format!(r#"{{"models": {{"a": {{"input_usd_per_mtok": 1, "output_usd_per_mtok": 2, {card}}}}}}}"#),
        )
        .unwrap();
        let e = Dataset::load(&dir).unwrap_err().to_string();
        assert!(e.contains("models.json") && e.contains(says), "{e}");
    }
}

#[test]
fn drafts_write_folders_that_load_back_the_same() {
    let (_tmp, dir) = partial_fixture(&PARTIAL);
    let mut ds = Dataset::load(&dir).unwrap();
    ds.set_embeddings(
        &[1.0, 0.0, 0.0, 1.0, 0.6, 0.8, 0.8, 0.6],
        2,
        Some("tiny".into()),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("copy");
    ds.save(&target, false).unwrap();
    let back = Dataset::load(&target).unwrap();
    for (a, b) in [(ds.train(), back.train()), (ds.test(), back.test())] {
        assert_eq!(a.ids(), b.ids());
        assert_eq!(a.observed_mask(), b.observed_mask());
        assert_eq!(a.preferences(), b.preferences());
        assert_eq!(a.costs(), b.costs());
        assert_eq!(a.tasks(), b.tasks());
        assert_eq!(a.embedding_model(), b.embedding_model());
        let same = |x: &[f64], y: &[f64]| {
            x.iter()
                .zip(y)
                .all(|(p, q)| p == q || (p.is_nan() && q.is_nan()))
        };
        assert!(same(a.scores(), b.scores()));
        assert_eq!(a.propensities().is_some(), b.propensities().is_some());
        let d: f32 = a
            .embeddings()
            .iter()
            .zip(b.embeddings())
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(d < 1e-3, "{d}");
    }
    assert_eq!(back.pool(), ds.pool());
    // Without `replace` an existing folder is refused, and nothing is left behind.
    assert_eq!(
        ds.save(&target, false).unwrap_err().kind(),
        crate::ErrorKind::Io
    );
    // With it, a dataset folder is replaced — but not one holding anything else, or an input.
    ds.save(&target, true).unwrap();
    std::fs::write(target.join("notes.txt"), b"mine").unwrap();
    // Checked up front too (before embedding), with nothing left beside the folder.
    let before = std::fs::read_dir(out.path()).unwrap().count();
    let draft = ds.to_draft("test");
    assert!(draft.check_destination(&target, true).is_err());
    assert!(draft.check_destination(&target, false).is_err());
    assert_eq!(
        draft
            .check_destination(&out.path().join("new"), false)
            .unwrap(),
        "new"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), before);
    let e = ds.save(&target, true).unwrap_err();
    assert!(
        e.to_string()
            .contains("holds more than a dataset (notes.txt)"),
        "{e}"
    );
    assert_eq!(std::fs::read(target.join("notes.txt")).unwrap(), b"mine");
    std::fs::remove_file(target.join("notes.txt")).unwrap();
    let mut draft = ds.to_draft("test");
    draft.inputs = vec![target.join("models.json")];
    let e = draft.write(&target, true).unwrap_err();
    assert!(e.to_string().contains("holds this import's input"), "{e}");
    assert!(Dataset::load(&target).is_ok());
    // A bad draft writes nothing.
    let mut draft = ds.to_draft("test");
    draft.rows[1].scores[0] = Some(1.5);
    let e = draft.write(&out.path().join("bad"), false).unwrap_err();
    assert!(
        e.to_string()
            .contains("score 1.5 for model \"a\" outside [0, 1]"),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(target.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["labels"], "partial+pairwise");
    assert_eq!(stats["preferences"], 2);
}

#[test]
fn the_split_rule_is_the_shipped_one() {
    // Python: int(hashlib.sha1(b"gsm8k-0").hexdigest(), 16) % 5
    let expected = [("gsm8k-0", "train"), ("mmlu-abstract_algebra-0", "train")];
    for (id, split) in expected {
        assert_eq!(split_of_id(id), split, "{id}");
    }
    let test = (0..1000)
        .filter(|i| split_of_id(&format!("q{i}")) == "test")
        .count();
    assert!((150..250).contains(&test), "{test}");
}

#[test]
fn seeded_label_conversions() {
    let pool = ModelPool::new(vec![
        ModelCard::new("a", 1.0, 1.0),
        ModelCard::new("b", 2.0, 2.0),
        ModelCard::new("c", 3.0, 3.0),
    ])
    .unwrap();
    let n = 200;
    let emb: Vec<f32> = (0..n).flat_map(|i| [1.0, i as f32 / n as f32]).collect();
    let scores: Vec<f64> = (0..n * 3).map(|i| ((i * 7) % 3) as f64 / 2.0).collect();
    let full = Split::from_arrays(pool, emb, 2, scores, vec![1e-5; n * 3]).unwrap();
    let kept = keep_cells(&full, 0.3, 1).unwrap();
    let share = kept.observed_count() as f64 / (n * 3) as f64;
    assert!((0.2..0.4).contains(&share), "{share}");
    assert_eq!(
        keep_cells(&full, 0.3, 1).unwrap().observed_mask(),
        kept.observed_mask()
    );
    assert_eq!(
        keep_cells(&kept, 0.5, 1).unwrap_err().kind(),
        crate::ErrorKind::MissingLabels
    );
    let pairs = to_preferences(&full, 4, 2).unwrap();
    assert_eq!(pairs.observed_count(), 0);
    assert_eq!(label_kind(&pairs), "pairwise");
    for p in pairs.preferences() {
        let (a, b) = (
            full.score(p.row as usize, p.model_a as usize),
            full.score(p.row as usize, p.model_b as usize),
        );
        assert_ne!(a, b);
        assert_eq!(p.winner == Winner::ModelA, a > b);
    }
    let log = uniform_log(&full, 3).unwrap();
    assert_eq!(log.observed_count(), n);
    let p = log.propensities().unwrap();
    assert!((0..n * 3).all(|c| log.observed_mask().unwrap()[c] != p[c].is_nan()));
    let partial = Split::from_partial_arrays(
        full.pool().clone(),
        vec![1.0, 0.0],
        2,
        vec![0.5, f64::NAN, 1.0],
        vec![1e-5; 3],
    )
    .unwrap();
    assert_eq!(partial.observed_mask().unwrap(), &[true, false, true]);
}

#[test]
fn a_draft_from_columns_keeps_partial_labels_costs_and_checks_lengths() {
    let pool = ModelPool::new(vec![
        ModelCard::new("a", 0.1, 0.1),
        ModelCard::new("b", 1.0, 1.0),
    ])
    .unwrap();
    let columns = DraftColumns {
        scores: vec![1.0, f64::NAN, 0.0, 0.5, 1.0, 1.0],
        costs: Some(vec![0.01, f64::NAN, f64::NAN, 0.2, 0.03, 0.3]),
        embeddings: Some((vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8], 2)),
        splits: Some(vec!["train".into(), "train".into(), "test".into()]),
        ..Default::default()
    };
    let draft =
        DatasetDraft::from_columns(pool.clone(), "arrays", columns.clone(), "mine").unwrap();
    assert_eq!(draft.rows.len(), 3);
    assert_eq!(draft.rows[0].id, "q0");
    assert_eq!(draft.rows[0].scores, vec![Some(1.0), None]);
    assert_eq!(draft.rows[1].cost_usd, vec![None, Some(0.2)]);
    assert!(draft.split_rule.is_none() && !draft.fully_labelled());
    let ds = Dataset::from_draft("arrays", &draft).unwrap();
    assert_eq!((ds.train().len(), ds.test().len()), (2, 1));
    assert!(!ds.train().observed(0, 1) && ds.train().observed(1, 1));
    // Wrong lengths are shape errors naming the column; no split given: the split rule.
    let short = DraftColumns {
        ids: Some(vec!["x".into()]),
        ..columns.clone()
    };
    let e = DatasetDraft::from_columns(pool.clone(), "arrays", short, "mine").unwrap_err();
    assert!(
        e.to_string().contains("ids has 1 values, expected 3"),
        "{e}"
    );
    let ruled = DraftColumns {
        splits: None,
        ..columns
    };
    let draft = DatasetDraft::from_columns(pool, "arrays", ruled, "mine").unwrap();
    assert_eq!(draft.rows[2].split.as_deref(), Some(split_of_id("q2")));
    assert!(draft.split_rule.is_some());
}
