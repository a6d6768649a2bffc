//! The decision-time policies measured on a labelled dataset: the figures of `docs/results.md`
//! ("Decision-time policies"), computed once here for the results example
//! (`cargo run --release -p pointsman-examples --example policies_results`) and the quality
//! tests (`tests/quality.rs`).
//!
//! - [`pacing()`]: a paced budget over the test split in seeded orders, against the best fixed cost
//!   weight in hindsight at the same spend and the hard cut-off;
//! - [`episodes()`]: simulated agent episodes with a budget each, costs drawn around their
//!   estimates, against a per-step fixed cost weight at equal total spend;
//! - [`guard_leave_group_out`]: the OOD guard, each task group left out of the fit in turn;
//! - [`stickiness`]: model switches per session with and without a margin, and their quality;
//! - [`latency_caps`]: synthetic latency figures on the cards and a hard latency cap.
//!
//! Every quality is the test label of the model chosen; a refused query scores 0 and costs
//! nothing.

use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use crate::data::Split;
use crate::error::{Error, Result};
use crate::features::QueryFeatures;
use crate::policy::guard::auroc;
use crate::policy::{
    BudgetConfig, BudgetKey, BudgetWindow, EmbeddingGuard, Episode, GuardFit, Policy, PolicyConfig,
    PolicyRouter, Request, StickyConfig,
};
use crate::pool::ModelPool;
use crate::rng::SplitMix64;
use crate::router::{best_model, Estimates, Router};

/// The test split's estimates, computed once, and one query's features and estimates on demand.
struct Stream<'a> {
    split: &'a Split,
    est: Estimates,
    models: usize,
}

impl<'a> Stream<'a> {
    fn new(router: &dyn Router, split: &'a Split) -> Result<Stream<'a>> {
        let est = router.estimate_batch(&split.features()?)?;
        Ok(Stream {
            split,
            est,
            models: router.models().len(),
        })
    }

    fn features(&self, r: usize) -> Result<QueryFeatures> {
        let dim = self.split.dim();
        let mut f = QueryFeatures::new(self.split.embeddings()[r * dim..(r + 1) * dim].to_vec())?
            .with_prompt_tokens(self.split.prompt_tokens()[r])?;
        if let Some(t) = &self.split.tasks()[r] {
            f = f.with_task(t.clone());
        }
        if let Some(m) = self.split.embedding_model() {
            f = f.with_embedding_model(m);
        }
        Ok(f)
    }

    fn row(&self, r: usize) -> Estimates {
        let mut e = Estimates::new(1, self.models);
        let (q, c) = e.row_mut(0);
        q.copy_from_slice(self.est.quality_row(r));
        c.copy_from_slice(self.est.cost_row(r));
        if !self.est.score.is_empty() {
            let s = self.est.score_row(r).to_vec();
            e.row_mut_with_score(0).2.copy_from_slice(&s);
        }
        e.signals[0] = self.est.signals[r];
        e
    }
}

fn best_single(train: &Split) -> usize {
    let means = train.mean_scores();
    (0..means.len())
        .max_by(|&a, &b| means[a].total_cmp(&means[b]).then(b.cmp(&a)))
        .expect("a pool has a model")
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    s / n.max(1) as f64
}

mod episodes;
mod guard;
mod latency;
mod pacing;
mod run;
mod sticky;

pub use episodes::*;
pub use guard::*;
pub use latency::*;
pub use pacing::*;
pub use run::*;
pub use sticky::*;
