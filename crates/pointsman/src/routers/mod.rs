//! The router kinds, one module each.
//!
//! - [`baseline`]: random, cheapest, best single model, a fixed model, and RouterBench's zero
//!   router — the figures every learned router must beat.

pub mod baseline;
