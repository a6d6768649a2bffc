//! The out-of-distribution guard: each task group left out in turn, and new queries (MT-Bench).

use super::*;

/// One left-out group of the guard experiment.
#[derive(Debug, Clone, Serialize)]
pub struct GuardGroup {
    /// The group's name.
    pub group: String,
    /// Its tasks.
    pub tasks: Vec<String>,
    /// Share of the other groups' test queries flagged.
    pub false_alarm: f64,
    /// Share of the group's test queries flagged.
    pub detection: f64,
    /// AUROC of the guard's score, group's test queries against the others'.
    pub auroc: f64,
    /// AUROC of the plain 10-nearest-neighbour distance.
    pub knn_auroc: f64,
    /// Test queries of the group, and of the others.
    pub positives: usize,
    /// Test queries of the others.
    pub negatives: usize,
}

/// The five task groups of `llmrouter_dc` the guard is measured on, by name.
pub const LLMROUTER_DC_GROUPS: [(&str, &[&str]); 5] = [
    ("code", &["mbpp", "human_eval"]),
    ("math", &["gsm8k", "math", "agentverse-mgsm"]),
    ("open QA", &["natural_qa", "trivia_qa"]),
    ("logic", &["agentverse-logicgrid"]),
    ("commongen", &["commongen"]),
];

/// The mean similarity of each query of `queries` to its `k` most similar rows of `reference`,
/// as a distance (1 − similarity).
pub fn knn_distance(reference: &[f32], queries: &[f32], dim: usize, k: usize) -> Vec<f64> {
    queries
        .par_chunks(dim)
        .map(|q| {
            let mut sims: Vec<f32> = reference
                .chunks_exact(dim)
                .map(|r| crate::simd::dot(r, q))
                .collect();
            let k = k.min(sims.len());
            let nth = sims.len() - k;
            sims.select_nth_unstable_by(nth, f32::total_cmp);
            1.0 - sims[nth..].iter().map(|&s| f64::from(s)).sum::<f64>() / k as f64
        })
        .collect()
}

/// The guard with each group of `groups` left out in turn: fitted (and calibrated to the
/// false-alarm rate of `fit` on a held-out share) on the training queries of the other groups,
/// scored on the whole test split.
///
/// # Errors
///
/// A split without embeddings; the guard's fitting errors.
pub fn guard_leave_group_out(
    train: &Split,
    test: &Split,
    groups: &[(&str, &[&str])],
    fit: &GuardFit,
) -> Result<Vec<GuardGroup>> {
    let dim = train.dim();
    let in_group =
        |tasks: &[&str], t: &Option<String>| t.as_deref().is_some_and(|t| tasks.contains(&t));
    let mut out = Vec::new();
    for (name, tasks) in groups {
        let keep: Vec<usize> = (0..train.len())
            .filter(|&r| !in_group(tasks, &train.tasks()[r]))
            .collect();
        let sub = train.subset(&keep, "train");
        let guard = EmbeddingGuard::fit(&sub, fit)?;
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        let (mut pos_rows, mut neg_rows) = (Vec::new(), Vec::new());
        for r in 0..test.len() {
            let x = &test.embeddings()[r * dim..(r + 1) * dim];
            let s = guard.score(x)?;
            if in_group(tasks, &test.tasks()[r]) {
                pos.push(s);
                pos_rows.extend_from_slice(x);
            } else {
                neg.push(s);
                neg_rows.extend_from_slice(x);
            }
        }
        let t = guard.threshold();
        let share = |v: &[f64]| v.iter().filter(|&&s| s > t).count() as f64 / v.len().max(1) as f64;
        let kp = knn_distance(sub.embeddings(), &pos_rows, dim, 10);
        let kn = knn_distance(sub.embeddings(), &neg_rows, dim, 10);
        out.push(GuardGroup {
            group: name.to_string(),
            tasks: tasks.iter().map(|t| t.to_string()).collect(),
            false_alarm: share(&neg),
            detection: share(&pos),
            auroc: auroc(&pos, &neg),
            knn_auroc: auroc(&kp, &kn),
            positives: pos.len(),
            negatives: neg.len(),
        });
    }
    Ok(out)
}

/// The kNN the policy figures use: same-task neighbours, k = 100, similarity weights, shrinkage
/// 30 toward the task mean (prior strength 50), the setting `pointsman train --router knn`
/// chooses on `llmrouter_dc` (docs/results.md).
pub fn reference_knn_config() -> crate::routers::knn::KnnConfig {
    use crate::routers::knn::{KnnConfig, Prior, Weighting};
    KnnConfig {
        k: 100,
        weighting: Weighting::Power { power: 1.0 },
        shrinkage: 30.0,
        prior: Prior::Task { strength: 50.0 },
        same_task: true,
        ..Default::default()
    }
}

/// The first turns of MT-Bench's questions (`question.jsonl`: one object per line with
/// `turns`).
///
/// # Errors
///
/// [`Error::Io`] naming the file; [`Error::Format`] naming the line.
pub fn mt_bench_prompts(path: &std::path::Path) -> Result<Vec<String>> {
    let text = crate::files::read_regular_to_string(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l)
                .map_err(|e| Error::format_at(path.display(), i + 1, e.to_string()))?;
            v["turns"][0]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::format_at(path.display(), i + 1, "no first turn"))
        })
        .collect()
}

/// A guard's verdicts on new queries against the test split.
#[derive(Debug, Clone, Serialize)]
pub struct NewQueries {
    /// New queries.
    pub queries: usize,
    /// Share of them flagged.
    pub flagged: f64,
    /// Share of the test split flagged.
    pub test_flagged: f64,
    /// AUROC of the guard's score, new queries against the test split.
    pub auroc: f64,
    /// The same with the plain 10-nearest-neighbour distance to the training queries.
    pub knn_auroc: f64,
}

/// A guard fitted on the whole training split, applied to `rows` (embeddings of new queries,
/// `n × dim`) and to the test split.
///
/// # Errors
///
/// The guard's fitting errors; rows of another dimension.
pub fn guard_on_new_queries(
    train: &Split,
    test: &Split,
    rows: &[f32],
    fit: &GuardFit,
) -> Result<NewQueries> {
    let guard = EmbeddingGuard::fit(train, fit)?;
    let dim = guard.dim();
    let score = |rows: &[f32]| -> Result<Vec<f64>> {
        rows.chunks_exact(dim).map(|r| guard.score(r)).collect()
    };
    let (new, old) = (score(rows)?, score(test.embeddings())?);
    let t = guard.threshold();
    let share = |v: &[f64]| v.iter().filter(|&&s| s > t).count() as f64 / v.len().max(1) as f64;
    let kn = knn_distance(train.embeddings(), rows, dim, 10);
    let ko = knn_distance(train.embeddings(), test.embeddings(), dim, 10);
    Ok(NewQueries {
        queries: new.len(),
        flagged: share(&new),
        test_flagged: share(&old),
        auroc: auroc(&new, &old),
        knn_auroc: auroc(&kn, &ko),
    })
}
