//! Exact prefilter for the kNN scan: an `int8` copy of the reference matrix with a guaranteed
//! error bound, so that one query reads a quarter of the bytes of the `f32` scan and re-ranks
//! only the rows that can still be among its neighbours, with the `f32` kernel of the full scan.
//! The neighbours, their similarities (bit for bit) and their order are those of the full scan.
//!
//! # Codes
//!
//! Built from the stored (normalised) rows when the router is assembled — fitted, loaded or
//! reconfigured; never saved. Row `i` gets the scale `s_i = max_j |x_ij| / 127` and the codes
//! `x̂_ij = round(x_ij / s_i) ∈ [−127, 127]`, stored as `x̂_ij + 128 ∈ [1, 255]` (`u8`: one
//! layout for every kernel), rows padded to `d′` (a multiple of 64); `x̃_i = s_i x̂_i` is its
//! approximation. A query `q` (already normalised, as the full scan sees it) gets
//! `s_q = max_j |q_j| / Q` and `q̂_j = round(q_j / s_q) ∈ [−Q, Q]` as `i16`, with
//! `Q = min(16383, ⌊(2³¹ − 1) / (255 · d′)⌋)`, so that `|Σ_j (x̂_ij + 128) q̂_j| < 2³¹` and
//! `q̂ = 128·hi + lo` with `hi`, `lo` bytes (the VNNI kernel's operands). Every kernel computes
//! that sum exactly (the portable and AVX2 ones without overflow, the VNNI one modulo 2³², which
//! is exact since the result fits), and `I_i = Σ_j x̂_ij q̂_j` is it minus `128 Σ_j q̂_j`.
//!
//! # Bound
//!
//! Let `ŝ_i` be the similarity the full scan computes (`simd::dot` in `f32`), `s_i = x_i · q` the
//! exact real dot of the same `f32` vectors and `a_i = s_i s_q I_i = x̃_i · q̃` the approximation.
//!
//! 1. Rounding of the `f32` dot: every product is rounded once and then takes part in at most
//!    `d − 1` additions, whatever the order of the sum, so `|ŝ_i − s_i| ≤ γ_{d+1} Σ_j |x_ij q_j| ≤
//!    γ_{d+1} ‖x_i‖ ‖q‖` (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1;
//!    `γ_m = m u / (1 − m u)`, `u = 2⁻²⁴`; underflow adds at most `2⁻¹⁵⁰` per operation).
//! 2. Quantisation: `x_i · q − x̃_i · q̃ = (x_i − x̃_i) · q + x̃_i · (q − q̃)`, so by Cauchy–Schwarz
//!    `|s_i − a_i| ≤ ‖x_i − x̃_i‖ ‖q‖ + ‖x̃_i‖ ‖q − q̃‖`. The residual norms are measured, not
//!    assumed: per row at build time (`‖x_i − x̃_i‖`, `‖x̃_i‖`, `‖x_i‖`), per query
//!    (`‖q − q̃‖`, `‖q‖`).
//!
//! Hence, with `e_i = ‖x_i − x̃_i‖ + γ_{d+1} ‖x_i‖` and `A = max_r ‖x̃_r‖`,
//! `B_i = e_i ‖q‖ + A ‖q − q̃‖ + 10⁻⁹ (1 + A (‖q‖ + ‖q − q̃‖)) ≥ |ŝ_i − a_i|`. The norms and
//! `a_i`, `B_i` are evaluated in `f64` (relative error below `10⁻¹⁴` here); the norms are
//! inflated by `10⁻⁶` relative, and the last term, at least `10⁻⁹ (1 + |a_i|)` since
//! `|a_i| ≤ ‖x̃_i‖ ‖q̃‖`, covers those roundings and underflow many times over.
//!
//! # Search
//!
//! With `ℓ_i = a_i − B_i ≤ ŝ_i ≤ a_i + B_i = υ_i`: let `τ` be the `k`-th largest `ℓ_i` among the
//! rows a neighbour list may come from. At least `k` rows have `ŝ ≥ τ`, so the `k`-th largest
//! `ŝ` is `≥ τ`, and every row of the top `k` (ties included, whatever their order) has
//! `υ ≥ ŝ ≥ τ`. The candidates `{i : υ_i ≥ τ}` therefore contain the top `k`; their exact `ŝ_i`
//! are computed with `simd::dot` and the top `k` is selected among them with the comparator of
//! the full scan, so the result is identical. This is done twice when a query's neighbours are
//! restricted to its task: once over every row for the out-of-distribution score (its
//! `ood_neighbours` nearest rows) and once over the task's rows. When the candidates exceed a
//! third of the rows, the full scan is cheaper and is used instead.

use crate::router::Signals;
use crate::simd;

use super::search::select_top;
use super::KnnRouter;

/// Largest code of a reference row.
const ROW_MAX: f64 = 127.0;
/// Largest stored code (`x̂ + 128`).
const CODE_MAX: f64 = 255.0;
/// Largest query code: `q̂ = 128·hi + lo` with `hi` in `i8` and `lo` in `0..128`.
const QUERY_MAX: f64 = 16383.0;
/// Candidates beyond `n / FALLBACK_SHARE` rows: scan everything instead.
const FALLBACK_SHARE: usize = 3;
/// Relative inflation of measured norms, far above their `f64` rounding.
const NORM_SLACK: f64 = 1.0 + 1e-6;
/// Absolute slack of a bound, per unit of `1 + |a_i|`.
const ABS_SLACK: f64 = 1e-9;

/// The `int8` codes of the reference rows and their norms. See the [module docs](self).
#[derive(Debug, Clone)]
pub(super) struct QuantIndex {
    dim: usize,
    /// `dim` rounded up to 64 (codes and query padded).
    stride: usize,
    /// `[n, stride]`: `x̂_ij + 128` (`u8`, so that one layout serves every kernel).
    codes: Vec<u8>,
    /// Per row: `s_i`.
    scale: Vec<f64>,
    /// Per row: `e_i ≥ ‖x_i − x̃_i‖ + γ_{d+1} ‖x_i‖`.
    err: Vec<f64>,
    /// `A ≥ max_i ‖x̃_i‖`.
    approx_max: f64,
    /// The query code range `Q`.
    query_max: f64,
}

/// Per-thread buffers of a prefiltered search.
#[derive(Debug, Default)]
pub(super) struct QuantScratch {
    query: Vec<i16>,
    planes: [Vec<i8>; 2],
    dots: Vec<i32>,
    lower: Vec<f64>,
    sel_all: Vec<f64>,
    sel_task: Vec<f64>,
    candidates: Vec<(f32, u32)>,
}

/// What the bound of a row needs from the query.
#[derive(Debug, Clone, Copy)]
struct QueryTerms {
    /// `s_q`.
    scale: f64,
    /// `128 Σ_j q̂_j`: the stored codes are `x̂ + 128`.
    offset: f64,
    /// Multiplies `e_i`: `‖q‖`, rounded up.
    err: f64,
    /// The rest of the bound, the same for every row:
    /// `A ‖q − q̃‖ + 10⁻⁹ (1 + A (‖q‖ + ‖q − q̃‖))`.
    constant: f64,
}

impl QueryTerms {
    /// `(a_i, B_i)` of a row with `s_i`, `e_i` and integer dot `dot` (with the codes' offset).
    #[inline(always)]
    fn interval(&self, scale: f64, err: f64, dot: i32) -> (f64, f64) {
        let a = scale * self.scale * (f64::from(dot) - self.offset);
        (a, err * self.err + self.constant)
    }
}

fn norm_up(sq: f64) -> f64 {
    sq.sqrt() * NORM_SLACK
}

impl QuantIndex {
    /// Codes for the row-major `embeddings` of rows of `dim` values; `None` when the dimension
    /// is too large for an exact `i32` dot.
    pub(super) fn build(embeddings: &[f32], dim: usize) -> Option<QuantIndex> {
        if dim == 0 {
            return None;
        }
        let stride = dim.div_ceil(64) * 64;
        let query_max = (i32::MAX as f64 / (CODE_MAX * stride as f64))
            .floor()
            .min(QUERY_MAX);
        if query_max < ROW_MAX {
            return None;
        }
        let n = embeddings.len() / dim;
        let mut codes = vec![128u8; n * stride];
        // γ_{d+1} = (d + 1) u / (1 − (d + 1) u), u = 2⁻²⁴ (the f32 unit roundoff).
        let m = (dim + 1) as f64 * f64::from(f32::EPSILON) / 2.0;
        let gamma = m / (1.0 - m);
        let (mut scale, mut err) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut approx_max = 0f64;
        for (x, c) in embeddings
            .chunks_exact(dim)
            .zip(codes.chunks_exact_mut(stride))
        {
            let max = x.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
            let s = max / ROW_MAX;
            let (mut resid, mut approx, mut norm) = (0f64, 0f64, 0f64);
            for (&v, c) in x.iter().zip(c.iter_mut()) {
                let v = f64::from(v);
                let code = if s > 0.0 {
                    (v / s).round().clamp(-ROW_MAX, ROW_MAX)
                } else {
                    0.0
                };
                *c = (code + 128.0) as u8;
                let a = s * code;
                resid += (v - a) * (v - a);
                approx += a * a;
                norm += v * v;
            }
            scale.push(s);
            err.push((norm_up(resid) + gamma * norm_up(norm)) * NORM_SLACK);
            approx_max = approx_max.max(norm_up(approx));
        }
        Some(QuantIndex {
            dim,
            stride,
            codes,
            scale,
            err,
            approx_max,
            query_max,
        })
    }

    /// Quantises `q` into `out`; `None` for a non-finite query.
    fn quantise_query(&self, q: &[f32], out: &mut Vec<i16>) -> Option<QueryTerms> {
        out.clear();
        out.resize(self.stride, 0);
        let mut max = 0f64;
        for &v in q {
            if !v.is_finite() {
                return None;
            }
            max = max.max(f64::from(v).abs());
        }
        let s = max / self.query_max;
        let (mut resid, mut norm, mut sum) = (0f64, 0f64, 0f64);
        for (&v, c) in q.iter().zip(out.iter_mut()) {
            let v = f64::from(v);
            let code = if s > 0.0 {
                (v / s).round().clamp(-self.query_max, self.query_max)
            } else {
                0.0
            };
            *c = code as i16;
            sum += code;
            resid += (v - s * code) * (v - s * code);
            norm += v * v;
        }
        let (qnorm, qresid, a) = (norm_up(norm), norm_up(resid), self.approx_max);
        Some(QueryTerms {
            scale: s,
            offset: 128.0 * sum,
            err: qnorm,
            constant: (a * qresid + ABS_SLACK * (1.0 + a * (qnorm + qresid))) * NORM_SLACK,
        })
    }

    /// `out[i] = Σ_j (x̂_ij + 128) q̂_j`, exact (`planes` is scratch space).
    fn dots(&self, q: &[i16], planes: &mut [Vec<i8>; 2], out: &mut Vec<i32>) {
        out.clear();
        out.resize(self.scale.len(), 0);
        dot_rows_u8(&self.codes, q, planes, out);
    }

    /// `(a_i, B_i)` of row `i` with the integer dot `dot`.
    #[cfg(test)]
    fn interval(&self, t: &QueryTerms, i: usize, dot: i32) -> (f64, f64) {
        t.interval(self.scale[i], self.err[i], dot)
    }

    /// `lower[i] = a_i − B_i` for the integer dots `dots`.
    fn lower_bounds(&self, t: &QueryTerms, dots: &[i32], lower: &mut Vec<f64>) {
        let n = dots.len();
        lower.resize(n, 0.0);
        let (scale, err) = (&self.scale[..n], &self.err[..n]);
        for i in 0..n {
            let (a, b) = t.interval(scale[i], err[i], dots[i]);
            lower[i] = a - b;
        }
    }
}

/// The integer kernel in use.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kernel {
    Portable,
    Avx2,
    Vnni,
}

fn kernel() -> Kernel {
    static KERNEL: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *KERNEL.get_or_init(|| {
        let f = simd::cpu::features();
        if !f.avx2 {
            return Kernel::Portable;
        }
        if f.avx512f && f.avx512vnni {
            return Kernel::Vnni;
        }
        Kernel::Avx2
    })
}

/// `out[i] = Σ_j row_i[j] · q[j]` for the rows of `q.len()` codes in `codes`, exact: the caller
/// keeps `255 · q.len() · max |q_j|` within `i32`, and `|q_j| ≤ 16383`. `planes` is scratch
/// space for the VNNI kernel.
fn dot_rows_u8(codes: &[u8], q: &[i16], planes: &mut [Vec<i8>; 2], out: &mut [i32]) {
    assert_eq!(
        codes.len(),
        out.len() * q.len(),
        "codes do not hold the rows"
    );
    assert_eq!(q.len() % 64, 0, "rows are not padded to 64 codes");
    match kernel() {
        Kernel::Portable => dot_rows_u8_portable(codes, q, out),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => {
            // SAFETY: the CPU supports AVX2 (checked once by `simd`); the lengths are checked
            // above.
            unsafe { x86::dot_rows_u8(codes, q, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Vnni => {
            split_planes(q, planes);
            let [hi, lo] = &*planes;
            // SAFETY: the CPU supports AVX-512F and VNNI (checked once by `kernel`); the
            // lengths are checked above and the planes have q's length.
            unsafe { x86::dot_rows_u8_vnni(codes, q, hi, lo, out) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        _ => dot_rows_u8_portable(codes, q, out),
    }
}

/// `q_j = 128·hi_j + lo_j` with `hi_j ∈ [−128, 127]`, `lo_j ∈ [0, 127]` (for `|q_j| ≤ 16383`).
fn split_planes(q: &[i16], planes: &mut [Vec<i8>; 2]) {
    let [hi, lo] = planes;
    hi.clear();
    lo.clear();
    hi.extend(q.iter().map(|&v| (v >> 7) as i8));
    lo.extend(q.iter().map(|&v| (v & 127) as i8));
}

fn dot_rows_u8_portable(codes: &[u8], q: &[i16], out: &mut [i32]) {
    for (row, o) in codes.chunks_exact(q.len()).zip(out) {
        *o = row
            .iter()
            .zip(q)
            .map(|(&x, &y)| i32::from(x) * i32::from(y))
            .sum();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// AVX2 [`super::dot_rows_u8`], four rows at a time: zero-extend 16 codes of each row to
    /// `i16`, `madd` with the query's 16 codes into 8 `i32` sums per row, one horizontal
    /// reduction for the four rows. Integer sums: the same result as the portable loop.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2; `q.len()` is a multiple of 16 and
    /// `codes.len() == out.len() * q.len()`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot_rows_u8(codes: &[u8], q: &[i16], out: &mut [i32]) {
        let stride = q.len();
        let mut blocks = codes.chunks_exact(4 * stride);
        let mut outs = out.chunks_exact_mut(4);
        for (block, o) in (&mut blocks).zip(&mut outs) {
            let p = block.as_ptr();
            let mut acc = [_mm256_setzero_si256(); 4];
            let mut j = 0;
            while j < stride {
                // SAFETY: j + 16 <= stride (a multiple of 16): the 32-byte load of q at j and
                // the 16-byte loads of the four rows (at r·stride + j, r < 4) are inside `q`
                // and `block` (4·stride codes); unaligned loads.
                let (y, x) = unsafe {
                    (
                        _mm256_loadu_si256(q.as_ptr().add(j).cast()),
                        [0, 1, 2, 3].map(|r| _mm_loadu_si128(p.add(r * stride + j).cast())),
                    )
                };
                for (a, x) in acc.iter_mut().zip(x) {
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(_mm256_cvtepu8_epi16(x), y));
                }
                j += 16;
            }
            // [a0 a1 a2 a3] lane sums: two rounds of pairwise horizontal adds, then the halves.
            let s01 = _mm256_hadd_epi32(acc[0], acc[1]);
            let s23 = _mm256_hadd_epi32(acc[2], acc[3]);
            let s = _mm256_hadd_epi32(s01, s23);
            let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
            // SAFETY: `o` holds four i32 (16 bytes); unaligned store.
            unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), s) };
        }
        super::dot_rows_u8_portable(blocks.remainder(), q, outs.into_remainder());
    }

    /// AVX-512 VNNI [`super::dot_rows_u8`], four rows at a time: `vpdpbusd` multiplies 64
    /// unsigned codes by 64 signed bytes of each query plane (`q = 128·hi + lo`) and adds
    /// groups of four into 16 `i32` lanes; per row `128·Σhi + Σlo`. All operations are
    /// integer additions and multiplications modulo 2³² and the true result fits `i32`, so
    /// the result is exact: the same as the portable loop.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX-512F and AVX-512 VNNI; `q.len()` is a multiple of 64,
    /// `hi.len() == lo.len() == q.len()` and `codes.len() == out.len() * q.len()`.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn dot_rows_u8_vnni(
        codes: &[u8],
        q: &[i16],
        hi: &[i8],
        lo: &[i8],
        out: &mut [i32],
    ) {
        let stride = q.len();
        let mut blocks = codes.chunks_exact(4 * stride);
        let mut outs = out.chunks_exact_mut(4);
        for (block, o) in (&mut blocks).zip(&mut outs) {
            let p = block.as_ptr();
            let mut ah = [_mm512_setzero_si512(); 4];
            let mut al = [_mm512_setzero_si512(); 4];
            let mut j = 0;
            while j < stride {
                // SAFETY: j + 64 <= stride (a multiple of 64): the 64-byte loads of the planes
                // at j and of the four rows at r·stride + j (r < 4) are inside `hi`, `lo` and
                // `block` (4·stride codes); unaligned loads.
                let (h, l, x) = unsafe {
                    (
                        _mm512_loadu_si512(hi.as_ptr().add(j).cast()),
                        _mm512_loadu_si512(lo.as_ptr().add(j).cast()),
                        [0, 1, 2, 3].map(|r| _mm512_loadu_si512(p.add(r * stride + j).cast())),
                    )
                };
                for r in 0..4 {
                    ah[r] = _mm512_dpbusd_epi32(ah[r], x[r], h);
                    al[r] = _mm512_dpbusd_epi32(al[r], x[r], l);
                }
                j += 64;
            }
            for r in 0..4 {
                o[r] =
                    _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_slli_epi32::<7>(ah[r]), al[r]));
            }
        }
        super::dot_rows_u8_portable(blocks.remainder(), q, outs.into_remainder());
    }
}

/// The `k`-th largest of `values` (`−∞` when there are fewer; no NaN), with `buf` as scratch
/// space. Selection with few data-dependent branches, since the values change with every query:
/// the `k`-th largest of `2k` or more block maxima, `μ`, is at most the answer (`k` blocks hold
/// a value `≥ μ`), so the answer is the `k`-th largest of the values `≥ μ` — usually a few more
/// than `k`.
fn kth_largest(values: &[f64], k: usize, buf: &mut Vec<f64>) -> f64 {
    let n = values.len();
    if k == 0 || n < k {
        return f64::NEG_INFINITY;
    }
    let desc = |a: &f64, b: &f64| b.total_cmp(a);
    buf.clear();
    let block = n / (2 * k);
    if block >= 2 {
        buf.extend(
            values
                .chunks(block)
                .map(|c| c.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        );
        let mu = *buf.select_nth_unstable_by(k - 1, desc).1;
        buf.clear();
        buf.extend(values.iter().copied().filter(|&v| v >= mu));
    } else {
        buf.extend_from_slice(values);
    }
    *buf.select_nth_unstable_by(k - 1, desc).1
}

/// The neighbours a query gets from the prefilter: `ood` (its nearest rows overall) and
/// `neighbours` (its nearest rows in `lo..hi`), as the full scan's `top_k` would return them.
pub(super) struct Found<'a> {
    pub(super) ood: &'a [(f32, u32)],
    pub(super) neighbours: &'a [(f32, u32)],
}

impl KnnRouter {
    /// The `ko` nearest rows overall and the `k` nearest rows of `lo..hi` of the normalised
    /// `query`, through the prefilter: `None` when it would not save work (the caller scans).
    /// `pairs` receives the neighbours, `ood` the nearest rows overall.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prefiltered_search<'a>(
        &self,
        index: &QuantIndex,
        query: &[f32],
        (lo, hi): (usize, usize),
        ko: usize,
        k: usize,
        scratch: &mut QuantScratch,
        ood: &'a mut Vec<(f32, u32)>,
        pairs: &'a mut Vec<(f32, u32)>,
    ) -> Option<Found<'a>> {
        let n = self.len();
        if query.len() != index.dim || k == 0 || ko == 0 || ko.max(k) > n / (2 * FALLBACK_SHARE) {
            return None;
        }
        let terms = index.quantise_query(query, &mut scratch.query)?;
        index.dots(&scratch.query, &mut scratch.planes, &mut scratch.dots);
        index.lower_bounds(&terms, &scratch.dots, &mut scratch.lower);
        let whole = lo == 0 && hi == n;
        let k_all = if whole { ko.max(k) } else { ko };
        let tau_all = kth_largest(&scratch.lower, k_all, &mut scratch.sel_all);
        let tau_task = if whole {
            tau_all
        } else {
            kth_largest(&scratch.lower[lo..hi], k, &mut scratch.sel_task)
        };
        // Candidates: upper bound a_i + B_i = (a_i − B_i) + 2 B_i at least the threshold of
        // their range.
        let limit = n / FALLBACK_SHARE;
        let cand = &mut scratch.candidates;
        cand.clear();
        for (range, tau) in [
            (0..lo, tau_all),
            (lo..hi, tau_all.min(tau_task)),
            (hi..n, tau_all),
        ] {
            for i in range {
                let b = index.err[i] * terms.err + terms.constant;
                if scratch.lower[i] + 2.0 * b >= tau {
                    if cand.len() == limit {
                        return None;
                    }
                    cand.push((0.0, i as u32));
                }
            }
        }
        let d = self.dim;
        for (s, i) in cand.iter_mut() {
            let i = *i as usize;
            *s = simd::dot(&self.embeddings[i * d..(i + 1) * d], query);
        }
        ood.clear();
        ood.extend_from_slice(cand);
        select_top(ood, ko);
        pairs.clear();
        pairs.extend(cand.iter().filter(|p| (lo..hi).contains(&(p.1 as usize))));
        select_top(pairs, k);
        Some(Found {
            ood,
            neighbours: pairs,
        })
    }

    /// One query's estimate through the prefilter, `None` when the caller should scan.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn estimate_prefiltered(
        &self,
        index: &QuantIndex,
        query: &[f32],
        task: Option<&str>,
        prompt_tokens: Option<f64>,
        scratch: &mut QuantScratch,
        ood: &mut Vec<(f32, u32)>,
        pairs: &mut Vec<(f32, u32)>,
        quality: &mut [f64],
        cost: &mut [f64],
    ) -> Option<Signals> {
        let n = self.len();
        let ko = self.config.ood_neighbours.min(n);
        let task_id = task.and_then(|t| self.task_ids.get(t).copied());
        let range = match (self.config.same_task, task_id) {
            (true, Some(t)) => self.task_rows[t as usize],
            _ => (0, n),
        };
        let k = self.config.k.min(range.1 - range.0);
        let found = self.prefiltered_search(index, query, range, ko, k, scratch, ood, pairs)?;
        let ood = self.ood_score(found.ood.iter().map(|p| p.0).sum::<f32>() / ko as f32);
        let prior = self.prior_for(task_id);
        self.estimate_from_pairs(
            &self.config,
            prior,
            found.neighbours,
            prompt_tokens,
            quality,
            cost,
        );
        Some(Signals {
            neighbours: Some(found.neighbours.len() as u32),
            ood: Some(ood),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::search::top_k;
    use super::super::{Index, KnnConfig, KnnRouter};
    use super::*;
    use crate::data::Split;
    use crate::features::{normalize_into, FeatureBatch};
    use crate::pool::{ModelCard, ModelPool};
    use crate::rng::SplitMix64;
    use crate::router::Router;
    use proptest::prelude::*;

    fn pool() -> ModelPool {
        ModelPool::new(vec![
            ModelCard::new("a", 1.0, 1.0),
            ModelCard::new("b", 10.0, 10.0),
        ])
        .unwrap()
    }

    /// Rows of one of five kinds: 0 Gaussian, 1 exact duplicates of three rows (ties), 2 one
    /// huge component over small noise, 3 entries in {−1, 0, 1} (ties), 4 near-duplicates.
    fn rows(kind: u8, n: usize, dim: usize, rng: &mut SplitMix64) -> Vec<f32> {
        let gauss = |rng: &mut SplitMix64, len: usize| -> Vec<f32> {
            (0..len).map(|_| rng.normal() as f32).collect()
        };
        let base = gauss(rng, 3 * dim);
        let mut e = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let b = &base[(rng.next_u64() % 3) as usize * dim..][..dim];
            let row: Vec<f32> = match kind {
                0 => gauss(rng, dim),
                1 => b.to_vec(),
                2 => {
                    let mut r: Vec<f32> = gauss(rng, dim).iter().map(|v| v * 0.01).collect();
                    r[(rng.next_u64() % dim as u64) as usize] = 100.0;
                    r
                }
                3 => (0..dim)
                    .map(|_| (rng.next_u64() % 3) as f32 - 1.0)
                    .collect(),
                _ => b.iter().map(|v| v + 1e-4 * rng.normal() as f32).collect(),
            };
            e.extend(if row.iter().all(|&v| v == 0.0) {
                vec![1.0; dim]
            } else {
                row
            });
        }
        e
    }

    fn router(e: Vec<f32>, dim: usize, tasks: usize, config: &KnnConfig, seed: u64) -> KnnRouter {
        let n = e.len() / dim;
        let mut rng = SplitMix64::new(seed);
        let scores: Vec<f64> = (0..n * 2).map(|_| rng.next_f64()).collect();
        let costs: Vec<f64> = (0..n).flat_map(|_| [1e-5, 1e-4]).collect();
        let names = (0..n)
            .map(|_| match rng.next_u64() % (tasks as u64 + 1) {
                0 => None,
                t => Some(format!("t{t}")),
            })
            .collect();
        let split = Split::from_arrays(pool(), e, dim, scores, costs)
            .unwrap()
            .with_tasks(names)
            .unwrap();
        KnnRouter::fit(&split, config).unwrap()
    }

    fn bits(p: &[(f32, u32)]) -> Vec<(u32, u32)> {
        p.iter().map(|&(s, i)| (s.to_bits(), i)).collect()
    }

    /// Checks one query against the full scan: the bound of every row, and when the prefilter
    /// answers, its neighbours; returns whether it answered.
    fn check_query(r: &KnnRouter, raw: &[f32], task: Option<&str>) -> bool {
        let index = r.prefilter.as_ref().expect("exact search has a prefilter");
        let n = r.len();
        let mut q = vec![0f32; r.dim];
        normalize_into(raw, &mut q);
        let mut sims = vec![0f32; n];
        simd::dot_rows(&r.embeddings, &q, &mut sims);
        let mut scratch = QuantScratch::default();
        let terms = index.quantise_query(&q, &mut scratch.query).unwrap();
        index.dots(&scratch.query, &mut scratch.planes, &mut scratch.dots);
        for (i, &dot) in scratch.dots.iter().enumerate() {
            let (a, b) = index.interval(&terms, i, dot);
            let err = (f64::from(sims[i]) - a).abs();
            assert!(err <= b, "row {i}: |{} − {a}| = {err} > {b}", sims[i]);
        }
        let ko = r.config.ood_neighbours.min(n);
        let task_id = task.and_then(|t| r.task_ids.get(t).copied());
        let (lo, hi) = match (r.config.same_task, task_id) {
            (true, Some(t)) => r.task_rows[t as usize],
            _ => (0, n),
        };
        let k = r.config.k.min(hi - lo);
        let (mut want_ood, mut want) = (Vec::new(), Vec::new());
        top_k(&sims, 0, ko, &mut want_ood);
        top_k(&sims[lo..hi], lo, k, &mut want);
        let (mut ood, mut pairs) = (Vec::new(), Vec::new());
        let found = r.prefiltered_search(
            index,
            &q,
            (lo, hi),
            ko,
            k,
            &mut scratch,
            &mut ood,
            &mut pairs,
        );
        let Some(found) = found else {
            return false;
        };
        assert_eq!(bits(found.ood), bits(&want_ood), "ood neighbours");
        assert_eq!(bits(found.neighbours), bits(&want), "neighbours");
        true
    }

    /// Estimates of one query, with and without the prefilter, bit for bit.
    fn check_estimates(fast: &KnnRouter, raw: &[f32], task: Option<&str>) {
        let mut scan = fast.clone();
        scan.set_exact_prefilter(false);
        assert!(scan.prefilter.is_none());
        let tasks = [task.map(str::to_string)];
        let tokens = [120.0];
        let b = FeatureBatch::new(raw, raw.len())
            .unwrap()
            .with_tasks(&tasks)
            .unwrap()
            .with_prompt_tokens(&tokens)
            .unwrap();
        let (x, y) = (
            fast.estimate_batch(&b).unwrap(),
            scan.estimate_batch(&b).unwrap(),
        );
        let f = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(f(&x.quality), f(&y.quality));
        assert_eq!(f(&x.cost), f(&y.cost));
        assert_eq!(x.signals, y.signals);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn prefilter_returns_the_full_scans_neighbours(
            kind in 0u8..5,
            n in 1usize..400,
            dim in 1usize..40,
            k in prop_oneof![1usize..8, 1usize..70, 1usize..500],
            ood in 1usize..15,
            tasks in 0usize..4,
            same_task in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut rng = SplitMix64::new(seed);
            let e = rows(kind, n, dim, &mut rng);
            let config = KnnConfig {
                k,
                same_task,
                ood_neighbours: ood,
                index: Index::Exact,
                ..KnnConfig::default()
            };
            let r = router(e.clone(), dim, tasks, &config, seed);
            // Queries: a row (exact ties with it and its duplicates), its negation, fresh rows
            // of the same kind.
            let mut queries: Vec<Vec<f32>> = vec![e[..dim].to_vec()];
            queries.push(e[..dim].iter().map(|v| -v).collect());
            queries.extend(rows(kind, 3, dim, &mut rng).chunks_exact(dim).map(<[f32]>::to_vec));
            for (j, q) in queries.iter().enumerate() {
                let task = match j % 3 {
                    0 => None,
                    1 => Some("t1"),
                    _ => Some("t2"),
                };
                check_query(&r, q, task);
                check_estimates(&r, q, task);
            }
        }
    }

    #[test]
    fn prefilter_answers_typical_queries_with_few_candidates() {
        let (n, dim) = (3000, 64);
        let mut rng = SplitMix64::new(7);
        // Clustered rows, as embeddings are: 30 centres plus noise.
        let centres = rows(0, 30, dim, &mut rng);
        let mut e = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = &centres[(i % 30) * dim..][..dim];
            e.extend(c.iter().map(|v| v + 0.5 * rng.normal() as f32));
        }
        for same_task in [false, true] {
            let config = KnnConfig {
                k: 20,
                same_task,
                index: Index::Exact,
                ..KnnConfig::default()
            };
            let r = router(e.clone(), dim, 2, &config, 3);
            for (j, q) in e.chunks_exact(dim).step_by(97).enumerate() {
                let task = [None, Some("t1"), Some("t2")][j % 3];
                assert!(check_query(&r, q, task), "query {j} fell back to the scan");
                check_estimates(&r, q, task);
            }
        }
    }

    #[test]
    fn kth_largest_matches_a_sort() {
        let mut rng = SplitMix64::new(9);
        let mut buf = Vec::new();
        for n in [0usize, 1, 5, 64, 1000, 5489] {
            for levels in [3u64, 1 << 40] {
                let v: Vec<f64> = (0..n).map(|_| (rng.next_u64() % levels) as f64).collect();
                let mut sorted = v.clone();
                sorted.sort_by(|a, b| b.total_cmp(a));
                for k in [1usize, 2, 10, 100, 999, 1000, 5000] {
                    let want = if k <= n {
                        sorted[k - 1]
                    } else {
                        f64::NEG_INFINITY
                    };
                    assert_eq!(kth_largest(&v, k, &mut buf), want, "n {n} k {k}");
                }
            }
        }
    }

    #[test]
    fn integer_kernels_agree() {
        let mut rng = SplitMix64::new(1);
        for stride in [64usize, 128, 384, 1024] {
            // Extreme codes included: 1 and 255 rows, ±Q query at the largest allowed Q.
            let qmax = (i32::MAX as f64 / (CODE_MAX * stride as f64))
                .floor()
                .min(QUERY_MAX) as i64;
            for rows in [1usize, 4, 7, 9] {
                let codes: Vec<u8> = (0..rows * stride)
                    .map(|i| match i % 5 {
                        0 => 255,
                        1 => 1,
                        _ => (rng.next_u64() % 256) as u8,
                    })
                    .collect();
                let q: Vec<i16> = (0..stride)
                    .map(|j| match j % 3 {
                        0 => qmax,
                        1 => -qmax,
                        _ => (rng.next_u64() % (2 * qmax as u64 + 1)) as i64 - qmax,
                    } as i16)
                    .collect();
                let q_neg: Vec<i16> = q.iter().map(|v| -v).collect();
                for q in [&q, &q_neg] {
                    let exact: Vec<i32> = codes
                        .chunks_exact(stride)
                        .map(|row| {
                            let v: i64 = row
                                .iter()
                                .zip(q.iter())
                                .map(|(&x, &y)| i64::from(x) * i64::from(y))
                                .sum();
                            i32::try_from(v).expect("the bound keeps the sum in i32")
                        })
                        .collect();
                    let mut out = vec![0i32; rows];
                    dot_rows_u8_portable(&codes, q, &mut out);
                    assert_eq!(out, exact);
                    let mut planes = [Vec::new(), Vec::new()];
                    dot_rows_u8(&codes, q, &mut planes, &mut out);
                    assert_eq!(out, exact, "{:?}", kernel());
                    #[cfg(target_arch = "x86_64")]
                    {
                        let hw = crate::simd::cpu::hardware();
                        if hw.avx2 {
                            out.fill(0);
                            // SAFETY: AVX2 is available; the lengths match.
                            unsafe { x86::dot_rows_u8(&codes, q, &mut out) };
                            assert_eq!(out, exact, "avx2");
                        }
                        if hw.avx512f && hw.avx512vnni {
                            out.fill(0);
                            split_planes(q, &mut planes);
                            // SAFETY: AVX-512F and VNNI are available; the lengths match.
                            unsafe {
                                x86::dot_rows_u8_vnni(&codes, q, &planes[0], &planes[1], &mut out)
                            };
                            assert_eq!(out, exact, "vnni");
                        }
                    }
                }
            }
        }
    }
}
