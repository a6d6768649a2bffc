//! The report of an evaluation, and the decisions file it can be rebuilt from.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::ORACLE;
use crate::data::Split;
use crate::error::{Error, Result};
use crate::metrics::{evaluate_sweep, CostBasis, EntrantReport, Reference, SweepPoint};

/// A whole evaluation: the reference figures and every entrant's report (`report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The dataset's name.
    pub dataset: String,
    /// Number of test queries.
    pub n_test: usize,
    /// Reference figures.
    pub reference: Reference,
    /// One report per entrant, in the order evaluated (`policies` in files written before
    /// version 0.2).
    #[serde(alias = "policies")]
    pub entrants: Vec<EntrantReport>,
}

/// One line of `decisions.jsonl`: which model a router chose for one test query at one point of
/// its sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionLine {
    /// The entrant's name.
    pub router: String,
    /// The sweep point's cost weight.
    pub cost_weight: f64,
    /// The query's id.
    pub id: String,
    /// The model whose answer was used.
    pub model: String,
    /// Every model invoked, in order (cascades only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked: Option<Vec<String>>,
    /// What the cost weight charges for; absent for per-query costs.
    #[serde(default, skip_serializing_if = "CostBasis::is_query")]
    pub cost_basis: CostBasis,
    /// How many sweep points (cost basis and cost weight) the router has in the file, so that a
    /// file cut short between them is refused rather than reported from what is left (absent
    /// in files written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<usize>,
    /// How many routers the file holds (absent in files written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routers: Option<usize>,
}

/// The decision lines of a sweep, for a file holding `routers` routers' sweeps.
pub fn decision_lines<'a>(
    name: &'a str,
    sweep: &'a [SweepPoint],
    test: &'a Split,
    routers: usize,
) -> impl Iterator<Item = DecisionLine> + 'a {
    sweep.iter().flat_map(move |p| {
        (0..test.len()).map(move |r| DecisionLine {
            router: name.to_string(),
            cost_weight: p.cost_weight,
            id: test.ids()[r].clone(),
            model: test.pool().id(p.choices[r] as usize).to_string(),
            invoked: p.invoked.as_ref().map(|inv| {
                inv[r]
                    .iter()
                    .map(|&m| test.pool().id(m as usize).to_string())
                    .collect()
            }),
            cost_basis: p.cost_basis,
            points: Some(sweep.len()),
            routers: Some(routers),
        })
    })
}

/// Rebuilds every entrant's report from decision lines and the dataset alone.
///
/// Lines are grouped by router (in order of first appearance), then by cost basis and cost
/// weight (in order of appearance); every group must assign every test query exactly once.
/// Entrants named `oracle` are marked as reading test labels, and entrants whose lines list the
/// models they invoked (cascades, which `pointsman eval` runs with a simulated judge) as resting
/// on simulated confidences.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming the router and cost weight of a group that misses or repeats a
/// query or names an unknown query id, and for no line at all; [`Error::UnknownModel`] for an
/// unknown model, naming its line's router, cost weight and query.
pub fn report_from_decisions(
    dataset: &str,
    train: &Split,
    test: &Split,
    weak_strong: Option<(usize, usize)>,
    lines: impl IntoIterator<Item = DecisionLine>,
) -> Result<Report> {
    let reference = Reference::new(train, test, weak_strong)?;
    let row_of: HashMap<&str, usize> = test
        .ids()
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let model = |id: &str| -> Result<u32> { Ok(test.pool().index_of(id)? as u32) };
    struct Pending {
        key: (CostBasis, u64),
        point: SweepPoint,
        seen: Vec<bool>,
    }
    // Routers in order of appearance, each with its points in order of appearance, and the
    // counts the lines state (files written before the counts state none).
    let mut routers: Vec<(String, Vec<Pending>)> = Vec::new();
    let mut stated_points: HashMap<String, usize> = HashMap::new();
    let mut stated_routers: Option<usize> = None;
    for line in lines {
        let disagree = |what: &str| {
            Error::InvalidInput(format!(
                "{} at cost weight {}, query {:?}: its {what} count differs from earlier lines'",
                line.router, line.cost_weight, line.id
            ))
        };
        if let Some(n) = line.routers {
            if *stated_routers.get_or_insert(n) != n {
                return Err(disagree("router"));
            }
        }
        if let Some(n) = line.points {
            if *stated_points.entry(line.router.clone()).or_insert(n) != n {
                return Err(disagree("sweep point"));
            }
        }
        let r = *row_of.get(line.id.as_str()).ok_or_else(|| {
            Error::InvalidInput(format!(
                "{} at cost weight {}: unknown query id {:?}",
                line.router, line.cost_weight, line.id
            ))
        })?;
        let pos = match routers.iter().position(|(n, _)| *n == line.router) {
            Some(p) => p,
            None => {
                routers.push((line.router.clone(), Vec::new()));
                routers.len() - 1
            }
        };
        let points = &mut routers[pos].1;
        let key = (line.cost_basis, line.cost_weight.to_bits());
        let idx = match points.iter().position(|p| p.key == key) {
            Some(i) => i,
            None => {
                points.push(Pending {
                    key,
                    point: SweepPoint {
                        cost_weight: line.cost_weight,
                        choices: vec![0; test.len()],
                        invoked: None,
                        cost_basis: line.cost_basis,
                    },
                    seen: vec![false; test.len()],
                });
                points.len() - 1
            }
        };
        let Pending { point, seen, .. } = &mut points[idx];
        if std::mem::replace(&mut seen[r], true) {
            return Err(Error::InvalidInput(format!(
                "{} at cost weight {}: query {:?} appears twice",
                line.router, line.cost_weight, line.id
            )));
        }
        // An unknown model names the line it is on.
        let model = |id: &str| {
            model(id).map_err(|_| {
                Error::UnknownModel(format!(
                    "{id} ({} at cost weight {}, query {:?}: not a model of the dataset)",
                    line.router, line.cost_weight, line.id
                ))
            })
        };
        point.choices[r] = model(&line.model)?;
        if let Some(inv) = &line.invoked {
            let inv: Vec<u32> = inv.iter().map(|m| model(m)).collect::<Result<_>>()?;
            point
                .invoked
                .get_or_insert_with(|| vec![Vec::new(); test.len()])[r] = inv;
        }
    }
    if routers.is_empty() {
        return Err(Error::InvalidInput(
            "no decision line: nothing to report (`pointsman eval --decisions` writes them)".into(),
        ));
    }
    // A file cut short at a line boundary: between two routers, or between a router's sweep
    // points (its per-call sweep lost, APGR was recomputed from the cost curve).
    if let Some(n) = stated_routers.filter(|&n| n != routers.len()) {
        return Err(Error::InvalidInput(format!(
            "the decisions name {} routers where their lines say the file holds {n}: it was cut \
             short or edited",
            routers.len()
        )));
    }
    for (name, points) in &routers {
        if let Some(&n) = stated_points.get(name).filter(|&&n| n != points.len()) {
            return Err(Error::InvalidInput(format!(
                "{name}: the decisions hold {} of its {n} sweep points: the file was cut short or \
                 edited",
                points.len()
            )));
        }
    }
    let mut entrants = Vec::new();
    for (name, points) in routers {
        let simulated = points.iter().any(|p| p.point.invoked.is_some());
        let mut sweep = Vec::new();
        for Pending {
            point: mut p, seen, ..
        } in points
        {
            if let Some(missing) = seen.iter().position(|s| !s) {
                return Err(Error::InvalidInput(format!(
                    "{name} at cost weight {}: no decision for query {:?}",
                    p.cost_weight,
                    test.ids()[missing]
                )));
            }
            if let Some(inv) = &mut p.invoked {
                for (r, v) in inv.iter_mut().enumerate() {
                    if v.is_empty() {
                        v.push(p.choices[r]);
                    }
                }
            }
            sweep.push(p);
        }
        let labels = name == ORACLE;
        let mut report = evaluate_sweep(&name, labels, &sweep, test, &reference)?;
        report.simulated_judge = simulated;
        entrants.push(report);
    }
    Ok(Report {
        dataset: dataset.to_string(),
        n_test: test.len(),
        reference,
        entrants,
    })
}
