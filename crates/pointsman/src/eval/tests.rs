use std::sync::Arc;

use super::*;
use crate::metrics::evaluate_sweep;
use crate::metrics::tests::tiny;
use crate::router::Router;

#[test]
fn router_entrant_at_given_cost_weights() {
    use crate::routers::baseline::{Baseline, BaselineRouter};
    let (train, test) = tiny();
    let router: Arc<dyn Router> = Arc::new(BaselineRouter::fit(Baseline::Zero, &train).unwrap());
    // Training means: weak quality 0.5 at cost 1, strong 1.0 at cost 10. At w = 0 the strong
    // model wins; at w = 1 (0.5 - 1 > 1 - 10) and beyond, the weak one. Repeated assignments
    // are kept: one point per weight asked for.
    let entrant = RouterEntrant::new("zero", router.clone()).with_cost_weights(vec![0.0, 1.0, 1e9]);
    let sweep = entrant.sweep(&test).unwrap();
    assert_eq!(sweep.len(), 3);
    assert_eq!(sweep[0].choices, vec![1; 4]);
    assert_eq!(sweep[1].choices, vec![0; 4]);
    assert_eq!(sweep[2].choices, vec![0; 4]);
    assert!(sweep.iter().all(|p| p.cost_basis == CostBasis::Query));
    assert_eq!(sweep[2].cost_weight, 1e9);
    // The default sweep drops repeated assignments and adds the call-basis points.
    let full = RouterEntrant::new("zero", router.clone())
        .sweep(&test)
        .unwrap();
    assert!(full.iter().any(|p| p.cost_basis == CostBasis::Call));
    for bad in [vec![], vec![0.0, -1.0], vec![f64::NAN]] {
        let e = RouterEntrant::new("zero", router.clone())
            .with_cost_weights(bad)
            .sweep(&test)
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config, "{e}");
    }
}

#[test]
fn entrants_by_name() {
    let (train, test) = tiny();
    let opts = EntrantOptions::default();
    for name in [
        "random",
        "cheapest",
        "best-single",
        "fixed:weak",
        "zero",
        "oracle",
    ] {
        let p = entrant_by_name(name, &train, &opts).unwrap();
        assert_eq!(p.name(), name);
        assert_eq!(p.reads_test_labels(), name == "oracle");
        assert!(!p.sweep(&test).unwrap().is_empty());
    }
    let e = entrant_by_name("knnn", &train, &opts).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid input: unknown router \"knnn\" (known: random,"),
        "{e}"
    );
    assert!(entrant_by_name("fixed:nope", &train, &opts).is_err());
    assert_eq!(
        expand_entrant_names(" zero, all ,oracle,,fixed:a")[..5],
        ["zero", "random", "cheapest", "best-single", "oracle"]
    );
    assert_eq!(
        expand_entrant_names("all,fixed:a")
            .last()
            .map(String::as_str),
        Some("fixed:a")
    );
}

#[test]
fn decisions_round_trip() {
    let (train, test) = tiny();
    let r = Reference::new(&train, &test, Some((0, 1))).unwrap();
    let sweep = vec![
        SweepPoint {
            cost_weight: 0.0,
            choices: vec![1, 1, 1, 1],
            invoked: None,
            cost_basis: CostBasis::Query,
        },
        SweepPoint {
            cost_weight: 0.1,
            choices: vec![0, 1, 0, 0],
            invoked: None,
            cost_basis: CostBasis::Query,
        },
    ];
    let rep = evaluate_sweep("x", false, &sweep, &test, &r).unwrap();
    let lines: Vec<DecisionLine> = decision_lines("x", &sweep, &test, 1).collect();
    assert_eq!(lines.len(), 8);
    let again = report_from_decisions("t", &train, &test, Some((0, 1)), lines.clone()).unwrap();
    assert_eq!(again.entrants[0], rep);
    let mut dup = lines.clone();
    dup.push(lines[0].clone());
    let e = report_from_decisions("t", &train, &test, None, dup).unwrap_err();
    assert!(e.to_string().contains("appears twice"), "{e}");
    let e = report_from_decisions("t", &train, &test, None, lines[..7].to_vec()).unwrap_err();
    assert!(e.to_string().contains("no decision for query \"3\""), "{e}");
    // Cut at a line boundary between two sweep points, or between two routers: refused, where
    // the first point alone (or the first router) was reported before.
    let e = report_from_decisions("t", &train, &test, None, lines[..4].to_vec()).unwrap_err();
    assert!(
        e.to_string()
            .contains("x: the decisions hold 1 of its 2 sweep points"),
        "{e}"
    );
    let two: Vec<DecisionLine> = decision_lines("x", &sweep, &test, 2).collect();
    let e = report_from_decisions("t", &train, &test, None, two).unwrap_err();
    assert!(
        e.to_string()
            .contains("name 1 routers where their lines say the file holds 2"),
        "{e}"
    );
    // Lines without the counts (files written before them) are read as before.
    let old: Vec<DecisionLine> = lines[..4]
        .iter()
        .cloned()
        .map(|l| DecisionLine {
            points: None,
            routers: None,
            ..l
        })
        .collect();
    let json = serde_json::to_string(&old[0]).unwrap();
    assert!(
        !json.contains("points") && !json.contains("routers"),
        "{json}"
    );
    report_from_decisions("t", &train, &test, None, old).unwrap();
}

#[test]
fn reports_written_before_the_rename_still_read() {
    let (train, test) = tiny();
    let r = Reference::new(&train, &test, Some((0, 1))).unwrap();
    let sweep = vec![SweepPoint {
        cost_weight: 0.0,
        choices: vec![1, 1, 1, 1],
        invoked: None,
        cost_basis: CostBasis::Query,
    }];
    let rep = evaluate_sweep("x", false, &sweep, &test, &r).unwrap();
    let report = Report {
        dataset: "t".into(),
        n_test: 4,
        reference: r,
        entrants: vec![rep],
    };
    let new = serde_json::to_value(&report).unwrap();
    assert!(new.get("entrants").is_some() && new.get("policies").is_none());
    // Version 0.1 wrote the same report under "policies".
    let mut old = new.clone();
    let entrants = old.as_object_mut().unwrap().remove("entrants").unwrap();
    old.as_object_mut()
        .unwrap()
        .insert("policies".into(), entrants);
    let read: Report = serde_json::from_value(old).unwrap();
    assert_eq!(read, report);
}
