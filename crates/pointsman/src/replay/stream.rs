//! [`Stream`]: a dataset's queries in a seeded replay order, with every model's score and cost,
//! and the [`Drift`] that can break one model from a step on.

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::features::QueryFeatures;
use crate::pool::ModelPool;
use crate::rng::SplitMix64;

/// From a step on, one model scores 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// The model's id.
    pub model: String,
    /// The first step at which it scores 0.
    pub step: usize,
}

impl std::str::FromStr for Drift {
    type Err = Error;

    /// Parses `<model id>@<step>`.
    fn from_str(s: &str) -> Result<Drift> {
        let (model, step) = s
            .rsplit_once('@')
            .ok_or_else(|| Error::InvalidInput(format!("drift {s:?} is not <model id>@<step>")))?;
        let step = step.trim().parse::<usize>().map_err(|_| {
            Error::InvalidInput(format!("drift {s:?}: step {step:?} is not a number"))
        })?;
        if model.trim().is_empty() {
            return Err(Error::InvalidInput(format!("drift {s:?} names no model")));
        }
        Ok(Drift {
            model: model.trim().to_string(),
            step,
        })
    }
}

/// Queries in replay order with every model's score and cost.
#[derive(Debug, Clone)]
pub struct Stream {
    pub(super) pool: ModelPool,
    pub(super) dim: usize,
    pub(super) embedding_model: Option<String>,
    pub(super) ids: Vec<String>,
    pub(super) embeddings: Vec<f32>,
    pub(super) prompt_tokens: Vec<f64>,
    pub(super) scores: Vec<f64>,
    pub(super) costs: Vec<f64>,
    pub(super) drift: Option<Drift>,
}

impl Stream {
    /// Every query of the dataset (train and test) in the order of a shuffle seeded by `seed`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a dataset without embeddings or without queries.
    pub fn from_dataset(ds: &Dataset, seed: u64) -> Result<Stream> {
        Stream::from_splits(&[ds.train(), ds.test()], seed)
    }

    /// The queries of `split` in the order of a shuffle seeded by `seed`.
    ///
    /// # Errors
    ///
    /// As [`Stream::from_dataset`].
    pub fn from_split(split: &Split, seed: u64) -> Result<Stream> {
        Stream::from_splits(&[split], seed)
    }

    fn from_splits(splits: &[&Split], seed: u64) -> Result<Stream> {
        let first = splits[0];
        let (dim, m) = (first.dim(), first.pool().len());
        let mut rows: Vec<(usize, usize)> = Vec::new();
        for (s, split) in splits.iter().enumerate() {
            if !split.is_empty() {
                split.features()?;
                split.require_full_labels("a replay (which reveals the chosen model's score)")?;
                if split.dim() != dim || split.pool().ids().ne(first.pool().ids()) {
                    return Err(Error::InvalidInput(
                        "splits of a stream must share models and embeddings".into(),
                    ));
                }
            }
            rows.extend((0..split.len()).map(|r| (s, r)));
        }
        if rows.is_empty() {
            return Err(Error::InvalidInput(
                "a replay needs at least one query".into(),
            ));
        }
        SplitMix64::new(seed).shuffle(&mut rows);
        let n = rows.len();
        let mut stream = Stream {
            pool: first.pool().clone(),
            dim,
            embedding_model: first.embedding_model().map(str::to_string),
            ids: Vec::with_capacity(n),
            embeddings: Vec::with_capacity(n * dim),
            prompt_tokens: Vec::with_capacity(n),
            scores: Vec::with_capacity(n * m),
            costs: Vec::with_capacity(n * m),
            drift: None,
        };
        for (s, r) in rows {
            let split = splits[s];
            stream.ids.push(split.ids()[r].clone());
            stream
                .embeddings
                .extend_from_slice(&split.embeddings()[r * dim..(r + 1) * dim]);
            stream.prompt_tokens.push(split.prompt_tokens()[r]);
            stream
                .scores
                .extend_from_slice(&split.scores()[r * m..(r + 1) * m]);
            stream
                .costs
                .extend_from_slice(&split.costs()[r * m..(r + 1) * m]);
        }
        Ok(stream)
    }

    /// The stream with `drift` applied: the model scores 0 from the drift's step on.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] for a model not in the pool; [`Error::InvalidInput`] for a step
    /// beyond the stream or a second drift.
    pub fn with_drift(mut self, drift: Drift) -> Result<Stream> {
        let m = self.pool.index_of(&drift.model)?;
        if drift.step >= self.len() {
            return Err(Error::InvalidInput(format!(
                "drift step {} is beyond the stream's {} steps",
                drift.step,
                self.len()
            )));
        }
        if self.drift.is_some() {
            return Err(Error::InvalidInput("a stream takes one drift".into()));
        }
        let k = self.pool.len();
        for t in drift.step..self.len() {
            self.scores[t * k + m] = 0.0;
        }
        self.drift = Some(drift);
        Ok(self)
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the stream is empty (never: constructors refuse it).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The models.
    pub fn pool(&self) -> &ModelPool {
        &self.pool
    }

    /// The embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The embedding model, when known.
    pub fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }

    /// Query ids in stream order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The drift applied, if any.
    pub fn drift(&self) -> Option<&Drift> {
        self.drift.as_ref()
    }

    /// Model `m`'s (drifted) score at step `t`.
    pub fn score(&self, t: usize, m: usize) -> f64 {
        self.scores[t * self.pool.len() + m]
    }

    /// Model `m`'s cost at step `t`.
    pub fn cost(&self, t: usize, m: usize) -> f64 {
        self.costs[t * self.pool.len() + m]
    }

    /// The features of step `t`'s query.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidFeatures`] for an embedding that cannot be routed.
    pub fn features(&self, t: usize) -> Result<QueryFeatures> {
        let mut q = QueryFeatures::new(self.embeddings[t * self.dim..(t + 1) * self.dim].to_vec())?
            .with_prompt_tokens(self.prompt_tokens[t])?;
        if let Some(e) = &self.embedding_model {
            q = q.with_embedding_model(e.clone());
        }
        Ok(q)
    }
}
