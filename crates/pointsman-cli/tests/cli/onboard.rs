//! `pointsman onboard` and `pointsman reprice` on bandit router files: a model added to a
//! warm-started learner from labelled queries or its card alone, the other models' estimates
//! unchanged, new prices applied.

use super::*;

#[test]
fn onboard_and_reprice_a_bandit_router() {
    use pointsman::{AnyRouter, RouterConfig, RouterKind};
    let Some(root) = data_dir() else { return };
    let data = root.join("llmrouter_dc");
    let ds = pointsman::data::Dataset::load(&data).unwrap();
    let held = "llama-3.1-nemotron-51b-instruct";
    let h = ds.pool().index_of(held).unwrap();
    let others: Vec<usize> = (0..ds.pool().len()).filter(|&j| j != h).collect();
    let eight = ds.train().select_models(&others).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let probe = ds.test().features().unwrap();
    for kind in [RouterKind::Linucb, RouterKind::KnnUcb] {
        let config = RouterConfig::default_for(kind, 0).unwrap();
        let base = AnyRouter::fit_config(
            &config,
            &eight.subset(&(0..400).collect::<Vec<_>>(), "train"),
        )
        .unwrap();
        let file = tmp.path().join(format!("{kind}.safetensors"));
        base.save(&file).unwrap();
        // From 50 labelled train queries of the shared dataset (the card from its models.json).
        let labelled = tmp.path().join(format!("{kind}-50.safetensors"));
        let o = pointsman(&[
            "onboard",
            "--router",
            file.to_str().unwrap(),
            "--model",
            held,
            "--labelled",
            data.to_str().unwrap(),
            "--limit",
            "50",
            "--out",
            labelled.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout.contains(&format!(
                "added {held} to the {kind} router from 50 labelled queries"
            )),
            "{stdout}"
        );
        // From its card alone.
        let card_only = tmp.path().join(format!("{kind}-card.safetensors"));
        let o = pointsman(&[
            "onboard",
            "--router",
            file.to_str().unwrap(),
            "--model",
            held,
            "--models",
            data.join("models.json").to_str().unwrap(),
            "--out",
            card_only.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("from its card alone"));
        let before = base.estimate_batch(&probe).unwrap();
        for path in [&labelled, &card_only] {
            let r = AnyRouter::load(path).unwrap();
            assert_eq!(r.kind(), kind);
            assert_eq!(r.models().len(), 9);
            assert_eq!(r.models().id(8), held);
            let after = r.estimate_batch(&probe).unwrap();
            for i in 0..probe.rows() {
                assert_eq!(before.quality_row(i), &after.quality_row(i)[..8], "{kind}");
            }
        }
        let pulls = AnyRouter::load(&labelled)
            .unwrap()
            .as_learner()
            .unwrap()
            .pulls();
        assert_eq!(pulls[8], 50, "{kind}");
        // New prices for the onboarded model: the qualities stay, its costs follow.
        let prices = tmp.path().join("prices.json");
        std::fs::write(
            &prices,
            format!(r#"{{"models": {{"{held}": {{"input_usd_per_mtok": 9.0, "output_usd_per_mtok": 9.0}}}}}}"#),
        )
        .unwrap();
        let priced = tmp.path().join(format!("{kind}-priced.safetensors"));
        let o = pointsman(&[
            "reprice",
            "--router",
            labelled.to_str().unwrap(),
            "--prices",
            prices.to_str().unwrap(),
            "--out",
            priced.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (a, b) = (
            AnyRouter::load(&labelled)
                .unwrap()
                .estimate_batch(&probe)
                .unwrap(),
            AnyRouter::load(&priced)
                .unwrap()
                .estimate_batch(&probe)
                .unwrap(),
        );
        assert_eq!(a.quality, b.quality);
        assert!(b.cost_row(0)[8] > a.cost_row(0)[8], "{kind}");
        // The router already has the model: one clear line.
        let e = stderr_line(&pointsman(&[
            "onboard",
            "--router",
            labelled.to_str().unwrap(),
            "--model",
            held,
            "--models",
            data.join("models.json").to_str().unwrap(),
            "--out",
            tmp.path().join("again").to_str().unwrap(),
        ]));
        assert!(e.contains("already has model"), "{e}");
        // Saved over the router it read: refused, the router left as it was (it was replaced).
        let bytes = std::fs::read(&file).unwrap();
        for args in [
            vec!["reprice", "--prices", prices.to_str().unwrap()],
            vec![
                "onboard",
                "--model",
                held,
                "--models",
                data.join("models.json").to_str().unwrap(),
            ],
        ] {
            let mut args = args;
            args.extend([
                "--router",
                file.to_str().unwrap(),
                "--out",
                file.to_str().unwrap(),
            ]);
            let e = stderr_line(&pointsman(&args));
            assert!(e.contains("is one of this command's inputs"), "{e}");
            assert_eq!(std::fs::read(&file).unwrap(), bytes);
        }
    }
}
