//! The cascade's decision rule, shared by live sessions and by simulations on labelled data, so
//! that what is calibrated and evaluated is exactly what callers run.
//!
//! Everything here works on model indices of the router's pool and on bit masks of tried models
//! (at most [`MAX_MODELS`] models).

use std::collections::HashMap;
use std::sync::Arc;

use super::StopReason;

/// The most models a cascade handles (tried sets are `u32` masks).
pub(crate) const MAX_MODELS: usize = 32;

/// Priors are kept away from 0 and 1 so that one confidence can always move them.
const PRIOR_CLAMP: f64 = 1e-4;

/// Success patterns of the reference queries behind a query's estimates: which models answered
/// each reference query well (`score ≥ success_threshold`), and how much that query counts.
#[derive(Debug, Clone)]
pub(crate) enum Patterns {
    /// The query's own neighbours: distinct success masks with their summed weights.
    Own(Vec<(u32, f64)>),
    /// The router's whole training table (masks with counts), optionally without one query of
    /// the given mask (leave-one-out, when the query is itself a training query).
    Table(Arc<[(u32, f64)]>, Option<u32>),
}

/// What a cascade knows about one query before any model runs.
#[derive(Debug, Clone)]
pub(crate) struct Evidence {
    pub patterns: Patterns,
    /// Unconditional success estimate per model.
    pub p0: Vec<f64>,
    /// Expected cost per model, USD.
    pub costs: Vec<f64>,
    /// Number of reference queries behind the estimate.
    pub neighbours: u32,
}

/// Per-thread buffers and caches: the training table's sums per tried set (the table is the
/// same for every query, so simulations compute each tried set once), and one query's
/// conditional estimates per tried set (a sweep runs each query under many cost weights).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    cond: Vec<f64>,
    next: Vec<f64>,
    memo_table: usize,
    memo: HashMap<u32, (f64, Vec<f64>)>,
    own_s0: u64,
    own: HashMap<u32, Vec<f64>>,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch::default()
    }

    /// Drops the per-query cache: call before using the scratch for another query's evidence.
    pub fn forget(&mut self) {
        self.own.clear();
    }
}

fn add_pattern(mask: u32, w: f64, tried: u32, total: &mut f64, sums: &mut [f64]) {
    if mask & tried != 0 {
        return;
    }
    *total += w;
    let mut b = mask;
    while b != 0 {
        let j = b.trailing_zeros() as usize;
        if j < sums.len() {
            sums[j] += w;
        }
        b &= b - 1;
    }
}

impl Evidence {
    /// Each model's success probability on a reference query where every model of `tried`
    /// failed, shrunk toward the unconditional estimate by `s0` pseudo-queries:
    ///
    /// `p_j(T) = (Σ_i w_i A_i(T) y_ij + s0 · p0_j) / (Σ_i w_i A_i(T) + s0)`,
    /// `A_i(T) = 1` when every model in `T` failed on reference query `i`.
    pub fn conditional(&self, tried: u32, s0: f64, scratch: &mut Scratch, out: &mut [f64]) {
        let m = self.p0.len();
        let mut sums = [0.0f64; MAX_MODELS];
        let sums = &mut sums[..m];
        let mut total = 0.0;
        match &self.patterns {
            Patterns::Own(list) => {
                if scratch.own_s0 != s0.to_bits() {
                    scratch.own.clear();
                    scratch.own_s0 = s0.to_bits();
                }
                if let Some(v) = scratch.own.get(&tried) {
                    out[..m].copy_from_slice(v);
                    return;
                }
                for &(mask, w) in list {
                    add_pattern(mask, w, tried, &mut total, sums);
                }
            }
            Patterns::Table(table, exclude) => {
                let key = Arc::as_ptr(table) as *const () as usize;
                if scratch.memo_table != key {
                    scratch.memo.clear();
                    scratch.memo_table = key;
                }
                let (t, s) = scratch.memo.entry(tried).or_insert_with(|| {
                    let mut s = vec![0.0; m];
                    let mut t = 0.0;
                    for &(mask, w) in table.iter() {
                        add_pattern(mask, w, tried, &mut t, &mut s);
                    }
                    (t, s)
                });
                total = *t;
                sums.copy_from_slice(s);
                if let Some(own) = exclude {
                    add_pattern(*own, -1.0, tried, &mut total, sums);
                }
            }
        }
        let den = total.max(0.0) + s0;
        for j in 0..m {
            out[j] = if den > 0.0 {
                ((sums[j].max(0.0) + s0 * self.p0[j]) / den).clamp(0.0, 1.0)
            } else {
                self.p0[j]
            };
        }
        if let Patterns::Own(_) = self.patterns {
            scratch.own.insert(tried, out[..m].to_vec());
        }
    }
}

/// P(answer correct | prior `p`, confidence `c`), reading the confidence as a vote that errs with
/// probability `eps`: `P(c | correct) = c(1 − ε) + (1 − c)ε`, `P(c | wrong) = cε + (1 − c)(1 − ε)`.
pub(crate) fn posterior(p: f64, c: f64, eps: f64) -> f64 {
    let p = p.clamp(PRIOR_CLAMP, 1.0 - PRIOR_CLAMP);
    let l1 = c * (1.0 - eps) + (1.0 - c) * eps;
    let l0 = c * eps + (1.0 - c) * (1.0 - eps);
    p * l1 / (p * l1 + (1.0 - p) * l0)
}

/// How the next model is chosen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Plan {
    /// A fixed order of (model, acceptance threshold).
    Chain(Vec<(usize, f64)>),
    /// The untried model of best value; one acceptance threshold.
    Dynamic { threshold: f64 },
}

/// Everything a run of the cascade depends on besides the query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Params {
    pub plan: Plan,
    /// Cost weight μ: quality given up per USD.
    pub mu: f64,
    /// Error rate of the confidence, read as a vote.
    pub eps: f64,
    /// Prior strength of the conditional estimates.
    pub s0: f64,
    pub max_steps: usize,
    /// Maximum total expected cost per query (USD); infinite for none.
    pub budget: f64,
    /// Value the next model with a one-step look-ahead (dynamic plans).
    pub lookahead: bool,
    /// Models that may be called.
    pub allowed: u32,
}

/// The model a run is waiting for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pending {
    pub model: usize,
    /// Its success prior when it was chosen (the conditional estimate).
    pub prior: f64,
    /// Position in the chain (0 for dynamic plans).
    pub stage: usize,
}

/// The state of one query's run.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub tried: u32,
    pub steps: usize,
    pub total_cost: f64,
    /// The answer with the highest posterior so far: (model, posterior).
    pub best: Option<(usize, f64)>,
    pub pending: Option<Pending>,
}

/// What a run does after an observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Next {
    Call(Pending),
    /// Stop; use the answer of `model`.
    Stop {
        model: usize,
        reason: StopReason,
    },
}

/// Why a run cannot start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BeginError {
    /// No allowed model (of the chain) to start with.
    NoModel,
    /// The budget is below the expected cost of the model the run would start with (for dynamic
    /// plans: of every allowed model); `model` is that (cheapest) model.
    Budget { model: usize, cost: f64 },
}

/// `(value, cost, index)`: higher value first, then cheaper, then lower index.
fn better(a: (f64, f64, usize), b: (f64, f64, usize)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && (a.1 < b.1 || (a.1 == b.1 && a.2 < b.2)))
}

fn is_allowed(params: &Params, j: usize) -> bool {
    params.allowed & (1u32 << j) != 0
}

/// The value of calling `j` next: the chance that it rescues a query whose best answer so far
/// (posterior `v`) is wrong, minus μ × its cost; with look-ahead, plus the expected value of the
/// best follow-up call after seeing `j`'s confidence.
#[allow(clippy::too_many_arguments)]
fn value(
    ev: &Evidence,
    costs: &[f64],
    params: &Params,
    st: &State,
    cond: &[f64],
    v: f64,
    j: usize,
    scratch: &mut Scratch,
) -> f64 {
    let myopic = (1.0 - v) * cond[j] - params.mu * costs[j];
    if !params.lookahead || st.steps + 1 >= params.max_steps {
        return myopic;
    }
    let tried = st.tried | (1u32 << j);
    let mut next = std::mem::take(&mut scratch.next);
    next.resize(cond.len(), 0.0);
    ev.conditional(tried, params.s0, scratch, &mut next);
    let p = cond[j].clamp(PRIOR_CLAMP, 1.0 - PRIOR_CLAMP);
    let eps = params.eps;
    let p_yes = p * (1.0 - eps) + (1.0 - p) * eps;
    let mut option = 0.0;
    for (pj, conf) in [(p_yes, 1.0), (1.0 - p_yes, 0.0)] {
        if pj <= 0.0 {
            continue;
        }
        let r = posterior(cond[j], conf, eps);
        let v2 = v.max(r);
        let spent = st.total_cost + costs[j];
        let mut best = 0.0f64;
        for (i, &pi) in next.iter().enumerate() {
            if i == j || tried & (1u32 << i) != 0 || !is_allowed(params, i) {
                continue;
            }
            if spent + costs[i] > params.budget {
                continue;
            }
            best = best.max((1.0 - v2) * pi - params.mu * costs[i]);
        }
        option += pj * best;
    }
    scratch.next = next;
    myopic + option
}

/// Chooses the first model of a run and resets `st`.
pub(crate) fn begin(
    ev: &Evidence,
    costs: &[f64],
    params: &Params,
    st: &mut State,
    scratch: &mut Scratch,
) -> Result<Pending, BeginError> {
    *st = State::default();
    let m = costs.len();
    let mut cond = std::mem::take(&mut scratch.cond);
    cond.resize(m, 0.0);
    ev.conditional(0, params.s0, scratch, &mut cond);
    let result = match &params.plan {
        Plan::Dynamic { .. } => {
            let mut pick: Option<(f64, f64, usize)> = None;
            let mut cheapest: Option<(f64, usize)> = None;
            for j in (0..m).filter(|&j| is_allowed(params, j)) {
                if cheapest.is_none_or(|(c, _)| costs[j] < c) {
                    cheapest = Some((costs[j], j));
                }
                if costs[j] > params.budget {
                    continue;
                }
                let cand = (
                    value(ev, costs, params, st, &cond, 0.0, j, scratch),
                    costs[j],
                    j,
                );
                if pick.is_none_or(|p| better(cand, p)) {
                    pick = Some(cand);
                }
            }
            match (pick, cheapest) {
                (Some((_, _, j)), _) => Ok(Pending {
                    model: j,
                    prior: cond[j],
                    stage: 0,
                }),
                (None, Some((cost, model))) => Err(BeginError::Budget { model, cost }),
                (None, None) => Err(BeginError::NoModel),
            }
        }
        Plan::Chain(stages) => {
            let allowed: Vec<usize> = (0..stages.len())
                .filter(|&s| is_allowed(params, stages[s].0))
                .collect();
            // The first stage worth calling; the first allowed stage when none is.
            let stage = allowed
                .iter()
                .copied()
                .find(|&s| {
                    let j = stages[s].0;
                    cond[j] - params.mu * costs[j] > 0.0
                })
                .or_else(|| allowed.first().copied());
            match stage {
                None => Err(BeginError::NoModel),
                Some(s) => {
                    let j = stages[s].0;
                    if costs[j] > params.budget {
                        Err(BeginError::Budget {
                            model: j,
                            cost: costs[j],
                        })
                    } else {
                        Ok(Pending {
                            model: j,
                            prior: cond[j],
                            stage: s,
                        })
                    }
                }
            }
        }
    };
    scratch.cond = cond;
    if let Ok(p) = result {
        st.pending = Some(p);
    }
    result
}

/// Records the confidence `confidence` (checked by the caller to lie in [0, 1]) of the pending
/// model's answer, which cost `cost`, and decides what comes next.
///
/// # Panics
///
/// When no model is pending (the callers check).
pub(crate) fn observe(
    ev: &Evidence,
    costs: &[f64],
    params: &Params,
    st: &mut State,
    scratch: &mut Scratch,
    confidence: f64,
    cost: f64,
) -> Next {
    let pending = st
        .pending
        .take()
        .expect("observe is only called while a model is pending");
    let j = pending.model;
    let r = posterior(pending.prior, confidence, params.eps);
    st.tried |= 1u32 << j;
    st.steps += 1;
    st.total_cost += cost;
    if st.best.is_none_or(|(_, b)| r > b) {
        st.best = Some((j, r));
    }
    let threshold = match &params.plan {
        Plan::Dynamic { threshold } => *threshold,
        Plan::Chain(stages) => stages[pending.stage].1,
    };
    if r >= threshold {
        return Next::Stop {
            model: j,
            reason: StopReason::Accepted,
        };
    }
    let (best_model, v) = st.best.expect("set above");
    let stop = |reason| Next::Stop {
        model: best_model,
        reason,
    };
    if st.steps >= params.max_steps {
        return stop(StopReason::MaxSteps);
    }
    let m = costs.len();
    let mut cond = std::mem::take(&mut scratch.cond);
    cond.resize(m, 0.0);
    ev.conditional(st.tried, params.s0, scratch, &mut cond);
    let fits = |st: &State, i: usize| st.total_cost + costs[i] <= params.budget;
    let next = match &params.plan {
        Plan::Dynamic { .. } => {
            let mut best_any: Option<(f64, f64, usize)> = None;
            let mut best_fit: Option<(f64, f64, usize)> = None;
            let mut any = false;
            for i in 0..m {
                if st.tried & (1u32 << i) != 0 || !is_allowed(params, i) {
                    continue;
                }
                any = true;
                let cand = (
                    value(ev, costs, params, st, &cond, v, i, scratch),
                    costs[i],
                    i,
                );
                if best_any.is_none_or(|b| better(cand, b)) {
                    best_any = Some(cand);
                }
                if fits(st, i) && best_fit.is_none_or(|b| better(cand, b)) {
                    best_fit = Some(cand);
                }
            }
            match (best_any, best_fit) {
                _ if !any => stop(StopReason::OutOfModels),
                (Some((val, _, _)), _) if val <= 0.0 => stop(StopReason::NotWorthEscalating),
                (_, Some((val, _, i))) if val > 0.0 => Next::Call(Pending {
                    model: i,
                    prior: cond[i],
                    stage: 0,
                }),
                _ => stop(StopReason::BudgetExhausted),
            }
        }
        Plan::Chain(stages) => {
            let rest: Vec<usize> = (pending.stage + 1..stages.len())
                .filter(|&s| {
                    let i = stages[s].0;
                    is_allowed(params, i) && st.tried & (1u32 << i) == 0
                })
                .collect();
            let worth = rest.iter().copied().find(|&s| {
                let i = stages[s].0;
                (1.0 - v) * cond[i] - params.mu * costs[i] > 0.0
            });
            match worth {
                Some(s) if fits(st, stages[s].0) => Next::Call(Pending {
                    model: stages[s].0,
                    prior: cond[stages[s].0],
                    stage: s,
                }),
                Some(_) => stop(StopReason::BudgetExhausted),
                None if rest.is_empty() => stop(StopReason::OutOfModels),
                None => stop(StopReason::NotWorthEscalating),
            }
        }
    };
    scratch.cond = cond;
    if let Next::Call(p) = next {
        st.pending = Some(p);
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posterior_by_hand() {
        // Prior 0.5, a positive vote with 10 % errors: 0.9.
        assert!((posterior(0.5, 1.0, 0.1) - 0.9).abs() < 1e-12);
        // Prior 0.2, a negative vote: 0.2·0.1 / (0.2·0.1 + 0.8·0.9).
        let want = 0.02 / (0.02 + 0.72);
        assert!((posterior(0.2, 0.0, 0.1) - want).abs() < 1e-12);
        // An uninformative confidence leaves the prior; an error-free vote decides.
        assert!((posterior(0.3, 0.5, 0.1) - 0.3).abs() < 1e-12);
        assert!((posterior(0.3, 0.7, 0.5) - 0.3).abs() < 1e-12);
        assert_eq!(posterior(0.3, 1.0, 0.0), 1.0);
        assert_eq!(posterior(0.3, 0.0, 0.0), 0.0);
    }

    #[test]
    fn conditional_estimates_by_hand() {
        // Three models; neighbours: {0,1} right (weight 2), {2} right (weight 1), none (1).
        let ev = Evidence {
            patterns: Patterns::Own(vec![(0b011, 2.0), (0b100, 1.0), (0b000, 1.0)]),
            p0: vec![0.5, 0.5, 0.25],
            costs: vec![1.0, 2.0, 3.0],
            neighbours: 4,
        };
        let mut s = Scratch::new();
        let mut out = [0.0; 3];
        ev.conditional(0, 0.0, &mut s, &mut out);
        assert_eq!(out, [0.5, 0.5, 0.25]);
        // Where model 0 failed: the {2} and the empty neighbours, weight 2.
        ev.conditional(0b001, 0.0, &mut s, &mut out);
        assert_eq!(out, [0.0, 0.0, 0.5]);
        // Shrinkage by 2 pseudo-queries toward p0: (0 + 2·0.5)/4, (1 + 2·0.25)/4.
        ev.conditional(0b001, 2.0, &mut s, &mut out);
        assert_eq!(out, [0.25, 0.25, 0.375]);
        // The same through the training table, leaving one {0,1} query out.
        let table: Arc<[(u32, f64)]> = vec![(0b011, 3.0), (0b100, 1.0), (0b000, 1.0)].into();
        let ev = Evidence {
            patterns: Patterns::Table(table, Some(0b011)),
            ..ev
        };
        ev.conditional(0, 0.0, &mut s, &mut out);
        assert_eq!(out, [0.5, 0.5, 0.25]);
        ev.conditional(0b010, 0.0, &mut s, &mut out);
        assert_eq!(out, [0.0, 0.0, 0.5]);
    }
}
