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
//! - `requests.jsonl`: the queries as gateway requests `{"id", "embedding", "prompt_tokens"}`.

use std::fmt::Write as _;
use std::path::PathBuf;

use pointsman::data::Dataset;
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
    let router = pointsman::io::load_router(&path)?;

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
    println!(
        "fixture: {} ({} models, dim {dim}), {rows} queries, {} cost weights, in {}",
        router.kind(),
        router.models().len(),
        WEIGHTS.len(),
        out.display()
    );
    Ok(())
}
