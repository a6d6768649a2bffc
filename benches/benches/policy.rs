//! The decision-time overhead of the policy layer (issue 20), on llmrouter_dc (9 models,
//! 384-dimensional MiniLM embeddings, 5,489 train queries):
//!
//! - `policy/plain`: the router's decision step alone on precomputed estimates (choose and
//!   build the decision), the baseline every other figure is compared with;
//! - `policy/metadata+budget+sticky+caps`: three metadata rules (tenant, task tag, prompt
//!   tokens), a paced tenant budget, stickiness over 1,000 sessions, and cost and latency caps;
//!   its overhead is its time minus `plain` (target ≤ 2 µs);
//! - `policy/regex10`: ten regular-expression rules on a 2,000-character prompt (none matches,
//!   so all ten run), reported separately;
//! - `policy/guard-router`: the guard on the router's own OOD signal (adds a comparison);
//! - `policy/guard-embeddings`: the relative-Mahalanobis guard fitted on the training
//!   embeddings, against `route/knn` and `route/knn-scan`, an exact kNN decision over the same
//!   training set (with and without its int8 prefilter).
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p pointsman-bench --bench policy`; docs/benchmarks.md
//! records the medians. `cargo test -p pointsman-bench --benches` runs each once.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pointsman::policy::{EmbeddingGuard, GuardFit, Policy, PolicyConfig, PolicyRouter, Request};
use pointsman::router::{Decision, Estimates};
use pointsman::routers::knn::{KnnConfig, KnnRouter};
use pointsman::{ModelPool, Objective, QueryFeatures, Router};
use pointsman_bench::{llmrouter_dc, test_queries};

/// A router that hands out precomputed estimates, so that a bench measures the decision step
/// and the policy, not the estimate.
#[derive(Debug)]
struct Precomputed {
    pool: ModelPool,
    dim: usize,
}

impl Router for Precomputed {
    fn kind(&self) -> &'static str {
        "precomputed"
    }
    fn models(&self) -> &ModelPool {
        &self.pool
    }
    fn dim(&self) -> usize {
        self.dim
    }
    /// Only `PolicyRouter::new` calls it, to check that the router gives the OOD signal the
    /// guard of source `router` reads: the precomputed estimates (the kNN's) carry it.
    fn estimate(
        &self,
        batch: &pointsman::FeatureBatch<'_>,
        out: &mut Estimates,
    ) -> pointsman::Result<()> {
        for r in 0..batch.rows() {
            out.signals[r].ood = Some(0.0);
        }
        Ok(())
    }
}

const BASE: &str = r#"{
  "cost_weight": 300,
  "caps": {"max_cost": 0.01, "max_latency_s": 60},
  "rules": [
    {"name": "free-tier", "when": {"tenant": ["free"]}, "then": {"exclude": ["llama3-chatqa-1.5-70b"]}},
    {"name": "math", "when": {"task": ["gsm8k"]}, "then": {"cost_weight": 100}},
    {"name": "long", "when": {"min_prompt_tokens": 4000}, "then": {"exclude": ["codegemma-7b"]}}
  ],
  "budgets": [{"key": "tenant", "limit_usd": 1e9, "window": {"kind": "total", "requests": 1000000000}}],
  "sticky": {"margin": 0.02, "capacity": 10000}
}"#;

fn regex_rules() -> String {
    let patterns = [
        r"(?i)\bdef\s+\w+\(",
        r"(?i)\bclass\s+\w+\s*[:(]",
        r"(?i)\bSELECT\b.+\bFROM\b",
        r"\b\d{3}-\d{2}-\d{4}\b",
        r"(?i)\bpassword\s*[:=]",
        r"(?i)translate (this|the following) into \w+",
        r"(?i)\b(sudo|rm\s+-rf)\b",
        r"[\w.+-]+@[\w-]+\.[\w.]+",
        r"(?i)\bproof\b.*\btheorem\b",
        r"(?i)^\s*#include\s*<",
    ];
    let rules: Vec<String> = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                r#"{{"name": "re{i}", "when": {{"regex": [{}]}}, "then": {{"exclude": ["codegemma-7b"]}}}}"#,
                serde_json::to_string(p).expect("a string")
            )
        })
        .collect();
    format!(r#"{{"rules": [{}]}}"#, rules.join(","))
}

fn bench(c: &mut Criterion) {
    let ds = llmrouter_dc();
    let train = ds.train();
    let queries = test_queries(&ds);
    let knn = KnnRouter::fit(train, &KnnConfig::default()).expect("kNN fits");
    let mut knn_scan = knn.clone();
    knn_scan.set_exact_prefilter(false);
    // The kNN's estimates of the test queries, handed out by the precomputed router.
    let est_all = knn
        .estimate_batch(&ds.test().features().expect("embeddings"))
        .expect("estimates");
    let m = ds.pool().len();
    // Latency figures on the cards, for the latency cap.
    let pool = ModelPool::new(
        ds.pool()
            .cards()
            .iter()
            .map(|c| c.clone().with_latency(300.0, 80.0))
            .collect(),
    )
    .expect("a pool");
    let router: Arc<dyn Router> = Arc::new(Precomputed {
        pool,
        dim: ds.test().dim(),
    });
    let row = |i: usize| {
        let mut e = Estimates::new(1, m);
        let (q, c) = e.row_mut(0);
        q.copy_from_slice(est_all.quality_row(i));
        c.copy_from_slice(est_all.cost_row(i));
        e.signals[0] = est_all.signals[i];
        e
    };
    let rows: Vec<Estimates> = (0..queries.len()).map(row).collect();
    let tasks = ds.test().tasks();
    let featured: Vec<QueryFeatures> = queries
        .iter()
        .zip(tasks)
        .map(|(q, t)| match t {
            Some(t) => q.clone().with_task(t.clone()),
            None => q.clone(),
        })
        .collect();
    let sessions: Vec<String> = (0..1000).map(|i| format!("session-{i}")).collect();
    let prompt: String = "Please summarise the following report about river ecology and water quality in the upper basin. "
        .repeat(21)
        .chars()
        .take(2000)
        .collect();

    let mut group = c.benchmark_group("policy");
    let mut i = 0usize;
    group.bench_function(BenchmarkId::from_parameter("plain"), |b| {
        b.iter(|| {
            i = (i + 1) % rows.len();
            let mut est = rows[i].clone();
            let batch = featured[i].as_batch();
            let mut out = [0u32];
            router.choose(&batch, &est, 300.0, None, &mut out);
            est.quality[0] += 0.0;
            Decision::from_estimates(router.models(), &est, 0, out[0] as usize, 300.0, None)
        })
    });
    let with = |json: &str, guard: Option<EmbeddingGuard>| {
        let mut policy = Policy::new(PolicyConfig::from_json(json, "bench").expect("a policy"))
            .expect("a policy");
        if let Some(g) = guard {
            policy = policy.with_guard(g).expect("a guard");
        }
        PolicyRouter::new(router.clone(), policy).expect("the policy binds")
    };
    let full = with(BASE, None);
    full.warm_pacing(&ds.test().features().expect("embeddings"))
        .ok();
    let mut i = 0usize;
    group.bench_function(
        BenchmarkId::from_parameter("metadata+budget+sticky+caps"),
        |b| {
            b.iter(|| {
                i = (i + 1) % rows.len();
                let mut est = rows[i].clone();
                let req = Request::new(&featured[i])
                    .with_tenant("acme")
                    .with_session(sessions[i % sessions.len()].as_str());
                full.decide(&req, &mut est, None).0.expect("a decision")
            })
        },
    );
    let regex = with(&regex_rules(), None);
    let mut i = 0usize;
    group.bench_function(BenchmarkId::from_parameter("regex10"), |b| {
        b.iter(|| {
            i = (i + 1) % rows.len();
            let mut est = rows[i].clone();
            let req = Request::new(&featured[i]).with_text(&prompt);
            regex.decide(&req, &mut est, None).0.expect("a decision")
        })
    });
    let guard_router = with(
        // 1.0: the signal is a share, never above 1, so the guard is read and never refuses.
        r#"{"guard": {"source": "router", "threshold": 1.0, "action": "refuse"}}"#,
        None,
    );
    let mut i = 0usize;
    group.bench_function(BenchmarkId::from_parameter("guard-router"), |b| {
        b.iter(|| {
            i = (i + 1) % rows.len();
            let mut est = rows[i].clone();
            guard_router
                .decide(&Request::new(&featured[i]), &mut est, None)
                .0
                .expect("a decision")
        })
    });
    let fitted = EmbeddingGuard::fit(train, &GuardFit::default()).expect("the guard fits");
    let guard_embeddings = with(
        r#"{"guard": {"source": "embeddings", "threshold": 1e30, "action": "refuse"}}"#,
        Some(fitted),
    );
    let mut i = 0usize;
    group.bench_function(BenchmarkId::from_parameter("guard-embeddings"), |b| {
        b.iter(|| {
            i = (i + 1) % rows.len();
            let mut est = rows[i].clone();
            guard_embeddings
                .decide(&Request::new(&featured[i]), &mut est, None)
                .0
                .expect("a decision")
        })
    });
    group.finish();
    let objective = Objective::new(300.0);
    let mut group = c.benchmark_group("route");
    for (name, r) in [("knn", &knn), ("knn-scan", &knn_scan)] {
        let mut i = 0usize;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                r.route(&queries[i], &objective).expect("a decision")
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
