//! Many rows through one small matrix: `out[r] = M·x_r` for a `k × d` matrix `M` packed once
//! (the MF router's projection of the query embedding onto its latent factors).
//!
//! # Layout
//!
//! `M` is stored transposed in panels of [`PANEL`] = 16 output rows: panel `p` holds, for each
//! input column `i`, the 16 values `M[16p..16p+16, i]` (zero past `k`) — one 64-byte line per
//! column, one sequential stream per panel.
//!
//! # Arithmetic
//!
//! Every output is one chain of fused multiply-adds over the input columns in order,
//! `acc = fma(x_i, M[t, i], acc)` from `acc = 0`: the portable kernel (`f32::mul_add`, correctly
//! rounded everywhere) and the AVX2 + FMA kernel perform the same IEEE operations, so a row gets
//! the same bits on every CPU, alone or in a batch of any size. The AVX2 kernel keeps a tile of
//! up to 6 rows × 16 outputs (12 registers) in flight, so each panel line loaded feeds up to 12
//! multiply-adds and the chains hide the FMA latency; a single row takes two panels at once.

/// Output rows per panel.
const PANEL: usize = 16;
/// Rows of the widest tile.
const TILE_ROWS: usize = 6;

/// A `k × d` row-major matrix packed for [`PackedMatrix::apply`].
#[derive(Clone, PartialEq)]
pub struct PackedMatrix {
    k: usize,
    d: usize,
    panels: Vec<f32>,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("k", &self.k)
            .field("d", &self.d)
            .finish()
    }
}

impl PackedMatrix {
    /// Packs the row-major `k × d` `matrix`.
    ///
    /// # Panics
    ///
    /// When `matrix.len() != k * d`.
    pub fn new(matrix: &[f32], k: usize, d: usize) -> PackedMatrix {
        assert_eq!(matrix.len(), k * d, "matrix is not k × d");
        let count = k.div_ceil(PANEL);
        let mut panels = vec![0f32; count * d * PANEL];
        for (t, row) in matrix.chunks_exact(d.max(1)).take(k).enumerate() {
            let base = (t / PANEL) * d * PANEL + t % PANEL;
            for (i, &v) in row.iter().enumerate() {
                panels[base + i * PANEL] = v;
            }
        }
        PackedMatrix { k, d, panels }
    }

    /// Output rows `k`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Input columns `d`.
    pub fn d(&self) -> usize {
        self.d
    }

    /// `out[r·k + t] = Σ_i x[r·d + i]·M[t, i]` for every row `r` of the row-major `x`, each sum a
    /// chain of fused multiply-adds in column order (see the module documentation).
    ///
    /// # Panics
    ///
    /// When `x` does not hold whole rows of `d` values or `out` does not hold `k` values per row.
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        let n = if self.d == 0 {
            out.len().checked_div(self.k).unwrap_or(0)
        } else {
            assert_eq!(x.len() % self.d, 0, "x does not hold whole rows");
            x.len() / self.d
        };
        assert_eq!(out.len(), n * self.k, "out does not hold k values per row");
        if self.k == 0 || n == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked once by `fma`); the lengths are
            // checked above.
            return unsafe { x86::apply(self, x, n, out) };
        }
        portable(self, x, n, out)
    }
}

/// Whether the AVX2 + FMA kernel runs on this CPU ([`super::cpu::features`]).
fn fma() -> bool {
    let f = super::cpu::features();
    f.avx2 && f.fma
}

/// The reference kernel.
fn portable(m: &PackedMatrix, x: &[f32], n: usize, out: &mut [f32]) {
    let (k, d) = (m.k, m.d);
    for r in 0..n {
        let row = &x[r * d..(r + 1) * d];
        for t in 0..k {
            let panel = &m.panels[(t / PANEL) * d * PANEL..];
            let mut acc = 0f32;
            for (i, &v) in row.iter().enumerate() {
                acc = v.mul_add(panel[i * PANEL + t % PANEL], acc);
            }
            out[r * k + t] = acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{PackedMatrix, PANEL, TILE_ROWS};
    use std::arch::x86_64::*;

    /// `R` rows × `P` panels: `out = M·x` for those rows and panels.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2 and FMA; `x` holds `R` rows of `d` values at stride `d`; `panel`
    /// holds `P` consecutive panels of `d × 16` values; `out` holds `R` rows at stride `ldo`
    /// with `width` writable values each (`width ≤ 16·P`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const R: usize, const P: usize>(
        d: usize,
        x: *const f32,
        panel: *const f32,
        out: *mut f32,
        ldo: usize,
        width: usize,
    ) {
        // SAFETY: every read lies within the `R` rows of `x` and the `P` panels; every write
        // within the first `width` values of the `R` rows of `out` (the caller's contract).
        unsafe {
            let mut acc = [[[_mm256_setzero_ps(); 2]; P]; R];
            for i in 0..d {
                let mut b = [[_mm256_setzero_ps(); 2]; P];
                for (p, bp) in b.iter_mut().enumerate() {
                    let line = panel.add(p * d * PANEL + i * PANEL);
                    bp[0] = _mm256_loadu_ps(line);
                    bp[1] = _mm256_loadu_ps(line.add(8));
                }
                for (r, accr) in acc.iter_mut().enumerate() {
                    let a = _mm256_broadcast_ss(&*x.add(r * d + i));
                    for (accp, bp) in accr.iter_mut().zip(&b) {
                        accp[0] = _mm256_fmadd_ps(a, bp[0], accp[0]);
                        accp[1] = _mm256_fmadd_ps(a, bp[1], accp[1]);
                    }
                }
            }
            for (r, accr) in acc.iter().enumerate() {
                let mut line = [[0f32; PANEL]; P];
                for (l, accp) in line.iter_mut().zip(accr) {
                    _mm256_storeu_ps(l.as_mut_ptr(), accp[0]);
                    _mm256_storeu_ps(l.as_mut_ptr().add(8), accp[1]);
                }
                // `[[f32; 16]; P]` is `16·P` contiguous values.
                std::ptr::copy_nonoverlapping(line.as_ptr().cast::<f32>(), out.add(r * ldo), width);
            }
        }
    }

    /// The AVX2 + FMA version of [`PackedMatrix::apply`] over `n` rows.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2 and FMA; `x` holds `n` rows of `m.d` values and `out` `n` rows of
    /// `m.k` values.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn apply(m: &PackedMatrix, x: &[f32], n: usize, out: &mut [f32]) {
        let (k, d) = (m.k, m.d);
        assert!(
            x.len() >= n * d && out.len() >= n * k,
            "the lengths are checked by the caller"
        );
        let count = k.div_ceil(PANEL);
        let (x, panels, out) = (x.as_ptr(), m.panels.as_ptr(), out.as_mut_ptr());
        // SAFETY: each call below covers rows `r0..r0 + R ≤ n` and panels `p..p + P ≤ count`,
        // writing at most the `k − 16p` outputs that exist from panel `p` on.
        unsafe {
            if n == 1 {
                // One row: two panels at a time, four independent chains.
                let mut p = 0;
                while p + 2 <= count {
                    let w = (k - p * PANEL).min(2 * PANEL);
                    tile::<1, 2>(d, x, panels.add(p * d * PANEL), out.add(p * PANEL), k, w);
                    p += 2;
                }
                if p < count {
                    let w = k - p * PANEL;
                    tile::<1, 1>(d, x, panels.add(p * d * PANEL), out.add(p * PANEL), k, w);
                }
                return;
            }
            // A panel stays in L1 while every tile of rows passes over it.
            for p in 0..count {
                let w = (k - p * PANEL).min(PANEL);
                let panel = panels.add(p * d * PANEL);
                let mut r0 = 0;
                while r0 < n {
                    let rows = (n - r0).min(TILE_ROWS);
                    let (xr, o) = (x.add(r0 * d), out.add(r0 * k + p * PANEL));
                    match rows {
                        6 => tile::<6, 1>(d, xr, panel, o, k, w),
                        5 => tile::<5, 1>(d, xr, panel, o, k, w),
                        4 => tile::<4, 1>(d, xr, panel, o, k, w),
                        3 => tile::<3, 1>(d, xr, panel, o, k, w),
                        2 => tile::<2, 1>(d, xr, panel, o, k, w),
                        _ => tile::<1, 1>(d, xr, panel, o, k, w),
                    }
                    r0 += rows;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// The reference chain, straight from the unpacked matrix.
    fn chain(matrix: &[f32], d: usize, t: usize, x: &[f32]) -> f32 {
        x.iter()
            .zip(&matrix[t * d..(t + 1) * d])
            .fold(0f32, |acc, (a, b)| a.mul_add(*b, acc))
    }

    #[test]
    fn every_row_count_gives_the_reference_bits() {
        let mut rng = SplitMix64::new(21);
        for (k, d) in [
            (32, 384),
            (1, 1),
            (16, 7),
            (17, 5),
            (40, 33),
            (9, 64),
            (3, 0),
        ] {
            let matrix: Vec<f32> = (0..k * d).map(|_| rng.next_f64() as f32 - 0.5).collect();
            let packed = PackedMatrix::new(&matrix, k, d);
            assert_eq!((packed.k(), packed.d()), (k, d));
            for n in [1usize, 2, 5, 6, 7, 13] {
                let x: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
                let mut out = vec![f32::NAN; n * k];
                packed.apply(&x, &mut out);
                let mut reference = vec![f32::NAN; n * k];
                portable(&packed, &x, n, &mut reference);
                for r in 0..n {
                    let row = &x[r * d..(r + 1) * d];
                    let mut alone = vec![f32::NAN; k];
                    packed.apply(row, &mut alone);
                    for t in 0..k {
                        let want = chain(&matrix, d, t, row);
                        assert_eq!(out[r * k + t].to_bits(), want.to_bits(), "{k}×{d}, n {n}");
                        assert_eq!(reference[r * k + t].to_bits(), want.to_bits());
                        assert_eq!(alone[t].to_bits(), want.to_bits());
                        let exact: f64 = row
                            .iter()
                            .zip(&matrix[t * d..(t + 1) * d])
                            .map(|(a, b)| f64::from(*a) * f64::from(*b))
                            .sum();
                        assert!((f64::from(want) - exact).abs() < 1e-4 * (d as f64 + 1.0));
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "whole rows")]
    fn partial_rows_are_refused() {
        PackedMatrix::new(&[1.0; 6], 2, 3).apply(&[1.0; 4], &mut [0.0; 2]);
    }
}
