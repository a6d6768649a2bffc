//! The dot-product kernels: one portable source, compiled for the baseline target and with AVX2,
//! chosen once at run time ([`super::cpu`]).

pub(super) const LANES: usize = 16;

#[inline(always)]
pub(super) fn reduce(mut acc: [f32; LANES]) -> f32 {
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0]
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    for i in 0..ra.len() {
        acc[i] += ra[i] * rb[i];
    }
    reduce(acc)
}

#[inline(always)]
fn dot4_lanes(row: &[f32], q: [&[f32]; 4]) -> [f32; 4] {
    // Four named accumulators and zipped chunk iterators (no per-step slicing or array-of-arrays
    // indexing) so that the accumulators stay in registers: with `[[f32; LANES]; 4]` indexed
    // through `iter_mut().zip(q)` they were spilled to the stack and reloaded every step,
    // which made this kernel ~6× slower per query than `dot_lanes`. Per query the operations
    // and their order are exactly those of `dot_lanes`.
    let n = row.len();
    let [q0, q1, q2, q3] = q;
    let (q0, q1, q2, q3) = (&q0[..n], &q1[..n], &q2[..n], &q3[..n]);
    let mut a0 = [0f32; LANES];
    let mut a1 = [0f32; LANES];
    let mut a2 = [0f32; LANES];
    let mut a3 = [0f32; LANES];
    let (cr, c0, c1, c2, c3) = (
        row.chunks_exact(LANES),
        q0.chunks_exact(LANES),
        q1.chunks_exact(LANES),
        q2.chunks_exact(LANES),
        q3.chunks_exact(LANES),
    );
    let (rr, r0, r1, r2, r3) = (
        cr.remainder(),
        c0.remainder(),
        c1.remainder(),
        c2.remainder(),
        c3.remainder(),
    );
    for ((((x, y0), y1), y2), y3) in cr.zip(c0).zip(c1).zip(c2).zip(c3) {
        for l in 0..LANES {
            a0[l] += x[l] * y0[l];
            a1[l] += x[l] * y1[l];
            a2[l] += x[l] * y2[l];
            a3[l] += x[l] * y3[l];
        }
    }
    for l in 0..rr.len() {
        a0[l] += rr[l] * r0[l];
        a1[l] += rr[l] * r1[l];
        a2[l] += rr[l] * r2[l];
        a3[l] += rr[l] * r3[l];
    }
    [reduce(a0), reduce(a1), reduce(a2), reduce(a3)]
}

fn rows_lanes(matrix: &[f32], q: &[f32], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(matrix.chunks_exact(q.len())) {
        *o = dot_lanes(row, q);
    }
}

fn rows4_lanes(matrix: &[f32], qs: [&[f32]; 4], out: [&mut [f32]; 4]) {
    let dim = qs[0].len();
    let [o0, o1, o2, o3] = out;
    for (i, row) in matrix.chunks_exact(dim).enumerate() {
        let d = dot4_lanes(row, qs);
        o0[i] = d[0];
        o1[i] = d[1];
        o2[i] = d[2];
        o3[i] = d[3];
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        super::dot_lanes(a, b)
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows(matrix: &[f32], q: &[f32], out: &mut [f32]) {
        super::rows_lanes(matrix, q, out)
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows4(matrix: &[f32], qs: [&[f32]; 4], out: [&mut [f32]; 4]) {
        super::rows4_lanes(matrix, qs, out)
    }
}

/// Whether the AVX2 dot kernels run ([`super::cpu::features`]).
pub(super) fn avx2() -> bool {
    super::cpu::features().avx2
}

/// Whether every value of `v` is finite (no NaN, no infinity), in eight independent lanes so
/// that a saved router's megabytes of statistics are checked at memory speed.
#[allow(clippy::eq_op)] // x - x is the point: 0 for finite values, NaN otherwise
pub(crate) fn all_finite<T>(v: &[T]) -> bool
where
    T: Copy + Default + PartialEq + std::ops::Sub<Output = T> + std::ops::AddAssign,
{
    // x - x is exactly 0 for a finite x and NaN for an infinity or a NaN; a NaN survives the sums.
    let mut acc = [T::default(); 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x - x;
        }
    }
    for &x in chunks.remainder() {
        acc[0] += x - x;
    }
    let mut total = T::default();
    for a in acc {
        total += a;
    }
    total == T::default()
}

/// The kernel variant in use (`"avx2"` or `"portable"`), for benchmark reports. Set
/// `POINTSMAN_SIMD=portable` to force the portable one ([`super::cpu`]); results are identical.
pub fn kernel_name() -> &'static str {
    if avx2() {
        "avx2"
    } else {
        "portable"
    }
}

/// `Σ a[i]·b[i]` over the common length.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU supports AVX2 (checked once by `avx2`).
        return unsafe { x86::dot(a, b) };
    }
    dot_lanes(a, b)
}

/// `out[i] = ⟨row i of matrix, q⟩` for a row-major `matrix` of rows of `q.len()` values.
///
/// # Panics
///
/// When `matrix.len() != out.len() * q.len()`.
pub fn dot_rows(matrix: &[f32], q: &[f32], out: &mut [f32]) {
    assert_eq!(
        matrix.len(),
        out.len() * q.len(),
        "matrix does not hold out.len() rows of q.len()"
    );
    if q.is_empty() {
        out.fill(0.0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU supports AVX2; the lengths are checked above.
        return unsafe { x86::rows(matrix, q, out) };
    }
    rows_lanes(matrix, q, out)
}

/// Four queries at once: `out[j][i] = ⟨row i of matrix, qs[j]⟩`, bit-identical to [`dot_rows`]
/// per query, with each row read once for all four.
///
/// # Panics
///
/// When the queries' lengths differ, the outputs' lengths differ, or
/// `matrix.len() != rows * dim`.
pub fn dot_rows4(matrix: &[f32], qs: [&[f32]; 4], out: [&mut [f32]; 4]) {
    let dim = qs[0].len();
    assert!(
        qs.iter().all(|q| q.len() == dim),
        "queries of different lengths"
    );
    let rows = out[0].len();
    assert!(
        out.iter().all(|o| o.len() == rows),
        "outputs of different lengths"
    );
    assert_eq!(
        matrix.len(),
        rows * dim,
        "matrix does not hold rows of the queries' length"
    );
    if dim == 0 {
        for o in out {
            o.fill(0.0);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU supports AVX2; the lengths are checked above.
        return unsafe { x86::rows4(matrix, qs, out) };
    }
    rows4_lanes(matrix, qs, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn naive(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    #[test]
    fn all_finite_finds_every_non_finite_value_in_any_lane() {
        assert!(all_finite::<f64>(&[]));
        assert!(all_finite(&[
            f64::MAX,
            -f64::MAX,
            0.0,
            -0.0,
            f64::MIN_POSITIVE
        ]));
        for len in [1usize, 7, 8, 9, 17, 385] {
            let v: Vec<f64> = (0..len).map(|i| i as f64 * 1e300).collect();
            assert!(all_finite(&v), "len {len}");
            for at in 0..len {
                for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                    let mut w = v.clone();
                    w[at] = bad;
                    assert!(!all_finite(&w), "{bad} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn all_finite_checks_f32_too() {
        assert!(all_finite(&[1.0f32; 13]));
        let mut v = [1.0f32; 13];
        v[12] = f32::NAN;
        assert!(!all_finite(&v));
        v[12] = f32::MAX;
        assert!(all_finite(&v));
    }

    #[test]
    fn kernels_agree_bitwise_and_with_naive_sums() {
        let mut rng = SplitMix64::new(5);
        for n in [0usize, 1, 7, 15, 16, 17, 31, 33, 384, 385] {
            let a: Vec<f32> = (0..n).map(|_| rng.next_f64() as f32 - 0.5).collect();
            let rows = 5;
            let m: Vec<f32> = (0..n * rows).map(|_| rng.next_f64() as f32 - 0.5).collect();
            let tol = 1e-5 * (n as f64 + 1.0);
            assert!((f64::from(dot(&a, &a)) - naive(&a, &a)).abs() < tol);
            assert_eq!(dot(&a, &a).to_bits(), dot_lanes(&a, &a).to_bits());
            let mut out = vec![0.0; rows];
            dot_rows(&m, &a, &mut out);
            let qs: Vec<Vec<f32>> = (0..4)
                .map(|j| a.iter().map(|v| v * (j as f32 + 1.0)).collect())
                .collect();
            let mut o4 = vec![vec![0.0; rows]; 4];
            let [x0, x1, x2, x3] = &mut o4[..] else {
                unreachable!()
            };
            dot_rows4(&m, [&qs[0], &qs[1], &qs[2], &qs[3]], [x0, x1, x2, x3]);
            for r in 0..rows {
                let row = &m[r * n..(r + 1) * n];
                assert!((f64::from(out[r]) - naive(row, &a)).abs() < tol);
                assert_eq!(out[r].to_bits(), dot_lanes(row, &a).to_bits());
                for j in 0..4 {
                    assert_eq!(o4[j][r].to_bits(), dot_lanes(row, &qs[j]).to_bits());
                }
            }
        }
        assert!(["portable", "avx2"].contains(&kernel_name()));
    }
}
