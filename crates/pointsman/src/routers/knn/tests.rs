//! Unit tests of the kNN router.

use super::*;
use crate::data::Split;
use crate::features::FeatureBatch;
use crate::pool::ModelCard;
use crate::rng::SplitMix64;
use crate::router::{Router, Signals};
use crate::saved::Tensor;
use crate::{Objective, QueryFeatures};

fn pool() -> ModelPool {
    ModelPool::new(vec![
        ModelCard::new("a", 1.0, 1.0),
        ModelCard::new("b", 10.0, 10.0),
    ])
    .unwrap()
}

/// Four reference queries on the unit circle.
fn split() -> Split {
    let e = vec![1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, -1.0];
    let scores = vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.0, 0.0];
    let costs = vec![1e-4, 1e-3, 2e-4, 2e-3, 3e-4, 3e-3, 4e-4, 4e-3];
    Split::from_arrays(pool(), e, 2, scores, costs).unwrap()
}

fn est(r: &KnnRouter, x: &[f32]) -> (Vec<f64>, Vec<f64>, Signals) {
    let b = FeatureBatch::new(x, x.len()).unwrap();
    let e = r.estimate_batch(&b).unwrap();
    (
        e.quality_row(0).to_vec(),
        e.cost_row(0).to_vec(),
        e.signals[0],
    )
}

#[test]
fn weighted_mean_shrunk_to_prior() {
    let s = split();
    let cfg = KnnConfig {
        k: 2,
        ..Default::default()
    };
    let r = KnnRouter::fit(&s, &cfg).unwrap();
    // Query at 45° between rows 0 and 1: both at similarity 0.7071, equal weights.
    let (q, c, sig) = est(&r, &[1.0, 1.0]);
    assert!(
        (q[0] - 0.5).abs() < 1e-6 && (q[1] - 0.5).abs() < 1e-6,
        "{q:?}"
    );
    // Observed costs (arrays count as observed): weighted mean of the neighbours'.
    assert!(
        (c[0] - 1.5e-4).abs() < 1e-9 && (c[1] - 1.5e-3).abs() < 1e-9,
        "{c:?}"
    );
    assert_eq!(sig.neighbours, Some(2));
    // Shrinkage: β = 2·0.7071 pulls halfway toward the global means (0.375, 0.375).
    let cfg = KnnConfig {
        k: 2,
        shrinkage: 2.0 * 0.5f64.sqrt(),
        ..Default::default()
    };
    let r = KnnRouter::fit(&s, &cfg).unwrap();
    let (q, _, _) = est(&r, &[1.0, 1.0]);
    assert!((q[0] - 0.4375).abs() < 1e-6, "{q:?}");
    // Uniform weights over k = 1: exactly the nearest row.
    let cfg = KnnConfig {
        k: 1,
        weighting: Weighting::Uniform,
        ..Default::default()
    };
    let r = KnnRouter::fit(&s, &cfg).unwrap();
    let (q, _, _) = est(&r, &[0.1, -1.0]);
    assert_eq!(q, vec![0.0, 0.0]);
    let d = r
        .route(
            &QueryFeatures::new(vec![1.0, 0.1]).unwrap(),
            &Objective::new(0.0),
        )
        .unwrap();
    assert_eq!(d.model_id, "a");
}

#[test]
fn task_restriction_and_prior() {
    let mut s = split();
    let e = s.embeddings().to_vec();
    let tasks = vec![
        Some("x".to_string()),
        Some("y".to_string()),
        Some("x".to_string()),
        None,
    ];
    s = Split::from_arrays(
        pool(),
        e.clone(),
        2,
        s.scores().to_vec(),
        s.costs().to_vec(),
    )
    .unwrap();
    let s = with_tasks(s, tasks.clone());
    let cfg = KnnConfig {
        k: 1,
        same_task: true,
        ..Default::default()
    };
    let r = KnnRouter::fit(&s, &cfg).unwrap();
    // Near row 1 (task y) but tagged x: only rows 0 and 2 are candidates, and row 0 is nearer.
    let data = [0.1f32, 1.0];
    let t = [Some("x".to_string())];
    let b = FeatureBatch::new(&data, 2).unwrap().with_tasks(&t).unwrap();
    assert_eq!(r.estimate_batch(&b).unwrap().quality_row(0), [1.0, 0.0]);
    // Neighbours of zero weight (orthogonal) leave the prior.
    let orth = [0.0f32, 1.0];
    let bo = FeatureBatch::new(&orth, 2).unwrap().with_tasks(&t).unwrap();
    assert_eq!(
        r.estimate_batch(&bo).unwrap().quality_row(0),
        [0.375, 0.375]
    );
    // Task prior with a huge shrinkage: the task means.
    let cfg = KnnConfig {
        k: 1,
        shrinkage: 1e9,
        prior: Prior::Task { strength: 0.0 },
        ..Default::default()
    };
    let r = KnnRouter::fit(&s, &cfg).unwrap();
    let est = r.estimate_batch(&b).unwrap();
    assert!((est.quality_row(0)[0] - 0.75).abs() < 1e-6);
    // Unknown task: the global prior.
    let t = [Some("zzz".to_string())];
    let b = FeatureBatch::new(&data, 2).unwrap().with_tasks(&t).unwrap();
    assert!((r.estimate_batch(&b).unwrap().quality_row(0)[0] - 0.375).abs() < 1e-6);
}

fn with_tasks(s: Split, tasks: Vec<Option<String>>) -> Split {
    s.with_tasks(tasks).unwrap()
}

fn random_split(n: usize, dim: usize, seed: u64) -> Split {
    let mut rng = SplitMix64::new(seed);
    let e: Vec<f32> = (0..n * dim).map(|_| rng.normal() as f32).collect();
    let scores: Vec<f64> = (0..n * 2).map(|_| rng.next_f64().round()).collect();
    let costs: Vec<f64> = (0..n).flat_map(|_| [1e-5, 1e-4]).collect();
    Split::from_arrays(pool(), e, dim, scores, costs).unwrap()
}

#[test]
fn invariant_to_row_order_and_batching() {
    let s = random_split(300, 16, 1);
    let cfg = KnnConfig {
        k: 20,
        shrinkage: 1.0,
        ..Default::default()
    };
    let r = KnnRouter::fit(&s, &cfg).unwrap();
    let mut order: Vec<usize> = (0..300).collect();
    SplitMix64::new(9).shuffle(&mut order);
    let shuffled = KnnRouter::fit(&s.subset(&order, "train"), &cfg).unwrap();
    let q = random_split(37, 16, 2);
    let b = q.features().unwrap();
    let (e1, e2) = (
        r.estimate_batch(&b).unwrap(),
        shuffled.estimate_batch(&b).unwrap(),
    );
    for (x, y) in e1.quality.iter().zip(&e2.quality) {
        assert!((x - y).abs() < 1e-9);
    }
    for w in [0.0, 1e3, 1e4] {
        let all = r.route_batch(&b, &Objective::new(w)).unwrap();
        for (i, &m) in all.iter().enumerate() {
            let f = QueryFeatures::new(b.row(i).to_vec()).unwrap();
            assert_eq!(r.route(&f, &Objective::new(w)).unwrap().model, m as usize);
        }
    }
}

#[test]
fn ood_score_ranks_far_queries_high() {
    let s = random_split(500, 8, 3);
    let r = KnnRouter::fit(&s, &KnnConfig::default()).unwrap();
    // A training query sits inside the distribution; a query far from all rows does not.
    let (_, _, inside) = est(&r, &s.embeddings()[..8]);
    assert!(inside.ood.unwrap() < 0.5, "{inside:?}");
    let mut far = vec![0.0f32; 8];
    // The direction least similar to the data's mean.
    for row in s.embeddings().chunks_exact(8) {
        for (f, v) in far.iter_mut().zip(row) {
            *f -= v;
        }
    }
    let (_, _, out) = est(&r, &far);
    assert!(out.ood.unwrap() > inside.ood.unwrap());
    assert!((0.0..=1.0).contains(&out.ood.unwrap()));
}

#[test]
fn save_load_and_corrupt_tensors() {
    let s = random_split(200, 8, 4);
    let s = with_tasks(
        s,
        (0..200)
            .map(|i| (i % 3 != 0).then(|| format!("t{}", i % 3)))
            .collect(),
    );
    let cfg = KnnConfig {
        k: 7,
        same_task: true,
        prior: Prior::Task { strength: 2.0 },
        shrinkage: 0.5,
        ..Default::default()
    };
    let r = KnnRouter::fit(&s, &cfg).unwrap();
    let bytes = r.to_saved().unwrap().to_bytes().unwrap();
    let loaded = crate::registry::AnyRouter::from_bytes(&bytes).unwrap();
    let q = random_split(20, 8, 5);
    let q = with_tasks(q, (0..20).map(|i| Some(format!("t{}", i % 3))).collect());
    let b = q.features().unwrap();
    assert_eq!(
        r.estimate_batch(&b).unwrap(),
        loaded.estimate_batch(&b).unwrap()
    );
    assert_eq!(loaded.to_saved().unwrap().to_bytes().unwrap(), bytes);

    let mut saved = r.to_saved().unwrap();
    saved
        .tensors
        .insert("knn.scores".into(), Tensor::f32(&[200, 2], vec![2.0; 400]));
    let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("knn scores outside [0, 1]"), "{e}");
    let mut saved = r.to_saved().unwrap();
    saved
        .tensors
        .insert("knn.tasks".into(), Tensor::u32(&[200], vec![7; 200]));
    let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("task ids"), "{e}");
    let mut saved = r.to_saved().unwrap();
    saved.tensors.insert(
        "knn.embeddings".into(),
        Tensor::f32(&[200, 8], vec![3.0; 1600]),
    );
    let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("not unit vectors"), "{e}");
    let mut saved = r.to_saved().unwrap();
    saved
        .tensors
        .insert("knn.costs".into(), Tensor::f32(&[199, 2], vec![0.0; 398]));
    let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .contains("knn.costs has shape [199, 2], expected [200, 2]"),
        "{e}"
    );
}

#[test]
fn hnsw_index_matches_exact_search_and_saves() {
    let s = random_split(400, 8, 7);
    let s = with_tasks(s, (0..400).map(|i| Some(format!("t{}", i % 2))).collect());
    let exact = KnnRouter::fit(
        &s,
        &KnnConfig {
            k: 10,
            index: Index::Exact,
            ..Default::default()
        },
    )
    .unwrap();
    // ef ≥ n makes the graph search exhaustive, so the estimates are the exact ones.
    let hc = hnsw::HnswConfig {
        m: 8,
        ef_construction: 50,
        ef_search: 400,
        seed: 1,
    };
    let approx = KnnRouter::fit(
        &s,
        &KnnConfig {
            k: 10,
            index: Index::Hnsw(hc.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(approx.graph.is_some() && exact.graph.is_none());
    let q = random_split(30, 8, 8);
    let b = q.features().unwrap();
    let (e1, e2) = (
        exact.estimate_batch(&b).unwrap(),
        approx.estimate_batch(&b).unwrap(),
    );
    for (x, y) in e1.quality.iter().zip(&e2.quality) {
        assert!((x - y).abs() < 1e-9);
    }
    // Same-task restriction over-fetches from the graph and filters.
    let cfg = KnnConfig {
        k: 5,
        same_task: true,
        index: Index::Hnsw(hc.clone()),
        ..Default::default()
    };
    let r = KnnRouter::fit(&s, &cfg).unwrap();
    let q = with_tasks(q, (0..30).map(|_| Some("t1".to_string())).collect());
    let est = r.estimate_batch(&q.features().unwrap()).unwrap();
    assert!(est.signals.iter().all(|x| x.neighbours == Some(5)));
    // Save and load keep the graph; a corrupt graph is an error.
    let bytes = r.to_saved().unwrap().to_bytes().unwrap();
    let loaded = crate::registry::AnyRouter::from_bytes(&bytes).unwrap();
    assert_eq!(est, loaded.estimate_batch(&q.features().unwrap()).unwrap());
    let mut saved = r.to_saved().unwrap();
    let nn = saved.shape("knn.hnsw.neighbors").unwrap()[0];
    saved.tensors.insert(
        "knn.hnsw.neighbors".into(),
        Tensor::u32(&[nn], vec![9999; nn]),
    );
    let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("knn index"), "{e}");
    let mut saved = r.to_saved().unwrap();
    saved.tensors.remove("knn.hnsw.header");
    assert!(crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).is_err());
    // Auto picks exact search below its threshold.
    let auto = KnnRouter::fit(
        &s,
        &KnnConfig {
            index: Index::Auto {
                threshold: 1000,
                hnsw: hc,
            },
            ..Default::default()
        },
    )
    .unwrap();
    assert!(auto.graph.is_none());
}

#[test]
fn config_validation() {
    assert!(KnnConfig {
        k: 0,
        ..Default::default()
    }
    .validate()
    .is_err());
    assert!(KnnConfig {
        shrinkage: -1.0,
        ..Default::default()
    }
    .validate()
    .is_err());
    let e = KnnConfig {
        weighting: Weighting::Softmax { temperature: 0.0 },
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("weighting"), "{e}");
    let json = r#"{"k": 5, "weighting": {"kind": "softmax", "temperature": 0.1}}"#;
    let c: KnnConfig = serde_json::from_str(json).unwrap();
    assert_eq!(c.k, 5);
    assert!(serde_json::from_str::<KnnConfig>(r#"{"kk": 5}"#).is_err());
}

#[test]
fn leave_one_out_neighbours_match_a_search_without_the_query() {
    let base = random_split(300, 6, 3);
    let tasks: Vec<Option<String>> = (0..300)
        .map(|i| (i % 3 != 0).then(|| format!("t{}", i % 2)))
        .collect();
    let split = with_tasks(base, tasks);
    for same_task in [false, true] {
        let cfg = KnnConfig {
            k: 7,
            same_task,
            ..Default::default()
        };
        let (r, lists) = KnnRouter::fit_with_neighbours(&split, &cfg, 7).unwrap();
        assert_eq!(lists.len(), 300);
        // The same router and OOD table as a plain fit.
        let plain = KnnRouter::fit(&split, &cfg).unwrap();
        assert_eq!(r.ood_quantiles, plain.ood_quantiles);
        let found = r.neighbours(&split.features().unwrap(), 8).unwrap();
        for (row, (list, f)) in lists.iter().zip(&found).enumerate() {
            let mut want: Vec<(f32, u32)> = f
                .iter()
                .copied()
                .filter(|&(_, i)| r.source_row(i as usize) != Some(row))
                .collect();
            want.truncate(7);
            // The search re-normalises the query: similarities agree to rounding.
            let ids = |v: &[(f32, u32)]| v.iter().map(|p| p.1).collect::<Vec<_>>();
            assert_eq!(ids(list), ids(&want), "row {row}");
            for (a, b) in list.iter().zip(&want) {
                assert!((a.0 - b.0).abs() < 1e-6, "row {row}: {a:?} {b:?}");
            }
        }
    }
}
