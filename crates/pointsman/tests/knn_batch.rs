//! The exact kNN router's batch path (four queries per pass over the reference rows) makes the
//! same decisions as one `route` per query, on real data.
mod common;

use pointsman::data::Dataset;
use pointsman::routers::knn::{KnnConfig, KnnRouter};
use pointsman::{FeatureBatch, Objective, QueryFeatures, Router};

#[test]
fn llmrouter_dc_knn_route_batch_equals_repeated_route() {
    let Some(root) = common::data_dir() else {
        return;
    };
    let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
    let router = KnnRouter::fit(ds.train(), &KnnConfig::default()).unwrap();
    let dim = router.dim();
    // 203 rows: whole four-query passes and a remainder of three.
    let data = &ds.test().embeddings()[..203 * dim];
    let batch = FeatureBatch::new(data, dim).unwrap();
    let objective = Objective::new(300.0);
    // One thread: chunks of 50 rows, so the four-query kernel does most of the work.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let chosen = pool.install(|| router.route_batch(&batch, &objective).unwrap());
    assert_eq!(chosen, router.route_batch(&batch, &objective).unwrap());
    for (r, &model) in chosen.iter().enumerate() {
        let query = QueryFeatures::new(batch.row(r).to_vec()).unwrap();
        let one = router.route(&query, &objective).unwrap();
        assert_eq!(one.model, model as usize, "row {r}");
    }
}
