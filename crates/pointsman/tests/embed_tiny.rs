#![cfg(feature = "embed")]
//! The lean forward (packed batches, fused kernels) against a naive f64
//! padded-and-masked reference on a tiny random-weight BERT; padded batch vs
//! single texts; tokenizer padding/truncation switched off.

mod common;

use common::tiny;
use pointsman::embed::{Embedder, EmbedderOptions, TokenInfo};

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pointsman-embed-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const TEXTS: &[&str] = &[
    "the cat sat on the mat.",
    "a dog",
    "",
    "Running dogs!",
    "the big red ball is on the mat, and the cat sat on a dog.",
    "xyz cat",
    "a",
];

#[test]
fn lean_forward_matches_naive_reference() {
    let dir = tmpdir("tiny");
    tiny::write_model(&dir, 7);
    for threads in [1, 2] {
        let e = Embedder::load(
            &dir,
            &EmbedderOptions {
                threads,
                max_tokens: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(e.dim(), tiny::HIDDEN);
        assert_eq!(e.threads(), threads);
        assert_eq!(e.max_tokens(), 10);
        assert!(
            e.model_name().starts_with("pointsman-embed-tiny"),
            "{}",
            e.model_name()
        );
        // Tokenizer: padding and truncation baked into tokenizer.json are off.
        assert_eq!(
            e.tokenize("the cat sat on the mat.").unwrap(),
            vec![2, 5, 6, 7, 8, 5, 9, 18, 3]
        );
        assert_eq!(e.tokenize("").unwrap(), vec![2, 3]);
        assert_eq!(
            e.tokenize("running dogs").unwrap(),
            vec![2, 13, 14, 11, 12, 3]
        );
        assert_eq!(e.tokenize("xyz").unwrap(), vec![2, 1, 3]);
        let long = e.tokenize(TEXTS[4]).unwrap();
        assert_eq!(long.len(), 10);
        assert_eq!(long[9], 3);

        let ids: Vec<Vec<u32>> = TEXTS.iter().map(|t| e.tokenize(t).unwrap()).collect();
        let want = tiny::reference_forward(7, &ids);
        let (batch, info) = e.embed(TEXTS).unwrap();
        assert_eq!(
            info[4],
            TokenInfo {
                tokens: 19,
                truncated: true
            }
        );
        assert_eq!(
            info[2],
            TokenInfo {
                tokens: 2,
                truncated: false
            }
        );
        let mut worst = 0f32;
        for (i, w) in want.iter().enumerate() {
            let got = &batch[i * tiny::HIDDEN..(i + 1) * tiny::HIDDEN];
            let d = common::max_abs_diff(got, w);
            worst = worst.max(d);
            assert!(
                d < 2e-6,
                "text {i} {:?}: lean vs naive max abs diff {d}",
                TEXTS[i]
            );
            let (single, _) = e.embed(&[TEXTS[i]]).unwrap();
            let ds = common::max_abs_diff(&single, got);
            assert!(ds < 1e-6, "text {i}: single vs batch max abs diff {ds}");
        }
        eprintln!("tiny model, threads {threads}: lean vs naive max abs diff {worst:.2e}");
        // The naive reference itself: padded batch == one sequence at a time.
        for (i, s) in ids.iter().enumerate() {
            let alone = tiny::reference_forward(7, std::slice::from_ref(s));
            assert!(common::max_abs_diff(&alone[0], &want[i]) < 1e-6);
        }
        // Many texts (several chunks, input order kept).
        let many: Vec<&str> = (0..300).map(|i| TEXTS[(i * 5) % TEXTS.len()]).collect();
        let (out, _) = e.embed(&many).unwrap();
        for (i, t) in many.iter().enumerate() {
            let k = TEXTS.iter().position(|x| x == t).unwrap();
            let d = common::max_abs_diff(
                &out[i * tiny::HIDDEN..(i + 1) * tiny::HIDDEN],
                &batch[k * tiny::HIDDEN..(k + 1) * tiny::HIDDEN],
            );
            assert!(d < 1e-6, "many[{i}] differs by {d}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn concurrent_calls_share_one_embedder() {
    let dir = tmpdir("tiny-conc");
    tiny::write_model(&dir, 11);
    let e = Embedder::load(
        &dir,
        &EmbedderOptions {
            threads: 2,
            max_tokens: 16,
            ..Default::default()
        },
    )
    .unwrap();
    let (want, _) = e.embed(TEXTS).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..20 {
                    let (got, _) = e.embed(TEXTS).unwrap();
                    assert!(common::max_abs_diff(&got, &want) < 1e-6);
                }
            });
        }
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The CPUs a `Cpus_allowed_list` line names ("0-1,4").
#[cfg(target_os = "linux")]
fn cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus
}

/// `(thread name, allowed CPUs)` of every thread of this process.
#[cfg(target_os = "linux")]
fn threads_and_cpus() -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("status")),
        ) else {
            continue; // a thread that ended meanwhile
        };
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(cpu_list)
            .unwrap_or_default();
        out.push((comm.trim().to_string(), allowed));
    }
    out
}

#[cfg(target_os = "linux")]
#[test]
fn pinned_threads_run_one_to_a_cpu_and_embed_the_same() {
    use pointsman::embed::Pinning;
    let dir = tmpdir("tiny-pin");
    tiny::write_model(&dir, 13);
    let load = |pinning| {
        Embedder::load(
            &dir,
            &EmbedderOptions {
                threads: 2,
                max_tokens: 16,
                pinning,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let free = load(Pinning::Never);
    assert!(!free.pinned());
    let pinned = load(Pinning::Always);
    assert!(pinned.pinned());
    // Where the threads run changes nothing in what they compute.
    let (want, _) = free.embed(TEXTS).unwrap();
    let (got, _) = pinned.embed(TEXTS).unwrap();
    assert_eq!(got, want);
    // Thread i is allowed only the i-th CPU this process may use (cycling), as the kernel
    // reports it. The kernel cuts thread names to 15 bytes ("pointsman-embed"), and other
    // tests' pools carry the same names: among them, one thread must be allowed each CPU alone.
    let process = cpu_list(
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap(),
    );
    // A worker pins itself as it starts: give a slow-starting one up to 2 s.
    let pinned_to = |cpu: usize, threads: &[(String, Vec<usize>)]| {
        threads
            .iter()
            .any(|(n, cpus)| n.starts_with("pointsman-embed") && *cpus == [cpu])
    };
    for i in 0..2 {
        let cpu = process[i % process.len()];
        let mut threads = threads_and_cpus();
        for _ in 0..200 {
            if pinned_to(cpu, &threads) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            threads = threads_and_cpus();
        }
        assert!(
            pinned_to(cpu, &threads),
            "no embedder thread pinned to CPU {cpu}: {threads:?}"
        );
    }
    drop((free, pinned));
    std::fs::remove_dir_all(&dir).unwrap();
}
