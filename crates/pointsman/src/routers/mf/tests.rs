//! Unit tests of the MF router (they train, so they need the `train` feature).

use super::*;
use crate::data::Split;
use crate::pool::ModelCard;
use crate::pool::ModelPool;
use crate::rng::SplitMix64;
use crate::router::Router;
use crate::saved::Tensor;
use crate::{Objective, QueryFeatures};

/// Three models; model j is right when the query points along axis j.
fn data(n: usize, seed: u64) -> Split {
    let pool = ModelPool::new(vec![
        ModelCard::new("a", 0.1, 0.1),
        ModelCard::new("b", 1.0, 1.0),
        ModelCard::new("c", 5.0, 5.0),
    ])
    .unwrap();
    let mut rng = SplitMix64::new(seed);
    let (mut e, mut s) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let axis = rng.below(3);
        let mut v = [0.0f32; 6];
        for x in v.iter_mut() {
            *x = rng.normal() as f32 * 0.2;
        }
        v[axis] += 1.0;
        e.extend_from_slice(&v);
        for j in 0..3 {
            s.push(f64::from(u8::from(j == axis)));
        }
    }
    let costs: Vec<f64> = (0..n).flat_map(|_| [1e-5, 1e-4, 5e-4]).collect();
    Split::from_arrays(pool, e, 6, s, costs).unwrap()
}

fn config() -> MfConfig {
    MfConfig {
        dim: 8,
        max_epochs: 40,
        learning_rate: 1e-2,
        ..Default::default()
    }
}

#[test]
fn learns_and_is_deterministic() {
    let train = data(600, 1);
    let r1 = MfRouter::fit(&train, &config()).unwrap();
    let r2 = MfRouter::fit(&train, &config()).unwrap();
    assert_eq!(r1.params, r2.params, "same seed, same weights");
    let r3 = MfRouter::fit(
        &train,
        &MfConfig {
            seed: 9,
            ..config()
        },
    )
    .unwrap();
    assert_ne!(r1.params, r3.params);
    let test = data(300, 2);
    let choices = r1
        .route_batch(&test.features().unwrap(), &Objective::new(0.0))
        .unwrap();
    let right = choices
        .iter()
        .enumerate()
        .filter(|(r, &m)| test.score(*r, m as usize) == 1.0)
        .count();
    assert!(right > 270, "{right}/300");
    assert!(r1.train_report().best_epoch >= 1);
    // Observed costs (arrays count as observed) are fitted per model.
    let d = r1
        .route(
            &QueryFeatures::new(vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0]).unwrap(),
            &Objective::new(0.0),
        )
        .unwrap();
    assert_eq!(d.model_id, "a");
    assert!((d.cost - 1e-5).abs() < 1e-9, "{}", d.cost);
}

#[test]
fn trains_from_preferences_alone() {
    let pointwise = data(600, 3);
    let (mut e, mut a, mut b, mut w) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut rng = SplitMix64::new(4);
    for r in 0..pointwise.len() {
        let (x, y) = (rng.below(3), rng.below(3));
        if x == y {
            continue;
        }
        e.extend_from_slice(&pointwise.embeddings()[r * 6..(r + 1) * 6]);
        a.push(x as u32);
        b.push(y as u32);
        let (sx, sy) = (pointwise.score(r, x), pointwise.score(r, y));
        w.push(if sx > sy {
            Winner::ModelA
        } else if sy > sx {
            Winner::ModelB
        } else {
            Winner::Tie
        });
    }
    let prefs = Preferences {
        embeddings: e,
        dim: 6,
        model_a: a,
        model_b: b,
        winner: w,
    };
    let empty = pointwise.subset(&[], "train");
    let r = MfRouter::fit_with_preferences(&empty, Some(&prefs), &config()).unwrap();
    let test = data(300, 5);
    let choices = r
        .route_batch(&test.features().unwrap(), &Objective::new(0.0))
        .unwrap();
    let right = choices
        .iter()
        .enumerate()
        .filter(|(r, &m)| test.score(*r, m as usize) == 1.0)
        .count();
    assert!(right > 240, "{right}/300");
    let mut bad = prefs.clone();
    bad.model_b[0] = 7;
    assert!(MfRouter::fit_with_preferences(&empty, Some(&bad), &config()).is_err());
    let mut bad = prefs.clone();
    bad.winner.pop();
    assert!(MfRouter::fit_with_preferences(&empty, Some(&bad), &config()).is_err());
}

#[test]
fn save_load_round_trip() {
    let train = data(300, 6);
    let r = MfRouter::fit(&train, &config()).unwrap();
    let bytes = r.to_saved().unwrap().to_bytes().unwrap();
    let loaded = crate::registry::AnyRouter::from_bytes(&bytes).unwrap();
    let b = train.features().unwrap();
    assert_eq!(
        r.estimate_batch(&b).unwrap(),
        loaded.estimate_batch(&b).unwrap()
    );
    assert_eq!(loaded.to_saved().unwrap().to_bytes().unwrap(), bytes);
    let mut saved = r.to_saved().unwrap();
    saved
        .tensors
        .insert("mf.bias".into(), Tensor::f32(&[3], vec![f32::NAN; 3]));
    let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("not finite"), "{e}");
    assert!(MfConfig { dim: 0, ..config() }.validate().is_err());
    assert!(MfConfig {
        validation_fraction: 1.0,
        ..config()
    }
    .validate()
    .is_err());
}

#[test]
fn partial_labels_and_split_preferences_train() {
    let full = data(600, 21);
    let test = data(300, 22);
    let right = |r: &MfRouter| {
        let choices = r
            .route_batch(&test.features().unwrap(), &Objective::new(0.0))
            .unwrap();
        choices
            .iter()
            .enumerate()
            .filter(|(r, &m)| test.score(*r, m as usize) == 1.0)
            .count()
    };
    // A third of the cells: the loss covers the observed ones only.
    let partial = crate::data::keep_cells(&full, 0.34, 1).unwrap();
    let r = MfRouter::fit(&partial, &config()).unwrap();
    assert!(right(&r) > 240, "{}/300", right(&r));
    // Unobserved cells hold NaN: had they entered the loss, the weights would be NaN.
    assert!(r.params.model_vectors.iter().all(|x| x.is_finite()));
    // Preferences carried by the split itself, no absolute score.
    let pairs = crate::data::to_preferences(&full, 2, 3).unwrap();
    let r = MfRouter::fit(&pairs, &config()).unwrap();
    assert!(right(&r) > 240, "{}/300", right(&r));
    // One model per query from a uniform log, with and without inverse propensity weights.
    let log = crate::data::uniform_log(&full, 4).unwrap();
    let plain = MfRouter::fit(&log, &config()).unwrap();
    let ipw = MfRouter::fit(
        &log,
        &MfConfig {
            inverse_propensity: true,
            ..config()
        },
    )
    .unwrap();
    assert!(right(&plain) > 200, "{}/300", right(&plain));
    assert!(right(&ipw) > 200, "{}/300", right(&ipw));
    // Uniform propensities weigh every cell alike (the loss is divided by the weights' sum).
    assert_eq!(plain.params, ipw.params);
    // A policy that chose model a half the time: its cells weigh less than the others.
    let prop: Vec<f64> = (0..600 * 3)
        .map(|c| match (log.observed(c / 3, c % 3), c % 3) {
            (false, _) => f64::NAN,
            (true, 0) => 0.5,
            (true, _) => 0.25,
        })
        .collect();
    let skewed = log.clone().with_propensities(prop).unwrap();
    let ipw2 = MfRouter::fit(
        &skewed,
        &MfConfig {
            inverse_propensity: true,
            ..config()
        },
    )
    .unwrap();
    assert_ne!(plain.params, ipw2.params);
    assert!(right(&ipw2) > 200, "{}/300", right(&ipw2));
    // A model with no score and in no preference is refused, named.
    let mask: Vec<bool> = (0..600 * 3).map(|c| c % 3 != 2).collect();
    let err = MfRouter::fit(&full.clone().with_observed(mask).unwrap(), &config()).unwrap_err();
    let id = full.pool().id(2);
    assert!(
        err.to_string().contains(&format!("model {id:?} has none")),
        "{err}"
    );
    // No score and no preference: a typed error.
    let none = full.clone().with_observed(vec![false; 600 * 3]).unwrap();
    let err = MfRouter::fit(&none, &config()).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::MissingLabels, "{err}");
}

#[test]
fn onboarding_and_repricing_leave_the_others_bit_for_bit() {
    let full = data(900, 31);
    // Fit on models a and b, onboard c.
    let two = ModelPool::new(full.pool().cards()[..2].to_vec()).unwrap();
    let s2: Vec<f64> = (0..900)
        .flat_map(|i| [full.score(i, 0), full.score(i, 1)])
        .collect();
    let c2: Vec<f64> = (0..900).flat_map(|_| [1e-5, 1e-4]).collect();
    let train2 = Split::from_arrays(two, full.embeddings().to_vec(), 6, s2, c2).unwrap();
    let r = MfRouter::fit(&train2, &config()).unwrap();
    let card = full.pool().card(2).clone();
    let labelled = full.subset(&(0..200).collect::<Vec<_>>(), "labelled");
    let started = std::time::Instant::now();
    let r2 = r.add_model(card.clone(), Some(&labelled)).unwrap();
    assert!(started.elapsed().as_secs_f64() < 1.0);
    let r0 = r.add_model(card.clone(), None).unwrap();
    assert!(r2.add_model(card.clone(), None).is_err());
    // Labelled queries without one score of the model added: an error, not its card alone.
    let unlabelled = labelled
        .clone()
        .with_observed((0..200 * 3).map(|c| c % 3 != 2).collect())
        .unwrap();
    let e = r.add_model(card, Some(&unlabelled)).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::MissingLabels, "{e}");
    let test = data(300, 32);
    let batch = test.features().unwrap();
    let (e, e0, e2) = (
        r.estimate_batch(&batch).unwrap(),
        r0.estimate_batch(&batch).unwrap(),
        r2.estimate_batch(&batch).unwrap(),
    );
    for i in 0..300 {
        for j in 0..2 {
            assert_eq!(
                e.quality_row(i)[j].to_bits(),
                e2.quality_row(i)[j].to_bits()
            );
            assert_eq!(e.cost_row(i)[j].to_bits(), e2.cost_row(i)[j].to_bits());
        }
    }
    // With labels the new model's estimates follow them, better than its card prior alone.
    let err = |e: &crate::router::Estimates| -> f64 {
        (0..300)
            .map(|i| (e.quality_row(i)[2] - test.score(i, 2)).powi(2))
            .sum::<f64>()
    };
    assert!(err(&e2) < 0.5 * err(&e0), "{} vs {}", err(&e2), err(&e0));
    // Saved and loaded, the onboarded router estimates the same.
    let back = MfRouter::from_saved(r2.config().clone(), r2.to_saved().unwrap()).unwrap();
    assert_eq!(back.estimate_batch(&batch).unwrap().quality, e2.quality);
    // Repricing changes costs and choices, not quality estimates.
    let mut prices: Vec<ModelCard> = r2.models().cards().to_vec();
    prices[2] = ModelCard::new("c", 0.01, 0.01);
    let cheap = r2.reprice(&prices).unwrap();
    let ec = cheap.estimate_batch(&batch).unwrap();
    assert_eq!(ec.quality, e2.quality);
    assert!(ec.cost_row(0)[2] < e2.cost_row(0)[2]);
}
