#![cfg(feature = "embed")]
//! First 500 prompts of llmrouter_dc against the shipped float16 embeddings
//! (rows 0..500 of llmrouter_dc.minilm_l6_v2.f16.npy), within 2e-3.

mod common;

use std::io::Read;
use std::process::Command;

const N: usize = 500;
const DIM: usize = 384;

fn prompts(path: &std::path::Path, n: usize) -> Vec<String> {
    // `gzip -dc` keeps the crate free of a decompression dependency.
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .expect("run gzip -dc");
    assert!(out.status.success(), "gzip -dc {} failed", path.display());
    let text = String::from_utf8(out.stdout).expect("utf-8 jsonl");
    text.lines()
        .take(n)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["prompt"].as_str().expect("prompt field").to_string()
        })
        .collect()
}

/// Reads the first `rows` rows of a little-endian float16 C-order 2-D .npy file.
fn npy_f16_rows(path: &std::path::Path, rows: usize, cols: usize) -> Vec<f32> {
    let mut f = std::fs::File::open(path).unwrap();
    let mut pre = [0u8; 10];
    f.read_exact(&mut pre).unwrap();
    assert_eq!(&pre[..6], b"\x93NUMPY");
    let (hlen, skip) = if pre[6] == 1 {
        (u16::from_le_bytes([pre[8], pre[9]]) as usize, 0)
    } else {
        let mut b = [0u8; 2];
        f.read_exact(&mut b).unwrap();
        (u32::from_le_bytes([pre[8], pre[9], b[0], b[1]]) as usize, 2)
    };
    let mut header = vec![0u8; hlen - skip];
    f.read_exact(&mut header).unwrap();
    let header = String::from_utf8_lossy(&header);
    assert!(header.contains("'descr': '<f2'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    assert!(header.contains(&format!(", {cols})")), "{header}");
    let mut buf = vec![0u8; rows * cols * 2];
    f.read_exact(&mut buf).unwrap();
    buf.chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect()
}

#[test]
fn first_500_prompts_match_shipped_embeddings() {
    let (Some(jsonl), Some(npy)) = (
        common::shared_file("data/llmrouter_dc/llmrouter_dc.jsonl.gz"),
        common::shared_file("data/llmrouter_dc/llmrouter_dc.minilm_l6_v2.f16.npy"),
    ) else {
        return;
    };
    let Some(e) = common::load(0) else { return };
    let prompts = prompts(&jsonl, N);
    assert_eq!(prompts.len(), N);
    let want = npy_f16_rows(&npy, N, DIM);
    let texts: Vec<&str> = prompts.iter().map(|s| s.as_str()).collect();
    let (got, info) = e.embed(&texts).unwrap();
    let mut worst = (0f32, 0usize);
    for i in 0..N {
        let d = common::max_abs_diff(&got[i * DIM..(i + 1) * DIM], &want[i * DIM..(i + 1) * DIM]);
        if d > worst.0 {
            worst = (d, i);
        }
    }
    let truncated = info.iter().filter(|i| i.truncated).count();
    eprintln!(
        "500 prompts: max abs diff {:.3e} (row {}), {truncated} truncated",
        worst.0, worst.1
    );
    assert!(worst.0 < 2e-3, "row {}: max abs diff {}", worst.1, worst.0);
}
