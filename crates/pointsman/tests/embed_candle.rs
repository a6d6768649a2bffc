#![cfg(feature = "embed")]
//! The candle backend (`Backend::Candle`: stock candle tensor ops on padded, masked batches)
//! against the sentence-transformers reference of all-MiniLM-L6-v2 (singly and as one padded
//! batch), against the fast backend and the naive f64 forward on the tiny random model, and a
//! timing comparison of both backends (ignored; run it with `--ignored --nocapture`).

mod common;

use common::tiny;
use pointsman::embed::{Backend, Embedder, EmbedderOptions};
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

fn load_real(threads: usize, backend: Backend) -> Option<Embedder> {
    let dir = common::model_dir()?;
    let opts = EmbedderOptions {
        threads,
        backend,
        ..Default::default()
    };
    Some(Embedder::load(&dir, &opts).expect("load the embedding model"))
}

const TOL: f32 = 1e-5;

#[test]
fn candle_backend_matches_reference_singly_and_batched() {
    let Some(r) = reference() else { return };
    let Some(e1) = load_real(1, Backend::Candle) else {
        return;
    };
    assert_eq!(e1.backend(), Backend::Candle);
    assert_eq!(e1.dim(), 384);
    assert_eq!(e1.model_name(), "all-MiniLM-L6-v2");
    assert_eq!(r.items.len(), 10);
    assert!(r.items.iter().any(|i| i.text.is_empty()));
    assert!(r.items.iter().any(|i| i.text == "a"));
    let mut worst = 0f32;
    for it in &r.items {
        assert_eq!(
            e1.tokenize(&it.text).unwrap(),
            it.token_ids,
            "{:?}",
            it.text
        );
        let (v, info) = e1.embed(&[&it.text]).unwrap();
        assert_eq!(info[0].tokens, it.token_ids.len());
        let d = common::max_abs_diff(&v, &it.embedding);
        worst = worst.max(d);
        assert!(d < TOL, "candle singly {:?}: max abs diff {d}", it.text);
    }
    eprintln!("candle backend, reference singly: max abs diff {worst:.3e}");
    // All ten texts are one padded batch (23 tokens at most, 10 x 23 < CHUNK_TOKENS).
    let longest = r.items.iter().map(|i| i.token_ids.len()).max().unwrap();
    assert!(r.items.len() * longest <= pointsman::embed::CHUNK_TOKENS);
    let e2 = load_real(2, Backend::Candle).unwrap();
    let texts: Vec<&str> = r.items.iter().map(|i| i.text.as_str()).collect();
    for (threads, e) in [(1, &e1), (2, &e2)] {
        let (v, info) = e.embed(&texts).unwrap();
        let mut worst = 0f32;
        for (k, it) in r.items.iter().enumerate() {
            assert_eq!(info[k].tokens, it.token_ids.len());
            let d = common::max_abs_diff(&v[k * 384..(k + 1) * 384], &it.embedding);
            worst = worst.max(d);
            assert!(
                d < TOL,
                "candle batched (threads {threads}) {:?}: max abs diff {d}",
                it.text
            );
        }
        eprintln!(
            "candle backend, reference padded batch, threads {threads}: max abs diff {worst:.3e}"
        );
    }
}

const TEXTS: &[&str] = &[
    "the cat sat on the mat.",
    "a dog",
    "",
    "Running dogs!",
    "the big red ball is on the mat, and the cat sat on a dog.",
    "xyz cat",
    "a",
];

#[test]
fn candle_backend_matches_fast_backend_on_tiny_model() {
    let dir = std::env::temp_dir().join(format!("pointsman-embed-candle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    tiny::write_model(&dir, 13);
    for threads in [1, 2] {
        let load = |backend| {
            Embedder::load(
                &dir,
                &EmbedderOptions {
                    threads,
                    max_tokens: 10,
                    backend,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let (fast, cand) = (load(Backend::Fast), load(Backend::Candle));
        assert_eq!(fast.backend(), Backend::Fast);
        assert_eq!(cand.backend(), Backend::Candle);
        assert_eq!(cand.threads(), threads);
        assert_eq!(cand.model_name(), fast.model_name());
        assert!(format!("{cand:?}").contains("Candle"));

        let ids: Vec<Vec<u32>> = TEXTS.iter().map(|t| cand.tokenize(t).unwrap()).collect();
        let naive = tiny::reference_forward(13, &ids);
        let (want, want_info) = fast.embed(TEXTS).unwrap();
        let (got, info) = cand.embed(TEXTS).unwrap();
        assert_eq!(info, want_info);
        let mut worst = 0f32;
        for (i, w) in naive.iter().enumerate() {
            let row = i * tiny::HIDDEN..(i + 1) * tiny::HIDDEN;
            let d = common::max_abs_diff(&got[row.clone()], &want[row.clone()]);
            worst = worst.max(d);
            assert!(d < 2e-6, "text {i} {:?}: candle vs fast {d}", TEXTS[i]);
            let dn = common::max_abs_diff(&got[row.clone()], w);
            assert!(dn < 2e-6, "text {i} {:?}: candle vs naive {dn}", TEXTS[i]);
            let (single, _) = cand.embed(&[TEXTS[i]]).unwrap();
            let ds = common::max_abs_diff(&single, &got[row]);
            assert!(ds < 1e-6, "text {i}: candle single vs padded batch {ds}");
        }
        eprintln!("tiny model, threads {threads}: candle vs fast max abs diff {worst:.2e}");

        // Many texts: several padded batches, input order kept.
        let many: Vec<&str> = (0..300).map(|i| TEXTS[(i * 5) % TEXTS.len()]).collect();
        let (out, _) = cand.embed(&many).unwrap();
        for (i, t) in many.iter().enumerate() {
            let k = TEXTS.iter().position(|x| x == t).unwrap();
            let d = common::max_abs_diff(
                &out[i * tiny::HIDDEN..(i + 1) * tiny::HIDDEN],
                &got[k * tiny::HIDDEN..(k + 1) * tiny::HIDDEN],
            );
            assert!(d < 1e-6, "many[{i}] differs by {d}");
        }

        // One embedder shared by several threads.
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..10 {
                        let (again, _) = cand.embed(TEXTS).unwrap();
                        assert!(common::max_abs_diff(&again, &got) < 1e-6);
                    }
                });
            }
        });

        // Features and errors go through the same checks as the fast backend.
        assert!(matches!(
            cand.features(" "),
            Err(pointsman::Error::InvalidInput(_))
        ));
        let mut small = vec![0f32; 3];
        assert!(matches!(
            cand.embed_into(&["a"], &mut small),
            Err(pointsman::Error::InvalidInput(_))
        ));
        let (empty, _) = cand.embed(&[]).unwrap();
        assert!(empty.is_empty());
    }

    // A missing weight is a format error naming the tensor, as with the fast backend.
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap()
            .into_iter()
            .filter(|(n, _)| n != "encoder.layer.1.output.dense.bias")
            .collect::<std::collections::HashMap<_, _>>();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let e = Embedder::load(
        &dir,
        &EmbedderOptions {
            threads: 1,
            max_tokens: 10,
            backend: Backend::Candle,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, pointsman::Error::Format { .. }), "{e}");
    assert!(
        e.to_string().contains("encoder.layer.1.output.dense.bias"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Median time of embedding one short prompt, both backends, one thread each:
/// `cargo test --release -p pointsman --test embed_candle -- --ignored --nocapture`.
#[test]
#[ignore = "timing; run explicitly"]
fn timing_short_prompt_both_backends() {
    const PROMPT: &str = "Write a Python function that reverses a linked list.";
    const RUNS: usize = 200;
    for backend in [Backend::Fast, Backend::Candle] {
        let Some(e) = load_real(1, backend) else {
            return;
        };
        for _ in 0..20 {
            e.embed(&[PROMPT]).unwrap();
        }
        let mut times: Vec<f64> = (0..RUNS)
            .map(|_| {
                let t = std::time::Instant::now();
                std::hint::black_box(e.embed(&[PROMPT]).unwrap());
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let tokens = e.tokenize(PROMPT).unwrap().len();
        eprintln!(
            "{backend:?}: threads 1, {tokens} tokens, median {:.3} ms (p10 {:.3}, p90 {:.3}) over {RUNS} runs",
            times[RUNS / 2],
            times[RUNS / 10],
            times[RUNS * 9 / 10]
        );
    }
}
