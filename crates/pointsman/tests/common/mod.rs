//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared datasets folder: `$POINTSMAN_DATA_DIR`, else `../shared/data` beside the repository.
/// `None` (test skipped, with a message) when it is missing, except under `CI=true`, where a
/// missing folder fails the test instead of skipping it silently.
pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("POINTSMAN_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if dir.join("llmrouter_dc").is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "shared datasets not found at {} (set POINTSMAN_DATA_DIR)",
        dir.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

/// The stats.json of a dataset.
pub fn stats(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap()).unwrap()
}

mod vectors;
#[allow(unused_imports)]
pub use vectors::*;

/// The embedding model folder ([`pointsman::embed::default_model_dir`]: `$POINTSMAN_MODEL_DIR` or
/// the cache folder `scripts/fetch-model.sh` fills). `None` (test skipped, with a message) when
/// the model is missing, except under `CI=true` or `POINTSMAN_REQUIRE_MODEL=1`, where a missing
/// model fails the test.
#[cfg(feature = "embed")]
pub fn model_dir() -> Option<PathBuf> {
    let dir = pointsman::embed::default_model_dir().ok()?;
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    let msg = format!(
        "embedding model not found at {} (run scripts/fetch-model.sh)",
        dir.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("POINTSMAN_REQUIRE_MODEL").is_ok_and(|v| v == "1")
    {
        panic!("{msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

/// A file of the shared folder (the parent of the datasets folder), e.g.
/// `models/all-MiniLM-L6-v2.reference.json`.
pub fn shared_file(rel: &str) -> Option<PathBuf> {
    let path = data_dir()?.parent()?.join(rel);
    if path.is_file() {
        return Some(path);
    }
    let msg = format!("{} not found", path.display());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

/// The real embedding model with `threads` threads, or `None` as [`model_dir`].
#[cfg(feature = "embed")]
pub fn load(threads: usize) -> Option<pointsman::embed::Embedder> {
    let dir = model_dir()?;
    let options = pointsman::embed::EmbedderOptions {
        threads,
        ..Default::default()
    };
    Some(pointsman::embed::Embedder::load(&dir, &options).expect("load the embedding model"))
}

/// The largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(feature = "embed")]
pub mod tiny;
