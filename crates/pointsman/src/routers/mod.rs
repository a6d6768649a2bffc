//! The router kinds, one module each.
//!
//! - [`baseline`]: random, cheapest, best single model, a fixed model, and RouterBench's zero
//!   router — the figures every learned router must beat.
//! - [`knn`]: similarity-weighted scores of the nearest training queries, shrunk toward a prior.
//! - [`mf`]: RouteLLM's matrix factorisation, generalised to N models.
//! - [`cascade`]: call a cheap model first and escalate on low confidence, within a budget.

pub mod baseline;
pub mod cascade;
pub mod knn;
pub mod mf;
