//! The bench's load driver: bounded in count and in time, loopback targets only.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;

/// Arguments of `load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The endpoint, on loopback.
    #[arg(long)]
    url: reqwest::Url,
    /// The `model` field.
    #[arg(long, default_value = "pointsman")]
    model: String,
    /// A JSON list of prompts, sent in turn.
    #[arg(long)]
    prompts: PathBuf,
    /// Requests per second (open loop); 0: closed loop, as fast as `--concurrency` allows.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Duration of the measured phase, s (at most 600).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Warm-up before measuring, s (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// A label for the output line.
    #[arg(long, default_value = "")]
    label: String,
}

/// Arguments of `embed`.
#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// A JSON list of prompts.
    #[arg(long)]
    prompts: PathBuf,
    /// Embeddings timed (at most 100 000).
    #[arg(long, default_value_t = 1000)]
    repeat: usize,
    /// A label for the output line.
    #[arg(long, default_value = "")]
    label: String,
    /// Threads one embedding is split over, as the gateway's `routing.embed_threads` (0: the
    /// cores, at most 4, as the gateway's default).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Embeddings started per second on a fixed schedule, sleeping in between, as requests
    /// arrive at the gateway (0: back to back, each as soon as the last ends). An embedding that
    /// ends after the next one's start time delays it; the time is the embedding's alone.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// With --rate: seconds of the schedule run first and not recorded (the load driver's
    /// --warmup), so that the texts timed are the ones its measured requests carried.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Whether the threads are pinned one to a CPU, as the gateway's `routing.embed_pinning`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pinning: String,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

fn summary(label: &str, mut lat_ms: Vec<f64>, extra: serde_json::Value) -> String {
    lat_ms.sort_by(f64::total_cmp);
    let mut out = json!({
        "label": label,
        "n": lat_ms.len(),
        "p50_ms": percentile(&lat_ms, 50.0),
        "p90_ms": percentile(&lat_ms, 90.0),
        "p99_ms": percentile(&lat_ms, 99.0),
        "max_ms": lat_ms.last().copied().unwrap_or(f64::NAN),
    });
    if let (Some(o), serde_json::Value::Object(e)) = (out.as_object_mut(), extra) {
        o.extend(e);
    }
    out.to_string()
}

/// `load`.
pub async fn run(args: LoadArgs) -> Result<(), String> {
    let host = args.url.host_str().unwrap_or("");
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1") {
        return Err(format!("{} is not a loopback URL", args.url));
    }
    if !(args.seconds > 0.0 && args.seconds <= 600.0 && args.warmup >= 0.0 && args.warmup <= 60.0) {
        return Err("--seconds must be in (0, 600] and --warmup in [0, 60]".into());
    }
    let prompts = Arc::new(super::read_prompts(&args.prompts)?);
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        prompts
            .iter()
            .map(|p| {
                serde_json::to_vec(
                    &json!({"model": args.model, "messages": [{"role": "user", "content": p}]}),
                )
                .expect("JSON")
            })
            .collect(),
    );
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    // (measured, answered, latency ms, the gateway's embedding time from `Server-Timing`, ms)
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(bool, bool, f64, Option<f64>)>();
    let start = Instant::now();
    let measure_from = Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.seconds);
    let mut sent = 0usize;
    let mut late = 0usize;
    let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    // Bounded: at most rate × duration requests (or 100 000 in closed loop), and the time.
    let max_requests = match interval {
        Some(_) => ((args.warmup + args.seconds) * args.rate).ceil() as usize,
        None => 1_000_000,
    };
    while sent < max_requests && start.elapsed() < end {
        if let Some(i) = interval {
            tokio::time::sleep_until((start + i * sent as u32).into()).await;
        }
        let permit = match interval {
            Some(_) => match permits.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    late += 1;
                    sent += 1;
                    continue;
                }
            },
            None => permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed"),
        };
        let body = bodies[sent % bodies.len()].clone();
        let client = client.clone();
        let url = args.url.clone();
        let tx = tx.clone();
        let measured = start.elapsed() >= measure_from;
        tokio::spawn(async move {
            let t0 = Instant::now();
            let (ok, embed_ms) = match client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(r) => {
                    let embed_ms = r
                        .headers()
                        .get("server-timing")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| timing(v, "embed"));
                    (r.status().is_success() && r.bytes().await.is_ok(), embed_ms)
                }
                Err(_) => (false, None),
            };
            let _ = tx.send((measured, ok, t0.elapsed().as_secs_f64() * 1e3, embed_ms));
            drop(permit);
        });
        sent += 1;
    }
    drop(tx);
    let mut lat = Vec::new();
    let mut beyond_embed = Vec::new();
    let (mut ok, mut errors) = (0usize, 0usize);
    let drain = async {
        while let Some((measured, good, ms, embed_ms)) = rx.recv().await {
            if measured {
                if good {
                    ok += 1;
                    lat.push(ms);
                    if let Some(e) = embed_ms {
                        beyond_embed.push(ms - e);
                    }
                } else {
                    errors += 1;
                }
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), drain)
        .await
        .is_err()
    {
        return Err("requests still unanswered 60 s after the last was sent".into());
    }
    let measured_s = (start.elapsed().min(end) - measure_from.min(start.elapsed())).as_secs_f64();
    let mut extra = json!({"ok": ok, "errors": errors, "late": late, "rate": ok as f64 / args.seconds.min(measured_s.max(1e-9))});
    if !beyond_embed.is_empty() {
        // Each request's latency less the gateway's own embedding of its text (the
        // `Server-Timing` header): the latency beyond the embedder, request by request.
        beyond_embed.sort_by(f64::total_cmp);
        extra["beyond_embed_n"] = json!(beyond_embed.len());
        extra["beyond_embed_p50_ms"] = json!(percentile(&beyond_embed, 50.0));
        extra["beyond_embed_p99_ms"] = json!(percentile(&beyond_embed, 99.0));
    }
    println!("{}", summary(&args.label, lat, extra));
    Ok(())
}

/// The duration of `metric` in a `Server-Timing` value (`name;dur=1.5, other;dur=2`), ms.
fn timing(header: &str, metric: &str) -> Option<f64> {
    header.split(',').find_map(|entry| {
        let mut parts = entry.split(';').map(str::trim);
        (parts.next()? == metric).then_some(())?;
        parts.find_map(|p| p.strip_prefix("dur=")?.parse().ok())
    })
}

/// `embed`.
pub fn embed(args: &EmbedArgs) -> Result<(), String> {
    let prompts = super::read_prompts(&args.prompts)?;
    if args.repeat == 0 || args.repeat > 100_000 {
        return Err("--repeat must be in [1, 100000]".into());
    }
    if !(args.rate.is_finite() && (0.0..=100_000.0).contains(&args.rate)) {
        return Err("--rate must be in [0, 100000] embeddings per second".into());
    }
    if !(args.warmup.is_finite() && (0.0..=60.0).contains(&args.warmup)) {
        return Err("--warmup must be in [0, 60] seconds".into());
    }
    if args.warmup > 0.0 && args.rate == 0.0 {
        return Err("--warmup goes with --rate (a paced schedule to skip the start of)".into());
    }
    // Paced, the first `warmup` seconds of the schedule run unrecorded, as the load driver's
    // warm-up: text i is the same text as the driver's request i.
    let skip = if args.rate > 0.0 {
        (args.warmup * args.rate).ceil() as usize
    } else {
        0
    };
    use pointsman_gateway::config::EmbedPinning;
    let routing = pointsman_gateway::config::RoutingConfig {
        embed_threads: args.threads,
        embed_pinning: match args.pinning.as_str() {
            "always" => EmbedPinning::Always,
            "never" => EmbedPinning::Never,
            _ => EmbedPinning::Auto,
        },
        ..Default::default()
    };
    let embedder =
        pointsman_gateway::engine::TextEmbedder::load(&routing).map_err(|e| e.to_string())?;
    for p in prompts.iter().take(20) {
        embedder.embed(p, p).map_err(|e| e.to_string())?;
    }
    let mut lat = Vec::with_capacity(args.repeat);
    let mut switches_before = None;
    let start = Instant::now();
    for i in 0..skip + args.repeat {
        if i == skip {
            switches_before = context_switches();
        }
        let p = &prompts[i % prompts.len()];
        if args.rate > 0.0 {
            let due = start + std::time::Duration::from_secs_f64(i as f64 / args.rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let t0 = Instant::now();
        embedder.embed(p, p).map_err(|e| e.to_string())?;
        if i >= skip {
            lat.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    // Per embedding timed, every thread of this process (the caller and the embedder's pool).
    let switches = match (switches_before, context_switches()) {
        (Some(a), Some(b)) => json!({
            "context_switches_per_embed": b.saturating_sub(a) as f64 / lat.len() as f64,
            "pinned": embedder.pinned(),
        }),
        _ => json!({"pinned": embedder.pinned()}),
    };
    println!("{}", summary(&args.label, lat, switches));
    Ok(())
}

/// The context switches (voluntary and not) of every thread of this process so far, from
/// `/proc/self/task/*/status` (Linux); `None` where that cannot be read.
fn context_switches() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        // A thread that ended since the listing is skipped (its switches are gone with it).
        let Ok(status) = std::fs::read_to_string(task.ok()?.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(rest) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += rest.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_timing_durations_are_read_by_name() {
        let h = "queue;dur=0.120, embed;dur=3.250, route;dur=0.041";
        assert_eq!(super::timing(h, "embed"), Some(3.25));
        assert_eq!(super::timing(h, "queue"), Some(0.12));
        assert_eq!(super::timing(h, "missing"), None);
        assert_eq!(super::timing("embed;desc=x", "embed"), None);
    }
}
