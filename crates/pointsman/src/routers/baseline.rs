//! Baseline routers: what a learned router has to beat.
//!
//! | name | rule |
//! |---|---|
//! | `random` | uniform over the allowed models, seeded, a pure function of the query |
//! | `cheapest` | always the model with the lowest mean cost on the training data |
//! | `best-single` | always the model with the best mean score on the training data |
//! | `fixed:<model id>` | always that model |
//! | `zero` | RouterBench's zero router: ignores the query; each model's expected quality and cost are its training means, so sweeping the cost weight walks the cost–quality hull of the single models |
//!
//! The fixed kinds fall back to the best allowed model by mean score when an
//! [`Objective`](crate::Objective) excludes their model. Estimates are the training means of
//! quality and, except for `zero`, the pool's price estimate of the query's cost.

use serde::{Deserialize, Serialize};

use crate::data::Split;
use crate::error::{Error, Result};
use crate::features::FeatureBatch;
use crate::kind::RouterKind;
use crate::pool::ModelPool;
use crate::rng::{hash_f32s, SplitMix64};
use crate::router::{best_model, Estimates, Router};
use crate::saved::{SavedRouter, Tensor};

/// Which baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Baseline {
    /// Uniform over the allowed models, seeded.
    Random {
        /// Seed of the per-query draw.
        seed: u64,
    },
    /// The model with the lowest mean training cost.
    Cheapest,
    /// The model with the best mean training score.
    BestSingle,
    /// A given model.
    Fixed {
        /// The model's id.
        model: String,
    },
    /// RouterBench's zero router.
    Zero,
}

impl Baseline {
    /// The baseline of `kind` (`seed` for the random one); `None` for `fixed`, which needs a
    /// model, and for kinds that are not baselines.
    pub fn of(kind: RouterKind, seed: u64) -> Option<Baseline> {
        Some(match kind {
            RouterKind::Random => Baseline::Random { seed },
            RouterKind::Cheapest => Baseline::Cheapest,
            RouterKind::BestSingle => Baseline::BestSingle,
            RouterKind::Zero => Baseline::Zero,
            _ => return None,
        })
    }

    /// The router kind of this baseline.
    pub fn kind(&self) -> RouterKind {
        match self {
            Baseline::Random { .. } => RouterKind::Random,
            Baseline::Cheapest => RouterKind::Cheapest,
            Baseline::BestSingle => RouterKind::BestSingle,
            Baseline::Fixed { .. } => RouterKind::Fixed,
            Baseline::Zero => RouterKind::Zero,
        }
    }
}

/// A fitted baseline router.
///
/// # Example
///
/// ```
/// use pointsman::data::Split;
/// use pointsman::routers::baseline::{Baseline, BaselineRouter};
/// use pointsman::{ModelCard, ModelPool, Objective, QueryFeatures, Router};
/// let pool = ModelPool::new(vec![ModelCard::new("a", 0.1, 0.1), ModelCard::new("b", 1.0, 1.0)])?;
/// let train = Split::from_arrays(pool, vec![1.0, 0.0, 0.0, 1.0], 2, vec![0.2, 0.9, 0.4, 0.7], vec![1e-5, 1e-4, 1e-5, 1e-4])?;
/// let router = BaselineRouter::fit(Baseline::BestSingle, &train)?;
/// let decision = router.route(&QueryFeatures::new(vec![0.6, 0.8])?, &Objective::new(0.0))?;
/// assert_eq!(decision.model_id, "b");
/// assert!((decision.quality - 0.8).abs() < 1e-12);
/// # Ok::<(), pointsman::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BaselineRouter {
    rule: Baseline,
    fixed: Option<usize>,
    pool: ModelPool,
    mean_scores: Vec<f64>,
    mean_costs: Vec<f64>,
    dim: usize,
    embedding_model: Option<String>,
}

impl BaselineRouter {
    /// Fits the baseline `rule` on the training split `train`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an empty split; [`Error::UnknownModel`] for a fixed model that
    /// is not in the split's pool; [`Error::MissingLabels`] when some model has neither a score
    /// nor a preference on the split (with partial labels the means are over the observed scores,
    /// with preferences only the win shares stand in for them).
    pub fn fit(rule: Baseline, train: &Split) -> Result<Self> {
        if train.is_empty() {
            return Err(Error::InvalidInput(format!(
                "cannot fit a baseline on the empty {} split",
                train.name()
            )));
        }
        train.features()?;
        let pool = train.pool().clone();
        let mean_scores = train.model_ranking().ok_or_else(|| {
            Error::MissingLabels(format!(
                "a baseline needs a score or a preference of every model on the {} split",
                train.name()
            ))
        })?;
        let mean_costs = train.mean_costs();
        let fixed = fixed_choice(&rule, &pool, &mean_scores, &mean_costs)?;
        Ok(BaselineRouter {
            rule,
            fixed,
            pool,
            mean_scores,
            mean_costs,
            dim: train.dim(),
            embedding_model: train.embedding_model().map(str::to_string),
        })
    }

    /// Rebuilds a baseline from its saved form.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for missing or misshapen tensors or values out of range.
    pub fn from_saved(rule: Baseline, mut saved: SavedRouter) -> Result<Self> {
        let m = saved.pool.len();
        let mean_scores = saved.take_f64("baseline.mean_scores", &[m])?;
        let mean_costs = saved.take_f64("baseline.mean_costs", &[m])?;
        if mean_scores.iter().any(|q| !(0.0..=1.0).contains(q))
            || mean_costs.iter().any(|c| !c.is_finite() || *c < 0.0)
        {
            return Err(Error::format("saved router", "baseline means out of range"));
        }
        let fixed = fixed_choice(&rule, &saved.pool, &mean_scores, &mean_costs)
            .map_err(|e| Error::format("saved router", e.to_string()))?;
        Ok(BaselineRouter {
            rule,
            fixed,
            pool: saved.pool,
            mean_scores,
            mean_costs,
            dim: saved.dim,
            embedding_model: saved.embedding_model,
        })
    }

    /// The rule.
    pub fn rule(&self) -> &Baseline {
        &self.rule
    }

    /// The model a fixed rule (`cheapest`, `best-single`, `fixed`) always chooses when allowed.
    pub fn fixed_model(&self) -> Option<usize> {
        self.fixed
    }

    /// The router with new prices ([`ModelPool::repriced`]) without refitting: each repriced
    /// model's mean training cost is scaled by its ratio of new to old mean price per token, and
    /// `cheapest` / `best-single` choose again by the new means.
    ///
    /// # Errors
    ///
    /// As [`ModelPool::repriced`]; [`Error::Config`] for a model repriced from a price of 0 (its
    /// mean cost has no ratio to scale by).
    pub fn reprice(&self, prices: &[crate::pool::ModelCard]) -> Result<BaselineRouter> {
        let pool = self.pool.repriced(prices)?;
        let mean_costs = self
            .mean_costs
            .iter()
            .enumerate()
            .map(|(j, &c)| crate::pool::cost_scale(self.pool.card(j), pool.card(j)).map(|r| c * r))
            .collect::<Result<Vec<f64>>>()?;
        let fixed = fixed_choice(&self.rule, &pool, &self.mean_scores, &mean_costs)?;
        Ok(BaselineRouter {
            fixed,
            pool,
            mean_costs,
            ..self.clone()
        })
    }
}

/// The model a fixed rule always chooses (`cheapest`: the lowest mean cost; `best-single`: the
/// best mean score, the cheaper of a tie; `fixed`: the named one), `None` for the others.
fn fixed_choice(
    rule: &Baseline,
    pool: &ModelPool,
    mean_scores: &[f64],
    mean_costs: &[f64],
) -> Result<Option<usize>> {
    Ok(match rule {
        Baseline::Cheapest => Some(best_model(&vec![0.0; pool.len()], mean_costs, 1.0, None)),
        Baseline::BestSingle => Some(best_model(mean_scores, mean_costs, 0.0, None)),
        Baseline::Fixed { model } => Some(pool.index_of(model)?),
        Baseline::Random { .. } | Baseline::Zero => None,
    })
}

impl Router for BaselineRouter {
    fn kind(&self) -> &'static str {
        self.rule.kind().name()
    }

    fn models(&self) -> &ModelPool {
        &self.pool
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }

    fn to_saved(&self) -> Result<SavedRouter> {
        let m = self.pool.len();
        Ok(SavedRouter::new(
            RouterKind::BASELINE_TAG,
            &self.rule,
            self.pool.clone(),
            self.embedding_model.clone(),
            self.dim,
        )
        .with_tensor(
            "baseline.mean_scores",
            Tensor::f64(&[m], self.mean_scores.clone()),
        )
        .with_tensor(
            "baseline.mean_costs",
            Tensor::f64(&[m], self.mean_costs.clone()),
        ))
    }

    fn estimate(&self, batch: &FeatureBatch<'_>, out: &mut Estimates) -> Result<()> {
        for r in 0..batch.rows() {
            let tokens = batch.prompt_tokens(r);
            let (q, c) = out.row_mut(r);
            q.copy_from_slice(&self.mean_scores);
            if self.rule == Baseline::Zero {
                c.copy_from_slice(&self.mean_costs);
            } else {
                for (m, c) in c.iter_mut().enumerate() {
                    *c = self.pool.estimate_cost(m, tokens);
                }
            }
        }
        Ok(())
    }

    fn choice_probability(&self, mask: Option<&[bool]>) -> Option<f64> {
        match (&self.rule, self.fixed) {
            (Baseline::Random { .. }, None) => {
                let allowed = mask.map_or(self.pool.len(), |m| m.iter().filter(|&&a| a).count());
                Some(1.0 / allowed.max(1) as f64)
            }
            _ => Some(1.0),
        }
    }

    fn choose(
        &self,
        batch: &FeatureBatch<'_>,
        est: &Estimates,
        cost_weight: f64,
        mask: Option<&[bool]>,
        out: &mut [u32],
    ) {
        let allowed = |m: usize| mask.is_none_or(|mask| mask[m]);
        for (r, o) in out.iter_mut().enumerate() {
            *o = match (&self.rule, self.fixed) {
                (_, Some(m)) if allowed(m) => m as u32,
                (_, Some(_)) => best_model(est.score_row(r), est.cost_row(r), 0.0, mask) as u32,
                (Baseline::Random { seed }, _) => {
                    let n_allowed = (0..self.pool.len()).filter(|&m| allowed(m)).count();
                    let pick = SplitMix64::new(hash_f32s(*seed, batch.row(r))).below(n_allowed);
                    (0..self.pool.len())
                        .filter(|&m| allowed(m))
                        .nth(pick)
                        .expect("pick is below the number of allowed models")
                        as u32
                }
                _ => best_model(est.score_row(r), est.cost_row(r), cost_weight, mask) as u32,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::ModelCard;
    use crate::{Objective, QueryFeatures};

    fn split() -> Split {
        let pool = ModelPool::new(vec![
            ModelCard::new("small", 0.1, 0.1),
            ModelCard::new("mid", 1.0, 1.0),
            ModelCard::new("big", 10.0, 10.0),
        ])
        .unwrap();
        Split::from_arrays(
            pool,
            vec![1.0, 0.0, 0.0, 1.0],
            2,
            vec![0.2, 0.6, 0.8, 0.4, 0.6, 0.9],
            vec![1e-5, 1e-4, 1e-3, 1e-5, 1e-4, 1e-3],
        )
        .unwrap()
    }

    #[test]
    fn fixed_rules() {
        let s = split();
        let q = QueryFeatures::new(vec![1.0, 1.0]).unwrap();
        let obj = Objective::new(0.0);
        let pick = |b: Baseline| {
            BaselineRouter::fit(b, &s)
                .unwrap()
                .route(&q, &obj)
                .unwrap()
                .model_id
        };
        assert_eq!(pick(Baseline::Cheapest), "small");
        assert_eq!(pick(Baseline::BestSingle), "big");
        assert_eq!(
            pick(Baseline::Fixed {
                model: "mid".into()
            }),
            "mid"
        );
        assert!(BaselineRouter::fit(Baseline::Fixed { model: "x".into() }, &s).is_err());
        // An objective that excludes the fixed model falls back to the best allowed by quality.
        let r = BaselineRouter::fit(Baseline::BestSingle, &s).unwrap();
        let d = r
            .route(&q, &Objective::new(0.0).with_allowed(["small", "mid"]))
            .unwrap();
        assert_eq!(d.model_id, "mid");
        assert_eq!(r.route(&q, &Objective::new(1e9)).unwrap().model_id, "big");
    }

    #[test]
    fn zero_walks_the_hull() {
        let s = split();
        let r = BaselineRouter::fit(Baseline::Zero, &s).unwrap();
        let q = QueryFeatures::new(vec![1.0, 1.0]).unwrap();
        assert_eq!(r.route(&q, &Objective::new(0.0)).unwrap().model_id, "big");
        // big vs mid: 0.85 - w 1e-3 vs 0.6 - w 1e-4  → switches at w = 277.8
        assert_eq!(r.route(&q, &Objective::new(300.0)).unwrap().model_id, "mid");
        assert_eq!(r.route(&q, &Objective::new(1e5)).unwrap().model_id, "small");
    }

    #[test]
    fn random_is_uniform_and_deterministic() {
        let s = split();
        let r = BaselineRouter::fit(Baseline::Random { seed: 3 }, &s).unwrap();
        let mut data = Vec::new();
        for i in 0..3000 {
            data.extend_from_slice(&[1.0, i as f32]);
        }
        let batch = FeatureBatch::new(&data, 2).unwrap();
        let a = r.route_batch(&batch, &Objective::new(0.0)).unwrap();
        let b = r.route_batch(&batch, &Objective::new(1e6)).unwrap();
        assert_eq!(a, b);
        let mut counts = [0; 3];
        for &m in &a {
            counts[m as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(r.choice_probability(None), Some(1.0 / 3.0));
        assert_eq!(r.choice_probability(Some(&[true, false, true])), Some(0.5));
        let only = r
            .route_batch(&batch, &Objective::new(0.0).with_allowed(["small", "big"]))
            .unwrap();
        assert!(only.iter().all(|&m| m != 1));
        assert_eq!(
            Baseline::of(RouterKind::Random, 4),
            Some(Baseline::Random { seed: 4 })
        );
        assert_eq!(Baseline::of(RouterKind::Fixed, 0), None);
        assert_eq!(Baseline::of(RouterKind::Knn, 0), None);
        let fixed = Baseline::Fixed {
            model: "mid".into(),
        };
        assert_eq!(fixed.kind(), RouterKind::Fixed);
    }
}
