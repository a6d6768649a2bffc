//! The reference forward pass on stock candle tensor ops ([`Backend::Candle`](super::Backend)).
//!
//! A plain BERT written from the architecture, one tensor op at a time: the batch is padded to
//! its longest member, an attention mask sends the padded keys to probability 0 (a large
//! negative value is added to their scores before the softmax), and mean pooling runs over the
//! mask. Matrix products are candle's (`gemm`), the softmax is `candle_nn::ops::softmax_last_dim`,
//! GELU is candle's exact-erf `gelu_erf`; layer norms are written with candle ops, two-pass
//! (mean, then the variance of the centred values), as in BERT.
//!
//! It computes the same function as the lean kernels of [`model`](super::model), through
//! independent code, which makes it a cross-check of those kernels; it is slower (padding,
//! one allocation per op, no fused epilogues).

use candle_core::{Device, Tensor, D};

use super::config::BertConfig;
use super::model::TensorSource;
use crate::{Error, Result};

/// Added to the attention scores of padded keys: `exp` of it is exactly 0 in `f32`
/// (the value transformers uses, `torch.finfo(float32).min`).
const MASKED: f64 = f32::MIN as f64;

/// `y = x W^T + b` with `W` `[out, in]` as stored by PyTorch.
struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    fn load(src: &TensorSource<'_>, name: &str, out: usize, inp: usize) -> Result<Linear> {
        Ok(Linear {
            w: src.tensor(&format!("{name}.weight"), &[out, inp])?,
            b: src.tensor(&format!("{name}.bias"), &[out])?,
        })
    }

    /// `x`: `[rows, in]` -> `[rows, out]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.w.t()?)?.broadcast_add(&self.b)
    }
}

struct LayerNorm {
    g: Tensor,
    b: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn load(src: &TensorSource<'_>, name: &str, hidden: usize, eps: f32) -> Result<LayerNorm> {
        Ok(LayerNorm {
            g: src.tensor(&format!("{name}.weight"), &[hidden])?,
            b: src.tensor(&format!("{name}.bias"), &[hidden])?,
            eps: f64::from(eps),
        })
    }

    /// Normalises the last dimension: `(x - mean) / sqrt(var + eps) * g + b`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let inv_std = (var + self.eps)?.sqrt()?.recip()?;
        centred
            .broadcast_mul(&inv_std)?
            .broadcast_mul(&self.g)?
            .broadcast_add(&self.b)
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    ln1: LayerNorm,
    ff1: Linear,
    ff2: Linear,
    ln2: LayerNorm,
}

/// BERT weights as candle tensors and the padded, masked forward.
pub(crate) struct CandleBert {
    cfg: BertConfig,
    word: Tensor,
    pos: Tensor,
    /// Token-type 0 embedding, `[hidden]`.
    typ0: Tensor,
    emb_ln: LayerNorm,
    layers: Vec<Layer>,
}

fn backend(e: candle_core::Error) -> Error {
    Error::Backend(format!("candle forward: {e}"))
}

impl CandleBert {
    /// Takes the weights from `src` (shapes checked against `cfg`, values finite).
    pub(crate) fn from_source(src: &TensorSource<'_>, cfg: BertConfig) -> Result<CandleBert> {
        let h = cfg.hidden;
        let i = cfg.intermediate;
        let word = src.tensor("embeddings.word_embeddings.weight", &[cfg.vocab, h])?;
        let pos = src.tensor(
            "embeddings.position_embeddings.weight",
            &[cfg.max_positions, h],
        )?;
        let typ = src.tensor(
            "embeddings.token_type_embeddings.weight",
            &[cfg.type_vocab, h],
        )?;
        let typ0 = typ.get(0).and_then(|t| t.contiguous()).map_err(backend)?;
        let emb_ln = LayerNorm::load(src, "embeddings.LayerNorm", h, cfg.eps)?;
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = format!("encoder.layer.{l}.");
            layers.push(Layer {
                query: Linear::load(src, &format!("{p}attention.self.query"), h, h)?,
                key: Linear::load(src, &format!("{p}attention.self.key"), h, h)?,
                value: Linear::load(src, &format!("{p}attention.self.value"), h, h)?,
                attn_out: Linear::load(src, &format!("{p}attention.output.dense"), h, h)?,
                ln1: LayerNorm::load(src, &format!("{p}attention.output.LayerNorm"), h, cfg.eps)?,
                ff1: Linear::load(src, &format!("{p}intermediate.dense"), i, h)?,
                ff2: Linear::load(src, &format!("{p}output.dense"), h, i)?,
                ln2: LayerNorm::load(src, &format!("{p}output.LayerNorm"), h, cfg.eps)?,
            });
        }
        Ok(CandleBert {
            cfg,
            word,
            pos,
            typ0,
            emb_ln,
            layers,
        })
    }

    /// Embeds `seqs` (token ids incl. special tokens, each non-empty and at most
    /// `max_positions` long, ids < vocab) as one batch padded to the longest; returns the
    /// row-major `[seqs.len(), hidden]` unit-length embeddings.
    ///
    /// Candle's CPU ops run on the current rayon pool: call it inside the embedder's pool.
    pub(crate) fn forward(&self, seqs: &[&[u32]]) -> Result<Vec<f32>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        self.forward_padded(seqs).map_err(backend)
    }

    fn forward_padded(&self, seqs: &[&[u32]]) -> candle_core::Result<Vec<f32>> {
        let c = &self.cfg;
        let (h, heads, d) = (c.hidden, c.heads, c.head_dim);
        let b = seqs.len();
        let l = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        // Padded ids (id 0 under the mask: any valid id would do) and the 0/1 mask.
        let mut ids = vec![0u32; b * l];
        let mut mask = vec![0f32; b * l];
        for (r, s) in seqs.iter().enumerate() {
            ids[r * l..r * l + s.len()].copy_from_slice(s);
            mask[r * l..r * l + s.len()].fill(1.0);
        }
        let dev = Device::Cpu;
        let ids = Tensor::from_vec(ids, b * l, &dev)?;
        let mask = Tensor::from_vec(mask, (b, l), &dev)?;
        // 0 for real keys, MASKED for padding, broadcast over heads and queries.
        let bias = mask.affine(-MASKED, MASKED)?.reshape((b, 1, 1, l))?;

        // Embeddings: word + position + token type 0, then layer norm.
        let x = self
            .word
            .index_select(&ids, 0)?
            .reshape((b, l, h))?
            .broadcast_add(&self.pos.narrow(0, 0, l)?)?
            .broadcast_add(&self.typ0)?;
        let mut x = self.emb_ln.forward(&x)?.reshape((b * l, h))?;

        let scale = 1.0 / (d as f64).sqrt();
        let split_heads = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, l, heads, d))?.transpose(1, 2)?.contiguous()
        };
        for layer in &self.layers {
            // Self-attention, per head, with the padding mask.
            let q = split_heads(layer.query.forward(&x)?)?;
            let k = split_heads(layer.key.forward(&x)?)?;
            let v = split_heads(layer.value.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * l, h))?;
            // Output projection + residual + layer norm.
            let a = layer.ln1.forward(&(layer.attn_out.forward(&ctx)? + &x)?)?;
            // Feed-forward with exact GELU + residual + layer norm.
            let f = layer.ff1.forward(&a)?.gelu_erf()?;
            x = layer.ln2.forward(&(layer.ff2.forward(&f)? + &a)?)?;
        }

        // Mean pooling over the mask, then L2 normalisation.
        let x = x.reshape((b, l, h))?;
        let summed = x.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?;
        let counts = mask.sum_keepdim(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
        mean.broadcast_div(&norm)?.flatten_all()?.to_vec1::<f32>()
    }
}
