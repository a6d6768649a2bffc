//! A paced budget over the test split against the best fixed cost weight in hindsight and the hard cut-off.

use super::*;

/// One order of the stream under a paced budget.
#[derive(Debug, Clone, Serialize)]
pub struct PacedRun {
    /// The order's seed.
    pub seed: u64,
    /// Total actual spend over the budget.
    pub spend_share: f64,
    /// Mean quality over the stream.
    pub quality: f64,
    /// Queries refused by the hard stop.
    pub refused: usize,
    /// The best fixed cost weight's mean quality among those spending no more than this run.
    pub hindsight_quality: f64,
    /// That cost weight.
    pub hindsight_cost_weight: f64,
}

/// The pacing experiment's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PacingReport {
    /// The best single model (by training score).
    pub best_single: String,
    /// What always calling it costs over the test split, USD.
    pub best_single_cost: f64,
    /// The budget, USD.
    pub budget: f64,
    /// The router at cost weight 0: its spend over the best single model's cost.
    pub unconstrained_spend_share: f64,
    /// Its mean quality.
    pub unconstrained_quality: f64,
    /// The paced runs, one per order.
    pub paced: Vec<PacedRun>,
    /// The hard cut-off (cost weight 0 until the money runs out), one per order.
    pub hard_cut: Vec<PacedRun>,
}

impl PacingReport {
    /// Mean quality of the paced runs.
    pub fn paced_quality(&self) -> f64 {
        mean(self.paced.iter().map(|r| r.quality))
    }

    /// Mean quality of the best fixed cost weights in hindsight at the paced runs' spends.
    pub fn hindsight_quality(&self) -> f64 {
        mean(self.paced.iter().map(|r| r.hindsight_quality))
    }

    /// Mean quality of the hard cut-off.
    pub fn hard_cut_quality(&self) -> f64 {
        mean(self.hard_cut.iter().map(|r| r.quality))
    }
}

/// Spend and mean quality of every fixed cost weight of a fine grid over the whole stream.
fn fixed_weight_curve(stream: &Stream<'_>) -> Vec<(f64, f64, f64)> {
    let split = stream.split;
    let n = split.len();
    let mut weights = vec![0.0];
    weights.extend((0..=480).map(|i| 10f64.powf(i as f64 / 60.0)));
    weights
        .par_iter()
        .map(|&w| {
            let (mut spend, mut quality) = (0.0, 0.0);
            for r in 0..n {
                let m = best_model(stream.est.score_row(r), stream.est.cost_row(r), w, None);
                spend += split.cost(r, m);
                quality += split.score(r, m);
            }
            (w, spend, quality / n as f64)
        })
        .collect()
}

/// A paced budget over the test split in `orders` seeded orders.
///
/// The budget is `budget_share` of what always calling the best single model (by training
/// score) costs over the test split, paced over the split's length (`BudgetWindow::Total` with
/// that many requests), with the hard stop at `stop_margin`; the pacing curve is warmed on the
/// training queries' features. Spend is each chosen model's actual cost on that query.
///
/// # Errors
///
/// A split without embeddings; router errors.
pub fn pacing(
    router: Arc<dyn Router>,
    train: &Split,
    test: &Split,
    orders: u64,
    budget_share: f64,
    stop_margin: f64,
) -> Result<PacingReport> {
    let stream = Stream::new(&*router, test)?;
    let n = test.len();
    let bs = best_single(train);
    let best_single_cost: f64 = (0..n).map(|r| test.cost(r, bs)).sum();
    let budget = budget_share * best_single_cost;
    let curve = fixed_weight_curve(&stream);
    let unconstrained = curve[0];
    let hindsight = |spend: f64| {
        curve
            .iter()
            .filter(|c| c.1 <= spend)
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .map_or((f64::NAN, 0.0), |c| (c.0, c.2))
    };
    let run = |seed: u64, pace: bool| -> Result<PacedRun> {
        let mut config = PolicyConfig::default();
        let mut b = BudgetConfig::new(
            BudgetKey::Global,
            budget,
            BudgetWindow::Total {
                requests: Some(n as u64),
                seconds: None,
            },
        );
        b.pace = pace;
        b.stop_margin = stop_margin;
        config.budgets.push(b);
        let policy = PolicyRouter::new(router.clone(), Policy::new(config)?)?;
        if pace {
            policy.warm_pacing(&train.features()?)?;
        }
        let mut order: Vec<usize> = (0..n).collect();
        SplitMix64::new(seed).shuffle(&mut order);
        let (mut spend, mut quality, mut refused) = (0.0, 0.0, 0);
        for (i, &r) in order.iter().enumerate() {
            let f = stream.features(r)?;
            let req = Request::new(&f).at(i as f64);
            let mut est = stream.row(r);
            match policy.decide(&req, &mut est, None).0 {
                Ok(d) => {
                    let cost = test.cost(r, d.model);
                    spend += cost;
                    quality += test.score(r, d.model);
                    policy.record(&req, None, cost)?;
                }
                Err(Error::BudgetExhausted { .. }) => refused += 1,
                Err(e) => return Err(e),
            }
        }
        let (w, hq) = hindsight(spend);
        Ok(PacedRun {
            seed,
            spend_share: spend / budget,
            quality: quality / n as f64,
            refused,
            hindsight_quality: hq,
            hindsight_cost_weight: w,
        })
    };
    let paced = (0..orders).map(|s| run(s, true)).collect::<Result<_>>()?;
    let hard_cut = (0..orders).map(|s| run(s, false)).collect::<Result<_>>()?;
    Ok(PacingReport {
        best_single: test.pool().id(bs).to_string(),
        best_single_cost,
        budget,
        unconstrained_spend_share: unconstrained.1 / best_single_cost,
        unconstrained_quality: unconstrained.2,
        paced,
        hard_cut,
    })
}
