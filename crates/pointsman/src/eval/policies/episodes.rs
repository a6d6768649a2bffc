//! Simulated agent episodes with a budget each, against a per-step fixed cost weight at equal spend.

use super::*;

/// The episode experiment's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EpisodeReport {
    /// Episodes simulated.
    pub episodes: usize,
    /// Steps per episode.
    pub steps: usize,
    /// Each episode's budget, USD.
    pub budget: f64,
    /// The hard stop's margin.
    pub stop_margin: f64,
    /// Paced: episodes whose actual spend went over their budget.
    pub over_budget: usize,
    /// Paced: steps refused by the hard stop.
    pub refused: usize,
    /// Paced: mean quality per step.
    pub quality: f64,
    /// Paced: total actual spend over all episodes' budgets.
    pub spend_share: f64,
    /// The per-step fixed cost weight whose total spend equals the paced total.
    pub fixed_cost_weight: f64,
    /// Its mean quality per step.
    pub fixed_quality: f64,
    /// Its total spend over all budgets.
    pub fixed_spend_share: f64,
    /// Its episodes over budget.
    pub fixed_over_budget: usize,
}

/// Simulated agent episodes: `episodes` runs of `steps` queries drawn from the test split, each
/// with a budget of `budget_share` × `steps` × the best single model's mean test cost per query;
/// the actual cost of each call is its expected cost times a seeded log-normal draw of mean 1
/// (`sigma` the log's standard deviation).
///
/// # Errors
///
/// A split without embeddings; router errors.
#[allow(clippy::too_many_arguments)]
pub fn episodes(
    router: Arc<dyn Router>,
    train: &Split,
    test: &Split,
    episodes: usize,
    steps: usize,
    budget_share: f64,
    sigma: f64,
    stop_margin: f64,
    seed: u64,
) -> Result<EpisodeReport> {
    let stream = Stream::new(&*router, test)?;
    let n = test.len();
    let bs = best_single(train);
    let per_query = (0..n).map(|r| test.cost(r, bs)).sum::<f64>() / n as f64;
    let budget = budget_share * steps as f64 * per_query;
    // The draws: queries and noise, shared by both policies.
    let mut rng = SplitMix64::new(seed);
    let draws: Vec<Vec<(usize, f64)>> = (0..episodes)
        .map(|_| {
            (0..steps)
                .map(|_| {
                    let r = rng.below(n);
                    let noise = (sigma * rng.normal() - sigma * sigma / 2.0).exp();
                    (r, noise)
                })
                .collect()
        })
        .collect();
    let policy = PolicyRouter::new(router.clone(), Policy::new(PolicyConfig::default())?)?;
    policy.warm_pacing(&train.features()?)?;
    let (mut over, mut refused, mut quality, mut spend) = (0, 0, 0.0, 0.0);
    for (e, draw) in draws.iter().enumerate() {
        let episode =
            Episode::new(format!("e{e}"), budget, steps as u64)?.with_stop_margin(stop_margin)?;
        let mut spent = 0.0;
        for (s, &(r, noise)) in draw.iter().enumerate() {
            let f = stream.features(r)?;
            let req = Request::new(&f)
                .with_episode(episode.clone())
                .at((e * steps + s) as f64);
            let mut est = stream.row(r);
            match policy.decide(&req, &mut est, None).0 {
                Ok(d) => {
                    let cost = d.cost * noise;
                    spent += cost;
                    quality += test.score(r, d.model);
                    policy.record(&req, None, cost)?;
                }
                Err(Error::BudgetExhausted { .. }) => refused += 1,
                Err(e) => return Err(e),
            }
        }
        spend += spent;
        over += usize::from(spent > budget);
    }
    let steps_total = (episodes * steps) as f64;
    // The fixed cost weight of equal total spend, by bisection in log scale.
    let fixed = |w: f64| {
        let (mut q, mut total, mut over) = (0.0, 0.0, 0);
        for draw in &draws {
            let mut spent = 0.0;
            for &(r, noise) in draw {
                let m = best_model(stream.est.score_row(r), stream.est.cost_row(r), w, None);
                spent += stream.est.cost_row(r)[m] * noise;
                q += test.score(r, m);
            }
            total += spent;
            over += usize::from(spent > budget);
        }
        (q / steps_total, total, over)
    };
    let (mut lo, mut hi) = (1e-2f64, 1e8f64);
    if fixed(0.0).1 <= spend {
        lo = 0.0;
        hi = 0.0;
    }
    for _ in 0..60 {
        if hi == 0.0 {
            break;
        }
        let mid = (lo * hi).sqrt();
        if fixed(mid).1 > spend {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let (fq, fs, fo) = fixed(hi);
    let total_budget = budget * episodes as f64;
    Ok(EpisodeReport {
        episodes,
        steps,
        budget,
        stop_margin,
        over_budget: over,
        refused,
        quality: quality / steps_total,
        spend_share: spend / total_budget,
        fixed_cost_weight: hi,
        fixed_quality: fq,
        fixed_spend_share: fs / total_budget,
        fixed_over_budget: fo,
    })
}
