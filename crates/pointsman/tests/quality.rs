//! Quality on the shared datasets: the figures docs/results.md reports, checked on every run.
//!
//! Hyper-parameters are chosen by cross-validation on the train split only; these tests read the
//! test split once, to score the chosen routers.

mod common;

use std::time::Instant;

use pointsman::data::Dataset;
use pointsman::eval::{entrant_by_name, EntrantOptions, Evaluation, Metrics};

/// This process's CPU time (user + system) in seconds, from /proc/self/stat (Linux; `None`
/// elsewhere).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses): utime and stime are the 12th and
    // 13th, in clock ticks of 1/100 s (USER_HZ).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The time a fit took on this machine: its wall-clock time, or, when other processes were
/// competing for the cores, its CPU time spread over the cores it may use (what the wall time
/// would have been on an idle machine), whichever is smaller.
fn fit_seconds(wall: f64, cpu: Option<f64>) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    cpu.map_or(wall, |cpu| wall.min(cpu / cores))
}

/// Fits run one at a time, so that the process's CPU time during a fit is that fit's.
static ONE_FIT_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn evaluate(ds: &Dataset, name: &str) -> (Metrics, f64) {
    let _alone = ONE_FIT_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let entrant = entrant_by_name(name, ds.train(), &EntrantOptions::default()).unwrap();
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let fit_seconds = fit_seconds(wall, cpu);
    let evaluation = Evaluation::of_dataset(ds, EntrantOptions::default()).unwrap();
    let report = evaluation.evaluate(entrant.as_ref()).unwrap().report;
    eprintln!(
        "{} {name}: {:?} (fitted in {fit_seconds:.1} s; wall {wall:.1} s, CPU {cpu:?} s)",
        ds.name(),
        report.metrics
    );
    (report.metrics, fit_seconds)
}

#[test]
fn llmrouter_dc_knn_and_mf() {
    let Some(root) = common::data_dir() else {
        return;
    };
    let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
    let (knn, knn_s) = evaluate(&ds, "knn");
    let (mf, mf_s) = evaluate(&ds, "mf");
    // The issue's targets are AIQ 0.590 and max quality 0.600; cross-validated choices reach
    // 0.589 / 0.595 (mf) and 0.580 / 0.589 (knn), see docs/results.md. The reference plain kNN
    // (k = 100, similarity weights) reaches 0.565 / 0.577 and the zero router 0.528.
    let best_aiq = knn.aiq.max(mf.aiq);
    let best_max = knn.max_quality.max(mf.max_quality);
    assert!(best_aiq >= 0.585, "best AIQ {best_aiq}");
    assert!(best_max >= 0.590, "best max quality {best_max}");
    assert!(knn.aiq >= 0.575 && mf.aiq >= 0.575, "{knn:?} {mf:?}");
    assert!(
        knn_s < 60.0 && mf_s < 60.0,
        "training took {knn_s:.1} s and {mf_s:.1} s"
    );
}

#[test]
fn routellm_knn_and_mf() {
    let Some(root) = common::data_dir() else {
        return;
    };
    let ds = Dataset::load(root.join("routellm")).unwrap();
    let (knn, knn_s) = evaluate(&ds, "knn");
    let (mf, mf_s) = evaluate(&ds, "mf");
    let apgr = |m: &Metrics| m.apgr.expect("a two-model dataset has APGR");
    // Target: the better of knn and mf reaches APGR 0.70 (plain kNN reference 0.676).
    assert!(
        apgr(&knn).max(apgr(&mf)) >= 0.70,
        "knn {} mf {}",
        apgr(&knn),
        apgr(&mf)
    );
    assert!(apgr(&knn) >= 0.68, "knn {}", apgr(&knn));
    assert!(
        knn_s < 60.0 && mf_s < 60.0,
        "training took {knn_s:.1} s and {mf_s:.1} s"
    );
}

/// `--router auto` on a third of llmrouter_dc's train split (the test command's budget): every
/// candidate measured, the best kept, and the kept router saves, loads and decides identically.
#[test]
fn auto_on_a_subset_of_llmrouter_dc() {
    use pointsman::registry::{AnyRouter, AutoOptions, RouterKind};
    let Some(root) = common::data_dir() else {
        return;
    };
    let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
    let rows: Vec<usize> = (0..ds.train().len()).step_by(3).collect();
    let train = ds.train().subset(&rows, "train");
    let _alone = ONE_FIT_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let mut events = 0;
    let (router, report) =
        AnyRouter::fit_auto(&train, &AutoOptions::default(), &mut |_| events += 1).unwrap();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let seconds = fit_seconds(started.elapsed().as_secs_f64(), cpu);
    drop(_alone);
    for c in &report.candidates {
        eprintln!(
            "auto on {} train queries: {:<12} cv aiq {:.4} max quality {:.4} ({:.1} s)",
            train.len(),
            c.kind.name(),
            c.metrics.aiq,
            c.metrics.max_quality,
            c.seconds
        );
    }
    let kinds: Vec<RouterKind> = report.candidates.iter().map(|c| c.kind).collect();
    for k in [
        RouterKind::Zero,
        RouterKind::Knn,
        RouterKind::Mf,
        RouterKind::Irt,
        RouterKind::Stack,
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert_eq!(events, 2 * report.candidates.len());
    assert!(report
        .candidates
        .windows(2)
        .all(|w| w[0].score >= w[1].score));
    assert_eq!(router.kind(), report.chosen().kind);
    // Per fold: one defined figure per fold, and the pooled figure within the folds' reach.
    for c in &report.candidates {
        let folds: Vec<f64> = c.fold_scores.iter().flatten().copied().collect();
        assert_eq!(folds.len(), 5, "{}: {:?}", c.kind, c.fold_scores);
        let mean = folds.iter().sum::<f64>() / 5.0;
        assert!(
            (mean - c.score).abs() < 0.02 && folds.iter().all(|f| (0.0..=1.0).contains(f)),
            "{}: pooled {} folds {folds:?}",
            c.kind,
            c.score
        );
    }
    let cv = |k: RouterKind| {
        report
            .candidates
            .iter()
            .find(|c| c.kind == k)
            .map(|c| c.score)
            .unwrap()
    };
    // The estimators beat the zero router out of fold, and the chosen one is at least as good
    // as the better of knn and mf.
    assert!(cv(RouterKind::Knn).min(cv(RouterKind::Irt)) > cv(RouterKind::Zero));
    assert!(report.chosen().score >= cv(RouterKind::Knn).max(cv(RouterKind::Mf)));

    // The kept router on the test split, and again after a round trip through its saved form.
    let evaluation = Evaluation::of_dataset(&ds, EntrantOptions::default()).unwrap();
    let test = evaluation
        .evaluate_router("auto", router.shared(), None)
        .unwrap()
        .report
        .metrics;
    let again = AnyRouter::from_bytes(&router.to_bytes().unwrap()).unwrap();
    let batch = ds.test().features().unwrap();
    let (a, b) = (
        router.shared().estimate_batch(&batch).unwrap(),
        again.shared().estimate_batch(&batch).unwrap(),
    );
    assert_eq!(a.quality, b.quality);
    eprintln!(
        "auto on {} train queries chose {} (cv {:.4}) in {seconds:.1} s: test aiq {:.4}, max quality {:.4}",
        train.len(),
        report.chosen().kind,
        report.chosen().score,
        test.aiq,
        test.max_quality
    );
    // A third of the data: kNN and MF alone reach about 0.57 there.
    assert!(test.aiq >= 0.56, "{test:?}");
    assert!(seconds < 120.0, "auto took {seconds:.1} s");
}

/// Cost per query from the neighbours' answer lengths: on routellm's test queries whose answer
/// lengths are known (its GSM8K rows), the kNN router's expected cost (the stack's, which takes
/// the kNN member's) against the dataset-wide default answer length.
#[test]
fn routellm_cost_from_neighbours_answer_lengths() {
    use pointsman::routers::knn::{KnnConfig, KnnRouter};
    use pointsman::Router;
    let Some(root) = common::data_dir() else {
        return;
    };
    let ds = Dataset::load(root.join("routellm")).unwrap();
    let (train, test) = (ds.train(), ds.test());
    let router = KnnRouter::fit(train, &KnnConfig::default()).unwrap();
    let est = router.estimate_batch(&test.features().unwrap()).unwrap();
    let m = test.pool().len();
    let (mut knn_err, mut default_err, mut cells) = (0.0, 0.0, 0usize);
    for r in 0..test.len() {
        for j in 0..m {
            if !test.output_tokens()[r * m + j].is_finite() {
                continue;
            }
            let truth = test.cost(r, j);
            let default = test.pool().estimate_cost(j, Some(test.prompt_tokens()[r]));
            knn_err += (est.cost_row(r)[j] - truth).abs();
            default_err += (default - truth).abs();
            cells += 1;
        }
    }
    assert!(cells > 0, "no test answer lengths in routellm");
    let (knn_err, default_err) = (knn_err / cells as f64, default_err / cells as f64);
    eprintln!(
        "routellm cost error over {cells} test cells with known answer lengths: \
         neighbours {knn_err:.3e} USD, default length {default_err:.3e} USD \
         ({:.1} % of the error removed)",
        100.0 * (1.0 - knn_err / default_err)
    );
    assert!(knn_err < 0.8 * default_err, "{knn_err} vs {default_err}");
}

/// Decision-time policies on llmrouter_dc (issue 20): pacing, episodes, the guard, stickiness
/// and latency caps, as docs/results.md reports them (`cargo run --release -p
/// pointsman-examples --example policies_results`).
#[test]
fn llmrouter_dc_policies() {
    use pointsman::eval::policies::{self, LLMROUTER_DC_GROUPS};
    use pointsman::policy::GuardFit;
    use pointsman::routers::knn::KnnRouter;
    use std::sync::Arc;

    let Some(root) = common::data_dir() else {
        return;
    };
    let started = Instant::now();
    let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
    let (train, test) = (ds.train(), ds.test());
    let router: Arc<dyn pointsman::Router> =
        Arc::new(KnnRouter::fit(train, &policies::reference_knn_config()).unwrap());

    // Pacing: budget 50 % of the best single model's cost, 10 orders.
    let p = policies::pacing(router.clone(), train, test, 10, 0.5, 1.0).unwrap();
    assert!(p.unconstrained_spend_share > 0.6, "the budget binds: {p:?}");
    for r in &p.paced {
        assert!((0.95..=1.0).contains(&r.spend_share), "{r:?}");
    }
    assert!(
        p.paced_quality() >= p.hindsight_quality() - 0.005,
        "paced {} hindsight {}",
        p.paced_quality(),
        p.hindsight_quality()
    );
    assert!(p.hard_cut_quality() < p.paced_quality() - 0.1, "{p:?}");

    // Episodes: 1,000 of 5 steps, costs drawn around their estimates (σ = 0.5).
    let e = policies::episodes(router.clone(), train, test, 1000, 5, 0.5, 0.5, 3.0, 0).unwrap();
    assert_eq!(e.over_budget, 0, "{e:?}");
    assert!(e.quality >= e.fixed_quality - 0.005, "{e:?}");

    // The guard, leave-task-group-out.
    let groups =
        policies::guard_leave_group_out(train, test, &LLMROUTER_DC_GROUPS, &GuardFit::default())
            .unwrap();
    let mean = |f: &dyn Fn(&policies::GuardGroup) -> f64| {
        groups.iter().map(f).sum::<f64>() / groups.len() as f64
    };
    let knn_auroc = mean(&|g| g.knn_auroc);
    assert!(
        (knn_auroc - 0.78).abs() < 0.01,
        "10-NN reference {knn_auroc}"
    );
    assert!(mean(&|g| g.auroc) >= 0.85, "{groups:?}");
    assert!(groups.iter().all(|g| g.false_alarm < 0.12), "{groups:?}");

    // Stickiness: fewer switches with a larger margin, at a small cost in quality.
    let s = policies::stickiness(router.clone(), test, 300, 5, 300.0, &[0.02, 0.1], 0).unwrap();
    assert!(
        s[0].switches > s[1].switches && s[1].switches > s[2].switches,
        "{s:?}"
    );
    assert!(s[2].switches < 0.1 * s[0].switches, "{s:?}");
    assert!(s[2].quality > s[0].quality - 0.02, "{s:?}");

    // Latency caps: never violated; a cap no model meets is a typed refusal.
    for cap in [5.0, 3.0] {
        let l = policies::latency_caps(router.clone(), test, cap).unwrap();
        assert_eq!(l.violations, 0, "{l:?}");
        assert!(l.decided > 0 && l.capped_latency_s <= cap, "{l:?}");
    }
    let l = policies::latency_caps(router.clone(), test, 1.0).unwrap();
    assert_eq!((l.decided, l.refused), (0, test.len()), "{l:?}");
    eprintln!(
        "llmrouter_dc policies: paced {:.4} vs hindsight {:.4} (hard cut {:.4}); episodes {:.4} vs fixed {:.4}; \
         guard AUROC {:.3} (10-NN {knn_auroc:.3}); {:.1} s",
        p.paced_quality(),
        p.hindsight_quality(),
        p.hard_cut_quality(),
        e.quality,
        e.fixed_quality,
        mean(&|g| g.auroc),
        started.elapsed().as_secs_f64()
    );
}

/// The guard on MT-Bench's 80 questions, embedded in-process, against the full train split.
#[test]
fn mt_bench_against_the_llmrouter_dc_guard() {
    let Some(root) = common::data_dir() else {
        return;
    };
    let Some(embedder) = common::load(0) else {
        return;
    };
    let prompts = pointsman::eval::policies::mt_bench_prompts(
        &root.join("raw/routellm/mt_bench/question.jsonl"),
    )
    .unwrap();
    assert_eq!(prompts.len(), 80);
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let (x, _) = embedder.embed(&refs).unwrap();
    let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
    let m = pointsman::eval::policies::guard_on_new_queries(
        ds.train(),
        ds.test(),
        &x,
        &pointsman::policy::GuardFit::default(),
    )
    .unwrap();
    assert!(m.flagged >= 0.4 && m.test_flagged < 0.1, "{m:?}");
    assert!(m.auroc > m.knn_auroc, "{m:?}");
}

/// Own data (issue 21), the deterministic figures of docs/results.md "Own data"
/// (`cargo run --release -p pointsman --example own_data`): kNN and the task-mean router on a
/// seeded 30 % of llmrouter_dc's train cells, kNN on a replayed uniform log, and onboarding the
/// best single model into a kNN router fitted on the other eight. The MF figures take a minute
/// per fit and come from the example only, except the pairwise one.
mod own_data {
    use super::common;
    use pointsman::data::{keep_cells, to_preferences, uniform_log, Dataset, Split};
    use pointsman::eval::{EntrantOptions, Evaluation};
    use pointsman::rng::SplitMix64;
    use pointsman::routers::knn::{KnnConfig, Prior, Weighting};
    use pointsman::routers::mf::MfConfig;
    use pointsman::{AnyRouter, RouterConfig};

    fn knn_config() -> RouterConfig {
        RouterConfig::Knn(KnnConfig {
            k: 100,
            weighting: Weighting::Power { power: 1.0 },
            shrinkage: 30.0,
            prior: Prior::Task { strength: 50.0 },
            same_task: true,
            ..Default::default()
        })
    }

    fn task_mean_config() -> RouterConfig {
        RouterConfig::Knn(KnnConfig {
            k: 1,
            shrinkage: 1e12,
            prior: Prior::Task { strength: 0.0 },
            same_task: true,
            ..Default::default()
        })
    }

    fn aiq(ds: &Dataset, config: &RouterConfig, train: &Split) -> f64 {
        aiq_of(ds, &AnyRouter::fit_config(config, train).unwrap())
    }

    fn aiq_of(ds: &Dataset, r: &AnyRouter) -> f64 {
        let eval = Evaluation::of_dataset(ds, EntrantOptions::default()).unwrap();
        eval.evaluate_router("r", r.shared(), None)
            .unwrap()
            .report
            .metrics
            .aiq
    }

    fn near(x: f64, want: f64) -> bool {
        (x - want).abs() < 5e-5
    }

    #[test]
    fn partial_labels_and_a_log() {
        let Some(root) = common::data_dir() else {
            return;
        };
        let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
        let partial = keep_cells(ds.train(), 0.3, 0).unwrap();
        assert_eq!(partial.observed_count(), 14937);
        let knn = aiq(&ds, &knn_config(), &partial);
        let tm = aiq(&ds, &task_mean_config(), &partial);
        eprintln!("30 % of the cells: knn {knn:.4}, task mean {tm:.4}");
        assert!(near(knn, 0.5869) && near(tm, 0.5825), "{knn} {tm}");
        // Acceptance: the better of kNN and MF (0.5584) at least matches the task-mean router.
        assert!(knn >= tm);
        let log = uniform_log(ds.train(), 0).unwrap();
        let knn = aiq(&ds, &knn_config(), &log);
        eprintln!("uniform log: knn {knn:.4}");
        assert!(near(knn, 0.5489), "{knn}");
        // Evaluation needs full labels on the test split, and says so.
        let bad = Evaluation::new(
            "partial",
            ds.train(),
            &partial,
            None,
            EntrantOptions::default(),
        );
        assert_eq!(bad.unwrap_err().kind(), pointsman::ErrorKind::MissingLabels);
    }

    #[test]
    fn pairwise_mf() {
        let Some(root) = common::data_dir() else {
            return;
        };
        let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
        let pairs = to_preferences(ds.train(), 4, 0).unwrap();
        assert_eq!(pairs.preferences().len(), 17196);
        let config = RouterConfig::Mf(MfConfig {
            learning_rate: 1e-2,
            ..Default::default()
        });
        let mf = aiq(&ds, &config, &pairs);
        eprintln!("pairs only: mf {mf:.4}");
        // Acceptance: at least 0.570 (zero router 0.528, pointwise MF 0.5885).
        assert!(mf >= 0.570, "{mf}");
    }

    /// Onboarding into kNN meets the acceptance for the best single model and for
    /// gemma-2-9b-it (not for qwen2.5-7b-instruct: docs/results.md).
    #[test]
    fn onboarding_the_best_single_model_into_knn() {
        let Some(root) = common::data_dir() else {
            return;
        };
        let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
        let train = ds.train();
        let refit = aiq(&ds, &knn_config(), train);
        assert!(near(refit, 0.5797), "{refit}");
        let mut order: Vec<usize> = (0..train.len()).collect();
        SplitMix64::new(0).shuffle(&mut order);
        let labelled = train.subset(&order[..200], "labelled");
        for (held, want_k0, want_k200) in [
            ("llama-3.1-nemotron-51b-instruct", 0.5723, 0.5782),
            ("gemma-2-9b-it", 0.5770, 0.5790),
        ] {
            let h = train.pool().index_of(held).unwrap();
            let others: Vec<usize> = (0..train.pool().len()).filter(|&j| j != h).collect();
            let base = AnyRouter::fit_config(&knn_config(), &train.select_models(&others).unwrap())
                .unwrap();
            let card = train.pool().card(h).clone();
            let k0 = aiq_of(&ds, &base.add_model(card.clone(), None).unwrap());
            let started = std::time::Instant::now();
            let r = base.add_model(card, Some(&labelled)).unwrap();
            let seconds = started.elapsed().as_secs_f64();
            let k200 = aiq_of(&ds, &r);
            eprintln!(
                "onboarding {held}: refit {refit:.4}, k=0 {k0:.4}, k=200 {k200:.4} in {seconds:.3} s"
            );
            assert!(near(k0, want_k0) && near(k200, want_k200), "{held}");
            assert!((k200 - refit).abs() <= 0.01, "{held}");
            assert!((k200 - refit).abs() <= 0.5 * (k0 - refit).abs(), "{held}");
            assert!(seconds <= 1.0, "{held}: {seconds} s");
        }
    }

    /// The bandit onboarding table of docs/results.md, for the best single model: a `linucb`
    /// warm-started on the other eight, scored greedy.
    #[test]
    fn onboarding_the_best_single_model_into_linucb() {
        let Some(root) = common::data_dir() else {
            return;
        };
        let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
        let train = ds.train();
        let config = RouterConfig::default_for(pointsman::RouterKind::Linucb, 0).unwrap();
        let greedy = |r: &AnyRouter| AnyRouter::Learner(r.as_learner().unwrap().greedy());
        let refit = aiq_of(
            &ds,
            &greedy(&AnyRouter::fit_config(&config, train).unwrap()),
        );
        let h = train
            .pool()
            .index_of("llama-3.1-nemotron-51b-instruct")
            .unwrap();
        let others: Vec<usize> = (0..train.pool().len()).filter(|&j| j != h).collect();
        let base = AnyRouter::fit_config(&config, &train.select_models(&others).unwrap()).unwrap();
        let mut order: Vec<usize> = (0..train.len()).collect();
        SplitMix64::new(0).shuffle(&mut order);
        let card = train.pool().card(h).clone();
        let k0 = aiq_of(&ds, &greedy(&base.add_model(card.clone(), None).unwrap()));
        let labelled = train.subset(&order[..200], "labelled");
        let started = std::time::Instant::now();
        let r = base.add_model(card, Some(&labelled)).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let k200 = aiq_of(&ds, &greedy(&r));
        eprintln!(
            "linucb onboarding: refit {refit:.4}, k=0 {k0:.4}, k=200 {k200:.4} in {seconds:.3} s"
        );
        assert!(near(refit, 0.5565) && near(k0, 0.5497) && near(k200, 0.5492));
        // Within 0.01 of the refit (met); not closer than k = 0 (docs/results.md says why).
        assert!((k200 - refit).abs() <= 0.01);
        assert!(seconds <= 1.0, "{seconds} s");
    }
}

/// Issue 21: the importers reproduce the shipped datasets from `raw/` — same ids, queries,
/// tasks, models, prices, scores, costs (and answer lengths) and split; embeddings on a seeded
/// sample of 32 rows per dataset (embedding all 21 350 prompts takes minutes), within 2e-3 of
/// the shipped float16 ones.
mod importers {
    use super::common;
    use pointsman::data::{import, Dataset, ImportFormat, ImportOptions, Split};
    use pointsman::rng::SplitMix64;
    use std::collections::HashMap;

    /// Per id: (split, task, prompt, per model id: score, cost, output tokens).
    type Rows = HashMap<String, (String, Option<String>, String, Vec<(String, u64, u64, u64)>)>;

    fn rows(ds: &Dataset) -> Rows {
        let mut out = Rows::new();
        for s in [ds.train(), ds.test()] {
            let m = s.pool().len();
            for r in 0..s.len() {
                let mut cells: Vec<(String, u64, u64, u64)> = (0..m)
                    .map(|j| {
                        (
                            s.pool().id(j).to_string(),
                            s.score(r, j).to_bits(),
                            s.cost(r, j).to_bits(),
                            s.output_tokens()[r * m + j].to_bits(),
                        )
                    })
                    .collect();
                cells.sort();
                let prev = out.insert(
                    s.ids()[r].clone(),
                    (
                        s.name().to_string(),
                        s.tasks()[r].clone(),
                        s.prompts()[r].clone(),
                        cells,
                    ),
                );
                assert!(prev.is_none(), "id {} twice", s.ids()[r]);
            }
        }
        out
    }

    fn cards(ds: &Dataset) -> Vec<(String, u64, u64, u64)> {
        let mut v: Vec<_> = ds
            .pool()
            .cards()
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    c.input_usd_per_mtok.to_bits(),
                    c.output_usd_per_mtok.to_bits(),
                    c.default_output_tokens.to_bits(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn same(imported: &Dataset, shipped: &Dataset) {
        assert_eq!(cards(imported), cards(shipped), "models and prices");
        assert_eq!(imported.train().len(), shipped.train().len());
        assert_eq!(imported.test().len(), shipped.test().len());
        let (a, b) = (rows(imported), rows(shipped));
        let only_imported: Vec<&String> = a.keys().filter(|k| !b.contains_key(*k)).collect();
        let only_shipped: Vec<&String> = b.keys().filter(|k| !a.contains_key(*k)).collect();
        assert!(
            only_imported.is_empty() && only_shipped.is_empty(),
            "rows on one side only: imported {only_imported:?}, shipped {only_shipped:?}"
        );
        let differ: Vec<&String> = a.keys().filter(|k| a[*k] != b[*k]).collect();
        assert!(
            differ.is_empty(),
            "{} rows differ, e.g. {:?}",
            differ.len(),
            &differ[..differ.len().min(5)]
        );
    }

    /// The imported prompts of a seeded sample, embedded in-process, against the shipped
    /// embeddings of the same ids.
    #[cfg(feature = "embed")]
    fn embeddings_match(imported: &Dataset, shipped: &Dataset, seed: u64) {
        let Some(embedder) = common::load(2) else {
            return;
        };
        let s: &Split = shipped.train();
        let mut order: Vec<usize> = (0..s.len()).collect();
        SplitMix64::new(seed).shuffle(&mut order);
        order.truncate(32);
        let index: HashMap<&str, usize> = imported
            .train()
            .ids()
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let prompts: Vec<&str> = order
            .iter()
            .map(|&r| imported.train().prompts()[index[s.ids()[r].as_str()]].as_str())
            .collect();
        let got = pointsman::embed::embed_prompts(&prompts, &embedder, &mut |_, _| {}).unwrap();
        let dim = s.dim();
        let want: Vec<f32> = order
            .iter()
            .flat_map(|&r| s.embeddings()[r * dim..(r + 1) * dim].iter().copied())
            .collect();
        let diff = common::max_abs_diff(&got.embeddings, &want);
        assert!(
            diff < 2e-3,
            "{}: embeddings differ by {diff}",
            shipped.name()
        );
    }

    #[test]
    fn importing_raw_reproduces_llmrouter_dc() {
        let Some(root) = common::data_dir() else {
            return;
        };
        let started = std::time::Instant::now();
        let draft = import(
            ImportFormat::Llmrouter,
            &[root.join("raw/llmrouter")],
            &ImportOptions::default(),
        )
        .unwrap();
        // The 119 train rows whose question is also a test question are dropped, as shipped.
        assert_eq!(draft.dropped.get("train_row_also_in_test"), Some(&119));
        let metrics: HashMap<&str, Option<&str>> = draft
            .rows
            .iter()
            .map(|r| (r.id.as_str(), r.metric.as_deref()))
            .collect();
        let imported = Dataset::from_draft("llmrouter_dc", &draft).unwrap();
        let shipped = Dataset::load(root.join("llmrouter_dc")).unwrap();
        same(&imported, &shipped);
        // The metric field, from the shipped records.
        let text = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(root.join("llmrouter_dc/llmrouter_dc.jsonl.gz"))
            .output()
            .unwrap()
            .stdout;
        for line in String::from_utf8(text).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(
                metrics[v["id"].as_str().unwrap()],
                v["metric"].as_str(),
                "metric of {}",
                v["id"]
            );
        }
        eprintln!(
            "llmrouter import and comparison: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        #[cfg(feature = "embed")]
        embeddings_match(&imported, &shipped, 21);
    }

    #[test]
    fn importing_raw_reproduces_routellm() {
        let Some(root) = common::data_dir() else {
            return;
        };
        let started = std::time::Instant::now();
        // Prices are not in RouteLLM's data: the shipped models.json gives them (and the roles).
        let options = ImportOptions {
            models: Some(root.join("routellm/models.json")),
            ..Default::default()
        };
        let draft = import(
            ImportFormat::Routellm,
            &[root.join("raw/routellm")],
            &options,
        )
        .unwrap();
        assert_eq!(
            draft.split_rule.as_deref(),
            common::stats(&root.join("routellm"))["split_rule"].as_str()
        );
        let imported = Dataset::from_draft("routellm", &draft).unwrap();
        let shipped = Dataset::load(root.join("routellm")).unwrap();
        assert_eq!(imported.weak_strong(), shipped.weak_strong());
        same(&imported, &shipped);
        eprintln!(
            "routellm import and comparison: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        #[cfg(feature = "embed")]
        embeddings_match(&imported, &shipped, 21);
        // MT-Bench on request: 160 (question, turn) rows of preference pairs only.
        let with = import(
            ImportFormat::Routellm,
            &[root.join("raw/routellm")],
            &ImportOptions {
                mt_bench: true,
                ..options
            },
        )
        .unwrap();
        let mt: Vec<_> = with
            .rows
            .iter()
            .filter(|r| r.id.starts_with("mt_bench-"))
            .collect();
        assert_eq!(mt.len(), 160);
        assert!(mt
            .iter()
            .all(|r| r.preferences.len() == 1 && r.scores.iter().all(Option::is_none)));
    }
}
