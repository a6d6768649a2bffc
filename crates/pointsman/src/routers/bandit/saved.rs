//! The bandit's saved form: the shared statistics (observations, pulls, alarms, detector state,
//! cost calibration) under the kind's prefix, then the learner's own tensors.

use std::sync::{Arc, RwLock};

use super::forgetting::DetectorState;
use super::router::{Shared, State};
use super::{BanditRouter, Learned};
use crate::error::{Error, Result};
use crate::saved::{SavedRouter, Tensor};

impl<L: Learned> BanditRouter<L> {
    /// Rebuilds a router from its saved form.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for missing or misshapen tensors, values out of range, or a file of
    /// another router kind.
    pub fn from_saved(config: L::Config, mut saved: SavedRouter) -> Result<Self> {
        let bad = |m: String| Error::format("saved router", m);
        L::validate(&config).map_err(|e| bad(e.to_string()))?;
        let m = saved.pool.len();
        let dim = saved.dim;
        let k = L::KIND;
        let counts = |v: Vec<f64>, what: &str| -> Result<Vec<u64>> {
            v.into_iter()
                .map(|x| {
                    if x >= 0.0 && x.fract() == 0.0 && x < 9.0e15 {
                        Ok(x as u64)
                    } else {
                        Err(bad(format!("{k}.{what}: {x} is not a count")))
                    }
                })
                .collect()
        };
        let observations = counts(
            saved.take_f64(&format!("{k}.observations"), &[1])?,
            "observations",
        )?[0];
        let pulls = counts(saved.take_f64(&format!("{k}.pulls"), &[m])?, "pulls")?;
        let forgets = counts(saved.take_f64(&format!("{k}.forgets"), &[m])?, "forgets")?;
        let alarms = counts(saved.take_f64(&format!("{k}.alarms"), &[m])?, "alarms")?;
        let det = saved.take_f64(&format!("{k}.detector"), &[m, 3])?;
        let since = counts(det.chunks_exact(3).map(|c| c[2]).collect(), "detector")?;
        let detector: Vec<DetectorState> = det
            .chunks_exact(3)
            .zip(since)
            .map(|(c, since)| DetectorState {
                fast: c[0],
                slow: c[1],
                since,
            })
            .collect();
        if detector
            .iter()
            .any(|d| !d.fast.is_finite() || !d.slow.is_finite())
        {
            return Err(bad(format!("{k}.detector holds non-finite values")));
        }
        let cost_flat = saved.take_f64(&format!("{k}.cost"), &[m, 3])?;
        if cost_flat.iter().any(|c| !c.is_finite() || *c < 0.0) {
            return Err(bad(format!("{k}.cost holds values out of range")));
        }
        let cost = cost_flat
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        let learned = L::load(&config, &mut saved, m, dim)?;
        let greedy = L::is_greedy(&config);
        Ok(BanditRouter {
            shared: Arc::new(Shared {
                config,
                pool: saved.pool,
                dim,
                embedding_model: saved.embedding_model,
                state: RwLock::new(State {
                    learned,
                    observations,
                    pulls,
                    forgets,
                    alarms,
                    detector,
                    cost,
                    journal: None,
                }),
            }),
            greedy,
        })
    }

    /// Loads a router of this kind saved by [`Router::save`](crate::router::Router::save).
    ///
    /// # Errors
    ///
    /// [`Error::Io`], [`Error::Format`] naming the file (also for a file of another kind).
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let what = path.display().to_string();
        let saved = SavedRouter::load(path)?;
        Self::from_saved_any(saved).map_err(|e| match e {
            Error::Format {
                path,
                line,
                message,
            } if path == "saved router" => Error::Format {
                path: what.clone(),
                line,
                message,
            },
            other => other,
        })
    }

    /// Rebuilds a router from a saved form of any config, refusing other kinds.
    fn from_saved_any(saved: SavedRouter) -> Result<Self> {
        let config = saved.typed_config::<L::Config>(L::KIND)?;
        Self::from_saved(config, saved)
    }

    /// The saved form (what [`Router::to_saved`](crate::router::Router::to_saved) returns).
    pub(super) fn saved_form(&self) -> Result<SavedRouter> {
        let state = self.read();
        state.learned.check().map_err(|m| {
            crate::error::Error::Numeric(format!(
                "{}: the learned state is inconsistent ({m}); it is not saved",
                L::KIND
            ))
        })?;
        let config = L::with_greedy(&self.shared.config, self.greedy);
        let k = L::KIND;
        let m = self.shared.pool.len();
        let f = |v: &[u64]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let saved = SavedRouter::new(
            L::KIND,
            &config,
            self.shared.pool.clone(),
            self.shared.embedding_model.clone(),
            self.shared.dim,
        )
        .with_tensor(
            &format!("{k}.observations"),
            Tensor::f64(&[1], vec![state.observations as f64]),
        )
        .with_tensor(&format!("{k}.pulls"), Tensor::f64(&[m], f(&state.pulls)))
        .with_tensor(
            &format!("{k}.forgets"),
            Tensor::f64(&[m], f(&state.forgets)),
        )
        .with_tensor(&format!("{k}.alarms"), Tensor::f64(&[m], f(&state.alarms)))
        .with_tensor(
            &format!("{k}.detector"),
            Tensor::f64(
                &[m, 3],
                state
                    .detector
                    .iter()
                    .flat_map(|d| [d.fast, d.slow, d.since as f64])
                    .collect(),
            ),
        )
        .with_tensor(
            &format!("{k}.cost"),
            Tensor::f64(&[m, 3], state.cost.iter().flatten().copied().collect()),
        );
        Ok(state.learned.save(saved))
    }
}
