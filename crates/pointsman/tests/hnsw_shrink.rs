//! The incremental shrink of closed lists must build exactly the graph the
//! plain heuristic builds. (Own test binary: it flips a process-global switch.)
mod common;

use pointsman::routers::knn::hnsw::{set_full_heuristic, Hnsw, HnswConfig};

#[test]
fn incremental_shrink_equals_full_heuristic() {
    for (data, dim, m) in [
        (common::random_unit(2000, 16, 5), 16usize, 4usize),
        (common::random_unit(1500, 48, 6), 48, 8),
        (common::clustered_unit(2000, 32, 30, 0.5, 7), 32, 6),
    ] {
        let cfg = HnswConfig {
            m,
            ef_construction: 40,
            ef_search: 32,
            seed: 3,
        };
        set_full_heuristic(false);
        let a = Hnsw::build(&data, dim, &cfg).to_parts();
        set_full_heuristic(true);
        let b = Hnsw::build(&data, dim, &cfg).to_parts();
        set_full_heuristic(false);
        assert_eq!(a, b, "dim {dim} m {m}");
    }
}
