//! The importer of RouterBench's wide table (see [the module documentation](super)).

use super::*;

/// RouterBench's wide table from CSV files. Public to the crate's bindings through
/// [`import_routerbench_rows`], which the Python package feeds from the pandas pickle.
pub(super) fn import_routerbench_csv(
    inputs: &[PathBuf],
    options: &ImportOptions,
) -> Result<DatasetDraft> {
    let mut table = WideTable::default();
    for path in inputs {
        let display = path.display().to_string();
        read_csv(path, |line, header, rec| {
            let cells: Vec<(String, String)> = header
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect();
            table.push(&display, line, cells)
        })?;
    }
    table.into_draft(options)
}

/// Imports RouterBench's wide table given as rows of (column, value-as-text) pairs, as its
/// pandas pickle holds it once loaded (`pointsman.import_dataset("routerbench", ["x.pkl"])`).
/// `where_` names the source in errors; each row's line is its index + 1.
///
/// # Errors
///
/// As [`import`] for the `routerbench` format.
pub fn import_routerbench_rows(
    where_: &str,
    rows: Vec<Vec<(String, String)>>,
    options: &ImportOptions,
) -> Result<DatasetDraft> {
    let mut table = WideTable::default();
    for (i, cells) in rows.into_iter().enumerate() {
        table.push(where_, i + 1, cells)?;
    }
    let mut draft = table.into_draft(options)?;
    draft.apply_split_rule();
    Ok(draft)
}

#[derive(Default)]
pub(super) struct WideTable {
    models: Vec<String>,
    /// Per row: id, prompt, task, per model (score, cost, answer length).
    rows: Vec<WideRow>,
    ids: HashMap<String, (String, usize)>,
}

pub(super) struct WideRow {
    id: String,
    prompt: String,
    task: Option<String>,
    cells: Vec<(Option<f64>, Option<f64>, Option<u64>)>,
}

impl WideTable {
    fn push(&mut self, file: &str, line: usize, cells: Vec<(String, String)>) -> Result<()> {
        let bad = |msg: String| Error::format_at(file, line, msg);
        // Every column is read by name: a repeated one, or a `|` column of a suffix or model the
        // table does not have (a misspelt `a|totl_cost`, say), would be read wrong or not at all.
        let mut seen = HashSet::new();
        if let Some((name, _)) = cells.iter().find(|(h, _)| !seen.insert(h.as_str())) {
            return Err(bad(format!("column {name:?} appears twice")));
        }
        for (h, _) in &cells {
            if let Some((model, suffix)) = h.rsplit_once('|') {
                if !matches!(suffix, "model_response" | "total_cost") || !seen.contains(model) {
                    return Err(bad(format!(
                        "column {h:?} is not one of RouterBench's: a model's columns are \
                         <model>, <model>|model_response and <model>|total_cost"
                    )));
                }
            }
        }
        let mut models: Vec<&str> = cells
            .iter()
            .map(|(h, _)| h.as_str())
            .filter(|h| !ROUTERBENCH_FIXED.contains(h) && !h.contains('|'))
            .collect();
        models.sort_unstable();
        if self.models.is_empty() {
            if models.is_empty() {
                return Err(bad("no model score column".into()));
            }
            self.models = models.iter().map(|s| s.to_string()).collect();
        } else if self.models != models {
            return Err(bad(format!(
                "its model columns {models:?} differ from the first row's {:?}",
                self.models
            )));
        }
        let get = |name: &str| {
            cells
                .iter()
                .find(|(h, _)| h == name)
                .map(|(_, v)| v.as_str())
        };
        let prompt = get("prompt")
            .ok_or_else(|| bad("field \"prompt\" is missing".into()))?
            .to_string();
        let id = match get("sample_id") {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => format!("routerbench-{}", self.rows.len()),
        };
        if let Some((f, l)) = self.ids.insert(id.clone(), (file.to_string(), line)) {
            return Err(bad(format!("sample_id {id:?} appears earlier, at {f}:{l}")));
        }
        let number = |field: &str, v: Option<&str>| -> Result<Option<f64>> {
            match v.map(str::trim) {
                None | Some("" | "nan" | "NaN" | "None") => Ok(None),
                Some(s) => s.parse::<f64>().map(Some).map_err(|_| {
                    // A column RouterBench does not have is taken for a model's score column.
                    let other = if self.models.iter().any(|m| m == field) {
                        format!(
                            " (a column other than {} is a model's score)",
                            ROUTERBENCH_FIXED.join(", ")
                        )
                    } else {
                        String::new()
                    };
                    bad(format!("field {field:?}: {s:?} is not a number{other}"))
                }),
            }
        };
        let mut out = Vec::with_capacity(self.models.len());
        for model in &self.models {
            let score = match get(model).map(str::trim) {
                Some(s) if bool_score(s).is_some() && !s.contains('.') => bool_score(s),
                v => number(model, v)?,
            };
            if let Some(s) = score {
                if !(0.0..=1.0).contains(&s) {
                    return Err(bad(format!("field {model:?}: score {s} outside [0, 1]")));
                }
            }
            let cost_field = format!("{model}|total_cost");
            let cost = number(&cost_field, get(&cost_field))?;
            if let Some(c) = cost {
                if !(c.is_finite() && c >= 0.0) {
                    return Err(bad(format!(
                        "field {cost_field:?}: cost {c} is not a non-negative number"
                    )));
                }
            }
            let chars = get(&format!("{model}|model_response"))
                .filter(|s| !s.is_empty())
                .map(|s| s.chars().count() as u64);
            out.push((score, cost.filter(|_| score.is_some()), chars));
        }
        self.rows.push(WideRow {
            id,
            prompt,
            task: get("eval_name")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            cells: out,
        });
        Ok(())
    }

    fn into_draft(self, options: &ImportOptions) -> Result<DatasetDraft> {
        if self.rows.is_empty() {
            return Err(Error::InvalidInput(
                "the RouterBench table has no row".into(),
            ));
        }
        let default_out = options.default_output_tokens.unwrap_or(256.0);
        let (pool, note, roles) = match &options.models {
            Some(p) => {
                let given = crate::data::schema::read_models(p)?;
                let mut cards = Vec::new();
                let mut roles = Vec::new();
                for id in &self.models {
                    let j = given.pool.index_of(id).map_err(|_| {
                        Error::InvalidInput(format!(
                            "model {id:?} of the table is not in {}",
                            p.display()
                        ))
                    })?;
                    cards.push(given.pool.card(j).clone());
                    roles.push(given.roles[j].clone());
                }
                (
                    ModelPool::new(cards)?,
                    format!("prices from {}", p.display()),
                    roles,
                )
            }
            None => {
                // One price per model (input = output) such that the SCHEMA.md estimate, summed
                // over the rows with an observed cost, equals the observed costs' sum.
                let mut cards = Vec::new();
                for (j, id) in self.models.iter().enumerate() {
                    let (mut cost, mut mtok) = (0.0f64, 0.0f64);
                    for r in &self.rows {
                        if let (_, Some(c), chars) = r.cells[j] {
                            cost += c;
                            let out = chars.map_or(default_out, |n| n as f64 / 4.0);
                            mtok += (crate::data::prompt_tokens_of(&r.prompt) + out) / 1e6;
                        }
                    }
                    if mtok == 0.0 {
                        // No observed cost to fit a price to: a price of 0 would make the model
                        // look free to every router.
                        return Err(Error::InvalidInput(format!(
                            "model {id:?} has no observed cost (no \"{id}|total_cost\" value \
                             beside a score): give the models' prices with --models"
                        )));
                    }
                    let price = cost / mtok;
                    cards.push(
                        ModelCard::new(id.clone(), price, price)
                            .with_default_output_tokens(default_out),
                    );
                }
                (
                    ModelPool::new(cards)?,
                    "no price list given: each model's price (input = output, USD per 1M tokens) \
                     is fitted to its observed total_cost; per-query costs are the observed ones"
                        .to_string(),
                    vec![None; self.models.len()],
                )
            }
        };
        let m = pool.len();
        let mut draft = DatasetDraft::new(pool, "RouterBench wide table (withmartian/routerbench)");
        draft.roles = roles;
        draft.price_note = note;
        for w in self.rows {
            let mut r = DraftRow::new(w.id, w.prompt, m);
            r.task = w.task;
            for (j, (s, c, chars)) in w.cells.into_iter().enumerate() {
                r.scores[j] = s;
                r.cost_usd[j] = c;
                r.output_chars[j] = chars;
            }
            draft.rows.push(r);
        }
        Ok(draft)
    }
}
