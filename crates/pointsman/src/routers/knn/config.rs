//! The kNN router's hyper-parameters: neighbour weighting, prior, index, and their checks.

use serde::{Deserialize, Serialize};

use super::hnsw;
use crate::error::{Error, Result};

/// How a neighbour's similarity becomes its weight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Weighting {
    /// Every neighbour counts the same.
    Uniform,
    /// `max(s, 0)^power`: `power = 1` is plain similarity weighting.
    Power {
        /// The exponent.
        power: f64,
    },
    /// `exp((s − 1) / temperature)`: a softmax over similarities.
    Softmax {
        /// The temperature.
        temperature: f64,
    },
}

impl Weighting {
    /// The weight of a neighbour at cosine similarity `s`.
    pub fn weight(&self, s: f32) -> f64 {
        let s = f64::from(s);
        match *self {
            Weighting::Uniform => 1.0,
            Weighting::Power { power } => s.max(0.0).powf(power),
            Weighting::Softmax { temperature } => ((s - 1.0) / temperature).exp(),
        }
    }

    fn validate(&self) -> Result<()> {
        match *self {
            Weighting::Uniform => Ok(()),
            Weighting::Power { power } if power.is_finite() && power >= 0.0 => Ok(()),
            Weighting::Softmax { temperature } if temperature.is_finite() && temperature > 0.0 => {
                Ok(())
            }
            w => Err(Error::Config(format!(
                "knn weighting {w:?} is out of range"
            ))),
        }
    }
}

/// What an estimate is shrunk toward.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Prior {
    /// Each model's mean training score.
    Global,
    /// Each model's mean training score on the query's task (when the query has a task tag the
    /// training data knows), itself shrunk toward the global mean by `strength` pseudo-queries.
    Task {
        /// Pseudo-queries of the global mean added to each task's mean.
        strength: f64,
    },
}

/// How neighbours are found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Index {
    /// Exact search: scan every reference query.
    Exact,
    /// Approximate search with an HNSW graph ([`hnsw`]), for reference sets too large to scan.
    Hnsw(hnsw::HnswConfig),
    /// Exact search up to `threshold` reference queries, HNSW above.
    Auto {
        /// The largest reference set searched exactly.
        threshold: usize,
        /// The HNSW settings above the threshold.
        hnsw: hnsw::HnswConfig,
    },
}

impl Default for Index {
    fn default() -> Self {
        // An exact scan of 50k × 384 floats takes about 2 ms on one core; beyond that the graph
        // pays for itself on real embeddings.
        Index::Auto {
            threshold: 50_000,
            hnsw: hnsw::HnswConfig::default(),
        }
    }
}

impl Index {
    /// The HNSW settings to use for `n` reference queries, `None` for exact search.
    pub(super) fn hnsw_for(&self, n: usize) -> Option<&hnsw::HnswConfig> {
        match self {
            Index::Exact => None,
            Index::Hnsw(c) => Some(c),
            Index::Auto { threshold, hnsw } => (n > *threshold).then_some(hnsw),
        }
    }
}

/// Hyper-parameters of a [`KnnRouter`](super::KnnRouter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnnConfig {
    /// Number of neighbours.
    pub k: usize,
    /// Neighbour weights.
    pub weighting: Weighting,
    /// Shrinkage toward the prior, in units of one fully similar neighbour.
    pub shrinkage: f64,
    /// The prior.
    pub prior: Prior,
    /// Restrict neighbours to the query's task when the query has a task tag the training data
    /// knows.
    pub same_task: bool,
    /// Neighbours behind the out-of-distribution score.
    pub ood_neighbours: usize,
    /// Exact or approximate search.
    pub index: Index,
    /// Divide each neighbour's weight by the logging policy's probability of having chosen
    /// that model for it, where the training data records one (partial labels from a log).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inverse_propensity: bool,
}

impl Default for KnnConfig {
    fn default() -> Self {
        KnnConfig {
            k: 100,
            weighting: Weighting::Power { power: 1.0 },
            shrinkage: 0.0,
            prior: Prior::Global,
            same_task: false,
            ood_neighbours: 10,
            index: Index::default(),
            inverse_propensity: false,
        }
    }
}

impl KnnConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(Error::Config("knn k must be at least 1".into()));
        }
        if self.ood_neighbours == 0 {
            return Err(Error::Config(
                "knn ood_neighbours must be at least 1".into(),
            ));
        }
        if !self.shrinkage.is_finite() || self.shrinkage < 0.0 {
            return Err(Error::Config(format!(
                "knn shrinkage {} is not a non-negative number",
                self.shrinkage
            )));
        }
        if let Some(h) = self.index.hnsw_for(usize::MAX) {
            h.validate()
                .map_err(|e| Error::Config(format!("knn index: {e}")))?;
        }
        if let Prior::Task { strength } = self.prior {
            if !strength.is_finite() || strength < 0.0 {
                return Err(Error::Config(format!(
                    "knn task prior strength {strength} is not a non-negative number"
                )));
            }
        }
        self.weighting.validate()
    }
}
