//! `pointsman train`: fit a router on a dataset's train split and save it.

use std::path::PathBuf;

use anyhow::{bail, Result};
use pointsman::data::Dataset;
use pointsman::Router;

use crate::progress::Progress;

/// Arguments of `pointsman train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Dataset folder in the shared schema.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// The router kind: knn or mf.
    #[arg(long, value_name = "KIND")]
    pub router: String,

    /// Where to save the router (one .safetensors file).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Seed of the search's folds and of training.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Skip the cross-validated search and use this JSON config (fields not given keep their
    /// defaults), e.g. '{"k": 50, "same_task": true}'.
    #[arg(long, value_name = "JSON")]
    pub config: Option<String>,

    /// The embedding model, for a dataset without embeddings (they are computed, and cached in
    /// the dataset folder when it is writable).
    #[command(flatten)]
    pub model: crate::embed_cmd::ModelArgs,
}

/// `pointsman train`.
pub fn train(args: &TrainArgs, progress: &Progress) -> Result<()> {
    let pb = progress.spinner(format!("loading {}", args.data.display()));
    let mut ds = Dataset::load(&args.data)?;
    pb.finish_and_clear();
    crate::embed_cmd::ensure_embeddings(&mut ds, &args.model, progress)?;
    let pb = progress.spinner(format!(
        "training {} on {} train queries",
        args.router,
        ds.train().len()
    ));
    let started = std::time::Instant::now();
    let parse = |json: &str| -> Result<serde_json::Value> {
        serde_json::from_str(json)
            .map_err(|e| pointsman::Error::Config(format!("--config is not JSON: {e}")).into())
    };
    let (router, search): (Box<dyn Router>, Option<String>) = match args.router.as_str() {
        "knn" => {
            use pointsman::routers::knn::{KnnConfig, KnnRouter, KnnSearch};
            match &args.config {
                Some(json) => {
                    let config: KnnConfig = serde_json::from_value(parse(json)?)
                        .map_err(|e| pointsman::Error::Config(format!("knn config: {e}")))?;
                    (Box::new(KnnRouter::fit(ds.train(), &config)?), None)
                }
                None => {
                    let search = KnnSearch {
                        seed: args.seed,
                        ..Default::default()
                    };
                    let (r, report) = KnnRouter::tune(ds.train(), &KnnConfig::default(), &search)?;
                    let lines = report
                        .trials
                        .iter()
                        .take(10)
                        .map(|t| {
                            format!(
                                "  {:.4}  k={} weighting={:?} shrinkage={} prior={:?} same_task={}",
                                t.score,
                                t.config.k,
                                t.config.weighting,
                                t.config.shrinkage,
                                t.config.prior,
                                t.config.same_task
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n");
                    (
                        Box::new(r),
                        Some(format!(
                            "search: {} configurations, {} over {} folds of the train split ({:.1} s); best 10:\n{lines}",
                            report.trials.len(),
                            report.criterion,
                            report.folds,
                            report.seconds
                        )),
                    )
                }
            }
        }
        "mf" => {
            use pointsman::routers::mf::{MfConfig, MfRouter, MfSearch};
            match &args.config {
                Some(json) => {
                    let mut config: MfConfig = serde_json::from_value(parse(json)?)
                        .map_err(|e| pointsman::Error::Config(format!("mf config: {e}")))?;
                    if !json.contains("\"seed\"") {
                        config.seed = args.seed;
                    }
                    (Box::new(MfRouter::fit(ds.train(), &config)?), None)
                }
                None => {
                    let base = MfConfig {
                        seed: args.seed,
                        ..Default::default()
                    };
                    let search = MfSearch {
                        seed: args.seed,
                        ..Default::default()
                    };
                    let (r, report) = MfRouter::tune(ds.train(), &base, &search)?;
                    let lines = report
                        .trials
                        .iter()
                        .map(|t| {
                            format!(
                                "  {:.4}  dim={} learning_rate={}",
                                t.score, t.config.dim, t.config.learning_rate
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n");
                    (
                        Box::new(r),
                        Some(format!(
                            "search: {} configurations, {} over {} folds of the train split ({:.1} s):\n{lines}",
                            report.trials.len(),
                            report.criterion,
                            report.folds,
                            report.seconds
                        )),
                    )
                }
            }
        }
        other => bail!("unknown router kind {other:?} for training (known: knn, mf)"),
    };
    pb.finish_and_clear();
    router.save(&args.out)?;
    if let Some(s) = search {
        println!("{s}");
    }
    let saved = router.to_saved()?;
    println!(
        "trained {} on {} queries in {:.1} s; config {}",
        router.kind(),
        ds.train().len(),
        started.elapsed().as_secs_f64(),
        serde_json::to_string(&saved.config)?
    );
    println!("saved {}", args.out.display());
    Ok(())
}
