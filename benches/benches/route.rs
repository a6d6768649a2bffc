//! Routing given features, per router kind, on llmrouter_dc (9 models, 384-dimensional MiniLM
//! embeddings, kNN over the 5,489 train queries): one `route` call, `route_batch` throughput on
//! 1 and 2 threads, and the load time of the saved router. `knn-scan` is the exact kNN router
//! with its int8 prefilter turned off (the full `f32` scan per query), for a same-run ratio.
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p pointsman-bench --bench route`; docs/benchmarks.md records
//! the medians. `cargo test -p pointsman-bench --benches` runs each once (the test command does).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pointsman::routers::baseline::{Baseline, BaselineRouter};
use pointsman::routers::cascade::{CascadeConfig, CascadeRouter};
use pointsman::routers::knn::{Index, KnnConfig, KnnRouter};
use pointsman::routers::mf::{MfConfig, MfRouter};
use pointsman::{FeatureBatch, Objective, Router};
use pointsman_bench::{llmrouter_dc, test_queries};

mod common;

fn routers(ds: &pointsman::data::Dataset) -> Vec<(&'static str, Arc<dyn Router>)> {
    let train = ds.train();
    let zero = BaselineRouter::fit(Baseline::Zero, train).expect("the zero router fits");
    let knn = KnnRouter::fit(train, &KnnConfig::default()).expect("kNN fits");
    // The same router without the exact int8 prefilter of single queries: the full f32 scan.
    let mut knn_scan = knn.clone();
    knn_scan.set_exact_prefilter(false);
    let hnsw = KnnConfig {
        index: Index::Hnsw(Default::default()),
        ..Default::default()
    };
    let knn_hnsw = KnnRouter::fit(train, &hnsw).expect("kNN with HNSW fits");
    // A decision's cost does not depend on how long the factors trained: a few epochs suffice.
    let mf_config = MfConfig {
        max_epochs: 3,
        ..Default::default()
    };
    let mf = MfRouter::fit(train, &mf_config).expect("MF fits");
    // The dynamic cascade's route: its first model, from its kNN success estimates.
    let cascade = CascadeRouter::fit(train, &CascadeConfig::default()).expect("the cascade fits");
    vec![
        ("zero", Arc::new(zero)),
        ("knn", Arc::new(knn)),
        ("knn-scan", Arc::new(knn_scan)),
        ("knn-hnsw", Arc::new(knn_hnsw)),
        ("mf", Arc::new(mf)),
        ("cascade", Arc::new(cascade)),
    ]
}

fn bench(c: &mut Criterion) {
    let ds = llmrouter_dc();
    let queries = test_queries(&ds);
    let objective = Objective::new(300.0);
    let dim = ds.test().dim();
    for (name, router) in routers(&ds) {
        let mut group = c.benchmark_group("route");
        let mut i = 0usize;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                router
                    .route(&queries[i], &objective)
                    .expect("routing a test query")
            })
        });
        group.finish();

        // Batches: the test split repeated to 8,192 rows (500 rows for the exact kNN scans).
        let rows = if name == "knn" || name == "knn-scan" || name == "cascade" {
            500
        } else {
            8192
        };
        let data: Vec<f32> = ds
            .test()
            .embeddings()
            .iter()
            .copied()
            .cycle()
            .take(rows * dim)
            .collect();
        let tokens: Vec<f64> = ds
            .test()
            .prompt_tokens()
            .iter()
            .copied()
            .cycle()
            .take(rows)
            .collect();
        let batch = FeatureBatch::new(&data, dim)
            .and_then(|b| b.with_prompt_tokens(&tokens))
            .expect("a valid batch")
            .with_embedding_model(pointsman::DEFAULT_EMBEDDING_MODEL);
        common::route_batch(
            c,
            &format!("route_batch/{name}"),
            router.as_ref(),
            &batch,
            &objective,
        );
        common::load(c, "load", name, router.as_ref());
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
