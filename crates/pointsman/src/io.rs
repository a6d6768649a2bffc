//! The saved-router format, and the file helpers shared by everything that writes.
//!
//! A saved router is one `.safetensors` file (specified in `docs/format.md`): little-endian
//! tensors with dotted names (`knn.embeddings`, `mf.model_vectors`, …) and, in the file's
//! metadata, the format name and version, the router's JSON config (internally tagged by kind:
//! `{"type": "knn", …}`), the model pool with prices, and the embedding model's name and
//! dimension. Files are written atomically (temporary file, then rename), so a crash or a full
//! disk never leaves a half-written file where a good one was. Loading checks every shape; a
//! truncated or corrupt file is an [`Error::Format`], never a panic.
//!
//! # Example
//!
//! ```
//! use pointsman::data::Split;
//! use pointsman::io::{load_router, SavedRouter};
//! use pointsman::routers::baseline::{Baseline, BaselineRouter};
//! use pointsman::{ModelCard, ModelPool, Router};
//! let pool = ModelPool::new(vec![ModelCard::new("a", 0.1, 0.1), ModelCard::new("b", 1.0, 1.0)])?;
//! let train = Split::from_arrays(pool, vec![1.0, 0.0], 2, vec![0.4, 0.7], vec![1e-5, 1e-4])?;
//! let router = BaselineRouter::fit(Baseline::BestSingle, &train)?;
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("router.safetensors");
//! router.save(&path)?;
//! let loaded = load_router(&path)?;
//! assert_eq!(loaded.kind(), "best-single");
//! assert_eq!(loaded.dim(), 2);
//! # Ok::<(), pointsman::Error>(())
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pool::ModelPool;
use crate::router::Router;
use crate::routers::baseline::{Baseline, BaselineRouter};

/// The `format` metadata value of a saved router.
pub const FORMAT_NAME: &str = "pointsman-router";

/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// A router's configuration as saved files hold it, tagged by router kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RouterConfig {
    /// A baseline router.
    Baseline(Baseline),
    /// A kNN router.
    Knn(crate::routers::knn::KnnConfig),
    /// A matrix-factorisation router.
    Mf(crate::routers::mf::MfConfig),
    /// A LinUCB bandit.
    Linucb(crate::routers::bandit::LinearConfig),
    /// A linear Thompson-sampling bandit.
    Thompson(crate::routers::bandit::LinearConfig),
    /// A neighbourhood (kNN-UCB) bandit.
    KnnUcb(crate::routers::bandit::KnnUcbConfig),
    /// A cluster bandit with an additive prior.
    ClusterUcb(crate::routers::bandit::ClusterUcbConfig),
    /// A cascade.
    Cascade(crate::routers::cascade::CascadeConfig),
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

/// A router in its saved form: config, pool, embedding space and tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedRouter {
    /// The router's configuration (its kind is the tag).
    pub config: RouterConfig,
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
}

impl SavedRouter {
    /// A saved router without tensors or notes.
    pub fn new(
        config: RouterConfig,
        pool: ModelPool,
        embedding_model: Option<String>,
        dim: usize,
    ) -> Self {
        SavedRouter {
            config,
            pool,
            embedding_model,
            dim,
            tensors: BTreeMap::new(),
            notes: BTreeMap::new(),
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
        meta.insert("format_version".to_string(), FORMAT_VERSION.to_string());
        meta.insert(
            "pointsman_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        );
        meta.insert(
            "config".to_string(),
            serde_json::to_string(&self.config).expect("router configs serialise to JSON"),
        );
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
        let mut header = serde_json::Map::new();
        header.insert(
            "__metadata__".to_string(),
            serde_json::to_value(&meta).expect("string maps serialise to JSON"),
        );
        let mut data = Vec::new();
        for (name, t) in &self.tensors {
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
        Ok(out)
    }

    /// Parses a saved router's bytes; `what` names the source in errors.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for anything that is not a well-formed saved router (naming what is
    /// wrong); [`Error::UnsupportedVersion`] for a newer or unknown format version.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<SavedRouter> {
        let bad = |m: String| Error::format(what, m);
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let meta = header
            .metadata()
            .clone()
            .ok_or_else(|| bad("no metadata: not a pointsman router file".into()))?;
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| bad(format!("metadata has no {k:?}")))
        };
        if get("format")? != FORMAT_NAME {
            return Err(bad(format!(
                "format {:?} is not {FORMAT_NAME:?}",
                get("format")?
            )));
        }
        let version = get("format_version")?;
        match version.parse::<u32>() {
            Ok(v) if (1..=FORMAT_VERSION).contains(&v) => {}
            _ => {
                return Err(Error::UnsupportedVersion {
                    found: version.clone(),
                    supported: FORMAT_VERSION.to_string(),
                })
            }
        }
        let config: RouterConfig =
            serde_json::from_str(get("config")?).map_err(|e| bad(format!("bad config: {e}")))?;
        let pool: ModelPool =
            serde_json::from_str(get("models")?).map_err(|e| bad(format!("bad models: {e}")))?;
        let pool =
            ModelPool::new(pool.cards().to_vec()).map_err(|e| bad(format!("bad models: {e}")))?;
        let dim: usize = get("dim")?
            .parse()
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| bad(format!("bad dim {:?}", meta["dim"])))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let raw = view.data();
            let data = match view.dtype() {
                safetensors::Dtype::F32 => TensorData::F32(
                    raw.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ),
                safetensors::Dtype::F64 => TensorData::F64(
                    raw.chunks_exact(8)
                        .map(|b| {
                            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                        })
                        .collect(),
                ),
                safetensors::Dtype::U32 => TensorData::U32(
                    raw.chunks_exact(4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ),
                other => return Err(bad(format!("tensor {name}: unsupported dtype {other:?}"))),
            };
            tensors.insert(
                name,
                Tensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
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
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; the errors of [`SavedRouter::from_bytes`].
    pub fn load(path: &Path) -> Result<SavedRouter> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        SavedRouter::from_bytes(&bytes, &path.display().to_string())
    }

    fn take(&mut self, name: &str, shape: &[usize]) -> Result<TensorData> {
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

    /// Removes the `f32` tensor `name`, checking its shape.
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
        self.tensors.get(name).map(|t| t.shape.as_slice())
    }
}

/// Rebuilds a router from its saved form.
///
/// # Errors
///
/// [`Error::Format`] for missing or misshapen tensors and invalid values.
pub fn router_from_saved(saved: SavedRouter) -> Result<Arc<dyn Router>> {
    match saved.config.clone() {
        RouterConfig::Baseline(rule) => Ok(Arc::new(BaselineRouter::from_saved(rule, saved)?)),
        RouterConfig::Knn(config) => Ok(Arc::new(crate::routers::knn::KnnRouter::from_saved(
            config, saved,
        )?)),
        RouterConfig::Mf(config) => Ok(Arc::new(crate::routers::mf::MfRouter::from_saved(
            config, saved,
        )?)),
        RouterConfig::Linucb(config) => Ok(Arc::new(
            crate::routers::bandit::LinUcbRouter::from_saved(config, saved)?,
        )),
        RouterConfig::Thompson(config) => Ok(Arc::new(
            crate::routers::bandit::LinTsRouter::from_saved(config, saved)?,
        )),
        RouterConfig::KnnUcb(config) => Ok(Arc::new(
            crate::routers::bandit::KnnUcbRouter::from_saved(config, saved)?,
        )),
        RouterConfig::ClusterUcb(config) => Ok(Arc::new(
            crate::routers::bandit::ClusterUcbRouter::from_saved(config, saved)?,
        )),
        RouterConfig::Cascade(config) => Ok(Arc::new(
            crate::routers::cascade::CascadeRouter::from_saved(config, saved)?,
        )),
    }
}

/// Loads a saved router.
///
/// # Errors
///
/// [`Error::Io`], [`Error::Format`] or [`Error::UnsupportedVersion`], naming the file.
pub fn load_router(path: impl AsRef<Path>) -> Result<Arc<dyn Router>> {
    let path = path.as_ref();
    let what = path.display().to_string();
    router_from_saved(SavedRouter::load(path)?).map_err(|e| rename_source(e, &what))
}

/// Loads a router from the bytes of a saved file (for example a pickled Python router).
///
/// # Errors
///
/// As [`load_router`].
pub fn router_from_bytes(bytes: &[u8]) -> Result<Arc<dyn Router>> {
    router_from_saved(SavedRouter::from_bytes(bytes, "saved router")?)
}

/// Loads a saved router and checks that it was made for embeddings of `embedding_model` with
/// `dim` dimensions.
///
/// # Errors
///
/// As [`load_router`]; [`Error::DimensionMismatch`] or [`Error::EmbeddingMismatch`] for a router
/// made for other embeddings.
pub fn load_router_for(
    path: impl AsRef<Path>,
    embedding_model: &str,
    dim: usize,
) -> Result<Arc<dyn Router>> {
    let router = load_router(path)?;
    if router.dim() != dim {
        return Err(Error::DimensionMismatch {
            expected: dim,
            got: router.dim(),
        });
    }
    if let Some(m) = router.embedding_model() {
        if m != embedding_model {
            return Err(Error::EmbeddingMismatch {
                expected: m.to_string(),
                got: embedding_model.to_string(),
            });
        }
    }
    Ok(router)
}

fn rename_source(e: Error, what: &str) -> Error {
    match e {
        Error::Format {
            path,
            line,
            message,
        } if path == "saved router" => Error::Format {
            path: what.to_string(),
            line,
            message,
        },
        other => other,
    }
}

/// Writes `bytes` to `path` atomically: into a temporary file in the same folder, flushed to
/// disk, then renamed over `path`.
///
/// # Errors
///
/// [`Error::Io`] naming the path when any step fails; the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path)?;
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// A file written in place of `path` only when [`AtomicFile::commit`] succeeds; dropped
/// uncommitted, it leaves `path` untouched and removes its temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl AtomicFile {
    /// Starts writing `path` through a temporary file beside it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming `path` when the temporary file cannot be created.
    pub fn create(path: &Path) -> Result<Self> {
        let tmp = temp_path(path)?;
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            file: Some(std::io::BufWriter::new(file)),
        })
    }

    /// Flushes, syncs and renames the temporary file over the target path.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the target path.
    pub fn commit(mut self) -> Result<()> {
        let file = self
            .file
            .take()
            .expect("an uncommitted AtomicFile holds its file");
        let result = (|| {
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&self.tmp, &self.path)
        })();
        result.map_err(|e| Error::io(&self.path, e))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file
            .as_mut()
            .expect("an uncommitted AtomicFile holds its file")
            .write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file
            .as_mut()
            .expect("an uncommitted AtomicFile holds its file")
            .flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn temp_path(path: &Path) -> Result<std::path::PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        )
    })?;
    Ok(dir.join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        unique()
    )))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Split;
    use crate::pool::ModelCard;
    use crate::{ErrorKind, Objective, QueryFeatures};
    use std::collections::HashMap;

    #[test]
    fn atomic_write_replaces_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        let e = write_atomic(&tmp.path().join("missing/dir/a.bin"), b"x").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Io);
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"three").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"four").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"four");
    }

    fn baseline() -> BaselineRouter {
        let pool = ModelPool::new(vec![
            ModelCard::new("a", 0.1, 0.1),
            ModelCard::new("b", 1.0, 1.0),
        ])
        .unwrap();
        let train = Split::from_arrays(
            pool,
            vec![1.0, 0.0, 0.0, 1.0],
            2,
            vec![0.4, 0.7, 0.5, 0.9],
            vec![1e-5, 1e-4, 1e-5, 1e-4],
        )
        .unwrap();
        BaselineRouter::fit(Baseline::Zero, &train).unwrap()
    }

    #[test]
    fn round_trip_is_bit_identical() {
        let r = baseline();
        let saved = r.to_saved().unwrap();
        let bytes = saved.to_bytes().unwrap();
        let again = SavedRouter::from_bytes(&bytes, "x").unwrap();
        assert_eq!(again, saved);
        assert_eq!(again.to_bytes().unwrap(), bytes);
        let loaded = router_from_bytes(&bytes).unwrap();
        let q = QueryFeatures::new(vec![0.3, 0.4]).unwrap();
        for w in [0.0, 1e3, 1e5] {
            assert_eq!(
                r.route(&q, &Objective::new(w)).unwrap(),
                loaded.route(&q, &Objective::new(w)).unwrap()
            );
        }
    }

    fn with_meta(edit: impl Fn(&mut HashMap<String, String>)) -> Vec<u8> {
        let bytes = baseline().to_saved().unwrap().to_bytes().unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let mut meta = header.metadata().clone().unwrap();
        edit(&mut meta);
        safetensors::serialize(st.tensors(), Some(meta)).unwrap()
    }

    fn err(bytes: &[u8]) -> Error {
        router_from_bytes(bytes).unwrap_err()
    }

    #[test]
    fn corrupt_files_are_clear_errors() {
        let good = baseline().to_saved().unwrap().to_bytes().unwrap();
        // Every truncation is an error, never a panic.
        for n in [0, 1, 7, 8, 20, good.len() / 2, good.len() - 1] {
            let e = err(&good[..n]);
            assert_eq!(e.kind(), ErrorKind::Format, "{n}: {e}");
        }
        // Flipped bytes anywhere: an error or a valid router, never a panic.
        for i in (0..good.len()).step_by(7) {
            let mut b = good.clone();
            b[i] ^= 0x5A;
            let _ = router_from_bytes(&b);
        }
        let e = err(b"definitely not a router file");
        assert!(
            e.to_string()
                .starts_with("saved router: not a valid safetensors file"),
            "{e}"
        );
        let e = err(&with_meta(|m| {
            m.insert("format_version".into(), "2".into());
        }));
        assert_eq!(
            e.to_string(),
            "unsupported format version \"2\" (this build reads version 1)"
        );
        assert_eq!(e.kind(), ErrorKind::UnsupportedVersion);
        let e = err(&with_meta(|m| {
            m.remove("format");
        }));
        assert!(e.to_string().contains("metadata has no \"format\""), "{e}");
        let e = err(&with_meta(|m| {
            m.insert("config".into(), r#"{"type": "quantum"}"#.into());
        }));
        assert!(
            e.to_string()
                .contains("bad config: unknown variant `quantum`"),
            "{e}"
        );
        let e = err(&with_meta(|m| {
            m.insert("dim".into(), "0".into());
        }));
        assert!(e.to_string().contains("bad dim"), "{e}");
        // A tensor of the wrong shape.
        let mut saved = baseline().to_saved().unwrap();
        saved.tensors.insert(
            "baseline.mean_scores".into(),
            Tensor::f64(&[3], vec![0.1; 3]),
        );
        let e = err(&saved.to_bytes().unwrap());
        assert!(
            e.to_string()
                .contains("tensor baseline.mean_scores has shape [3], expected [2]"),
            "{e}"
        );
        saved.tensors.remove("baseline.mean_scores");
        let e = err(&saved.to_bytes().unwrap());
        assert!(
            e.to_string()
                .contains("missing tensor baseline.mean_scores"),
            "{e}"
        );
    }

    #[test]
    fn load_names_the_file_and_checks_the_embedding_space() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("r.safetensors");
        baseline().save(&p).unwrap();
        assert!(load_router_for(&p, "any", 2).is_ok());
        let e = load_router_for(&p, "any", 384).unwrap_err();
        assert_eq!(e.to_string(), "dimension mismatch: expected 384, got 2");
        std::fs::write(&p, b"garbage").unwrap();
        let e = load_router(&p).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: not a valid safetensors file", p.display())),
            "{e}"
        );
        let e = load_router(tmp.path().join("missing")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
    }
}
