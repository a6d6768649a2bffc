use super::config::kind_tag;
use super::*;
use crate::data::Split;
use crate::pool::ModelCard;
use crate::pool::ModelPool;
use crate::routers::baseline::Baseline;
use crate::routers::knn::KnnConfig;
use crate::routers::mf::MfConfig;
use crate::{Objective, QueryFeatures};

fn split() -> Split {
    let pool = ModelPool::new(vec![
        ModelCard::new("a", 0.1, 0.1),
        ModelCard::new("b", 1.0, 1.0),
    ])
    .unwrap();
    let mut emb = Vec::new();
    let mut scores = Vec::new();
    for i in 0..40 {
        let t = i as f32 / 40.0;
        emb.extend_from_slice(&[1.0 - t, t, 0.3]);
        scores.extend_from_slice(&[f64::from(u8::from(t < 0.5)), 0.8]);
    }
    let n = scores.len();
    Split::from_arrays(pool, emb, 3, scores, vec![1e-5; n]).unwrap()
}

/// `config` made quick to fit on [`split`]: a small k, few epochs or steps, a stack of kNN and
/// the zero router (the searches are covered by their own tests and the quality tests).
fn small(config: RouterConfig) -> RouterConfig {
    match config {
        RouterConfig::Knn(c) => RouterConfig::Knn(KnnConfig { k: 5, ..c }),
        RouterConfig::Mf(c) => RouterConfig::Mf(MfConfig {
            dim: 4,
            max_epochs: 5,
            ..c
        }),
        RouterConfig::Irt(c) => RouterConfig::Irt(crate::routers::irt::IrtConfig {
            dim: 2,
            max_steps: 10,
            ..c
        }),
        RouterConfig::Stack(c) => RouterConfig::Stack(crate::routers::stack::StackConfig {
            members: vec![
                serde_json::json!({"type": "knn", "k": 5}),
                serde_json::json!({"type": "baseline", "rule": "zero"}),
            ],
            ..c
        }),
        other => other,
    }
}

#[test]
fn config_tags_are_the_kind_names() {
    for kind in RouterKind::ALL {
        match RouterConfig::default_for(kind, 3) {
            Ok(config) => {
                assert_eq!(config.kind(), kind);
                let v = config.to_value();
                assert_eq!(v["type"], kind_tag(kind), "{kind}");
                if kind.family() == Family::Baseline {
                    assert_eq!(v["rule"], kind.name());
                }
                let again = RouterConfig::parse(kind, &config.to_json(), 3).unwrap();
                assert_eq!(again, config, "{kind}");
                let tagged = RouterConfig::parse(kind, &v.to_string(), 3).unwrap();
                assert_eq!(tagged, config, "{kind}");
                assert_eq!(config.changes(), "{}", "{kind}");
                let short = RouterConfig::parse(kind, &config.changes(), 3).unwrap();
                assert_eq!(short, config, "{kind}");
            }
            Err(e) => {
                assert_eq!(kind, RouterKind::Fixed);
                assert_eq!(e.kind(), crate::ErrorKind::Config);
            }
        }
    }
}

#[test]
fn parse_takes_the_seed_unless_given_and_names_bad_fields() {
    let c = RouterConfig::parse(RouterKind::Thompson, "{}", 9).unwrap();
    let RouterConfig::Thompson(c) = c else {
        panic!("{c:?}")
    };
    assert_eq!(c.seed, 9);
    let c = RouterConfig::parse(RouterKind::Mf, r#"{"seed": 4, "dim": 8}"#, 9).unwrap();
    assert!(matches!(
        c,
        RouterConfig::Mf(MfConfig {
            seed: 4,
            dim: 8,
            ..
        })
    ));
    let c = RouterConfig::parse(RouterKind::Knn, r#"{"k": 7, "same_task": true}"#, 0).unwrap();
    assert_eq!(c.changes(), r#"{"k":7,"same_task":true}"#);
    let e = RouterConfig::parse(RouterKind::Knn, r#"{"kk": 1}"#, 0).unwrap_err();
    assert!(
        e.to_string().contains("knn config") && e.to_string().contains("kk"),
        "{e}"
    );
    let e = RouterConfig::parse(RouterKind::Knn, r#"{"type": "mf"}"#, 0).unwrap_err();
    assert!(e.to_string().contains("not \"knn\""), "{e}");
    assert!(RouterConfig::parse(RouterKind::Knn, "[1]", 0).is_err());
    assert!(RouterConfig::parse(RouterKind::Knn, "{", 0).is_err());
}

#[test]
fn specs_parse_and_refuse_clearly() {
    assert_eq!(
        RouterSpec::parse("knn-ucb").unwrap(),
        RouterSpec::Kind(RouterKind::KnnUcb)
    );
    assert_eq!(
        RouterSpec::parse("fixed:gpt").unwrap(),
        RouterSpec::Fixed("gpt".into())
    );
    assert_eq!(
        RouterSpec::parse("file:r.safetensors").unwrap(),
        RouterSpec::File("r.safetensors".into())
    );
    for bad in ["fixed", "fixed:", "quantum", "file:"] {
        let e = RouterSpec::parse(bad).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad}: {e}");
    }
    let e = RouterSpec::parse("quantum").unwrap_err().to_string();
    assert!(
        e.contains("known: random, cheapest") && e.contains("fixed:<model id>"),
        "{e}"
    );
}

#[test]
fn every_kind_fits_saves_loads_and_gives_typed_access() {
    let train = split();
    let q = QueryFeatures::new(vec![0.9, 0.1, 0.3]).unwrap();
    for kind in RouterKind::ALL {
        if kind == RouterKind::Fixed {
            assert!(AnyRouter::fit(kind, &train, &FitOptions::default()).is_err());
            continue;
        }
        if matches!(
            kind,
            RouterKind::Knn
                | RouterKind::Mf
                | RouterKind::Irt
                | RouterKind::Stack
                | RouterKind::Cascade
        ) {
            // The searches are covered by their own tests and the quality tests.
            let config = RouterConfig::default_for(kind, 0).unwrap();
            let config = small(config);
            let r = AnyRouter::fit_config(&config, &train);
            #[cfg(not(feature = "train"))]
            if kind == RouterKind::Mf || kind == RouterKind::Irt {
                assert_eq!(r.unwrap_err().kind(), crate::ErrorKind::Unsupported);
                continue;
            }
            check(&r.unwrap(), kind, &q);
            continue;
        }
        let fitted = AnyRouter::fit(kind, &train, &FitOptions::default()).unwrap();
        assert!(fitted.search.is_none());
        check(&fitted.router, kind, &q);
    }
    let fixed = AnyRouter::fit_config(
        &RouterConfig::Baseline(Baseline::Fixed { model: "b".into() }),
        &train,
    )
    .unwrap();
    check(&fixed, RouterKind::Fixed, &q);
}

#[test]
fn load_for_names_the_routers_dimension_as_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("zero.safetensors");
    let fitted = AnyRouter::fit(RouterKind::Zero, &split(), &FitOptions::default()).unwrap();
    fitted.router.save(&path).unwrap();
    assert_eq!(AnyRouter::load_for(&path, "any", 3).unwrap().dim(), 3);
    let err = AnyRouter::load_for(&path, "any", 768).unwrap_err();
    assert!(
        matches!(
            err,
            crate::Error::DimensionMismatch {
                expected: 3,
                got: 768
            }
        ),
        "{err}"
    );
}

fn check(r: &AnyRouter, kind: RouterKind, q: &QueryFeatures) {
    assert_eq!(r.kind(), kind);
    assert_eq!(r.router().kind(), kind.name());
    assert_eq!(r.as_learner().is_some(), kind.is_learner(), "{kind}");
    assert_eq!(r.as_cascade().is_some(), kind == RouterKind::Cascade);
    assert_eq!(r.as_knn().is_some(), kind == RouterKind::Knn);
    let d = r.route(q, &Objective::new(0.0)).unwrap();
    let bytes = r.to_bytes().unwrap();
    let again = AnyRouter::from_bytes(&bytes).unwrap();
    assert_eq!(again.kind(), kind);
    assert_eq!(
        again.to_bytes().unwrap(),
        bytes,
        "{kind}: save is not stable"
    );
    assert_eq!(again.route(q, &Objective::new(0.0)).unwrap(), d, "{kind}");
    assert_eq!(r.shared().kind(), kind.name());
}

#[test]
fn learners_merge_by_kind_and_share_handles() {
    let train = split();
    let a = AnyLearner::cold(RouterKind::KnnUcb, train.pool(), 3, None, 0).unwrap();
    let handle = a.clone();
    let b = a.snapshot();
    b.observe_split(&train).unwrap();
    a.merge(&b).unwrap();
    assert_eq!(handle.observations(), b.observations());
    assert!(a.greedy().is_greedy() && !a.exploring().is_greedy());
    let other = AnyLearner::cold(RouterKind::Linucb, train.pool(), 3, None, 0).unwrap();
    let e = a.merge(&other).unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot merge a linucb router into a knn-ucb"),
        "{e}"
    );
    let e = AnyLearner::cold(RouterKind::Knn, train.pool(), 3, None, 0).unwrap_err();
    assert!(e.to_string().contains("does not learn"), "{e}");
}

#[test]
fn corrupt_configs_are_format_errors() {
    let train = split();
    let r = AnyRouter::fit(RouterKind::Zero, &train, &FitOptions::default())
        .unwrap()
        .router;
    let mut saved = r.to_saved().unwrap();
    saved.config = r#"{"type":"quantum"}"#.into();
    let e = AnyRouter::from_saved(saved).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Format);
    assert!(
        e.to_string()
            .contains("bad config: unknown variant `quantum`"),
        "{e}"
    );
}

/// The crafted files of the reliability issue (fuzz/regressions/router_file/, written by
/// fuzz/make_seeds.py) are typed errors, each found in well under 100 ms, before any allocation
/// the file does not pay for.
#[test]
fn crafted_router_files_are_quick_typed_errors() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/router_file");
    let cases = [
        (
            "linucb_dim_100000",
            crate::ErrorKind::Format,
            "above the ceiling",
        ),
        (
            "linucb_dim_100000000000",
            crate::ErrorKind::Format,
            "above the ceiling",
        ),
        (
            "linucb_dim_30000",
            crate::ErrorKind::Format,
            "expected [3, 30001, 30001]",
        ),
        (
            "thompson_dim_30000",
            crate::ErrorKind::Format,
            "expected [3, 30001, 30001]",
        ),
        (
            "thompson_tampered_inverse",
            crate::ErrorKind::Format,
            "does not invert",
        ),
        (
            "knn_price_1e308",
            crate::ErrorKind::Format,
            "above the ceiling",
        ),
        (
            "zero_format_version_01",
            crate::ErrorKind::Format,
            "not a decimal integer",
        ),
        (
            "zero_format_version_+1",
            crate::ErrorKind::Format,
            "not a decimal integer",
        ),
        (
            "zero_format_version_3",
            crate::ErrorKind::UnsupportedVersion,
            "version \"3\"",
        ),
        (
            "header_longer_than_file",
            crate::ErrorKind::Format,
            "does not fit",
        ),
        ("mf_truncated_100", crate::ErrorKind::Format, "does not fit"),
    ];
    for (name, kind, words) in cases {
        let path = dir.join(format!("{name}.safetensors"));
        let started = std::time::Instant::now();
        let e = AnyRouter::load(&path).unwrap_err();
        let ms = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(e.kind(), kind, "{name}: {e}");
        let text = e.to_string();
        assert!(text.contains(words), "{name}: {text}");
        assert!(
            text.starts_with(&path.display().to_string()),
            "{name}: {text}"
        );
        assert!(ms < 100.0, "{name}: {ms:.1} ms");
        // The same bytes from memory (a pickle) give the same kind.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            AnyRouter::from_bytes(&bytes).unwrap_err().kind(),
            kind,
            "{name}"
        );
    }
}

/// Only regular files are read, and a large file of garbage is refused after its first bytes.
#[test]
fn special_and_garbage_files_are_refused_before_they_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.safetensors");
    // A sparse gigabyte of zeros: a header length of 0, no metadata.
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let started = std::time::Instant::now();
    let e = AnyRouter::load(&big).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Format, "{e}");
    assert!(started.elapsed().as_secs_f64() < 0.1);
    let e = AnyRouter::load("/dev/zero").unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Io, "{e}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let fifo = tmp.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = AnyRouter::load(&fifo).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Io, "{e}");
    assert_eq!(
        AnyRouter::load(tmp.path()).unwrap_err().kind(),
        crate::ErrorKind::Io
    );
    // A text file (here a models.json) is named as text, not only as a bad header.
    let json = tmp.path().join("models.json");
    std::fs::write(&json, "{\n  \"models\": {\"a\": {}}\n}\n").unwrap();
    let e = AnyRouter::load(&json).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Format, "{e}");
    assert!(
        e.to_string()
            .contains("it starts with text (\"{\\n  \\\"mod\"), so it is not a router file"),
        "{e}"
    );
}

#[test]
fn add_model_and_reprice_through_any_router() {
    let train = split();
    let m = train.pool().len();
    let fewer = train
        .select_models(&(0..m - 1).collect::<Vec<_>>())
        .unwrap();
    let card = train.pool().card(m - 1).clone();
    for config in [
        RouterConfig::Knn(KnnConfig {
            k: 5,
            ..Default::default()
        }),
        RouterConfig::Mf(MfConfig {
            dim: 4,
            max_epochs: 3,
            ..Default::default()
        }),
        RouterConfig::default_for(RouterKind::Linucb, 0).unwrap(),
        RouterConfig::default_for(RouterKind::Thompson, 0).unwrap(),
        RouterConfig::default_for(RouterKind::KnnUcb, 0).unwrap(),
        RouterConfig::default_for(RouterKind::ClusterUcb, 0).unwrap(),
    ] {
        let r = AnyRouter::fit_config(&config, &fewer).unwrap();
        let r2 = r.add_model(card.clone(), Some(&train)).unwrap();
        assert_eq!(r2.models().len(), m);
        assert_eq!(r2.kind(), r.kind());
        let r0 = r.add_model(card.clone(), None).unwrap();
        assert_eq!(r0.models().id(m - 1), card.id);
        let priced = r2
            .reprice(&[ModelCard::new(card.id.clone(), 9.0, 9.0)])
            .unwrap();
        assert_eq!(priced.models().card(m - 1).output_usd_per_mtok, 9.0);
        // Saved and loaded, the onboarded router keeps its models. Its file says format
        // version 2 where it holds what a version-1 reader would misread (kNN's observed cells
        // and anchors, knn-ucb's anchors, the linear learners' card priors), 1 otherwise, as the
        // router it came from.
        let bytes = r2.to_bytes().unwrap();
        let back = AnyRouter::from_bytes(&bytes).unwrap();
        assert_eq!(back.models().len(), m);
        let version = |b: &[u8]| {
            crate::saved::SavedRouter::from_bytes(b, "test")
                .unwrap()
                .format_version()
        };
        let want = if [
            RouterKind::Knn,
            RouterKind::KnnUcb,
            RouterKind::Linucb,
            RouterKind::Thompson,
        ]
        .iter()
        .any(|k| *k == r.kind())
        {
            2
        } else {
            1
        };
        assert_eq!(version(&bytes), want, "{}", r.kind());
        let says = |b: &[u8], v: u32| {
            let text = String::from_utf8_lossy(&b[..b.len().min(4096)]).into_owned();
            text.contains(&format!("\"format_version\":\"{v}\""))
        };
        assert!(says(&bytes, want), "{}", r.kind());
        assert!(says(&r.to_bytes().unwrap(), 1), "{}", r.kind());
    }
    let base = AnyRouter::fit_config(&RouterConfig::Baseline(Baseline::Cheapest), &fewer).unwrap();
    let err = base.add_model(card, None).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Unsupported);
    // Partial labels: fit takes the default configuration, no search.
    let partial = crate::data::keep_cells(&train, 0.5, 1).unwrap();
    let fitted = AnyRouter::fit(RouterKind::Knn, &partial, &FitOptions::default()).unwrap();
    assert!(fitted.search.is_none());
}

/// Every pre-call kind (the ones `auto` may return included) takes a new price list without
/// refitting: its quality estimates stay bit for bit, the repriced model's costs scale by the
/// price ratio, the others' stay, and the repriced router saves and loads. The cascade refuses.
#[test]
fn every_pre_call_kind_reprices_without_refitting() {
    let train = split();
    let q = train.features().unwrap();
    // "b" (1.0 / 1.0 USD per 1M tokens) becomes ten times cheaper than "a".
    let prices = [ModelCard::new("b", 0.01, 0.01)];
    let mut kinds: Vec<RouterConfig> = RouterKind::ALL
        .into_iter()
        .filter(|k| k.is_pre_call() && *k != RouterKind::Fixed)
        .map(|k| small(RouterConfig::default_for(k, 0).unwrap()))
        .collect();
    kinds.push(RouterConfig::Baseline(Baseline::Fixed {
        model: "b".into(),
    }));
    let mut checked = 0;
    for config in kinds {
        let kind = config.kind();
        checked += 1;
        let r = match AnyRouter::fit_config(&config, &train) {
            Err(e) if e.kind() == crate::ErrorKind::Unsupported => {
                checked -= 1; // no `train` feature
                continue;
            }
            r => r.unwrap(),
        };
        let before = r.estimate_batch(&q).unwrap();
        let priced = r.reprice(&prices).unwrap();
        assert_eq!(priced.kind(), kind);
        assert_eq!(priced.models().card(1).input_usd_per_mtok, 0.01);
        let after = priced.estimate_batch(&q).unwrap();
        assert_eq!(after.quality, before.quality, "{kind}: quality moved");
        for row in 0..before.rows() {
            let (old, new) = (before.cost_row(row), after.cost_row(row));
            assert_eq!(new[0], old[0], "{kind}: the other model's cost moved");
            assert!(
                (new[1] - old[1] / 100.0).abs() <= 1e-9 * old[1],
                "{kind}: {} is not a hundredth of {}",
                new[1],
                old[1]
            );
        }
        let back = AnyRouter::from_bytes(&priced.to_bytes().unwrap()).unwrap();
        assert_eq!(back.estimate_batch(&q).unwrap().cost, after.cost, "{kind}");
        if kind == RouterKind::Cheapest {
            // The cheapest model is chosen again under the new prices.
            let (one, o) = (
                QueryFeatures::new(vec![0.9, 0.1, 0.3]).unwrap(),
                Objective::new(0.0),
            );
            assert_eq!(r.route(&one, &o).unwrap().model, 0);
            assert_eq!(priced.route(&one, &o).unwrap().model, 1);
        }
    }
    // Every baseline, knn, mf, irt, stack and the four learners (mf and irt need `train`).
    assert_eq!(checked, if cfg!(feature = "train") { 13 } else { 11 });
    // Costs learned at a price of 0 (observed costs of cards without prices) have no ratio to
    // scale by: repricing such a model is refused, naming it; the other models still reprice.
    let free = Split::from_arrays(
        ModelPool::new(vec![
            ModelCard::new("a", 0.0, 0.0),
            ModelCard::new("b", 1.0, 1.0),
        ])
        .unwrap(),
        train.embeddings().to_vec(),
        3,
        (0..train.len())
            .flat_map(|r| [train.score(r, 0), train.score(r, 1)])
            .collect(),
        vec![1e-5; 2 * train.len()],
    )
    .unwrap();
    for config in [
        RouterConfig::Knn(KnnConfig {
            k: 5,
            ..Default::default()
        }),
        RouterConfig::Baseline(Baseline::Zero),
        RouterConfig::Baseline(Baseline::Cheapest),
        // A warm-started learner with observed costs (it added its old observed mean to the
        // new estimate instead).
        RouterConfig::default_for(RouterKind::Linucb, 0).unwrap(),
    ] {
        let r = AnyRouter::fit_config(&config, &free).unwrap();
        let e = r.reprice(&[ModelCard::new("a", 1.0, 1.0)]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config, "{e}");
        assert!(
            e.to_string().contains("\"a\"") && e.to_string().contains("price of 0"),
            "{e}"
        );
        assert!(r.reprice(&[ModelCard::new("b", 2.0, 2.0)]).is_ok());
        // An empty list is a mistake (a file with no model), not a silent copy.
        let e = r.reprice(&[]).unwrap_err();
        assert!(e.to_string().contains("names no model"), "{e}");
    }
    let cascade = AnyRouter::fit_config(
        &RouterConfig::default_for(RouterKind::Cascade, 0).unwrap(),
        &train,
    )
    .unwrap();
    let e = cascade.reprice(&prices).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("cascade"), "{e}");
}
