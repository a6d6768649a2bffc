//! Small correctness tests: exact equivalence, determinism, parts round trip,
//! corrupt parts, edge cases.
mod common;

use common::{clustered_unit, random_unit};
use pointsman::routers::knn::hnsw::{
    brute_force_top_k, Hnsw, HnswConfig, HnswParts, SearchScratch,
};

fn cfg(m: usize, efc: usize, seed: u64) -> HnswConfig {
    HnswConfig {
        m,
        ef_construction: efc,
        ef_search: 64,
        seed,
    }
}

fn exact(data: &[f32], dim: usize, q: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut out = Vec::new();
    brute_force_top_k(data, dim, q, k, &mut out);
    out
}

#[test]
fn config_validation() {
    assert!(HnswConfig::default().validate().is_ok());
    assert!(HnswConfig {
        m: 1,
        ..Default::default()
    }
    .validate()
    .is_err());
    assert!(HnswConfig {
        m: 100_000,
        ..Default::default()
    }
    .validate()
    .is_err());
    assert!(HnswConfig {
        ef_construction: 0,
        ..Default::default()
    }
    .validate()
    .is_err());
    assert!(HnswConfig {
        ef_search: 0,
        ..Default::default()
    }
    .validate()
    .is_err());
    assert!(Hnsw::try_build(&[0.0; 10], 3, &HnswConfig::default()).is_err());
    assert!(Hnsw::try_build(&[0.0; 10], 0, &HnswConfig::default()).is_err());
    let c: HnswConfig = serde_json::from_str(r#"{"m": 8}"#).unwrap();
    assert_eq!(c.m, 8);
    assert_eq!(c.ef_construction, HnswConfig::default().ef_construction);
}

#[test]
fn exact_when_ef_at_least_n() {
    let dim = 24;
    for (n, seed) in [(2usize, 1u64), (5, 2), (37, 3), (150, 4), (300, 5)] {
        let data = random_unit(n, dim, seed);
        let idx = Hnsw::build(&data, dim, &cfg(4, 32, seed));
        let queries = random_unit(20, dim, seed + 100);
        let mut s = SearchScratch::new(n);
        let mut out = Vec::new();
        for q in queries.chunks(dim) {
            for k in [1, 3, 10] {
                idx.search(&data, q, k, n, &mut s, &mut out);
                assert_eq!(out, exact(&data, dim, q, k), "n={n} k={k}");
                // The graph itself must also find everything when ef ≥ n
                // (every node reachable): exercise it without the shortcut.
                idx.search_graph_only(&data, q, k, n, &mut s, &mut out);
                assert_eq!(out, exact(&data, dim, q, k), "graph n={n} k={k}");
            }
        }
    }
}

#[test]
fn layer0_connected_and_degrees() {
    let dim = 32;
    let n = 3000;
    let data = clustered_unit(n, dim, 20, 0.6, 9);
    let c = cfg(8, 64, 9);
    let idx = Hnsw::build(&data, dim, &c);
    let (links, reach) = idx.layer0_stats();
    // The build's repair pass links nodes the heuristic left without in-links.
    assert_eq!(reach, n, "all nodes reachable on layer 0");
    assert!(
        links >= n * 4,
        "mean degree too low: {}",
        links as f64 / n as f64
    );
    let p = idx.to_parts();
    let mut t = 0;
    for &l in &p.levels {
        for layer in 0..=l as usize {
            let deg = (p.offsets[t + 1] - p.offsets[t]) as usize;
            assert!(deg <= if layer == 0 { 16 } else { 8 });
            t += 1;
        }
    }
}

#[test]
fn duplicates_stay_reachable() {
    // 40 distinct vectors, each repeated 25 times (interleaved): the
    // heuristic keeps at most one copy per list, so without the repair pass
    // many copies would have no in-link.
    let dim = 16;
    let base = random_unit(40, dim, 51);
    let mut data = Vec::new();
    for _ in 0..25 {
        data.extend_from_slice(&base);
    }
    let n = data.len() / dim;
    let idx = Hnsw::build(&data, dim, &cfg(6, 40, 1));
    assert_eq!(idx.layer0_stats().1, n);
    // A copy of vector 7 as query: all 25 copies (sim 1) must come back first.
    let mut s = SearchScratch::new(n);
    let mut out = Vec::new();
    idx.search_graph_only(&data, &base[7 * dim..8 * dim], 25, 200, &mut s, &mut out);
    let mut ids: Vec<u32> = out.iter().map(|r| r.0).collect();
    ids.sort();
    let want: Vec<u32> = (0..25).map(|r| (r * 40 + 7) as u32).collect();
    assert_eq!(ids, want);
}

#[test]
fn small_recall_sane() {
    let dim = 32;
    let n = 5000;
    let data = clustered_unit(n, dim, 50, 0.5, 11);
    let idx = Hnsw::build(&data, dim, &cfg(12, 100, 11));
    let queries = clustered_unit(100, dim, 50, 0.5, 12);
    let mut s = SearchScratch::new(n);
    let mut out = Vec::new();
    let mut hit = 0;
    for q in queries.chunks(dim) {
        idx.search(&data, q, 10, 64, &mut s, &mut out);
        assert_eq!(out.len(), 10);
        assert!(out.windows(2).all(|w| w[0].1 >= w[1].1), "descending");
        let ex = exact(&data, dim, q, 10);
        hit += out.iter().filter(|r| ex.iter().any(|e| e.0 == r.0)).count();
    }
    let recall = hit as f64 / 1000.0;
    assert!(recall > 0.95, "recall {recall}");
}

#[test]
fn deterministic_build() {
    let dim = 16;
    let n = 4000; // large enough for parallel batches (batch > 1 from node 64 on)
    let data = random_unit(n, dim, 21);
    let c = cfg(6, 40, 77);
    let a = Hnsw::build(&data, dim, &c).to_parts();
    let b = Hnsw::build(&data, dim, &c).to_parts();
    assert_eq!(a, b);
    // Fingerprint, to compare builds across feature sets / machines by hand:
    // `cargo test --release --test basic deterministic -- --nocapture` with
    // and without `--no-default-features` must print the same value.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in a
        .levels
        .iter()
        .map(|&v| v as u64)
        .chain(a.offsets.iter().copied())
        .chain(a.neighbors.iter().map(|&v| v as u64))
    {
        h = (h ^ x).wrapping_mul(0x100_0000_01b3);
    }
    eprintln!(
        "parts fingerprint: {h:016x} (entry {}, max_level {})",
        a.entry_point, a.max_level
    );
    // Independent of the number of threads.
    let one = rayon_pool(1).install(|| Hnsw::build(&data, dim, &c).to_parts());
    let three = rayon_pool(3).install(|| Hnsw::build(&data, dim, &c).to_parts());
    assert_eq!(a, one);
    assert_eq!(a, three);
    // A different seed gives a different graph.
    let d = Hnsw::build(&data, dim, &cfg(6, 40, 78)).to_parts();
    assert_ne!(a, d);
}

fn rayon_pool(t: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(t)
        .build()
        .unwrap()
}

#[test]
fn parts_round_trip() {
    let dim = 16;
    let n = 2000;
    let data = random_unit(n, dim, 31);
    let idx = Hnsw::build(&data, dim, &cfg(8, 50, 3));
    let p = idx.to_parts();
    assert_eq!(p.levels.len(), n);
    assert_eq!(
        p.offsets.len(),
        n + p.levels.iter().map(|&l| l as usize).sum::<usize>() + 1
    );
    let back = Hnsw::from_parts(p.clone(), n).unwrap();
    assert_eq!(back.to_parts(), p);
    assert_eq!(back.config(), idx.config());
    let queries = random_unit(30, dim, 32);
    let (mut s1, mut s2) = (SearchScratch::new(n), SearchScratch::new(n));
    let (mut o1, mut o2) = (Vec::new(), Vec::new());
    for q in queries.chunks(dim) {
        idx.search(&data, q, 10, 40, &mut s1, &mut o1);
        back.search(&data, q, 10, 40, &mut s2, &mut o2);
        assert_eq!(o1, o2);
    }
}

#[test]
fn corrupt_parts_rejected() {
    let dim = 8;
    let n = 600;
    let data = random_unit(n, dim, 41);
    let good = Hnsw::build(&data, dim, &cfg(4, 20, 5)).to_parts();
    assert!(Hnsw::from_parts(good.clone(), n).is_ok());
    let top_node = good.entry_point as usize;
    let mut bad: Vec<(&str, HnswParts, usize)> = Vec::new();
    let mut p = good.clone();
    p.neighbors[3] = n as u32;
    bad.push(("id out of range", p, n));
    let mut p = good.clone();
    p.neighbors[0] = u32::MAX;
    bad.push(("id u32::MAX", p, n));
    bad.push(("wrong n (smaller)", good.clone(), n - 1));
    bad.push(("wrong n (larger)", good.clone(), n + 1));
    let mut p = good.clone();
    p.offsets.swap(5, 6);
    if p.offsets[5] == p.offsets[6] {
        p.offsets[5] += 1;
    }
    bad.push(("non-monotone offsets", p, n));
    let mut p = good.clone();
    p.offsets[0] = 1;
    bad.push(("offsets[0] != 0", p, n));
    let mut p = good.clone();
    *p.offsets.last_mut().unwrap() += 1;
    bad.push(("last offset past end", p, n));
    let mut p = good.clone();
    p.offsets[10] = u64::MAX;
    bad.push(("huge offset", p, n));
    let mut p = good.clone();
    p.neighbors.pop();
    bad.push(("truncated neighbors", p, n));
    let mut p = good.clone();
    p.offsets.pop();
    bad.push(("truncated offsets", p, n));
    let mut p = good.clone();
    p.levels.pop();
    bad.push(("truncated levels", p, n));
    let mut p = good.clone();
    p.levels[top_node] = 40;
    bad.push(("level too high", p, n));
    let mut p = good.clone();
    p.max_level += 1;
    bad.push(("max_level mismatch", p, n));
    let mut p = good.clone();
    p.entry_point = n as u32;
    bad.push(("entry out of range", p, n));
    let mut p = good.clone();
    if let Some(i) = p.levels.iter().position(|&l| (l as u32) < p.max_level) {
        p.entry_point = i as u32;
        bad.push(("entry not on top layer", p, n));
    }
    let mut p = good.clone();
    p.m = 1;
    bad.push(("m invalid", p, n));
    let mut p = good.clone();
    p.m0 = 2;
    bad.push(("m0 < m", p, n));
    let mut p = good.clone();
    p.dim = 0;
    bad.push(("dim 0", p, n));
    // Degree above the limit: give node 0's layer-0 list m0 + 1 entries.
    let mut p = good.clone();
    let extra = (p.m0 + 1) as usize - (p.offsets[1] - p.offsets[0]) as usize;
    for _ in 0..extra {
        p.neighbors.insert(0, 1);
    }
    for o in p.offsets.iter_mut().skip(1) {
        *o += extra as u64;
    }
    bad.push(("degree too high", p, n));
    // A layer-1 list pointing at a node that only has layer 0.
    let mut p = good.clone();
    let mut t = 0usize;
    let mut done = false;
    let low = p.levels.iter().position(|&l| l == 0).unwrap() as u32;
    for i in 0..n {
        if p.levels[i] >= 1 && !done {
            let s = p.offsets[t + 1] as usize; // start of (i, 1)
            if p.offsets[t + 2] as usize > s {
                p.neighbors[s] = low;
                done = true;
            }
        }
        t += p.levels[i] as usize + 1;
    }
    assert!(done);
    bad.push(("neighbour lacks layer", p, n));
    for (what, p, nn) in bad {
        let r = Hnsw::from_parts(p, nn);
        assert!(r.is_err(), "{what} accepted");
        eprintln!("{what}: {}", r.err().unwrap());
    }
    // Empty index parts.
    let empty = Hnsw::build(&[], dim, &cfg(4, 20, 5)).to_parts();
    assert!(Hnsw::from_parts(empty.clone(), 0).is_ok());
    assert!(Hnsw::from_parts(empty, 1).is_err());
}

#[test]
fn edge_cases() {
    let dim = 8;
    let mut out = vec![(9, 9.0)];
    // n = 0
    let idx = Hnsw::build(&[], dim, &HnswConfig::default());
    assert!(idx.is_empty());
    let mut s = SearchScratch::new(0);
    idx.search(&[], &[0.0; 8], 5, 10, &mut s, &mut out);
    assert!(out.is_empty());
    let back = Hnsw::from_parts(idx.to_parts(), 0).unwrap();
    back.search(&[], &[0.0; 8], 5, 10, &mut s, &mut out);
    assert!(out.is_empty());
    // n = 1
    let data = random_unit(1, dim, 3);
    let idx = Hnsw::build(&data, dim, &HnswConfig::default());
    idx.search(&data, &data[..dim], 5, 1, &mut s, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 0);
    assert!((out[0].1 - 1.0).abs() < 1e-5);
    idx.search_graph_only(&data, &data[..dim], 5, 1, &mut s, &mut out);
    assert_eq!(out.len(), 1);
    // k > n
    let n = 50;
    let data = random_unit(n, dim, 4);
    let idx = Hnsw::build(&data, dim, &cfg(4, 16, 1));
    let q = random_unit(1, dim, 5);
    idx.search(&data, &q, 80, 10, &mut s, &mut out);
    assert_eq!(out.len(), n);
    assert_eq!(out, exact(&data, dim, &q, 80));
    idx.search_graph_only(&data, &q, 80, 10, &mut s, &mut out);
    assert_eq!(out.len(), n);
    // k = 0
    idx.search(&data, &q, 0, 10, &mut s, &mut out);
    assert!(out.is_empty());
    // Duplicate rows do not break anything.
    let mut dup = random_unit(10, dim, 6);
    let copy = dup.clone();
    for _ in 0..20 {
        dup.extend_from_slice(&copy);
    }
    let idx = Hnsw::build(&dup, dim, &cfg(4, 16, 1));
    idx.search(&dup, &q, 5, 10, &mut s, &mut out);
    assert_eq!(out.len(), 5);
    // Length checks.
    assert!(idx
        .try_search(&dup[1..], &q, 5, 10, &mut s, &mut out)
        .is_err());
    assert!(idx
        .try_search(&dup, &q[1..], 5, 10, &mut s, &mut out)
        .is_err());
    assert!(std::panic::catch_unwind(|| {
        let mut s = SearchScratch::new(0);
        let mut o = Vec::new();
        idx.search(&dup, &[0.0; 3], 5, 10, &mut s, &mut o)
    })
    .is_err());
    // Scratch smaller than the index grows; scratch reused across indexes.
    let mut tiny = SearchScratch::new(1);
    let data = random_unit(500, dim, 8);
    let idx = Hnsw::build(&data, dim, &cfg(4, 16, 1));
    idx.search(&data, &q, 5, 10, &mut tiny, &mut out);
    assert_eq!(out.len(), 5);
}
