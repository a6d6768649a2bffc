//! The adjacency lists in the layout described on [`Hnsw`]: reading and writing a node's list on a
//! layer, the matrix row of a node, and the graph's sizes and diagnostics.

use super::{Hnsw, HnswConfig};

#[inline(always)]
pub(super) fn row(data: &[f32], dim: usize, i: u32) -> &[f32] {
    let s = i as usize * dim;
    &data[s..s + dim]
}

impl Hnsw {
    pub(super) fn set_list(&mut self, node: u32, l: usize, list: &[u32]) {
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
    pub(super) fn list_slot(&self, node: u32, l: usize) -> (usize, usize) {
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
    pub(super) fn neighbors(&self, node: u32, l: usize) -> &[u32] {
        let (base, _) = self.list_slot(node, l);
        let buf = if l == 0 { &self.layer0 } else { &self.upper };
        let c = buf[base] as usize;
        &buf[base + 1..base + 1 + c]
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
