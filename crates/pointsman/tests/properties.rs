//! Property tests of the invariants routers promise: saving and loading is bit-identical,
//! `route_batch` equals repeated `route`, and kNN does not depend on the order of its reference
//! rows.

use pointsman::data::Split;
use pointsman::routers::knn::{Index, KnnConfig, KnnRouter, Prior, Weighting};
use pointsman::{FeatureBatch, ModelCard, ModelPool, Objective, QueryFeatures, Router};
use proptest::prelude::*;

fn pool() -> ModelPool {
    ModelPool::new(vec![
        ModelCard::new("small", 0.1, 0.1),
        ModelCard::new("mid", 1.0, 2.0),
        ModelCard::new("large", 5.0, 15.0),
    ])
    .unwrap()
}

/// A labelled set of `n` queries of dimension 6 with up to three tasks, from generated values.
fn split_strategy() -> impl Strategy<Value = Split> {
    (8usize..40).prop_flat_map(|n| {
        (
            proptest::collection::vec(-1.0f32..1.0, n * 6),
            proptest::collection::vec(0.0f64..=1.0, n * 3),
            proptest::collection::vec(proptest::option::of(0u8..3), n),
        )
            .prop_filter_map("rows must not be all zero", move |(mut e, s, t)| {
                for row in e.chunks_exact_mut(6) {
                    row[0] += 2.0; // keeps every row away from zero
                }
                let costs: Vec<f64> = (0..n).flat_map(|_| [1e-5, 1e-4, 1e-3]).collect();
                let tasks = t.into_iter().map(|x| x.map(|x| format!("t{x}"))).collect();
                Split::from_arrays(pool(), e, 6, s, costs)
                    .ok()?
                    .with_tasks(tasks)
                    .ok()
            })
    })
}

fn config_strategy() -> impl Strategy<Value = KnnConfig> {
    (
        1usize..12,
        0.0f64..20.0,
        any::<bool>(),
        any::<bool>(),
        0.5f64..4.0,
    )
        .prop_map(|(k, shrinkage, same_task, task_prior, power)| KnnConfig {
            k,
            shrinkage,
            same_task,
            prior: if task_prior {
                Prior::Task { strength: 3.0 }
            } else {
                Prior::Global
            },
            weighting: Weighting::Power { power },
            ood_neighbours: 3,
            index: Index::Exact,
            inverse_propensity: false,
        })
}

fn queries() -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-1.0f32..1.0, 6 * 5).prop_map(|mut q| {
        for row in q.chunks_exact_mut(6) {
            row[1] += 2.0;
        }
        q
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn save_load_is_bit_identical(split in split_strategy(), config in config_strategy(), q in queries()) {
        let router = KnnRouter::fit(&split, &config).unwrap();
        let bytes = router.to_saved().unwrap().to_bytes().unwrap();
        let loaded = pointsman::AnyRouter::from_bytes(&bytes).unwrap();
        prop_assert_eq!(loaded.to_saved().unwrap().to_bytes().unwrap(), bytes);
        let batch = FeatureBatch::new(&q, 6).unwrap();
        prop_assert_eq!(router.estimate_batch(&batch).unwrap(), loaded.estimate_batch(&batch).unwrap());
    }

    #[test]
    fn route_batch_equals_repeated_route(split in split_strategy(), config in config_strategy(), q in queries(), w in 0.0f64..2000.0) {
        let router = KnnRouter::fit(&split, &config).unwrap();
        let batch = FeatureBatch::new(&q, 6).unwrap();
        let objective = Objective::new(w);
        let all = router.route_batch(&batch, &objective).unwrap();
        for (i, &m) in all.iter().enumerate() {
            let one = router.route(&QueryFeatures::new(batch.row(i).to_vec()).unwrap(), &objective).unwrap();
            prop_assert_eq!(one.model, m as usize);
        }
    }

    #[test]
    fn knn_is_invariant_to_row_order(split in split_strategy(), config in config_strategy(), q in queries(), seed in any::<u64>()) {
        let mut order: Vec<usize> = (0..split.len()).collect();
        pointsman::rng::SplitMix64::new(seed).shuffle(&mut order);
        let a = KnnRouter::fit(&split, &config).unwrap();
        let b = KnnRouter::fit(&split.subset(&order, "train"), &config).unwrap();
        let batch = FeatureBatch::new(&q, 6).unwrap();
        let (ea, eb) = (a.estimate_batch(&batch).unwrap(), b.estimate_batch(&batch).unwrap());
        // Equal up to the order of floating-point sums (ties between equally similar rows can
        // only swap rows of equal similarity, which have equal weights).
        for (x, y) in ea.quality.iter().zip(&eb.quality) {
            prop_assert!((x - y).abs() < 1e-9, "{} vs {}", x, y);
        }
    }
}

/// Files saved by commit b28f5b0 (format version 1, one per router kind) load with this build,
/// decide as they did when they were saved, and save back to the same bytes
/// (tests/fixtures/b28f5b0/README.md).
#[test]
fn files_saved_by_b28f5b0_load_and_decide_as_they_did() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/b28f5b0");
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("decisions.json")).unwrap()).unwrap();
    let dim = recorded["dim"].as_u64().unwrap() as usize;
    let records = recorded["records"].as_array().unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for r in records {
        let name = r["router"].as_str().unwrap();
        let path = dir.join(format!("{name}.safetensors"));
        let bytes = std::fs::read(&path).unwrap();
        let router = pointsman::load_router(&path).unwrap();
        assert_eq!(router.kind().name(), name);
        if kinds.insert(name.to_string()) {
            assert_eq!(router.to_bytes().unwrap(), bytes, "{name}: saved again");
        }
        // The query of the generator: vec_of(i + 200, 0.1), its token count and task.
        let i = r["query"].as_u64().unwrap() as usize;
        let x: Vec<f32> = (0..dim)
            .map(|j| (((i + 200) as f32 + 1.0) * (j as f32 + 1.3) * 0.37 + 0.1).sin())
            .collect();
        let q = QueryFeatures::new(x)
            .unwrap()
            .with_prompt_tokens(50.0 + 30.0 * i as f64)
            .unwrap()
            .with_task(if i.is_multiple_of(2) { "even" } else { "odd" });
        let w = r["cost_weight"].as_f64().unwrap();
        let d = router.route(&q, &Objective::new(w)).unwrap();
        // Opened memory-mapped, the same file decides the same.
        let mapped = pointsman::registry::AnyRouter::open_mmap(&path).unwrap();
        assert_eq!(
            mapped.route(&q, &Objective::new(w)).unwrap(),
            d,
            "{name}: mapped"
        );
        let at = format!("{name}, query {i}, cost weight {w}");
        assert_eq!(d.model_id, r["model_id"].as_str().unwrap(), "{at}");
        // At b28f5b0 a decision's `quality` was the value the choice used (a learner's
        // optimistic bound or posterior draw); that value is now `score`, and `quality` the
        // expected quality, in [0, 1].
        assert!(
            (0.0..=1.0).contains(&d.quality),
            "{at}: quality {}",
            d.quality
        );
        for (field, got) in [
            ("quality", d.score),
            ("cost", d.cost),
            ("utility", d.utility),
        ] {
            let want = r[field].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1e-12),
                "{at}: {field} {got} != {want}"
            );
        }
    }
    let every: std::collections::BTreeSet<String> = [
        "zero",
        "best-single",
        "knn",
        "mf",
        "cascade",
        "linucb",
        "thompson",
        "knn-ucb",
        "cluster-ucb",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(kinds, every);
}

/// The synthetic data and queries of the format-version-2 fixtures (tests/fixtures/v2/README.md),
/// the same as b28f5b0's generator's.
mod v2_fixtures {
    use pointsman::data::Split;
    use pointsman::registry::{AnyRouter, RouterConfig};
    use pointsman::routers::knn::KnnConfig;
    use pointsman::{Objective, QueryFeatures, Router};

    pub const DIM: usize = 8;

    fn vec_of(i: usize, salt: f32) -> Vec<f32> {
        (0..DIM)
            .map(|j| ((i as f32 + 1.0) * (j as f32 + 1.3) * 0.37 + salt).sin())
            .collect()
    }

    /// b28f5b0's 90 training queries of three models.
    fn train() -> Split {
        let pool = pointsman::ModelPool::new(vec![
            pointsman::ModelCard::new("small", 0.1, 0.2),
            pointsman::ModelCard::new("medium", 1.0, 2.0),
            pointsman::ModelCard::new("large", 5.0, 15.0),
        ])
        .unwrap();
        let (mut emb, mut scores, mut costs, mut tasks) = (vec![], vec![], vec![], vec![]);
        for i in 0..90 {
            let v = vec_of(i, 0.0);
            let hard = (v[0] + v[1]) > 0.0;
            emb.extend_from_slice(&v);
            scores.extend_from_slice(&[
                if hard { 0.0 } else { 1.0 },
                if hard {
                    f64::from(u8::from(i % 3 == 0))
                } else {
                    1.0
                },
                1.0 - f64::from(u8::from(i % 7 == 0)),
            ]);
            costs.extend_from_slice(&[2e-5, 2e-4, 1.5e-3]);
            tasks.push(Some(if i % 2 == 0 { "even" } else { "odd" }.to_string()));
        }
        Split::from_arrays(pool, emb, DIM, scores, costs)
            .unwrap()
            .with_tasks(tasks)
            .unwrap()
    }

    /// The routers of format version 2: kNN on partial labels, and kNN and knn-ucb with the
    /// third model onboarded from 30 labelled queries.
    pub fn routers() -> Vec<(&'static str, AnyRouter)> {
        let train = train();
        let knn = RouterConfig::Knn(KnnConfig {
            k: 10,
            same_task: true,
            ..Default::default()
        });
        let partial = pointsman::data::keep_cells(&train, 0.5, 1).unwrap();
        let two = train.select_models(&[0, 1]).unwrap();
        let labelled = train.subset(&(0..30).collect::<Vec<_>>(), "labelled");
        let card = train.pool().card(2).clone();
        let knn_ucb = RouterConfig::default_for(pointsman::RouterKind::KnnUcb, 0).unwrap();
        vec![
            (
                "knn-partial",
                AnyRouter::fit_config(&knn, &partial).unwrap(),
            ),
            (
                "knn-onboarded",
                AnyRouter::fit_config(&knn, &two)
                    .unwrap()
                    .add_model(card.clone(), Some(&labelled))
                    .unwrap(),
            ),
            (
                "knn-ucb-onboarded",
                AnyRouter::fit_config(&knn_ucb, &two)
                    .unwrap()
                    .add_model(card, Some(&labelled))
                    .unwrap(),
            ),
        ]
    }

    /// The decisions of `router` for b28f5b0's 8 queries at 3 cost weights:
    /// (query, cost weight, model id, quality, score, cost, utility).
    pub fn decisions(router: &dyn Router) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for i in 0..8usize {
            let q = QueryFeatures::new(vec_of(i + 200, 0.1))
                .unwrap()
                .with_prompt_tokens(50.0 + 30.0 * i as f64)
                .unwrap()
                .with_task(if i.is_multiple_of(2) { "even" } else { "odd" });
            for w in [0.0, 300.0, 3000.0] {
                let d = router.route(&q, &Objective::new(w)).unwrap();
                out.push(serde_json::json!({
                    "query": i, "cost_weight": w, "model_id": d.model_id,
                    "quality": d.quality, "score": d.score, "cost": d.cost, "utility": d.utility,
                }));
            }
        }
        out
    }
}

/// Writes tests/fixtures/v2 (run once, at the commit named in its README; never again):
/// `POINTSMAN_WRITE_FIXTURES=<dir> cargo test --release -p pointsman --test properties
/// write_format_2_fixtures -- --ignored`.
#[test]
#[ignore = "writes the format-version-2 fixtures; run by hand once"]
fn write_format_2_fixtures() {
    let dir = std::path::PathBuf::from(std::env::var("POINTSMAN_WRITE_FIXTURES").unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let mut records = serde_json::Map::new();
    for (name, r) in v2_fixtures::routers() {
        let path = dir.join(format!("{name}.safetensors"));
        r.save(&path).unwrap();
        let loaded = pointsman::load_router(&path).unwrap();
        records.insert(
            name.to_string(),
            serde_json::Value::Array(v2_fixtures::decisions(&*loaded)),
        );
    }
    let json = serde_json::json!({ "dim": v2_fixtures::DIM, "routers": records });
    std::fs::write(
        dir.join("decisions.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}

/// Files of format version 2 (partial labels, onboarded models: tests/fixtures/v2/README.md)
/// load, say version 2, decide as they did when they were saved, and save back to the same
/// bytes.
#[test]
fn files_of_format_version_2_load_and_decide_as_they_did() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2");
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("decisions.json")).unwrap()).unwrap();
    let routers = recorded["routers"].as_object().unwrap();
    assert_eq!(routers.len(), 3);
    for (name, want) in routers {
        let path = dir.join(format!("{name}.safetensors"));
        let bytes = std::fs::read(&path).unwrap();
        // The version the file says (its safetensors header's metadata).
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
        assert_eq!(header["__metadata__"]["format_version"], "2", "{name}");
        let router = pointsman::load_router(&path).unwrap();
        assert_eq!(router.to_bytes().unwrap(), bytes, "{name}: saved again");
        let got = v2_fixtures::decisions(&*router);
        let want = want.as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let at = format!(
                "{name}, query {}, cost weight {}",
                w["query"], w["cost_weight"]
            );
            assert_eq!(g["model_id"], w["model_id"], "{at}");
            for field in ["quality", "score", "cost", "utility"] {
                let (g, w) = (g[field].as_f64().unwrap(), w[field].as_f64().unwrap());
                assert!(
                    (g - w).abs() <= 1e-9 * w.abs().max(1e-12),
                    "{at}: {field} {g} != {w}"
                );
            }
        }
    }
}
