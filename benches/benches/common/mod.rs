//! Bench code shared by the routing benches (`route.rs`, `bandit.rs`): `route_batch` throughput
//! on 1 and 2 threads, and the load time of a saved router.

use criterion::{BenchmarkId, Criterion, Throughput};
use pointsman::{FeatureBatch, Objective, Router};

/// Benches `router.route_batch_into` over `batch` on pools of 1 and 2 threads, in the group
/// `group` (throughput in rows per second).
pub fn route_batch(
    c: &mut Criterion,
    group: &str,
    router: &dyn Router,
    batch: &FeatureBatch<'_>,
    objective: &Objective,
) {
    let mut out = vec![0u32; batch.rows()];
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(batch.rows() as u64));
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        group.bench_function(BenchmarkId::new("threads", threads), |b| {
            b.iter(|| {
                pool.install(|| router.route_batch_into(batch, objective, &mut out))
                    .expect("routing the batch")
            })
        });
    }
    group.finish();
}

/// Saves `router` into a temporary folder and benches `pointsman::load_router` on the file, as
/// `{group}/{name}`.
pub fn load(c: &mut Criterion, group: &str, name: &str, router: &dyn Router) {
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let path = tmp.path().join(format!("{name}.safetensors"));
    router.save(&path).expect("saving the router");
    let mut group = c.benchmark_group(group);
    group.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter(|| pointsman::load_router(&path).expect("loading the router"))
    });
    group.finish();
}
