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

/// Only an answer counts: an upstream's own 4xx (passed on) charges no budget and moves no
/// session; a stream takes feedback only once it has ended well (409 before, 404 when it
/// failed); and a stream still running across a reload to a router without its model is charged
/// with the policy that decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_answers_are_charged_made_sticky_and_open_to_feedback() {
    let files = tempfile::tempdir().unwrap();
    let policy = files.path().join("policy.json");
    std::fs::write(
        &policy,
        json!({
            "version": 1,
            "cost_weight": 0,
            "budgets": [{"key": "tenant", "limit_usd": 1.0, "window": {"kind": "total"},
                         "pace": false}],
            "sticky": {"margin": 0.2}
        })
        .to_string(),
    )
    .unwrap();
    let stub = StubConfig {
        hang: Duration::from_secs(5),
        chunk_delay: Duration::from_millis(100),
        ..Default::default()
    };
    let extra = format!(
        "[policies.governed]\nfile = {:?}\n",
        policy.display().to_string()
    );
    let mut e = env_with(Kind::Zero, &extra, "", stub).await;
    let model = "pointsman:governed";
    let acme = json!({"tenant": "acme", "session_id": "s1"});
    // The upstream refuses the prompt: passed on, and nothing else.
    e.stub("big").set_fault(Some(Fault::Reject));
    let a = e.chat(model, "Hello", acme.clone()).await;
    assert_eq!((a.status, a.header("x-pointsman-model")), (400, "big"));
    e.stub("big").set_fault(None);
    for _ in 0..2 {
        let a = e.chat(model, "Hello", acme.clone()).await;
        assert_eq!((a.status, a.header("x-pointsman-model")), (200, "big"));
    }
    // Streams: feedback waits for the end; a failed stream takes none.
    let stream = |tenant: &str| {
        json!({"model": model, "stream": true, "pointsman": {"tenant": tenant},
               "messages": [{"role": "user", "content": "Stream a haiku"}]})
    };
    let resp = e.send_chat(&stream("acme")).await;
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let a = e.feedback(json!({"request_id": id, "quality": 1.0})).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (409, Some("request_in_flight"))
    );
    assert_eq!(read_stream(resp).await.last().unwrap(), "[DONE]");
    let a = e.feedback(json!({"request_id": id, "quality": 1.0})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    e.stub("big").set_fault(Some(Fault::HangMidStream));
    let resp = e.send_chat(&stream("acme")).await;
    let failed = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let events = read_stream(resp).await;
    assert!(events.last().unwrap().contains("upstream_stream_failed"));
    let a = e
        .feedback(json!({"request_id": failed, "quality": 0.0}))
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (404, Some("request_not_found"))
    );
    e.stub("big").set_fault(None);
    // A reload mid-stream to a router without `big`: the stream is still charged.
    let resp = e.send_chat(&stream("beta")).await;
    assert_eq!(resp.headers()["x-pointsman-model"], "big");
    let two = ModelPool::new(vec![
        ModelCard::new("small", 1.0, 1.0),
        ModelCard::new("mid", 1.0, 1.0),
    ])
    .unwrap();
    let mut emb = vec![0.0f32; 2 * DIM];
    emb[0] = 1.0;
    emb[DIM + 1] = 1.0;
    let split = Split::from_arrays(two, emb, DIM, vec![0.5, 0.7, 0.5, 0.7], vec![1e-5; 4]).unwrap();
    BaselineRouter::fit(Baseline::Zero, &split)
        .unwrap()
        .save(&e.dir.path().join("router.safetensors"))
        .unwrap();
    e.gw.as_ref().unwrap().reload().await.unwrap();
    assert_eq!(read_stream(resp).await.last().unwrap(), "[DONE]");
    let a = e.chat(model, "Hello", json!({"tenant": "beta"})).await;
    assert_eq!((a.status, a.header("x-pointsman-model")), (200, "mid"));

    let log = e.stop().await;
    let ds = decisions(&log);
    let budget = |i: usize| ds[i].audit.as_ref().unwrap()["budgets"][0]["spent"].as_f64();
    let sticky = |i: usize| ds[i].audit.as_ref().unwrap()["sticky"]["previous"].clone();
    assert_eq!(
        (ds[0].status, ds[0].error.as_deref()),
        (400, Some("upstream_client_error"))
    );
    // The refused call charged nothing and left the session empty.
    assert_eq!((budget(1), sticky(1)), (Some(0.0), Value::Null));
    let first = ds[1].cost_usd.unwrap();
    assert!(first > 0.0);
    assert!((budget(2).unwrap() - first).abs() < 1e-15);
    assert_eq!(sticky(2), json!("big"));
    // The feedback event follows its stream's decision.
    let at = |id: &str, decision: bool| {
        log.iter()
            .position(|ev| match ev {
                Event::Decision(d) => decision && d.request_id == id,
                Event::Feedback(f) => !decision && f.request_id == id && f.status == 200,
            })
            .unwrap()
    };
    assert!(at(&id, true) < at(&id, false));
    // The stream across the reload: charged to beta, whose next decision sees it spent.
    let across = &ds[ds.len() - 2];
    assert_eq!((across.model.as_deref(), across.status), (Some("big"), 200));
    let charged = across.cost_usd.unwrap();
    assert!(charged > 0.0);
    assert!((budget(ds.len() - 1).unwrap() - charged).abs() < 1e-15);
}
