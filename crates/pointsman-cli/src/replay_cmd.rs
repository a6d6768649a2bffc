//! `pointsman replay`: stream a dataset through learning routers under bandit feedback.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use pointsman::data::Dataset;
use pointsman::replay::{self, CostWeights, Drift, ReplayReport, Stream};

use crate::progress::Progress;

/// Arguments of `pointsman replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Dataset folder in the shared schema (e.g. ../shared/data/llmrouter_dc).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Comma-separated learners: linucb, thompson, knn-ucb, cluster-ucb, file:<saved learner>.
    #[arg(long, value_name = "LIST")]
    pub routers: String,

    /// Cost weight of every routing decision and of the utility the report measures.
    #[arg(long, default_value_t = 0.0, value_name = "W")]
    pub cost_weight: f64,

    /// Seed of the stream's order (and of Thompson sampling's draws).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Folder for replay.jsonl, report.json, report.md and replay.svg.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Simulated regression or outage: "<model id>@<step>" makes that model score 0 from that
    /// step on.
    #[arg(long, value_name = "MODEL@STEP")]
    pub drift: Option<String>,

    /// A decision-time policy file (JSON or TOML, docs/policies.md): each learner replays the
    /// stream under the policy (step i at time i s; a refused step teaches nothing) and
    /// policy.json and policy.jsonl (each decision with its audit) are written instead of the
    /// replay's report.
    #[arg(long, value_name = "FILE", conflicts_with = "drift")]
    pub policy: Option<PathBuf>,

    /// With --policy: the tenant every request carries (budgets and rules per tenant).
    #[arg(long, value_name = "NAME", requires = "policy")]
    pub tenant: Option<String>,

    /// Steps per bin of the report's shares and curves.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub bin: usize,
}

/// `pointsman replay`.
pub fn replay(args: &ReplayArgs, progress: &Progress) -> Result<()> {
    let names: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for n in args
            .routers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if !v.iter().any(|x| x == n) {
                v.push(n.to_string());
            }
        }
        v
    };
    if names.is_empty() {
        bail!("--routers names no learner");
    }
    for name in &names {
        replay::check_learner_name(name)?;
    }
    if !(args.cost_weight >= 0.0 && args.cost_weight.is_finite()) {
        bail!(
            "--cost-weight {} is not a non-negative number",
            args.cost_weight
        );
    }
    let drift: Option<Drift> = args.drift.as_deref().map(str::parse).transpose()?;
    let pb = progress.spinner(format!("loading {}", args.data.display()));
    let ds = Dataset::load(&args.data)?;
    crate::output::refuse_outputs_among_inputs(
        &args.out,
        &crate::output::REPLAY_OUTPUTS,
        &ds,
        args.policy.as_deref(),
        &names,
    )?;
    if let Some(path) = &args.policy {
        pb.finish_and_clear();
        return replay_policy(args, path, &ds, &names, progress);
    }
    let mut stream = Stream::from_dataset(&ds, args.seed)?;
    if let Some(d) = drift {
        stream = stream.with_drift(d)?;
    }
    pb.finish_and_clear();
    let pb = progress.bar(
        (stream.len() * names.len()) as u64,
        format!("replaying through {}", names.join(", ")),
    );
    let runs = replay::run_named_reporting(
        &names,
        &stream,
        args.seed,
        &CostWeights::Fixed(args.cost_weight),
        &|n| pb.inc(n as u64),
    )?;
    pb.finish_and_clear();
    let report = ReplayReport::new(ds.name(), &stream, args.cost_weight, &runs, args.bin)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    // The four files are put in place together (a failure part-way mixed two runs).
    let path = args.out.join("replay.jsonl");
    let mut staged = crate::output::Staged::default();
    let mut file = staged.file(&path)?;
    for (name, run) in &runs {
        for line in replay::lines(name, run, &stream) {
            file.write_all(line.to_json().as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .map_err(|e| pointsman::Error::io(&path, e))?;
        }
    }
    staged.push(file);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    staged.bytes(
        &args.out.join("report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    staged.bytes(
        &args.out.join("report.md"),
        markdown(&report, args.seed, &command).as_bytes(),
    )?;
    staged.bytes(
        &args.out.join("replay.svg"),
        crate::plot::replay_svg(&report)?.as_bytes(),
    )?;
    staged.commit()?;
    crate::output::emit(&table(&report, args.seed))?;
    Ok(())
}

fn header_lines(r: &ReplayReport, seed: u64) -> Vec<String> {
    let mut out = vec![
        format!(
            "{}: {} steps in the order of seed {seed}, cost weight {}; second half from step {}",
            r.dataset, r.steps, r.cost_weight, r.second_half_start
        ),
        format!(
            "best fixed model in hindsight, second half: {} (mean utility {:.4}); whole stream: {} ({:.4})",
            r.reference.best_fixed_second_half,
            r.reference.best_fixed_utility_second_half,
            r.reference.best_fixed,
            r.reference.best_fixed_utility
        ),
        format!(
            "oracle (best model of every step): {:.4} second half, {:.4} whole stream",
            r.reference.oracle_utility_second_half, r.reference.oracle_utility
        ),
    ];
    if let Some(d) = &r.drift {
        out.push(format!("drift: {} scores 0 from step {}", d.model, d.step));
    }
    out
}

fn rows(r: &ReplayReport) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "router".to_string(),
        "utility (2nd half)".into(),
        "vs best fixed".into(),
        "regret vs oracle".into(),
        "quality (2nd half)".into(),
        "cost (2nd half)".into(),
        "utility (all)".into(),
        "alarms".into(),
        "seconds".into(),
    ]];
    for p in &r.routers {
        rows.push(vec![
            p.name.clone(),
            format!("{:.4}", p.mean_utility_second_half),
            format!("{:+.4}", -p.regret_best_fixed_second_half),
            format!("{:.4}", p.regret_oracle_second_half),
            format!("{:.4}", p.mean_quality_second_half),
            format!("{:.3e}", p.mean_cost_second_half),
            format!("{:.4}", p.mean_utility),
            p.alarms.len().to_string(),
            format!("{:.1}", p.seconds),
        ]);
    }
    rows
}

/// The share lines: each router's most chosen models per bin, and the drifted model's share.
fn share_lines(r: &ReplayReport) -> Vec<String> {
    let mut out = Vec::new();
    let drifted = r
        .drift
        .as_ref()
        .and_then(|d| r.model_ids.iter().position(|m| *m == d.model));
    for p in &r.routers {
        if let Some(m) = drifted {
            let shares: Vec<String> = p
                .bins
                .iter()
                .map(|b| format!("{}-{}: {:.1}%", b.start, b.end, 100.0 * b.shares[m]))
                .collect();
            out.push(format!(
                "{}: share of {} per bin: {}",
                p.name,
                r.model_ids[m],
                shares.join(", ")
            ));
        }
        for a in &p.alarms {
            out.push(format!(
                "{}: detector alarm for {} after step {}",
                p.name, a.model, a.step
            ));
        }
    }
    out
}

/// The plain-text table.
pub fn table(r: &ReplayReport, seed: u64) -> String {
    let rows = rows(r);
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|x| x[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for line in header_lines(r, seed) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == 0 {
                    format!("{v:<w$}", w = widths[c])
                } else {
                    format!("{v:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
    }
    let shares = share_lines(r);
    if !shares.is_empty() {
        out.push('\n');
        for line in shares {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// report.md.
pub fn markdown(r: &ReplayReport, seed: u64, command: &str) -> String {
    let mut out = format!("# Replay on `{}`\n\nCommand: `{command}`\n\n", r.dataset);
    for line in header_lines(r, seed) {
        out.push_str(&format!("- {line}\n"));
    }
    out.push_str("\n## Routers\n\n");
    for (i, row) in rows(r).iter().enumerate() {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
        if i == 0 {
            out.push_str(&format!("|{}\n", "---|".repeat(row.len())));
        }
    }
    out.push_str(
        "\nUtility = score − cost weight × cost (USD), with only the chosen model's score and \
         cost revealed to the router at each step. \"vs best fixed\" is the router's \
         second-half utility minus the best fixed model's (in hindsight, same steps).\n\n\
         ## Fixed models\n\n| model | utility (2nd half) | utility (all) |\n|---|---|---|\n",
    );
    for m in &r.reference.models {
        out.push_str(&format!(
            "| {} | {:.4} | {:.4} |\n",
            m.model, m.mean_utility_second_half, m.mean_utility
        ));
    }
    out.push_str("\n## Share of each model per bin\n\n");
    for p in &r.routers {
        out.push_str(&format!(
            "### {}\n\n| steps | {} |\n|---|{}\n",
            p.name,
            r.model_ids.join(" | "),
            "---|".repeat(r.model_ids.len())
        ));
        for b in &p.bins {
            let cells: Vec<String> = b.shares.iter().map(|s| format!("{:.3}", s)).collect();
            out.push_str(&format!(
                "| {}–{} | {} |\n",
                b.start,
                b.end,
                cells.join(" | ")
            ));
        }
        out.push('\n');
    }
    let shares = share_lines(r);
    if !shares.is_empty() {
        for line in shares {
            out.push_str(&format!("- {line}\n"));
        }
    }
    out
}

/// `pointsman replay --policy FILE`: each learner, cold, replays the dataset (train and test,
/// in the order of the seed, as without a policy) under the policy at `--cost-weight` (the
/// policy's own cost weight and its budgets' pacing apply on top).
fn replay_policy(
    args: &ReplayArgs,
    path: &std::path::Path,
    ds: &Dataset,
    names: &[String],
    progress: &Progress,
) -> Result<()> {
    use pointsman::eval::policies;
    use pointsman::policy::{Policy, PolicyRouter};
    Policy::load(path)?;
    let rows = policies::shuffled_rows(&[ds.train(), ds.test()], args.seed);
    let (mut summaries, mut steps) = (Vec::new(), Vec::new());
    for name in names {
        let pb = progress.spinner(format!(
            "replaying {} steps through {name} under {}",
            rows.len(),
            path.display()
        ));
        let learner = replay::learner_by_name(
            name,
            ds.pool(),
            ds.train().dim(),
            ds.train().embedding_model(),
            args.seed,
        )?;
        let mut policy = Policy::load(path)?;
        if policy.config().cost_weight.is_none() {
            let mut config = policy.config().clone();
            config.cost_weight = Some(args.cost_weight);
            let guard = policy.guard().cloned();
            policy = Policy::new(config)?;
            if let Some(g) = guard {
                policy = policy.with_guard(g)?;
            }
        }
        let policy = PolicyRouter::new(learner.shared(), policy)?;
        let (summary, lines) =
            policies::run_policy(name, &policy, &rows, args.tenant.as_deref(), true)?;
        pb.finish_and_clear();
        summaries.push(summary);
        steps.push(lines);
    }
    crate::policy_cmd::write(&args.out, &summaries, &steps)?;
    print!("{}", crate::policy_cmd::table(&summaries));
    Ok(())
}
