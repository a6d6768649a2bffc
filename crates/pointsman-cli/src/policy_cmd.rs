//! `--policy FILE` of `pointsman eval` and `pointsman replay`: routers streamed under a
//! decision-time policy (`docs/policies.md`); the core's `eval::policies::run_policy` does the
//! work, this module writes its files and table.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use pointsman::eval::policies::{PolicyRunSummary, PolicyStep};
use pointsman::files::AtomicFile;

/// Writes `policy.jsonl` (one line per router and query, with the audit) and `policy.json`
/// (the summaries) into `out`.
pub fn write(out: &Path, summaries: &[PolicyRunSummary], steps: &[Vec<PolicyStep>]) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("policy.jsonl");
    let mut file = AtomicFile::create(&path)?;
    for step in steps.iter().flatten() {
        serde_json::to_writer(&mut file, step)?;
        file.write_all(b"\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    file.commit()?;
    pointsman::files::write_atomic(
        &out.join("policy.json"),
        &serde_json::to_vec_pretty(summaries)?,
    )?;
    Ok(())
}

/// The summaries as a text table.
pub fn table(summaries: &[PolicyRunSummary]) -> String {
    let mut s = String::from(
        "router               queries  answered  refused                                  ruled  quality  spend (USD)\n",
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
            "{:<20} {:>7}  {:>8}  {:<40} {:>5}  {:>7.4}  {:.4e}\n",
            r.router, r.queries, r.decided, refused, r.ruled, r.quality, r.spend
        ));
    }
    s
}
