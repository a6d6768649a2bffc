//! Onboarding a model into each learner, and repricing: the other models stay bit for bit, the
//! card prior is what the module documentation says, labels help, and the onboarded router
//! learns, saves, merges and shares with its new number of models.

use super::super::tests::{
    check_round_trip, feed, labelled_split, pool, probes, stream, synthetic,
};
use super::super::*;
use crate::data::Split;
use crate::error::ErrorKind;
use crate::pool::ModelCard;
use crate::rng::SplitMix64;
use crate::router::{Feedback, Learner, Router};
use crate::QueryFeatures;

/// Every model's outcome on `n` synthetic queries (seeded), observed costs 1.2 times the pool's
/// estimate.
fn labelled(n: usize, seed: u64) -> Split {
    labelled_split(n, seed, 1.2)
}

/// Each probe's (quality, score, cost) bits of models `0..m`, exploring and greedy. Exploring
/// scores depend on the observation count too (Thompson draws, the decaying bonus of knn-ucb
/// and cluster-ucb), which a model's labelled queries advance: scores are compared only at the
/// same count.
fn bits<L: Learned>(r: &BanditRouter<L>, m: usize, observations: u64) -> Vec<u64> {
    let scores = r.observations() == observations;
    let mut out = Vec::new();
    for q in probes() {
        for h in [r.exploring(), r.greedy()] {
            let e = h.estimate_batch(&q.as_batch()).unwrap();
            out.extend(e.quality[..m].iter().map(|v| v.to_bits()));
            if scores {
                out.extend(e.score[..m].iter().map(|v| v.to_bits()));
            }
            out.extend(e.cost[..m].iter().map(|v| v.to_bits()));
        }
    }
    out
}

/// Squared error of the new model's (index 2) greedy estimate against its true chance of being
/// right, over fresh queries.
fn error<L: Learned>(r: &BanditRouter<L>) -> f64 {
    let mut rng = SplitMix64::new(77);
    let g = r.greedy();
    (0..200)
        .map(|_| {
            let (q, p) = synthetic(&mut rng);
            (g.estimate_batch(&q.as_batch()).unwrap().quality[2] - p[2]).powi(2)
        })
        .sum()
}

fn check<L: Learned>(config: L::Config, others_exact: bool) {
    let k = L::KIND;
    let full = labelled(150, 31);
    let base =
        BanditRouter::<L>::warm_start(&full.select_models(&[0, 1]).unwrap(), config).unwrap();
    let online: Vec<_> = stream(40, 3).into_iter().filter(|o| o.1 < 2).collect();
    feed(&base, &online);
    let before = base.to_saved().unwrap().to_bytes().unwrap();
    let card = pool().card(2).clone();
    let r0 = base.add_model(card.clone(), None).unwrap();
    let labels = labelled(60, 8);
    let r2 = base.add_model(card.clone(), Some(&labels)).unwrap();
    // The router onboarded into is left as it was; the new ones have the new model.
    assert_eq!(base.to_saved().unwrap().to_bytes().unwrap(), before, "{k}");
    assert_eq!(
        r0.models().ids().collect::<Vec<_>>(),
        ["small", "mid", "big"]
    );
    let pulls = base.pulls();
    assert_eq!(r0.pulls(), [pulls[0], pulls[1], 0], "{k}");
    assert_eq!(r0.observations(), base.observations(), "{k}");
    assert_eq!(r2.pulls(), [pulls[0], pulls[1], 60], "{k}");
    assert_eq!(r2.observations(), base.observations() + 60, "{k}");
    assert_eq!(
        base.add_model(card.clone(), Some(&labels.select_models(&[0]).unwrap()))
            .unwrap_err()
            .kind(),
        ErrorKind::UnknownModel
    );
    assert_eq!(
        r0.add_model(card.clone(), None).unwrap_err().kind(),
        ErrorKind::Config
    );
    // The other models: bit for bit (cluster-ucb: their cells are; the shared difficulty fit
    // moves a little).
    let n = base.observations();
    for r in [&r0, &r2] {
        if others_exact {
            assert_eq!(bits(r, 2, n), bits(&base, 2, r.observations()), "{k}");
        } else {
            for q in probes() {
                let a = base.greedy().estimate_batch(&q.as_batch()).unwrap();
                let b = r.greedy().estimate_batch(&q.as_batch()).unwrap();
                for j in 0..2 {
                    assert!((a.quality[j] - b.quality[j]).abs() < 0.05, "{k}");
                    assert_eq!(a.cost[j].to_bits(), b.cost[j].to_bits(), "{k}");
                }
            }
        }
    }
    // The card prior: the price-weighted mix of the known models' means.
    let w = base.models().prior_weights(&card);
    let config = base.config();
    for q in probes() {
        let x = q.embedding();
        let mix: f64 = (0..2)
            .map(|j| w[j] * base.read().learned.mean(config, x, j).unwrap())
            .sum();
        let new = r0.read().learned.mean(config, x, 2).unwrap();
        if others_exact {
            assert!(
                (new - mix.clamp(0.0, 1.0)).abs() < 1e-9,
                "{k}: {new} vs {mix}"
            );
        } else {
            assert!((new - mix).abs() < 0.25, "{k}: {new} vs {mix}");
        }
    }
    // Labels move the new model toward its true quality.
    assert!(
        error(&r2) < error(&r0),
        "{k}: {} vs {}",
        error(&r2),
        error(&r0)
    );
    // It keeps learning online, saves and loads with three models.
    let online = r2.snapshot();
    online
        .observe(&Feedback {
            features: &probes()[0],
            model: 2,
            quality: 1.0,
            cost: 1e-4,
        })
        .unwrap();
    assert_eq!(online.pulls()[2], 61);
    check_round_trip(r2.snapshot());
    check_round_trip(r0.snapshot());
    // Replicas of the onboarded router merge; a router without the model does not mix in.
    let replica = r2.snapshot();
    feed(&replica, &stream(30, 9));
    let merged = r2.snapshot();
    merged.merge_since(&replica, &r2).unwrap();
    assert_eq!(merged.observations(), r2.observations() + 30);
    for (a, b) in [(&base, &r2), (&r2, &base)] {
        assert_eq!(a.merge(b).unwrap_err().kind(), ErrorKind::Config, "{k}");
    }
    assert_eq!(base.rejoin(&r2, &[]).unwrap_err().kind(), ErrorKind::Config);
    // The exchange refuses the other's increments by this fingerprint.
    assert_ne!(base.fingerprint().unwrap(), r2.fingerprint().unwrap());
    let shared = r2.snapshot();
    shared.start_journal().unwrap();
    let q = QueryFeatures::new(probes()[1].embedding().to_vec()).unwrap();
    shared
        .observe(&Feedback {
            features: &q,
            model: 2,
            quality: 0.0,
            cost: 1e-4,
        })
        .unwrap();
    let events = shared.take_journal().events;
    let peer = r2.snapshot();
    peer.apply_events(&events).unwrap();
    assert_eq!(peer.pulls()[2], 61);
    let e = base.apply_events(&events).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{k}: {e}");
    // Repricing: quality bit for bit, the repriced model's costs follow the price.
    let priced = r2.reprice(&[ModelCard::new("mid", 1.0, 1.0)]).unwrap();
    for q in probes() {
        let a = r2.greedy().estimate_batch(&q.as_batch()).unwrap();
        let b = priced.greedy().estimate_batch(&q.as_batch()).unwrap();
        assert_eq!(a.quality, b.quality, "{k}");
        assert_eq!(a.cost[0].to_bits(), b.cost[0].to_bits());
        assert!((b.cost[1] / a.cost[1] - 2.0).abs() < 1e-9, "{k}");
    }
    assert_eq!(
        r2.reprice(&[ModelCard::new("zz", 1.0, 1.0)])
            .unwrap_err()
            .kind(),
        ErrorKind::UnknownModel
    );
}

#[test]
fn onboarding_leaves_the_other_models_bit_for_bit() {
    let none = Forgetting::none;
    check::<Linear<Ucb>>(
        LinearConfig {
            forgetting: none(),
            ..Default::default()
        },
        true,
    );
    check::<Linear<Thompson>>(
        LinearConfig {
            projection: Projection::Random { dim: 4, seed: 3 },
            forgetting: Forgetting {
                window: Some(80),
                ..Forgetting::default()
            },
            ..LinearConfig::thompson()
        },
        true,
    );
    check::<KnnUcb>(
        KnnUcbConfig {
            k: 10,
            ..Default::default()
        },
        true,
    );
    check::<ClusterUcb>(
        ClusterUcbConfig {
            clusters: 3,
            forgetting: none(),
            ..Default::default()
        },
        false,
    );
}

/// A plain `merge` adds what the other router learned beyond its prior: for a linear model
/// onboarded with a card prior that prior is `λ·I` and `λ·θ_prior`, both left out (once the
/// prior's `b` was counted twice, pulling the model toward twice its card prior). Saved and
/// loaded, the router keeps its prior.
#[test]
fn a_plain_merge_leaves_out_the_card_prior_of_an_onboarded_linear_model() {
    let config = LinearConfig {
        forgetting: Forgetting::none(),
        ..Default::default()
    };
    let base = BanditRouter::<Linear<Ucb>>::warm_start(
        &labelled(150, 31).select_models(&[0, 1]).unwrap(),
        config.clone(),
    )
    .unwrap();
    let r = base.add_model(pool().card(2).clone(), None).unwrap();
    let r = BanditRouter::<Linear<Ucb>>::from_saved(config, r.to_saved().unwrap()).unwrap();
    // `a` learns nothing; `b` learns 40 outcomes of the new model. Merged into `a`, the new
    // model is estimated as `b` estimates it.
    let (a, b) = (r.snapshot(), r.snapshot());
    let news: Vec<_> = stream(120, 5).into_iter().filter(|o| o.1 == 2).collect();
    feed(&b, &news);
    a.merge(&b).unwrap();
    for q in probes() {
        let (ea, eb) = (
            a.greedy().estimate_batch(&q.as_batch()).unwrap(),
            b.greedy().estimate_batch(&q.as_batch()).unwrap(),
        );
        assert!(
            (ea.quality[2] - eb.quality[2]).abs() < 1e-9,
            "{} vs {}",
            ea.quality[2],
            eb.quality[2]
        );
    }
}
