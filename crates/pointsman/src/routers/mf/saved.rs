//! The MF router's saved form: its parameter tensors and notes.

use super::{MfConfig, MfRouter, Params};
use crate::error::{Error, Result};
use crate::kind::RouterKind;
use crate::saved::{SavedRouter, Tensor};

impl MfRouter {
    /// Rebuilds an MF router from its saved form.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for missing or misshapen tensors or non-finite weights.
    pub fn from_saved(config: MfConfig, mut saved: SavedRouter) -> Result<MfRouter> {
        config
            .validate()
            .map_err(|e| Error::format("saved router", e.to_string()))?;
        let (m, k, d) = (saved.pool.len(), config.dim, saved.dim);
        let task_names: Vec<String> = match saved.notes.get("mf.tasks") {
            Some(j) => serde_json::from_str(j)
                .map_err(|e| Error::format("saved router", format!("bad note mf.tasks: {e}")))?,
            None => Vec::new(),
        };
        let params = Params {
            projection: saved.take_f32("mf.projection", &[k, d])?,
            model_vectors: saved.take_f32("mf.model_vectors", &[m, k])?,
            classifier: saved.take_f32("mf.classifier", &[k])?,
            bias: saved.take_f32("mf.bias", &[m])?,
            task_vectors: saved.take_f32("mf.task_vectors", &[task_names.len() + 1, k])?,
        };
        let fits = saved.take_f64("mf.cost_fit", &[m, 3])?;
        let all = [
            &params.projection,
            &params.model_vectors,
            &params.classifier,
            &params.bias,
            &params.task_vectors,
        ];
        if all.iter().any(|v| v.iter().any(|x| !x.is_finite()))
            || fits.iter().any(|x| !x.is_finite())
        {
            return Err(Error::format("saved router", "mf weights are not finite"));
        }
        let cost_fit = fits
            .chunks_exact(3)
            .map(|f| (f[0] != 0.0).then_some((f[1], f[2])))
            .collect();
        let report = saved
            .notes
            .get("mf.train_report")
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        Ok(MfRouter::assemble(
            config,
            saved.pool,
            saved.embedding_model,
            d,
            params,
            cost_fit,
            report,
            task_names,
        ))
    }

    /// The router's saved form ([`Router::to_saved`](crate::router::Router::to_saved)): the
    /// learned parameters, the cost fits, the task names and the training report.
    pub(super) fn saved_form(&self) -> Result<SavedRouter> {
        let (m, k, d) = (self.pool.len(), self.config.dim, self.dim);
        let fits: Vec<f64> = self
            .cost_fit
            .iter()
            .flat_map(|f| match f {
                Some((a, b)) => [1.0, *a, *b],
                None => [0.0, 0.0, 0.0],
            })
            .collect();
        let mut saved = SavedRouter::new(
            RouterKind::Mf.name(),
            &self.config,
            self.pool.clone(),
            self.embedding_model.clone(),
            d,
        )
        .with_tensor(
            "mf.projection",
            Tensor::f32(&[k, d], self.params.projection.clone()),
        )
        .with_tensor(
            "mf.model_vectors",
            Tensor::f32(&[m, k], self.params.model_vectors.clone()),
        )
        .with_tensor(
            "mf.classifier",
            Tensor::f32(&[k], self.params.classifier.clone()),
        )
        .with_tensor("mf.bias", Tensor::f32(&[m], self.params.bias.clone()))
        .with_tensor("mf.cost_fit", Tensor::f64(&[m, 3], fits))
        .with_tensor(
            "mf.task_vectors",
            Tensor::f32(
                &[self.task_names.len() + 1, k],
                self.params.task_vectors.clone(),
            ),
        );
        saved.notes.insert(
            "mf.tasks".into(),
            serde_json::to_string(&self.task_names).expect("strings serialise to JSON"),
        );
        saved.notes.insert(
            "mf.train_report".into(),
            serde_json::to_string(&self.report).expect("reports serialise to JSON"),
        );
        Ok(saved)
    }
}
