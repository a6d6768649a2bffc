//! Hierarchical Navigable Small World graph (Malkov & Yashunin, "Efficient and
//! robust approximate nearest neighbor search using Hierarchical Navigable
//! Small World graphs", arXiv:1603.09320) for cosine similarity over
//! L2-normalised `f32` vectors (similarity = dot product, larger is closer).
//!
//! * The embedding matrix is **not** owned by the index: [`Hnsw::build`] and
//!   [`Hnsw::search`] take it as an argument (row-major `[n, dim]`, row `i` is
//!   node `i`). Search checks the lengths.
//! * Neighbour selection is the paper's heuristic (algorithm 4, without
//!   candidate extension and without keeping pruned connections); a new node
//!   gets `M` links on every layer, and lists are shrunk back to
//!   `M_max = M` (layers ≥ 1) or `M_max0 = 2·M` (layer 0) with the same heuristic.
//! * Levels are drawn with `P(level ≥ l) = M^-l` (i.e. `m_L = 1/ln M`) from a
//!   seeded integer RNG, so they are identical on every platform.
//! * The build is **deterministic**: it inserts nodes in id order, in batches
//!   whose sizes depend only on `n`. Every node of a batch searches the graph
//!   as it was before the batch (read-only, so it can run in parallel) plus the
//!   other nodes of its batch by brute force; links are then written in a fixed
//!   order and reverse links are merged per target node. Nothing depends on
//!   thread timing or thread count, and the dot-product kernel is bit-identical
//!   across SIMD levels, so the same data and seed give the same graph with or
//!   without the `parallel` feature, with any number of threads, on any CPU.
//!   The first 64 nodes are inserted one at a time (batch size 1 is exactly
//!   the paper's sequential algorithm 1); batches then grow to `n_done / 64`,
//!   capped at 256.
//! * Search is allocation-free once a [`SearchScratch`] and the output vector
//!   are warm: the visited set is a generation-stamped `Vec<u32>` and the two
//!   heaps keep their capacity. When `ef ≥ n` the search is exact brute force
//!   (it could not visit fewer nodes anyway).

use serde::{Deserialize, Serialize};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::ops::Range;

mod parts;

pub use parts::HnswParts;

/// Signature of the dot-product kernel ([`crate::simd::dot`], bit-identical on every CPU).
type DotFn = fn(&[f32], &[f32]) -> f32;

/// Highest level a node can get (levels are clamped; with `M ≥ 2` reaching it
/// has probability ≤ 2^-16 per node).
pub const MAX_LEVEL: usize = 16;
/// Largest accepted `M` (layer-0 degree is `2·M`).
pub const MAX_M: usize = 1024;

/// Batches start after this many sequentially inserted nodes...
const SEQUENTIAL_PREFIX: usize = 64;
/// ...and are `n_done / BATCH_DIVISOR` nodes long...
const BATCH_DIVISOR: usize = 64;
/// ...capped at this size.
const MAX_BATCH: usize = 256;

/// Build/search parameters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct HnswConfig {
    /// Links per node on layers ≥ 1 (layer 0 allows `2·m`). Paper's `M`.
    pub m: usize,
    /// Candidate list size during construction (`efConstruction`).
    pub ef_construction: usize,
    /// Default candidate list size for queries (see [`Hnsw::search_default`]).
    pub ef_search: usize,
    /// Seed for the level draw; the build is fully determined by seed + data.
    pub seed: u64,
}

impl Default for HnswConfig {
    fn default() -> Self {
        HnswConfig {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
            seed: 0x5EED_F04E,
        }
    }
}

impl HnswConfig {
    /// Checks every field (`m` in 2..=1024, positive candidate list sizes).
    ///
    /// # Errors
    ///
    /// A message naming the field out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.m < 2 || self.m > MAX_M {
            return Err(format!("hnsw: m must be in 2..={MAX_M}, got {}", self.m));
        }
        if self.ef_construction < 1 || self.ef_construction > u32::MAX as usize {
            return Err(format!(
                "hnsw: ef_construction must be ≥ 1, got {}",
                self.ef_construction
            ));
        }
        if self.ef_search < 1 || self.ef_search > u32::MAX as usize {
            return Err(format!(
                "hnsw: ef_search must be ≥ 1, got {}",
                self.ef_search
            ));
        }
        Ok(())
    }
}

/// A candidate: similarity to the current query and node id. Ordered by
/// similarity (`total_cmp`), ties broken so that the *lower* id is greater —
/// every sort and heap in the crate is therefore fully deterministic.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cand {
    pub sim: f32,
    pub id: u32,
}

impl Ord for Cand {
    #[inline]
    fn cmp(&self, o: &Self) -> Ordering {
        self.sim.total_cmp(&o.sim).then_with(|| o.id.cmp(&self.id))
    }
}
impl PartialOrd for Cand {
    #[inline]
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}

/// Reusable per-thread query state. Create once (per thread) and pass to every
/// [`Hnsw::search`]; after the first few queries no allocation happens.
#[derive(Clone, Debug, Default)]
pub struct SearchScratch {
    visited: Vec<u32>,
    stamp: u32,
    /// Max-heap: best unexpanded candidate on top.
    cand: BinaryHeap<Cand>,
    /// Min-heap: worst of the current `ef` results on top.
    res: BinaryHeap<Reverse<Cand>>,
    /// Unvisited neighbours of the node being expanded.
    buf: Vec<u32>,
}

impl SearchScratch {
    /// Scratch for an index of `n` nodes (it grows if used with a bigger one).
    pub fn new(n: usize) -> Self {
        SearchScratch {
            visited: vec![0; n],
            stamp: 0,
            cand: BinaryHeap::with_capacity(512),
            res: BinaryHeap::with_capacity(512),
            buf: Vec::with_capacity(64),
        }
    }

    /// Diagnostics: how many nodes the last search visited (O(n) scan).
    #[doc(hidden)]
    pub fn last_visited(&self) -> usize {
        self.visited.iter().filter(|&&v| v == self.stamp).count()
    }

    /// Start a new visited generation and empty the heaps.
    #[inline]
    fn reset(&mut self, n: usize) {
        if self.visited.len() < n {
            self.visited.resize(n, 0);
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.visited.fill(0);
            self.stamp = 1;
        }
        self.cand.clear();
        self.res.clear();
    }

    /// Marks `id` visited; returns whether it was new.
    #[inline(always)]
    fn visit(&mut self, id: u32) -> bool {
        let v = &mut self.visited[id as usize];
        if *v == self.stamp {
            false
        } else {
            *v = self.stamp;
            true
        }
    }
}

/// Immutable HNSW graph over an external `[n, dim]` matrix. `Send + Sync`.
///
/// In-memory layout (see [`HnswParts`] for the serialised one):
/// * `layer0`: `n × (m0 + 1)` `u32`s; slot 0 of each row is the degree, then
///   up to `m0 = 2·m` neighbour ids.
/// * `upper`: one row of `m + 1` `u32`s (degree, ids) per (node, layer ≥ 1);
///   node `i`'s layer-`l` row is `upper_start[i] + l - 1`.
#[derive(Clone, Debug)]
pub struct Hnsw {
    config: HnswConfig,
    dim: usize,
    n: usize,
    m: usize,
    m0: usize,
    levels: Vec<u8>,
    upper_start: Vec<usize>,
    layer0: Vec<u32>,
    upper: Vec<u32>,
    entry: u32,
    max_level: usize,
    dot: DotFn,
}

#[inline(always)]
fn row(data: &[f32], dim: usize, i: u32) -> &[f32] {
    let s = i as usize * dim;
    &data[s..s + dim]
}

/// 64-byte lines prefetched per row before its dot product. Measured on the
/// 100k × 384 index (ef = 4096, thread CPU time per query): 0 lines 21.0 ms,
/// 2–12 lines 16.1–16.6 ms, the whole row (24 lines) 18.2–18.4 ms; the hardware
/// prefetcher streams the rest of the row once it has started.
const PREFETCH_LINES: usize = 8;

/// Hint the CPU to start loading row `i` (a no-op off x86-64).
#[inline(always)]
fn prefetch_row(data: &[f32], dim: usize, i: u32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = i as usize * dim;
        if let Some(r) = data.get(start..start + dim) {
            let p = r.as_ptr() as *const i8;
            let bytes = (dim * 4).min(PREFETCH_LINES * 64);
            let mut off = 0;
            while off < bytes {
                // SAFETY: prefetch is a hint, never faults; SSE is baseline on x86-64;
                // the address is inside `r` anyway.
                unsafe { _mm_prefetch(p.add(off), _MM_HINT_T0) };
                off += 64;
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, dim, i);
}

/// SplitMix64: tiny, seedable, platform-independent.
struct SplitMix64(u64);
impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Levels with `P(level ≥ l) = m^-l` (the paper's `m_L = 1/ln m`), integer-only.
fn draw_levels(n: usize, m: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed ^ 0xA076_1D64_78BD_642F);
    let threshold = u64::MAX / m as u64; // success probability ≈ 1/m
    (0..n)
        .map(|_| {
            let mut l = 0usize;
            while l < MAX_LEVEL && rng.next() < threshold {
                l += 1;
            }
            l as u8
        })
        .collect()
}

fn batch_len(done: usize) -> usize {
    if done < SEQUENTIAL_PREFIX {
        1
    } else {
        (done / BATCH_DIVISOR).clamp(1, MAX_BATCH)
    }
}

impl Hnsw {
    /// Empty graph skeleton (all degrees 0) for the given levels.
    fn skeleton(config: HnswConfig, dim: usize, levels: Vec<u8>, m0: usize) -> Hnsw {
        let n = levels.len();
        let m = config.m;
        let mut upper_start = Vec::with_capacity(n + 1);
        let mut acc = 0usize;
        for &l in &levels {
            upper_start.push(acc);
            acc += l as usize;
        }
        upper_start.push(acc);
        let (entry, max_level) = match levels
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        {
            Some((i, l)) => (i as u32, l as usize),
            None => (0, 0),
        };
        Hnsw {
            config,
            dim,
            n,
            m,
            m0,
            levels,
            upper_start,
            layer0: vec![0; n * (m0 + 1)],
            upper: vec![0; acc * (m + 1)],
            entry,
            max_level,
            dot: crate::simd::dot,
        }
    }

    /// Builds the index over `data` (row-major `[n, dim]`, rows already
    /// L2-normalised). Deterministic for given data and config.
    ///
    /// # Panics
    /// If the config is invalid, `dim == 0`, `data.len()` is not a multiple of
    /// `dim` or `n ≥ 2^32`. Use [`Hnsw::try_build`] to get an error instead.
    pub fn build(data: &[f32], dim: usize, config: &HnswConfig) -> Hnsw {
        match Self::try_build(data, dim, config) {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Hnsw::build`] returning an error for bad arguments.
    pub fn try_build(data: &[f32], dim: usize, config: &HnswConfig) -> Result<Hnsw, String> {
        config.validate()?;
        if dim == 0 {
            return Err("hnsw: dim must be > 0".into());
        }
        if !data.len().is_multiple_of(dim) {
            return Err(format!(
                "hnsw: data length {} is not a multiple of dim {dim}",
                data.len()
            ));
        }
        let n = data.len() / dim;
        if n >= u32::MAX as usize {
            return Err(format!("hnsw: too many rows ({n})"));
        }
        let levels = draw_levels(n, config.m, config.seed);
        let m0 = 2 * config.m;
        let mut g = Hnsw::skeleton(config.clone(), dim, levels, m0);
        if n <= 1 {
            return Ok(g);
        }
        // Node 0 starts the graph alone; `entry`/`max_level` track the graph
        // built so far (the skeleton's values are the final ones).
        g.entry = 0;
        g.max_level = g.levels[0] as usize;
        let pool = ScratchPool::default();
        let mut bx = BuildExtra::new(&g);
        let mut start = 1;
        while start < n {
            let end = (start + batch_len(start)).min(n);
            g.insert_batch(data, start..end, &pool, &mut bx);
            start = end;
        }
        g.repair_layer0(data, &mut bx);
        Ok(g)
    }

    /// Inserts nodes `batch` (all ids above every node already in the graph).
    fn insert_batch(
        &mut self,
        data: &[f32],
        batch: Range<usize>,
        pool: &ScratchPool,
        bx: &mut BuildExtra,
    ) {
        // 1. Forward links: each new node against the frozen graph + its batch.
        let fwd: Vec<Vec<Vec<Cand>>> = {
            let g = &*self;
            par_map(batch.clone(), pool, |q, s| {
                g.forward_links(data, q, batch.clone(), s)
            })
        };
        for (q, lists) in batch.clone().zip(&fwd) {
            for (l, list) in lists.iter().enumerate() {
                self.set_list_build(bx, q as u32, l, list, true);
            }
        }
        // 2. Reverse links, merged per (layer, target) in a fixed order.
        let mut pairs: Vec<(u8, u32, u32)> = Vec::new();
        for (q, lists) in batch.clone().zip(&fwd) {
            for (l, list) in lists.iter().enumerate() {
                pairs.extend(list.iter().map(|c| (l as u8, c.id, q as u32)));
            }
        }
        drop(fwd);
        pairs.sort_unstable();
        let mut groups: Vec<Range<usize>> = Vec::new();
        let mut i = 0;
        while i < pairs.len() {
            let mut j = i + 1;
            while j < pairs.len() && pairs[j].0 == pairs[i].0 && pairs[j].1 == pairs[i].1 {
                j += 1;
            }
            groups.push(i..j);
            i = j;
        }
        let updates: Vec<Option<(Vec<Cand>, bool)>> = {
            let g = &*self;
            let (pairs, groups, bxr) = (&pairs, &groups, &*bx);
            par_map(0..groups.len(), pool, |gi, _| {
                let r = groups[gi].clone();
                let (l, t, _) = pairs[r.start];
                let srcs: Vec<u32> = pairs[r].iter().map(|p| p.2).collect();
                g.merge_reverse(data, bxr, t, l as usize, &srcs)
            })
        };
        for (r, upd) in groups.iter().zip(updates) {
            if let Some((list, closed)) = upd {
                let (l, t, _) = pairs[r.start];
                self.set_list_build(bx, t, l as usize, &list, closed);
            }
        }
        // 3. Entry point: first node (lowest id) reaching a new top level.
        for q in batch {
            if self.levels[q] as usize > self.max_level {
                self.max_level = self.levels[q] as usize;
                self.entry = q as u32;
            }
        }
    }

    /// Connectivity repair (not in the paper). The heuristic can drop every
    /// in-link of a node (typically one of several near-duplicate vectors), so
    /// no search can ever return it. For each node not reachable on layer 0
    /// from the entry point, in id order: search for it, and link it from the
    /// most similar reachable result that has a free slot, or else replace
    /// that result's least similar neighbour among those with another in-link.
    /// Sequential and deterministic; costs nothing when all nodes are reachable.
    fn repair_layer0(&mut self, data: &[f32], bx: &mut BuildExtra) {
        let n = self.n;
        let mut s = SearchScratch::new(n);
        let ef = self.config.ef_construction.max(self.m0);
        // Replacing a link can orphan another node (when its remaining
        // in-links are downstream of it), so repeat a few rounds.
        for _round in 0..4 {
            // reach: reachable on layer 0 from the entry point;
            // indeg: in-links from reachable nodes.
            let mut reach = vec![false; n];
            let mut indeg = vec![0u32; n];
            let mut stack = Vec::new();
            let mark = |g: &Hnsw,
                        from: u32,
                        reach: &mut Vec<bool>,
                        indeg: &mut Vec<u32>,
                        stack: &mut Vec<u32>| {
                if reach[from as usize] {
                    return;
                }
                reach[from as usize] = true;
                stack.push(from);
                while let Some(v) = stack.pop() {
                    for &w in g.neighbors(v, 0) {
                        indeg[w as usize] += 1;
                        if !reach[w as usize] {
                            reach[w as usize] = true;
                            stack.push(w);
                        }
                    }
                }
            };
            mark(self, self.entry, &mut reach, &mut indeg, &mut stack);
            if reach.iter().all(|&r| r) {
                return;
            }
            for u in 0..n as u32 {
                if reach[u as usize] {
                    continue;
                }
                let uv = row(data, self.dim, u);
                let mut cur = Cand {
                    sim: (self.dot)(uv, row(data, self.dim, self.entry)),
                    id: self.entry,
                };
                for l in (1..=self.max_level).rev() {
                    cur = self.greedy(data, uv, cur, l);
                }
                self.search_layer(data, uv, &[cur], ef, 0, &mut s);
                let mut cands: Vec<Cand> = s
                    .res
                    .drain()
                    .map(|r| r.0)
                    .filter(|c| c.id != u && reach[c.id as usize])
                    .collect();
                cands.sort_unstable_by(|a, b| b.cmp(a));
                cands.push(Cand {
                    sim: (self.dot)(uv, row(data, self.dim, self.entry)),
                    id: self.entry,
                });
                for c in &cands {
                    let v = c.id;
                    let list: Vec<Cand> = self
                        .neighbors(v, 0)
                        .iter()
                        .zip(bx.sims(self, v, 0))
                        .map(|(&id, &sim)| Cand { sim, id })
                        .collect();
                    let mut new = list.clone();
                    if list.len() < self.m0 {
                        new.push(Cand { sim: c.sim, id: u });
                    } else if let Some(pos) = (0..list.len())
                        .filter(|&i| indeg[list[i].id as usize] >= 2)
                        .min_by(|&a, &b| list[a].cmp(&list[b]))
                    {
                        indeg[list[pos].id as usize] -= 1;
                        new[pos] = Cand { sim: c.sim, id: u };
                    } else {
                        continue;
                    }
                    self.set_list_build(bx, v, 0, &new, false);
                    indeg[u as usize] += 1;
                    mark(self, u, &mut reach, &mut indeg, &mut stack);
                    break;
                }
            }
        }
    }

    /// Neighbour lists (layers `0..=level(q)`) chosen for new node `q`, each
    /// sorted by decreasing similarity to `q`.
    fn forward_links(
        &self,
        data: &[f32],
        q: usize,
        batch: Range<usize>,
        s: &mut SearchScratch,
    ) -> Vec<Vec<Cand>> {
        let dim = self.dim;
        let f = self.dot;
        let level = self.levels[q] as usize;
        let qv = row(data, dim, q as u32);
        let peers: Vec<Cand> = batch
            .filter(|&p| p != q)
            .map(|p| Cand {
                sim: f(qv, row(data, dim, p as u32)),
                id: p as u32,
            })
            .collect();
        let top = self.max_level;
        let mut cur = Cand {
            sim: f(qv, row(data, dim, self.entry)),
            id: self.entry,
        };
        for l in (level + 1..=top).rev() {
            cur = self.greedy(data, qv, cur, l);
        }
        let mut eps = vec![cur];
        let mut lists = vec![Vec::new(); level + 1];
        let mut cands: Vec<(Cand, bool)> = Vec::new();
        for l in (0..=level).rev() {
            cands.clear();
            if l <= top {
                self.search_layer(data, qv, &eps, self.config.ef_construction, l, s);
                eps.clear();
                eps.extend(s.res.drain().map(|r| r.0));
                cands.extend(eps.iter().map(|&c| (c, true)));
            }
            cands.extend(
                peers
                    .iter()
                    .filter(|p| self.levels[p.id as usize] as usize >= l)
                    .map(|&c| (c, true)),
            );
            cands.sort_unstable_by_key(|c| Reverse(c.0));
            cands.truncate(self.config.ef_construction.max(self.m));
            lists[l] = self.select_heuristic(data, &cands, self.m, false);
        }
        lists
    }

    /// New list for `t` on layer `l` after adding reverse links from `srcs`
    /// (sorted ids), with its "closed" flag; `None` if nothing changes.
    /// Lists with room get the new links appended (paper, algorithm 1);
    /// overfull ones are shrunk with the heuristic.
    fn merge_reverse(
        &self,
        data: &[f32],
        bx: &BuildExtra,
        t: u32,
        l: usize,
        srcs: &[u32],
    ) -> Option<(Vec<Cand>, bool)> {
        let cur = self.neighbors(t, l);
        let cur_sims = bx.sims(self, t, l);
        let tv = row(data, self.dim, t);
        let add: Vec<Cand> = srcs
            .iter()
            .copied()
            .filter(|&x| x != t && !cur.contains(&x))
            .map(|x| Cand {
                sim: (self.dot)(tv, row(data, self.dim, x)),
                id: x,
            })
            .collect();
        if add.is_empty() {
            return None;
        }
        let cap = if l == 0 { self.m0 } else { self.m };
        let mut cands: Vec<(Cand, bool)> = cur
            .iter()
            .zip(cur_sims)
            .map(|(&id, &sim)| (Cand { sim, id }, false))
            .collect();
        cands.extend(add.iter().map(|&c| (c, true)));
        if cands.len() <= cap {
            // Appending may break the closed invariant.
            return Some((cands.into_iter().map(|c| c.0).collect(), false));
        }
        cands.sort_unstable_by_key(|c| Reverse(c.0));
        Some((
            self.select_heuristic(
                data,
                &cands,
                cap,
                bx.closed(self, t, l) && !full_heuristic(),
            ),
            true,
        ))
    }

    /// Algorithm 4 (SELECT-NEIGHBORS-HEURISTIC, no extension, no kept pruned
    /// connections): walk candidates from most to least similar to the base
    /// and keep one iff it is more similar to the base than to every
    /// neighbour kept so far. `cands` is sorted descending; the output keeps
    /// that order and is "closed" (every element beats all earlier ones).
    ///
    /// Each candidate carries an `is_new` flag. With `old_closed`, the
    /// candidates with `is_new == false` are known to form a closed list, so
    /// an old candidate already beats every *old* candidate before it and only
    /// needs checking against the kept *new* ones — the same result as the
    /// full check at a fraction of the dot products (a full list of `2·M`
    /// links receiving one reverse link costs ≈ 2·M instead of ≈ 2·M² dots).
    fn select_heuristic(
        &self,
        data: &[f32],
        cands: &[(Cand, bool)],
        max: usize,
        old_closed: bool,
    ) -> Vec<Cand> {
        let f = self.dot;
        let mut kept: Vec<(Cand, bool)> = Vec::with_capacity(max);
        for &(c, is_new) in cands {
            if kept.len() >= max {
                break;
            }
            let cv = row(data, self.dim, c.id);
            let skip_old = old_closed && !is_new;
            if kept
                .iter()
                .all(|&(r, r_new)| (skip_old && !r_new) || f(cv, row(data, self.dim, r.id)) < c.sim)
            {
                kept.push((c, is_new));
            }
        }
        kept.into_iter().map(|c| c.0).collect()
    }

    fn set_list_build(
        &mut self,
        bx: &mut BuildExtra,
        node: u32,
        l: usize,
        list: &[Cand],
        closed: bool,
    ) {
        let (base, cap) = self.list_slot(node, l);
        assert!(list.len() <= cap);
        let buf = if l == 0 {
            &mut self.layer0
        } else {
            &mut self.upper
        };
        buf[base] = list.len() as u32;
        for (d, c) in buf[base + 1..base + 1 + list.len()].iter_mut().zip(list) {
            *d = c.id;
        }
        let (sb, li) = bx.slot(self, node, l);
        let sims = if l == 0 {
            &mut bx.sims0
        } else {
            &mut bx.sims_up
        };
        for (d, c) in sims[sb..sb + list.len()].iter_mut().zip(list) {
            *d = c.sim;
        }
        if l == 0 {
            bx.closed0[li] = closed;
        } else {
            bx.closed_up[li] = closed;
        }
    }

    fn set_list(&mut self, node: u32, l: usize, list: &[u32]) {
        let (base, cap) = self.list_slot(node, l);
        assert!(list.len() <= cap);
        let buf = if l == 0 {
            &mut self.layer0
        } else {
            &mut self.upper
        };
        buf[base] = list.len() as u32;
        buf[base + 1..base + 1 + list.len()].copy_from_slice(list);
    }

    #[inline(always)]
    fn list_slot(&self, node: u32, l: usize) -> (usize, usize) {
        if l == 0 {
            (node as usize * (self.m0 + 1), self.m0)
        } else {
            (
                (self.upper_start[node as usize] + l - 1) * (self.m + 1),
                self.m,
            )
        }
    }

    /// Neighbours of `node` on layer `l` (`l ≤ level(node)`).
    #[inline(always)]
    fn neighbors(&self, node: u32, l: usize) -> &[u32] {
        let (base, _) = self.list_slot(node, l);
        let buf = if l == 0 { &self.layer0 } else { &self.upper };
        let c = buf[base] as usize;
        &buf[base + 1..base + 1 + c]
    }

    /// Greedy walk on layer `l` (search-layer with ef = 1).
    fn greedy(&self, data: &[f32], q: &[f32], mut cur: Cand, l: usize) -> Cand {
        loop {
            let mut best = cur;
            for &nb in self.neighbors(cur.id, l) {
                let sim = (self.dot)(q, row(data, self.dim, nb));
                let c = Cand { sim, id: nb };
                if c > best {
                    best = c;
                }
            }
            if best.id == cur.id {
                return cur;
            }
            cur = best;
        }
    }

    /// Algorithm 2 (SEARCH-LAYER). Leaves the (≤ ef) results in `s.res`.
    fn search_layer(
        &self,
        data: &[f32],
        q: &[f32],
        eps: &[Cand],
        ef: usize,
        l: usize,
        s: &mut SearchScratch,
    ) {
        s.reset(self.n);
        let f = self.dot;
        let dim = self.dim;
        for &e in eps {
            if s.visit(e.id) {
                s.cand.push(e);
                s.res.push(Reverse(e));
                if s.res.len() > ef {
                    s.res.pop();
                }
            }
        }
        while let Some(c) = s.cand.pop() {
            let worst = s.res.peek().unwrap().0;
            if c < worst && s.res.len() >= ef {
                break;
            }
            s.buf.clear();
            for &nb in self.neighbors(c.id, l) {
                if s.visit(nb) {
                    s.buf.push(nb);
                    prefetch_row(data, dim, nb);
                }
            }
            for i in 0..s.buf.len() {
                let nb = s.buf[i];
                let cd = Cand {
                    sim: f(q, row(data, dim, nb)),
                    id: nb,
                };
                if s.res.len() < ef || cd > s.res.peek().unwrap().0 {
                    s.cand.push(cd);
                    s.res.push(Reverse(cd));
                    if s.res.len() > ef {
                        s.res.pop();
                    }
                }
            }
        }
    }

    fn check_args(&self, data: &[f32], query: &[f32]) -> Result<(), String> {
        if data.len() != self.n * self.dim {
            return Err(format!(
                "hnsw: data has {} floats, index expects {} rows × {} dims = {}",
                data.len(),
                self.n,
                self.dim,
                self.n * self.dim
            ));
        }
        if query.len() != self.dim {
            return Err(format!(
                "hnsw: query has {} dims, index has {}",
                query.len(),
                self.dim
            ));
        }
        Ok(())
    }

    /// Approximate top-`k` rows by dot product with `query`, written to `out`
    /// in descending similarity as `(row, similarity)`; `min(k, n)` results.
    /// `ef` is the candidate list size (raised to `k` if smaller); when
    /// `ef ≥ n` the search is exact. `data` must be the matrix the index was
    /// built on.
    ///
    /// # Panics
    /// If `data.len() != n·dim` or `query.len() != dim` (see [`Hnsw::try_search`]).
    pub fn search(
        &self,
        data: &[f32],
        query: &[f32],
        k: usize,
        ef: usize,
        scratch: &mut SearchScratch,
        out: &mut Vec<(u32, f32)>,
    ) {
        if let Err(e) = self.try_search(data, query, k, ef, scratch, out) {
            panic!("{e}");
        }
    }

    /// [`Hnsw::search`] with the configured `ef_search`.
    pub fn search_default(
        &self,
        data: &[f32],
        query: &[f32],
        k: usize,
        scratch: &mut SearchScratch,
        out: &mut Vec<(u32, f32)>,
    ) {
        self.search(data, query, k, self.config.ef_search, scratch, out)
    }

    /// [`Hnsw::search`] returning an error on a length mismatch (`out` is then empty).
    pub fn try_search(
        &self,
        data: &[f32],
        query: &[f32],
        k: usize,
        ef: usize,
        scratch: &mut SearchScratch,
        out: &mut Vec<(u32, f32)>,
    ) -> Result<(), String> {
        out.clear();
        self.check_args(data, query)?;
        if self.n == 0 || k == 0 {
            return Ok(());
        }
        let ef = ef.max(k);
        if ef >= self.n {
            top_k_exact(data, self.dim, query, k, &mut scratch.res, out);
            return Ok(());
        }
        self.search_graph(data, query, k, ef, scratch, out);
        Ok(())
    }

    /// Graph search proper (no brute-force shortcut). Arguments pre-checked.
    fn search_graph(
        &self,
        data: &[f32],
        query: &[f32],
        k: usize,
        ef: usize,
        s: &mut SearchScratch,
        out: &mut Vec<(u32, f32)>,
    ) {
        out.clear();
        let mut cur = Cand {
            sim: (self.dot)(query, row(data, self.dim, self.entry)),
            id: self.entry,
        };
        for l in (1..=self.max_level).rev() {
            cur = self.greedy(data, query, cur, l);
        }
        self.search_layer(data, query, &[cur], ef.max(k), 0, s);
        while s.res.len() > k {
            s.res.pop();
        }
        while let Some(Reverse(c)) = s.res.pop() {
            out.push((c.id, c.sim));
        }
        out.reverse();
    }

    /// Test hook: graph search without the `ef ≥ n` brute-force shortcut.
    #[doc(hidden)]
    pub fn search_graph_only(
        &self,
        data: &[f32],
        query: &[f32],
        k: usize,
        ef: usize,
        s: &mut SearchScratch,
        out: &mut Vec<(u32, f32)>,
    ) {
        out.clear();
        self.check_args(data, query).unwrap();
        if self.n > 0 && k > 0 {
            self.search_graph(data, query, k, ef, s, out);
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.n
    }
    /// Whether the index has no nodes.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// Vector dimension the index was built for.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// The build configuration.
    pub fn config(&self) -> &HnswConfig {
        &self.config
    }
    /// Highest layer and the entry point on it.
    pub fn max_level(&self) -> usize {
        self.max_level
    }

    /// Diagnostics: number of layer-0 links and number of nodes reachable from
    /// the entry point on layer 0 (BFS; allocates).
    pub fn layer0_stats(&self) -> (usize, usize) {
        if self.n == 0 {
            return (0, 0);
        }
        let links: usize = (0..self.n as u32).map(|i| self.neighbors(i, 0).len()).sum();
        let mut seen = vec![false; self.n];
        let mut stack = vec![self.entry];
        seen[self.entry as usize] = true;
        let mut count = 1;
        while let Some(v) = stack.pop() {
            for &w in self.neighbors(v, 0) {
                if !seen[w as usize] {
                    seen[w as usize] = true;
                    count += 1;
                    stack.push(w);
                }
            }
        }
        (links, count)
    }
}

/// Build-only state: the similarity of every stored link to its owner and,
/// per list, whether it is "closed" (output of the heuristic, nothing
/// appended since). Lets a full list absorb a reverse link without
/// recomputing all pairwise similarities.
struct BuildExtra {
    sims0: Vec<f32>,
    sims_up: Vec<f32>,
    closed0: Vec<bool>,
    closed_up: Vec<bool>,
}

impl BuildExtra {
    fn new(g: &Hnsw) -> Self {
        let up_lists = g.upper_start[g.n];
        BuildExtra {
            sims0: vec![0.0; g.n * g.m0],
            sims_up: vec![0.0; up_lists * g.m],
            closed0: vec![false; g.n],
            closed_up: vec![false; up_lists],
        }
    }
    /// (offset into the sims array, list index) of (node, layer).
    #[inline]
    fn slot(&self, g: &Hnsw, node: u32, l: usize) -> (usize, usize) {
        if l == 0 {
            (node as usize * g.m0, node as usize)
        } else {
            let li = g.upper_start[node as usize] + l - 1;
            (li * g.m, li)
        }
    }
    fn sims(&self, g: &Hnsw, node: u32, l: usize) -> &[f32] {
        let (sb, _) = self.slot(g, node, l);
        let len = g.neighbors(node, l).len();
        if l == 0 {
            &self.sims0[sb..sb + len]
        } else {
            &self.sims_up[sb..sb + len]
        }
    }
    fn closed(&self, g: &Hnsw, node: u32, l: usize) -> bool {
        let (_, li) = self.slot(g, node, l);
        if l == 0 {
            self.closed0[li]
        } else {
            self.closed_up[li]
        }
    }
}

static FULL_HEURISTIC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Test hook: disable the incremental shrink (always run the full heuristic).
/// The built graph must be identical either way.
#[doc(hidden)]
pub fn set_full_heuristic(on: bool) {
    FULL_HEURISTIC.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn full_heuristic() -> bool {
    FULL_HEURISTIC.load(std::sync::atomic::Ordering::Relaxed)
}

/// Exact top-`k` by dot product over all rows of `data` (row-major `[n, dim]`),
/// written to `out` in descending similarity (ties: lower id first).
/// Allocation-free once `heap`/`out` have capacity `k`.
fn top_k_exact(
    data: &[f32],
    dim: usize,
    query: &[f32],
    k: usize,
    heap: &mut BinaryHeap<Reverse<Cand>>,
    out: &mut Vec<(u32, f32)>,
) {
    out.clear();
    heap.clear();
    if k == 0 || dim == 0 {
        return;
    }
    for (i, row) in data.chunks_exact(dim).enumerate() {
        let c = Cand {
            sim: crate::simd::dot(query, row),
            id: i as u32,
        };
        if heap.len() < k {
            heap.push(Reverse(c));
        } else if heap.peek().is_some_and(|worst| c > worst.0) {
            heap.pop();
            heap.push(Reverse(c));
        }
    }
    while let Some(Reverse(c)) = heap.pop() {
        out.push((c.id, c.sim));
    }
    out.reverse();
}

/// Exact (brute-force) top-`k` search: the reference the index is measured
/// against. `data` is row-major `[n, dim]`; results are `(row, similarity)` in
/// descending similarity, ties broken by lower row id.
///
/// # Panics
///
/// When `dim` is 0, `data.len()` is not a multiple of `dim` or `query.len() != dim`.
pub fn brute_force_top_k(
    data: &[f32],
    dim: usize,
    query: &[f32],
    k: usize,
    out: &mut Vec<(u32, f32)>,
) {
    assert!(
        dim > 0 && data.len().is_multiple_of(dim),
        "data length must be a multiple of dim"
    );
    assert_eq!(query.len(), dim, "query length must equal dim");
    let mut heap = BinaryHeap::with_capacity(k + 1);
    top_k_exact(data, dim, query, k, &mut heap, out);
}

// ---------------------------------------------------------------------------
// Parallel helpers. Results are collected in index order, and every closure
// only reads the frozen graph, so the output never depends on scheduling.

#[derive(Default)]
struct ScratchPool(std::sync::Mutex<Vec<SearchScratch>>);

struct PooledScratch<'a> {
    pool: &'a ScratchPool,
    s: Option<SearchScratch>,
}

impl Drop for PooledScratch<'_> {
    fn drop(&mut self) {
        if let (Some(s), Ok(mut v)) = (self.s.take(), self.pool.0.lock()) {
            v.push(s);
        }
    }
}

fn par_map<T: Send, F>(range: Range<usize>, pool: &ScratchPool, f: F) -> Vec<T>
where
    F: Fn(usize, &mut SearchScratch) -> T + Sync + Send,
{
    use rayon::prelude::*;
    if range.len() <= 1 {
        let mut s = pool
            .0
            .lock()
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_default();
        let out = range.map(|i| f(i, &mut s)).collect();
        if let Ok(mut v) = pool.0.lock() {
            v.push(s);
        }
        return out;
    }
    range
        .into_par_iter()
        .with_min_len(4)
        .map_init(
            || PooledScratch {
                pool,
                s: Some(
                    pool.0
                        .lock()
                        .ok()
                        .and_then(|mut v| v.pop())
                        .unwrap_or_default(),
                ),
            },
            |ps, i| f(i, ps.s.as_mut().unwrap()),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_distribution() {
        let lv = draw_levels(200_000, 16, 1);
        let ge1 = lv.iter().filter(|&&l| l >= 1).count() as f64 / 2e5;
        let ge2 = lv.iter().filter(|&&l| l >= 2).count() as f64 / 2e5;
        assert!((ge1 - 1.0 / 16.0).abs() < 0.003, "{ge1}");
        assert!((ge2 - 1.0 / 256.0).abs() < 0.001, "{ge2}");
    }

    #[test]
    fn cand_order() {
        let a = Cand { sim: 0.5, id: 3 };
        let b = Cand { sim: 0.5, id: 7 };
        let c = Cand { sim: 0.6, id: 9 };
        assert!(a > b && c > a);
    }

    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn send_sync() {
        assert_send_sync::<Hnsw>();
        assert_send_sync::<SearchScratch>();
    }
}
