//! Tests of the C ABI, calling the exported functions as C does.

use std::ffi::{CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pointsman::data::Split;
use pointsman::routers::knn::{KnnConfig, KnnRouter};
use pointsman::{
    Estimates, FeatureBatch, Feedback, Learner, ModelCard, ModelPool, Objective, QueryFeatures,
    Router,
};

use super::*;
use crate::guard::inject;
use crate::status::{status_of, ALL};
use pm_status::*;

/// SplitMix64, enough for test vectors.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

const DIM: usize = 8;
const MODELS: usize = 4;

fn pool() -> ModelPool {
    ModelPool::new(vec![
        ModelCard::new("small", 0.1, 0.2),
        ModelCard::new("mid", 1.0, 2.0),
        ModelCard::new("large", 5.0, 15.0),
        ModelCard::new("code", 0.8, 1.6),
    ])
    .unwrap()
}

/// A kNN router fitted on 300 random queries whose scores depend on the embedding, saved to a
/// temporary file; returns the file's folder (kept alive by the caller) and path.
fn saved_knn() -> (tempfile::TempDir, std::path::PathBuf, Arc<dyn Router>) {
    let mut rng = Rng(7);
    let n = 300;
    let mut emb = Vec::with_capacity(n * DIM);
    let mut scores = Vec::with_capacity(n * MODELS);
    let mut costs = Vec::with_capacity(n * MODELS);
    for _ in 0..n {
        let row: Vec<f32> = (0..DIM).map(|_| rng.unit()).collect();
        let a = f64::from(row[0]).abs();
        let b = f64::from(row[1]).abs();
        scores.extend_from_slice(&[0.3 + 0.2 * a, 0.5 + 0.3 * b, 0.9 - 0.1 * a, b.min(1.0)]);
        costs.extend_from_slice(&[1e-5, 1e-4 * (1.0 + a), 1e-3, 8e-5]);
        emb.extend_from_slice(&row);
    }
    let split = Split::from_arrays(pool(), emb, DIM, scores, costs).unwrap();
    let config = KnnConfig {
        k: 15,
        ..KnnConfig::default()
    };
    let router = KnnRouter::fit(&split, &config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("knn.safetensors");
    router.save(&path).unwrap();
    let loaded = pointsman::load_router(&path).unwrap().shared();
    (dir, path, loaded)
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Loads a router through C.
fn load(path: &std::path::Path) -> *mut pm_router {
    let p = cstr(path.to_str().unwrap());
    let mut out = null_mut();
    let mut err = null_mut();
    let s = unsafe { pm_router_load(p.as_ptr(), &mut out, &mut err) };
    assert_eq!(s, PM_STATUS_OK, "{}", message(err));
    assert!(err.is_null());
    out
}

/// Wraps a Rust router as C sees it.
fn handle(router: Arc<dyn Router>) -> *mut pm_router {
    Box::into_raw(Box::new(pm_router::from_dyn(router).unwrap()))
}

/// The message of an error (and frees it); "" for NULL.
fn message(err: *mut pm_error) -> String {
    if err.is_null() {
        return String::new();
    }
    let m = unsafe { CStr::from_ptr(pm_error_message(err)) }
        .to_str()
        .unwrap()
        .to_string();
    unsafe { pm_error_free(err) };
    m
}

/// Runs a call that takes `err`, returning its status and message.
fn failing(f: impl FnOnce(*mut *mut pm_error) -> pm_status) -> (pm_status, String) {
    let mut err = null_mut();
    let s = f(&mut err);
    if s == PM_STATUS_OK {
        assert!(err.is_null(), "err written on success");
    } else {
        assert!(!err.is_null(), "no error object for {s:?}");
        assert_eq!(unsafe { pm_error_status(err) }, s);
    }
    (s, message(err))
}

/// A C call that takes `err`, boxed so a test can list many.
type Call<'a> = Box<dyn Fn(*mut *mut pm_error) -> pm_status + 'a>;

fn queries(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..n * DIM).map(|_| rng.unit() * 3.0).collect()
}

#[test]
fn header_is_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    config.after_includes = Some(version_macros());
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen parses the crate")
        .write(&mut generated);
    let path = dir.join("include/pointsman.h");
    let current = std::fs::read(&path).unwrap_or_default();
    if generated != current {
        if std::env::var_os("POINTSMAN_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        panic!(
            "{} is not what cbindgen generates from the source; regenerate it with\n    \
             POINTSMAN_BLESS=1 cargo test -p pointsman-capi header_is_current\nand commit it",
            path.display()
        );
    }
}

/// The version macros of the header, from the package version (cbindgen reads no string
/// constants, so they are written here rather than in the source).
fn version_macros() -> String {
    format!(
        "\n/** The version of the library this header belongs to; compare it with pm_version() to \
         detect a header that does not match the library linked at run time. */\n\
         #define PM_VERSION \"{}\"\n\
         /** The major, minor and patch parts of PM_VERSION. */\n\
         #define PM_VERSION_MAJOR {}\n#define PM_VERSION_MINOR {}\n#define PM_VERSION_PATCH {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    )
}

#[test]
fn version_matches_the_package() {
    let v = unsafe { CStr::from_ptr(pm_version()) }.to_str().unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
}

/// Every kind of core error has a status of its own: C callers never get `PM_STATUS_OTHER` for
/// an error the core names, and the binding re-checks nothing to tell them apart.
#[test]
fn every_error_kind_has_its_own_status() {
    use crate::status::status_of;
    use pointsman::ErrorKind as K;
    let kinds = [
        (K::Shape, PM_STATUS_SHAPE),
        (K::InvalidFeatures, PM_STATUS_INVALID_FEATURES),
        (K::EmbeddingMismatch, PM_STATUS_EMBEDDING_MISMATCH),
        (K::UnknownModel, PM_STATUS_UNKNOWN_MODEL),
        (K::Config, PM_STATUS_CONFIG),
        (K::InvalidInput, PM_STATUS_INVALID_ARGUMENT),
        (K::Format, PM_STATUS_FORMAT),
        (K::UnsupportedVersion, PM_STATUS_UNSUPPORTED_VERSION),
        (K::Unsupported, PM_STATUS_UNSUPPORTED),
        (K::BudgetTooSmall, PM_STATUS_BUDGET_TOO_SMALL),
        (K::SessionFinished, PM_STATUS_SESSION_FINISHED),
        (K::SessionOutOfOrder, PM_STATUS_SESSION_OUT_OF_ORDER),
        (K::SessionRunning, PM_STATUS_SESSION_RUNNING),
        (K::Numeric, PM_STATUS_NUMERIC),
        (K::ModelNotFound, PM_STATUS_MODEL_NOT_FOUND),
        (K::Backend, PM_STATUS_BACKEND),
        (K::Io, PM_STATUS_IO),
        (K::OutOfDistribution, PM_STATUS_OUT_OF_DISTRIBUTION),
        (K::BudgetExhausted, PM_STATUS_BUDGET_EXHAUSTED),
        (K::NoModelFits, PM_STATUS_NO_MODEL_FITS),
        (K::MissingLabels, PM_STATUS_MISSING_LABELS),
        (K::Store, PM_STATUS_STORE),
    ];
    for (kind, status) in kinds {
        assert_eq!(status_of(kind), status, "{kind:?}");
    }
}

/// The numbers are part of the ABI: changing one breaks every compiled caller.
#[test]
fn status_numbers_are_fixed() {
    let expected = [
        (PM_STATUS_OK, 0, "OK"),
        (PM_STATUS_PANIC, 1, "PANIC"),
        (PM_STATUS_NULL_ARGUMENT, 2, "NULL_ARGUMENT"),
        (PM_STATUS_INVALID_UTF8, 3, "INVALID_UTF8"),
        (PM_STATUS_INVALID_ARGUMENT, 4, "INVALID_ARGUMENT"),
        (PM_STATUS_OTHER, 9, "OTHER"),
        (PM_STATUS_SHAPE, 10, "SHAPE"),
        (PM_STATUS_INVALID_FEATURES, 11, "INVALID_FEATURES"),
        (PM_STATUS_EMBEDDING_MISMATCH, 12, "EMBEDDING_MISMATCH"),
        (PM_STATUS_UNKNOWN_MODEL, 13, "UNKNOWN_MODEL"),
        (PM_STATUS_CONFIG, 14, "CONFIG"),
        (PM_STATUS_FORMAT, 15, "FORMAT"),
        (PM_STATUS_UNSUPPORTED_VERSION, 16, "UNSUPPORTED_VERSION"),
        (PM_STATUS_UNSUPPORTED, 17, "UNSUPPORTED"),
        (PM_STATUS_IO, 18, "IO"),
        (PM_STATUS_MODEL_NOT_FOUND, 19, "MODEL_NOT_FOUND"),
        (PM_STATUS_BACKEND, 20, "BACKEND"),
        (PM_STATUS_NUMERIC, 21, "NUMERIC"),
        (PM_STATUS_EMBEDDER_UNAVAILABLE, 30, "EMBEDDER_UNAVAILABLE"),
        (PM_STATUS_SESSION_FINISHED, 40, "SESSION_FINISHED"),
        (PM_STATUS_SESSION_OUT_OF_ORDER, 41, "SESSION_OUT_OF_ORDER"),
        (PM_STATUS_BUDGET_TOO_SMALL, 42, "BUDGET_TOO_SMALL"),
        (PM_STATUS_SESSION_RUNNING, 43, "SESSION_RUNNING"),
        (PM_STATUS_OUT_OF_DISTRIBUTION, 50, "OUT_OF_DISTRIBUTION"),
        (PM_STATUS_BUDGET_EXHAUSTED, 51, "BUDGET_EXHAUSTED"),
        (PM_STATUS_NO_MODEL_FITS, 52, "NO_MODEL_FITS"),
        (PM_STATUS_MISSING_LABELS, 60, "MISSING_LABELS"),
        (PM_STATUS_STORE, 61, "STORE"),
    ];
    assert_eq!(expected.len(), ALL.len());
    for (s, n, name) in expected {
        assert_eq!(s as i32, n, "{s:?}");
        assert!(ALL.contains(&s));
        let got = unsafe { CStr::from_ptr(pm_status_name(n)) };
        assert_eq!(got.to_str().unwrap(), name);
    }
    let unknown = unsafe { CStr::from_ptr(pm_status_name(5)) };
    assert_eq!(unknown.to_str().unwrap(), "UNKNOWN");
}

#[test]
fn every_core_error_kind_has_its_own_status() {
    use pointsman::{Error, ErrorKind};
    let errors = [
        Error::DimensionMismatch {
            expected: 1,
            got: 2,
        },
        Error::InvalidFeatures {
            row: 0,
            reason: "x".into(),
        },
        Error::EmbeddingMismatch {
            expected: "a".into(),
            got: "b".into(),
        },
        Error::UnknownModel("x".into()),
        Error::Config("x".into()),
        Error::InvalidInput("x".into()),
        Error::format("f", "x"),
        Error::UnsupportedVersion {
            path: "f".into(),
            found: "9".into(),
            supported: "1".into(),
        },
        Error::Unsupported("x".into()),
        Error::ModelNotFound {
            path: "m".into(),
            hint: "h".into(),
        },
        Error::Backend("x".into()),
        Error::io("f", std::io::Error::other("x")),
        Error::OutOfDistribution {
            score: 1.0,
            threshold: 0.5,
        },
        Error::BudgetExhausted {
            key: "k".into(),
            spent: 1.0,
            limit: 1.0,
            cost: 0.1,
        },
        Error::NoModelFits("x".into()),
        Error::MissingLabels("x".into()),
        Error::Store {
            store: "s".into(),
            message: "x".into(),
        },
    ];
    let kinds: Vec<ErrorKind> = errors.iter().map(|e| e.kind()).collect();
    let mut statuses: Vec<i32> = kinds.iter().map(|&k| status_of(k) as i32).collect();
    assert!(!statuses.contains(&(PM_STATUS_OTHER as i32)), "{kinds:?}");
    statuses.sort_unstable();
    statuses.dedup();
    assert_eq!(statuses.len(), errors.len(), "two kinds share a status");
}

/// The acceptance criterion: a decision made through C equals the Rust decision for the same
/// router, features and cost weight, to the bit.
#[test]
fn c_decisions_equal_rust_decisions() {
    let (_dir, path, rust) = saved_knn();
    let c = load(&path);
    assert_eq!(unsafe { pm_router_num_models(c) }, MODELS);
    assert_eq!(unsafe { pm_router_dim(c) }, DIM);
    let kind = unsafe { CStr::from_ptr(pm_router_kind(c)) };
    assert_eq!(kind.to_str().unwrap(), "knn");
    assert!(!unsafe { pm_router_is_learner(c) });
    for m in 0..MODELS {
        let name = unsafe { CStr::from_ptr(pm_router_model_name(c, m)) };
        assert_eq!(name.to_str().unwrap(), rust.models().id(m));
    }
    assert!(unsafe { pm_router_model_name(c, MODELS) }.is_null());

    let rows = 200;
    let data = queries(rows, 11);
    let mut chosen_models = std::collections::BTreeSet::new();
    for w in [0.0, 100.0, 1000.0, 3000.0, 1e5] {
        let mut batch_c = vec![u32::MAX; rows];
        let (s, m) = failing(|err| unsafe {
            pm_router_route_batch(
                c,
                data.as_ptr(),
                rows,
                DIM,
                w,
                batch_c.as_mut_ptr(),
                rows,
                err,
            )
        });
        assert_eq!(s, PM_STATUS_OK, "{m}");
        let batch = FeatureBatch::new(&data, DIM).unwrap();
        let batch_rust = rust.route_batch(&batch, &Objective::new(w)).unwrap();
        assert_eq!(batch_c, batch_rust, "batch at cost weight {w}");
        for r in 0..rows {
            let x = &data[r * DIM..(r + 1) * DIM];
            let mut out = pm_decision::default();
            let (s, m) =
                failing(|err| unsafe { pm_router_route(c, x.as_ptr(), DIM, w, &mut out, err) });
            assert_eq!(s, PM_STATUS_OK, "{m}");
            let q = QueryFeatures::new(x.to_vec()).unwrap();
            let d = rust.route(&q, &Objective::new(w)).unwrap();
            assert_eq!(out.model as usize, d.model);
            assert_eq!(out.quality.to_bits(), d.quality.to_bits());
            assert_eq!(out.cost.to_bits(), d.cost.to_bits());
            assert_eq!(out.utility.to_bits(), d.utility.to_bits());
            assert_eq!(out.model, batch_c[r]);
            chosen_models.insert(out.model);

            // The ranked form, with prompt tokens and an allowed set.
            let tokens = 50.0 + r as f64;
            let allowed = [1u8, 1, (r % 2) as u8, 1];
            let mut ranked = [pm_decision::default(); MODELS + 1];
            let mut count = 0usize;
            let (s, m) = failing(|err| unsafe {
                pm_router_rank(
                    c,
                    x.as_ptr(),
                    DIM,
                    tokens,
                    null(),
                    w,
                    allowed.as_ptr(),
                    MODELS,
                    ranked.as_mut_ptr(),
                    ranked.len(),
                    &mut count,
                    err,
                )
            });
            assert_eq!(s, PM_STATUS_OK, "{m}");
            let ids: Vec<&str> = (0..MODELS)
                .filter(|&m| allowed[m] != 0)
                .map(|m| rust.models().id(m))
                .collect();
            let q = q.with_prompt_tokens(tokens).unwrap();
            let top = rust
                .top_k(&q, &Objective::new(w).with_allowed(ids.clone()), 10)
                .unwrap();
            assert_eq!(count, ids.len());
            assert_eq!(top.len(), count);
            for (a, b) in top.iter().zip(&ranked[..count]) {
                assert_eq!(a.model, b.model as usize);
                assert_eq!(a.quality.to_bits(), b.quality.to_bits());
                assert_eq!(a.cost.to_bits(), b.cost.to_bits());
                assert_eq!(a.utility.to_bits(), b.utility.to_bits());
            }
            assert_eq!(ranked[count], pm_decision::default(), "wrote past count");
        }
        // The batch form with prompt tokens equals the Rust batch with the same tokens.
        let tokens: Vec<f64> = (0..rows).map(|r| 10.0 * r as f64).collect();
        let mut with_tokens = vec![0u32; rows];
        let (s, m) = failing(|err| unsafe {
            pm_router_route_batch_ex(
                c,
                data.as_ptr(),
                rows,
                DIM,
                tokens.as_ptr(),
                rows,
                w,
                null(),
                0,
                with_tokens.as_mut_ptr(),
                rows,
                err,
            )
        });
        assert_eq!(s, PM_STATUS_OK, "{m}");
        let batch = batch.with_prompt_tokens(&tokens).unwrap();
        assert_eq!(
            with_tokens,
            rust.route_batch(&batch, &Objective::new(w)).unwrap()
        );
    }
    assert!(
        chosen_models.len() >= 3,
        "a test that cannot tell models apart"
    );
    unsafe { pm_router_free(c) };
}

#[test]
fn null_arguments_are_reported() {
    let (_dir, path, _) = saved_knn();
    let c = load(&path);
    let x = [1.0f32; DIM];
    let mut out = pm_decision {
        model: 77,
        ..Default::default()
    };
    let mut models = [9u32; 2];
    let mut r: *mut pm_router = null_mut();
    let p = cstr(path.to_str().unwrap());
    // Raw output pointers, as C passes them (the closures below only copy them).
    let out_p: *mut pm_decision = &mut out;
    let models_p = models.as_mut_ptr();
    let r_p: *mut *mut pm_router = &mut r;
    let cases: Vec<(&str, Call)> = vec![
        (
            "path is NULL",
            Box::new(|e| unsafe { pm_router_load(null(), r_p, e) }),
        ),
        (
            "out is NULL",
            Box::new(|e| unsafe { pm_router_load(p.as_ptr(), null_mut(), e) }),
        ),
        (
            "router is NULL",
            Box::new(|e| unsafe { pm_router_route(null(), x.as_ptr(), DIM, 0.0, out_p, e) }),
        ),
        (
            "features is NULL",
            Box::new(|e| unsafe { pm_router_route(c, null(), DIM, 0.0, out_p, e) }),
        ),
        (
            "out is NULL",
            Box::new(|e| unsafe { pm_router_route(c, x.as_ptr(), DIM, 0.0, null_mut(), e) }),
        ),
        (
            "features is NULL",
            Box::new(|e| unsafe { pm_router_route_batch(c, null(), 2, DIM, 0.0, models_p, 2, e) }),
        ),
        (
            "models_out is NULL",
            Box::new(|e| unsafe {
                pm_router_route_batch(c, x.as_ptr(), 1, DIM, 0.0, null_mut(), 1, e)
            }),
        ),
        (
            "ranked is NULL",
            Box::new(|e| unsafe {
                pm_router_rank(
                    c,
                    x.as_ptr(),
                    DIM,
                    -1.0,
                    null(),
                    0.0,
                    null(),
                    0,
                    null_mut(),
                    3,
                    null_mut(),
                    e,
                )
            }),
        ),
        (
            "router is NULL",
            Box::new(|e| unsafe { pm_router_observe(null(), x.as_ptr(), DIM, 0, 1.0, 0.0, e) }),
        ),
        (
            "id is NULL",
            Box::new(|e| unsafe {
                let mut i = 0;
                pm_router_model_index(c, null(), &mut i, e)
            }),
        ),
    ];
    for (want, f) in cases {
        let (s, m) = failing(f);
        assert_eq!(s, PM_STATUS_NULL_ARGUMENT, "{want}: {m}");
        assert_eq!(m, want);
    }
    // Outputs untouched on failure; a NULL err is fine.
    assert_eq!(out.model, 77);
    assert_eq!(models, [9, 9]);
    assert!(r.is_null());
    let s = unsafe { pm_router_route(c, null(), DIM, 0.0, &mut out, null_mut()) };
    assert_eq!(s, PM_STATUS_NULL_ARGUMENT);
    // Getters and frees accept NULL.
    unsafe {
        assert_eq!(pm_router_num_models(null()), 0);
        assert_eq!(pm_router_dim(null()), 0);
        assert!(pm_router_model_name(null(), 0).is_null());
        assert!(pm_router_kind(null()).is_null());
        assert!(pm_router_embedding_model(null()).is_null());
        assert!(!pm_router_is_learner(null()));
        assert_eq!(pm_error_status(null()), PM_STATUS_NULL_ARGUMENT);
        assert!(pm_error_message(null()).is_null());
        pm_router_free(null_mut());
        pm_error_free(null_mut());
        pm_router_free(c);
    }
}

#[test]
fn bad_inputs_get_their_status() {
    let (dir, path, _) = saved_knn();
    let c = load(&path);
    let x = [0.5f32; DIM + 1];
    let mut out = pm_decision::default();
    let route = |x: &[f32], dim: usize, w: f64| {
        failing(|e| unsafe {
            let mut out = pm_decision::default();
            pm_router_route(c, x.as_ptr(), dim, w, &mut out, e)
        })
    };
    assert_eq!(
        route(&x, DIM + 1, 0.0),
        (
            PM_STATUS_SHAPE,
            format!("dimension mismatch: expected {DIM}, got {}", DIM + 1)
        )
    );
    assert_eq!(route(&x, 0, 0.0).0, PM_STATUS_SHAPE);
    let mut nan = [0.5f32; DIM];
    nan[3] = f32::NAN;
    assert_eq!(route(&nan, DIM, 0.0).0, PM_STATUS_INVALID_FEATURES);
    assert_eq!(route(&[0.0; DIM], DIM, 0.0).0, PM_STATUS_INVALID_FEATURES);
    assert_eq!(route(&x, DIM, -1.0).0, PM_STATUS_CONFIG);
    assert_eq!(route(&x, DIM, f64::NAN).0, PM_STATUS_CONFIG);

    // Batch: wrong output length, wrong dim, a bad row named in the message.
    let data = queries(3, 5);
    let mut models = [7u32; 3];
    let (s, m) = failing(|e| unsafe {
        pm_router_route_batch(c, data.as_ptr(), 3, DIM, 0.0, models.as_mut_ptr(), 2, e)
    });
    assert_eq!(s, PM_STATUS_SHAPE, "{m}");
    let (s, _) = failing(|e| unsafe {
        pm_router_route_batch(c, data.as_ptr(), 4, DIM - 2, 0.0, models.as_mut_ptr(), 4, e)
    });
    assert_eq!(s, PM_STATUS_SHAPE);
    let mut bad = data.clone();
    bad[2 * DIM + 1] = f32::INFINITY;
    let (s, m) = failing(|e| unsafe {
        pm_router_route_batch(c, bad.as_ptr(), 3, DIM, 0.0, models.as_mut_ptr(), 3, e)
    });
    assert_eq!(s, PM_STATUS_INVALID_FEATURES);
    assert!(m.contains("row 2"), "{m}");
    assert_eq!(models, [7; 3], "outputs written on failure");
    let (s, _) = failing(|e| unsafe {
        pm_router_route_batch(
            c,
            data.as_ptr(),
            usize::MAX,
            2,
            0.0,
            models.as_mut_ptr(),
            3,
            e,
        )
    });
    assert_eq!(s, PM_STATUS_INVALID_ARGUMENT);
    // Zero rows is a valid, empty batch.
    let s = unsafe { pm_router_route_batch(c, null(), 0, DIM, 0.0, null_mut(), 0, null_mut()) };
    assert_eq!(s, PM_STATUS_OK);

    // Misaligned features.
    let words = [1u32; DIM + 1];
    let misaligned: *const f32 = words.as_ptr().cast::<u8>().wrapping_add(1).cast();
    let (s, m) = failing(|e| unsafe { pm_router_route(c, misaligned, DIM, 0.0, &mut out, e) });
    assert_eq!(
        (s, m.as_str()),
        (
            PM_STATUS_INVALID_ARGUMENT,
            "features is not aligned to 4 bytes"
        )
    );
    // A misaligned `err` cannot take an error: the call does nothing, returns the status and
    // leaves the slot's bytes as they were (before, the error was written through it anyway).
    let mut slots = [0u8; 2 * std::mem::size_of::<usize>()];
    let slot: *mut *mut pm_error = slots.as_mut_ptr().wrapping_add(1).cast();
    let before = out;
    let s = unsafe { pm_router_route(c, x.as_ptr(), DIM - 1, 0.0, &mut out, slot) };
    assert_eq!(s, PM_STATUS_INVALID_ARGUMENT);
    assert!(
        slots.iter().all(|&b| b == 0),
        "written through a misaligned err"
    );
    let s = unsafe { pm_router_route(c, x.as_ptr(), DIM, 0.0, &mut out, slot) };
    assert_eq!(
        s, PM_STATUS_INVALID_ARGUMENT,
        "a call that would succeed is not run either"
    );
    assert_eq!(out, before, "the body ran");

    // Rank: allowed flags of the wrong length, none allowed, NaN tokens, invalid UTF-8 task.
    let rank = |tokens: f64, task: *const std::ffi::c_char, allowed: &[u8], room: usize| {
        failing(|e| unsafe {
            let mut ranked = [pm_decision::default(); MODELS];
            pm_router_rank(
                c,
                x.as_ptr(),
                DIM,
                tokens,
                task,
                0.0,
                allowed.as_ptr(),
                allowed.len(),
                ranked.as_mut_ptr(),
                room,
                null_mut(),
                e,
            )
        })
    };
    assert_eq!(rank(-1.0, null(), &[1, 1], 2).0, PM_STATUS_SHAPE);
    assert_eq!(rank(-1.0, null(), &[0; MODELS], 2).0, PM_STATUS_CONFIG);
    assert_eq!(rank(f64::NAN, null(), &[], 2).0, PM_STATUS_INVALID_ARGUMENT);
    assert_eq!(rank(-1.0, null(), &[], 0).0, PM_STATUS_SHAPE);
    assert_eq!(rank(-1.0, null(), &[], 2).0, PM_STATUS_OK);
    let latin1 = b"caf\xe9\0";
    let (s, m) = rank(1.0, latin1.as_ptr().cast(), &[], 2);
    assert_eq!(s, PM_STATUS_INVALID_UTF8);
    assert_eq!(m, "task is not valid UTF-8 (invalid byte at offset 3)");
    let task = cstr("code");
    assert_eq!(rank(1.0, task.as_ptr(), &[], 2).0, PM_STATUS_OK);

    // Model lookup.
    let mut index = 99;
    let id = cstr("large");
    let s = unsafe { pm_router_model_index(c, id.as_ptr(), &mut index, null_mut()) };
    assert_eq!((s, index), (PM_STATUS_OK, 2));
    let id = cstr("nope");
    let (s, m) = failing(|e| unsafe { pm_router_model_index(c, id.as_ptr(), &mut index, e) });
    assert_eq!(
        (s, m.as_str()),
        (PM_STATUS_UNKNOWN_MODEL, "unknown model \"nope\"")
    );

    // Loading: missing file, corrupt file, invalid UTF-8 path, truncated file.
    let load_err = |p: &[u8]| {
        let p = CString::new(p).unwrap();
        let mut r = null_mut();
        let got = failing(|e| unsafe { pm_router_load(p.as_ptr(), &mut r, e) });
        assert!(r.is_null());
        got
    };
    let missing = dir.path().join("missing.safetensors");
    let (s, m) = load_err(missing.to_str().unwrap().as_bytes());
    assert_eq!(s, PM_STATUS_IO);
    assert!(m.contains("missing.safetensors"), "{m}");
    let corrupt = dir.path().join("corrupt.safetensors");
    std::fs::write(&corrupt, b"this is not a router").unwrap();
    assert_eq!(
        load_err(corrupt.to_str().unwrap().as_bytes()).0,
        PM_STATUS_FORMAT
    );
    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    assert_eq!(
        load_err(truncated.to_str().unwrap().as_bytes()).0,
        PM_STATUS_FORMAT
    );
    let (s, _) = load_err(b"/tmp/\xff\xfe.safetensors");
    assert_eq!(s, PM_STATUS_INVALID_UTF8);
    unsafe { pm_router_free(c) };
}

/// A learner for the tests of `pm_router_observe`: per-model mean observed quality.
#[derive(Debug)]
struct MeanLearner {
    pool: ModelPool,
    sums: Mutex<Vec<(f64, f64)>>,
    count: AtomicU64,
}

impl Router for MeanLearner {
    fn kind(&self) -> &'static str {
        "mean-test"
    }
    fn models(&self) -> &ModelPool {
        &self.pool
    }
    fn dim(&self) -> usize {
        DIM
    }
    fn estimate(&self, batch: &FeatureBatch<'_>, out: &mut Estimates) -> pointsman::Result<()> {
        let sums = self.sums.lock().unwrap();
        for r in 0..batch.rows() {
            let (q, c) = out.row_mut(r);
            for (m, &(sum, n)) in sums.iter().enumerate() {
                q[m] = if n > 0.0 { sum / n } else { 0.5 };
                c[m] = 1e-4;
            }
        }
        Ok(())
    }
    fn as_learner(&self) -> Option<&dyn Learner> {
        Some(self)
    }
}

impl Learner for MeanLearner {
    fn observe(&self, feedback: &Feedback<'_>) -> pointsman::Result<()> {
        feedback.validate(&self.pool, DIM)?;
        let mut sums = self.sums.lock().unwrap();
        sums[feedback.model].0 += feedback.quality;
        sums[feedback.model].1 += 1.0;
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn observations(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[test]
fn observe_reaches_learners_and_refuses_others() {
    let (_dir, path, _) = saved_knn();
    let knn = load(&path);
    let x = [0.25f32; DIM];
    let (s, m) = failing(|e| unsafe { pm_router_observe(knn, x.as_ptr(), DIM, 1, 0.8, 1e-4, e) });
    assert_eq!(s, PM_STATUS_UNSUPPORTED);
    assert_eq!(
        m,
        "unsupported: observe: the knn router does not learn from feedback"
    );
    unsafe { pm_router_free(knn) };

    let learner = Arc::new(MeanLearner {
        pool: pool(),
        sums: Mutex::new(vec![(0.0, 0.0); MODELS]),
        count: AtomicU64::new(0),
    });
    let c = handle(learner.clone());
    assert!(unsafe { pm_router_is_learner(c) });
    let route = || {
        let mut out = pm_decision::default();
        let s = unsafe { pm_router_route(c, x.as_ptr(), DIM, 0.0, &mut out, null_mut()) };
        assert_eq!(s, PM_STATUS_OK);
        out
    };
    assert_eq!(route().model, 0, "all equal: the lowest index");
    let (s, m) = failing(|e| unsafe { pm_router_observe(c, x.as_ptr(), DIM, 2, 0.9, 1e-3, e) });
    assert_eq!(s, PM_STATUS_OK, "{m}");
    assert_eq!(learner.observations(), 1);
    let d = route();
    assert_eq!(
        (d.model, d.quality),
        (2, 0.9),
        "the observation changed the decision"
    );
    let bad = [
        (7, 0.5, 0.0, PM_STATUS_UNKNOWN_MODEL),
        (1, 1.5, 0.0, PM_STATUS_INVALID_ARGUMENT),
        (1, 0.5, -1.0, PM_STATUS_INVALID_ARGUMENT),
    ];
    for (model, q, cost, want) in bad {
        let (s, m) =
            failing(|e| unsafe { pm_router_observe(c, x.as_ptr(), DIM, model, q, cost, e) });
        assert_eq!(s, want, "{m}");
    }
    let (s, _) = failing(|e| unsafe { pm_router_observe(c, x.as_ptr(), DIM - 1, 1, 0.5, 0.0, e) });
    assert_eq!(s, PM_STATUS_SHAPE);
    assert_eq!(learner.observations(), 1);
    unsafe { pm_router_free(c) };
}

/// A router whose estimates panic, as a bug in a router would.
#[derive(Debug)]
struct Panicking(ModelPool);

impl Router for Panicking {
    fn kind(&self) -> &'static str {
        "panicking-test"
    }
    fn models(&self) -> &ModelPool {
        &self.0
    }
    fn dim(&self) -> usize {
        DIM
    }
    fn estimate(&self, _: &FeatureBatch<'_>, _: &mut Estimates) -> pointsman::Result<()> {
        panic!("estimate failed on purpose")
    }
}

#[test]
fn panics_become_a_status() {
    let c = handle(Arc::new(Panicking(pool())));
    let data = queries(64, 3);
    let mut out = pm_decision::default();
    let (s, m) = failing(|e| unsafe { pm_router_route(c, data.as_ptr(), DIM, 0.0, &mut out, e) });
    assert_eq!(s, PM_STATUS_PANIC);
    assert!(m.contains("estimate failed on purpose"), "{m}");
    // A panic on one of rayon's worker threads comes back to the caller, and is caught there.
    let mut models = vec![0u32; 64];
    let (s, m) = failing(|e| unsafe {
        pm_router_route_batch(c, data.as_ptr(), 64, DIM, 0.0, models.as_mut_ptr(), 64, e)
    });
    assert_eq!(s, PM_STATUS_PANIC, "{m}");
    assert_eq!(out, pm_decision::default());
    // The router can still be asked about and freed.
    assert_eq!(unsafe { pm_router_num_models(c) }, MODELS);
    unsafe { pm_router_free(c) };
}

/// Every entry point runs its body inside the guard: a panic injected there is caught.
#[test]
fn every_entry_point_is_guarded() {
    let (_dir, path, _) = saved_knn();
    let c = load(&path);
    let p = cstr(path.to_str().unwrap());
    let x = [1.0f32; DIM];
    let id = cstr("mid");
    let calls: Vec<(&str, Call)> = vec![
        (
            "pm_router_load",
            Box::new(|e| unsafe {
                let mut r = null_mut();
                let s = pm_router_load(p.as_ptr(), &mut r, e);
                pm_router_free(r);
                s
            }),
        ),
        (
            "pm_router_route",
            Box::new(|e| unsafe {
                let mut out = pm_decision::default();
                pm_router_route(c, x.as_ptr(), DIM, 0.0, &mut out, e)
            }),
        ),
        (
            "pm_router_rank",
            Box::new(|e| unsafe {
                let mut out = [pm_decision::default(); 2];
                pm_router_rank(
                    c,
                    x.as_ptr(),
                    DIM,
                    -1.0,
                    null(),
                    0.0,
                    null(),
                    0,
                    out.as_mut_ptr(),
                    2,
                    null_mut(),
                    e,
                )
            }),
        ),
        (
            "pm_router_route_batch",
            Box::new(|e| unsafe {
                let mut m = [0u32];
                pm_router_route_batch(c, x.as_ptr(), 1, DIM, 0.0, m.as_mut_ptr(), 1, e)
            }),
        ),
        (
            "pm_router_route_batch_ex",
            Box::new(|e| unsafe {
                let mut m = [0u32];
                pm_router_route_batch_ex(
                    c,
                    x.as_ptr(),
                    1,
                    DIM,
                    null(),
                    0,
                    0.0,
                    null(),
                    0,
                    m.as_mut_ptr(),
                    1,
                    e,
                )
            }),
        ),
        (
            "pm_router_observe",
            Box::new(|e| unsafe { pm_router_observe(c, x.as_ptr(), DIM, 0, 0.5, 0.0, e) }),
        ),
        (
            "pm_router_model_index",
            Box::new(|e| unsafe {
                let mut i = 0;
                pm_router_model_index(c, id.as_ptr(), &mut i, e)
            }),
        ),
    ];
    for (name, f) in &calls {
        inject::arm();
        let (s, m) = failing(f);
        assert_eq!(s, PM_STATUS_PANIC, "{name}");
        assert!(m.contains("injected by the test"), "{name}: {m}");
        // The same call without the injected panic does not panic.
        assert_ne!(failing(f).0, PM_STATUS_PANIC, "{name}");
    }
    unsafe {
        inject::arm();
        assert_eq!(pm_router_num_models(c), 0);
        inject::arm();
        assert_eq!(pm_router_dim(c), 0);
        inject::arm();
        assert!(pm_router_model_name(c, 0).is_null());
        inject::arm();
        assert!(pm_router_kind(c).is_null());
        inject::arm();
        assert!(pm_router_embedding_model(c).is_null());
        inject::arm();
        assert!(!pm_router_is_learner(c));
        inject::arm();
        assert!(pm_version().is_null());
        inject::arm();
        assert!(pm_status_name(0).is_null());
        let mut err = null_mut();
        let _ = pm_router_route(c, null(), DIM, 0.0, null_mut(), &mut err);
        inject::arm();
        assert_eq!(pm_error_status(err), PM_STATUS_PANIC);
        inject::arm();
        assert!(pm_error_message(err).is_null());
        inject::arm();
        pm_error_free(err); // the injected panic fires before the free: the error leaks here
        pm_error_free(err);
        inject::arm();
        pm_router_free(c); // likewise
        assert_eq!(pm_router_num_models(c), MODELS, "the router was not freed");
        pm_router_free(c);
    }
}

/// The embedding model through C with one thread, or `None` (test skipped, with a message) when
/// it is not installed, except under `CI=true`, where a missing model fails the test.
#[cfg(feature = "embed")]
fn c_embedder() -> Option<*mut pm_embedder> {
    let dir = pointsman::embed::default_model_dir().ok()?;
    if !dir.join("model.safetensors").is_file() {
        let msg = format!(
            "no embedding model at {} (scripts/fetch-model.sh)",
            dir.display()
        );
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
        eprintln!("skipping: {msg}");
        return None;
    }
    let mut out = null_mut();
    let mut err = null_mut();
    let s = unsafe { pm_embedder_load_with_options(null(), 1, 0, &mut out, &mut err) };
    assert_eq!(s, PM_STATUS_OK, "{}", message(err));
    Some(out)
}

/// A kNN router on random 384-dimensional embeddings said to come from `model`.
#[cfg(feature = "embed")]
fn text_router(model: &str) -> Arc<dyn Router> {
    let dim = 384;
    let mut rng = Rng(11);
    let n = 200;
    let emb: Vec<f32> = (0..n * dim).map(|_| rng.unit()).collect();
    let mut scores = Vec::new();
    let mut costs = Vec::new();
    for r in 0..n {
        let a = f64::from(emb[r * dim]).abs();
        scores.extend_from_slice(&[0.3 + 0.2 * a, 0.6, 0.9 - 0.1 * a, a.min(1.0)]);
        costs.extend_from_slice(&[1e-5, 1e-4, 1e-3, 8e-5]);
    }
    let mut split = Split::from_arrays(pool(), emb.clone(), dim, scores, costs).unwrap();
    split
        .set_embeddings(emb, dim, Some(model.to_string()))
        .unwrap();
    let config = KnnConfig {
        k: 10,
        ..KnnConfig::default()
    };
    Arc::new(KnnRouter::fit(&split, &config).unwrap())
}

/// Text through C: the embedding is the core embedder's and the decision the Rust decision, to
/// the bit; the router's embedding model and dimension are checked.
#[cfg(feature = "embed")]
#[test]
fn c_text_decisions_equal_rust_decisions() {
    use pointsman::embed::{Embedder, EmbedderOptions};
    let Some(e) = c_embedder() else { return };
    let rust = Embedder::load_default(&EmbedderOptions {
        threads: 1,
        ..EmbedderOptions::default()
    })
    .unwrap();
    let router = text_router("all-MiniLM-L6-v2");
    let c = handle(router.clone());
    assert_eq!(unsafe { pm_embedder_dim(e) }, 384);
    let name = unsafe { CStr::from_ptr(pm_embedder_model_name(e)) };
    assert_eq!(name.to_str().unwrap(), rust.model_name());
    for text in [
        "Prove that sqrt(2) is irrational.",
        "a",
        "Écris un poème 🙂",
    ] {
        let mut v = vec![0f32; 384];
        let (s, m) = failing(|err| unsafe {
            pm_embedder_embed(e, cstr(text).as_ptr(), v.as_mut_ptr(), 384, err)
        });
        assert_eq!(s, PM_STATUS_OK, "{m}");
        assert_eq!(v, rust.embed(&[text]).unwrap().0);
        let (features, _) = rust.features(text).unwrap();
        for w in [0.0, 300.0, 3000.0] {
            let want = router.route(&features, &Objective::new(w)).unwrap();
            let mut d = pm_decision::default();
            let (s, m) = failing(|err| unsafe {
                pm_router_route_text(c, e, cstr(text).as_ptr(), w, &mut d, err)
            });
            assert_eq!(s, PM_STATUS_OK, "{m}");
            assert_eq!(d.model as usize, want.model);
            assert_eq!(d.quality.to_bits(), want.quality.to_bits());
            assert_eq!(d.cost.to_bits(), want.cost.to_bits());
            assert_eq!(d.utility.to_bits(), want.utility.to_bits());
            let mut ranked = [pm_decision::default(); 2];
            let mut count = 0;
            let (s, m) = failing(|err| unsafe {
                pm_router_rank_text(
                    c,
                    e,
                    cstr(text).as_ptr(),
                    -1.0,
                    null(),
                    w,
                    null(),
                    0,
                    ranked.as_mut_ptr(),
                    2,
                    &mut count,
                    err,
                )
            });
            assert_eq!(s, PM_STATUS_OK, "{m}");
            assert_eq!((count, ranked[0]), (2, d));
        }
    }
    // Another embedding model, another dimension.
    let other = handle(text_router("e5-small"));
    let mut d = pm_decision::default();
    let (s, m) = failing(|err| unsafe {
        pm_router_route_text(other, e, cstr("hello").as_ptr(), 0.0, &mut d, err)
    });
    assert_eq!(s, PM_STATUS_EMBEDDING_MISMATCH, "{m}");
    let (_dir, _, small) = saved_knn();
    let small = handle(small);
    let (s, m) = failing(|err| unsafe {
        pm_router_route_text(small, e, cstr("hello").as_ptr(), 0.0, &mut d, err)
    });
    assert_eq!(s, PM_STATUS_SHAPE, "{m}");
    assert_eq!(d, pm_decision::default());
    unsafe {
        pm_router_free(other);
        pm_router_free(small);
        pm_router_free(c);
        pm_embedder_free(e);
    }
}

/// Every embedder entry point runs inside the guard.
#[cfg(feature = "embed")]
#[test]
fn every_embedder_entry_point_is_guarded() {
    let Some(e) = c_embedder() else { return };
    let c = handle(text_router("all-MiniLM-L6-v2"));
    let text = cstr("hello");
    let texts = [text.as_ptr()];
    let calls: Vec<(&str, Call)> = vec![
        (
            "pm_embedder_load_with_options",
            Box::new(|err| unsafe {
                let mut out = null_mut();
                let s = pm_embedder_load_with_options(null(), 1, 0, &mut out, err);
                pm_embedder_free(out);
                s
            }),
        ),
        (
            "pm_embedder_embed",
            Box::new(|err| unsafe {
                let mut v = [0f32; 384];
                pm_embedder_embed(e, text.as_ptr(), v.as_mut_ptr(), 384, err)
            }),
        ),
        (
            "pm_embedder_embed_batch",
            Box::new(|err| unsafe {
                let mut v = [0f32; 384];
                pm_embedder_embed_batch(e, texts.as_ptr(), 1, v.as_mut_ptr(), 384, err)
            }),
        ),
        (
            "pm_router_route_text",
            Box::new(|err| unsafe {
                let mut d = pm_decision::default();
                pm_router_route_text(c, e, text.as_ptr(), 0.0, &mut d, err)
            }),
        ),
        (
            "pm_router_rank_text",
            Box::new(|err| unsafe {
                let mut d = [pm_decision::default()];
                pm_router_rank_text(
                    c,
                    e,
                    text.as_ptr(),
                    -1.0,
                    null(),
                    0.0,
                    null(),
                    0,
                    d.as_mut_ptr(),
                    1,
                    null_mut(),
                    err,
                )
            }),
        ),
    ];
    for (name, f) in &calls {
        inject::arm();
        let (s, m) = failing(f);
        assert_eq!(s, PM_STATUS_PANIC, "{name}");
        assert!(m.contains("injected by the test"), "{name}: {m}");
        assert_eq!(failing(f).0, PM_STATUS_OK, "{name}");
    }
    unsafe {
        inject::arm();
        assert_eq!(pm_embedder_dim(e), 0);
        inject::arm();
        assert!(pm_embedder_model_name(e).is_null());
        inject::arm();
        assert_eq!(pm_embedder_threads(e), 0);
        inject::arm();
        assert_eq!(pm_embedder_max_tokens(e), 0);
        inject::arm();
        pm_embedder_free(e); // the injected panic fires before the free
        assert_eq!(pm_embedder_dim(e), 384, "the embedder was not freed");
        pm_embedder_free(e);
        pm_router_free(c);
    }
}

/// A dynamic cascade fitted on the synthetic split of `saved_knn`, saved and loaded.
fn saved_cascade() -> (tempfile::TempDir, std::path::PathBuf, pointsman::AnyRouter) {
    use pointsman::routers::cascade::{CascadeConfig, CascadeRouter};
    let mut rng = Rng(11);
    let n = 300;
    let mut emb = Vec::with_capacity(n * DIM);
    let mut scores = Vec::with_capacity(n * MODELS);
    let mut costs = Vec::with_capacity(n * MODELS);
    for _ in 0..n {
        let row: Vec<f32> = (0..DIM).map(|_| rng.unit()).collect();
        let a = f64::from(row[0]).abs();
        let b = f64::from(row[1]).abs();
        scores.extend_from_slice(&[a, b, 0.9 - 0.1 * a, (a + b) / 2.0]);
        costs.extend_from_slice(&[1e-5, 1e-4, 1e-3, 8e-5]);
        emb.extend_from_slice(&row);
    }
    let split = Split::from_arrays(pool(), emb, DIM, scores, costs).unwrap();
    let router = CascadeRouter::fit(&split, &CascadeConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cascade.safetensors");
    router.save(&path).unwrap();
    let loaded = pointsman::load_router(&path).unwrap();
    (dir, path, loaded)
}

/// A cascade session driven through C takes the same steps and ends with the same outcome as
/// the Rust session for the same router, features, limits and confidences, to the bit.
#[test]
fn c_cascade_sessions_equal_rust_sessions() {
    use pointsman::routers::cascade::{CascadeLimits, Step};
    let (_dir, path, rust) = saved_cascade();
    let cascade = rust.as_cascade().unwrap();
    let c = load(&path);
    assert!(unsafe { pm_router_is_cascade(c) });
    let data = queries(40, 5);
    let confidences = [0.05, 0.3, 0.6, 0.95, 0.5, 0.0, 1.0];
    let (mut sessions, mut escalated, mut exhausted) = (0, 0, 0);
    for (r, x) in data.chunks(DIM).enumerate() {
        let query = QueryFeatures::new(x.to_vec()).unwrap();
        for (budget, max_steps, weight) in [
            (-1.0, 0u32, -1.0),
            (1.5e-4, 0, -1.0),
            (-1.0, 2, 0.0),
            (f64::INFINITY, 0, 300.0),
        ] {
            let mut limits = CascadeLimits::default();
            if (0.0..f64::INFINITY).contains(&budget) {
                limits = limits.with_budget(budget);
            }
            if max_steps > 0 {
                limits = limits.with_max_steps(max_steps as usize);
            }
            let mut s = if weight < 0.0 {
                cascade.start(&query, &limits)
            } else {
                cascade.start_with(&query, &Objective::new(weight), &limits)
            }
            .unwrap();
            let mut cs = null_mut();
            let mut step = pm_cascade_step::default();
            let (st, m) = failing(|e| unsafe {
                pm_cascade_start(
                    c,
                    x.as_ptr(),
                    DIM,
                    -1.0,
                    weight,
                    budget,
                    max_steps,
                    &mut cs,
                    &mut step,
                    e,
                )
            });
            assert_eq!(st, PM_STATUS_OK, "{m}");
            let mut k = 0;
            let outcome = loop {
                let next = s.next().unwrap().clone();
                assert!(!step.finished);
                assert_eq!(step.model as usize, next.model);
                assert_eq!(
                    step.expected_quality.to_bits(),
                    next.expected_quality.to_bits()
                );
                assert_eq!(step.expected_cost.to_bits(), next.expected_cost.to_bits());
                let conf = confidences[(r + 3 * k) % confidences.len()];
                k += 1;
                // An infinite cost is an error, not "charge the expected cost" (-inf was).
                for cost in [f64::NEG_INFINITY, f64::INFINITY, f64::NAN] {
                    let before = step;
                    let (st, m) = failing(|e| unsafe {
                        pm_cascade_observe(cs, step.model, conf, cost, &mut step, e)
                    });
                    assert_eq!(st, PM_STATUS_INVALID_ARGUMENT, "{cost}: {m}");
                    assert_eq!(step, before);
                }
                let (st, m) = failing(|e| unsafe {
                    pm_cascade_observe(cs, step.model, conf, -1.0, &mut step, e)
                });
                assert_eq!(st, PM_STATUS_OK, "{m}");
                if let Step::Accept(o) = s.observe(next.model, conf).unwrap() {
                    break o;
                }
            };
            assert!(step.finished);
            assert_eq!(step.model as usize, outcome.accepted);
            let mut o = pm_cascade_outcome::default();
            let mut calls = vec![pm_cascade_call::default(); 8];
            let mut count = 0;
            let (st, m) = failing(|e| unsafe {
                pm_cascade_result(cs, &mut o, calls.as_mut_ptr(), 8, &mut count, e)
            });
            assert_eq!(st, PM_STATUS_OK, "{m}");
            assert_eq!(o.model as usize, outcome.accepted);
            assert_eq!(o.posterior.to_bits(), outcome.posterior.to_bits());
            assert_eq!(o.total_cost.to_bits(), outcome.total_cost.to_bits());
            assert_eq!(o.budget_exhausted, outcome.budget_exhausted);
            assert_eq!(o.stop, outcome.stop.into());
            assert_eq!(
                (o.steps, count),
                (outcome.invoked.len(), outcome.invoked.len())
            );
            for (a, b) in calls.iter().zip(&outcome.invoked) {
                assert_eq!(a.model as usize, b.model);
                assert_eq!(a.confidence.to_bits(), b.confidence.to_bits());
                assert_eq!(a.posterior.to_bits(), b.posterior.to_bits());
                assert_eq!(a.cost.to_bits(), b.cost.to_bits());
            }
            unsafe { pm_cascade_session_free(cs) };
            sessions += 1;
            escalated += usize::from(outcome.invoked.len() > 1);
            exhausted += usize::from(outcome.budget_exhausted);
        }
    }
    assert_eq!(sessions, 160);
    assert!(escalated > 0 && exhausted > 0, "{escalated} {exhausted}");
    // A router that is not a cascade.
    let (_kdir, kpath, _) = saved_knn();
    let k = load(&kpath);
    let mut cs = null_mut();
    let (st, m) = failing(|e| unsafe {
        pm_cascade_start(
            k,
            data.as_ptr(),
            DIM,
            -1.0,
            -1.0,
            -1.0,
            0,
            &mut cs,
            null_mut(),
            e,
        )
    });
    assert_eq!(st, PM_STATUS_UNSUPPORTED, "{m}");
    assert!(m.contains("not a cascade"), "{m}");
    assert!(cs.is_null());
    assert!(!unsafe { pm_router_is_cascade(k) });
    unsafe {
        pm_router_free(k);
        pm_router_free(c);
    }
}

/// The cascade entry points run their bodies inside the guard.
#[test]
fn every_cascade_entry_point_is_guarded() {
    let (_dir, path, _) = saved_cascade();
    let c = load(&path);
    let x = [1.0f32; DIM];
    let mut s = null_mut();
    let mut first = pm_cascade_step::default();
    let start = |s: *mut *mut pm_cascade_session, first: *mut pm_cascade_step, e| unsafe {
        pm_cascade_start(c, x.as_ptr(), DIM, -1.0, -1.0, -1.0, 0, s, first, e)
    };
    inject::arm();
    assert_eq!(failing(|e| start(&mut s, &mut first, e)).0, PM_STATUS_PANIC);
    assert!(s.is_null());
    assert_eq!(failing(|e| start(&mut s, &mut first, e)).0, PM_STATUS_OK);
    let model = first.model;
    let calls: Vec<(&str, Call)> = vec![
        (
            "pm_cascade_next",
            Box::new(|e| unsafe {
                let mut step = pm_cascade_step::default();
                pm_cascade_next(s, &mut step, e)
            }),
        ),
        (
            "pm_cascade_result",
            Box::new(|e| unsafe {
                let mut o = pm_cascade_outcome::default();
                pm_cascade_result(s, &mut o, null_mut(), 0, null_mut(), e)
            }),
        ),
        (
            "pm_cascade_observe",
            Box::new(|e| unsafe {
                let mut step = pm_cascade_step::default();
                pm_cascade_observe(s, model, 0.5, -1.0, &mut step, e)
            }),
        ),
        (
            "pm_cascade_stop",
            Box::new(|e| unsafe { pm_cascade_stop(s, e) }),
        ),
    ];
    for (name, f) in &calls {
        inject::arm();
        let (st, m) = failing(f);
        assert_eq!(st, PM_STATUS_PANIC, "{name}");
        assert!(m.contains("injected by the test"), "{name}: {m}");
        assert_ne!(failing(f).0, PM_STATUS_PANIC, "{name}");
    }
    unsafe {
        inject::arm();
        assert!(!pm_router_is_cascade(c));
        assert!(pm_router_is_cascade(c));
        inject::arm();
        pm_cascade_session_free(s); // the injected panic fires before the free
        pm_cascade_session_free(s);
        pm_router_free(c);
    }
}
