//! The candidate models and their cost model.
//!
//! A [`ModelCard`] holds a model's list prices; [`ModelPool`] is the ordered set of candidates a
//! router chooses from. Model indices used everywhere in the engine (decisions, feedback,
//! estimate matrices) are positions in the pool.
//!
//! # Cost model
//!
//! Where a dataset or the caller observed the cost of a query, that observed cost is the cost.
//! Otherwise it is estimated from the prices, as the datasets' schema defines:
//!
//! ```text
//! cost = (input_usd_per_mtok * input_tokens + output_usd_per_mtok * output_tokens) / 1e6
//! ```
//!
//! where `input_tokens` is the query's prompt token count (0 when unknown) and `output_tokens`
//! the model's `default_output_tokens` unless the caller knows better.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One candidate model and its prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The model's id, unique within a pool.
    pub id: String,
    /// USD per million input tokens.
    pub input_usd_per_mtok: f64,
    /// USD per million output tokens.
    pub output_usd_per_mtok: f64,
    /// Output tokens assumed when the length of the answer is not known.
    pub default_output_tokens: f64,
}

impl ModelCard {
    /// A card with the given prices and 256 default output tokens.
    pub fn new(id: impl Into<String>, input_usd_per_mtok: f64, output_usd_per_mtok: f64) -> Self {
        ModelCard {
            id: id.into(),
            input_usd_per_mtok,
            output_usd_per_mtok,
            default_output_tokens: 256.0,
        }
    }

    /// Sets the default number of output tokens.
    pub fn with_default_output_tokens(mut self, tokens: f64) -> Self {
        self.default_output_tokens = tokens;
        self
    }

    /// Estimated USD cost of one call with `input_tokens` prompt tokens and `output_tokens`
    /// answer tokens (`None`: [`ModelCard::default_output_tokens`]).
    ///
    /// # Example
    ///
    /// ```
    /// use pointsman::ModelCard;
    /// let card = ModelCard::new("m", 0.2, 0.6).with_default_output_tokens(100.0);
    /// let cost = card.estimate_cost(1000.0, None);
    /// assert!((cost - (0.2 * 1000.0 + 0.6 * 100.0) / 1e6).abs() < 1e-15);
    /// ```
    pub fn estimate_cost(&self, input_tokens: f64, output_tokens: Option<f64>) -> f64 {
        let out = output_tokens.unwrap_or(self.default_output_tokens);
        (self.input_usd_per_mtok * input_tokens + self.output_usd_per_mtok * out) / 1e6
    }

    fn validate(&self) -> Result<()> {
        if self.id.trim().is_empty() {
            return Err(Error::Config("model id must not be empty".into()));
        }
        for (name, v) in [
            ("input_usd_per_mtok", self.input_usd_per_mtok),
            ("output_usd_per_mtok", self.output_usd_per_mtok),
            ("default_output_tokens", self.default_output_tokens),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::Config(format!(
                    "model {:?}: {name} {v} is not a non-negative number",
                    self.id
                )));
            }
        }
        Ok(())
    }
}

/// The ordered candidate models of a router.
///
/// # Example
///
/// ```
/// use pointsman::{ModelCard, ModelPool};
/// let pool = ModelPool::new(vec![ModelCard::new("small", 0.1, 0.1), ModelCard::new("large", 1.0, 3.0)])?;
/// assert_eq!(pool.index_of("large")?, 1);
/// assert!(pool.index_of("medium").is_err());
/// # Ok::<(), pointsman::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ModelPool {
    cards: Vec<ModelCard>,
}

impl ModelPool {
    /// A pool of `cards`, in that order.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the pool is empty, an id is empty or repeated, or a price is
    /// negative or not finite.
    pub fn new(cards: Vec<ModelCard>) -> Result<Self> {
        if cards.is_empty() {
            return Err(Error::Config(
                "a model pool needs at least one model".into(),
            ));
        }
        for (i, card) in cards.iter().enumerate() {
            card.validate()?;
            if cards[..i].iter().any(|c| c.id == card.id) {
                return Err(Error::Config(format!("model {:?} appears twice", card.id)));
            }
        }
        Ok(ModelPool { cards })
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        self.cards.len()
    }

    /// Always false: a pool has at least one model.
    pub fn is_empty(&self) -> bool {
        self.cards.is_empty()
    }

    /// The cards, in pool order.
    pub fn cards(&self) -> &[ModelCard] {
        &self.cards
    }

    /// The card of model `index`.
    ///
    /// # Panics
    ///
    /// When `index >= self.len()`.
    pub fn card(&self, index: usize) -> &ModelCard {
        &self.cards[index]
    }

    /// The id of model `index`.
    ///
    /// # Panics
    ///
    /// When `index >= self.len()`.
    pub fn id(&self, index: usize) -> &str {
        &self.cards[index].id
    }

    /// The ids, in pool order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.cards.iter().map(|c| c.id.as_str())
    }

    /// Position of the model `id`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] when no model has that id.
    pub fn index_of(&self, id: &str) -> Result<usize> {
        self.cards
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| Error::UnknownModel(id.to_string()))
    }

    /// Checks that `index` names a model of the pool.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] naming the index when it is out of range.
    pub fn check_index(&self, index: usize) -> Result<()> {
        if index < self.cards.len() {
            Ok(())
        } else {
            Err(Error::UnknownModel(format!(
                "#{index} (the pool has {} models)",
                self.cards.len()
            )))
        }
    }

    /// Estimated cost of a query with `prompt_tokens` input tokens (0 when unknown) on model
    /// `index`, with the model's default output length.
    pub fn estimate_cost(&self, index: usize, prompt_tokens: Option<f64>) -> f64 {
        self.cards[index].estimate_cost(prompt_tokens.unwrap_or(0.0), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_pools() {
        assert!(ModelPool::new(vec![]).is_err());
        let e = ModelPool::new(vec![
            ModelCard::new("a", 1.0, 1.0),
            ModelCard::new("a", 1.0, 1.0),
        ])
        .unwrap_err();
        assert_eq!(e.to_string(), "invalid config: model \"a\" appears twice");
        let e = ModelPool::new(vec![ModelCard::new("a", -1.0, 1.0)]).unwrap_err();
        assert!(e.to_string().contains("input_usd_per_mtok -1"), "{e}");
        assert!(ModelPool::new(vec![ModelCard::new(" ", 1.0, 1.0)]).is_err());
    }

    #[test]
    fn schema_cost_model() {
        // 0.1 USD/Mtok in and out, a 336-character prompt (84 tokens), 256 output tokens.
        let pool = ModelPool::new(vec![ModelCard::new("gemma", 0.1, 0.1)]).unwrap();
        let c = pool.estimate_cost(0, Some(336.0 / 4.0));
        assert!((c - 0.1 * (84.0 + 256.0) / 1e6).abs() < 1e-18);
        assert!((pool.estimate_cost(0, None) - 0.1 * 256.0 / 1e6).abs() < 1e-18);
        assert!(pool.check_index(1).is_err());
    }
}
