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

/// The shared datasets folder: `$POINTSMAN_DATA_DIR`, else `../shared/data` beside the
/// repository.
pub fn data_dir() -> std::path::PathBuf {
    std::env::var_os("POINTSMAN_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
        })
}

/// The llmrouter_dc dataset (5,489 train and 500 test queries, 9 models).
///
/// # Panics
///
/// When the dataset is missing: the benches measure on real data or not at all.
pub fn llmrouter_dc() -> pointsman::data::Dataset {
    let dir = data_dir().join("llmrouter_dc");
    pointsman::data::Dataset::load(&dir).unwrap_or_else(|e| {
        panic!(
            "the benches need {} (set POINTSMAN_DATA_DIR): {e}",
            dir.display()
        )
    })
}

/// The test split's queries as features (embedding, prompt tokens, embedding model).
pub fn test_queries(ds: &pointsman::data::Dataset) -> Vec<QueryFeatures> {
    let test = ds.test();
    let dim = test.dim();
    (0..test.len())
        .map(|i| {
            QueryFeatures::new(test.embeddings()[i * dim..(i + 1) * dim].to_vec())
                .and_then(|q| q.with_prompt_tokens(test.prompt_tokens()[i]))
                .map(|q| q.with_embedding_model(pointsman::DEFAULT_EMBEDDING_MODEL))
                .expect("the dataset's embeddings are valid features")
        })
        .collect()
}

/// The embedder benches' texts, from `benches/prompts.json` (which `benches/compare/compare.py`
/// reads too, so both measure the same inputs).
fn prompts() -> &'static serde_json::Value {
    static PROMPTS: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    PROMPTS.get_or_init(|| {
        serde_json::from_str(include_str!("../prompts.json")).expect("benches/prompts.json is JSON")
    })
}

fn prompt(key: &str) -> &'static str {
    prompts()[key]
        .as_str()
        .unwrap_or_else(|| panic!("benches/prompts.json: {key} is not a string"))
}

/// A short prompt: 13 word pieces with [CLS] and [SEP].
pub fn short_prompt() -> &'static str {
    prompt("short")
}

/// A long prompt: 173 word pieces with [CLS] and [SEP].
pub fn long_prompt() -> &'static str {
    prompt("long")
}

/// Thirty-two short prompts of 9 to 16 word pieces (typical chat turns).
pub fn short_prompts() -> Vec<&'static str> {
    prompts()["batch32_short"]
        .as_array()
        .expect("benches/prompts.json: batch32_short is a list")
        .iter()
        .map(|p| {
            p.as_str()
                .expect("benches/prompts.json: a prompt is a string")
        })
        .collect()
}
