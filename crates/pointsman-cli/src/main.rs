//! `pointsman`: evaluate, train and run LLM routers from the command line.
//!
//! Argument parsing and printing only: every decision is made by the `pointsman` library.

mod embed_cmd;
mod eval_cmd;
mod output;
mod own_data_cmd;
mod plot;
mod policy_cmd;
mod progress;
mod replay_cmd;
mod route_cmd;
mod serve_cmd;
mod train_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Route each query to the LLM with the best quality–cost trade-off.
#[derive(Debug, Parser)]
#[command(name = "pointsman", version, about, max_term_width = 100)]
struct Cli {
    /// No progress bars and no informational logging.
    #[arg(short, long, global = true)]
    quiet: bool,

    /// More logging on stderr (-v: info, -vv: debug, -vvv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate routers on a dataset's test split: table, report.json, report.md, curve.svg.
    Eval(eval_cmd::EvalArgs),
    /// Recompute an evaluation report from a decisions.jsonl file and the dataset alone.
    Report(eval_cmd::ReportArgs),
    /// Fit a router on a dataset's train split (hyper-parameters by cross-validation) and save it.
    Train(train_cmd::TrainArgs),
    /// Route queries (text or embeddings) read as JSON lines on stdin with a saved router; one
    /// decision per line out.
    Route(route_cmd::RouteArgs),
    /// Compute a dataset's prompt embeddings (all-MiniLM-L6-v2) into its folder, in the layout of
    /// the shared datasets.
    Embed(embed_cmd::EmbedArgs),
    /// Stream a dataset through learning routers that see only the chosen model's outcome.
    Replay(replay_cmd::ReplayArgs),
    /// Serve an OpenAI-compatible routing gateway (docs/gateway.md).
    Serve(serve_cmd::ServeArgs),
    /// Import LLMRouter's, RouteLLM's or RouterBench's data, the gateway's decision log or a team's
    /// own log as a dataset, with embeddings computed in-process (docs/own-data.md).
    Import(own_data_cmd::ImportArgs),
    /// Add a model to a fitted knn, mf or bandit router from labelled queries or its card alone
    /// (docs/own-data.md).
    Onboard(own_data_cmd::OnboardArgs),
    /// Apply new prices to a fitted router (any kind but a cascade) without refitting (docs/own-data.md).
    Reprice(own_data_cmd::RepriceArgs),
    /// Fit a policy's out-of-distribution guard on a dataset's train split (docs/policies.md).
    FitGuard(policy_cmd::FitGuardArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.quiet, cli.verbose);
    let progress = progress::Progress::new(cli.quiet);
    let result = match cli.command {
        Command::Eval(args) => eval_cmd::eval(&args, &progress),
        Command::Report(args) => eval_cmd::report(&args),
        Command::Train(args) => train_cmd::train(&args, &progress),
        Command::Route(args) => route_cmd::route(&args),
        Command::Embed(args) => embed_cmd::embed(&args, &progress),
        Command::Replay(args) => replay_cmd::replay(&args, &progress),
        Command::Serve(args) => serve_cmd::serve(&args),
        Command::Import(args) => own_data_cmd::import(&args, &progress),
        Command::Onboard(args) => own_data_cmd::onboard(&args, &progress),
        Command::Reprice(args) => own_data_cmd::reprice(&args),
        Command::FitGuard(args) => policy_cmd::fit_guard(&args, &progress),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away (`pointsman route … | head`): nothing more to say to
        // anyone, as for other Unix tools.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            progress.clear();
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    // serde_json's I/O errors do not list the `io::Error` among their sources: ask them directly.
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(BrokenPipe))
    })
}

/// One clear line: the error and its causes, each once. The core's errors already show their
/// source in their own message (`path: No such file or directory (os error 2)`), so a cause whose
/// text ends the line so far is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line = format!("{line}: {text}");
        }
    }
    line
}

fn init_logging(quiet: bool, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) | (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn each_cause_once() {
        let io = pointsman::Error::io(
            "/x.safetensors",
            std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        );
        let e = anyhow::Error::from(io).context("loading the router");
        assert_eq!(one_line(&e), "loading the router: /x.safetensors: gone");
        let e = anyhow::anyhow!("outer").context("ctx");
        assert_eq!(one_line(&e), "ctx: outer");
    }
}
