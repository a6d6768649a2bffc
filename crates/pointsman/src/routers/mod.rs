//! The router kinds, one module each.
//!
//! - [`baseline`]: random, cheapest, best single model, a fixed model, and RouterBench's zero
//!   router — the figures every learned router must beat.
//! - [`knn`]: similarity-weighted scores of the nearest training queries, shrunk toward a prior.
//! - [`mf`]: RouteLLM's matrix factorisation, generalised to N models.
//! - [`irt`]: multidimensional item response theory (query difficulty and discrimination, model
//!   ability per latent dimension).
//! - [`stack`]: several pre-call routers' estimates combined per model by out-of-fold weights.
//! - [`bandit`]: contextual bandits that learn online from the outcome of the chosen model
//!   (LinUCB, linear Thompson sampling, a neighbourhood bandit, a cluster bandit).
//! - [`cascade`]: call a cheap model first and escalate on low confidence, within a budget.

pub mod bandit;
pub mod baseline;
pub mod cascade;
pub mod irt;
pub mod knn;
pub mod mf;
pub mod stack;
