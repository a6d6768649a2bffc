//! `--policy FILE` of `pointsman eval` and `pointsman replay`: routers streamed under a
//! decision-time policy (`docs/policies.md`); the core's `eval::policies::run_policy` does the
//! work, this module writes its files and table. And `pointsman fit-guard`: a policy's
//! out-of-distribution guard fitted on a dataset's train split (`Policy::fit_guard`).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use pointsman::eval::policies::{PolicyRunSummary, PolicyStep};

/// Writes `policy.jsonl` (one line per router and query, with the audit) and `policy.json`
/// (the summaries) into `out`.
pub fn write(out: &Path, summaries: &[PolicyRunSummary], steps: &[Vec<PolicyStep>]) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut staged = crate::output::Staged::default();
    let mut file = staged.file(&out.join("policy.jsonl"))?;
    crate::output::write_lines(&mut file, steps.iter().flatten())?;
    staged.push(file);
    staged.bytes(
        &out.join("policy.json"),
        &serde_json::to_vec_pretty(summaries)?,
    )?;
    staged.commit()?;
    Ok(())
}

/// The summaries as a text table.
pub fn table(summaries: &[PolicyRunSummary]) -> String {
    let mut s = String::from(
        "router               queries   decided  refused                                  ruled  quality  spend (USD)\n",
    );
    for r in summaries {
        let refused = if r.refused.is_empty() {
            "0".to_string()
        } else {
            r.refused
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        s.push_str(&format!(
            "{:<20} {:>7}  {:>8}  {:<40} {:>5}  {:>7.4}  {:>11.6}\n",
            r.router, r.queries, r.decided, refused, r.ruled, r.quality, r.spend
        ));
    }
    s.push_str(
        "(decided: queries routed; refused: by kind; ruled: queries a rule fired on; quality: mean \
         over all queries, a refusal counting 0)\n",
    );
    s
}

/// Arguments of `pointsman fit-guard`.
#[derive(Debug, clap::Args)]
pub struct FitGuardArgs {
    /// A dataset folder: the guard is fitted on its train split's embeddings (computed first
    /// when the folder has none).
    #[arg(long, value_name = "DIR")]
    pub data: std::path::PathBuf,

    /// The policy to add the guard to (its rules, caps, budgets and stickiness are kept; a
    /// guard section keeps its action). Without it, a policy with only a refusing guard.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<std::path::PathBuf>,

    /// The policy file to write (JSON, or TOML for .toml), with the guard beside it as
    /// `<file name>.guard.safetensors`.
    #[arg(long, value_name = "FILE")]
    pub out: std::path::PathBuf,

    /// The false-alarm rate the threshold is calibrated to on held-out training queries.
    #[arg(long, default_value_t = 0.05)]
    pub false_alarm: f64,

    /// Share of the train split held out for the calibration.
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,

    /// Seed of the held-out draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// The embedding model, when the dataset has no embeddings yet.
    #[command(flatten)]
    pub model: crate::embed_cmd::ModelArgs,
}

/// `pointsman fit-guard`.
pub fn fit_guard(args: &FitGuardArgs, progress: &crate::progress::Progress) -> Result<()> {
    use pointsman::policy::{GuardFit, Policy, PolicyConfig};
    let base = match &args.policy {
        Some(path) => Policy::load(path)?,
        None => Policy::new(PolicyConfig::default())?,
    };
    let pb = progress.spinner(format!("loading {}", args.data.display()));
    let mut ds = pointsman::data::Dataset::load(&args.data)?;
    pb.finish_and_clear();
    crate::embed_cmd::ensure_embeddings(&mut ds, &args.model, progress)?;
    let mut inputs = ds.files();
    // The policy given is an input too (rewritten in place it lost its comments and its guard),
    // and so is the guard file it names, which the new guard's derived path may be.
    if let Some(path) = &args.policy {
        inputs.push(path.clone());
        inputs.extend(base.guard_file(path));
    }
    pointsman::files::refuse_output_among_inputs(&args.out, &inputs)?;
    pointsman::files::refuse_output_among_inputs(&Policy::guard_path(&args.out), &inputs)?;
    let fit = GuardFit {
        holdout: args.holdout,
        false_alarm: args.false_alarm,
        seed: args.seed,
        ..GuardFit::default()
    };
    let pb = progress.spinner(format!(
        "fitting the guard on {} train queries",
        ds.train().len()
    ));
    let policy = base.fit_guard(ds.train(), &fit)?;
    pb.finish_and_clear();
    policy.save(&args.out)?;
    // Read back what was written: the file names its guard, and both load.
    let policy = Policy::load(&args.out)?;
    let guard = policy.guard().context("the saved policy holds its guard")?;
    let file = policy
        .config()
        .guard
        .as_ref()
        .and_then(|g| g.file.clone())
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "guard fitted on {} train queries less the held-out {:.0} % ({} classes); threshold {:.4} for {:.1} % false alarms on those held out\nsaved {} (guard {})",
        ds.train().len(),
        100.0 * args.holdout,
        guard.classes().len(),
        guard.threshold(),
        100.0 * args.false_alarm,
        args.out.display(),
        file.display()
    )?;
    Ok(())
}
