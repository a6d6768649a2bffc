//! `pointsman-testkit`: the stub upstream (for the Python tests and the bench) and the bench's
//! bounded load driver, both on loopback only.
//!
//! ```text
//! pointsman-testkit stub --name a [--listen 127.0.0.1:0] [--fault hang] [--chunk-delay-ms 5]
//! pointsman-testkit load --url http://127.0.0.1:8080/v1/chat/completions --model pointsman \
//!     --prompts prompts.json --rate 100 --seconds 20
//! pointsman-testkit embed --prompts prompts.json --repeat 2000
//! ```

mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pointsman_gateway::stub::{Fault, StubConfig};

#[derive(Debug, Parser)]
#[command(
    name = "pointsman-testkit",
    about = "Stub upstream and load driver for the gateway's tests and bench"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a stub Chat Completions upstream until SIGTERM or SIGINT; prints
    /// `listening on http://ADDR` on stdout once ready.
    Stub {
        /// Name in every answer.
        #[arg(long, default_value = "stub")]
        name: String,
        /// Loopback address (port 0: a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Default fault: none, fail, hang, 429, badjson, hang-stream, flaky, reject.
        #[arg(long, default_value = "none")]
        fault: String,
        /// Pause between stream events, ms.
        #[arg(long, default_value_t = 0)]
        chunk_delay_ms: u64,
        /// How long a hang lasts, s.
        #[arg(long, default_value_t = 30)]
        hang_secs: u64,
    },
    /// Send chat requests at a fixed rate (or as fast as `--concurrency` allows) for a bounded
    /// time and print the latency percentiles as one JSON line.
    Load(load::LoadArgs),
    /// Time the in-process embedder on the same prompts, one text at a time, and print
    /// percentiles.
    Embed(load::EmbedArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pointsman-testkit: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Stub {
            name,
            listen,
            fault,
            chunk_delay_ms,
            hang_secs,
        } => runtime.block_on(stub(name, listen, &fault, chunk_delay_ms, hang_secs)),
        Command::Load(args) => runtime.block_on(load::run(args)),
        Command::Embed(args) => load::embed(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pointsman-testkit: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn stub(
    name: String,
    listen: SocketAddr,
    fault: &str,
    chunk_delay_ms: u64,
    hang_secs: u64,
) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    if !listen.ip().is_loopback() {
        return Err(format!("{listen} is not a loopback address"));
    }
    let fault: Fault = fault.parse()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("listening on {listen}: {e}"))?;
    let config = StubConfig {
        name,
        fault,
        chunk_delay: Duration::from_millis(chunk_delay_ms),
        hang: Duration::from_secs(hang_secs),
    };
    let handle = pointsman_gateway::stub::spawn(listener, config).map_err(|e| e.to_string())?;
    println!("listening on http://{}", handle.addr);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    drop(handle);
    Ok(())
}

/// Reads a JSON list of prompt strings.
fn read_prompts(path: &PathBuf) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let prompts: Vec<String> = serde_json::from_str(&text)
        .map_err(|e| format!("{}: expected a JSON list of strings: {e}", path.display()))?;
    if prompts.is_empty() {
        return Err(format!("{}: no prompts", path.display()));
    }
    Ok(prompts)
}
