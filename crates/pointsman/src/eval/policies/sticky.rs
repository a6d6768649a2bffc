//! Model switches per session with and without a stickiness margin.

use super::*;

/// One margin of the stickiness experiment.
#[derive(Debug, Clone, Serialize)]
pub struct StickyRow {
    /// The margin (`None`: no stickiness).
    pub margin: Option<f64>,
    /// Mean model switches per session.
    pub switches: f64,
    /// Mean quality per query.
    pub quality: f64,
    /// Mean cost per query, USD.
    pub cost: f64,
}

/// Sessions of `length` queries drawn from one task of the test split each, routed at
/// `cost_weight` without stickiness and with each margin of `margins`.
///
/// # Errors
///
/// A split without embeddings; router errors.
pub fn stickiness(
    router: Arc<dyn Router>,
    test: &Split,
    sessions: usize,
    length: usize,
    cost_weight: f64,
    margins: &[f64],
    seed: u64,
) -> Result<Vec<StickyRow>> {
    let stream = Stream::new(&*router, test)?;
    let mut by_task: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (r, t) in test.tasks().iter().enumerate() {
        by_task
            .entry(t.as_deref().unwrap_or(""))
            .or_default()
            .push(r);
    }
    let tasks: Vec<&Vec<usize>> = by_task.values().collect();
    let mut rng = SplitMix64::new(seed);
    let draws: Vec<Vec<usize>> = (0..sessions)
        .map(|_| {
            let rows = tasks[rng.below(tasks.len())];
            (0..length).map(|_| rows[rng.below(rows.len())]).collect()
        })
        .collect();
    let mut out = Vec::new();
    for margin in std::iter::once(None).chain(margins.iter().copied().map(Some)) {
        let mut config = PolicyConfig {
            cost_weight: Some(cost_weight),
            ..Default::default()
        };
        if let Some(m) = margin {
            config.sticky = Some(StickyConfig {
                margin: m,
                ..Default::default()
            });
        }
        let policy = PolicyRouter::new(router.clone(), Policy::new(config)?)?;
        let (mut switches, mut quality, mut cost) = (0usize, 0.0, 0.0);
        for (s, rows) in draws.iter().enumerate() {
            let mut last: Option<usize> = None;
            for (i, &r) in rows.iter().enumerate() {
                let f = stream.features(r)?;
                let req = Request::new(&f)
                    .with_session(format!("s{s}"))
                    .at((s * length + i) as f64);
                let mut est = stream.row(r);
                let d = policy.decide(&req, &mut est, None).0?;
                switches += usize::from(last.is_some_and(|l| l != d.model));
                last = Some(d.model);
                quality += test.score(r, d.model);
                cost += test.cost(r, d.model);
            }
        }
        let q = (sessions * length) as f64;
        out.push(StickyRow {
            margin,
            switches: switches as f64 / sessions as f64,
            quality: quality / q,
            cost: cost / q,
        });
    }
    Ok(out)
}
