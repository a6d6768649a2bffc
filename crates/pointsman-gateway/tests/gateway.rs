//! The gateway end to end, in one test binary: stub upstreams and the gateway on loopback, the
//! real embedder, real routers saved to a temporary folder, reqwest as the client.
//!
//! Routers: a `zero` baseline (fixed expected qualities small 0.5 < mid 0.7 < big 0.9, equal card
//! prices, so every cost comes from the gateway's configured prices), a cold LinUCB learner, and
//! an IRT router and a stack fitted on a small synthetic split.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pointsman::data::Split;
use pointsman::routers::bandit::LinUcbRouter;
use pointsman::routers::baseline::{Baseline, BaselineRouter};
use pointsman::{ModelCard, ModelPool, Router, DEFAULT_EMBEDDING_MODEL};
use pointsman_gateway::engine::TextEmbedder;
use pointsman_gateway::log::{Event, EMBEDDING_ENCODING};
use pointsman_gateway::stub::{self, Fault, StubConfig, StubHandle};
use pointsman_gateway::{Config, Running};
use serde_json::{json, Value};

const MODELS: [&str; 3] = ["small", "mid", "big"];
const DIM: usize = 384;

fn embedder() -> TextEmbedder {
    static E: OnceLock<TextEmbedder> = OnceLock::new();
    E.get_or_init(|| {
        TextEmbedder::load(&Default::default())
            .expect("the embedding model (scripts/fetch-model.sh)")
    })
    .clone()
}

fn pool() -> ModelPool {
    // Equal card prices: the configured prices alone must separate the models.
    ModelPool::new(
        MODELS
            .iter()
            .map(|m| ModelCard::new(*m, 1.0, 1.0))
            .collect(),
    )
    .unwrap()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Zero,
    LinUcb,
    /// What `--router auto` may save beyond knn and mf.
    Irt,
    Stack,
}

fn write_router(kind: Kind, path: &std::path::Path) {
    match kind {
        Kind::Zero => {
            let mut emb = vec![0.0f32; 2 * DIM];
            emb[0] = 1.0;
            emb[DIM + 1] = 1.0;
            let scores = vec![0.5, 0.7, 0.9, 0.5, 0.7, 0.9];
            let split = Split::from_arrays(pool(), emb, DIM, scores, vec![1e-5; 6]).unwrap();
            BaselineRouter::fit(Baseline::Zero, &split)
                .unwrap()
                .save(path)
                .unwrap();
        }
        Kind::Irt | Kind::Stack => {
            // A small labelled split: small is right on the first half of the embedding's
            // axes, big everywhere, mid on every other query.
            let n = 40;
            let mut emb = vec![0.0f32; n * DIM];
            let mut scores = Vec::new();
            for i in 0..n {
                emb[i * DIM + i % DIM] = 1.0;
                emb[i * DIM + DIM - 1] = 0.5;
                scores.extend_from_slice(&[f64::from(u8::from(i < n / 2)), (i % 2) as f64, 1.0]);
            }
            let split = Split::from_arrays(pool(), emb, DIM, scores, vec![1e-5; 3 * n]).unwrap();
            let config = if kind == Kind::Irt {
                json!({"type": "irt", "dim": 2, "max_steps": 20})
            } else {
                json!({"type": "stack", "members": [{"type": "knn", "k": 5}, {"type": "baseline", "rule": "zero"}]})
            };
            let config: pointsman::registry::RouterConfig = serde_json::from_value(config).unwrap();
            pointsman::registry::AnyRouter::fit_config(&config, &split)
                .unwrap()
                .save(path)
                .unwrap();
        }
        Kind::LinUcb => {
            LinUcbRouter::new(
                pool(),
                DIM,
                Some(DEFAULT_EMBEDDING_MODEL),
                Default::default(),
            )
            .unwrap()
            .save(path)
            .unwrap();
        }
    }
}

struct Env {
    dir: tempfile::TempDir,
    stubs: HashMap<&'static str, StubHandle>,
    gw: Option<Running>,
    base: String,
    client: reqwest::Client,
}

/// Prices (USD per Mtok, in and out) of small, mid and big.
const PRICES: [f64; 3] = [0.1, 1.0, 10.0];

async fn env(kind: Kind, extra: &str, upstream_extra: &str) -> Env {
    let stub = StubConfig {
        hang: Duration::from_secs(5),
        ..Default::default()
    };
    env_with(kind, extra, upstream_extra, stub).await
}

/// [`env`] with the stubs' settings (`name` is each model's).
async fn env_with(kind: Kind, extra: &str, upstream_extra: &str, stub: StubConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    write_router(kind, &dir.path().join("router.safetensors"));
    let mut stubs = HashMap::new();
    let mut upstreams = String::new();
    let timeout = if upstream_extra.contains("timeout_ms") {
        ""
    } else {
        "timeout_ms = 400\n"
    };
    for (model, price) in MODELS.iter().zip(PRICES) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = StubConfig {
            name: model.to_string(),
            ..stub.clone()
        };
        let handle = stub::spawn(listener, config).unwrap();
        upstreams.push_str(&format!(
            "[[upstreams]]\nmodel = \"{model}\"\nbase_url = \"{}\"\ninput_usd_per_mtok = {price}\noutput_usd_per_mtok = {price}\noutput_tokens = 100\n{timeout}{upstream_extra}\n",
            handle.base_url()
        ));
        stubs.insert(*model, handle);
    }
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nrouter = \"router.safetensors\"\n{extra}\n[log]\npath = \"decisions.jsonl\"\nprompts = true\n{upstreams}"
    );
    std::fs::write(dir.path().join("gateway.toml"), &toml).unwrap();
    let config = Config::load(dir.path().join("gateway.toml")).unwrap();
    let gw = pointsman_gateway::start_with(config, embedder())
        .await
        .unwrap();
    let base = format!("http://{}", gw.local_addr());
    Env {
        dir,
        stubs,
        gw: Some(gw),
        base,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

impl Env {
    async fn post(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Answer {
        let mut r = self.client.post(format!("{}{path}", self.base)).json(&body);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn chat(&self, model: &str, text: &str, ext: Value) -> Answer {
        let mut body = json!({"model": model, "messages": [{"role": "user", "content": text}]});
        if !ext.is_null() {
            body["pointsman"] = ext;
        }
        self.post("/v1/chat/completions", body, &[]).await
    }

    /// Posts a chat request and returns the response unread (its status, headers, stream).
    async fn send_chat(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/chat/completions", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn feedback(&self, body: Value) -> Answer {
        self.post("/v1/feedback", body, &[]).await
    }

    async fn get(&self, path: &str) -> String {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn stub(&self, model: &str) -> &StubHandle {
        &self.stubs[model]
    }

    /// Stops the gateway and reads its log.
    async fn stop(&mut self) -> Vec<Event> {
        self.gw.take().unwrap().shutdown().await.unwrap();
        pointsman_gateway::log::read_file(&self.dir.path().join("decisions.jsonl")).unwrap()
    }
}

/// The decision events of a log, in order.
fn decisions(log: &[Event]) -> Vec<&pointsman_gateway::log::DecisionEvent> {
    log.iter()
        .filter_map(|ev| match ev {
            Event::Decision(d) => Some(&**d),
            Event::Feedback(_) => None,
        })
        .collect()
}

/// The feedback events of a log, in order.
fn feedbacks(log: &[Event]) -> Vec<&pointsman_gateway::log::FeedbackEvent> {
    log.iter()
        .filter_map(|ev| match ev {
            Event::Feedback(f) => Some(f),
            Event::Decision(_) => None,
        })
        .collect()
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_configured_prices_and_options() {
    let mut e = env(
        Kind::Zero,
        "[policies.cheap]\ncost_weight = 5000\n[policies.tight]\nmax_cost = 1e-9\n",
        "",
    )
    .await;
    // Cost weight 0: best expected quality.
    let a = e
        .chat(
            "pointsman",
            "Prove that sqrt(2) is irrational.",
            Value::Null,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["model"], "big");
    assert_eq!(a.header("x-pointsman-model"), "big");
    assert_eq!(a.header("x-pointsman-chosen"), "big");
    assert_eq!(a.header("x-pointsman-runner-up"), "mid");
    assert_eq!(a.header("x-pointsman-policy"), "default");
    assert_eq!(a.header("x-pointsman-tries"), "1");
    assert!((a.header("x-pointsman-utility").parse::<f64>().unwrap() - 0.9).abs() < 0.01);
    assert!(a.header("x-request-id").starts_with("pm-"));
    // Server-Timing: queue, embed and route durations, in milliseconds.
    let timing = a.header("server-timing");
    let names: Vec<&str> = timing
        .split(", ")
        .map(|m| {
            let (name, dur) = m.split_once(";dur=").expect("name;dur=ms");
            assert!(dur.parse::<f64>().unwrap() >= 0.0, "{timing}");
            name
        })
        .collect();
    assert_eq!(names, ["queue", "embed", "route"], "{timing}");
    let content = a.body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("big answers big: "), "{content}");
    // The cost is the configured price (10 USD/Mtok in and out) times the upstream's usage.
    let usage = &a.body["usage"];
    let tokens =
        usage["prompt_tokens"].as_f64().unwrap() + usage["completion_tokens"].as_f64().unwrap();
    assert!((usage["cost_usd"].as_f64().unwrap() - 10.0 * tokens / 1e6).abs() < 1e-12);
    assert_eq!(
        a.header("x-pointsman-cost-usd").parse::<f64>().unwrap(),
        usage["cost_usd"].as_f64().unwrap()
    );

    // A large cost weight from a policy, or from the request: the cheapest.
    assert_eq!(
        e.chat("pointsman:cheap", "Hello there", Value::Null)
            .await
            .body["model"],
        "small"
    );
    assert_eq!(
        e.chat("pointsman", "Hello there", json!({"cost_weight": 5000}))
            .await
            .body["model"],
        "small"
    );
    // In between: mid (0.7 − 1000 × 1e-4 beats 0.9 − 1000 × 1e-3 and 0.5 − 1000 × 1e-5).
    let a = e
        .post(
            "/v1/chat/completions",
            json!({"model": "pointsman", "messages": [{"role": "user", "content": "Hi"}]}),
            &[
                ("x-pointsman-cost-weight", "1000"),
                ("x-pointsman-session-id", "s-1"),
                ("x-pointsman-tenant", "acme"),
            ],
        )
        .await;
    assert_eq!(a.body["model"], "mid", "{}", a.body);
    // Allowed models narrow the choice.
    let a = e
        .chat(
            "pointsman",
            "Hi",
            json!({"allowed_models": ["small", "mid"]}),
        )
        .await;
    assert_eq!(a.body["model"], "mid");
    assert_eq!(a.header("x-pointsman-runner-up"), "small");
    // A concrete model is passed through unrouted.
    let a = e.chat("small", "Hi", Value::Null).await;
    assert_eq!((a.status, a.body["model"].as_str()), (200, Some("small")));
    assert_eq!(a.header("x-pointsman-chosen"), "");
    assert_eq!(a.header("server-timing"), "");

    // Errors, in OpenAI's shape.
    let cases: Vec<(Answer, u16, &str)> = vec![
        (
            e.chat("nope", "Hi", Value::Null).await,
            404,
            "model_not_found",
        ),
        (
            e.chat("pointsman:nope", "Hi", Value::Null).await,
            404,
            "model_not_found",
        ),
        (
            e.chat("pointsman", "Hi", json!({"max_cost": 1e-9})).await,
            402,
            "budget_exhausted",
        ),
        (
            e.chat("pointsman:tight", "Hi", Value::Null).await,
            402,
            "budget_exhausted",
        ),
        (
            e.chat("pointsman", "Hi", json!({"allowed_models": ["gpt-9"]}))
                .await,
            400,
            "invalid_routing_option",
        ),
        (
            e.chat("pointsman", "Hi", json!({"cost_weight": "x"})).await,
            400,
            "invalid_routing_option",
        ),
        (
            e.chat("pointsman", "   ", Value::Null).await,
            400,
            "nothing_to_route",
        ),
        (
            e.post("/v1/chat/completions", json!({"model": "pointsman"}), &[])
                .await,
            400,
            "missing_messages",
        ),
        (
            e.post("/v1/chat/completions", json!([1]), &[]).await,
            400,
            "invalid_json",
        ),
        (e.post("/v1/nope", json!({}), &[]).await, 404, "not_found"),
    ];
    for (a, status, code) in &cases {
        assert_eq!(a.status, *status, "{}", a.body);
        assert_eq!(a.body["error"]["code"], *code, "{}", a.body);
        assert!(a.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // Over the limit: a 413 the client can read, not a broken pipe while it is still writing
    // (the gateway reads and discards oversized bodies up to a bound before answering), every time.
    let big = "x".repeat(2 << 20);
    for _ in 0..5 {
        let a = e.chat("pointsman", &big, Value::Null).await;
        assert_eq!(
            (a.status, a.body["error"]["code"].as_str()),
            (413, Some("request_too_large"))
        );
    }
    let raw = e
        .client
        .post(format!("{}/v1/chat/completions", e.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);

    let models: Value = serde_json::from_str(&e.get("/v1/models").await).unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "pointsman",
            "pointsman:cheap",
            "pointsman:tight",
            "small",
            "mid",
            "big"
        ]
    );
    let health: Value = serde_json::from_str(&e.get("/healthz").await).unwrap();
    assert_eq!(health["router"]["kind"], "zero");
    let metrics = e.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "pointsman_budget_exhausted_total"),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "pointsman_decisions_total{model=\"small\",policy=\"cheap\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "pointsman_session_requests_total{tenant=\"acme\"}"
        ),
        1.0
    );

    let events = e.stop().await;
    let decisions = decisions(&events);
    assert_eq!(
        decisions.len(),
        6 + cases.len() - 1 + 5 + 1,
        "one event per chat request (the 413s included, the 404 of an unknown path not)"
    );
    let first = decisions[0];
    assert_eq!(first.router.as_ref().unwrap().kind, "zero");
    let emb = first.embedding.as_ref().unwrap();
    assert_eq!((emb.dim, emb.encoding.as_str()), (DIM, EMBEDDING_ENCODING));
    let values = emb.decode().unwrap();
    let norm: f32 = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-2, "{norm}");
    assert_eq!(first.probability, Some(1.0));
    assert_eq!(
        first
            .alternatives
            .iter()
            .map(|c| c.model.as_str())
            .collect::<Vec<_>>(),
        ["big", "mid", "small"]
    );
    assert_eq!(
        first.prompt.as_deref(),
        Some("Prove that sqrt(2) is irrational.")
    );
    assert!(first.cost_usd.unwrap() > 0.0 && first.usage.is_some());
    let session = decisions.iter().find(|d| d.session_id.is_some()).unwrap();
    assert_eq!(session.tenant.as_deref(), Some("acme"));
    let budget = decisions.iter().find(|d| d.status == 402).unwrap();
    assert_eq!(budget.error.as_deref(), Some("budget_exhausted"));
    assert!(decisions.iter().any(|d| d.status == 413));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_faults_fall_back_or_fail_as_documented() {
    let mut e = env(Kind::Zero, "[fallback]\nbreaker_failures = 100\n", "").await;
    for fault in [Fault::Fail, Fault::RateLimit, Fault::BadJson, Fault::Hang] {
        e.stub("big").set_fault(Some(fault));
        let before = e.stub("mid").requests();
        let a = e.chat("pointsman", "Route me", Value::Null).await;
        assert_eq!(a.status, 200, "{fault:?}: {}", a.body);
        assert_eq!(a.body["model"], "mid", "{fault:?}");
        assert_eq!(a.header("x-pointsman-chosen"), "big");
        assert_eq!(a.header("x-pointsman-tries"), "2");
        assert_eq!(e.stub("mid").requests(), before + 1);
    }
    // Every upstream failing: 502; every one timing out: 504; at most max_tries (3) calls.
    for (fault, status, code) in [
        (Fault::Fail, 502, "upstream_failed"),
        (Fault::Hang, 504, "upstream_timeout"),
    ] {
        for m in MODELS {
            e.stub(m).set_fault(Some(fault));
        }
        let a = e.chat("pointsman", "Route me", Value::Null).await;
        assert_eq!(
            (a.status, a.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{}",
            a.body
        );
        assert_eq!(a.body["error"]["type"], "upstream_error");
    }
    // A passed-through model is never replaced by another.
    let before = e.stub("mid").requests();
    let a = e.chat("small", "Hi", Value::Null).await;
    assert_eq!(a.status, 504);
    assert_eq!(e.stub("mid").requests(), before);
    for m in MODELS {
        e.stub(m).set_fault(None);
    }
    // With max_tries 3 and a budget that leaves only small and mid, a failing mid falls to small.
    e.stub("mid").set_fault(Some(Fault::Fail));
    let a = e
        .chat(
            "pointsman",
            "Hi",
            json!({"cost_weight": 100, "max_cost": 5e-4}),
        )
        .await;
    assert_eq!(
        (a.status, a.body["model"].as_str()),
        (200, Some("small")),
        "{}",
        a.body
    );
    let metrics = e.get("/metrics").await;
    assert!(
        metric(&metrics, "pointsman_fallbacks_total{model=\"big\"}") >= 4.0,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "pointsman_upstream_errors_total{model=\"big\",kind=\"timeout\"}"
        ) >= 1.0
    );
    let events = e.stop().await;
    let Event::Decision(d) = &events[0] else {
        panic!("a decision")
    };
    assert_eq!(
        d.tries
            .iter()
            .map(|t| t.outcome.as_str())
            .collect::<Vec<_>>(),
        ["status", "ok"]
    );
    assert_eq!(d.tries[0].status, Some(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_skips_a_failing_upstream() {
    let mut e = env(
        Kind::Zero,
        "[fallback]\nbreaker_failures = 2\nbreaker_cooldown_ms = 600000\n",
        "",
    )
    .await;
    e.stub("big").set_fault(Some(Fault::Fail));
    for _ in 0..2 {
        assert_eq!(
            e.chat("pointsman", "Hi", Value::Null).await.body["model"],
            "mid"
        );
    }
    let calls = e.stub("big").requests();
    let a = e.chat("pointsman", "Hi", Value::Null).await;
    assert_eq!(a.body["model"], "mid");
    assert_eq!(
        a.header("x-pointsman-tries"),
        "1",
        "the open circuit is skipped without a call"
    );
    assert_eq!(e.stub("big").requests(), calls);
    let metrics = e.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "pointsman_upstream_circuit_open{model=\"big\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "pointsman_upstream_circuit_open{model=\"mid\"}"),
        0.0
    );
    assert_eq!(
        metric(
            &metrics,
            "pointsman_upstream_circuit_opened_total{model=\"big\"}"
        ),
        1.0
    );
    // A pass-through to an open circuit fails fast.
    let a = e.chat("big", "Hi", Value::Null).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (502, Some("upstream_unavailable"))
    );
    let events = e.stop().await;
    let Event::Decision(d) = &events[2] else {
        panic!("a decision")
    };
    assert_eq!(d.tries[0].outcome, "circuit_open");
}

async fn read_stream(resp: reqwest::Response) -> Vec<String> {
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| e.trim_start_matches("data: ").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_pass_through_with_usage_and_cost() {
    let mut e = env(Kind::Zero, "", "").await;
    let body = json!({"model": "pointsman", "stream": true, "messages": [{"role": "user", "content": "Stream a haiku"}]});
    let resp = e.send_chat(&body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-pointsman-model"], "big");
    assert!(resp.headers().get("x-pointsman-cost-usd").is_none());
    let events = read_stream(resp).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c["model"] == "big"));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(text.starts_with("big answers big: "), "{text}");
    let usage = &chunks.last().unwrap()["usage"];
    assert!(usage["cost_usd"].as_f64().unwrap() > 0.0, "{usage}");

    // A first event that is not JSON: nothing has been sent yet, so the next model answers.
    e.stub("big").set_fault(Some(Fault::BadJson));
    let resp = e.send_chat(&body).await;
    assert_eq!(resp.headers()["x-pointsman-model"], "mid");
    assert_eq!(read_stream(resp).await.last().unwrap(), "[DONE]");

    // A stream that hangs after its first events: no fallback after the first byte; the stream
    // ends with an error event.
    e.stub("big").set_fault(Some(Fault::HangMidStream));
    let before = e.stub("mid").requests();
    let resp = e.send_chat(&body).await;
    assert_eq!(resp.status(), 200);
    let events = read_stream(resp).await;
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["code"], "upstream_stream_failed",
        "{events:?}"
    );
    assert_eq!(e.stub("mid").requests(), before);

    let log = e.stop().await;
    let decisions = decisions(&log);
    assert_eq!(decisions.len(), 3);
    assert!(
        decisions[0].stream && decisions[0].cost_usd.unwrap() > 0.0 && decisions[0].error.is_none()
    );
    assert_eq!(
        decisions[1]
            .tries
            .iter()
            .map(|t| t.outcome.as_str())
            .collect::<Vec<_>>(),
        ["malformed", "ok"]
    );
    assert_eq!(
        decisions[2].error.as_deref(),
        Some("upstream_stream_failed")
    );
    assert_eq!(decisions[2].tries[0].outcome, "stream_error");
}

/// 64 concurrent clients for a bounded time with faults injected: every request gets exactly
/// one answer or one error, the log holds exactly one decision event per request, and every
/// accepted feedback reaches the learner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_with_faults() {
    let e = env(
        Kind::LinUcb,
        "[learning]\nsave_every = 50\n[fallback]\nbreaker_failures = 1000\n",
        "max_concurrency = 16\ntimeout_ms = 10000\n",
    )
    .await;
    e.stub("big").set_fault(Some(Fault::Flaky));
    e.stub("small").set_fault(Some(Fault::Fail));
    let e = Arc::new(e);
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for c in 0..64 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut learned = 0u64;
            let mut i = 0;
            while Instant::now() < deadline && i < 200 {
                i += 1;
                let stream = (c + i) % 4 == 0;
                let model = if (c + i) % 7 == 0 { "mid" } else { "pointsman" };
                let body = json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": format!("client {c} request {i}")}]});
                let resp = e.send_chat(&body).await;
                let status = resp.status().as_u16();
                let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
                let text = resp.text().await.unwrap();
                if status == 200 {
                    assert!(text.contains("answers"), "{text}");
                    if model == "pointsman" {
                        let a = e.feedback(json!({"request_id": id, "quality": 0.5})).await;
                        assert_eq!(a.status, 200, "{}", a.body);
                        learned += u64::from(a.body["learned"] == true);
                    }
                } else {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    assert!(v["error"]["code"].is_string(), "{text}");
                }
                seen.push((id, status));
            }
            (seen, learned)
        }));
    }
    let mut all = Vec::new();
    let mut learned = 0;
    for t in tasks {
        let (seen, l) = t.await.unwrap();
        all.extend(seen);
        learned += l;
    }
    assert!(all.len() > 200, "only {} requests", all.len());
    eprintln!(
        "64 clients: {} requests, {} feedback learned",
        all.len(),
        learned
    );
    let ok = all.iter().filter(|(_, s)| *s == 200).count();
    assert!(ok * 10 > all.len() * 9, "{ok} of {} answered", all.len());
    let metrics = e.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "pointsman_learner_observations"),
        learned as f64,
        "no update lost"
    );
    assert_eq!(metric(&metrics, "pointsman_in_flight_requests"), 0.0);
    let mut e = Arc::into_inner(e).expect("every client is done");
    let log = e.stop().await;
    let mut per_id: HashMap<String, (usize, u16)> = HashMap::new();
    for d in decisions(&log) {
        per_id
            .entry(d.request_id.clone())
            .or_insert((0, d.status))
            .0 += 1;
    }
    assert_eq!(per_id.len(), all.len(), "one decision event per request");
    for (id, status) in &all {
        assert_eq!(per_id.get(id), Some(&(1, *status)), "{id}");
    }
    let feedback = feedbacks(&log).iter().filter(|f| f.learned).count();
    assert_eq!(feedback as u64, learned);
    // The saved state holds every observation.
    let state = std::fs::read_dir(e.dir.path().join("router.safetensors.state"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let saved = pointsman::load_router(&state).unwrap();
    assert_eq!(saved.as_learner().unwrap().observations(), learned);
}

#[path = "gateway/auth.rs"]
mod auth;
#[path = "gateway/errors.rs"]
mod errors;
#[path = "gateway/kinds.rs"]
mod kinds;
#[path = "gateway/learning.rs"]
mod learning;
#[path = "gateway/policies.rs"]
mod policies;
