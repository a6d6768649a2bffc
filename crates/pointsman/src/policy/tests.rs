use std::sync::Arc;

use super::*;
use crate::data::Split;
use crate::features::{FeatureBatch, QueryFeatures};
use crate::pool::{ModelCard, ModelPool};
use crate::router::{Estimates, Router};
use crate::routers::baseline::{Baseline, BaselineRouter};
use crate::ErrorKind;

/// Quality rises with the price: small 0.5 at 1e-5, mid 0.7 at 1e-4, big 0.9 at 1e-3 USD; the
/// OOD signal is the first embedding coordinate.
#[derive(Debug)]
struct Ladder {
    pool: ModelPool,
}

impl Router for Ladder {
    fn kind(&self) -> &'static str {
        "ladder-test"
    }
    fn models(&self) -> &ModelPool {
        &self.pool
    }
    fn dim(&self) -> usize {
        2
    }
    fn estimate(&self, batch: &FeatureBatch<'_>, out: &mut Estimates) -> crate::Result<()> {
        for r in 0..batch.rows() {
            let x = batch.row(r)[0];
            let (q, c) = out.row_mut(r);
            q.copy_from_slice(&[0.5, 0.7, 0.9]);
            c.copy_from_slice(&[1e-5, 1e-4, 1e-3]);
            out.signals[r].ood = Some(x.abs());
        }
        Ok(())
    }
}

fn ladder() -> Arc<dyn Router> {
    Arc::new(Ladder {
        pool: crate::fuzzing::policy_pool(),
    })
}

fn policy(json: &str) -> PolicyRouter {
    let config = PolicyConfig::from_json(json, "test").unwrap();
    PolicyRouter::new(ladder(), Policy::new(config).unwrap()).unwrap()
}

fn q(x: f32) -> QueryFeatures {
    QueryFeatures::new(vec![x, 1.0])
        .unwrap()
        .with_prompt_tokens(100.0)
        .unwrap()
}

#[test]
fn without_parts_the_policy_is_the_router() {
    let p = policy("{}");
    let f = q(0.1);
    for w in [0.0, 300.0, 3000.0, 1e6] {
        let d = p.route(&Request::new(&f).with_cost_weight(w)).unwrap();
        let plain = p.route_plain(&f, &Objective::new(w)).unwrap();
        assert_eq!(d.decision, plain);
        assert_eq!(d.audit.cost_weight, w);
        assert!(d.audit.rules.is_empty() && d.audit.excluded.is_empty());
    }
}

use crate::router::Objective;

#[test]
fn rules_first_match_wins_unless_continue() {
    let p = policy(
        r#"{"rules": [
            {"name": "code", "when": {"regex": ["(?i)\\bpython\\b"]}, "then": {"exclude": ["big"]}, "continue": true},
            {"name": "acme", "when": {"tenant": ["acme"]}, "then": {"force": "mid"}},
            {"name": "never", "when": {"tenant": ["acme"]}, "then": {"force": "small"}}
        ]}"#,
    );
    let f = q(0.1);
    let d = p
        .route(&Request::new(&f).with_text("Write Python code"))
        .unwrap();
    assert_eq!(d.audit.rules, ["code"]);
    assert_eq!(d.decision.model_id, "mid");
    assert_eq!(d.audit.excluded[0].reason, "rule code");
    let d = p
        .route(
            &Request::new(&f)
                .with_text("Write Python code")
                .with_tenant("acme"),
        )
        .unwrap();
    assert_eq!(d.audit.rules, ["code", "acme"]);
    assert_eq!(d.audit.forced.as_deref(), Some("mid"));
    // Without text, the text rule does not match; metadata rules still do.
    let d = p.route(&Request::new(&f).with_tenant("acme")).unwrap();
    assert_eq!(d.audit.rules, ["acme"]);
    // A forced model that is excluded: a typed refusal, not a silent pick.
    let p2 = policy(
        r#"{"rules": [{"name": "x", "then": {"exclude": ["mid"]}, "continue": true},
                      {"name": "y", "then": {"force": "mid"}}]}"#,
    );
    let e = p2.route(&Request::new(&f)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoModelFits);
    assert!(
        e.to_string().contains("rule y sends the query to \"mid\""),
        "{e}"
    );
}

#[test]
fn caps_exclude_and_say_so_when_none_fits() {
    // Latencies with 256 output tokens: small 1.38 s, mid 2.86 s, big 13.8 s.
    let p = policy(r#"{"caps": {"max_latency_s": 3.0}}"#);
    let f = q(0.1);
    let d = p.route(&Request::new(&f)).unwrap();
    assert_eq!(d.decision.model_id, "mid");
    assert_eq!(d.audit.excluded[0].reason, "max_latency");
    let d = p
        .route(&Request::new(&f).with_expected_output_tokens(10.0))
        .unwrap();
    assert_eq!(
        d.decision.model_id, "big",
        "short answers: big fits in 1.5 s"
    );
    let tight = policy(r#"{"caps": {"max_latency_s": 0.05}}"#);
    let e = tight.route(&Request::new(&f)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoModelFits);
    let (_, audit) = tight.route_audited(&Request::new(&f));
    assert_eq!(audit.refused.as_deref(), Some("no_model_fits"));
    assert_eq!(audit.excluded.len(), 3);
    let cost = policy(r#"{"caps": {"max_cost": 2e-4}}"#);
    assert_eq!(
        cost.route(&Request::new(&f)).unwrap().decision.model_id,
        "mid"
    );
    // Latency in the utility: at 0.1 quality points per second big (13.8 s) loses to mid.
    let weighted = policy(r#"{"weights": {"latency_per_s": 0.1}}"#);
    assert_eq!(
        weighted.route(&Request::new(&f)).unwrap().decision.model_id,
        "mid"
    );
}

#[test]
fn capabilities_and_context_windows() {
    let p = policy("{}");
    let f = q(0.1);
    let d = p
        .route(&Request::new(&f).with_need("vision").with_cost_weight(1e6))
        .unwrap();
    assert_eq!(d.decision.model_id, "big");
    let long = QueryFeatures::new(vec![0.1, 1.0])
        .unwrap()
        .with_prompt_tokens(5000.0)
        .unwrap();
    let d = p.route(&Request::new(&long).with_cost_weight(1e9)).unwrap();
    assert_ne!(d.decision.model_id, "small");
    assert_eq!(d.audit.excluded[0].reason, "context_window");
    let e = p
        .route(&Request::new(&f).with_need("teleport"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoModelFits);
}

#[test]
fn guard_on_the_router_signal_refuses_or_falls_back() {
    let refuse = policy(r#"{"guard": {"source": "router", "threshold": 0.5, "action": "refuse"}}"#);
    assert_eq!(
        refuse
            .route(&Request::new(&q(0.1)))
            .unwrap()
            .audit
            .guard
            .unwrap()
            .verdict,
        "pass"
    );
    let e = refuse.route(&Request::new(&q(5.0))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfDistribution);
    let fallback = policy(
        r#"{"guard": {"source": "router", "threshold": 0.5, "action": {"fallback": "mid"}}}"#,
    );
    let d = fallback.route(&Request::new(&q(5.0))).unwrap();
    assert_eq!(d.decision.model_id, "mid");
    assert_eq!(d.audit.guard.unwrap().verdict, "fallback");
    // A router without the signal: an error that says what to do.
    let pool = ModelPool::new(vec![
        ModelCard::new("a", 1.0, 1.0),
        ModelCard::new("b", 1.0, 1.0),
    ])
    .unwrap();
    let train =
        Split::from_arrays(pool, vec![1.0, 0.0], 2, vec![0.5, 0.9], vec![1e-5, 1e-3]).unwrap();
    let plain = Arc::new(BaselineRouter::fit(Baseline::BestSingle, &train).unwrap());
    let config = PolicyConfig::from_json(
        r#"{"guard": {"source": "router", "action": "refuse"}}"#,
        "t",
    )
    .unwrap();
    // Refused when the policy is bound to the router (a gateway fails at start, not on every
    // request).
    let e = PolicyRouter::new(plain, Policy::new(config).unwrap()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(
        e.to_string().contains("best-single router does not give")
            && e.to_string().contains("fit an embedding guard"),
        "{e}"
    );
    // The router's signal is a share: a threshold outside [0, 1] could never fire.
    let e = PolicyConfig::from_json(
        r#"{"guard": {"source": "router", "threshold": 7, "action": "refuse"}}"#,
        "t",
    )
    .unwrap_err();
    assert!(e.to_string().contains("outside [0, 1]"), "{e}");
    // A rule's expression is checked when the policy is read, before any router is bound.
    let e = PolicyConfig::from_json(
        r#"{"rules": [{"name": "r", "when": {"regex": ["("]}}]}"#,
        "t",
    )
    .unwrap_err();
    assert!(e.to_string().contains("bad regular expression"), "{e}");
    // A policy file is read only when it is a regular file: a FIFO without a writer hung.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("policy.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = PolicyConfig::load(&fifo).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    // Two budgets on one key would share (and double) its spend counters.
    let e = PolicyConfig::from_json(
        r#"{"budgets": [{"key": "tenant", "limit_usd": 1, "window": {"kind": "total"}},
                        {"key": "tenant", "limit_usd": 9, "window": {"kind": "rolling", "seconds": 60}}]}"#,
        "t",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("two budgets on the tenant key"),
        "{e}"
    );
    // A JSON array is not a policy (serde would have read one as the struct's fields).
    for text in ["[]", "[1, 0.5]", " 7"] {
        let e = PolicyConfig::from_json(text, "t").unwrap_err();
        assert!(
            e.to_string().contains("a policy is a JSON object"),
            "{text}: {e}"
        );
    }
    // A rule's metadata map with a repeated key lost one of its conditions (serde keeps the
    // last); a byte-order mark before the object is skipped.
    let e = PolicyConfig::from_json(
        r#"{"rules": [{"name": "r", "when": {"metadata": {"tier": "free", "tier": "paid"}},
                       "then": {"exclude": ["a"]}}]}"#,
        "t",
    )
    .unwrap_err();
    assert!(e.to_string().contains("key \"tier\" appears twice"), "{e}");
    PolicyConfig::from_json("\u{feff}{}", "t").unwrap();
    // An infinite ttl has no JSON form: refused, so that a saved policy always loads back.
    let e = PolicyConfig::from_toml("[sticky]\nttl_seconds = inf\n", "t").unwrap_err();
    assert!(e.to_string().contains("ttl_seconds inf"), "{e}");
    // A negative expected answer length would make a slow model look fast.
    let e = refuse
        .route(&Request::new(&q(0.1)).with_expected_output_tokens(-1e7))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("expected_output_tokens"), "{e}");
}

#[test]
fn embedding_guard_attached_saved_and_loaded() {
    let mut rng = crate::rng::SplitMix64::new(3);
    let rows: Vec<f32> = (0..200)
        .flat_map(|_| [1.0 + 0.05 * rng.normal() as f32, 0.05 * rng.normal() as f32])
        .collect();
    let guard = EmbeddingGuard::fit_rows(&rows, 2, None, None, &GuardFit::default()).unwrap();
    let policy = Policy::new(PolicyConfig::default())
        .unwrap()
        .with_guard(guard)
        .unwrap();
    let p = PolicyRouter::new(ladder(), policy.clone()).unwrap();
    let inside = QueryFeatures::new(vec![1.0, 0.01]).unwrap();
    assert!(p.route(&Request::new(&inside)).is_ok());
    let e = p
        .route(&Request::new(&QueryFeatures::new(vec![0.0, 1.0]).unwrap()))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfDistribution);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    policy.save(&path).unwrap();
    assert!(dir.path().join("policy.toml.guard.safetensors").is_file());
    // Another policy saved under the same stem keeps its own guard (they shared one).
    policy.save(&dir.path().join("policy.json")).unwrap();
    assert!(dir.path().join("policy.json.guard.safetensors").is_file());
    let back = Policy::load(&path).unwrap();
    assert_eq!(
        back.config().guard.as_ref().unwrap().file.as_deref(),
        Some(std::path::Path::new("policy.toml.guard.safetensors"))
    );
    assert_eq!(back.guard(), policy.guard());
    let p2 = PolicyRouter::new(ladder(), back).unwrap();
    assert_eq!(
        p2.route(&Request::new(&QueryFeatures::new(vec![0.0, 1.0]).unwrap()))
            .unwrap_err()
            .kind(),
        ErrorKind::OutOfDistribution
    );
}

#[test]
fn budgets_pace_then_stop_hard() {
    // 10 requests of a tenant with 2e-3 USD: 2e-4 per request, so mid (1e-4) and not big
    // (1e-3) once the curve knows the traffic.
    let p = policy(
        r#"{"budgets": [{"key": "tenant", "limit_usd": 2e-3,
                          "window": {"kind": "total", "requests": 10}}]}"#,
    );
    let f = q(0.1);
    let batch_rows: Vec<f32> = (0..20).flat_map(|_| [0.1f32, 1.0]).collect();
    p.warm_pacing(&FeatureBatch::new(&batch_rows, 2).unwrap())
        .unwrap();
    let req = Request::new(&f).with_tenant("acme").at(1000.0);
    let mut spent = 0.0;
    let mut models = Vec::new();
    loop {
        match p.route(&req) {
            Ok(d) => {
                spent += d.decision.cost;
                models.push(d.decision.model_id.clone());
                assert!(d.audit.budgets[0].cost_weight.is_some());
                p.record(&req, Some(&d.decision.model_id), d.decision.cost)
                    .unwrap();
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::BudgetExhausted);
                assert!(e.to_string().contains("tenant:acme"), "{e}");
                break;
            }
        }
        assert!(models.len() < 100);
    }
    assert!(spent <= 2e-3 + 1e-15, "{spent}");
    assert_eq!(models[0], "mid", "{models:?}");
    assert!(spent > 1.9e-3, "{spent} {models:?}");
    // Another tenant has its own budget; a request without a tenant has none.
    assert_eq!(
        p.route(&Request::new(&f).with_tenant("other"))
            .unwrap()
            .decision
            .model_id,
        "mid"
    );
    assert!(p.route(&Request::new(&f)).unwrap().audit.budgets.is_empty());
}

/// A state that holds (as a shared one does) and records every charge, in order.
#[derive(Debug, Default)]
struct Recording {
    inner: MemoryState,
    charges: std::sync::Mutex<Vec<f64>>,
}

impl PolicyState for Recording {
    fn add(&self, key: &str, bucket: i64, usd: f64, requests: u64, keep_from: i64) {
        if usd != 0.0 {
            self.charges.lock().unwrap().push(usd);
        }
        self.inner.add(key, bucket, usd, requests, keep_from);
    }
    fn totals(&self, key: &str, from: i64) -> Totals {
        self.inner.totals(key, from)
    }
    fn session(&self, session: &str) -> Option<SessionEntry> {
        self.inner.session(session)
    }
    fn set_session(&self, session: &str, entry: SessionEntry) {
        self.inner.set_session(session, entry)
    }
    fn holds(&self) -> bool {
        true
    }
}

/// Settling a call charges its actual cost before it releases its hold: a replica reading the
/// shared total in between sees both, never neither, so holds taken meanwhile cannot carry
/// the actual spend past the limit.
#[test]
fn settling_charges_the_actual_cost_before_releasing_the_hold() {
    let state = Arc::new(Recording::default());
    let config = PolicyConfig::from_json(
        r#"{"budgets": [{"key": "tenant", "limit_usd": 1e-2, "window": {"kind": "total"},
                          "pace": false, "stop_margin": 2}]}"#,
        "test",
    )
    .unwrap();
    let p = PolicyRouter::new(
        ladder(),
        Policy::new(config).unwrap().with_state(state.clone()),
    )
    .unwrap();
    let f = q(0.1);
    let req = Request::new(&f).with_tenant("acme").at(1000.0);
    let d = p.route(&req).unwrap();
    let hold = d.audit.held.iter().map(|h| h.usd).sum::<f64>();
    assert!(hold > 0.0);
    let actual = d.decision.cost * 1.5;
    state.charges.lock().unwrap().clear();
    p.settle(&req, &d.audit.held, Some(&d.decision.model_id), actual)
        .unwrap();
    assert_eq!(*state.charges.lock().unwrap(), vec![actual, -hold]);
    assert!((state.totals("tenant:acme", i64::MIN).spent - actual).abs() < 1e-15);
}

#[test]
fn hard_cut_off_spends_at_the_requested_weight_until_the_stop() {
    let p = policy(
        r#"{"budgets": [{"key": "global", "limit_usd": 2.5e-3, "pace": false,
                          "window": {"kind": "total"}}]}"#,
    );
    let f = q(0.1);
    let req = Request::new(&f);
    let mut models = Vec::new();
    while let Ok(d) = p.route(&req) {
        p.record(&req, None, d.decision.cost).unwrap();
        models.push(d.decision.model_id);
    }
    assert_eq!(models[..2], ["big", "big"]);
    assert_eq!(models.len(), 2 + 5, "{models:?}");
}

#[test]
fn episodes_spend_within_their_budget() {
    let p = policy("{}");
    let rows: Vec<f32> = (0..20).flat_map(|_| [0.1f32, 1.0]).collect();
    p.warm_pacing(&FeatureBatch::new(&rows, 2).unwrap())
        .unwrap();
    let f = q(0.1);
    // A blank id would key every such episode's spend together; margins are bounded.
    for id in ["", "   "] {
        let e = Episode::new(id, 1e-3, 5).unwrap_err().to_string();
        assert!(e.contains("not empty or blank"), "{e}");
    }
    let e = Episode::new("e1", 1e300, 5)
        .and_then(|e| e.with_stop_margin(1e308))
        .unwrap_err()
        .to_string();
    assert!(e.contains("stop_margin 1e308 is not in [1, 1e6]"), "{e}");
    let e = Episode::new("e1", -1e-300, 5).unwrap_err().to_string();
    assert!(e.contains("budget -1e-300 USD"), "{e}");
    let episode = Episode::new("e1", 1e-3, 5).unwrap();
    let req = Request::new(&f).with_episode(episode);
    let mut total = 0.0;
    for _ in 0..5 {
        let d = p.route(&req).unwrap();
        assert!(d.audit.budgets[0].key == "episode:e1");
        total += d.decision.cost;
        p.record(&req, None, d.decision.cost).unwrap();
    }
    assert!(total <= 1e-3, "{total}");
    assert_eq!(p.budgets(&req)[0].requests, 5);
}

#[test]
fn sticky_sessions_keep_their_model_within_the_margin() {
    let p = policy(r#"{"sticky": {"margin": 0.15, "ttl_seconds": 60}}"#);
    let f = q(0.1);
    let s = |w: f64, t: f64| Request::new(&f).with_session("s").with_cost_weight(w).at(t);
    assert_eq!(p.route(&s(0.0, 0.0)).unwrap().decision.model_id, "big");
    // At 300 per USD mid is worth 0.67 and big 0.6: mid wins by 0.07 < 0.15, big is kept.
    let d = p.route(&s(300.0, 1.0)).unwrap();
    assert_eq!(d.decision.model_id, "big");
    let a = d.audit.sticky.unwrap();
    assert!(a.kept && (a.gain.unwrap() - 0.07).abs() < 1e-9);
    // At 1000 mid beats big by 0.7: the session switches.
    let d = p.route(&s(1000.0, 2.0)).unwrap();
    assert_eq!(d.decision.model_id, "mid");
    assert!(!d.audit.sticky.unwrap().kept);
    // After the time-to-live, nothing is kept.
    let d = p.route(&s(0.0, 100.0)).unwrap();
    assert_eq!(d.decision.model_id, "big");
    assert_eq!(d.audit.sticky.unwrap().previous, None);
    // record() sets the model that answered.
    p.record(&s(0.0, 101.0), Some("small"), 0.0).unwrap();
    assert_eq!(
        p.route(&s(0.0, 102.0))
            .unwrap()
            .audit
            .sticky
            .unwrap()
            .previous
            .as_deref(),
        Some("small")
    );
    // A caller that settles every call writes the session then, with the model that answered:
    // its decision alone leaves the session where it was, and so does a call that failed.
    let later = |t: f64| {
        let mut r = s(0.0, t);
        r.session_on_settle = true;
        r
    };
    let previous = |t: f64| p.route(&later(t)).unwrap().audit.sticky.unwrap().previous;
    p.record(&later(102.5), Some("small"), 0.0).unwrap();
    p.route(&later(103.0).with_allowed(["big"])).unwrap();
    assert_eq!(previous(104.0).as_deref(), Some("small"));
    p.settle(&later(105.0), &[], None, 0.0).unwrap();
    assert_eq!(previous(106.0).as_deref(), Some("small"));
    p.settle(&later(107.0), &[], Some("mid"), 0.0).unwrap();
    assert_eq!(previous(108.0).as_deref(), Some("mid"));
}

#[test]
fn policies_are_shared_between_threads() {
    let p = policy(
        r#"{"budgets": [{"key": "tenant", "limit_usd": 1.0, "window": {"kind": "total", "requests": 4000}}],
            "sticky": {}}"#,
    );
    std::thread::scope(|scope| {
        for t in 0..4 {
            let p = p.clone();
            scope.spawn(move || {
                let f = q(0.1);
                for i in 0..500 {
                    let session = format!("s{t}-{}", i % 7);
                    let req = Request::new(&f).with_tenant("acme").with_session(session);
                    let d = p.route(&req).unwrap();
                    p.record(&req, Some(&d.decision.model_id), 1e-4).unwrap();
                }
            });
        }
    });
    let f = q(0.1);
    let b = &p.budgets(&Request::new(&f).with_tenant("acme"))[0];
    assert_eq!(b.requests, 2000);
    assert!((b.spent - 0.2).abs() < 1e-9, "{}", b.spent);
}

#[test]
fn audit_is_json() {
    let p = policy(r#"{"rules": [{"name": "r", "then": {"cost_weight": 5}}]}"#);
    let f = q(0.1);
    let d = p.route(&Request::new(&f)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&d.audit.to_json()).unwrap();
    assert_eq!(v["rules"][0], "r");
    assert_eq!(v["cost_weight"], 5.0);
}
