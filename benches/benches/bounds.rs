//! The machine's bounds the other benches are read against: one core's FMA throughput (the
//! ceiling of every matrix product: the embedder's projections, MF), and one core's streaming
//! read bandwidth from a buffer the size of a linear bandit's packed state (1.4 MB), of
//! llmrouter_dc's kNN matrix (8.4 MB) and from one far larger than the caches (the ceiling of an
//! exact kNN scan); and, where the CPU has AVX-512 BF16, `vdpbf16ps` streaming the packed state a
//! linear bandit reads per decision (the ceiling of `simd::quadratic_form` on nine 385 × 385
//! models).
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p pointsman-bench --bench bounds`: criterion prints the
//! throughput (elements/s = FLOP/s for `fma`, bytes/s for the streams).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Sum of a slice with eight independent accumulators (vectorised by the compiler): a read
/// stream limited by the memory level the slice lives in.
fn stream_sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; 32];
    let chunks = v.chunks_exact(32);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `n` rounds of 12 independent 8-lane fused multiply-adds (AVX2/FMA when the CPU has them).
#[cfg(target_arch = "x86_64")]
fn fma_rounds(n: u64) -> f32 {
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        unsafe { fma_rounds_avx2(n) }
    } else {
        fma_rounds_generic(n)
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_rounds(n: u64) -> f32 {
    fma_rounds_generic(n)
}

fn fma_rounds_generic(n: u64) -> f32 {
    let mut acc = [[1f32; 8]; 12];
    let (a, b) = (black_box(0.999_f32), black_box(1e-3_f32));
    for _ in 0..n {
        for r in acc.iter_mut() {
            for x in r.iter_mut() {
                *x = x.mul_add(a, b);
            }
        }
    }
    acc.iter().flatten().sum()
}

/// # Safety
///
/// The CPU supports AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_rounds_avx2(n: u64) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm256_set1_ps(black_box(0.999));
    let b = _mm256_set1_ps(black_box(1e-3));
    let mut acc = [_mm256_set1_ps(1.0); 12];
    for _ in 0..n {
        for r in acc.iter_mut() {
            *r = _mm256_fmadd_ps(*r, a, b);
        }
    }
    let mut out = [0f32; 8];
    let mut sum = _mm256_setzero_ps();
    for r in acc {
        sum = _mm256_add_ps(sum, r);
    }
    // SAFETY: `out` holds 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
    out.iter().sum()
}

/// Streams `v` (whole 64-byte blocks of `bfloat16` pairs) through `vdpbf16ps` into eight
/// accumulators: the instruction and memory bound of the bandits' quadratic forms, without
/// their bookkeeping.
///
/// # Safety
///
/// The CPU supports AVX-512F and AVX-512 BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bf16_dot_stream(v: &[u16]) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: every load reads one whole 64-byte block of `v`; the caller guarantees the CPU
    // features; `__m512bh` and `__m512i` are both 64 plain bytes.
    unsafe {
        let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(0x3F80_3F80));
        let mut acc = [_mm512_setzero_ps(); 8];
        for blocks in v.chunks_exact(8 * 32) {
            for (k, a) in acc.iter_mut().enumerate() {
                let w: __m512bh =
                    std::mem::transmute(_mm512_loadu_si512(blocks.as_ptr().add(32 * k).cast()));
                *a = _mm512_dpbf16_ps(*a, w, x);
            }
        }
        let mut sum = _mm512_setzero_ps();
        for a in acc {
            sum = _mm512_add_ps(sum, a);
        }
        _mm512_reduce_add_ps(sum)
    }
}

fn bench(c: &mut Criterion) {
    let rounds = 1_000_000u64;
    let mut group = c.benchmark_group("bounds");
    group.throughput(Throughput::Elements(rounds * 12 * 8 * 2));
    group.bench_function("fma", |b| b.iter(|| fma_rounds(black_box(rounds))));
    for (name, bytes) in [
        // Nine models' packed λ·A⁻¹ at p = 385 in bfloat16, what one linear-bandit decision
        // reads: its streaming floor on CPUs without AVX-512 BF16 (no `bf16dot` bound there).
        (
            "stream/1.4MB",
            9 * pointsman::simd::quadratic_form_len(385) * 2,
        ),
        ("stream/8.4MB", 5489 * 384 * 4),
        ("stream/512MB", 512 << 20),
    ] {
        let v = vec![1f32; bytes / 4];
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(name, |b| b.iter(|| stream_sum(black_box(&v))));
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16") {
        // Nine models' packed λ·A⁻¹ at p = 385 (what one linucb decision reads), one block per
        // cache line as in the routers (`simd::PackedForms`).
        #[derive(Clone, Copy)]
        #[repr(C, align(64))]
        struct Line([u16; 32]);
        let blocks = 9 * pointsman::simd::quadratic_form_len(385) / 32;
        let lines = vec![Line([0x3F80; 32]); blocks.next_multiple_of(8)];
        // SAFETY: `Line` is 64 bytes of `u16`s without padding; the slice borrows `lines`.
        let v =
            unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<u16>(), lines.len() * 32) };
        group.throughput(Throughput::Elements(blocks as u64));
        group.bench_function("bf16dot/bandit-state", |b| {
            // SAFETY: the CPU supports AVX-512F and AVX-512 BF16 (checked above).
            b.iter(|| unsafe { bf16_dot_stream(black_box(v)) })
        });
    } else {
        eprintln!("bounds/bf16dot: skipped (the CPU has no AVX-512 BF16)");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
