//! [`Split`]: one labelled set of queries — embeddings, per-model scores and costs, metadata.

use crate::error::{Error, Result};
use crate::features::{inv_norm, FeatureBatch};
use crate::pool::ModelPool;

/// One split of a dataset (or any labelled set of queries): embeddings, per-model scores and
/// costs, and the queries' metadata. Matrices are row-major `[rows, models]` / `[rows, dim]`.
#[derive(Debug, Clone)]
pub struct Split {
    pub(super) name: String,
    pub(super) pool: ModelPool,
    pub(super) rows: Vec<usize>,
    pub(super) ids: Vec<String>,
    pub(super) tasks: Vec<Option<String>>,
    pub(super) prompts: Vec<String>,
    pub(super) prompt_tokens: Vec<f64>,
    pub(super) embeddings: Vec<f32>,
    pub(super) dim: usize,
    pub(super) embedding_model: Option<String>,
    pub(super) scores: Vec<f64>,
    pub(super) costs: Vec<f64>,
    pub(super) cost_observed: Vec<bool>,
    pub(super) output_tokens: Vec<f64>,
}

impl Split {
    /// A split from arrays, for data that is not in a dataset folder.
    ///
    /// `embeddings` is `[n, dim]`, `scores` and `costs` are `[n, pool.len()]`, row-major. Rows of
    /// `embeddings` are L2-normalised here. Query ids are `"0"`, `"1"`, …; prompts are unknown.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when the arrays disagree in size; [`Error::InvalidFeatures`] for an
    /// embedding row that is not finite or all zeros; [`Error::InvalidInput`] for a score outside
    /// [0, 1] or a negative or non-finite cost.
    pub fn from_arrays(
        pool: ModelPool,
        embeddings: Vec<f32>,
        dim: usize,
        scores: Vec<f64>,
        costs: Vec<f64>,
    ) -> Result<Split> {
        FeatureBatch::new(&embeddings, dim)?;
        let n = embeddings.len() / dim;
        let m = pool.len();
        for (what, len) in [("scores", scores.len()), ("costs", costs.len())] {
            if len != n * m {
                return Err(Error::Shape(format!(
                    "{what} hold {len} values, expected {n} rows x {m} models = {}",
                    n * m
                )));
            }
        }
        for (i, &s) in scores.iter().enumerate() {
            if !(0.0..=1.0).contains(&s) {
                return Err(Error::InvalidInput(format!(
                    "score {s} in row {} for model {:?} outside [0, 1]",
                    i / m,
                    pool.id(i % m)
                )));
            }
        }
        for (i, &c) in costs.iter().enumerate() {
            if !c.is_finite() || c < 0.0 {
                return Err(Error::InvalidInput(format!(
                    "cost {c} in row {} for model {:?} is not a non-negative number",
                    i / m,
                    pool.id(i % m)
                )));
            }
        }
        let mut split = Split {
            name: "arrays".into(),
            pool,
            rows: (0..n).collect(),
            ids: (0..n).map(|i| i.to_string()).collect(),
            tasks: vec![None; n],
            prompts: vec![String::new(); n],
            prompt_tokens: vec![0.0; n],
            embeddings,
            dim,
            embedding_model: None,
            cost_observed: vec![true; scores.len()],
            output_tokens: vec![f64::NAN; scores.len()],
            scores,
            costs,
        };
        normalize_rows(&mut split.embeddings, dim);
        Ok(split)
    }

    /// Sets the task tags, one per query.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `tasks.len()` differs from the number of queries.
    pub fn with_tasks(mut self, tasks: Vec<Option<String>>) -> Result<Split> {
        if tasks.len() != self.len() {
            return Err(Error::Shape(format!(
                "{} task tags for {} queries",
                tasks.len(),
                self.len()
            )));
        }
        self.tasks = tasks;
        Ok(self)
    }

    /// The split's name (`"train"`, `"test"`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of queries.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the split has no queries.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The models the scores and costs are for.
    pub fn pool(&self) -> &ModelPool {
        &self.pool
    }

    /// Row of each query in the dataset file.
    pub fn file_rows(&self) -> &[usize] {
        &self.rows
    }

    /// Query ids.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Task tags.
    pub fn tasks(&self) -> &[Option<String>] {
        &self.tasks
    }

    /// Prompts (empty strings when the split was built from arrays).
    pub fn prompts(&self) -> &[String] {
        &self.prompts
    }

    /// Prompt token counts as the schema estimates them (characters / 4).
    pub fn prompt_tokens(&self) -> &[f64] {
        &self.prompt_tokens
    }

    /// Embeddings `[len, dim]`, row-major and L2-normalised; empty when the dataset has none.
    pub fn embeddings(&self) -> &[f32] {
        &self.embeddings
    }

    /// Embedding dimension (0 when the dataset has no embeddings).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The embedding model of the embeddings, when known.
    pub fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }

    /// Scores `[len, models]`, in [0, 1].
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// Costs in USD `[len, models]`: observed where the data has them, else the price estimate.
    pub fn costs(&self) -> &[f64] {
        &self.costs
    }

    /// Whether each cost `[len, models]` was observed (`true`) or estimated from the prices.
    pub fn cost_observed(&self) -> &[bool] {
        &self.cost_observed
    }

    /// Answer lengths in tokens `[len, models]` where the data has them (characters / 4), NaN
    /// elsewhere.
    pub fn output_tokens(&self) -> &[f64] {
        &self.output_tokens
    }

    /// Score of query `r` on model `m`.
    pub fn score(&self, r: usize, m: usize) -> f64 {
        self.scores[r * self.pool.len() + m]
    }

    /// Cost of query `r` on model `m`.
    pub fn cost(&self, r: usize, m: usize) -> f64 {
        self.costs[r * self.pool.len() + m]
    }

    /// Each model's mean score over the split.
    pub fn mean_scores(&self) -> Vec<f64> {
        column_means(&self.scores, self.pool.len())
    }

    /// Each model's mean cost over the split.
    pub fn mean_costs(&self) -> Vec<f64> {
        column_means(&self.costs, self.pool.len())
    }

    /// For two-model splits, the (weak, strong) model indices by mean score (the better mean is
    /// the strong model; a tie makes model 1 the strong one); `None` for other pools. A
    /// [`Dataset`] can also name them in `models.json` ([`Dataset::weak_strong`]).
    pub fn weak_strong(&self) -> Option<(usize, usize)> {
        if self.pool.len() != 2 {
            return None;
        }
        let means = self.mean_scores();
        Some(if means[1] >= means[0] { (0, 1) } else { (1, 0) })
    }

    /// The split's queries as a feature batch (with prompt token counts, task tags and the
    /// embedding model).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the split has no embeddings.
    pub fn features(&self) -> Result<FeatureBatch<'_>> {
        if self.dim == 0 {
            return Err(Error::InvalidInput(format!(
                "the {} split has no embeddings (run `pointsman embed` on the dataset)",
                self.name
            )));
        }
        let mut b = FeatureBatch::new(&self.embeddings, self.dim)?
            .with_prompt_tokens(&self.prompt_tokens)?
            .with_tasks(&self.tasks)?;
        if let Some(m) = &self.embedding_model {
            b = b.with_embedding_model(m);
        }
        Ok(b)
    }

    /// The queries at `indices` (in that order) as a split of their own, named `name`.
    ///
    /// # Panics
    ///
    /// When an index is out of range.
    pub fn subset(&self, indices: &[usize], name: &str) -> Split {
        let m = self.pool.len();
        let pick = |v: &[f64], width: usize| -> Vec<f64> {
            indices
                .iter()
                .flat_map(|&i| v[i * width..(i + 1) * width].iter().copied())
                .collect()
        };
        Split {
            name: name.to_string(),
            pool: self.pool.clone(),
            rows: indices.iter().map(|&i| self.rows[i]).collect(),
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
            tasks: indices.iter().map(|&i| self.tasks[i].clone()).collect(),
            prompts: indices.iter().map(|&i| self.prompts[i].clone()).collect(),
            prompt_tokens: indices.iter().map(|&i| self.prompt_tokens[i]).collect(),
            embeddings: if self.dim == 0 {
                Vec::new()
            } else {
                indices
                    .iter()
                    .flat_map(|&i| {
                        self.embeddings[i * self.dim..(i + 1) * self.dim]
                            .iter()
                            .copied()
                    })
                    .collect()
            },
            dim: self.dim,
            embedding_model: self.embedding_model.clone(),
            scores: pick(&self.scores, m),
            costs: pick(&self.costs, m),
            cost_observed: indices
                .iter()
                .flat_map(|&i| self.cost_observed[i * m..(i + 1) * m].iter().copied())
                .collect(),
            output_tokens: pick(&self.output_tokens, m),
        }
    }

    /// Replaces the embeddings (`[len, dim]`, normalised here), for example with freshly computed
    /// ones.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `embeddings.len() != len * dim`, and the errors of
    /// [`FeatureBatch::new`].
    pub fn set_embeddings(
        &mut self,
        mut embeddings: Vec<f32>,
        dim: usize,
        embedding_model: Option<String>,
    ) -> Result<()> {
        if embeddings.len() != self.len() * dim {
            return Err(Error::Shape(format!(
                "{} embedding values for {} queries of dimension {dim}",
                embeddings.len(),
                self.len()
            )));
        }
        FeatureBatch::new(&embeddings, dim)?;
        normalize_rows(&mut embeddings, dim);
        self.embeddings = embeddings;
        self.dim = dim;
        self.embedding_model = embedding_model;
        Ok(())
    }
}

fn column_means(matrix: &[f64], width: usize) -> Vec<f64> {
    let rows = matrix.len() / width.max(1);
    let mut sums = vec![0.0; width];
    for row in matrix.chunks_exact(width) {
        for (s, v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
    sums.iter().map(|s| s / rows.max(1) as f64).collect()
}

pub(super) fn normalize_rows(data: &mut [f32], dim: usize) {
    for row in data.chunks_exact_mut(dim) {
        let inv = inv_norm(row);
        for v in row {
            *v *= inv;
        }
    }
}
