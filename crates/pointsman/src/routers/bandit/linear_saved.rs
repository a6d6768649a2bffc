//! The linear learners' tensors in a saved router (docs/format.md, "Bandits"): what
//! [`Learned::save`] writes and [`Learned::load`] reads back, checked.

use super::*;

impl<E: Exploration> Linear<E> {
    pub(super) fn save_tensors(&self, saved: SavedRouter) -> SavedRouter {
        let (k, m, p) = (E::KIND, self.models, self.p);
        let mut saved = saved
            .with_tensor(&format!("{k}.a"), Tensor::f64(&[m, p, p], self.a.clone()))
            .with_tensor(
                &format!("{k}.a_inv"),
                Tensor::f64(&[m, p, p], self.a_inv.clone()),
            )
            .with_tensor(&format!("{k}.b"), Tensor::f64(&[m, p], self.b.clone()));
        if self.prior_b.iter().any(|&v| v != 0.0) {
            saved = saved.with_tensor(
                &format!("{k}.prior_b"),
                Tensor::f64(&[m, p], self.prior_b.clone()),
            );
        }
        if let Some((matrix, centre)) = &self.projection {
            saved = saved
                .with_tensor(
                    &format!("{k}.projection"),
                    Tensor::f32(&[p - 1, self.dim], matrix.clone()),
                )
                .with_tensor(
                    &format!("{k}.projection_centre"),
                    Tensor::f32(&[self.dim], centre.clone()),
                );
        }
        if self.window.iter().any(|w| !w.is_empty()) {
            let entries: Vec<(usize, &(Vec<f32>, f64))> = self
                .window
                .iter()
                .enumerate()
                .flat_map(|(j, w)| w.iter().map(move |e| (j, e)))
                .collect();
            let e = entries.len();
            saved = saved
                .with_tensor(
                    &format!("{k}.window.models"),
                    Tensor::u32(&[e], entries.iter().map(|(j, _)| *j as u32).collect()),
                )
                .with_tensor(
                    &format!("{k}.window.features"),
                    Tensor::f32(
                        &[e, p],
                        entries.iter().flat_map(|(_, (f, _))| f.clone()).collect(),
                    ),
                )
                .with_tensor(
                    &format!("{k}.window.targets"),
                    Tensor::f64(&[e], entries.iter().map(|(_, (_, y))| *y).collect()),
                );
        }
        saved
    }

    pub(super) fn load_tensors(
        config: &LinearConfig,
        saved: &mut SavedRouter,
        models: usize,
        dim: usize,
    ) -> Result<Self> {
        let bad = |m: String| Error::format("saved router", m);
        let k = E::KIND;
        // The statistics' shapes first: the state below is sized from the metadata's `dim`
        // and the config, and must not be allocated before the file shows it holds that much.
        let (p, _) = Self::features_dim(config, dim).map_err(|e| bad(e.to_string()))?;
        for (name, shape) in [
            (format!("{k}.a"), vec![models, p, p]),
            (format!("{k}.a_inv"), vec![models, p, p]),
            (format!("{k}.b"), vec![models, p]),
        ] {
            match saved.shape(&name) {
                Some(s) if s == shape.as_slice() => {}
                Some(s) => {
                    return Err(bad(format!(
                        "tensor {name} has shape {s:?}, expected {shape:?}"
                    )))
                }
                None => return Err(bad(format!("missing tensor {name}"))),
            }
        }
        // The saved statistics replace every model's prior, and `refresh` below derives the
        // rest from them: start from the unprimed state, not the cold one.
        let mut state = Self::unprimed(config, models, dim).map_err(|e| bad(e.to_string()))?;
        let p = state.p;
        if saved.shape(&format!("{k}.projection")).is_some() {
            let matrix = saved.take_f32(&format!("{k}.projection"), &[p - 1, dim])?;
            let centre = saved.take_f32(&format!("{k}.projection_centre"), &[dim])?;
            if !(simd::all_finite(&matrix) && simd::all_finite(&centre)) {
                return Err(bad(format!("{k}.projection holds non-finite values")));
            }
            if matches!(config.projection, Projection::None) {
                return Err(bad(format!(
                    "{k}.projection without a projection in the config"
                )));
            }
            state.projection = Some((matrix, centre));
            state.pending_pca = false;
        } else if matches!(config.projection, Projection::Random { .. }) {
            return Err(bad(format!("missing tensor {k}.projection")));
        }
        let a = saved.take_f64(&format!("{k}.a"), &[models, p, p])?;
        let a_inv = saved.take_f64(&format!("{k}.a_inv"), &[models, p, p])?;
        let b = saved.take_f64(&format!("{k}.b"), &[models, p])?;
        if !(simd::all_finite(&a) && simd::all_finite(&a_inv) && simd::all_finite(&b)) {
            return Err(bad(format!("{k} statistics hold non-finite values")));
        }
        linalg::check_statistics(&a, &a_inv, models, p).map_err(|m| bad(format!("{k}: {m}")))?;
        state.a = a;
        state.a_inv = a_inv;
        state.b = b;
        if saved.shape(&format!("{k}.prior_b")).is_some() {
            let prior = saved.take_f64(&format!("{k}.prior_b"), &[models, p])?;
            if !simd::all_finite(&prior) {
                return Err(bad(format!("{k}.prior_b holds non-finite values")));
            }
            state.prior_b = prior;
        }
        if saved.shape(&format!("{k}.window.models")).is_some() {
            let e = saved
                .shape(&format!("{k}.window.models"))
                .map_or(0, |s| s.first().copied().unwrap_or(0));
            let who = saved.take_u32(&format!("{k}.window.models"), &[e])?;
            let feats = saved.take_f32(&format!("{k}.window.features"), &[e, p])?;
            let targets = saved.take_f64(&format!("{k}.window.targets"), &[e])?;
            let limit = config.forgetting.window.unwrap_or(0);
            for (i, &j) in who.iter().enumerate() {
                let j = j as usize;
                if j >= models || state.window[j].len() >= limit {
                    return Err(bad(format!("{k}.window entries do not fit the window")));
                }
                if !targets[i].is_finite()
                    || feats[i * p..(i + 1) * p].iter().any(|v| !v.is_finite())
                {
                    return Err(bad(format!("{k}.window holds non-finite values")));
                }
                state.window[j].push_back((feats[i * p..(i + 1) * p].to_vec(), targets[i]));
            }
        }
        for m in 0..models {
            state.refresh(m);
        }
        Ok(state)
    }
}
