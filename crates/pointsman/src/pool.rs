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

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Shown};

/// The highest price a card may list, USD per million tokens (a dollar per token): far above any
/// model's, low enough that a price times a prompt's token count stays a finite cost.
pub const MAX_PRICE_PER_MTOK: f64 = 1e6;

/// The most output tokens a card may assume per answer.
pub const MAX_OUTPUT_TOKENS: f64 = 1e9;

/// The highest cost in USD one observed call may report (a dataset's cell, a learner's
/// feedback): above the most any card's prices can charge for one query (2·10⁹ USD), low enough
/// that a learner's running sums of costs stay finite over any number of observations.
pub const MAX_COST_USD: f64 = 1e12;

/// The largest value of a card's optional figures (`ttft_ms`, `output_tokens_per_second`,
/// `joules_per_token`, `context_window`).
pub const MAX_CARD_FIGURE: f64 = 1e9;

/// The slowest output speed a card may state, tokens per second.
pub const MIN_TOKENS_PER_SECOND: f64 = 1e-3;

/// One candidate model: its prices, and optionally what it is known to take and do.
///
/// Only the id and the prices are required. The optional fields (expected latency, energy,
/// context window, capabilities) are read by decision-time policies ([`crate::policy`]): they
/// default to unknown, are left out of saved files while unknown, so files written before they
/// existed load and save back byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The model's id, unique within a pool.
    pub id: String,
    /// USD per million input tokens.
    pub input_usd_per_mtok: f64,
    /// USD per million output tokens.
    pub output_usd_per_mtok: f64,
    /// Output tokens assumed when the length of the answer is not known (256 when a card read
    /// from JSON does not say: [`DEFAULT_OUTPUT_TOKENS`]).
    #[serde(default = "default_output_tokens")]
    pub default_output_tokens: f64,
    /// Expected time to the first token, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// Expected output speed, tokens per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_per_second: Option<f64>,
    /// Expected energy per token processed (prompt and answer), joules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_token: Option<f64>,
    /// The longest prompt the model takes, tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<f64>,
    /// What the model can do beyond text, as flags (`"tools"`, `"vision"`, `"json_mode"`, or
    /// any name a deployment uses); sorted, without repeats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// What the model is, in words (optional): with the prices, what a router knows of a model
    /// onboarded without labels (`docs/own-data.md`). Saved with the router only when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The output tokens a card assumes when it does not say: 256.
pub const DEFAULT_OUTPUT_TOKENS: f64 = 256.0;

fn default_output_tokens() -> f64 {
    DEFAULT_OUTPUT_TOKENS
}

impl ModelCard {
    /// A card with the given prices and 256 default output tokens.
    pub fn new(id: impl Into<String>, input_usd_per_mtok: f64, output_usd_per_mtok: f64) -> Self {
        ModelCard {
            id: id.into(),
            input_usd_per_mtok,
            output_usd_per_mtok,
            default_output_tokens: DEFAULT_OUTPUT_TOKENS,
            ttft_ms: None,
            output_tokens_per_second: None,
            joules_per_token: None,
            context_window: None,
            capabilities: Vec::new(),
            description: None,
        }
    }

    /// Sets the expected latency: time to the first token (ms) and output tokens per second.
    pub fn with_latency(mut self, ttft_ms: f64, output_tokens_per_second: f64) -> Self {
        self.ttft_ms = Some(ttft_ms);
        self.output_tokens_per_second = Some(output_tokens_per_second);
        self
    }

    /// Sets the expected energy per token processed, joules.
    pub fn with_energy(mut self, joules_per_token: f64) -> Self {
        self.joules_per_token = Some(joules_per_token);
        self
    }

    /// Sets the context window, tokens.
    pub fn with_context_window(mut self, tokens: f64) -> Self {
        self.context_window = Some(tokens);
        self
    }

    /// Adds capability flags (kept sorted, without repeats).
    pub fn with_capabilities<I, S>(mut self, flags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.capabilities.extend(flags.into_iter().map(Into::into));
        self.capabilities.sort();
        self.capabilities.dedup();
        self
    }

    /// The optional figures the decision policies read, by their names in a card's JSON.
    pub fn figures(&self) -> [(&'static str, Option<f64>); 4] {
        [
            ("ttft_ms", self.ttft_ms),
            ("output_tokens_per_second", self.output_tokens_per_second),
            ("joules_per_token", self.joules_per_token),
            ("context_window", self.context_window),
        ]
    }

    /// Whether the card lists the capability `flag`.
    pub fn has_capability(&self, flag: &str) -> bool {
        self.capabilities.iter().any(|c| c == flag)
    }

    /// Expected seconds to a whole answer of `output_tokens` tokens: time to the first token plus
    /// the tokens at the card's speed; `None` when the card has no latency figures.
    ///
    /// # Example
    ///
    /// ```
    /// use pointsman::ModelCard;
    /// let card = ModelCard::new("m", 0.2, 0.6).with_latency(300.0, 50.0);
    /// assert_eq!(card.expected_latency_s(100.0), Some(0.3 + 2.0));
    /// ```
    pub fn expected_latency_s(&self, output_tokens: f64) -> Option<f64> {
        match (self.ttft_ms, self.output_tokens_per_second) {
            (Some(ttft), Some(tps)) => Some(ttft / 1e3 + output_tokens / tps),
            (Some(ttft), None) => Some(ttft / 1e3),
            _ => None,
        }
    }

    /// Expected joules for a call with `input_tokens` prompt and `output_tokens` answer tokens;
    /// `None` when the card has no energy figure.
    pub fn expected_energy_j(&self, input_tokens: f64, output_tokens: f64) -> Option<f64> {
        self.joules_per_token
            .map(|j| j * (input_tokens + output_tokens))
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
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

    /// Checks the card; `strict` holds the optional figures to their ranges, else (a saved
    /// router's pool) to what earlier versions accepted, logging a figure outside the ranges.
    fn validate(&self, strict: bool) -> Result<()> {
        if self.id.trim().is_empty() {
            return Err(Error::Config("model id must not be empty".into()));
        }
        for (name, v, max) in [
            (
                "input_usd_per_mtok",
                self.input_usd_per_mtok,
                MAX_PRICE_PER_MTOK,
            ),
            (
                "output_usd_per_mtok",
                self.output_usd_per_mtok,
                MAX_PRICE_PER_MTOK,
            ),
            (
                "default_output_tokens",
                self.default_output_tokens,
                MAX_OUTPUT_TOKENS,
            ),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::Config(format!(
                    "model {:?}: {name} {} is not a non-negative number",
                    self.id,
                    Shown(v)
                )));
            }
            if v > max {
                return Err(Error::Config(format!(
                    "model {:?}: {name} {} is above the ceiling {max:e}",
                    self.id,
                    Shown(v)
                )));
            }
        }
        for (name, v) in self.figures() {
            let Some(v) = v else { continue };
            // Each figure's range keeps the latency and energy a policy computes from it finite
            // (a speed of 5e-324 tokens/s made every latency infinite and the utility null).
            let (min, max, whole) = match name {
                "output_tokens_per_second" => (MIN_TOKENS_PER_SECOND, MAX_CARD_FIGURE, false),
                "context_window" => (1.0, MAX_CARD_FIGURE, true),
                _ => (0.0, MAX_CARD_FIGURE, false),
            };
            if !(min..=max).contains(&v) || (whole && v.fract() != 0.0) {
                let what = if whole { "a whole number" } else { "a number" };
                let message = format!(
                    "model {:?}: {name} {} is not {what} in [{min}, {max:e}]",
                    self.id,
                    Shown(v)
                );
                let accepted_before =
                    v.is_finite() && v >= 0.0 && !(name == "output_tokens_per_second" && v == 0.0);
                if strict || !accepted_before {
                    return Err(Error::Config(message));
                }
                tracing::warn!(
                    "{message}: a policy reading it misjudges the model (reprice the router with \
                     a price list stating a corrected {name})"
                );
            }
        }
        if let Some(flag) = self.capabilities.iter().find(|c| c.trim().is_empty()) {
            return Err(Error::Config(format!(
                "model {:?}: capability {flag:?} is empty",
                self.id
            )));
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "Vec<ModelCard>", try_from = "Vec<ModelCard>")]
pub struct ModelPool {
    cards: Vec<ModelCard>,
    /// Position of each id, so that lookups and the duplicate check do not scan the pool.
    index: HashMap<String, usize>,
}

impl PartialEq for ModelPool {
    fn eq(&self, other: &Self) -> bool {
        self.cards == other.cards
    }
}

impl From<ModelPool> for Vec<ModelCard> {
    fn from(pool: ModelPool) -> Self {
        pool.cards
    }
}

impl TryFrom<Vec<ModelCard>> for ModelPool {
    type Error = Error;

    /// A saved router's pool: its cards' optional figures are held to the ranges of the version
    /// that wrote them (finite, non-negative, a positive speed), so that a file written before
    /// the tighter ranges still loads; a figure outside them is logged, and repricing the
    /// router with a corrected figure ([`ModelPool::repriced`]) writes a pool that has them.
    fn try_from(cards: Vec<ModelCard>) -> Result<Self> {
        ModelPool::build(cards, false)
    }
}

impl ModelPool {
    /// A pool of `cards`, in that order.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the pool is empty, an id is empty or repeated, or a price is
    /// negative or not finite.
    pub fn new(cards: Vec<ModelCard>) -> Result<Self> {
        ModelPool::build(cards, true)
    }

    fn build(cards: Vec<ModelCard>, strict: bool) -> Result<Self> {
        if cards.is_empty() {
            return Err(Error::Config(
                "a model pool needs at least one model".into(),
            ));
        }
        let mut index = HashMap::with_capacity(cards.len());
        for (i, card) in cards.iter().enumerate() {
            card.validate(strict)?;
            if index.insert(card.id.clone(), i).is_some() {
                return Err(Error::Config(format!("model {:?} appears twice", card.id)));
            }
        }
        Ok(ModelPool { cards, index })
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
        self.index
            .get(id)
            .copied()
            .ok_or_else(|| Error::UnknownModel(id.to_string()))
    }

    /// The pool with `card` added last: the pool of a router that `card`'s model is onboarded
    /// into.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the pool already has the card's id or its prices are out of range.
    pub fn with_added(&self, card: &ModelCard) -> Result<ModelPool> {
        if self.index.contains_key(&card.id) {
            return Err(Error::Config(format!(
                "the router already has model {:?}",
                card.id
            )));
        }
        let mut cards = self.cards.clone();
        cards.push(card.clone());
        ModelPool::new(cards)
    }

    /// The column of the model `id` being onboarded in labelled queries whose pool this is.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] when the labelled queries have no such model.
    pub(crate) fn column_of_added(&self, id: &str) -> Result<usize> {
        self.index_of(id).map_err(|_| {
            Error::UnknownModel(format!(
                "{id} (the labelled queries have no scores of the model added)"
            ))
        })
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

    /// The prior a model known only by its card puts on the models of this pool: how much each
    /// known model's estimate counts toward the new model's before any of its answers is graded
    /// (`docs/own-data.md`). Weight of model `i`, normalised to sum to 1:
    ///
    /// ```text
    /// w_i ∝ exp(−(ln p_new − ln p_i)² / (2 ln²2)) · (1 + 2·cos(words_new, words_i))
    /// ```
    ///
    /// with `p` a card's mean price per token ((input + output) / 2, floored at 1e-3 USD per 1M
    /// tokens) — a model twice or half as dear counts `e^(-1/2)` as much as one at the same price
    /// — and `cos` the cosine of the two descriptions' word counts (lower case, words of three
    /// letters or more; 0 when either card has no description). Price is the strongest public
    /// hint of a model's size and so of its quality; the description separates models of one
    /// price (a chat tune from a code model).
    ///
    /// # Example
    ///
    /// ```
    /// use pointsman::{ModelCard, ModelPool};
    /// let pool = ModelPool::new(vec![ModelCard::new("small", 0.1, 0.1), ModelCard::new("large", 1.0, 1.0)])?;
    /// let w = pool.prior_weights(&ModelCard::new("new-large", 0.9, 0.9));
    /// assert!(w[1] > 0.9 && (w[0] + w[1] - 1.0).abs() < 1e-12);
    /// # Ok::<(), pointsman::Error>(())
    /// ```
    pub fn prior_weights(&self, card: &ModelCard) -> Vec<f64> {
        let price =
            |c: &ModelCard| ((c.input_usd_per_mtok + c.output_usd_per_mtok) / 2.0).max(1e-3);
        let words = |c: &ModelCard| -> HashMap<String, f64> {
            let mut w = HashMap::new();
            for word in c
                .description
                .as_deref()
                .unwrap_or("")
                .split(|ch: char| !ch.is_alphanumeric())
                .filter(|w| w.chars().count() >= 3)
            {
                *w.entry(word.to_lowercase()).or_insert(0.0) += 1.0;
            }
            w
        };
        let cosine = |a: &HashMap<String, f64>, b: &HashMap<String, f64>| -> f64 {
            let dot: f64 = a.iter().map(|(k, v)| v * b.get(k).unwrap_or(&0.0)).sum();
            let na: f64 = a.values().map(|v| v * v).sum::<f64>().sqrt();
            let nb: f64 = b.values().map(|v| v * v).sum::<f64>().sqrt();
            if na > 0.0 && nb > 0.0 {
                dot / (na * nb)
            } else {
                0.0
            }
        };
        let (p_new, w_new) = (price(card).ln(), words(card));
        let ln2 = std::f64::consts::LN_2;
        let raw: Vec<f64> = self
            .cards
            .iter()
            .map(|c| {
                let d = p_new - price(c).ln();
                (-(d * d) / (2.0 * ln2 * ln2)).exp() * (1.0 + 2.0 * cosine(&w_new, &words(c)))
            })
            .collect();
        let total: f64 = raw.iter().sum();
        if total > 0.0 && total.is_finite() {
            raw.iter().map(|w| w / total).collect()
        } else {
            vec![1.0 / self.cards.len() as f64; self.cards.len()]
        }
    }

    /// The pool with new prices: each card of `prices` whose id is in the pool replaces that
    /// model's prices and default answer length (descriptions are kept when the new card has
    /// none). Models not in `prices` keep theirs.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] for a card of a model not in the pool; [`Error::Config`] for a
    /// price out of range.
    pub fn repriced(&self, prices: &[ModelCard]) -> Result<ModelPool> {
        let mut cards = self.cards.clone();
        for p in prices {
            let i = self.index_of(&p.id)?;
            let description = p.description.clone().or(cards[i].description.take());
            cards[i] = ModelCard {
                description,
                ..p.clone()
            };
        }
        ModelPool::new(cards)
    }

    /// Estimated cost of a query with `prompt_tokens` input tokens (0 when unknown) on model
    /// `index`, with the model's default output length.
    pub fn estimate_cost(&self, index: usize, prompt_tokens: Option<f64>) -> f64 {
        self.cards[index].estimate_cost(prompt_tokens.unwrap_or(0.0), None)
    }
}

/// The factor by which a router's learned costs of a model scale when its card `old` is
/// repriced to `new`: 1 when its prices did not change, else new over old mean price per token.
///
/// # Errors
///
/// [`Error::Config`] when the prices changed from zero: costs learned at a price of zero (or
/// observed with no price to relate them to, as `Split::from_arrays` gives) have no ratio to
/// scale by.
pub(crate) fn cost_scale(old: &ModelCard, new: &ModelCard) -> Result<f64> {
    if old.input_usd_per_mtok == new.input_usd_per_mtok
        && old.output_usd_per_mtok == new.output_usd_per_mtok
    {
        return Ok(1.0);
    }
    price_ratio(old, new).ok_or_else(|| {
        Error::Config(format!(
            "cannot reprice {:?}: the router learned its costs at a price of 0, so they have no \
             ratio to scale by; refit it on data that carries the price (a dataset's \
             models.json; in Python, Dataset.from_arrays(..., prices=...))",
            new.id
        ))
    })
}

/// Per-model linear fits of observed costs (`(intercept, slope)`, MF's and IRT's), each scaled
/// by [`cost_scale`] from the pool `old` to `new`.
///
/// # Errors
///
/// As [`cost_scale`], for a model with a fit.
pub(crate) fn scale_cost_fits(
    old: &ModelPool,
    new: &ModelPool,
    fits: &[Option<(f64, f64)>],
) -> Result<Vec<Option<(f64, f64)>>> {
    fits.iter()
        .enumerate()
        .map(|(j, f)| {
            f.map(|(a, b)| cost_scale(old.card(j), new.card(j)).map(|r| (a * r, b * r)))
                .transpose()
        })
        .collect()
}

/// New over old mean price per token of a model, `None` when the old price was zero (an observed
/// cost cannot be rescaled from it).
pub(crate) fn price_ratio(old: &ModelCard, new: &ModelCard) -> Option<f64> {
    let o = old.input_usd_per_mtok + old.output_usd_per_mtok;
    let n = new.input_usd_per_mtok + new.output_usd_per_mtok;
    (o > 0.0).then_some(n / o)
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
        let e = ModelPool::new(vec![ModelCard::new("a", 1e308, 1.0)]).unwrap_err();
        assert!(e.to_string().contains("above the ceiling"), "{e}");
        // Deserialising checks the pool as `new` does.
        let e = serde_json::from_str::<ModelPool>(
            r#"[{"id": "a", "input_usd_per_mtok": 1, "output_usd_per_mtok": 1, "default_output_tokens": 1},
                {"id": "a", "input_usd_per_mtok": 1, "output_usd_per_mtok": 1, "default_output_tokens": 1}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
    }

    /// The duplicate check and the lookups are linear: a pool of 200,000 models loads at once.
    #[test]
    fn large_pools_load_fast() {
        let cards: Vec<ModelCard> = (0..200_000)
            .map(|i| ModelCard::new(format!("m{i}"), 1.0, 1.0))
            .collect();
        let started = std::time::Instant::now();
        let pool = ModelPool::new(cards).unwrap();
        assert_eq!(pool.index_of("m199999").unwrap(), 199_999);
        let json = serde_json::to_string(&pool).unwrap();
        let back: ModelPool = serde_json::from_str(&json).unwrap();
        assert_eq!(back, pool);
        let seconds = started.elapsed().as_secs_f64();
        assert!(seconds < 2.0, "{seconds} s");
    }

    #[test]
    fn optional_card_fields_round_trip_and_stay_out_of_old_files() {
        let old = r#"{"id":"a","input_usd_per_mtok":1.0,"output_usd_per_mtok":2.0,"default_output_tokens":256.0}"#;
        let card: ModelCard = serde_json::from_str(old).unwrap();
        assert_eq!(card, ModelCard::new("a", 1.0, 2.0));
        assert_eq!(serde_json::to_string(&card).unwrap(), old);
        // Only the id and prices are required: the answer length defaults to 256 tokens.
        let bare: ModelCard = serde_json::from_str(
            r#"{"id":"a","input_usd_per_mtok":1.0,"output_usd_per_mtok":2.0}"#,
        )
        .unwrap();
        assert_eq!(bare, card);
        let full = ModelCard::new("b", 1.0, 1.0)
            .with_latency(200.0, 80.0)
            .with_energy(0.5)
            .with_context_window(8192.0)
            .with_capabilities(["vision", "tools", "vision"]);
        assert_eq!(full.capabilities, ["tools", "vision"]);
        let back: ModelCard = serde_json::from_str(&serde_json::to_string(&full).unwrap()).unwrap();
        assert_eq!(back, full);
        assert_eq!(full.expected_latency_s(40.0), Some(0.2 + 0.5));
        assert_eq!(full.expected_energy_j(10.0, 30.0), Some(20.0));
        let e =
            ModelPool::new(vec![ModelCard::new("c", 1.0, 1.0).with_latency(1.0, 0.0)]).unwrap_err();
        assert!(e.to_string().contains("output_tokens_per_second 0"), "{e}");
        // A saved pool with a figure earlier versions accepted but the ranges do not still
        // loads (logged), so that the router can be repriced with a corrected figure; a new
        // pool with it is refused; what no version accepted is refused on load too.
        let saved = r#"[{"id":"a","input_usd_per_mtok":1.0,"output_usd_per_mtok":1.0,"context_window":0.5}]"#;
        let pool: ModelPool = serde_json::from_str(saved).unwrap();
        assert_eq!(pool.card(0).context_window, Some(0.5));
        assert!(ModelPool::new(pool.cards().to_vec()).is_err());
        let fixed = pool
            .repriced(&[ModelCard::new("a", 1.0, 1.0).with_context_window(4096.0)])
            .unwrap();
        assert_eq!(fixed.card(0).context_window, Some(4096.0));
        let never = saved.replace("0.5", "-1");
        assert!(serde_json::from_str::<ModelPool>(&never).is_err());
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
