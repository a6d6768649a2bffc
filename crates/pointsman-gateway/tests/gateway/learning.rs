//! Online learning through the gateway: feedback reaches the learner, whose state is saved,
//! reloaded and restored.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_teaches_the_learner_which_is_saved_reloaded_and_restored() {
    let mut e = env(Kind::LinUcb, "[learning]\nsave_every = 5\n", "").await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let a = e
            .chat(
                "pointsman",
                &format!("Question number {i} about routing"),
                Value::Null,
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        ids.push(a.header("x-request-id").to_string());
    }
    for (i, id) in ids.iter().enumerate() {
        let a = e
            .feedback(json!({"request_id": id, "quality": (i % 3) as f64 / 2.0}))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["learned"], true);
        assert_eq!(a.body["observations"], i + 1);
    }
    let a = e
        .feedback(json!({"request_id": ids[0], "quality": 1.0}))
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (409, Some("feedback_already_given"))
    );
    let a = e
        .feedback(json!({"request_id": "pm-nope", "quality": 1.0}))
        .await;
    assert_eq!(a.status, 404);
    let a = e
        .feedback(json!({"request_id": ids[1], "quality": 1.5}))
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (400, Some("invalid_feedback"))
    );
    let metrics = e.get("/metrics").await;
    assert_eq!(metric(&metrics, "pointsman_learner_observations"), 12.0);
    // Periodic saves (every 5) wrote the state under <router>.state/.
    let state_dir = e.dir.path().join("router.safetensors.state");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(
        &e.get("/metrics").await,
        "pointsman_learner_saves_total{outcome=\"ok\"}",
    ) < 2.0
    {
        assert!(Instant::now() < deadline, "no periodic save");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read_dir(&state_dir).unwrap().count(), 1);

    // Reload: the state is saved first and loaded back; nothing learned is lost.
    let gw = e.gw.as_ref().unwrap();
    gw.reload().await.unwrap();
    let health: Value = serde_json::from_str(&e.get("/healthz").await).unwrap();
    assert_eq!(health["router"]["generation"], 1);
    assert_eq!(health["router"]["observations"], 12);
    // Requests decided before the reload still take feedback.
    let a = e
        .feedback(json!({"request_id": ids[1], "quality": 1.0}))
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (409, Some("feedback_already_given"))
    );
    let a = e.chat("pointsman", "One more", Value::Null).await;
    let id = a.header("x-request-id").to_string();
    let a = e
        .feedback(json!({"request_id": id, "quality": 1.0, "cost_usd": 0.001}))
        .await;
    assert_eq!(a.body["observations"], 13);

    // Shutdown saves; a new gateway on the same router file starts from the saved state.
    let log = e.stop().await;
    let feedback = feedbacks(&log);
    assert_eq!(feedback.len(), 12 + 3 + 1 + 1);
    assert_eq!(feedback.iter().filter(|f| f.learned).count(), 13);
    let decided: HashSet<&str> = decisions(&log)
        .into_iter()
        .map(|d| d.request_id.as_str())
        .collect();
    assert!(feedback
        .iter()
        .filter(|f| f.learned)
        .all(|f| decided.contains(f.request_id.as_str())));
    // The log imports as a dataset with partial labels (`pointsman import --from gateway-log`):
    // one query per answered request with feedback, the one model that answered labelled with
    // the feedback's quality, the logged embedding as the query's.
    let models = e.dir.path().join("models.json");
    let cards: serde_json::Map<String, Value> = MODELS
        .iter()
        .map(|m| {
            let card = json!({"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 1.0});
            (m.to_string(), card)
        })
        .collect();
    std::fs::write(&models, json!({ "models": cards }).to_string()).unwrap();
    let draft = pointsman::data::import(
        pointsman::data::ImportFormat::GatewayLog,
        &[e.dir.path().join("decisions.jsonl")],
        &pointsman::data::ImportOptions {
            models: Some(models),
            ..Default::default()
        },
    )
    .unwrap();
    let given: Vec<_> = feedback
        .iter()
        .filter(|f| f.error.is_none() && f.quality.is_some())
        .collect();
    assert_eq!(draft.rows.len(), given.len());
    for f in given {
        let row = draft.rows.iter().find(|r| r.id == f.request_id).unwrap();
        let observed: Vec<f64> = row.scores.iter().flatten().copied().collect();
        assert_eq!(observed, vec![f.quality.unwrap()], "{}", f.request_id);
    }
    assert_eq!(draft.embeddings.as_ref().map(|e| e.dim), Some(DIM));
    let config = Config::load(e.dir.path().join("gateway.toml")).unwrap();
    let gw = pointsman_gateway::start_with(config, embedder())
        .await
        .unwrap();
    let health: Value = e
        .client
        .get(format!("http://{}/healthz", gw.local_addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["router"]["observations"], 13);
    gw.shutdown().await.unwrap();
}

/// A `[learning.share]` Redis that nothing answers: the gateway serves and learns locally, and
/// the failed exchanges show in `/metrics` and `/healthz` instead of going unseen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_share_store_shows_in_metrics_and_health() {
    let mut e = env(
        Kind::LinUcb,
        "[learning.share]\nredis = \"redis://127.0.0.1:1/\"\ninterval_ms = 20\n",
        "",
    )
    .await;
    let a = e
        .chat("pointsman", "A question to learn from", Value::Null)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let id = a.header("x-request-id").to_string();
    let f = e.feedback(json!({"request_id": id, "quality": 1.0})).await;
    assert_eq!(
        (f.status, &f.body["learned"]),
        (200, &json!(true)),
        "{}",
        f.body
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(
        &e.get("/metrics").await,
        "pointsman_share{counter=\"failures\"}",
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "no failed exchange counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health: Value = serde_json::from_str(&e.get("/healthz").await).unwrap();
    assert_eq!(health["status"], "ok");
    assert!(
        health["share"]["failures"].as_u64().unwrap() >= 1,
        "{health}"
    );
    assert!(health["share"]["last_error"].is_string(), "{health}");
    e.stop().await;
}

/// Usage an upstream gets wrong (counts that are strings, null, negative, or floats beyond
/// exact integers) costs the answer's expected cost, as missing usage does; a huge but valid
/// usage costs at most the engine's ceiling. Every such cost is counted, learned from and
/// saved; a feedback cost above the ceiling is refused before anything is learned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_usage_costs_the_expected_cost_and_costs_stay_under_the_ceiling() {
    let mut e = env(Kind::LinUcb, "[learning]\nsave_every = 0\n", "").await;
    let ceiling = pointsman::pool::MAX_COST_USD;
    let cases = [
        (
            json!({"prompt_tokens": "10", "completion_tokens": null}),
            false,
        ),
        (
            json!({"prompt_tokens": 1e30, "completion_tokens": 5}),
            false,
        ),
        (
            json!({"prompt_tokens": 1e308, "completion_tokens": 1e308}),
            false,
        ),
        (
            json!({"prompt_tokens": -3, "completion_tokens": 5, "total_tokens": 2}),
            false,
        ),
        (json!("lots"), false),
        (
            json!({"prompt_tokens": u64::MAX, "completion_tokens": 0}),
            true,
        ),
    ];
    let mut ids = Vec::new();
    for (i, (usage, huge)) in cases.iter().enumerate() {
        for stream in [false, true] {
            let body = json!({"model": "pointsman", "stream": stream, "stub_usage": usage,
                "messages": [{"role": "user", "content": format!("Question {i}")}]});
            let resp = e.send_chat(&body).await;
            assert_eq!(resp.status(), 200, "{usage}");
            let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
            let header = resp
                .headers()
                .get("x-pointsman-cost-usd")
                .map(|v| v.to_str().unwrap().parse::<f64>().unwrap());
            let text = resp.text().await.unwrap();
            let reported = if stream {
                assert_eq!(header, None);
                // The final usage event carries the cost (when the usage is an object).
                text.split("\n\n")
                    .filter_map(|e| e.strip_prefix("data: "))
                    .filter_map(|e| serde_json::from_str::<Value>(e).ok())
                    .find_map(|c| c["usage"]["cost_usd"].as_f64())
            } else {
                let answer: Value = serde_json::from_str(&text).unwrap();
                let in_body = answer["usage"]["cost_usd"].as_f64();
                if usage.is_object() {
                    assert_eq!(in_body, header, "{usage}");
                }
                header
            };
            if usage.is_object() || !stream {
                let c = reported.unwrap_or_else(|| panic!("{usage} stream {stream}: {text}"));
                assert!(c > 0.0 && c <= ceiling, "{usage}: {c}");
                assert_eq!(c == ceiling, *huge, "{usage}: {c}");
            }
            ids.push((id, *huge));
        }
    }
    // A cost above the ceiling (or negative) is refused, naming cost_usd, and takes nothing:
    // the same request then takes a valid feedback.
    for cost in [1.7e308, 1.000_001e12, -1.0] {
        let f = e
            .feedback(json!({"request_id": ids[0].0, "quality": 1.0, "cost_usd": cost}))
            .await;
        assert_eq!(
            (
                f.status,
                f.body["error"]["code"].as_str(),
                f.body["error"]["param"].as_str()
            ),
            (400, Some("invalid_feedback"), Some("cost_usd")),
            "{cost}: {}",
            f.body
        );
    }
    let f = e
        .feedback(json!({"request_id": ids[0].0, "quality": 1.0, "cost_usd": ceiling}))
        .await;
    assert_eq!(
        (f.status, &f.body["learned"]),
        (200, &json!(true)),
        "{}",
        f.body
    );
    // Every other answer teaches the learner at the cost it was charged.
    for (id, _) in &ids[1..] {
        let f = e.feedback(json!({"request_id": id, "quality": 0.5})).await;
        assert_eq!(
            (f.status, &f.body["learned"]),
            (200, &json!(true)),
            "{}",
            f.body
        );
    }
    let metrics = e.get("/metrics").await;
    let spent: f64 = MODELS
        .iter()
        .map(|m| {
            metric(
                &metrics,
                &format!("pointsman_cost_usd_total{{model=\"{m}\"}}"),
            )
        })
        .sum();
    assert!(spent >= 2.0 * ceiling, "{metrics}");
    // The learner's sums stay finite: the shutdown save succeeds (stop unwraps it).
    let log = e.stop().await;
    let d = decisions(&log);
    assert_eq!(d.len(), ids.len());
    for (d, (_, huge)) in d.iter().zip(&ids) {
        let model = d.model.as_deref().unwrap();
        let expected = d
            .alternatives
            .iter()
            .find(|c| c.model == model)
            .unwrap()
            .cost;
        let cost = d.cost_usd.unwrap();
        if *huge {
            assert_eq!(cost, ceiling);
            assert!(d.usage.is_some());
        } else {
            assert_eq!(cost, expected, "{}", d.request_id);
            assert!(d.usage.is_none(), "{:?}", d.usage);
        }
    }
    let refused = feedbacks(&log)
        .into_iter()
        .filter(|f| f.error.as_deref() == Some("invalid_feedback"))
        .count();
    assert_eq!(refused, 3);
}
