//! The exact kNN router's batch path makes the same decisions as one `route` per query, on real
//! data: through the int8 prefilter (the default: the very same estimates) and through the
//! four-query block scan (routers without the prefilter).
mod common;

use pointsman::data::Dataset;
use pointsman::routers::knn::{KnnConfig, KnnRouter};
use pointsman::{FeatureBatch, Objective, QueryFeatures, Router};

fn check(router: &KnnRouter, batch: &FeatureBatch<'_>, same_estimates: bool) {
    let objective = Objective::new(300.0);
    // One thread: chunks of 50 rows, so the batch kernel does most of the work.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (chosen, estimates) = pool.install(|| {
        router
            .route_batch_with_estimates(batch, &objective)
            .unwrap()
    });
    assert_eq!(chosen, router.route_batch(batch, &objective).unwrap());
    for (r, &model) in chosen.iter().enumerate() {
        let query = QueryFeatures::new(batch.row(r).to_vec()).unwrap();
        let one = router.route(&query, &objective).unwrap();
        assert_eq!(one.model, model as usize, "row {r}");
        if same_estimates {
            // The same row alone: the same arithmetic as in the batch.
            let alone = FeatureBatch::new(batch.row(r), batch.dim()).unwrap();
            let (_, single) = router
                .route_batch_with_estimates(&alone, &objective)
                .unwrap();
            assert_eq!(
                single.quality_row(0),
                estimates.quality_row(r),
                "row {r}: the batch's estimates differ from the row's alone"
            );
        }
    }
}

#[test]
fn llmrouter_dc_knn_route_batch_equals_repeated_route() {
    let Some(root) = common::data_dir() else {
        return;
    };
    let ds = Dataset::load(root.join("llmrouter_dc")).unwrap();
    let mut router = KnnRouter::fit(ds.train(), &KnnConfig::default()).unwrap();
    let dim = router.dim();
    // 203 rows: whole four-query passes and a remainder of three.
    let data = &ds.test().embeddings()[..203 * dim];
    let batch = FeatureBatch::new(data, dim).unwrap();
    check(&router, &batch, true);
    router.set_exact_prefilter(false);
    check(&router, &batch, false);
}

/// A saved exact kNN router of `n` random unit reference rows of dimension `dim` over three
/// models, built as its saved form (a fit would search all pairs), written to `path`.
fn write_large_router(path: &std::path::Path, n: usize, dim: usize) {
    use pointsman::kind::RouterKind;
    use pointsman::pool::{ModelCard, ModelPool};
    use pointsman::routers::knn::Index;
    use pointsman::saved::{SavedRouter, Tensor};
    let pool = ModelPool::new(vec![
        ModelCard::new("small", 0.1, 0.2),
        ModelCard::new("medium", 1.0, 2.0),
        ModelCard::new("large", 5.0, 15.0),
    ])
    .unwrap();
    let m = pool.len();
    let config = KnnConfig {
        index: Index::Exact,
        ..Default::default()
    };
    let mut rng = common::Rng(7);
    let scores: Vec<f32> = (0..n * m).map(|_| rng.unit() as f32).collect();
    let ood: Vec<f32> = (0..101).map(|i| i as f32 / 100.0).collect();
    let mut saved = SavedRouter::new(RouterKind::Knn.name(), &config, pool, None, dim)
        .with_tensor(
            "knn.embeddings",
            Tensor::f32(&[n, dim], common::random_unit(n, dim, 11)),
        )
        .with_tensor("knn.scores", Tensor::f32(&[n, m], scores))
        .with_tensor("knn.costs", Tensor::f32(&[n, m], vec![f32::NAN; n * m]))
        .with_tensor(
            "knn.output_tokens",
            Tensor::f32(&[n, m], vec![f32::NAN; n * m]),
        )
        .with_tensor("knn.tasks", Tensor::u32(&[n], vec![u32::MAX; n]))
        .with_tensor("knn.ood_quantiles", Tensor::f32(&[ood.len()], ood));
    saved.notes.insert("knn.tasks".into(), "[]".into());
    saved.save(path).unwrap();
}

fn queries(rows: usize, dim: usize) -> Vec<f32> {
    common::random_unit(rows, dim, 99)
}

/// A router opened memory-mapped routes exactly as one loaded, reads its reference set in
/// place, and keeps routing identically when the file is replaced (by the atomic rename of a
/// save) while it is mapped; the next open sees the new file.
#[test]
fn mapped_router_routes_as_loaded_and_survives_replacement() {
    use pointsman::registry::AnyRouter;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.router");
    let dim = 64;
    write_large_router(&path, 5_000, dim);
    let q = queries(300, dim);
    let batch = FeatureBatch::new(&q, dim).unwrap();
    let objective = Objective::new(1.0);
    let loaded = AnyRouter::load(&path).unwrap();
    let mapped = AnyRouter::open_mmap(&path).unwrap();
    let want = loaded.route_batch(&batch, &objective).unwrap();
    assert_eq!(mapped.route_batch(&batch, &objective).unwrap(), want);
    assert_eq!(
        mapped.to_saved().unwrap().to_bytes().unwrap(),
        std::fs::read(&path).unwrap()
    );
    // Replaced while mapped: another router saved over it (write to a temporary, rename).
    write_large_router(&path, 3_000, dim);
    let again = mapped.route_batch(&batch, &objective).unwrap();
    assert_eq!(
        again, want,
        "a mapped router changed when its file was replaced"
    );
    let fresh = AnyRouter::open_mmap(&path).unwrap();
    assert_eq!(
        fresh.route_batch(&batch, &objective).unwrap(),
        AnyRouter::load(&path)
            .unwrap()
            .route_batch(&batch, &objective)
            .unwrap()
    );
    drop(fresh);
    assert_eq!(mapped.route_batch(&batch, &objective).unwrap(), want);
}

/// The proportional set size of process `pid`, bytes (`/proc/<pid>/smaps_rollup`).
fn pss(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let line = text.lines().find(|l| l.starts_with("Pss:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// A worker process of `mapped_routers_share_one_copy_per_host`: says "started", waits for a
/// line, opens the router (mapped or loaded, as told), routes a batch, says "ready", waits
/// for its input to close.
#[test]
#[ignore = "a worker process of mapped_routers_share_one_copy_per_host: run by it"]
fn mapped_router_worker() {
    use std::io::{BufRead, Write};
    let Ok(job) = std::env::var("POINTSMAN_MMAP_WORKER") else {
        return;
    };
    let (mode, path) = job.split_once(':').unwrap();
    let mut out = std::io::stdout();
    let mut input = std::io::stdin().lock();
    let mut line = String::new();
    writeln!(out, "\nstarted").unwrap();
    out.flush().unwrap();
    input.read_line(&mut line).unwrap();
    let router = match mode {
        "mmap" => pointsman::registry::AnyRouter::open_mmap(path).unwrap(),
        _ => pointsman::registry::AnyRouter::load(path).unwrap(),
    };
    let dim = router.dim();
    let q = queries(64, dim);
    let chosen = router
        .route_batch(&FeatureBatch::new(&q, dim).unwrap(), &Objective::new(1.0))
        .unwrap();
    writeln!(out, "\nready {}", chosen.len()).unwrap();
    out.flush().unwrap();
    while input.read_line(&mut line).unwrap() > 0 {}
}

/// The sum over `workers` processes of how much their PSS grew from opening the router at
/// `path` (`mode` "mmap" or "load") and routing with it, all of them alive at once.
#[cfg(target_os = "linux")]
fn workers_pss_growth(path: &std::path::Path, mode: &str, workers: usize) -> u64 {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    struct Kill(Vec<std::process::Child>);
    impl Drop for Kill {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut kids = Kill(
        (0..workers)
            .map(|_| {
                Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "mapped_router_worker",
                        "--ignored",
                        "--nocapture",
                    ])
                    .args(["--test-threads", "1"])
                    .env(
                        "POINTSMAN_MMAP_WORKER",
                        format!("{mode}:{}", path.display()),
                    )
                    .env("RAYON_NUM_THREADS", "1")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    let mut outs: Vec<_> = kids
        .0
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().unwrap()))
        .collect();
    let wait_for = |outs: &mut Vec<BufReader<std::process::ChildStdout>>, word: &str| {
        for o in outs.iter_mut() {
            let mut line = String::new();
            loop {
                line.clear();
                assert!(o.read_line(&mut line).unwrap() > 0, "a worker ended early");
                if line.contains(word) {
                    break;
                }
            }
        }
    };
    wait_for(&mut outs, "started");
    let before: u64 = kids.0.iter().map(|c| pss(c.id())).sum();
    for c in &mut kids.0 {
        writeln!(c.stdin.as_mut().unwrap(), "open").unwrap();
    }
    wait_for(&mut outs, "ready");
    let after: u64 = kids.0.iter().map(|c| pss(c.id())).sum();
    after.saturating_sub(before)
}

/// 4 processes that open one large router memory-mapped grow in combined PSS by far less
/// than 4 processes that each load a private copy: the reference set is in memory once.
#[cfg(target_os = "linux")]
#[test]
fn mapped_routers_share_one_copy_per_host() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.router");
    // 32,768 rows of 384 floats: a 50 MiB reference set.
    let (n, dim) = (32_768, 384);
    write_large_router(&path, n, dim);
    let set = (n * dim * 4) as f64;
    let mapped = workers_pss_growth(&path, "mmap", 4) as f64;
    let private = workers_pss_growth(&path, "load", 4) as f64;
    eprintln!(
        "PSS growth of 4 processes: mapped {:.1} MiB, private copies {:.1} MiB \
         (reference set {:.1} MiB)",
        mapped / 1048576.0,
        private / 1048576.0,
        set / 1048576.0
    );
    // Private: 4 copies of the set and of its int8 prefilter (a quarter of it), per process.
    assert!(private > 4.0 * set, "{private} {set}");
    // Mapped: one copy of the set shared, the prefilters still private.
    assert!(
        mapped < 0.5 * private,
        "mapped {mapped} vs private {private}"
    );
    assert!(mapped < 2.5 * set, "mapped {mapped} vs the set {set}");
}

/// The figure: 8 processes sharing one 200,000-row kNN router (a 293 MiB reference
/// set) against 8 private copies. Ignored in the test command (it needs ~3.5 GiB and a
/// minute); run with `--ignored`, docs/benchmarks.md records the figure.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "a figure for docs/benchmarks.md: 8 × 200,000 rows, run by hand"]
fn mapped_routers_share_one_copy_per_host_at_scale() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.router");
    let (n, dim, workers) = (200_000, 384, 8);
    write_large_router(&path, n, dim);
    let set = (n * dim * 4) as f64;
    let mapped = workers_pss_growth(&path, "mmap", workers) as f64;
    let private = workers_pss_growth(&path, "load", workers) as f64;
    eprintln!(
        "PSS growth of {workers} processes: mapped {:.1} MiB, private copies {:.1} MiB \
         (reference set {:.1} MiB)",
        mapped / 1048576.0,
        private / 1048576.0,
        set / 1048576.0
    );
    assert!(private > workers as f64 * set, "{private} {set}");
    assert!(
        mapped < 0.5 * private,
        "mapped {mapped} vs private {private}"
    );
}
