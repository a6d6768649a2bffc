use super::*;
use crate::pool::ModelCard;

/// Quality and cost proportional to the first two embedding coordinates.
#[derive(Debug)]
struct Linear {
    pool: ModelPool,
}

impl Router for Linear {
    fn kind(&self) -> &'static str {
        "linear-test"
    }
    fn models(&self) -> &ModelPool {
        &self.pool
    }
    fn dim(&self) -> usize {
        2
    }
    fn estimate(&self, batch: &FeatureBatch<'_>, out: &mut Estimates) -> Result<()> {
        for r in 0..batch.rows() {
            let x = batch.row(r);
            let x0 = f64::from(x[0] * crate::features::inv_norm(x));
            let (q, c) = out.row_mut(r);
            q.copy_from_slice(&[0.5, 0.5 + x0.abs() * 0.4, 0.3]);
            c.copy_from_slice(&[1e-4, 1e-3, 1e-5]);
        }
        Ok(())
    }
}

fn router() -> Linear {
    Linear {
        pool: ModelPool::new(vec![
            ModelCard::new("mid", 1.0, 1.0),
            ModelCard::new("big", 10.0, 10.0),
            ModelCard::new("small", 0.1, 0.1),
        ])
        .unwrap(),
    }
}

#[test]
fn utility_trade_off() {
    let r = router();
    let q = QueryFeatures::new(vec![1.0, 0.0]).unwrap();
    let d = r.route(&q, &Objective::new(0.0)).unwrap();
    assert_eq!(d.model_id, "big");
    assert_eq!(d.alternatives.len(), 2);
    assert_eq!(d.alternatives[0].model_id, "mid");
    // 0.9 - w*1e-3 < 0.5 - w*1e-4  <=>  w > 444.4
    let d = r.route(&q, &Objective::new(500.0)).unwrap();
    assert_eq!(d.model_id, "mid");
    let d = r.route(&q, &Objective::new(1e6)).unwrap();
    assert_eq!(d.model_id, "small");
    assert!((d.utility - (0.3 - 1e6 * 1e-5)).abs() < 1e-12);
    let d = r
        .route(&q, &Objective::new(0.0).with_allowed(["small", "mid"]))
        .unwrap();
    assert_eq!(d.model_id, "mid");
    assert_eq!(d.alternatives.len(), 1);
}

#[test]
fn objective_errors() {
    let r = router();
    let q = QueryFeatures::new(vec![1.0, 0.0]).unwrap();
    let e = r
        .route(&q, &Objective::new(0.0).with_allowed(["nope"]))
        .unwrap_err();
    assert_eq!(e.to_string(), "unknown model \"nope\"");
    let e = r.route(&q, &Objective::new(-1.0)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid config: cost_weight -1 is not a non-negative number"
    );
    let e = r
        .route(&q, &Objective::new(0.0).with_allowed(Vec::<String>::new()))
        .unwrap_err();
    assert!(e.to_string().contains("empty"));
    let q3 = QueryFeatures::new(vec![1.0, 0.0, 0.0]).unwrap();
    assert!(r.route(&q3, &Objective::new(0.0)).is_err());
}

#[test]
fn deterministic_choices_have_probability_one() {
    assert_eq!(router().choice_probability(None), Some(1.0));
}

#[test]
fn ties_prefer_cheaper_then_lower_index() {
    assert_eq!(best_model(&[0.5, 0.5], &[2.0, 1.0], 0.0, None), 1);
    assert_eq!(best_model(&[0.5, 0.5], &[1.0, 1.0], 0.0, None), 0);
    assert_eq!(
        best_model(&[0.9, 0.5], &[1.0, 1.0], 0.0, Some(&[false, true])),
        1
    );
}

#[test]
fn batch_equals_single() {
    let r = router();
    let mut data = Vec::new();
    for i in 0..1000 {
        let a = (i as f32 * 0.37).sin();
        data.extend_from_slice(&[a, 1.0]);
    }
    let batch = FeatureBatch::new(&data, 2).unwrap();
    for w in [0.0, 300.0, 1000.0] {
        let obj = Objective::new(w);
        let all = r.route_batch(&batch, &obj).unwrap();
        for (i, &m) in all.iter().enumerate() {
            let q = QueryFeatures::new(batch.row(i).to_vec()).unwrap();
            assert_eq!(r.route(&q, &obj).unwrap().model, m as usize);
        }
    }
    let mut short = vec![0u32; 3];
    assert!(r
        .route_batch_into(&batch, &Objective::new(0.0), &mut short)
        .is_err());
    let est = r.estimate_batch(&batch).unwrap();
    assert_eq!(est.rows(), 1000);
    assert_eq!(est.quality_row(999).len(), 3);
    let obj = Objective::new(300.0).with_allowed(["mid", "small"]);
    let (choices, with_est) = r.route_batch_with_estimates(&batch, &obj).unwrap();
    assert_eq!(choices, r.route_batch(&batch, &obj).unwrap());
    assert_eq!(with_est, est);
    assert!(choices.iter().all(|&c| c != 1), "the mask excludes big");
    let e = r
        .route_batch_with_estimates(&batch, &Objective::new(-1.0))
        .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Config);
}
