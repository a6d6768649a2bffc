//! Bring your own data (docs/own-data.md): `import_dataset`, `Dataset.from_arrays`,
//! `Dataset.from_pandas`. Translation only: the importers, the table assembly and the
//! embedding are the engine's (`pointsman::data::import`, `DatasetDraft::from_columns`,
//! `pointsman::embed::embed_draft`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use numpy::PyUntypedArrayMethods;
use pointsman::data::{
    import, import_routerbench_rows, Dataset, DatasetDraft, DraftColumns, ImportFormat,
    ImportOptions, LogMapping,
};
use pointsman::embed::{Embedder, EmbedderOptions};
use pointsman::{Error, ModelCard, ModelPool};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::types::PyStringMethods;

use crate::arrays;
use crate::data::PyDataset;
use crate::embedder::PyEmbedder;
use crate::errors::IntoPyResult;
use crate::parallel::run;

/// The embedder to compute a draft's embeddings with: the given one, else the default model.
fn embedder_of(py: Python<'_>, embedder: Option<&Py<PyEmbedder>>) -> PyResult<Arc<Embedder>> {
    match embedder {
        Some(e) => run(py, || e.get().embedder()),
        None => run(py, || {
            Embedder::load_default(&EmbedderOptions::default()).map(Arc::new)
        }),
    }
}

/// A `LogMapping` from a dict of field names (`{"prompt": "q", "score": "ok", ...}`).
fn mapping(fields: Option<HashMap<String, String>>) -> PyResult<LogMapping> {
    let mut m = LogMapping::default();
    for (key, value) in fields.unwrap_or_default() {
        match key.as_str() {
            "id" => m.id = Some(value),
            "prompt" => m.prompt = value,
            "model" => m.model = value,
            "score" => m.score = value,
            "task" => m.task = Some(value),
            "split" => m.split = Some(value),
            "cost" => m.cost = Some(value),
            "propensity" => m.propensity = Some(value),
            other => {
                return Err(crate::errors::to_py_err(Error::Config(format!(
                    "mapping: unknown field {other:?} (known: id, prompt, model, score, task, \
                     split, cost, propensity)"
                ))))
            }
        }
    }
    Ok(m)
}

/// RouterBench's pandas pickles as rows of (column, value as text): NaN becomes "" (a missing
/// label). `pandas.read_pickle` runs code from the file: only for files the user trusts.
fn pickle_rows(py: Python<'_>, paths: &[PathBuf]) -> PyResult<Vec<Vec<(String, String)>>> {
    let pandas = py.import("pandas")?;
    let mut rows = Vec::new();
    for path in paths {
        let df = pandas.call_method1("read_pickle", (path,))?;
        let columns: Vec<String> = df
            .getattr("columns")?
            .call_method0("tolist")?
            .try_iter()?
            .map(|c| c.and_then(|c| c.str().map(|s| s.to_string())))
            .collect::<PyResult<_>>()?;
        let filled = df
            .call_method1("astype", ("object",))?
            .call_method1("where", (df.call_method0("notna")?, ""))?;
        let table: Vec<Vec<Bound<'_, PyAny>>> = filled
            .getattr("values")?
            .call_method0("tolist")?
            .extract()?;
        for row in table {
            let mut cells = Vec::with_capacity(columns.len());
            for (c, v) in columns.iter().zip(row) {
                cells.push((c.clone(), v.str()?.to_string()));
            }
            rows.push(cells);
        }
    }
    Ok(rows)
}

/// Imports `inputs` in `format` (`"log"`, `"llmrouter"`, `"routellm"`, `"routerbench"`,
/// `"gateway-log"`) as the dataset folder `out`, with embeddings computed in-process unless
/// `embed=False`; returns the dataset loaded from `out`. See docs/own-data.md.
#[pyfunction]
#[pyo3(signature = (format, inputs, out, *, models = None, mapping = None, embed = true, embedder = None, replace = false, mt_bench = false, default_output_tokens = None, duplicates = "refuse"))]
#[allow(clippy::too_many_arguments)]
pub fn import_dataset(
    py: Python<'_>,
    format: &str,
    inputs: Vec<PathBuf>,
    out: PathBuf,
    models: Option<PathBuf>,
    mapping: Option<HashMap<String, String>>,
    embed: bool,
    embedder: Option<Py<PyEmbedder>>,
    replace: bool,
    mt_bench: bool,
    default_output_tokens: Option<f64>,
    duplicates: &str,
) -> PyResult<PyDataset> {
    let format: ImportFormat = format.parse().py()?;
    let options = ImportOptions {
        models,
        mapping: LogMapping {
            duplicates: duplicates.parse().py()?,
            ..self::mapping(mapping)?
        },
        default_output_tokens,
        mt_bench,
    };
    let pickled = format == ImportFormat::Routerbench
        && inputs.iter().any(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "pkl" | "pickle"))
        });
    let mut draft = if pickled {
        let rows = pickle_rows(py, &inputs)?;
        let name = inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        run(py, || import_routerbench_rows(&name, rows, &options))?
    } else {
        run(py, || import(format, &inputs, &options))?
    };
    // Refused now rather than after minutes of embedding.
    run(py, || draft.check_destination(&out, replace))?;
    if embed && draft.embeddings.is_none() {
        let e = embedder_of(py, embedder.as_ref())?;
        run(py, || {
            pointsman::embed::embed_draft(&mut draft, &e, &mut |_, _| {})
        })?;
    }
    let ds = run(py, || {
        let dir = draft.write(&out, replace)?;
        Dataset::load(dir)
    })?;
    Ok(PyDataset {
        inner: Arc::new(ds),
    })
}

/// A pool over `models` with the prices of `prices` (`{id: (input, output)}` USD per 1M
/// tokens; 0 for a model not in it).
fn pool_of(models: &[String], prices: HashMap<String, (f64, f64)>) -> pointsman::Result<ModelPool> {
    // Without prices every cost estimate would be 0 and a cost weight would do nothing: the
    // prices are asked for, not assumed (a free model is given as (0, 0)).
    for id in prices.keys() {
        if !models.contains(id) {
            return Err(Error::UnknownModel(format!(
                "{id} (in prices, not in models)"
            )));
        }
    }
    let cards = models
        .iter()
        .map(|id| {
            let (i, o) = prices.get(id).copied().ok_or_else(|| {
                Error::InvalidInput(format!(
                    "prices has no price for model {id:?}: give prices={{model: (input, \
                     output)}} in USD per 1M tokens for every model ((0, 0) for a free one)"
                ))
            })?;
            Ok(ModelCard::new(id.as_str(), i, o))
        })
        .collect::<pointsman::Result<Vec<_>>>()?;
    ModelPool::new(cards)
}

/// The optional `[n, m]` float64 array argument `name` as values.
/// A `[queries, models]` table as its values, row by row; `rows` (the scores' row count, when
/// known) and `models` must be its shape: only the total was checked before, so a transposed
/// or re-cut table was read silently as another one.
fn table(
    obj: Option<&Bound<'_, PyAny>>,
    name: &str,
    rows: Option<usize>,
    models: usize,
) -> PyResult<Option<(Vec<f64>, usize)>> {
    obj.filter(|o| !o.is_none())
        .map(|o| {
            let a = arrays::array::<f64>(o, name, 2, "[queries, models]")?;
            let shape = a.shape();
            if shape[1] != models || rows.is_some_and(|r| r != shape[0]) {
                return Err(Error::Shape(format!(
                    "{name} is [{}, {}], not [{}, {models}] (one row per query, one column per \
                     model)",
                    shape[0],
                    shape[1],
                    rows.map_or("queries".to_string(), |r| r.to_string())
                )))
                .py();
            }
            Ok((arrays::values(&a)?.to_vec(), shape[0]))
        })
        .transpose()
}

/// The common body of `Dataset.from_arrays` and `Dataset.from_pandas`.
#[allow(clippy::too_many_arguments)]
pub fn dataset_from_arrays(
    py: Python<'_>,
    models: Vec<String>,
    scores: &Bound<'_, PyAny>,
    embeddings: Option<&Bound<'_, PyAny>>,
    prompts: Option<Vec<String>>,
    ids: Option<Vec<String>>,
    tasks: Option<Vec<Option<String>>>,
    splits: Option<Vec<String>>,
    costs: Option<&Bound<'_, PyAny>>,
    propensities: Option<&Bound<'_, PyAny>>,
    prices: HashMap<String, (f64, f64)>,
    embedder: Option<Py<PyEmbedder>>,
    embedding_model: Option<String>,
    name: String,
) -> PyResult<PyDataset> {
    let (scores, rows) = table(Some(scores), "scores", None, models.len())?.unwrap_or_default();
    let embeddings = match embeddings.filter(|e| !e.is_none()) {
        Some(e) => {
            let a = arrays::array::<f32>(e, "embeddings", 2, "[queries, dim]")?;
            let dim = a.shape()[1];
            Some((arrays::values(&a)?.to_vec(), dim))
        }
        None => None,
    };
    let columns = DraftColumns {
        ids,
        prompts,
        tasks,
        splits,
        scores,
        costs: table(costs, "costs", Some(rows), models.len())?.map(|(v, _)| v),
        propensities: table(propensities, "propensities", Some(rows), models.len())?
            .map(|(v, _)| v),
        embeddings,
    };
    let has_embeddings = columns.embeddings.is_some();
    let model_name = embedding_model.clone().unwrap_or_default();
    let mut draft = run(py, || {
        DatasetDraft::from_columns(pool_of(&models, prices)?, "arrays", columns, &model_name)
    })?;
    if !has_embeddings {
        if draft.rows.iter().any(|r| r.prompt.is_empty()) {
            return Err(crate::errors::to_py_err(Error::InvalidInput(
                "give embeddings, or a prompt for every query to embed".into(),
            )));
        }
        let e = embedder_of(py, embedder.as_ref())?;
        run(py, || {
            pointsman::embed::embed_draft(&mut draft, &e, &mut |_, _| {})
        })?;
    }
    let mut ds = run(py, || Dataset::from_draft(name, &draft))?;
    if has_embeddings && embedding_model.is_none() {
        // Embeddings of an unnamed model: no name to check routed text against.
        let e = draft.embeddings.as_ref().expect("embeddings were given");
        run(py, || ds.set_embeddings(&e.data, e.dim, None))?;
    }
    Ok(PyDataset {
        inner: Arc::new(ds),
    })
}

/// A `TypeError` unless `df` is a pandas DataFrame (anything with `columns` and `to_numpy`), and
/// an `InvalidInputError` when it has no rows.
pub fn check_frame(df: &Bound<'_, PyAny>) -> PyResult<()> {
    if !(df.hasattr("columns")? && df.hasattr("to_numpy")?) {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "df must be a pandas DataFrame, not {}",
            df.get_type().name()?
        )));
    }
    if df.len()? == 0 {
        return Err(invalid("the DataFrame has no rows".into()));
    }
    Ok(())
}

fn invalid(message: String) -> PyErr {
    crate::errors::to_py_err(Error::InvalidInput(message))
}

/// The columns of a pandas DataFrame as Python values: `df[column].tolist()`.
pub fn column<'py>(df: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let col = df
        .get_item(name)
        .map_err(|_| invalid(format!("the DataFrame has no column {name:?}")))?;
    if col.hasattr("columns")? {
        return Err(invalid(format!(
            "the DataFrame has more than one column named {name:?}"
        )));
    }
    col.call_method0("tolist")
}

/// A text column's cells, a missing one (None, NaN, `pd.NA`) as `None` rather than the text
/// "None" or "nan"; other values as their `str()`.
pub fn text_cells(df: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<Option<String>>> {
    let isna = df.py().import("pandas")?.getattr("isna")?;
    column(df, name)?
        .try_iter()?
        .map(|v| {
            let v = v?;
            if let Ok(s) = v.cast::<pyo3::types::PyString>() {
                return Ok(Some(s.to_cow()?.into_owned()));
            }
            let missing = v.is_none()
                || isna
                    .call1((&v,))
                    .and_then(|b| b.extract::<bool>())
                    .unwrap_or(false);
            Ok(if missing {
                None
            } else {
                Some(v.str()?.to_string())
            })
        })
        .collect()
}

/// [`text_cells`] of a column every row must have, naming the first row without one.
pub fn required_text(df: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<String>> {
    text_cells(df, name)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.ok_or_else(|| {
                invalid(format!(
                    "column {name:?} has no value in row {i} (None or NaN): every row needs one"
                ))
            })
        })
        .collect()
}

/// `numpy.stack` of an embedding column, naming the first row that is missing or whose length
/// differs from the first row's.
pub fn embedding_cells<'py>(df: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let cells = column(df, name)?;
    let mut width = None;
    for (i, v) in cells.try_iter()?.enumerate() {
        let v = v?;
        let n = if v.is_none() { None } else { v.len().ok() };
        let Some(n) = n else {
            return Err(invalid(format!(
                "column {name:?} has no vector in row {i}: every row needs an embedding"
            )));
        };
        match width {
            None => width = Some(n),
            Some(w) if w != n => {
                return Err(invalid(format!(
                    "column {name:?} has {n} values in row {i}, {w} in row 0: embeddings must \
                     all have the same length"
                )))
            }
            Some(_) => {}
        }
    }
    df.py().import("numpy")?.call_method1("stack", (cells,))
}

/// `df[columns].to_numpy(dtype=float64)` (missing values as NaN).
pub fn numeric<'py>(df: &Bound<'py, PyAny>, columns: &[String]) -> PyResult<Bound<'py, PyAny>> {
    let py = df.py();
    let is_numeric = py.import("pandas.api.types")?.getattr("is_numeric_dtype")?;
    for c in columns {
        column(df, c)?;
        let series = df.get_item(c)?;
        // pandas would parse text ("1", b"1", "nan") into numbers: a column of text is refused,
        // as strings are everywhere a number is read.
        if !is_numeric.call1((&series,))?.is_truthy()? {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "column {c:?} holds {} values, not numbers (booleans count as 0 and 1)",
                series.getattr("dtype")?.str()?
            )));
        }
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", py.import("numpy")?.getattr("float64")?)?;
    kwargs.set_item("na_value", f64::NAN)?;
    df.get_item(columns.to_vec())?
        .call_method("to_numpy", (), Some(&kwargs))
}
