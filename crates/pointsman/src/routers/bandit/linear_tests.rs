//! The linear learners' state checks, and batches of keys against observing them in turn.

mod check_tests {
    use super::super::*;

    /// A state whose inverse no longer inverts its matrix is caught before it is saved.
    #[test]
    fn an_altered_inverse_fails_the_check() {
        let config = LinearConfig::default();
        let mut state = <Linear<Ucb> as Learned>::cold(&config, 2, 4).unwrap();
        let x = [0.5f32, 0.5, 0.5, 0.5];
        for i in 0..30 {
            state.observe(&config, &x, i % 2, 0.7).unwrap();
        }
        assert_eq!(state.check(), Ok(()));
        let p = state.p;
        state.a_inv[1] = -1.0;
        state.a_inv[p] = -1.0;
        let e = state.check().unwrap_err();
        assert!(
            e.contains("model 0's inverse does not invert its matrix"),
            "{e}"
        );
        state.a_inv[0] = f64::NAN;
        assert!(state.check().unwrap_err().contains("non-finite"));
    }
}

mod batch_tests {
    use super::super::*;
    use crate::rng::SplitMix64;

    fn keys(state: &Linear<Ucb>, config: &LinearConfig, n: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let x: Vec<f32> = (0..state.dim)
                    .map(|_| rng.next_f64() as f32 - 0.5)
                    .collect();
                let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
                let x: Vec<f32> = x.iter().map(|v| v / norm).collect();
                let mut key = Vec::new();
                state.key(config, &x, &mut key).unwrap();
                key
            })
            .collect()
    }

    /// A batch (re-inverting the model with many observations, one at a time for the one with
    /// few) leaves the statistics of observing the same keys one by one, to float tolerance.
    #[test]
    fn a_batch_of_keys_learns_what_observing_them_in_turn_learns() {
        for window in [None, Some(20)] {
            let mut config = LinearConfig::default();
            config.forgetting.window = window;
            let mut one = <Linear<Ucb> as Learned>::cold(&config, 3, 8).unwrap();
            let ks = keys(&one, &config, 60, 3);
            // Model 0 gets 58 observations (in bulk without a window: at least p / 4 = 2.25),
            // model 1 two (one at a time), model 2 none.
            let batch: Vec<(&[f32], usize, f64)> = ks
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    (
                        k.as_slice(),
                        usize::from(i == 5 || i == 41),
                        (i % 3) as f64 / 2.0,
                    )
                })
                .collect();
            let mut many = one.clone();
            for &(k, m, q) in &batch {
                one.observe_key(&config, k, m, q).unwrap();
            }
            many.observe_keys(&config, &batch).unwrap();
            let close = |a: &[f64], b: &[f64]| {
                a.iter()
                    .zip(b)
                    .all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + x.abs()))
            };
            assert!(close(&one.a, &many.a), "window {window:?}: A");
            assert!(close(&one.a_inv, &many.a_inv), "window {window:?}: A⁻¹");
            assert!(close(&one.b, &many.b), "window {window:?}: b");
            assert!(close(&one.theta, &many.theta), "window {window:?}: θ");
            assert_eq!(many.check(), Ok(()));
        }
    }
}
