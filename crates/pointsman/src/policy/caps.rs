//! Cost dimensions beyond USD, and limits read off the model cards: each model's expected
//! latency and energy for a query, the weights that put them into the utility, hard caps that
//! exclude a model, and the capabilities and context windows a request needs.
//!
//! ```text
//! utility = score − cost_weight × cost − latency_weight × latency_s − energy_weight × energy_j
//! latency_s = ttft_ms / 1000 + output_tokens / output_tokens_per_second
//! energy_j  = joules_per_token × (prompt_tokens + output_tokens)
//! ```
//!
//! `output_tokens` is the request's expected answer length, else the card's
//! `default_output_tokens`. A card without latency (energy) figures has no latency (energy) term
//! and is never excluded by a latency (energy) cap: the policy cannot know it would miss it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pool::ModelCard;

/// Weights of the cost dimensions beyond USD, quality points per unit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// Quality points per second of expected latency.
    pub latency_per_s: f64,
    /// Quality points per joule of expected energy.
    pub energy_per_j: f64,
}

/// Hard caps: a model whose expected figure is above one is excluded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Caps {
    /// Maximum expected cost, USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    /// Maximum expected latency to the whole answer, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_latency_s: Option<f64>,
    /// Maximum expected energy, joules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_energy_j: Option<f64>,
}

impl Weights {
    pub(crate) fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("weights.latency_per_s", self.latency_per_s),
            ("weights.energy_per_j", self.energy_per_j),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::Config(format!(
                    "{name} {v} is not a non-negative number"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn any(&self) -> bool {
        self.latency_per_s > 0.0 || self.energy_per_j > 0.0
    }
}

impl Caps {
    pub(crate) fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("caps.max_cost", self.max_cost),
            ("caps.max_latency_s", self.max_latency_s),
            ("caps.max_energy_j", self.max_energy_j),
        ] {
            if let Some(v) = v {
                if !v.is_finite() || v < 0.0 {
                    return Err(Error::Config(format!(
                        "{name} {v} is not a non-negative number"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The tighter of two caps, field by field.
    pub fn tighter(&self, other: &Caps) -> Caps {
        let min = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Caps {
            max_cost: min(self.max_cost, other.max_cost),
            max_latency_s: min(self.max_latency_s, other.max_latency_s),
            max_energy_j: min(self.max_energy_j, other.max_energy_j),
        }
    }
}

/// A model's expected latency and energy for one query.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Dimensions {
    pub latency_s: Option<f64>,
    pub energy_j: Option<f64>,
}

pub(crate) fn dimensions(
    card: &ModelCard,
    prompt_tokens: f64,
    output_tokens: Option<f64>,
) -> Dimensions {
    let out = output_tokens.unwrap_or(card.default_output_tokens);
    Dimensions {
        latency_s: card.expected_latency_s(out),
        energy_j: card.expected_energy_j(prompt_tokens, out),
    }
}

/// The first cap that `cost` and `dims` break, by its audit name.
pub(crate) fn broken_cap(caps: &Caps, cost: f64, dims: &Dimensions) -> Option<&'static str> {
    if caps.max_cost.is_some_and(|c| cost > c) {
        return Some("max_cost");
    }
    if let (Some(c), Some(l)) = (caps.max_latency_s, dims.latency_s) {
        if l > c {
            return Some("max_latency");
        }
    }
    if let (Some(c), Some(e)) = (caps.max_energy_j, dims.energy_j) {
        if e > c {
            return Some("max_energy");
        }
    }
    None
}

/// The first capability of `needs` that `card` lacks, or `context_window` when the prompt is
/// longer than its window.
pub(crate) fn missing(card: &ModelCard, needs: &[String], prompt_tokens: f64) -> Option<String> {
    if let Some(flag) = needs.iter().find(|f| !card.has_capability(f)) {
        return Some(format!("capability {flag}"));
    }
    if card.context_window.is_some_and(|w| prompt_tokens > w) {
        return Some("context_window".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_capabilities() {
        let card = ModelCard::new("m", 1.0, 1.0)
            .with_latency(500.0, 50.0)
            .with_context_window(1000.0)
            .with_capabilities(["tools"]);
        let d = dimensions(&card, 100.0, Some(100.0));
        assert_eq!(d.latency_s, Some(2.5));
        let caps = Caps {
            max_latency_s: Some(2.0),
            ..Default::default()
        };
        assert_eq!(broken_cap(&caps, 0.0, &d), Some("max_latency"));
        assert_eq!(broken_cap(&Caps::default(), 0.0, &d), None);
        assert_eq!(missing(&card, &["tools".into()], 10.0), None);
        assert_eq!(
            missing(&card, &["vision".into()], 10.0).as_deref(),
            Some("capability vision")
        );
        assert_eq!(
            missing(&card, &[], 2000.0).as_deref(),
            Some("context_window")
        );
        // No latency figures: never excluded by a latency cap.
        let plain = ModelCard::new("p", 1.0, 1.0);
        assert_eq!(broken_cap(&caps, 0.0, &dimensions(&plain, 1.0, None)), None);
        let t = caps.tighter(&Caps {
            max_latency_s: Some(1.0),
            max_cost: Some(3.0),
            ..Default::default()
        });
        assert_eq!((t.max_latency_s, t.max_cost), (Some(1.0), Some(3.0)));
    }
}
