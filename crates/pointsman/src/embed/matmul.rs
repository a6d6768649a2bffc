//! Matrix products on pre-packed right-hand sides.
//!
//! `C[m, n] = bias + A[m, k] * B[k, n]` where B is stored as *panels* of
//! [`NR`] = 16 columns: panel `p` holds `B[kk, 16p..16p+16]` for `kk = 0..k`,
//! contiguous (zero-padded past `n`), i.e. one 64-byte line per k step and a
//! single sequential stream per panel. Projection weights are packed once at
//! load, so a call streams each weight exactly once (per row block) with no
//! per-call packing.
//!
//! AVX2/FMA micro-kernel: a 6 x 16 tile (12 ymm accumulators, the two 8-lane
//! halves of a panel), summing over k in order starting from the bias. Rows are
//! split into balanced tiles (13 rows -> 5 + 4 + 4, never a 1-row tile that
//! would be FMA-latency bound), row blocks are sized to keep the A block in L2,
//! and the next panels are software-prefetched into L2, the prefetches spread
//! over the tiles that share a panel so weight streaming (the bottleneck for
//! short inputs, ~42 MB per forward) stays even over time.

use std::ops::Range;

use super::kernels::{gelu_f32, isa, Isa};

/// Panel width (columns).
pub(crate) const NR: usize = 16;
/// Rows of the wide (6 x 16) micro-kernel.
const MR: usize = 6;

pub(crate) fn panels(n: usize) -> usize {
    n.div_ceil(NR)
}

/// Packs `B[k, n]` (element (kk, j) at `b[kk * rs + j * cs]`) into panels,
/// reusing `out`'s allocation.
pub(crate) fn pack(b: &[f32], k: usize, n: usize, rs: usize, cs: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(packed_len(k, n), 0.0);
    pack_into(b, k, n, rs, cs, out);
}

/// Floats needed for the packed panels of a `k x n` matrix.
pub(crate) fn packed_len(k: usize, n: usize) -> usize {
    panels(n) * k * NR
}

/// Packs into `dst` (`packed_len(k, n)` floats, zero-filled by the caller).
fn pack_into(b: &[f32], k: usize, n: usize, rs: usize, cs: usize, dst: &mut [f32]) {
    for p in 0..panels(n) {
        let dst = &mut dst[p * k * NR..(p + 1) * k * NR];
        let j0 = p * NR;
        let w = NR.min(n - j0);
        if cs == 1 {
            for kk in 0..k {
                let s = kk * rs + j0;
                dst[kk * NR..kk * NR + w].copy_from_slice(&b[s..s + w]);
            }
        } else {
            for j in 0..w {
                let col = (j0 + j) * cs;
                for kk in 0..k {
                    dst[kk * NR + j] = b[col + kk * rs];
                }
            }
        }
    }
}

const HUGE_PAGE: usize = 2 << 20;

/// One zero-initialised f32 buffer for all packed weights of a model, 2 MiB
/// aligned and (Linux) advised for transparent huge pages: a forward streams
/// ~42 MB of weights, and 4 KiB pages make that TLB-miss bound (measured: a
/// 13-row projection streaming from memory runs ~15% faster on huge pages).
pub(crate) struct Arena {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl Arena {
    pub(crate) fn new(len: usize) -> Arena {
        // `vec![0.0; n]` is calloc'd: the pages are untouched until packing
        // writes them, so the advice below applies from the first fault.
        let buf = vec![0f32; len + HUGE_PAGE / 4];
        let off = buf.as_ptr().align_offset(HUGE_PAGE).min(HUGE_PAGE / 4);
        #[cfg(target_os = "linux")]
        if len > 0 {
            // SAFETY: the range lies inside `buf`; madvise only changes paging
            // policy (a failure is harmless and ignored).
            unsafe {
                libc::madvise(
                    buf.as_ptr().add(off) as *mut libc::c_void,
                    len * 4,
                    libc::MADV_HUGEPAGE,
                )
            };
        }
        Arena { buf, off, len }
    }

    fn slice(&self, start: usize, len: usize) -> &[f32] {
        assert!(start + len <= self.len);
        &self.buf[self.off + start..self.off + start + len]
    }

    fn slice_mut(&mut self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.len);
        &mut self.buf[self.off + start..self.off + start + len]
    }
}

/// A linear layer `y = x * W^T + b` with W packed (into an [`Arena`]) for [`gemm`].
pub(crate) struct PackedLinear {
    pub k: usize,
    pub n: usize,
    /// Offset of the packed panels in the arena.
    off: usize,
    /// Bias padded to `panels(n) * NR`.
    bias: Vec<f32>,
}

impl PackedLinear {
    /// Arena floats needed for an `n x k` weight.
    pub(crate) fn arena_len(n: usize, k: usize) -> usize {
        packed_len(k, n)
    }

    /// Packs a PyTorch `Linear` weight (row-major `[n, k]`) into `arena` at
    /// `*cursor` and advances the cursor.
    pub(crate) fn new_in(
        arena: &mut Arena,
        cursor: &mut usize,
        w: &[f32],
        bias: &[f32],
        n: usize,
        k: usize,
    ) -> PackedLinear {
        assert_eq!(w.len(), n * k);
        assert_eq!(bias.len(), n);
        let len = packed_len(k, n);
        // B = W^T: element (kk, j) = w[j * k + kk].
        pack_into(w, k, n, 1, k, arena.slice_mut(*cursor, len));
        let off = *cursor;
        *cursor += len;
        let mut b = bias.to_vec();
        b.resize(self::panels(n) * NR, 0.0);
        PackedLinear { k, n, off, bias: b }
    }

    pub(crate) fn panel_count(&self) -> usize {
        panels(self.n)
    }

    /// `y[m, n] = x[m, k] * W^T + b` over the panels in `range` (all rows).
    ///
    /// # Safety
    /// `x` valid for `m * k` reads, `y` for `m * n` writes; concurrent calls must
    /// use disjoint panel ranges; `arena` is the one the weight was packed into.
    pub(crate) unsafe fn apply_raw(
        &self,
        arena: &Arena,
        x: *const f32,
        m: usize,
        y: *mut f32,
        range: Range<usize>,
        gelu: bool,
    ) {
        // SAFETY: the caller upholds this function's contract (its `# Safety` section).
        unsafe {
            let b = arena.slice(self.off, packed_len(self.k, self.n));
            gemm(
                m,
                self.n,
                self.k,
                x,
                self.k,
                b,
                Some(&self.bias),
                y,
                self.n,
                range,
                gelu,
            );
        }
    }
}

/// Rows per cache block: keep the A block (rows x k floats) around 192 KiB so it
/// stays in L2 while the panels stream by.
fn row_block(k: usize) -> usize {
    let rows = (192 * 1024 / 4) / k.max(1);
    (rows / MR * MR).clamp(MR, 32 * MR)
}

/// Splits `m` rows into the fewest tiles of at most `max` rows, sizes as even
/// as possible (a 13-row input becomes one tile, 20 rows two tiles of 10).
fn balanced_tiles(m: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let n = m.div_ceil(max).max(1);
    (0..n).map(move |i| (m * i / n, m * (i + 1) / n - m * i / n))
}

/// `C = bias + A * B` for the column panels in `prange`; with `gelu`, GELU is
/// applied to each output tile while it is still in L1.
///
/// # Safety
/// `a` valid for rows `0..m` of stride `lda` and `k` columns, `b` holds packed
/// panels for `k` rows and at least `prange.end` panels, `c` valid for `m` rows
/// of stride `ldc` and `n` columns; `bias` has `panels(n) * NR` entries.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: &[f32],
    bias: Option<&[f32]>,
    c: *mut f32,
    ldc: usize,
    prange: Range<usize>,
    gelu: bool,
) {
    // SAFETY: the caller upholds this function's contract (its `# Safety` section).
    unsafe {
        debug_assert!(b.len() >= prange.end * k * NR);
        debug_assert!(bias.is_none_or(|bb| bb.len() >= panels(n) * NR));
        if m == 0 || prange.is_empty() {
            return;
        }
        let bias = bias.map_or(std::ptr::null(), |b| b.as_ptr());
        #[cfg(target_arch = "x86_64")]
        {
            if isa() == Isa::Avx2Fma {
                return avx2::gemm(m, n, k, a, lda, b.as_ptr(), bias, c, ldc, prange, gelu);
            }
        }
        generic_gemm(m, n, k, a, lda, b.as_ptr(), bias, c, ldc, prange, gelu)
    }
}

/// Portable version of [`gemm`].
///
/// # Safety
///
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn generic_gemm(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
    prange: Range<usize>,
    gelu: bool,
) {
    // SAFETY: the caller upholds this function's contract (its `# Safety` section).
    unsafe {
        let mb = row_block(k);
        let mut row0 = 0;
        while row0 < m {
            let rows = mb.min(m - row0);
            for p in prange.clone() {
                let bp = b.add(p * k * NR);
                let w = NR.min(n - p * NR);
                for i in row0..row0 + rows {
                    let mut acc = [0f32; NR];
                    if !bias.is_null() {
                        for (j, v) in acc.iter_mut().enumerate() {
                            *v = *bias.add(p * NR + j);
                        }
                    }
                    let ar = a.add(i * lda);
                    for kk in 0..k {
                        let av = *ar.add(kk);
                        let br = bp.add(kk * NR);
                        for (j, v) in acc.iter_mut().enumerate() {
                            *v += av * *br.add(j);
                        }
                    }
                    for (j, &v) in acc.iter().enumerate().take(w) {
                        *c.add(i * ldc + p * NR + j) = if gelu { gelu_f32(v) } else { v };
                    }
                }
            }
            row0 += rows;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{balanced_tiles, gelu_f32, row_block, MR, NR};

    /// 8-lane column groups per panel.
    const C: usize = NR / 8;

    /// `R` rows x 16 columns tile: `c = bias + a * b` with `b` a packed panel;
    /// prefetches `pf` floats ahead in the panel stream.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2 and FMA; `a` holds `R` rows of `k` floats at stride `lda`, `b` a
    /// packed `k x 16` panel, `bias` 16 floats, and `c` `R` rows of 16 writable floats at its
    /// stride.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize>(
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
        w: usize,
        pf: usize,
        pf_phase: usize,
        pf_period: usize,
    ) {
        // SAFETY: the caller upholds this function's contract (its `# Safety` section).
        unsafe {
            let mut init = [_mm256_setzero_ps(); C];
            if !bias.is_null() {
                for (j, v) in init.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(bias.add(j * 8));
                }
            }
            let mut acc = [init; R];
            let mut rows = [a; R];
            for (r, p) in rows.iter_mut().enumerate() {
                *p = a.add(r * lda);
            }
            let mut kk = 0;
            let mut countdown = pf_phase;
            while kk + 2 <= k {
                // Prefetch `pf` floats ahead (the next panel) every `pf_period`
                // iterations, starting at `pf_phase`, so the tiles sharing a panel
                // split the next panel's lines between them and memory traffic
                // stays even over time.
                //
                // The hint is T1 (into L2, not L1). With T0 the weight stream of a
                // 13-row input stayed near 8 GB/s on a Zen 4 (perf_probe below),
                // most likely because a line prefetched from memory into L1 holds
                // one of L1's few miss buffers for the whole memory latency; with
                // T1 the short-prompt forward ran 1.36-1.38x faster there
                // (docs/benchmarks.md). The next panel (24 KB) fits L2 many times
                // over, and the tiles' loads find it there.
                if countdown == 0 {
                    // A panel row (NR = 16 floats) is one 64-byte line.
                    _mm_prefetch::<_MM_HINT_T1>(b.add(kk * NR + pf) as *const i8);
                    _mm_prefetch::<_MM_HINT_T1>(b.add((kk + 1) * NR + pf) as *const i8);
                    countdown = pf_period;
                }
                countdown -= 1;
                for u in 0..2 {
                    let mut bv = [_mm256_setzero_ps(); C];
                    for (j, v) in bv.iter_mut().enumerate() {
                        *v = _mm256_loadu_ps(b.add((kk + u) * NR + j * 8));
                    }
                    for r in 0..R {
                        let av = _mm256_broadcast_ss(&*rows[r].add(kk + u));
                        for j in 0..C {
                            acc[r][j] = _mm256_fmadd_ps(av, bv[j], acc[r][j]);
                        }
                    }
                }
                kk += 2;
            }
            if kk < k {
                let mut bv = [_mm256_setzero_ps(); C];
                for (j, v) in bv.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(b.add(kk * NR + j * 8));
                }
                for r in 0..R {
                    let av = _mm256_broadcast_ss(&*rows[r].add(kk));
                    for j in 0..C {
                        acc[r][j] = _mm256_fmadd_ps(av, bv[j], acc[r][j]);
                    }
                }
            }
            if w == C * 8 {
                for (r, accr) in acc.iter().enumerate() {
                    let cr = c.add(r * ldc);
                    for (j, v) in accr.iter().enumerate() {
                        _mm256_storeu_ps(cr.add(j * 8), *v);
                    }
                }
            } else {
                let mut tmp = [0f32; NR];
                for (r, accr) in acc.iter().enumerate() {
                    for (j, v) in accr.iter().enumerate() {
                        _mm256_storeu_ps(tmp.as_mut_ptr().add(j * 8), *v);
                    }
                    std::ptr::copy_nonoverlapping(tmp.as_ptr(), c.add(r * ldc), w);
                }
            }
        }
    }

    macro_rules! dispatch_rows {
        ($r:expr, [$($n:literal),*], $args:tt) => {
            match $r {
                $($n => tile::<$n> $args,)*
                _ => unreachable!(),
            }
        };
    }

    /// The AVX2/FMA version of [`super::gemm`].
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2 and FMA, and the pointers are as [`super::gemm`] requires.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn gemm(
        m: usize,
        n: usize,
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
        prange: Range<usize>,
        gelu: bool,
    ) {
        // SAFETY: the caller upholds this function's contract (its `# Safety` section).
        unsafe {
            let panel = k * NR;
            let bias_at = |p: usize| {
                if bias.is_null() {
                    bias
                } else {
                    bias.add(p * NR)
                }
            };
            let mb = row_block(k);
            let mut row0 = 0;
            while row0 < m {
                let rows_blk = mb.min(m - row0);
                for p in prange.clone() {
                    let bp = b.add(p * panel);
                    let w = NR.min(n - p * NR);
                    let tiles = rows_blk.div_ceil(MR);
                    for (t, (r0, r)) in balanced_tiles(rows_blk, MR).enumerate() {
                        let i = row0 + r0;
                        let (ai, ci) = (a.add(i * lda), c.add(i * ldc + p * NR));
                        dispatch_rows!(
                            r,
                            [1, 2, 3, 4, 5, 6],
                            (k, ai, lda, bp, bias_at(p), ci, ldc, w, panel, t, tiles)
                        );
                        if gelu {
                            for rr in 0..r {
                                for v in std::slice::from_raw_parts_mut(ci.add(rr * ldc), w) {
                                    *v = gelu_f32(*v);
                                }
                            }
                        }
                    }
                }
                row0 += rows_blk;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias[j] as f64;
                for kk in 0..k {
                    s += a[i * k + kk] as f64 * w[j * k + kk] as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    /// A random `m x k` input, an `n x k` weight and a bias (seeded), and the input multiplied
    /// through the packed weight by [`PackedLinear::apply_raw`] (all panels, one call).
    struct Case {
        a: Vec<f32>,
        w: Vec<f32>,
        bias: Vec<f32>,
        y: Vec<f32>,
        arena: Arena,
        lin: PackedLinear,
    }

    fn random_case(seed: &mut u64, m: usize, n: usize, k: usize, gelu: bool) -> Case {
        let mut rnd = || {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let a: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
        let w: Vec<f32> = (0..n * k).map(|_| rnd()).collect();
        let bias: Vec<f32> = (0..n).map(|_| rnd()).collect();
        let mut arena = Arena::new(PackedLinear::arena_len(n, k));
        let lin = PackedLinear::new_in(&mut arena, &mut 0, &w, &bias, n, k);
        let mut y = vec![f32::NAN; m * n];
        // SAFETY: `a` holds m x k floats and `y` m x n; one call covers every panel.
        unsafe {
            lin.apply_raw(
                &arena,
                a.as_ptr(),
                m,
                y.as_mut_ptr(),
                0..lin.panel_count(),
                gelu,
            )
        };
        Case {
            a,
            w,
            bias,
            y,
            arena,
            lin,
        }
    }

    #[test]
    fn packed_linear_matches_naive() {
        let mut seed = 12345u64;
        for &(m, n, k) in &[
            (1, 16, 8),
            (13, 40, 37),
            (7, 5, 3),
            (200, 33, 70),
            (6, 16, 1500),
            (28, 24, 9),
            (29, 23, 10),
            (20, 8, 384),
            (2, 1, 1),
        ] {
            let Case {
                a,
                w,
                bias,
                y,
                arena,
                lin,
            } = random_case(&mut seed, m, n, k, false);
            let want = naive(m, n, k, &a, &w, &bias);
            for (g, e) in y.iter().zip(&want) {
                assert!((g - e).abs() < 1e-4, "{m}x{n}x{k}: {g} vs {e}");
            }
            let mut y2 = vec![f32::NAN; m * n];
            let b = arena.slice(0, packed_len(k, n));
            unsafe {
                generic_gemm(
                    m,
                    n,
                    k,
                    a.as_ptr(),
                    k,
                    b.as_ptr(),
                    lin.bias.as_ptr(),
                    y2.as_mut_ptr(),
                    n,
                    0..lin.panel_count(),
                    false,
                )
            };
            for (g, e) in y2.iter().zip(&want) {
                assert!((g - e).abs() < 1e-4, "generic {m}x{n}x{k}: {g} vs {e}");
            }
        }
    }

    /// The AVX2 kernel computes each output as one chain of fused multiply-adds over k in
    /// order, starting from the bias, however the rows are tiled: the same bits as this scalar
    /// chain, so a change of tiling or blocking cannot move an embedding unnoticed.
    #[test]
    fn avx2_gemm_is_the_scalar_fma_chain_bit_for_bit() {
        if isa() != Isa::Avx2Fma {
            return;
        }
        let mut seed = 99u64;
        for &(m, n, k, gelu) in &[
            (13, 40, 1536, false),
            (13, 48, 1536, true),
            (7, 17, 257, true),
            (31, 33, 600, false),
            (1, 16, 256, false),
            (40, 24, 384, true),
        ] {
            let Case { a, w, bias, y, .. } = random_case(&mut seed, m, n, k, gelu);
            for i in 0..m {
                for j in 0..n {
                    let mut acc = bias[j];
                    for kk in 0..k {
                        acc = a[i * k + kk].mul_add(w[j * k + kk], acc);
                    }
                    let want = if gelu { gelu_f32(acc) } else { acc };
                    assert_eq!(
                        y[i * n + j].to_bits(),
                        want.to_bits(),
                        "{m}x{n}x{k} (gelu {gelu}) at ({i}, {j})"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod perf_probe {
    use super::*;

    fn cpu() -> f64 {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid timespec to write into.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    }

    /// Manual probe: `cargo test --release --lib perf_probe -- --ignored --nocapture`.
    /// Thread CPU time per `m x 1536 x 384` projection, weights in cache vs
    /// streamed from memory (18 different matrices, 42 MB, like one forward).
    #[test]
    #[ignore]
    fn small_m_streaming_vs_cached() {
        let (n, k) = (1536, 384);
        let mut arena = Arena::new(18 * PackedLinear::arena_len(n, k));
        let mut cursor = 0;
        let mats: Vec<PackedLinear> = (0..18)
            .map(|s| {
                let w: Vec<f32> = (0..n * k)
                    .map(|i| ((i * 7 + s) % 13) as f32 * 0.01)
                    .collect();
                PackedLinear::new_in(&mut arena, &mut cursor, &w, &vec![0.0; n], n, k)
            })
            .collect();
        for m in [1usize, 3, 6, 13, 20, 40, 128] {
            let x: Vec<f32> = (0..m * k).map(|i| (i % 5) as f32).collect();
            let mut y = vec![0f32; m * n];
            for (label, count) in [
                ("cached (1 matrix, 2.4MB)", 1usize),
                ("streaming (18 matrices, 42MB)", 18),
            ] {
                let reps = 400;
                let t = cpu();
                for r in 0..reps {
                    let l = &mats[r % count];
                    unsafe {
                        l.apply_raw(
                            &arena,
                            x.as_ptr(),
                            m,
                            y.as_mut_ptr(),
                            0..l.panel_count(),
                            false,
                        )
                    };
                }
                let dt = (cpu() - t) / reps as f64;
                let gf = 2.0 * (m * n * k) as f64 / dt / 1e9;
                let gb = (n * k * 4) as f64 / dt / 1e9;
                println!(
                    "m={m:4} {label:32} {:8.1} us/call  {gf:6.1} GFLOP/s  {gb:6.1} GB/s weights",
                    dt * 1e6
                );
            }
        }
    }

    /// Manual probe: `cargo test --release --lib perf_probe -- --ignored --nocapture`.
    /// Thread CPU time of each projection shape of a MiniLM layer (QKV, attention output,
    /// feed-forward in and out) at the row counts of a short prompt, a long one and a chat
    /// batch, weights in cache: the median of seven timings, in GFLOP/s.
    #[test]
    #[ignore]
    fn layer_shapes() {
        for (name, n, k) in [
            ("qkv 384->1152", 1152usize, 384usize),
            ("out 384->384", 384, 384),
            ("ff1 384->1536", 1536, 384),
            ("ff2 1536->384", 384, 1536),
        ] {
            let mut arena = Arena::new(PackedLinear::arena_len(n, k));
            let w: Vec<f32> = (0..n * k).map(|i| (i % 13) as f32 * 0.01).collect();
            let lin = PackedLinear::new_in(&mut arena, &mut 0, &w, &vec![0.0; n], n, k);
            for m in [13usize, 173, 373] {
                let x: Vec<f32> = (0..m * k).map(|i| (i % 5) as f32).collect();
                let mut y = vec![0f32; m * n];
                let reps = (2_000_000_000 / (2 * m * n * k)).max(3);
                let mut times: Vec<f64> = (0..7)
                    .map(|_| {
                        let t = cpu();
                        for _ in 0..reps {
                            unsafe {
                                lin.apply_raw(
                                    &arena,
                                    x.as_ptr(),
                                    m,
                                    y.as_mut_ptr(),
                                    0..lin.panel_count(),
                                    false,
                                )
                            };
                        }
                        (cpu() - t) / reps as f64
                    })
                    .collect();
                times.sort_by(f64::total_cmp);
                let t = times[times.len() / 2];
                let gf = 2.0 * (m * n * k) as f64 / t / 1e9;
                println!("{name:14} m={m:4} {:9.1} us/call {gf:6.1} GFLOP/s", t * 1e6);
            }
        }
    }
}
