//! Building a kNN router: from a labelled split (rows grouped by task, priors, the search graph)
//! or from its checked tensors, and the out-of-distribution table of the training queries'
//! leave-one-out neighbourhoods.

use std::collections::HashMap;

use super::partial::{self, RefLabels};
use super::search::{top_k, SCAN_QUERIES};
use super::{hnsw, quant, KnnConfig, KnnRouter, Prior, NO_TASK};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::pool::ModelPool;

pub(super) const OOD_QUANTILES: usize = 101;

impl KnnRouter {
    /// Fits a kNN router on a labelled split (which must have embeddings).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid config; [`Error::InvalidInput`] for an empty split or one
    /// without embeddings.
    pub fn fit(train: &Split, config: &KnnConfig) -> Result<KnnRouter> {
        let mut router = KnnRouter::fit_without_ood(train, config)?;
        router.build_graph()?;
        router.ood_quantiles = router.leave_one_out_quantiles();
        Ok(router)
    }

    /// The router's data in its row order, without the search graph and the OOD table.
    pub(super) fn fit_without_ood(train: &Split, config: &KnnConfig) -> Result<KnnRouter> {
        config.validate()?;
        if train.is_empty() {
            return Err(Error::InvalidInput(format!(
                "cannot fit a knn router on the empty {} split",
                train.name()
            )));
        }
        train.features()?;
        let n = train.len();
        let m = train.pool().len();
        let dim = train.dim();
        // Group rows by task (stable), so a task's rows form one contiguous block.
        let mut names: Vec<String> = train.tasks().iter().flatten().cloned().collect();
        names.sort();
        names.dedup();
        let ids: HashMap<String, u32> = names
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let task_of = |r: usize| train.tasks()[r].as_ref().map_or(NO_TASK, |t| ids[t]);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&r| task_of(r));
        let gather = |src: &[f64], width: usize| -> Vec<f32> {
            order
                .iter()
                .flat_map(|&r| src[r * width..(r + 1) * width].iter().map(|&v| v as f32))
                .collect()
        };
        let observed_costs: Vec<f64> = train
            .costs()
            .iter()
            .zip(train.cost_observed())
            .map(|(&c, &o)| if o { c } else { f64::NAN })
            .collect();
        let embeddings: Vec<f32> = order
            .iter()
            .flat_map(|&r| train.embeddings()[r * dim..(r + 1) * dim].iter().copied())
            .collect();
        let labels = RefLabels::of_split(train, &order, config)?;
        let scores: Vec<f64> = match train.observed_mask() {
            None => train.scores().to_vec(),
            Some(mask) => train
                .scores()
                .iter()
                .zip(mask)
                .map(|(&s, &o)| if o { s } else { 0.0 })
                .collect(),
        };
        let mut router = KnnRouter::assemble(
            config.clone(),
            train.pool().clone(),
            train.embedding_model().map(str::to_string),
            dim,
            embeddings.into(),
            gather(&scores, m),
            gather(&observed_costs, m),
            gather(train.output_tokens(), m),
            order.iter().map(|&r| task_of(r)).collect(),
            names,
            Vec::new(),
            None,
            labels,
        )?;
        router.source_rows = order;
        Ok(router)
    }

    /// Builds the HNSW graph when the config asks for one (not for partial labels, whose
    /// neighbours are chosen per model by an exact scan).
    pub(super) fn build_graph(&mut self) -> Result<()> {
        if self.observed.is_some() {
            self.graph = None;
            return Ok(());
        }
        self.graph = match self.config.index.hnsw_for(self.len()) {
            Some(c) => Some(std::sync::Arc::new(
                hnsw::Hnsw::try_build(&self.embeddings, self.dim, c)
                    .map_err(|e| Error::Config(format!("knn index: {e}")))?,
            )),
            None => None,
        };
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn assemble(
        config: KnnConfig,
        pool: ModelPool,
        embedding_model: Option<String>,
        dim: usize,
        embeddings: crate::saved::F32s,
        scores: Vec<f32>,
        costs: Vec<f32>,
        output_tokens: Vec<f32>,
        tasks: Vec<u32>,
        task_names: Vec<String>,
        ood_quantiles: Vec<f32>,
        graph: Option<std::sync::Arc<hnsw::Hnsw>>,
        labels: RefLabels,
    ) -> Result<KnnRouter> {
        let n = tasks.len();
        let m = pool.len();
        let t = task_names.len();
        let bad = |msg: String| Error::format("saved router", msg);
        if embeddings.len() != n * dim
            || scores.len() != n * m
            || costs.len() != n * m
            || output_tokens.len() != n * m
        {
            return Err(bad("knn tensors disagree in size".into()));
        }
        if n == 0 {
            return Err(bad("knn router without reference queries".into()));
        }
        if scores.iter().any(|s| !(0.0..=1.0).contains(s)) {
            return Err(bad("knn scores outside [0, 1]".into()));
        }
        labels.check(n, m).map_err(bad)?;
        if costs
            .iter()
            .chain(&output_tokens)
            .any(|c| *c < 0.0 || c.is_infinite())
        {
            return Err(bad("knn costs or answer lengths out of range".into()));
        }
        if tasks.iter().any(|&x| x != NO_TASK && x as usize >= t)
            || tasks.windows(2).any(|w| w[0] > w[1])
        {
            return Err(bad("knn task ids out of range or not grouped".into()));
        }
        for row in embeddings.chunks_exact(dim) {
            let norm: f32 = row.iter().map(|v| v * v).sum();
            if !norm.is_finite() || (norm - 1.0).abs() > 1e-3 {
                return Err(bad("knn embeddings are not unit vectors".into()));
            }
        }
        let mut task_rows = vec![(0usize, 0usize); t];
        let mut start = 0;
        while start < n && tasks[start] != NO_TASK {
            let id = tasks[start];
            let mut end = start;
            while end < n && tasks[end] == id {
                end += 1;
            }
            task_rows[id as usize] = (start, end);
            start = end;
        }
        let mean = |rows: std::ops::Range<usize>| -> Vec<f64> {
            let mut s = vec![0.0f64; m];
            for r in rows.clone() {
                for (a, &y) in s.iter_mut().zip(&scores[r * m..(r + 1) * m]) {
                    *a += f64::from(y);
                }
            }
            let len = rows.len().max(1) as f64;
            s.iter().map(|v| v / len).collect()
        };
        let strength = match config.prior {
            Prior::Task { strength } => strength,
            Prior::Global => 0.0,
        };
        let (global_prior, task_prior) = match &labels.observed {
            None => {
                let global_prior = mean(0..n);
                let mut task_prior = Vec::with_capacity(t * m);
                for &(a, b) in &task_rows {
                    let tm = mean(a..b);
                    let len = (b - a) as f64;
                    for j in 0..m {
                        task_prior.push(
                            (tm[j] * len + strength * global_prior[j])
                                / (len + strength).max(f64::MIN_POSITIVE),
                        );
                    }
                }
                (global_prior, task_prior)
            }
            Some(mask) => partial::priors(&scores, mask, m, &task_rows, strength),
        };
        let any = |v: &[f32]| -> Vec<bool> {
            (0..m)
                .map(|j| (0..n).any(|r| !v[r * m + j].is_nan()))
                .collect()
        };
        let prefilter = match (config.index.hnsw_for(n), &labels.observed) {
            (None, None) => quant::QuantIndex::build(&embeddings, dim).map(std::sync::Arc::new),
            _ => None,
        };
        Ok(KnnRouter {
            prefilter,
            any_observed_cost: any(&costs),
            any_output_tokens: any(&output_tokens),
            task_ids: task_names
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), i as u32))
                .collect(),
            config,
            pool,
            dim,
            embedding_model,
            embeddings,
            scores,
            costs,
            output_tokens,
            tasks,
            task_names,
            task_rows,
            global_prior,
            task_prior,
            ood_quantiles,
            graph,
            source_rows: Vec::new(),
            observed_rows: labels.observed_rows(n, m),
            observed: labels.observed,
            ipw: labels.ipw,
            anchors: labels.anchors,
        })
    }

    /// Number of reference queries.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Always false: a fitted router has reference queries.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The configuration.
    pub fn config(&self) -> &KnnConfig {
        &self.config
    }

    /// The same reference data under another configuration (the out-of-distribution table is
    /// kept when `ood_neighbours` is unchanged).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid config.
    pub fn with_config(&self, config: &KnnConfig) -> Result<KnnRouter> {
        config.validate()?;
        let mut r = KnnRouter::assemble(
            config.clone(),
            self.pool.clone(),
            self.embedding_model.clone(),
            self.dim,
            self.embeddings.clone(),
            self.scores.clone(),
            self.costs.clone(),
            self.output_tokens.clone(),
            self.tasks.clone(),
            self.task_names.clone(),
            self.ood_quantiles.clone(),
            None,
            self.ref_labels(),
        )?;
        if config.index.hnsw_for(self.len()) == self.config.index.hnsw_for(self.len()) {
            r.graph = self.graph.clone();
        } else {
            r.build_graph()?;
        }
        if config.ood_neighbours != self.config.ood_neighbours
            || r.graph.is_some() != self.graph.is_some()
        {
            r.ood_quantiles = r.leave_one_out_quantiles();
        }
        Ok(r)
    }

    /// Quantiles of the training rows' mean similarity to their nearest other rows.
    fn leave_one_out_quantiles(&self) -> Vec<f32> {
        self.leave_one_out(0).0
    }

    /// One pass over the training rows, each against all the others: the OOD quantiles and,
    /// when `keep > 0`, each row's `keep` nearest other rows (within its task when the config
    /// restricts neighbours to it), as (similarity, reference row) per reference row.
    #[allow(clippy::type_complexity)]
    fn leave_one_out(&self, keep: usize) -> (Vec<f32>, Vec<Vec<(f32, u32)>>) {
        use rayon::prelude::*;
        let n = self.len();
        let k = self.config.ood_neighbours.min(n.saturating_sub(1)).max(1);
        let range = |i: usize| -> (usize, usize) {
            let t = self.tasks[i];
            if self.config.same_task && t != NO_TASK {
                self.task_rows[t as usize]
            } else {
                (0, n)
            }
        };
        let rows: Vec<(f32, Vec<(f32, u32)>)> = match &self.graph {
            None => (0..n.div_ceil(SCAN_QUERIES))
                .into_par_iter()
                .map_init(
                    || (vec![vec![0.0f32; n]; SCAN_QUERIES], Vec::new()),
                    |(sims, pairs), b| {
                        let start = b * SCAN_QUERIES;
                        let end = (start + SCAN_QUERIES).min(n);
                        let queries: Vec<&[f32]> = (start..end).map(|i| self.row(i)).collect();
                        self.scan(&queries, sims);
                        (start..end)
                            .map(|i| {
                                let sims = &mut sims[i - start];
                                sims[i] = f32::NEG_INFINITY;
                                top_k(sims, 0, k, pairs);
                                let ood =
                                    pairs.iter().map(|p| p.0).sum::<f32>() / pairs.len() as f32;
                                let list = if keep == 0 {
                                    Vec::new()
                                } else {
                                    let (lo, hi) = range(i);
                                    top_k(&sims[lo..hi], lo, keep.min(hi - lo), pairs);
                                    pairs.iter().copied().filter(|p| p.0.is_finite()).collect()
                                };
                                (ood, list)
                            })
                            .collect::<Vec<_>>()
                    },
                )
                .flatten()
                .collect(),
            Some(g) => (0..n)
                .into_par_iter()
                .map_init(
                    || (hnsw::SearchScratch::new(n), Vec::new()),
                    |(scratch, found), i| {
                        let ef = g.config().ef_search.max(k + 1);
                        g.search(&self.embeddings, self.row(i), k + 1, ef, scratch, found);
                        let sims: Vec<f32> = found
                            .iter()
                            .filter(|f| f.0 as usize != i)
                            .map(|f| f.1)
                            .take(k)
                            .collect();
                        let ood = sims.iter().sum::<f32>() / sims.len().max(1) as f32;
                        let list = if keep == 0 {
                            Vec::new()
                        } else {
                            let restrict = range(i) != (0, n);
                            let want = (keep + 1) * if restrict { 4 } else { 1 };
                            let ef = g.config().ef_search.max(want);
                            g.search(&self.embeddings, self.row(i), want, ef, scratch, found);
                            found
                                .iter()
                                .filter(|f| {
                                    f.0 as usize != i
                                        && (!restrict || self.tasks[f.0 as usize] == self.tasks[i])
                                })
                                .take(keep)
                                .map(|&(r, s)| (s, r))
                                .collect()
                        };
                        (ood, list)
                    },
                )
                .collect(),
        };
        let (mut vals, lists): (Vec<f32>, Vec<Vec<(f32, u32)>>) = rows.into_iter().unzip();
        vals.sort_by(f32::total_cmp);
        let quantiles = (0..OOD_QUANTILES)
            .map(|q| vals[(q * (vals.len() - 1)) / (OOD_QUANTILES - 1)])
            .collect();
        (quantiles, lists)
    }

    /// [`KnnRouter::fit`], also returning each training query's `k` nearest *other* training
    /// queries (its leave-one-out neighbours, as [`KnnRouter::neighbours`] gives them for new
    /// queries), indexed by the query's row in `train`: found in the same pass over the data as
    /// the out-of-distribution table.
    ///
    /// # Errors
    ///
    /// As [`KnnRouter::fit`].
    #[allow(clippy::type_complexity)]
    pub fn fit_with_neighbours(
        train: &Split,
        config: &KnnConfig,
        k: usize,
    ) -> Result<(KnnRouter, Vec<Vec<(f32, u32)>>)> {
        let mut router = KnnRouter::fit_without_ood(train, config)?;
        router.build_graph()?;
        let (quantiles, lists) = router.leave_one_out(k.max(1));
        router.ood_quantiles = quantiles;
        let mut by_split = vec![Vec::new(); lists.len()];
        for (i, list) in lists.into_iter().enumerate() {
            by_split[router.source_rows[i]] = list;
        }
        Ok((router, by_split))
    }

    /// The reference queries' scores, `[len, models]` row-major in reference row order.
    pub fn reference_scores(&self) -> &[f32] {
        &self.scores
    }

    /// For a router fitted in this process, the row of the training split that reference row
    /// `row` came from; `None` for a loaded router or a row out of range.
    pub fn source_row(&self, row: usize) -> Option<usize> {
        self.source_rows.get(row).copied()
    }
}
