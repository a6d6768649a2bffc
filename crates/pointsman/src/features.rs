//! The one input every router takes: a query embedding plus the scalar features routers may use.
//!
//! A single query is a [`QueryFeatures`] (owned, L2-normalised on construction). Many queries
//! travel as a [`FeatureBatch`]: a borrowed, row-major `&[f32]` view with `rows × dim` values,
//! which is exactly the layout of a C-contiguous `float32` NumPy array and of
//! `const float *, rows, dim` in C, so neither binding copies.
//!
//! Routers treat an embedding as a direction: rows of a batch need not have unit length (each
//! router normalises what it reads), but they must be finite and not all zero.

use crate::error::{Error, Result, Shown};

/// Name of the embedding model of the shared datasets and of the default embedder.
pub const DEFAULT_EMBEDDING_MODEL: &str = "all-MiniLM-L6-v2";

/// Features of one query.
///
/// # Example
///
/// ```
/// use pointsman::QueryFeatures;
/// let q = QueryFeatures::new(vec![3.0, 4.0])?.with_prompt_tokens(12.0)?;
/// assert_eq!(q.embedding(), &[0.6, 0.8]);
/// assert_eq!(q.prompt_tokens(), Some(12.0));
/// # Ok::<(), pointsman::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct QueryFeatures {
    embedding: Vec<f32>,
    prompt_tokens: Option<f64>,
    task: Option<String>,
    embedding_model: Option<String>,
}

impl QueryFeatures {
    /// Features from an embedding, which is L2-normalised here.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidFeatures`] when the embedding is empty, holds NaN or infinite values, or is
    /// all zeros.
    pub fn new(mut embedding: Vec<f32>) -> Result<Self> {
        if embedding.is_empty() {
            return Err(Error::InvalidFeatures {
                row: 0,
                reason: "empty embedding".into(),
            });
        }
        check_row(&embedding, 0)?;
        let inv = inv_norm(&embedding);
        for v in &mut embedding {
            *v *= inv;
        }
        Ok(QueryFeatures {
            embedding,
            prompt_tokens: None,
            task: None,
            embedding_model: None,
        })
    }

    /// Sets the prompt's token count, which cost models use for the input side of the price.
    ///
    /// Fractional counts are allowed (the dataset schema estimates tokens as characters / 4).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `tokens` is negative or not finite.
    pub fn with_prompt_tokens(mut self, tokens: f64) -> Result<Self> {
        check_tokens(tokens, 0)?;
        self.prompt_tokens = Some(tokens);
        Ok(self)
    }

    /// Sets the task tag (for example the source benchmark), which some routers use.
    pub fn with_task(mut self, task: impl Into<String>) -> Self {
        self.task = Some(task.into());
        self
    }

    /// Records which embedding model produced the embedding, so that a router trained on another
    /// model's embeddings refuses it.
    pub fn with_embedding_model(mut self, name: impl Into<String>) -> Self {
        self.embedding_model = Some(name.into());
        self
    }

    /// The L2-normalised embedding.
    pub fn embedding(&self) -> &[f32] {
        &self.embedding
    }

    /// The embedding dimension.
    pub fn dim(&self) -> usize {
        self.embedding.len()
    }

    /// The prompt's token count, when known.
    pub fn prompt_tokens(&self) -> Option<f64> {
        self.prompt_tokens
    }

    /// The task tag, when known.
    pub fn task(&self) -> Option<&str> {
        self.task.as_deref()
    }

    /// The embedding model's name, when known.
    pub fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }

    /// A one-row batch view of these features.
    pub fn as_batch(&self) -> FeatureBatch<'_> {
        FeatureBatch {
            data: &self.embedding,
            rows: 1,
            dim: self.embedding.len(),
            prompt_tokens: self.prompt_tokens.as_ref().map(std::slice::from_ref),
            tasks: Some(std::slice::from_ref(&self.task)),
            embedding_model: self.embedding_model.as_deref(),
        }
    }
}

/// A borrowed, row-major batch of query features: `rows × dim` embedding values plus optional
/// per-row prompt token counts and task tags.
///
/// # Example
///
/// ```
/// use pointsman::FeatureBatch;
/// let data = [1.0_f32, 0.0, 0.0, 1.0];
/// let batch = FeatureBatch::new(&data, 2)?;
/// assert_eq!(batch.rows(), 2);
/// assert_eq!(batch.row(1), &[0.0, 1.0]);
/// # Ok::<(), pointsman::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FeatureBatch<'a> {
    data: &'a [f32],
    rows: usize,
    dim: usize,
    prompt_tokens: Option<&'a [f64]>,
    tasks: Option<&'a [Option<String>]>,
    embedding_model: Option<&'a str>,
}

impl<'a> FeatureBatch<'a> {
    /// A batch over `data`, read as rows of `dim` values. Every value is checked.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `dim` is 0 or `data.len()` is not a multiple of `dim`;
    /// [`Error::InvalidFeatures`] naming the first row with NaN or infinite values or all zeros.
    pub fn new(data: &'a [f32], dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::Shape("embedding dimension must be positive".into()));
        }
        if !data.len().is_multiple_of(dim) {
            return Err(Error::Shape(format!(
                "{} values do not make rows of {dim}",
                data.len()
            )));
        }
        let rows = data.len() / dim;
        for (i, row) in data.chunks_exact(dim).enumerate() {
            check_row(row, i)?;
        }
        Ok(FeatureBatch {
            data,
            rows,
            dim,
            prompt_tokens: None,
            tasks: None,
            embedding_model: None,
        })
    }

    /// Attaches per-row prompt token counts.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `tokens.len()` differs from the row count; [`Error::InvalidInput`]
    /// for a negative or non-finite count.
    pub fn with_prompt_tokens(mut self, tokens: &'a [f64]) -> Result<Self> {
        if tokens.len() != self.rows {
            return Err(Error::Shape(format!(
                "{} prompt token counts for {} rows",
                tokens.len(),
                self.rows
            )));
        }
        for (i, &t) in tokens.iter().enumerate() {
            check_tokens(t, i)?;
        }
        self.prompt_tokens = Some(tokens);
        Ok(self)
    }

    /// Attaches per-row task tags.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `tasks.len()` differs from the row count.
    pub fn with_tasks(mut self, tasks: &'a [Option<String>]) -> Result<Self> {
        if tasks.len() != self.rows {
            return Err(Error::Shape(format!(
                "{} task tags for {} rows",
                tasks.len(),
                self.rows
            )));
        }
        self.tasks = Some(tasks);
        Ok(self)
    }

    /// Records the embedding model that produced these embeddings.
    pub fn with_embedding_model(mut self, name: &'a str) -> Self {
        self.embedding_model = Some(name);
        self
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// All embedding values, row-major.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// The embedding of row `i`.
    ///
    /// # Panics
    ///
    /// When `i >= self.rows()`.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The prompt token count of row `i`, when known.
    pub fn prompt_tokens(&self, i: usize) -> Option<f64> {
        self.prompt_tokens.map(|t| t[i])
    }

    /// The task tag of row `i`, when known.
    pub fn task(&self, i: usize) -> Option<&'a str> {
        self.tasks.and_then(|t| t[i].as_deref())
    }

    /// The embedding model that produced the batch, when known.
    pub fn embedding_model(&self) -> Option<&'a str> {
        self.embedding_model
    }

    /// The rows `start..end` as a batch of their own.
    ///
    /// # Panics
    ///
    /// When the range is out of bounds.
    pub fn slice(&self, start: usize, end: usize) -> FeatureBatch<'a> {
        assert!(start <= end && end <= self.rows, "batch slice out of range");
        FeatureBatch {
            data: &self.data[start * self.dim..end * self.dim],
            rows: end - start,
            dim: self.dim,
            prompt_tokens: self.prompt_tokens.map(|t| &t[start..end]),
            tasks: self.tasks.map(|t| &t[start..end]),
            embedding_model: self.embedding_model,
        }
    }

    /// Checks that the batch fits a router built for `dim`-dimensional embeddings of the model
    /// `embedding_model` (when both sides name one).
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] or [`Error::EmbeddingMismatch`].
    pub fn check_compatible(&self, dim: usize, embedding_model: Option<&str>) -> Result<()> {
        if self.dim != dim {
            return Err(Error::DimensionMismatch {
                expected: dim,
                got: self.dim,
            });
        }
        if let (Some(expected), Some(got)) = (embedding_model, self.embedding_model) {
            if expected != got {
                return Err(Error::EmbeddingMismatch {
                    expected: expected.to_string(),
                    got: got.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// `1 / ‖v‖₂`, computed in `f64` for accuracy; the caller guarantees `v` is not all zeros.
pub fn inv_norm(v: &[f32]) -> f32 {
    let sq: f64 = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    (1.0 / sq.sqrt()) as f32
}

/// Copies `src` into `dst`, L2-normalised.
pub fn normalize_into(src: &[f32], dst: &mut [f32]) {
    let inv = inv_norm(src);
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s * inv;
    }
}

fn check_row(row: &[f32], i: usize) -> Result<()> {
    let mut any_nonzero = false;
    for (j, &v) in row.iter().enumerate() {
        if !v.is_finite() {
            return Err(Error::InvalidFeatures {
                row: i,
                reason: format!("value {v} at column {j} is not finite"),
            });
        }
        any_nonzero |= v != 0.0;
    }
    if !any_nonzero {
        return Err(Error::InvalidFeatures {
            row: i,
            reason: "embedding is all zeros".into(),
        });
    }
    // A vector of subnormal values is not zero, but its norm is too small for 1 / norm to be
    // an f32: it cannot be normalised, so it is refused here rather than failing later.
    if !inv_norm(row).is_finite() {
        let norm = row
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        return Err(Error::InvalidFeatures {
            row: i,
            reason: format!(
                "embedding norm {norm:e} is too small to normalise (an embedding's norm must \
                 be at least {:e})",
                1.0 / f64::from(f32::MAX)
            ),
        });
    }
    Ok(())
}

/// The most prompt tokens a query may declare: far beyond any context window, low enough that
/// a price times a count stays a finite cost.
pub const MAX_PROMPT_TOKENS: f64 = 1e9;

fn check_tokens(t: f64, i: usize) -> Result<()> {
    if !t.is_finite() || t < 0.0 {
        return Err(Error::InvalidInput(format!(
            "prompt token count {} in row {i} is not a non-negative number",
            Shown(t)
        )));
    }
    if t > MAX_PROMPT_TOKENS {
        return Err(Error::InvalidInput(format!(
            "prompt token count {} in row {i} is above the ceiling {MAX_PROMPT_TOKENS:e}",
            Shown(t)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn subnormal_and_huge_counts_are_refused_with_a_reason() {
        let tiny = vec![f32::from_bits(1); 384];
        let e = QueryFeatures::new(tiny.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidFeatures);
        assert!(e.to_string().contains("too small to normalise"), "{e}");
        let e = FeatureBatch::new(&tiny, 384).unwrap_err();
        assert!(
            e.to_string().contains("row 0") && e.to_string().contains("norm"),
            "{e}"
        );
        // Small but normal values route.
        assert!(QueryFeatures::new(vec![1e-30; 384]).is_ok());
        let huge = vec![f32::MAX; 4];
        assert!(QueryFeatures::new(huge).is_ok());
        let q = QueryFeatures::new(vec![1.0; 4]).unwrap();
        let e = q.clone().with_prompt_tokens(1e12).unwrap_err();
        assert!(e.to_string().contains("ceiling"), "{e}");
        assert!(q.with_prompt_tokens(1e9).is_ok());
    }

    #[test]
    fn new_normalises() {
        let q = QueryFeatures::new(vec![0.0, 2.0, 0.0]).unwrap();
        assert_eq!(q.embedding(), &[0.0, 1.0, 0.0]);
        assert_eq!(q.dim(), 3);
        assert_eq!(q.prompt_tokens(), None);
    }

    #[test]
    fn bad_embeddings_are_typed_errors() {
        let e = QueryFeatures::new(vec![0.0, 0.0]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidFeatures);
        assert_eq!(
            e.to_string(),
            "invalid features in row 0: embedding is all zeros"
        );
        let e = QueryFeatures::new(vec![1.0, f32::NAN]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid features in row 0: value NaN at column 1 is not finite"
        );
        let e = QueryFeatures::new(vec![f32::INFINITY]).unwrap_err();
        assert!(e.to_string().contains("inf"), "{e}");
        assert!(QueryFeatures::new(vec![]).is_err());
        let e = QueryFeatures::new(vec![1.0])
            .unwrap()
            .with_prompt_tokens(-1.0)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn batch_checks_shape_and_values() {
        let data = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let b = FeatureBatch::new(&data, 3).unwrap();
        assert_eq!(b.rows(), 2);
        assert_eq!(b.row(1), &[0.0, 1.0, 0.0]);
        let e = FeatureBatch::new(&data, 4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "shape mismatch: 6 values do not make rows of 4"
        );
        assert!(FeatureBatch::new(&data, 0).is_err());
        let bad = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let e = FeatureBatch::new(&bad, 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid features in row 1: embedding is all zeros"
        );
        let tokens = [1.0];
        assert!(b.with_prompt_tokens(&tokens).is_err());
        let empty: [f32; 0] = [];
        assert!(FeatureBatch::new(&empty, 3).unwrap().is_empty());
    }

    #[test]
    fn compatibility() {
        let data = [1.0, 0.0];
        let b = FeatureBatch::new(&data, 2)
            .unwrap()
            .with_embedding_model("m1");
        assert!(b.check_compatible(2, Some("m1")).is_ok());
        assert!(b.check_compatible(2, None).is_ok());
        let e = b.check_compatible(3, Some("m1")).unwrap_err();
        assert_eq!(e.to_string(), "dimension mismatch: expected 3, got 2");
        let e = b.check_compatible(2, Some("m2")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::EmbeddingMismatch);
    }

    #[test]
    fn slices_keep_aux() {
        let data = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let tokens = [1.0, 2.0, 3.0];
        let tasks = [None, Some("a".to_string()), None];
        let b = FeatureBatch::new(&data, 2)
            .unwrap()
            .with_prompt_tokens(&tokens)
            .unwrap()
            .with_tasks(&tasks)
            .unwrap();
        let s = b.slice(1, 3);
        assert_eq!(s.rows(), 2);
        assert_eq!(s.prompt_tokens(0), Some(2.0));
        assert_eq!(s.task(0), Some("a"));
        assert_eq!(s.task(1), None);
    }
}
