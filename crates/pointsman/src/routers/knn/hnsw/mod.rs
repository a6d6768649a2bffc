//! Hierarchical Navigable Small World graph (Malkov & Yashunin, "Efficient and
//! robust approximate nearest neighbor search using Hierarchical Navigable
//! Small World graphs", arXiv:1603.09320) for cosine similarity over
//! L2-normalised `f32` vectors (similarity = dot product, larger is closer).
//!
//! * The embedding matrix is **not** owned by the index: [`Hnsw::build`] and
//!   [`Hnsw::search`] take it as an argument (row-major `[n, dim]`, row `i` is
//!   node `i`). Search checks the lengths.
//! * Neighbour selection is the paper's heuristic (algorithm 4, without
//!   candidate extension and without keeping pruned connections); a new node
//!   gets `M` links on every layer, and lists are shrunk back to
//!   `M_max = M` (layers ≥ 1) or `M_max0 = 2·M` (layer 0) with the same heuristic.
//! * Levels are drawn with `P(level ≥ l) = M^-l` (i.e. `m_L = 1/ln M`) from a
//!   seeded integer RNG, so they are identical on every platform.
//! * The build is **deterministic**: it inserts nodes in id order, in batches
//!   whose sizes depend only on `n`. Every node of a batch searches the graph
//!   as it was before the batch (read-only, so it can run in parallel) plus the
//!   other nodes of its batch by brute force; links are then written in a fixed
//!   order and reverse links are merged per target node. Nothing depends on
//!   thread timing or thread count, and the dot-product kernel is bit-identical
//!   across SIMD levels, so the same data and seed give the same graph with or
//!   without the `parallel` feature, with any number of threads, on any CPU.
//!   The first 64 nodes are inserted one at a time (batch size 1 is exactly
//!   the paper's sequential algorithm 1); batches then grow to `n_done / 64`,
//!   capped at 256.
//! * Search is allocation-free once a [`SearchScratch`] and the output vector
//!   are warm: the visited set is a generation-stamped `Vec<u32>` and the two
//!   heaps keep their capacity. When `ef ≥ n` the search is exact brute force
//!   (it could not visit fewer nodes anyway).

mod build;
mod config;
mod graph;
mod parts;
mod search;
#[cfg(test)]
mod tests;

#[doc(hidden)]
pub use build::set_full_heuristic;
pub use config::HnswConfig;
pub use parts::HnswParts;
pub use search::{brute_force_top_k, SearchScratch};

/// Signature of the dot-product kernel ([`crate::simd::dot`], bit-identical on every CPU).
type DotFn = fn(&[f32], &[f32]) -> f32;

/// Highest level a node can get (levels are clamped; with `M ≥ 2` reaching it
/// has probability ≤ 2^-16 per node).
pub const MAX_LEVEL: usize = 16;
/// Largest accepted `M` (layer-0 degree is `2·M`).
pub const MAX_M: usize = 1024;

/// Immutable HNSW graph over an external `[n, dim]` matrix. `Send + Sync`.
///
/// In-memory layout (see [`HnswParts`] for the serialised one):
/// * `layer0`: `n × (m0 + 1)` `u32`s; slot 0 of each row is the degree, then
///   up to `m0 = 2·m` neighbour ids.
/// * `upper`: one row of `m + 1` `u32`s (degree, ids) per (node, layer ≥ 1);
///   node `i`'s layer-`l` row is `upper_start[i] + l - 1`.
#[derive(Clone, Debug)]
pub struct Hnsw {
    config: HnswConfig,
    dim: usize,
    n: usize,
    m: usize,
    m0: usize,
    levels: Vec<u8>,
    upper_start: Vec<usize>,
    layer0: Vec<u32>,
    upper: Vec<u32>,
    entry: u32,
    max_level: usize,
    dot: DotFn,
}
