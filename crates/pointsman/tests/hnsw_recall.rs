//! Acceptance test: recall@10 ≥ 0.95 against exact search on 100k random unit
//! vectors, d = 384, 200 random unit queries (all seeded).
//!
//! Run: `cargo test --release --test recall -- --nocapture`
//! In a debug build the data set shrinks to 1,000 rows (same threshold) so
//! that a plain `cargo test` stays fast; `HNSW_RECALL_N=…` overrides n.
//!
//! Uniform random vectors in 384 dimensions are the worst case for any graph
//! index (near neighbours are barely closer than random points, so the graph
//! gives little guidance): 0.95 recall needs a search that visits most of the
//! data set, hence the very large `ef_search`. The cheap build (m = 16,
//! ef_construction = 32) was chosen to keep this test's runtime low; see
//! NOTES.md for the measured trade-offs and the settings for real embeddings.
mod common;

use pointsman::routers::knn::hnsw::{brute_force_top_k, Hnsw, HnswConfig, SearchScratch};
use rayon::prelude::*;
use std::time::Instant;

fn acceptance_config() -> HnswConfig {
    HnswConfig {
        m: 16,
        ef_construction: 32,
        ef_search: 8192,
        seed: 2024,
    }
}

/// Process CPU time (user + system) from /proc (0 where unavailable).
fn process_cpu_s() -> f64 {
    let st = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = &st[st.rfind(')').map(|i| i + 2).unwrap_or(0)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    t / 100.0
}

#[test]
fn recall_at_10_random_100k_d384() {
    let dim = 384;
    let n: usize = std::env::var("HNSW_RECALL_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            1_000
        } else {
            100_000
        });
    let nq = 200;
    let k = 10;
    let t = Instant::now();
    let data = common::random_unit(n, dim, 1);
    let queries = common::random_unit(nq, dim, 2);
    let truth: Vec<Vec<(u32, f32)>> = queries
        .par_chunks(dim)
        .map(|q| {
            let mut o = Vec::new();
            brute_force_top_k(&data, dim, q, k, &mut o);
            o
        })
        .collect();
    let gt_s = t.elapsed().as_secs_f64();
    eprintln!(
        "data + exact ground truth: {gt_s:.1}s (dot kernel: {})",
        pointsman::simd::kernel_name()
    );

    let cfg = acceptance_config();
    let t = Instant::now();
    let c0 = process_cpu_s();
    let idx = Hnsw::build(&data, dim, &cfg);
    let build_s = t.elapsed().as_secs_f64();
    let build_cpu = process_cpu_s() - c0;
    let (links, reach) = idx.layer0_stats();
    eprintln!(
        "build n={n} d={dim} {cfg:?}: {build_s:.1}s wall, {build_cpu:.1}s CPU, {} threads; mean layer-0 degree {:.1}; reachable {reach}/{n}",
        rayon::current_num_threads(),
        links as f64 / n as f64
    );
    assert_eq!(reach, n);

    // Queries run in parallel (one scratch per worker) to keep the test short;
    // latency is measured by the criterion bench, not here.
    let recall_at = |ef: usize| {
        let t = Instant::now();
        let hits: usize = queries
            .par_chunks(dim)
            .zip(truth.par_iter())
            .map_init(
                || (SearchScratch::new(n), Vec::new()),
                |(s, out), (q, tr)| {
                    idx.search(&data, q, k, ef, s, out);
                    assert_eq!(out.len(), k.min(n));
                    assert!(out.windows(2).all(|w| w[0].1 >= w[1].1));
                    out.iter().filter(|r| tr.iter().any(|e| e.0 == r.0)).count()
                },
            )
            .sum();
        let r = hits as f64 / (nq * k.min(n)) as f64;
        eprintln!(
            "  ef={ef:5}: recall@{k} = {r:.4}  ({nq} queries in {:.2}s)",
            t.elapsed().as_secs_f64()
        );
        r
    };
    for ef in [256, 2048] {
        if ef < n / 2 {
            recall_at(ef);
        }
    }
    // ef < n keeps the graph search in play (ef ≥ n would be brute force).
    let ef = cfg.ef_search.min(n / 2);
    let r = recall_at(ef);
    assert!(r >= 0.95, "recall@10 {r:.4} < 0.95 at ef = {ef}");
}
