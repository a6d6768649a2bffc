//! Fused element-wise kernels on contiguous f32 slices and the matmul wrapper.
//!
//! Every kernel is written once as plain scalar Rust that LLVM auto-vectorises
//! (8-lane partial sums, branch-free selects) and compiled twice: a generic
//! version and an `avx2,fma` version picked at run time (`multiversion!`).
//! Numerics stay in f32; `exp` and `erfc` are polynomial approximations with a
//! relative error of a few 1e-7 (see the tests at the bottom).

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Isa {
    Avx2Fma,
    Generic,
}

/// The embedder's kernel variant: AVX2 + FMA when [`crate::simd::cpu::features`] allows it
/// (`POINTSMAN_SIMD=portable` forces the generic one).
pub(crate) fn isa() -> Isa {
    let f = crate::simd::cpu::features();
    if f.avx2 && f.fma {
        Isa::Avx2Fma
    } else {
        Isa::Generic
    }
}

/// Defines `fn $name(args)` whose body is compiled both generically and with
/// `avx2,fma` enabled, dispatching on [`isa`].
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                if isa() == Isa::Avx2Fma {
                    // SAFETY: the CPU supports avx2 and fma (checked at run time).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

#[inline(always)]
fn select(c: bool, a: f32, b: f32) -> f32 {
    if c {
        a
    } else {
        b
    }
}

/// exp(x) for f32, Cody-Waite range reduction + degree-7 (Cephes) polynomial,
/// about 1 ulp. Returns exactly 0 below -87.3 (so exp(-inf) = 0, used for
/// padded softmax lanes) and saturates at exp(88.3); branch-free so loops over
/// it vectorise.
#[inline(always)]
#[allow(clippy::excessive_precision)] // published coefficients
pub(crate) fn exp_f32(x0: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = select(x0 < -87.3, -87.3, x0);
    let x = select(x > 88.3, 88.3, x);
    // round to nearest with the 1.5 * 2^23 trick (|x * log2e| < 2^22)
    const MAGIC: f32 = 12_582_912.0;
    let shifted = x * LOG2E + MAGIC;
    let n = shifted - MAGIC;
    let r = x - n * LN2_HI;
    let r = r - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let p = p * (r * r) + r + 1.0;
    // 2^n from the integer sitting in the low mantissa bits of `shifted`
    // (integer ops only: an `as i32` cast would not vectorise).
    let bits = shifted.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23;
    select(x0 < -87.3, 0.0, p * f32::from_bits(bits))
}

/// erfc(x) (Numerical Recipes' Chebyshev fit, fractional error < 1.2e-7),
/// branch-free.
#[inline(always)]
#[allow(clippy::excessive_precision)] // published coefficients
pub(crate) fn erfc_f32(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let mut p = 0.170_872_77_f32;
    p = p * t - 0.822_152_23;
    p = p * t + 1.488_515_87;
    p = p * t - 1.135_203_98;
    p = p * t + 0.278_868_07;
    p = p * t - 0.186_288_06;
    p = p * t + 0.096_784_18;
    p = p * t + 0.374_091_96;
    p = p * t + 1.000_023_68;
    p = p * t - 1.265_512_23;
    let ans = t * exp_f32(p - z * z);
    select(x >= 0.0, ans, 2.0 - ans)
}

/// Exact-erf GELU: x * Phi(x) = 0.5 * x * erfc(-x / sqrt(2)).
#[inline(always)]
pub(crate) fn gelu_f32(x: f32) -> f32 {
    0.5 * x * erfc_f32(-x * std::f32::consts::FRAC_1_SQRT_2)
}

#[inline(always)]
fn sum8(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    let mut s = 0.0;
    for &x in it.remainder() {
        s += x;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + s
}

#[inline(always)]
fn sumsq_dev8(v: &[f32], mean: f32) -> f32 {
    let mut acc = [0f32; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for i in 0..8 {
            let d = c[i] - mean;
            acc[i] += d * d;
        }
    }
    let mut s = 0.0;
    for &x in it.remainder() {
        let d = x - mean;
        s += d * d;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + s
}

/// In-place layer norm of one row.
#[inline(always)]
fn layernorm_row(v: &mut [f32], g: &[f32], b: &[f32], eps: f32) {
    let n = v.len() as f32;
    let mean = sum8(v) / n;
    let var = sumsq_dev8(v, mean) / n;
    let rstd = 1.0 / (var + eps).sqrt();
    for ((x, &g), &b) in v.iter_mut().zip(g).zip(b) {
        *x = (*x - mean) * rstd * g + b;
    }
}

multiversion! {
    /// `h[r] = LayerNorm(h[r] + y[r])` for every row r (width = g.len()).
    pub(crate) fn residual_layernorm(h: &mut [f32], y: &[f32], g: &[f32], b: &[f32], eps: f32) {
        let w = g.len();
        for (hr, yr) in h.chunks_exact_mut(w).zip(y.chunks_exact(w)) {
            for (x, &yv) in hr.iter_mut().zip(yr) {
                *x += yv;
            }
            layernorm_row(hr, g, b, eps);
        }
    }
}

multiversion! {
    /// Embedding row `word + pos + typ`, layer-normed, written to `out`.
    pub(crate) fn embed_row(out: &mut [f32], word: &[f32], pos: &[f32], typ: &[f32], g: &[f32], b: &[f32], eps: f32) {
        for (((o, &w), &p), &t) in out.iter_mut().zip(word).zip(pos).zip(typ) {
            *o = (w + p) + t;
        }
        layernorm_row(out, g, b, eps);
    }
}

multiversion! {
    /// Row-wise softmax over the first `cols` entries of each row of width
    /// `stride`; the scores were already scaled (the 1/sqrt(d) factor is folded
    /// into the query weights). The ragged tail of a row goes through an
    /// 8-lane buffer padded with -inf (exp gives exactly 0 there), so every
    /// step is 8-wide.
    pub(crate) fn softmax_rows(s: &mut [f32], stride: usize, cols: usize) {
        for row in s.chunks_exact_mut(stride) {
            let (main, tail) = row[..cols].split_at_mut(cols / 8 * 8);
            let mut tb = [f32::NEG_INFINITY; 8];
            tb[..tail.len()].copy_from_slice(tail);
            let mut mx = tb;
            for ch in main.chunks_exact(8) {
                for i in 0..8 {
                    mx[i] = select(ch[i] > mx[i], ch[i], mx[i]);
                }
            }
            let m01 = select(mx[0] > mx[4], mx[0], mx[4]);
            let m23 = select(mx[1] > mx[5], mx[1], mx[5]);
            let m45 = select(mx[2] > mx[6], mx[2], mx[6]);
            let m67 = select(mx[3] > mx[7], mx[3], mx[7]);
            let ma = select(m01 > m23, m01, m23);
            let mb = select(m45 > m67, m45, m67);
            let m = select(ma > mb, ma, mb);
            let mut acc = [0f32; 8];
            for ch in main.chunks_exact_mut(8) {
                for i in 0..8 {
                    let e = exp_f32(ch[i] - m);
                    ch[i] = e;
                    acc[i] += e;
                }
            }
            for i in 0..8 {
                let e = exp_f32(tb[i] - m);
                tb[i] = e;
                acc[i] += e;
            }
            let inv = 1.0 / (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])));
            for v in main.iter_mut() {
                *v *= inv;
            }
            for (v, &e) in tail.iter_mut().zip(&tb) {
                *v = e * inv;
            }
        }
    }
}

multiversion! {
    /// Mean of `rows` (each `out.len()` wide) into `out`, then L2-normalised
    /// (norm clamped at 1e-12 like sentence-transformers' Normalize).
    pub(crate) fn mean_pool_normalize(rows: &[f32], out: &mut [f32]) {
        let w = out.len();
        out.fill(0.0);
        let n = rows.len() / w;
        for r in rows.chunks_exact(w) {
            for (o, &x) in out.iter_mut().zip(r) {
                *o += x;
            }
        }
        let inv_n = 1.0 / (n.max(1) as f32);
        let mut acc = [0f32; 8];
        let mut it = out.chunks_exact_mut(8);
        for c in &mut it {
            for i in 0..8 {
                c[i] *= inv_n;
                acc[i] += c[i] * c[i];
            }
        }
        let mut tail = 0.0;
        for v in it.into_remainder() {
            *v *= inv_n;
            tail += *v * *v;
        }
        let ss = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
        let norm = ss.sqrt();
        let inv = 1.0 / select(norm > 1e-12, norm, 1e-12);
        for v in out.iter_mut() {
            *v *= inv;
        }
    }
}

/// How a forward pass may use threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Par {
    /// Run on the calling thread only.
    Seq,
    /// Split the work over this many threads of the current rayon pool.
    Rayon(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf64(x: f64) -> f64 {
        // Abramowitz-Stegun 7.1.26 is too coarse for a reference; use a series /
        // continued fraction in f64 instead.
        if x.abs() < 3.0 {
            let mut sum = x;
            let mut term = x;
            let x2 = x * x;
            let mut n = 0.0;
            loop {
                n += 1.0;
                term *= -x2 / n;
                let add = term / (2.0 * n + 1.0);
                sum += add;
                if add.abs() < 1e-17 {
                    break;
                }
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc continued fraction (Lentz), x >= 3
            let z = x.abs();
            let mut f = 0.0;
            for k in (1..200).rev() {
                f = (k as f64 / 2.0) / (z + f);
            }
            let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / (z + f);
            if x > 0.0 {
                1.0 - erfc
            } else {
                erfc - 1.0
            }
        }
    }

    #[test]
    fn exp_accuracy() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = exp_f32(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "exp rel err {worst}");
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert!(exp_f32(0.0) == 1.0);
    }

    #[test]
    fn gelu_accuracy() {
        let mut worst = 0f64;
        let mut x = -12.0f32;
        while x < 12.0 {
            let got = gelu_f32(x) as f64;
            let xd = x as f64;
            let want = 0.5 * xd * (1.0 + erf64(xd / std::f64::consts::SQRT_2));
            // absolute error relative to max(|x|, 1): the scale at which GELU
            // errors reach the next matmul.
            let err = (got - want).abs() / xd.abs().max(1.0);
            worst = worst.max(err);
            x += 0.00731;
        }
        assert!(worst < 2e-7, "gelu err {worst}");
    }

    #[test]
    fn softmax_and_pool() {
        let mut s = vec![1.0, 2.0, 3.0, 99.0, 0.5, 0.5, 0.5, 99.0];
        softmax_rows(&mut s, 4, 3);
        let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).collect();
        let z: f64 = e.iter().sum();
        for i in 0..3 {
            assert!((s[i] as f64 - e[i] / z).abs() < 1e-7);
            assert!((s[4 + i] - 1.0 / 3.0).abs() < 1e-7);
        }
        assert_eq!(s[3], 99.0);
        for cols in [1usize, 7, 8, 9, 16, 30] {
            let mut r: Vec<f32> = (0..cols)
                .map(|i| ((i * 37) % 11) as f32 * 0.7 - 3.0)
                .collect();
            let want: Vec<f64> = {
                let m = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
                let e: Vec<f64> = r.iter().map(|&v| (v as f64 - m).exp()).collect();
                let z: f64 = e.iter().sum();
                e.iter().map(|v| v / z).collect()
            };
            softmax_rows(&mut r, cols, cols);
            for (g, w) in r.iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 2e-7, "cols {cols}: {g} vs {w}");
            }
        }
        let rows = [3.0f32, 0.0, 3.0, 8.0];
        let mut out = [0f32; 2];
        mean_pool_normalize(&rows, &mut out);
        assert!(
            (out[0] - 0.6).abs() < 1e-7 && (out[1] - 0.8).abs() < 1e-7,
            "{out:?}"
        );
    }
}
