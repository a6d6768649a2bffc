//! Spherical k-means on unit vectors, seeded and deterministic.

use crate::rng::SplitMix64;
use crate::simd;

/// `k` unit centroids (`[k, dim]`) of the unit rows of `rows` (at least `k` of them): k-means++
/// seeding on the cosine distance `1 − ⟨x, c⟩`, then `iterations` Lloyd steps that assign each
/// row to its most similar centroid and set each centroid to the normalised sum of its rows (an
/// emptied cluster keeps its centroid). Ties go to the lower index.
pub(crate) fn spherical_kmeans(
    rows: &[f32],
    dim: usize,
    k: usize,
    iterations: usize,
    seed: u64,
) -> Vec<f32> {
    let n = rows.len() / dim;
    let row = |i: usize| &rows[i * dim..(i + 1) * dim];
    let mut rng = SplitMix64::new(seed);
    let mut centroids: Vec<f32> = Vec::with_capacity(k * dim);
    centroids.extend_from_slice(row(rng.below(n)));
    let mut best = vec![f32::NEG_INFINITY; n];
    let mut dist = vec![0.0f64; n];
    for j in 1..k {
        let last = &centroids[(j - 1) * dim..j * dim];
        let mut total = 0.0;
        for i in 0..n {
            best[i] = best[i].max(simd::dot(row(i), last));
            dist[i] = (1.0 - f64::from(best[i])).max(0.0);
            total += dist[i];
        }
        let pick = if total > 0.0 {
            let target = rng.next_f64() * total;
            let mut acc = 0.0;
            let mut chosen = n - 1;
            for (i, d) in dist.iter().enumerate() {
                acc += d;
                if acc > target && *d > 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        } else {
            rng.below(n)
        };
        centroids.extend_from_slice(row(pick));
    }
    let mut sims = vec![0.0f32; k];
    let mut sums = vec![0.0f64; k * dim];
    let mut counts = vec![0usize; k];
    for _ in 0..iterations {
        sums.fill(0.0);
        counts.fill(0);
        for i in 0..n {
            let x = row(i);
            let c = nearest(&centroids, x, &mut sims);
            counts[c] += 1;
            for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(x) {
                *s += f64::from(v);
            }
        }
        for c in 0..k {
            let s = &sums[c * dim..(c + 1) * dim];
            let norm = s.iter().map(|v| v * v).sum::<f64>().sqrt();
            if counts[c] > 0 && norm > 0.0 {
                for (o, &v) in centroids[c * dim..(c + 1) * dim].iter_mut().zip(s) {
                    *o = (v / norm) as f32;
                }
            }
        }
    }
    centroids
}

/// Index of the centroid most similar to `x` (ties to the lower index); `sims` is scratch of
/// length `k`.
pub(crate) fn nearest(centroids: &[f32], x: &[f32], sims: &mut [f32]) -> usize {
    simd::dot_rows(centroids, x, sims);
    let mut best = 0;
    for (c, &s) in sims.iter().enumerate() {
        if s > sims[best] {
            best = c;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_obvious_groups_deterministically() {
        // Three tight groups around the axes of R³.
        let mut rows = Vec::new();
        let mut rng = SplitMix64::new(1);
        for i in 0..90 {
            let mut v = [0.05f32 * (rng.next_f64() as f32 - 0.5); 3];
            v[i % 3] = 1.0;
            let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
            rows.extend(v.iter().map(|a| a / n));
        }
        let c = spherical_kmeans(&rows, 3, 3, 10, 7);
        assert_eq!(c, spherical_kmeans(&rows, 3, 3, 10, 7));
        let mut sims = vec![0.0; 3];
        let mut seen = [false; 3];
        for axis in 0..3 {
            let mut e = [0.0f32; 3];
            e[axis] = 1.0;
            let j = nearest(&c, &e, &mut sims);
            assert!(sims[j] > 0.99, "{sims:?}");
            seen[j] = true;
        }
        assert_eq!(seen, [true; 3]);
        // Duplicates only: seeding still returns k centroids.
        let same = [1.0f32, 0.0, 1.0, 0.0];
        assert_eq!(spherical_kmeans(&same, 2, 2, 3, 0).len(), 4);
    }
}
