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
