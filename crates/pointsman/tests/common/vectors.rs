//! Seeded random unit vectors for the HNSW tests.

pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    pub fn gauss(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// `n` random unit vectors of dimension `dim`, row-major.
pub fn random_unit(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed);
    let mut out = Vec::with_capacity(n * dim);
    let mut v = vec![0f64; dim];
    for _ in 0..n {
        let mut norm = 0.0;
        for x in v.iter_mut() {
            *x = r.gauss();
            norm += *x * *x;
        }
        let inv = 1.0 / norm.sqrt();
        out.extend(v.iter().map(|x| (x * inv) as f32));
    }
    out
}

/// Clustered unit vectors (mixture of `c` Gaussian blobs around random
/// centres), closer to real embedding data than uniform noise.
pub fn clustered_unit(n: usize, dim: usize, c: usize, spread: f64, seed: u64) -> Vec<f32> {
    let centres = random_unit(c, dim, seed ^ 0xC1);
    let mut r = Rng(seed);
    let mut out = Vec::with_capacity(n * dim);
    let mut v = vec![0f64; dim];
    for _ in 0..n {
        let k = (r.next_u64() % c as u64) as usize;
        let mut norm = 0.0;
        for (j, x) in v.iter_mut().enumerate() {
            *x = centres[k * dim + j] as f64 + spread * r.gauss() / (dim as f64).sqrt();
            norm += *x * *x;
        }
        let inv = 1.0 / norm.sqrt();
        out.extend(v.iter().map(|x| (x * inv) as f32));
    }
    out
}

/// Unit vectors with low intrinsic dimension, like real sentence embeddings:
/// `normalise(A·z + noise)` with `z` standard normal in `k` dims, `A` a fixed
/// random `dim × k` matrix and isotropic noise of total norm ≈ `noise`.
pub fn lowdim_unit(n: usize, dim: usize, k: usize, noise: f64, seed: u64) -> Vec<f32> {
    let mut ra = Rng(0x10D1);
    let a: Vec<f64> = (0..dim * k)
        .map(|_| ra.gauss() / (k as f64).sqrt())
        .collect();
    let mut r = Rng(seed);
    let mut out = Vec::with_capacity(n * dim);
    let mut z = vec![0f64; k];
    let mut v = vec![0f64; dim];
    for _ in 0..n {
        z.iter_mut().for_each(|x| *x = r.gauss());
        let mut norm = 0.0;
        for (j, x) in v.iter_mut().enumerate() {
            let mut s = 0.0;
            for (t, zt) in z.iter().enumerate() {
                s += a[j * k + t] * zt;
            }
            *x = s + noise * r.gauss() / (dim as f64).sqrt() * (k as f64).sqrt();
            norm += *x * *x;
        }
        let inv = 1.0 / norm.sqrt();
        out.extend(v.iter().map(|x| (x * inv) as f32));
    }
    out
}
