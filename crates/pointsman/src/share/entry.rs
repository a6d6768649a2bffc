//! The entries the exchange writes into the shared store: a replica's increment (its events
//! since its previous increment) and the compacted snapshot, both safetensors containers with
//! a format name and version, and the decoder that checks everything read back
//! (fuzzed: `fuzz/fuzz_targets/share_entry.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::registry::{AnyLearner, AnyRouter};
use crate::routers::bandit::{Event, Journal};
use crate::saved::{container_bytes, read_container, SavedRouter, Tensor, TensorData};

/// The `format` metadata value of an increment.
pub const INCREMENT_FORMAT: &str = "pointsman-increment";

/// The increment format version this build writes and the newest it reads.
pub const INCREMENT_VERSION: u32 = 1;

/// The note of a snapshot (a saved router) that holds its [`SnapshotMeta`].
pub const SNAPSHOT_NOTE: &str = "share.meta";

/// The most events one increment may hold.
pub const MAX_EVENTS: usize = 1 << 24;

/// One replica's events since its previous increment.
#[derive(Debug, Clone, PartialEq)]
pub struct Increment {
    /// The replica that observed them.
    pub replica: String,
    /// Its increment number: 1, 2, 3, … without gaps.
    pub seq: u64,
    /// The replica's observations through this increment (its own, all increments so far).
    pub total: u64,
    /// The events, and when the first and last happened.
    pub journal: Journal,
}

/// What a snapshot covers: for each replica, the last of its increments it holds and that
/// replica's observations through it; the log position it was compacted at; the namespace's
/// epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The namespace's epoch (a new one each time the store is seeded).
    pub epoch: u64,
    /// The log position (a stream id) of the last entry the snapshot covers.
    pub cursor: String,
    /// Per replica: the last increment the snapshot holds.
    pub clock: BTreeMap<String, u64>,
    /// Per replica: its observations the snapshot holds.
    pub totals: BTreeMap<String, u64>,
    /// The learner's fingerprint.
    pub fingerprint: String,
}

impl SnapshotMeta {
    /// Whether `clock` holds at least every increment this snapshot holds.
    pub fn covered_by(&self, clock: &BTreeMap<String, u64>) -> bool {
        self.clock
            .iter()
            .all(|(r, s)| clock.get(r).copied().unwrap_or(0) >= *s)
    }

    /// Parses a snapshot's meta from the store's small copy of it.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] naming `what`.
    pub fn from_json(bytes: &[u8], what: &str) -> Result<SnapshotMeta> {
        serde_json::from_slice(bytes).map_err(|e| Error::format(what, format!("bad meta: {e}")))
    }

    /// The JSON the store keeps beside the snapshot.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("snapshot metas serialise to JSON")
    }
}

/// The fingerprint as it is written: 16 hexadecimal digits.
pub fn fingerprint_hex(fingerprint: u64) -> String {
    format!("{fingerprint:016x}")
}

/// Encodes an increment of a learner of `kind` with `fingerprint` and keys of `key_len`
/// values.
pub fn encode_increment(inc: &Increment, kind: &str, fingerprint: u64, key_len: usize) -> Vec<u8> {
    let mut meta = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        meta.insert(k.to_string(), v);
    };
    put("format", INCREMENT_FORMAT.into());
    put("format_version", INCREMENT_VERSION.to_string());
    put("kind", kind.into());
    put("fingerprint", fingerprint_hex(fingerprint));
    put("replica", inc.replica.clone());
    put("seq", inc.seq.to_string());
    put("total", inc.total.to_string());
    put("first_ms", inc.journal.first_ms.to_string());
    put("last_ms", inc.journal.last_ms.to_string());
    let events = &inc.journal.events;
    let mut types = Vec::with_capacity(events.len());
    let mut models = Vec::with_capacity(events.len());
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for e in events {
        match e {
            Event::Observe {
                model,
                key,
                quality,
                price,
                cost,
            } => {
                types.push(0);
                models.push(*model);
                keys.extend_from_slice(key);
                values.extend_from_slice(&[*quality, *price, *cost]);
            }
            Event::Forget { model } => {
                types.push(1);
                models.push(*model);
            }
        }
    }
    let n = events.len();
    let o = values.len() / 3;
    let mut tensors = BTreeMap::new();
    tensors.insert("events.type".to_string(), Tensor::u32(&[n], types));
    tensors.insert("events.model".to_string(), Tensor::u32(&[n], models));
    tensors.insert(
        "observations.key".to_string(),
        Tensor::f32(&[o, key_len], keys),
    );
    tensors.insert(
        "observations.values".to_string(),
        Tensor::f64(&[o, 3], values),
    );
    container_bytes(&meta, &tensors)
}

/// Decodes and checks an increment read from `what` (a store key): its format and version,
/// that it is of the learner `learner` (kind and fingerprint), its shapes, and every event
/// ([`AnyLearner::check_events`]). A foreign or corrupt entry is an error, never applied.
///
/// # Errors
///
/// [`Error::Format`] naming `what` and what is wrong; [`Error::UnsupportedVersion`] for a newer
/// format.
pub fn decode_increment(
    bytes: &[u8],
    what: &str,
    learner: &AnyLearner,
    fingerprint: u64,
) -> Result<Increment> {
    let bad = |m: String| Error::format(what, m);
    let (meta, mut tensors) = read_container(bytes, what)?;
    let get = |k: &str| {
        meta.get(k)
            .ok_or_else(|| bad(format!("metadata has no {k:?}")))
    };
    let format = get("format")?;
    if format != INCREMENT_FORMAT {
        return Err(bad(format!(
            "format {format:?} is not {INCREMENT_FORMAT:?}"
        )));
    }
    let version = get("format_version")?;
    match version.parse::<u32>() {
        Ok(v) if (1..=INCREMENT_VERSION).contains(&v) && *version == v.to_string() => {}
        _ => {
            return Err(Error::UnsupportedVersion {
                path: what.to_string(),
                found: version.clone(),
                supported: INCREMENT_VERSION.to_string(),
            })
        }
    }
    let kind = get("kind")?;
    if *kind != learner.kind().name() {
        return Err(bad(format!(
            "an increment of a {kind} learner, this one is {}",
            learner.kind()
        )));
    }
    let theirs = get("fingerprint")?;
    if *theirs != fingerprint_hex(fingerprint) {
        return Err(bad(format!(
            "an increment of another router (fingerprint {theirs}, this one {}): a foreign \
             entry",
            fingerprint_hex(fingerprint)
        )));
    }
    let number = |k: &str| -> Result<u64> {
        get(k)?
            .parse::<u64>()
            .map_err(|_| bad(format!("{k} {:?} is not a count", meta[k])))
    };
    let replica = get("replica")?.clone();
    if replica.is_empty() {
        return Err(bad("an empty replica name".into()));
    }
    let (seq, total, first_ms, last_ms) = (
        number("seq")?,
        number("total")?,
        number("first_ms")?,
        number("last_ms")?,
    );
    if seq == 0 {
        return Err(bad("increment number 0 (they start at 1)".into()));
    }
    let mut take = |name: &str| {
        tensors
            .remove(name)
            .ok_or_else(|| bad(format!("missing tensor {name}")))
    };
    let (types, models, keys, values) = (
        take("events.type")?,
        take("events.model")?,
        take("observations.key")?,
        take("observations.values")?,
    );
    let (TensorData::U32(types), TensorData::U32(models)) = (types.data, models.data) else {
        return Err(bad("events.type and events.model must be u32".into()));
    };
    let n = types.len();
    if n > MAX_EVENTS || models.len() != n {
        return Err(bad(format!(
            "{n} event types and {} models (at most {MAX_EVENTS} events)",
            models.len()
        )));
    }
    let o = types.iter().filter(|&&t| t == 0).count();
    if types.iter().any(|&t| t > 1) {
        return Err(bad(
            "an event type other than 0 (observe) and 1 (forget)".into()
        ));
    }
    let key_len = match keys.shape.as_slice() {
        [rows, k] if *rows == o => *k,
        s => {
            return Err(bad(format!(
                "observations.key has shape {s:?} for {o} observations"
            )))
        }
    };
    if values.shape != [o, 3] {
        return Err(bad(format!(
            "observations.values has shape {:?}, expected [{o}, 3]",
            values.shape
        )));
    }
    let (TensorData::F32(keys), TensorData::F64(values)) = (keys.data, values.data) else {
        return Err(bad(
            "observations.key must be f32 and observations.values f64".into(),
        ));
    };
    let mut events = Vec::with_capacity(n);
    let mut i = 0;
    for (&t, &model) in types.iter().zip(&models) {
        if t == 1 {
            events.push(Event::Forget { model });
            continue;
        }
        let v = &values[i * 3..i * 3 + 3];
        events.push(Event::Observe {
            model,
            key: keys[i * key_len..(i + 1) * key_len].to_vec(),
            quality: v[0],
            price: v[1],
            cost: v[2],
        });
        i += 1;
    }
    learner
        .check_events(&events)
        .map_err(|m| bad(format!("increment {seq} of {replica:?}: {m}")))?;
    Ok(Increment {
        replica,
        seq,
        total,
        journal: Journal {
            events,
            first_ms,
            last_ms,
        },
    })
}

/// Encodes a snapshot: the learner's saved form with `meta` in its notes.
///
/// # Errors
///
/// As [`crate::Router::to_saved`].
pub fn encode_snapshot(learner: &AnyLearner, meta: &SnapshotMeta) -> Result<Vec<u8>> {
    let mut saved = learner.router().to_saved()?;
    saved.notes.insert(
        SNAPSHOT_NOTE.to_string(),
        String::from_utf8(meta.to_json()).expect("JSON is UTF-8"),
    );
    saved.to_bytes()
}

/// Decodes a snapshot read from `what` and checks that it is of a learner with `fingerprint`.
///
/// # Errors
///
/// [`Error::Format`] naming `what` for anything that is not a snapshot of this learner; the
/// errors of [`AnyRouter::from_saved`].
pub fn decode_snapshot(
    bytes: &[u8],
    what: &str,
    fingerprint: u64,
) -> Result<(AnyLearner, SnapshotMeta)> {
    let bad = |m: String| Error::format(what, m);
    let saved = SavedRouter::from_bytes(bytes, what)?;
    let meta = saved
        .notes
        .get(SNAPSHOT_NOTE)
        .ok_or_else(|| bad(format!("a saved router without the note {SNAPSHOT_NOTE:?}")))?;
    let meta = SnapshotMeta::from_json(meta.as_bytes(), what)?;
    let router = AnyRouter::from_saved(saved).map_err(|e| bad(e.to_string()))?;
    let Some(learner) = router.as_learner() else {
        return Err(bad(format!(
            "a snapshot of a {} router, which does not learn",
            router.kind()
        )));
    };
    let theirs = learner.fingerprint().map_err(|e| bad(e.to_string()))?;
    if theirs != fingerprint || meta.fingerprint != fingerprint_hex(fingerprint) {
        return Err(bad(format!(
            "a snapshot of another router (fingerprint {}, this one {})",
            fingerprint_hex(theirs),
            fingerprint_hex(fingerprint)
        )));
    }
    Ok((learner.clone(), meta))
}
