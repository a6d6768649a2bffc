//! `pointsman route`: route queries read as JSON lines from stdin with a saved router.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Result;
use pointsman::{Objective, QueryFeatures};
use serde::Deserialize;

/// Arguments of `pointsman route`.
#[derive(Debug, clap::Args)]
pub struct RouteArgs {
    /// A router saved by `pointsman train`.
    #[arg(long, value_name = "FILE")]
    pub router: PathBuf,

    /// Quality points per USD of expected cost.
    #[arg(long, default_value_t = 0.0)]
    pub cost_weight: f64,

    /// Only choose among these models (comma-separated ids).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub allowed: Option<Vec<String>>,
}

/// One input line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    #[serde(default)]
    id: Option<serde_json::Value>,
    embedding: Vec<f32>,
    #[serde(default)]
    prompt_tokens: Option<f64>,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    embedding_model: Option<String>,
}

/// `pointsman route`.
pub fn route(args: &RouteArgs) -> Result<()> {
    let router = pointsman::io::load_router(&args.router)?;
    let mut objective = Objective::new(args.cost_weight);
    objective.allowed = args.allowed.clone();
    objective.resolve(router.models())?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (i, line) in stdin.lock().lines().enumerate() {
        let at = |m: String| pointsman::Error::format_at("stdin", i + 1, m);
        let line = line.map_err(|e| at(format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let q: Query = serde_json::from_str(&line).map_err(|e| {
            at(format!(
                "expected {{\"embedding\": [...], \"prompt_tokens\"?, \"task\"?, \"id\"?}}: {e}"
            ))
        })?;
        let mut features = QueryFeatures::new(q.embedding).map_err(|e| at(e.to_string()))?;
        if let Some(t) = q.prompt_tokens {
            features = features
                .with_prompt_tokens(t)
                .map_err(|e| at(e.to_string()))?;
        }
        if let Some(t) = q.task {
            features = features.with_task(t);
        }
        if let Some(m) = q.embedding_model {
            features = features.with_embedding_model(m);
        }
        let decision = router
            .route(&features, &objective)
            .map_err(|e| at(e.to_string()))?;
        let mut value = serde_json::to_value(&decision)?;
        if let (Some(id), Some(obj)) = (q.id, value.as_object_mut()) {
            obj.insert("id".into(), id);
        }
        serde_json::to_writer(&mut out, &value)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
