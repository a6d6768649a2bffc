//! The IRT router's saved form: its parameter tensors, cost model and notes.

use super::{CostModel, IrtConfig, IrtRouter, Params};
use crate::error::{Error, Result};
use crate::kind::RouterKind;
use crate::saved::{SavedRouter, Tensor};

impl IrtRouter {
    /// Rebuilds an IRT router from its saved form.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for missing or misshapen tensors, non-finite weights, or negative
    /// answer lengths.
    pub fn from_saved(config: IrtConfig, mut saved: SavedRouter) -> Result<IrtRouter> {
        let bad = |m: String| Error::format("saved router", m);
        config.validate().map_err(|e| bad(e.to_string()))?;
        let (m, k, d) = (saved.pool.len(), config.dim, saved.dim);
        let task_names: Vec<String> = match saved.notes.get("irt.tasks") {
            Some(j) => {
                serde_json::from_str(j).map_err(|e| bad(format!("bad note irt.tasks: {e}")))?
            }
            None => Vec::new(),
        };
        let t = task_names.len();
        let params = Params {
            discrimination: saved.take_f32("irt.discrimination", &[k, d])?,
            difficulty: saved.take_f32("irt.difficulty", &[d])?,
            task_discrimination: saved.take_f32("irt.task_discrimination", &[t + 1, k])?,
            ability: saved.take_f32("irt.ability", &[m, k])?,
            task_bias: saved.take_f32("irt.task_bias", &[t + 1, m])?,
            length_slope: saved.take_f32("irt.length_slope", &[m])?,
        };
        let norm = saved.take_f64("irt.length_norm", &[2])?;
        let fits = saved.take_f64("irt.cost_fit", &[m, 3])?;
        let output_tokens = saved.take_f64("irt.output_tokens", &[t + 1, m])?;
        let weights = [
            &params.discrimination,
            &params.difficulty,
            &params.task_discrimination,
            &params.ability,
            &params.task_bias,
            &params.length_slope,
        ];
        if weights.iter().any(|v| v.iter().any(|x| !x.is_finite()))
            || norm.iter().chain(&fits).any(|x| !x.is_finite())
            || norm[1] < 0.0
        {
            return Err(bad("irt weights are not finite".into()));
        }
        if output_tokens
            .iter()
            .any(|o| !(o.is_nan() || (o.is_finite() && *o >= 0.0)))
            || fits.iter().any(|&x| x < 0.0)
        {
            return Err(bad("irt costs or answer lengths out of range".into()));
        }
        let observed_fit = fits
            .chunks_exact(3)
            .map(|f| (f[0] != 0.0).then_some((f[1], f[2])))
            .collect();
        let report = saved
            .notes
            .get("irt.train_report")
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        Ok(IrtRouter::assemble(
            config,
            saved.pool,
            saved.embedding_model,
            d,
            params,
            (norm[0], norm[1]),
            CostModel {
                observed_fit,
                output_tokens,
            },
            report,
            task_names,
        ))
    }

    /// The router's saved form ([`Router::to_saved`](crate::router::Router::to_saved)).
    pub(super) fn saved_form(&self) -> Result<SavedRouter> {
        let (m, k, d) = (self.pool.len(), self.config.dim, self.dim);
        let t = self.task_names.len();
        let p = &self.params;
        let fits: Vec<f64> = self
            .costs
            .observed_fit
            .iter()
            .flat_map(|f| match f {
                Some((a, b)) => [1.0, *a, *b],
                None => [0.0, 0.0, 0.0],
            })
            .collect();
        let mut saved = SavedRouter::new(
            RouterKind::Irt.name(),
            &self.config,
            self.pool.clone(),
            self.embedding_model.clone(),
            d,
        )
        .with_tensor(
            "irt.discrimination",
            Tensor::f32(&[k, d], p.discrimination.clone()),
        )
        .with_tensor("irt.difficulty", Tensor::f32(&[d], p.difficulty.clone()))
        .with_tensor(
            "irt.task_discrimination",
            Tensor::f32(&[t + 1, k], p.task_discrimination.clone()),
        )
        .with_tensor("irt.ability", Tensor::f32(&[m, k], p.ability.clone()))
        .with_tensor(
            "irt.task_bias",
            Tensor::f32(&[t + 1, m], p.task_bias.clone()),
        )
        .with_tensor(
            "irt.length_slope",
            Tensor::f32(&[m], p.length_slope.clone()),
        )
        .with_tensor(
            "irt.length_norm",
            Tensor::f64(&[2], vec![self.length_norm.0, self.length_norm.1]),
        )
        .with_tensor("irt.cost_fit", Tensor::f64(&[m, 3], fits))
        .with_tensor(
            "irt.output_tokens",
            Tensor::f64(&[t + 1, m], self.costs.output_tokens.clone()),
        );
        saved.notes.insert(
            "irt.tasks".into(),
            serde_json::to_string(&self.task_names).expect("strings serialise to JSON"),
        );
        saved.notes.insert(
            "irt.train_report".into(),
            serde_json::to_string(&self.report).expect("reports serialise to JSON"),
        );
        Ok(saved)
    }
}
