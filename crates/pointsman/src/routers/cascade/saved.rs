//! The cascade's saved form: the training table as tensors and, with an estimator, the kNN's
//! tensors and notes under the `cascade.` prefix.

use std::sync::Arc;

use super::engine;
use super::{CascadeConfig, CascadeOrder, CascadeRouter};
use crate::error::{Error, Result};
use crate::kind::RouterKind;
use crate::router::Router;
use crate::routers::knn::KnnRouter;
use crate::saved::{SavedRouter, Tensor};

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
                let mut inner = SavedRouter::new(
                    RouterKind::Knn.name(),
                    kc,
                    saved.pool.clone(),
                    saved.embedding_model.clone(),
                    saved.dim,
                );
                let names: Vec<String> = saved
                    .tensors
                    .keys()
                    .filter(|k| k.starts_with("cascade.knn."))
                    .cloned()
                    .collect();
                for name in names {
                    let t = saved.tensors.remove(&name).expect("listed above");
                    inner
                        .tensors
                        .insert(name["cascade.".len()..].to_string(), t);
                }
                inner.notes = saved
                    .notes
                    .iter()
                    .filter_map(|(k, v)| {
                        k.strip_prefix("cascade.")
                            .filter(|k| k.starts_with("knn."))
                            .map(|k| (k.to_string(), v.clone()))
                    })
                    .collect();
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
