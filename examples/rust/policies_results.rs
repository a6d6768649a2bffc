//! The figures of docs/results.md, "Decision-time policies": pacing, episodes, the OOD guard
//! (leave-task-group-out and MT-Bench), stickiness and latency caps, on `llmrouter_dc`.
//!
//! ```sh
//! cargo run --release -p pointsman-examples --example policies_results            # kNN and MF
//! cargo run --release -p pointsman-examples --example policies_results -- knn     # kNN only
//! ```
//!
//! The datasets are read from `../shared/data` (`POINTSMAN_DATA_DIR` overrides); MT-Bench's
//! questions from `<data>/raw/routellm/mt_bench/question.jsonl`, embedded in-process (the
//! embedding model must be installed: `scripts/fetch-model.sh`).

use std::path::PathBuf;
use std::sync::Arc;

use pointsman::data::Dataset;
use pointsman::embed::{Embedder, EmbedderOptions};
use pointsman::eval::policies::{self, LLMROUTER_DC_GROUPS};
use pointsman::policy::GuardFit;
use pointsman::routers::knn::KnnRouter;
use pointsman::routers::mf::{MfConfig, MfRouter};
use pointsman::Router;

fn data_dir() -> PathBuf {
    std::env::var_os("POINTSMAN_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"))
}

fn main() -> pointsman::Result<()> {
    let only = std::env::args().nth(1);
    let ds = Dataset::load(data_dir().join("llmrouter_dc"))?;
    let (train, test) = (ds.train(), ds.test());
    let mut routers: Vec<(&str, Arc<dyn Router>)> = Vec::new();
    if only.as_deref().is_none_or(|o| o == "knn") {
        routers.push((
            "knn",
            Arc::new(KnnRouter::fit(train, &policies::reference_knn_config())?),
        ));
    }
    if only.as_deref().is_none_or(|o| o == "mf") {
        let mf = MfConfig {
            learning_rate: 1e-2,
            ..Default::default()
        };
        routers.push(("mf", Arc::new(MfRouter::fit(train, &mf)?)));
    }
    for (name, router) in &routers {
        println!("\n## {name}\n");
        let p = policies::pacing(router.clone(), train, test, 10, 0.5, 1.0)?;
        println!(
            "Pacing: best single {} costs {:.4e} USD over the test split; budget {:.4e} USD (50 %). \
             At cost weight 0 the router spends {:.1} % of the best single model's cost (quality {:.4}).\n",
            p.best_single, p.best_single_cost, p.budget, 100.0 * p.unconstrained_spend_share, p.unconstrained_quality
        );
        println!("| order | paced spend / budget | paced quality | refused | hindsight cost weight | hindsight quality | hard-cut spend / budget | hard-cut quality | hard-cut refused |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for (a, b) in p.paced.iter().zip(&p.hard_cut) {
            println!(
                "| {} | {:.4} | {:.4} | {} | {:.0} | {:.4} | {:.4} | {:.4} | {} |",
                a.seed,
                a.spend_share,
                a.quality,
                a.refused,
                a.hindsight_cost_weight,
                a.hindsight_quality,
                b.spend_share,
                b.quality,
                b.refused
            );
        }
        println!(
            "| mean | {:.4} | **{:.4}** | | | **{:.4}** | {:.4} | {:.4} | |",
            p.paced.iter().map(|r| r.spend_share).sum::<f64>() / p.paced.len() as f64,
            p.paced_quality(),
            p.hindsight_quality(),
            p.hard_cut.iter().map(|r| r.spend_share).sum::<f64>() / p.hard_cut.len() as f64,
            p.hard_cut_quality()
        );
        for margin in [1.0, 2.0, 3.0] {
            let e = policies::episodes(router.clone(), train, test, 1000, 5, 0.5, 0.5, margin, 0)?;
            println!(
                "\nEpisodes (stop margin {margin}): {} episodes of {} steps, budget {:.4e} USD each; \
                 over budget {}; refused steps {}; quality {:.4} at {:.1} % of the budgets; \
                 fixed cost weight {:.0}: quality {:.4} at {:.1} %, {} episodes over budget",
                e.episodes, e.steps, e.budget, e.over_budget, e.refused, e.quality,
                100.0 * e.spend_share, e.fixed_cost_weight, e.fixed_quality,
                100.0 * e.fixed_spend_share, e.fixed_over_budget
            );
        }
        let s = policies::stickiness(
            router.clone(),
            test,
            500,
            5,
            300.0,
            &[0.0, 0.01, 0.02, 0.05, 0.1],
            0,
        )?;
        println!("\nStickiness (500 sessions of 5 queries of one task, cost weight 300):\n");
        println!("| margin | switches per session | quality | cost per query (USD) |");
        println!("|---|---|---|---|");
        for r in &s {
            println!(
                "| {} | {:.3} | {:.4} | {:.3e} |",
                r.margin.map_or("none".into(), |m| m.to_string()),
                r.switches,
                r.quality,
                r.cost
            );
        }
        for cap in [5.0, 3.0, 1.0] {
            let l = policies::latency_caps(router.clone(), test, cap)?;
            println!(
                "\nLatency cap {cap} s: {} decided, {} over the cap, {} refused (no model fits); \
                 quality {:.4} (uncapped {:.4}); mean expected latency {:.2} s (uncapped {:.2} s)",
                l.decided,
                l.violations,
                l.refused,
                l.quality,
                l.uncapped_quality,
                l.capped_latency_s,
                l.uncapped_latency_s
            );
        }
    }
    if only.as_deref().is_none_or(|o| o == "guard") {
        println!("\n## guard (relative Mahalanobis, calibrated to 5 % false alarms on held-out training queries)\n");
        let groups = policies::guard_leave_group_out(
            train,
            test,
            &LLMROUTER_DC_GROUPS,
            &GuardFit::default(),
        )?;
        println!("| left out | test queries | false alarms (others' test) | detection | AUROC | 10-NN AUROC |");
        println!("|---|---|---|---|---|---|");
        for g in &groups {
            println!(
                "| {} ({}) | {} | {:.3} | {:.3} | **{:.3}** | {:.3} |",
                g.group,
                g.tasks.join(", "),
                g.positives,
                g.false_alarm,
                g.detection,
                g.auroc,
                g.knn_auroc
            );
        }
        let mean = |f: &dyn Fn(&policies::GuardGroup) -> f64| {
            groups.iter().map(f).sum::<f64>() / groups.len() as f64
        };
        println!(
            "| mean | | {:.3} | {:.3} | **{:.3}** | {:.3} |",
            mean(&|g| g.false_alarm),
            mean(&|g| g.detection),
            mean(&|g| g.auroc),
            mean(&|g| g.knn_auroc)
        );
        // MT-Bench against the full train split.
        let prompts =
            policies::mt_bench_prompts(&data_dir().join("raw/routellm/mt_bench/question.jsonl"))?;
        let embedder = Embedder::load_default(&EmbedderOptions::default())?;
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let (x, _) = embedder.embed(&refs)?;
        let m = policies::guard_on_new_queries(train, test, &x, &GuardFit::default())?;
        println!(
            "\nMT-Bench ({} first turns) against the full train split: {:.1} % flagged; the test split {:.1} %; \
             AUROC MT-Bench against the test split {:.3} (10-NN distance {:.3})",
            m.queries, 100.0 * m.flagged, 100.0 * m.test_flagged, m.auroc, m.knn_auroc
        );
    }
    Ok(())
}
