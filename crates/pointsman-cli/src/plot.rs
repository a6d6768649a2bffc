//! curve.svg (quality against mean cost per query: single models as labelled points, one line per
//! router) and replay.svg (cumulative mean utility under bandit feedback, and the models' shares).
//!
//! Every series has its own colour *and* marker shape, so that no two look alike even beyond
//! the palette's ten colours and on a grey-scale print; legends sit beside the charts, not on
//! them; the cost axis is logarithmic when the costs span more than a decade; the grid is light.

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::CoordTranslate;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use pointsman::eval::Report;

/// Ten colours a reader tells apart (Tableau 10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The shape of a series' markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
    /// Kept for the single models and references (in black), never given to a series by index.
    Cross,
}

/// The shapes series cycle through.
const MARKERS: [Marker; 5] = [
    Marker::Circle,
    Marker::Square,
    Marker::TriangleUp,
    Marker::Diamond,
    Marker::TriangleDown,
];

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Style {
    color: RGBColor,
    marker: Marker,
}

/// The style of the `i`-th series: the colour cycles through the palette and the marker advances
/// by one more each time the colours come round, so no two of the first 50 series share both.
fn series_style(i: usize) -> Style {
    Style {
        color: PALETTE[i % PALETTE.len()],
        marker: MARKERS[(i + i / PALETTE.len()) % MARKERS.len()],
    }
}

/// Black, for the single models and the references: no series colour is black.
const REFERENCE: RGBColor = RGBColor(0, 0, 0);

/// Light grey for the grid lines.
const GRID: RGBColor = RGBColor(226, 226, 226);

/// Draws a marker of `style` centred on each of `points`, `size` pixels from centre to edge.
fn draw_markers<DB, CT>(
    area: &DrawingArea<DB, CT>,
    points: &[CT::From],
    style: Style,
    size: i32,
) -> DrawResult<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
    CT::From: Clone,
{
    let fill = style.color.filled();
    let s = size;
    let polygon = match style.marker {
        Marker::Circle => {
            for p in points {
                area.draw(&(EmptyElement::at(p.clone()) + Circle::new((0, 0), s, fill)))?;
            }
            return Ok(());
        }
        Marker::Square => {
            let corners = [(1 - s, 1 - s), (s - 1, s - 1)];
            for p in points {
                area.draw(&(EmptyElement::at(p.clone()) + Rectangle::new(corners, fill)))?;
            }
            return Ok(());
        }
        Marker::TriangleUp => vec![(0, -s - 1), (s + 1, s), (-s - 1, s)],
        Marker::TriangleDown => vec![(0, s + 1), (s + 1, -s), (-s - 1, -s)],
        Marker::Diamond => vec![(0, -s - 1), (s + 1, 0), (0, s + 1), (-s - 1, 0)],
        Marker::Cross => {
            // Larger than the series' markers: single models are the landmarks of the plot.
            let a = s + 3;
            vec![
                (-a, 1 - a),
                (1 - a, -a),
                (0, -1),
                (a - 1, -a),
                (a, 1 - a),
                (1, 0),
                (a, a - 1),
                (a - 1, a),
                (0, 1),
                (1 - a, a),
                (-a, a - 1),
                (-1, 0),
            ]
        }
    };
    for p in points {
        area.draw(&(EmptyElement::at(p.clone()) + Polygon::new(polygon.clone(), fill)))?;
    }
    Ok(())
}

/// One row of a legend.
struct Entry {
    label: String,
    style: Style,
    /// The series is a line (a segment is drawn behind its marker).
    line: bool,
}

const LEGEND_FONT: u32 = 15;
const LEGEND_ROW: i32 = 20;

/// Width of a legend panel that holds `entries` without clipping a letter.
fn legend_width<'a>(labels: impl Iterator<Item = &'a str>) -> u32 {
    let longest = labels.map(|l| l.chars().count()).max().unwrap_or(0) as u32;
    (56 + longest * 7).max(160)
}

/// Draws `entries` as a legend down `area`, its first row `top` pixels from the top.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    entries: &[Entry],
    top: i32,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    let font = ("sans-serif", LEGEND_FONT).into_font();
    area.draw(&Text::new(
        title.to_string(),
        (8, top),
        TextStyle::from(font.clone()).pos(Pos::new(HPos::Left, VPos::Center)),
    ))?;
    for (i, e) in entries.iter().enumerate() {
        let y = top + LEGEND_ROW * (i as i32 + 1);
        if e.line {
            area.draw(&PathElement::new(
                vec![(10, y), (38, y)],
                e.style.color.stroke_width(2),
            ))?;
        }
        draw_markers(area, &[(24, y)], e.style, 4)?;
        area.draw(&Text::new(
            e.label.clone(),
            (46, y),
            TextStyle::from(font.clone()).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

/// Draws the report's curves into an SVG string.
pub fn svg(report: &Report) -> Result<String> {
    let mut buf = String::new();
    {
        let width = 960 + curve_legend_width(report);
        let root = SVGBackend::with_string(&mut buf, (width, 640)).into_drawing_area();
        draw(&root, report).map_err(|e| anyhow!("drawing the curve: {e}"))?;
        root.present()
            .map_err(|e| anyhow!("drawing the curve: {e}"))?;
    }
    Ok(buf)
}

type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn curve_legend_entries(report: &Report) -> Vec<Entry> {
    let mut entries: Vec<Entry> = report
        .entrants
        .iter()
        .enumerate()
        .map(|(i, p)| Entry {
            label: crate::output::label(p),
            style: series_style(i),
            line: p.curve.len() > 1,
        })
        .collect();
    entries.push(Entry {
        label: "single models".into(),
        style: SINGLE_MODEL,
        line: false,
    });
    entries
}

fn curve_legend_width(report: &Report) -> u32 {
    legend_width(
        curve_legend_entries(report)
            .iter()
            .map(|e| e.label.as_str()),
    )
}

const SINGLE_MODEL: Style = Style {
    color: REFERENCE,
    marker: Marker::Cross,
};

/// Tick values `m × 10^k` (m in `mantissas`) within `lo..=hi`.
fn log_ticks(lo: f64, hi: f64, mantissas: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in mantissas {
            // Round away the binary error of m × 10^k, so labels print as "2e-4".
            let v: f64 = format!("{:.0e}", m * decade).parse().unwrap_or(m * decade);
            if (lo..=hi).contains(&v) {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// The x axis of curve.svg: logarithmic (with its ticks) when the costs span more than a decade.
enum CostAxis {
    Linear(std::ops::Range<f64>),
    Log(std::ops::Range<f64>, Vec<f64>),
}

impl CostAxis {
    /// The axis for points at `costs`, wide enough that each `(cost, width)` label (in pixels)
    /// fits right of its point on a plot `plot_px` pixels wide.
    fn of(costs: &[f64], labels: &[(f64, f64)], plot_px: f64) -> CostAxis {
        let lo = costs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = costs.iter().copied().fold(0.0, f64::max);
        // The share of the axis right of a label's point must hold the label (when it can).
        let room = |width: f64| ((plot_px - width) / plot_px).clamp(0.5, 1.0);
        if lo > 0.0 && hi / lo > 10.0 {
            let lo = lo / 1.25;
            let mut span = (hi * 1.25 / lo).ln();
            for &(c, w) in labels {
                span = span.max((c / lo).ln() / room(w));
            }
            let hi = lo * span.exp();
            let mut ticks = log_ticks(lo, hi, &[1.0, 2.0, 5.0]);
            if ticks.len() > 9 {
                ticks = log_ticks(lo, hi, &[1.0]);
            }
            CostAxis::Log(lo..hi, ticks)
        } else {
            let mut hi = hi * 1.08;
            for &(c, w) in labels {
                hi = hi.max(c / room(w));
            }
            CostAxis::Linear(0.0..hi.max(1e-12))
        }
    }
}

/// The pixel width of a single model's label: the name, a gap and the cross.
fn label_px(name: &str) -> f64 {
    LABEL_CHAR * name.chars().count() as f64 + 20.0
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &Report) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (w, _) = root.dim_in_pixel();
    let (plot, legend) = root.split_horizontally(w - curve_legend_width(report));
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
    let y_lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let y_hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = ((y_hi - y_lo) * 0.08).max(0.01);
    let y = (y_lo - pad).max(0.0)..(y_hi + pad).min(1.05);
    let caption = format!(
        "{}: quality vs mean cost per query (test split)",
        report.dataset
    );
    let builder = || {
        let mut b = ChartBuilder::on(&plot);
        b.caption(caption.clone(), ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64);
        b
    };
    let labels: Vec<(f64, f64)> = report
        .reference
        .models
        .iter()
        .map(|m| (m.mean_cost, label_px(&m.model)))
        .collect();
    // The plot's width less the y labels and the margins.
    let plot_px = f64::from(plot.dim_in_pixel().0) - 64.0 - 32.0;
    match CostAxis::of(&xs, &labels, plot_px) {
        CostAxis::Log(x, ticks) => {
            let chart = builder().build_cartesian_2d(x.log_scale().with_key_points(ticks), y)?;
            draw_curves(
                chart,
                report,
                "mean cost per query (USD, log scale)",
                &|x| format!("{x:.0e}"),
            )?;
        }
        CostAxis::Linear(x) => {
            let chart = builder().build_cartesian_2d(x, y)?;
            draw_curves(chart, report, "mean cost per query (USD)", &|x| {
                format!("{x:.1e}")
            })?;
        }
    }
    draw_legend(&legend, "routers", &curve_legend_entries(report), 60)
}

/// Pixels per character of a 12-pixel sans-serif label, generously (no clipped letters).
const LABEL_CHAR: f64 = 7.0;

fn draw_curves<DB, X>(
    mut chart: ChartContext<'_, DB, Cartesian2d<X, RangedCoordf64>>,
    report: &Report,
    x_desc: &str,
    x_format: &dyn Fn(&f64) -> String,
) -> DrawResult<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("mean quality")
        .x_label_formatter(x_format)
        .y_label_formatter(&|y| format!("{y:.2}"))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .draw()?;
    // Single models first (a black cross each), so that a router's marker on the same point
    // stays visible inside the cross; their labels last, above the lines.
    let singles: Vec<(f64, f64)> = report
        .reference
        .models
        .iter()
        .map(|m| (m.mean_cost, m.mean_quality))
        .collect();
    draw_markers(chart.plotting_area(), &singles, SINGLE_MODEL, 4)?;
    for (i, p) in report.entrants.iter().enumerate() {
        let style = series_style(i);
        let mut pts: Vec<(f64, f64)> = p
            .curve
            .iter()
            .map(|c| (c.mean_cost, c.mean_quality))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.len() > 1 {
            chart.draw_series(LineSeries::new(pts.clone(), style.color.stroke_width(2)))?;
        }
        draw_markers(chart.plotting_area(), &pts, style, 4)?;
    }
    // Each single model's name beside its cross on a light box (to its left when it would run
    // past the plot's right edge).
    let right = chart.plotting_area().get_pixel_range().0.end;
    let font = ("sans-serif", 15).into_font().color(&BLACK);
    for m in &report.reference.models {
        let p = (m.mean_cost, m.mean_quality);
        let px = chart.backend_coord(&p).0;
        let width = (LABEL_CHAR * m.model.chars().count() as f64) as i32;
        let (dx, anchor) = if px + 10 + width < right {
            (10, HPos::Left)
        } else {
            (-10, HPos::Right)
        };
        let (x0, x1) = if dx > 0 {
            (dx - 2, dx + width + 2)
        } else {
            (dx - width - 2, dx + 2)
        };
        let area = chart.plotting_area();
        area.draw(
            &(EmptyElement::at(p)
                + Rectangle::new([(x0, -8), (x1, 8)], WHITE.mix(0.75).filled())
                + Text::new(
                    m.model.clone(),
                    (dx, 0),
                    font.clone().pos(Pos::new(anchor, VPos::Center)),
                )),
        )?;
    }
    Ok(())
}

/// replay.svg as a string.
pub fn replay_svg(report: &pointsman::replay::ReplayReport) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (1300, 780)).into_drawing_area();
        draw_replay(&root, report).map_err(|e| anyhow!("drawing the replay: {e}"))?;
        root.present()
            .map_err(|e| anyhow!("drawing the replay: {e}"))?;
    }
    Ok(buf)
}

/// The replay's series: label, points (step, value), style, thin (a reference).
type ReplaySeries = (String, Vec<(usize, f64)>, Style, bool);

fn replay_series(report: &pointsman::replay::ReplayReport) -> Vec<ReplaySeries> {
    let mut series: Vec<ReplaySeries> = Vec::new();
    for (i, p) in report.routers.iter().enumerate() {
        let pts = p
            .bins
            .iter()
            .map(|b| (b.end, b.cumulative_mean_utility))
            .collect();
        series.push((p.name.clone(), pts, series_style(i), false));
    }
    // The references follow from any router's cumulative regrets.
    if let Some(p) = report.routers.first() {
        let reference = |regret: fn(&pointsman::replay::ReplayBin) -> f64| -> Vec<(usize, f64)> {
            p.bins
                .iter()
                .map(|b| (b.end, b.cumulative_mean_utility + regret(b) / b.end as f64))
                .collect()
        };
        series.push((
            format!("best fixed: {}", report.reference.best_fixed),
            reference(|b| b.cumulative_regret_best_fixed),
            Style {
                color: REFERENCE,
                marker: Marker::Square,
            },
            true,
        ));
        series.push((
            "oracle (reads the scores)".into(),
            reference(|b| b.cumulative_regret_oracle),
            Style {
                color: REFERENCE,
                marker: Marker::TriangleUp,
            },
            true,
        ));
    }
    series
}

fn draw_replay<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &pointsman::replay::ReplayReport,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let series = replay_series(report);
    let model_entries: Vec<Entry> = report
        .model_ids
        .iter()
        .enumerate()
        .map(|(m, id)| Entry {
            label: id.clone(),
            style: series_style(m),
            line: true,
        })
        .collect();
    let legend_w = legend_width(
        series
            .iter()
            .map(|s| s.0.as_str())
            .chain(report.model_ids.iter().map(String::as_str)),
    );
    let (w, _) = root.dim_in_pixel();
    let (charts, legend) = root.split_horizontally(w - legend_w);
    let (top, bottom) = charts.split_vertically(420);
    let (_, bottom_legend) = legend.split_vertically(420);
    let steps = report.steps.max(1);
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
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0..steps, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("cumulative mean utility")
        .y_label_formatter(&|y| format!("{y:.3}"))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (_, pts, style, thin) in &series {
        let width = if *thin { 1 } else { 2 };
        chart.draw_series(LineSeries::new(
            pts.iter().copied(),
            style.color.stroke_width(width),
        ))?;
        draw_markers(chart.plotting_area(), pts, *style, 3)?;
    }
    let entries: Vec<Entry> = series
        .iter()
        .map(|(label, _, style, _)| Entry {
            label: label.clone(),
            style: *style,
            line: true,
        })
        .collect();
    draw_legend(&legend, "routers", &entries, 40)?;

    let panels = bottom.split_evenly((1, report.routers.len().max(1)));
    for (p, area) in report.routers.iter().zip(panels.iter()) {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{}: share per bin", p.name), ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(40)
            .build_cartesian_2d(0..steps, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_labels(4)
            .y_labels(5)
            .y_label_formatter(&|y| format!("{y:.1}"))
            .label_style(("sans-serif", 13))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .draw()?;
        for (m, entry) in model_entries.iter().enumerate() {
            let pts: Vec<(usize, f64)> = p
                .bins
                .iter()
                .map(|b| ((b.start + b.end) / 2, b.shares[m]))
                .collect();
            chart.draw_series(LineSeries::new(
                pts.iter().copied(),
                entry.style.color.stroke_width(1),
            ))?;
            draw_markers(chart.plotting_area(), &pts, entry.style, 2)?;
        }
    }
    draw_legend(&bottom_legend, "models (shares)", &model_entries, 30)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pointsman::data::Split;
    use pointsman::eval::{CostBasis, Reference, SweepPoint};
    use pointsman::metrics::evaluate_sweep;
    use pointsman::{ModelCard, ModelPool};

    /// One SVG element: its tag, attributes and (for `<text>`) its content.
    #[derive(Debug)]
    struct El {
        tag: String,
        attrs: Vec<(String, String)>,
        text: String,
    }

    impl El {
        fn attr(&self, name: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }

        fn num(&self, name: &str) -> f64 {
            self.attr(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} has no numeric {name}: {self:?}", self.tag))
        }

        fn points(&self) -> Vec<(f64, f64)> {
            self.attr("points")
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|p| {
                    let (x, y) = p.split_once(',')?;
                    Some((x.parse().ok()?, y.parse().ok()?))
                })
                .collect()
        }

        /// For a filled marker shape: its kind and its geometry relative to `centre` at any size
        /// (the shape a reader sees), and its fill.
        fn marker_signature(&self, centre: (f64, f64)) -> Option<(String, String)> {
            let fill = self.attr("fill").filter(|f| *f != "none")?.to_string();
            let shape = match self.tag.as_str() {
                "circle" => "circle".to_string(),
                "rect" => format!("rect {:.1}", self.num("width") / self.num("height")),
                "polygon" => {
                    let rel: Vec<(f64, f64)> = self
                        .points()
                        .iter()
                        .map(|p| (p.0 - centre.0, p.1 - centre.1))
                        .collect();
                    let scale = rel
                        .iter()
                        .map(|p| p.0.abs().max(p.1.abs()))
                        .fold(0.0, f64::max);
                    let rel: Vec<String> = rel
                        .iter()
                        .map(|p| format!("{:.1},{:.1}", p.0 / scale, p.1 / scale))
                        .collect();
                    format!("polygon {}", rel.join(" "))
                }
                _ => return None,
            };
            Some((shape, fill))
        }

        /// Centre of a marker shape.
        fn centre(&self) -> Option<(f64, f64)> {
            match self.tag.as_str() {
                "circle" => Some((self.num("cx"), self.num("cy"))),
                "rect" => Some((
                    self.num("x") + self.num("width") / 2.0,
                    self.num("y") + self.num("height") / 2.0,
                )),
                "polygon" => {
                    let p = self.points();
                    let (xs, ys): (Vec<f64>, Vec<f64>) = p.iter().copied().unzip();
                    let mid = |v: &[f64]| {
                        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        (lo + hi) / 2.0
                    };
                    Some((mid(&xs), mid(&ys)))
                }
                _ => None,
            }
        }
    }

    /// The elements of an SVG document as plotters writes it.
    fn parse(svg: &str) -> Vec<El> {
        let mut out = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let end = rest.find('>').expect("every tag is closed");
            let tag_text = rest[..end].trim_end_matches('/');
            rest = &rest[end + 1..];
            if tag_text.starts_with('/') || tag_text.starts_with('?') {
                continue;
            }
            let (tag, mut attrs_text) = tag_text.split_once(' ').unwrap_or((tag_text, ""));
            let mut attrs = Vec::new();
            while let Some((k, v)) = attrs_text.split_once("=\"") {
                let (value, after) = v.split_once('"').expect("attribute values are quoted");
                attrs.push((k.trim().to_string(), value.to_string()));
                attrs_text = after;
            }
            let mut text = String::new();
            if tag == "text" {
                let close = rest.find("</text>").expect("text is closed");
                text = rest[..close].trim().to_string();
                rest = &rest[close..];
            }
            out.push(El {
                tag: tag.to_string(),
                attrs,
                text,
            });
        }
        out
    }

    /// For each legend row labelled `label`, the marker drawn beside it: (kind and geometry,
    /// fill). Panics when a label or its marker is missing.
    fn legend_styles(els: &[El], labels: &[String]) -> Vec<(String, String)> {
        labels
            .iter()
            .map(|label| {
                let text = els
                    .iter()
                    .find(|e| {
                        e.tag == "text"
                            && &e.text == label
                            && e.attr("text-anchor") == Some("start")
                    })
                    .unwrap_or_else(|| panic!("no legend row {label:?}"));
                let (tx, ty) = (text.num("x"), text.num("y"));
                els.iter()
                    .filter_map(|e| {
                        let c = e.centre()?;
                        let beside = (c.1 - ty).abs() <= 2.0 && c.0 < tx - 10.0 && c.0 > tx - 30.0;
                        beside.then(|| e.marker_signature(c)).flatten()
                    })
                    .next()
                    .unwrap_or_else(|| panic!("no marker beside legend row {label:?}"))
            })
            .collect()
    }

    fn assert_distinct(styles: &[(String, String)], labels: &[String]) {
        for i in 0..styles.len() {
            for j in i + 1..styles.len() {
                assert_ne!(
                    styles[i], styles[j],
                    "{} and {} share colour and marker",
                    labels[i], labels[j]
                );
            }
        }
    }

    /// Numeric tick labels in rows (same y) of at least three distinct values: the x axes.
    fn x_tick_rows(els: &[El]) -> Vec<Vec<(f64, String)>> {
        let mut rows: std::collections::BTreeMap<i64, Vec<(f64, String)>> = Default::default();
        for e in els.iter().filter(|e| e.tag == "text") {
            if e.text.parse::<f64>().is_ok() {
                rows.entry(e.num("y").round() as i64)
                    .or_default()
                    .push((e.num("x"), e.text.clone()));
            }
        }
        rows.into_values()
            .filter(|r| {
                let mut v: Vec<&str> = r.iter().map(|t| t.1.as_str()).collect();
                v.sort_unstable();
                v.dedup();
                v.len() >= 3
            })
            .collect()
    }

    /// Whether pixel positions are an affine function of `f(value)` (within a pixel or two).
    fn affine_in(row: &[(f64, String)], f: fn(f64) -> f64) -> bool {
        let mut pts: Vec<(f64, f64)> = row
            .iter()
            .map(|(x, t)| (f(t.parse().unwrap()), *x))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (first, last) = (pts[0], pts[pts.len() - 1]);
        let slope = (last.1 - first.1) / (last.0 - first.0);
        pts.iter()
            .all(|p| (first.1 + slope * (p.0 - first.0) - p.1).abs() <= 2.0)
    }

    /// A report with `entrants` routers over six models whose costs run from `cheapest` to
    /// 40 × `cheapest` or, with `narrow`, to 2.5 × `cheapest`.
    fn report(entrants: usize, narrow: bool) -> Report {
        let m = 6;
        let pool = ModelPool::new(
            (0..m)
                .map(|i| ModelCard::new(format!("model-{i}-with-a-long-name"), 1.0, 1.0))
                .collect(),
        )
        .unwrap();
        let n = 24;
        let embeddings: Vec<f32> = (0..n).flat_map(|r| [1.0, r as f32 + 1.0]).collect();
        let scores: Vec<f64> = (0..n * m)
            .map(|i| ((i * 7 + i / m * 3) % 5) as f64 / 4.0)
            .collect();
        let growth: f64 = if narrow { 1.2 } else { 2.1 };
        let costs: Vec<f64> = (0..n * m)
            .map(|i| 1e-5 * growth.powi((i % m) as i32))
            .collect();
        let split = Split::from_arrays(pool, embeddings, 2, scores, costs).unwrap();
        let reference = Reference::new(&split, &split, None).unwrap();
        let entrants = (0..entrants)
            .map(|p| {
                let sweep: Vec<SweepPoint> = (0..4)
                    .map(|k| SweepPoint {
                        cost_weight: k as f64,
                        choices: (0..n).map(|r| ((r * (p + 1) + k * 5) % m) as u32).collect(),
                        invoked: None,
                        cost_basis: CostBasis::Query,
                    })
                    .collect();
                evaluate_sweep(&format!("router-{p}"), p == 3, &sweep, &split, &reference).unwrap()
            })
            .collect();
        Report {
            dataset: "synthetic".into(),
            n_test: n,
            reference,
            entrants,
        }
    }

    fn labels(report: &Report) -> Vec<String> {
        let mut l: Vec<String> = report.entrants.iter().map(crate::output::label).collect();
        l.push("single models".into());
        l
    }

    #[test]
    fn every_curve_has_its_own_colour_and_marker() {
        let report = report(23, false);
        let els = parse(&svg(&report).unwrap());
        let labels = labels(&report);
        let styles = legend_styles(&els, &labels);
        assert_distinct(&styles, &labels);
        // The plot draws the legend's markers: each style appears beyond its legend row.
        for (style, label) in styles.iter().zip(&labels) {
            let uses = els
                .iter()
                .filter(|e| e.centre().and_then(|c| e.marker_signature(c)).as_ref() == Some(style))
                .count();
            assert!(uses >= 2, "{label}: its marker is only in the legend");
        }
        assert!(series_style(9) != series_style(19) && series_style(0) != series_style(10));
    }

    #[test]
    fn costs_over_a_decade_get_a_log_axis_and_narrow_ones_a_linear_axis() {
        let els = parse(&svg(&report(3, false)).unwrap());
        let rows = x_tick_rows(&els);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(
            affine_in(&rows[0], f64::ln),
            "not a log axis: {:?}",
            rows[0]
        );
        assert!(!affine_in(&rows[0], |v| v), "{:?}", rows[0]);
        assert!(rows[0].iter().any(|t| t.1 == "1e-4"), "{:?}", rows[0]);
        assert!(els.iter().any(|e| e.text.contains("log scale")));

        let els = parse(&svg(&report(3, true)).unwrap());
        let rows = x_tick_rows(&els);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(affine_in(&rows[0], |v| v), "not linear: {:?}", rows[0]);
        assert!(!els.iter().any(|e| e.text.contains("log scale")));
    }

    #[test]
    fn model_labels_sit_beside_their_crosses_inside_the_picture() {
        let report = report(2, false);
        let svg = svg(&report).unwrap();
        let els = parse(&svg);
        let width = els[0].num("width");
        let crosses: Vec<(f64, f64)> = els
            .iter()
            .filter(|e| e.tag == "polygon" && e.points().len() == 12)
            .filter_map(El::centre)
            .collect();
        for m in &report.reference.models {
            let t = els
                .iter()
                .find(|e| e.tag == "text" && e.text == m.model)
                .unwrap();
            let (x, y) = (t.num("x"), t.num("y"));
            let cross = crosses
                .iter()
                .find(|c| (c.1 - y).abs() <= 2.0 && (c.0 - x).abs() < 20.0)
                .unwrap_or_else(|| panic!("no cross beside {}", m.model));
            let extent = 0.6 * t.num("font-size") * m.model.len() as f64;
            let (from, to) = match t.attr("text-anchor") {
                Some("start") => (x, x + extent),
                Some("end") => (x - extent, x),
                other => panic!("label anchored {other:?}"),
            };
            assert!(
                cross.0 < from - 5.0 || cross.0 > to + 5.0,
                "{} starts on its cross",
                m.model
            );
            assert!(from >= 0.0 && to <= width, "{} is clipped", m.model);
        }
    }

    #[test]
    fn replay_ticks_are_integers_and_the_legend_is_beside_the_lines() {
        let m = 5;
        let pool = ModelPool::new(
            (0..m)
                .map(|i| ModelCard::new(format!("m{i}"), 1.0 + i as f64, 1.0))
                .collect(),
        )
        .unwrap();
        let n = 2400;
        let embeddings: Vec<f32> = (0..n).flat_map(|r| [1.0, (r % 13) as f32]).collect();
        let scores: Vec<f64> = (0..n * m).map(|i| ((i * 11) % 3) as f64 / 2.0).collect();
        let costs: Vec<f64> = (0..n * m).map(|i| 1e-5 * (1 + i % m) as f64).collect();
        let split = Split::from_arrays(pool, embeddings, 2, scores, costs).unwrap();
        let stream = pointsman::replay::Stream::from_split(&split, 0).unwrap();
        let runs: Vec<(String, pointsman::replay::Run)> = (0..12)
            .map(|k| {
                let run = pointsman::replay::Run {
                    choices: (0..n).map(|t| ((t / (k + 1) + k) % m) as u32).collect(),
                    alarms: Vec::new(),
                    seconds: 0.0,
                };
                (format!("learner-{k}"), run)
            })
            .collect();
        let replay =
            pointsman::replay::ReplayReport::new("synthetic", &stream, 0.0, &runs, 200).unwrap();
        let els = parse(&replay_svg(&replay).unwrap());

        let rows = x_tick_rows(&els);
        assert!(!rows.is_empty());
        for row in &rows {
            for (_, t) in row {
                assert!(t.parse::<u64>().is_ok(), "tick {t:?} is not an integer");
            }
        }
        assert!(rows.iter().flatten().any(|t| t.1 == "1000"), "{rows:?}");

        let mut labels: Vec<String> = replay_series(&replay).into_iter().map(|s| s.0).collect();
        let styles = legend_styles(&els, &labels);
        assert_distinct(&styles, &labels);
        let models: Vec<String> = replay.model_ids.clone();
        assert_distinct(&legend_styles(&els, &models), &models);

        // The legends start right of every line's end.
        labels.extend(models);
        let legend_x = labels
            .iter()
            .filter_map(|l| els.iter().find(|e| e.tag == "text" && &e.text == l))
            .map(|e| e.num("x"))
            .fold(f64::INFINITY, f64::min);
        let line_end = els
            .iter()
            .filter(|e| e.tag == "polyline" && e.points().len() > 2)
            .flat_map(|e| e.points())
            .map(|p| p.0)
            .fold(0.0, f64::max);
        assert!(
            line_end + 30.0 < legend_x,
            "lines end at {line_end}, legend at {legend_x}"
        );
    }
}
