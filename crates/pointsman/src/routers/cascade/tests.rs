//! Sessions, validation, fitting, saving and leave-one-out estimates of the cascade router.

use std::sync::Arc;

use super::*;

use crate::data::Split;
use crate::error::Error;
use crate::features::QueryFeatures;
use crate::kind::RouterKind;
use crate::pool::{ModelCard, ModelPool};
use crate::rng::SplitMix64;
use crate::router::{Objective, Router};
use crate::routers::knn::KnnConfig;
use crate::ErrorKind;

fn pool() -> ModelPool {
    ModelPool::new(vec![
        ModelCard::new("cheap", 0.1, 0.1),
        ModelCard::new("mid", 1.0, 1.0),
        ModelCard::new("big", 10.0, 10.0),
    ])
    .unwrap()
}

/// Expected costs with no prompt tokens: 256 output tokens at each model's price.
fn cost(m: usize) -> f64 {
    pool().estimate_cost(m, None)
}

fn chain_router() -> CascadeRouter {
    let config = CascadeConfig::chain([("cheap", 0.8), ("mid", 0.8), ("big", 0.0)]);
    CascadeRouter::new(pool(), 2, &config).unwrap()
}

fn query() -> QueryFeatures {
    QueryFeatures::new(vec![1.0, 0.0]).unwrap()
}

fn accept(step: Step) -> CascadeOutcome {
    match step {
        Step::Accept(o) => o,
        Step::Escalate(n) => panic!("expected the end, got a call of {}", n.model_id),
    }
}

fn escalate(step: Step) -> NextCall {
    match step {
        Step::Escalate(n) => n,
        Step::Accept(o) => panic!("expected a call, got the end {o:?}"),
    }
}

#[test]
fn accepts_a_confident_first_answer() {
    let r = chain_router();
    let mut s = r.start(&query(), &CascadeLimits::default()).unwrap();
    assert_eq!(s.next().unwrap().model_id, "cheap");
    assert!((s.next().unwrap().expected_cost - cost(0)).abs() < 1e-15);
    // Prior 0.5 (no training data), a confident vote: posterior 0.9 ≥ 0.8.
    let o = accept(s.observe(0, 1.0).unwrap());
    assert_eq!((o.accepted, o.stop), (0, StopReason::Accepted));
    assert!((o.posterior - 0.9).abs() < 1e-12);
    assert_eq!(o.invoked.len(), 1);
    assert!(!o.budget_exhausted);
    assert!(s.next().is_none());
    assert_eq!(s.outcome(), Some(&o));
    assert_eq!(s.finish().unwrap(), o);
}

#[test]
fn escalates_and_records_every_call() {
    let r = chain_router();
    let mut s = r.start(&query(), &CascadeLimits::default()).unwrap();
    assert_eq!(escalate(s.observe(0, 0.0).unwrap()).model_id, "mid");
    assert_eq!(escalate(s.observe_id("mid", 0.3).unwrap()).model, 2);
    let o = accept(s.observe_with_cost(2, 0.0, 0.5).unwrap());
    // The last stage accepts anything (threshold 0).
    assert_eq!(o.accepted_id, "big");
    let ids: Vec<&str> = o.invoked.iter().map(|i| i.model_id.as_str()).collect();
    assert_eq!(ids, ["cheap", "mid", "big"]);
    assert!((o.total_cost - (cost(0) + cost(1) + 0.5)).abs() < 1e-15);
    assert_eq!(o.invoked[1].confidence, 0.3);
    assert_eq!(o.invoked[2].cost, 0.5);
}

#[test]
fn budget_exhaustion_returns_the_best_answer_so_far() {
    let r = chain_router();
    // Room for cheap and mid, not for big.
    let limits = CascadeLimits::default().with_budget(cost(0) + cost(1) + cost(2) / 2.0);
    let mut s = r.start(&query(), &limits).unwrap();
    escalate(s.observe(0, 0.6).unwrap());
    let o = accept(s.observe(1, 0.0).unwrap());
    assert!(o.budget_exhausted);
    assert_eq!(o.stop, StopReason::BudgetExhausted);
    // cheap's answer (posterior 0.5 at c = 0.6 is above mid's after a "wrong" vote).
    assert_eq!(o.accepted_id, "cheap");
    assert_eq!(o.invoked.len(), 2);
    // Observed costs count: an expensive first call leaves no room for the second.
    let mut s = r
        .start(
            &query(),
            &CascadeLimits::default().with_budget(cost(0) * 2.0),
        )
        .unwrap();
    let o = accept(s.observe_with_cost(0, 0.0, cost(0) * 1.5).unwrap());
    assert!(o.budget_exhausted && o.accepted == 0);
}

#[test]
fn a_budget_below_the_first_call_is_an_error() {
    let r = chain_router();
    let e = r
        .start(
            &query(),
            &CascadeLimits::default().with_budget(cost(0) / 2.0),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BudgetTooSmall);
    assert!(
        e.to_string().contains("is below the expected cost")
            && e.to_string().contains("of the first model \"cheap\""),
        "{e}"
    );
    match e {
        Error::BudgetTooSmall {
            budget,
            cost: c,
            model,
            ..
        } => {
            assert_eq!(
                (budget, c, model.as_str()),
                (cost(0) / 2.0, cost(0), "cheap")
            );
        }
        other => panic!("expected BudgetTooSmall, got {other:?}"),
    }
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let e = r
            .start(&query(), &CascadeLimits::default().with_budget(bad))
            .unwrap_err();
        assert!(
            e.to_string().contains("is not a non-negative number"),
            "{e}"
        );
    }
    // Exactly the first call's cost is enough for it.
    assert!(r
        .start(&query(), &CascadeLimits::default().with_budget(cost(0)))
        .is_ok());
}

#[test]
fn max_steps_stops_the_cascade() {
    let r = chain_router();
    let mut s = r
        .start(&query(), &CascadeLimits::default().with_max_steps(1))
        .unwrap();
    let o = accept(s.observe(0, 0.0).unwrap());
    assert_eq!((o.stop, o.accepted), (StopReason::MaxSteps, 0));
    let e = r
        .start(&query(), &CascadeLimits::default().with_max_steps(0))
        .unwrap_err();
    assert_eq!(e.to_string(), "invalid input: max_steps must be at least 1");
}

#[test]
fn bad_observations_are_errors_that_change_nothing() {
    let r = chain_router();
    let mut s = r.start(&query(), &CascadeLimits::default()).unwrap();
    for bad in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
        let e = s.observe(0, bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("outside [0, 1]"), "{e}");
    }
    let e = s.observe(2, 0.5).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SessionOutOfOrder);
    assert_eq!(
        e.to_string(),
        "observed model #2 (\"big\"), but the cascade asked for #0 (\"cheap\")"
    );
    assert_eq!(
        s.observe(7, 0.5).unwrap_err().kind(),
        ErrorKind::UnknownModel
    );
    assert_eq!(
        s.observe_id("nope", 0.5).unwrap_err().kind(),
        ErrorKind::UnknownModel
    );
    assert!(s.observe_with_cost(0, 0.5, -1.0).is_err());
    assert!(s.invoked().is_empty() && s.total_cost() == 0.0);
    let e = Session::finish(r.start(&query(), &CascadeLimits::default()).unwrap());
    let e = e.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SessionRunning);
    assert!(e.to_string().contains("no answer has been observed"), "{e}");
    assert_eq!(s.result().unwrap_err().kind(), ErrorKind::SessionRunning);
    // The session still works, then refuses observations once over.
    escalate(s.observe(0, 0.0).unwrap());
    accept(s.observe(1, 1.0).unwrap());
    let e = s.observe(2, 1.0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SessionFinished);
    assert!(
        e.to_string().contains("the cascade session has ended"),
        "{e}"
    );
    assert!(s.result().is_ok() && s.stop().is_ok());
}

#[test]
fn finishing_early_keeps_the_best_answer() {
    let r = chain_router();
    let mut s = r.start(&query(), &CascadeLimits::default()).unwrap();
    escalate(s.observe(0, 0.7).unwrap());
    let o = s.stop().unwrap().clone();
    assert_eq!((o.accepted, o.stop), (0, StopReason::Stopped));
    assert!(s.next().is_none());
    assert_eq!(
        s.observe(1, 1.0).unwrap_err().kind(),
        ErrorKind::SessionFinished
    );
    assert_eq!(s.finish().unwrap(), o);
}

#[test]
fn objectives_restrict_and_validate() {
    let r = chain_router();
    let obj = Objective::new(0.0).with_allowed(["mid", "big"]);
    let s = r
        .start_with(&query(), &obj, &CascadeLimits::default())
        .unwrap();
    assert_eq!(s.next().unwrap().model_id, "mid");
    let e = r
        .start_with(&query(), &Objective::new(-1.0), &CascadeLimits::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let q3 = QueryFeatures::new(vec![1.0, 0.0, 0.0]).unwrap();
    assert_eq!(
        r.start(&q3, &CascadeLimits::default()).unwrap_err().kind(),
        ErrorKind::Shape
    );
    // Routing gives the first step.
    assert_eq!(
        r.route(&query(), &Objective::new(0.0)).unwrap().model_id,
        "cheap"
    );
    assert_eq!(r.route(&query(), &obj).unwrap().model_id, "mid");
}

#[test]
fn configs_are_validated() {
    let e = CascadeRouter::new(pool(), 2, &CascadeConfig::default()).unwrap_err();
    assert!(e.to_string().contains("needs training data"), "{e}");
    let e = CascadeRouter::new(pool(), 2, &CascadeConfig::chain([("nope", 0.5)])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownModel);
    let bad = [
        CascadeConfig::chain([("cheap", 0.5), ("cheap", 0.5)]),
        CascadeConfig::chain(Vec::<(String, f64)>::new()),
        CascadeConfig::chain([("cheap", 1.5)]),
        CascadeConfig {
            confidence_error: 0.6,
            ..CascadeConfig::chain([("cheap", 0.5)])
        },
        CascadeConfig {
            max_steps: 0,
            ..CascadeConfig::chain([("cheap", 0.5)])
        },
        CascadeConfig {
            cost_weight: f64::NAN,
            ..CascadeConfig::chain([("cheap", 0.5)])
        },
    ];
    for c in bad {
        let e = CascadeRouter::new(pool(), 2, &c).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{c:?}: {e}");
    }
}

/// Two kinds of queries: on "easy" ones (first coordinate high) the cheap model is mostly
/// right; on "hard" ones only the big model is.
fn synthetic(n: usize, seed: u64) -> Split {
    let mut rng = SplitMix64::new(seed);
    let (mut e, mut sc) = (Vec::new(), Vec::new());
    for i in 0..n {
        let easy = i % 2 == 0;
        let x = if easy { 1.0 } else { -1.0 };
        e.extend_from_slice(&[x + 0.3 * rng.normal() as f32, 0.3 * rng.normal() as f32]);
        let p: [f64; 3] = if easy {
            [0.85, 0.9, 0.95]
        } else {
            [0.1, 0.4, 0.9]
        };
        for pm in p {
            sc.push(f64::from(u8::from(rng.next_f64() < pm)));
        }
    }
    let costs: Vec<f64> = (0..n).flat_map(|_| [cost(0), cost(1), cost(2)]).collect();
    Split::from_arrays(pool(), e, 2, sc, costs).unwrap()
}

fn knn_config() -> CascadeConfig {
    CascadeConfig {
        estimator: Some(KnnConfig {
            k: 20,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn dynamic_cascade_learns_where_to_start() {
    let train = synthetic(600, 1);
    let r = CascadeRouter::fit(
        &train,
        &CascadeConfig {
            cost_weight: 300.0,
            ..knn_config()
        },
    )
    .unwrap();
    let easy = QueryFeatures::new(vec![1.0, 0.0]).unwrap();
    let hard = QueryFeatures::new(vec![-1.0, 0.0]).unwrap();
    let s = r.start(&easy, &CascadeLimits::default()).unwrap();
    assert_eq!(s.next().unwrap().model_id, "cheap");
    // On a hard query the cheap model is predicted hopeless: start higher up.
    let mut s = r.start(&hard, &CascadeLimits::default()).unwrap();
    let first = s.next().unwrap().clone();
    assert_ne!(first.model_id, "cheap");
    // When every answer looks wrong the cascade reaches the big model, whose chance given
    // those failures is high, and stops there.
    let mut next = first;
    let outcome = loop {
        match s.observe(next.model, 0.0).unwrap() {
            Step::Escalate(n) => {
                if n.model_id == "big" {
                    assert!(n.expected_quality > 0.7, "{n:?}");
                }
                next = n;
            }
            Step::Accept(o) => break o,
        }
    };
    assert!(
        outcome.invoked.iter().any(|i| i.model_id == "big"),
        "{outcome:?}"
    );
    // A dynamic cascade with a budget below the cheapest model cannot start.
    let e = r
        .start(&easy, &CascadeLimits::default().with_budget(cost(0) / 3.0))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("of the cheapest allowed model \"cheap\""),
        "{e}"
    );
    // A budget that only fits the cheap model makes it the first call on hard queries too.
    let s = r
        .start(&hard, &CascadeLimits::default().with_budget(cost(0) * 1.5))
        .unwrap();
    assert_eq!(s.next().unwrap().model_id, "cheap");
}

#[test]
fn sessions_are_independent_and_threads_share_the_router() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<CascadeRouter>();
    send::<Session>();
    let train = synthetic(400, 2);
    let r = Arc::new(CascadeRouter::fit(&train, &knn_config()).unwrap());
    fn play(r: &CascadeRouter, i: usize) -> CascadeOutcome {
        let judge = SimulatedJudge::new(0.1, 5).unwrap();
        let x = (i as f32 * 0.7).sin();
        let q = QueryFeatures::new(vec![x, 0.5]).unwrap();
        let mut s = r.start(&q, &CascadeLimits::default()).unwrap();
        loop {
            let next = s.next().unwrap().clone();
            let score = 0.5 + f64::from(x) * (next.model as f64 - 1.0);
            let c = judge.confidence(&i.to_string(), &next.model_id, score);
            if let Step::Accept(o) = s.observe(next.model, c).unwrap() {
                return o;
            }
        }
    }
    let serial: Vec<CascadeOutcome> = (0..40).map(|i| play(&r, i)).collect();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let r = r.clone();
            std::thread::spawn(move || {
                (0..40)
                    .filter(|i| i % 4 == t)
                    .map(|i| (i, play(&r, i)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in threads {
        for (i, o) in h.join().unwrap() {
            assert_eq!(o, serial[i]);
        }
    }
    // Interleaved sessions do not see each other.
    let q = QueryFeatures::new(vec![0.2, 0.9]).unwrap();
    let mut a = r.start(&q, &CascadeLimits::default()).unwrap();
    let b = r.start(&q, &CascadeLimits::default()).unwrap();
    let m = a.next().unwrap().model;
    let _ = a.observe(m, 0.0).unwrap();
    assert!(b.invoked().is_empty() && b.next().unwrap().model == m);
}

fn round_trip(r: &CascadeRouter) -> crate::registry::AnyRouter {
    let bytes = r.to_saved().unwrap().to_bytes().unwrap();
    let loaded = crate::registry::AnyRouter::from_bytes(&bytes).unwrap();
    assert_eq!(loaded.to_saved().unwrap().to_bytes().unwrap(), bytes);
    assert_eq!(loaded.kind(), RouterKind::Cascade);
    // Memory-mapped too: the estimator's embeddings stay in the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cascade.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let mapped = crate::registry::AnyRouter::open_mmap(&path).unwrap();
    assert_eq!(mapped.to_saved().unwrap().to_bytes().unwrap(), bytes);
    loaded
}

#[test]
fn save_and_load_give_identical_decisions() {
    let train = synthetic(300, 3);
    let judge = SimulatedJudge::new(0.1, 9).unwrap();
    let test = synthetic(100, 4);
    let conf = judge.confidences(&test);
    for config in [
        knn_config(),
        CascadeConfig {
            estimator: None,
            lookahead: false,
            ..Default::default()
        },
        CascadeConfig::chain([("cheap", 0.7), ("big", 0.0)]),
    ] {
        let r = CascadeRouter::fit(&train, &config).unwrap();
        let loaded = round_trip(&r);
        let l = loaded.as_cascade().unwrap();
        assert_eq!(l.config(), r.config());
        for w in [0.0, 100.0, 3000.0] {
            assert_eq!(
                r.simulate(&test, &conf, w, crate::metrics::CostBasis::Query)
                    .unwrap(),
                l.simulate(&test, &conf, w, crate::metrics::CostBasis::Query)
                    .unwrap()
            );
            let q = QueryFeatures::new(vec![0.3, -0.2]).unwrap();
            assert_eq!(
                r.route(&q, &Objective::new(w)).unwrap(),
                loaded.route(&q, &Objective::new(w)).unwrap()
            );
        }
        let q = QueryFeatures::new(vec![-0.4, 0.1]).unwrap();
        let (mut a, mut b) = (
            r.start(&q, &CascadeLimits::default()).unwrap(),
            l.start(&q, &CascadeLimits::default()).unwrap(),
        );
        loop {
            let m = a.next().unwrap().model;
            assert_eq!(b.next(), a.next());
            let (sa, sb) = (a.observe(m, 0.2).unwrap(), b.observe(m, 0.2).unwrap());
            assert_eq!(sa, sb);
            if let Step::Accept(_) = sa {
                break;
            }
        }
    }
    // A router without training data round-trips too.
    let r = chain_router();
    let loaded = round_trip(&r);
    assert_eq!(
        loaded
            .route(&query(), &Objective::new(0.0))
            .unwrap()
            .model_id,
        "cheap"
    );
    // Corrupt tables are format errors.
    let mut saved = CascadeRouter::fit(&train, &knn_config())
        .unwrap()
        .to_saved()
        .unwrap();
    saved.tensors.insert(
        "cascade.table.masks".into(),
        crate::saved::Tensor::u32(&[2], vec![9, 8]),
    );
    saved.tensors.insert(
        "cascade.table.counts".into(),
        crate::saved::Tensor::f64(&[2], vec![1.0, 1.0]),
    );
    let e = crate::registry::AnyRouter::from_saved(saved).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Format);
    assert!(e.to_string().contains("out of range or not sorted"), "{e}");
}

#[test]
fn training_queries_are_left_out_of_their_own_estimates() {
    // With one neighbour, a training query's own estimate would be its own label.
    let train = synthetic(200, 5);
    let config = CascadeConfig {
        estimator: Some(KnnConfig {
            k: 1,
            ..Default::default()
        }),
        prior_strength: 0.0,
        ..Default::default()
    };
    let r = CascadeRouter::fit(&train, &config).unwrap();
    let conf = vec![0.5; train.len() * 3];
    let data = r.data(&train, &conf).unwrap();
    let mut same = 0;
    for (i, ev) in data.evidence.iter().enumerate() {
        let own: Vec<f64> = (0..3).map(|j| train.score(i, j)).collect();
        same += usize::from(ev.p0 == own);
        assert_eq!(ev.neighbours, 1);
    }
    // Easy and hard queries' labels are noisy, so a different neighbour often disagrees.
    assert!(same < train.len() * 9 / 10, "{same}");
    // A split the router was not fitted on keeps every neighbour.
    let other = synthetic(200, 6);
    let d2 = r.data(&other, &conf).unwrap();
    assert_eq!(d2.evidence.len(), 200);
}
