//! Each bandit (9 models, 384-dimensional embeddings) after a warm start on 5,489 labelled
//! queries (the size of llmrouter_dc's train split): one routing decision, one observation,
//! `route_batch` throughput on 1 and 2 threads, and the load time of the saved router.
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p pointsman-bench --bench bandit`; docs/benchmarks.md
//! records the medians.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pointsman::routers::bandit::{
    BanditRouter, ClusterUcb, ClusterUcbConfig, KnnUcb, KnnUcbConfig, Learned, Linear,
    LinearConfig, Projection, Thompson, Ucb,
};
use pointsman::{FeatureBatch, Feedback, Learner, Objective, Router};
use pointsman_bench::{queries, split, DIM};

mod common;

/// Benches one bandit kind; `batch_rows` sizes its `route_batch` (fewer rows for the slower
/// kinds, so one iteration stays in the tens of milliseconds).
fn bench_learner<L: Learned>(
    c: &mut Criterion,
    name: &str,
    config: L::Config,
    train_rows: usize,
    batch_rows: usize,
) {
    let train = split(train_rows, 1);
    let router =
        BanditRouter::<L>::warm_start(&train, config).expect("the warm start fits the fixture");
    let qs = queries(64, 2);
    let objective = Objective::new(0.0);
    let mut group = c.benchmark_group("bandit");
    let mut i = 0usize;
    group.bench_function(BenchmarkId::new("route", name), |b| {
        b.iter(|| {
            i = (i + 1) % qs.len();
            router
                .route(&qs[i], &objective)
                .expect("routing a valid query")
        })
    });
    let mut i = 0usize;
    group.bench_function(BenchmarkId::new("observe", name), |b| {
        b.iter(|| {
            i = (i + 1) % qs.len();
            router
                .observe(&Feedback {
                    features: &qs[i],
                    model: i % 9,
                    quality: (i % 2) as f64,
                    cost: 1e-4,
                })
                .expect("valid feedback")
        })
    });
    group.finish();

    // The batch: the 64 queries above, repeated to `batch_rows` rows.
    let data: Vec<f32> = qs
        .iter()
        .flat_map(|q| q.embedding().iter().copied())
        .cycle()
        .take(batch_rows * DIM)
        .collect();
    let tokens = vec![120.0; batch_rows];
    let batch = FeatureBatch::new(&data, DIM)
        .and_then(|b| b.with_prompt_tokens(&tokens))
        .expect("a valid batch");
    common::route_batch(
        c,
        &format!("bandit/route_batch/{name}"),
        &router,
        &batch,
        &objective,
    );
    common::load(c, "bandit/load", name, &router);
}

/// The kernel behind the linear routers' bonus: one quadratic form over a packed 385 × 385
/// matrix (one model's `λ·A⁻¹`).
fn quadratic_form(c: &mut Criterion) {
    let p = 385;
    let mut rng = pointsman::rng::SplitMix64::new(3);
    let a: Vec<f64> = (0..p * p)
        .map(|k| if k % (p + 1) == 0 { 1.0 } else { 0.0 })
        .collect();
    let mut packed = pointsman::simd::PackedForms::new(1, p);
    pointsman::simd::pack_quadratic_form(&a, p, 1.0, packed.form_mut(0));
    let x: Vec<f32> = (0..p).map(|_| rng.normal() as f32).collect();
    eprintln!(
        "quadratic form kernel: {}",
        pointsman::simd::quadratic_form_kernel()
    );
    c.bench_function("simd/quadratic_form/385", |b| {
        b.iter(|| pointsman::simd::quadratic_form(std::hint::black_box(packed.form(0)), &x))
    });
}

fn bandits(c: &mut Criterion) {
    bench_learner::<Linear<Ucb>>(c, "linucb", LinearConfig::default(), 5489, 1024);
    bench_learner::<Linear<Thompson>>(c, "thompson", LinearConfig::thompson(), 5489, 1024);
    // A random projection to 64 dimensions: 65 features instead of 385.
    let projected = LinearConfig {
        projection: Projection::Random { dim: 64, seed: 7 },
        ..LinearConfig::default()
    };
    bench_learner::<Linear<Ucb>>(c, "linucb-random64", projected, 5489, 8192);
    bench_learner::<ClusterUcb>(c, "cluster-ucb", ClusterUcbConfig::default(), 5489, 8192);
    // kNN-UCB scans every stored observation: a warm start on 5,489 queries stores 49,401.
    bench_learner::<KnnUcb>(c, "knn-ucb", KnnUcbConfig::default(), 5489, 64);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = quadratic_form, bandits
}
criterion_main!(benches);
