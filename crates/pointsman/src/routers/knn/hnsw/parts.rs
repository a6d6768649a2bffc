//! Flat-array form of an [`Hnsw`] for storage (e.g. as safetensors tensors next
//! to the embedding matrix) and its fully validating loader.

use serde::{Deserialize, Serialize};

use super::{Hnsw, HnswConfig, MAX_LEVEL, MAX_M};

/// The index as flat arrays plus a few scalars.
///
/// Layout (`n` = number of nodes = rows of the embedding matrix):
/// * `levels: [n] u8` — top layer of each node (`0..=MAX_LEVEL`).
/// * Node `i` owns `levels[i] + 1` neighbour lists, one per layer `0..=levels[i]`.
///   Lists are numbered node-major, layer-minor: list `(i, l)` has index
///   `L(i) + l` with `L(i) = i + Σ_{j<i} levels[j]`. There are
///   `T = n + Σ levels` lists.
/// * `offsets: [T + 1] u64` — CSR offsets into `neighbors`: list `t` is
///   `neighbors[offsets[t] .. offsets[t + 1]]`; `offsets[0] = 0`, non-decreasing,
///   `offsets[T] = neighbors.len()`.
/// * `neighbors: [offsets[T]] u32` — neighbour node ids.
/// * Scalars: `dim`, `m` (max degree on layers ≥ 1), `m0` (max degree on layer 0,
///   `2·m`), `ef_construction`, `ef_search`, `seed` (the build config, kept for
///   provenance and the default query `ef`), `entry_point` (a node on the top
///   layer) and `max_level` (= max of `levels`, 0 when `n = 0`).
///
/// For safetensors: store `levels` as U8, `offsets` as U64, `neighbors` as U32
/// and the scalars in the header metadata (or as 1-element tensors).
/// [`Hnsw::from_parts`] checks every invariant, so a corrupt or hostile file
/// gives an `Err`, never a panic or out-of-bounds access.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParts {
    /// Embedding dimension.
    pub dim: u32,
    /// Maximum degree on layers ≥ 1.
    pub m: u32,
    /// Maximum degree on layer 0 (`2·m`).
    pub m0: u32,
    /// Candidate list size of the build.
    pub ef_construction: u32,
    /// Default candidate list size of queries.
    pub ef_search: u32,
    /// Seed of the level draw.
    pub seed: u64,
    /// A node on the top layer, where searches start.
    pub entry_point: u32,
    /// The top layer (the largest of `levels`).
    pub max_level: u32,
    /// Top layer of each node.
    pub levels: Vec<u8>,
    /// CSR offsets of the neighbour lists into `neighbors`.
    pub offsets: Vec<u64>,
    /// Neighbour node ids of every list, concatenated.
    pub neighbors: Vec<u32>,
}

impl Hnsw {
    /// Flattens the index (see [`HnswParts`] for the layout).
    pub fn to_parts(&self) -> HnswParts {
        let total = self.n + self.upper_start[self.n];
        let mut offsets = Vec::with_capacity(total + 1);
        let mut neighbors = Vec::new();
        offsets.push(0u64);
        for i in 0..self.n as u32 {
            for l in 0..=self.levels[i as usize] as usize {
                neighbors.extend_from_slice(self.neighbors(i, l));
                offsets.push(neighbors.len() as u64);
            }
        }
        HnswParts {
            dim: self.dim as u32,
            m: self.m as u32,
            m0: self.m0 as u32,
            ef_construction: self.config.ef_construction as u32,
            ef_search: self.config.ef_search as u32,
            seed: self.config.seed,
            entry_point: self.entry,
            max_level: self.max_level as u32,
            levels: self.levels.clone(),
            offsets,
            neighbors,
        }
    }

    /// Rebuilds an index from [`HnswParts`] for an embedding matrix of `n`
    /// rows, validating everything: array lengths, levels ≤ `MAX_LEVEL`,
    /// `max_level`/`entry_point` consistency, CSR offsets (start at 0,
    /// monotone, end at `neighbors.len()`), degrees ≤ `m0` (layer 0) / `m`,
    /// every neighbour id `< n`, and every layer-`l` neighbour having a level
    /// `≥ l`.
    pub fn from_parts(parts: HnswParts, n: usize) -> Result<Hnsw, String> {
        let e = |s: String| Err(format!("hnsw parts: {s}"));
        let config = HnswConfig {
            m: parts.m as usize,
            ef_construction: parts.ef_construction as usize,
            ef_search: parts.ef_search as usize,
            seed: parts.seed,
        };
        config.validate().map_err(|s| format!("hnsw parts: {s}"))?;
        let (m, m0) = (parts.m as usize, parts.m0 as usize);
        if m0 < m || m0 > 2 * MAX_M {
            return e(format!("m0 = {m0} must be in m..=2·MAX_M (m = {m})"));
        }
        if parts.dim == 0 {
            return e("dim must be > 0".into());
        }
        if n >= u32::MAX as usize {
            return e(format!("too many rows ({n})"));
        }
        if parts.levels.len() != n {
            return e(format!(
                "levels has {} entries, expected n = {n}",
                parts.levels.len()
            ));
        }
        let mut total: usize = n;
        let mut top = 0usize;
        for (i, &l) in parts.levels.iter().enumerate() {
            if l as usize > MAX_LEVEL {
                return e(format!("level {l} of node {i} exceeds {MAX_LEVEL}"));
            }
            total += l as usize;
            top = top.max(l as usize);
        }
        if parts.max_level as usize != top {
            return e(format!(
                "max_level {} but highest node level is {top}",
                parts.max_level
            ));
        }
        if n > 0 {
            let ep = parts.entry_point as usize;
            if ep >= n {
                return e(format!("entry_point {ep} out of range (n = {n})"));
            }
            if parts.levels[ep] as usize != top {
                return e(format!("entry_point {ep} is not on the top layer {top}"));
            }
        } else if parts.entry_point != 0 {
            return e("entry_point must be 0 for an empty index".into());
        }
        if parts.offsets.len() != total + 1 {
            return e(format!(
                "offsets has {} entries, expected {}",
                parts.offsets.len(),
                total + 1
            ));
        }
        if parts.offsets[0] != 0 {
            return e("offsets[0] must be 0".into());
        }
        if parts.offsets[total] != parts.neighbors.len() as u64 {
            return e(format!(
                "last offset {} does not match neighbors length {}",
                parts.offsets[total],
                parts.neighbors.len()
            ));
        }
        if let Some(w) = parts.offsets.windows(2).position(|w| w[1] < w[0]) {
            return e(format!("offsets decrease at list {w}"));
        }
        let mut g = Hnsw::skeleton(config, parts.dim as usize, parts.levels, m0);
        g.entry = parts.entry_point;
        g.max_level = top;
        let mut t = 0usize;
        for i in 0..n {
            for l in 0..=g.levels[i] as usize {
                // In range: offsets are monotone and end at neighbors.len().
                let list =
                    &parts.neighbors[parts.offsets[t] as usize..parts.offsets[t + 1] as usize];
                t += 1;
                let cap = if l == 0 { m0 } else { m };
                if list.len() > cap {
                    return e(format!(
                        "node {i} layer {l}: degree {} exceeds {cap}",
                        list.len()
                    ));
                }
                for &nb in list {
                    if nb as usize >= n {
                        return e(format!(
                            "node {i} layer {l}: neighbour {nb} out of range (n = {n})"
                        ));
                    }
                    if (g.levels[nb as usize] as usize) < l {
                        return e(format!(
                            "node {i} layer {l}: neighbour {nb} has no layer {l}"
                        ));
                    }
                }
                g.set_list(i as u32, l, list);
            }
        }
        Ok(g)
    }
}
