//! [`Estimates`]: per query and model, the expected quality and cost a router estimated, and the
//! [`Signals`] behind them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Per-query signals behind an estimate, for auditing a decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// Number of reference queries (neighbours, observations) the estimate rests on.
    pub neighbours: Option<u32>,
    /// Out-of-distribution score in [0, 1]: the share of training queries that are closer to
    /// their own neighbourhood than this query is to the training data (0.99: farther out than
    /// 99 % of the training queries).
    pub ood: Option<f32>,
}

/// Per-query, per-model estimates of a batch: `rows × models` row-major matrices.
///
/// `quality` is the expected quality, in [0, 1]. A router that explores (a bandit) chooses by
/// another figure — the expected quality plus an exploration bonus, or a posterior draw — and
/// writes it to `score`; for every other router `score` is empty and the choice uses `quality`
/// ([`Estimates::score_row`] gives whichever the choice uses).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Estimates {
    pub(super) rows: usize,
    models: usize,
    /// Expected quality in [0, 1], `quality[r * models + m]`.
    pub quality: Vec<f64>,
    /// Expected cost in USD, `cost[r * models + m]`.
    pub cost: Vec<f64>,
    /// The quality figure the choice maximises when it is not `quality` (empty otherwise):
    /// `score[r * models + m]`.
    pub score: Vec<f64>,
    /// Signals per row.
    pub signals: Vec<Signals>,
}

impl Estimates {
    /// Zeroed estimates for `rows` queries and `models` models.
    pub fn new(rows: usize, models: usize) -> Self {
        Estimates {
            rows,
            models,
            quality: vec![0.0; rows * models],
            cost: vec![0.0; rows * models],
            score: Vec::new(),
            signals: vec![Signals::default(); rows],
        }
    }

    /// Resizes (and zeroes) for `rows` queries and `models` models, reusing the allocation.
    pub fn reset(&mut self, rows: usize, models: usize) {
        self.rows = rows;
        self.models = models;
        self.quality.clear();
        self.quality.resize(rows * models, 0.0);
        self.cost.clear();
        self.cost.resize(rows * models, 0.0);
        self.score.clear();
        self.signals.clear();
        self.signals.resize(rows, Signals::default());
    }

    /// Number of queries.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of models.
    pub fn models(&self) -> usize {
        self.models
    }

    /// Expected qualities of row `r`.
    pub fn quality_row(&self, r: usize) -> &[f64] {
        &self.quality[r * self.models..(r + 1) * self.models]
    }

    /// Expected costs of row `r`.
    pub fn cost_row(&self, r: usize) -> &[f64] {
        &self.cost[r * self.models..(r + 1) * self.models]
    }

    /// The quality figure the choice maximises for row `r`: [`Estimates::score`] when the
    /// router wrote one, else the expected quality.
    pub fn score_row(&self, r: usize) -> &[f64] {
        let range = r * self.models..(r + 1) * self.models;
        if self.score.is_empty() {
            &self.quality[range]
        } else {
            &self.score[range]
        }
    }

    /// Mutable expected qualities and costs of row `r`.
    pub fn row_mut(&mut self, r: usize) -> (&mut [f64], &mut [f64]) {
        let range = r * self.models..(r + 1) * self.models;
        (&mut self.quality[range.clone()], &mut self.cost[range])
    }

    /// Mutable expected qualities, costs and scores of row `r` (a router that explores); the
    /// scores are allocated on first use.
    pub fn row_mut_with_score(&mut self, r: usize) -> (&mut [f64], &mut [f64], &mut [f64]) {
        if self.score.len() != self.quality.len() {
            self.score.resize(self.quality.len(), 0.0);
        }
        let range = r * self.models..(r + 1) * self.models;
        (
            &mut self.quality[range.clone()],
            &mut self.cost[range.clone()],
            &mut self.score[range],
        )
    }

    /// The estimates of `rows`, in that order (signals and scores included).
    ///
    /// # Panics
    ///
    /// When a row is out of range.
    ///
    /// ```
    /// use pointsman::Estimates;
    /// let mut e = Estimates::new(3, 2);
    /// e.row_mut(2).0.copy_from_slice(&[0.5, 0.25]);
    /// let picked = e.select(&[2, 0]);
    /// assert_eq!(picked.rows(), 2);
    /// assert_eq!(picked.quality_row(0), &[0.5, 0.25]);
    /// ```
    pub fn select(&self, rows: &[usize]) -> Estimates {
        let m = self.models;
        let mut out = Estimates::new(rows.len(), m);
        for (i, &r) in rows.iter().enumerate() {
            out.quality[i * m..(i + 1) * m].copy_from_slice(self.quality_row(r));
            out.cost[i * m..(i + 1) * m].copy_from_slice(self.cost_row(r));
            out.signals[i] = self.signals[r];
        }
        if !self.score.is_empty() {
            out.score = rows
                .iter()
                .flat_map(|&r| self.score_row(r).iter().copied())
                .collect();
        }
        out
    }

    pub(super) fn check(&self, what: &str) -> Result<()> {
        let bad = self
            .quality
            .iter()
            .chain(&self.cost)
            .chain(&self.score)
            .position(|v| !v.is_finite());
        match bad {
            None => Ok(()),
            Some(i) => Err(Error::Numeric(format!(
                "{what} produced a non-finite estimate at position {i}"
            ))),
        }
    }
}
