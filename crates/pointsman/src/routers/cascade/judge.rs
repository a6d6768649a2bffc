//! A simulated judge: the confidences a cascade sees when the data carries none.
//!
//! A cascade needs a confidence for every answer it sees, and routing datasets carry none. As
//! RouterBench does (Hu et al., 2024), evaluation and training simulate a judge: the confidence
//! of model `m`'s answer to query `q` is 1 when its score is at least 0.5 and 0 otherwise,
//! flipped with probability ε ([`SimulatedJudge`]). Each flip is a fixed, seeded draw per (query
//! id, model id), so every sweep point of an evaluation sees the same judge, and a query's draw
//! does not depend on the order of the split.
//!
//! **This is a simulation.** Real deployments pass whatever confidence they have (a
//! log-probability, self-consistency, a verifier) to [`Session::observe`]; ε here is the judge's
//! error rate, which the cascade measures on the training split's simulated confidences
//! ([`confidence_error`]), never on the test split.
//!
//! [`Session::observe`]: super::Session::observe
//! [`confidence_error`]: super::confidence_error

use crate::data::Split;
use crate::error::{Error, Result};
use crate::rng::mix64;

/// The judge noise `pointsman eval` simulates unless told otherwise.
pub const DEFAULT_JUDGE_NOISE: f64 = 0.1;

/// Salt of the training split's judge seed, so that it never equals the test judge's.
const TRAIN_SALT: u64 = 0x7472_6169_6e5f_6a75;

/// A simulated judge: confidence 1 for an answer scoring at least 0.5, else 0, flipped with
/// probability `noise` by a seeded draw per (query id, model id).
///
/// # Example
///
/// ```
/// use pointsman::routers::cascade::SimulatedJudge;
/// let honest = SimulatedJudge::new(0.0, 7)?;
/// assert_eq!(honest.confidence("q1", "gpt", 0.8), 1.0);
/// assert_eq!(honest.confidence("q1", "gpt", 0.2), 0.0);
/// let liar = SimulatedJudge::new(1.0, 7);
/// assert!(liar.is_err());
/// # Ok::<(), pointsman::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulatedJudge {
    noise: f64,
    seed: u64,
}

fn hash_str(mut h: u64, s: &str) -> u64 {
    for chunk in s.as_bytes().chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        h = mix64(h ^ u64::from_le_bytes(b));
    }
    mix64(h ^ s.len() as u64)
}

impl SimulatedJudge {
    /// A judge that errs with probability `noise`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a noise outside [0, 0.5] (beyond 0.5 the judge would be
    /// more often wrong than right).
    pub fn new(noise: f64, seed: u64) -> Result<Self> {
        if !(0.0..=0.5).contains(&noise) {
            return Err(Error::InvalidInput(format!(
                "judge noise {noise} is outside [0, 0.5]"
            )));
        }
        Ok(SimulatedJudge { noise, seed })
    }

    /// The judge for the training split of an evaluation seeded with `seed`: independent of
    /// the test judge.
    ///
    /// # Errors
    ///
    /// As [`SimulatedJudge::new`].
    pub fn for_training(noise: f64, seed: u64) -> Result<Self> {
        SimulatedJudge::new(noise, mix64(seed ^ TRAIN_SALT))
    }

    /// The error rate.
    pub fn noise(&self) -> f64 {
        self.noise
    }

    /// The confidence the judge gives `model_id`'s answer to `query_id`, which scored `score`.
    pub fn confidence(&self, query_id: &str, model_id: &str, score: f64) -> f64 {
        let h = hash_str(hash_str(mix64(self.seed), query_id), model_id);
        let u = (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let right = score >= 0.5;
        let flip = u < self.noise;
        f64::from(u8::from(right != flip))
    }

    /// The judge's confidences for every query and model of `split`, `[rows, models]`.
    pub fn confidences(&self, split: &Split) -> Vec<f64> {
        let m = split.pool().len();
        let mut out = Vec::with_capacity(split.len() * m);
        for r in 0..split.len() {
            for j in 0..m {
                out.push(self.confidence(&split.ids()[r], split.pool().id(j), split.score(r, j)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_flips_at_its_rate_and_is_order_free() {
        let j = SimulatedJudge::new(0.1, 3).unwrap();
        let n = 20_000;
        let flips = (0..n)
            .filter(|i| j.confidence(&format!("q{i}"), "m", 1.0) == 0.0)
            .count();
        let rate = flips as f64 / n as f64;
        assert!((rate - 0.1).abs() < 0.01, "{rate}");
        // Fixed per (query, model); other models and seeds draw independently.
        assert_eq!(j.confidence("q5", "m", 1.0), j.confidence("q5", "m", 1.0));
        let other = (0..n)
            .filter(|i| {
                j.confidence(&format!("q{i}"), "m", 1.0) != j.confidence(&format!("q{i}"), "n", 1.0)
            })
            .count() as f64
            / n as f64;
        assert!((other - 0.18).abs() < 0.015, "{other}");
        let t = SimulatedJudge::for_training(0.1, 3).unwrap();
        assert_ne!(t, j);
        assert_eq!(
            SimulatedJudge::new(0.0, 3)
                .unwrap()
                .confidence("a", "b", 0.5),
            1.0
        );
        for bad in [-0.1, 0.51, f64::NAN] {
            let e = SimulatedJudge::new(bad, 0).unwrap_err();
            assert!(e.to_string().contains("outside [0, 0.5]"), "{e}");
        }
    }
}
