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

/// `n` random unit queries in 8 dimensions over three models and two tasks, scores depending on
/// the direction (seeded).
fn labelled_split(n: usize, seed: u64) -> Split {
    let mut rng = SplitMix64::new(seed);
    let pool = ModelPool::new(vec![
        ModelCard::new("a", 0.1, 0.1),
        ModelCard::new("b", 1.0, 1.0),
        ModelCard::new("c", 0.5, 0.5),
    ])
    .unwrap();
    let d = 8;
    let mut emb = Vec::new();
    let mut scores = Vec::new();
    for _ in 0..n {
        let v: Vec<f32> = (0..d).map(|_| rng.normal() as f32).collect();
        scores.push(if v[0] > 0.0 { 1.0 } else { 0.0 });
        scores.push(if v[1] > -0.5 { 1.0 } else { 0.0 });
        scores.push(((v[0] + v[1]) > 0.0) as u8 as f64 * 0.5);
        emb.extend(v);
    }
    let tasks = (0..n).map(|i| Some(format!("t{}", i % 2))).collect();
    Split::from_arrays(pool, emb, d, scores, vec![1e-5; n * 3])
        .unwrap()
        .with_tasks(tasks)
        .unwrap()
}

#[test]
fn partial_labels_use_only_neighbours_labelled_for_the_model() {
    let full = labelled_split(300, 1);
    let partial = crate::data::keep_cells(&full, 0.4, 2).unwrap();
    let cfg = KnnConfig {
        k: 7,
        same_task: true,
        shrinkage: 1.0,
        prior: Prior::Task { strength: 3.0 },
        ..Default::default()
    };
    let r = KnnRouter::fit(&partial, &cfg).unwrap();
    assert!(r.has_partial_labels());
    let test = labelled_split(40, 9);
    let batch = test.features().unwrap();
    let e = r.estimate_batch(&batch).unwrap();
    // By hand for model 1 of query 0: its 7 nearest rows of task t0 labelled for model 1.
    let x = &test.embeddings()[..8];
    let mut cands: Vec<(f32, usize)> = (0..partial.len())
        .filter(|&i| partial.observed(i, 1) && partial.tasks()[i].as_deref() == Some("t0"))
        .map(|i| {
            (
                crate::simd::dot(&partial.embeddings()[i * 8..(i + 1) * 8], x),
                i,
            )
        })
        .collect();
    cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let obs: Vec<usize> = (0..partial.len())
        .filter(|&i| partial.observed(i, 1))
        .collect();
    let global = obs.iter().map(|&i| partial.score(i, 1)).sum::<f64>() / obs.len() as f64;
    let t0: Vec<usize> = obs
        .iter()
        .copied()
        .filter(|&i| partial.tasks()[i].as_deref() == Some("t0"))
        .collect();
    let prior = (t0.iter().map(|&i| partial.score(i, 1)).sum::<f64>() + 3.0 * global)
        / (t0.len() as f64 + 3.0);
    let (mut num, mut den) = (0.0, 0.0);
    for &(s, i) in cands.iter().take(7) {
        let w = f64::from(s.max(0.0));
        num += w * partial.score(i, 1);
        den += w;
    }
    let expect = (num + prior) / (den + 1.0);
    assert!(
        (e.quality_row(0)[1] - expect).abs() < 1e-6,
        "{} vs {expect}",
        e.quality_row(0)[1]
    );
    // The saved form keeps the mask.
    let back = KnnRouter::from_saved(cfg.clone(), r.to_saved().unwrap()).unwrap();
    assert_eq!(back.estimate_batch(&batch).unwrap().quality, e.quality);
    // A model without any score cannot be fitted.
    let mut mask = vec![true; 300 * 3];
    for i in 0..300 {
        mask[i * 3 + 2] = false;
    }
    let none = full.clone().with_observed(mask).unwrap();
    let err = KnnRouter::fit(&none, &cfg).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::MissingLabels, "{err}");
}

#[test]
fn onboarding_leaves_the_other_models_bit_for_bit() {
    let full = labelled_split(400, 3);
    let cfg = KnnConfig {
        k: 20,
        same_task: true,
        shrinkage: 2.0,
        prior: Prior::Task { strength: 5.0 },
        ..Default::default()
    };
    // Fit on models a and b only, then onboard c from 60 labelled queries.
    let two = ModelPool::new(full.pool().cards()[..2].to_vec()).unwrap();
    let scores2: Vec<f64> = (0..400)
        .flat_map(|i| [full.score(i, 0), full.score(i, 1)])
        .collect();
    let train2 = Split::from_arrays(two, full.embeddings().to_vec(), 8, scores2, vec![1e-5; 800])
        .unwrap()
        .with_tasks(full.tasks().to_vec())
        .unwrap();
    let r = KnnRouter::fit(&train2, &cfg).unwrap();
    let card = full.pool().card(2).clone();
    let labelled = full.subset(&(0..60).collect::<Vec<_>>(), "labelled");
    let started = std::time::Instant::now();
    let r2 = r.add_model(card.clone(), Some(&labelled)).unwrap();
    assert!(started.elapsed().as_secs_f64() < 1.0);
    assert_eq!(r2.models().len(), 3);
    assert_eq!(r2.anchor(2).unwrap().labelled, 60);
    let test = labelled_split(50, 11);
    let batch = test.features().unwrap();
    let (e1, e2) = (
        r.estimate_batch(&batch).unwrap(),
        r2.estimate_batch(&batch).unwrap(),
    );
    for i in 0..50 {
        for j in 0..2 {
            assert_eq!(
                e1.quality_row(i)[j].to_bits(),
                e2.quality_row(i)[j].to_bits()
            );
            assert_eq!(e1.cost_row(i)[j].to_bits(), e2.cost_row(i)[j].to_bits());
        }
        assert!((0.0..=1.0).contains(&e2.quality_row(i)[2]));
    }
    // The onboarded model's estimates follow its labels: better than its card prior alone.
    let r0 = r.add_model(card.clone(), None).unwrap();
    assert_eq!(r0.anchor(2).unwrap().labelled, 0);
    let e0 = r0.estimate_batch(&batch).unwrap();
    let err = |e: &crate::router::Estimates| -> f64 {
        (0..50)
            .map(|i| (e.quality_row(i)[2] - test.score(i, 2)).powi(2))
            .sum::<f64>()
    };
    assert!(err(&e2) < err(&e0), "{} vs {}", err(&e2), err(&e0));
    // Saved and loaded, the onboarded router estimates the same; a second model can follow.
    let back = KnnRouter::from_saved(cfg.clone(), r2.to_saved().unwrap()).unwrap();
    assert_eq!(back.estimate_batch(&batch).unwrap().quality, e2.quality);
    assert!(r2.add_model(card, None).is_err());
    let r3 = r2.add_model(ModelCard::new("d", 0.2, 0.2), None).unwrap();
    let e3 = r3.estimate_batch(&batch).unwrap();
    for i in 0..50 {
        for j in 0..3 {
            assert_eq!(
                e2.quality_row(i)[j].to_bits(),
                e3.quality_row(i)[j].to_bits()
            );
        }
    }
}

#[test]
fn repricing_scales_observed_costs_and_keeps_quality() {
    let train = labelled_split(200, 41);
    let r = KnnRouter::fit(
        &train,
        &KnnConfig {
            k: 10,
            ..Default::default()
        },
    )
    .unwrap();
    let test = labelled_split(20, 42);
    let batch = test.features().unwrap();
    let e = r.estimate_batch(&batch).unwrap();
    // Model b's price doubles; a and c keep theirs.
    let cheap = r.reprice(&[ModelCard::new("b", 2.0, 2.0)]).unwrap();
    assert_eq!(cheap.models().card(1).input_usd_per_mtok, 2.0);
    let e2 = cheap.estimate_batch(&batch).unwrap();
    assert_eq!(e.quality, e2.quality);
    for i in 0..20 {
        assert!((e2.cost_row(i)[1] / e.cost_row(i)[1] - 2.0).abs() < 1e-6);
        assert_eq!(e2.cost_row(i)[0], e.cost_row(i)[0]);
    }
    assert!(r.reprice(&[ModelCard::new("zz", 1.0, 1.0)]).is_err());
}

/// A model that fails one task the others pass: the per-task offset of its anchor carries it,
/// where a combination of the other models' estimates cannot.
#[test]
fn an_onboarded_model_that_fails_one_task_is_estimated_low_there() {
    let full = labelled_split(400, 5);
    let cfg = KnnConfig {
        k: 20,
        same_task: true,
        ..Default::default()
    };
    let two = ModelPool::new(full.pool().cards()[..2].to_vec()).unwrap();
    let scores2: Vec<f64> = (0..400)
        .flat_map(|i| [full.score(i, 0), full.score(i, 1)])
        .collect();
    let train2 = Split::from_arrays(two, full.embeddings().to_vec(), 8, scores2, vec![1e-5; 800])
        .unwrap()
        .with_tasks(full.tasks().to_vec())
        .unwrap();
    let r = KnnRouter::fit(&train2, &cfg).unwrap();
    // Model c: b's scores on task t0, 0 on task t1 (which b often passes).
    let n = 60;
    let scores: Vec<f64> = (0..n)
        .flat_map(|i| {
            let c = if i % 2 == 0 { full.score(i, 1) } else { 0.0 };
            [full.score(i, 0), full.score(i, 1), c]
        })
        .collect();
    let labelled = Split::from_arrays(
        full.pool().clone(),
        full.embeddings()[..n * 8].to_vec(),
        8,
        scores,
        vec![1e-5; n * 3],
    )
    .unwrap()
    .with_tasks(full.tasks()[..n].to_vec())
    .unwrap();
    let r2 = r
        .add_model(full.pool().card(2).clone(), Some(&labelled))
        .unwrap();
    let offsets = &r2.anchor(2).unwrap().task_offsets;
    assert_eq!(offsets.len(), 2);
    assert!(offsets[1] < offsets[0] - 0.2, "{offsets:?}");
    let test = labelled_split(100, 13);
    let batch = test.features().unwrap();
    // The same router without the offsets estimates c higher on t1 and the same on t0's side.
    let mut without = r2.clone();
    without.anchors[2].as_mut().unwrap().task_offsets.clear();
    let mean = |r: &KnnRouter, t: usize| -> f64 {
        let e = r.estimate_batch(&batch).unwrap();
        (0..100)
            .filter(|i| i % 2 == t)
            .map(|i| e.quality_row(i)[2])
            .sum::<f64>()
            / 50.0
    };
    assert!(
        mean(&r2, 1) < mean(&without, 1) - 0.05,
        "c on t1: {} with offsets, {} without",
        mean(&r2, 1),
        mean(&without, 1)
    );
    assert!(mean(&r2, 0) > mean(&r2, 1) + 0.2);
}
