#![cfg(feature = "embed")]
//! Same check as `tiny.rs` with the portable (non-SIMD) kernels forced via
//! POINTSMAN_SIMD=portable (one test per binary: the switch is read once).

mod common;

use common::tiny;
use pointsman::embed::{Embedder, EmbedderOptions};

#[test]
fn generic_kernels_match_naive_reference() {
    std::env::set_var("POINTSMAN_SIMD", "portable");
    let dir = std::env::temp_dir().join(format!("pointsman-embed-generic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    tiny::write_model(&dir, 3);
    let texts = [
        "the cat sat on the mat.",
        "",
        "a dog",
        "the big red ball is on the mat",
    ];
    for threads in [1, 2] {
        let e = Embedder::load(
            &dir,
            &EmbedderOptions {
                threads,
                max_tokens: 12,
                ..Default::default()
            },
        )
        .unwrap();
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| e.tokenize(t).unwrap()).collect();
        let want = tiny::reference_forward(3, &ids);
        let (got, _) = e.embed(&texts).unwrap();
        for (i, w) in want.iter().enumerate() {
            let d = common::max_abs_diff(&got[i * tiny::HIDDEN..(i + 1) * tiny::HIDDEN], w);
            assert!(d < 2e-6, "text {i}: {d}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
