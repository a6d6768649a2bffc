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
