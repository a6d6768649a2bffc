//! kNN router: predict each model's quality on a query from how it did on the most similar
//! training queries.
//!
//! # Estimate
//!
//! For a query `x` (L2-normalised), let `N(x)` be its `k` most cosine-similar training queries
//! (restricted to the query's task when [`KnnConfig::same_task`] is set and the task is known)
//! with similarities `s_i`, and `w_i = weight(s_i)` ([`Weighting`]). Model `m`'s expected quality
//! is the neighbours' similarity-weighted mean score, shrunk toward a prior:
//!
//! ```text
//! q_m(x) = (Σ_i w_i · y_im + β · prior_m(x)) / (Σ_i w_i + β)
//! ```
//!
//! where `β` is [`KnnConfig::shrinkage`] (in units of one fully similar neighbour) and `prior_m`
//! is the model's mean training score, or its mean on the query's task ([`Prior`]): with few or
//! far neighbours the estimate falls back to what is known without them.
//!
//! Expected cost: the neighbours' weighted mean *observed* cost where the training data has
//! observed costs; otherwise the pool's price estimate for the query's prompt tokens, with the
//! answer length predicted from the neighbours' answer lengths where the data has them.
//!
//! # Out-of-distribution score
//!
//! At fit time every training query's mean similarity to its `ood_neighbours` nearest other
//! training queries is recorded, and their quantiles are kept. A query's OOD score is the share
//! of training queries whose neighbourhood is tighter than the query's: 0.5 is typical, 0.99
//! means the query is farther from the training data than 99 % of the training queries are from
//! each other. A caller can refuse a query above a threshold, or send it to a default model.
//!
//! # Search
//!
//! Exact search scans one contiguous `f32` matrix (rows grouped by task) with AVX2/FMA dot
//! products, in blocks of 32 queries × 256 reference rows, so each block is read from memory
//! once for all the queries (the same operations per pair as a row-by-row scan: results are
//! bit-identical); per-thread scratch buffers mean no allocation per query.
//!
//! Each query (single or in a batch) goes through an exact prefilter first ([`quant`]): an
//! `int8` copy of the matrix with a guaranteed error bound per row selects the rows that can
//! still be neighbours, and only those are scored in `f32` — the same neighbours, similarities
//! and order as the full scan, for a quarter of the memory traffic (a third of the time of a
//! four-query block scan, per query). The block scan serves routers built without it.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::data::Split;
use crate::error::{Error, Result};
use crate::features::{normalize_into, FeatureBatch};
use crate::kind::RouterKind;
use crate::pool::ModelPool;
use crate::router::{Estimates, Router, Signals};
use crate::saved::{SavedRouter, Tensor};
use crate::simd;

pub mod hnsw;
mod quant;
mod tune;

pub use tune::KnnSearch;

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
    fn hnsw_for(&self, n: usize) -> Option<&hnsw::HnswConfig> {
        match self {
            Index::Exact => None,
            Index::Hnsw(c) => Some(c),
            Index::Auto { threshold, hnsw } => (n > *threshold).then_some(hnsw),
        }
    }
}

/// Hyper-parameters of a [`KnnRouter`].
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

const NO_TASK: u32 = u32::MAX;
/// Queries scored together in the exact scans of [`KnnRouter::scan`].
const SCAN_QUERIES: usize = 32;
/// Reference rows per block of those scans: 256 rows of 384 floats (384 KiB) stay in cache
/// while every query of a group is scored against them.
const SCAN_ROWS: usize = 256;
const OOD_QUANTILES: usize = 101;

/// A fitted kNN router. See the [module documentation](self).
#[derive(Clone)]
pub struct KnnRouter {
    config: KnnConfig,
    pool: ModelPool,
    dim: usize,
    embedding_model: Option<String>,
    /// `[n, dim]`, normalised, rows grouped by task.
    embeddings: Vec<f32>,
    /// `[n, m]`.
    scores: Vec<f32>,
    /// `[n, m]` observed costs, NaN where not observed.
    costs: Vec<f32>,
    /// `[n, m]` answer lengths in tokens, NaN where unknown.
    output_tokens: Vec<f32>,
    /// Task id per row (`NO_TASK` for none); rows of one task are contiguous.
    tasks: Vec<u32>,
    task_names: Vec<String>,
    task_ids: HashMap<String, u32>,
    /// Row range of each task.
    task_rows: Vec<(usize, usize)>,
    global_prior: Vec<f64>,
    /// `[tasks, m]`.
    task_prior: Vec<f64>,
    any_observed_cost: Vec<bool>,
    any_output_tokens: Vec<bool>,
    /// Sorted quantiles of the training queries' leave-one-out neighbourhood similarity.
    ood_quantiles: Vec<f32>,
    /// The approximate index, when the config asks for one.
    graph: Option<std::sync::Arc<hnsw::Hnsw>>,
    /// For a router fitted in this process, the split row of each reference row.
    source_rows: Vec<usize>,
    /// The exact prefilter of single-query scans (exact search only).
    prefilter: Option<std::sync::Arc<quant::QuantIndex>>,
}

impl std::fmt::Debug for KnnRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnnRouter")
            .field("config", &self.config)
            .field("models", &self.pool.ids().collect::<Vec<_>>())
            .field("dim", &self.dim)
            .field("rows", &self.len())
            .field("tasks", &self.task_names.len())
            .finish()
    }
}

/// `f(state, i)` for `i` in `0..n`, in order: on the calling thread when `n` is 1 (a single
/// query starts no rayon work, so it runs anywhere — also outside any pool, see the Python
/// bindings), else in parallel with one `init()` state per rayon task.
fn map_rows<T, S, I, F>(n: usize, init: I, f: F) -> Vec<T>
where
    T: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize) -> T + Sync + Send,
{
    use rayon::prelude::*;
    if n <= 1 {
        let mut state = init();
        return (0..n).map(|i| f(&mut state, i)).collect();
    }
    (0..n).into_par_iter().map_init(init, f).collect()
}

struct Scratch {
    sims: [Vec<f32>; 4],
    pairs: Vec<(f32, u32)>,
    query: [Vec<f32>; 4],
    graph: hnsw::SearchScratch,
    found: Vec<(u32, f32)>,
    quant: quant::QuantScratch,
    ood: Vec<(f32, u32)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        sims: Default::default(),
        pairs: Vec::new(),
        query: Default::default(),
        graph: hnsw::SearchScratch::default(),
        found: Vec::new(),
        quant: Default::default(),
        ood: Vec::new(),
    });
}

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
    fn fit_without_ood(train: &Split, config: &KnnConfig) -> Result<KnnRouter> {
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
        let mut router = KnnRouter::assemble(
            config.clone(),
            train.pool().clone(),
            train.embedding_model().map(str::to_string),
            dim,
            embeddings,
            gather(train.scores(), m),
            gather(&observed_costs, m),
            gather(train.output_tokens(), m),
            order.iter().map(|&r| task_of(r)).collect(),
            names,
            Vec::new(),
            None,
        )?;
        router.source_rows = order;
        Ok(router)
    }

    /// Builds the HNSW graph when the config asks for one.
    fn build_graph(&mut self) -> Result<()> {
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
    fn assemble(
        config: KnnConfig,
        pool: ModelPool,
        embedding_model: Option<String>,
        dim: usize,
        embeddings: Vec<f32>,
        scores: Vec<f32>,
        costs: Vec<f32>,
        output_tokens: Vec<f32>,
        tasks: Vec<u32>,
        task_names: Vec<String>,
        ood_quantiles: Vec<f32>,
        graph: Option<std::sync::Arc<hnsw::Hnsw>>,
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
        let global_prior = mean(0..n);
        let strength = match config.prior {
            Prior::Task { strength } => strength,
            Prior::Global => 0.0,
        };
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
        let any = |v: &[f32]| -> Vec<bool> {
            (0..m)
                .map(|j| (0..n).any(|r| !v[r * m + j].is_nan()))
                .collect()
        };
        let prefilter = match config.index.hnsw_for(n) {
            None => quant::QuantIndex::build(&embeddings, dim).map(std::sync::Arc::new),
            Some(_) => None,
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

    /// Turns the exact prefilter of single-query scans on (the default for exact search) or
    /// off. Neighbours, similarities and estimates are identical either way; only the time
    /// differs (for tests and benchmarks).
    pub fn set_exact_prefilter(&mut self, on: bool) {
        self.prefilter = match (on, self.graph.is_none()) {
            (true, true) => self.prefilter.take().or_else(|| {
                quant::QuantIndex::build(&self.embeddings, self.dim).map(std::sync::Arc::new)
            }),
            _ => None,
        };
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.embeddings[i * self.dim..(i + 1) * self.dim]
    }

    /// `sims[j][i] = ⟨reference row i, queries[j]⟩` for up to [`SCAN_QUERIES`] queries, one
    /// block of [`SCAN_ROWS`] reference rows at a time, so that each block is read from memory
    /// once for all the queries rather than once per four. Per pair, the same operations as
    /// [`simd::dot`]: results are bit-identical to a row-by-row scan.
    fn scan(&self, queries: &[&[f32]], sims: &mut [Vec<f32>]) {
        let (n, d) = (self.len(), self.dim);
        for start in (0..n).step_by(SCAN_ROWS) {
            let end = (start + SCAN_ROWS).min(n);
            let block = &self.embeddings[start * d..end * d];
            let mut q = 0;
            while q < queries.len() {
                if let (Some(&[q0, q1, q2, q3]), [a, b, c, e, ..]) =
                    (queries.get(q..q + 4), &mut sims[q..])
                {
                    simd::dot_rows4(
                        block,
                        [q0, q1, q2, q3],
                        [
                            &mut a[start..end],
                            &mut b[start..end],
                            &mut c[start..end],
                            &mut e[start..end],
                        ],
                    );
                    q += 4;
                } else {
                    simd::dot_rows(block, queries[q], &mut sims[q][start..end]);
                    q += 1;
                }
            }
        }
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

    /// The OOD score of a query whose mean similarity to its nearest training queries is `s`.
    fn ood_score(&self, s: f32) -> f32 {
        let q = &self.ood_quantiles;
        // Share of training queries whose neighbourhood similarity exceeds s.
        let below = q.partition_point(|&v| v < s);
        if below == 0 {
            return 1.0;
        }
        if below >= q.len() {
            return 0.0;
        }
        let (a, b) = (q[below - 1], q[below]);
        let frac = if b > a { (s - a) / (b - a) } else { 0.5 };
        let rank = (below - 1) as f32 + frac;
        1.0 - rank / (q.len() - 1) as f32
    }

    /// Estimates one query from its similarities to every reference row (exact search).
    #[allow(clippy::too_many_arguments)]
    fn estimate_from_sims(
        &self,
        sims: &[f32],
        task: Option<&str>,
        prompt_tokens: Option<f64>,
        pairs: &mut Vec<(f32, u32)>,
        quality: &mut [f64],
        cost: &mut [f64],
    ) -> Signals {
        let n = self.len();
        // Out-of-distribution: mean similarity of the nearest rows overall.
        let ko = self.config.ood_neighbours.min(n);
        top_k(sims, 0, ko, pairs);
        let ood = self.ood_score(pairs.iter().map(|p| p.0).sum::<f32>() / ko as f32);
        let task_id = task.and_then(|t| self.task_ids.get(t).copied());
        let (lo, hi) = match (self.config.same_task, task_id) {
            (true, Some(t)) => self.task_rows[t as usize],
            _ => (0, n),
        };
        top_k(&sims[lo..hi], lo, self.config.k.min(hi - lo), pairs);
        let prior = self.prior_for(task_id);
        self.estimate_from_pairs(&self.config, prior, pairs, prompt_tokens, quality, cost);
        Signals {
            neighbours: Some(pairs.len() as u32),
            ood: Some(ood),
        }
    }

    /// Estimates one query with the HNSW graph.
    #[allow(clippy::too_many_arguments)]
    fn estimate_with_graph(
        &self,
        graph: &hnsw::Hnsw,
        query: &[f32],
        task: Option<&str>,
        prompt_tokens: Option<f64>,
        scratch: &mut hnsw::SearchScratch,
        found: &mut Vec<(u32, f32)>,
        pairs: &mut Vec<(f32, u32)>,
        quality: &mut [f64],
        cost: &mut [f64],
    ) -> Signals {
        let task_id = task.and_then(|t| self.task_ids.get(t).copied());
        let restrict = self.config.same_task && task_id.is_some();
        // With a task restriction, over-fetch and keep the query's task.
        let want = self.config.k.max(self.config.ood_neighbours) * if restrict { 4 } else { 1 };
        let ef = graph.config().ef_search.max(want);
        graph.search(&self.embeddings, query, want, ef, scratch, found);
        let ko = self.config.ood_neighbours.min(found.len()).max(1);
        let ood = self.ood_score(found.iter().take(ko).map(|f| f.1).sum::<f32>() / ko as f32);
        pairs.clear();
        pairs.extend(
            found
                .iter()
                .filter(|f| !restrict || Some(self.tasks[f.0 as usize]) == task_id)
                .take(self.config.k)
                .map(|&(i, s)| (s, i)),
        );
        let prior = self.prior_for(task_id);
        self.estimate_from_pairs(&self.config, prior, pairs, prompt_tokens, quality, cost);
        Signals {
            neighbours: Some(pairs.len() as u32),
            ood: Some(ood),
        }
    }

    /// The prior of a query of task `task_id` under this router's config.
    fn prior_for(&self, task_id: Option<u32>) -> &[f64] {
        let m = self.pool.len();
        match (self.config.prior, task_id) {
            (Prior::Task { .. }, Some(t)) => &self.task_prior[t as usize * m..(t as usize + 1) * m],
            _ => &self.global_prior,
        }
    }

    /// The estimate from the chosen neighbours `(similarity, row)` under `config`'s weighting
    /// and shrinkage toward `prior`.
    fn estimate_from_pairs(
        &self,
        config: &KnnConfig,
        prior: &[f64],
        pairs: &[(f32, u32)],
        prompt_tokens: Option<f64>,
        quality: &mut [f64],
        cost: &mut [f64],
    ) {
        let m = self.pool.len();
        let beta = config.shrinkage;
        let mut wsum = 0.0f64;
        quality.fill(0.0);
        let mut cost_num = vec_zero::<16>(m);
        let mut cost_den = vec_zero::<16>(m);
        let mut out_num = vec_zero::<16>(m);
        let mut out_den = vec_zero::<16>(m);
        for &(s, i) in pairs {
            let w = config.weighting.weight(s);
            wsum += w;
            let i = i as usize;
            for j in 0..m {
                quality[j] += w * f64::from(self.scores[i * m + j]);
                let c = self.costs[i * m + j];
                if !c.is_nan() {
                    cost_num[j] += w * f64::from(c);
                    cost_den[j] += w;
                }
                let o = self.output_tokens[i * m + j];
                if !o.is_nan() {
                    out_num[j] += w * f64::from(o);
                    out_den[j] += w;
                }
            }
        }
        let den = wsum + beta;
        for j in 0..m {
            quality[j] = if den > 0.0 {
                ((quality[j] + beta * prior[j]) / den).clamp(0.0, 1.0)
            } else {
                prior[j]
            };
            let card = self.pool.card(j);
            cost[j] = if self.any_observed_cost[j] && cost_den[j] > 0.0 {
                cost_num[j] / cost_den[j]
            } else {
                let out = (self.any_output_tokens[j] && out_den[j] > 0.0)
                    .then(|| out_num[j] / out_den[j]);
                card.estimate_cost(prompt_tokens.unwrap_or(0.0), out)
            };
        }
    }

    /// The `k` reference queries most similar to each row of `batch`, as `(similarity, reference
    /// row)`, most similar first: within the row's task when the config restricts neighbours to
    /// it, by exact search or through the HNSW index as configured. For routers that build on the
    /// neighbourhood itself rather than on the estimate (the cascade's conditional estimates).
    ///
    /// # Errors
    ///
    /// A batch that does not fit the router ([`Router::check_batch`]).
    pub fn neighbours(&self, batch: &FeatureBatch<'_>, k: usize) -> Result<Vec<Vec<(f32, u32)>>> {
        self.check_batch(batch)?;
        let n = self.len();
        let rows = batch.rows();
        let task_of = |r: usize| batch.task(r).and_then(|t| self.task_ids.get(t).copied());
        let restrict_of = |r: usize| self.config.same_task && task_of(r).is_some();
        if let Some(g) = &self.graph {
            return Ok(map_rows(
                rows,
                || {
                    (
                        vec![0.0f32; self.dim],
                        hnsw::SearchScratch::new(n),
                        Vec::new(),
                    )
                },
                |(query, scratch, found), r| {
                    normalize_into(batch.row(r), query);
                    let (task_id, restrict) = (task_of(r), restrict_of(r));
                    let want = k * if restrict { 4 } else { 1 };
                    let ef = g.config().ef_search.max(want);
                    g.search(&self.embeddings, query, want, ef, scratch, found);
                    found
                        .iter()
                        .filter(|f| !restrict || Some(self.tasks[f.0 as usize]) == task_id)
                        .take(k)
                        .map(|&(i, s)| (s, i))
                        .collect()
                },
            ));
        }
        let range_of = |r: usize| match (restrict_of(r), task_of(r)) {
            (true, Some(t)) => self.task_rows[t as usize],
            _ => (0, n),
        };
        if let Some(index) = &self.prefilter {
            // Exact, through the prefilter (the full scan's neighbours, in its order); a query
            // the prefilter would not save work for is scanned.
            return Ok(map_rows(
                rows,
                || {
                    (
                        vec![0.0f32; self.dim],
                        quant::QuantScratch::default(),
                        Vec::new(),
                        Vec::new(),
                        Vec::new(),
                    )
                },
                |(query, qs, ood, pairs, sims), r| {
                    normalize_into(batch.row(r), query);
                    let (lo, hi) = range_of(r);
                    let k = k.min(hi - lo);
                    match self.prefiltered_search(index, query, (lo, hi), 1, k, qs, ood, pairs) {
                        Some(found) => found.neighbours.to_vec(),
                        None => {
                            sims.resize(n, 0.0);
                            simd::dot_rows(&self.embeddings, query, sims);
                            top_k(&sims[lo..hi], lo, k, pairs);
                            pairs.clone()
                        }
                    }
                },
            ));
        }
        // Exact: blocks of queries against blocks of reference rows.
        let blocks: Vec<Vec<Vec<(f32, u32)>>> = map_rows(
            rows.div_ceil(SCAN_QUERIES),
            || {
                (
                    vec![vec![0.0f32; n]; SCAN_QUERIES],
                    vec![vec![0.0f32; self.dim]; SCAN_QUERIES],
                    Vec::new(),
                )
            },
            |(sims, query, pairs), b| {
                let start = b * SCAN_QUERIES;
                let take = (rows - start).min(SCAN_QUERIES);
                for (j, q) in query.iter_mut().enumerate().take(take) {
                    normalize_into(batch.row(start + j), q);
                }
                let queries: Vec<&[f32]> = query[..take].iter().map(Vec::as_slice).collect();
                self.scan(&queries, sims);
                (0..take)
                    .map(|j| {
                        let (lo, hi) = range_of(start + j);
                        top_k(&sims[j][lo..hi], lo, k.min(hi - lo), pairs);
                        pairs.clone()
                    })
                    .collect()
            },
        );
        Ok(blocks.into_iter().flatten().collect())
    }

    /// The router's estimate from given neighbours `(similarity, reference row)` (for example
    /// [`KnnRouter::neighbours`] with some rows left out): expected quality and cost of every
    /// model under the router's weighting, shrinkage and prior.
    ///
    /// # Panics
    ///
    /// When `quality` or `cost` is not one value per model, or a reference row is out of range.
    pub fn estimate_from_neighbours(
        &self,
        neighbours: &[(f32, u32)],
        task: Option<&str>,
        prompt_tokens: Option<f64>,
        quality: &mut [f64],
        cost: &mut [f64],
    ) {
        let task_id = task.and_then(|t| self.task_ids.get(t).copied());
        let prior = self.prior_for(task_id);
        self.estimate_from_pairs(
            &self.config,
            prior,
            neighbours,
            prompt_tokens,
            quality,
            cost,
        );
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
        let embeddings = saved.take_f32("knn.embeddings", &[n, d])?;
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
        let graph = match config.index.hnsw_for(n) {
            None => None,
            Some(hc) => Some(std::sync::Arc::new(load_graph(&mut saved, hc, n, d)?)),
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
        )
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

/// `m` zeros, on the stack for up to `N` models.
fn vec_zero<const N: usize>(m: usize) -> SmallF64<N> {
    SmallF64::new(m)
}

/// A small zeroed `f64` buffer: inline for up to `N` values, heap beyond.
enum SmallF64<const N: usize> {
    Inline([f64; N], usize),
    Heap(Vec<f64>),
}

impl<const N: usize> SmallF64<N> {
    fn new(m: usize) -> Self {
        if m <= N {
            SmallF64::Inline([0.0; N], m)
        } else {
            SmallF64::Heap(vec![0.0; m])
        }
    }
}

impl<const N: usize> std::ops::Deref for SmallF64<N> {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        match self {
            SmallF64::Inline(a, m) => &a[..*m],
            SmallF64::Heap(v) => v,
        }
    }
}

impl<const N: usize> std::ops::DerefMut for SmallF64<N> {
    fn deref_mut(&mut self) -> &mut [f64] {
        match self {
            SmallF64::Inline(a, m) => &mut a[..*m],
            SmallF64::Heap(v) => v,
        }
    }
}

/// The `k` largest of `sims` as (similarity, offset + index), best first; ties by index.
fn top_k(sims: &[f32], offset: usize, k: usize, pairs: &mut Vec<(f32, u32)>) {
    pairs.clear();
    pairs.extend(
        sims.iter()
            .enumerate()
            .map(|(i, &s)| (s, (offset + i) as u32)),
    );
    select_top(pairs, k);
}

/// Keeps the `k` best of `pairs`, best first; ties by row.
fn select_top(pairs: &mut Vec<(f32, u32)>, k: usize) {
    let cmp = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if k < pairs.len() {
        pairs.select_nth_unstable_by(k, cmp);
        pairs.truncate(k);
    }
    pairs.sort_unstable_by(cmp);
}

impl Router for KnnRouter {
    fn kind(&self) -> &'static str {
        RouterKind::Knn.name()
    }

    fn models(&self) -> &ModelPool {
        &self.pool
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }

    fn estimate(&self, batch: &FeatureBatch<'_>, out: &mut Estimates) -> Result<()> {
        let n = self.len();
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let scratch = &mut *guard;
            if self.graph.is_none() {
                for buf in scratch.sims.iter_mut() {
                    buf.resize(n, 0.0);
                }
            }
            for q in scratch.query.iter_mut() {
                q.resize(self.dim, 0.0);
            }
            if let Some(graph) = &self.graph {
                let Scratch {
                    pairs,
                    query,
                    graph: gs,
                    found,
                    ..
                } = scratch;
                for row in 0..batch.rows() {
                    normalize_into(batch.row(row), &mut query[0]);
                    let (q, c) = out.row_mut(row);
                    out.signals[row] = self.estimate_with_graph(
                        graph,
                        &query[0],
                        batch.task(row),
                        batch.prompt_tokens(row),
                        gs,
                        found,
                        pairs,
                        q,
                        c,
                    );
                }
                return;
            }
            let mut r = 0;
            while r < batch.rows() {
                let take = (batch.rows() - r).min(4);
                for j in 0..take {
                    normalize_into(batch.row(r + j), &mut scratch.query[j]);
                }
                if let Some(index) = &self.prefilter {
                    for j in 0..take {
                        let row = r + j;
                        let (q, c) = out.row_mut(row);
                        let (query, task) = (&scratch.query[j], batch.task(row));
                        let tokens = batch.prompt_tokens(row);
                        out.signals[row] = match self.estimate_prefiltered(
                            index,
                            query,
                            task,
                            tokens,
                            &mut scratch.quant,
                            &mut scratch.ood,
                            &mut scratch.pairs,
                            q,
                            c,
                        ) {
                            Some(signals) => signals,
                            None => {
                                simd::dot_rows(&self.embeddings, query, &mut scratch.sims[j]);
                                let sims = &scratch.sims[j];
                                self.estimate_from_sims(
                                    sims,
                                    task,
                                    tokens,
                                    &mut scratch.pairs,
                                    q,
                                    c,
                                )
                            }
                        };
                    }
                    r += take;
                    continue;
                }
                let [s0, s1, s2, s3] = &mut scratch.sims;
                if take == 4 {
                    let [q0, q1, q2, q3] = &scratch.query;
                    simd::dot_rows4(&self.embeddings, [q0, q1, q2, q3], [s0, s1, s2, s3]);
                } else {
                    for (j, s) in [s0, s1, s2].into_iter().enumerate().take(take) {
                        simd::dot_rows(&self.embeddings, &scratch.query[j], s);
                    }
                }
                for j in 0..take {
                    let row = r + j;
                    let (q, c) = out.row_mut(row);
                    out.signals[row] = self.estimate_from_sims(
                        &scratch.sims[j],
                        batch.task(row),
                        batch.prompt_tokens(row),
                        &mut scratch.pairs,
                        q,
                        c,
                    );
                }
                r += take;
            }
        });
        Ok(())
    }

    fn to_saved(&self) -> Result<SavedRouter> {
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
            Tensor::f32(&[n, d], self.embeddings.clone()),
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
        saved.notes.insert(
            "knn.tasks".into(),
            serde_json::to_string(&self.task_names).expect("strings serialise to JSON"),
        );
        Ok(saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::ModelCard;
    use crate::rng::SplitMix64;
    use crate::{Objective, QueryFeatures};

    fn pool() -> ModelPool {
        ModelPool::new(vec![
            ModelCard::new("a", 1.0, 1.0),
            ModelCard::new("b", 10.0, 10.0),
        ])
        .unwrap()
    }

    /// Four reference queries on the unit circle.
    fn split() -> Split {
        let e = vec![1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, -1.0];
        let scores = vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.0, 0.0];
        let costs = vec![1e-4, 1e-3, 2e-4, 2e-3, 3e-4, 3e-3, 4e-4, 4e-3];
        Split::from_arrays(pool(), e, 2, scores, costs).unwrap()
    }

    fn est(r: &KnnRouter, x: &[f32]) -> (Vec<f64>, Vec<f64>, Signals) {
        let b = FeatureBatch::new(x, x.len()).unwrap();
        let e = r.estimate_batch(&b).unwrap();
        (
            e.quality_row(0).to_vec(),
            e.cost_row(0).to_vec(),
            e.signals[0],
        )
    }

    #[test]
    fn weighted_mean_shrunk_to_prior() {
        let s = split();
        let cfg = KnnConfig {
            k: 2,
            ..Default::default()
        };
        let r = KnnRouter::fit(&s, &cfg).unwrap();
        // Query at 45° between rows 0 and 1: both at similarity 0.7071, equal weights.
        let (q, c, sig) = est(&r, &[1.0, 1.0]);
        assert!(
            (q[0] - 0.5).abs() < 1e-6 && (q[1] - 0.5).abs() < 1e-6,
            "{q:?}"
        );
        // Observed costs (arrays count as observed): weighted mean of the neighbours'.
        assert!(
            (c[0] - 1.5e-4).abs() < 1e-9 && (c[1] - 1.5e-3).abs() < 1e-9,
            "{c:?}"
        );
        assert_eq!(sig.neighbours, Some(2));
        // Shrinkage: β = 2·0.7071 pulls halfway toward the global means (0.375, 0.375).
        let cfg = KnnConfig {
            k: 2,
            shrinkage: 2.0 * 0.5f64.sqrt(),
            ..Default::default()
        };
        let r = KnnRouter::fit(&s, &cfg).unwrap();
        let (q, _, _) = est(&r, &[1.0, 1.0]);
        assert!((q[0] - 0.4375).abs() < 1e-6, "{q:?}");
        // Uniform weights over k = 1: exactly the nearest row.
        let cfg = KnnConfig {
            k: 1,
            weighting: Weighting::Uniform,
            ..Default::default()
        };
        let r = KnnRouter::fit(&s, &cfg).unwrap();
        let (q, _, _) = est(&r, &[0.1, -1.0]);
        assert_eq!(q, vec![0.0, 0.0]);
        let d = r
            .route(
                &QueryFeatures::new(vec![1.0, 0.1]).unwrap(),
                &Objective::new(0.0),
            )
            .unwrap();
        assert_eq!(d.model_id, "a");
    }

    #[test]
    fn task_restriction_and_prior() {
        let mut s = split();
        let e = s.embeddings().to_vec();
        let tasks = vec![
            Some("x".to_string()),
            Some("y".to_string()),
            Some("x".to_string()),
            None,
        ];
        s = Split::from_arrays(
            pool(),
            e.clone(),
            2,
            s.scores().to_vec(),
            s.costs().to_vec(),
        )
        .unwrap();
        let s = with_tasks(s, tasks.clone());
        let cfg = KnnConfig {
            k: 1,
            same_task: true,
            ..Default::default()
        };
        let r = KnnRouter::fit(&s, &cfg).unwrap();
        // Near row 1 (task y) but tagged x: only rows 0 and 2 are candidates, and row 0 is nearer.
        let data = [0.1f32, 1.0];
        let t = [Some("x".to_string())];
        let b = FeatureBatch::new(&data, 2).unwrap().with_tasks(&t).unwrap();
        assert_eq!(r.estimate_batch(&b).unwrap().quality_row(0), [1.0, 0.0]);
        // Neighbours of zero weight (orthogonal) leave the prior.
        let orth = [0.0f32, 1.0];
        let bo = FeatureBatch::new(&orth, 2).unwrap().with_tasks(&t).unwrap();
        assert_eq!(
            r.estimate_batch(&bo).unwrap().quality_row(0),
            [0.375, 0.375]
        );
        // Task prior with a huge shrinkage: the task means.
        let cfg = KnnConfig {
            k: 1,
            shrinkage: 1e9,
            prior: Prior::Task { strength: 0.0 },
            ..Default::default()
        };
        let r = KnnRouter::fit(&s, &cfg).unwrap();
        let est = r.estimate_batch(&b).unwrap();
        assert!((est.quality_row(0)[0] - 0.75).abs() < 1e-6);
        // Unknown task: the global prior.
        let t = [Some("zzz".to_string())];
        let b = FeatureBatch::new(&data, 2).unwrap().with_tasks(&t).unwrap();
        assert!((r.estimate_batch(&b).unwrap().quality_row(0)[0] - 0.375).abs() < 1e-6);
    }

    fn with_tasks(s: Split, tasks: Vec<Option<String>>) -> Split {
        s.with_tasks(tasks).unwrap()
    }

    fn random_split(n: usize, dim: usize, seed: u64) -> Split {
        let mut rng = SplitMix64::new(seed);
        let e: Vec<f32> = (0..n * dim).map(|_| rng.normal() as f32).collect();
        let scores: Vec<f64> = (0..n * 2).map(|_| rng.next_f64().round()).collect();
        let costs: Vec<f64> = (0..n).flat_map(|_| [1e-5, 1e-4]).collect();
        Split::from_arrays(pool(), e, dim, scores, costs).unwrap()
    }

    #[test]
    fn invariant_to_row_order_and_batching() {
        let s = random_split(300, 16, 1);
        let cfg = KnnConfig {
            k: 20,
            shrinkage: 1.0,
            ..Default::default()
        };
        let r = KnnRouter::fit(&s, &cfg).unwrap();
        let mut order: Vec<usize> = (0..300).collect();
        SplitMix64::new(9).shuffle(&mut order);
        let shuffled = KnnRouter::fit(&s.subset(&order, "train"), &cfg).unwrap();
        let q = random_split(37, 16, 2);
        let b = q.features().unwrap();
        let (e1, e2) = (
            r.estimate_batch(&b).unwrap(),
            shuffled.estimate_batch(&b).unwrap(),
        );
        for (x, y) in e1.quality.iter().zip(&e2.quality) {
            assert!((x - y).abs() < 1e-9);
        }
        for w in [0.0, 1e3, 1e4] {
            let all = r.route_batch(&b, &Objective::new(w)).unwrap();
            for (i, &m) in all.iter().enumerate() {
                let f = QueryFeatures::new(b.row(i).to_vec()).unwrap();
                assert_eq!(r.route(&f, &Objective::new(w)).unwrap().model, m as usize);
            }
        }
    }

    #[test]
    fn ood_score_ranks_far_queries_high() {
        let s = random_split(500, 8, 3);
        let r = KnnRouter::fit(&s, &KnnConfig::default()).unwrap();
        // A training query sits inside the distribution; a query far from all rows does not.
        let (_, _, inside) = est(&r, &s.embeddings()[..8]);
        assert!(inside.ood.unwrap() < 0.5, "{inside:?}");
        let mut far = vec![0.0f32; 8];
        // The direction least similar to the data's mean.
        for row in s.embeddings().chunks_exact(8) {
            for (f, v) in far.iter_mut().zip(row) {
                *f -= v;
            }
        }
        let (_, _, out) = est(&r, &far);
        assert!(out.ood.unwrap() > inside.ood.unwrap());
        assert!((0.0..=1.0).contains(&out.ood.unwrap()));
    }

    #[test]
    fn save_load_and_corrupt_tensors() {
        let s = random_split(200, 8, 4);
        let s = with_tasks(
            s,
            (0..200)
                .map(|i| (i % 3 != 0).then(|| format!("t{}", i % 3)))
                .collect(),
        );
        let cfg = KnnConfig {
            k: 7,
            same_task: true,
            prior: Prior::Task { strength: 2.0 },
            shrinkage: 0.5,
            ..Default::default()
        };
        let r = KnnRouter::fit(&s, &cfg).unwrap();
        let bytes = r.to_saved().unwrap().to_bytes().unwrap();
        let loaded = crate::registry::AnyRouter::from_bytes(&bytes).unwrap();
        let q = random_split(20, 8, 5);
        let q = with_tasks(q, (0..20).map(|i| Some(format!("t{}", i % 3))).collect());
        let b = q.features().unwrap();
        assert_eq!(
            r.estimate_batch(&b).unwrap(),
            loaded.estimate_batch(&b).unwrap()
        );
        assert_eq!(loaded.to_saved().unwrap().to_bytes().unwrap(), bytes);

        let mut saved = r.to_saved().unwrap();
        saved
            .tensors
            .insert("knn.scores".into(), Tensor::f32(&[200, 2], vec![2.0; 400]));
        let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
        assert!(e.to_string().contains("knn scores outside [0, 1]"), "{e}");
        let mut saved = r.to_saved().unwrap();
        saved
            .tensors
            .insert("knn.tasks".into(), Tensor::u32(&[200], vec![7; 200]));
        let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
        assert!(e.to_string().contains("task ids"), "{e}");
        let mut saved = r.to_saved().unwrap();
        saved.tensors.insert(
            "knn.embeddings".into(),
            Tensor::f32(&[200, 8], vec![3.0; 1600]),
        );
        let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
        assert!(e.to_string().contains("not unit vectors"), "{e}");
        let mut saved = r.to_saved().unwrap();
        saved
            .tensors
            .insert("knn.costs".into(), Tensor::f32(&[199, 2], vec![0.0; 398]));
        let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
        assert!(
            e.to_string()
                .contains("knn.costs has shape [199, 2], expected [200, 2]"),
            "{e}"
        );
    }

    #[test]
    fn hnsw_index_matches_exact_search_and_saves() {
        let s = random_split(400, 8, 7);
        let s = with_tasks(s, (0..400).map(|i| Some(format!("t{}", i % 2))).collect());
        let exact = KnnRouter::fit(
            &s,
            &KnnConfig {
                k: 10,
                index: Index::Exact,
                ..Default::default()
            },
        )
        .unwrap();
        // ef ≥ n makes the graph search exhaustive, so the estimates are the exact ones.
        let hc = hnsw::HnswConfig {
            m: 8,
            ef_construction: 50,
            ef_search: 400,
            seed: 1,
        };
        let approx = KnnRouter::fit(
            &s,
            &KnnConfig {
                k: 10,
                index: Index::Hnsw(hc.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(approx.graph.is_some() && exact.graph.is_none());
        let q = random_split(30, 8, 8);
        let b = q.features().unwrap();
        let (e1, e2) = (
            exact.estimate_batch(&b).unwrap(),
            approx.estimate_batch(&b).unwrap(),
        );
        for (x, y) in e1.quality.iter().zip(&e2.quality) {
            assert!((x - y).abs() < 1e-9);
        }
        // Same-task restriction over-fetches from the graph and filters.
        let cfg = KnnConfig {
            k: 5,
            same_task: true,
            index: Index::Hnsw(hc.clone()),
            ..Default::default()
        };
        let r = KnnRouter::fit(&s, &cfg).unwrap();
        let q = with_tasks(q, (0..30).map(|_| Some("t1".to_string())).collect());
        let est = r.estimate_batch(&q.features().unwrap()).unwrap();
        assert!(est.signals.iter().all(|x| x.neighbours == Some(5)));
        // Save and load keep the graph; a corrupt graph is an error.
        let bytes = r.to_saved().unwrap().to_bytes().unwrap();
        let loaded = crate::registry::AnyRouter::from_bytes(&bytes).unwrap();
        assert_eq!(est, loaded.estimate_batch(&q.features().unwrap()).unwrap());
        let mut saved = r.to_saved().unwrap();
        let nn = saved.shape("knn.hnsw.neighbors").unwrap()[0];
        saved.tensors.insert(
            "knn.hnsw.neighbors".into(),
            Tensor::u32(&[nn], vec![9999; nn]),
        );
        let e = crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).unwrap_err();
        assert!(e.to_string().contains("knn index"), "{e}");
        let mut saved = r.to_saved().unwrap();
        saved.tensors.remove("knn.hnsw.header");
        assert!(crate::registry::AnyRouter::from_bytes(&saved.to_bytes().unwrap()).is_err());
        // Auto picks exact search below its threshold.
        let auto = KnnRouter::fit(
            &s,
            &KnnConfig {
                index: Index::Auto {
                    threshold: 1000,
                    hnsw: hc,
                },
                ..Default::default()
            },
        )
        .unwrap();
        assert!(auto.graph.is_none());
    }

    #[test]
    fn config_validation() {
        assert!(KnnConfig {
            k: 0,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(KnnConfig {
            shrinkage: -1.0,
            ..Default::default()
        }
        .validate()
        .is_err());
        let e = KnnConfig {
            weighting: Weighting::Softmax { temperature: 0.0 },
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("weighting"), "{e}");
        let json = r#"{"k": 5, "weighting": {"kind": "softmax", "temperature": 0.1}}"#;
        let c: KnnConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.k, 5);
        assert!(serde_json::from_str::<KnnConfig>(r#"{"kk": 5}"#).is_err());
    }

    #[test]
    fn leave_one_out_neighbours_match_a_search_without_the_query() {
        let base = random_split(300, 6, 3);
        let tasks: Vec<Option<String>> = (0..300)
            .map(|i| (i % 3 != 0).then(|| format!("t{}", i % 2)))
            .collect();
        let split = with_tasks(base, tasks);
        for same_task in [false, true] {
            let cfg = KnnConfig {
                k: 7,
                same_task,
                ..Default::default()
            };
            let (r, lists) = KnnRouter::fit_with_neighbours(&split, &cfg, 7).unwrap();
            assert_eq!(lists.len(), 300);
            // The same router and OOD table as a plain fit.
            let plain = KnnRouter::fit(&split, &cfg).unwrap();
            assert_eq!(r.ood_quantiles, plain.ood_quantiles);
            let found = r.neighbours(&split.features().unwrap(), 8).unwrap();
            for (row, (list, f)) in lists.iter().zip(&found).enumerate() {
                let mut want: Vec<(f32, u32)> = f
                    .iter()
                    .copied()
                    .filter(|&(_, i)| r.source_row(i as usize) != Some(row))
                    .collect();
                want.truncate(7);
                // The search re-normalises the query: similarities agree to rounding.
                let ids = |v: &[(f32, u32)]| v.iter().map(|p| p.1).collect::<Vec<_>>();
                assert_eq!(ids(list), ids(&want), "row {row}");
                for (a, b) in list.iter().zip(&want) {
                    assert!((a.0 - b.0).abs() < 1e-6, "row {row}: {a:?} {b:?}");
                }
            }
        }
    }
}
