//! The exact prefilter of the kNN scan (`routers/knn/quant.rs`) on real data: every llmrouter_dc
//! test query gets the same estimates (bit for bit), signals and decision with the prefilter as
//! with the full scan, with and without the task restriction.

mod common;

use pointsman::data::Dataset;
use pointsman::routers::knn::{KnnConfig, KnnRouter};
use pointsman::{Objective, QueryFeatures, Router};

#[test]
fn prefilter_decisions_equal_the_full_scan_on_llmrouter_dc() {
    let Some(root) = common::data_dir() else {
        return;
    };
    let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
    let (train, test) = (ds.train(), ds.test());
    let batch = test.features().unwrap();
    let objectives = [Objective::new(0.0), Objective::new(300.0)];
    let base = KnnRouter::fit(train, &KnnConfig::default()).unwrap();
    for same_task in [false, true] {
        let config = KnnConfig {
            same_task,
            ..KnnConfig::default()
        };
        let fast = base.with_config(&config).unwrap();
        let mut scan = fast.clone();
        scan.set_exact_prefilter(false);
        let mut restricted = 0;
        for r in 0..batch.rows() {
            let one = batch.slice(r, r + 1);
            let (a, b) = (
                fast.estimate_batch(&one).unwrap(),
                scan.estimate_batch(&one).unwrap(),
            );
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&a.quality),
                bits(&b.quality),
                "row {r}, same_task {same_task}"
            );
            assert_eq!(
                bits(&a.cost),
                bits(&b.cost),
                "row {r}, same_task {same_task}"
            );
            assert_eq!(a.signals, b.signals, "row {r}, same_task {same_task}");
            let mut q = QueryFeatures::new(batch.row(r).to_vec()).unwrap();
            if let Some(t) = batch.prompt_tokens(r) {
                q = q.with_prompt_tokens(t).unwrap();
            }
            if let Some(t) = batch.task(r) {
                q = q.with_task(t);
                restricted += usize::from(same_task);
            }
            for o in &objectives {
                assert_eq!(
                    fast.route(&q, o).unwrap(),
                    scan.route(&q, o).unwrap(),
                    "row {r}"
                );
            }
        }
        assert!(!same_task || restricted > 0, "no test query has a task");
    }
}
