//! The bodies of the engine's fuzz targets (`fuzz/fuzz_targets/`), public so that the fuzz
//! crate and the regression replay (`cargo test`, `fuzz/regressions/<target>/`) run exactly the
//! same code. Each function panics only when an invariant of the engine breaks: bad input must
//! come back as an error, never as a panic, an abort or an unbounded allocation.
//!
//! | target | input | invariant |
//! |---|---|---|
//! | `router_file` | a saved router's bytes | loads or is an error; a loaded router routes, and what it saves loads again with the same decision |
//! | `dataset` | `models.json`, a NUL byte, then the records (JSONL) | loads or is a [`crate::Error::Format`] / [`crate::Error::Io`]; a loaded dataset's splits are consistent |
//! | `npy` | a `.npy` file's bytes | parses or is an error; the parsed array has the shape's length |
//! | `share_entry` | an entry of the shared learner state ([`crate::share`]) | decodes or is an error; a decoded increment applies to the learner and encodes back to the same increment |
//! | `policy` | a decision-policy file (JSON when it starts with `{`, else TOML) | reads or is an error; a policy that reads routes a query (or refuses it with a typed error and an audit), twice, and records its cost |
//! | `log_import` | a team's log (JSONL when it starts with `{`, else CSV) with a fixed column mapping | imports or is a located error; an imported log's labels are in range and the dataset it writes loads back with the same queries |
//!
//! `scripts/fuzz.sh` runs them; docs/reliability.md has the figures.

use crate::registry::AnyRouter;
use crate::{Objective, QueryFeatures};

/// Fuzz target `router_file`.
///
/// # Panics
///
/// When a router that loaded cannot route a plain query, or saves bytes that do not load back
/// to the same decision.
pub fn router_file(data: &[u8]) {
    let Ok(router) = AnyRouter::from_bytes(data) else {
        return;
    };
    let dim = router.dim();
    let x: Vec<f32> = (0..dim).map(|i| 1.0 + (i % 7) as f32).collect();
    let query = QueryFeatures::new(x)
        .expect("a plain embedding is valid")
        .with_prompt_tokens(100.0)
        .expect("a plain count is valid");
    let objective = Objective::new(100.0);
    // A router that loaded must route (a cascade too: its first call); a numeric failure is
    // an error, not a panic.
    let Ok(decision) = router.route(&query, &objective) else {
        return;
    };
    assert!((0.0..=1.0).contains(&decision.quality) || router.as_learner().is_some());
    // What it saves loads again, with the same decision.
    let Ok(bytes) = router.to_bytes() else {
        return;
    };
    let again = AnyRouter::from_bytes(&bytes).expect("a loaded router's saved form loads again");
    let d2 = again
        .route(&query, &objective)
        .expect("the reloaded router routes");
    assert_eq!(
        d2.model, decision.model,
        "the reloaded router decides the same"
    );
}

/// Fuzz target `dataset`: `data` is a `models.json`, a NUL byte and the records file.
///
/// # Panics
///
/// When the loader panics or a loaded dataset's splits disagree with its size.
pub fn dataset(data: &[u8]) {
    let (models, records) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(tmp) = tempfile_dir() else {
        return;
    };
    let dir = tmp.join("fz");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("models.json"), models))
        .and_then(|()| std::fs::write(dir.join("fz.jsonl"), records));
    if written.is_ok() {
        if let Ok(ds) = crate::data::Dataset::load(&dir) {
            assert_eq!(ds.train().len() + ds.test().len(), ds.len());
            let m = ds.pool().len();
            for split in [ds.train(), ds.test()] {
                assert_eq!(split.scores().len(), split.len() * m);
                assert!(split
                    .scores()
                    .iter()
                    .enumerate()
                    .all(|(c, s)| (0.0..=1.0).contains(s)
                        || (s.is_nan() && !split.observed(c / m, c % m))));
                assert!(split.costs().iter().all(|c| c.is_finite() && *c >= 0.0));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Fuzz target `npy`.
///
/// # Panics
///
/// When a parsed array's data does not have its shape's length.
pub fn npy(data: &[u8]) {
    if let Ok(a) = crate::data::npy::parse(data, "fuzz.npy") {
        assert_eq!(a.data.len(), a.rows * a.cols);
    }
}

/// The learner the `share_entry` target decodes against: a cold kNN-UCB of 2 models on
/// 4-dimensional embeddings (its keys are the embeddings), and its fingerprint.
pub fn share_entry_learner() -> (crate::AnyLearner, u64) {
    let pool = crate::pool::ModelPool::new(vec![
        crate::pool::ModelCard::new("a", 0.1, 0.2),
        crate::pool::ModelCard::new("b", 1.0, 2.0),
    ])
    .expect("a valid pool");
    let learner = crate::AnyLearner::cold(crate::kind::RouterKind::KnnUcb, &pool, 4, None, 1)
        .expect("a cold learner");
    let fingerprint = learner.fingerprint().expect("a fingerprint");
    (learner, fingerprint)
}

/// Fuzz target `share_entry`: an increment or a snapshot of the shared learner state.
///
/// # Panics
///
/// When an increment that decoded does not apply to the learner, or does not encode back to
/// itself; when a decoded snapshot is not of the learner's kind.
pub fn share_entry(data: &[u8]) {
    use crate::share::entry;
    let (learner, fingerprint) = share_entry_learner();
    if let Ok(inc) = entry::decode_increment(data, "fuzz", &learner, fingerprint) {
        let key_len = 4;
        let kind = learner.kind().name();
        let again = entry::encode_increment(&inc, kind, fingerprint, key_len);
        let back = entry::decode_increment(&again, "fuzz", &learner, fingerprint)
            .expect("a decoded increment encodes back to a valid one");
        assert_eq!(back, inc);
        learner
            .apply_events(&inc.journal.events)
            .expect("a checked increment applies");
    }
    if let Ok((snap, _)) = entry::decode_snapshot(data, "fuzz", fingerprint) {
        assert_eq!(snap.kind(), learner.kind());
    }
}

/// Fuzz target `policy`.
///
/// # Panics
///
/// When a policy that reads cannot be bound to a small router, a decision names a model outside
/// it, or an audit does not serialise.
pub fn policy(data: &[u8]) {
    use crate::policy::{Policy, PolicyConfig, PolicyRouter, Request};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let json = crate::data::json::strip_bom(text)
        .trim_start()
        .starts_with('{');
    let config = if json {
        PolicyConfig::from_json(text, "fuzz")
    } else {
        PolicyConfig::from_toml(text, "fuzz")
    };
    let Ok(policy) = config.and_then(Policy::new) else {
        return;
    };
    // Rules may name models the router lacks: an error, not a panic.
    let Ok(router) = PolicyRouter::new(policy_router(), policy) else {
        return;
    };
    let x = QueryFeatures::new(vec![1.0, 0.5])
        .expect("a plain embedding is valid")
        .with_prompt_tokens(100.0)
        .expect("a plain count is valid");
    let req = Request::new(&x)
        .with_text("prove that the square root of two is irrational")
        .with_tenant("free")
        .with_session("s1")
        .with_metadata("tier", "free")
        .with_need("tools");
    for _ in 0..2 {
        let (decided, audit) = router.route_audited(&req);
        serde_json::to_string(&audit).expect("an audit serialises");
        if let Ok(d) = decided {
            assert!(d.model < 3 && (0.0..=1.0).contains(&d.quality), "{d:?}");
            let _ = router.record(&req, Some(&d.model_id), d.cost);
        }
    }
}

/// The router `policy` binds policies to: a kNN router (which gives the out-of-distribution
/// signal a guard may read) over three models with prices, latencies, a context window and
/// capabilities, so that every part of a policy has something to act on.
fn policy_router() -> std::sync::Arc<dyn crate::Router> {
    use crate::routers::knn::{KnnConfig, KnnRouter};
    let train = crate::data::Split::from_arrays(
        policy_pool(),
        vec![1.0, 0.0, 0.0, 1.0],
        2,
        vec![0.5, 0.7, 0.9, 0.4, 0.8, 0.9],
        vec![1e-5, 1e-4, 1e-3, 1e-5, 1e-4, 1e-3],
    )
    .expect("a valid split");
    let config = KnnConfig {
        k: 1,
        ..Default::default()
    };
    std::sync::Arc::new(KnnRouter::fit(&train, &config).expect("it fits"))
}

/// Fuzz target `log_import`: `data` is a log file read with the mapping `prompt`, `model`,
/// `score`, `cost` and `p` (propensity) over the models `a` and `b`.
///
/// # Panics
///
/// When an imported label is out of range, or the dataset an import writes does not load back
/// with the same queries.
pub fn log_import(data: &[u8]) {
    use crate::data::import_log;
    let Ok(tmp) = tempfile_dir() else {
        return;
    };
    let jsonl = data.trim_ascii_start().first() == Some(&b'{');
    let path = tmp.join(if jsonl { "log.jsonl" } else { "log.csv" });
    if std::fs::write(&path, data).is_ok() {
        if let Ok(draft) = import_log(&path, &log_mapping(), log_pool()) {
            for r in &draft.rows {
                assert!(r.scores.iter().flatten().all(|s| (0.0..=1.0).contains(s)));
                assert!(r.propensity.iter().flatten().all(|p| *p > 0.0 && *p <= 1.0));
                assert!(r
                    .cost_usd
                    .iter()
                    .flatten()
                    .all(|c| c.is_finite() && *c >= 0.0));
            }
            let out = tmp.join("out");
            if draft.write(&out, false).is_ok() {
                let ds = crate::data::Dataset::load(&out).expect("an imported log loads back");
                assert_eq!(ds.len(), draft.rows.len());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Three models whose cards carry prices, latencies, a context window and capabilities: the
/// pool of `policy`'s router and of the policy tests' ladder.
pub(crate) fn policy_pool() -> crate::ModelPool {
    use crate::ModelCard;
    crate::ModelPool::new(vec![
        ModelCard::new("small", 0.1, 0.1)
            .with_latency(100.0, 200.0)
            .with_context_window(1000.0),
        ModelCard::new("mid", 1.0, 1.0)
            .with_latency(300.0, 100.0)
            .with_capabilities(["tools"]),
        ModelCard::new("big", 10.0, 10.0)
            .with_latency(1000.0, 20.0)
            .with_capabilities(["tools", "vision"]),
    ])
    .expect("a valid pool")
}

/// The column mapping of `log_import` (`task` left out: a log whose records lack a mapped field
/// is refused as a whole, which would keep most inputs from the import itself).
fn log_mapping() -> crate::data::LogMapping {
    crate::data::LogMapping {
        prompt: "prompt".into(),
        model: "model".into(),
        score: "score".into(),
        cost: Some("cost".into()),
        propensity: Some("p".into()),
        ..Default::default()
    }
}

/// The models of `log_import`.
fn log_pool() -> crate::ModelPool {
    crate::ModelPool::new(vec![
        crate::ModelCard::new("a", 0.1, 0.1),
        crate::ModelCard::new("b", 1.0, 1.0),
    ])
    .expect("a valid pool")
}

/// A fresh folder under the system's temporary folder, unique to this process and call.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "pointsman-fuzz-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// Replays `fuzz/regressions/<target>/` (every file: seeds and past findings).
    fn replay(target: &str, f: fn(&[u8])) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/regressions")
            .join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let started = std::time::Instant::now();
            f(&std::fs::read(&path).unwrap());
            let seconds = started.elapsed().as_secs_f64();
            assert!(seconds < 5.0, "{}: {seconds:.1} s", path.display());
            n += 1;
        }
        assert!(n > 0, "no regression inputs in {}", dir.display());
    }

    #[test]
    fn router_file_regressions() {
        replay("router_file", super::router_file);
    }

    #[test]
    fn dataset_regressions() {
        replay("dataset", super::dataset);
    }

    #[test]
    fn policy_regressions() {
        replay("policy", super::policy);
        // The seeds reach both sides: the full policies read and bind, the crafted ones not.
        use crate::policy::{Policy, PolicyConfig, PolicyRouter};
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/policy");
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        for (f, config) in [
            (
                "full.json",
                PolicyConfig::from_json(&read("full.json"), "t"),
            ),
            (
                "full.toml",
                PolicyConfig::from_toml(&read("full.toml"), "t"),
            ),
        ] {
            let policy = Policy::new(config.unwrap_or_else(|e| panic!("{f}: {e}"))).unwrap();
            PolicyRouter::new(super::policy_router(), policy).unwrap();
        }
        for f in ["repeated_metadata.json", "huge_margin.json"] {
            assert!(PolicyConfig::from_json(&read(f), "t").is_err(), "{f}");
        }
        assert!(PolicyConfig::from_toml(&read("infinite_ttl.toml"), "t").is_err());
    }

    #[test]
    fn log_import_regressions() {
        replay("log_import", super::log_import);
        // The seeds reach both sides through the target's own mapping: the good logs import and
        // write a dataset (which the target loads back), the crafted ones are refused.
        use crate::data::import_log;
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/log_import");
        let tmp = tempfile::tempdir().unwrap();
        for (f, ok) in [
            ("log.jsonl", true),
            ("log.csv", true),
            ("one_row.jsonl", true),
            ("repeated_key.jsonl", false),
            ("repeated_column.csv", false),
            ("bad_propensity.jsonl", false),
        ] {
            let imported = import_log(&dir.join(f), &super::log_mapping(), super::log_pool());
            assert_eq!(imported.is_ok(), ok, "{f}: {:?}", imported.as_ref().err());
            if let Ok(draft) = imported {
                draft.write(&tmp.path().join(f), false).unwrap();
            }
        }
    }

    #[test]
    fn share_entry_regressions() {
        replay("share_entry", super::share_entry);
        // The seeds reach both sides: a valid increment and snapshot decode, a foreign one not.
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/share_entry");
        let (learner, fp) = super::share_entry_learner();
        let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
        let decode = |f: &str| crate::share::entry::decode_increment(&read(f), f, &learner, fp);
        assert_eq!(decode("increment.st").unwrap().journal.events.len(), 5);
        for bad in ["foreign.st", "truncated.st", "short_keys.st"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
        assert!(crate::share::entry::decode_snapshot(&read("snapshot.st"), "s", fp).is_ok());
    }

    /// Writes the seeds of `fuzz/regressions/share_entry/` when `POINTSMAN_WRITE_SEEDS` is
    /// set (run once; the replay above checks them).
    #[test]
    fn share_entry_seeds() {
        use crate::share::entry;
        use crate::{Feedback, QueryFeatures};
        if std::env::var_os("POINTSMAN_WRITE_SEEDS").is_none() {
            return;
        }
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/share_entry");
        std::fs::create_dir_all(&dir).unwrap();
        let (learner, fp) = super::share_entry_learner();
        learner.start_journal().unwrap();
        for i in 0..5 {
            let f = QueryFeatures::new(vec![1.0, i as f32, 0.5, -1.0]).unwrap();
            learner
                .observe(&Feedback {
                    features: &f,
                    model: i % 2,
                    quality: 0.25 * (i % 4) as f64,
                    cost: 0.001,
                })
                .unwrap();
        }
        let journal = learner.take_journal();
        let inc = entry::Increment {
            replica: "r0".into(),
            seq: 1,
            total: 5,
            journal,
        };
        let kind = learner.kind().name();
        let good = entry::encode_increment(&inc, kind, fp, 4);
        std::fs::write(dir.join("increment.st"), &good).unwrap();
        std::fs::write(dir.join("truncated.st"), &good[..good.len() / 2]).unwrap();
        std::fs::write(
            dir.join("foreign.st"),
            entry::encode_increment(&inc, kind, fp ^ 1, 4),
        )
        .unwrap();
        std::fs::write(
            dir.join("short_keys.st"),
            entry::encode_increment(&inc, kind, fp, 3),
        )
        .unwrap();
        let meta = entry::SnapshotMeta {
            fingerprint: entry::fingerprint_hex(fp),
            ..Default::default()
        };
        std::fs::write(
            dir.join("snapshot.st"),
            entry::encode_snapshot(&learner, &meta).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn npy_regressions() {
        replay("npy", super::npy);
    }
}
