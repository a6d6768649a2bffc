//! Evaluating cascades with a simulated judge.
//!
//! A cascade needs a confidence for every answer it sees, and the datasets carry none, so
//! evaluation simulates a judge ([`SimulatedJudge`]: the answer's score ≥ 0.5, flipped with
//! probability ε by a seeded draw per query and model). **This is a simulation**: the figures say
//! what a confidence that errs ε of the time is worth, not how a particular log-probability or
//! verifier performs, and reports mark such entrants.
//!
//! The `cascade` entrant is a dynamic cascade tuned on the training split (with confidences from
//! a judge seeded differently from the test judge; see [`AnyRouter::fit`]) whose cost weight is
//! swept on the test split; `cascade-chain` searches fixed chains on the training split and
//! evaluates the training frontier's chains on the test split.

use super::{Entrant, EntrantOptions};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::metrics::{model_map, SweepPoint};
use crate::registry::AnyRouter;
use crate::routers::cascade::{CascadeConfig, CascadeRouter, ChainCandidate, ChainSearch};

pub use crate::routers::cascade::{SimulatedJudge, DEFAULT_JUDGE_NOISE};

/// A cascade evaluated with a simulated judge by sweeping its cost weight.
#[derive(Debug)]
pub struct CascadeEntrant {
    name: String,
    router: AnyRouter,
    judge: SimulatedJudge,
    points: usize,
}

impl CascadeEntrant {
    /// Evaluates `router` (which must be a cascade) under `name`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `router` is not a cascade.
    pub fn new(
        name: impl Into<String>,
        router: AnyRouter,
        judge: SimulatedJudge,
        points: usize,
    ) -> Result<Self> {
        let name = name.into();
        if router.as_cascade().is_none() {
            return Err(Error::InvalidInput(format!(
                "{name}: a {} router is not a cascade",
                router.kind()
            )));
        }
        Ok(CascadeEntrant {
            name,
            router,
            judge,
            points: points.max(2),
        })
    }

    /// The cascade.
    pub fn router(&self) -> &CascadeRouter {
        self.router
            .as_cascade()
            .expect("checked to be a cascade on construction")
    }
}

impl Entrant for CascadeEntrant {
    fn name(&self) -> &str {
        &self.name
    }

    fn simulated_judge(&self) -> bool {
        true
    }

    fn sweep(&self, test: &Split) -> Result<Vec<SweepPoint>> {
        model_map(self.router.router(), test)?;
        let conf = self.judge.confidences(test);
        self.router().sweep(test, &conf, self.points)
    }
}

/// Fixed chains chosen on the training split, evaluated with a simulated judge: one point per
/// chain of the training frontier.
#[derive(Debug)]
pub struct ChainEntrant {
    name: String,
    chains: Vec<(ChainCandidate, CascadeRouter)>,
    judge: SimulatedJudge,
}

impl Entrant for ChainEntrant {
    fn name(&self) -> &str {
        &self.name
    }

    fn simulated_judge(&self) -> bool {
        true
    }

    fn sweep(&self, test: &Split) -> Result<Vec<SweepPoint>> {
        let conf = self.judge.confidences(test);
        let mut out: Vec<SweepPoint> = Vec::new();
        for (c, router) in &self.chains {
            let p = router.simulate(test, &conf, 0.0, c.cost_basis)?;
            out.push(SweepPoint {
                cost_weight: c.cost_weight,
                ..p
            });
        }
        Ok(out)
    }
}

/// The `cascade-chain` entrant: fixed chains searched on `train` with a simulated judge's
/// confidences; the training frontier's chains are evaluated on the test split.
///
/// # Errors
///
/// The errors of [`SimulatedJudge::new`] and [`CascadeRouter::search_chains`].
pub fn chain_entrant(name: &str, train: &Split, options: &EntrantOptions) -> Result<ChainEntrant> {
    let train_judge = SimulatedJudge::for_training(options.judge_noise, options.seed)?;
    let conf = train_judge.confidences(train);
    let base = CascadeConfig {
        confidence_error: crate::routers::cascade::confidence_error(train, &conf, 0.5)?,
        ..Default::default()
    };
    let search = ChainSearch {
        points: options.sweep_points,
        ..Default::default()
    };
    let report = CascadeRouter::search_chains(train, &conf, &base, &search)?;
    tracing::info!(
        "{name}: {} chains in {:.1} s; {} on the frontier",
        report.evaluated,
        report.seconds,
        report.frontier.len()
    );
    let chains = report
        .frontier
        .into_iter()
        .map(|c| {
            let router = CascadeRouter::fit(train, &c.config(&base))?;
            Ok((c, router))
        })
        .collect::<Result<_>>()?;
    Ok(ChainEntrant {
        name: name.to_string(),
        chains,
        judge: SimulatedJudge::new(options.judge_noise, options.seed)?,
    })
}
