//! Shared fixtures of Pointsman's criterion benchmarks (`benches/`).

use pointsman::data::Split;
use pointsman::rng::SplitMix64;
use pointsman::{ModelCard, ModelPool, QueryFeatures};

/// Embedding dimension of the fixtures (MiniLM's).
pub const DIM: usize = 384;

/// Nine models with llmrouter_dc's prices.
pub fn pool() -> ModelPool {
    let prices = [0.2, 0.1, 0.2, 0.9, 0.9, 0.9, 0.2, 0.2, 0.2];
    ModelPool::new(
        prices
            .iter()
            .enumerate()
            .map(|(i, &p)| ModelCard::new(format!("model-{i}"), p, p))
            .collect(),
    )
    .expect("nine distinct models with valid prices")
}

/// A seeded labelled split of `n` random unit queries in [`DIM`] dimensions with binary scores
/// for the nine models of [`pool`].
pub fn split(n: usize, seed: u64) -> Split {
    let mut rng = SplitMix64::new(seed);
    let pool = pool();
    let m = pool.len();
    let embeddings: Vec<f32> = (0..n * DIM).map(|_| rng.normal() as f32).collect();
    let scores: Vec<f64> = (0..n * m)
        .map(|_| if rng.next_f64() < 0.55 { 1.0 } else { 0.0 })
        .collect();
    let costs: Vec<f64> = (0..n * m)
        .map(|k| pool.estimate_cost(k % m, Some(100.0)))
        .collect();
    Split::from_arrays(pool, embeddings, DIM, scores, costs).expect("consistent fixture arrays")
}

/// `count` seeded random queries with a prompt length.
pub fn queries(count: usize, seed: u64) -> Vec<QueryFeatures> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|_| {
            QueryFeatures::new((0..DIM).map(|_| rng.normal() as f32).collect())
                .and_then(|q| q.with_prompt_tokens(120.0))
                .expect("random normal vectors are valid features")
        })
        .collect()
}
