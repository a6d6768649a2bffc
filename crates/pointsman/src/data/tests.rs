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
    assert!(e.ends_with("fx.jsonl:1: no score for model \"b\""), "{e}");
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
    let e = Dataset::load(&dir).unwrap_err().to_string();
    assert!(
        e.contains("input_usd_per_mtok missing or not a non-negative number"),
        "{e}"
    );
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
