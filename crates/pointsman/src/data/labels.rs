//! Labels that are not a full table: which (query, model) cells are observed, preference
//! judgements between two models, the logging policy's choice probabilities, and the seeded
//! conversions that make such splits out of a fully labelled one (to measure what a router
//! loses when it has less).

use serde::{Deserialize, Serialize};

use super::Split;
use crate::error::{Error, Result};
use crate::rng::SplitMix64;

/// Which of two models answered a query better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Winner {
    /// Model a won.
    ModelA,
    /// Model b won.
    ModelB,
    /// A tie.
    Tie,
}

impl Winner {
    /// The probability that model a beat model b this judgement stands for: 1, 0 or ½.
    pub fn a_wins(self) -> f64 {
        match self {
            Winner::ModelA => 1.0,
            Winner::ModelB => 0.0,
            Winner::Tie => 0.5,
        }
    }

    /// The name in the dataset schema (`"model_a"`, `"model_b"`, `"tie"`).
    pub fn name(self) -> &'static str {
        match self {
            Winner::ModelA => "model_a",
            Winner::ModelB => "model_b",
            Winner::Tie => "tie",
        }
    }

    /// The winner called `name` in the dataset schema.
    pub fn from_name(name: &str) -> Option<Winner> {
        match name {
            "model_a" => Some(Winner::ModelA),
            "model_b" => Some(Winner::ModelB),
            "tie" => Some(Winner::Tie),
            _ => None,
        }
    }
}

/// One preference judgement on a query of a split: which of two models answered it better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Preference {
    /// The query's row in its split.
    pub row: u32,
    /// Model a (index in the split's pool).
    pub model_a: u32,
    /// Model b (index in the split's pool), never model a.
    pub model_b: u32,
    /// Who won.
    pub winner: Winner,
}

/// How a split's cells are labelled, in one word (reports and `stats.json`).
pub fn label_kind(split: &Split) -> &'static str {
    match (split.is_fully_labelled(), split.preferences().is_empty()) {
        (true, true) => "full",
        (true, false) => "full+pairwise",
        (false, true) => "partial",
        (false, false) if split.observed_count() == 0 => "pairwise",
        (false, false) => "partial+pairwise",
    }
}

/// `split` with a seeded share `keep` of its (query, model) cells observed and the others
/// unobserved: each cell is kept independently with probability `keep` by a seeded draw (the
/// same cells for the same split, share and seed).
///
/// # Errors
///
/// [`Error::InvalidInput`] for a share outside [0, 1]; [`Error::MissingLabels`] when `split`
/// is not fully labelled.
pub fn keep_cells(split: &Split, keep: f64, seed: u64) -> Result<Split> {
    if !(0.0..=1.0).contains(&keep) {
        return Err(Error::InvalidInput(format!(
            "a share of cells to keep must be in [0, 1], not {keep}"
        )));
    }
    split.require_full_labels("keeping a share of its cells")?;
    let mut rng = SplitMix64::new(seed);
    let mask: Vec<bool> = (0..split.scores().len())
        .map(|_| rng.next_f64() < keep)
        .collect();
    split.clone().with_observed(mask)
}

/// `split` converted to preference pairs only: per query, `pairs` seeded pairs of distinct
/// models whose scores differ (fewer when the query has fewer such pairs), the winner being
/// the model with the higher score; no absolute score is kept.
///
/// # Errors
///
/// [`Error::MissingLabels`] when `split` is not fully labelled.
pub fn to_preferences(split: &Split, pairs: usize, seed: u64) -> Result<Split> {
    split.require_full_labels("converting it to preference pairs")?;
    let m = split.pool().len();
    let mut rng = SplitMix64::new(seed);
    let mut prefs = Vec::new();
    let mut candidates = Vec::new();
    for r in 0..split.len() {
        candidates.clear();
        for a in 0..m {
            for b in a + 1..m {
                if split.score(r, a) != split.score(r, b) {
                    candidates.push((a as u32, b as u32));
                }
            }
        }
        rng.shuffle(&mut candidates);
        for &(a, b) in candidates.iter().take(pairs) {
            // Which side a model is on is drawn too, so that "model a" carries no signal.
            let (a, b) = if rng.next_f64() < 0.5 { (a, b) } else { (b, a) };
            let winner = if split.score(r, a as usize) > split.score(r, b as usize) {
                Winner::ModelA
            } else {
                Winner::ModelB
            };
            prefs.push(Preference {
                row: r as u32,
                model_a: a,
                model_b: b,
                winner,
            });
        }
    }
    split
        .clone()
        .with_observed(vec![false; split.scores().len()])?
        .with_preferences(prefs)
}

/// The log a uniformly random logging policy would have left on `split`: per query one model
/// drawn uniformly (seeded), only its score and cost observed, and its choice probability
/// `1 / models` recorded as the propensity.
///
/// # Errors
///
/// [`Error::MissingLabels`] when `split` is not fully labelled.
pub fn uniform_log(split: &Split, seed: u64) -> Result<Split> {
    split.require_full_labels("replaying a logging policy on it")?;
    let m = split.pool().len();
    let mut rng = SplitMix64::new(seed);
    let mut mask = vec![false; split.len() * m];
    let mut propensity = vec![f64::NAN; split.len() * m];
    for r in 0..split.len() {
        let j = rng.below(m);
        mask[r * m + j] = true;
        propensity[r * m + j] = 1.0 / m as f64;
    }
    split
        .clone()
        .with_observed(mask)?
        .with_propensities(propensity)
}
