//! Quadratic forms `xᵀ (scale·A) x` of a symmetric matrix kept in a packed `bfloat16` copy: the
//! linear bandits' confidence widths, nine 385 × 385 forms per decision.
//!
//! # Layout
//!
//! The upper triangle (`scale·a_ii` on the diagonal, `2·scale·a_ij` for `j > i`) is padded in
//! front to a multiple of 16 rows and columns (`o = (16 − d mod 16) mod 16` zero rows and
//! columns come first, so that the padding costs one block per column block instead of a mostly
//! empty last column block read by every row) and stored column block by column block: for
//! the 16 columns of block `c`, one block of 32 values per pair of rows `(2r, 2r + 1)` that
//! reaches them, the two rows interleaved (row `2r` in the low half of each 32-bit word, row
//! `2r + 1` in the high half). Pairs made only of front padding are left out. 16-bit values
//! halve the memory a decision reads; `bfloat16` widens to `f32` by a shift, and AVX-512 BF16
//! multiplies a block by a pair of `x` values in one instruction.
//!
//! # Arithmetic
//!
//! `x` is rounded to `bfloat16` for the products, so that every product of two `bfloat16`
//! values is exact in `f32`; per column block, four accumulators take the row pairs in turn,
//! `acc = (acc + hi·x̃_{2r+1}) + lo·x̃_{2r}` with one rounding per addition (the semantics of
//! `vdpbf16ps`, checked on hardware by the tests), are summed as `(a0 + a1) + (a2 + a3)`, and
//! `Σ v_j·x_j` (with `x` itself) accumulates with fused multiply-adds per lane; a fixed
//! pairwise tree sums the 16 lanes. The portable, AVX2 + FMA and AVX-512 BF16 kernels perform
//! these IEEE operations in this order: the same bits on every CPU. (AVX-512 flushes subnormal
//! numbers to zero; values below 2⁻⁶⁰ are stored as zero so that no product is subnormal.)
//!
//! Accuracy: `bfloat16` keeps 8 significant bits. For the bandits' `λ·A⁻¹` (entries at most 1 in
//! magnitude) and unit-length features the width `sqrt(xᵀA⁻¹x)` moves by less than 0.1 % on
//! llmrouter_dc's embeddings (the entries' rounding errors mostly cancel), tested below within
//! 0.5 %.

use std::sync::OnceLock;

use super::dot::{reduce, LANES};

/// Values per block: 16 columns × 2 rows.
const BLOCK: usize = 2 * LANES;

/// Magnitudes below this are stored as zero, in the matrix and in the rounded vector, so that
/// every product is a normal number or zero (AVX-512 BF16 flushes subnormals, the other kernels
/// do not).
const TINY: f64 = 1.0 / (1u64 << 60) as f64;

/// The padded geometry of a `d × d` form.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// Zero rows and columns in front.
    front: usize,
    /// Column blocks.
    chunks: usize,
    /// First row pair with a real row.
    first_pair: usize,
}

impl Shape {
    fn new(d: usize) -> Shape {
        let front = (LANES - d % LANES) % LANES;
        Shape {
            front,
            chunks: (d + front) / LANES,
            first_pair: front / 2,
        }
    }

    /// Row pairs stored for column block `c`: those reaching its last column, minus the front
    /// padding's.
    #[inline(always)]
    fn pairs(&self, c: usize) -> std::ops::Range<usize> {
        self.first_pair..LANES / 2 * (c + 1)
    }

    fn blocks(&self) -> usize {
        (0..self.chunks).map(|c| self.pairs(c).len()).sum()
    }
}

/// `v` (finite) rounded to `f32`, then to the nearest `bfloat16` (ties to even), tiny magnitudes
/// flushed to zero: a few integer operations.
#[inline(always)]
fn to_bf16(v: f64) -> u16 {
    if v.abs() < TINY {
        return 0;
    }
    f32_to_bf16(v as f32)
}

/// [`to_bf16`] of an `f32` (the same result).
#[inline(always)]
fn f32_to_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    if bits & 0x7FFF_FFFF < TINY_F32_BITS {
        return 0;
    }
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

/// The bits of [`TINY`] as an `f32` (2⁻⁶⁰, exact): magnitudes compare as integers.
const TINY_F32_BITS: u32 = (127 - 60) << 23;

/// `bfloat16` bits as an `f32`: exact.
#[inline(always)]
fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// Length of the [`pack_quadratic_form`] layout of a `d × d` symmetric matrix (about
/// `d²/2 + 8·d` values).
pub fn quadratic_form_len(d: usize) -> usize {
    Shape::new(d).blocks() * BLOCK
}

/// Packs the symmetric row-major `d × d` matrix `scale·a` for [`quadratic_form`] into `out` (of
/// [`quadratic_form_len`]`(d)` values): its upper triangle as `bfloat16` bits in the layout of
/// the module documentation. Choose `scale` so that the entries are of order 1.
///
/// # Panics
///
/// When the lengths do not match `d`.
pub fn pack_quadratic_form(a: &[f64], d: usize, scale: f64, out: &mut [u16]) {
    assert_eq!(a.len(), d * d, "matrix is not d × d");
    assert_eq!(
        out.len(),
        quadratic_form_len(d),
        "output does not fit the layout"
    );
    let shape = Shape::new(d);
    // Entry (i, j) of the padded form.
    let entry = |i: usize, j: usize| -> u16 {
        let (Some(i), Some(j)) = (i.checked_sub(shape.front), j.checked_sub(shape.front)) else {
            return 0;
        };
        to_bf16(match j.cmp(&i) {
            std::cmp::Ordering::Less => 0.0,
            std::cmp::Ordering::Equal => scale * a[i * d + i],
            std::cmp::Ordering::Greater => 2.0 * scale * a[i * d + j],
        })
    };
    let mut blocks = out.chunks_exact_mut(BLOCK);
    for c in 0..shape.chunks {
        for r in shape.pairs(c) {
            let block = blocks.next().expect("the length is checked");
            for l in 0..LANES {
                block[2 * l] = entry(2 * r, c * LANES + l);
                block[2 * l + 1] = entry(2 * r + 1, c * LANES + l);
            }
        }
    }
}

/// One block of the layout, aligned to a cache line: a zmm load of a block then touches one
/// line instead of two.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Block([u16; BLOCK]);

/// Packed forms of `count` symmetric `d × d` matrices in one buffer whose every form starts on a
/// cache line ([`quadratic_form_len`] is a whole number of 64-byte blocks), for
/// [`pack_quadratic_form`] and [`quadratic_form_prepared`].
#[derive(Clone)]
pub struct PackedForms {
    blocks: Vec<Block>,
    /// Blocks per form.
    per: usize,
}

impl PackedForms {
    /// `count` forms of `d × d` matrices, all zero.
    pub fn new(count: usize, d: usize) -> PackedForms {
        let per = quadratic_form_len(d) / BLOCK;
        PackedForms {
            blocks: vec![Block([0; BLOCK]); count * per],
            per,
        }
    }

    /// Form `i`'s values.
    ///
    /// # Panics
    ///
    /// When `i` is out of range.
    pub fn form(&self, i: usize) -> &[u16] {
        let blocks = &self.blocks[i * self.per..(i + 1) * self.per];
        // SAFETY: `Block` is `repr(C)` around `[u16; BLOCK]`, 64 bytes with no padding, so
        // `blocks` is `blocks.len() * BLOCK` initialised, suitably aligned `u16`s, borrowed
        // for the returned slice's lifetime.
        unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<u16>(), blocks.len() * BLOCK) }
    }

    /// Form `i`'s values, to pack into.
    ///
    /// # Panics
    ///
    /// When `i` is out of range.
    pub fn form_mut(&mut self, i: usize) -> &mut [u16] {
        let blocks = &mut self.blocks[i * self.per..(i + 1) * self.per];
        // SAFETY: as in `form`, and the slice borrows `blocks` mutably and exclusively.
        unsafe {
            std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<u16>(), blocks.len() * BLOCK)
        }
    }
}

impl std::fmt::Debug for PackedForms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedForms")
            .field(
                "forms",
                &self.blocks.len().checked_div(self.per).unwrap_or(0),
            )
            .field("blocks_per_form", &self.per)
            .finish()
    }
}

/// A vector prepared for [`quadratic_form_prepared`]: rounded and padded once for every matrix
/// it is multiplied with.
#[derive(Debug, Clone)]
pub struct FormVector {
    d: usize,
    /// Per padded row pair, `x̃_{2r}` in the low half and `x̃_{2r+1}` in the high half.
    pairs: Vec<u32>,
    /// The same values as `f32`, two per pair (for the AVX2 kernel's broadcasts).
    rounded: Vec<f32>,
    /// `x` padded in front.
    padded: Vec<f32>,
}

impl FormVector {
    /// Prepares `x` (finite values).
    pub fn new(x: &[f32]) -> FormVector {
        let d = x.len();
        let shape = Shape::new(d);
        let mut padded = vec![0f32; d + shape.front];
        padded[shape.front..].copy_from_slice(x);
        let pairs: Vec<u32> = padded
            .chunks_exact(2)
            .map(|p| u32::from(f32_to_bf16(p[0])) | u32::from(f32_to_bf16(p[1])) << 16)
            .collect();
        let rounded = if form_kernel() == Kernel::Avx2Fma {
            pairs
                .iter()
                .flat_map(|&w| [f32::from_bits(w << 16), f32::from_bits(w & 0xFFFF_0000)])
                .collect()
        } else {
            Vec::new()
        };
        FormVector {
            d,
            pairs,
            rounded,
            padded,
        }
    }

    /// The vector's length.
    pub fn len(&self) -> usize {
        self.d
    }

    /// Whether the vector is empty.
    pub fn is_empty(&self) -> bool {
        self.d == 0
    }
}

/// The quadratic form `xᵀ (scale·A) x` of a symmetric matrix packed by [`pack_quadratic_form`]:
/// one pass over its packed upper triangle, no allocation beyond preparing `x`. Bit-identical on
/// every CPU (see the module documentation).
///
/// # Panics
///
/// When `packed` does not have the layout's length for `d = x.len()`.
pub fn quadratic_form(packed: &[u16], x: &[f32]) -> f64 {
    quadratic_form_prepared(packed, &FormVector::new(x))
}

/// [`quadratic_form`] with `x` prepared once for several matrices.
///
/// # Panics
///
/// When `packed` does not have the layout's length for `x`'s dimension.
pub fn quadratic_form_prepared(packed: &[u16], x: &FormVector) -> f64 {
    assert_eq!(
        packed.len(),
        quadratic_form_len(x.d),
        "packed matrix does not match the vector"
    );
    #[cfg(target_arch = "x86_64")]
    match form_kernel() {
        // SAFETY: the CPU supports AVX-512F and AVX-512 BF16; the length is checked above.
        Kernel::Avx512Bf16 => return unsafe { x86::bf16(packed, x) },
        // SAFETY: the CPU supports AVX2 and FMA; the length is checked above, and `x` was
        // prepared for this kernel (`rounded` is filled).
        Kernel::Avx2Fma => return unsafe { x86::avx2(packed, x) },
        Kernel::Portable => {}
    }
    portable(packed, x)
}

/// The kernel [`quadratic_form`] uses on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Avx512Bf16,
    Avx2Fma,
    Portable,
}

fn form_kernel() -> Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        let f = super::cpu::features();
        if f.avx2 && f.avx512f && f.avx512bf16 {
            return Kernel::Avx512Bf16;
        }
        if f.avx2 && f.fma {
            return Kernel::Avx2Fma;
        }
        Kernel::Portable
    })
}

/// The name of the quadratic-form kernel in use (`"avx512-bf16"`, `"avx2-fma"` or
/// `"portable"`), for benchmark reports.
pub fn quadratic_form_kernel() -> &'static str {
    match form_kernel() {
        Kernel::Avx512Bf16 => "avx512-bf16",
        Kernel::Avx2Fma => "avx2-fma",
        Kernel::Portable => "portable",
    }
}

/// The reference kernel.
fn portable(packed: &[u16], x: &FormVector) -> f64 {
    let shape = Shape::new(x.d);
    let mut total = [0f32; LANES];
    let mut blocks = packed.chunks_exact(BLOCK);
    for c in 0..shape.chunks {
        let mut acc = [[0f32; LANES]; 4];
        for (k, r) in shape.pairs(c).enumerate() {
            let block = blocks.next().expect("the layout's length is checked");
            let pair = x.pairs[r];
            let (lo, hi) = (bf16_to_f32(pair as u16), bf16_to_f32((pair >> 16) as u16));
            let a = &mut acc[k % 4];
            for l in 0..LANES {
                a[l] = bf16_to_f32(block[2 * l + 1]).mul_add(hi, a[l]);
                a[l] = bf16_to_f32(block[2 * l]).mul_add(lo, a[l]);
            }
        }
        for l in 0..LANES {
            let v = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
            total[l] = v.mul_add(x.padded[c * LANES + l], total[l]);
        }
    }
    f64::from(reduce(total))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{reduce, FormVector, Shape, BLOCK, LANES};
    use std::arch::x86_64::*;

    /// The reference kernel with AVX2 and FMA, eight lanes per register.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2 and FMA; `packed` must have the layout's length and `x` must
    /// have been prepared while this kernel was the one in use.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(packed: &[u16], x: &FormVector) -> f64 {
        let shape = Shape::new(x.d);
        assert!(
            packed.len() >= shape.blocks() * BLOCK && x.rounded.len() == x.padded.len(),
            "the layout's length is checked and x is prepared for this kernel"
        );
        let (xq, xp) = (x.rounded.as_ptr(), x.padded.as_ptr());
        // SAFETY: the loop reads exactly `shape.blocks()` blocks of `packed` (checked above),
        // `rounded[2r + 1]` for pairs `r < chunks·8 = rounded.len() / 2`, and 16 values of
        // `padded` at `c·16` for `c < chunks`; the loads are unaligned; the caller guarantees
        // AVX2 and FMA.
        unsafe {
            let high = _mm256_set1_epi32(0xFFFF_0000_u32 as i32);
            let mut t0 = _mm256_setzero_ps();
            let mut t1 = _mm256_setzero_ps();
            let mut p = packed.as_ptr();
            for c in 0..shape.chunks {
                // Four accumulator pairs in named registers (an array indexed by the pair
                // would live on the stack): lanes 0–7 in `aK0`, 8–15 in `aK1`.
                let z = _mm256_setzero_ps();
                let (mut a00, mut a01, mut a10, mut a11) = (z, z, z, z);
                let (mut a20, mut a21, mut a30, mut a31) = (z, z, z, z);
                let pairs = shape.pairs(c);
                let (mut r, end, mut k) = (pairs.start, pairs.end, 0usize);
                // One row pair into the accumulator pair (`$a0`, `$a1`).
                macro_rules! pair {
                    ($a0:ident, $a1:ident) => {{
                        let lo = _mm256_broadcast_ss(&*xq.add(2 * r));
                        let hi = _mm256_broadcast_ss(&*xq.add(2 * r + 1));
                        let w0 = _mm256_loadu_si256(p.cast::<__m256i>());
                        let w1 = _mm256_loadu_si256(p.add(LANES).cast::<__m256i>());
                        let h0 = _mm256_castsi256_ps(_mm256_and_si256(w0, high));
                        let h1 = _mm256_castsi256_ps(_mm256_and_si256(w1, high));
                        let l0 = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(w0));
                        let l1 = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(w1));
                        $a0 = _mm256_fmadd_ps(l0, lo, _mm256_fmadd_ps(h0, hi, $a0));
                        $a1 = _mm256_fmadd_ps(l1, lo, _mm256_fmadd_ps(h1, hi, $a1));
                        p = p.add(BLOCK);
                        r += 1;
                        k += 1;
                    }};
                }
                while r + 4 <= end {
                    pair!(a00, a01);
                    pair!(a10, a11);
                    pair!(a20, a21);
                    pair!(a30, a31);
                }
                while r < end {
                    match k % 4 {
                        0 => pair!(a00, a01),
                        1 => pair!(a10, a11),
                        2 => pair!(a20, a21),
                        _ => pair!(a30, a31),
                    }
                }
                let v0 = _mm256_add_ps(_mm256_add_ps(a00, a10), _mm256_add_ps(a20, a30));
                let v1 = _mm256_add_ps(_mm256_add_ps(a01, a11), _mm256_add_ps(a21, a31));
                let xc = xp.add(c * LANES);
                t0 = _mm256_fmadd_ps(v0, _mm256_loadu_ps(xc), t0);
                t1 = _mm256_fmadd_ps(v1, _mm256_loadu_ps(xc.add(8)), t1);
            }
            let mut total = [0f32; LANES];
            _mm256_storeu_ps(total.as_mut_ptr(), t0);
            _mm256_storeu_ps(total.as_mut_ptr().add(8), t1);
            f64::from(reduce(total))
        }
    }

    /// The reference kernel with AVX-512 BF16: one `vdpbf16ps` per block (its step is the
    /// reference kernel's `acc = (acc + hi·x̃_{2r+1}) + lo·x̃_{2r}`).
    ///
    /// # Safety
    ///
    /// The CPU must support AVX-512F and AVX-512 BF16; `packed` must have the layout's length.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn bf16(packed: &[u16], x: &FormVector) -> f64 {
        let shape = Shape::new(x.d);
        assert!(
            packed.len() >= shape.blocks() * BLOCK,
            "the layout's length is checked"
        );
        let (xw, xp) = (x.pairs.as_ptr(), x.padded.as_ptr());
        // SAFETY: as in `avx2`: every block read lies within `packed`, every pair read within
        // `pairs` (`r < chunks·8 = pairs.len()`) and every column block within `padded`; the
        // caller guarantees AVX-512F and AVX-512 BF16. `__m512bh` and `__m512i` are both 64
        // plain bytes.
        unsafe {
            let mut total = _mm512_setzero_ps();
            let mut p = packed.as_ptr();
            for c in 0..shape.chunks {
                let z = _mm512_setzero_ps();
                let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
                let pairs = shape.pairs(c);
                let (mut r, end, mut k) = (pairs.start, pairs.end, 0usize);
                macro_rules! pair {
                    ($a:ident) => {{
                        let w: __m512bh = std::mem::transmute(_mm512_loadu_si512(p.cast()));
                        let xr: __m512bh =
                            std::mem::transmute(_mm512_set1_epi32(*xw.add(r) as i32));
                        $a = _mm512_dpbf16_ps($a, w, xr);
                        p = p.add(BLOCK);
                        r += 1;
                        k += 1;
                    }};
                }
                while r + 4 <= end {
                    pair!(a0);
                    pair!(a1);
                    pair!(a2);
                    pair!(a3);
                }
                while r < end {
                    match k % 4 {
                        0 => pair!(a0),
                        1 => pair!(a1),
                        2 => pair!(a2),
                        _ => pair!(a3),
                    }
                }
                let v = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
                total = _mm512_fmadd_ps(v, _mm512_loadu_ps(xp.add(c * LANES)), total);
            }
            let mut out = [0f32; LANES];
            _mm512_storeu_ps(out.as_mut_ptr(), total);
            f64::from(reduce(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Every kernel this CPU can run gives the reference kernel's bits.
    fn assert_same_on_every_kernel(packed: &[u16], x: &[f32]) {
        let prepared = FormVector::new(x);
        let reference = portable(packed, &prepared).to_bits();
        assert_eq!(quadratic_form(packed, x).to_bits(), reference);
        #[cfg(target_arch = "x86_64")]
        {
            let hw = crate::simd::cpu::hardware();
            if hw.avx2 && hw.fma {
                let mut for_avx2 = prepared.clone();
                for_avx2.rounded = for_avx2
                    .pairs
                    .iter()
                    .flat_map(|&w| [f32::from_bits(w << 16), f32::from_bits(w & 0xFFFF_0000)])
                    .collect();
                // SAFETY: the CPU supports AVX2 and FMA; the layout matches; `rounded` is
                // filled.
                let q = unsafe { x86::avx2(packed, &for_avx2) };
                assert_eq!(q.to_bits(), reference, "AVX2 kernel, d = {}", x.len());
            }
            if hw.avx512f && hw.avx512bf16 {
                // SAFETY: the CPU supports AVX-512F and BF16; the layout matches.
                let q = unsafe { x86::bf16(packed, &prepared) };
                assert_eq!(
                    q.to_bits(),
                    reference,
                    "AVX-512 BF16 kernel, d = {}",
                    x.len()
                );
            }
        }
    }

    #[test]
    fn random_symmetric_matrices() {
        let mut rng = SplitMix64::new(11);
        for d in [1usize, 2, 3, 15, 16, 17, 31, 40, 385] {
            let full: Vec<f64> = (0..d * d).map(|_| rng.next_f64() - 0.5).collect();
            let sym: Vec<f64> = (0..d * d)
                .map(|k| 0.5 * (full[k] + full[(k % d) * d + k / d]))
                .collect();
            let x: Vec<f32> = (0..d).map(|_| rng.next_f64() as f32 - 0.5).collect();
            let mut packed = vec![0u16; quadratic_form_len(d)];
            pack_quadratic_form(&sym, d, 1.0, &mut packed);
            let mut exact = 0.0;
            for i in 0..d {
                for j in 0..d {
                    exact += f64::from(x[i]) * sym[i * d + j] * f64::from(x[j]);
                }
            }
            let q = quadratic_form(&packed, &x);
            assert!((q - exact).abs() < 1e-2 * d as f64, "{d}: {q} vs {exact}");
            assert_same_on_every_kernel(&packed, &x);
        }
    }

    #[test]
    fn packed_forms_are_cache_line_aligned_and_separate() {
        let mut forms = PackedForms::new(3, 385);
        for i in 0..3 {
            assert_eq!(forms.form(i).as_ptr() as usize % 64, 0);
            assert_eq!(forms.form(i).len(), quadratic_form_len(385));
        }
        forms.form_mut(1).fill(7);
        assert!(forms.form(0).iter().chain(forms.form(2)).all(|&v| v == 0));
        assert!(forms.form(1).iter().all(|&v| v == 7));
        let copy = forms.clone();
        assert_eq!(copy.form(1), forms.form(1));
        assert_eq!(copy.form(2).as_ptr() as usize % 64, 0);
    }

    #[test]
    fn layout_size() {
        // 385 = the bandits' 384 dimensions plus a bias: within 5 % of the upper triangle.
        let tri = 385 * 386 / 2;
        let len = quadratic_form_len(385);
        assert!(
            len >= tri && (len as f64) < 1.05 * tri as f64,
            "{len} vs {tri}"
        );
        assert_eq!(quadratic_form_len(16) % BLOCK, 0);
    }

    #[test]
    fn ridge_inverse_widths_are_accurate_and_the_same_on_every_kernel() {
        // The bandits' case: λ·A⁻¹ with A = λI + Σ φφᵀ, unit-length φ plus a bias.
        let mut rng = SplitMix64::new(3);
        for (d, n) in [(9usize, 5usize), (33, 100), (385, 400)] {
            let rows: Vec<Vec<f64>> = (0..n)
                .map(|_| {
                    let mut v: Vec<f64> = (0..d - 1).map(|_| rng.normal()).collect();
                    let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
                    v.iter_mut().for_each(|a| *a /= norm);
                    v.push(1.0);
                    v
                })
                .collect();
            let lambda = 10.0;
            let mut a_inv: Vec<f64> = (0..d * d)
                .map(|k| if k % (d + 1) == 0 { 1.0 / lambda } else { 0.0 })
                .collect();
            for phi in &rows {
                // Sherman–Morrison: A⁻¹ −= (A⁻¹φ)(A⁻¹φ)ᵀ / (1 + φᵀA⁻¹φ).
                let u: Vec<f64> = (0..d)
                    .map(|i| (0..d).map(|j| a_inv[i * d + j] * phi[j]).sum())
                    .collect();
                let den = 1.0 + phi.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>();
                for i in 0..d {
                    for j in 0..d {
                        a_inv[i * d + j] -= u[i] * u[j] / den;
                    }
                }
            }
            let mut packed = vec![0u16; quadratic_form_len(d)];
            pack_quadratic_form(&a_inv, d, lambda, &mut packed);
            for phi in rows.iter().take(50) {
                let x: Vec<f32> = phi.iter().map(|&v| v as f32).collect();
                let mut exact = 0.0;
                for i in 0..d {
                    for j in 0..d {
                        exact += phi[i] * a_inv[i * d + j] * phi[j];
                    }
                }
                let q = quadratic_form(&packed, &x) / lambda;
                let rel = (q.sqrt() - exact.sqrt()).abs() / exact.sqrt();
                assert!(rel < 5e-3, "d = {d}: {q} vs {exact} ({rel:.1e})");
                assert_same_on_every_kernel(&packed, &x);
            }
        }
    }

    #[test]
    fn tiny_values_are_zero_and_rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1e-30), 0);
        assert_eq!(to_bf16(-1e-30), 0);
        assert_eq!(bf16_to_f32(to_bf16(1.0)), 1.0);
        // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties to even (1).
        assert_eq!(bf16_to_f32(to_bf16(1.0 + 1.0 / 256.0)), 1.0);
        assert_eq!(bf16_to_f32(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 2.0 / 128.0);
        assert_eq!(bf16_to_f32(to_bf16(-2.5)), -2.5);
        let mut rng = SplitMix64::new(9);
        for _ in 0..10_000 {
            let v = (rng.normal() * 2f64.powi((rng.next_u64() % 140) as i32 - 70)) as f32;
            assert_eq!(f32_to_bf16(v), to_bf16(f64::from(v)), "{v:e}");
        }
        assert_eq!(f32_to_bf16(2f32.powi(-60)), to_bf16(2f64.powi(-60)));
        assert_ne!(f32_to_bf16(2f32.powi(-60)), 0);
        assert_eq!(f32_to_bf16(2f32.powi(-61)), 0);
    }
}
