#![cfg(feature = "embed")]
//! Corrupt or incomplete model folders give errors (never panics) that name
//! the offending file / value.

mod common;

use std::path::{Path, PathBuf};

use common::tiny;
use pointsman::embed::{verify_default_weights, verify_model_dir, Embedder, EmbedderOptions};
use pointsman::Error;

fn fresh(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pointsman-embed-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    tiny::write_model(&d, 5);
    d
}

fn load(dir: &Path) -> Result<Embedder, Error> {
    Embedder::load(
        dir,
        &EmbedderOptions {
            threads: 1,
            max_tokens: 16,
            ..Default::default()
        },
    )
}

#[test]
fn valid_tiny_folder_loads_and_verifies() {
    let d = fresh("ok");
    load(&d).unwrap();
    verify_model_dir(&d).unwrap();
    // A valid model, but not the published default weights.
    let msg = verify_default_weights(&d).unwrap_err().to_string();
    assert!(
        msg.contains("model.safetensors: sha256 mismatch: expected 53aa5117"),
        "{msg}"
    );
    std::fs::remove_file(d.join("model.safetensors")).unwrap();
    assert!(matches!(
        verify_default_weights(&d),
        Err(Error::ModelNotFound { .. })
    ));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn missing_directory() {
    let d = std::env::temp_dir().join("pointsman-embed-definitely-missing");
    let e = load(&d).unwrap_err();
    assert!(matches!(e, Error::ModelNotFound { .. }), "{e}");
    assert!(e.to_string().contains("fetch-model.sh"), "{e}");
    assert!(matches!(
        verify_model_dir(&d),
        Err(Error::ModelNotFound { .. })
    ));
}

#[test]
fn missing_tokenizer_json() {
    let d = fresh("notok");
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    for e in [load(&d).unwrap_err(), verify_model_dir(&d).unwrap_err()] {
        assert!(matches!(e, Error::ModelNotFound { .. }), "{e}");
        assert!(e.to_string().contains("missing tokenizer.json"), "{e}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn truncated_safetensors() {
    let d = fresh("trunc");
    let p = d.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    for cut in [bytes.len() - 7, bytes.len() / 2, 100, 5, 0] {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        for e in [load(&d).unwrap_err(), verify_model_dir(&d).unwrap_err()] {
            assert!(matches!(e, Error::Format { .. }), "cut {cut}: {e}");
            assert!(
                e.to_string().contains("model.safetensors"),
                "cut {cut}: {e}"
            );
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn config_with_wrong_hidden_size() {
    let d = fresh("hidden");
    std::fs::write(d.join("config.json"), tiny::config_json(16)).unwrap();
    let e = load(&d).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Format { .. }), "{msg}");
    // Pooling config says 8, config.json says 16.
    assert!(
        msg.contains("word_embedding_dimension 8") && msg.contains("hidden_size 16"),
        "{msg}"
    );
    std::fs::remove_file(d.join("1_Pooling/config.json")).unwrap();
    let msg = load(&d).unwrap_err().to_string();
    assert!(
        msg.contains("model.safetensors")
            && msg.contains("embeddings.word_embeddings.weight")
            && msg.contains("[23, 8]")
            && msg.contains("[23, 16]"),
        "{msg}"
    );
    // Not divisible by the number of heads.
    std::fs::write(d.join("config.json"), tiny::config_json(9)).unwrap();
    let msg = load(&d).unwrap_err().to_string();
    assert!(
        msg.contains("hidden_size 9") && msg.contains("num_attention_heads 2"),
        "{msg}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn broken_config_tokenizer_pooling_and_options() {
    let d = fresh("misc");
    std::fs::write(d.join("config.json"), "{ not json").unwrap();
    let msg = load(&d).unwrap_err().to_string();
    assert!(
        msg.contains("config.json") && msg.contains("invalid json"),
        "{msg}"
    );
    std::fs::write(
        d.join("config.json"),
        r#"{"model_type": "bert", "hidden_size": 8}"#,
    )
    .unwrap();
    let msg = load(&d).unwrap_err().to_string();
    assert!(msg.contains("num_attention_heads is missing"), "{msg}");
    std::fs::write(
        d.join("config.json"),
        tiny::config_json(8).replace("\"gelu\"", "\"relu\""),
    )
    .unwrap();
    assert!(load(&d).unwrap_err().to_string().contains("hidden_act"));
    std::fs::write(d.join("config.json"), tiny::config_json(8)).unwrap();

    std::fs::write(d.join("tokenizer.json"), "[]").unwrap();
    let msg = load(&d).unwrap_err().to_string();
    assert!(msg.contains("tokenizer.json"), "{msg}");
    std::fs::write(d.join("tokenizer.json"), tiny::tokenizer_json()).unwrap();

    std::fs::write(
        d.join("1_Pooling/config.json"),
        r#"{"pooling_mode_cls_token": true}"#,
    )
    .unwrap();
    let msg = load(&d).unwrap_err().to_string();
    assert!(
        msg.contains("1_Pooling") && msg.contains("pooling_mode_mean_tokens"),
        "{msg}"
    );
    std::fs::remove_file(d.join("1_Pooling/config.json")).unwrap();
    load(&d).unwrap();

    let e = Embedder::load(
        &d,
        &EmbedderOptions {
            threads: 1,
            max_tokens: 17,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::InvalidInput(_)) && e.to_string().contains("max_position_embeddings 16"),
        "{e}"
    );
    let e = Embedder::load(
        &d,
        &EmbedderOptions {
            threads: 1,
            max_tokens: 2,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn real_model_verifies_and_detects_a_flipped_byte() {
    let Some(real) = common::model_dir() else {
        return;
    };
    verify_model_dir(&real).unwrap();
    verify_default_weights(&real).unwrap();
    // Copy with one byte flipped in the tensor data (not in the fingerprinted
    // tensor): still recognised as all-MiniLM-L6-v2, so the sha256 is checked.
    let d = std::env::temp_dir().join(format!("pointsman-embed-flip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(real.join(f), d.join(f)).unwrap();
    }
    let mut bytes = std::fs::read(real.join("model.safetensors")).unwrap();
    let n = bytes.len();
    bytes[n - 1000] ^= 0x01;
    std::fs::write(d.join("model.safetensors"), &bytes).unwrap();
    let msg = verify_model_dir(&d).unwrap_err().to_string();
    assert_eq!(msg, verify_default_weights(&d).unwrap_err().to_string());
    assert!(
        msg.contains("sha256 mismatch")
            && msg.contains(
                "expected 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
            ),
        "{msg}"
    );
    // Loading does not hash the whole file, but weights that differ from the known model's
    // beyond its embedding layer norm (here every value of one bias, by one unit in the last
    // place) are not taken for it: the model is named after its folder, so a router of
    // all-MiniLM-L6-v2's space refuses its embeddings.
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let meta: serde_json::Value = serde_json::from_slice(&bytes[8..header]).unwrap();
    let offsets = &meta["encoder.layer.0.attention.self.query.bias"]["data_offsets"];
    let (a, b) = (
        offsets[0].as_u64().unwrap() as usize,
        offsets[1].as_u64().unwrap() as usize,
    );
    for at in (header + a..header + b).step_by(4) {
        bytes[at] ^= 0x01;
    }
    std::fs::write(d.join("model.safetensors"), &bytes).unwrap();
    let e = Embedder::load(
        &d,
        &EmbedderOptions {
            threads: 1,
            max_tokens: 256,
            ..Default::default()
        },
    )
    .unwrap();
    let folder = d.file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(e.model_name(), folder);
    std::fs::remove_dir_all(&d).unwrap();
}
