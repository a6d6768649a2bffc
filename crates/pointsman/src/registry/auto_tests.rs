//! Tests of the automatic choice (`auto.rs`).

use super::*;
use crate::pool::{ModelCard, ModelPool};

/// 60 queries on a line, two models: the cheap one passes the first half.
fn split(scores_of_fold: Option<(&Folds, usize, f64)>) -> Split {
    let pool = ModelPool::new(vec![
        ModelCard::new("a", 0.1, 0.1),
        ModelCard::new("b", 1.0, 1.0),
    ])
    .unwrap();
    let (mut emb, mut scores) = (Vec::new(), Vec::new());
    for i in 0..60 {
        let t = i as f32 / 60.0;
        emb.extend_from_slice(&[1.0 - t, t, 0.2]);
        let mut row = [f64::from(u8::from(t < 0.5)), 0.7];
        if let Some((folds, f, v)) = scores_of_fold {
            if folds.fold_of(i) == f {
                row = [v, 1.0 - v];
            }
        }
        scores.extend_from_slice(&row);
    }
    Split::from_arrays(pool, emb, 3, scores, vec![1e-5; 120]).unwrap()
}

fn measured(train: &Split, folds: &Folds, nested: bool) -> Measured {
    let options = AutoOptions {
        nested,
        ..Default::default()
    };
    measure(RouterKind::Knn, train, folds, Criterion::Aiq, &options).unwrap()
}

#[test]
fn a_nested_figure_never_saw_the_labels_of_the_queries_it_estimates() {
    let folds = Folds::new(60, 5, 0).unwrap();
    let train = split(None);
    let nested = measured(&train, &folds, true);
    let flat = measured(&train, &folds, false);
    // The same whole-split search: the same setting kept, and its own figure reported.
    assert_eq!(nested.report.config, flat.report.config);
    assert_eq!(nested.report.search_score, Some(flat.report.score));
    assert_eq!(flat.report.search_score, None);
    // Other labels on fold 0 leave the nested estimates of fold 0's queries as they were:
    // neither the setting that estimates them nor its reference rows saw those labels.
    let relabelled = split(Some((&folds, 0, 0.0)));
    let again = measured(&relabelled, &folds, true);
    let fold0: Vec<usize> = folds.held_out(0).collect();
    // Without nesting they change: fold 0's labels moved the search's choice of setting.
    let flat_again = measured(&relabelled, &folds, false);
    assert_ne!(flat.report.config, flat_again.report.config);
    assert_ne!(
        flat.oof.select(&fold0).quality,
        flat_again.oof.select(&fold0).quality
    );
    assert_eq!(
        nested.oof.select(&fold0).quality,
        again.oof.select(&fold0).quality
    );
    // ... while the other folds' estimates use them as reference rows.
    let fold1: Vec<usize> = folds.held_out(1).collect();
    assert_ne!(
        nested.oof.select(&fold1).quality,
        again.oof.select(&fold1).quality
    );
}

#[test]
fn the_nested_stack_takes_each_folds_shrinkage_from_the_other_folds() {
    let folds = Folds::new(60, 5, 0).unwrap();
    // Two members, kNN's search winner measured flat and nested, whose estimates stay fixed
    // while the stack is measured on two sets of labels: the plain ones and others where
    // fold 1's queries all favour the strong model (on which the folds' choices differ).
    let plain = split(None);
    let (knn, other) = (
        measured(&plain, &folds, false),
        measured(&plain, &folds, true),
    );
    let oof = [&knn.oof, &other.oof];
    let stack = |truth: &Split, nested| {
        let options = AutoOptions {
            nested,
            ..Default::default()
        };
        measure_stack(truth, &[&knn, &other], &folds, Criterion::Aiq, &options).unwrap()
    };
    let truth = split(Some((&folds, 1, 0.0)));
    let (nested, flat) = (stack(&truth, true), stack(&truth, false));
    // The same stack kept; the flat figure is the nested one's "search's own".
    assert_eq!(nested.report.config, flat.report.config);
    assert_eq!(nested.report.search_score, Some(flat.report.score));
    assert_eq!(flat.report.search_score, None);
    // Each fold's rows: the out-of-fold estimates of the shrinkage that cross-validation on
    // the other folds alone prefers.
    let per_shrinkage: Vec<Estimates> = STACK_SHRINKAGE
        .into_iter()
        .map(|s| StackRouter::cross_validate(&oof, &truth, &folds, None, s, 0).unwrap())
        .collect();
    assert_ne!(per_shrinkage[0].quality, per_shrinkage[1].quality);
    assert_ne!(per_shrinkage[1].quality, per_shrinkage[2].quality);
    let mut taken = Vec::new();
    for f in 0..folds.count() {
        let rest: Vec<usize> = folds.training(f).collect();
        let rest_truth = truth.subset(&rest, "train");
        let inner = Folds::new(rest.len(), folds.count(), 0).unwrap();
        let sub: Vec<Estimates> = oof.iter().map(|e| e.select(&rest)).collect();
        let sub: Vec<&Estimates> = sub.iter().collect();
        let mut best = (f64::NEG_INFINITY, 0);
        for (i, s) in STACK_SHRINKAGE.into_iter().enumerate() {
            let e = StackRouter::cross_validate(&sub, &rest_truth, &inner, None, s, 0).unwrap();
            let (v, _) = score(&e, &rest_truth, Criterion::Aiq).unwrap();
            if v > best.0 {
                best = (v, i);
            }
        }
        let rows: Vec<usize> = folds.held_out(f).collect();
        assert_eq!(
            nested.oof.select(&rows).quality,
            per_shrinkage[best.1].select(&rows).quality,
            "fold {f}"
        );
        taken.push(STACK_SHRINKAGE[best.1]);
    }
    let RouterConfig::Stack(kept) = &flat.report.config else {
        panic!("{:?}", flat.report.config);
    };
    assert!(
        taken.iter().any(|&s| s != kept.shrinkage),
        "every fold took the shrinkage best on all five ({taken:?}): the test shows nothing"
    );
    // Fold 1's own labels never reached its rows: with the plain labels they are the same.
    let fold1: Vec<usize> = folds.held_out(1).collect();
    assert_eq!(
        nested.oof.select(&fold1).quality,
        stack(&plain, true).oof.select(&fold1).quality
    );
}

#[test]
fn nesting_refuses_a_split_too_small_to_cross_validate_twice() {
    let first = |n: usize| split(None).subset(&(0..n).collect::<Vec<_>>(), "train");
    let options = |kinds: &[RouterKind], nested| AutoOptions {
        kinds: kinds.to_vec(),
        nested,
        ..Default::default()
    };
    let zero_knn = [RouterKind::Zero, RouterKind::Knn];
    // 12 queries over 5 folds leave 9 beside the largest fold: too few for 5 folds again.
    for kinds in [&zero_knn[..], &[RouterKind::Zero, RouterKind::Stack]] {
        let Err(err) = AnyRouter::fit_auto(&first(12), &options(kinds, true), &mut |_| {}) else {
            panic!("12 queries are too few for 5 nested folds ({kinds:?})");
        };
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidInput(_)), "{text}");
        assert!(
            text.contains("12 training queries") && text.contains("at least 13"),
            "{text}"
        );
    }
    // 13 are enough; without nesting 12 are cross-validated once.
    AnyRouter::fit_auto(&first(13), &options(&zero_knn, true), &mut |_| {}).unwrap();
    AnyRouter::fit_auto(&first(12), &options(&zero_knn, false), &mut |_| {}).unwrap();
}

#[test]
fn apgr_needs_two_models_and_a_stack_full_labels() {
    // One model: no weak/strong pair, so APGR would silently be AIQ.
    let two = split(None);
    let one = two.select_models(&[0]).unwrap();
    let options = AutoOptions {
        kinds: vec![RouterKind::Zero],
        criterion: Some(Criterion::Apgr),
        ..Default::default()
    };
    let Err(e) = AnyRouter::fit_auto(&one, &options, &mut |_| {}) else {
        panic!("apgr on one model must be refused");
    };
    assert!(
        matches!(e, Error::Config(_)) && e.to_string().contains("1 model: rank by aiq"),
        "{e}"
    );
    AnyRouter::fit_auto(&two, &options, &mut |_| {}).unwrap();
    // A stack's members are scored against every model's score: partial labels are refused
    // by name, not by the evaluation inside.
    let mut mask = vec![true; two.len() * 2];
    mask[1] = false;
    let partial = two.clone().with_observed(mask).unwrap();
    let Err(e) = fit_stack(&StackConfig::default(), &partial) else {
        panic!("a stack on partial labels must be refused");
    };
    assert!(e.to_string().contains("fitting a stack"), "{e}");
}

#[test]
fn nested_progress_counts_every_search_as_one_run() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let options = AutoOptions {
        progress: crate::tuning::Progress::new(move |d, t| log.lock().unwrap().push((d, t))),
        ..Default::default()
    };
    let folds = Folds::new(60, 5, 0).unwrap();
    measure(
        RouterKind::Knn,
        &split(None),
        &folds,
        Criterion::Aiq,
        &options,
    )
    .unwrap();
    let seen = seen.lock().unwrap();
    let total = seen[0].1;
    assert!(seen.iter().all(|&(d, t)| t == total && d <= total));
    assert_eq!(seen.iter().map(|p| p.0).max(), Some(total));
    assert_eq!(total % 6, 0, "six searches of equal length: {total}");
}
