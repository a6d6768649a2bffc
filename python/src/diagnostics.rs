//! Where the engine's warnings go from Python: standard error, at `warn` and above by default.
//!
//! The engine reports through `tracing` what a caller should know but that is not an error: a
//! budget per tenant that a request without a tenant escapes, a cap that no model's card can
//! meet, a replica whose Redis synchronisation fails, increments dropped because the buffer is
//! full. Without a subscriber those events would go nowhere in a Python process. The module
//! installs one when it is imported: plain lines on stderr (` WARN pointsman::…: message`, the
//! module that said it included), and the Rust libraries' `log` warnings with them.
//!
//! `POINTSMAN_LOG` sets the level or a filter in `RUST_LOG` syntax (`off`, `error`, `info`,
//! `pointsman::share=debug`), read once at import.
//!
//! Not Python's `logging`: a bridge would take the GIL from whichever Rust thread logs (the Redis
//! exchange's background thread among them) while another thread may hold the GIL and wait for
//! a lock that thread holds — a deadlock that writing to stderr cannot cause.

/// Installs the stderr subscriber (once per process; a later call, or a subscriber already
/// installed, changes nothing).
pub fn install() {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("POINTSMAN_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("pointsman: ignoring POINTSMAN_LOG={spec:?} ({e}); logging warnings");
            EnvFilter::new("warn")
        }),
        _ => EnvFilter::new("warn"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .try_init();
}
