//! The cascade's saved form: the training table as tensors and, with an estimator, the kNN's
//! tensors and notes under the `cascade.` prefix.

use std::sync::Arc;

use super::engine;
use super::{CascadeConfig, CascadeOrder, CascadeRouter};
use crate::error::{Error, Result};
use crate::kind::RouterKind;
use crate::router::Router;
use crate::routers::knn::KnnRouter;
use crate::saved::{tagged_json, SavedRouter, Tensor};

impl CascadeRouter {
    /// Rebuilds a cascade from its saved form.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for an invalid config, missing or misshapen tensors, or values out of
    /// range.
    pub fn from_saved(config: CascadeConfig, mut saved: SavedRouter) -> Result<CascadeRouter> {
        let bad = |m: String| Error::format("saved router", m);
        config.validate().map_err(|e| bad(e.to_string()))?;
        let m = saved.pool.len();
        if m > engine::MAX_MODELS {
            return Err(bad(format!("a cascade with {m} models")));
        }
        let p = match saved.shape("cascade.table.masks") {
            Some([p]) => *p,
            _ => return Err(bad("missing or misshapen tensor cascade.table.masks".into())),
        };
        let masks = saved.take_u32("cascade.table.masks", &[p])?;
        let counts = saved.take_f64("cascade.table.counts", &[p])?;
        let limit = if m == 32 { u32::MAX } else { (1u32 << m) - 1 };
        if masks.iter().any(|&k| k > limit) || masks.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad(
                "cascade.table.masks are out of range or not sorted".into()
            ));
        }
        if counts.iter().any(|c| !c.is_finite() || *c < 0.0) {
            return Err(bad(
                "cascade.table.counts are not non-negative numbers".into()
            ));
        }
        if p == 0 && config.order == CascadeOrder::Dynamic {
            return Err(bad("a dynamic cascade without training data".into()));
        }
        let knn = match &config.estimator {
            None => None,
            Some(kc) => {
                // Every `cascade.` tensor left is the estimator's (`cascade.knn.…`); moved with
                // `split_off`, which also moves those a memory-mapped file left in place (a
                // copy of `tensors` alone missed them: `open_mmap` refused the file).
                let mut inner =
                    saved.split_off("cascade.", tagged_json(RouterKind::Knn.name(), kc));
                inner.notes.retain(|k, _| k.starts_with("knn."));
                Some(Arc::new(KnnRouter::from_saved(kc.clone(), inner)?))
            }
        };
        CascadeRouter::assemble(
            config,
            saved.pool,
            saved.dim,
            saved.embedding_model,
            masks.into_iter().zip(counts).collect(),
            knn,
            None,
        )
        .map_err(|e| bad(e.to_string()))
    }

    /// The saved form (what [`Router::to_saved`] returns).
    pub(super) fn saved_form(&self) -> Result<SavedRouter> {
        let p = self.table.len();
        let mut saved = SavedRouter::new(
            RouterKind::Cascade.name(),
            &self.config,
            self.pool.clone(),
            self.embedding_model.clone(),
            self.dim,
        )
        .with_tensor(
            "cascade.table.masks",
            Tensor::u32(&[p], self.table.iter().map(|t| t.0).collect()),
        )
        .with_tensor(
            "cascade.table.counts",
            Tensor::f64(&[p], self.table.iter().map(|t| t.1).collect()),
        );
        if let Some(knn) = &self.knn {
            let inner = knn.to_saved()?;
            for (name, t) in inner.tensors {
                saved.tensors.insert(format!("cascade.{name}"), t);
            }
            for (k, v) in inner.notes {
                saved.notes.insert(format!("cascade.{k}"), v);
            }
        }
        Ok(saved)
    }
}
