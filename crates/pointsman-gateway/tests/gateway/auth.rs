//! Client tokens: a request's tenant comes from its bearer token, never from what it says.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_decide_the_tenant() {
    // token_env: a variable every test process has.
    let token_b = std::env::var("HOME").unwrap();
    let mut e = env(
        Kind::Zero,
        "[[auth.tokens]]\ntenant = \"team-a\"\ntoken = \"token-a\"\n[[auth.tokens]]\ntenant = \"team-b\"\ntoken_env = \"HOME\"\n",
        "",
    )
    .await;
    let body = json!({"model": "pointsman", "messages": [{"role": "user", "content": "Hi"}], "pointsman": {"tenant": "someone-else"}});
    let a = e.post("/v1/chat/completions", body.clone(), &[]).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let a = e
        .post(
            "/v1/chat/completions",
            body.clone(),
            &[("authorization", "Bearer wrong")],
        )
        .await;
    assert_eq!(a.status, 401);
    let a = e
        .post(
            "/v1/chat/completions",
            body.clone(),
            &[
                ("authorization", &format!("Bearer {token_b}")),
                ("x-pointsman-tenant", "x"),
            ],
        )
        .await;
    assert_eq!(a.status, 200);
    let id = a.header("x-request-id").to_string();
    // The scheme is case-insensitive (RFC 7235).
    for header in ["bearer token-a", "BEARER  token-a"] {
        let a = e
            .post(
                "/v1/chat/completions",
                body.clone(),
                &[("authorization", header)],
            )
            .await;
        assert_eq!(a.status, 200, "{header}: {}", a.body);
    }
    // Another tenant cannot give feedback on team-b's request.
    let a = e
        .post(
            "/v1/feedback",
            json!({"request_id": id, "quality": 1.0}),
            &[("authorization", "Bearer token-a")],
        )
        .await;
    assert_eq!(a.status, 404);
    let a = e
        .client
        .get(format!("{}/v1/models", e.base))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 401);
    let log = e.stop().await;
    let tenants: Vec<Option<&str>> = decisions(&log)
        .into_iter()
        .map(|d| d.tenant.as_deref())
        .collect();
    assert_eq!(
        tenants,
        [None, None, Some("team-b"), Some("team-a"), Some("team-a")]
    );
    // Two entries with one token (here a literal one and a token_env variable's value, only
    // known at start) are refused at start, naming both (an empty token too: config tests).
    let text = std::fs::read_to_string(e.dir.path().join("gateway.toml")).unwrap();
    let twice = text.replace("token = \"token-a\"", &format!("token = \"{token_b}\""));
    let path = e.dir.path().join("twice.toml");
    std::fs::write(&path, twice).unwrap();
    let config = Config::load(&path).unwrap();
    let err = pointsman_gateway::start_with(config, embedder())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "auth.tokens[0] (tenant \"team-a\") and auth.tokens[1] (tenant \"team-b\") have the same token"
        ),
        "{err}"
    );
}
