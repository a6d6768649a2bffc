//! Unit tests of the IRT router (they train, so they need the `train` feature).

use super::*;
use crate::data::Split;
use crate::pool::{ModelCard, ModelPool};
use crate::rng::SplitMix64;
use crate::router::Router;
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

fn config() -> IrtConfig {
    IrtConfig {
        dim: 3,
        learning_rate: 0.05,
        ..Default::default()
    }
}

fn accuracy(router: &IrtRouter, test: &Split) -> f64 {
    let est = router.estimate_batch(&test.features().unwrap()).unwrap();
    let right = (0..test.len())
        .filter(|&r| {
            let q = est.quality_row(r);
            let best = (0..3).max_by(|&a, &b| q[a].total_cmp(&q[b])).unwrap();
            test.score(r, best) == 1.0
        })
        .count();
    right as f64 / test.len() as f64
}

#[test]
fn learns_which_model_answers_which_queries() {
    let router = IrtRouter::fit(&data(300, 1), &config()).unwrap();
    let acc = accuracy(&router, &data(200, 2));
    assert!(acc > 0.9, "accuracy {acc}");
    assert!(router.train_report().steps >= router.train_report().best_step);
    assert_eq!(router.ability(0).len(), 3);
    let d = router
        .route(
            &QueryFeatures::new(vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0]).unwrap(),
            &Objective::new(0.0),
        )
        .unwrap();
    assert_eq!(d.model_id, "c");
}

#[test]
fn trains_on_observed_cells_only() {
    let train = data(300, 3);
    let (n, m) = (train.len(), 3);
    // Hide half of the cells: the mask must change the fit, and a model still learns from
    // the cells it has.
    let mask: Vec<bool> = (0..n * m).map(|i| (i / m + i % m) % 2 == 0).collect();
    let partial = IrtRouter::fit_observed(&train, Some(&mask), &config()).unwrap();
    let full = IrtRouter::fit(&train, &config()).unwrap();
    assert_ne!(partial.params, full.params);
    let acc = accuracy(&partial, &data(200, 4));
    assert!(acc > 0.8, "accuracy with half the cells {acc}");
    // An all-true mask is the full fit.
    let all = IrtRouter::fit_observed(&train, Some(&vec![true; n * m]), &config()).unwrap();
    assert_eq!(all.params, full.params);
    assert!(matches!(
        IrtRouter::fit_observed(&train, Some(&[true; 3]), &config()),
        Err(crate::Error::Shape(_))
    ));
    assert!(matches!(
        IrtRouter::fit_observed(&train, Some(&vec![false; n * m]), &config()),
        Err(crate::Error::InvalidInput(_))
    ));
    // A split with partial labels trains through `fit` (its own mask) and through the registry;
    // a model without a single score is refused, named.
    let split = train.clone().with_observed(mask.clone()).unwrap();
    assert_eq!(
        IrtRouter::fit(&split, &config()).unwrap().params,
        partial.params
    );
    let fitted = crate::AnyRouter::fit(
        crate::RouterKind::Irt,
        &split,
        &crate::registry::FitOptions::default(),
    )
    .unwrap();
    assert!(fitted.search.is_none());
    let no_c: Vec<bool> = (0..n * m).map(|i| i % m != 2).collect();
    let e = IrtRouter::fit(&train.with_observed(no_c).unwrap(), &config()).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::MissingLabels);
    assert!(e.to_string().contains("model \"c\" has none"), "{e}");
}

#[test]
fn saved_form_round_trips_and_checks_shapes() {
    let router = IrtRouter::fit(&data(200, 5), &config()).unwrap();
    let saved = router.to_saved().unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&saved.config).unwrap();
    value.as_object_mut().unwrap().remove("type");
    let config: IrtConfig = serde_json::from_value(value).unwrap();
    let again = IrtRouter::from_saved(config.clone(), saved.clone()).unwrap();
    let batch = data(50, 6);
    let f = batch.features().unwrap();
    assert_eq!(
        router.estimate_batch(&f).unwrap().quality,
        again.estimate_batch(&f).unwrap().quality
    );
    let mut broken = saved;
    let name = broken.tensors.keys().next().unwrap().clone();
    broken.tensors.remove(&name);
    assert!(IrtRouter::from_saved(config, broken).is_err());
}

#[test]
fn search_reports_every_setting_and_out_of_fold_estimates() {
    let train = data(200, 7);
    let search = IrtSearch {
        folds: 3,
        dim: vec![2, 3],
        l2: vec![1e-3],
        ..Default::default()
    };
    let (_, report, oof) = IrtRouter::tune_with_estimates(&train, &config(), &search).unwrap();
    assert_eq!(report.trials.len(), 2);
    assert_eq!((oof.rows(), oof.models()), (200, 3));
    assert!(oof.quality.iter().all(|q| (0.0..=1.0).contains(q)));
    assert!(IrtConfig {
        dim: 0,
        ..Default::default()
    }
    .validate()
    .is_err());
}
