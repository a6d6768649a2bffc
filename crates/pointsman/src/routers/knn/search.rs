//! Finding a query's nearest reference queries: the exact block scan, the HNSW graph or the
//! exact prefilter, and the selection of the best `k`.

use super::{hnsw, quant, KnnRouter};
use crate::error::Result;
use crate::features::{normalize_into, FeatureBatch};
use crate::router::Router;
use crate::simd;

/// Queries scored together in the exact scans of [`KnnRouter::scan`].
pub(super) const SCAN_QUERIES: usize = 32;
/// Reference rows per block of those scans: 256 rows of 384 floats (384 KiB) stay in cache
/// while every query of a group is scored against them.
const SCAN_ROWS: usize = 256;

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

impl KnnRouter {
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

    pub(super) fn row(&self, i: usize) -> &[f32] {
        &self.embeddings[i * self.dim..(i + 1) * self.dim]
    }

    /// `sims[j][i] = ⟨reference row i, queries[j]⟩` for up to [`SCAN_QUERIES`] queries, one
    /// block of [`SCAN_ROWS`] reference rows at a time, so that each block is read from memory
    /// once for all the queries rather than once per four. Per pair, the same operations as
    /// [`simd::dot`]: results are bit-identical to a row-by-row scan.
    pub(super) fn scan(&self, queries: &[&[f32]], sims: &mut [Vec<f32>]) {
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
}

/// The `k` largest of `sims` as (similarity, offset + index), best first; ties by index.
pub(super) fn top_k(sims: &[f32], offset: usize, k: usize, pairs: &mut Vec<(f32, u32)>) {
    pairs.clear();
    pairs.extend(
        sims.iter()
            .enumerate()
            .map(|(i, &s)| (s, (offset + i) as u32)),
    );
    select_top(pairs, k);
}

/// Keeps the `k` best of `pairs`, best first; ties by row.
pub(super) fn select_top(pairs: &mut Vec<(f32, u32)>, k: usize) {
    let cmp = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if k < pairs.len() {
        pairs.select_nth_unstable_by(k, cmp);
        pairs.truncate(k);
    }
    pairs.sort_unstable_by(cmp);
}
