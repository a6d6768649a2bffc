//! The decision-time policies measured on a labelled dataset: the figures of `docs/results.md`
//! ("Decision-time policies"), computed once here for the results example
//! (`cargo run --release -p pointsman-examples --example policies_results`) and the quality
//! tests (`tests/quality.rs`).
//!
//! - [`pacing`]: a paced budget over the test split in seeded orders, against the best fixed cost
//!   weight in hindsight at the same spend and the hard cut-off;
//! - [`episodes`]: simulated agent episodes with a budget each, costs drawn around their
//!   estimates, against a per-step fixed cost weight at equal total spend;
//! - [`guard_leave_group_out`]: the OOD guard, each task group left out of the fit in turn;
//! - [`stickiness`]: model switches per session with and without a margin, and their quality;
//! - [`latency_caps`]: synthetic latency figures on the cards and a hard latency cap.
//!
//! Every quality is the test label of the model chosen; a refused query scores 0 and costs
//! nothing.

use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use crate::data::Split;
use crate::error::{Error, Result};
use crate::features::QueryFeatures;
use crate::policy::guard::auroc;
use crate::policy::{
    BudgetConfig, BudgetKey, BudgetWindow, EmbeddingGuard, Episode, GuardFit, Policy, PolicyConfig,
    PolicyRouter, Request, StickyConfig,
};
use crate::pool::ModelPool;
use crate::rng::SplitMix64;
use crate::router::{best_model, Estimates, Router};

/// The test split's estimates, computed once, and one query's features and estimates on demand.
struct Stream<'a> {
    split: &'a Split,
    est: Estimates,
    models: usize,
}

impl<'a> Stream<'a> {
    fn new(router: &dyn Router, split: &'a Split) -> Result<Stream<'a>> {
        let est = router.estimate_batch(&split.features()?)?;
        Ok(Stream {
            split,
            est,
            models: router.models().len(),
        })
    }

    fn features(&self, r: usize) -> Result<QueryFeatures> {
        let dim = self.split.dim();
        let mut f = QueryFeatures::new(self.split.embeddings()[r * dim..(r + 1) * dim].to_vec())?
            .with_prompt_tokens(self.split.prompt_tokens()[r])?;
        if let Some(t) = &self.split.tasks()[r] {
            f = f.with_task(t.clone());
        }
        if let Some(m) = self.split.embedding_model() {
            f = f.with_embedding_model(m);
        }
        Ok(f)
    }

    fn row(&self, r: usize) -> Estimates {
        let mut e = Estimates::new(1, self.models);
        let (q, c) = e.row_mut(0);
        q.copy_from_slice(self.est.quality_row(r));
        c.copy_from_slice(self.est.cost_row(r));
        if !self.est.score.is_empty() {
            let s = self.est.score_row(r).to_vec();
            e.row_mut_with_score(0).2.copy_from_slice(&s);
        }
        e.signals[0] = self.est.signals[r];
        e
    }
}

fn best_single(train: &Split) -> usize {
    let means = train.mean_scores();
    (0..means.len())
        .max_by(|&a, &b| means[a].total_cmp(&means[b]).then(b.cmp(&a)))
        .expect("a pool has a model")
}

/// One order of the stream under a paced budget.
#[derive(Debug, Clone, Serialize)]
pub struct PacedRun {
    /// The order's seed.
    pub seed: u64,
    /// Total actual spend over the budget.
    pub spend_share: f64,
    /// Mean quality over the stream.
    pub quality: f64,
    /// Queries refused by the hard stop.
    pub refused: usize,
    /// The best fixed cost weight's mean quality among those spending no more than this run.
    pub hindsight_quality: f64,
    /// That cost weight.
    pub hindsight_cost_weight: f64,
}

/// The pacing experiment's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PacingReport {
    /// The best single model (by training score).
    pub best_single: String,
    /// What always calling it costs over the test split, USD.
    pub best_single_cost: f64,
    /// The budget, USD.
    pub budget: f64,
    /// The router at cost weight 0: its spend over the best single model's cost.
    pub unconstrained_spend_share: f64,
    /// Its mean quality.
    pub unconstrained_quality: f64,
    /// The paced runs, one per order.
    pub paced: Vec<PacedRun>,
    /// The hard cut-off (cost weight 0 until the money runs out), one per order.
    pub hard_cut: Vec<PacedRun>,
}

impl PacingReport {
    /// Mean quality of the paced runs.
    pub fn paced_quality(&self) -> f64 {
        mean(self.paced.iter().map(|r| r.quality))
    }

    /// Mean quality of the best fixed cost weights in hindsight at the paced runs' spends.
    pub fn hindsight_quality(&self) -> f64 {
        mean(self.paced.iter().map(|r| r.hindsight_quality))
    }

    /// Mean quality of the hard cut-off.
    pub fn hard_cut_quality(&self) -> f64 {
        mean(self.hard_cut.iter().map(|r| r.quality))
    }
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    s / n.max(1) as f64
}

/// Spend and mean quality of every fixed cost weight of a fine grid over the whole stream.
fn fixed_weight_curve(stream: &Stream<'_>) -> Vec<(f64, f64, f64)> {
    let split = stream.split;
    let n = split.len();
    let mut weights = vec![0.0];
    weights.extend((0..=480).map(|i| 10f64.powf(i as f64 / 60.0)));
    weights
        .par_iter()
        .map(|&w| {
            let (mut spend, mut quality) = (0.0, 0.0);
            for r in 0..n {
                let m = best_model(stream.est.score_row(r), stream.est.cost_row(r), w, None);
                spend += split.cost(r, m);
                quality += split.score(r, m);
            }
            (w, spend, quality / n as f64)
        })
        .collect()
}

/// A paced budget over the test split in `orders` seeded orders.
///
/// The budget is `budget_share` of what always calling the best single model (by training
/// score) costs over the test split, paced over the split's length (`BudgetWindow::Total` with
/// that many requests), with the hard stop at `stop_margin`; the pacing curve is warmed on the
/// training queries' features. Spend is each chosen model's actual cost on that query.
///
/// # Errors
///
/// A split without embeddings; router errors.
pub fn pacing(
    router: Arc<dyn Router>,
    train: &Split,
    test: &Split,
    orders: u64,
    budget_share: f64,
    stop_margin: f64,
) -> Result<PacingReport> {
    let stream = Stream::new(&*router, test)?;
    let n = test.len();
    let bs = best_single(train);
    let best_single_cost: f64 = (0..n).map(|r| test.cost(r, bs)).sum();
    let budget = budget_share * best_single_cost;
    let curve = fixed_weight_curve(&stream);
    let unconstrained = curve[0];
    let hindsight = |spend: f64| {
        curve
            .iter()
            .filter(|c| c.1 <= spend)
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .map_or((f64::NAN, 0.0), |c| (c.0, c.2))
    };
    let run = |seed: u64, pace: bool| -> Result<PacedRun> {
        let mut config = PolicyConfig::default();
        let mut b = BudgetConfig::new(
            BudgetKey::Global,
            budget,
            BudgetWindow::Total {
                requests: Some(n as u64),
                seconds: None,
            },
        );
        b.pace = pace;
        b.stop_margin = stop_margin;
        config.budgets.push(b);
        let policy = PolicyRouter::new(router.clone(), Policy::new(config)?)?;
        if pace {
            policy.warm_pacing(&train.features()?)?;
        }
        let mut order: Vec<usize> = (0..n).collect();
        SplitMix64::new(seed).shuffle(&mut order);
        let (mut spend, mut quality, mut refused) = (0.0, 0.0, 0);
        for (i, &r) in order.iter().enumerate() {
            let f = stream.features(r)?;
            let req = Request::new(&f).at(i as f64);
            let mut est = stream.row(r);
            match policy.decide(&req, &mut est, None).0 {
                Ok(d) => {
                    let cost = test.cost(r, d.model);
                    spend += cost;
                    quality += test.score(r, d.model);
                    policy.record(&req, None, cost)?;
                }
                Err(Error::BudgetExhausted { .. }) => refused += 1,
                Err(e) => return Err(e),
            }
        }
        let (w, hq) = hindsight(spend);
        Ok(PacedRun {
            seed,
            spend_share: spend / budget,
            quality: quality / n as f64,
            refused,
            hindsight_quality: hq,
            hindsight_cost_weight: w,
        })
    };
    let paced = (0..orders).map(|s| run(s, true)).collect::<Result<_>>()?;
    let hard_cut = (0..orders).map(|s| run(s, false)).collect::<Result<_>>()?;
    Ok(PacingReport {
        best_single: test.pool().id(bs).to_string(),
        best_single_cost,
        budget,
        unconstrained_spend_share: unconstrained.1 / best_single_cost,
        unconstrained_quality: unconstrained.2,
        paced,
        hard_cut,
    })
}

/// The episode experiment's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EpisodeReport {
    /// Episodes simulated.
    pub episodes: usize,
    /// Steps per episode.
    pub steps: usize,
    /// Each episode's budget, USD.
    pub budget: f64,
    /// The hard stop's margin.
    pub stop_margin: f64,
    /// Paced: episodes whose actual spend went over their budget.
    pub over_budget: usize,
    /// Paced: steps refused by the hard stop.
    pub refused: usize,
    /// Paced: mean quality per step.
    pub quality: f64,
    /// Paced: total actual spend over all episodes' budgets.
    pub spend_share: f64,
    /// The per-step fixed cost weight whose total spend equals the paced total.
    pub fixed_cost_weight: f64,
    /// Its mean quality per step.
    pub fixed_quality: f64,
    /// Its total spend over all budgets.
    pub fixed_spend_share: f64,
    /// Its episodes over budget.
    pub fixed_over_budget: usize,
}

/// Simulated agent episodes: `episodes` runs of `steps` queries drawn from the test split, each
/// with a budget of `budget_share` × `steps` × the best single model's mean test cost per query;
/// the actual cost of each call is its expected cost times a seeded log-normal draw of mean 1
/// (`sigma` the log's standard deviation).
///
/// # Errors
///
/// A split without embeddings; router errors.
#[allow(clippy::too_many_arguments)]
pub fn episodes(
    router: Arc<dyn Router>,
    train: &Split,
    test: &Split,
    episodes: usize,
    steps: usize,
    budget_share: f64,
    sigma: f64,
    stop_margin: f64,
    seed: u64,
) -> Result<EpisodeReport> {
    let stream = Stream::new(&*router, test)?;
    let n = test.len();
    let bs = best_single(train);
    let per_query = (0..n).map(|r| test.cost(r, bs)).sum::<f64>() / n as f64;
    let budget = budget_share * steps as f64 * per_query;
    // The draws: queries and noise, shared by both policies.
    let mut rng = SplitMix64::new(seed);
    let draws: Vec<Vec<(usize, f64)>> = (0..episodes)
        .map(|_| {
            (0..steps)
                .map(|_| {
                    let r = rng.below(n);
                    let noise = (sigma * rng.normal() - sigma * sigma / 2.0).exp();
                    (r, noise)
                })
                .collect()
        })
        .collect();
    let policy = PolicyRouter::new(router.clone(), Policy::new(PolicyConfig::default())?)?;
    policy.warm_pacing(&train.features()?)?;
    let (mut over, mut refused, mut quality, mut spend) = (0, 0, 0.0, 0.0);
    for (e, draw) in draws.iter().enumerate() {
        let episode =
            Episode::new(format!("e{e}"), budget, steps as u64)?.with_stop_margin(stop_margin)?;
        let mut spent = 0.0;
        for (s, &(r, noise)) in draw.iter().enumerate() {
            let f = stream.features(r)?;
            let req = Request::new(&f)
                .with_episode(episode.clone())
                .at((e * steps + s) as f64);
            let mut est = stream.row(r);
            match policy.decide(&req, &mut est, None).0 {
                Ok(d) => {
                    let cost = d.cost * noise;
                    spent += cost;
                    quality += test.score(r, d.model);
                    policy.record(&req, None, cost)?;
                }
                Err(Error::BudgetExhausted { .. }) => refused += 1,
                Err(e) => return Err(e),
            }
        }
        spend += spent;
        over += usize::from(spent > budget);
    }
    let steps_total = (episodes * steps) as f64;
    // The fixed cost weight of equal total spend, by bisection in log scale.
    let fixed = |w: f64| {
        let (mut q, mut total, mut over) = (0.0, 0.0, 0);
        for draw in &draws {
            let mut spent = 0.0;
            for &(r, noise) in draw {
                let m = best_model(stream.est.score_row(r), stream.est.cost_row(r), w, None);
                spent += stream.est.cost_row(r)[m] * noise;
                q += test.score(r, m);
            }
            total += spent;
            over += usize::from(spent > budget);
        }
        (q / steps_total, total, over)
    };
    let (mut lo, mut hi) = (1e-2f64, 1e8f64);
    if fixed(0.0).1 <= spend {
        lo = 0.0;
        hi = 0.0;
    }
    for _ in 0..60 {
        if hi == 0.0 {
            break;
        }
        let mid = (lo * hi).sqrt();
        if fixed(mid).1 > spend {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let (fq, fs, fo) = fixed(hi);
    let total_budget = budget * episodes as f64;
    Ok(EpisodeReport {
        episodes,
        steps,
        budget,
        stop_margin,
        over_budget: over,
        refused,
        quality: quality / steps_total,
        spend_share: spend / total_budget,
        fixed_cost_weight: hi,
        fixed_quality: fq,
        fixed_spend_share: fs / total_budget,
        fixed_over_budget: fo,
    })
}

/// One left-out group of the guard experiment.
#[derive(Debug, Clone, Serialize)]
pub struct GuardGroup {
    /// The group's name.
    pub group: String,
    /// Its tasks.
    pub tasks: Vec<String>,
    /// Share of the other groups' test queries flagged.
    pub false_alarm: f64,
    /// Share of the group's test queries flagged.
    pub detection: f64,
    /// AUROC of the guard's score, group's test queries against the others'.
    pub auroc: f64,
    /// AUROC of the plain 10-nearest-neighbour distance.
    pub knn_auroc: f64,
    /// Test queries of the group, and of the others.
    pub positives: usize,
    /// Test queries of the others.
    pub negatives: usize,
}

/// The five task groups of `llmrouter_dc` the guard is measured on, by name.
pub const LLMROUTER_DC_GROUPS: [(&str, &[&str]); 5] = [
    ("code", &["mbpp", "human_eval"]),
    ("math", &["gsm8k", "math", "agentverse-mgsm"]),
    ("open QA", &["natural_qa", "trivia_qa"]),
    ("logic", &["agentverse-logicgrid"]),
    ("commongen", &["commongen"]),
];

/// The mean similarity of each query of `queries` to its `k` most similar rows of `reference`,
/// as a distance (1 − similarity).
pub fn knn_distance(reference: &[f32], queries: &[f32], dim: usize, k: usize) -> Vec<f64> {
    queries
        .par_chunks(dim)
        .map(|q| {
            let mut sims: Vec<f32> = reference
                .chunks_exact(dim)
                .map(|r| crate::simd::dot(r, q))
                .collect();
            let k = k.min(sims.len());
            let nth = sims.len() - k;
            sims.select_nth_unstable_by(nth, f32::total_cmp);
            1.0 - sims[nth..].iter().map(|&s| f64::from(s)).sum::<f64>() / k as f64
        })
        .collect()
}

/// The guard with each group of `groups` left out in turn: fitted (and calibrated to the
/// false-alarm rate of `fit` on a held-out share) on the training queries of the other groups,
/// scored on the whole test split.
///
/// # Errors
///
/// A split without embeddings; the guard's fitting errors.
pub fn guard_leave_group_out(
    train: &Split,
    test: &Split,
    groups: &[(&str, &[&str])],
    fit: &GuardFit,
) -> Result<Vec<GuardGroup>> {
    let dim = train.dim();
    let in_group =
        |tasks: &[&str], t: &Option<String>| t.as_deref().is_some_and(|t| tasks.contains(&t));
    let mut out = Vec::new();
    for (name, tasks) in groups {
        let keep: Vec<usize> = (0..train.len())
            .filter(|&r| !in_group(tasks, &train.tasks()[r]))
            .collect();
        let sub = train.subset(&keep, "train");
        let guard = EmbeddingGuard::fit(&sub, fit)?;
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        let (mut pos_rows, mut neg_rows) = (Vec::new(), Vec::new());
        for r in 0..test.len() {
            let x = &test.embeddings()[r * dim..(r + 1) * dim];
            let s = guard.score(x)?;
            if in_group(tasks, &test.tasks()[r]) {
                pos.push(s);
                pos_rows.extend_from_slice(x);
            } else {
                neg.push(s);
                neg_rows.extend_from_slice(x);
            }
        }
        let t = guard.threshold();
        let share = |v: &[f64]| v.iter().filter(|&&s| s > t).count() as f64 / v.len().max(1) as f64;
        let kp = knn_distance(sub.embeddings(), &pos_rows, dim, 10);
        let kn = knn_distance(sub.embeddings(), &neg_rows, dim, 10);
        out.push(GuardGroup {
            group: name.to_string(),
            tasks: tasks.iter().map(|t| t.to_string()).collect(),
            false_alarm: share(&neg),
            detection: share(&pos),
            auroc: auroc(&pos, &neg),
            knn_auroc: auroc(&kp, &kn),
            positives: pos.len(),
            negatives: neg.len(),
        });
    }
    Ok(out)
}

/// One margin of the stickiness experiment.
#[derive(Debug, Clone, Serialize)]
pub struct StickyRow {
    /// The margin (`None`: no stickiness).
    pub margin: Option<f64>,
    /// Mean model switches per session.
    pub switches: f64,
    /// Mean quality per query.
    pub quality: f64,
    /// Mean cost per query, USD.
    pub cost: f64,
}

/// Sessions of `length` queries drawn from one task of the test split each, routed at
/// `cost_weight` without stickiness and with each margin of `margins`.
///
/// # Errors
///
/// A split without embeddings; router errors.
pub fn stickiness(
    router: Arc<dyn Router>,
    test: &Split,
    sessions: usize,
    length: usize,
    cost_weight: f64,
    margins: &[f64],
    seed: u64,
) -> Result<Vec<StickyRow>> {
    let stream = Stream::new(&*router, test)?;
    let mut by_task: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (r, t) in test.tasks().iter().enumerate() {
        by_task
            .entry(t.as_deref().unwrap_or(""))
            .or_default()
            .push(r);
    }
    let tasks: Vec<&Vec<usize>> = by_task.values().collect();
    let mut rng = SplitMix64::new(seed);
    let draws: Vec<Vec<usize>> = (0..sessions)
        .map(|_| {
            let rows = tasks[rng.below(tasks.len())];
            (0..length).map(|_| rows[rng.below(rows.len())]).collect()
        })
        .collect();
    let mut out = Vec::new();
    for margin in std::iter::once(None).chain(margins.iter().copied().map(Some)) {
        let mut config = PolicyConfig {
            cost_weight: Some(cost_weight),
            ..Default::default()
        };
        if let Some(m) = margin {
            config.sticky = Some(StickyConfig {
                margin: m,
                ..Default::default()
            });
        }
        let policy = PolicyRouter::new(router.clone(), Policy::new(config)?)?;
        let (mut switches, mut quality, mut cost) = (0usize, 0.0, 0.0);
        for (s, rows) in draws.iter().enumerate() {
            let mut last: Option<usize> = None;
            for (i, &r) in rows.iter().enumerate() {
                let f = stream.features(r)?;
                let req = Request::new(&f)
                    .with_session(format!("s{s}"))
                    .at((s * length + i) as f64);
                let mut est = stream.row(r);
                let d = policy.decide(&req, &mut est, None).0?;
                switches += usize::from(last.is_some_and(|l| l != d.model));
                last = Some(d.model);
                quality += test.score(r, d.model);
                cost += test.cost(r, d.model);
            }
        }
        let q = (sessions * length) as f64;
        out.push(StickyRow {
            margin,
            switches: switches as f64 / sessions as f64,
            quality: quality / q,
            cost: cost / q,
        });
    }
    Ok(out)
}

/// The latency-cap experiment's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// The cap, seconds.
    pub cap_s: f64,
    /// Decisions made within the cap.
    pub decided: usize,
    /// Decisions whose model's expected latency is above the cap (must be 0).
    pub violations: usize,
    /// Queries refused because no model meets the cap.
    pub refused: usize,
    /// Mean quality with the cap (refused: 0).
    pub quality: f64,
    /// Mean quality without it.
    pub uncapped_quality: f64,
    /// Mean expected latency of the chosen models without the cap, seconds.
    pub uncapped_latency_s: f64,
    /// With it.
    pub capped_latency_s: f64,
}

/// Synthetic latency on the cards: time to first token and output speed from each model's
/// price (a proxy for its size: `ttft = 200 ms + 800 ms × price / max price`,
/// `tokens/s = 150 − 120 × price / max price`); a cap of `cap_s` seconds on the expected
/// latency, at cost weight 0.
pub fn latency_pool(pool: &ModelPool) -> Result<ModelPool> {
    let max = pool
        .cards()
        .iter()
        .map(|c| c.output_usd_per_mtok)
        .fold(0.0, f64::max)
        .max(1e-12);
    ModelPool::new(
        pool.cards()
            .iter()
            .map(|c| {
                let p = c.output_usd_per_mtok / max;
                c.clone().with_latency(200.0 + 800.0 * p, 150.0 - 120.0 * p)
            })
            .collect(),
    )
}

/// Routes the test split at cost weight 0 with a hard latency cap of `cap_s` seconds, the cards
/// carrying [`latency_pool`]'s synthetic figures (the router's own pool is left alone: the
/// figures are read off a copy).
///
/// # Errors
///
/// A split without embeddings; router errors.
pub fn latency_caps(router: Arc<dyn Router>, test: &Split, cap_s: f64) -> Result<LatencyReport> {
    let pool = latency_pool(router.models())?;
    let wrapped: Arc<dyn Router> = Arc::new(Repriced {
        inner: router,
        pool,
    });
    let stream = Stream::new(&*wrapped, test)?;
    let capped = PolicyRouter::new(
        wrapped.clone(),
        Policy::new(PolicyConfig {
            caps: crate::policy::Caps {
                max_latency_s: Some(cap_s),
                ..Default::default()
            },
            ..Default::default()
        })?,
    )?;
    let plain = PolicyRouter::new(wrapped.clone(), Policy::new(PolicyConfig::default())?)?;
    let pool = wrapped.models();
    let latency = |m: usize| {
        pool.card(m)
            .expected_latency_s(pool.card(m).default_output_tokens)
            .unwrap_or(0.0)
    };
    let mut r = LatencyReport {
        cap_s,
        decided: 0,
        violations: 0,
        refused: 0,
        quality: 0.0,
        uncapped_quality: 0.0,
        uncapped_latency_s: 0.0,
        capped_latency_s: 0.0,
    };
    let n = test.len();
    for row in 0..n {
        let f = stream.features(row)?;
        let req = Request::new(&f);
        let d = plain.decide(&req, &mut stream.row(row), None).0?;
        r.uncapped_quality += test.score(row, d.model);
        r.uncapped_latency_s += latency(d.model);
        match capped.decide(&req, &mut stream.row(row), None).0 {
            Ok(d) => {
                r.decided += 1;
                r.violations += usize::from(latency(d.model) > cap_s);
                r.quality += test.score(row, d.model);
                r.capped_latency_s += latency(d.model);
            }
            Err(Error::NoModelFits(_)) => r.refused += 1,
            Err(e) => return Err(e),
        }
    }
    r.quality /= n as f64;
    r.uncapped_quality /= n as f64;
    r.uncapped_latency_s /= n as f64;
    r.capped_latency_s /= r.decided.max(1) as f64;
    Ok(r)
}

/// A router seen through other model cards (same ids, same order).
#[derive(Debug)]
struct Repriced {
    inner: Arc<dyn Router>,
    pool: ModelPool,
}

impl Router for Repriced {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn models(&self) -> &ModelPool {
        &self.pool
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn embedding_model(&self) -> Option<&str> {
        self.inner.embedding_model()
    }
    fn estimate(
        &self,
        batch: &crate::features::FeatureBatch<'_>,
        out: &mut Estimates,
    ) -> Result<()> {
        self.inner.estimate(batch, out)
    }
}

/// The kNN the policy figures use: same-task neighbours, k = 100, similarity weights, shrinkage
/// 30 toward the task mean (prior strength 50), the setting `pointsman train --router knn`
/// chooses on `llmrouter_dc` (docs/results.md).
pub fn reference_knn_config() -> crate::routers::knn::KnnConfig {
    use crate::routers::knn::{KnnConfig, Prior, Weighting};
    KnnConfig {
        k: 100,
        weighting: Weighting::Power { power: 1.0 },
        shrinkage: 30.0,
        prior: Prior::Task { strength: 50.0 },
        same_task: true,
        ..Default::default()
    }
}

/// The first turns of MT-Bench's questions (`question.jsonl`: one object per line with
/// `turns`).
///
/// # Errors
///
/// [`Error::Io`] naming the file; [`Error::Format`] naming the line.
pub fn mt_bench_prompts(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l)
                .map_err(|e| Error::format_at(path.display(), i + 1, e.to_string()))?;
            v["turns"][0]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::format_at(path.display(), i + 1, "no first turn"))
        })
        .collect()
}

/// A guard's verdicts on new queries against the test split.
#[derive(Debug, Clone, Serialize)]
pub struct NewQueries {
    /// New queries.
    pub queries: usize,
    /// Share of them flagged.
    pub flagged: f64,
    /// Share of the test split flagged.
    pub test_flagged: f64,
    /// AUROC of the guard's score, new queries against the test split.
    pub auroc: f64,
    /// The same with the plain 10-nearest-neighbour distance to the training queries.
    pub knn_auroc: f64,
}

/// A guard fitted on the whole training split, applied to `rows` (embeddings of new queries,
/// `n × dim`) and to the test split.
///
/// # Errors
///
/// The guard's fitting errors; rows of another dimension.
pub fn guard_on_new_queries(
    train: &Split,
    test: &Split,
    rows: &[f32],
    fit: &GuardFit,
) -> Result<NewQueries> {
    let guard = EmbeddingGuard::fit(train, fit)?;
    let dim = guard.dim();
    let score = |rows: &[f32]| -> Result<Vec<f64>> {
        rows.chunks_exact(dim).map(|r| guard.score(r)).collect()
    };
    let (new, old) = (score(rows)?, score(test.embeddings())?);
    let t = guard.threshold();
    let share = |v: &[f64]| v.iter().filter(|&&s| s > t).count() as f64 / v.len().max(1) as f64;
    let kn = knn_distance(train.embeddings(), rows, dim, 10);
    let ko = knn_distance(train.embeddings(), test.embeddings(), dim, 10);
    Ok(NewQueries {
        queries: new.len(),
        flagged: share(&new),
        test_flagged: share(&old),
        auroc: auroc(&new, &old),
        knn_auroc: auroc(&kn, &ko),
    })
}

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

/// The router called `name` for a policy run, as [`super::entrant_by_name`] builds it: a kind
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
    options: &super::EntrantOptions,
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
/// stream, [`crate::replay::Stream::from_splits`]): (split, row) pairs.
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
