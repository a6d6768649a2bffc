//! [`Split`]: one labelled set of queries — embeddings, per-model scores and costs, metadata,
//! and for labels that are not a full table the observed cells, preference judgements and
//! choice probabilities.

use super::Preference;
use crate::error::{Error, Result};
use crate::features::{inv_norm, FeatureBatch};
use crate::pool::{ModelPool, MAX_COST_USD};

/// One split of a dataset (or any labelled set of queries): embeddings, per-model scores and
/// costs, and the queries' metadata. Matrices are row-major `[rows, models]` / `[rows, dim]`.
///
/// # Labels that are not a full table
///
/// A split is *fully labelled* when every model has a score on every query (every shipped
/// dataset is). Otherwise some cells are unobserved: [`Split::observed`] says which, their
/// scores are NaN (so code that forgets the mask cannot silently treat them as zeros), and their
/// costs are the price estimate. A split may also carry [`Preference`] judgements between two
/// models on a query ([`Split::preferences`]), with or without scores, and for logged data the
/// probability with which the logging policy chose each observed model
/// ([`Split::propensities`]). A fully labelled split has no mask at all: the routers' hot loops
/// over it are the ones they always ran.
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
    /// `[rows, models]`: whether each score is observed; `None` when every one is.
    pub(super) observed: Option<Vec<bool>>,
    /// Preference judgements, sorted by row.
    pub(super) preferences: Vec<Preference>,
    /// `[rows, models]`: the logging policy's probability of each observed choice, NaN where
    /// unknown; `None` when the data records none.
    pub(super) propensities: Option<Vec<f64>>,
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
            if !c.is_finite() || !(0.0..=MAX_COST_USD).contains(&c) {
                return Err(Error::InvalidInput(format!(
                    "cost {c} in row {} for model {:?} is not a number in [0, {MAX_COST_USD:e}] USD",
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
            observed: None,
            preferences: Vec::new(),
            propensities: None,
        };
        normalize_rows(&mut split.embeddings, dim);
        Ok(split)
    }

    /// A split from arrays whose scores may be missing: as [`Split::from_arrays`], except that a
    /// NaN score marks an unobserved cell (the split is then partially labelled; its cost is
    /// kept as given).
    ///
    /// # Errors
    ///
    /// As [`Split::from_arrays`].
    pub fn from_partial_arrays(
        pool: ModelPool,
        embeddings: Vec<f32>,
        dim: usize,
        scores: Vec<f64>,
        costs: Vec<f64>,
    ) -> Result<Split> {
        let mask: Vec<bool> = scores.iter().map(|s| !s.is_nan()).collect();
        let filled: Vec<f64> = scores
            .iter()
            .map(|&s| if s.is_nan() { 0.0 } else { s })
            .collect();
        Split::from_arrays(pool, embeddings, dim, filled, costs)?.with_observed(mask)
    }

    /// The split with only the cells where `mask` is true observed (`[rows, models]`): the
    /// others lose their score (NaN). Cells already unobserved stay so.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when the mask is not one flag per cell.
    pub fn with_observed(mut self, mask: Vec<bool>) -> Result<Split> {
        if mask.len() != self.scores.len() {
            return Err(Error::Shape(format!(
                "an observed mask of {} flags for {} queries x {} models",
                mask.len(),
                self.len(),
                self.pool.len()
            )));
        }
        let mask: Vec<bool> = match &self.observed {
            Some(old) => mask.iter().zip(old).map(|(&a, &b)| a && b).collect(),
            None => mask,
        };
        for (s, &o) in self.scores.iter_mut().zip(&mask) {
            if !o {
                *s = f64::NAN;
            }
        }
        if let Some(p) = &mut self.propensities {
            for (v, &o) in p.iter_mut().zip(&mask) {
                if !o {
                    *v = f64::NAN;
                }
            }
        }
        self.observed = if mask.iter().all(|&o| o) {
            None
        } else {
            Some(mask)
        };
        Ok(self)
    }

    /// The split with these preference judgements (replacing any it had), sorted by row.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a row out of range or a judgement of a model against
    /// itself; [`Error::UnknownModel`] for a model index out of range.
    pub fn with_preferences(mut self, mut preferences: Vec<Preference>) -> Result<Split> {
        for p in &preferences {
            if p.row as usize >= self.len() {
                return Err(Error::InvalidInput(format!(
                    "a preference on row {} of a split of {} queries",
                    p.row,
                    self.len()
                )));
            }
            self.pool.check_index(p.model_a as usize)?;
            self.pool.check_index(p.model_b as usize)?;
            if p.model_a == p.model_b {
                return Err(Error::InvalidInput(format!(
                    "a preference on row {} compares model {:?} with itself",
                    p.row,
                    self.pool.id(p.model_a as usize)
                )));
            }
        }
        preferences.sort_by_key(|p| p.row);
        self.preferences = preferences;
        Ok(self)
    }

    /// The split with the logging policy's choice probabilities (`[rows, models]`, NaN where
    /// unknown; only observed cells keep theirs).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] for the wrong length; [`Error::InvalidInput`] for a probability of an
    /// observed cell outside (0, 1].
    pub fn with_propensities(mut self, mut propensities: Vec<f64>) -> Result<Split> {
        if propensities.len() != self.scores.len() {
            return Err(Error::Shape(format!(
                "{} propensities for {} queries x {} models",
                propensities.len(),
                self.len(),
                self.pool.len()
            )));
        }
        let m = self.pool.len();
        for (i, p) in propensities.iter_mut().enumerate() {
            if !self.observed_at(i) {
                *p = f64::NAN;
            } else if !(p.is_nan() || (*p > 0.0 && *p <= 1.0)) {
                return Err(Error::InvalidInput(format!(
                    "propensity {p} in row {} for model {:?} outside (0, 1]",
                    i / m,
                    self.pool.id(i % m)
                )));
            }
        }
        self.propensities = if propensities.iter().all(|p| p.is_nan()) {
            None
        } else {
            Some(propensities)
        };
        Ok(self)
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

    /// Scores `[len, models]`, in [0, 1]; NaN for an unobserved cell ([`Split::observed`]).
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

    /// Whether every model has a score on every query (no cell is unobserved).
    pub fn is_fully_labelled(&self) -> bool {
        self.observed.is_none()
    }

    /// The column of model `id` in a split of labelled queries for onboarding it: the model must
    /// be among the split's models and have a score on at least one of its queries.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] when the split has no such model; [`Error::MissingLabels`] when
    /// none of its queries has the model's score (an empty split included) — onboarding from the
    /// card alone is asked for without labelled queries, never by giving none.
    pub fn labelled_column(&self, id: &str) -> Result<usize> {
        let col = self.pool.column_of_added(id)?;
        if !(0..self.len()).any(|r| self.observed(r, col)) {
            return Err(Error::MissingLabels(format!(
                "none of the {} labelled queries has a score of {id}: give queries it answered, \
                 or none at all to add it from its card alone",
                self.len()
            )));
        }
        Ok(col)
    }

    /// Whether model `m`'s score on query `r` is observed.
    pub fn observed(&self, r: usize, m: usize) -> bool {
        self.observed_at(r * self.pool.len() + m)
    }

    fn observed_at(&self, cell: usize) -> bool {
        self.observed.as_ref().is_none_or(|o| o[cell])
    }

    /// The observed cells `[len, models]`, row-major; `None` when every cell is observed.
    pub fn observed_mask(&self) -> Option<&[bool]> {
        self.observed.as_deref()
    }

    /// Number of observed (query, model) cells.
    pub fn observed_count(&self) -> usize {
        match &self.observed {
            None => self.scores.len(),
            Some(o) => o.iter().filter(|&&x| x).count(),
        }
    }

    /// The preference judgements, sorted by row.
    pub fn preferences(&self) -> &[Preference] {
        &self.preferences
    }

    /// The logging policy's probability of each observed choice `[len, models]` (NaN where
    /// unknown), when the data records them.
    pub fn propensities(&self) -> Option<&[f64]> {
        self.propensities.as_deref()
    }

    /// Checks that the split is fully labelled, for a use that needs it (`what`: "evaluation",
    /// …).
    ///
    /// # Errors
    ///
    /// [`Error::MissingLabels`] naming the split, how many scores are missing and the first
    /// missing one.
    pub fn require_full_labels(&self, what: &str) -> Result<()> {
        let Some(mask) = &self.observed else {
            return Ok(());
        };
        let m = self.pool.len();
        let missing = mask.iter().filter(|&&o| !o).count();
        let first = mask.iter().position(|&o| !o).unwrap_or(0);
        Err(Error::MissingLabels(format!(
            "{what} needs every model's score on every query of the {} split, and {missing} of \
             its {} scores are missing (the first: model {:?} on query {:?})",
            self.name,
            mask.len(),
            self.pool.id(first % m),
            self.ids[first / m]
        )))
    }

    /// Checks that every model has a label in the split: an observed score or, where
    /// `preferences` count, a preference judgement it takes part in. A router that learns each
    /// model from its own labels (`router`: its kind) knows nothing of a model without any, and
    /// would route to it on its initial guess.
    ///
    /// # Errors
    ///
    /// [`Error::MissingLabels`] naming the router, the first model without a label and the split.
    pub fn require_every_model_labelled(&self, router: &str, preferences: bool) -> Result<()> {
        let Some(mask) = &self.observed else {
            return Ok(());
        };
        let m = self.pool.len();
        let mut labelled = vec![false; m];
        for (cell, _) in mask.iter().enumerate().filter(|(_, &o)| o) {
            labelled[cell % m] = true;
        }
        if preferences {
            for p in &self.preferences {
                labelled[p.model_a as usize] = true;
                labelled[p.model_b as usize] = true;
            }
        }
        match labelled.iter().position(|&l| !l) {
            None => Ok(()),
            Some(j) => Err(Error::MissingLabels(format!(
                "a {router} router needs a {} every model, and model {:?} has none on the {} \
                 split (add it to a fitted router with add_model instead)",
                if preferences {
                    "score or a preference judgement of"
                } else {
                    "score of"
                },
                self.pool.id(j),
                self.name
            ))),
        }
    }

    /// Score of query `r` on model `m` (NaN when unobserved).
    pub fn score(&self, r: usize, m: usize) -> f64 {
        self.scores[r * self.pool.len() + m]
    }

    /// Cost of query `r` on model `m`.
    pub fn cost(&self, r: usize, m: usize) -> f64 {
        self.costs[r * self.pool.len() + m]
    }

    /// Each model's mean score over the split (over its observed scores; NaN for a model
    /// without any).
    pub fn mean_scores(&self) -> Vec<f64> {
        match &self.observed {
            None => column_means(&self.scores, self.pool.len()),
            Some(mask) => {
                let m = self.pool.len();
                let (mut sums, mut counts) = (vec![0.0; m], vec![0usize; m]);
                for (i, (&s, &o)) in self.scores.iter().zip(mask).enumerate() {
                    if o {
                        sums[i % m] += s;
                        counts[i % m] += 1;
                    }
                }
                sums.iter()
                    .zip(&counts)
                    .map(|(s, &c)| if c == 0 { f64::NAN } else { s / c as f64 })
                    .collect()
            }
        }
    }

    /// Each model's share of won judgements among the preferences it takes part in (a tie
    /// counts half; NaN for a model in none).
    pub fn win_shares(&self) -> Vec<f64> {
        let m = self.pool.len();
        let (mut won, mut seen) = (vec![0.0; m], vec![0.0; m]);
        for p in &self.preferences {
            let (a, b) = (p.model_a as usize, p.model_b as usize);
            won[a] += p.winner.a_wins();
            won[b] += 1.0 - p.winner.a_wins();
            seen[a] += 1.0;
            seen[b] += 1.0;
        }
        won.iter()
            .zip(&seen)
            .map(|(w, &n)| if n == 0.0 { f64::NAN } else { w / n })
            .collect()
    }

    /// What ranks the models on this split when the best single one is chosen: the mean scores
    /// when every model has one, else the win shares of the preferences when every model has
    /// one, else `None`.
    pub fn model_ranking(&self) -> Option<Vec<f64>> {
        let means = self.mean_scores();
        if means.iter().all(|v| v.is_finite()) {
            return Some(means);
        }
        let shares = self.win_shares();
        shares.iter().all(|v| v.is_finite()).then_some(shares)
    }

    /// Each model's mean cost over the split.
    pub fn mean_costs(&self) -> Vec<f64> {
        column_means(&self.costs, self.pool.len())
    }

    /// For two-model splits, the (weak, strong) model indices by mean score (the better mean is
    /// the strong model; a tie makes model 1 the strong one); `None` for other pools. A
    /// [`Dataset`] can also name them in `models.json` ([`Dataset::weak_strong`]).
    ///
    /// [`Dataset`]: crate::data::Dataset
    /// [`Dataset::weak_strong`]: crate::data::Dataset::weak_strong
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
            observed: self.observed.as_ref().and_then(|o| {
                let mask: Vec<bool> = indices
                    .iter()
                    .flat_map(|&i| o[i * m..(i + 1) * m].iter().copied())
                    .collect();
                (!mask.iter().all(|&x| x)).then_some(mask)
            }),
            preferences: {
                let mut by_row: Vec<Vec<usize>> = vec![Vec::new(); self.len()];
                for (p, pref) in self.preferences.iter().enumerate() {
                    by_row[pref.row as usize].push(p);
                }
                indices
                    .iter()
                    .enumerate()
                    .flat_map(|(new, &i)| {
                        by_row[i].iter().map(move |&p| Preference {
                            row: new as u32,
                            ..self.preferences[p]
                        })
                    })
                    .collect()
            },
            propensities: self.propensities.as_ref().map(|p| pick(p, m)),
        }
    }

    /// The split restricted to the models at `models` (indices into its pool, in that order):
    /// to fit a router without a model and onboard it later, for one. Preferences between two
    /// kept models are kept.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an index out of range or given twice; the errors of
    /// [`ModelPool::new`] for no model.
    pub fn select_models(&self, models: &[usize]) -> Result<Split> {
        let m = self.pool.len();
        let mut new_of = vec![None; m];
        for (new, &j) in models.iter().enumerate() {
            if j >= m || new_of[j].is_some() {
                return Err(Error::InvalidInput(format!(
                    "model index {j} is out of range or given twice (the split has {m} models)"
                )));
            }
            new_of[j] = Some(new as u32);
        }
        let pool = ModelPool::new(models.iter().map(|&j| self.pool.card(j).clone()).collect())?;
        let pick = |v: &[f64]| -> Vec<f64> {
            v.chunks_exact(m.max(1))
                .flat_map(|row| models.iter().map(|&j| row[j]))
                .collect()
        };
        let pick_bool = |v: &[bool]| -> Vec<bool> {
            v.chunks_exact(m.max(1))
                .flat_map(|row| models.iter().map(|&j| row[j]))
                .collect()
        };
        Ok(Split {
            pool,
            scores: pick(&self.scores),
            costs: pick(&self.costs),
            cost_observed: pick_bool(&self.cost_observed),
            output_tokens: pick(&self.output_tokens),
            observed: self.observed.as_ref().and_then(|o| {
                let mask = pick_bool(o);
                (!mask.iter().all(|&x| x)).then_some(mask)
            }),
            preferences: self
                .preferences
                .iter()
                .filter_map(|p| {
                    Some(Preference {
                        model_a: new_of[p.model_a as usize]?,
                        model_b: new_of[p.model_b as usize]?,
                        ..*p
                    })
                })
                .collect(),
            propensities: self.propensities.as_ref().map(|p| pick(p)),
            ..self.clone()
        })
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
