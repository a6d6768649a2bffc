//! `pointsman eval` and `pointsman report`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pointsman::data::Dataset;
use pointsman::eval::{self, EntrantOptions, Evaluation, Report, DEFAULT_SWEEP_POINTS};

use crate::output;
use crate::plot;
use crate::progress::Progress;

/// Arguments of `pointsman eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Dataset folder in the shared schema (e.g. ../shared/data/llmrouter_dc).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Comma-separated routers: random, cheapest, best-single, fixed:<model id>, zero, oracle,
    /// knn, mf, irt, stack, cascade, cascade-chain, file:<saved router>, and the bandits linucb, thompson,
    /// knn-ucb, cluster-ucb (learned by a partial-feedback replay over the train split, then
    /// evaluated greedily); `all` for every kind with default settings.
    #[arg(long, value_name = "LIST")]
    pub routers: String,

    /// Folder for report.json, report.md, curve.svg (and decisions.jsonl).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Also write decisions.jsonl: one line per router, sweep point and test query (without it,
    /// an earlier run's decisions.jsonl in --out is refused: it would not match the report).
    #[arg(long)]
    pub decisions: bool,

    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Number of cost weights each router's sweep tries [default: 41] (not with --policy,
    /// which does not sweep).
    #[arg(long, value_name = "N")]
    pub points: Option<usize>,

    /// Cascades: error rate ε of the simulated judge whose confidences they see (the answer's
    /// score ≥ 0.5, flipped with probability ε; a simulation: the datasets carry no confidences).
    #[arg(long, default_value_t = eval::cascade::DEFAULT_JUDGE_NOISE, value_name = "EPS")]
    pub judge_noise: f64,

    /// A decision-time policy file (JSON or TOML, docs/policies.md): instead of sweeping the
    /// cost weight, stream the test split in order through each router under the policy
    /// (query i at time i s, charged its chosen model's actual cost) and write policy.json and
    /// policy.jsonl (each decision with its audit).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// With --policy: the tenant every request carries (budgets and rules per tenant).
    #[arg(long, value_name = "NAME", requires = "policy")]
    pub tenant: Option<String>,

    /// The embedding model, for a dataset without embeddings (they are computed, and cached in
    /// the dataset folder when it is writable).
    #[command(flatten)]
    pub model: crate::embed_cmd::ModelArgs,
}

/// Arguments of `pointsman report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The dataset folder the decisions were made on.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// A decisions.jsonl written by `pointsman eval --decisions`.
    #[arg(long, value_name = "FILE")]
    pub decisions: PathBuf,

    /// Write report.json and report.md into this folder as well.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

fn load(path: &Path, progress: &Progress) -> Result<Dataset> {
    let pb = progress.spinner(format!("loading {}", path.display()));
    let ds = Dataset::load(path)?;
    pb.finish_and_clear();
    tracing::info!(
        "{}: {} train / {} test queries, {} models",
        ds.name(),
        ds.train().len(),
        ds.test().len(),
        ds.pool().len()
    );
    Ok(ds)
}

/// `pointsman eval`.
pub fn eval(args: &EvalArgs, progress: &Progress) -> Result<()> {
    let names = eval::expand_entrant_names(&args.routers);
    if names.is_empty() {
        bail!("--routers names no router");
    }
    let points = args.points.unwrap_or(DEFAULT_SWEEP_POINTS);
    if points < 2 {
        bail!("--points {points} is too few: a sweep needs at least 2 cost weights (its two ends)");
    }
    if args.policy.is_some() && args.points.is_some() {
        bail!("--points sets the cost-weight sweep; with --policy there is no sweep");
    }
    if args.policy.is_some() && args.decisions {
        bail!(
            "--decisions writes the cost-weight sweep's decisions; with --policy there is no \
             sweep, and every decision (with its audit) is in policy.jsonl"
        );
    }
    // A decisions.jsonl this run would not replace would no longer match the folder's report
    // (`pointsman report` on it recomputes the earlier run's figures): refused before any work.
    let stale = args.out.join("decisions.jsonl");
    if args.policy.is_none() && !args.decisions && std::fs::symlink_metadata(&stale).is_ok() {
        bail!(
            "{} is from an earlier run and would not match this run's report: give --decisions \
             to replace it, or remove it (or choose another --out)",
            stale.display()
        );
    }
    // Refuse a bad --judge-noise before any work, whichever routers are named.
    eval::cascade::SimulatedJudge::new(args.judge_noise, args.seed)?;
    let mut ds = load(&args.data, progress)?;
    for name in &names {
        eval::check_entrant_name(name, ds.pool())?;
    }
    output::refuse_outputs_among_inputs(
        &args.out,
        &output::EVAL_OUTPUTS,
        &ds,
        args.policy.as_deref(),
        &names,
    )?;
    if names.iter().any(|n| eval::needs_embeddings(n)) {
        crate::embed_cmd::ensure_embeddings(&mut ds, &args.model, progress)?;
    }
    if ds.test().is_empty() {
        bail!("{}: the test split is empty", ds.dir().display());
    }
    let options = EntrantOptions {
        seed: args.seed,
        sweep_points: points,
        judge_noise: args.judge_noise,
    };
    if let Some(path) = &args.policy {
        return eval_policy(args, path, &ds, &names, &options, progress);
    }
    let evaluation = Evaluation::of_dataset(&ds, options)?;
    let mut reports = Vec::new();
    let mut sweeps = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let pb = progress.spinner(format!(
            "[{}/{}] {name}: fitting on train, then sweeping the test split",
            i + 1,
            names.len()
        ));
        // Named: with several `file:` routers, which one failed.
        let evaluated = evaluation
            .evaluate_named(name)
            .with_context(|| format!("router {name}"))?;
        pb.finish_and_clear();
        tracing::info!(
            "{name}: fitted in {:.1} s, {} sweep points in {:.1} s",
            evaluated.fit_seconds,
            evaluated.sweep.len(),
            evaluated.sweep_seconds
        );
        reports.push(evaluated.report);
        sweeps.push((name.clone(), evaluated.sweep));
    }
    let report = evaluation.report(reports);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut staged = stage_report(&report, &args.out, &command)?;
    staged.bytes(&args.out.join("curve.svg"), plot::svg(&report)?.as_bytes())?;
    if args.decisions {
        let path = args.out.join("decisions.jsonl");
        let pb = progress.spinner(format!("writing {}", path.display()));
        let mut file = staged.file(&path)?;
        for (name, sweep) in &sweeps {
            output::write_lines(
                &mut file,
                eval::decision_lines(name, sweep, ds.test(), sweeps.len()),
            )?;
        }
        staged.push(file);
        pb.finish_and_clear();
    }
    staged.commit()?;
    output::emit(&output::table(&report))?;
    tracing::info!("wrote {}", args.out.display());
    Ok(())
}

/// `pointsman eval --policy FILE`.
fn eval_policy(
    args: &EvalArgs,
    path: &Path,
    ds: &Dataset,
    names: &[String],
    options: &EntrantOptions,
    progress: &Progress,
) -> Result<()> {
    use pointsman::eval::policies;
    use pointsman::policy::{Policy, PolicyRouter};
    // Read the policy before fitting anything, so that a bad file fails fast.
    Policy::load(path)?;
    let rows: Vec<(&pointsman::data::Split, usize)> =
        (0..ds.test().len()).map(|r| (ds.test(), r)).collect();
    let (mut summaries, mut steps) = (Vec::new(), Vec::new());
    for (i, name) in names.iter().enumerate() {
        let pb = progress.spinner(format!(
            "[{}/{}] {name}: fitting on train, then streaming the test split under {}",
            i + 1,
            names.len(),
            path.display()
        ));
        let router = policies::router_by_name(name, ds.train(), options)?;
        // A fresh policy (fresh budgets and sessions) per router.
        let policy = PolicyRouter::new(router, Policy::load(path)?)?;
        let (summary, lines) =
            policies::run_policy(name, &policy, &rows, args.tenant.as_deref(), false)?;
        pb.finish_and_clear();
        summaries.push(summary);
        steps.push(lines);
    }
    crate::policy_cmd::write(&args.out, &summaries, &steps)?;
    print!("{}", crate::policy_cmd::table(&summaries));
    tracing::info!("wrote {}", args.out.display());
    Ok(())
}

/// report.json and report.md, staged.
fn stage_report(report: &Report, out: &Path, command: &str) -> Result<output::Staged> {
    let mut staged = output::Staged::default();
    staged.bytes(
        &out.join("report.json"),
        &serde_json::to_vec_pretty(report)?,
    )?;
    staged.bytes(
        &out.join("report.md"),
        output::markdown(report, command).as_bytes(),
    )?;
    Ok(staged)
}

/// `pointsman report`.
pub fn report(args: &ReportArgs) -> Result<()> {
    let ds = Dataset::load(&args.data)?;
    let (file, _) = pointsman::files::open_regular(&args.decisions)?;
    let mut lines = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", args.decisions.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: eval::DecisionLine = serde_json::from_str(&line).map_err(|e| {
            pointsman::Error::format_at(
                args.decisions.display(),
                i + 1,
                format!("malformed decision: {e}"),
            )
        })?;
        lines.push(parsed);
    }
    // The file named: its groups' errors name routers, cost weights and queries, not the file.
    let report =
        eval::report_from_decisions(ds.name(), ds.train(), ds.test(), ds.weak_strong(), lines)
            .with_context(|| args.decisions.display().to_string())?;
    if let Some(out) = &args.out {
        let mut inputs = ds.files();
        inputs.push(args.decisions.clone());
        for name in ["report.json", "report.md"] {
            pointsman::files::refuse_output_among_inputs(&out.join(name), &inputs)?;
        }
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        stage_report(&report, out, &command)?.commit()?;
    }
    output::emit(&output::table(&report))?;
    Ok(())
}
