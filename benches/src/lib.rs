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

/// A short prompt: 13 word pieces with [CLS] and [SEP].
pub const SHORT_PROMPT: &str = "Write a Python function that reverses a linked list.";

/// A long prompt: about 180 word pieces.
pub const LONG_PROMPT: &str = "Explain, step by step, how a transformer encoder turns a sentence \
into a fixed-size vector: tokenisation into word pieces, embedding lookup with positions, several \
layers of multi-head self-attention followed by feed-forward blocks with residual connections and \
layer normalisation, and finally mean pooling over the tokens and normalisation to unit length. \
Then discuss why batching sequences of similar length reduces padding waste, how attention cost \
grows quadratically with sequence length, and what trade-offs appear when running such a model on \
a small CPU with only two cores and no GPU at all. Finally, compare this with a bag-of-words \
baseline and say when the simpler method is good enough for routing prompts to cheaper or \
stronger language models, and which mistakes such a router typically makes in practice.";

/// Thirty-two short prompts of 9 to 16 word pieces (typical chat turns).
pub const SHORT_PROMPTS: [&str; 32] = [
    "Write a Python function that reverses a linked list.",
    "What is the capital of Australia?",
    "Summarise the plot of Hamlet in two sentences.",
    "Translate 'good morning' into French and German.",
    "How many prime numbers are there below 100?",
    "Explain what a hash map is to a beginner.",
    "Give me three ideas for a birthday party.",
    "Why is the sky blue during the day?",
    "Solve for x: 3x + 7 = 22.",
    "What does HTTP status code 404 mean?",
    "Write a haiku about autumn rain.",
    "List the planets of the solar system in order.",
    "What is the difference between TCP and UDP?",
    "Convert 72 degrees Fahrenheit to Celsius.",
    "Suggest a name for a coffee shop by the sea.",
    "How do I sort a list of tuples in Python?",
    "Who wrote the novel Pride and Prejudice?",
    "What is the derivative of x squared times sine x?",
    "Explain recursion with a simple example.",
    "Is a tomato a fruit or a vegetable?",
    "Write a SQL query that counts orders per customer.",
    "What causes the seasons on Earth?",
    "Give a one-line definition of machine learning.",
    "How long does it take light to reach Earth?",
    "Recommend a book about the history of science.",
    "What is the boiling point of water at sea level?",
    "Write a regular expression that matches an email.",
    "Explain the rules of chess castling briefly.",
    "What is 17 multiplied by 23?",
    "Describe the water cycle for a ten-year-old.",
    "How do vaccines train the immune system?",
    "What is the time complexity of binary search?",
];
