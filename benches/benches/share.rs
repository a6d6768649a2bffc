//! The cost of sharing a learner's state through Redis (issue 22), on a `redis-server` this
//! bench starts on a loopback port with a temporary folder (and kills at the end):
//!
//! - **observe throughput** of one replica observing as fast as it can, with the exchange
//!   every 100 ms against without it, while a second replica observes 1,000 queries/s (and,
//!   with the exchange, publishes them: the first applies them). The second replica runs at
//!   nice 19 (it stands for one on another host). Cluster-UCB, LinUCB and Thompson sampling on
//!   a 64-dimensional random projection (65 features), and LinUCB on the raw 384-dimensional
//!   embeddings (385 features, whose applying of others' increments costs a re-inversion).
//! - **staleness**: 4 replicas observing 250 queries/s each (1,000/s in all), the exchange every
//!   100 ms: for each increment a replica applies, the milliseconds from the increment's oldest
//!   observation to its application (after which the replica's decisions reflect it):
//!   median, 95th percentile and largest.
//!
//! Synthetic learners: 9 models, a warm start on 5,489 random labelled queries
//! (`pointsman_bench::split`). Each measurement runs `POINTSMAN_SHARE_BENCH_SECS` seconds
//! (default 2; throughput: 3 rounds without and with, alternating, medians); the whole bench
//! takes about two minutes. Run by `cargo test` (without `--bench`) it makes one round of
//! 0.3 s of each, so that the test command keeps it working in seconds. `POINTSMAN_SHARE_BENCH_KINDS` (comma-separated names of the table,
//! for example `linucb-random64`) measures only those learners.
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p pointsman-bench --bench share`; docs/benchmarks.md
//! records the figures.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pointsman::registry::{AnyRouter, RouterConfig};
use pointsman::routers::bandit::{ClusterUcbConfig, LinearConfig, Projection};
use pointsman::share::{share_through_redis, Exchange, ShareConfig};
use pointsman::{AnyLearner, Feedback, QueryFeatures};
use pointsman_bench::{queries, split};

/// A `redis-server` on a loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Option<Redis> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Redis {
            child,
            port,
            _dir: dir,
        })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn observe(l: &AnyLearner, q: &QueryFeatures, i: usize) {
    l.observe(&Feedback {
        features: q,
        model: i % 9,
        quality: (i % 2) as f64,
        cost: 1e-4,
    })
    .expect("valid feedback");
}

/// A replica of the saved learner at `base` (each one its own state), sharing through `url`
/// under `namespace` when given.
fn replica(base: &Path, share: Option<(&str, &str)>) -> (AnyLearner, Option<Exchange>) {
    let router = AnyRouter::load(base).expect("the saved learner loads");
    let learner = router.as_learner().expect("a learner").clone();
    let exchange = share.map(|(url, ns)| {
        share_through_redis(
            &learner,
            url,
            ShareConfig {
                namespace: ns.to_string(),
                interval_ms: 100,
                ..Default::default()
            },
        )
        .expect("the exchange starts")
    });
    (learner, exchange)
}

/// Observes `n` queries per second on `learner` until `stop`.
fn paced(learner: &AnyLearner, qs: &[QueryFeatures], per_second: f64, stop: &AtomicBool) {
    let t = Instant::now();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let due = Duration::from_secs_f64(i as f64 / per_second);
        if let Some(wait) = due.checked_sub(t.elapsed()) {
            std::thread::sleep(wait.min(Duration::from_millis(5)));
            continue;
        }
        observe(learner, &qs[i % qs.len()], i);
        i += 1;
    }
}

/// Lowers the calling thread's priority to nice 19 (threads it starts inherit it).
fn lower_priority() {
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str().map(str::to_string));
    if let Some(tid) = tid {
        let _ = Command::new("renice")
            .args(["-n", "19", "-p", &tid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Observations per second of one replica observing flat out for `secs`, beside a second
/// replica observing 1,000/s; both share through `url` when given. The second replica (its
/// observing thread and its exchange thread) runs at nice 19: in a deployment it runs on
/// another host, and on this 2-core machine its applying of the first one's flat-out stream
/// would otherwise take the first one's core.
fn throughput(base: &Path, url: Option<&str>, ns: &str, secs: f64) -> (f64, String) {
    let share = url.map(|u| (u, ns));
    let (a, ea) = replica(base, share);
    let qs = queries(256, 5);
    let stop = AtomicBool::new(false);
    let ready = std::sync::Barrier::new(2);
    let (count, elapsed) = std::thread::scope(|s| {
        s.spawn(|| {
            lower_priority();
            let (b, eb) = replica(base, share);
            ready.wait();
            paced(&b, &qs, 1000.0, &stop);
            if let Some(e) = eb {
                e.stop().expect("the exchange stops");
            }
        });
        ready.wait();
        let t = Instant::now();
        let mut i = 0usize;
        while t.elapsed().as_secs_f64() < secs {
            for _ in 0..64 {
                observe(&a, &qs[i % qs.len()], i);
                i += 1;
            }
        }
        let elapsed = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        (i, elapsed)
    });
    let stats = ea.as_ref().map_or(String::new(), |e| {
        let s = e.stats();
        format!(
            "published {} obs in {} increments ({:.0} B/obs), applied {} obs of the other, failures {}",
            s.published_observations,
            s.published,
            s.published_bytes as f64 / s.published_observations.max(1) as f64,
            s.applied_observations,
            s.failures
        )
    });
    if let Some(e) = ea {
        e.stop().expect("the exchange stops");
    }
    (count as f64 / elapsed, stats)
}

/// Staleness samples (ms) of 4 replicas observing 250/s each for `secs`.
fn staleness(base: &Path, url: &str, ns: &str, secs: f64) -> Vec<u64> {
    let replicas: Vec<(AnyLearner, Option<Exchange>)> =
        (0..4).map(|_| replica(base, Some((url, ns)))).collect();
    let qs = queries(256, 6);
    let stop = AtomicBool::new(false);
    let mut samples = Vec::new();
    std::thread::scope(|s| {
        for (l, _) in &replicas {
            let (qs, stop) = (&qs, &stop);
            s.spawn(move || paced(l, qs, 250.0, stop));
        }
        let mut applied = vec![0u64; replicas.len()];
        let t = Instant::now();
        while t.elapsed().as_secs_f64() < secs {
            std::thread::sleep(Duration::from_millis(5));
            for (r, (_, e)) in replicas.iter().enumerate() {
                let st = e.as_ref().expect("sharing").stats();
                if st.applied > applied[r] {
                    // One sample per poll: the last increment applied since the previous one.
                    applied[r] = st.applied;
                    if t.elapsed() > Duration::from_millis(500) {
                        samples.push(st.last_staleness_ms);
                    }
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    for (_, e) in replicas {
        e.expect("sharing").stop().expect("the exchange stops");
    }
    samples
}

/// Rounds of each throughput measurement (without and with, alternating) under `cargo bench`.
const ROUNDS: usize = 3;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`, which the test command
    // runs so that the bench cannot rot) one short round of each measurement.
    let full = std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("POINTSMAN_SHARE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 2.0 } else { 0.3 });
    let rounds = if full { ROUNDS } else { 1 };
    let Some(redis) = Redis::start() else {
        eprintln!("skipping: redis-server not found (scripts/test.sh installs it with apt-get)");
        return;
    };
    let url = redis.url();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let train = split(5489, 1);
    let kinds = [
        (
            "cluster-ucb",
            RouterConfig::ClusterUcb(ClusterUcbConfig::default()),
        ),
        (
            "linucb-random64",
            RouterConfig::Linucb(LinearConfig {
                projection: Projection::Random { dim: 64, seed: 7 },
                ..LinearConfig::default()
            }),
        ),
        (
            "thompson-random64",
            RouterConfig::Thompson(LinearConfig {
                projection: Projection::Random { dim: 64, seed: 7 },
                ..LinearConfig::thompson()
            }),
        ),
        ("linucb", RouterConfig::Linucb(LinearConfig::default())),
    ];
    let only: Option<Vec<String>> = std::env::var("POINTSMAN_SHARE_BENCH_KINDS")
        .ok()
        .map(|s| s.split(',').map(|k| k.trim().to_string()).collect());
    let kinds: Vec<_> = kinds
        .into_iter()
        .filter(|(name, _)| only.as_ref().is_none_or(|o| o.iter().any(|k| k == name)))
        .collect();
    println!(
        "observe throughput, one replica flat out beside one at 1,000/s (medians of {rounds} rounds of {secs} s):"
    );
    println!("| learner | without (obs/s) | exchange every 100 ms (obs/s) | ratio |");
    println!("|---|---|---|---|");
    let mut bases = Vec::new();
    for (name, config) in &kinds {
        let base = dir.path().join(format!("{name}.safetensors"));
        let learner = AnyLearner::warm_start(config, &train).expect("the warm start fits");
        AnyRouter::from(learner)
            .save(&base)
            .expect("the learner saves");
        // Rounds alternate without and with (the machine's load drifts): medians of each.
        let (mut without, mut with) = (Vec::new(), Vec::new());
        let mut stats = String::new();
        for round in 0..rounds {
            without.push(throughput(&base, None, "", secs).0);
            let ns = format!("bench-{name}-{round}");
            let (w, st) = throughput(&base, Some(&url), &ns, secs);
            with.push(w);
            stats = st;
        }
        let (without, with) = (median(&mut without), median(&mut with));
        println!(
            "| {name} | {without:.0} | {with:.0} | {:.3} |",
            with / without
        );
        eprintln!("  {name} with the exchange (last round): {stats}");
        bases.push((name, base));
    }
    println!();
    println!(
        "staleness, 4 replicas at 250 observations/s each, exchange every 100 ms ({} s):",
        secs.max(1.0)
    );
    println!("| learner | increments | median (ms) | p95 (ms) | max (ms) |");
    println!("|---|---|---|---|---|");
    for (name, base) in &bases {
        // Samples start after 0.5 s: at least one second, even in the short run.
        let mut s = staleness(base, &url, &format!("stale-{name}"), secs.max(1.0));
        s.sort_unstable();
        if s.is_empty() {
            println!("| {name} | 0 | - | - | - |");
            continue;
        }
        let q = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
        println!(
            "| {name} | {} | {} | {} | {} |",
            s.len(),
            q(0.5),
            q(0.95),
            s[s.len() - 1]
        );
    }
}
