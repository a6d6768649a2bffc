#![cfg(feature = "embed")]
//! all-MiniLM-L6-v2 against the numpy float32 reference (exact-erf GELU):
//! token ids, and embeddings within 1e-5, one text at a time and as one batch.

mod common;

use serde::Deserialize;

#[derive(Deserialize)]
struct Item {
    text: String,
    token_ids: Vec<u32>,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct Reference {
    items: Vec<Item>,
}

fn reference() -> Option<Reference> {
    let p = common::shared_file("models/all-MiniLM-L6-v2.reference.json")?;
    Some(serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
}

const TOL: f32 = 1e-5;

#[test]
fn reference_singly_and_batched() {
    let (Some(r), Some(e)) = (reference(), common::load(1)) else {
        return;
    };
    assert_eq!(e.dim(), 384);
    assert_eq!(e.model_name(), "all-MiniLM-L6-v2");
    assert_eq!(e.max_tokens(), 256);
    assert_eq!(r.items.len(), 10);
    assert!(r.items.iter().any(|i| i.text.is_empty()));
    let mut worst = 0f32;
    for it in &r.items {
        assert_eq!(e.tokenize(&it.text).unwrap(), it.token_ids, "{:?}", it.text);
        let (v, info) = e.embed(&[&it.text]).unwrap();
        assert_eq!(info[0].tokens, it.token_ids.len());
        assert!(!info[0].truncated);
        let d = common::max_abs_diff(&v, &it.embedding);
        worst = worst.max(d);
        assert!(d < TOL, "{:?}: max abs diff {d}", it.text);
    }
    eprintln!("reference singly: max abs diff {worst:.3e}");
    let e2 = common::load(2).unwrap();
    // One text on two and three threads (split over column panels, as the gateway embeds by
    // default; three splits unevenly): each output is the same chain of products, so the same
    // bits as on one thread.
    let e3 = common::load(3).unwrap();
    for it in &r.items {
        let (one, _) = e.embed(&[&it.text]).unwrap();
        for (threads, other) in [(2, &e2), (3, &e3)] {
            let (got, _) = other.embed(&[&it.text]).unwrap();
            assert_eq!(
                one, got,
                "{:?}: one text on {threads} threads differs",
                it.text
            );
        }
    }
    for (threads, e) in [(1, &e), (2, &e2)] {
        let texts: Vec<&str> = r.items.iter().map(|i| i.text.as_str()).collect();
        let (v, info) = e.embed(&texts).unwrap();
        let mut worst = 0f32;
        for (k, it) in r.items.iter().enumerate() {
            assert_eq!(info[k].tokens, it.token_ids.len());
            let d = common::max_abs_diff(&v[k * 384..(k + 1) * 384], &it.embedding);
            worst = worst.max(d);
            assert!(
                d < TOL,
                "batched (threads {threads}) {:?}: max abs diff {d}",
                it.text
            );
        }
        eprintln!("reference batched, threads {threads}: max abs diff {worst:.3e}");
    }
}

#[test]
fn truncation_and_token_info() {
    let Some(e) = common::load(1) else { return };
    let long = "word ".repeat(600);
    let ids = e.tokenize(&long).unwrap();
    assert_eq!(ids.len(), 256);
    assert_eq!(ids[0], 101);
    assert_eq!(ids[255], 102);
    let (v, info) = e.embed(&[&long, "a"]).unwrap();
    assert_eq!(info[0].tokens, 602);
    assert!(info[0].truncated);
    assert_eq!(info[1].tokens, 3);
    assert!(!info[1].truncated);
    let norm: f32 = v[..384].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    let mut out = vec![0f32; 10];
    assert!(matches!(
        e.embed_into(&["a"], &mut out),
        Err(pointsman::Error::InvalidInput(_))
    ));
    let (v, info) = e.embed(&[]).unwrap();
    assert!(v.is_empty() && info.is_empty());
}
