//! The "own data" figures of docs/results.md (issue 21): routers trained on partial labels,
//! preference pairs and a replayed log of `llmrouter_dc`'s train split, and models onboarded into
//! fitted routers, all scored on the full-label test split.
//!
//! ```sh
//! cargo run --release -p pointsman --example own_data -- ../shared/data/llmrouter_dc
//! # only the bandit onboarding tables (each learner warm-started), in under a minute:
//! cargo run --release -p pointsman --example own_data -- ../shared/data/llmrouter_dc --bandit-onboarding
//! # how much the onboarding figures move with the draw of the labelled queries (and MF's refit
//! # with its training seed), in about 70 s:
//! cargo run --release -p pointsman --example own_data -- ../shared/data/llmrouter_dc --onboarding-draws 5
//! ```
//!
//! Deterministic for a given dataset (every draw is seeded). `crates/pointsman/tests/quality.rs`
//! checks the acceptance figures on subsets of the same data.

use std::time::Instant;

use pointsman::data::{keep_cells, to_preferences, uniform_log, Dataset, Split};
use pointsman::eval::{EntrantOptions, Evaluation};
use pointsman::rng::SplitMix64;
use pointsman::routers::knn::{KnnConfig, Prior, Weighting};
use pointsman::routers::mf::MfConfig;
use pointsman::{AnyRouter, Result, RouterConfig};

/// The configuration the kNN search chooses on the full train split (docs/results.md).
fn knn_config() -> KnnConfig {
    KnnConfig {
        k: 100,
        weighting: Weighting::Power { power: 1.0 },
        shrinkage: 30.0,
        prior: Prior::Task { strength: 50.0 },
        same_task: true,
        ..Default::default()
    }
}

/// The configuration the MF search chooses on the full train split.
fn mf_config() -> MfConfig {
    MfConfig {
        learning_rate: 1e-2,
        ..Default::default()
    }
}

/// The router that knows each task's mean training score per model (the task-mean reference).
fn task_mean_config() -> KnnConfig {
    KnnConfig {
        k: 1,
        shrinkage: 1e12,
        prior: Prior::Task { strength: 0.0 },
        same_task: true,
        ..Default::default()
    }
}

/// Each model's mean score per task on a split, as a router's estimate for every query of that
/// task (the cost: the pool's price estimate for the query's prompt). Fitted on the test split it
/// reads test labels — not a router, the ceiling of routing by task alone: unlike a kNN of the
/// same task means, no query's own score breaks a tie between two models.
#[derive(Debug)]
struct TaskMeans {
    pool: pointsman::ModelPool,
    dim: usize,
    means: std::collections::HashMap<Option<String>, Vec<f64>>,
}

impl TaskMeans {
    fn of(split: &Split) -> TaskMeans {
        let m = split.pool().len();
        let mut sums: std::collections::HashMap<Option<String>, (Vec<f64>, f64)> =
            Default::default();
        for (r, task) in split.tasks().iter().enumerate() {
            let (s, n) = sums.entry(task.clone()).or_insert((vec![0.0; m], 0.0));
            (0..m).for_each(|j| s[j] += split.score(r, j));
            *n += 1.0;
        }
        TaskMeans {
            pool: split.pool().clone(),
            dim: split.dim(),
            means: sums
                .into_iter()
                .map(|(t, (s, n))| (t, s.iter().map(|v| v / n).collect()))
                .collect(),
        }
    }
}

impl pointsman::Router for TaskMeans {
    fn kind(&self) -> &'static str {
        "task-means"
    }
    fn models(&self) -> &pointsman::ModelPool {
        &self.pool
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn estimate(
        &self,
        batch: &pointsman::FeatureBatch<'_>,
        out: &mut pointsman::Estimates,
    ) -> Result<()> {
        for r in 0..batch.rows() {
            let means = self
                .means
                .get(&batch.task(r).map(str::to_string))
                .ok_or_else(|| pointsman::Error::InvalidInput("a task the split lacks".into()))?;
            let (q, c) = out.row_mut(r);
            q.copy_from_slice(means);
            for (j, c) in c.iter_mut().enumerate() {
                *c = self.pool.estimate_cost(j, batch.prompt_tokens(r));
            }
        }
        Ok(())
    }
}

fn fit(config: RouterConfig, train: &Split) -> Result<AnyRouter> {
    AnyRouter::fit_config(&config, train)
}

/// The held-out models of the onboarding tables.
const HELD_OUT: [&str; 3] = [
    "llama-3.1-nemotron-51b-instruct",
    "gemma-2-9b-it",
    "qwen2.5-7b-instruct",
];

/// The labelled-query counts of the onboarding tables.
const KS: [usize; 5] = [0, 25, 50, 100, 200];

/// Onboarding into each learner (linucb, thompson, knn-ucb, cluster-ucb) warm-started (default
/// configuration) on the other eight models, scored greedy (the posterior mean, no exploration)
/// against the same learner warm-started on all nine.
fn bandit_onboarding(train: &Split, aiq: &dyn Fn(&str, &AnyRouter) -> Result<f64>) -> Result<()> {
    use pointsman::RouterKind;
    let kinds = [
        RouterKind::Linucb,
        RouterKind::Thompson,
        RouterKind::KnnUcb,
        RouterKind::ClusterUcb,
    ];
    for kind in kinds {
        learner_onboarding(train, kind, aiq)?;
    }
    Ok(())
}

/// [`bandit_onboarding`] for one learner kind.
fn learner_onboarding(
    train: &Split,
    kind: pointsman::RouterKind,
    aiq: &dyn Fn(&str, &AnyRouter) -> Result<f64>,
) -> Result<()> {
    println!("## bandit onboarding: {kind} warm-started on eight models, the ninth from k labelled train queries");
    let config = RouterConfig::default_for(kind, 0)?;
    let greedy = |r: &AnyRouter| -> AnyRouter {
        AnyRouter::Learner(r.as_learner().expect("a learner kind").greedy())
    };
    let name = kind.to_string();
    let name = name.as_str();
    let refit = aiq(name, &greedy(&fit(config.clone(), train)?))?;
    let mut order: Vec<usize> = (0..train.len()).collect();
    SplitMix64::new(0).shuffle(&mut order);
    let mut slowest: f64 = 0.0;
    for held in HELD_OUT {
        let h = train.pool().index_of(held)?;
        let others: Vec<usize> = (0..train.pool().len()).filter(|&j| j != h).collect();
        let base = fit(config.clone(), &train.select_models(&others)?)?;
        let card = train.pool().card(h).clone();
        let mut line = format!("{held} {name}: full refit {refit:.4}");
        for &k in &KS {
            let labelled = (k > 0).then(|| train.subset(&order[..k], "labelled"));
            let started = Instant::now();
            let r = base.add_model(card.clone(), labelled.as_ref())?;
            slowest = slowest.max(started.elapsed().as_secs_f64());
            line += &format!("  k={k} {:.4}", aiq(name, &greedy(&r))?);
        }
        // Every train label: what the onboarding reaches when labels are not scarce.
        let all = base.add_model(card.clone(), Some(train))?;
        line += &format!("  k=all {:.4}", aiq(name, &greedy(&all))?);
        println!("{line}");
    }
    println!("slowest {name} onboarding {slowest:.3} s");
    Ok(())
}

/// Mean, lowest and highest of `xs`, formatted.
fn spread(xs: &[f64]) -> String {
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("mean {mean:.4} [{lo:.4}, {hi:.4}]")
}

/// The onboarding table's noise: kNN and MF onboarded at k = 200 from `draws` seeded draws of
/// the labelled train queries (draw 0 is the table's), and MF's full refit over `draws`
/// training seeds (kNN's fit is deterministic).
fn onboarding_draws(
    train: &Split,
    draws: u64,
    aiq: &dyn Fn(&str, &AnyRouter) -> Result<f64>,
) -> Result<()> {
    println!("## onboarding at k = 200 over {draws} draws of the labelled queries");
    let mut refits = Vec::new();
    for seed in 0..draws {
        let config = RouterConfig::Mf(MfConfig {
            seed,
            ..mf_config()
        });
        refits.push(aiq("mf", &fit(config, train)?)?);
    }
    println!(
        "mf full refit over training seeds 0..{draws}: {}  ({refits:.4?})",
        spread(&refits)
    );
    let knn_refit = aiq("knn", &fit(RouterConfig::Knn(knn_config()), train)?)?;
    println!("knn full refit {knn_refit:.4} (deterministic)");
    for held in HELD_OUT {
        let h = train.pool().index_of(held)?;
        let others: Vec<usize> = (0..train.pool().len()).filter(|&j| j != h).collect();
        let eight = train.select_models(&others)?;
        let card = train.pool().card(h).clone();
        for (kind, base) in [
            ("knn", fit(RouterConfig::Knn(knn_config()), &eight)?),
            ("mf", fit(RouterConfig::Mf(mf_config()), &eight)?),
        ] {
            let k0 = aiq(kind, &base.add_model(card.clone(), None)?)?;
            let mut at = Vec::new();
            for draw in 0..draws {
                let mut order: Vec<usize> = (0..train.len()).collect();
                SplitMix64::new(draw).shuffle(&mut order);
                let labelled = train.subset(&order[..200], "labelled");
                at.push(aiq(kind, &base.add_model(card.clone(), Some(&labelled))?)?);
            }
            let all = aiq(kind, &base.add_model(card.clone(), Some(train))?)?;
            println!(
                "{held} {kind}: k=0 {k0:.4}  k=200 {}  ({at:.4?})  k=all {all:.4}",
                spread(&at)
            );
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--onboarding-draws"))
        .map(|(_, a)| a)
        .cloned()
        .unwrap_or_else(|| "../shared/data/llmrouter_dc".into());
    let ds = Dataset::load(&dir)?;
    let eval = Evaluation::of_dataset(&ds, EntrantOptions::default())?;
    let aiq = |name: &str, r: &AnyRouter| -> Result<f64> {
        Ok(eval
            .evaluate_router(name, r.shared(), None)?
            .report
            .metrics
            .aiq)
    };
    if args.iter().any(|a| a == "--bandit-onboarding") {
        return bandit_onboarding(ds.train(), &aiq);
    }
    if let Some(i) = args.iter().position(|a| a == "--onboarding-draws") {
        let draws = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .filter(|&n: &u64| n > 0)
            .ok_or_else(|| {
                pointsman::Error::Config("--onboarding-draws takes a positive count".into())
            })?;
        return onboarding_draws(ds.train(), draws, &aiq);
    }
    let train = ds.train();
    let knn = |s: &Split| fit(RouterConfig::Knn(knn_config()), s);
    let mf = |s: &Split| fit(RouterConfig::Mf(mf_config()), s);
    let task_mean = |s: &Split| fit(RouterConfig::Knn(task_mean_config()), s);

    println!("## full labels");
    let full_knn = knn(train)?;
    let full_mf = mf(train)?;
    let full_tm = task_mean(train)?;
    println!(
        "knn {:.4}  mf {:.4}  task-mean {:.4}",
        aiq("knn", &full_knn)?,
        aiq("mf", &full_mf)?,
        aiq("task-mean", &full_tm)?
    );
    // Not a router: it reads the test labels. The most any router that knows only the task can
    // reach on this test split, against which the routers' within-task gains can be read.
    let ceiling = eval
        .evaluate_router(
            "task-means-of-test",
            std::sync::Arc::new(TaskMeans::of(ds.test())),
            None,
        )?
        .report
        .metrics;
    println!(
        "task-mean fitted on the test split (reads test labels: the ceiling of routing by task \
         alone) {:.4}, max quality {:.4}",
        ceiling.aiq, ceiling.max_quality
    );

    println!("## partial: 30 % of the train cells kept (seed 0)");
    let partial = keep_cells(train, 0.3, 0)?;
    println!(
        "cells kept {} of {}",
        partial.observed_count(),
        train.scores().len()
    );
    println!(
        "knn {:.4}  mf {:.4}  task-mean {:.4}",
        aiq("knn", &knn(&partial)?)?,
        aiq("mf", &mf(&partial)?)?,
        aiq("task-mean", &task_mean(&partial)?)?
    );

    println!("## pairwise: 4 seeded pairs per train query, no absolute score (seed 0)");
    let pairs = to_preferences(train, 4, 0)?;
    println!("pairs {}", pairs.preferences().len());
    println!("mf (pairwise loss) {:.4}", aiq("mf", &mf(&pairs)?)?);

    println!("## logged: one uniformly chosen model per train query (seed 0)");
    let log = uniform_log(train, 0)?;
    let ipw = MfConfig {
        inverse_propensity: true,
        ..mf_config()
    };
    let linucb = AnyRouter::fit_config(
        &RouterConfig::default_for(pointsman::RouterKind::Linucb, 0)?,
        &log,
    )?;
    println!(
        "knn {:.4}  mf {:.4}  mf (ipw) {:.4}  linucb (warm start) {:.4}  task-mean {:.4}",
        aiq("knn", &knn(&log)?)?,
        aiq("mf", &mf(&log)?)?,
        aiq("mf-ipw", &fit(RouterConfig::Mf(ipw), &log)?)?,
        aiq("linucb", &linucb)?,
        aiq("task-mean", &task_mean(&log)?)?
    );

    println!("## onboarding: fit on eight models, add the ninth from k labelled train queries");
    let mut order: Vec<usize> = (0..train.len()).collect();
    SplitMix64::new(0).shuffle(&mut order);
    let mut slowest: f64 = 0.0;
    for held in HELD_OUT {
        let h = train.pool().index_of(held)?;
        let others: Vec<usize> = (0..train.pool().len()).filter(|&j| j != h).collect();
        let eight = train.select_models(&others)?;
        let card = train.pool().card(h).clone();
        for (kind, base, full) in [
            ("knn", knn(&eight)?, &full_knn),
            ("mf", mf(&eight)?, &full_mf),
        ] {
            let refit = aiq(kind, full)?;
            let mut line = format!("{held} {kind}: full refit {refit:.4}");
            for &k in &KS {
                let labelled = (k > 0).then(|| train.subset(&order[..k], "labelled"));
                let started = Instant::now();
                let r = base.add_model(card.clone(), labelled.as_ref())?;
                slowest = slowest.max(started.elapsed().as_secs_f64());
                line += &format!("  k={k} {:.4}", aiq(kind, &r)?);
            }
            println!("{line}");
        }
    }
    println!("slowest onboarding {slowest:.3} s");
    bandit_onboarding(train, &aiq)
}
