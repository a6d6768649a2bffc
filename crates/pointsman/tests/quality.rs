//! Quality on the shared datasets: the figures docs/results.md reports, checked on every run.
//!
//! Hyper-parameters are chosen by cross-validation on the train split only; these tests read the
//! test split once, to score the chosen routers.

mod common;

use std::time::Instant;

use pointsman::data::Dataset;
use pointsman::eval::{policy_by_name, Metrics, PolicyOptions, Reference};

fn evaluate(ds: &Dataset, name: &str) -> (Metrics, f64) {
    let started = Instant::now();
    let policy = policy_by_name(name, ds.train(), &PolicyOptions::default()).unwrap();
    let fit_seconds = started.elapsed().as_secs_f64();
    let sweep = policy.sweep(ds.test()).unwrap();
    let reference = Reference::new(ds.train(), ds.test(), ds.weak_strong()).unwrap();
    let report =
        pointsman::eval::evaluate_sweep(name, false, &sweep, ds.test(), &reference).unwrap();
    eprintln!(
        "{} {name}: {:?} (fitted in {fit_seconds:.1} s)",
        ds.name(),
        report.metrics
    );
    (report.metrics, fit_seconds)
}

#[test]
fn llmrouter_dc_knn_and_mf() {
    let Some(root) = common::data_dir() else {
        return;
    };
    let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
    let (knn, knn_s) = evaluate(&ds, "knn");
    let (mf, mf_s) = evaluate(&ds, "mf");
    // The targets are AIQ 0.590 and max quality 0.600; cross-validated choices reach
    // 0.589 / 0.595 (mf) and 0.580 / 0.589 (knn), see docs/results.md. The reference plain kNN
    // (k = 100, similarity weights) reaches 0.565 / 0.577 and the zero router 0.528.
    let best_aiq = knn.aiq.max(mf.aiq);
    let best_max = knn.max_quality.max(mf.max_quality);
    assert!(best_aiq >= 0.585, "best AIQ {best_aiq}");
    assert!(best_max >= 0.590, "best max quality {best_max}");
    assert!(knn.aiq >= 0.575 && mf.aiq >= 0.575, "{knn:?} {mf:?}");
    assert!(
        knn_s < 60.0 && mf_s < 60.0,
        "training took {knn_s:.1} s and {mf_s:.1} s"
    );
}

#[test]
fn routellm_knn_and_mf() {
    let Some(root) = common::data_dir() else {
        return;
    };
    let ds = Dataset::load(root.join("routellm")).unwrap();
    let (knn, knn_s) = evaluate(&ds, "knn");
    let (mf, mf_s) = evaluate(&ds, "mf");
    let apgr = |m: &Metrics| m.apgr.expect("a two-model dataset has APGR");
    // Target: the better of knn and mf reaches APGR 0.70 (plain kNN reference 0.676).
    assert!(
        apgr(&knn).max(apgr(&mf)) >= 0.70,
        "knn {} mf {}",
        apgr(&knn),
        apgr(&mf)
    );
    assert!(apgr(&knn) >= 0.68, "knn {}", apgr(&knn));
    assert!(
        knn_s < 60.0 && mf_s < 60.0,
        "training took {knn_s:.1} s and {mf_s:.1} s"
    );
}
