//! BERT weights (loaded with candle from `model.safetensors`) and the lean
//! forward pass.
//!
//! The forward works on *packed* sequences: the tokens of all sequences of a
//! chunk are stacked into one `[T, hidden]` matrix (T = sum of lengths, no
//! padding rows), every per-token op (projections, GELU, layer norm) runs on
//! that matrix, and attention runs per sequence and head over exactly that
//! sequence's rows. This is numerically the same as "pad to the longest and
//! mask the padding" (masked keys get probability exactly 0 in f32), without
//! the wasted work on padding.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::config::{format_err, BertConfig};
use super::kernels::{self, Par};
use super::matmul::{self, Arena, PackedLinear};
use crate::Result;

pub(crate) struct Layer {
    /// Fused QKV projection `[3H]` = [query * 1/sqrt(d) | key | value].
    qkv: PackedLinear,
    out: PackedLinear,
    ln1_g: Vec<f32>,
    ln1_b: Vec<f32>,
    ff1: PackedLinear,
    ff2: PackedLinear,
    ln2_g: Vec<f32>,
    ln2_b: Vec<f32>,
}

pub(crate) struct Bert {
    pub cfg: BertConfig,
    word: Vec<f32>,
    pos: Vec<f32>,
    typ0: Vec<f32>,
    emb_g: Vec<f32>,
    emb_b: Vec<f32>,
    layers: Vec<Layer>,
    /// All packed projection weights.
    arena: Arena,
}

/// Values of each tensor in [`TensorSource::content_digest`].
const CONTENT_SAMPLES: usize = 257;

/// The tensors of a `model.safetensors` file, read once with candle; each backend takes
/// what it needs from it, checked against `config.json`, and the rest is dropped with it.
pub(crate) struct TensorSource<'a> {
    path: &'a Path,
    map: HashMap<String, Tensor>,
    prefix: &'static str,
}

impl<'a> TensorSource<'a> {
    /// Reads the file; tensor names may carry a `bert.` prefix.
    pub(crate) fn open(path: &'a Path) -> Result<TensorSource<'a>> {
        let map = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| format_err(path, format!("cannot read safetensors: {e}")))?;
        let prefix = if map.contains_key("embeddings.word_embeddings.weight") {
            ""
        } else if map.contains_key("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            return Err(format_err(
                path,
                "missing tensor embeddings.word_embeddings.weight",
            ));
        };
        Ok(TensorSource { path, map, prefix })
    }

    /// sha256 (hex) of the raw little-endian f32 bytes of `embeddings.LayerNorm.weight`,
    /// used to recognise known models cheaply.
    pub(crate) fn fingerprint(&self, hidden: usize) -> Result<String> {
        let g = self.get("embeddings.LayerNorm.weight", &[hidden])?;
        let mut hasher = Sha256::new();
        for x in &g {
            hasher.update(x.to_le_bytes());
        }
        Ok(hex(&hasher.finalize()))
    }

    /// sha256 (hex) of a sample of every tensor: for each tensor in the order of its name, the
    /// name, the shape and [`CONTENT_SAMPLES`] values spread evenly over it (all of a smaller
    /// one), as little-endian `f32`. With [`Self::fingerprint`] it recognises a known model:
    /// another model that shares its embedding layer norm (a fine-tune that froze it, a copy
    /// with changed weights) differs here. Costs a copy of each tensor (about the file's size,
    /// which the load reads anyway), not a hash of the whole 90 MB file.
    pub(crate) fn content_digest(&self) -> Result<String> {
        let mut names: Vec<&String> = self.map.keys().collect();
        names.sort();
        let mut hasher = Sha256::new();
        for name in names {
            let t = &self.map[name];
            hasher.update((name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            for d in t.dims() {
                hasher.update((*d as u64).to_le_bytes());
            }
            let values = t
                .flatten_all()
                .and_then(|t| t.to_dtype(DType::F32))
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| format_err(self.path, format!("tensor {name}: {e}")))?;
            let n = values.len();
            let picks = n.min(CONTENT_SAMPLES);
            for i in 0..picks {
                hasher.update(values[i * n / picks].to_le_bytes());
            }
        }
        Ok(hex(&hasher.finalize()))
    }

    /// Tensor `name` (after the prefix) as a contiguous `f32` CPU tensor of exactly `shape`,
    /// with every value finite.
    pub(crate) fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let v = self.get(name, shape)?;
        Tensor::from_vec(v, shape, &Device::Cpu)
            .map_err(|e| format_err(self.path, format!("tensor {}{name}: {e}", self.prefix)))
    }

    /// Tensor `name` (after the prefix) as row-major `f32` values, checked as [`Self::tensor`].
    pub(crate) fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let full = format!("{}{}", self.prefix, name);
        let t = self
            .map
            .get(&full)
            .ok_or_else(|| format_err(self.path, format!("missing tensor {full}")))?;
        if t.dims() != shape {
            return Err(format_err(
                self.path,
                format!(
                    "tensor {full} has shape {:?} but config.json implies {:?}",
                    t.dims(),
                    shape
                ),
            ));
        }
        let t = match t.dtype() {
            DType::F32 => t.clone(),
            DType::F16 | DType::BF16 | DType::F64 => t
                .to_dtype(DType::F32)
                .map_err(|e| format_err(self.path, format!("tensor {full}: {e}")))?,
            other => {
                return Err(format_err(
                    self.path,
                    format!("tensor {full} has dtype {other:?}, expected a float type"),
                ))
            }
        };
        let v = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| format_err(self.path, format!("tensor {full}: {e}")))?;
        if let Some(bad) = v.iter().position(|x| !x.is_finite()) {
            return Err(format_err(
                self.path,
                format!("tensor {full} has a non-finite value at index {bad}"),
            ));
        }
        Ok(v)
    }
}

impl Bert {
    /// Packs the weights for the lean kernels.
    pub(crate) fn from_source(src: &TensorSource<'_>, cfg: BertConfig) -> Result<Bert> {
        let h = cfg.hidden;
        let i = cfg.intermediate;
        let word = src.get("embeddings.word_embeddings.weight", &[cfg.vocab, h])?;
        let pos = src.get(
            "embeddings.position_embeddings.weight",
            &[cfg.max_positions, h],
        )?;
        let typ = src.get(
            "embeddings.token_type_embeddings.weight",
            &[cfg.type_vocab, h],
        )?;
        let emb_g = src.get("embeddings.LayerNorm.weight", &[h])?;
        let emb_b = src.get("embeddings.LayerNorm.bias", &[h])?;
        // 1/sqrt(d) folded into the query projection (exact for d a power of 4).
        let scale = 1.0 / (cfg.head_dim as f32).sqrt();
        let per_layer = PackedLinear::arena_len(3 * h, h)
            + PackedLinear::arena_len(h, h)
            + PackedLinear::arena_len(i, h)
            + PackedLinear::arena_len(h, i);
        let mut arena = Arena::new(per_layer * cfg.layers);
        let mut cur = 0;
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = format!("encoder.layer.{l}.");
            let g = |n: &str, shape: &[usize]| src.get(&format!("{p}{n}"), shape);
            let mut wq = g("attention.self.query.weight", &[h, h])?;
            let mut bq = g("attention.self.query.bias", &[h])?;
            wq.iter_mut().chain(bq.iter_mut()).for_each(|x| *x *= scale);
            let wk = g("attention.self.key.weight", &[h, h])?;
            let bk = g("attention.self.key.bias", &[h])?;
            let wv = g("attention.self.value.weight", &[h, h])?;
            let bv = g("attention.self.value.bias", &[h])?;
            let a = &mut arena;
            let c = &mut cur;
            layers.push(Layer {
                qkv: PackedLinear::new_in(
                    a,
                    c,
                    &[wq, wk, wv].concat(),
                    &[bq, bk, bv].concat(),
                    3 * h,
                    h,
                ),
                out: PackedLinear::new_in(
                    a,
                    c,
                    &g("attention.output.dense.weight", &[h, h])?,
                    &g("attention.output.dense.bias", &[h])?,
                    h,
                    h,
                ),
                ln1_g: g("attention.output.LayerNorm.weight", &[h])?,
                ln1_b: g("attention.output.LayerNorm.bias", &[h])?,
                ff1: PackedLinear::new_in(
                    a,
                    c,
                    &g("intermediate.dense.weight", &[i, h])?,
                    &g("intermediate.dense.bias", &[i])?,
                    i,
                    h,
                ),
                ff2: PackedLinear::new_in(
                    a,
                    c,
                    &g("output.dense.weight", &[h, i])?,
                    &g("output.dense.bias", &[h])?,
                    h,
                    i,
                ),
                ln2_g: g("output.LayerNorm.weight", &[h])?,
                ln2_b: g("output.LayerNorm.bias", &[h])?,
            });
        }
        Ok(Bert {
            typ0: typ[..h].to_vec(),
            word,
            pos,
            emb_g,
            emb_b,
            layers,
            arena,
            cfg,
        })
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Per-head attention scratch: packed K^T and V panels and the score matrix.
#[derive(Default)]
struct HeadScratch {
    kt: Vec<f32>,
    v: Vec<f32>,
    s: Vec<f32>,
}

/// Scratch buffers of one forward call; grown on demand and reused across
/// calls, never reallocated inside the layer loop.
#[derive(Default)]
pub(crate) struct Workspace {
    h: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    tmp: Vec<f32>,
    inter: Vec<f32>,
    heads: Vec<HeadScratch>,
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Rows per parallel task for the element-wise passes.
const PAR_ROWS: usize = 16;

/// `y[m, n] = x[m, k] * W^T + b` (then GELU if `gelu`), split over column
/// panels when parallel.
fn linear(
    arena: &Arena,
    lin: &PackedLinear,
    x: &[f32],
    m: usize,
    y: &mut [f32],
    par: Par,
    gelu: bool,
) {
    assert!(x.len() >= m * lin.k && y.len() >= m * lin.n);
    let np = lin.panel_count();
    match par {
        Par::Rayon(t) if t > 1 && np > 1 => {
            let parts = t.min(np);
            let (xp, yp) = (SendPtr(x.as_ptr() as *mut f32), SendPtr(y.as_mut_ptr()));
            (0..parts).into_par_iter().for_each(|i| {
                // SAFETY: extents checked above; each part writes disjoint panels.
                unsafe {
                    lin.apply_raw(
                        arena,
                        xp.get(),
                        m,
                        yp.get(),
                        np * i / parts..np * (i + 1) / parts,
                        gelu,
                    )
                }
            });
        }
        // SAFETY: extents checked above.
        _ => unsafe { lin.apply_raw(arena, x.as_ptr(), m, y.as_mut_ptr(), 0..np, gelu) },
    }
}

impl Bert {
    /// Embeds `seqs` (token ids incl. special tokens, each non-empty and at most
    /// `max_positions` long, ids < vocab) into `out` (`seqs.len() * hidden`).
    pub(crate) fn forward(&self, ws: &mut Workspace, seqs: &[&[u32]], out: &mut [f32], par: Par) {
        let c = &self.cfg;
        let hd = c.hidden;
        let d = c.head_dim;
        let inter = c.intermediate;
        let t: usize = seqs.iter().map(|s| s.len()).sum();
        assert_eq!(out.len(), seqs.len() * hd);
        if t == 0 {
            return;
        }
        let parallel = matches!(par, Par::Rayon(n) if n > 1);
        grow(&mut ws.h, t * hd);
        grow(&mut ws.qkv, t * 3 * hd);
        grow(&mut ws.ctx, t * hd);
        grow(&mut ws.tmp, t * hd);
        grow(&mut ws.inter, t * inter);
        let slots = if parallel { c.heads } else { 1 };
        if ws.heads.len() < slots {
            ws.heads.resize_with(slots, HeadScratch::default);
        }
        let h = &mut ws.h[..t * hd];
        let qkv = &mut ws.qkv[..t * 3 * hd];
        let ctx = &mut ws.ctx[..t * hd];
        let tmp = &mut ws.tmp[..t * hd];
        let ff = &mut ws.inter[..t * inter];

        // Embeddings (token type 0 everywhere) + layer norm.
        let mut row = 0;
        for s in seqs {
            for (p, &id) in s.iter().enumerate() {
                let id = id as usize;
                kernels::embed_row(
                    &mut h[row * hd..(row + 1) * hd],
                    &self.word[id * hd..(id + 1) * hd],
                    &self.pos[p * hd..(p + 1) * hd],
                    &self.typ0,
                    &self.emb_g,
                    &self.emb_b,
                    c.eps,
                );
                row += 1;
            }
        }

        for layer in &self.layers {
            // Fused QKV projection.
            linear(&self.arena, &layer.qkv, h, t, qkv, par, false);

            // Attention, per sequence and head.
            let mut off = 0;
            let ctx_ptr = SendPtr(ctx.as_mut_ptr());
            let qkv_s: &[f32] = qkv;
            for s in seqs {
                let l = s.len();
                let run_head = |head: usize, sc: &mut HeadScratch| {
                    let base = off * 3 * hd + head * d;
                    // K^T (d x l): element (kk, j) = K[j][kk]; V (l x d).
                    matmul::pack(&qkv_s[base + hd..], d, l, 1, 3 * hd, &mut sc.kt);
                    matmul::pack(&qkv_s[base + 2 * hd..], l, d, 3 * hd, 1, &mut sc.v);
                    grow(&mut sc.s, l * l);
                    // SAFETY: q rows are read in place from `qkv` (stride 3H); each
                    // head writes its own column block of `ctx`.
                    unsafe {
                        matmul::gemm(
                            l,
                            l,
                            d,
                            qkv_s.as_ptr().add(base),
                            3 * hd,
                            &sc.kt,
                            None,
                            sc.s.as_mut_ptr(),
                            l,
                            0..matmul::panels(l),
                            false,
                        );
                        kernels::softmax_rows(&mut sc.s[..l * l], l, l);
                        let dst = ctx_ptr.get().add(off * hd + head * d);
                        matmul::gemm(
                            l,
                            d,
                            l,
                            sc.s.as_ptr(),
                            l,
                            &sc.v,
                            None,
                            dst,
                            hd,
                            0..matmul::panels(d),
                            false,
                        );
                    }
                };
                if parallel && l >= 8 {
                    ws.heads[..c.heads]
                        .par_iter_mut()
                        .enumerate()
                        .for_each(|(head, sc)| run_head(head, sc));
                } else {
                    for head in 0..c.heads {
                        run_head(head, &mut ws.heads[0]);
                    }
                }
                off += l;
            }

            // Output projection + residual + layer norm.
            linear(&self.arena, &layer.out, ctx, t, tmp, par, false);
            residual_ln(h, tmp, &layer.ln1_g, &layer.ln1_b, c.eps, hd, parallel);

            // Feed-forward.
            linear(&self.arena, &layer.ff1, h, t, ff, par, true);
            linear(&self.arena, &layer.ff2, ff, t, tmp, par, false);
            residual_ln(h, tmp, &layer.ln2_g, &layer.ln2_b, c.eps, hd, parallel);
        }

        // Mean pooling over each sequence's tokens, then L2 normalisation.
        let mut off = 0;
        for (s, o) in seqs.iter().zip(out.chunks_exact_mut(hd)) {
            kernels::mean_pool_normalize(&h[off * hd..(off + s.len()) * hd], o);
            off += s.len();
        }
    }
}

fn residual_ln(
    h: &mut [f32],
    y: &[f32],
    g: &[f32],
    b: &[f32],
    eps: f32,
    hd: usize,
    parallel: bool,
) {
    if parallel {
        h.par_chunks_mut(PAR_ROWS * hd)
            .zip(y.par_chunks(PAR_ROWS * hd))
            .for_each(|(hc, yc)| kernels::residual_layernorm(hc, yc, g, b, eps));
    } else {
        kernels::residual_layernorm(h, y, g, b, eps);
    }
}
