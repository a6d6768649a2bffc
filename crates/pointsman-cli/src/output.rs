//! Rendering reports: the terminal table and report.md.

use pointsman::eval::{EntrantReport, Report};

fn num(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "-".into(),
    }
}

fn label(p: &EntrantReport) -> String {
    if p.reads_test_labels {
        format!("{} (reads test labels)", p.name)
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
        "quality at 0.6x best-single cost".into(),
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
         best single model's cost. Metric definitions: SCHEMA.md of the datasets and the \
         `pointsman::eval` documentation.\n\n## Single models (test split)\n\n\
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
