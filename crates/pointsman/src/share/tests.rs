//! The exchange on the in-process store: convergence, idempotence, faults, compaction, the
//! entry decoder's guard, and the shared counters.

use super::*;
use crate::registry::{AnyLearner, RouterConfig, RouterKind};
use crate::rng::SplitMix64;
use crate::routers::bandit::{
    ClusterUcbConfig, Forgetting, KnnUcbConfig, LinearConfig, Projection,
};
use crate::{FeatureBatch, Feedback, ModelCard, ModelPool, QueryFeatures};

const DIM: usize = 6;

fn pool() -> ModelPool {
    ModelPool::new(vec![
        ModelCard::new("a", 0.1, 0.1),
        ModelCard::new("b", 1.0, 1.0),
        ModelCard::new("c", 3.0, 3.0),
    ])
    .unwrap()
}

fn unit(rng: &mut SplitMix64) -> Vec<f32> {
    let v: Vec<f32> = (0..DIM).map(|_| rng.normal() as f32).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// A learner of every kind, without forgetting, its unsupervised parts fitted.
fn learners() -> Vec<AnyLearner> {
    let none = Forgetting::none();
    let configs = [
        RouterConfig::Linucb(LinearConfig {
            forgetting: none.clone(),
            ..Default::default()
        }),
        RouterConfig::Thompson(LinearConfig {
            forgetting: none.clone(),
            projection: Projection::Pca { dim: 3 },
            ..LinearConfig::thompson()
        }),
        RouterConfig::KnnUcb(KnnUcbConfig {
            forgetting: none.clone(),
            ..Default::default()
        }),
        RouterConfig::ClusterUcb(ClusterUcbConfig {
            clusters: 3,
            cluster_after: 3,
            forgetting: none,
            ..Default::default()
        }),
    ];
    let mut rng = SplitMix64::new(7);
    let rows: Vec<f32> = (0..40).flat_map(|_| unit(&mut rng)).collect();
    configs
        .iter()
        .map(|c| {
            let l = AnyLearner::cold_config(c, &pool(), DIM, None).unwrap();
            match l.fit_unlabelled(&FeatureBatch::new(&rows, DIM).unwrap()) {
                Ok(()) | Err(crate::Error::Unsupported(_)) => {}
                Err(e) => panic!("{e}"),
            }
            l
        })
        .collect()
}

/// A seeded stream of (query, model, quality, cost).
fn stream(n: usize, seed: u64) -> Vec<(Vec<f32>, usize, f64, f64)> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let x = unit(&mut rng);
            let m = rng.below(3);
            let q = if x[0] > 0.0 { 0.9 } else { 0.2 } * (m as f64 + 1.0) / 3.0;
            (x, m, q, 1e-4 * (m as f64 + 1.0))
        })
        .collect()
}

fn observe(l: &AnyLearner, (x, m, q, c): &(Vec<f32>, usize, f64, f64)) {
    let f = QueryFeatures::new(x.clone()).unwrap();
    l.observe(&Feedback {
        features: &f,
        model: *m,
        quality: *q,
        cost: *c,
    })
    .unwrap();
}

fn config(name: &str) -> ShareConfig {
    ShareConfig {
        namespace: "test".into(),
        replica: name.into(),
        compact_every: 8,
        ..Default::default()
    }
}

/// Routing decisions and estimates of a greedy handle on `probe` queries.
fn fingerprint_of(l: &AnyLearner, probe: &[Vec<f32>]) -> (Vec<usize>, Vec<f64>) {
    let g = l.greedy();
    let flat: Vec<f32> = probe.iter().flatten().copied().collect();
    let batch = FeatureBatch::new(&flat, DIM).unwrap();
    let mut est = crate::Estimates::new(probe.len(), 3);
    g.estimate(&batch, &mut est).unwrap();
    let d = g
        .route_batch(&batch, &crate::Objective::new(0.0))
        .unwrap()
        .into_iter()
        .map(|d| d as usize)
        .collect();
    (d, est.quality.clone())
}

fn assert_same(a: &AnyLearner, b: &AnyLearner, probe: &[Vec<f32>]) {
    assert_eq!(a.observations(), b.observations());
    assert_eq!(a.pulls(), b.pulls());
    let (da, qa) = fingerprint_of(a, probe);
    let (db, qb) = fingerprint_of(b, probe);
    assert_eq!(da, db, "{}", a.kind());
    for (x, y) in qa.iter().zip(&qb) {
        assert!((x - y).abs() < 1e-9, "{}: {x} vs {y}", a.kind());
    }
}

/// Three replicas observing disjoint shards end with the state of one learner that saw all,
/// for every kind, through compactions and a replica that joins late.
#[test]
fn replicas_converge_to_one_learner() {
    let probe: Vec<Vec<f32>> = stream(30, 99).into_iter().map(|s| s.0).collect();
    for base in learners() {
        let store = MemoryStore::new("test").unwrap();
        let data = stream(300, 1);
        let single = base.snapshot();
        for s in &data {
            observe(&single, s);
        }
        let replicas: Vec<AnyLearner> = (0..3).map(|_| base.snapshot()).collect();
        let mut sides: Vec<Replica> = replicas
            .iter()
            .enumerate()
            .map(|(i, l)| Replica::new(l, config(&format!("r{i}"))).unwrap())
            .collect();
        let mut st = store.clone();
        for (i, s) in data.iter().enumerate() {
            let r = i % 3;
            observe(&replicas[r], s);
            if i % 17 == 0 {
                sides[r].sync(&mut st).unwrap();
            }
        }
        for _ in 0..3 {
            for side in &mut sides {
                side.sync(&mut st).unwrap();
            }
        }
        for l in &replicas {
            assert_same(&single, l, &probe);
        }
        assert!(
            sides
                .iter()
                .map(|s| s.stats().snapshots_written)
                .sum::<u64>()
                >= 2,
            "compactions ran"
        );
        assert!(store.log().len() < 20, "the log is trimmed");
        // A replica that joins now starts from the snapshot and the log after it.
        let late = base.snapshot();
        let mut side = Replica::new(&late, config("late")).unwrap();
        side.sync(&mut st).unwrap();
        side.sync(&mut st).unwrap();
        assert_eq!(side.stats().rejoins, 1);
        assert_same(&single, &late, &probe);
        assert_eq!(side.totals().values().sum::<u64>(), 300);
    }
}

/// Entries delivered twice count once; corrupt and foreign entries are rejected, counted and
/// never applied.
/// A name used again — a restarted process with a stable name, or two processes given one name
/// — loses nothing: each life is its own replica (before, the second life numbered its
/// increments from 1 again and the others dropped them as repeats).
#[test]
fn a_name_used_again_loses_no_update() {
    let base = learners().remove(0);
    let store = MemoryStore::new("test").unwrap();
    let mut st = store.clone();
    let (one, two, three) = (base.snapshot(), base.snapshot(), base.snapshot());
    let mut a = Replica::new(&one, config("web-1")).unwrap();
    let mut b = Replica::new(&two, config("b")).unwrap();
    let s = stream(30, 7);
    for x in &s[..10] {
        observe(&one, x);
    }
    a.sync(&mut st).unwrap();
    b.sync(&mut st).unwrap();
    a.sync(&mut st).unwrap();
    drop(a);
    // web-1 restarts under its name, and a second process takes the name at the same time.
    let again = base.snapshot();
    let mut a2 = Replica::new(&again, config("web-1")).unwrap();
    let mut c = Replica::new(&three, config("web-1")).unwrap();
    a2.sync(&mut st).unwrap();
    c.sync(&mut st).unwrap();
    for x in &s[10..20] {
        observe(&again, x);
    }
    for x in &s[20..] {
        observe(&three, x);
    }
    for _ in 0..3 {
        for r in [&mut a2, &mut b, &mut c] {
            r.sync(&mut st).unwrap();
        }
    }
    for l in [&again, &two, &three] {
        assert_eq!(l.observations(), 30, "{}", l.kind());
    }
    // Three lives of web-1 (the first, its restart, the second process), found by their name.
    assert_eq!(b.totals_of_name("web-1"), 30);
    assert_eq!(b.totals_of_name("web"), 0);
    assert!(a2.id().starts_with("web-1-") && a2.id() != c.id());
    let probe: Vec<Vec<f32>> = stream(10, 5).into_iter().map(|s| s.0).collect();
    assert_same(&again, &two, &probe);
    assert_same(&three, &two, &probe);
}

#[test]
fn duplicates_count_once_and_bad_entries_never_apply() {
    let base = learners().remove(0);
    let store = MemoryStore::new("test").unwrap();
    let mut st = store.clone();
    let (one, two) = (base.snapshot(), base.snapshot());
    let mut a = Replica::new(&one, config("a")).unwrap();
    let mut b = Replica::new(&two, config("b")).unwrap();
    a.sync(&mut st).unwrap();
    b.sync(&mut st).unwrap();
    for s in &stream(20, 3) {
        observe(&one, s);
    }
    a.sync(&mut st).unwrap();
    for bytes in store.log() {
        store.inject(bytes);
    }
    // Garbage, a truncated entry, and one of another router.
    store.inject(b"not an increment".to_vec());
    let real = store.log().pop().unwrap();
    store.inject(real[..real.len() / 2].to_vec());
    // The same kind under another configuration: another fingerprint.
    let other = AnyLearner::cold_config(
        &RouterConfig::Linucb(LinearConfig {
            ridge: 5.0,
            forgetting: Forgetting::none(),
            ..Default::default()
        }),
        &pool(),
        DIM,
        None,
    )
    .unwrap();
    let mut c = Replica::new(&other, config("c")).unwrap();
    let mut foreign = MemoryStore::new("test").unwrap();
    for s in &stream(5, 4) {
        observe(&other, s);
    }
    c.sync(&mut foreign).unwrap();
    c.sync(&mut foreign).unwrap();
    for bytes in foreign.log() {
        store.inject(bytes);
    }
    b.sync(&mut st).unwrap();
    assert_eq!(two.observations(), 20);
    let stats = b.stats();
    assert_eq!(stats.duplicates, 1);
    assert_eq!(stats.rejected, 3, "{stats:?}");
    assert!(stats.last_rejected.unwrap().contains("fingerprint"));
    let probe: Vec<Vec<f32>> = stream(10, 5).into_iter().map(|s| s.0).collect();
    assert_same(&one, &two, &probe);
}

/// Unreachable store: replicas learn locally, buffer, and catch up; past the bound,
/// observations are counted as dropped. A store that restarts empty is seeded again and no
/// observation is lost.
#[test]
fn faults_lose_nothing_within_the_bound() {
    let probe: Vec<Vec<f32>> = stream(10, 6).into_iter().map(|s| s.0).collect();
    let base = learners().remove(3);
    let store = MemoryStore::new("test").unwrap();
    let mut st = store.clone();
    let ls: Vec<AnyLearner> = (0..2).map(|_| base.snapshot()).collect();
    let mut sides: Vec<Replica> = (0..2)
        .map(|i| Replica::new(&ls[i], config(&format!("r{i}"))).unwrap())
        .collect();
    let single = base.snapshot();
    let data = stream(200, 8);
    for (i, s) in data.iter().enumerate() {
        observe(&single, s);
        observe(&ls[i % 2], s);
        if i % 10 == 0 {
            for side in &mut sides {
                let _ = side.sync(&mut st);
            }
        }
        if i == 50 {
            store.set_down(true);
        }
        if i == 80 {
            assert!(sides[0].stats().last_error.is_some());
        }
        if i == 90 {
            store.set_down(false);
        }
        if i == 100 {
            // The store is back: the error is no longer the replica's state.
            assert_eq!(sides[0].stats().last_error, None);
        }
        if i == 140 {
            store.wipe();
        }
    }
    assert!(sides[0].stats().failures > 0);
    assert!(sides.iter().map(|s| s.stats().reseeds).sum::<u64>() >= 1);
    for _ in 0..3 {
        for side in &mut sides {
            side.sync(&mut st).unwrap();
        }
    }
    for l in &ls {
        assert_same(&single, l, &probe);
    }
    // A tiny buffer: what does not fit is dropped and counted.
    let lone = base.snapshot();
    let mut side = Replica::new(
        &lone,
        ShareConfig {
            max_buffer_bytes: 1024,
            ..config("tiny")
        },
    )
    .unwrap();
    let mut down = MemoryStore::new("other").unwrap();
    down.set_down(true);
    for s in &stream(50, 9) {
        observe(&lone, s);
        let _ = side.sync(&mut down);
    }
    let stats = side.stats();
    assert!(
        stats.dropped_observations > 0 && stats.retained_bytes <= 1024,
        "{stats:?}"
    );
    assert_eq!(
        lone.observations(),
        50,
        "dropped observations still teach the replica"
    );
}

/// A drift alarm (a wiped model) reaches the other replicas at its place in the stream.
#[test]
fn wiped_models_travel_as_events() {
    let base = learners().remove(2);
    let mut st = MemoryStore::new("test").unwrap();
    let (one, two) = (base.snapshot(), base.snapshot());
    let mut a = Replica::new(&one, config("a")).unwrap();
    let mut b = Replica::new(&two, config("b")).unwrap();
    for s in &stream(30, 10) {
        observe(&one, s);
    }
    one.forget_model("b").unwrap();
    a.sync(&mut st).unwrap();
    b.sync(&mut st).unwrap();
    b.sync(&mut st).unwrap();
    let probe: Vec<Vec<f32>> = stream(10, 11).into_iter().map(|s| s.0).collect();
    assert_same(&one, &two, &probe);
}

/// A model wiped between two runs of observations of it in one increment: the replica that
/// applies it (in batches around the wipe) ends where the observing one is, for every kind.
#[test]
fn a_wipe_between_observations_of_one_increment_applies_in_place() {
    for base in learners() {
        let mut st = MemoryStore::new("test").unwrap();
        let (one, two) = (base.snapshot(), base.snapshot());
        let mut a = Replica::new(&one, config("a")).unwrap();
        let mut b = Replica::new(&two, config("b")).unwrap();
        // 120 observations a side of the wipe: about 40 of each model, enough for the linear
        // learners to re-invert in bulk.
        for s in &stream(120, 12) {
            observe(&one, s);
        }
        one.forget_model("b").unwrap();
        for s in &stream(120, 13) {
            observe(&one, s);
        }
        a.sync(&mut st).unwrap();
        b.sync(&mut st).unwrap();
        b.sync(&mut st).unwrap();
        let probe: Vec<Vec<f32>> = stream(10, 14).into_iter().map(|s| s.0).collect();
        assert_same(&one, &two, &probe);
    }
}

/// Two replicas spending from one budget concurrently never pass it; a retried increment
/// counts once; entries keep the newest version.
#[test]
fn counters_and_entries() {
    let counters = std::sync::Arc::new(MemoryCounters::new(60_000));
    let spent: Vec<f64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|r| {
                let c = std::sync::Arc::clone(&counters);
                s.spawn(move || {
                    let mut mine = 0.0;
                    for i in 0..500 {
                        if let Spend::Added(_) = c
                            .add_within("tenant", &format!("{r}-{i}"), 0.3, 100.0)
                            .unwrap()
                        {
                            mine += 0.3;
                        }
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: f64 = spent.iter().sum();
    assert!(total <= 100.0 + 1e-9 && total > 99.0, "{total}");
    assert_eq!(counters.add("n", "x", 1.0).unwrap(), 1.0);
    assert_eq!(counters.add("n", "x", 1.0).unwrap(), 1.0);
    assert!(counters.add("n", "y", f64::NAN).is_err());
    let entries = MemoryEntries::new();
    assert!(entries.put("s", b"m1", 10, 1000).unwrap());
    assert!(!entries.put("s", b"m0", 9, 1000).unwrap());
    assert!(entries.put("s", b"m2", 11, 1000).unwrap());
    assert_eq!(entries.get("s").unwrap(), Some((b"m2".to_vec(), 11)));
    assert!(entries.put("t", b"x", 1, 1).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(entries.get("t").unwrap(), None);
}

/// The background exchange synchronises on its own.
#[test]
fn the_background_exchange_runs_every_interval() {
    let base = learners().remove(3);
    let store = MemoryStore::new("test").unwrap();
    let (one, two) = (base.snapshot(), base.snapshot());
    let cfg = |n: &str| ShareConfig {
        interval_ms: 10,
        ..config(n)
    };
    let a = Exchange::start(&one, Box::new(store.clone()), cfg("a")).unwrap();
    let b = Exchange::start(&two, Box::new(store.clone()), cfg("b")).unwrap();
    for s in &stream(40, 12) {
        observe(&one, s);
    }
    let t = std::time::Instant::now();
    while two.observations() < 40 && t.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(two.observations(), 40);
    assert!(b.stats().max_staleness_ms < 10_000);
    a.stop().unwrap();
    drop(b);
    let _ = RouterKind::Linucb;
}

#[test]
fn replica_names_made_at_once_differ() {
    // Increment ids are `<replica>-<n>`: two replicas with one name would take each other's
    // increments for retries of their own.
    let names: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    (0..500)
                        .map(|_| super::replica::default_replica_name())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let distinct: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len());
}
