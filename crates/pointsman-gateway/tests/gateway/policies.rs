//! Decision policies in the gateway: rules, stickiness, budgets and their audit, in one process
//! and shared by two gateways through Redis.

use super::*;

/// A routing policy with a decision-policy file: the engine's rules, budgets and stickiness act
/// on routed requests, the decision log holds their audit, and the tenant's budget is charged
/// from the upstream's usage until its hard stop answers 402.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_policies_act_and_are_audited() {
    let files = tempfile::tempdir().unwrap();
    let policy = files.path().join("policy.json");
    std::fs::write(
        &policy,
        json!({
            "version": 1,
            "cost_weight": 0,
            "rules": [
                {"name": "free-no-big", "when": {"tenant": ["free"]}, "then": {"exclude": ["big"]}},
                {"name": "code-to-small", "when": {"regex": ["(?i)\\bdef\\s+\\w+\\("]},
                 "then": {"force": "small"}}
            ],
            "budgets": [{"key": "tenant", "limit_usd": 2e-4, "window": {"kind": "total"},
                         "pace": false}],
            "sticky": {"margin": 0.2}
        })
        .to_string(),
    )
    .unwrap();
    let mut e = env(
        Kind::Zero,
        &format!(
            "[policies.governed]\nfile = {:?}\n",
            policy.display().to_string()
        ),
        "",
    )
    .await;
    let model = "pointsman:governed";
    // Rules: the free tier never gets `big`; code goes to `small`.
    let a = e
        .chat(model, "Hello there", json!({"tenant": "free"}))
        .await;
    assert_eq!(
        (a.status, a.header("x-pointsman-model")),
        (200, "mid"),
        "{}",
        a.body
    );
    let a = e.chat(model, "Hello there", Value::Null).await;
    assert_eq!(a.header("x-pointsman-model"), "big");
    let a = e.chat(model, "def fib(n): return n", Value::Null).await;
    assert_eq!(a.header("x-pointsman-model"), "small");
    // Stickiness: at 300 points per USD the router prefers `mid`, by less than the margin over
    // the session's `big`.
    let a = e
        .chat(
            model,
            "Hello",
            json!({"session_id": "s1", "cost_weight": 0}),
        )
        .await;
    assert_eq!(a.header("x-pointsman-model"), "big");
    let a = e.chat(model, "Hello", json!({"cost_weight": 300})).await;
    assert_eq!(a.header("x-pointsman-model"), "mid");
    let a = e
        .chat(
            model,
            "Hello",
            json!({"session_id": "s1", "cost_weight": 300}),
        )
        .await;
    assert_eq!(a.header("x-pointsman-model"), "big");
    // The budget: a long prompt, only `small` fits what is left, each answer is charged its
    // actual cost, and the hard stop refuses before the limit is passed.
    let long = "word ".repeat(400);
    let mut refused = None;
    for i in 0..20 {
        let a = e.chat(model, &long, json!({"tenant": "acme"})).await;
        if a.status == 402 {
            refused = Some((i, a.body["error"]["code"].clone()));
            break;
        }
        assert_eq!((a.status, a.header("x-pointsman-model")), (200, "small"));
    }
    let (served, code) = refused.expect("the budget's hard stop within 20 requests");
    assert!(served >= 1, "the first request fits the budget");
    assert_eq!(code, "budget_exhausted");
    let log = e.stop().await;
    let ds = decisions(&log);
    assert!(
        ds.iter().all(|d| d.audit.is_some()),
        "every routed decision is audited"
    );
    assert_eq!(
        ds[0].audit.as_ref().unwrap()["rules"],
        json!(["free-no-big"])
    );
    assert_eq!(ds[2].audit.as_ref().unwrap()["forced"], json!("small"));
    assert_eq!(ds[5].audit.as_ref().unwrap()["sticky"]["kept"], json!(true));
    let acme: Vec<_> = ds
        .iter()
        .filter(|d| d.tenant.as_deref() == Some("acme"))
        .collect();
    let charged: f64 = acme.iter().filter_map(|d| d.cost_usd).sum();
    let last = acme.last().unwrap();
    assert_eq!(
        (last.status, last.error.as_deref()),
        (402, Some("budget_exhausted"))
    );
    let audit = last.audit.as_ref().unwrap();
    assert_eq!(audit["refused"], json!("budget_exhausted"));
    let spent = audit["budgets"][0]["spent"].as_f64().unwrap();
    assert!(
        (spent - charged).abs() <= 1e-12,
        "spent {spent}, charged {charged}"
    );
    assert!(charged <= 2e-4, "{charged}");
}

/// A `redis-server` on a loopback port with a temporary folder, killed on drop; `None` (the
/// test skipped, with a message) when it is not installed, except under `CI=true`.
struct RedisServer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    fn start() -> Option<RedisServer> {
        let installed = std::process::Command::new("redis-server")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            let msg = "redis-server not found (scripts/test.sh installs it with apt-get)";
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
            eprintln!("skipping: {msg}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(RedisServer {
            child,
            port,
            _dir: dir,
        })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two gateway processes' worth of state (two gateways) with one `[state]` Redis: a tenant's
/// budget is shared (the two together never charge more than it), a session's model chosen
/// through one is kept through the other, and with Redis gone a budgeted request gets 503
/// `shared_state_unavailable` while others are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_budgets_and_sessions_through_redis() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    let policy = files.path().join("policy.json");
    std::fs::write(
        &policy,
        json!({
            "version": 1,
            "cost_weight": 0,
            "budgets": [{"key": "tenant", "limit_usd": 2e-4, "window": {"kind": "total"},
                         "pace": false}],
            "sticky": {"margin": 0.2}
        })
        .to_string(),
    )
    .unwrap();
    let extra = format!(
        "[policies.governed]\nfile = {:?}\n[state]\nredis = {:?}\nnamespace = \"gw-test\"\n",
        policy.display().to_string(),
        redis.url()
    );
    let mut a = env(Kind::Zero, &extra, "").await;
    let mut b = env(Kind::Zero, &extra, "").await;
    let model = "pointsman:governed";
    // A session: `big` chosen through a, kept through b (at 300 points per USD b alone would
    // take `mid`, by less than the margin).
    let r = a
        .chat(
            model,
            "Hello",
            json!({"session_id": "s1", "cost_weight": 0}),
        )
        .await;
    assert_eq!(r.header("x-pointsman-model"), "big");
    let r = b
        .chat(
            model,
            "Hello",
            json!({"session_id": "s1", "cost_weight": 300}),
        )
        .await;
    assert_eq!(r.header("x-pointsman-model"), "big", "{}", r.body);
    // The budget, spent through both at once until both refuse.
    let long = "word ".repeat(400);
    let mut served = [0usize; 2];
    for _ in 0..20 {
        let (ra, rb) = tokio::join!(
            a.chat(model, &long, json!({"tenant": "acme"})),
            b.chat(model, &long, json!({"tenant": "acme"}))
        );
        for (i, r) in [ra, rb].into_iter().enumerate() {
            match r.status {
                200 => served[i] += 1,
                402 => assert_eq!(r.body["error"]["code"], json!("budget_exhausted")),
                s => panic!("status {s}: {}", r.body),
            }
        }
    }
    assert!(served.iter().all(|&n| n >= 1), "{served:?}");
    // Redis gone: a budgeted request that would need the store is refused with 503 (a fresh
    // tenant's budget: nothing known of it); one whose last known total already refuses it is
    // refused from that (402) — either way nothing is charged past the budget.
    redis.kill();
    let r = a.chat(model, "Hello", json!({"tenant": "beta"})).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].clone()),
        (503, json!("shared_state_unavailable"))
    );
    let r = a.chat(model, "Hello", json!({"tenant": "acme"})).await;
    assert!(
        matches!(
            (r.status, r.body["error"]["code"].as_str()),
            (503, Some("shared_state_unavailable")) | (402, Some("budget_exhausted"))
        ),
        "{} {}",
        r.status,
        r.body
    );
    let r = a.chat(model, "Hello", Value::Null).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut charged = 0.0;
    for e in [&mut a, &mut b] {
        let log = e.stop().await;
        charged += decisions(&log)
            .iter()
            .filter(|d| d.tenant.as_deref() == Some("acme") && d.status == 200)
            .filter_map(|d| d.cost_usd)
            .sum::<f64>();
    }
    assert!(charged <= 2e-4 + 1e-12, "the two charged {charged}");
    assert!(charged > 2e-4 / 2.0, "{charged}");
}

/// A policy whose guard reads the router's out-of-distribution signal, on a router that gives
/// none: the gateway refuses to start, naming the router and the guard to fit instead (rather
/// than answering every request of that policy with an error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_guard_on_a_router_without_the_signal_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    write_router(Kind::Zero, &dir.path().join("router.safetensors"));
    std::fs::write(
        dir.path().join("policy.json"),
        json!({"version": 1, "guard": {"source": "router", "action": "refuse"}}).to_string(),
    )
    .unwrap();
    let mut toml = String::from(
        "listen = \"127.0.0.1:0\"\nrouter = \"router.safetensors\"\n[policies.guarded]\nfile = \"policy.json\"\n",
    );
    for m in MODELS {
        toml.push_str(&format!(
            "[[upstreams]]\nmodel = \"{m}\"\nbase_url = \"http://127.0.0.1:9/v1\"\n"
        ));
    }
    std::fs::write(dir.path().join("gateway.toml"), toml).unwrap();
    let config = Config::load(dir.path().join("gateway.toml")).unwrap();
    let Err(e) = pointsman_gateway::start_with(config, embedder()).await else {
        panic!("the gateway must not start");
    };
    let e = e.to_string();
    assert!(
        e.contains("zero router does not give") && e.contains("fit an embedding guard"),
        "{e}"
    );
}
