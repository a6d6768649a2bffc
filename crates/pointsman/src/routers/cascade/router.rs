//! The fitted cascade: its training table, the optional kNN estimator, and how it is built
//! (without data, fitted on a split, or re-configured).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::engine::{self, Params, Plan};
use super::{CascadeConfig, CascadeOrder};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::pool::ModelPool;
use crate::routers::knn::KnnRouter;

/// Per query, its neighbours as (similarity, reference row).
type NeighbourLists = Vec<Vec<(f32, u32)>>;

/// A fitted cascade. See the [module documentation](super).
#[derive(Clone)]
pub struct CascadeRouter {
    pub(super) config: CascadeConfig,
    pub(super) pool: ModelPool,
    pub(super) ids: Arc<[String]>,
    pub(super) dim: usize,
    pub(super) embedding_model: Option<String>,
    /// Resolved chain stages (empty for dynamic cascades).
    pub(super) chain: Vec<(usize, f64)>,
    /// Training success masks with their counts, sorted by mask.
    pub(super) table: Arc<[(u32, f64)]>,
    pub(super) table_rows: f64,
    /// Success count per model over the table.
    pub(super) successes: Vec<f64>,
    pub(super) knn: Option<Arc<KnnRouter>>,
    /// Success mask of each kNN reference row.
    pub(super) reference_masks: Vec<u32>,
    /// Fingerprint of the split this router was fitted on in this process (for leave-one-out
    /// estimates when it is calibrated on the same split).
    pub(super) fitted_on: Option<u64>,
    /// With an estimator fitted in this process: each training query's leave-one-out
    /// neighbours, by split row.
    pub(super) loo: Option<Arc<NeighbourLists>>,
}

impl std::fmt::Debug for CascadeRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CascadeRouter")
            .field("config", &self.config)
            .field("models", &self.ids)
            .field("dim", &self.dim)
            .field("training_rows", &self.table_rows)
            .finish()
    }
}

/// A split's identity: its query ids and models.
pub(super) fn fingerprint(split: &Split) -> u64 {
    let mut h = crate::rng::mix64(split.len() as u64 ^ 0x0063_6173_6361_6465);
    let mut eat = |s: &str| {
        for chunk in s.as_bytes().chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            h = crate::rng::mix64(h ^ u64::from_le_bytes(b));
        }
        h = crate::rng::mix64(h ^ s.len() as u64);
    };
    for id in split.pool().ids() {
        eat(id);
    }
    for id in split.ids() {
        eat(id);
    }
    h
}

pub(super) fn success_mask(scores: impl Iterator<Item = f64>, threshold: f64) -> u32 {
    scores.enumerate().fold(
        0u32,
        |m, (j, s)| if s >= threshold { m | (1 << j) } else { m },
    )
}

impl CascadeRouter {
    /// A fixed-chain cascade without training data: every model's success prior is 0.5, so the
    /// thresholds apply to the confidence alone (through the posterior).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid config, a dynamic order or an estimator (both need
    /// training data: use [`CascadeRouter::fit`]), or more than 32 models;
    /// [`Error::UnknownModel`] for a stage whose model is not in `pool`.
    pub fn new(pool: ModelPool, dim: usize, config: &CascadeConfig) -> Result<CascadeRouter> {
        config.validate()?;
        if config.order == CascadeOrder::Dynamic {
            return Err(Error::Config(
                "a dynamic cascade needs training data: use CascadeRouter::fit".into(),
            ));
        }
        if config.estimator.is_some() {
            return Err(Error::Config(
                "a cascade estimator needs training data: use CascadeRouter::fit, or set estimator to None".into(),
            ));
        }
        if dim == 0 {
            return Err(Error::Config("cascade dim must be at least 1".into()));
        }
        if dim > crate::saved::MAX_DIM {
            return Err(Error::Config(format!(
                "cascade dim {dim} is above the ceiling of {}",
                crate::saved::MAX_DIM
            )));
        }
        CascadeRouter::assemble(config.clone(), pool, dim, None, Vec::new(), None, None)
    }

    /// Fits a cascade on a labelled split: the training table of success patterns and, when the
    /// config has one, the kNN estimator.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid config or more than 32 models; [`Error::UnknownModel`]
    /// for a chain stage not in the split's pool; [`Error::InvalidInput`] for an empty split or,
    /// with an estimator, one without embeddings.
    pub fn fit(train: &Split, config: &CascadeConfig) -> Result<CascadeRouter> {
        config.validate()?;
        if train.is_empty() {
            return Err(Error::InvalidInput(format!(
                "cannot fit a cascade on the empty {} split",
                train.name()
            )));
        }
        train.require_full_labels("fitting a cascade (which simulates calling each model)")?;
        let m = train.pool().len();
        if m > engine::MAX_MODELS {
            return Err(Error::Config(format!(
                "a cascade handles at most {} models, the split has {m}",
                engine::MAX_MODELS
            )));
        }
        let mut counts: BTreeMap<u32, f64> = BTreeMap::new();
        for r in 0..train.len() {
            let mask = success_mask(
                train.scores()[r * m..(r + 1) * m].iter().copied(),
                config.success_threshold,
            );
            *counts.entry(mask).or_insert(0.0) += 1.0;
        }
        if train.dim() == 0 {
            return Err(Error::InvalidInput(format!(
                "the {} split has no embeddings",
                train.name()
            )));
        }
        let (knn, loo) = match &config.estimator {
            Some(k) => {
                let (knn, lists) = KnnRouter::fit_with_neighbours(train, k, k.k)?;
                (Some(Arc::new(knn)), Some(Arc::new(lists)))
            }
            None => (None, None),
        };
        let mut router = CascadeRouter::assemble(
            config.clone(),
            train.pool().clone(),
            train.dim(),
            train.embedding_model().map(str::to_string),
            counts.into_iter().collect(),
            knn,
            Some(fingerprint(train)),
        )?;
        router.loo = loo;
        Ok(router)
    }

    pub(super) fn assemble(
        config: CascadeConfig,
        pool: ModelPool,
        dim: usize,
        embedding_model: Option<String>,
        table: Vec<(u32, f64)>,
        knn: Option<Arc<KnnRouter>>,
        fitted_on: Option<u64>,
    ) -> Result<CascadeRouter> {
        let m = pool.len();
        if m > engine::MAX_MODELS {
            return Err(Error::Config(format!(
                "a cascade handles at most {} models, the pool has {m}",
                engine::MAX_MODELS
            )));
        }
        let chain = match &config.order {
            CascadeOrder::Dynamic => Vec::new(),
            CascadeOrder::Chain { stages } => stages
                .iter()
                .map(|s| Ok((pool.index_of(&s.model)?, s.threshold)))
                .collect::<Result<_>>()?,
        };
        let mut successes = vec![0.0; m];
        let mut rows = 0.0;
        for &(mask, count) in &table {
            rows += count;
            for (j, s) in successes.iter_mut().enumerate() {
                if mask & (1 << j) != 0 {
                    *s += count;
                }
            }
        }
        let reference_masks = match &knn {
            Some(k) => k
                .reference_scores()
                .chunks_exact(m)
                .map(|row| {
                    success_mask(row.iter().map(|&s| f64::from(s)), config.success_threshold)
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(CascadeRouter {
            ids: pool.ids().map(str::to_string).collect(),
            config,
            pool,
            dim,
            embedding_model,
            chain,
            table: table.into(),
            table_rows: rows,
            successes,
            knn,
            reference_masks,
            fitted_on,
            loo: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CascadeConfig {
        &self.config
    }

    /// The same router under another configuration that keeps the estimator (order, thresholds,
    /// cost weight, confidence model, …).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid config, one whose estimator differs from this router's,
    /// or a dynamic order on a router without training data; [`Error::UnknownModel`] for a
    /// chain stage not in the pool.
    pub fn with_config(&self, config: &CascadeConfig) -> Result<CascadeRouter> {
        config.validate()?;
        if config.estimator != self.config.estimator {
            return Err(Error::Config(
                "with_config keeps the estimator: refit to change it".into(),
            ));
        }
        if config.order == CascadeOrder::Dynamic && self.table_rows == 0.0 {
            return Err(Error::Config(
                "a dynamic cascade needs training data: use CascadeRouter::fit".into(),
            ));
        }
        if config.success_threshold != self.config.success_threshold {
            return Err(Error::Config(
                "with_config keeps the success threshold: refit to change it".into(),
            ));
        }
        let mut r = CascadeRouter::assemble(
            config.clone(),
            self.pool.clone(),
            self.dim,
            self.embedding_model.clone(),
            self.table.to_vec(),
            self.knn.clone(),
            self.fitted_on,
        )?;
        // Share the table, so that simulations cache its sums once.
        r.table = self.table.clone();
        r.loo = self.loo.clone();
        Ok(r)
    }

    pub(super) fn params(
        &self,
        mu: f64,
        mask: Option<&[bool]>,
        budget: f64,
        max_steps: usize,
    ) -> Params {
        let allowed = (0..self.pool.len())
            .filter(|&j| mask.is_none_or(|m| m[j]))
            .fold(0u32, |a, j| a | (1 << j));
        Params {
            plan: if self.chain.is_empty() {
                Plan::Dynamic {
                    threshold: self.config.accept_threshold,
                }
            } else {
                Plan::Chain(self.chain.clone())
            },
            mu,
            eps: self.config.confidence_error,
            s0: self.config.prior_strength,
            max_steps,
            budget,
            lookahead: self.config.lookahead,
            allowed,
        }
    }

    /// The chain's stages as (model index, threshold); empty for a dynamic cascade.
    pub fn stages(&self) -> &[(usize, f64)] {
        &self.chain
    }
}
