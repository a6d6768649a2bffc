//! `Dataset` and `Split`: routing data in the shared schema, or from arrays.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArrayDyn, PyUntypedArrayMethods};
use pointsman::data::{Dataset, Split};
use pointsman::{ModelCard, ModelPool};
use pyo3::prelude::*;

use crate::arrays;
use crate::convert::repr;
use crate::parallel::run;

/// A routing dataset folder: the models with their prices, and the train and test splits.
#[pyclass(name = "Dataset", module = "pointsman", frozen)]
#[derive(Debug)]
pub struct PyDataset {
    pub inner: Arc<Dataset>,
}

#[pymethods]
impl PyDataset {
    /// Loads a dataset folder in the shared schema (with its MiniLM embeddings when present).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = run(py, || Dataset::load(&path))?;
        Ok(PyDataset {
            inner: Arc::new(inner),
        })
    }

    /// A dataset in memory from arrays: `scores` `[n, len(models)]` in [0, 1], NaN where a
    /// model was not observed (partial labels); `embeddings` `[n, dim]`, or `prompts` embedded
    /// in-process (with `embedder`, else the default model); optional observed `costs` and
    /// logged choice `propensities` (`[n, len(models)]`, NaN: none), `prices`
    /// (`{model: (input, output)}` USD per 1M tokens, required for every model), `ids`, `tasks`
    /// and `splits`
    /// (`"train"`/`"test"`; default: the shipped split rule on the ids). `save()` writes it.
    /// With `embeddings`, `prompts` are still read (not embedded) for their length: without
    /// them every prompt counts 0 tokens, so costs estimated from prices count the answer only.
    #[staticmethod]
    #[pyo3(signature = (models, scores, *, prices, embeddings = None, prompts = None, ids = None, tasks = None, splits = None, costs = None, propensities = None, embedder = None, embedding_model = None, name = "arrays".to_string()))]
    #[allow(clippy::too_many_arguments)]
    fn from_arrays(
        py: Python<'_>,
        models: Vec<String>,
        scores: &Bound<'_, PyAny>,
        prices: std::collections::HashMap<String, (f64, f64)>,
        embeddings: Option<&Bound<'_, PyAny>>,
        prompts: Option<Vec<String>>,
        ids: Option<Vec<String>>,
        tasks: Option<Vec<Option<String>>>,
        splits: Option<Vec<String>>,
        costs: Option<&Bound<'_, PyAny>>,
        propensities: Option<&Bound<'_, PyAny>>,
        embedder: Option<Py<crate::embedder::PyEmbedder>>,
        embedding_model: Option<String>,
        name: String,
    ) -> PyResult<Self> {
        crate::own_data::dataset_from_arrays(
            py,
            models,
            scores,
            embeddings,
            prompts,
            ids,
            tasks,
            splits,
            costs,
            propensities,
            prices,
            embedder,
            embedding_model,
            name,
        )
    }

    /// A dataset in memory from a pandas DataFrame with one row per query: a score column per
    /// model (`models`; NaN where not observed), the `prompt` column (embedded in-process, with
    /// `embedder` else the default model) or an `embedding` column of vectors, and optionally
    /// `id`, `task` and `split` columns and a cost column per model named by `cost`
    /// (`"{model}|total_cost"` is RouterBench's); `prices` as in `from_arrays` (required).
    #[staticmethod]
    #[pyo3(signature = (df, models, *, prices, prompt = Some("prompt".to_string()), embedding = None, id = None, task = None, split = None, cost = None, embedder = None, embedding_model = None, name = "dataframe".to_string()))]
    #[allow(clippy::too_many_arguments)]
    fn from_pandas(
        py: Python<'_>,
        df: &Bound<'_, PyAny>,
        models: Vec<String>,
        prices: std::collections::HashMap<String, (f64, f64)>,
        prompt: Option<String>,
        embedding: Option<String>,
        id: Option<String>,
        task: Option<String>,
        split: Option<String>,
        cost: Option<String>,
        embedder: Option<Py<crate::embedder::PyEmbedder>>,
        embedding_model: Option<String>,
        name: String,
    ) -> PyResult<Self> {
        use crate::own_data::{check_frame, column, embedding_cells, numeric, required_text};
        check_frame(df)?;
        let scores = numeric(df, &models)?;
        let costs = match &cost {
            Some(pattern) => {
                let cols: Vec<String> = models
                    .iter()
                    .map(|m| pattern.replace("{model}", m))
                    .collect();
                Some(numeric(df, &cols)?)
            }
            None => None,
        };
        let embeddings = match &embedding {
            Some(c) => Some(embedding_cells(df, c)?),
            None => None,
        };
        let text = |c: &Option<String>| -> PyResult<Option<Vec<String>>> {
            c.as_ref().map(|c| required_text(df, c)).transpose()
        };
        let prompts = if embedding.is_some() && prompt.as_deref() == Some("prompt") {
            // The default prompt column is optional when embeddings are given.
            match column(df, "prompt") {
                Ok(_) => text(&prompt)?,
                Err(_) => None,
            }
        } else {
            text(&prompt)?
        };
        // A row without a task is a query without a tag, as in the dataset schema.
        let tasks = task
            .as_ref()
            .map(|c| crate::own_data::text_cells(df, c))
            .transpose()?;
        crate::own_data::dataset_from_arrays(
            py,
            models,
            &scores,
            embeddings.as_ref(),
            prompts,
            text(&id)?,
            tasks,
            text(&split)?,
            costs.as_ref(),
            None,
            prices,
            embedder,
            embedding_model,
            name,
        )
    }

    /// Writes the dataset as a folder in the shared schema (atomically); an existing folder is
    /// replaced only with `replace=True`, and only when it holds a dataset's files alone (a file
    /// at `path` is never replaced). Returns the folder.
    #[pyo3(signature = (path, *, replace = false))]
    fn save(&self, py: Python<'_>, path: PathBuf, replace: bool) -> PyResult<PathBuf> {
        let ds = self.inner.clone();
        run(py, || ds.save(&path, replace))
    }

    /// The dataset's name (its folder's name).
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The dataset's folder.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.dir().to_path_buf()
    }

    /// The model ids, in pool order (the columns of `scores` and `costs`).
    #[getter]
    fn models(&self) -> Vec<String> {
        model_ids(self.inner.pool())
    }

    /// The model cards, in pool order: dicts with the id, prices and default answer length
    /// (and latency, energy and capabilities where the dataset has them), as the cold-start
    /// constructors (`LinUcbRouter(ds.model_cards, 384)`, ...) accept them.
    #[getter]
    fn model_cards(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::convert::to_python(py, &self.inner.pool().cards())
    }

    /// The training split.
    #[getter]
    fn train(&self) -> PySplit {
        PySplit {
            source: Source::Train(self.inner.clone()),
        }
    }

    /// The test split.
    #[getter]
    fn test(&self) -> PySplit {
        PySplit {
            source: Source::Test(self.inner.clone()),
        }
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Dataset(name={}, train={}, test={}, models={})",
            repr(py, self.inner.name())?,
            self.inner.train().len(),
            self.inner.test().len(),
            self.inner.pool().len()
        ))
    }
}

pub fn model_ids(pool: &ModelPool) -> Vec<String> {
    pool.ids().map(str::to_string).collect()
}

/// Where a split's data lives.
#[derive(Debug)]
pub enum Source {
    Train(Arc<Dataset>),
    Test(Arc<Dataset>),
    Arrays(Arc<Split>),
}

/// One split of a dataset, or labelled queries from arrays.
#[pyclass(name = "Split", module = "pointsman", frozen)]
#[derive(Debug)]
pub struct PySplit {
    pub source: Source,
}

impl PySplit {
    /// The split.
    pub fn split(&self) -> &Split {
        match &self.source {
            Source::Train(ds) => ds.train(),
            Source::Test(ds) => ds.test(),
            Source::Arrays(s) => s,
        }
    }

    /// The dataset the split belongs to.
    pub fn source_dataset(&self) -> Option<&Arc<Dataset>> {
        match &self.source {
            Source::Train(ds) | Source::Test(ds) => Some(ds),
            Source::Arrays(_) => None,
        }
    }

    /// A read-only NumPy view of one of the split's arrays.
    fn view<'py, T: numpy::Element>(
        slf: &Bound<'py, Self>,
        pick: impl FnOnce(&Split) -> (&[T], Vec<usize>),
    ) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
        let (data, shape) = pick(slf.get().split());
        // SAFETY: the split is immutable and owned (through an Arc) by the Python object, which
        // the view keeps alive.
        unsafe { arrays::view(slf.as_any(), data, &shape) }
    }
}

#[pymethods]
impl PySplit {
    /// Labelled queries from arrays: `embeddings` `[n, dim]`, `scores` in [0, 1] and `costs` in
    /// USD `[n, len(models)]`, one model id per column. Costs count as observed (the models get no
    /// prices). Embedding rows are L2-normalised; the arrays are copied once into the split.
    #[staticmethod]
    #[pyo3(signature = (embeddings, scores, costs, models, tasks = None))]
    pub fn from_arrays(
        py: Python<'_>,
        embeddings: &Bound<'_, PyAny>,
        scores: &Bound<'_, PyAny>,
        costs: &Bound<'_, PyAny>,
        models: Vec<String>,
        tasks: Option<Vec<Option<String>>>,
    ) -> PyResult<Self> {
        let emb = arrays::array::<f32>(embeddings, "embeddings", 2, "[n, dim]")?;
        let scores = arrays::array::<f64>(scores, "scores", 2, "[n, models]")?;
        let costs = arrays::array::<f64>(costs, "costs", 2, "[n, models]")?;
        let dim = emb.shape()[1];
        for (name, arr) in [("scores", &scores), ("costs", &costs)] {
            if arr.shape()[1] != models.len() {
                return Err(crate::errors::to_py_err(pointsman::Error::Shape(format!(
                    "{name} have {} columns for {} models",
                    arr.shape()[1],
                    models.len()
                ))));
            }
        }
        let (emb, scores, costs) = (
            arrays::values(&emb)?,
            arrays::values(&scores)?,
            arrays::values(&costs)?,
        );
        let split = run(py, || {
            let pool = ModelPool::new(
                models
                    .iter()
                    .map(|id| ModelCard::new(id.as_str(), 0.0, 0.0))
                    .collect(),
            )?;
            let split =
                Split::from_arrays(pool, emb.to_vec(), dim, scores.to_vec(), costs.to_vec())?;
            match tasks {
                Some(tasks) => split.with_tasks(tasks),
                None => Ok(split),
            }
        })?;
        Ok(PySplit {
            source: Source::Arrays(Arc::new(split)),
        })
    }

    /// The split's name (`"train"`, `"test"`, or `"arrays"`).
    #[getter]
    fn name(&self) -> &str {
        self.split().name()
    }

    /// The model ids: the columns of `scores` and `costs`.
    #[getter]
    fn models(&self) -> Vec<String> {
        model_ids(self.split().pool())
    }

    /// Embedding dimension (0 when the dataset has no embeddings).
    #[getter]
    fn dim(&self) -> usize {
        self.split().dim()
    }

    /// The dataset this split belongs to (None for a split from arrays).
    #[getter]
    fn dataset(&self) -> Option<PyDataset> {
        self.source_dataset()
            .map(|ds| PyDataset { inner: ds.clone() })
    }

    /// Query ids.
    #[getter]
    fn ids(&self) -> Vec<String> {
        self.split().ids().to_vec()
    }

    /// Prompts (empty strings for a split from arrays).
    #[getter]
    fn prompts(&self) -> Vec<String> {
        self.split().prompts().to_vec()
    }

    /// Task tags (None where unknown).
    #[getter]
    fn tasks(&self) -> Vec<Option<String>> {
        self.split().tasks().to_vec()
    }

    /// Prompt token counts as the schema estimates them (characters / 4), float64 `[n]`.
    #[getter]
    fn prompt_tokens<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        Self::view(slf, |s| (s.prompt_tokens(), vec![s.len()]))
    }

    /// L2-normalised embeddings, float32 `[n, dim]` (a read-only view, no copy).
    #[getter]
    fn embeddings<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        Self::view(slf, |s| (s.embeddings(), vec![s.len(), s.dim()]))
    }

    /// Scores in [0, 1], float64 `[n, models]` (a read-only view, no copy).
    #[getter]
    fn scores<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        Self::view(slf, |s| (s.scores(), vec![s.len(), s.pool().len()]))
    }

    /// Costs in USD (observed, else estimated from prices), float64 `[n, models]` (a read-only
    /// view, no copy).
    #[getter]
    fn costs<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        Self::view(slf, |s| (s.costs(), vec![s.len(), s.pool().len()]))
    }

    /// Which (query, model) cells have a score, bool `[n, models]` (all true for full labels).
    #[getter]
    fn observed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, numpy::PyArray2<bool>>> {
        let s = self.split();
        let m = s.pool().len();
        let mask = match s.observed_mask() {
            Some(mask) => mask.to_vec(),
            None => vec![true; s.len() * m],
        };
        arrays::matrix(py, mask, s.len(), m)
    }

    fn __len__(&self) -> usize {
        self.split().len()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let s = self.split();
        let of = match self.source_dataset() {
            Some(ds) => format!("dataset={}, ", repr(py, ds.name())?),
            None => String::new(),
        };
        Ok(format!(
            "Split(name={}, {of}n={}, dim={}, models={})",
            repr(py, s.name())?,
            s.len(),
            s.dim(),
            s.pool().len()
        ))
    }
}
