//! Router kinds the gateway serves beyond the zero baseline and LinUCB of the other tests.

use super::*;

/// What `pointsman train --router auto` may save beyond knn, mf and the learners — an IRT router
/// and a stack — serves like any router file, repriced by the configured prices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_irt_and_stack_router_files() {
    for (kind, name) in [(Kind::Irt, "irt"), (Kind::Stack, "stack")] {
        let mut e = env(kind, "", "").await;
        let a = e
            .chat(
                "pointsman",
                "Write a haiku about trains.",
                json!({"cost_weight": 0.0}),
            )
            .await;
        assert_eq!(a.status, 200, "{name}: {}", a.body);
        let chosen = a.header("x-pointsman-model").to_string();
        assert!(MODELS.contains(&chosen.as_str()), "{name}: {chosen}");
        // At a high cost weight the configured prices (small 0.1, big 10 USD / 1M tokens)
        // decide: the cheapest model.
        let cheap = e
            .chat(
                "pointsman",
                "Write a haiku about trains.",
                json!({"cost_weight": 1e9}),
            )
            .await;
        assert_eq!(cheap.header("x-pointsman-model"), "small", "{name}");
        let log = e.stop().await;
        let d = decisions(&log);
        assert_eq!(d.len(), 2, "{name}");
        assert_eq!(d[0].router.as_ref().unwrap().kind, name);
    }
}
