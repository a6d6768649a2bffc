//! The kNN router's saved form: its tensors and notes, and the HNSW graph's.

use super::fit::OOD_QUANTILES;
use super::partial::{Anchor, RefLabels};
use super::{hnsw, KnnConfig, KnnRouter};
use crate::error::{Error, Result};
use crate::kind::RouterKind;
use crate::saved::{SavedRouter, Tensor};

impl KnnRouter {
    /// Rebuilds a kNN router from its saved form.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for missing or misshapen tensors or values out of range.
    pub fn from_saved(config: KnnConfig, mut saved: SavedRouter) -> Result<KnnRouter> {
        config
            .validate()
            .map_err(|e| Error::format("saved router", e.to_string()))?;
        let m = saved.pool.len();
        let d = saved.dim;
        let n = saved
            .shape("knn.embeddings")
            .and_then(|s| s.first().copied())
            .ok_or_else(|| Error::format("saved router", "missing tensor knn.embeddings"))?;
        let embeddings = saved.take_f32s("knn.embeddings", &[n, d])?;
        let scores = saved.take_f32("knn.scores", &[n, m])?;
        let costs = saved.take_f32("knn.costs", &[n, m])?;
        let output_tokens = saved.take_f32("knn.output_tokens", &[n, m])?;
        let tasks = saved.take_u32("knn.tasks", &[n])?;
        let ood = saved.take_f32("knn.ood_quantiles", &[OOD_QUANTILES])?;
        if ood.iter().any(|v| v.is_nan()) || ood.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::format(
                "saved router",
                "knn.ood_quantiles are not sorted",
            ));
        }
        let task_names: Vec<String> = match saved.notes.get("knn.tasks") {
            Some(j) => serde_json::from_str(j)
                .map_err(|e| Error::format("saved router", format!("bad note knn.tasks: {e}")))?,
            None => Vec::new(),
        };
        let observed = match saved.shape("knn.observed") {
            None => None,
            Some(_) => {
                let o = saved.take_u32("knn.observed", &[n, m])?;
                if o.iter().any(|&v| v > 1) {
                    return Err(Error::format("saved router", "knn.observed is not 0 or 1"));
                }
                Some(o.into_iter().map(|v| v == 1).collect())
            }
        };
        let ipw = match saved.shape("knn.ipw") {
            None => None,
            Some(_) => Some(saved.take_f32("knn.ipw", &[n, m])?),
        };
        let anchors = match saved.shape("knn.anchors") {
            None => vec![None; m],
            Some(_) => {
                let a = saved.take_f64("knn.anchors", &[m, m + 4])?;
                a.chunks_exact(m + 4)
                    .map(|row| {
                        (row[0] == 1.0).then(|| Anchor {
                            intercept: row[1],
                            strength: row[2],
                            labelled: row[3] as usize,
                            weights: row[4..].to_vec(),
                            task_offsets: Vec::new(),
                        })
                    })
                    .collect()
            }
        };
        // Onboarded models' per-task offsets (since issue 21; absent: none).
        let mut anchors = anchors;
        if saved.shape("knn.anchor_tasks").is_some() {
            if anchors.iter().all(Option::is_none) {
                return Err(Error::format(
                    "saved router",
                    "knn.anchor_tasks without knn.anchors",
                ));
            }
            let t = task_names.len();
            let offsets = saved.take_f64("knn.anchor_tasks", &[m, t])?;
            for (a, row) in anchors.iter_mut().zip(offsets.chunks_exact(t.max(1))) {
                if let Some(a) = a {
                    a.task_offsets = row.to_vec();
                }
            }
        }
        let graph = match (config.index.hnsw_for(n), &observed) {
            (Some(hc), None) => Some(std::sync::Arc::new(load_graph(&mut saved, hc, n, d)?)),
            _ => None,
        };
        KnnRouter::assemble(
            config,
            saved.pool,
            saved.embedding_model,
            d,
            embeddings,
            scores,
            costs,
            output_tokens,
            tasks,
            task_names,
            ood,
            graph,
            RefLabels {
                observed,
                ipw,
                anchors,
            },
        )
    }

    /// The router's saved form ([`Router::to_saved`](crate::router::Router::to_saved)): the
    /// reference tensors, the out-of-distribution table, the search graph when there is one, and
    /// the task names.
    pub(super) fn saved_form(&self) -> Result<SavedRouter> {
        let (n, m, d) = (self.len(), self.pool.len(), self.dim);
        let mut saved = SavedRouter::new(
            RouterKind::Knn.name(),
            &self.config,
            self.pool.clone(),
            self.embedding_model.clone(),
            d,
        )
        .with_tensor(
            "knn.embeddings",
            Tensor::f32(&[n, d], self.embeddings.to_vec()),
        )
        .with_tensor("knn.scores", Tensor::f32(&[n, m], self.scores.clone()))
        .with_tensor("knn.costs", Tensor::f32(&[n, m], self.costs.clone()))
        .with_tensor(
            "knn.output_tokens",
            Tensor::f32(&[n, m], self.output_tokens.clone()),
        )
        .with_tensor("knn.tasks", Tensor::u32(&[n], self.tasks.clone()))
        .with_tensor(
            "knn.ood_quantiles",
            Tensor::f32(&[OOD_QUANTILES], self.ood_quantiles.clone()),
        );
        if let Some(g) = &self.graph {
            saved = save_graph(saved, g)?;
        }
        if let Some(o) = &self.observed {
            let o: Vec<u32> = o.iter().map(|&v| u32::from(v)).collect();
            saved = saved.with_tensor("knn.observed", Tensor::u32(&[n, m], o));
        }
        if let Some(w) = &self.ipw {
            saved = saved.with_tensor("knn.ipw", Tensor::f32(&[n, m], w.clone()));
        }
        if self.anchors.iter().any(Option::is_some) {
            let rows: Vec<f64> = self
                .anchors
                .iter()
                .flat_map(|a| match a {
                    Some(a) => {
                        let mut row = vec![1.0, a.intercept, a.strength, a.labelled as f64];
                        row.extend_from_slice(&a.weights);
                        row
                    }
                    None => vec![0.0; m + 4],
                })
                .collect();
            saved = saved.with_tensor("knn.anchors", Tensor::f64(&[m, m + 4], rows));
            let t = self.task_names.len();
            if t > 0
                && self
                    .anchors
                    .iter()
                    .flatten()
                    .any(|a| !a.task_offsets.is_empty())
            {
                let offsets: Vec<f64> = self
                    .anchors
                    .iter()
                    .flat_map(|a| match a {
                        Some(a) if a.task_offsets.len() == t => a.task_offsets.clone(),
                        _ => vec![0.0; t],
                    })
                    .collect();
                saved = saved.with_tensor("knn.anchor_tasks", Tensor::f64(&[m, t], offsets));
            }
        }
        saved.notes.insert(
            "knn.tasks".into(),
            serde_json::to_string(&self.task_names).expect("strings serialise to JSON"),
        );
        Ok(saved)
    }
}

fn save_graph(saved: SavedRouter, g: &hnsw::Hnsw) -> Result<SavedRouter> {
    let p = g.to_parts();
    let offsets: Vec<u32> = p
        .offsets
        .iter()
        .map(|&o| u32::try_from(o))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Unsupported("saving an hnsw graph with more than 2^32 links".into()))?;
    let levels: Vec<u32> = p.levels.iter().map(|&l| u32::from(l)).collect();
    Ok(saved
        .with_tensor("knn.hnsw.levels", Tensor::u32(&[levels.len()], levels))
        .with_tensor("knn.hnsw.offsets", Tensor::u32(&[offsets.len()], offsets))
        .with_tensor(
            "knn.hnsw.neighbors",
            Tensor::u32(&[p.neighbors.len()], p.neighbors),
        )
        .with_tensor(
            "knn.hnsw.header",
            Tensor::u32(&[4], vec![p.m, p.m0, p.entry_point, p.max_level]),
        ))
}

fn load_graph(
    saved: &mut SavedRouter,
    config: &hnsw::HnswConfig,
    n: usize,
    dim: usize,
) -> Result<hnsw::Hnsw> {
    let bad = |m: String| Error::format("saved router", m);
    let len = |saved: &SavedRouter, name: &str| -> Result<usize> {
        match saved.shape(name) {
            Some([l]) => Ok(*l),
            _ => Err(bad(format!("missing or misshapen tensor {name}"))),
        }
    };
    let levels = saved.take_u32("knn.hnsw.levels", &[n])?;
    let no = len(saved, "knn.hnsw.offsets")?;
    let offsets = saved.take_u32("knn.hnsw.offsets", &[no])?;
    let nn = len(saved, "knn.hnsw.neighbors")?;
    let neighbors = saved.take_u32("knn.hnsw.neighbors", &[nn])?;
    let header = saved.take_u32("knn.hnsw.header", &[4])?;
    let levels = levels
        .into_iter()
        .map(u8::try_from)
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| bad("hnsw levels out of range".into()))?;
    let parts = hnsw::HnswParts {
        dim: u32::try_from(dim).map_err(|_| bad("dimension too large".into()))?,
        m: header[0],
        m0: header[1],
        ef_construction: u32::try_from(config.ef_construction).unwrap_or(u32::MAX),
        ef_search: u32::try_from(config.ef_search).unwrap_or(u32::MAX),
        seed: config.seed,
        entry_point: header[2],
        max_level: header[3],
        levels,
        offsets: offsets.into_iter().map(u64::from).collect(),
        neighbors,
    };
    hnsw::Hnsw::from_parts(parts, n).map_err(|e| bad(format!("knn index: {e}")))
}
