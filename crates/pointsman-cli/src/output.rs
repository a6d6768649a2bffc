//! Rendering reports: the terminal table and report.md.

use std::io::Write;

use pointsman::eval::{EntrantReport, Report};

/// Writes `text` to standard output. Unlike `print!`, a closed pipe (`pointsman … | head`) is an
/// error the caller returns, which `main` turns into a quiet exit, not a panic.
pub(crate) fn emit(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The files of one command's output, written to temporary files and put in place together
/// ([`pointsman::files::commit_all`]): a failure part-way (a full disk, say) leaves the folder's
/// earlier files as they were instead of mixing two runs.
#[derive(Default)]
pub(crate) struct Staged(Vec<pointsman::files::AtomicFile>);

impl Staged {
    /// Stages `bytes` as the new content of `path`.
    pub(crate) fn bytes(&mut self, path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
        let mut file = self.file(path)?;
        file.write_all(bytes)
            .map_err(|e| pointsman::Error::io(path, e))?;
        self.0.push(file);
        Ok(())
    }

    /// Stages `path` for streaming: write into the file returned, then hand it back with
    /// [`Staged::push`].
    pub(crate) fn file(
        &self,
        path: &std::path::Path,
    ) -> pointsman::Result<pointsman::files::AtomicFile> {
        pointsman::files::AtomicFile::create(path)
    }

    /// Adds a file written through [`Staged::file`].
    pub(crate) fn push(&mut self, file: pointsman::files::AtomicFile) {
        self.0.push(file);
    }

    /// Puts every staged file in place.
    pub(crate) fn commit(self) -> pointsman::Result<()> {
        pointsman::files::commit_all(self.0)
    }
}

/// Writes `items` into `file` as JSON lines, an error naming the file.
pub(crate) fn write_lines<T: serde::Serialize>(
    file: &mut pointsman::files::AtomicFile,
    items: impl IntoIterator<Item = T>,
) -> pointsman::Result<()> {
    let path = file.path().to_path_buf();
    let io = |e: std::io::Error| pointsman::Error::io(&path, e);
    for item in items {
        serde_json::to_writer(&mut *file, &item).map_err(|e| io(e.into()))?;
        file.write_all(b"\n").map_err(io)?;
    }
    Ok(())
}

/// The files `pointsman eval` may write into its `--out` folder.
pub(crate) const EVAL_OUTPUTS: [&str; 6] = [
    "report.json",
    "report.md",
    "curve.svg",
    "decisions.jsonl",
    "policy.json",
    "policy.jsonl",
];

/// The files `pointsman replay` may write into its `--out` folder.
pub(crate) const REPLAY_OUTPUTS: [&str; 6] = [
    "replay.jsonl",
    "report.json",
    "report.md",
    "replay.svg",
    "policy.json",
    "policy.jsonl",
];

/// Refuses, before any work, a run that would write one of `names` in the folder `out` over one
/// of its `inputs` (a policy file named `policy.json` in the output folder, say): the command's
/// inputs are the dataset's files, a policy file and saved routers (`file:` entrants).
pub(crate) fn refuse_outputs_among_inputs(
    out: &std::path::Path,
    names: &[&str],
    dataset: &pointsman::data::Dataset,
    policy: Option<&std::path::Path>,
    routers: &[String],
) -> pointsman::Result<()> {
    let mut inputs = dataset.files();
    inputs.extend(policy.map(std::path::Path::to_path_buf));
    inputs.extend(routers.iter().filter_map(|n| {
        n.strip_prefix(pointsman::registry::RouterSpec::FILE_PREFIX)
            .map(std::path::PathBuf::from)
    }));
    for name in names {
        pointsman::files::refuse_output_among_inputs(&out.join(name), &inputs)?;
    }
    Ok(())
}

fn num(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "-".into(),
    }
}

/// An entrant's name as the reports show it, marked when it is not a router's honest figure: the
/// oracle reads the test labels, a cascade in `pointsman eval` sees a simulated judge.
pub(crate) fn label(p: &EntrantReport) -> String {
    if p.reads_test_labels {
        format!("{} (reads test labels)", p.name)
    } else if p.simulated_judge {
        format!("{} (simulated judge)", p.name)
    } else {
        p.name.clone()
    }
}

/// Rows of the metrics table: header first.
fn rows(report: &Report) -> Vec<Vec<String>> {
    let two_model = report.reference.weak_strong.is_some();
    let mut header = vec![
        "router".to_string(),
        "AIQ".into(),
        "max quality".into(),
        "quality at best-single cost".into(),
        "cost to match best single".into(),
        "quality at 0.6x best-single cost (cheap share)".into(),
    ];
    if two_model {
        header.extend(["APGR".into(), "CPT(50%)".into(), "CPT(80%)".into()]);
    }
    let mut out = vec![header];
    for p in &report.entrants {
        let m = &p.metrics;
        let mut row = vec![
            label(p),
            num(Some(m.aiq), 4),
            num(Some(m.max_quality), 4),
            num(m.quality_at_best_single_cost, 4),
            num(m.cost_to_match_best_single, 3),
            num(m.quality_at_cheap_share, 4),
        ];
        if two_model {
            row.extend([num(m.apgr, 4), num(m.cpt50, 3), num(m.cpt80, 3)]);
        }
        out.push(row);
    }
    out
}

fn reference_lines(report: &Report) -> Vec<String> {
    let r = &report.reference;
    let best = &r.models[r.best_single];
    vec![
        format!(
            "{}: {} test queries, {} models",
            report.dataset,
            report.n_test,
            r.models.len()
        ),
        format!(
            "best single model (by train score): {}: quality {:.4} at {:.3e} USD/query",
            best.model, best.mean_quality, best.mean_cost
        ),
        format!(
            "oracle (reads test labels): quality {:.4} at {:.3e} USD/query",
            r.oracle_quality, r.oracle_cost
        ),
        format!(
            "zero router (single models' hull): AIQ {:.4}",
            r.zero_router_aiq
        ),
    ]
}

/// Where every figure of a report is defined, in the repository.
const METRICS_DOC: &str = "docs/metrics.md";

/// The entrants whose AIQ is the zero router's: their points add nothing above the single models'
/// hull, which AIQ always includes (a question every reader of the table asks).
fn zero_aiq_note(report: &Report) -> Option<String> {
    let zero = report.reference.zero_router_aiq;
    let names: Vec<&str> = report
        .entrants
        .iter()
        .filter(|p| (p.metrics.aiq - zero).abs() <= 1e-9)
        .map(|p| p.name.as_str())
        .collect();
    let names = match names.as_slice() {
        [] => return None,
        [one] => format!("{one} has"),
        [rest @ .., last] => format!("{} and {last} have", rest.join(", ")),
    };
    Some(format!(
        "{names} the zero router's AIQ ({zero:.4}): their points lie on or under the single \
         models' hull, which AIQ includes."
    ))
}

/// The notes under the table: the shared AIQ explained, and where the metrics are defined.
fn notes(report: &Report, link: &str) -> Vec<String> {
    let mut out: Vec<String> = zero_aiq_note(report).into_iter().collect();
    if report.entrants.iter().any(|p| p.simulated_judge) {
        out.push(
            "(simulated judge): a cascade looks at each answer's confidence before deciding; the \
             datasets carry none, so these come from a simulated judge that errs at the rate \
             --judge-noise sets. The figures say what such a confidence is worth, not how a real \
             one performs."
                .to_string(),
        );
    }
    out.push(format!(
        "Every figure is defined in {link} of the Pointsman repository."
    ));
    out
}

/// The plain-text table printed by `pointsman eval`.
pub fn table(report: &Report) -> String {
    let rows = rows(report);
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for line in reference_lines(report) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == 0 {
                    format!("{v:<w$}", w = widths[c])
                } else {
                    format!("{v:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out.push('\n');
    for note in notes(report, METRICS_DOC) {
        out.push_str(&note);
        out.push('\n');
    }
    out
}

/// report.md.
pub fn markdown(report: &Report, command: &str) -> String {
    let mut out = format!("# Evaluation on `{}`\n\n", report.dataset);
    out.push_str(&format!("Command: `{command}`\n\n"));
    for line in reference_lines(report) {
        out.push_str(&format!("- {line}\n"));
    }
    out.push_str("\n## Routers\n\n");
    let rows = rows(report);
    for (i, row) in rows.iter().enumerate() {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
        if i == 0 {
            out.push_str(&format!("|{}\n", "---|".repeat(row.len())));
        }
    }
    out.push_str(
        "\nCosts are mean USD per test query; \"cost to match best single\" is a fraction of the \
         best single model's cost.\n",
    );
    // A link that works where the README's commands write reports (out/<name>/report.md).
    let link = format!("[{METRICS_DOC}](../../{METRICS_DOC})");
    for note in notes(report, &link) {
        out.push_str(&format!("\n{note}\n"));
    }
    out.push_str(
        "\n## Single models (test split)\n\n\
         | model | quality | cost (USD/query) | train quality |\n|---|---|---|---|\n",
    );
    for m in &report.reference.models {
        out.push_str(&format!(
            "| {} | {:.4} | {:.4e} | {:.4} |\n",
            m.model, m.mean_quality, m.mean_cost, m.train_mean_quality
        ));
    }
    out
}
