//! Building the graph: the seeded level draw, deterministic batched insertion (forward links
//! against the frozen graph, reverse links merged per node), the neighbour-selection heuristic
//! and the layer-0 connectivity repair.

use std::cmp::Reverse;
use std::ops::Range;

use super::graph::row;
use super::search::{Cand, SearchScratch};
use super::{Hnsw, HnswConfig, MAX_LEVEL};

/// Batches start after this many sequentially inserted nodes...
const SEQUENTIAL_PREFIX: usize = 64;
/// ...and are `n_done / BATCH_DIVISOR` nodes long...
const BATCH_DIVISOR: usize = 64;
/// ...capped at this size.
const MAX_BATCH: usize = 256;

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
pub(super) fn draw_levels(n: usize, m: usize, seed: u64) -> Vec<u8> {
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
    pub(super) fn skeleton(config: HnswConfig, dim: usize, levels: Vec<u8>, m0: usize) -> Hnsw {
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
