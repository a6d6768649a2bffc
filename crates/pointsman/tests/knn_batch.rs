//! The exact kNN router's batch path makes the same decisions as one `route` per query, on real
//! data: through the int8 prefilter (the default: the very same estimates) and through the
//! four-query block scan (routers without the prefilter).
mod common;

use pointsman::data::Dataset;
use pointsman::routers::knn::{KnnConfig, KnnRouter};
use pointsman::{FeatureBatch, Objective, QueryFeatures, Router};

fn check(router: &KnnRouter, batch: &FeatureBatch<'_>, same_estimates: bool) {
    let objective = Objective::new(300.0);
    // One thread: chunks of 50 rows, so the batch kernel does most of the work.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (chosen, estimates) = pool.install(|| {
        router
            .route_batch_with_estimates(batch, &objective)
            .unwrap()
    });
    assert_eq!(chosen, router.route_batch(batch, &objective).unwrap());
    for (r, &model) in chosen.iter().enumerate() {
        let query = QueryFeatures::new(batch.row(r).to_vec()).unwrap();
        let one = router.route(&query, &objective).unwrap();
        assert_eq!(one.model, model as usize, "row {r}");
        if same_estimates {
            // The same row alone: the same arithmetic as in the batch.
            let alone = FeatureBatch::new(batch.row(r), batch.dim()).unwrap();
            let (_, single) = router
                .route_batch_with_estimates(&alone, &objective)
                .unwrap();
            assert_eq!(
                single.quality_row(0),
                estimates.quality_row(r),
                "row {r}: the batch's estimates differ from the row's alone"
            );
        }
    }
}

#[test]
fn llmrouter_dc_knn_route_batch_equals_repeated_route() {
    let Some(root) = common::data_dir() else {
        return;
    };
    let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
    let mut router = KnnRouter::fit(ds.train(), &KnnConfig::default()).unwrap();
    let dim = router.dim();
    // 203 rows: whole four-query passes and a remainder of three.
    let data = &ds.test().embeddings()[..203 * dim];
    let batch = FeatureBatch::new(data, dim).unwrap();
    check(&router, &batch, true);
    router.set_exact_prefilter(false);
    check(&router, &batch, false);
}
