//! Learning: from labelled splits (full information, with the unsupervised parts fitted first)
//! and from live feedback on the chosen model, with the drift detector's alarms.

use super::forgetting::DetectorState;
use super::Event;
use super::{BanditRouter, Learned};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::features::{normalize_into, FeatureBatch};
use crate::pool::ModelPool;
use crate::router::{Feedback, Learner};

impl<L: Learned> BanditRouter<L> {
    /// A router fitted on the labelled split `train`: its unsupervised parts on the split's
    /// embeddings, then every model's outcome on every query (full information).
    ///
    /// # Errors
    ///
    /// A split without embeddings, an invalid configuration, and the errors of
    /// [`BanditRouter::observe_split`].
    pub fn warm_start(train: &Split, config: L::Config) -> Result<Self> {
        let batch = train.features()?;
        let router = BanditRouter::new(
            train.pool().clone(),
            train.dim(),
            train.embedding_model(),
            config,
        )?;
        router.fit_unlabelled_if_needed(&batch)?;
        router.observe_split(train)?;
        Ok(router)
    }

    fn fit_unlabelled_if_needed(&self, batch: &FeatureBatch<'_>) -> Result<()> {
        match self.fit_unlabelled(batch) {
            Err(Error::Unsupported(_)) => Ok(()),
            other => other,
        }
    }

    /// Fits the unsupervised parts on unlabelled embeddings: the PCA projection of a linear
    /// router, the clusters of `cluster-ucb`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the configuration has nothing to fit; [`Error::InvalidInput`]
    /// when it is already fitted or there are too few rows; the batch's shape errors.
    pub fn fit_unlabelled(&self, batch: &FeatureBatch<'_>) -> Result<()> {
        batch.check_compatible(self.shared.dim, self.shared.embedding_model.as_deref())?;
        let rows = normalized_rows(batch);
        let mut state = self.write();
        if state.journal.is_some() {
            return Err(Error::Unsupported(format!(
                "{}: fitting the unsupervised parts of a router whose state is shared (fit \
                 them once, before any replica starts)",
                L::KIND
            )));
        }
        let config = &self.shared.config;
        state.learned.fit_unlabelled(config, &rows, self.shared.dim)
    }

    /// Learns every model's outcome on every query of the labelled `split` (full information),
    /// in the split's order. With partial labels (a log of single-model outcomes, for one), only
    /// the observed cells are learned, query by query and model by model, as feedback would have
    /// been. The drift detector is not fed: labelled data is trusted.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] when the split's models differ from the router's; a split without
    /// embeddings or of another dimension.
    pub fn observe_split(&self, split: &Split) -> Result<()> {
        let map = split_map(&self.shared.pool, split)?;
        let batch = split.features()?;
        batch.check_compatible(self.shared.dim, self.shared.embedding_model.as_deref())?;
        let m = self.shared.pool.len();
        let rows = normalized_rows(&batch);
        if split.observed_mask().is_some() {
            let pairs: Vec<(usize, usize)> = map.into_iter().enumerate().collect();
            return self.observe_cells(split, &rows, &pairs);
        }
        let mut scores = vec![0.0; split.len() * m];
        for r in 0..split.len() {
            for (j, &col) in map.iter().enumerate() {
                scores[r * m + j] = split.score(r, col);
            }
        }
        let mut state = self.write();
        let config = &self.shared.config;
        state
            .learned
            .observe_all(config, &rows, self.shared.dim, &scores, m)?;
        if state.journal.is_some() {
            // Shared: every labelled outcome is an observation the other replicas learn too.
            let mut key = Vec::new();
            for r in 0..split.len() {
                state.learned.key(
                    config,
                    &rows[r * self.shared.dim..(r + 1) * self.shared.dim],
                    &mut key,
                )?;
                let tokens = Some(split.prompt_tokens()[r]);
                for (j, &col) in map.iter().enumerate() {
                    let event = Event::Observe {
                        model: j as u32,
                        key: key.clone(),
                        quality: split.score(r, col),
                        price: self.shared.pool.estimate_cost(j, tokens),
                        cost: split.cost(r, col),
                    };
                    if let Some(journal) = &mut state.journal {
                        journal.push(event);
                    }
                }
            }
        }
        for r in 0..split.len() {
            let tokens = Some(split.prompt_tokens()[r]);
            for (j, &col) in map.iter().enumerate() {
                let c = &mut state.cost[j];
                c[0] += 1.0;
                c[1] += self.shared.pool.estimate_cost(j, tokens);
                c[2] += split.cost(r, col);
            }
        }
        let n = split.len() as u64;
        for p in &mut state.pulls {
            *p += n;
        }
        state.observations += n * m as u64;
        Ok(())
    }

    /// Learns the observed cells of `split` (its L2-normalised embeddings `rows`) for the
    /// (model, split column) pairs of `pairs`, query by query and model by model, as feedback
    /// would have been: the warm start from logged single-model outcomes, an onboarded model's
    /// labelled queries, and [`BanditRouter::observe_split`] with partial labels. A router that
    /// shares its state learns each cell from the query's key and records it in its journal, as
    /// [`Learner::observe`] does, so the other replicas learn the same.
    pub(super) fn observe_cells(
        &self,
        split: &Split,
        rows: &[f32],
        pairs: &[(usize, usize)],
    ) -> Result<()> {
        let mut state = self.write();
        let config = &self.shared.config;
        let dim = self.shared.dim;
        let mut key = Vec::new();
        for (r, x) in rows.chunks_exact(dim).enumerate() {
            let tokens = Some(split.prompt_tokens()[r]);
            let mut keyed = false;
            for &(j, col) in pairs {
                if !split.observed(r, col) {
                    continue;
                }
                let (quality, cost) = (split.score(r, col), split.cost(r, col));
                let price = self.shared.pool.estimate_cost(j, tokens);
                if state.journal.is_some() {
                    if !keyed {
                        state.learned.key(config, x, &mut key)?;
                        keyed = true;
                    }
                    state.learned.observe_key(config, &key, j, quality)?;
                    if let Some(journal) = &mut state.journal {
                        journal.push(Event::Observe {
                            model: j as u32,
                            key: key.clone(),
                            quality,
                            price,
                            cost,
                        });
                    }
                } else {
                    state.learned.observe(config, x, j, quality)?;
                }
                let c = &mut state.cost[j];
                c[0] += 1.0;
                c[1] += price;
                c[2] += cost;
                state.pulls[j] += 1;
                state.observations += 1;
            }
        }
        Ok(())
    }

    /// Wipes model `id`'s statistics, as a detector alarm does: its estimate falls back to the
    /// optimistic prior and it is re-learned from fresh outcomes. Use it to broadcast an alarm
    /// raised on another replica, or after a known change of a model.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] when `id` is not in the pool.
    pub fn forget_model(&self, id: &str) -> Result<()> {
        let m = self.shared.pool.index_of(id)?;
        let mut state = self.write();
        state.learned.forget(&self.shared.config, m);
        state.forgets[m] += 1;
        state.detector[m] = DetectorState::default();
        if let Some(journal) = &mut state.journal {
            journal.push(Event::Forget { model: m as u32 });
        }
        Ok(())
    }
}

/// Rows of `batch`, L2-normalised, row-major.
pub(super) fn normalized_rows(batch: &FeatureBatch<'_>) -> Vec<f32> {
    let dim = batch.dim();
    let mut rows = vec![0.0f32; batch.rows() * dim];
    for (r, out) in rows.chunks_exact_mut(dim).enumerate() {
        normalize_into(batch.row(r), out);
    }
    rows
}

/// For each of the router's models, its column in `split`.
fn split_map(pool: &ModelPool, split: &Split) -> Result<Vec<usize>> {
    pool.ids()
        .map(|id| {
            split.pool().index_of(id).map_err(|_| {
                Error::UnknownModel(format!("{id} (the router's model is not in the split)"))
            })
        })
        .collect()
}

impl<L: Learned> Learner for BanditRouter<L> {
    fn observe(&self, feedback: &Feedback<'_>) -> Result<()> {
        let pool = &self.shared.pool;
        feedback.validate(pool, self.shared.dim)?;
        feedback
            .features
            .as_batch()
            .check_compatible(self.shared.dim, self.shared.embedding_model.as_deref())?;
        let x = feedback.features.embedding();
        let m = feedback.model;
        let config = &self.shared.config;
        let detector = L::forgetting(config).detector.as_ref();
        let price = pool.estimate_cost(m, feedback.features.prompt_tokens());
        let mut state = self.write();
        let residual = match detector {
            Some(_) => Some(feedback.quality - state.learned.mean(config, x, m)?),
            None => None,
        };
        if state.journal.is_some() {
            // Shared: learn from the key, as the other replicas will, and record it.
            let mut key = Vec::with_capacity(state.learned.key_len());
            state.learned.key(config, x, &mut key)?;
            state
                .learned
                .observe_key(config, &key, m, feedback.quality)?;
            if let Some(journal) = &mut state.journal {
                journal.push(Event::Observe {
                    model: m as u32,
                    key,
                    quality: feedback.quality,
                    price,
                    cost: feedback.cost,
                });
            }
        } else {
            state.learned.observe(config, x, m, feedback.quality)?;
        }
        state.pulls[m] += 1;
        state.observations += 1;
        let c = &mut state.cost[m];
        c[0] += 1.0;
        c[1] += price;
        c[2] += feedback.cost;
        if let (Some(det), Some(e)) = (detector, residual) {
            let s = &mut state.detector[m];
            s.fast += det.fast_rate * (e - s.fast);
            s.slow += det.slow_rate * (e - s.slow);
            s.since += 1;
            if s.since >= det.min_pulls && s.fast - s.slow < -det.threshold {
                *s = DetectorState::default();
                state.learned.forget(config, m);
                state.forgets[m] += 1;
                state.alarms[m] += 1;
                if let Some(journal) = &mut state.journal {
                    journal.push(Event::Forget { model: m as u32 });
                }
                tracing::info!(
                    "{}: drift detector alarm for {:?} after {} observations: its statistics \
                     are wiped",
                    L::KIND,
                    pool.id(m),
                    state.observations
                );
            }
        }
        Ok(())
    }

    fn observations(&self) -> u64 {
        self.read().observations
    }

    fn alarms(&self) -> Vec<u64> {
        self.read().alarms.clone()
    }
}
