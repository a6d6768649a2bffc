//! `pointsman serve`: the OpenAI-compatible routing gateway (crate `pointsman-gateway`).

use std::path::PathBuf;

use anyhow::{Context, Result};

/// Arguments of `pointsman serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The gateway's TOML configuration (reference: docs/gateway.md).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Worker threads of the server (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

/// `pointsman serve`: serves until SIGTERM or SIGINT, reloads the router on SIGHUP.
pub fn serve(args: &ServeArgs) -> Result<()> {
    let config = pointsman_gateway::Config::load(&args.config)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime
        .enable_all()
        .thread_name("pointsman-serve")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(pointsman_gateway::serve(config))?;
    Ok(())
}
