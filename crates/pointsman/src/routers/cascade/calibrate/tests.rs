//! Simulation, sweeps, calibration to a target, the settings search and the chain search.

use super::super::SimulatedJudge;
use super::simulate::mu_grid;
use super::*;
use crate::data::Split;
use crate::metrics::{evaluate_sweep, CostBasis, Reference, SweepPoint};
use crate::pool::{ModelCard, ModelPool};
use crate::rng::SplitMix64;
use crate::routers::cascade::{CascadeConfig, CascadeRouter};
use crate::routers::knn::KnnConfig;

fn pool() -> ModelPool {
    ModelPool::new(vec![
        ModelCard::new("cheap", 0.1, 0.1),
        ModelCard::new("mid", 1.0, 1.0),
        ModelCard::new("big", 10.0, 10.0),
    ])
    .unwrap()
}

/// As in the module tests of the router: easy queries suit the cheap model, hard ones only
/// the big one.
fn synthetic(n: usize, seed: u64) -> Split {
    let mut rng = SplitMix64::new(seed);
    let p = pool();
    let (mut e, mut sc) = (Vec::new(), Vec::new());
    for i in 0..n {
        let easy = i % 2 == 0;
        let x = if easy { 1.0 } else { -1.0 };
        e.extend_from_slice(&[x + 0.3 * rng.normal() as f32, 0.3 * rng.normal() as f32]);
        let pm: [f64; 3] = if easy {
            [0.85, 0.9, 0.95]
        } else {
            [0.1, 0.4, 0.9]
        };
        for q in pm {
            sc.push(f64::from(u8::from(rng.next_f64() < q)));
        }
    }
    let costs: Vec<f64> = (0..n)
        .flat_map(|_| [0, 1, 2].map(|m| p.estimate_cost(m, None)))
        .collect();
    Split::from_arrays(p, e, 2, sc, costs).unwrap()
}

fn config() -> CascadeConfig {
    CascadeConfig {
        estimator: Some(KnnConfig {
            k: 20,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// (mean quality, mean cost) of one sweep point, scored by the evaluation code.
fn score(p: SweepPoint, split: &Split) -> (f64, f64) {
    let reference = Reference::new(split, split, None).unwrap();
    let rep = evaluate_sweep("x", false, &[p], split, &reference).unwrap();
    (rep.curve[0].mean_quality, rep.curve[0].mean_cost)
}

#[test]
fn grid_and_error_rate_by_hand() {
    let g = mu_grid(&[1.0, 4.0], 3);
    assert_eq!(g.len(), 3);
    assert_eq!(g[0], 0.0);
    assert!((g[1] - 1e-3 / 4.0).abs() < 1e-15 && (g[2] - 4.0).abs() < 1e-12);
    assert_eq!(mu_grid(&[0.0, 0.0], 10), vec![0.0]);
    let split = synthetic(10, 1);
    let right: Vec<f64> = split
        .scores()
        .iter()
        .map(|&s| f64::from(u8::from(s >= 0.5)))
        .collect();
    assert_eq!(confidence_error(&split, &right, 0.5).unwrap(), 0.0);
    let wrong: Vec<f64> = right.iter().map(|c| 1.0 - c).collect();
    assert_eq!(confidence_error(&split, &wrong, 0.5).unwrap(), 0.5);
    let half = vec![0.5; 30];
    assert_eq!(confidence_error(&split, &half, 0.5).unwrap(), 0.5);
    let e = confidence_error(&split, &half[..29], 0.5).unwrap_err();
    assert!(
        e.to_string()
            .contains("29 confidences for 10 queries x 3 models"),
        "{e}"
    );
    let mut bad = half.clone();
    bad[4] = f64::NAN;
    let e = confidence_error(&split, &bad, 0.5).unwrap_err();
    assert!(
        e.to_string()
            .contains("of query \"1\" for model \"mid\" is outside [0, 1]"),
        "{e}"
    );
}

#[test]
fn calibration_meets_its_target_on_the_training_split() {
    let train = synthetic(600, 11);
    let conf = SimulatedJudge::new(0.1, 2).unwrap().confidences(&train);
    let router = CascadeRouter::fit(&train, &config()).unwrap();
    let big = train.mean_costs()[2];
    for target in [0.2 * big, 0.5 * big] {
        let (r, cal) = router
            .calibrate(&train, &conf, CalibrationTarget::MeanCost(target))
            .unwrap();
        assert!(cal.mean_cost <= target, "{cal:?}");
        assert_eq!(r.config().cost_weight, cal.cost_weight);
        assert_eq!(r.config().accept_threshold, cal.thresholds[0]);
        // Re-simulated at the calibrated setting and scored by the evaluation code.
        let p = r
            .simulate(&train, &conf, cal.cost_weight, CostBasis::Query)
            .unwrap();
        let (q, c) = score(p, &train);
        assert!((q - cal.mean_quality).abs() < 1e-12 && (c - cal.mean_cost).abs() < 1e-15);
        // Better than the cheapest single model, and than anything cheaper on the grid.
        assert!(q > train.mean_scores()[0], "{q}");
    }
    let (_, cal) = router
        .calibrate(&train, &conf, CalibrationTarget::Quality(0.8))
        .unwrap();
    assert!(cal.mean_quality >= 0.8, "{cal:?}");
    assert!(cal.mean_cost < big, "{cal:?}");
    let e = router
        .calibrate(&train, &conf, CalibrationTarget::MeanCost(1e-9))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("is below the least the cascade spends"),
        "{e}"
    );
    let e = router
        .calibrate(&train, &conf, CalibrationTarget::Quality(1.0))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("is above the best the cascade reaches"),
        "{e}"
    );
    assert!(router
        .calibrate(&train, &conf, CalibrationTarget::MeanCost(-1.0))
        .is_err());
    // A chain's stage thresholds are calibrated one by one.
    let chain = CascadeRouter::fit(
        &train,
        &CascadeConfig::chain([("cheap", 0.5), ("mid", 0.5), ("big", 0.0)]),
    )
    .unwrap();
    let (r, cal) = chain
        .calibrate(&train, &conf, CalibrationTarget::MeanCost(0.3 * big))
        .unwrap();
    assert_eq!(cal.thresholds.len(), 3);
    assert_eq!(
        r.stages().iter().map(|s| s.1).collect::<Vec<_>>(),
        cal.thresholds
    );
    assert!(cal.mean_cost <= 0.3 * big);
}

#[test]
fn sweep_spans_cheap_to_thorough() {
    let train = synthetic(400, 12);
    let test = synthetic(200, 13);
    let conf = SimulatedJudge::new(0.1, 3).unwrap().confidences(&test);
    let r = CascadeRouter::fit(&train, &config()).unwrap();
    let sweep = r.sweep(&test, &conf, 21).unwrap();
    assert!(sweep.len() >= 3, "{}", sweep.len());
    let first = score(sweep[0].clone(), &test);
    let last = score(sweep.last().unwrap().clone(), &test);
    // μ = 0 is the most thorough, the largest μ the cheapest.
    assert!(first.0 > last.0 && first.1 > last.1, "{first:?} {last:?}");
    for p in &sweep {
        let inv = p.invoked.as_ref().unwrap();
        for (r, calls) in inv.iter().enumerate() {
            assert!(calls.contains(&p.choices[r]) && !calls.is_empty());
            assert!(calls.len() <= 3);
        }
    }
    // The split must hold the cascade's models.
    let other = Split::from_arrays(
        ModelPool::new(vec![ModelCard::new("x", 1.0, 1.0)]).unwrap(),
        vec![1.0, 0.0],
        2,
        vec![1.0],
        vec![1e-4],
    )
    .unwrap();
    let e = r.sweep(&other, &[1.0], 5).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::UnknownModel);
}

#[test]
fn tune_and_chain_search() {
    let train = synthetic(400, 14);
    let conf = SimulatedJudge::new(0.2, 4).unwrap().confidences(&train);
    // The search reports each setting scored.
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let last = seen.clone();
    let search = CascadeSearch {
        accept_thresholds: vec![0.5, 0.8],
        prior_strengths: vec![2.0],
        lookahead: vec![false, true],
        points: 15,
        measure_confidence_error: true,
        progress: crate::tuning::Progress::new(move |done, total| {
            assert!(done <= total && total == 4, "{done}/{total}");
            last.store(done, std::sync::atomic::Ordering::Relaxed);
        }),
    };
    let (r, rep) = CascadeRouter::tune(&train, &conf, &config(), &search).unwrap();
    assert_eq!(rep.trials.len(), 4);
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert!(rep.trials.windows(2).all(|w| w[0].score >= w[1].score));
    assert_eq!(rep.describe(), "loo aiq");
    let measured = rep.best().confidence_error;
    assert!((measured - 0.2).abs() < 0.05, "{measured}");
    assert!(rep
        .trials
        .iter()
        .all(|t| t.config.confidence_error == measured));
    assert_eq!(r.config(), rep.best());
    let empty = CascadeSearch {
        lookahead: vec![],
        ..search
    };
    assert!(CascadeRouter::tune(&train, &conf, &config(), &empty).is_err());

    let chains = ChainSearch {
        max_len: 3,
        thresholds: vec![0.5, 0.9],
        points: 21,
    };
    let base = config();
    let rep = CascadeRouter::search_chains(&train, &conf, &base, &chains).unwrap();
    // 3 + 6 + 6 ordered subsets, two thresholds each.
    assert_eq!(rep.evaluated, 30);
    assert_eq!(rep.all.len(), 30);
    assert!(!rep.frontier.is_empty());
    // The frontier runs from the best quality (μ = 0) to the cheapest.
    let best_q = rep.all.iter().map(|c| c.mean_quality).fold(0.0, f64::max);
    assert_eq!(rep.frontier[0].mean_quality, best_q);
    let cheapest = rep.frontier.last().unwrap();
    assert_eq!(cheapest.models, ["cheap"]);
    let big = train.mean_costs()[2];
    let (r, pick) = CascadeRouter::fit_chain(
        &train,
        &conf,
        &base,
        &chains,
        CalibrationTarget::MeanCost(0.3 * big),
    )
    .unwrap();
    assert!(pick.mean_cost <= 0.3 * big);
    assert_eq!(r.stages().len(), pick.models.len());
    // Simulated again (leave-one-out on the fitted split) it gives the search's figures.
    let p = r.simulate(&train, &conf, 0.0, CostBasis::Query).unwrap();
    let (q, c) = score(p, &train);
    assert!((q - pick.mean_quality).abs() < 1e-12 && (c - pick.mean_cost).abs() < 1e-15);
    let e = CascadeRouter::fit_chain(
        &train,
        &conf,
        &base,
        &chains,
        CalibrationTarget::Quality(1.0),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no chain reaches quality 1"), "{e}");
}
