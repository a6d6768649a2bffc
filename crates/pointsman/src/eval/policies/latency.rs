//! Synthetic latency figures on the cards and a hard latency cap.

use super::*;

/// The latency-cap experiment's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// The cap, seconds.
    pub cap_s: f64,
    /// Decisions made within the cap.
    pub decided: usize,
    /// Decisions whose model's expected latency is above the cap (must be 0).
    pub violations: usize,
    /// Queries refused because no model meets the cap.
    pub refused: usize,
    /// Mean quality with the cap (refused: 0).
    pub quality: f64,
    /// Mean quality without it.
    pub uncapped_quality: f64,
    /// Mean expected latency of the chosen models without the cap, seconds.
    pub uncapped_latency_s: f64,
    /// With it.
    pub capped_latency_s: f64,
}

/// Synthetic latency on the cards: time to first token and output speed from each model's
/// price (a proxy for its size: `ttft = 200 ms + 800 ms × price / max price`,
/// `tokens/s = 150 − 120 × price / max price`); a cap of `cap_s` seconds on the expected
/// latency, at cost weight 0.
pub fn latency_pool(pool: &ModelPool) -> Result<ModelPool> {
    let max = pool
        .cards()
        .iter()
        .map(|c| c.output_usd_per_mtok)
        .fold(0.0, f64::max)
        .max(1e-12);
    ModelPool::new(
        pool.cards()
            .iter()
            .map(|c| {
                let p = c.output_usd_per_mtok / max;
                c.clone().with_latency(200.0 + 800.0 * p, 150.0 - 120.0 * p)
            })
            .collect(),
    )
}

/// Routes the test split at cost weight 0 with a hard latency cap of `cap_s` seconds, the cards
/// carrying [`latency_pool`]'s synthetic figures (the router's own pool is left alone: the
/// figures are read off a copy).
///
/// # Errors
///
/// A split without embeddings; router errors.
pub fn latency_caps(router: Arc<dyn Router>, test: &Split, cap_s: f64) -> Result<LatencyReport> {
    let pool = latency_pool(router.models())?;
    let wrapped: Arc<dyn Router> = Arc::new(Repriced {
        inner: router,
        pool,
    });
    let stream = Stream::new(&*wrapped, test)?;
    let capped = PolicyRouter::new(
        wrapped.clone(),
        Policy::new(PolicyConfig {
            caps: crate::policy::Caps {
                max_latency_s: Some(cap_s),
                ..Default::default()
            },
            ..Default::default()
        })?,
    )?;
    let plain = PolicyRouter::new(wrapped.clone(), Policy::new(PolicyConfig::default())?)?;
    let pool = wrapped.models();
    let latency = |m: usize| {
        pool.card(m)
            .expected_latency_s(pool.card(m).default_output_tokens)
            .unwrap_or(0.0)
    };
    let mut r = LatencyReport {
        cap_s,
        decided: 0,
        violations: 0,
        refused: 0,
        quality: 0.0,
        uncapped_quality: 0.0,
        uncapped_latency_s: 0.0,
        capped_latency_s: 0.0,
    };
    let n = test.len();
    for row in 0..n {
        let f = stream.features(row)?;
        let req = Request::new(&f);
        let d = plain.decide(&req, &mut stream.row(row), None).0?;
        r.uncapped_quality += test.score(row, d.model);
        r.uncapped_latency_s += latency(d.model);
        match capped.decide(&req, &mut stream.row(row), None).0 {
            Ok(d) => {
                r.decided += 1;
                r.violations += usize::from(latency(d.model) > cap_s);
                r.quality += test.score(row, d.model);
                r.capped_latency_s += latency(d.model);
            }
            Err(Error::NoModelFits(_)) => r.refused += 1,
            Err(e) => return Err(e),
        }
    }
    r.quality /= n as f64;
    r.uncapped_quality /= n as f64;
    r.uncapped_latency_s /= n as f64;
    r.capped_latency_s /= r.decided.max(1) as f64;
    Ok(r)
}

/// A router seen through other model cards (same ids, same order).
#[derive(Debug)]
struct Repriced {
    inner: Arc<dyn Router>,
    pool: ModelPool,
}

impl Router for Repriced {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn models(&self) -> &ModelPool {
        &self.pool
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn embedding_model(&self) -> Option<&str> {
        self.inner.embedding_model()
    }
    fn estimate(
        &self,
        batch: &crate::features::FeatureBatch<'_>,
        out: &mut Estimates,
    ) -> Result<()> {
        self.inner.estimate(batch, out)
    }
}
