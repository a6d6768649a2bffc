//! Tests shared by the four bandits: merging, saving, forgetting, validation, threads.

use std::sync::Arc;

use super::*;
use crate::data::Split;
use crate::error::ErrorKind;
use crate::features::FeatureBatch;
use crate::pool::ModelCard;
use crate::pool::ModelPool;
use crate::rng::SplitMix64;
use crate::router::{Feedback, Learner, Router};
use crate::saved::Tensor;
use crate::{Objective, QueryFeatures};

pub(super) const DIM: usize = 6;

pub(super) fn pool() -> ModelPool {
    ModelPool::new(vec![
        ModelCard::new("small", 0.1, 0.1),
        ModelCard::new("mid", 0.5, 0.5),
        ModelCard::new("big", 1.0, 1.0),
    ])
    .unwrap()
}

/// A query near one of three directions, and each model's chance of being right on it: the
/// small model is good near direction 0, the big one everywhere but 0.
pub(super) fn synthetic(rng: &mut SplitMix64) -> (QueryFeatures, [f64; 3]) {
    let group = rng.below(3);
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| 0.3 * (rng.next_f64() as f32 - 0.5))
        .collect();
    v[group] += 1.0;
    let q = QueryFeatures::new(v)
        .unwrap()
        .with_prompt_tokens(100.0)
        .unwrap();
    let p = match group {
        0 => [0.9, 0.5, 0.3],
        1 => [0.2, 0.6, 0.8],
        _ => [0.1, 0.3, 0.9],
    };
    (q, p)
}

/// `n` synthetic queries with every model's sampled outcome (full labels), seeded; each
/// observed cost is the pool's estimate times `cost_factor`.
pub(super) fn labelled_split(n: usize, seed: u64, cost_factor: f64) -> Split {
    let mut rng = SplitMix64::new(seed);
    let (mut emb, mut scores, mut costs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let (q, p) = synthetic(&mut rng);
        emb.extend_from_slice(q.embedding());
        for (m, &pm) in p.iter().enumerate() {
            scores.push(if rng.next_f64() < pm { 1.0 } else { 0.0 });
            costs.push(pool().estimate_cost(m, Some(0.0)) * cost_factor);
        }
    }
    Split::from_arrays(pool(), emb, DIM, scores, costs).unwrap()
}

/// `n` (query, model, quality, cost) observations with random models, seeded.
pub(super) fn stream(n: usize, seed: u64) -> Vec<(QueryFeatures, usize, f64, f64)> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let (q, p) = synthetic(&mut rng);
            let m = rng.below(3);
            let y = if rng.next_f64() < p[m] { 1.0 } else { 0.0 };
            let cost = pool().estimate_cost(m, q.prompt_tokens()) * 1.1;
            (q, m, y, cost)
        })
        .collect()
}

pub(super) fn feed<L: Learned>(r: &BanditRouter<L>, obs: &[(QueryFeatures, usize, f64, f64)]) {
    for (q, m, y, c) in obs {
        r.observe(&Feedback {
            features: q,
            model: *m,
            quality: *y,
            cost: *c,
        })
        .unwrap();
    }
}

pub(super) fn probes() -> Vec<QueryFeatures> {
    let mut rng = SplitMix64::new(99);
    (0..12).map(|_| synthetic(&mut rng).0).collect()
}

fn unlabelled() -> Vec<f32> {
    let mut rng = SplitMix64::new(5);
    (0..60)
        .flat_map(|_| synthetic(&mut rng).0.embedding().to_vec())
        .collect()
}

/// Every probe's estimates (quality and cost, exploring and greedy) of two routers agree.
fn assert_same_estimates<L: Learned>(a: &BanditRouter<L>, b: &BanditRouter<L>, tol: f64) {
    for q in probes() {
        let batch = q.as_batch();
        for (x, y) in [(a.exploring(), b.exploring()), (a.greedy(), b.greedy())] {
            let ex = x.estimate_batch(&batch).unwrap();
            let ey = y.estimate_batch(&batch).unwrap();
            for (u, v) in ex.quality.iter().zip(&ey.quality) {
                assert!((u - v).abs() <= tol, "{} quality {u} vs {v}", L::KIND);
            }
            for (u, v) in ex.cost.iter().zip(&ey.cost) {
                assert!(
                    (u - v).abs() <= tol * u.abs().max(1e-12),
                    "{} cost {u} vs {v}",
                    L::KIND
                );
            }
        }
    }
    assert_eq!(a.observations(), b.observations());
    assert_eq!(a.pulls(), b.pulls());
}

fn linucb(forgetting: Forgetting) -> LinUcbRouter {
    let config = LinearConfig {
        forgetting,
        ..Default::default()
    };
    LinUcbRouter::new(pool(), DIM, None, config).unwrap()
}

fn thompson(forgetting: Forgetting) -> LinTsRouter {
    let config = LinearConfig {
        forgetting,
        projection: Projection::Random { dim: 4, seed: 3 },
        exploration: 0.3,
        ..Default::default()
    };
    LinTsRouter::new(pool(), DIM, None, config).unwrap()
}

fn knn_ucb(forgetting: Forgetting) -> KnnUcbRouter {
    let config = KnnUcbConfig {
        k: 10,
        forgetting,
        ..Default::default()
    };
    KnnUcbRouter::new(pool(), DIM, None, config).unwrap()
}

fn cluster_ucb(forgetting: Forgetting) -> ClusterUcbRouter {
    let config = ClusterUcbConfig {
        clusters: 3,
        cluster_after: 30,
        forgetting,
        ..Default::default()
    };
    let r = ClusterUcbRouter::new(pool(), DIM, None, config).unwrap();
    r.fit_unlabelled(&FeatureBatch::new(&unlabelled(), DIM).unwrap())
        .unwrap();
    r
}

fn no_forgetting() -> Forgetting {
    Forgetting::none()
}

/// Two routers that observed different traffic, merged, equal one that observed all of it;
/// with forgetting, one that observed the first router's traffic, then the second's.
fn check_merge<L: Learned>(make: impl Fn() -> BanditRouter<L>) {
    let (first, second) = (stream(150, 1), stream(120, 2));
    let a = make();
    feed(&a, &first);
    let b = make();
    feed(&b, &second);
    let all = make();
    feed(&all, &first);
    feed(&all, &second);
    a.merge(&b).unwrap();
    assert_same_estimates(&a, &all, 1e-9);

    // Replicas forked from one snapshot: the snapshot's observations count once.
    let base = make();
    feed(&base, &stream(80, 3));
    let (r1, r2) = (base.snapshot(), base.snapshot());
    feed(&r1, &first);
    feed(&r2, &second);
    r1.merge_since(&r2, &base).unwrap();
    let all = make();
    feed(&all, &stream(80, 3));
    feed(&all, &first);
    feed(&all, &second);
    assert_same_estimates(&r1, &all, 1e-9);
    let e = base.merge_since(&base, &r1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[test]
fn merge_equals_observing_everything() {
    check_merge(|| linucb(no_forgetting()));
    check_merge(|| thompson(no_forgetting()));
    check_merge(|| knn_ucb(no_forgetting()));
    check_merge(|| cluster_ucb(no_forgetting()));
}

#[test]
fn merge_with_forgetting_equals_observing_in_sequence() {
    let window = || Forgetting {
        window: Some(25),
        ..Forgetting::default()
    };
    let discount = || Forgetting {
        discount: Some(0.97),
        ..Forgetting::default()
    };
    check_merge(|| linucb(window()));
    check_merge(|| thompson(window()));
    check_merge(|| knn_ucb(window()));
    check_merge(|| knn_ucb(discount()));
    check_merge(|| cluster_ucb(window()));
    check_merge(|| cluster_ucb(discount()));
}

#[test]
fn merge_refuses_different_routers() {
    let a = cluster_ucb(no_forgetting());
    let other = ClusterUcbRouter::new(
        pool(),
        DIM,
        None,
        // Another seed (allowed: it changes how the clusters are drawn, not what is learned).
        ClusterUcbConfig {
            clusters: 3,
            cluster_after: 30,
            seed: 9,
            forgetting: no_forgetting(),
            ..Default::default()
        },
    )
    .unwrap();
    let e = a.merge(&other).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    other
        .fit_unlabelled(&FeatureBatch::new(&unlabelled()[DIM..], DIM).unwrap())
        .unwrap();
    let e = a.merge(&other).unwrap_err();
    assert!(e.to_string().contains("different clusters"), "{e}");
    let t = thompson(no_forgetting());
    let t2 = LinTsRouter::new(pool(), DIM, None, LinearConfig::default()).unwrap();
    assert!(t.merge(&t2).is_err());
    // Itself, or its greedy view of the same state: everything would count twice.
    for other in [t.clone(), t.greedy()] {
        let e = t.merge(&other).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(t.merge_since(&other, &t2).is_err());
    }
}

/// Replicas whose settings differ (here the ridge prior, which the statistics include) are
/// refused with the setting named, before anything changes; `greedy`, `seed` and `exploration`
/// may differ.
#[test]
fn merge_names_the_settings_that_differ_and_changes_nothing_when_it_fails() {
    let a = linucb(no_forgetting());
    feed(&a, &stream(60, 1));
    let before = a.to_saved().unwrap().to_bytes().unwrap();
    let other = |config: LinearConfig| LinUcbRouter::new(pool(), DIM, None, config).unwrap();
    let b = other(LinearConfig {
        ridge: 3.0,
        prior_mean: 0.5,
        forgetting: no_forgetting(),
        ..Default::default()
    });
    feed(&b, &stream(40, 2));
    let e = a.merge(&b).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("ridge 10.0 here, 3.0 in the other router") && msg.contains("prior_mean"),
        "{msg}"
    );
    let e = a.merge_since(&a.snapshot(), &b).unwrap_err();
    assert!(e.to_string().contains("in the base"), "{e}");
    assert_eq!(a.to_saved().unwrap().to_bytes().unwrap(), before);
    let c = other(LinearConfig {
        greedy: true,
        seed: 7,
        exploration: 0.9,
        forgetting: no_forgetting(),
        ..Default::default()
    });
    feed(&c, &stream(40, 2));
    a.merge(&c).unwrap();
    assert_eq!(a.observations(), 100);
}

pub(super) fn check_round_trip<L: Learned>(r: BanditRouter<L>) {
    feed(&r, &stream(200, 4));
    for router in [r.exploring(), r.greedy()] {
        let saved = router.to_saved().unwrap();
        let bytes = saved.to_bytes().unwrap();
        let loaded = crate::registry::AnyRouter::from_bytes(&bytes).unwrap();
        assert_eq!(loaded.kind().name(), L::KIND);
        assert_eq!(loaded.to_saved().unwrap().to_bytes().unwrap(), bytes);
        for q in probes() {
            for w in [0.0, 300.0, 3000.0] {
                let o = Objective::new(w);
                assert_eq!(router.route(&q, &o).unwrap(), loaded.route(&q, &o).unwrap());
            }
        }
        // The typed loader continues learning where the saved router stopped.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bandit.safetensors");
        router.save(&path).unwrap();
        let typed = BanditRouter::<L>::load(&path).unwrap();
        assert_eq!(typed.is_greedy(), router.is_greedy());
        feed(&typed, &stream(20, 5));
        let twin = router.snapshot();
        feed(&twin, &stream(20, 5));
        assert_eq!(
            typed.to_saved().unwrap().to_bytes().unwrap(),
            twin.to_saved().unwrap().to_bytes().unwrap()
        );
    }
}

#[test]
fn save_load_is_bit_identical() {
    check_round_trip(linucb(Forgetting::default()));
    check_round_trip(linucb(Forgetting {
        window: Some(30),
        ..Forgetting::default()
    }));
    check_round_trip(thompson(Forgetting::default()));
    check_round_trip(knn_ucb(Forgetting {
        window: Some(40),
        ..Forgetting::default()
    }));
    check_round_trip(cluster_ucb(Forgetting {
        window: Some(40),
        ..Forgetting::default()
    }));
    // Before its clusters are fitted: the buffer is saved.
    let config = ClusterUcbConfig {
        clusters: 3,
        cluster_after: 500,
        ..Default::default()
    };
    check_round_trip(ClusterUcbRouter::new(pool(), DIM, None, config).unwrap());
}

#[test]
fn loading_refuses_other_kinds_and_bad_tensors() {
    let r = cluster_ucb(no_forgetting());
    feed(&r, &stream(50, 6));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    r.save(&path).unwrap();
    let e = KnnUcbRouter::load(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Format);
    assert!(e.to_string().contains("not a knn-ucb router"), "{e}");
    let mut saved = r.to_saved().unwrap();
    saved
        .tensors
        .insert("cluster-ucb.s".into(), Tensor::f64(&[3, 3], vec![7.0; 9]));
    let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
    let mut saved = linucb(no_forgetting()).to_saved().unwrap();
    saved
        .tensors
        .insert("linucb.b".into(), Tensor::f64(&[3, 2], vec![0.0; 6]));
    let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("tensor linucb.b has shape"), "{e}");
    // A non-finite value anywhere in the statistics is refused, whichever lane of the check
    // it falls in.
    let r = linucb(no_forgetting());
    feed(&r, &stream(20, 7));
    let clean = r.to_saved().unwrap();
    let t = &clean.tensors["linucb.a_inv"];
    let len = t.shape.iter().product::<usize>();
    for at in [0, 5, len - 1] {
        let mut saved = r.to_saved().unwrap();
        let mut values = saved.take_f64("linucb.a_inv", &t.shape).unwrap();
        values[at] = f64::INFINITY;
        saved
            .tensors
            .insert("linucb.a_inv".into(), Tensor::f64(&t.shape, values));
        let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Format);
        assert!(e.to_string().contains("non-finite"), "{e}");
    }
    let r = knn_ucb(no_forgetting());
    feed(&r, &stream(20, 8));
    let mut saved = r.to_saved().unwrap();
    let shape = saved.tensors["knn-ucb.embeddings"].shape.clone();
    let mut values = saved.take_f32("knn-ucb.embeddings", &shape).unwrap();
    *values.last_mut().unwrap() = f32::NAN;
    saved
        .tensors
        .insert("knn-ucb.embeddings".into(), Tensor::f32(&shape, values));
    let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
}

#[test]
fn only_posterior_samples_have_no_choice_probability() {
    assert_eq!(
        linucb(Forgetting::default()).choice_probability(None),
        Some(1.0)
    );
    assert_eq!(
        knn_ucb(Forgetting::default()).choice_probability(None),
        Some(1.0)
    );
    let ts = thompson(Forgetting::default());
    assert_eq!(ts.choice_probability(None), None);
    assert_eq!(ts.greedy().choice_probability(None), Some(1.0));
}

#[test]
fn feedback_is_validated() {
    let r = knn_ucb(Forgetting::default());
    let q = QueryFeatures::new(vec![1.0; DIM]).unwrap();
    let fb = |model, quality, cost| Feedback {
        features: &q,
        model,
        quality,
        cost,
    };
    let e = r.observe(&fb(0, 1.5, 1e-5)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        e.to_string(),
        "invalid input: observed quality 1.5 outside [0, 1]"
    );
    let e = r.observe(&fb(0, f64::NAN, 1e-5)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = r.observe(&fb(7, 0.5, 1e-5)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownModel);
    let e = r.observe(&fb(0, 0.5, -1.0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let q3 = QueryFeatures::new(vec![1.0; 3]).unwrap();
    let e = r
        .observe(&Feedback {
            features: &q3,
            model: 0,
            quality: 0.5,
            cost: 0.0,
        })
        .unwrap_err();
    assert_eq!(e.to_string(), "dimension mismatch: expected 6, got 3");
    assert_eq!(r.observations(), 0);
    let e = r.forget_model("nope").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownModel);
    // Configs are checked when a router is made.
    let bad = LinearConfig {
        forgetting: Forgetting {
            discount: Some(0.9),
            ..Forgetting::default()
        },
        ..Default::default()
    };
    let e = LinUcbRouter::new(pool(), DIM, None, bad).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let bad = ClusterUcbConfig {
        clusters: 10,
        cluster_after: 5,
        ..Default::default()
    };
    assert!(ClusterUcbRouter::new(pool(), DIM, None, bad).is_err());
    let bad = KnnUcbConfig {
        forgetting: Forgetting {
            discount: Some(1.5),
            ..Forgetting::default()
        },
        ..Default::default()
    };
    let e = KnnUcbRouter::new(pool(), DIM, None, bad).unwrap_err();
    assert!(e.to_string().contains("discount 1.5"), "{e}");
    // An unfitted pca projection is an error, not a panic.
    let pca = LinearConfig {
        projection: Projection::Pca { dim: 3 },
        ..Default::default()
    };
    let r = LinUcbRouter::new(pool(), DIM, None, pca).unwrap();
    let e = r.route(&q, &Objective::new(0.0)).unwrap_err();
    assert!(e.to_string().contains("not fitted"), "{e}");
    r.fit_unlabelled(&FeatureBatch::new(&unlabelled(), DIM).unwrap())
        .unwrap();
    assert!(r.route(&q, &Objective::new(0.0)).is_ok());
    assert!(r
        .fit_unlabelled(&FeatureBatch::new(&unlabelled(), DIM).unwrap())
        .is_err());
}

/// Routes the synthetic stream online, with model 2's quality dropping to 0 from step `drop`;
/// returns model 2's share of the choices in the last `tail` steps.
fn share_after_drop<L: Learned>(
    r: &BanditRouter<L>,
    steps: usize,
    drop: usize,
    tail: usize,
) -> f64 {
    let mut rng = SplitMix64::new(21);
    let mut late = 0usize;
    for t in 0..steps {
        let (q, p) = synthetic(&mut rng);
        let m = r.route(&q, &Objective::new(0.0)).unwrap().model;
        let p = if m == 2 && t >= drop { 0.0 } else { p[m] };
        let y = if rng.next_f64() < p { 1.0 } else { 0.0 };
        r.observe(&Feedback {
            features: &q,
            model: m,
            quality: y,
            cost: 0.0,
        })
        .unwrap();
        if t >= steps - tail && m == 2 {
            late += 1;
        }
    }
    late as f64 / tail as f64
}

#[test]
fn forgetting_moves_traffic_off_a_model_that_drops() {
    // Without forgetting, a model with hundreds of good outcomes keeps much of its traffic for
    // a long time; the detector (default), a window or a discount move it off quickly.
    let stay = share_after_drop(&cluster_ucb(no_forgetting()), 1600, 1000, 200);
    let detector = share_after_drop(&cluster_ucb(Forgetting::default()), 1600, 1000, 200);
    assert!(
        detector < 0.05 && stay > detector + 0.1,
        "{stay} {detector}"
    );
    let r = cluster_ucb(Forgetting::default());
    share_after_drop(&r, 1600, 1000, 200);
    assert!(r.alarms()[2] >= 1, "{:?}", r.alarms());
    assert_eq!(r.alarms()[0] + r.alarms()[1], 0, "{:?}", r.alarms());
    let window = Forgetting {
        window: Some(50),
        detector: None,
        ..Forgetting::default()
    };
    let discount = Forgetting {
        discount: Some(0.98),
        detector: None,
        ..Forgetting::default()
    };
    for (name, share) in [
        (
            "cluster window",
            share_after_drop(&cluster_ucb(window.clone()), 1600, 1000, 200),
        ),
        (
            "cluster discount",
            share_after_drop(&cluster_ucb(discount.clone()), 1600, 1000, 200),
        ),
        (
            "knn window",
            share_after_drop(&knn_ucb(window.clone()), 1600, 1000, 200),
        ),
        (
            "knn discount",
            share_after_drop(&knn_ucb(discount), 1600, 1000, 200),
        ),
        (
            "knn detector",
            share_after_drop(&knn_ucb(Forgetting::default()), 1600, 1000, 200),
        ),
        (
            "linucb window",
            share_after_drop(&linucb(window), 1600, 1000, 200),
        ),
        (
            "linucb detector",
            share_after_drop(&linucb(Forgetting::default()), 1600, 1000, 200),
        ),
    ] {
        assert!(share < 0.1, "{name}: {share}");
    }
    // forget_model wipes a model by hand: it is back at its optimistic prior.
    let r = cluster_ucb(no_forgetting());
    feed(&r, &stream(300, 8));
    let q = probes()[0].clone();
    let before = r.greedy().estimate_batch(&q.as_batch()).unwrap();
    r.forget_model("big").unwrap();
    let after = r.greedy().estimate_batch(&q.as_batch()).unwrap();
    assert!(after.quality[2] > before.quality[2], "{before:?} {after:?}");
    assert_eq!(r.pulls()[2], 300 - r.pulls()[0] - r.pulls()[1]);
}

#[test]
fn learners_find_the_better_model_per_region() {
    fn check<L: Learned>(r: BanditRouter<L>) {
        share_after_drop(&r, 1500, usize::MAX, 1);
        let g = r.greedy();
        let mut rng = SplitMix64::new(77);
        let mut right = 0;
        for _ in 0..300 {
            let (q, p) = synthetic(&mut rng);
            let m = g.route(&q, &Objective::new(0.0)).unwrap().model;
            let best = (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            right += usize::from(m == best);
        }
        assert!(right >= 240, "{}: {right}/300", L::KIND);
    }
    check(linucb(Forgetting::default()));
    check(thompson(Forgetting::default()));
    check(knn_ucb(Forgetting::default()));
    check(cluster_ucb(Forgetting::default()));
    let cold = ClusterUcbRouter::new(
        pool(),
        DIM,
        None,
        ClusterUcbConfig {
            clusters: 3,
            cluster_after: 60,
            ..Default::default()
        },
    )
    .unwrap();
    check(cold);
}

#[test]
fn thompson_draws_are_a_function_of_state_and_query() {
    let r = thompson(no_forgetting());
    feed(&r, &stream(50, 9));
    let q = probes()[1].clone();
    let o = Objective::new(0.0);
    let first = r.route(&q, &o).unwrap();
    assert_eq!(first, r.route(&q, &o).unwrap());
    assert_eq!(first, r.snapshot().route(&q, &o).unwrap());
    // Over many states the draws differ, and the greedy view does not draw at all.
    let mut qualities = std::collections::BTreeSet::new();
    for obs in stream(40, 10) {
        feed(&r, std::slice::from_ref(&obs));
        qualities.insert(r.route(&q, &o).unwrap().score.to_bits());
    }
    // The draw is the decision's score; its quality is the posterior mean.
    assert!(qualities.len() > 30, "{} distinct draws", qualities.len());
    let g = r.greedy();
    let mean = g.route(&q, &o).unwrap();
    assert!(mean.quality.is_finite());
    assert_eq!(mean, g.route(&q, &o).unwrap());
}

#[test]
fn warm_start_learns_from_full_information() {
    let split = labelled_split(120, 31, 1.0);
    fn check<L: Learned>(split: &Split, config: L::Config) {
        let warm = BanditRouter::<L>::warm_start(split, config.clone()).unwrap();
        assert_eq!(warm.observations(), 360);
        assert_eq!(warm.pulls(), vec![120; 3]);
        let g = warm.greedy();
        let mut rng = SplitMix64::new(78);
        let mut right = 0;
        for _ in 0..200 {
            let (q, p) = synthetic(&mut rng);
            let m = g.route(&q, &Objective::new(0.0)).unwrap().model;
            let best = (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            right += usize::from(m == best);
        }
        assert!(right >= 150, "{}: {right}/200", L::KIND);
        // The batched warm start equals observing the split one outcome at a time.
        let one = BanditRouter::<L>::new(pool(), DIM, None, config).unwrap();
        let _ = one.fit_unlabelled(&split.features().unwrap());
        for r in 0..split.len() {
            let q = QueryFeatures::new(split.embeddings()[r * DIM..(r + 1) * DIM].to_vec())
                .unwrap()
                .with_prompt_tokens(0.0)
                .unwrap();
            for m in 0..3 {
                one.observe(&Feedback {
                    features: &q,
                    model: m,
                    quality: split.score(r, m),
                    cost: split.cost(r, m),
                })
                .unwrap();
            }
        }
        let probe = probes();
        for q in &probe {
            let a = warm.greedy().estimate_batch(&q.as_batch()).unwrap();
            let b = one.greedy().estimate_batch(&q.as_batch()).unwrap();
            for (u, v) in a.quality.iter().zip(&b.quality) {
                assert!((u - v).abs() < 1e-9, "{}: {u} vs {v}", L::KIND);
            }
        }
    }
    let none = Forgetting::none;
    check::<Linear<Ucb>>(
        &split,
        LinearConfig {
            forgetting: none(),
            ..Default::default()
        },
    );
    check::<Linear<Ucb>>(
        &split,
        LinearConfig {
            forgetting: Forgetting {
                window: Some(50),
                detector: None,
                discount: None,
            },
            ..Default::default()
        },
    );
    check::<Linear<Thompson>>(
        &split,
        LinearConfig {
            projection: Projection::Pca { dim: 4 },
            forgetting: none(),
            ..Default::default()
        },
    );
    check::<KnnUcb>(
        &split,
        KnnUcbConfig {
            forgetting: none(),
            ..Default::default()
        },
    );
    check::<ClusterUcb>(
        &split,
        ClusterUcbConfig {
            clusters: 3,
            forgetting: none(),
            ..Default::default()
        },
    );
}

/// A replica that learns a split with partial labels (`observe_split`) records every observed
/// cell in its journal: another replica that applies the journal ends where it did.
#[test]
fn partial_labels_learned_from_a_split_reach_the_other_replicas() {
    let full = labelled_split(80, 57, 1.5);
    let partial = crate::data::keep_cells(&full, 0.4, 3).unwrap();
    let cells = partial.observed_count() as u64;
    assert!(cells > 0 && cells < 240);
    fn check<L: Learned>(r: BanditRouter<L>, partial: &Split, cells: u64) {
        let _ = r.fit_unlabelled(&partial.features().unwrap());
        r.start_journal().unwrap();
        let other = r.snapshot();
        r.observe_split(partial).unwrap();
        assert_eq!(r.observations(), cells, "{}", L::KIND);
        let journal = r.take_journal();
        assert_eq!(journal.events.len() as u64, cells, "{}", L::KIND);
        other.apply_events(&journal.events).unwrap();
        assert_eq!(other.observations(), r.observations(), "{}", L::KIND);
        assert_eq!(other.pulls(), r.pulls(), "{}", L::KIND);
        assert_same_estimates(&r, &other, 1e-9);
    }
    check(linucb(no_forgetting()), &partial, cells);
    check(thompson(no_forgetting()), &partial, cells);
    check(knn_ucb(no_forgetting()), &partial, cells);
    check(cluster_ucb(no_forgetting()), &partial, cells);
}

/// Routing from four threads while four others observe: no observation is lost and the
/// statistics equal those of one thread observing the same feedback.
#[test]
fn concurrent_route_and_observe() {
    fn check<L: Learned>(r: BanditRouter<L>, sequential: BanditRouter<L>, tol: f64) {
        let r = Arc::new(r);
        let parts: Vec<Vec<_>> = (0..4).map(|i| stream(150, 40 + i)).collect();
        std::thread::scope(|scope| {
            for part in &parts {
                let r = Arc::clone(&r);
                scope.spawn(move || feed(&r, part));
            }
            for i in 0..4 {
                let r = Arc::clone(&r);
                scope.spawn(move || {
                    let probes = probes();
                    for k in 0..300 {
                        let q = &probes[(k + i) % probes.len()];
                        let d = r.route(q, &Objective::new(100.0)).unwrap();
                        assert!(d.model < 3 && d.quality.is_finite());
                    }
                });
            }
        });
        assert_eq!(r.observations(), 600);
        assert_eq!(r.pulls().iter().sum::<u64>(), 600);
        for part in &parts {
            feed(&sequential, part);
        }
        // The same multiset of observations, in another order: sums agree to rounding.
        for q in probes() {
            let a = r.greedy().estimate_batch(&q.as_batch()).unwrap();
            let b = sequential.greedy().estimate_batch(&q.as_batch()).unwrap();
            for (u, v) in a
                .quality
                .iter()
                .zip(&b.quality)
                .chain(a.cost.iter().zip(&b.cost))
            {
                assert!(
                    (u - v).abs() <= tol * u.abs().max(1.0),
                    "{}: {u} vs {v}",
                    L::KIND
                );
            }
        }
        assert_eq!(r.pulls(), sequential.pulls());
    }
    check(linucb(no_forgetting()), linucb(no_forgetting()), 1e-9);
    check(
        cluster_ucb(no_forgetting()),
        cluster_ucb(no_forgetting()),
        1e-9,
    );
    // kNN-UCB keeps each observation: its top-k sums depend on ties only, so compare exactly
    // the counts and loosely the estimates.
    check(knn_ucb(no_forgetting()), knn_ucb(no_forgetting()), 1e-9);
}

#[test]
fn costs_are_calibrated_from_observed_costs() {
    let r = cluster_ucb(no_forgetting());
    let q = probes()[0].clone();
    let price = pool().estimate_cost(1, q.prompt_tokens());
    let before = r.estimate_batch(&q.as_batch()).unwrap();
    assert_eq!(before.cost[1], price);
    // The stream's observed costs are 1.1 × the price estimate.
    feed(&r, &stream(400, 11));
    let after = r.estimate_batch(&q.as_batch()).unwrap();
    assert!(
        (after.cost[1] / price - 1.1).abs() < 0.01,
        "{}",
        after.cost[1] / price
    );
}

#[test]
fn cold_start_is_optimistic_and_tries_every_model() {
    // From nothing: no observation, every model at the same optimistic estimate, and within a
    // few steps of a stream whose models all score 0.5 every model has been tried.
    fn check<L: Learned>(r: BanditRouter<L>) {
        assert_eq!(r.observations(), 0);
        let q = probes()[0].clone();
        let est = r.greedy().estimate_batch(&q.as_batch()).unwrap();
        let first = est.quality[0];
        assert!(first >= 0.8 - 1e-9, "{}: {:?}", L::KIND, est.quality);
        assert!(est.quality.iter().all(|&v| v == first), "{:?}", est.quality);
        let mut rng = SplitMix64::new(5);
        for _ in 0..30 {
            let (q, _) = synthetic(&mut rng);
            let d = r.route(&q, &Objective::new(0.0)).unwrap();
            r.observe(&Feedback {
                features: &q,
                model: d.model,
                quality: 0.5,
                cost: d.cost,
            })
            .unwrap();
        }
        assert_eq!(r.observations(), 30);
        assert!(
            r.pulls().iter().all(|&n| n > 0),
            "{}: {:?}",
            L::KIND,
            r.pulls()
        );
    }
    check(linucb(Forgetting::default()));
    check(thompson(Forgetting::default()));
    check(knn_ucb(Forgetting::default()));
    check(cluster_ucb(Forgetting::default()));
    // cluster-ucb without given clusters buffers until it has seen enough prompts.
    check(ClusterUcbRouter::new(pool(), DIM, None, ClusterUcbConfig::default()).unwrap());
}

/// A dimension past the files' ceiling, or linear matrices past their memory limit, is a typed
/// error when the router is made (it used to abort the process when the allocation failed).
#[test]
fn dimensions_that_cannot_be_allocated_are_refused_when_made() {
    let e = LinUcbRouter::new(
        pool(),
        crate::saved::MAX_DIM + 1,
        None,
        LinearConfig::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("above the ceiling of 65536"), "{e}");
    let e = LinUcbRouter::new(pool(), 30_000, None, LinearConfig::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("project the embedding"), "{e}");
    // With a projection the same embedding is fine.
    let projected = LinearConfig {
        projection: Projection::Random { dim: 16, seed: 0 },
        ..Default::default()
    };
    assert!(LinTsRouter::new(pool(), 30_000, None, projected).is_ok());
    let big = KnnUcbRouter::new(pool(), 1 << 40, None, KnnUcbConfig::default()).unwrap_err();
    assert_eq!(big.kind(), ErrorKind::Config, "{big}");
    let mf = crate::routers::mf::MfConfig {
        dim: 1 << 30,
        ..Default::default()
    };
    assert!(mf.validate().unwrap_err().to_string().contains("ceiling"));
    let irt = crate::routers::irt::IrtConfig {
        dim: 1 << 30,
        ..Default::default()
    };
    assert!(irt.validate().unwrap_err().to_string().contains("ceiling"));
}
