#![cfg(feature = "embed")]
//! Text in, decision out: `Embedder::features` and `Pipeline` on the real model and a kNN router
//! trained on llmrouter_dc, and the errors of mismatched pairs and empty text.

mod common;

use std::sync::Arc;

use pointsman::data::{Dataset, Split};
use pointsman::embed::{Embedder, EmbedderOptions, Pipeline};
use pointsman::routers::knn::{KnnConfig, KnnRouter};
use pointsman::{ErrorKind, ModelCard, ModelPool, Objective, Router};

fn knn(root: &std::path::Path) -> (Dataset, Arc<dyn Router>) {
    let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
    let config = KnnConfig {
        k: 40,
        ..Default::default()
    };
    let router = KnnRouter::fit(ds.train(), &config).unwrap();
    (ds, Arc::new(router))
}

#[test]
fn route_text_is_route_of_the_texts_features() {
    let (Some(root), Some(embedder)) = (common::data_dir(), common::load(1)) else {
        return;
    };
    let (ds, router) = knn(&root);
    let pipeline = Pipeline::new(embedder, router.clone()).unwrap();
    let objective = Objective::new(300.0);
    let prompts: Vec<&str> = ds
        .test()
        .prompts()
        .iter()
        .take(12)
        .map(String::as_str)
        .collect();
    let batch = pipeline.route_texts(&prompts, &objective).unwrap();
    assert_eq!(batch.len(), prompts.len());
    let mut same_as_shipped = 0;
    for (i, prompt) in prompts.iter().enumerate() {
        let (features, info) = pipeline.features(prompt).unwrap();
        assert_eq!(features.embedding_model(), Some("all-MiniLM-L6-v2"));
        assert_eq!(
            features.prompt_tokens(),
            Some(prompt.chars().count() as f64 / 4.0)
        );
        assert!(info.tokens >= 3);
        let direct = router.route(&features, &objective).unwrap();
        let single = pipeline.route_text(prompt, &objective).unwrap();
        assert_eq!(single, direct);
        assert_eq!(batch[i].model, direct.model);
        assert!((batch[i].utility - direct.utility).abs() < 1e-9);
        // The shipped (float16) embedding of the same prompt routes the same way.
        let shipped =
            pointsman::QueryFeatures::new(ds.test().embeddings()[i * 384..(i + 1) * 384].to_vec())
                .unwrap()
                .with_prompt_tokens(ds.test().prompt_tokens()[i])
                .unwrap()
                .with_embedding_model("all-MiniLM-L6-v2");
        let from_data = router.route(&shipped, &objective).unwrap();
        same_as_shipped += usize::from(from_data.model == direct.model);
    }
    assert!(same_as_shipped >= prompts.len() - 1, "{same_as_shipped}");
}

#[test]
fn empty_text_is_refused_and_long_text_truncated_and_reported() {
    let (Some(root), Some(embedder)) = (common::data_dir(), common::load(1)) else {
        return;
    };
    let (_, router) = knn(&root);
    let pipeline = Pipeline::new(embedder, router).unwrap();
    let objective = Objective::new(0.0);
    for text in ["", "   ", "\n\t"] {
        let err = pipeline.route_text(text, &objective).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            err.to_string(),
            "invalid input: the text is empty or whitespace only: there is nothing to route"
        );
    }
    let err = pipeline
        .route_texts(&["fine", " "], &objective)
        .unwrap_err();
    assert!(err.to_string().contains("text 1 is empty"), "{err}");
    // Text the model reads nothing of (zero-width and control characters, a lone combining
    // mark) embeds as the empty text: refused too.
    for text in ["\u{200b}", "\u{feff}\u{1}\u{7f}", "\u{301}"] {
        let err = pipeline.route_text(text, &objective).unwrap_err();
        assert!(
            err.to_string().contains("holds no word the model reads"),
            "{text:?}: {err}"
        );
    }
    // The embedder itself embeds the empty string, as sentence-transformers does.
    assert_eq!(pipeline.embedder().embed(&[""]).unwrap().0.len(), 384);

    let long = "the quick brown fox jumps over the lazy dog ".repeat(100);
    let (decision, info) = pipeline.route_text_with_info(&long, &objective).unwrap();
    assert!(info.truncated);
    assert!(info.tokens > 900, "{}", info.tokens);
    // A text far longer than the window is read from its beginning: the same embedding as the
    // whole text's, in a fraction of the time (20 MB took 30 s whole).
    let huge = "the quick brown fox jumps over the lazy dog ".repeat(100_000);
    let started = std::time::Instant::now();
    let (a, huge_info) = pipeline.embedder().embed(&[huge.as_str()]).unwrap();
    assert!(
        started.elapsed().as_secs_f64() < 5.0,
        "{:?}",
        started.elapsed()
    );
    assert!(huge_info[0].truncated && huge_info[0].tokens > 256);
    let (b, _) = pipeline.embedder().embed(&[long.as_str()]).unwrap();
    assert_eq!(a, b);
    assert!(decision.quality.is_finite());
    // Also without a space: Chinese characters and punctuation end words too (millions of
    // them were tokenized whole before); the same embedding as a text just over the window's.
    for (piece, over_window) in [("汉字测试", 100), (r#"{"key":[1,2,3],"v":"x"}"#, 40)] {
        let short = piece.repeat(over_window);
        let huge = piece.repeat(200_000);
        let started = std::time::Instant::now();
        let (a, info) = pipeline.embedder().embed(&[huge.as_str()]).unwrap();
        assert!(
            started.elapsed().as_secs_f64() < 5.0,
            "{piece}: {:?}",
            started.elapsed()
        );
        let (b, short_info) = pipeline.embedder().embed(&[short.as_str()]).unwrap();
        assert!(info[0].truncated && short_info[0].truncated, "{piece}");
        assert_eq!(a, b, "{piece}");
    }
    // A form feed is no cut: the normalizer deletes it and joins its neighbours into one word
    // (here over 100 characters: one [UNK]), so the text fits the window and is read whole.
    let joined = format!("{}playin\x0cg{}", "a ".repeat(253), "x".repeat(20_000));
    let (a, info) = pipeline.embedder().embed(&[joined.as_str()]).unwrap();
    assert!(!info[0].truncated && info[0].tokens == 256, "{info:?}");
    let unk = format!("{}{}", "a ".repeat(253), "y".repeat(200));
    let (b, _) = pipeline.embedder().embed(&[unk.as_str()]).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_router_of_another_space_is_refused() {
    let Some(model) = common::model_dir() else {
        return;
    };
    let options = EmbedderOptions {
        threads: 1,
        ..Default::default()
    };
    let pool = ModelPool::new(vec![
        ModelCard::new("a", 1.0, 1.0),
        ModelCard::new("b", 5.0, 5.0),
    ])
    .unwrap();
    // Wrong dimension.
    let split = Split::from_arrays(
        pool.clone(),
        vec![1.0, 0.0, 0.0, 1.0],
        2,
        vec![0.5, 0.9, 0.4, 0.8],
        vec![1e-4, 5e-4, 1e-4, 5e-4],
    )
    .unwrap();
    let router = KnnRouter::fit(&split, &KnnConfig::default()).unwrap();
    let err =
        Pipeline::new(Embedder::load(&model, &options).unwrap(), Arc::new(router)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Shape);
    assert_eq!(err.to_string(), "dimension mismatch: expected 2, got 384");

    // Right dimension, another embedding model.
    let mut embeddings = vec![0f32; 2 * 384];
    embeddings[0] = 1.0;
    embeddings[384 + 1] = 1.0;
    let mut split = Split::from_arrays(
        pool,
        embeddings.clone(),
        384,
        vec![0.5, 0.9, 0.4, 0.8],
        vec![1e-4, 5e-4, 1e-4, 5e-4],
    )
    .unwrap();
    split
        .set_embeddings(embeddings, 384, Some("other-model".into()))
        .unwrap();
    let router = KnnRouter::fit(&split, &KnnConfig::default()).unwrap();
    let err =
        Pipeline::new(Embedder::load(&model, &options).unwrap(), Arc::new(router)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::EmbeddingMismatch);
    assert!(err.to_string().contains("\"other-model\""), "{err}");
}
