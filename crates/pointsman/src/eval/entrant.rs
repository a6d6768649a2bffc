//! Entrants: what an evaluation sweeps, and how they are built by name.

use std::sync::Arc;

use crate::data::Split;
use crate::error::{Error, Result};
use crate::kind::{Family, RouterKind};
use crate::metrics::{model_map, oracle_choices, utility_sweeps, CostBasis, SweepPoint};
use crate::registry::{AnyRouter, FitOptions, RouterSpec};
use crate::router::Router;

use super::cascade;

/// The name of the oracle entrant.
pub const ORACLE: &str = "oracle";

/// The name of the entrant that searches fixed cascade chains (FrugalGPT-style).
pub const CASCADE_CHAIN: &str = "cascade-chain";

/// Something that can be evaluated on a test split: a router, the oracle, a cascade.
pub trait Entrant: Send + Sync + std::fmt::Debug {
    /// Name in reports.
    fn name(&self) -> &str;

    /// Whether the entrant reads the test labels (the oracle): such an entrant is a ceiling,
    /// not a router, and reports say so.
    fn reads_test_labels(&self) -> bool {
        false
    }

    /// Whether the entrant's decisions rest on simulated confidences (a cascade evaluated with a
    /// simulated judge): reports mark it, as its figures say what such a confidence is worth,
    /// not how a real one performs.
    fn simulated_judge(&self) -> bool {
        false
    }

    /// The entrant's sweep over `test`.
    ///
    /// # Errors
    ///
    /// Entrant specific (a router's estimate errors, features that do not fit).
    fn sweep(&self, test: &Split) -> Result<Vec<SweepPoint>>;
}

/// A router evaluated by sweeping the cost weight.
pub struct RouterEntrant {
    name: String,
    router: Arc<dyn Router>,
    points: usize,
    cost_weights: Option<Vec<f64>>,
}

impl std::fmt::Debug for RouterEntrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterEntrant")
            .field("name", &self.name)
            .field("kind", &self.router.kind())
            .finish()
    }
}

impl RouterEntrant {
    /// Evaluates `router` under `name` with [`crate::metrics::DEFAULT_SWEEP_POINTS`] cost
    /// weights.
    pub fn new(name: impl Into<String>, router: Arc<dyn Router>) -> Self {
        RouterEntrant {
            name: name.into(),
            router,
            points: crate::metrics::DEFAULT_SWEEP_POINTS,
            cost_weights: None,
        }
    }

    /// Sets the number of cost weights of the sweep (at least 2).
    pub fn with_points(mut self, points: usize) -> Self {
        self.points = points.max(2);
        self
    }

    /// Evaluates at exactly these cost weights instead of a sweep: one point per weight, in the
    /// given order, all charging per-query costs ([`CostBasis::Query`]; on two-model datasets
    /// APGR and CPT then come from the cost curve's strong-call shares).
    pub fn with_cost_weights(mut self, cost_weights: Vec<f64>) -> Self {
        self.cost_weights = Some(cost_weights);
        self
    }

    /// The router.
    pub fn router(&self) -> &Arc<dyn Router> {
        &self.router
    }
}

impl Entrant for RouterEntrant {
    fn name(&self) -> &str {
        &self.name
    }

    /// # Errors
    ///
    /// [`Error::Config`] for an empty list of cost weights or a negative or non-finite one;
    /// [`Error::UnknownModel`] when the router has a model the split has no labels for; the
    /// router's estimate errors.
    fn sweep(&self, test: &Split) -> Result<Vec<SweepPoint>> {
        if let Some(weights) = &self.cost_weights {
            if weights.is_empty() {
                return Err(Error::Config("the list of cost weights is empty".into()));
            }
            for &w in weights {
                crate::Objective::new(w).resolve(self.router.models())?;
            }
        }
        let map = model_map(self.router.as_ref(), test)?;
        let batch = test.features()?;
        let est = self.router.estimate_batch(&batch)?;
        if let Some(weights) = &self.cost_weights {
            let mut choices = vec![0u32; test.len()];
            return Ok(weights
                .iter()
                .map(|&w| {
                    self.router.choose(&batch, &est, w, None, &mut choices);
                    SweepPoint {
                        cost_weight: w,
                        choices: choices.iter().map(|&c| map[c as usize]).collect(),
                        invoked: None,
                        cost_basis: CostBasis::Query,
                    }
                })
                .collect());
        }
        Ok(utility_sweeps(&est, &map, self.points, |e, w, out| {
            self.router.choose(&batch, e, w, None, out)
        }))
    }
}

/// The oracle: per test query, the cheapest of the models with the best score. It reads the
/// test labels, so it is a ceiling, not a router.
#[derive(Debug, Clone, Copy, Default)]
pub struct Oracle;

impl Entrant for Oracle {
    fn name(&self) -> &str {
        ORACLE
    }

    fn reads_test_labels(&self) -> bool {
        true
    }

    fn sweep(&self, test: &Split) -> Result<Vec<SweepPoint>> {
        Ok(vec![SweepPoint {
            cost_weight: 0.0,
            choices: oracle_choices(test),
            invoked: None,
            cost_basis: CostBasis::Query,
        }])
    }
}

/// Options for [`entrant_by_name`].
#[derive(Debug, Clone, PartialEq)]
pub struct EntrantOptions {
    /// Seed of every random choice (random routing, training shuffles, simulated judges).
    pub seed: u64,
    /// Number of cost weights in a router's sweep.
    pub sweep_points: usize,
    /// Error rate of the simulated judge that gives cascades their confidences (see
    /// [`cascade`]).
    pub judge_noise: f64,
}

impl Default for EntrantOptions {
    fn default() -> Self {
        EntrantOptions {
            seed: 0,
            sweep_points: crate::metrics::DEFAULT_SWEEP_POINTS,
            judge_noise: crate::routers::cascade::DEFAULT_JUDGE_NOISE,
        }
    }
}

impl EntrantOptions {
    pub(crate) fn fit(&self) -> FitOptions {
        FitOptions {
            seed: self.seed,
            judge_noise: self.judge_noise,
            sweep_points: self.sweep_points,
            progress: Default::default(),
        }
    }
}

/// Whether this build can fit `kind` (MF needs the `train` feature).
fn fittable(kind: RouterKind) -> bool {
    cfg!(feature = "train") || kind != RouterKind::Mf
}

/// The names [`entrant_by_name`] knows, for help texts and messages: every router kind (with
/// `fixed:<model id>`), the oracle, the cascade chains and `file:<saved router>`.
pub fn entrant_names() -> Vec<String> {
    let mut out = Vec::new();
    for kind in RouterKind::ALL.into_iter().filter(|k| fittable(*k)) {
        out.push(match kind {
            RouterKind::Fixed => format!("{kind}:<model id>"),
            _ => kind.to_string(),
        });
        if kind == RouterKind::Zero {
            out.push(ORACLE.to_string());
        }
    }
    out.push(CASCADE_CHAIN.to_string());
    out.push(format!("{}<saved router>", RouterSpec::FILE_PREFIX));
    out
}

/// Every entrant `all` stands for in a list of names: each kind with its default settings
/// (the `fixed:<model id>` family left out), the oracle and the cascade chains.
pub fn all_entrants() -> Vec<String> {
    let mut out = Vec::new();
    for kind in RouterKind::ALL.into_iter().filter(|k| fittable(*k)) {
        if kind != RouterKind::Fixed {
            out.push(kind.to_string());
        }
        if kind == RouterKind::Zero {
            out.push(ORACLE.to_string());
        }
    }
    out.push(CASCADE_CHAIN.to_string());
    out
}

/// Splits a comma-separated list of entrant names, trimming blanks and expanding `all` to
/// [`all_entrants`]; repeated names are kept once.
pub fn expand_entrant_names(list: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let names: Vec<String> = if name == "all" {
            all_entrants()
        } else {
            vec![name.to_string()]
        };
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// What a name means, before anything is fitted.
enum Parsed {
    Oracle,
    Chain,
    Router(RouterSpec),
}

fn parse(name: &str) -> Result<Parsed> {
    if name == ORACLE {
        return Ok(Parsed::Oracle);
    }
    if name == CASCADE_CHAIN {
        return Ok(Parsed::Chain);
    }
    match RouterSpec::parse(name) {
        Ok(RouterSpec::Kind(k)) if !fittable(k) => Err(unknown_entrant(name)),
        Ok(spec) => Ok(Parsed::Router(spec)),
        Err(_) => Err(unknown_entrant(name)),
    }
}

/// Checks that `name` is one of [`entrant_names`] (for `fixed:<id>`, that the model is in
/// `pool`; for `file:<path>`, that the file exists) without fitting anything.
///
/// # Errors
///
/// As [`entrant_by_name`]; [`Error::Io`] for a missing file.
pub fn check_entrant_name(name: &str, pool: &crate::ModelPool) -> Result<()> {
    match parse(name)? {
        Parsed::Router(spec) => spec.check(pool),
        _ => Ok(()),
    }
}

/// Whether the entrant called `name` reads the queries' embeddings: every one but the oracle
/// and the baselines, which need only the labels (their training means).
pub fn needs_embeddings(name: &str) -> bool {
    match parse(name) {
        Ok(Parsed::Oracle) => false,
        Ok(Parsed::Router(spec)) => !spec.kind().is_some_and(|k| k.family() == Family::Baseline),
        _ => true,
    }
}

fn unknown_entrant(name: &str) -> Error {
    Error::InvalidInput(format!(
        "unknown router {name:?} (known: {})",
        entrant_names().join(", ")
    ))
}

/// Builds the entrant called `name` (one of [`entrant_names`]), fitting it on `train`:
///
/// - a router kind is fitted by the registry ([`AnyRouter::fit`]): `knn` and `mf` by their
///   cross-validated search, `cascade` by its search with a simulated judge, the baselines from
///   the training means;
/// - a learner (`linucb`, `thompson`, `knn-ucb`, `cluster-ucb`) starts cold, learns from a
///   partial-feedback replay of the train split ([`crate::replay::learn`]) and is evaluated
///   greedily;
/// - a cascade is evaluated with a simulated judge's confidences on the test split
///   ([`cascade::SimulatedJudge`]);
/// - `file:<path>` loads a saved router (a cascade among them).
///
/// # Errors
///
/// [`Error::InvalidInput`] for an unknown name (the message lists the known ones);
/// [`Error::UnknownModel`] for `fixed:<id>` with an id not in the pool; fitting and loading
/// errors.
pub fn entrant_by_name(
    name: &str,
    train: &Split,
    options: &EntrantOptions,
) -> Result<Box<dyn Entrant>> {
    let spec = match parse(name)? {
        Parsed::Oracle => return Ok(Box::new(Oracle)),
        Parsed::Chain => return Ok(Box::new(cascade::chain_entrant(name, train, options)?)),
        Parsed::Router(spec) => spec,
    };
    let router = match spec {
        RouterSpec::File(path) => AnyRouter::load(path)?,
        RouterSpec::Fixed(model) => AnyRouter::fit_config(
            &crate::registry::RouterConfig::Baseline(crate::routers::baseline::Baseline::Fixed {
                model,
            }),
            train,
        )?,
        RouterSpec::Kind(kind) if kind.is_learner() => {
            return learned_entrant(name, kind, train, options);
        }
        RouterSpec::Kind(kind) => {
            let fitted = AnyRouter::fit(kind, train, &options.fit())?;
            if let Some(s) = &fitted.search {
                tracing::info!(
                    "{name}: {} settings by {} in {:.1} s; chosen {}",
                    s.trials.len(),
                    s.describe(),
                    s.seconds,
                    s.best().to_json()
                );
            }
            fitted.router
        }
    };
    if router.as_cascade().is_some() {
        return Ok(Box::new(cascade::CascadeEntrant::new(
            name,
            router,
            cascade::SimulatedJudge::new(options.judge_noise, options.seed)?,
            options.sweep_points,
        )?));
    }
    Ok(Box::new(
        RouterEntrant::new(name, router.shared()).with_points(options.sweep_points),
    ))
}

/// The offline evaluation of a learner: a cold learner of `kind` learns from the labelled
/// `train` split with partial feedback only (a replay in the order seeded by `options.seed`, at
/// [`crate::replay::CostWeights::Mixed`] cost weights), and is evaluated greedily (without
/// exploration), swept over the cost weight like any router.
fn learned_entrant(
    name: &str,
    kind: RouterKind,
    train: &Split,
    options: &EntrantOptions,
) -> Result<Box<dyn Entrant>> {
    use crate::registry::AnyLearner;
    use crate::replay::{learn, CostWeights};
    let l = AnyLearner::cold(
        kind,
        train.pool(),
        train.dim(),
        train.embedding_model(),
        options.seed,
    )?
    .exploring();
    let run = learn(
        l.router(),
        train,
        options.seed,
        &CostWeights::Mixed { seed: options.seed },
    )?;
    tracing::info!(
        "{name}: learned from {} partial-feedback steps over the {} split in {:.1} s",
        run.choices.len(),
        train.name(),
        run.seconds
    );
    Ok(Box::new(
        RouterEntrant::new(name, l.greedy().shared()).with_points(options.sweep_points),
    ))
}
