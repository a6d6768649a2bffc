#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

// The modules in layers, bottom-up (docs/architecture.md): a module uses only modules of the
// layers above it in this list, never one below. `tests/layers.rs` fails on an import cycle.
//
// 1. foundations: error, rng, simd
pub mod error;
pub mod rng;
pub mod simd;
// 2. the vocabulary: one query's features, the model pool, the kinds' names, files
pub mod features;
pub mod files;
pub mod kind;
#[cfg(feature = "ndarray")]
pub mod ndarray_support;
pub mod pool;
// 3. data: datasets and splits, the saved-router container
pub mod data;
pub mod saved;
// 4. the traits every router implements, and what is computed from them alone
pub mod calibrate;
pub mod router;
// 5. metrics and the searches' shared parts
pub mod metrics;
pub mod tuning;
// 6. the routers
pub mod routers;
// 7. the registry of router kinds
pub mod registry;
// 8. what runs routers: evaluation, replay, the text pipeline
#[cfg(feature = "embed")]
pub mod embed;
pub mod eval;
pub mod fuzzing;
pub mod policy;
pub mod replay;
pub mod share;

pub use error::{Error, ErrorKind, Result};
pub use features::{FeatureBatch, QueryFeatures, DEFAULT_EMBEDDING_MODEL};
pub use pool::{ModelCard, ModelPool};
pub use registry::{load_router, AnyLearner, AnyRouter, RouterConfig, RouterKind};
pub use router::{
    Allowed, Alternative, Decision, Estimates, Feedback, Learner, Objective, Router, Signals,
};

/// The repository README's examples, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    /// What keeps the `rust` code blocks of a markdown file from being complete programs as
    /// printed: lines that rustdoc hides (`# ...`), and blocks without a `fn main`. One entry per
    /// problem, naming the line.
    fn snippet_problems(name: &str, markdown: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut block: Option<(usize, bool)> = None; // (opening line, has fn main)
        for (i, line) in markdown.lines().enumerate() {
            let at = i + 1;
            match block {
                None if line.starts_with("```rust") => block = Some((at, false)),
                None => {}
                Some((start, has_main)) if line.starts_with("```") => {
                    if !has_main {
                        problems.push(format!(
                            "{name}:{start}: no fn main (not a complete program)"
                        ));
                    }
                    block = None;
                }
                Some((start, has_main)) => {
                    let code = line.trim_start();
                    if code == "#" || code.starts_with("# ") {
                        problems.push(format!("{name}:{at}: a line only rustdoc hides: {line:?}"));
                    }
                    block = Some((start, has_main || line.starts_with("fn main(")));
                }
            }
        }
        problems
    }

    /// The READMEs are read on their own (GitHub, crates.io) as well as compiled by rustdoc: their
    /// Rust snippets are complete programs as printed.
    #[test]
    fn readme_snippets_are_complete_programs() {
        let readmes = [
            ("README.md", include_str!("../../../README.md")),
            ("crates/pointsman/README.md", include_str!("../README.md")),
        ];
        for (name, text) in readmes {
            assert!(text.contains("```rust"), "{name} has no rust blocks");
            let problems = snippet_problems(name, text);
            assert!(problems.is_empty(), "{}", problems.join("\n"));
        }
    }

    #[test]
    fn snippet_problems_are_found() {
        let md = "```rust,no_run\nuse x;\n# Ok(())\n```\n```sh\n# a comment\n```\n\
                  ```rust\nfn main() {\n    #[allow(unused)]\n}\n```\n";
        assert_eq!(
            snippet_problems("R", md),
            [
                "R:3: a line only rustdoc hides: \"# Ok(())\"",
                "R:1: no fn main (not a complete program)"
            ]
        );
    }
}
