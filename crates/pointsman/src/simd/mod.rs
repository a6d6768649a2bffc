//! Dot products for the routing hot paths, bit-identical on every CPU.
//!
//! One portable kernel keeps 16 independent partial sums (two AVX2 registers) and reduces them
//! with a fixed pairwise tree. The same source is compiled twice, for the baseline target and
//! with AVX2 enabled, and the variant is chosen once at run time. Rust never fuses `a·b + c`
//! into an FMA and never reorders float additions, so every variant performs the same IEEE
//! operations in the same order: **a router makes the same decisions on every machine**, from
//! Rust, Python or C. (An FMA kernel would be a few percent faster on scans that are bound by
//! memory bandwidth anyway, at the price of that guarantee.)
//!
//! [`quadratic_form`] (the linear bandits' confidence widths, module `form`) keeps the rule its
//! own way: it fuses its multiply-adds explicitly in every variant (`f32::mul_add` is correctly
//! rounded everywhere), so all of them still perform the same IEEE operations.
//!
//! [`PackedMatrix`] (many rows through one small matrix, module `project`) fuses its
//! multiply-adds the same way, one chain per output in column order, on every CPU.
//!
//! [`dot_rows4`] scores four queries per pass over a reference matrix, so each row is read from
//! memory once per four queries; per query it performs exactly the operations of [`dot`].

//!
//! # CPU dispatch
//!
//! [`cpu`] detects the CPU's vector units once for every kernel of the crate — these, the int8
//! prefilter of kNN, and the embedder's — and honours one override, `POINTSMAN_SIMD`
//! (`native`, `avx2`, `portable`).

pub mod cpu;
mod dot;
mod form;
mod project;

pub(crate) use dot::all_finite;
pub use dot::{dot, dot_rows, dot_rows4, kernel_name};
pub use form::{
    pack_quadratic_form, quadratic_form, quadratic_form_kernel, quadratic_form_len,
    quadratic_form_prepared, FormVector, PackedForms,
};
pub use project::PackedMatrix;
