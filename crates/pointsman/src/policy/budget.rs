//! Budgets that pace: spend limits per key (tenant, user, episode, or one for everything) over a
//! fixed total or a rolling window, and the controller that turns "how far ahead of its pace is
//! this key" into the cost weight of its next decision.
//!
//! # The controller
//!
//! At each decision the controller works out the **target cost per request** `r` of the key:
//!
//! - a fixed total over `N` requests (an episode of `N` steps): `r = remaining / (N − requests
//!   so far)`;
//! - a fixed total until a deadline `T` seconds after the key's first request:
//!   `r = remaining / (request rate × time left)`;
//! - a rolling window of `W` seconds: the sustainable `limit / (request rate × W)`, scaled by
//!   `(limit − spent) / (limit − pace)` where the pace is 90 % of the limit times the share of
//!   the window elapsed (clamped to [0, 4]);
//! - a fixed total without requests or deadline: no pacing, only the hard stop.
//!
//! Spend running ahead of the pace lowers `r`, running behind raises it. `r` becomes a cost
//! weight through the [`PacingCurve`]: the mean expected cost of the model a cost weight would
//! choose, over the policy's recent queries (a running average over a fixed grid of cost
//! weights, updated with each decision's estimates by one walk along the upper hull of the
//! models' (cost, score) points: `O(models log models + grid)`), read at `r`. The
//! budget's cost weight is the smallest on the grid whose mean cost is at most `r`, interpolated
//! in log scale; the decision uses the largest of the budgets' and the request's cost weights.
//!
//! **Hard stop**: a model whose expected cost times `stop_margin` exceeds what is left of any
//! budget of the request is excluded; when that leaves none, the request is refused with
//! [`Error::BudgetExhausted`]. Spend is recorded from the actual cost after each call
//! (`PolicyRouter::record`), not from the estimate.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::state::{PolicyState, Totals};
use crate::error::{Error, Result};
use crate::router::best_model;

/// The largest stop margin a budget or an episode takes: room for answers a million times
/// costlier than expected is already no budget at all.
pub const MAX_STOP_MARGIN: f64 = 1e6;

/// Which request key a budget is kept per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKey {
    /// One budget per tenant (requests without a tenant are not limited by it).
    Tenant,
    /// One budget per user.
    User,
    /// One budget shared by every request.
    Global,
}

impl BudgetKey {
    /// The name a policy file uses: `tenant`, `user` or `global`.
    pub fn name(self) -> &'static str {
        match self {
            BudgetKey::Tenant => "tenant",
            BudgetKey::User => "user",
            BudgetKey::Global => "global",
        }
    }
}

/// The window a budget's limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BudgetWindow {
    /// One total, never reset. Paced over `requests` requests, or until `seconds` after the
    /// key's first request; with neither, only the hard stop applies.
    Total {
        /// The number of requests the total is meant to last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requests: Option<u64>,
        /// The time the total is meant to last, seconds from the key's first request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<f64>,
    },
    /// The spend of the last `seconds` seconds, counted in `buckets` time buckets.
    Rolling {
        /// The window's length, seconds (86 400: a day).
        seconds: f64,
        /// Buckets the window is counted in (default 24).
        #[serde(default = "default_buckets")]
        buckets: u32,
    },
}

fn default_buckets() -> u32 {
    24
}

fn default_true() -> bool {
    true
}

fn default_margin() -> f64 {
    1.0
}

/// A spend budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Which key the budget is kept per.
    pub key: BudgetKey,
    /// The limit, USD.
    pub limit_usd: f64,
    /// The window the limit applies to.
    pub window: BudgetWindow,
    /// Whether the controller paces spend by raising the cost weight (default true); false:
    /// the cost weight is left alone until the hard stop.
    #[serde(default = "default_true")]
    pub pace: bool,
    /// A model is excluded when its expected cost times this margin exceeds what is left
    /// (default 1, at most [`MAX_STOP_MARGIN`]). Above 1 it keeps room for answers costlier
    /// than expected.
    #[serde(default = "default_margin")]
    pub stop_margin: f64,
}

impl BudgetConfig {
    /// A budget of `limit_usd` per `key` over `window`, paced, with a stop margin of 1.
    pub fn new(key: BudgetKey, limit_usd: f64, window: BudgetWindow) -> BudgetConfig {
        BudgetConfig {
            key,
            limit_usd,
            window,
            pace: true,
            stop_margin: 1.0,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: String| {
            Err(Error::Config(format!(
                "budget per {}: {m}",
                self.key.name()
            )))
        };
        if !self.limit_usd.is_finite() || self.limit_usd <= 0.0 {
            return bad(format!(
                "limit_usd {} is not a positive number",
                self.limit_usd
            ));
        }
        if !(1.0..=MAX_STOP_MARGIN).contains(&self.stop_margin) {
            return bad(format!(
                "stop_margin {} is not in [1, {MAX_STOP_MARGIN:e}]",
                crate::error::Shown(self.stop_margin)
            ));
        }
        validate_window(&self.window).or_else(bad)
    }
}

pub(crate) fn validate_window(w: &BudgetWindow) -> std::result::Result<(), String> {
    match *w {
        BudgetWindow::Total { requests, seconds } => {
            if requests == Some(0) {
                return Err("window requests must be at least 1".into());
            }
            if seconds.is_some_and(|s| !s.is_finite() || s <= 0.0) {
                return Err("window seconds must be positive".into());
            }
        }
        BudgetWindow::Rolling { seconds, buckets } => {
            if !seconds.is_finite() || seconds <= 0.0 || buckets == 0 || buckets > 100_000 {
                return Err(format!(
                    "rolling window of {seconds} s in {buckets} buckets: seconds must be positive, buckets in 1..=100000"
                ));
            }
        }
    }
    Ok(())
}

/// Where a key's window starts and which bucket now falls into.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Span {
    /// Bucket of `now`.
    pub bucket: i64,
    /// First bucket of the window.
    pub from: i64,
    /// Buckets before this may be dropped.
    pub keep_from: i64,
    /// Seconds per bucket.
    pub width: f64,
}

/// Buckets a deadline total is counted in.
const DEADLINE_BUCKETS: f64 = 1000.0;

pub(crate) fn span(window: &BudgetWindow, now: f64) -> Span {
    match *window {
        BudgetWindow::Total {
            seconds: Some(s), ..
        } => {
            let width = s / DEADLINE_BUCKETS;
            Span {
                bucket: (now / width).floor() as i64,
                from: i64::MIN,
                keep_from: i64::MIN,
                width,
            }
        }
        BudgetWindow::Total { .. } => Span {
            bucket: 0,
            from: i64::MIN,
            keep_from: i64::MIN,
            width: 1.0,
        },
        BudgetWindow::Rolling { seconds, buckets } => {
            let width = seconds / f64::from(buckets);
            let bucket = (now / width).floor() as i64;
            let from = bucket - i64::from(buckets) + 1;
            Span {
                bucket,
                from,
                keep_from: from,
                width,
            }
        }
    }
}

/// A budget's state at one decision, as the audit reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    /// The key (`tenant:acme`, `user:u1`, `episode:e7`, `global`).
    pub key: String,
    /// The limit, USD.
    pub limit: f64,
    /// USD spent in the window.
    pub spent: f64,
    /// USD left (never negative).
    pub remaining: f64,
    /// Requests decided in the window.
    pub requests: u64,
    /// The controller's target cost per request, USD (`None`: not paced).
    pub target_cost: Option<f64>,
    /// The cost weight the controller asked for (`None`: not paced, or no queries seen yet).
    pub cost_weight: Option<f64>,
}

/// The controller's target cost per request (see the module documentation).
pub(crate) fn target_cost(
    window: &BudgetWindow,
    limit: f64,
    t: &Totals,
    span: &Span,
    now: f64,
) -> Option<f64> {
    let remaining = (limit - t.spent).max(0.0);
    match *window {
        BudgetWindow::Total {
            requests: Some(n), ..
        } => Some(remaining / n.saturating_sub(t.requests).max(1) as f64),
        BudgetWindow::Total {
            seconds: Some(total),
            ..
        } => {
            let start = t.first_bucket.map_or(now, |b| b as f64 * span.width);
            let elapsed = (now - start).max(span.width);
            if t.requests == 0 {
                return None;
            }
            let rate = t.requests as f64 / elapsed;
            let left = (total - elapsed).max(0.0);
            Some(remaining / (rate * left).max(1.0))
        }
        BudgetWindow::Total { .. } => None,
        BudgetWindow::Rolling { seconds, .. } => {
            if t.requests == 0 {
                return None;
            }
            let start = t.first_bucket.map_or(now, |b| b as f64 * span.width);
            let elapsed = (now - start).clamp(span.width, seconds);
            let rate = t.requests as f64 / elapsed;
            let sustainable = limit / (rate * seconds).max(1.0);
            let pace = 0.9 * limit * (elapsed / seconds);
            let correction = ((limit - t.spent) / (limit - pace)).clamp(0.0, 4.0);
            Some(sustainable * correction)
        }
    }
}

/// Settings of the [`PacingCurve`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacingConfig {
    /// The smallest non-zero cost weight on the grid (default 0.1).
    pub min_cost_weight: f64,
    /// The largest cost weight on the grid (default 1e7).
    pub max_cost_weight: f64,
    /// Grid points per decade (default 8).
    pub points_per_decade: u32,
    /// Decisions the running average remembers (default 256).
    pub memory: u32,
}

impl Default for PacingConfig {
    fn default() -> Self {
        PacingConfig {
            min_cost_weight: 0.1,
            max_cost_weight: 1e7,
            points_per_decade: 8,
            memory: 256,
        }
    }
}

impl PacingConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let ok = self.min_cost_weight.is_finite()
            && self.min_cost_weight > 0.0
            && self.max_cost_weight.is_finite()
            && self.max_cost_weight > self.min_cost_weight
            && (1..=64).contains(&self.points_per_decade)
            && self.memory >= 1
            && (self.max_cost_weight / self.min_cost_weight).log10()
                * f64::from(self.points_per_decade)
                <= 4096.0;
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "pacing: need 0 < min_cost_weight < max_cost_weight, points_per_decade in 1..=64, memory ≥ 1 and at most 4096 grid points (got min_cost_weight {}, max_cost_weight {}, points_per_decade {}, memory {})",
                self.min_cost_weight, self.max_cost_weight, self.points_per_decade, self.memory
            )))
        }
    }
}

/// The mean expected cost of the model each cost weight of a grid would choose, over recent
/// queries: what the pacing controller reads a target cost per request off.
#[derive(Debug)]
pub struct PacingCurve {
    grid: Vec<f64>,
    /// Whether the grid increases (the hull walk of [`chosen_costs`] needs it): checked once.
    grid_sorted: bool,
    memory: f64,
    inner: Mutex<(Vec<f64>, f64)>,
}

impl PacingCurve {
    /// An empty curve over the grid of `config`.
    pub fn new(config: &PacingConfig) -> PacingCurve {
        let decades = (config.max_cost_weight / config.min_cost_weight).log10();
        let points = (decades * f64::from(config.points_per_decade)).ceil() as usize + 1;
        let mut grid = vec![0.0];
        grid.extend((0..points).map(|i| {
            config.min_cost_weight * 10f64.powf(i as f64 / f64::from(config.points_per_decade))
        }));
        PacingCurve {
            grid_sorted: grid.windows(2).all(|w| w[0] <= w[1]),
            memory: f64::from(config.memory),
            inner: Mutex::new((vec![0.0; grid.len()], 0.0)),
            grid,
        }
    }

    /// Adds one query's estimates (the scores the choice uses, the expected costs, the models
    /// it may choose).
    pub fn observe(&self, score: &[f64], cost: &[f64], mask: Option<&[bool]>) {
        if mask.is_some_and(|m| !m.contains(&true)) {
            return;
        }
        let mut chosen = [0.0f64; 128];
        let mut heap;
        let chosen: &mut [f64] = if self.grid.len() <= chosen.len() {
            &mut chosen[..self.grid.len()]
        } else {
            heap = vec![0.0; self.grid.len()];
            &mut heap
        };
        chosen_costs(&self.grid, self.grid_sorted, score, cost, mask, chosen);
        let mut inner = self.inner.lock().expect("pacing lock");
        let (mean, n) = &mut *inner;
        *n = (*n + 1.0).min(self.memory);
        let a = 1.0 / *n;
        for (m, c) in mean.iter_mut().zip(chosen.iter()) {
            *m += a * (c - *m);
        }
    }

    /// Queries the curve has seen (up to its memory).
    pub fn weight(&self) -> f64 {
        self.inner.lock().expect("pacing lock").1
    }

    /// The smallest cost weight whose mean chosen cost is at most `target`, interpolated in log
    /// scale between grid points; `None` before any query was seen.
    pub fn cost_weight_for(&self, target: f64) -> Option<f64> {
        let inner = self.inner.lock().expect("pacing lock");
        let (mean, n) = &*inner;
        if *n == 0.0 {
            return None;
        }
        if mean[0] <= target {
            return Some(0.0);
        }
        let g = mean.iter().position(|&c| c <= target);
        let Some(g) = g else {
            return Some(*self.grid.last().expect("a grid has points"));
        };
        let (w0, w1) = (self.grid[g - 1], self.grid[g]);
        let (c0, c1) = (mean[g - 1], mean[g]);
        if g == 1 || c0 <= c1 {
            return Some(w1);
        }
        // Mean cost is linear in log(w) between the grid points.
        let t = ((c0 - target) / (c0 - c1)).clamp(0.0, 1.0);
        Some((w0.ln() + t * (w1.ln() - w0.ln())).exp())
    }
}

/// The expected cost of the model [`best_model`] chooses at each cost weight of `grid`
/// (increasing), written to `out`.
///
/// Measured reason for not calling [`best_model`] per grid point: with 66 grid points and 9
/// models that was 600 utility comparisons per paced decision, the largest part of the policy
/// layer's overhead in `benches/benches/policy.rs`. The chosen cost only moves down the upper
/// concave hull of the (cost, score) points as the cost weight grows, so one sort of the
/// models and one walk along the hull give the same costs (ties go to the cheaper model, as in
/// [`best_model`]). Pools of more than 64 models, non-finite estimates or a grid out of order
/// take the direct path.
fn chosen_costs(
    grid: &[f64],
    grid_sorted: bool,
    score: &[f64],
    cost: &[f64],
    mask: Option<&[bool]>,
    out: &mut [f64],
) {
    let m = score.len();
    let direct = m > 64 || !grid_sorted || score.iter().chain(cost).any(|x| !x.is_finite());
    if direct {
        for (c, &w) in out.iter_mut().zip(grid) {
            *c = cost[best_model(score, cost, w, mask)];
        }
        return;
    }
    let mut order = [0usize; 64];
    let mut n = 0;
    for i in 0..m {
        if mask.is_none_or(|k| k[i]) {
            order[n] = i;
            n += 1;
        }
    }
    let order = &mut order[..n];
    // Cheapest first; at equal cost the better first.
    order.sort_unstable_by(|&a, &b| {
        cost[a]
            .total_cmp(&cost[b])
            .then(score[b].total_cmp(&score[a]))
    });
    // The upper hull of the points that can win at some cost weight ≥ 0: score strictly
    // increasing with cost, concave.
    let mut hull = [0usize; 64];
    let mut h = 0;
    for &i in order.iter() {
        if h > 0 && score[i] <= score[hull[h - 1]] {
            continue;
        }
        while h >= 2 {
            let (a, b) = (hull[h - 2], hull[h - 1]);
            // b on or below the line from a to i: it never wins alone.
            let cross = (cost[b] - cost[a]) * (score[i] - score[a])
                - (score[b] - score[a]) * (cost[i] - cost[a]);
            if cross >= 0.0 {
                h -= 1;
            } else {
                break;
            }
        }
        hull[h] = i;
        h += 1;
    }
    if h == 0 {
        return;
    }
    let hull = &hull[..h];
    let mut at = h - 1;
    for (c, &w) in out.iter_mut().zip(grid) {
        let u = |i: usize| score[i] - w * cost[i];
        while at > 0 && u(hull[at - 1]) >= u(hull[at]) {
            at -= 1;
        }
        *c = cost[hull[at]];
    }
}

/// Reads a budget's totals and what the controller asks for.
pub(crate) fn status(
    key: String,
    limit: f64,
    window: &BudgetWindow,
    pace: bool,
    state: &dyn PolicyState,
    curve: &PacingCurve,
    now: f64,
) -> (BudgetStatus, Span) {
    let sp = span(window, now);
    let t = state.totals_in(&key, sp.from, sp.bucket);
    let target = if pace {
        target_cost(window, limit, &t, &sp, now)
    } else {
        None
    };
    let cost_weight = target.and_then(|r| curve.cost_weight_for(r));
    (
        BudgetStatus {
            key,
            limit,
            spent: t.spent,
            remaining: (limit - t.spent).max(0.0),
            requests: t.requests,
            target_cost: target,
            cost_weight,
        },
        sp,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_reads_back_the_cost_weight_of_a_target() {
        let curve = PacingCurve::new(&PacingConfig::default());
        assert_eq!(curve.cost_weight_for(1.0), None);
        // Two models: quality 0.9 at cost 1e-3 or 0.5 at 1e-4. The choice flips at
        // w = 0.4 / 9e-4 = 444.4.
        for _ in 0..10 {
            curve.observe(&[0.9, 0.5], &[1e-3, 1e-4], None);
        }
        assert_eq!(curve.cost_weight_for(1e-3), Some(0.0));
        let w = curve.cost_weight_for(5e-4).unwrap();
        assert!((400.0..600.0).contains(&w), "{w}");
        assert_eq!(curve.cost_weight_for(1e-5), Some(1e7));
        // A mask that allows only the cheap model.
        let c2 = PacingCurve::new(&PacingConfig::default());
        c2.observe(&[0.9, 0.5], &[1e-3, 1e-4], Some(&[false, true]));
        assert_eq!(c2.cost_weight_for(1e-4), Some(0.0));
    }

    #[test]
    fn the_hull_walk_gives_the_costs_best_model_chooses() {
        let grid = PacingCurve::new(&PacingConfig::default()).grid;
        let mut rng = crate::rng::SplitMix64::new(7);
        for case in 0..2000 {
            let m = 1 + rng.below(12);
            // Coarse values so that ties in cost, score and utility happen.
            let score: Vec<f64> = (0..m).map(|_| rng.below(6) as f64 / 5.0).collect();
            let cost: Vec<f64> = (0..m).map(|_| rng.below(5) as f64 * 1e-3).collect();
            let mask: Vec<bool> = (0..m).map(|i| i == 0 || rng.next_f64() < 0.7).collect();
            let mask = (case % 2 == 0).then_some(&mask[..]);
            let mut fast = vec![0.0; grid.len()];
            chosen_costs(&grid, true, &score, &cost, mask, &mut fast);
            let slow: Vec<f64> = grid
                .iter()
                .map(|&w| cost[best_model(&score, &cost, w, mask)])
                .collect();
            assert_eq!(fast, slow, "scores {score:?} costs {cost:?} mask {mask:?}");
        }
    }

    #[test]
    fn targets_follow_the_pace() {
        let total = BudgetWindow::Total {
            requests: Some(10),
            seconds: None,
        };
        let sp = span(&total, 0.0);
        let t = Totals {
            spent: 4.0,
            requests: 5,
            first_bucket: Some(0),
        };
        assert_eq!(target_cost(&total, 10.0, &t, &sp, 0.0), Some(6.0 / 5.0));
        // Ahead of the pace: 8 of 10 spent after 5 requests leaves 0.4 per request.
        let ahead = Totals { spent: 8.0, ..t };
        assert!((target_cost(&total, 10.0, &ahead, &sp, 0.0).unwrap() - 0.4).abs() < 1e-12);
        let rolling = BudgetWindow::Rolling {
            seconds: 100.0,
            buckets: 10,
        };
        let sp = span(&rolling, 1000.0);
        assert_eq!((sp.bucket, sp.from), (100, 91));
        let t = Totals {
            spent: 0.0,
            requests: 100,
            first_bucket: Some(91),
        };
        // 100 requests in 90 s: 1.11 per second, 111 per window; behind the pace, it may spend
        // more than the sustainable limit / 111.
        let r = target_cost(&rolling, 10.0, &t, &sp, 1000.0).unwrap();
        assert!(r > 10.0 / 112.0, "{r}");
        let spent = Totals { spent: 9.9, ..t };
        let r2 = target_cost(&rolling, 10.0, &spent, &sp, 1000.0).unwrap();
        assert!(r2 < 10.0 / 111.0 * 0.2, "{r2}");
        let bad = BudgetConfig::new(BudgetKey::Tenant, -1.0, total);
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("limit_usd -1"));
    }
}
