//! Learner state shared through a real Redis by replica processes (feature `redis`): a seeded
//! 20,000-observation feedback stream of llmrouter_dc split across 4 processes ends, for every
//! learner kind, in the state of one learner that saw it all; Redis stopped and restarted with
//! persistence, killed and restarted empty, duplicated deliveries and a killed replica lose
//! nothing that was published; two replicas sharing a budget never pass it.
//!
//! The replicas are this test binary run again (`share_replica_child`, ignored unless the
//! parent sets `POINTSMAN_SHARE_CHILD`). Redis servers are started on loopback ports with
//! temporary folders and killed when the test ends, also when it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pointsman::data::Dataset;
use pointsman::registry::{AnyRouter, RouterConfig};
use pointsman::rng::SplitMix64;
use pointsman::routers::bandit::{ClusterUcbConfig, Forgetting, KnnUcbConfig, LinearConfig};
use pointsman::saved::{container_bytes, read_container, SavedRouter, Tensor, TensorData};
use pointsman::share::redis::{RedisCounters, RedisStore};
use pointsman::share::{Replica, ShareConfig, SharedCounters, Spend};
use pointsman::{AnyLearner, FeatureBatch, Feedback, Objective, QueryFeatures};

const OBSERVATIONS: usize = 20_000;
const REPLICAS: usize = 4;

/// A `redis-server` on a loopback port with its own folder, killed on drop.
///
/// One at a time in this binary: the tests stop and restart their servers on the same port, and
/// in the gap another test's free-port probe could be handed that port, so that one test's
/// `SHUTDOWN` or `kill -9` hit the other's server (a budget test then saw its counters vanish).
struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static ONE_REDIS_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl RedisServer {
    /// `None` (skipped, with a message) when `redis-server` is not installed, except under
    /// `CI=true` (the test command installs it).
    fn available() -> bool {
        let ok = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let msg = "redis-server not found (scripts/test.sh installs it with apt-get)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("skipping: {msg}");
        }
        ok
    }

    fn start(dir: &Path) -> RedisServer {
        let guard = ONE_REDIS_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = RedisServer {
            child: None,
            port,
            dir: dir.to_path_buf(),
            _one_at_a_time: guard,
        };
        s.restart();
        s
    }

    /// Starts the server again on the same port and folder (loading `dump.rdb` if there is one).
    fn restart(&mut self) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(c) = redis::Client::open(self.url()) {
                if let Ok(mut c) = c.get_connection_with_timeout(Duration::from_millis(200)) {
                    if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap()
    }

    /// A graceful stop that saves the data (`SHUTDOWN SAVE`).
    fn shutdown_saving(&mut self) {
        let _ = redis::cmd("SHUTDOWN")
            .arg("SAVE")
            .query::<()>(&mut self.connection());
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// `kill -9`, and the folder emptied: the next start has no data.
    fn kill_and_wipe(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.dir.join("dump.rdb"));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Child processes killed on drop.
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a replica process is told to do.
#[derive(serde::Serialize, serde::Deserialize)]
struct Job {
    url: String,
    namespace: String,
    replica: String,
    base: PathBuf,
    shard: PathBuf,
    out: PathBuf,
    /// Observations the shared state holds at the end.
    expected: u64,
    sync_every: usize,
    /// Milliseconds to sleep after each sync (so that faults happen mid-run).
    pause_ms: u64,
    /// Resume the shard after the observations this earlier replica published.
    resume_after: Option<String>,
}

/// A replica: joins, observes its shard with a synchronisation every `sync_every`
/// observations, synchronises until the shared state holds every observation, saves it.
#[test]
#[ignore = "a replica process of shared_learners_*: run by them"]
fn share_replica_child() {
    let Ok(job) = std::env::var("POINTSMAN_SHARE_CHILD") else {
        return;
    };
    let job: Job = serde_json::from_str(&job).unwrap();
    let router = AnyRouter::load(&job.base).unwrap();
    let learner = router.as_learner().unwrap().clone();
    let config = ShareConfig {
        namespace: job.namespace.clone(),
        replica: job.replica.clone(),
        compact_every: 40,
        ..Default::default()
    };
    let mut replica = Replica::new(&learner, config).unwrap();
    let mut store = RedisStore::new(&job.url, &job.namespace)
        .unwrap()
        .with_timeout(500);
    let shard = read_shard(&job.shard);
    let mut start = 0;
    if let Some(earlier) = &job.resume_after {
        for _ in 0..3 {
            replica.sync(&mut store).unwrap();
        }
        start = replica.totals_of_name(earlier) as usize;
        eprintln!(
            "{}: resumes after {start} observations of {earlier}",
            job.replica
        );
    }
    for (i, s) in shard.iter().enumerate().skip(start) {
        observe(&learner, s);
        if (i + 1) % job.sync_every == 0 {
            let _ = replica.sync(&mut store);
            std::thread::sleep(Duration::from_millis(job.pause_ms));
        }
    }
    let t = Instant::now();
    loop {
        let _ = replica.sync(&mut store);
        if learner.observations() >= job.expected || t.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Everyone's last increment is in: two more rounds so that every replica sees the others
    // finish (the parent waits for all).
    for _ in 0..2 {
        let _ = replica.sync(&mut store);
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("{}: {:?}", job.replica, replica.stats());
    AnyRouter::from(learner).save(&job.out).unwrap();
}

/// One observation of the stream: embedding, prompt tokens, model, quality, cost.
type Obs = (Vec<f32>, f64, usize, f64, f64);

fn observe(l: &AnyLearner, (x, tokens, m, q, c): &Obs) {
    let f = QueryFeatures::new(x.clone())
        .unwrap()
        .with_prompt_tokens(*tokens)
        .unwrap();
    l.observe(&Feedback {
        features: &f,
        model: *m,
        quality: *q,
        cost: *c,
    })
    .unwrap();
}

/// The seeded stream: queries of the train split and models drawn uniformly (a uniform
/// logging policy), with their true scores and costs.
fn feedback_stream(ds: &Dataset) -> Vec<Obs> {
    let train = ds.train();
    let (dim, m) = (train.dim(), train.pool().len());
    let mut rng = SplitMix64::new(22);
    (0..OBSERVATIONS)
        .map(|_| {
            let r = rng.below(train.len());
            let j = rng.below(m);
            (
                train.embeddings()[r * dim..(r + 1) * dim].to_vec(),
                train.prompt_tokens()[r],
                j,
                train.score(r, j),
                train.cost(r, j),
            )
        })
        .collect()
}

fn write_shard(path: &Path, rows: &[Obs]) {
    let dim = rows[0].0.len();
    let mut t = BTreeMap::new();
    t.insert(
        "x".to_string(),
        Tensor::f32(
            &[rows.len(), dim],
            rows.iter().flat_map(|r| r.0.clone()).collect(),
        ),
    );
    t.insert(
        "v".to_string(),
        Tensor::f64(
            &[rows.len(), 4],
            rows.iter()
                .flat_map(|r| [r.1, r.2 as f64, r.3, r.4])
                .collect(),
        ),
    );
    std::fs::write(path, container_bytes(&BTreeMap::new(), &t)).unwrap();
}

fn read_shard(path: &Path) -> Vec<Obs> {
    let (_, mut t) = read_container(&std::fs::read(path).unwrap(), "shard").unwrap();
    let x = t.remove("x").unwrap();
    let (TensorData::F32(xs), TensorData::F64(vs)) = (x.data, t.remove("v").unwrap().data) else {
        panic!("shard tensors");
    };
    let dim = x.shape[1];
    xs.chunks_exact(dim)
        .zip(vs.chunks_exact(4))
        .map(|(x, v)| (x.to_vec(), v[0], v[1] as usize, v[2], v[3]))
        .collect()
}

/// The learner configurations of the test: each kind's defaults, forgetting off.
fn configs() -> Vec<RouterConfig> {
    let none = Forgetting::none();
    vec![
        RouterConfig::Linucb(LinearConfig {
            forgetting: none.clone(),
            ..Default::default()
        }),
        RouterConfig::Thompson(LinearConfig {
            forgetting: none.clone(),
            ..LinearConfig::thompson()
        }),
        RouterConfig::KnnUcb(KnnUcbConfig {
            forgetting: none.clone(),
            ..Default::default()
        }),
        RouterConfig::ClusterUcb(ClusterUcbConfig {
            forgetting: none,
            ..Default::default()
        }),
    ]
}

/// A cold learner of `config` on llmrouter_dc, its clusters (cluster-ucb) fitted on the train
/// split's embeddings (unlabelled), saved to `path`.
fn base_learner(ds: &Dataset, config: &RouterConfig, path: &Path) -> AnyLearner {
    let train = ds.train();
    let l = AnyLearner::cold_config(config, train.pool(), train.dim(), train.embedding_model())
        .unwrap();
    match l.fit_unlabelled(&train.features().unwrap()) {
        Ok(()) | Err(pointsman::Error::Unsupported(_)) => {}
        Err(e) => panic!("{e}"),
    }
    AnyRouter::from(l.clone()).save(path).unwrap();
    l
}

fn spawn(job: &Job) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "shared::share_replica_child",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("POINTSMAN_SHARE_CHILD", serde_json::to_string(job).unwrap())
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn wait_all(children: &mut Children, limit: Duration) {
    let t = Instant::now();
    for (name, c) in &mut children.0 {
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "replica {name} failed: {status}");
                break;
            }
            assert!(
                t.elapsed() < limit,
                "replica {name} did not finish in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Every statistic of `b`'s saved form equals `a`'s to float tolerance; kNN-UCB's
/// observations are compared as a set (replicas hold them in another order).
fn assert_same_statistics(a: &SavedRouter, b: &SavedRouter, what: &str) {
    let rows = |s: &SavedRouter| -> Vec<Vec<u64>> {
        let (Some(e), Some(m), Some(sc)) = (
            s.tensors.get("knn-ucb.embeddings"),
            s.tensors.get("knn-ucb.models"),
            s.tensors.get("knn-ucb.scores"),
        ) else {
            return Vec::new();
        };
        let (TensorData::F32(e), TensorData::U32(m), TensorData::F64(sc)) =
            (&e.data, &m.data, &sc.data)
        else {
            panic!("knn-ucb tensors");
        };
        let dim = e.len() / m.len().max(1);
        let mut v: Vec<Vec<u64>> = (0..m.len())
            .map(|i| {
                let mut r = vec![u64::from(m[i]), sc[i].to_bits()];
                r.extend(
                    e[i * dim..(i + 1) * dim]
                        .iter()
                        .map(|x| u64::from(x.to_bits())),
                );
                r
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(rows(a), rows(b), "{what}: knn-ucb observations");
    assert_eq!(
        a.tensors.keys().collect::<Vec<_>>(),
        b.tensors.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (name, ta) in &a.tensors {
        if name.starts_with("knn-ucb.") {
            continue;
        }
        let tb = &b.tensors[name];
        assert_eq!(ta.shape, tb.shape, "{what}: {name}");
        let (va, vb): (Vec<f64>, Vec<f64>) = match (&ta.data, &tb.data) {
            (TensorData::F64(x), TensorData::F64(y)) => (x.clone(), y.clone()),
            (TensorData::F32(x), TensorData::F32(y)) => (
                x.iter().map(|&v| f64::from(v)).collect(),
                y.iter().map(|&v| f64::from(v)).collect(),
            ),
            (TensorData::U32(x), TensorData::U32(y)) => (
                x.iter().map(|&v| f64::from(v)).collect(),
                y.iter().map(|&v| f64::from(v)).collect(),
            ),
            _ => panic!("{what}: {name}: dtypes differ"),
        };
        let scale = va.iter().fold(1.0f64, |s, v| s.max(v.abs()));
        for (i, (x, y)) in va.iter().zip(&vb).enumerate() {
            assert!(
                (x - y).abs() <= 1e-9 * scale,
                "{what}: {name}[{i}]: {x} vs {y}"
            );
        }
    }
}

/// Greedy decisions on the test split.
fn decisions(l: &AnyLearner, ds: &Dataset) -> Vec<u32> {
    let test = ds.test();
    let batch = FeatureBatch::new(test.embeddings(), test.dim())
        .unwrap()
        .with_prompt_tokens(test.prompt_tokens())
        .unwrap();
    l.greedy()
        .route_batch(&batch, &Objective::new(0.0))
        .unwrap()
}

struct Run {
    dir: tempfile::TempDir,
    ds: Dataset,
    stream: Vec<Obs>,
}

impl Run {
    fn new() -> Option<Run> {
        let root = crate::common::data_dir()?;
        if !RedisServer::available() {
            return None;
        }
        let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
        let stream = feedback_stream(&ds);
        let dir = tempfile::tempdir().unwrap();
        for r in 0..REPLICAS {
            let shard: Vec<Obs> = stream.iter().skip(r).step_by(REPLICAS).cloned().collect();
            write_shard(&dir.path().join(format!("shard{r}")), &shard);
        }
        Some(Run { dir, ds, stream })
    }

    fn job(&self, url: &str, ns: &str, r: usize, name: &str, pause_ms: u64) -> Job {
        Job {
            url: url.to_string(),
            namespace: ns.to_string(),
            replica: name.to_string(),
            base: self.dir.path().join(format!("{ns}.base")),
            shard: self.dir.path().join(format!("shard{r}")),
            out: self.dir.path().join(format!("{ns}.{name}.out")),
            expected: OBSERVATIONS as u64,
            sync_every: 100,
            pause_ms,
            resume_after: None,
        }
    }

    /// The single learner of `config` that saw the whole stream, and the base file.
    fn single(&self, config: &RouterConfig, ns: &str) -> AnyLearner {
        let l = base_learner(
            &self.ds,
            config,
            &self.dir.path().join(format!("{ns}.base")),
        );
        for s in &self.stream {
            observe(&l, s);
        }
        l
    }

    fn check(&self, single: &AnyLearner, outs: &[PathBuf], what: &str) {
        let expect = single.router().to_saved().unwrap();
        let want = decisions(single, &self.ds);
        for out in outs {
            let got = AnyRouter::load(out).unwrap();
            let learner = got.as_learner().unwrap();
            assert_eq!(
                learner.observations(),
                OBSERVATIONS as u64,
                "{what}: {}",
                out.display()
            );
            assert_same_statistics(&expect, &got.router().to_saved().unwrap(), what);
            assert_eq!(
                decisions(learner, &self.ds),
                want,
                "{what}: greedy decisions"
            );
        }
    }
}

/// 4 replica processes, each observing a disjoint shard of the 20,000-observation stream,
/// end in the state of one learner that saw all of it, for every learner kind.
#[test]
fn shared_learners_match_one_learner_for_every_kind() {
    let Some(run) = Run::new() else {
        return;
    };
    let started = Instant::now();
    let redis = RedisServer::start(&run.dir.path().join("redis"));
    for config in configs() {
        let ns = config.kind().name().to_string();
        let t = Instant::now();
        let single = run.single(&config, &ns);
        let jobs: Vec<Job> = (0..REPLICAS)
            .map(|r| run.job(&redis.url(), &ns, r, &format!("r{r}"), 0))
            .collect();
        let mut children = Children(jobs.iter().map(|j| (j.replica.clone(), spawn(j))).collect());
        wait_all(&mut children, Duration::from_secs(240));
        let outs: Vec<PathBuf> = jobs.iter().map(|j| j.out.clone()).collect();
        run.check(&single, &outs, &ns);
        eprintln!(
            "{ns}: 4 replicas match one learner ({:.1} s)",
            t.elapsed().as_secs_f64()
        );
    }
    eprintln!("every kind: {:.1} s", started.elapsed().as_secs_f64());
}

/// Redis stopped gracefully and restarted with its data, then killed and restarted empty;
/// duplicated deliveries; a replica killed and restarted: every observation that was published
/// is in the final state, which matches one learner that saw the whole stream.
#[test]
fn shared_learners_survive_redis_and_replica_faults() {
    let Some(run) = Run::new() else {
        return;
    };
    let started = Instant::now();
    let mut redis = RedisServer::start(&run.dir.path().join("redis-faults"));
    let config = configs().remove(3);
    let ns = "faults";
    let single = run.single(&config, ns);
    let jobs: Vec<Job> = (0..REPLICAS)
        .map(|r| run.job(&redis.url(), ns, r, &format!("r{r}"), 40))
        .collect();
    let mut children = Children(jobs.iter().map(|j| (j.replica.clone(), spawn(j))).collect());
    let sleep = |ms| std::thread::sleep(Duration::from_millis(ms));
    sleep(500);
    // A graceful stop that saves, and a restart that loads the data.
    redis.shutdown_saving();
    sleep(300);
    redis.restart();
    sleep(400);
    // Killed and restarted empty.
    redis.kill_and_wipe();
    sleep(300);
    redis.restart();
    sleep(400);
    // Every entry of the log delivered twice.
    let mut store = RedisStore::new(&redis.url(), ns).unwrap();
    for bytes in store.log().unwrap() {
        store.inject(&bytes).unwrap();
    }
    sleep(200);
    // Replica 2 killed; a new process resumes its shard after what it had published.
    let (_, mut r2) = children.0.remove(2);
    r2.kill().unwrap();
    r2.wait().unwrap();
    sleep(200);
    let mut again = run.job(&redis.url(), ns, 2, "r2-restarted", 40);
    again.resume_after = Some("r2".into());
    children.0.push(("r2-restarted".into(), spawn(&again)));
    wait_all(&mut children, Duration::from_secs(240));
    let outs: Vec<PathBuf> = (0..REPLICAS)
        .map(|r| {
            if r == 2 {
                again.out.clone()
            } else {
                jobs[r].out.clone()
            }
        })
        .collect();
    run.check(&single, &outs, ns);
    eprintln!("faults: {:.1} s", started.elapsed().as_secs_f64());
}

/// Two replicas spending from one tenant budget at once never spend more than it in total;
/// a retried spend counts once.
#[test]
fn shared_budget_is_never_overspent() {
    if !RedisServer::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let limit = 5.0;
    let spent: Vec<f64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|r| {
                let url = redis.url();
                s.spawn(move || {
                    let counters = RedisCounters::new(&url, "budget", 60_000).unwrap();
                    let mut mine = 0.0;
                    for i in 0..400 {
                        let id = format!("{r}-{i}");
                        if let Spend::Added(_) =
                            counters.add_within("tenant-a", &id, 0.0125, limit).unwrap()
                        {
                            mine += 0.0125;
                        }
                        // A retry of the same spend counts once.
                        assert!(!matches!(
                            counters.add_within("tenant-a", &id, 0.0125, limit).unwrap(),
                            Spend::Added(_)
                        ));
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: f64 = spent.iter().sum();
    let counters = RedisCounters::new(&redis.url(), "budget", 60_000).unwrap();
    let stored = counters.get("tenant-a").unwrap();
    assert!(total <= limit + 1e-9, "spent {total} of {limit}");
    assert!(
        (stored - total).abs() < 1e-9 && total > limit - 0.0125 - 1e-9,
        "{stored} {total}"
    );
    assert!(
        spent.iter().all(|&s| s > 0.0),
        "both replicas spent: {spent:?}"
    );
    // Entries: the newest version wins, and expires.
    let entries = pointsman::share::redis::RedisEntries::new(&redis.url(), "budget").unwrap();
    use pointsman::share::SharedEntries;
    assert!(entries.put("session-1", b"model-a", 10, 60_000).unwrap());
    assert!(!entries.put("session-1", b"model-b", 9, 60_000).unwrap());
    assert_eq!(
        entries.get("session-1").unwrap(),
        Some((b"model-a".to_vec(), 10))
    );
    assert!(entries.put("session-2", b"x", 1, 1).unwrap());
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(entries.get("session-2").unwrap(), None);
}

/// Two replicas of a decision policy (two `PolicyRouter`s, each with its own connection to one
/// Redis) spending from one tenant's total and its users' rolling windows at once never pass
/// either; a session's model chosen on one replica is the previous model on the other; with
/// Redis unreachable, budgeted requests are refused with the typed store error, the others
/// route, and charges wait and arrive once Redis is back.
#[test]
fn shared_policy_state_holds_budgets_and_sessions_across_replicas() {
    use pointsman::data::Split;
    use pointsman::policy::{Policy, PolicyConfig, PolicyRouter, PolicyState, Request};
    use pointsman::routers::baseline::{Baseline, BaselineRouter};
    use pointsman::share::{SharedPolicyState, SharedStateConfig};
    use pointsman::{ErrorKind, ModelCard, ModelPool, Router};
    use std::sync::Arc;

    if !RedisServer::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(dir.path());
    let pool = ModelPool::new(vec![
        ModelCard::new("small", 0.1, 0.1),
        ModelCard::new("large", 10.0, 10.0),
    ])
    .unwrap();
    let train =
        Split::from_arrays(pool, vec![1.0, 0.0], 2, vec![0.5, 0.9], vec![1e-4, 1e-3]).unwrap();
    let router: Arc<dyn Router> =
        Arc::new(BaselineRouter::fit(Baseline::BestSingle, &train).unwrap());
    let config = PolicyConfig::from_json(
        r#"{"budgets": [
            {"key": "tenant", "limit_usd": 0.1, "window": {"kind": "total"}, "pace": false},
            {"key": "user", "limit_usd": 0.03, "window": {"kind": "rolling", "seconds": 3600},
             "pace": false}],
            "sticky": {"margin": 1.0}}"#,
        "policy.json",
    )
    .unwrap();
    let replica = |url: &str| {
        let state = Arc::new(SharedPolicyState::redis(url, SharedStateConfig::default()).unwrap());
        let policy = Policy::new(config.clone())
            .unwrap()
            .with_state(state.clone());
        (PolicyRouter::new(router.clone(), policy).unwrap(), state)
    };
    let q = QueryFeatures::new(vec![1.0, 0.0]).unwrap();
    // Both replicas at once: every answer costs what it was expected to.
    let spent: Vec<BTreeMap<String, f64>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|r| {
                let (policy, _) = replica(&redis.url());
                let q = &q;
                s.spawn(move || {
                    let mut mine = BTreeMap::new();
                    for i in 0..150 {
                        let user = format!("u{}", (i + r) % 5);
                        let req = Request::new(q).with_tenant("acme").with_user(&user);
                        match policy.route(&req) {
                            Ok(d) => {
                                let cost = d.decision.cost;
                                policy
                                    .settle(&req, &d.audit.held, Some(&d.decision.model_id), cost)
                                    .unwrap();
                                *mine.entry(user).or_insert(0.0) += cost;
                                *mine.entry("tenant".into()).or_insert(0.0) += cost;
                            }
                            Err(e) => assert_eq!(e.kind(), ErrorKind::BudgetExhausted, "{e}"),
                        }
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total = |k: &str| spent.iter().filter_map(|m| m.get(k)).sum::<f64>();
    assert!(total("tenant") <= 0.1 + 1e-9, "spent {}", total("tenant"));
    assert!(
        total("tenant") > 0.1 - 1e-3 - 1e-9,
        "spent {}",
        total("tenant")
    );
    for u in 0..5 {
        let t = total(&format!("u{u}"));
        assert!(t <= 0.03 + 1e-9, "user u{u} spent {t}");
    }
    assert!(spent.iter().all(|m| m["tenant"] > 0.0), "{spent:?}");
    // What Redis holds is what was spent: holds were replaced by the actual costs.
    let (observer, observer_state) = replica(&redis.url());
    let stored = observer_state.totals("tenant:acme", i64::MIN).spent;
    assert!((stored - total("tenant")).abs() < 1e-9, "{stored}");
    drop(observer);

    // Sessions: replica a's choice is replica b's previous model (kept: margin 1).
    let (a, a_state) = replica(&redis.url());
    let (b, _) = replica(&redis.url());
    let req = Request::new(&q)
        .with_session("conversation-1")
        .with_allowed(["small"]);
    assert_eq!(a.route(&req).unwrap().decision.model_id, "small");
    let d = b
        .route(&Request::new(&q).with_session("conversation-1"))
        .unwrap();
    let sticky = d.audit.sticky.unwrap();
    assert_eq!(sticky.previous.as_deref(), Some("small"));
    assert!(sticky.kept && d.decision.model_id == "small");

    // Redis stopped: budgeted requests are refused (typed), others route; a charge waits.
    redis.shutdown_saving();
    let req = Request::new(&q).with_tenant("beta");
    let e = a.route(&req).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Store, "{e}");
    assert_eq!(
        a.route(&Request::new(&q)).unwrap().decision.model_id,
        "large"
    );
    a.record(&req, Some("small"), 0.002).unwrap();
    assert_eq!(a_state.stats().pending, 1);
    assert!(a_state.stats().store_errors > 0);
    // This replica still counts its waiting charge.
    assert!((a_state.totals("tenant:beta", i64::MIN).spent - 0.002).abs() < 1e-12);
    redis.restart();
    a_state.flush().unwrap();
    assert_eq!(a_state.stats().pending, 0);
    assert_eq!(a_state.stats().delivered_late, 1);
    let (_, other) = replica(&redis.url());
    assert!((other.totals("tenant:beta", i64::MIN).spent - 0.002).abs() < 1e-12);
    // The budgets spent before the stop survived it (saved by SHUTDOWN SAVE).
    assert!((other.totals("tenant:acme", i64::MIN).spent - total("tenant")).abs() < 1e-9);

    // A counter Redis holds that is not a finite number (edited by hand, written by another
    // program) is a store error, as text is: read as infinite the budget refused for good, read
    // as minus infinity it never stopped.
    let mut c = redis.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*counter:*tenant:acme*")
        .query(&mut c)
        .unwrap();
    let keys: Vec<&String> = keys.iter().filter(|k| !k.contains(":id:")).collect();
    assert!(!keys.is_empty());
    let (c_router, _) = replica(&redis.url());
    for bad in ["inf", "-inf", "nan", "1e999", "abc"] {
        for k in &keys {
            let () = redis::cmd("SET").arg(k).arg(bad).query(&mut c).unwrap();
        }
        let e = c_router
            .route(&Request::new(&q).with_tenant("acme"))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Store, "{bad}: {e}");
        assert!(e.to_string().contains("not a finite number"), "{e}");
    }
}
