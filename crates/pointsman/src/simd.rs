//! Dot products for the routing hot paths, with AVX2/FMA kernels chosen at run time on x86-64
//! and portable code elsewhere.
//!
//! The portable code keeps eight independent accumulators so the compiler can vectorise it; the
//! AVX2 kernels use four 8-lane FMA accumulators and, for batches, score four queries per pass
//! over a reference row so each row is read from memory once per four queries.

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::env::var_os("POINTSMAN_NO_SIMD").is_none()
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
            {
                return Level::Avx2Fma;
            }
        }
        Level::Portable
    })
}

/// The name of the kernel set in use (`"avx2+fma"` or `"portable"`), for benchmark reports.
pub fn kernel_name() -> &'static str {
    match level() {
        Level::Portable => "portable",
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma => "avx2+fma",
    }
}

/// `Σ a[i]·b[i]`.
///
/// # Panics
///
/// When the lengths differ.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of vectors of different lengths");
    match level() {
        Level::Portable => dot_portable(a, b),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX2 and FMA (checked by `level`); lengths are equal.
        Level::Avx2Fma => unsafe { avx2::dot(a, b) },
    }
}

/// `out[i] = ⟨row i of matrix, q⟩` for a row-major `matrix` of rows of `q.len()` values.
///
/// # Panics
///
/// When `matrix.len() != out.len() * q.len()`.
pub fn dot_rows(matrix: &[f32], q: &[f32], out: &mut [f32]) {
    let dim = q.len();
    assert_eq!(
        matrix.len(),
        out.len() * dim,
        "matrix does not hold out.len() rows of q.len()"
    );
    if dim == 0 {
        out.fill(0.0);
        return;
    }
    match level() {
        Level::Portable => {
            for (o, row) in out.iter_mut().zip(matrix.chunks_exact(dim)) {
                *o = dot_portable(row, q);
            }
        }
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma => {
            for (o, row) in out.iter_mut().zip(matrix.chunks_exact(dim)) {
                // SAFETY: AVX2 and FMA are available; row and q have length dim.
                *o = unsafe { avx2::dot(row, q) };
            }
        }
    }
}

/// Four queries at once: `out[j][i] = ⟨row i of matrix, qs[j]⟩`. Each row is read once for all
/// four queries.
///
/// # Panics
///
/// When the queries' lengths differ or `matrix.len() != rows * dim` for any output.
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
    let [o0, o1, o2, o3] = out;
    if dim == 0 {
        for o in [o0, o1, o2, o3] {
            o.fill(0.0);
        }
        return;
    }
    match level() {
        Level::Portable => {
            for (i, row) in matrix.chunks_exact(dim).enumerate() {
                o0[i] = dot_portable(row, qs[0]);
                o1[i] = dot_portable(row, qs[1]);
                o2[i] = dot_portable(row, qs[2]);
                o3[i] = dot_portable(row, qs[3]);
            }
        }
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma => {
            for (i, row) in matrix.chunks_exact(dim).enumerate() {
                // SAFETY: AVX2 and FMA are available; every slice has length dim.
                let d = unsafe { avx2::dot4(row, qs) };
                o0[i] = d[0];
                o1[i] = d[1];
                o2[i] = d[2];
                o3[i] = d[3];
            }
        }
    }
}

fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail = x.mul_add(*y, tail);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    ///
    /// AVX2 and FMA must be available and `a.len() == b.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): i + 32 <= n or i + 8 <= n bounds every load within both slices.
        while i + 32 <= n {
            for (j, a_acc) in acc.iter_mut().enumerate() {
                let x = unsafe { _mm256_loadu_ps(pa.add(i + 8 * j)) };
                let y = unsafe { _mm256_loadu_ps(pb.add(i + 8 * j)) };
                *a_acc = _mm256_fmadd_ps(x, y, *a_acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            let x = unsafe { _mm256_loadu_ps(pa.add(i)) };
            let y = unsafe { _mm256_loadu_ps(pb.add(i)) };
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            i += 8;
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut total = hsum(s);
        while i < n {
            total = a[i].mul_add(b[i], total);
            i += 1;
        }
        total
    }

    /// # Safety
    ///
    /// AVX2 and FMA must be available and every slice must have `row.len()` values.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4(row: &[f32], qs: [&[f32]; 4]) -> [f32; 4] {
        let n = row.len();
        let pr = row.as_ptr();
        let pq = [
            qs[0].as_ptr(),
            qs[1].as_ptr(),
            qs[2].as_ptr(),
            qs[3].as_ptr(),
        ];
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        let mut i = 0;
        // SAFETY (all loads): i + 16 <= n or i + 8 <= n bounds every load within the slices.
        while i + 16 <= n {
            let x0 = unsafe { _mm256_loadu_ps(pr.add(i)) };
            let x1 = unsafe { _mm256_loadu_ps(pr.add(i + 8)) };
            for (q, a) in pq.iter().zip(acc.iter_mut()) {
                let y0 = unsafe { _mm256_loadu_ps(q.add(i)) };
                let y1 = unsafe { _mm256_loadu_ps(q.add(i + 8)) };
                a[0] = _mm256_fmadd_ps(x0, y0, a[0]);
                a[1] = _mm256_fmadd_ps(x1, y1, a[1]);
            }
            i += 16;
        }
        while i + 8 <= n {
            let x = unsafe { _mm256_loadu_ps(pr.add(i)) };
            for (q, a) in pq.iter().zip(acc.iter_mut()) {
                let y = unsafe { _mm256_loadu_ps(q.add(i)) };
                a[0] = _mm256_fmadd_ps(x, y, a[0]);
            }
            i += 8;
        }
        let mut out = [0.0f32; 4];
        for j in 0..4 {
            out[j] = hsum(_mm256_add_ps(acc[j][0], acc[j][1]));
            for t in i..n {
                out[j] = row[t].mul_add(qs[j][t], out[j]);
            }
        }
        out
    }
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
    fn kernels_agree_with_naive_sums() {
        let mut rng = SplitMix64::new(5);
        for n in [0usize, 1, 7, 8, 15, 16, 31, 33, 384, 385] {
            let a: Vec<f32> = (0..n).map(|_| rng.next_f64() as f32 - 0.5).collect();
            let rows = 5;
            let m: Vec<f32> = (0..n * rows).map(|_| rng.next_f64() as f32 - 0.5).collect();
            let tol = 1e-5 * (n as f64 + 1.0);
            assert!((f64::from(dot(&a, &a)) - naive(&a, &a)).abs() < tol);
            assert!((f64::from(dot_portable(&a, &a)) - naive(&a, &a)).abs() < tol);
            let mut out = vec![0.0; rows];
            dot_rows(&m, &a, &mut out);
            let mut o4 = vec![vec![0.0; rows]; 4];
            let qs: Vec<Vec<f32>> = (0..4)
                .map(|j| m[..n].iter().map(|v| v * (j as f32 + 1.0)).collect())
                .collect();
            let [x0, x1, x2, x3] = &mut o4[..] else {
                unreachable!()
            };
            dot_rows4(&m, [&qs[0], &qs[1], &qs[2], &qs[3]], [x0, x1, x2, x3]);
            for r in 0..rows {
                let row = &m[r * n..(r + 1) * n];
                assert!((f64::from(out[r]) - naive(row, &a)).abs() < tol);
                for j in 0..4 {
                    assert!((f64::from(o4[j][r]) - naive(row, &qs[j])).abs() < 4.0 * tol);
                }
            }
        }
        assert!(["portable", "avx2+fma"].contains(&kernel_name()));
    }
}
