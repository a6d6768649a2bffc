use super::chunks::{plan_chunks, plan_padded_chunks};
use super::*;

#[test]
fn chunk_plan_covers_all_and_respects_budget() {
    let lens: Vec<usize> = (0..100).map(|i| 2 + (i * 37) % 255).collect();
    for threads in [1, 2, 3] {
        let chunks = plan_chunks(&lens, threads);
        let mut seen: Vec<usize> = chunks.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        if threads > 1 {
            assert_eq!(chunks.len() % threads, 0);
        }
        for c in &chunks {
            let t: usize = c.iter().map(|&i| lens[i]).sum();
            assert!(t <= CHUNK_TOKENS + 256, "{t}");
        }
    }
    assert_eq!(plan_chunks(&[5], 2), vec![vec![0]]);
    assert_eq!(plan_chunks(&[5, 9], 4).len(), 2);
}

#[test]
fn padded_plan_covers_all_and_respects_budget() {
    let lens: Vec<usize> = (0..100).map(|i| 2 + (i * 37) % 255).collect();
    let chunks = plan_padded_chunks(&lens);
    let mut seen: Vec<usize> = chunks.iter().flatten().copied().collect();
    seen.sort();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
    for c in &chunks {
        let longest = c.iter().map(|&i| lens[i]).max().unwrap();
        assert_eq!(longest, lens[c[0]]);
        assert!(c.len() == 1 || c.len() * longest <= CHUNK_TOKENS);
    }
    assert_eq!(plan_padded_chunks(&[3, 9, 5]), vec![vec![1, 2, 0]]);
    assert_eq!(plan_padded_chunks(&[2000, 3]), vec![vec![0], vec![1]]);
    assert!(plan_padded_chunks(&[]).is_empty());
}

#[test]
fn embedder_is_send_sync() {
    fn f<T: Send + Sync>() {}
    f::<Embedder>();
}

#[test]
fn pinning_plan() {
    use super::Pinning;
    let two = [10usize, 11];
    // Auto: only when the pool fills every allowed CPU.
    assert_eq!(Pinning::Auto.plan(2, true, &two), vec![10, 11]);
    assert!(Pinning::Auto.plan(1, true, &two).is_empty());
    assert!(Pinning::Auto.plan(4, true, &two).is_empty());
    assert!(Pinning::Auto.plan(2, true, &[0usize, 1, 2, 3]).is_empty());
    assert!(Pinning::Auto.plan(1, true, &[7usize]).is_empty());
    // Always pins any pool (thread i to cpus[i % len] at start); Never and no pool never do.
    assert_eq!(Pinning::Always.plan(3, true, &two), vec![10, 11]);
    assert_eq!(Pinning::Always.plan(1, true, &two), vec![10, 11]);
    assert!(Pinning::Always.plan(2, false, &two).is_empty());
    assert!(Pinning::Never.plan(2, true, &two).is_empty());
    // An unknown affinity mask pins nothing.
    assert!(Pinning::Always.plan(2, true, &[] as &[usize]).is_empty());
}
