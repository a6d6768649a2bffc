//! Fit a router on a dataset's train split, calibrate its cost weight to a budget, and route a few
//! test queries.
//!
//! ```sh
//! cargo run --release -p pointsman-examples --example quickstart -- ../shared/data/llmrouter_dc
//! ```

use pointsman::calibrate::cost_weight_for_mean_cost;
use pointsman::data::Dataset;
use pointsman::routers::baseline::{Baseline, BaselineRouter};
use pointsman::{Objective, QueryFeatures, Router};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data/llmrouter_dc".into());
    let ds = Dataset::load(&dir)?;
    println!(
        "{}: {} models, {} train / {} test queries",
        ds.name(),
        ds.pool().len(),
        ds.train().len(),
        ds.test().len()
    );

    let router = BaselineRouter::fit(Baseline::Zero, ds.train())?;

    // Spend at most half of what the most expensive model would cost per query.
    let max_cost = ds.train().mean_costs().into_iter().fold(0.0, f64::max);
    let cal = cost_weight_for_mean_cost(&router, &ds.train().features()?, 0.5 * max_cost)?;
    println!(
        "cost weight {:.1} quality points per USD: expected {:.2e} USD and quality {:.3} per query",
        cal.cost_weight, cal.mean_cost, cal.mean_quality
    );

    let test = ds.test();
    let objective = Objective::new(cal.cost_weight);
    for r in 0..3 {
        let dim = test.dim();
        let query = QueryFeatures::new(test.embeddings()[r * dim..(r + 1) * dim].to_vec())?
            .with_prompt_tokens(test.prompt_tokens()[r])?;
        let d = router.route(&query, &objective)?;
        println!(
            "{}: {} (expected quality {:.3}, cost {:.2e} USD; runner-up {})",
            test.ids()[r],
            d.model_id,
            d.quality,
            d.cost,
            d.alternatives.first().map_or("-", |a| a.model_id.as_str())
        );
    }
    Ok(())
}
