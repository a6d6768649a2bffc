//! The shared datasets load, and the evaluation's reference figures equal their stats.json.

mod common;

use pointsman::data::Dataset;
use pointsman::eval::{Entrant, Reference};

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn check_reference(name: &str, n_train: usize, n_test: usize) {
    let Some(root) = common::data_dir() else {
        return;
    };
    let dir = root.join(name);
    let ds = Dataset::load(&dir).unwrap();
    let stats = common::stats(&dir);
    assert_eq!(ds.train().len(), n_train);
    assert_eq!(ds.test().len(), n_test);
    assert_eq!(ds.train().dim(), 384);
    let emb = ds.test().embeddings();
    for row in emb.chunks_exact(384).take(50) {
        let n: f32 = row.iter().map(|v| v * v).sum();
        assert!((n - 1.0).abs() < 1e-5);
    }
    let r = Reference::new(ds.train(), ds.test(), ds.weak_strong()).unwrap();
    let t = &stats["test_split"];
    let best = &r.models[r.best_single];
    assert_eq!(best.model, t["best_single_by_train"].as_str().unwrap());
    for f in &r.models {
        let s = &t["models"][&f.model];
        assert_eq!(
            round3(f.mean_quality),
            round3(s["mean_score"].as_f64().unwrap()),
            "{}",
            f.model
        );
        let c = s["mean_cost_usd"].as_f64().unwrap();
        assert!(
            (f.mean_cost - c).abs() <= 1e-9 * c.max(1e-12) + 1e-15,
            "{}: {} vs {c}",
            f.model,
            f.mean_cost
        );
    }
    assert_eq!(
        round3(r.oracle_quality),
        round3(t["oracle_mean_score"].as_f64().unwrap())
    );
    let oc = t["oracle_mean_cost_usd"].as_f64().unwrap();
    assert!(
        (r.oracle_cost - oc).abs() <= 1e-6 * oc,
        "{} vs {oc}",
        r.oracle_cost
    );
    assert_eq!(
        round3(r.zero_router_aiq),
        round3(t["zero_router_aiq"].as_f64().unwrap())
    );
    let oracle = pointsman::eval::Oracle.sweep(ds.test()).unwrap();
    assert_eq!(oracle.len(), 1);
}

#[test]
fn llmrouter_dc_reference_figures_match_stats() {
    check_reference("llmrouter_dc", 5489, 500);
}

#[test]
fn routellm_reference_figures_match_stats() {
    check_reference("routellm", 12180, 3181);
    let Some(root) = common::data_dir() else {
        return;
    };
    let ds = Dataset::load(root.join("routellm")).unwrap();
    let (w, s) = ds.weak_strong().unwrap();
    assert_eq!(ds.pool().id(s), "gpt-4-1106-preview");
    assert_eq!(ds.pool().id(w), "mistralai/Mixtral-8x7B-Instruct-v0.1");
}
