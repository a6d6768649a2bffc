//! kNN and MF work with any number of models and with data that carries observed per-query
//! costs (`cost_usd`): the routers' expected costs come from those observations.

use std::io::Write;

use pointsman::data::Dataset;
use pointsman::routers::knn::{KnnConfig, KnnRouter};
use pointsman::{Objective, QueryFeatures, Router};

/// Five models; queries along axis j are answered well by model j; every line has cost_usd, and
/// model "e"'s observed cost is 10× its list price.
fn fixture(dir: &std::path::Path) {
    let name = dir.file_name().unwrap().to_str().unwrap().to_string();
    let ids = ["a", "b", "c", "d", "e"];
    let models: Vec<String> = ids
        .iter()
        .map(|id| format!(r#""{id}": {{"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 1.0}}"#))
        .collect();
    std::fs::write(
        dir.join("models.json"),
        format!(
            r#"{{"models": {{{}}}, "default_output_tokens": 100}}"#,
            models.join(", ")
        ),
    )
    .unwrap();
    let mut lines = std::fs::File::create(dir.join(format!("{name}.jsonl"))).unwrap();
    let mut emb = Vec::new();
    for i in 0..400 {
        let axis = i % 5;
        let split = if i % 10 == 0 { "test" } else { "train" };
        let scores: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(j, id)| format!(r#""{id}": {}"#, u8::from(j == axis)))
            .collect();
        let costs: Vec<String> = ids
            .iter()
            .map(|id| format!(r#""{id}": {}"#, if *id == "e" { 1e-3 } else { 1e-4 }))
            .collect();
        writeln!(
            lines,
            r#"{{"id": "q{i}", "split": "{split}", "prompt": "p{i}", "scores": {{{}}}, "cost_usd": {{{}}}}}"#,
            scores.join(", "),
            costs.join(", ")
        )
        .unwrap();
        let mut v = [0.05f32; 8];
        v[axis] = 1.0;
        v[5 + i % 3] += 0.1;
        emb.extend_from_slice(&v);
    }
    pointsman::data::npy::write(
        &pointsman::data::embeddings_path(dir, &name),
        &emb,
        400,
        8,
        pointsman::data::npy::Dtype::F16,
    )
    .unwrap();
}

#[test]
fn routers_use_observed_costs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("observed");
    std::fs::create_dir(&dir).unwrap();
    fixture(&dir);
    let ds = Dataset::load(&dir).unwrap();
    assert_eq!(ds.pool().len(), 5);
    assert!(ds.train().cost_observed().iter().all(|&o| o));
    let knn = KnnRouter::fit(
        ds.train(),
        &KnnConfig {
            k: 10,
            ..Default::default()
        },
    )
    .unwrap();
    let mut query = vec![0.05f32; 8];
    query[4] = 1.0;
    let q = QueryFeatures::new(query)
        .unwrap()
        .with_prompt_tokens(1.0)
        .unwrap();
    let d = knn.route(&q, &Objective::new(0.0)).unwrap();
    assert_eq!(d.model_id, "e");
    // The observed cost, not the 1e-4 the list price gives.
    assert!((d.cost - 1e-3).abs() < 1e-9, "{}", d.cost);
    // At 1,000 quality points per USD, e's extra 9e-4 USD outweighs its 1.0 quality edge.
    assert_ne!(
        knn.route(&q, &Objective::new(2_000.0)).unwrap().model_id,
        "e"
    );

    #[cfg(feature = "train")]
    {
        use pointsman::routers::mf::{MfConfig, MfRouter};
        let mf = MfRouter::fit(
            ds.train(),
            &MfConfig {
                dim: 8,
                learning_rate: 1e-2,
                ..Default::default()
            },
        )
        .unwrap();
        let d = mf.route(&q, &Objective::new(0.0)).unwrap();
        assert_eq!(d.model_id, "e");
        assert!((d.cost - 1e-3).abs() < 1e-9, "{}", d.cost);
        let batch = ds.test().features().unwrap();
        let picks = mf.route_batch(&batch, &Objective::new(0.0)).unwrap();
        let right = picks
            .iter()
            .enumerate()
            .filter(|(r, &m)| ds.test().score(*r, m as usize) == 1.0)
            .count();
        assert!(right >= 36, "{right}/40");
    }
}
