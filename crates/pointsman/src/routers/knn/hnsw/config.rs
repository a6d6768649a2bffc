//! The graph's build and search parameters.

use serde::{Deserialize, Serialize};

use super::MAX_M;

/// Build/search parameters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct HnswConfig {
    /// Links per node on layers ≥ 1 (layer 0 allows `2·m`). Paper's `M`.
    pub m: usize,
    /// Candidate list size during construction (`efConstruction`).
    pub ef_construction: usize,
    /// Default candidate list size for queries (see
    /// [`Hnsw::search_default`](super::Hnsw::search_default)).
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
                "hnsw: ef_construction must be in 1..={}, got {}",
                u32::MAX,
                self.ef_construction
            ));
        }
        if self.ef_search < 1 || self.ef_search > u32::MAX as usize {
            return Err(format!(
                "hnsw: ef_search must be in 1..={}, got {}",
                u32::MAX,
                self.ef_search
            ));
        }
        Ok(())
    }
}
