//! Decision-time policies: what a deployment has to say about a choice beyond the router's
//! estimates, applied after the estimates and before the choice, over any router.
//!
//! ```text
//! features ──► Router::estimate ──► policy ──► choice ──► Decision + Audit
//!                                     │
//!      rules · capabilities · guard · caps · budgets (pacing) · stickiness
//! ```
//!
//! A [`Policy`] is a [`PolicyConfig`] (one JSON or TOML file, `docs/policies.md`), an optional
//! fitted [`EmbeddingGuard`], and the [`PolicyState`] that holds its budgets' spend and its
//! sessions' last models. A [`PolicyRouter`] binds a policy to a router (its rules are compiled
//! against the router's pool once) and routes [`Request`]s: the query's features plus what the
//! policy may know about it (text, tenant, user, session, episode, metadata, needs).
//!
//! The parts act in this order, each recorded in the decision's [`Audit`]:
//!
//! 1. **rules** ([`rules`]): the first matching rule (or several, with `continue`) restricts or
//!    excludes models, forces one, or sets the cost weight;
//! 2. **capabilities and context windows** ([`caps`]): models that lack a capability the
//!    request needs, or whose window is shorter than the prompt, are excluded;
//! 3. **the guard** ([`guard`]): a query whose out-of-distribution score is above the
//!    calibrated threshold is refused ([`Error::OutOfDistribution`]) or sent to a fallback model;
//! 4. **hard caps** ([`caps`]): models expected to cost, take or use more than a cap are
//!    excluded; when none is left the request is refused ([`Error::NoModelFits`]), never
//!    silently answered by a model over a cap;
//! 5. **budgets** ([`budget`], [`episode`]): each budget of the request (per tenant, user,
//!    episode, or global) raises the cost weight when its spend runs ahead of its pace, and its
//!    hard stop excludes models it cannot pay for ([`Error::BudgetExhausted`] when none is
//!    left);
//! 6. **the choice**: the router's own rule (`Router::choose`) over what is left, with latency
//!    and energy weighed in; a model forced by a rule or the guard's fallback takes its place;
//! 7. **stickiness** ([`sticky`]): the session's previous model is kept unless the choice beats
//!    it by the margin.
//!
//! After the call, [`PolicyRouter::record`] charges the actual cost to the request's budgets
//! and records the model that answered as the session's.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use pointsman::data::Split;
//! use pointsman::policy::{Episode, Policy, PolicyConfig, PolicyRouter, Request};
//! use pointsman::routers::baseline::{Baseline, BaselineRouter};
//! use pointsman::{ModelCard, ModelPool, QueryFeatures};
//! let pool = ModelPool::new(vec![ModelCard::new("small", 0.1, 0.1), ModelCard::new("large", 10.0, 10.0)])?;
//! let train = Split::from_arrays(pool, vec![1.0, 0.0], 2, vec![0.5, 0.9], vec![1e-5, 1e-3])?;
//! let router = Arc::new(BaselineRouter::fit(Baseline::BestSingle, &train)?);
//! let config = PolicyConfig::from_json(r#"{"rules": [{"name": "no-large-for-free",
//!     "when": {"tenant": ["free"]}, "then": {"exclude": ["large"]}}]}"#, "policy.json")?;
//! let policy = PolicyRouter::new(router, Policy::new(config)?)?;
//! let q = QueryFeatures::new(vec![1.0, 0.0])?;
//! let d = policy.route(&Request::new(&q).with_tenant("free"))?;
//! assert_eq!(d.decision.model_id, "small");
//! assert_eq!(d.audit.rules, ["no-large-for-free"]);
//! // An agent episode: 1 cent for 3 steps.
//! let episode = Episode::new("run-1", 0.01, 3)?;
//! let step = policy.route(&Request::new(&q).with_episode(episode.clone()))?;
//! policy.record(&Request::new(&q).with_episode(episode), Some(&step.decision.model_id), 0.004)?;
//! # Ok::<(), pointsman::Error>(())
//! ```
//!
//! [`Error::OutOfDistribution`]: crate::Error::OutOfDistribution
//! [`Error::NoModelFits`]: crate::Error::NoModelFits
//! [`Error::BudgetExhausted`]: crate::Error::BudgetExhausted

mod audit;
pub mod budget;
pub mod caps;
mod config;
mod decide;
pub mod episode;
pub mod guard;
mod request;
pub mod rules;
mod state;
pub mod sticky;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use audit::{Audit, Exclusion, GuardAudit, StickyAudit};
pub use budget::{BudgetConfig, BudgetKey, BudgetStatus, BudgetWindow, PacingConfig, PacingCurve};
pub use caps::{Caps, Weights};
pub use config::{PolicyConfig, POLICY_FORMAT_VERSION};
pub use decide::{PolicyDecision, PolicyRouter};
pub use episode::Episode;
pub use guard::{EmbeddingGuard, GuardAction, GuardConfig, GuardFit, GuardSource};
pub use request::Request;
pub use rules::{Action, Condition, Rule};
pub(crate) use state::window_ttl_seconds;
pub use state::{Hold, MemoryState, PolicyState, SessionEntry, Totals};
pub use sticky::StickyConfig;

use crate::error::{Error, Result};

/// A policy: its configuration, its fitted guard (if the guard scans embeddings), its state and
/// its pacing curve. Cloning shares the state (a handle, not a copy).
#[derive(Debug, Clone)]
pub struct Policy {
    config: Arc<PolicyConfig>,
    guard: Option<Arc<EmbeddingGuard>>,
    state: Arc<dyn PolicyState>,
    curve: Arc<PacingCurve>,
}

impl Policy {
    /// A policy with in-process state ([`MemoryState`]); a guard of source `embeddings` must be
    /// attached with [`Policy::with_guard`] (or read by [`Policy::load`]).
    ///
    /// # Errors
    ///
    /// The errors of [`PolicyConfig::validate`].
    pub fn new(config: PolicyConfig) -> Result<Policy> {
        config.validate()?;
        let capacity = config.sticky.as_ref().map_or(1, |s| s.capacity);
        Ok(Policy {
            curve: Arc::new(PacingCurve::new(&config.pacing)),
            config: Arc::new(config),
            guard: None,
            state: Arc::new(MemoryState::new(capacity)),
        })
    }

    /// Attaches a fitted guard (the policy's guard section must have source `embeddings`; one
    /// without a guard section gets `{"source": "embeddings", "action": "refuse"}`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the policy's guard reads the router's signal.
    pub fn with_guard(mut self, guard: EmbeddingGuard) -> Result<Policy> {
        let mut config = (*self.config).clone();
        match &mut config.guard {
            Some(g) if g.source == GuardSource::Router => {
                return Err(Error::Config(
                    "the policy's guard reads the router's signal: set guard.source to \"embeddings\" to attach a fitted guard".into(),
                ))
            }
            Some(_) => {}
            None => {
                config.guard = Some(GuardConfig {
                    source: GuardSource::Embeddings,
                    threshold: None,
                    action: GuardAction::Refuse,
                    file: None,
                })
            }
        }
        self.config = Arc::new(config);
        self.guard = Some(Arc::new(guard));
        Ok(self)
    }

    /// This policy with a guard fitted on `train`'s embeddings ([`EmbeddingGuard::fit`]) and
    /// calibrated by `fit`: a guard section of source `router` becomes source `embeddings` with
    /// the fitted threshold (its action is kept); without a guard section the guard refuses.
    /// The rules, caps, budgets and sessions are kept; the state starts fresh.
    ///
    /// # Errors
    ///
    /// The errors of [`EmbeddingGuard::fit`].
    pub fn fit_guard(&self, train: &crate::data::Split, fit: &GuardFit) -> Result<Policy> {
        let guard = EmbeddingGuard::fit(train, fit)?;
        let mut config = (*self.config).clone();
        if let Some(g) = config.guard.as_mut() {
            g.source = GuardSource::Embeddings;
            g.threshold = None;
            g.file = None;
        }
        Policy::new(config)?.with_guard(guard)
    }

    /// Replaces the state (for example one shared between replicas, or a restored one). The
    /// pacing curve stays per process.
    pub fn with_state(mut self, state: Arc<dyn PolicyState>) -> Policy {
        self.state = state;
        self
    }

    /// Reads a policy file (JSON, or TOML for `.toml`) and, for a guard of source
    /// `embeddings`, its guard file (`guard.file`, relative to the policy file).
    ///
    /// # Errors
    ///
    /// The errors of [`PolicyConfig::load`] and [`EmbeddingGuard::load`]; [`Error::Config`]
    /// when an `embeddings` guard names no file.
    pub fn load(path: &Path) -> Result<Policy> {
        let config = PolicyConfig::load(path)?;
        let guard_file = match &config.guard {
            Some(g) if g.source == GuardSource::Embeddings => {
                Some(g.file.clone().ok_or_else(|| {
                    Error::Config(format!(
                        "{}: guard.source is \"embeddings\" but guard.file is not set",
                        path.display()
                    ))
                })?)
            }
            _ => None,
        };
        let mut policy = Policy::new(config)?;
        if let Some(file) = guard_file {
            let file = resolve(path, &file);
            policy.guard = Some(Arc::new(EmbeddingGuard::load(&file)?));
        }
        Ok(policy)
    }

    /// Writes the policy file and, with a fitted guard, the guard beside it
    /// (`<file name>.guard.safetensors`, named in the file's `guard.file`), both atomically. The guard's
    /// path is derived, not given: a file there that is not a guard is not replaced.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path; [`Error::InvalidInput`] when the guard's path holds a file
    /// that is not a guard.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut config = (*self.config).clone();
        if let (Some(guard), Some(g)) = (&self.guard, config.guard.as_mut()) {
            let at = Policy::guard_path(path);
            let name = PathBuf::from(at.file_name().expect("a derived file name"));
            if std::fs::symlink_metadata(&at).is_ok() && EmbeddingGuard::load(&at).is_err() {
                return Err(Error::InvalidInput(format!(
                    "{} holds a file that is not a guard: the guard of {} would replace it (move \
                     it, or save the policy under another name)",
                    at.display(),
                    path.display()
                )));
            }
            guard.save(&at)?;
            g.file = Some(name);
        }
        config.save(path)
    }

    /// Where [`Policy::save`] writes the guard of a policy saved at `path`:
    /// `<file name>.guard.safetensors` beside it (`policy.toml.guard.safetensors`). The whole
    /// name, extension included: with the stem alone, `p.json` and `p.toml` shared one guard,
    /// and saving either replaced the other's.
    pub fn guard_path(path: &Path) -> PathBuf {
        let name = path
            .file_name()
            .map_or("policy".into(), |s| s.to_string_lossy().into_owned());
        resolve(path, Path::new(&format!("{name}.guard.safetensors")))
    }

    /// The guard file this policy's configuration names, for a policy read from `path` (a
    /// relative name is beside it).
    pub fn guard_file(&self, path: &Path) -> Option<PathBuf> {
        let file = self.config.guard.as_ref()?.file.as_ref()?;
        Some(resolve(path, file))
    }

    /// The configuration.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The fitted guard, if any.
    pub fn guard(&self) -> Option<&EmbeddingGuard> {
        self.guard.as_deref()
    }

    /// The state.
    pub fn state(&self) -> &Arc<dyn PolicyState> {
        &self.state
    }

    /// The pacing curve (per process).
    pub fn pacing_curve(&self) -> &PacingCurve {
        &self.curve
    }
}

/// `file` relative to the folder of `policy_path` (absolute paths stay).
fn resolve(policy_path: &Path, file: &Path) -> PathBuf {
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        policy_path.parent().unwrap_or(Path::new(".")).join(file)
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
