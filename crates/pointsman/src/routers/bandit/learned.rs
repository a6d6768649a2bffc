//! The contract between [`BanditRouter`](super::BanditRouter) and its learners: the sealed
//! [`Learned`] trait and the [`Context`] of an estimate.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Forgetting;
use crate::error::Result;
use crate::router::Signals;
use crate::saved::SavedRouter;

/// What a learner's estimate may depend on besides its statistics.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Observations learned so far (the clock of front-loaded exploration and of Thompson
    /// draws).
    pub observations: u64,
    /// Whether to explore (upper confidence bound or posterior sample) or to report the mean.
    pub explore: bool,
}

pub(super) mod sealed {
    pub trait Sealed {}
}

/// The learned per-model quality model behind a [`BanditRouter`]: [`Linear`], [`KnnUcb`] or
/// [`ClusterUcb`]. Sealed: the wrapper relies on its exact contract.
///
/// [`BanditRouter`]: super::BanditRouter
/// [`Linear`]: super::Linear
/// [`KnnUcb`]: super::KnnUcb
/// [`ClusterUcb`]: super::ClusterUcb
pub trait Learned: sealed::Sealed + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The learner's hyper-parameters.
    type Config: Clone
        + std::fmt::Debug
        + PartialEq
        + Default
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;

    /// The router kind's name ([`crate::kind::RouterKind::name`]), also the prefix of its saved
    /// tensors.
    const KIND: &'static str;

    /// The forgetting settings of `config`.
    fn forgetting(config: &Self::Config) -> &Forgetting;

    /// Whether `config` routes without exploration.
    fn is_greedy(config: &Self::Config) -> bool;

    /// `config` with its greedy flag set to `greedy`.
    fn with_greedy(config: &Self::Config, greedy: bool) -> Self::Config;

    /// Whether exploring routes on a random draw (a posterior sample) rather than a
    /// deterministic bonus.
    fn samples() -> bool {
        false
    }

    /// Checks `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field out of range.
    ///
    /// [`Error::Config`]: crate::error::Error::Config
    fn validate(config: &Self::Config) -> Result<()>;

    /// The state of a router that has observed nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the configuration does not fit the dimensions.
    ///
    /// [`Error::Config`]: crate::error::Error::Config
    fn cold(config: &Self::Config, models: usize, dim: usize) -> Result<Self>;

    /// Fits the unsupervised parts (projection, clusters) on unit-length rows of `dim` values.
    ///
    /// # Errors
    ///
    /// Learner specific: nothing to fit, already fitted, too few rows.
    fn fit_unlabelled(&mut self, config: &Self::Config, rows: &[f32], dim: usize) -> Result<()>;

    /// Writes every model's expected quality (the posterior mean, unclipped) for the
    /// unit-length query `x` into `mean`, and into `score` the figure the choice maximises:
    /// the mean plus the exploration bonus (or a posterior draw) when `ctx.explore`, else the
    /// mean.
    ///
    /// # Errors
    ///
    /// When the learner cannot route yet (an unfitted projection).
    fn estimate(
        &self,
        config: &Self::Config,
        x: &[f32],
        ctx: &Context,
        mean: &mut [f64],
        score: &mut [f64],
    ) -> Result<Signals>;

    /// Model `m`'s estimate without exploration.
    ///
    /// # Errors
    ///
    /// As [`Learned::estimate`].
    fn mean(&self, config: &Self::Config, x: &[f32], m: usize) -> Result<f64>;

    /// Learns that model `m` scored `quality` on `x`, applying the forgetting rules.
    ///
    /// # Errors
    ///
    /// As [`Learned::estimate`].
    fn observe(&mut self, config: &Self::Config, x: &[f32], m: usize, quality: f64) -> Result<()>;

    /// Learns every model's score on every row (full information), row by row.
    ///
    /// # Errors
    ///
    /// As [`Learned::observe`].
    fn observe_all(
        &mut self,
        config: &Self::Config,
        rows: &[f32],
        dim: usize,
        scores: &[f64],
        models: usize,
    ) -> Result<()> {
        for (r, x) in rows.chunks_exact(dim).enumerate() {
            for m in 0..models {
                self.observe(config, x, m, scores[r * models + m])?;
            }
        }
        Ok(())
    }

    /// Wipes model `m`'s statistics: it falls back to its prior.
    fn forget(&mut self, config: &Self::Config, m: usize);

    /// Adds one model after the others, with the prior of a model known by its card alone:
    /// `weights[i]` (summing to 1, [`crate::ModelPool::prior_weights`]) is how much model `i`'s
    /// statistics count toward it. Every other model's statistics stay bit for bit what they
    /// were. See [`BanditRouter::add_model`](super::BanditRouter::add_model) for each learner's
    /// prior.
    fn add_arm(&mut self, config: &Self::Config, weights: &[f64]);

    /// Checks that `other`'s statistics can be added to these (same projection, same clusters).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] or [`Error::Unsupported`] naming the difference.
    ///
    /// [`Error::Config`]: crate::error::Error::Config
    /// [`Error::Unsupported`]: crate::error::Error::Unsupported
    fn check_mergeable(&self, other: &Self) -> Result<()>;

    /// Adds model `m`'s statistics that `other` gathered beyond `base` (beyond the prior when
    /// `base` is `None`): `new` observations of `m`, the most recent ones of `other`.
    fn absorb(
        &mut self,
        config: &Self::Config,
        other: &Self,
        base: Option<&Self>,
        m: usize,
        new: u64,
    );

    /// Recomputes derived state after [`Learned::absorb`] calls.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the merged statistics are not usable.
    ///
    /// [`Error::InvalidInput`]: crate::error::Error::InvalidInput
    fn after_merge(&mut self, config: &Self::Config) -> Result<()>;

    /// Checks the invariants a saved state must meet to load again (finite statistics,
    /// consistent matrices), so that a state that went wrong is never written over a good file.
    ///
    /// # Errors
    ///
    /// A message naming what is inconsistent.
    fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    /// Checks that the state can be shared between replicas: its unsupervised parts (PCA
    /// projection, clusters) are fitted, so that an observation's key ([`Learned::key`]) means
    /// the same on every replica. Returns the bit patterns of those fixed parts (the
    /// projection and its centre, the centroids; empty when there are none), which go into the
    /// exchange's fingerprint.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] naming what to fit first.
    ///
    /// [`Error::Unsupported`]: crate::error::Error::Unsupported
    fn fixed_parts(&self) -> Result<Vec<f32>>;

    /// The number of `f32` values of an observation's key.
    fn key_len(&self) -> usize;

    /// Writes the key of the unit-length query `x` into `out`: what the state keeps of an
    /// observation (the linear features `φ(x)`, the cluster's index, the embedding itself), so
    /// that [`Learned::observe_key`] with it learns exactly what [`Learned::observe`] with `x`
    /// does.
    ///
    /// # Errors
    ///
    /// As [`Learned::estimate`].
    fn key(&self, config: &Self::Config, x: &[f32], out: &mut Vec<f32>) -> Result<()>;

    /// Checks a key that came from another process: its length and range.
    ///
    /// # Errors
    ///
    /// A message naming what is wrong.
    fn check_key(&self, key: &[f32]) -> std::result::Result<(), String>;

    /// Learns that model `m` scored `quality` on the query whose key is `key`, applying the
    /// forgetting rules: the same as [`Learned::observe`] on the query.
    ///
    /// # Errors
    ///
    /// As [`Learned::observe`].
    fn observe_key(
        &mut self,
        config: &Self::Config,
        key: &[f32],
        m: usize,
        quality: f64,
    ) -> Result<()>;

    /// Learns a batch of observations given by their keys, in order: `(key, model, quality)`.
    /// The same as [`Learned::observe_key`] on each in turn (to float tolerance); a learner
    /// overrides it where a batch has a cheaper exact update (the linear learners re-invert
    /// once per model instead of one Sherman–Morrison update per observation).
    ///
    /// # Errors
    ///
    /// As [`Learned::observe`].
    fn observe_keys(
        &mut self,
        config: &Self::Config,
        batch: &[(&[f32], usize, f64)],
    ) -> Result<()> {
        for &(key, m, quality) in batch {
            self.observe_key(config, key, m, quality)?;
        }
        Ok(())
    }

    /// Adds the learner's tensors to `saved`.
    fn save(&self, saved: SavedRouter) -> SavedRouter;

    /// Rebuilds the learner from `saved`'s tensors.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for missing or misshapen tensors and values out of range.
    ///
    /// [`Error::Format`]: crate::error::Error::Format
    fn load(
        config: &Self::Config,
        saved: &mut SavedRouter,
        models: usize,
        dim: usize,
    ) -> Result<Self>;
}

/// Checks that `a` and `b` hold the same `f32` values, bit for bit (projections, centroids).
pub(super) fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
