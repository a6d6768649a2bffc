//! Writes the fixture the C and C++ tests and the gateway example run on, with decisions made by
//! the Rust API, so that the C side can be checked against Rust to the bit.
//!
//! ```sh
//! cargo run --release -p pointsman-capi --example fixture -- ../shared/data/llmrouter_dc OUT_DIR [ROWS]
//! ```
//!
//! It fits a kNN router on the dataset's train split and writes, into `OUT_DIR`:
//!
//! - `router.safetensors`: the saved router;
//! - `queries.txt`: `ROWS DIM`, then one line per test query: its prompt token count and its
//!   `DIM` embedding values;
//! - `expected.txt`: the Rust decisions, one per line, every float in shortest round-trip form
//!   (`strtod`/`strtof` read them back exactly):
//!   - `route W ROW MODEL QUALITY COST UTILITY`: `Router::route` at cost weight `W`, without
//!     prompt tokens (what `pm_router_route` sees);
//!   - `rank W ROW I MODEL QUALITY COST UTILITY`: entry `I` of `Router::top_k(.., 3)` at cost
//!     weight `W` with the query's prompt tokens (what `pm_router_rank` sees);
//! - `requests.jsonl`: the queries as gateway requests `{"id", "embedding", "prompt_tokens"}`;
//! - `bandit.safetensors`: a LinUCB router warm-started on the train split, for the tests that
//!   observe feedback while routing.
//! - `chain.safetensors`: a fixed-chain cascade without training data (`CascadeRouter::new`):
//!   the cheapest model (threshold 0.8), the median-priced one (0.8), the dearest (0), so that a
//!   session's steps depend on the confidences alone;
//! - `cascade.safetensors`: a dynamic cascade fitted on the train split (the default
//!   `CascadeConfig`, with its kNN estimator), and `cascade_expected.txt`: Rust sessions on the
//!   test queries (no prompt tokens, the router's cost weight), one per line:
//!   `session ROW BUDGET MAX_STEPS K (MODEL CONFIDENCE)×K ACCEPTED POSTERIOR TOTAL_COST
//!   BUDGET_EXHAUSTED STOP`: the session started with that budget (negative: none) and
//!   `MAX_STEPS` (0: the router's), asked for the K models in order and was given those
//!   confidences; `STOP` is the number of the `pm_cascade_stop_reason` constant.
//!
//! With the embedding model installed (the default folder, see `pointsman::embed`), also:
//!
//! - `texts.txt`: the texts of `models/all-MiniLM-L6-v2.reference.json` (beside the datasets
//!   folder), each as a `text` line (the text after one space), an `embedding` line (the Rust
//!   embedder's, one thread), a `reference` line (the reference values) and, for text that can be
//!   routed, one `route W MODEL QUALITY COST UTILITY` line per cost weight: what
//!   `pm_router_route_text` must return;
//! - `text_requests.jsonl`: test prompts as gateway requests `{"id": 100000 + row, "text"}`, and
//!   `text_expected.txt`: their decisions as `rank W ID 0 MODEL QUALITY COST UTILITY` lines (the
//!   text embedded by Rust, prompt tokens estimated from the text), for the load driver.

use std::fmt::Write as _;
use std::path::PathBuf;

use pointsman::data::Dataset;
use pointsman::routers::cascade::{CascadeConfig, CascadeLimits, CascadeRouter, Step, StopReason};
use pointsman::routers::knn::{KnnConfig, KnnRouter};
use pointsman::{Objective, QueryFeatures, Router};

/// The cost weights the expectations are written for (quality points per USD). The C and C++
/// tests and the gateway run read them from `expected.txt`.
const WEIGHTS: [f64; 4] = [0.0, 300.0, 1000.0, 3000.0];
/// Entries of each ranking.
const TOP: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 || args.len() > 4 {
        return Err("usage: fixture DATASET_DIR OUT_DIR [ROWS]".into());
    }
    let data = PathBuf::from(&args[1]);
    let out = PathBuf::from(&args[2]);
    let max_rows: usize = match args.get(3) {
        Some(r) => r.parse()?,
        None => 200,
    };
    std::fs::create_dir_all(&out)?;

    let ds = Dataset::load(&data)?;
    let config = KnnConfig {
        k: 40,
        ..KnnConfig::default()
    };
    let router = KnnRouter::fit(ds.train(), &config)?;
    let path = out.join("router.safetensors");
    router.save(&path)?;
    // Decide with the router as loaded from the file, exactly what C loads.
    let router = pointsman::load_router(&path)?;

    let bandit = pointsman::routers::bandit::LinUcbRouter::warm_start(
        ds.train(),
        pointsman::routers::bandit::LinearConfig::default(),
    )?;
    bandit.save(&out.join("bandit.safetensors"))?;
    let sessions = write_cascades(&ds, &out, max_rows)?;

    let test = ds.test();
    let rows = test.len().min(max_rows);
    let dim = test.dim();
    let mut queries = format!("{rows} {dim}\n");
    let mut requests = String::new();
    let mut expected = String::new();
    for r in 0..rows {
        let x = &test.embeddings()[r * dim..(r + 1) * dim];
        let tokens = test.prompt_tokens()[r];
        write!(queries, "{tokens:e}")?;
        for v in x {
            write!(queries, " {v:e}")?;
        }
        queries.push('\n');
        let values: Vec<String> = x.iter().map(|v| format!("{v:e}")).collect();
        writeln!(
            requests,
            "{{\"id\":{r},\"prompt_tokens\":{tokens:e},\"embedding\":[{}]}}",
            values.join(",")
        )?;

        let plain = QueryFeatures::new(x.to_vec())?;
        let with_tokens = plain.clone().with_prompt_tokens(tokens)?;
        for w in WEIGHTS {
            let objective = Objective::new(w);
            let d = router.route(&plain, &objective)?;
            writeln!(
                expected,
                "route {w:e} {r} {} {:e} {:e} {:e}",
                d.model, d.quality, d.cost, d.utility
            )?;
            for (i, a) in router
                .top_k(&with_tokens, &objective, TOP)?
                .iter()
                .enumerate()
            {
                writeln!(
                    expected,
                    "rank {w:e} {r} {i} {} {:e} {:e} {:e}",
                    a.model, a.quality, a.cost, a.utility
                )?;
            }
        }
    }
    std::fs::write(out.join("queries.txt"), queries)?;
    std::fs::write(out.join("expected.txt"), expected)?;
    std::fs::write(out.join("requests.jsonl"), requests)?;
    println!("fixture: {sessions} cascade sessions run by Rust");
    write_own_data(&ds, &data, &out, &*router, rows)?;
    if let Some(texts) = write_texts(&data, &out, &*router, ds.test(), rows)? {
        println!("fixture: {texts} texts embedded and routed by Rust");
    } else {
        println!(
            "fixture: no embedding model installed: no text fixtures (scripts/fetch-model.sh)"
        );
    }
    println!(
        "fixture: {} ({} models, dim {dim}), {rows} queries, {} cost weights, in {}",
        router.kind(),
        router.models().len(),
        WEIGHTS.len(),
        out.display()
    );
    Ok(())
}

/// The cascade fixtures; returns the number of sessions written.
fn write_cascades(
    ds: &Dataset,
    out: &std::path::Path,
    max_rows: usize,
) -> Result<usize, Box<dyn std::error::Error>> {
    let train = ds.train();
    let pool = train.pool();
    let mut by_cost: Vec<usize> = (0..pool.len()).collect();
    by_cost.sort_by(|&a, &b| {
        pool.estimate_cost(a, None)
            .total_cmp(&pool.estimate_cost(b, None))
            .then(a.cmp(&b))
    });
    let stages = [
        (pool.id(by_cost[0]), 0.8),
        (pool.id(by_cost[by_cost.len() / 2]), 0.8),
        (pool.id(by_cost[by_cost.len() - 1]), 0.0),
    ];
    let chain = CascadeRouter::new(pool.clone(), train.dim(), &CascadeConfig::chain(stages))?;
    chain.save(&out.join("chain.safetensors"))?;

    let path = out.join("cascade.safetensors");
    CascadeRouter::fit(train, &CascadeConfig::default())?.save(&path)?;
    // Run the sessions on the router as loaded from the file, exactly what C loads.
    let loaded = pointsman::load_router(&path)?;
    let cascade = loaded
        .as_cascade()
        .ok_or("the saved cascade loads as another kind")?;

    const CONFIDENCES: [f64; 5] = [0.05, 0.3, 0.6, 0.95, 0.5];
    let test = ds.test();
    let dim = test.dim();
    let rows = test.len().min(max_rows).min(60);
    let mut expected = String::new();
    let (mut n, mut exhausted) = (0, 0);
    for r in 0..rows {
        let query = QueryFeatures::new(test.embeddings()[r * dim..(r + 1) * dim].to_vec())?;
        let first_cost = cascade
            .start(&query, &CascadeLimits::default())?
            .next()
            .ok_or("a new session without a first call")?
            .expected_cost;
        // No budget, and one with room for the first call and half of it again.
        for (budget, max_steps) in [(-1.0, r % 2 * 2), (first_cost * 1.5, 0)] {
            let mut limits = CascadeLimits::default();
            if budget >= 0.0 {
                limits = limits.with_budget(budget);
            }
            if max_steps > 0 {
                limits = limits.with_max_steps(max_steps);
            }
            let mut session = cascade.start(&query, &limits)?;
            let mut calls = String::new();
            let mut k = 0;
            let outcome = loop {
                let model = session
                    .next()
                    .ok_or("a running session without a call")?
                    .model;
                let c = CONFIDENCES[(r + 2 * k) % CONFIDENCES.len()];
                write!(calls, " {model} {c:e}")?;
                k += 1;
                match session.observe(model, c)? {
                    Step::Escalate(_) => {}
                    Step::Accept(o) => break o,
                }
            };
            let stop = match outcome.stop {
                StopReason::Accepted => 1,
                StopReason::NotWorthEscalating => 2,
                StopReason::OutOfModels => 3,
                StopReason::BudgetExhausted => 4,
                StopReason::MaxSteps => 5,
                StopReason::Stopped => 6,
            };
            writeln!(
                expected,
                "session {r} {budget:e} {max_steps} {k}{calls} {} {:e} {:e} {} {stop}",
                outcome.accepted,
                outcome.posterior,
                outcome.total_cost,
                u8::from(outcome.budget_exhausted)
            )?;
            n += 1;
            exhausted += usize::from(outcome.budget_exhausted);
        }
    }
    if exhausted == 0 {
        return Err("no cascade session of the fixture ran out of budget".into());
    }
    std::fs::write(out.join("cascade_expected.txt"), expected)?;
    Ok(n)
}

/// The text fixtures; `None` when the embedding model is not installed.
fn write_texts(
    data: &std::path::Path,
    out: &std::path::Path,
    router: &dyn Router,
    test: &pointsman::data::Split,
    rows: usize,
) -> Result<Option<usize>, Box<dyn std::error::Error>> {
    use pointsman::embed::{default_model_dir, Embedder, EmbedderOptions};
    let dir = default_model_dir()?;
    if !dir.join("model.safetensors").is_file() {
        return Ok(None);
    }
    let embedder = Embedder::load(
        &dir,
        &EmbedderOptions {
            threads: 1,
            ..EmbedderOptions::default()
        },
    )?;
    let reference = data
        .parent()
        .ok_or("the dataset folder has no parent")?
        .join("../models/all-MiniLM-L6-v2.reference.json");
    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&reference)
            .map_err(|e| format!("cannot read {}: {e}", reference.display()))?,
    )?;
    let items = reference["items"]
        .as_array()
        .ok_or("the reference has no items")?;
    let mut texts = String::new();
    for item in items {
        let text = item["text"].as_str().ok_or("an item without text")?;
        if text.contains('\n') {
            return Err(format!("reference text {text:?} spans lines").into());
        }
        let (embedding, _) = embedder.embed(&[text])?;
        writeln!(texts, "text {text}")?;
        let values: Vec<String> = embedding.iter().map(|v| format!("{v:e}")).collect();
        writeln!(texts, "embedding {}", values.join(" "))?;
        let values: Vec<String> = item["embedding"]
            .as_array()
            .ok_or("an item without embedding")?
            .iter()
            .map(|v| v.as_f64().map(|v| format!("{v:e}")).ok_or("a non-number"))
            .collect::<Result<_, _>>()?;
        writeln!(texts, "reference {}", values.join(" "))?;
        if text.trim().is_empty() {
            continue;
        }
        let (features, _) = embedder.features(text)?;
        for w in WEIGHTS {
            let d = router.route(&features, &Objective::new(w))?;
            writeln!(
                texts,
                "route {w:e} {} {:e} {:e} {:e}",
                d.model, d.quality, d.cost, d.utility
            )?;
        }
    }
    std::fs::write(out.join("texts.txt"), texts)?;

    // Gateway requests with text: test prompts, decided as the gateway decides them.
    let mut requests = String::new();
    let mut expected = String::new();
    let mut n = 0;
    for (r, prompt) in test.prompts().iter().enumerate().take(rows) {
        if prompt.trim().is_empty() {
            continue;
        }
        let id = 100_000 + r;
        writeln!(
            requests,
            "{{\"id\":{id},\"text\":{}}}",
            serde_json::to_string(prompt)?
        )?;
        let (features, _) = embedder.features(prompt)?;
        for w in WEIGHTS {
            let top = router.top_k(&features, &Objective::new(w), 1)?;
            let d = top.first().ok_or("an empty ranking")?;
            writeln!(
                expected,
                "rank {w:e} {id} 0 {} {:e} {:e} {:e}",
                d.model, d.quality, d.cost, d.utility
            )?;
        }
        n += 1;
    }
    std::fs::write(out.join("text_requests.jsonl"), requests)?;
    std::fs::write(out.join("text_expected.txt"), expected)?;
    Ok(Some(items.len() + n))
}

/// The repricing and onboarding fixtures: `prices.json` (all models but the last repriced), `eight.safetensors`
/// (a kNN router fitted without one model), `stack.safetensors` (a stack of kNN and the zero
/// router), `own_data.txt` (that model's id and the dataset folder its labelled queries come
/// from) and `own_data_expected.txt` (`reprice`, `onboard`, `card`, `stack` and `stack-reprice`
/// lines as in expected.txt: the decisions of the repriced router, of the eight-model router
/// with the model added from the train split and from its card alone, and of the stack as
/// loaded and repriced).
fn write_own_data(
    ds: &Dataset,
    data: &std::path::Path,
    out: &std::path::Path,
    router: &dyn Router,
    rows: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let train = ds.train();
    let pool = train.pool();
    let card = |j: usize, scale: f64| {
        let c = pool.card(j);
        (
            c.id.clone(),
            serde_json::json!({
                "input_usd_per_mtok": c.input_usd_per_mtok * scale,
                "output_usd_per_mtok": c.output_usd_per_mtok * scale,
            }),
        )
    };
    // Every model but the last 20 times dearer: the last keeps its price (it is not listed).
    let models: serde_json::Map<String, serde_json::Value> =
        (0..pool.len() - 1).map(|j| card(j, 20.0)).collect();
    let prices = out.join("prices.json");
    std::fs::write(
        &prices,
        serde_json::to_string_pretty(&serde_json::json!({ "models": models }))?,
    )?;
    let any = pointsman::AnyRouter::load(out.join("router.safetensors"))?;
    let repriced = any.reprice(&pointsman::data::read_prices(&prices, pool)?)?;

    let held = pool.len() / 2;
    let others: Vec<usize> = (0..pool.len()).filter(|&j| j != held).collect();
    let config = KnnConfig {
        k: 40,
        ..KnnConfig::default()
    };
    KnnRouter::fit(&train.select_models(&others)?, &config)?
        .save(&out.join("eight.safetensors"))?;
    let eight = pointsman::AnyRouter::load(out.join("eight.safetensors"))?;
    let onboarded = eight.add_model(pool.card(held).clone(), Some(train))?;
    let from_card = eight.add_model(pool.card(held).clone(), None)?;
    // A stack (what `--router auto` may save): kNN and the zero router, weights fitted out of
    // fold; loaded from its file, and repriced with the same price list.
    let stack: pointsman::registry::RouterConfig = serde_json::from_value(serde_json::json!({
        "type": "stack",
        "members": [{"type": "knn", "k": 40}, {"type": "baseline", "rule": "zero"}],
    }))?;
    pointsman::AnyRouter::fit_config(&stack, train)?.save(out.join("stack.safetensors"))?;
    let stack = pointsman::AnyRouter::load(out.join("stack.safetensors"))?;
    let stack_repriced = stack.reprice(&pointsman::data::read_prices(&prices, pool)?)?;
    std::fs::write(
        out.join("own_data.txt"),
        format!(
            "{}\n{}\n",
            pool.id(held),
            std::fs::canonicalize(data)?.display()
        ),
    )?;

    let test = ds.test();
    let dim = test.dim();
    let mut expected = String::new();
    let mut moved = 0;
    for r in 0..rows.min(50) {
        let q = QueryFeatures::new(test.embeddings()[r * dim..(r + 1) * dim].to_vec())?;
        for w in WEIGHTS {
            let objective = Objective::new(w);
            for (label, r2) in [
                ("reprice", repriced.shared()),
                ("onboard", onboarded.shared()),
                ("card", from_card.shared()),
                ("stack", stack.shared()),
                ("stack-reprice", stack_repriced.shared()),
            ] {
                let d = r2.route(&q, &objective)?;
                writeln!(
                    expected,
                    "{label} {w:e} {r} {} {:e} {:e} {:e}",
                    d.model, d.quality, d.cost, d.utility
                )?;
                if label == "reprice" {
                    moved += usize::from(d.model != router.route(&q, &objective)?.model);
                }
            }
        }
    }
    std::fs::write(out.join("own_data_expected.txt"), expected)?;
    println!(
        "fixture: repricing changes {moved} decisions; {} onboarded",
        pool.id(held)
    );
    Ok(())
}
