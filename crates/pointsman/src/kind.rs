//! The names of the router kinds: the one place where a kind's name is spelled.
//!
//! Every surface that names a kind — the `"type"` tag of a saved router, `pointsman train
//! --router`, `pointsman eval --routers`, Python's classes, the C library's `pm_router_kind` —
//! reads it from [`RouterKind`]. The kinds' code (fitting, loading, typed access) is gathered in
//! [`crate::registry`]; this module sits below the routers so that each router can report its
//! own kind without spelling it.
//!
//! # Example
//!
//! ```
//! use pointsman::kind::{Family, RouterKind};
//! let kind = RouterKind::from_name("knn-ucb").unwrap();
//! assert_eq!(kind, RouterKind::KnnUcb);
//! assert_eq!(kind.family(), Family::Learner);
//! assert_eq!(kind.name(), "knn-ucb");
//! assert!(RouterKind::from_name("quantum").is_none());
//! ```

use std::fmt;

/// A kind of router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RouterKind {
    /// Uniform over the allowed models, seeded (a baseline).
    Random,
    /// Always the model with the lowest mean training cost (a baseline).
    Cheapest,
    /// Always the model with the best mean training score (a baseline).
    BestSingle,
    /// Always a given model (a baseline; named `fixed:<model id>` on the command line).
    Fixed,
    /// RouterBench's zero router: the single models' cost–quality hull (a baseline).
    Zero,
    /// Similarity-weighted scores of the nearest training queries.
    Knn,
    /// Matrix factorisation (RouteLLM's, generalised to N models).
    Mf,
    /// Multidimensional item response theory: query difficulty and discrimination from the
    /// embedding and task, model ability per latent dimension.
    Irt,
    /// A stack: several pre-call routers' estimates combined per model by weights fitted out of
    /// fold.
    Stack,
    /// LinUCB: a ridge-regression bandit with upper confidence bounds.
    Linucb,
    /// Linear Thompson sampling.
    Thompson,
    /// A neighbourhood bandit over the model's own past observations.
    KnnUcb,
    /// A cluster bandit with an additive (difficulty + ability) prior.
    ClusterUcb,
    /// A cascade: call a cheap model first, escalate on low confidence within a budget.
    Cascade,
}

/// What a kind of router does with a query, and how it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Family {
    /// A fixed rule fitted from training means.
    Baseline,
    /// A pre-call estimator trained from labelled data (kNN, MF, IRT, a stack of them).
    Estimator,
    /// A contextual bandit that learns online from the chosen model's outcome.
    Learner,
    /// A cascade, which decides again after each answer.
    Cascade,
}

impl RouterKind {
    /// Every kind, in the order of reports and help texts.
    pub const ALL: [RouterKind; 14] = [
        RouterKind::Random,
        RouterKind::Cheapest,
        RouterKind::BestSingle,
        RouterKind::Fixed,
        RouterKind::Zero,
        RouterKind::Knn,
        RouterKind::Mf,
        RouterKind::Irt,
        RouterKind::Stack,
        RouterKind::Linucb,
        RouterKind::Thompson,
        RouterKind::KnnUcb,
        RouterKind::ClusterUcb,
        RouterKind::Cascade,
    ];

    /// The kind's name: the `"type"` of its saved config (for the baselines, the `"rule"`), the
    /// name on the command line and in `Router::kind`.
    pub const fn name(self) -> &'static str {
        match self {
            RouterKind::Random => "random",
            RouterKind::Cheapest => "cheapest",
            RouterKind::BestSingle => "best-single",
            RouterKind::Fixed => "fixed",
            RouterKind::Zero => "zero",
            RouterKind::Knn => "knn",
            RouterKind::Mf => "mf",
            RouterKind::Irt => "irt",
            RouterKind::Stack => "stack",
            RouterKind::Linucb => "linucb",
            RouterKind::Thompson => "thompson",
            RouterKind::KnnUcb => "knn-ucb",
            RouterKind::ClusterUcb => "cluster-ucb",
            RouterKind::Cascade => "cascade",
        }
    }

    /// The `"type"` tag under which every baseline is saved (its rule is a second tag).
    pub const BASELINE_TAG: &'static str = "baseline";

    /// The name of the automatic choice (`pointsman train --router auto`): not a kind but a
    /// training procedure that cross-validates the pre-call kinds and a stack of them and saves
    /// the best, a router of one of the kinds.
    pub const AUTO: &'static str = "auto";

    /// The kind called `name`, if any.
    pub fn from_name(name: &str) -> Option<RouterKind> {
        RouterKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind's family.
    pub const fn family(self) -> Family {
        match self {
            RouterKind::Random
            | RouterKind::Cheapest
            | RouterKind::BestSingle
            | RouterKind::Fixed
            | RouterKind::Zero => Family::Baseline,
            RouterKind::Knn | RouterKind::Mf | RouterKind::Irt | RouterKind::Stack => {
                Family::Estimator
            }
            RouterKind::Linucb
            | RouterKind::Thompson
            | RouterKind::KnnUcb
            | RouterKind::ClusterUcb => Family::Learner,
            RouterKind::Cascade => Family::Cascade,
        }
    }

    /// Whether routers of this kind decide before any model runs (every kind but the cascade,
    /// which looks at answers): the kinds the automatic choice considers.
    pub const fn is_pre_call(self) -> bool {
        !matches!(self.family(), Family::Cascade)
    }

    /// Whether routers of this kind learn from feedback.
    pub const fn is_learner(self) -> bool {
        matches!(self.family(), Family::Learner)
    }

    /// One line on what the kind does, for help texts.
    pub const fn summary(self) -> &'static str {
        match self {
            RouterKind::Random => "uniform over the allowed models, seeded",
            RouterKind::Cheapest => "always the model with the lowest mean training cost",
            RouterKind::BestSingle => "always the model with the best mean training score",
            RouterKind::Fixed => "always the given model",
            RouterKind::Zero => "RouterBench's zero router: the single models' cost-quality hull",
            RouterKind::Knn => "k nearest training queries (cross-validated search)",
            RouterKind::Mf => "matrix factorisation (cross-validated search)",
            RouterKind::Irt => {
                "multidimensional item response theory: difficulty, discrimination, ability"
            }
            RouterKind::Stack => "knn, mf and irt combined per model by out-of-fold weights",
            RouterKind::Linucb => "LinUCB bandit, learns online",
            RouterKind::Thompson => "linear Thompson-sampling bandit, learns online",
            RouterKind::KnnUcb => "neighbourhood bandit, learns online",
            RouterKind::ClusterUcb => {
                "cluster bandit with a difficulty + ability prior, learns online"
            }
            RouterKind::Cascade => "calls a cheap model first, escalates on low confidence",
        }
    }

    /// The names of every kind, comma-separated (for messages and help texts).
    pub fn names() -> String {
        RouterKind::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A kind serialises as its name (`"knn"`).
impl serde::Serialize for RouterKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for RouterKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        RouterKind::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown router kind {name:?} (known: {})",
                RouterKind::names()
            ))
        })
    }
}

impl fmt::Display for RouterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        for k in RouterKind::ALL {
            assert_eq!(RouterKind::from_name(k.name()), Some(k));
            assert_eq!(k.to_string(), k.name());
            assert!(!k.summary().is_empty());
        }
        let mut names: Vec<_> = RouterKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RouterKind::ALL.len());
        assert!(RouterKind::from_name(RouterKind::BASELINE_TAG).is_none());
        assert!(RouterKind::from_name(RouterKind::AUTO).is_none());
        assert!(RouterKind::ALL
            .iter()
            .all(|k| k.is_pre_call() == (*k != RouterKind::Cascade)));
        assert!(RouterKind::names().starts_with("random, cheapest"));
        let json = serde_json::to_string(&RouterKind::KnnUcb).unwrap();
        assert_eq!(json, "\"knn-ucb\"");
        assert_eq!(
            serde_json::from_str::<RouterKind>(&json).unwrap(),
            RouterKind::KnnUcb
        );
        assert!(serde_json::from_str::<RouterKind>("\"quantum\"").is_err());
    }
}
