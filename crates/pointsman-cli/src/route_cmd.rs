//! `pointsman route`: route queries read as JSON lines from stdin with a saved router. A line
//! carries either the query's text (embedded in-process) or its embedding.

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

    /// The embedding model for lines that carry text (loaded at the first such line).
    #[command(flatten)]
    pub model: crate::embed_cmd::ModelArgs,
}

/// One input line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    embedding: Option<Vec<f32>>,
    #[serde(default)]
    prompt_tokens: Option<f64>,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    embedding_model: Option<String>,
}

/// `pointsman route`.
pub fn route(args: &RouteArgs) -> Result<()> {
    let router = pointsman::load_router(&args.router)?;
    let mut objective = Objective::new(args.cost_weight);
    objective.allowed = args.allowed.clone().map(pointsman::Allowed::Ids);
    objective.resolve(router.models())?;
    let mut embedder: Option<pointsman::embed::Embedder> = None;
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
                "expected {{\"text\": \"...\"}} or {{\"embedding\": [...]}}, with \"prompt_tokens\"?, \"task\"?, \"id\"?: {e}"
            ))
        })?;
        let (mut features, tokens) = match (q.text, q.embedding) {
            (Some(text), None) => {
                if embedder.is_none() {
                    embedder = Some(args.model.load()?);
                }
                let embedder = embedder.as_ref().expect("loaded above");
                let (features, info) = embedder.features(&text).map_err(|e| at(e.to_string()))?;
                (features, Some(info))
            }
            (None, Some(embedding)) => {
                let mut features = QueryFeatures::new(embedding).map_err(|e| at(e.to_string()))?;
                if let Some(m) = q.embedding_model {
                    features = features.with_embedding_model(m);
                }
                (features, None)
            }
            _ => {
                return Err(at("give exactly one of \"text\" and \"embedding\"".into()).into());
            }
        };
        if let Some(t) = q.prompt_tokens {
            features = features
                .with_prompt_tokens(t)
                .map_err(|e| at(e.to_string()))?;
        }
        if let Some(t) = q.task {
            features = features.with_task(t);
        }
        let decision = router
            .route(&features, &objective)
            .map_err(|e| at(e.to_string()))?;
        let mut value = serde_json::to_value(&decision)?;
        if let Some(obj) = value.as_object_mut() {
            if let Some(id) = q.id {
                obj.insert("id".into(), id);
            }
            if let Some(info) = tokens {
                obj.insert("tokens".into(), info.tokens.into());
                obj.insert("truncated".into(), info.truncated.into());
            }
        }
        serde_json::to_writer(&mut out, &value)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
