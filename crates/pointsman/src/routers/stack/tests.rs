//! Unit tests of the stack: construction checks, weights that follow the better member, its
//! own out-of-fold estimates, and the saved form through the registry's loader.

use std::sync::Arc;

use super::*;
use crate::data::Split;
use crate::pool::{ModelCard, ModelPool};
use crate::registry::AnyRouter;
use crate::rng::SplitMix64;
use crate::router::Router;
use crate::routers::knn::{KnnConfig, KnnRouter};
use crate::tuning::Folds;

/// Two models; model a is right when the query points along the first axis.
fn data(n: usize, seed: u64) -> Split {
    let pool = ModelPool::new(vec![
        ModelCard::new("a", 0.1, 0.1),
        ModelCard::new("b", 1.0, 1.0),
    ])
    .unwrap();
    let mut rng = SplitMix64::new(seed);
    let (mut e, mut s) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let axis = rng.below(2);
        let mut v = [0.0f32; 4];
        for x in v.iter_mut() {
            *x = rng.normal() as f32 * 0.3;
        }
        v[axis] += 1.0;
        e.extend_from_slice(&v);
        s.extend_from_slice(&[f64::from(u8::from(axis == 0)), 0.5]);
    }
    let costs: Vec<f64> = (0..n).flat_map(|_| [1e-5, 1e-4]).collect();
    Split::from_arrays(pool, e, 4, s, costs).unwrap()
}

fn knn(train: &Split, k: usize) -> Arc<dyn Router> {
    let config = KnnConfig {
        k,
        ..Default::default()
    };
    Arc::new(KnnRouter::fit(train, &config).unwrap())
}

#[test]
fn weights_follow_the_informative_member_and_round_trip() {
    let train = data(300, 1);
    // A sharp member (10 neighbours) and a blurred one (every query): in-sample estimates
    // stand in for out-of-fold ones here.
    let members = vec![knn(&train, 10), knn(&train, 300)];
    let f = train.features().unwrap();
    let est: Vec<_> = members
        .iter()
        .map(|r| r.estimate_batch(&f).unwrap())
        .collect();
    let oof: Vec<&crate::router::Estimates> = est.iter().collect();
    let config = StackConfig {
        shrinkage: 0.1,
        ..Default::default()
    };
    let stack = StackRouter::fit(members.clone(), &oof, &train, None, &config).unwrap();
    let w = stack.weights(0);
    assert_eq!(w.len(), 3);
    assert!(w[0] > w[1], "model a's weights {w:?}");
    assert_eq!(stack.cost_member(), 0);

    // The stack's own out-of-fold estimates cover every row.
    let folds = Folds::new(train.len(), 3, 0).unwrap();
    let cv = StackRouter::cross_validate(&oof, &train, &folds, None, 1.0, 0).unwrap();
    assert!(cv.quality.iter().all(|q| (0.0..=1.0).contains(q)));
    assert!(StackRouter::cross_validate(&oof, &train, &folds, None, -1.0, 0).is_err());
    assert!(StackRouter::cross_validate(&oof, &train, &folds, None, 1.0, 2).is_err());

    // Saved and loaded through the registry: the same decisions, members included.
    let any: AnyRouter = stack.into();
    let again = AnyRouter::from_bytes(&any.to_bytes().unwrap()).unwrap();
    let test = data(100, 2);
    let test = test.features().unwrap();
    assert_eq!(
        any.shared().estimate_batch(&test).unwrap().quality,
        again.shared().estimate_batch(&test).unwrap().quality
    );
    assert_eq!(again.kind(), crate::kind::RouterKind::Stack);
}

#[test]
fn construction_checks_weights_and_members() {
    let train = data(100, 3);
    let members = vec![knn(&train, 10)];
    assert!(StackRouter::new(Vec::new(), Vec::new(), StackConfig::default()).is_err());
    assert!(StackRouter::new(members.clone(), vec![1.0; 3], StackConfig::default()).is_err());
    assert!(StackRouter::new(
        members.clone(),
        vec![1.0, 0.0, f64::NAN, 0.0],
        StackConfig::default()
    )
    .is_err());
    let bad = StackConfig {
        cost_member: Some(1),
        ..Default::default()
    };
    assert!(StackRouter::new(members.clone(), vec![1.0, 0.0, 1.0, 0.0], bad).is_err());
    assert!(StackRouter::new(members, vec![1.0, 0.0, 1.0, 0.0], StackConfig::default()).is_ok());
    assert!(StackConfig {
        shrinkage: -1.0,
        ..Default::default()
    }
    .validate()
    .is_err());
}
