//! `config.json` (Hugging Face BERT config) and `1_Pooling/config.json` parsing
//! and validation.

use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    hidden_size: Option<usize>,
    num_attention_heads: Option<usize>,
    num_hidden_layers: Option<usize>,
    intermediate_size: Option<usize>,
    vocab_size: Option<usize>,
    max_position_embeddings: Option<usize>,
    type_vocab_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
    position_embedding_type: Option<String>,
}

/// Validated model dimensions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BertConfig {
    pub hidden: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub layers: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub eps: f32,
}

pub(crate) fn format_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Format {
        path: path.display().to_string(),
        line: None,
        message: message.into(),
    }
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn required(path: &Path, field: &str, v: Option<usize>) -> Result<usize> {
    match v {
        Some(0) => Err(format_err(path, format!("config field {field} is 0"))),
        Some(v) => Ok(v),
        None => Err(format_err(path, format!("config field {field} is missing"))),
    }
}

impl BertConfig {
    pub(crate) fn load(path: &Path) -> Result<BertConfig> {
        let bytes = read_file(path)?;
        let raw: RawConfig = serde_json::from_slice(&bytes)
            .map_err(|e| format_err(path, format!("invalid json: {e}")))?;
        Self::from_raw(path, raw)
    }

    fn from_raw(path: &Path, raw: RawConfig) -> Result<BertConfig> {
        if let Some(t) = &raw.model_type {
            if t != "bert" {
                return Err(format_err(
                    path,
                    format!("config field model_type is {t:?}, only \"bert\" is supported"),
                ));
            }
        }
        if let Some(act) = &raw.hidden_act {
            if act != "gelu" {
                return Err(format_err(
                    path,
                    format!("config field hidden_act is {act:?}, only \"gelu\" (exact erf) is supported"),
                ));
            }
        }
        if let Some(p) = &raw.position_embedding_type {
            if p != "absolute" {
                return Err(format_err(
                    path,
                    format!("config field position_embedding_type is {p:?}, only \"absolute\" is supported"),
                ));
            }
        }
        let hidden = required(path, "hidden_size", raw.hidden_size)?;
        let heads = required(path, "num_attention_heads", raw.num_attention_heads)?;
        let layers = required(path, "num_hidden_layers", raw.num_hidden_layers)?;
        let intermediate = required(path, "intermediate_size", raw.intermediate_size)?;
        let vocab = required(path, "vocab_size", raw.vocab_size)?;
        let max_positions = required(path, "max_position_embeddings", raw.max_position_embeddings)?;
        let type_vocab = raw.type_vocab_size.unwrap_or(2);
        if type_vocab == 0 {
            return Err(format_err(path, "config field type_vocab_size is 0"));
        }
        if hidden % heads != 0 {
            return Err(format_err(
                path,
                format!("config field hidden_size {hidden} is not divisible by num_attention_heads {heads}"),
            ));
        }
        const LIMIT: usize = 1 << 20;
        for (name, v) in [
            ("hidden_size", hidden),
            ("intermediate_size", intermediate),
            ("vocab_size", vocab),
            ("max_position_embeddings", max_positions),
            ("num_hidden_layers", layers),
        ] {
            if v > LIMIT {
                return Err(format_err(
                    path,
                    format!("config field {name} {v} is implausibly large"),
                ));
            }
        }
        let eps = raw.layer_norm_eps.unwrap_or(1e-12);
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(format_err(
                path,
                format!("config field layer_norm_eps {eps} is invalid"),
            ));
        }
        Ok(BertConfig {
            hidden,
            heads,
            head_dim: hidden / heads,
            layers,
            intermediate,
            vocab,
            max_positions,
            type_vocab,
            eps: eps as f32,
        })
    }
}

#[derive(Debug, Deserialize)]
struct RawPooling {
    word_embedding_dimension: Option<usize>,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

/// Checks `1_Pooling/config.json` when present: only plain mean pooling over
/// the attention mask is implemented. A missing file means mean pooling.
pub(crate) fn check_pooling(dir: &Path, hidden: usize) -> Result<()> {
    let path = dir.join("1_Pooling").join("config.json");
    if !path.exists() {
        return Ok(());
    }
    let bytes = read_file(&path)?;
    let raw: RawPooling = serde_json::from_slice(&bytes)
        .map_err(|e| format_err(&path, format!("invalid json: {e}")))?;
    if let Some(d) = raw.word_embedding_dimension {
        if d != hidden {
            return Err(format_err(
                &path,
                format!("word_embedding_dimension {d} does not match hidden_size {hidden} of config.json"),
            ));
        }
    }
    let others = raw.pooling_mode_cls_token
        || raw.pooling_mode_max_tokens
        || raw.pooling_mode_mean_sqrt_len_tokens
        || raw.pooling_mode_weightedmean_tokens
        || raw.pooling_mode_lasttoken;
    if !raw.pooling_mode_mean_tokens || others {
        return Err(format_err(
            &path,
            "only pooling_mode_mean_tokens is supported (other pooling modes are set or mean is off)",
        ));
    }
    Ok(())
}
