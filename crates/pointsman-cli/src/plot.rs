//! curve.svg: quality against mean cost per query, single models as labelled points, one line
//! per router.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use pointsman::eval::Report;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Draws the report's curves into an SVG string.
pub fn svg(report: &Report) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (960, 640)).into_drawing_area();
        draw(&root, report).map_err(|e| anyhow!("drawing the curve: {e}"))?;
        root.present()
            .map_err(|e| anyhow!("drawing the curve: {e}"))?;
    }
    Ok(buf)
}

/// Writes the SVG to `path` (atomically).
pub fn write(report: &Report, path: &Path) -> Result<()> {
    let svg = svg(report)?;
    pointsman::files::write_atomic(path, svg.as_bytes()).with_context(|| "writing the curve")?;
    Ok(())
}

type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    report: &Report,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let mut xs: Vec<f64> = report
        .reference
        .models
        .iter()
        .map(|m| m.mean_cost)
        .collect();
    let mut ys: Vec<f64> = report
        .reference
        .models
        .iter()
        .map(|m| m.mean_quality)
        .collect();
    for p in &report.entrants {
        xs.extend(p.curve.iter().map(|c| c.mean_cost));
        ys.extend(p.curve.iter().map(|c| c.mean_quality));
    }
    let (x0, x1) = (0.0, xs.iter().copied().fold(0.0, f64::max) * 1.08);
    let y_lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let y_hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = ((y_hi - y_lo) * 0.08).max(0.01);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "{}: quality vs mean cost per query (test split)",
                report.dataset
            ),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(
            x0..x1.max(1e-12),
            (y_lo - pad).max(0.0)..(y_hi + pad).min(1.05),
        )?;
    chart
        .configure_mesh()
        .x_desc("mean cost per query (USD)")
        .y_desc("mean quality")
        .x_label_formatter(&|x| format!("{x:.1e}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()?;
    for (i, p) in report.entrants.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut pts: Vec<(f64, f64)> = p
            .curve
            .iter()
            .map(|c| (c.mean_cost, c.mean_quality))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let label = if p.reads_test_labels {
            format!("{} (reads test labels)", p.name)
        } else {
            p.name.clone()
        };
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    for m in &report.reference.models {
        let p = (m.mean_cost, m.mean_quality);
        chart.draw_series(std::iter::once(Cross::new(p, 5, BLACK.stroke_width(2))))?;
        chart.draw_series(std::iter::once(Text::new(
            m.model.clone(),
            p,
            ("sans-serif", 12).into_font().color(&BLACK),
        )))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Writes replay.svg: the cumulative mean utility of each router with the best fixed model and
/// the oracle, and below, per router, the share of each model per bin.
pub fn write_replay(report: &pointsman::replay::ReplayReport, path: &Path) -> Result<()> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (1100, 760)).into_drawing_area();
        draw_replay(&root, report).map_err(|e| anyhow!("drawing the replay: {e}"))?;
        root.present()
            .map_err(|e| anyhow!("drawing the replay: {e}"))?;
    }
    pointsman::files::write_atomic(path, buf.as_bytes())
        .with_context(|| "writing the replay plot")?;
    Ok(())
}

fn draw_replay<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    report: &pointsman::replay::ReplayReport,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(420);
    let steps = report.steps as f64;
    // Cumulative mean utility per bin end; the references follow from the cumulative regrets.
    // (label, points, colour, thin line for the references)
    type Series = (String, Vec<(f64, f64)>, RGBColor, bool);
    let mut series: Vec<Series> = Vec::new();
    for (i, p) in report.routers.iter().enumerate() {
        let pts = p
            .bins
            .iter()
            .map(|b| (b.end as f64, b.cumulative_mean_utility))
            .collect();
        series.push((p.name.clone(), pts, PALETTE[i % PALETTE.len()], false));
    }
    if let Some(p) = report.routers.first() {
        let fixed = p
            .bins
            .iter()
            .map(|b| {
                let end = b.end as f64;
                (
                    end,
                    b.cumulative_mean_utility + b.cumulative_regret_best_fixed / end,
                )
            })
            .collect();
        let oracle = p
            .bins
            .iter()
            .map(|b| {
                let end = b.end as f64;
                (
                    end,
                    b.cumulative_mean_utility + b.cumulative_regret_oracle / end,
                )
            })
            .collect();
        series.push((
            format!("best fixed: {}", report.reference.best_fixed),
            fixed,
            BLACK,
            true,
        ));
        series.push(("oracle".into(), oracle, RGBColor(120, 120, 120), true));
    }
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .collect();
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.08).max(0.01);
    let drift = report
        .drift
        .as_ref()
        .map(|d| format!(", {} scores 0 from step {}", d.model, d.step))
        .unwrap_or_default();
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!(
                "{}: cumulative mean utility under bandit feedback (cost weight {}{drift})",
                report.dataset, report.cost_weight
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..steps.max(1.0), (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("cumulative mean utility")
        .y_label_formatter(&|y| format!("{y:.3}"))
        .draw()?;
    for (name, pts, color, dashed) in series {
        let style = if dashed {
            color.stroke_width(1)
        } else {
            color.stroke_width(2)
        };
        chart
            .draw_series(LineSeries::new(pts, style))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    let panels = bottom.split_evenly((1, report.routers.len().max(1)));
    for (p, area) in report.routers.iter().zip(panels.iter()) {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{}: share per bin", p.name), ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(40)
            .build_cartesian_2d(0.0..steps.max(1.0), 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_labels(4)
            .y_labels(5)
            .y_label_formatter(&|y| format!("{y:.1}"))
            .draw()?;
        for (m, id) in report.model_ids.iter().enumerate() {
            let color = PALETTE[m % PALETTE.len()];
            let style = if m >= PALETTE.len() {
                BLACK.stroke_width(1)
            } else {
                color.stroke_width(1)
            };
            let pts: Vec<(f64, f64)> = p
                .bins
                .iter()
                .map(|b| (0.5 * (b.start + b.end) as f64, b.shares[m]))
                .collect();
            let s = chart.draw_series(LineSeries::new(pts, style))?;
            if std::ptr::eq(p, &report.routers[0]) {
                s.label(id.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], style));
            }
        }
        if std::ptr::eq(p, &report.routers[0]) {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font(("sans-serif", 9))
                .background_style(WHITE.mix(0.8))
                .draw()?;
        }
    }
    Ok(())
}
