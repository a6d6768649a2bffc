//! Any policy file over a split, query by query, with each decision's audit (the CLI's `--policy`).

use super::*;

/// One query of [`run_policy`]: what the policy decided and why (a line of the CLI's
/// `policy.jsonl`).
#[derive(Debug, Clone, Serialize)]
pub struct PolicyStep {
    /// The router's name.
    pub router: String,
    /// The step (0-based position in the stream; also the request's time in seconds).
    pub step: usize,
    /// The query's id.
    pub id: String,
    /// The chosen model (`None`: refused).
    pub model: Option<String>,
    /// The chosen model's test score (0 when refused).
    pub score: f64,
    /// The chosen model's actual cost, USD, charged to the budgets (0 when refused).
    pub cost: f64,
    /// What each part of the policy did.
    pub audit: crate::policy::Audit,
}

/// A router's totals over [`run_policy`]'s stream.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyRunSummary {
    /// The router's name.
    pub router: String,
    /// Queries streamed.
    pub queries: usize,
    /// Queries answered.
    pub decided: usize,
    /// Refusals by kind (`out_of_distribution`, `budget_exhausted`, `no_model_fits`).
    pub refused: std::collections::BTreeMap<String, usize>,
    /// Queries on which at least one rule fired.
    pub ruled: usize,
    /// Mean quality over every query (a refusal scores 0).
    pub quality: f64,
    /// Total actual cost, USD.
    pub spend: f64,
    /// Answered queries by model.
    pub models: std::collections::BTreeMap<String, usize>,
}

/// The router called `name` for a policy run, as [`crate::eval::entrant_by_name`] builds it: a kind
/// fitted on `train` (a learner cold, then taught by a partial-feedback replay of `train`, and
/// returned greedy), `fixed:<id>`, or `file:<saved router>`. The oracle and the cascade chains
/// are not routers a policy can wrap.
///
/// # Errors
///
/// [`Error::InvalidInput`] for another name; fitting and loading errors.
pub fn router_by_name(
    name: &str,
    train: &Split,
    options: &crate::eval::EntrantOptions,
) -> Result<Arc<dyn Router>> {
    use crate::registry::{AnyLearner, AnyRouter, RouterConfig, RouterSpec};
    let spec = RouterSpec::parse(name).map_err(|_| {
        Error::InvalidInput(format!(
            "a policy wraps a router: {name:?} is not a router kind, fixed:<model id> or file:<saved router>"
        ))
    })?;
    Ok(match spec {
        RouterSpec::File(path) => AnyRouter::load(&path)?.shared(),
        RouterSpec::Fixed(model) => AnyRouter::fit_config(
            &RouterConfig::Baseline(crate::routers::baseline::Baseline::Fixed { model }),
            train,
        )?
        .shared(),
        RouterSpec::Kind(kind) if kind.is_learner() => {
            let l = AnyLearner::cold(
                kind,
                train.pool(),
                train.dim(),
                train.embedding_model(),
                options.seed,
            )?
            .exploring();
            crate::replay::learn(
                l.router(),
                train,
                options.seed,
                &crate::replay::CostWeights::Mixed { seed: options.seed },
            )?;
            l.greedy().shared()
        }
        RouterSpec::Kind(kind) => AnyRouter::fit(kind, train, &options.fit())?.router.shared(),
    })
}

/// The rows of `splits` in the order of a shuffle seeded by `seed` (the order of a replay's
/// stream, `replay::Stream::from_splits`): (split, row) pairs.
pub fn shuffled_rows<'a>(splits: &[&'a Split], seed: u64) -> Vec<(&'a Split, usize)> {
    let mut rows: Vec<(usize, usize)> = Vec::new();
    for (s, split) in splits.iter().enumerate() {
        rows.extend((0..split.len()).map(|r| (s, r)));
    }
    SplitMix64::new(seed).shuffle(&mut rows);
    rows.into_iter().map(|(s, r)| (splits[s], r)).collect()
}

/// Streams `rows` (queries of labelled splits sharing the router's models) through `policy`,
/// one request per query with its text (text rules apply), task tag, prompt tokens and
/// `tenant`, the `i`-th at time `i` seconds; each answered query is charged its chosen model's
/// actual cost and, with `learn`, the router (which must then learn from feedback) observes
/// that model's score and cost, as in a replay. Refusals are counted, not errors.
///
/// # Errors
///
/// A split without embeddings; [`Error::Unsupported`] for `learn` with a router that does not
/// learn; errors of the router other than the policy's refusals.
pub fn run_policy(
    name: &str,
    policy: &PolicyRouter,
    rows: &[(&Split, usize)],
    tenant: Option<&str>,
    learn: bool,
) -> Result<(PolicyRunSummary, Vec<PolicyStep>)> {
    let router = policy.router().clone();
    let learner = if learn {
        Some(router.as_learner().ok_or_else(|| {
            Error::Unsupported(format!(
                "replaying a {} router: it does not learn from feedback",
                router.kind()
            ))
        })?)
    } else {
        None
    };
    let mut summary = PolicyRunSummary {
        router: name.to_string(),
        queries: rows.len(),
        decided: 0,
        refused: Default::default(),
        ruled: 0,
        quality: 0.0,
        spend: 0.0,
        models: Default::default(),
    };
    let mut steps = Vec::with_capacity(rows.len());
    for (i, &(split, r)) in rows.iter().enumerate() {
        let stream = Stream {
            split,
            est: Estimates::new(0, router.models().len()),
            models: router.models().len(),
        };
        let f = stream.features(r)?;
        let mut req = Request::new(&f).at(i as f64);
        if let Some(t) = split.prompts().get(r).filter(|t| !t.is_empty()) {
            req = req.with_text(t);
        }
        if let Some(t) = tenant {
            req = req.with_tenant(t);
        }
        let (decision, audit) = policy.route_audited(&req);
        summary.ruled += usize::from(!audit.rules.is_empty());
        let (model, score, cost) = match decision {
            Ok(d) => {
                let m = split.pool().index_of(&d.model_id)?;
                let (score, cost) = (split.score(r, m), split.cost(r, m));
                policy.record(&req, Some(&d.model_id), cost)?;
                if let Some(l) = learner {
                    l.observe(&crate::router::Feedback {
                        features: &f,
                        model: d.model,
                        quality: score,
                        cost,
                    })?;
                }
                summary.decided += 1;
                summary.quality += score;
                summary.spend += cost;
                *summary.models.entry(d.model_id.clone()).or_default() += 1;
                (Some(d.model_id), score, cost)
            }
            Err(e) => {
                let Some(kind) = &audit.refused else {
                    return Err(e);
                };
                *summary.refused.entry(kind.clone()).or_default() += 1;
                (None, 0.0, 0.0)
            }
        };
        steps.push(PolicyStep {
            router: name.to_string(),
            step: i,
            id: split.ids()[r].clone(),
            model,
            score,
            cost,
            audit,
        });
    }
    summary.quality /= rows.len().max(1) as f64;
    Ok((summary, steps))
}
