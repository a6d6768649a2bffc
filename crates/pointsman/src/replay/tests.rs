use super::*;
use crate::data::Split;
use crate::pool::{ModelCard, ModelPool};
use crate::rng::SplitMix64;
use crate::router::Router;

fn split() -> Split {
    let pool = ModelPool::new(vec![
        ModelCard::new("cheap", 0.1, 0.1),
        ModelCard::new("good", 1.0, 1.0),
    ])
    .unwrap();
    let mut rng = SplitMix64::new(3);
    let n = 400;
    let mut emb = Vec::new();
    let mut scores = Vec::new();
    let mut costs = Vec::new();
    for _ in 0..n {
        let a = rng.next_f64() as f32;
        emb.extend_from_slice(&[1.0, a, 1.0 - a]);
        scores.push(if rng.next_f64() < 0.4 { 1.0 } else { 0.0 });
        scores.push(if rng.next_f64() < 0.8 { 1.0 } else { 0.0 });
        costs.extend_from_slice(&[1e-5, 1e-4]);
    }
    Split::from_arrays(pool, emb, 3, scores, costs).unwrap()
}

#[test]
fn drift_parses_and_applies() {
    let d: Drift = "llama-3.1-nemotron-51b-instruct@2000".parse().unwrap();
    assert_eq!(d.model, "llama-3.1-nemotron-51b-instruct");
    assert_eq!(d.step, 2000);
    assert!("nope".parse::<Drift>().is_err());
    assert!("m@x".parse::<Drift>().is_err());
    assert!("@3".parse::<Drift>().is_err());
    let s = Stream::from_split(&split(), 1).unwrap();
    let drifted = s
        .clone()
        .with_drift(Drift {
            model: "good".into(),
            step: 100,
        })
        .unwrap();
    assert!((100..400).all(|t| drifted.score(t, 1) == 0.0));
    assert!((0..100).all(|t| drifted.score(t, 1) == s.score(t, 1)));
    let e = s
        .clone()
        .with_drift(Drift {
            model: "other".into(),
            step: 1,
        })
        .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::UnknownModel);
    assert!(s
        .with_drift(Drift {
            model: "good".into(),
            step: 400
        })
        .is_err());
}

#[test]
fn replay_reveals_only_the_chosen_model_and_reports() {
    let split = split();
    let stream = Stream::from_split(&split, 7).unwrap();
    // The order is a seeded permutation of the split.
    let mut ids = stream.ids().to_vec();
    ids.sort_by_key(|s| s.parse::<usize>().unwrap());
    assert_eq!(ids, split.ids());
    assert_ne!(stream.ids(), split.ids());
    let learner = learner_by_name("cluster-ucb", split.pool(), 3, None, 0).unwrap();
    let run1 = run(learner.router(), &stream, &CostWeights::Fixed(0.0)).unwrap();
    assert_eq!(run1.choices.len(), 400);
    let l = learner.learner();
    assert_eq!(l.observations(), 400);
    // Deterministic: a fresh learner makes the same choices.
    let again = learner_by_name("cluster-ucb", split.pool(), 3, None, 0).unwrap();
    let run2 = run(again.router(), &stream, &CostWeights::Fixed(0.0)).unwrap();
    assert_eq!(run1.choices, run2.choices);
    let fixed_good = Run {
        choices: vec![1; 400],
        alarms: Vec::new(),
        seconds: 0.0,
    };
    let runs = vec![
        ("cluster-ucb".to_string(), run1),
        ("good".to_string(), fixed_good),
    ];
    let rep = ReplayReport::new("t", &stream, 0.0, &runs, 100).unwrap();
    assert_eq!(rep.reference.best_fixed, "good");
    let good = &rep.routers[1];
    assert!((good.regret_best_fixed).abs() < 1e-12);
    assert!((good.mean_utility - rep.reference.models[1].mean_utility).abs() < 1e-12);
    assert_eq!(good.bins.len(), 4);
    assert_eq!(good.share(1, 0, 400), Some(1.0));
    assert!(rep.routers[0].share(1, 200, 400).unwrap() > 0.6);
    assert!(rep.reference.oracle_utility >= rep.reference.best_fixed_utility);
    // The report is a function of the lines and the stream.
    let lines: Vec<ReplayLine> = runs
        .iter()
        .flat_map(|(n, r)| lines(n, r, &stream).collect::<Vec<_>>())
        .collect();
    let rebuilt = runs_from_lines(&stream, lines.clone()).unwrap();
    let again = ReplayReport::new("t", &stream, 0.0, &rebuilt, 100).unwrap();
    for (a, b) in again.routers.iter().zip(&rep.routers) {
        assert_eq!(a.bins, b.bins);
        assert_eq!(a.mean_utility, b.mean_utility);
    }
    let other = Stream::from_split(&split, 8).unwrap();
    let e = runs_from_lines(&other, lines[..10].to_vec()).unwrap_err();
    assert!(e.to_string().contains("another seed"), "{e}");
    let e = runs_from_lines(&stream, lines[..399].to_vec()).unwrap_err();
    assert!(e.to_string().contains("no choice at step 399"), "{e}");
    assert!(ReplayReport::new("t", &stream, -1.0, &runs, 100).is_err());
}

#[test]
fn learners_by_name_and_refusals() {
    let split = split();
    for name in ["linucb", "thompson", "knn-ucb", "cluster-ucb"] {
        let l = learner_by_name(name, split.pool(), 3, None, 1).unwrap();
        assert_eq!(l.router().kind(), name);
        learn(l.router(), &split, 2, &CostWeights::Mixed { seed: 2 }).unwrap();
        assert_eq!(l.greedy().observations(), 400);
    }
    let e = learner_by_name("bandit", split.pool(), 3, None, 0).unwrap_err();
    assert!(e.to_string().contains("unknown learner \"bandit\""), "{e}");
    let zero = crate::routers::baseline::BaselineRouter::fit(
        crate::routers::baseline::Baseline::Zero,
        &split,
    )
    .unwrap();
    let stream = Stream::from_split(&split, 0).unwrap();
    let e = run(&zero, &stream, &CostWeights::Fixed(0.0)).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zero.safetensors");
    zero.save(&path).unwrap();
    let e = learner_by_name(
        &format!("file:{}", path.display()),
        split.pool(),
        3,
        None,
        0,
    )
    .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
    // A saved learner resumes with its state.
    let l = learner_by_name("knn-ucb", split.pool(), 3, None, 0).unwrap();
    learn(l.router(), &split, 0, &CostWeights::Fixed(0.0)).unwrap();
    let path = dir.path().join("knn.safetensors");
    l.save(&path).unwrap();
    let back = learner_by_name(
        &format!("file:{}", path.display()),
        split.pool(),
        3,
        None,
        0,
    )
    .unwrap();
    assert_eq!(back.observations(), 400);
}

#[test]
fn progress_adds_up_to_every_step_of_every_learner() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let split = split();
    let stream = Stream::from_split(&split, 7).unwrap();
    let names = vec!["cluster-ucb".to_string(), "knn-ucb".to_string()];
    let (steps, calls) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let runs = run_named_reporting(&names, &stream, 0, &CostWeights::Fixed(0.0), &|n| {
        steps.fetch_add(n, Ordering::Relaxed);
        calls.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(steps.into_inner(), 2 * 400);
    // 400 steps: one call at 256, one for the last 144, per learner.
    assert_eq!(calls.into_inner(), 4);
    // Reporting changes nothing: the same choices as without it.
    let quiet = run_named(&names, &stream, 0, &CostWeights::Fixed(0.0)).unwrap();
    for ((_, a), (_, b)) in runs.iter().zip(&quiet) {
        assert_eq!(a.choices, b.choices);
    }
}
