//! Fit a kNN router on a dataset's train split, calibrate its cost weight to a budget on held-out
//! queries, and route a few test queries: different queries go to different models.
//!
//! ```sh
//! cargo run --release -p pointsman-examples --example quickstart -- ../shared/data/llmrouter_dc
//! ```

use pointsman::calibrate::cost_weight_for_mean_cost;
use pointsman::data::Dataset;
use pointsman::routers::knn::{KnnConfig, KnnRouter};
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

    // A fixed config: `pointsman train` chooses one by cross-validation instead (slower).
    let router = KnnRouter::fit(
        ds.train(),
        &KnnConfig {
            k: 50,
            ..Default::default()
        },
    )?;

    // Spend at most 1.5e-4 USD per query on average, calibrated on queries the router was not
    // fitted on (only their features are read, no labels).
    let test = ds.test();
    let queries = test.features()?;
    let target = 1.5e-4;
    let cal = cost_weight_for_mean_cost(&router, &queries, target)?;
    println!(
        "cost weight {:.0} gives {:.2e} USD per query (target {target:.2e}), expected quality {:.3}",
        cal.cost_weight, cal.mean_cost, cal.mean_quality
    );

    // The first test query of each task: a logic puzzle, a maths word problem, trivia, code...
    let objective = Objective::new(cal.cost_weight);
    let mut seen = std::collections::BTreeSet::new();
    let mut chosen = std::collections::BTreeSet::new();
    for r in 0..test.len() {
        let task = test.tasks()[r].as_deref().unwrap_or("-");
        if !seen.insert(task) {
            continue;
        }
        let query = QueryFeatures::new(queries.row(r).to_vec())?
            .with_prompt_tokens(test.prompt_tokens()[r])?;
        let d = router.route(&query, &objective)?;
        println!(
            "{task:>20}: {:<32} expected quality {:.2}, cost {:.1e} USD",
            d.model_id, d.quality, d.cost
        );
        chosen.insert(d.model_id);
    }
    // The point of routing: one router, several models.
    if chosen.len() < 2 {
        return Err("every query went to the same model".into());
    }
    Ok(())
}
