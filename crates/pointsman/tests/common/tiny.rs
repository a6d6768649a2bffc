//! A tiny random-weight BERT sentence-transformers folder (hidden 8, 2 heads,
//! 2 layers) with a tiny WordPiece tokenizer.json, plus a naive f64 reference
//! forward (padded batch + attention mask, plain loops).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

pub const HIDDEN: usize = 8;
pub const HEADS: usize = 2;
pub const LAYERS: usize = 2;
pub const INTER: usize = 20;
pub const MAX_POS: usize = 16;
pub const EPS: f64 = 1e-12;

pub const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a", "dog",
    "##s", "run", "##ning", "big", "red", "ball", ".", ",", "!", "is", "and",
];

pub fn tokenizer_json() -> String {
    let vocab: serde_json::Map<String, serde_json::Value> = VOCAB
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i.into()))
        .collect();
    let special = |id: usize, tok: &str| {
        serde_json::json!({"id": id, "content": tok, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    serde_json::json!({
        "version": "1.0",
        // Baked-in truncation and padding (like the real all-MiniLM-L6-v2 file):
        // the embedder must switch both off.
        "truncation": {"direction": "Right", "max_length": 6, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 12}, "direction": "Right", "pad_to_multiple_of": null,
            "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": [special(0, "[PAD]"), special(1, "[UNK]"), special(2, "[CLS]"),
            special(3, "[SEP]"), special(4, "[MASK]")],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab}
    })
    .to_string()
}

pub fn config_json(hidden: usize) -> String {
    serde_json::json!({
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
        "hidden_size": hidden, "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
        "intermediate_size": INTER, "vocab_size": VOCAB.len(), "max_position_embeddings": MAX_POS,
        "type_vocab_size": 2, "layer_norm_eps": EPS, "position_embedding_type": "absolute",
        "pad_token_id": 0
    })
    .to_string()
}

/// Deterministic pseudo-random weights, name -> (shape, values).
pub fn weights(seed: u64) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut s = seed;
    let mut rnd = move |scale: f32| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5) * 2.0 * scale
    };
    let mut out = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, f: &mut dyn FnMut() -> f32| {
        let n = shape.iter().product();
        out.push((name, shape, (0..n).map(|_| f()).collect()));
    };
    let (h, i, v) = (HIDDEN, INTER, VOCAB.len());
    add(
        "embeddings.word_embeddings.weight".into(),
        vec![v, h],
        &mut || rnd(1.0),
    );
    add(
        "embeddings.position_embeddings.weight".into(),
        vec![MAX_POS, h],
        &mut || rnd(0.5),
    );
    add(
        "embeddings.token_type_embeddings.weight".into(),
        vec![2, h],
        &mut || rnd(0.5),
    );
    add("embeddings.LayerNorm.weight".into(), vec![h], &mut || {
        1.0 + rnd(0.2)
    });
    add("embeddings.LayerNorm.bias".into(), vec![h], &mut || {
        rnd(0.2)
    });
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}.");
        for m in ["query", "key", "value"] {
            add(
                format!("{p}attention.self.{m}.weight"),
                vec![h, h],
                &mut || rnd(0.8),
            );
            add(format!("{p}attention.self.{m}.bias"), vec![h], &mut || {
                rnd(0.3)
            });
        }
        add(
            format!("{p}attention.output.dense.weight"),
            vec![h, h],
            &mut || rnd(0.5),
        );
        add(
            format!("{p}attention.output.dense.bias"),
            vec![h],
            &mut || rnd(0.2),
        );
        add(
            format!("{p}attention.output.LayerNorm.weight"),
            vec![h],
            &mut || 1.0 + rnd(0.2),
        );
        add(
            format!("{p}attention.output.LayerNorm.bias"),
            vec![h],
            &mut || rnd(0.2),
        );
        add(
            format!("{p}intermediate.dense.weight"),
            vec![i, h],
            &mut || rnd(0.6),
        );
        add(format!("{p}intermediate.dense.bias"), vec![i], &mut || {
            rnd(0.3)
        });
        add(format!("{p}output.dense.weight"), vec![h, i], &mut || {
            rnd(0.4)
        });
        add(format!("{p}output.dense.bias"), vec![h], &mut || rnd(0.2));
        add(format!("{p}output.LayerNorm.weight"), vec![h], &mut || {
            1.0 + rnd(0.2)
        });
        add(format!("{p}output.LayerNorm.bias"), vec![h], &mut || {
            rnd(0.2)
        });
    }
    out
}

/// Writes the tiny model folder into `dir`.
pub fn write_model(dir: &Path, seed: u64) {
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    std::fs::write(dir.join("config.json"), config_json(HIDDEN)).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).unwrap();
    std::fs::write(
        dir.join("1_Pooling/config.json"),
        serde_json::json!({"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": false,
            "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false,
            "pooling_mode_mean_sqrt_len_tokens": false})
        .to_string(),
    )
    .unwrap();
    let tensors: HashMap<String, Tensor> = weights(seed)
        .into_iter()
        .map(|(n, shape, v)| (n, Tensor::from_vec(v, shape, &Device::Cpu).unwrap()))
        .collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
}

fn erf(x: f64) -> f64 {
    // Series for |x| < 3, continued fraction for erfc beyond (f64-accurate).
    if x.abs() < 3.0 {
        let (mut sum, mut term, x2) = (x, x, x * x);
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
        let z = x.abs();
        let mut f = 0.0;
        for k in (1..200).rev() {
            f = (k as f64 / 2.0) / (z + f);
        }
        let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / (z + f);
        x.signum() * (1.0 - erfc)
    }
}

fn layer_norm(x: &mut [f64], g: &[f32], b: &[f32]) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    for (j, v) in x.iter_mut().enumerate() {
        *v = (*v - mean) / (var + EPS).sqrt() * g[j] as f64 + b[j] as f64;
    }
}

/// `y = x W^T + b` for one row; `w` is `[out, in]`.
fn linear(x: &[f64], w: &[f32], b: &[f32]) -> Vec<f64> {
    let (out, inp) = (b.len(), x.len());
    (0..out)
        .map(|o| b[o] as f64 + (0..inp).map(|i| x[i] * w[o * inp + i] as f64).sum::<f64>())
        .collect()
}

/// Naive reference: pads `batch` to its longest member with [PAD] (id 0),
/// masks padded keys with -1e30 before the softmax, and mean-pools over the
/// attention mask; f64 throughout. Returns `[batch.len(), HIDDEN]` rows.
#[allow(clippy::needless_range_loop)] // index loops mirror the math
pub fn reference_forward(seed: u64, batch: &[Vec<u32>]) -> Vec<Vec<f32>> {
    let w: HashMap<String, Vec<f32>> = weights(seed).into_iter().map(|(n, _, v)| (n, v)).collect();
    let g = |n: &str| &w[n];
    let (h, d) = (HIDDEN, HIDDEN / HEADS);
    let lmax = batch.iter().map(|s| s.len()).max().unwrap();
    let mut result = Vec::new();
    for seq in batch {
        let mask: Vec<bool> = (0..lmax).map(|p| p < seq.len()).collect();
        let ids: Vec<usize> = (0..lmax)
            .map(|p| if p < seq.len() { seq[p] as usize } else { 0 })
            .collect();
        let mut x: Vec<Vec<f64>> = (0..lmax)
            .map(|p| {
                let mut row: Vec<f64> = (0..h)
                    .map(|j| {
                        g("embeddings.word_embeddings.weight")[ids[p] * h + j] as f64
                            + g("embeddings.position_embeddings.weight")[p * h + j] as f64
                            + g("embeddings.token_type_embeddings.weight")[j] as f64
                    })
                    .collect();
                layer_norm(
                    &mut row,
                    g("embeddings.LayerNorm.weight"),
                    g("embeddings.LayerNorm.bias"),
                );
                row
            })
            .collect();
        for l in 0..LAYERS {
            let p = format!("encoder.layer.{l}.");
            let wb = |m: &str| (g(&format!("{p}{m}.weight")), g(&format!("{p}{m}.bias")));
            let proj = |m: &str| -> Vec<Vec<f64>> {
                let (ww, bb) = wb(m);
                x.iter().map(|r| linear(r, ww, bb)).collect()
            };
            let (q, k, v) = (
                proj("attention.self.query"),
                proj("attention.self.key"),
                proj("attention.self.value"),
            );
            let mut ctx = vec![vec![0f64; h]; lmax];
            for head in 0..HEADS {
                for i in 0..lmax {
                    let mut s: Vec<f64> = (0..lmax)
                        .map(|j| {
                            let dot: f64 = (0..d)
                                .map(|c| q[i][head * d + c] * k[j][head * d + c])
                                .sum();
                            dot / (d as f64).sqrt() + if mask[j] { 0.0 } else { -1e30 }
                        })
                        .collect();
                    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    s.iter_mut().for_each(|v| *v = (*v - m).exp());
                    let z: f64 = s.iter().sum();
                    for c in 0..d {
                        ctx[i][head * d + c] =
                            (0..lmax).map(|j| s[j] / z * v[j][head * d + c]).sum();
                    }
                }
            }
            let (wo, bo) = wb("attention.output.dense");
            for i in 0..lmax {
                let o = linear(&ctx[i], wo, bo);
                let mut r: Vec<f64> = x[i].iter().zip(&o).map(|(a, b)| a + b).collect();
                layer_norm(
                    &mut r,
                    g(&format!("{p}attention.output.LayerNorm.weight")),
                    g(&format!("{p}attention.output.LayerNorm.bias")),
                );
                x[i] = r;
            }
            let (w1, b1) = wb("intermediate.dense");
            let (w2, b2) = wb("output.dense");
            for i in 0..lmax {
                let f: Vec<f64> = linear(&x[i], w1, b1)
                    .into_iter()
                    .map(|v| 0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2)))
                    .collect();
                let o = linear(&f, w2, b2);
                let mut r: Vec<f64> = x[i].iter().zip(&o).map(|(a, b)| a + b).collect();
                layer_norm(
                    &mut r,
                    g(&format!("{p}output.LayerNorm.weight")),
                    g(&format!("{p}output.LayerNorm.bias")),
                );
                x[i] = r;
            }
        }
        let count = mask.iter().filter(|&&m| m).count() as f64;
        let mut pooled = vec![0f64; h];
        for i in 0..lmax {
            if mask[i] {
                for j in 0..h {
                    pooled[j] += x[i][j];
                }
            }
        }
        pooled.iter_mut().for_each(|v| *v /= count.max(1e-9));
        let norm = pooled.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        result.push(pooled.iter().map(|v| (v / norm) as f32).collect());
    }
    result
}
