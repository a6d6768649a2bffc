//! Errors at the edges: answers that are not chat answers, refused bodies, streams cut short by
//! the upstream or by shutdown.

use super::*;

/// Every answer carries `x-request-id` and every error is OpenAI's error object: unknown paths,
/// wrong methods, feedback, health and metrics included. A refused chat body is logged with the
/// `model` and `stream` it sent; routing options are checked on passed-through requests too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_has_a_request_id_and_errors_are_openai_errors() {
    let mut e = env(Kind::Zero, "", "").await;
    let send = |method: reqwest::Method, path: &str| {
        e.client
            .request(method, format!("{}{path}", e.base))
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    for (method, path, status, code, allow) in [
        (reqwest::Method::GET, "/nope", 404, "not_found", None),
        (
            reqwest::Method::GET,
            "/v1/chat/completions",
            405,
            "method_not_allowed",
            Some("POST"),
        ),
        (
            reqwest::Method::POST,
            "/v1/models",
            405,
            "method_not_allowed",
            Some("GET,HEAD"),
        ),
        (
            reqwest::Method::DELETE,
            "/v1/feedback",
            405,
            "method_not_allowed",
            Some("POST"),
        ),
    ] {
        let r = send(method.clone(), path).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert!(id.starts_with("pm-"), "{method} {path}: {id}");
        if let Some(allow) = allow {
            assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        }
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(path)));
    }
    for path in ["/healthz", "/metrics", "/v1/models"] {
        let r = send(reqwest::Method::GET, path).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("pm-"));
    }
    // Feedback, accepted or refused, has its own request id.
    let a = e.chat("pointsman", "Hi", Value::Null).await;
    let chat_id = a.header("x-request-id").to_string();
    for body in [
        json!({"request_id": chat_id, "quality": 2.0}),
        json!({"request_id": chat_id, "quality": 1.0}),
    ] {
        let f = e.feedback(body).await;
        let id = f.header("x-request-id");
        assert!(id.starts_with("pm-") && id != chat_id, "{id}");
    }

    // Refused chat bodies: the log keeps the model and stream they sent.
    let refused = [
        (
            json!({"model": "pointsman", "stream": true, "messages": []}),
            "missing_messages",
        ),
        (
            json!({"model": "pointsman", "stream": true, "messages": [{"content": "x"}]}),
            "invalid_messages",
        ),
        (
            json!({"model": "pointsman:cheap", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}),
            "invalid_stream",
        ),
        (
            json!({"model": "pointsman", "stream": true, "messages": [{"role": "user", "content": "x"}],
                   "pointsman": {"cost_weight": -1}}),
            "invalid_routing_option",
        ),
        // Routing options are checked on every request, passed-through ones included.
        (
            json!({"model": "small", "messages": [{"role": "user", "content": "x"}],
                   "pointsman": {"max_cost": "cheap"}}),
            "invalid_routing_option",
        ),
        (
            json!({"model": 7, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
            "missing_model",
        ),
    ];
    for (body, code) in &refused {
        let a = e.post("/v1/chat/completions", body.clone(), &[]).await;
        assert_eq!(
            (a.status, a.body["error"]["code"].as_str()),
            (400, Some(*code)),
            "{body}"
        );
        assert!(a.header("x-request-id").starts_with("pm-"));
    }
    let a = e
        .post(
            "/v1/chat/completions",
            json!({"model": "small", "messages": [{"role": "user", "content": "x"}]}),
            &[("x-pointsman-cost-weight", "lots")],
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (400, Some("invalid_routing_option"))
    );

    let log = e.stop().await;
    let d = decisions(&log);
    assert_eq!(
        d.len(),
        1 + refused.len() + 1,
        "no event for non-chat answers"
    );
    let logged: Vec<(Option<&str>, bool, Option<&str>)> = d[1..]
        .iter()
        .map(|d| (d.requested_model.as_deref(), d.stream, d.error.as_deref()))
        .collect();
    assert_eq!(
        logged,
        [
            (Some("pointsman"), true, Some("missing_messages")),
            (Some("pointsman"), true, Some("invalid_messages")),
            (Some("pointsman:cheap"), false, Some("invalid_stream")),
            (Some("pointsman"), true, Some("invalid_routing_option")),
            (Some("small"), false, Some("invalid_routing_option")),
            (None, true, Some("missing_model")),
            (Some("small"), false, Some("invalid_routing_option")),
        ]
    );
}

/// A stream the upstream closes cleanly but before `data: [DONE]` is a failure after the first
/// byte, like a stall: an error event for the client, a `stream_error` try, the failure counted
/// and told to the circuit breaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_stream_fails_like_a_broken_one() {
    // The stub ends a hang-stream answer after 100 ms, well within the 400 ms timeout.
    let stub = StubConfig {
        hang: Duration::from_millis(100),
        ..Default::default()
    };
    let mut e = env_with(
        Kind::Zero,
        "[fallback]\nbreaker_failures = 1\nbreaker_cooldown_ms = 600000\n",
        "",
        stub,
    )
    .await;
    e.stub("big").set_fault(Some(Fault::HangMidStream));
    let body = json!({"model": "pointsman", "stream": true, "messages": [{"role": "user", "content": "Stream a haiku"}]});
    let resp = e.send_chat(&body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-pointsman-model"], "big");
    let events = read_stream(resp).await;
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["code"], "upstream_stream_failed",
        "{events:?}"
    );
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("before its end (no data: [DONE])"));
    let metrics = e.get("/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "pointsman_upstream_errors_total{model=\"big\",kind=\"stream_error\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "pointsman_upstream_circuit_open{model=\"big\"}"),
        1.0,
        "the breaker was told: {metrics}"
    );
    // With big's circuit open the next request goes to mid without calling big.
    let a = e.chat("pointsman", "Hi", Value::Null).await;
    assert_eq!(
        (a.body["model"].as_str(), a.header("x-pointsman-tries")),
        (Some("mid"), "1")
    );
    let log = e.stop().await;
    let d = decisions(&log);
    assert_eq!(d[0].status, 200);
    assert_eq!(d[0].error.as_deref(), Some("upstream_stream_truncated"));
    assert_eq!(d[0].tries.len(), 1);
    assert_eq!(d[0].tries[0].outcome, "stream_error");
    assert_eq!(d[1].tries[0].outcome, "circuit_open");
}

/// Requests still in flight when shutdown's grace period ends are cut, the client told, and
/// each logged once with the error `shutdown` before the log closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_requests_after_the_grace_period_and_logs_them() {
    let mut e = env(
        Kind::Zero,
        "[limits]\nshutdown_grace_ms = 300\n",
        "timeout_ms = 20000\n",
    )
    .await;
    // big streams two events then stalls for 5 s; mid does not answer for 5 s.
    e.stub("big").set_fault(Some(Fault::HangMidStream));
    e.stub("mid").set_fault(Some(Fault::Hang));
    let story = json!({"model": "pointsman", "stream": true, "messages": [{"role": "user", "content": "A long story"}]});
    let stream = e.send_chat(&story).await;
    assert_eq!(stream.status(), 200);
    let stream_id = stream.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let reader = tokio::spawn(read_stream(stream));
    let (client, url) = (e.client.clone(), format!("{}/v1/chat/completions", e.base));
    let plain = tokio::spawn(async move {
        let r = client
            .post(url)
            .json(&json!({"model": "mid", "messages": [{"role": "user", "content": "Hi"}]}))
            .send()
            .await
            .unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        (r.status().as_u16(), id, r.json::<Value>().await.unwrap())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.stub("mid").requests() == 0 {
        assert!(
            Instant::now() < deadline,
            "the passed-through request never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t0 = Instant::now();
    let log = e.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let events = reader.await.unwrap();
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "shutdown", "{events:?}");
    let (status, plain_id, body) = plain.await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("shutdown")),
        "{body}"
    );
    let d = decisions(&log);
    assert_eq!(d.len(), 2, "one event per request, both in the closed log");
    let find = |id: &str| d.iter().find(|d| d.request_id == id).unwrap();
    let s = find(&stream_id);
    assert_eq!((s.status, s.error.as_deref()), (200, Some("shutdown")));
    assert_eq!(s.tries[0].outcome, "ok");
    let p = find(&plain_id);
    assert_eq!((p.status, p.error.as_deref()), (503, Some("shutdown")));
}
