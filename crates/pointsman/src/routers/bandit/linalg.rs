//! Small dense linear algebra for the bandits: Sherman–Morrison updates, a Cholesky inverse (for
//! merges and batched warm starts), and the eigen-solvers behind the PCA projection.
//!
//! Plain `f64` loops in a fixed order, so results are identical on every CPU. Matrices are
//! row-major `d × d` slices.

use crate::error::{Error, Result};

/// `a_inv ← (A + sign·x xᵀ)⁻¹` given `a_inv = A⁻¹` (Sherman–Morrison), with `sign` `+1` to add an
/// observation and `-1` to remove one; `u` is scratch of length `d`. Returns `false`, leaving
/// `a_inv` untouched, when the update would make the matrix singular or indefinite (a removal of
/// an observation that is not in `A`).
///
/// The update is written so that a symmetric `a_inv` stays exactly symmetric.
pub(crate) fn sherman_morrison(a_inv: &mut [f64], x: &[f64], sign: f64, u: &mut [f64]) -> bool {
    let d = x.len();
    debug_assert_eq!(a_inv.len(), d * d);
    for (i, ui) in u.iter_mut().enumerate().take(d) {
        *ui = dot64(&a_inv[i * d..(i + 1) * d], x);
    }
    let denom = 1.0 + sign * dot64(x, &u[..d]);
    if !denom.is_finite() || denom <= 1e-12 {
        return false;
    }
    let c = sign / denom;
    for i in 0..d {
        let row = &mut a_inv[i * d..(i + 1) * d];
        let ui = u[i];
        for (a, &uj) in row.iter_mut().zip(&u[..d]) {
            // (u_i·u_j)·c is symmetric in i and j, bit for bit.
            *a -= (ui * uj) * c;
        }
    }
    true
}

/// `A += sign·x xᵀ`.
pub(crate) fn rank_one(a: &mut [f64], x: &[f64], sign: f64) {
    let d = x.len();
    for i in 0..d {
        let xi = sign * x[i];
        for (a, &xj) in a[i * d..(i + 1) * d].iter_mut().zip(x) {
            *a += xi * xj;
        }
    }
}

/// `Σ a[i]·b[i]` in order.
pub(crate) fn dot64(a: &[f64], b: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::kernel_name() == "avx2" {
        // SAFETY: the CPU supports AVX2 (checked once by the simd module).
        return unsafe { dot64_avx2(a, b) };
    }
    dot64_lanes(a, b)
}

/// [`dot64_lanes`] compiled for AVX2: the four running sums fit one register. The same
/// operations in the same order (Rust neither fuses nor reorders them), so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot64_avx2(a: &[f64], b: &[f64]) -> f64 {
    dot64_lanes(a, b)
}

#[inline(always)]
fn dot64_lanes(a: &[f64], b: &[f64]) -> f64 {
    // Four running sums: enough independent chains for the compiler to pipeline, in a fixed
    // order on every machine.
    let mut acc = [0.0f64; 4];
    let chunks = a.len().min(b.len()) / 4;
    for c in 0..chunks {
        for l in 0..4 {
            acc[l] += a[4 * c + l] * b[4 * c + l];
        }
    }
    for i in 4 * chunks..a.len().min(b.len()) {
        acc[0] += a[i] * b[i];
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// `out[r] = dot64(row r of rows, b)` for rows of `b.len()` values: bit for bit [`dot64`] per row,
/// four rows at a time so that their running sums are independent chains (one `dot64` waits on
/// its additions' latency).
///
/// # Panics
///
/// When `rows.len() != out.len() * b.len()`.
pub(crate) fn dot64_rows(rows: &[f64], b: &[f64], out: &mut [f64]) {
    assert_eq!(
        rows.len(),
        out.len() * b.len(),
        "rows do not match the output"
    );
    #[cfg(target_arch = "x86_64")]
    if crate::simd::kernel_name() == "avx2" {
        // SAFETY: the CPU supports AVX2 (checked once by the simd module).
        return unsafe { dot64_rows_avx2(rows, b, out) };
    }
    dot64_rows_lanes(rows, b, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot64_rows_avx2(rows: &[f64], b: &[f64], out: &mut [f64]) {
    dot64_rows_lanes(rows, b, out)
}

#[inline(always)]
fn dot64_rows_lanes(rows: &[f64], b: &[f64], out: &mut [f64]) {
    let d = b.len();
    if d == 0 {
        out.fill(0.0);
        return;
    }
    let mut quads = out.chunks_exact_mut(4);
    let mut r = 0;
    for o in &mut quads {
        let row = |k: usize| &rows[(r + k) * d..(r + k + 1) * d];
        let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
        // Named accumulators (an array of them would be spilled): per row, the operations of
        // `dot64_lanes` in its order.
        let (mut a0, mut a1, mut a2, mut a3) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
        let chunks = d / 4;
        for c in 0..chunks {
            for l in 0..4 {
                let x = b[4 * c + l];
                a0[l] += r0[4 * c + l] * x;
                a1[l] += r1[4 * c + l] * x;
                a2[l] += r2[4 * c + l] * x;
                a3[l] += r3[4 * c + l] * x;
            }
        }
        for i in 4 * chunks..d {
            a0[0] += r0[i] * b[i];
            a1[0] += r1[i] * b[i];
            a2[0] += r2[i] * b[i];
            a3[0] += r3[i] * b[i];
        }
        for (o, a) in o.iter_mut().zip([a0, a1, a2, a3]) {
            *o = (a[0] + a[1]) + (a[2] + a[3]);
        }
        r += 4;
    }
    for (k, o) in quads.into_remainder().iter_mut().enumerate() {
        *o = dot64_lanes(&rows[(r + k) * d..(r + k + 1) * d], b);
    }
}

/// `out = M·x` for a row-major `d × d` matrix.
pub(crate) fn mat_vec(m: &[f64], x: &[f64], out: &mut [f64]) {
    let d = x.len();
    for (i, o) in out.iter_mut().enumerate().take(d) {
        *o = dot64(&m[i * d..(i + 1) * d], x);
    }
}

/// `out[k] = m · x[k]` for two vectors at once, reading each row of `m` once.
pub(crate) fn mat_vec2(m: &[f64], x: [&[f64]; 2], out: &mut [Vec<f64>; 2]) {
    let d = x[0].len();
    let [o0, o1] = out;
    for (i, row) in m.chunks_exact(d).enumerate().take(d) {
        o0[i] = dot64(row, x[0]);
        o1[i] = dot64(row, x[1]);
    }
}

/// Checks that every model's `A_m` has a positive diagonal and that `A_m⁻¹` is its inverse:
/// `A_m⁻¹ (A_m v) = v` for two fixed vectors `v`, to 1e-4 of their size. A full inversion would
/// cost `O(p³)` per model; these two products cost `O(p²)` and catch any inverse that drifted
/// or was altered (Sherman–Morrison updates keep the error many orders below the tolerance).
pub(crate) fn check_statistics(
    a: &[f64],
    a_inv: &[f64],
    models: usize,
    p: usize,
) -> std::result::Result<(), String> {
    let probes: [Vec<f64>; 2] = [
        vec![1.0; p],
        (0..p)
            .map(|i| if i % 2 == 0 { 1.0 } else { -0.5 } * (i + 1) as f64 / p as f64)
            .collect(),
    ];
    let mut av = [vec![0.0; p], vec![0.0; p]];
    let mut back = [vec![0.0; p], vec![0.0; p]];
    for m in 0..models {
        let am = &a[m * p * p..(m + 1) * p * p];
        let im = &a_inv[m * p * p..(m + 1) * p * p];
        if (0..p).any(|i| !(am[i * p + i] > 0.0 && im[i * p + i] > 0.0)) {
            return Err(format!("model {m}'s matrices are not positive definite"));
        }
        // Both probes in one pass over each matrix: the check is bound by memory, not by
        // arithmetic (two passes made it half of a LinUCB file's added load time).
        mat_vec2(am, [&probes[0], &probes[1]], &mut av);
        mat_vec2(im, [&av[0], &av[1]], &mut back);
        for (v, back) in probes.iter().zip(&back) {
            let size = v.iter().fold(0.0f64, |s, x| s.max(x.abs()));
            let err = back
                .iter()
                .zip(v)
                .fold(0.0f64, |e, (b, x)| e.max((b - x).abs()));
            if err.is_nan() || err > 1e-4 * size || back.iter().any(|b| !b.is_finite()) {
                return Err(format!(
                    "model {m}'s inverse does not invert its matrix (error {err:e})"
                ));
            }
        }
    }
    Ok(())
}

/// The inverse of a symmetric positive-definite matrix, by Cholesky factorisation.
///
/// # Errors
///
/// [`Error::InvalidInput`] when the matrix is not positive definite.
pub(crate) fn spd_inverse(a: &[f64], d: usize) -> Result<Vec<f64>> {
    let w = cholesky_whitener(a, d)?;
    // A⁻¹ = Wᵀ W; (A⁻¹)_ij = Σ_{k ≥ max(i,j)} W_ki W_kj. Filled symmetrically.
    let mut inv = vec![0.0f64; d * d];
    for i in 0..d {
        for j in i..d {
            let mut s = 0.0;
            for k in j..d {
                s += w[k * d + i] * w[k * d + j];
            }
            inv[i * d + j] = s;
            inv[j * d + i] = s;
        }
    }
    Ok(inv)
}

/// Eigenvalues and eigenvectors of a symmetric `d × d` matrix by cyclic Jacobi rotations:
/// `(values, vectors)` sorted by decreasing eigenvalue, `vectors` row-major with one eigenvector
/// per row.
pub(crate) fn symmetric_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    // Columns of v are the eigenvectors while rotating.
    let mut v = vec![0.0f64; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    let total: f64 = m.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..60 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * d + j] * m[i * d + j])
            .sum();
        if off <= 1e-22 * total {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = m[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let app = m[p * d + p];
                let aqq = m[q * d + q];
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // Rotate rows and columns p, q of m.
                for k in 0..d {
                    let mkp = m[k * d + p];
                    let mkq = m[k * d + q];
                    m[k * d + p] = c * mkp - s * mkq;
                    m[k * d + q] = s * mkp + c * mkq;
                }
                for k in 0..d {
                    let mpk = m[p * d + k];
                    let mqk = m[q * d + k];
                    m[p * d + k] = c * mpk - s * mqk;
                    m[q * d + k] = s * mpk + c * mqk;
                }
                for k in 0..d {
                    let vkp = v[k * d + p];
                    let vkq = v[k * d + q];
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&i, &j| m[j * d + j].total_cmp(&m[i * d + i]).then(i.cmp(&j)));
    let values = order.iter().map(|&i| m[i * d + i]).collect();
    let mut vectors = vec![0.0f64; d * d];
    for (r, &i) in order.iter().enumerate() {
        for k in 0..d {
            vectors[r * d + k] = v[k * d + i];
        }
    }
    (values, vectors)
}

/// The `k` leading eigenvectors (one per row, `[k, d]`, by decreasing eigenvalue) of a symmetric
/// positive semi-definite `d × d` matrix, by seeded subspace iteration with a Rayleigh–Ritz
/// step: deterministic, `O(d²·k)` per iteration.
pub(crate) fn top_eigenvectors(c: &[f64], d: usize, k: usize, seed: u64) -> Vec<f64> {
    let width = (k + 8).min(d);
    let mut rng = crate::rng::SplitMix64::new(seed);
    // Q: d × width, column-major (one basis vector per `d`-slice).
    let mut q: Vec<f64> = (0..d * width).map(|_| rng.normal()).collect();
    orthonormalize(&mut q, d, width);
    let mut z = vec![0.0f64; d * width];
    for _ in 0..150 {
        for j in 0..width {
            mat_vec(c, &q[j * d..(j + 1) * d], &mut z[j * d..(j + 1) * d]);
        }
        std::mem::swap(&mut q, &mut z);
        orthonormalize(&mut q, d, width);
    }
    // Rayleigh–Ritz: T = Qᵀ C Q, rotate Q by T's eigenvectors.
    let mut cq = vec![0.0f64; d * width];
    for j in 0..width {
        mat_vec(c, &q[j * d..(j + 1) * d], &mut cq[j * d..(j + 1) * d]);
    }
    let mut t = vec![0.0f64; width * width];
    for i in 0..width {
        for j in 0..width {
            t[i * width + j] = dot64(&q[i * d..(i + 1) * d], &cq[j * d..(j + 1) * d]);
        }
    }
    for i in 0..width {
        for j in 0..i {
            let s = 0.5 * (t[i * width + j] + t[j * width + i]);
            t[i * width + j] = s;
            t[j * width + i] = s;
        }
    }
    let (_, vectors) = symmetric_eigen(&t, width);
    let mut out = vec![0.0f64; k * d];
    for r in 0..k {
        let v = &vectors[r * width..(r + 1) * width];
        let row = &mut out[r * d..(r + 1) * d];
        for (j, &w) in v.iter().enumerate() {
            for (o, &x) in row.iter_mut().zip(&q[j * d..(j + 1) * d]) {
                *o += w * x;
            }
        }
        // A fixed sign: the largest entry positive.
        let big = row
            .iter()
            .copied()
            .fold(0.0f64, |a, x| if x.abs() > a.abs() { x } else { a });
        if big < 0.0 {
            for o in row.iter_mut() {
                *o = -*o;
            }
        }
    }
    out
}

/// Modified Gram–Schmidt on the `width` column vectors (each a `d`-slice) of `q`; a vector that
/// vanishes is replaced by a unit axis.
fn orthonormalize(q: &mut [f64], d: usize, width: usize) {
    for j in 0..width {
        for i in 0..j {
            let (head, tail) = q.split_at_mut(j * d);
            let qi = &head[i * d..(i + 1) * d];
            let qj = &mut tail[..d];
            let r = dot64(qi, qj);
            for (a, &b) in qj.iter_mut().zip(qi) {
                *a -= r * b;
            }
        }
        let qj = &mut q[j * d..(j + 1) * d];
        let norm = dot64(qj, qj).sqrt();
        if norm > 1e-300 {
            for a in qj.iter_mut() {
                *a /= norm;
            }
        } else {
            qj.fill(0.0);
            qj[j % d] = 1.0;
        }
    }
}

/// `W = L⁻¹` for the Cholesky factor `A = L Lᵀ` of a symmetric positive-definite `d × d`
/// matrix: lower triangular, row-major. `W x` whitens: `‖W (x − μ)‖²` is the Mahalanobis
/// distance under the covariance `A` (the policy guard's use).
///
/// # Errors
///
/// [`Error::InvalidInput`] when the matrix is not positive definite.
pub(crate) fn cholesky_whitener(a: &[f64], d: usize) -> Result<Vec<f64>> {
    // A = L Lᵀ, L lower triangular (row-major, upper part unused).
    let mut l = vec![0.0f64; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s = a[i * d + j] - dot64(&l[i * d..i * d + j], &l[j * d..j * d + j]);
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return Err(Error::InvalidInput(format!(
                        "matrix is not positive definite (pivot {i}: {s})"
                    )));
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    // W = L⁻¹ (lower triangular), by forward substitution column by column.
    let mut w = vec![0.0f64; d * d];
    for c in 0..d {
        w[c * d + c] = 1.0 / l[c * d + c];
        for i in c + 1..d {
            let mut s = 0.0;
            for k in c..i {
                s += l[i * d + k] * w[k * d + c];
            }
            w[i * d + c] = -s / l[i * d + i];
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn dot64_rows_is_dot64_per_row_bit_for_bit() {
        let mut rng = SplitMix64::new(4);
        for d in [0usize, 1, 3, 4, 7, 385] {
            for n in 0..10 {
                let rows: Vec<f64> = (0..n * d).map(|_| rng.normal()).collect();
                let b: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
                let mut out = vec![f64::NAN; n];
                dot64_rows(&rows, &b, &mut out);
                for (r, o) in out.iter().enumerate() {
                    let one = dot64(&rows[r * d..(r + 1) * d], &b);
                    assert_eq!(o.to_bits(), one.to_bits(), "d {d}, row {r} of {n}");
                    assert_eq!(
                        one.to_bits(),
                        dot64_lanes(&rows[r * d..(r + 1) * d], &b).to_bits()
                    );
                }
            }
        }
    }

    fn random_spd(d: usize, rng: &mut SplitMix64) -> Vec<f64> {
        let mut a = vec![0.0; d * d];
        for i in 0..d {
            a[i * d + i] = 0.5;
        }
        for _ in 0..d + 3 {
            let x: Vec<f64> = (0..d).map(|_| rng.next_f64() - 0.5).collect();
            rank_one(&mut a, &x, 1.0);
        }
        a
    }

    fn mat_mul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
        let mut c = vec![0.0; d * d];
        for i in 0..d {
            for k in 0..d {
                for j in 0..d {
                    c[i * d + j] += a[i * d + k] * b[k * d + j];
                }
            }
        }
        c
    }

    fn max_dev_from_identity(m: &[f64], d: usize) -> f64 {
        let mut worst = 0.0f64;
        for i in 0..d {
            for j in 0..d {
                let target = if i == j { 1.0 } else { 0.0 };
                worst = worst.max((m[i * d + j] - target).abs());
            }
        }
        worst
    }

    #[test]
    fn cholesky_inverse_inverts() {
        let mut rng = SplitMix64::new(3);
        for d in [1, 2, 7, 33] {
            let a = random_spd(d, &mut rng);
            let inv = spd_inverse(&a, d).unwrap();
            assert!(
                max_dev_from_identity(&mat_mul(&a, &inv, d), d) < 1e-9,
                "d {d}"
            );
        }
        let e = spd_inverse(&[1.0, 2.0, 2.0, 1.0], 2).unwrap_err();
        assert!(e.to_string().contains("not positive definite"), "{e}");
    }

    #[test]
    fn sherman_morrison_matches_a_direct_inverse() {
        let mut rng = SplitMix64::new(9);
        let d = 12;
        let mut a = vec![0.0; d * d];
        for i in 0..d {
            a[i * d + i] = 2.0;
        }
        let mut a_inv = spd_inverse(&a, d).unwrap();
        let mut u = vec![0.0; d];
        let mut xs = Vec::new();
        for _ in 0..40 {
            let x: Vec<f64> = (0..d).map(|_| rng.next_f64() - 0.5).collect();
            rank_one(&mut a, &x, 1.0);
            assert!(sherman_morrison(&mut a_inv, &x, 1.0, &mut u));
            xs.push(x);
        }
        let direct = spd_inverse(&a, d).unwrap();
        let worst = a_inv
            .iter()
            .zip(&direct)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-12, "{worst}");
        for i in 0..d {
            for j in 0..d {
                assert_eq!(a_inv[i * d + j].to_bits(), a_inv[j * d + i].to_bits());
            }
        }
        // Removing the observations again returns to the prior.
        for x in xs.iter().take(30) {
            rank_one(&mut a, x, -1.0);
            assert!(sherman_morrison(&mut a_inv, x, -1.0, &mut u));
        }
        let direct = spd_inverse(&a, d).unwrap();
        let worst = a_inv
            .iter()
            .zip(&direct)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-10, "{worst}");
        // Removing what is not there is refused.
        let mut prior = vec![0.0; 4];
        prior[0] = 1.0;
        prior[3] = 1.0;
        assert!(!sherman_morrison(&mut prior, &[2.0, 0.0], -1.0, &mut u));
        assert_eq!(prior, [1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn jacobi_finds_the_eigenpairs() {
        let mut rng = SplitMix64::new(4);
        let d = 10;
        let a = random_spd(d, &mut rng);
        let (values, vectors) = symmetric_eigen(&a, d);
        assert!(values.windows(2).all(|w| w[0] >= w[1]));
        for r in 0..d {
            let v = &vectors[r * d..(r + 1) * d];
            let mut av = vec![0.0; d];
            mat_vec(&a, v, &mut av);
            for k in 0..d {
                assert!((av[k] - values[r] * v[k]).abs() < 1e-9);
            }
            assert!((dot64(v, v) - 1.0).abs() < 1e-12);
        }
        // Subspace iteration finds the same leading eigenvectors.
        let top = top_eigenvectors(&a, d, 3, 1);
        for r in 0..3 {
            let v = &vectors[r * d..(r + 1) * d];
            let cos = dot64(v, &top[r * d..(r + 1) * d]).abs();
            assert!((cos - 1.0).abs() < 1e-8, "{r}: {cos}");
        }
    }
}
