//! One routing decision of each bandit (9 models, 384-dimensional embeddings) after a warm start
//! on 5,489 labelled queries (the size of llmrouter_dc's train split), and one observation.
//!
//! `cargo bench -p pointsman-bench --bench bandit`; docs/benchmarks.md records the medians.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pointsman::routers::bandit::{
    BanditRouter, ClusterUcb, ClusterUcbConfig, KnnUcb, KnnUcbConfig, Learned, Linear,
    LinearConfig, Thompson, Ucb,
};
use pointsman::{Feedback, Learner, Objective, Router};
use pointsman_bench::{queries, split};

fn bench_learner<L: Learned>(c: &mut Criterion, name: &str, config: L::Config, train_rows: usize) {
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
}

fn bandits(c: &mut Criterion) {
    bench_learner::<Linear<Ucb>>(c, "linucb", LinearConfig::default(), 5489);
    bench_learner::<Linear<Thompson>>(c, "thompson", LinearConfig::thompson(), 5489);
    bench_learner::<ClusterUcb>(c, "cluster-ucb", ClusterUcbConfig::default(), 5489);
    // kNN-UCB scans every stored observation: a warm start on 5,489 queries stores 49,401.
    bench_learner::<KnnUcb>(c, "knn-ucb", KnnUcbConfig::default(), 5489);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bandits
}
criterion_main!(benches);
