//! The saved-router container: one `.safetensors` file holding a router's tensors and, in its
//! metadata, the format name and version, the router's JSON config (tagged by kind:
//! `{"type": "knn", …}`), the model pool with prices, and the embedding model's name and
//! dimension (specified in `docs/format.md`).
//!
//! This layer knows no router kind: a router writes its tensors and its config into a
//! [`SavedRouter`], and the registry ([`crate::registry`]) reads the tag to rebuild the right
//! kind. Loading checks every shape; a truncated or corrupt file is an [`Error::Format`], never a
//! panic. Files are written atomically ([`crate::files`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::pool::ModelPool;

mod open;
pub(crate) use open::open_safetensors;

/// The `format` metadata value of a saved router.
pub const FORMAT_NAME: &str = "pointsman-router";

/// The newest format version this build reads and writes. A file is written with the lowest
/// version that holds everything in it ([`SavedRouter::format_version`]): version 1 unless it
/// has one of the [`VERSION_2_TENSORS`].
pub const FORMAT_VERSION: u32 = 2;

/// The tensors of format version 2 (partial labels, inverse-propensity weights, onboarded
/// models' anchors and priors): a version-1 reader would ignore them and misread the file
/// (every score observed, an onboarded model's zeros taken for scores), so a file with one of
/// them says version 2 and older readers refuse it. Names as written, or ending in `.` and the
/// name (a member of a stack).
pub const VERSION_2_TENSORS: &[&str] = &[
    "knn.observed",
    "knn.ipw",
    "knn.anchors",
    "knn.anchor_tasks",
    "knn-ucb.anchors",
    "linucb.prior_b",
    "thompson.prior_b",
];

/// The smallest `f32` tensor, bytes, that a memory-mapped open leaves in place
/// ([`SavedRouter::open_mmap`]); smaller ones are copied (a page shared saves nothing).
pub const IN_PLACE_MIN_BYTES: usize = 1 << 16;

/// The most models a saved router may hold.
pub const MAX_MODELS: usize = 1 << 16;

/// The largest embedding dimension a saved router may declare.
pub const MAX_DIM: usize = 1 << 16;

/// The largest header (JSON metadata and tensor index) a saved router file may have, bytes.
pub const MAX_HEADER_BYTES: u64 = 1 << 26;

/// Checks the `format` and `format_version` of a saved router's metadata; `what` names the
/// source in errors.
fn check_format(meta: &impl Fn(&str) -> Option<String>, what: &str) -> Result<()> {
    let bad = |m: String| Error::format(what, m);
    let format = meta("format").ok_or_else(|| bad("metadata has no \"format\"".into()))?;
    if format != FORMAT_NAME {
        return Err(bad(format!("format {format:?} is not {FORMAT_NAME:?}")));
    }
    let version =
        meta("format_version").ok_or_else(|| bad("metadata has no \"format_version\"".into()))?;
    // A decimal integer as the format writes it: no sign, no leading zero, no blank.
    let canonical = !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
        && !(version.len() > 1 && version.starts_with('0'));
    if !canonical {
        return Err(bad(format!(
            "format_version {version:?} is not a decimal integer"
        )));
    }
    match version.parse::<u32>() {
        Ok(v) if (1..=FORMAT_VERSION).contains(&v) => Ok(()),
        _ => Err(Error::UnsupportedVersion {
            path: what.to_string(),
            found: version,
            supported: FORMAT_VERSION.to_string(),
        }),
    }
}

/// The values of a tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats (learned state that accumulates many updates).
    F64(Vec<f64>),
    /// Unsigned 32-bit integers (indices).
    U32(Vec<u32>),
}

impl TensorData {
    fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::U32(v) => v.len(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// A named tensor of a saved router.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: TensorData,
}

impl Tensor {
    /// An `f32` tensor.
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: TensorData::F32(data),
        }
    }

    /// An `f64` tensor.
    pub fn f64(shape: &[usize], data: Vec<f64>) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: TensorData::F64(data),
        }
    }

    /// A `u32` tensor.
    pub fn u32(shape: &[usize], data: Vec<u32>) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: TensorData::U32(data),
        }
    }
}

/// `f32` values a router owns, or reads in place from a memory-mapped saved router
/// ([`SavedRouter::open_mmap`]): N processes that map one file share one copy of it in the page
/// cache. Dereferences to `[f32]`.
#[derive(Clone)]
pub struct F32s(F32sInner);

#[derive(Clone)]
enum F32sInner {
    Owned(Vec<f32>),
    /// `len` values at byte `start` of `map`; `start` is a multiple of 4 (checked when made),
    /// the map page-aligned, and the target little-endian, so the bytes are `f32`s as they lie.
    Mapped {
        map: Arc<memmap2::Mmap>,
        start: usize,
        len: usize,
    },
}

impl F32s {
    /// Whether the values are read in place from a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, F32sInner::Mapped { .. })
    }
}

impl From<Vec<f32>> for F32s {
    fn from(v: Vec<f32>) -> Self {
        F32s(F32sInner::Owned(v))
    }
}

impl std::ops::Deref for F32s {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match &self.0 {
            F32sInner::Owned(v) => v,
            F32sInner::Mapped { map, start, len } => {
                let bytes = &map[*start..*start + *len * 4];
                // SAFETY: `bytes` lies inside the mapping (checked when the value was made),
                // starts at an address that is a multiple of 4 (the mapping is page-aligned
                // and `start` a multiple of 4), and every bit pattern is an `f32`; only
                // little-endian targets map (`open_mmap` copies elsewhere). The mapping is
                // read-only and files are replaced only by rename ([`crate::files`]), so the
                // bytes do not change while it lives.
                unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), *len) }
            }
        }
    }
}

impl std::fmt::Debug for F32s {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("F32s")
            .field("len", &self.len())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

impl PartialEq for F32s {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

/// An `f32` tensor left in place in a mapped file.
#[derive(Debug, Clone, PartialEq)]
struct InPlace {
    shape: Vec<usize>,
    values: F32s,
}

/// A router in its saved form: config, pool, embedding space and tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedRouter {
    /// The router's configuration as a JSON object whose `"type"` member, first, names the
    /// router kind (`{"type": "knn", "k": 100, …}`).
    pub config: String,
    /// The candidate models and their prices.
    pub pool: ModelPool,
    /// The embedding model the router was trained on, when known.
    pub embedding_model: Option<String>,
    /// The embedding dimension.
    pub dim: usize,
    /// The tensors, by dotted name.
    pub tensors: BTreeMap<String, Tensor>,
    /// Free-form notes kept with the router (for example the hyper-parameter search).
    pub notes: BTreeMap<String, String>,
    /// `f32` tensors of a memory-mapped file left in place ([`SavedRouter::open_mmap`]); not
    /// in `tensors`. [`SavedRouter::take_f32s`] hands them over without a copy,
    /// [`SavedRouter::take_f32`] copies them.
    in_place: BTreeMap<String, InPlace>,
}

impl SavedRouter {
    /// Moves the tensors and notes whose names start with `prefix` (the prefix removed) into a
    /// saved router of configuration `config` with this one's pool, embedding model and
    /// dimension: a member of a composite router (a stack) loads from it. Tensors a
    /// memory-mapped file left in place stay in place.
    pub(crate) fn split_off(&mut self, prefix: &str, config: String) -> SavedRouter {
        fn take<V>(from: &mut BTreeMap<String, V>, prefix: &str) -> BTreeMap<String, V> {
            let names: Vec<String> = from
                .keys()
                .filter(|n| n.starts_with(prefix))
                .cloned()
                .collect();
            names
                .into_iter()
                .map(|n| {
                    let v = from.remove(&n).expect("listed above");
                    (n[prefix.len()..].to_string(), v)
                })
                .collect()
        }
        SavedRouter {
            config,
            pool: self.pool.clone(),
            embedding_model: self.embedding_model.clone(),
            dim: self.dim,
            tensors: take(&mut self.tensors, prefix),
            notes: take(&mut self.notes, prefix),
            in_place: take(&mut self.in_place, prefix),
        }
    }

    /// A saved router of kind `kind` with its configuration `config`, without tensors or notes.
    ///
    /// # Panics
    ///
    /// When `config` does not serialise to a JSON object (every router config is a struct or a
    /// tagged enum).
    pub fn new<C: Serialize>(
        kind: &str,
        config: &C,
        pool: ModelPool,
        embedding_model: Option<String>,
        dim: usize,
    ) -> Self {
        SavedRouter {
            config: tagged_json(kind, config),
            pool,
            embedding_model,
            dim,
            tensors: BTreeMap::new(),
            notes: BTreeMap::new(),
            in_place: BTreeMap::new(),
        }
    }

    /// Adds a tensor.
    ///
    /// # Panics
    ///
    /// When the data length does not match the shape (a bug in the router's saving code).
    pub fn with_tensor(mut self, name: &str, tensor: Tensor) -> Self {
        assert_eq!(
            tensor.shape.iter().product::<usize>(),
            tensor.data.len(),
            "tensor {name}: data does not match its shape"
        );
        self.tensors.insert(name.to_string(), tensor);
        self
    }

    /// The format version this router is written with: the lowest that holds all of it (1, or
    /// 2 with one of the [`VERSION_2_TENSORS`]), so that an older reader reads every file it
    /// can and refuses the others whole.
    pub fn format_version(&self) -> u32 {
        let v2 = |name: &str| {
            VERSION_2_TENSORS
                .iter()
                .any(|t| name == *t || name.strip_suffix(t).is_some_and(|head| head.ends_with('.')))
        };
        if self
            .tensors
            .keys()
            .chain(self.in_place.keys())
            .any(|n| v2(n))
        {
            2
        } else {
            1
        }
    }

    /// The file's bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] if the safetensors serialiser refuses the data.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        // Written by hand rather than through the safetensors crate so that the bytes are a
        // function of the router alone: metadata and tensors in sorted order (the crate takes a
        // HashMap, whose order changes from run to run). The crate reads the result.
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), FORMAT_NAME.to_string());
        meta.insert(
            "format_version".to_string(),
            self.format_version().to_string(),
        );
        meta.insert(
            "pointsman_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        );
        meta.insert("config".to_string(), self.config.clone());
        meta.insert(
            "models".to_string(),
            serde_json::to_string(&self.pool).expect("model pools serialise to JSON"),
        );
        meta.insert("dim".to_string(), self.dim.to_string());
        if let Some(m) = &self.embedding_model {
            meta.insert("embedding_model".to_string(), m.clone());
        }
        for (k, v) in &self.notes {
            meta.insert(format!("note.{k}"), v.clone());
        }
        Ok(container_bytes(&meta, &self.tensors))
    }

    /// Parses a saved router's bytes; `what` names the source in errors.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for anything that is not a well-formed saved router (naming what is
    /// wrong); [`Error::UnsupportedVersion`] for a newer or unknown format version.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<SavedRouter> {
        SavedRouter::parse(bytes, what, None)
    }

    /// As [`SavedRouter::from_bytes`]; with `map` (whose bytes `bytes` are), the `f32` tensors
    /// of at least [`IN_PLACE_MIN_BYTES`] whose data is 4-byte aligned stay in the mapping.
    fn parse(bytes: &[u8], what: &str, map: Option<&Arc<memmap2::Mmap>>) -> Result<SavedRouter> {
        let bad = |m: String| Error::format(what, m);
        let (st, header) = open_safetensors(bytes, what)?;
        let meta = header
            .metadata()
            .clone()
            .ok_or_else(|| bad("no metadata: not a pointsman router file".into()))?;
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| bad(format!("metadata has no {k:?}")))
        };
        check_format(&|k: &str| meta.get(k).cloned(), what)?;
        let config = get("config")?.clone();
        match serde_json::from_str::<serde_json::Value>(&config) {
            Ok(serde_json::Value::Object(o)) if o.get("type").is_some_and(|t| t.is_string()) => {}
            Ok(_) => return Err(bad("bad config: not a JSON object with a \"type\"".into())),
            Err(e) => return Err(bad(format!("bad config: {e}"))),
        }
        let pool: ModelPool =
            serde_json::from_str(get("models")?).map_err(|e| bad(format!("bad models: {e}")))?;
        if pool.len() > MAX_MODELS {
            return Err(bad(format!(
                "{} models: more than the ceiling of {MAX_MODELS}",
                pool.len()
            )));
        }
        let dim: usize = get("dim")?
            .parse()
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| bad(format!("bad dim {:?}", meta["dim"])))?;
        if dim > MAX_DIM {
            return Err(bad(format!("dim {dim} is above the ceiling of {MAX_DIM}")));
        }
        let mut in_place = BTreeMap::new();
        let tensors = decode_tensors(&st, what, &mut |name, view| {
            let map = map.filter(|_| cfg!(target_endian = "little"))?;
            let raw = view.data();
            let start = raw.as_ptr() as usize - bytes.as_ptr() as usize;
            let fits = view.dtype() == safetensors::Dtype::F32
                && raw.len() >= IN_PLACE_MIN_BYTES
                && start.is_multiple_of(4)
                && start + raw.len() <= map.len();
            fits.then(|| {
                let values = F32s(F32sInner::Mapped {
                    map: Arc::clone(map),
                    start,
                    len: raw.len() / 4,
                });
                let shape = view.shape().to_vec();
                in_place.insert(name.to_string(), InPlace { shape, values });
            })
        })?;
        let notes = meta
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("note.").map(|k| (k.to_string(), v.clone())))
            .collect();
        Ok(SavedRouter {
            config,
            pool,
            embedding_model: meta.get("embedding_model").cloned(),
            dim,
            tensors,
            notes,
            in_place,
        })
    }

    /// Writes the router to `path`, atomically.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    /// Reads a saved router from `path`.
    ///
    /// Only a regular file is opened (a FIFO, a device or a folder is refused before anything
    /// is read), and its header is read and checked first: its length against the file's size
    /// and [`MAX_HEADER_BYTES`], its format and version, and the tensors' extent against the
    /// file's size. Only then is the rest read, so a load never reads more than the file holds
    /// and refuses garbage after reading a few bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read or is not a regular file; the errors of
    /// [`SavedRouter::from_bytes`], naming the file.
    pub fn load(path: &Path) -> Result<SavedRouter> {
        use std::io::Read;
        let what = path.display().to_string();
        let (mut file, size, len, header) = SavedRouter::open_checked(path)?;
        let n = header.len() as u64;
        let mut bytes = Vec::with_capacity(size as usize);
        bytes.extend_from_slice(&len);
        bytes.extend_from_slice(&header);
        // Into the reserved capacity without zeroing it first (a `resize` and `read_exact`
        // wrote every byte of a large file twice).
        let rest = size - 8 - n;
        let got = (&mut file)
            .take(rest)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
        if got as u64 != rest {
            return Err(Error::format(
                &what,
                format!(
                    "the file shrank while it was read: {got} of {rest} bytes after the header"
                ),
            ));
        }
        SavedRouter::from_bytes(&bytes, &what)
    }

    /// Opens a saved router memory-mapped and read-only, with the checks of
    /// [`SavedRouter::load`]. Its large `f32` tensors (a kNN router's reference set) are not
    /// copied: the router reads them in place ([`F32s`]), so processes on one host that open
    /// one file share one copy of it (the page cache). Files written by this crate keep the
    /// tensors aligned ([`container_bytes`]); a tensor that is not (a file written by hand)
    /// is copied. Saved routers are only ever replaced by an atomic rename
    /// ([`crate::files::write_atomic`]), never rewritten in place, so a mapping keeps the
    /// file it opened: replacing the file changes what the next open sees, not this one.
    /// A file truncated or rewritten in place by another program while mapped is outside
    /// this contract (reads past its new end fault).
    ///
    /// # Errors
    ///
    /// As [`SavedRouter::load`].
    pub fn open_mmap(path: &Path) -> Result<SavedRouter> {
        let what = path.display().to_string();
        let (file, size, _, _) = SavedRouter::open_checked(path)?;
        // SAFETY: the mapping is read-only and the crate replaces saved routers only by
        // rename (see above); the length is checked against the file's size below.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        if map.len() as u64 != size {
            return Err(Error::format(
                &what,
                format!(
                    "the file changed size while opened ({size} then {} bytes)",
                    map.len()
                ),
            ));
        }
        let map = Arc::new(map);
        SavedRouter::parse(&map[..], &what, Some(&map))
    }

    /// Opens `path` and checks its header as [`SavedRouter::load`] describes: the file, its
    /// size, the header's length prefix and the header's bytes.
    fn open_checked(path: &Path) -> Result<(std::fs::File, u64, [u8; 8], Vec<u8>)> {
        use std::io::Read;
        let what = path.display().to_string();
        let bad = |m: String| Error::format(&what, m);
        let (mut file, size) = crate::files::open_regular(path)?;
        let read = |file: &mut std::fs::File, buf: &mut [u8]| {
            file.read_exact(buf).map_err(|e| Error::io(path, e))
        };
        if size < 8 {
            return Err(bad(format!(
                "not a valid safetensors file: {size} bytes, too short for a header"
            )));
        }
        let mut len = [0u8; 8];
        read(&mut file, &mut len)?;
        let n = u64::from_le_bytes(len);
        if n > MAX_HEADER_BYTES || n > size - 8 {
            // Eight bytes of text read as a length are far above the ceiling, so a file that
            // starts with text is never a safetensors file: say what it probably is instead.
            let text = len
                .iter()
                .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
            let hint = if text {
                format!(
                    "; it starts with text ({:?}), so it is not a router file (routers are the \
                     safetensors files `pointsman train` and `save` write)",
                    String::from_utf8_lossy(&len)
                )
            } else {
                String::new()
            };
            return Err(bad(format!(
                "not a valid safetensors file: a header of {n} bytes does not fit the file's \
                 {size} bytes (or the ceiling of {MAX_HEADER_BYTES}){hint}"
            )));
        }
        let mut header = vec![0u8; n as usize];
        read(&mut file, &mut header)?;
        let parsed: serde_json::Value = serde_json::from_slice(&header)
            .map_err(|e| bad(format!("not a valid safetensors file: header: {e}")))?;
        let meta = parsed.get("__metadata__");
        let field = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        if meta.is_none() {
            return Err(bad("no metadata: not a pointsman router file".into()));
        }
        check_format(&field, &what)?;
        // The tensors must end where the file does.
        let mut data_end = 0u64;
        for (name, t) in parsed.as_object().into_iter().flatten() {
            if name == "__metadata__" {
                continue;
            }
            let end = t
                .get("data_offsets")
                .and_then(|o| o.get(1))
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| bad(format!("tensor {name} has no valid data_offsets")))?;
            data_end = data_end.max(end);
        }
        if data_end != size - 8 - n {
            return Err(bad(format!(
                "not a valid safetensors file: the tensors take {data_end} bytes, the file \
                 holds {} after its header",
                size - 8 - n
            )));
        }
        Ok((file, size, len, header))
    }

    fn take(&mut self, name: &str, shape: &[usize]) -> Result<TensorData> {
        if let Some(t) = self.in_place.remove(name) {
            self.tensors.insert(
                name.to_string(),
                Tensor {
                    shape: t.shape,
                    data: TensorData::F32(t.values.to_vec()),
                },
            );
        }
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| Error::format("saved router", format!("missing tensor {name}")))?;
        if t.shape != shape {
            return Err(Error::format(
                "saved router",
                format!("tensor {name} has shape {:?}, expected {shape:?}", t.shape),
            ));
        }
        Ok(t.data)
    }

    /// Removes the `f32` tensor `name`, checking its shape: in place when it was left in a
    /// mapped file ([`SavedRouter::open_mmap`]), else owned.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] naming the tensor when it is missing, of another dtype or shape.
    pub fn take_f32s(&mut self, name: &str, shape: &[usize]) -> Result<F32s> {
        match self.in_place.remove(name) {
            Some(t) if t.shape == shape => Ok(t.values),
            Some(t) => Err(Error::format(
                "saved router",
                format!("tensor {name} has shape {:?}, expected {shape:?}", t.shape),
            )),
            None => self.take_f32(name, shape).map(F32s::from),
        }
    }

    /// Removes the `f32` tensor `name`, checking its shape (a copy when it was left in place
    /// in a mapped file).
    ///
    /// # Errors
    ///
    /// [`Error::Format`] naming the tensor when it is missing, of another dtype or shape.
    pub fn take_f32(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        match self.take(name, shape)? {
            TensorData::F32(v) => Ok(v),
            _ => Err(Error::format(
                "saved router",
                format!("tensor {name} is not f32"),
            )),
        }
    }

    /// Removes the `f64` tensor `name`, checking its shape.
    ///
    /// # Errors
    ///
    /// As [`SavedRouter::take_f32`].
    pub fn take_f64(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f64>> {
        match self.take(name, shape)? {
            TensorData::F64(v) => Ok(v),
            _ => Err(Error::format(
                "saved router",
                format!("tensor {name} is not f64"),
            )),
        }
    }

    /// Removes the `u32` tensor `name`, checking its shape.
    ///
    /// # Errors
    ///
    /// As [`SavedRouter::take_f32`].
    pub fn take_u32(&mut self, name: &str, shape: &[usize]) -> Result<Vec<u32>> {
        match self.take(name, shape)? {
            TensorData::U32(v) => Ok(v),
            _ => Err(Error::format(
                "saved router",
                format!("tensor {name} is not u32"),
            )),
        }
    }

    /// The shape of tensor `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        match self.in_place.get(name) {
            Some(t) => Some(&t.shape),
            None => self.tensors.get(name).map(|t| t.shape.as_slice()),
        }
    }

    /// The router kind named by the config's `"type"` (empty when the config has none: only a
    /// container built by hand can lack it).
    pub fn kind(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.config)
            .ok()
            .and_then(|v| v.get("type")?.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The config of a router of kind `kind`, without its tag.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] when the config is of another kind or does not parse as `C`.
    pub fn typed_config<C: DeserializeOwned>(&self, kind: &str) -> Result<C> {
        let bad = |m: String| Error::format("saved router", m);
        let mut v: serde_json::Value =
            serde_json::from_str(&self.config).map_err(|e| bad(format!("bad config: {e}")))?;
        let found = v.as_object_mut().and_then(|o| o.remove("type"));
        match found.as_ref().and_then(|t| t.as_str()) {
            Some(t) if t == kind => {}
            Some(t) => return Err(bad(format!("a {t} router is not a {kind} router"))),
            None => return Err(bad("bad config: no \"type\"".into())),
        }
        serde_json::from_value(v).map_err(|e| bad(format!("bad {kind} config: {e}")))
    }
}

/// `config`'s JSON object with `"type": kind` as its first member: the bytes serde writes for an
/// internally tagged enum variant, so files keep their exact bytes whichever layer writes them.
///
/// # Panics
///
/// When `config` does not serialise to a JSON object.
pub fn tagged_json<C: Serialize>(kind: &str, config: &C) -> String {
    let body = serde_json::to_string(config).expect("router configs serialise to JSON");
    let rest = body
        .strip_prefix('{')
        .expect("a router config serialises to a JSON object");
    let tag = format!("{{\"type\":{}", serde_json::Value::from(kind));
    if rest == "}" {
        format!("{tag}}}")
    } else {
        format!("{tag},{rest}")
    }
}

/// The bytes of a safetensors container with `meta` as its metadata and `tensors` in name order:
/// the header padded with spaces so that the data starts 8-byte aligned, and every tensor's
/// data at an offset that is a multiple of its element size as long as the tensors before it
/// keep that alignment (true of the routers' files: [`SavedRouter::to_bytes`] writes them this
/// way, and a memory-mapped load checks it). The bytes are a function of the arguments alone.
pub fn container_bytes(
    meta: &BTreeMap<String, String>,
    tensors: &BTreeMap<String, Tensor>,
) -> Vec<u8> {
    // Written by hand rather than through the safetensors crate so that the bytes are a
    // function of the arguments alone: metadata and tensors in sorted order (the crate takes a
    // HashMap, whose order changes from run to run). The crate reads the result.
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".to_string(),
        serde_json::to_value(meta).expect("string maps serialise to JSON"),
    );
    let mut data = Vec::new();
    for (name, t) in tensors {
        let bytes = t.data.bytes();
        let dtype = match t.data {
            TensorData::F32(_) => "F32",
            TensorData::F64(_) => "F64",
            TensorData::U32(_) => "U32",
        };
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": dtype,
                "shape": t.shape,
                "data_offsets": [data.len(), data.len() + bytes.len()],
            }),
        );
        data.extend_from_slice(&bytes);
    }
    let mut header = serde_json::to_string(&header).expect("headers serialise to JSON");
    // Pad the header with spaces so that the data starts 8-byte aligned.
    header.push_str(&" ".repeat((8 - header.len() % 8) % 8));
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// A safetensors container's metadata and tensors, parsed and checked by the safetensors crate
/// (header, offsets, sizes); `what` names the source in errors. The containers of the
/// exchange ([`crate::share`]) are read this way; saved routers check more
/// ([`SavedRouter::from_bytes`]).
///
/// # Errors
///
/// [`Error::Format`] for anything that is not a well-formed container of `f32`, `f64` and
/// `u32` tensors.
pub fn read_container(
    bytes: &[u8],
    what: &str,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, Tensor>)> {
    let (st, header) = open_safetensors(bytes, what)?;
    let meta = header
        .metadata()
        .clone()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    Ok((meta, decode_tensors(&st, what, &mut |_, _| None)?))
}

/// The tensors of `st`, except those `keep` takes (it returns `Some` for a tensor it keeps in
/// place).
fn decode_tensors(
    st: &safetensors::SafeTensors<'_>,
    what: &str,
    keep: &mut dyn FnMut(&str, &safetensors::tensor::TensorView<'_>) -> Option<()>,
) -> Result<BTreeMap<String, Tensor>> {
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        if keep(&name, &view).is_some() {
            continue;
        }
        let raw = view.data();
        let data = match view.dtype() {
            safetensors::Dtype::F32 => TensorData::F32(
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            safetensors::Dtype::F64 => TensorData::F64(
                raw.chunks_exact(8)
                    .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect(),
            ),
            safetensors::Dtype::U32 => TensorData::U32(
                raw.chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            other => {
                return Err(Error::format(
                    what,
                    format!("tensor {name}: unsupported dtype {other:?}"),
                ))
            }
        };
        tensors.insert(
            name,
            Tensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(tensors)
}
