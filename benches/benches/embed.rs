//! The embedder (all-MiniLM-L6-v2) on one short prompt (13 word pieces), one long prompt (173),
//! and batches of 32 (short chat turns; and 32 llmrouter_dc prompts spread over the file), each
//! with 1 and 2 threads; and text → decision end to end (embed + kNN route).
//!
//! `cargo bench -p pointsman-bench --bench embed` (needs the model: scripts/fetch-model.sh);
//! docs/benchmarks.md records the medians.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pointsman::embed::{Embedder, EmbedderOptions, Pipeline};
use pointsman::routers::knn::{KnnConfig, KnnRouter};
use pointsman::Objective;
use pointsman_bench::{llmrouter_dc, long_prompt, short_prompt, short_prompts};

fn load(threads: usize) -> Embedder {
    Embedder::load_default(&EmbedderOptions {
        threads,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("the embedder benches need the model: {e}"))
}

fn bench(c: &mut Criterion) {
    let ds = llmrouter_dc();
    let prompts = ds.prompts_in_file_order();
    let step = prompts.len() / 32;
    let spread: Vec<&str> = (0..32).map(|i| prompts[i * step]).collect();
    let batch_short = short_prompts();
    for threads in [1, 2] {
        let embedder = load(threads);
        let mut group = c.benchmark_group(format!("embed/threads={threads}"));
        group.sample_size(20);
        group.bench_function("short", |b| {
            b.iter(|| embedder.embed(&[short_prompt()]).expect("embedding"))
        });
        group.bench_function("long", |b| {
            b.iter(|| embedder.embed(&[long_prompt()]).expect("embedding"))
        });
        group.bench_function("batch32-short", |b| {
            b.iter(|| embedder.embed(&batch_short).expect("embedding"))
        });
        group.sample_size(10);
        group.bench_function("batch32-dataset", |b| {
            b.iter(|| embedder.embed(&spread).expect("embedding"))
        });
        group.finish();
    }

    let router = KnnRouter::fit(ds.train(), &KnnConfig::default()).expect("kNN fits");
    let pipeline = Pipeline::new(load(1), Arc::new(router)).expect("a MiniLM router");
    let objective = Objective::new(300.0);
    let mut group = c.benchmark_group("text_to_decision");
    group.sample_size(20);
    group.bench_function(BenchmarkId::new("knn", "short"), |b| {
        b.iter(|| {
            pipeline
                .route_text(short_prompt(), &objective)
                .expect("routing")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
