//! The report's figures, drawn with plotters into PNG files. Each function takes plain data and
//! a path, so the report decides what to show and this module only how.

use anyhow::anyhow;
use dermo_calibration::{Interval, Reliability, RocCurve};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 560;
const FONT: &str = "sans-serif";

/// plotters' errors borrow the backend; keep only their message and the file.
trait Drawn<T> {
    fn drawn(self, path: &Path) -> anyhow::Result<T>;
}

impl<T, E: std::fmt::Display> Drawn<T> for Result<T, E> {
    fn drawn(self, path: &Path) -> anyhow::Result<T> {
        self.map_err(|e| anyhow!("cannot draw {}: {e}", path.display()))
    }
}

/// One line of a line chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Line charts side by side (e.g. loss and accuracy against epochs), one panel per entry.
pub fn line_panels(path: &Path, panels: &[(&str, &str, &str, Vec<Series>)]) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT / 10 * 8)).into_drawing_area();
    root.fill(&WHITE).drawn(path)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, (title, x_desc, y_desc, series)) in areas.iter().zip(panels) {
        line_chart(area, title, x_desc, y_desc, series).drawn(path)?;
    }
    root.present().drawn(path)?;
    Ok(())
}

fn line_chart(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> anyhow::Result<()> {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in all.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.08).max(1e-3);
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (k, s) in series.iter().enumerate() {
        let colour = Palette99::pick(k).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|e| anyhow!("{e}"))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(|e| anyhow!("{e}"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .position(SeriesLabelPosition::LowerLeft)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// The confusion matrix as a heat map (colour = share of the true class, text = count).
pub fn confusion_matrix(
    path: &Path,
    classes: &[String],
    counts: &[Vec<u64>],
) -> anyhow::Result<()> {
    let side = 620u32;
    let root = BitMapBackend::new(path, (side + 40, side + 40)).into_drawing_area();
    root.fill(&WHITE).drawn(path)?;
    let k = classes.len().max(1) as i32;
    let (left, top) = (110i32, 90i32);
    let cell = ((side as i32 - left).min(side as i32 - top)) / k;
    let title = TextStyle::from((FONT, 20).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    root.draw(&Text::new(
        "Confusion matrix (rows: truth, columns: prediction)",
        ((side as i32 + 40) / 2, 8),
        title,
    ))
    .drawn(path)?;
    let label = TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
    for (i, row) in counts.iter().enumerate() {
        let support: u64 = row.iter().sum();
        for (j, &n) in row.iter().enumerate() {
            let share = if support > 0 {
                n as f64 / support as f64
            } else {
                0.0
            };
            let (x, y) = (left + j as i32 * cell, top + i as i32 * cell);
            let shade = (255.0 * (1.0 - 0.85 * share)) as u8;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                RGBColor(shade, shade, 255).filled(),
            ))
            .drawn(path)?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                BLACK.mix(0.3),
            ))
            .drawn(path)?;
            let colour = if share > 0.55 { WHITE } else { BLACK };
            root.draw(&Text::new(
                n.to_string(),
                (x + cell / 2, y + cell / 2),
                label.color(&colour),
            ))
            .drawn(path)?;
        }
        let name = classes.get(i).cloned().unwrap_or_default();
        let right =
            TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(
            name.clone(),
            (left - 8, top + i as i32 * cell + cell / 2),
            right,
        ))
        .drawn(path)?;
        root.draw(&Text::new(
            name,
            (left + i as i32 * cell + cell / 2, top - 16),
            label.clone(),
        ))
        .drawn(path)?;
    }
    root.present().drawn(path)?;
    Ok(())
}

/// One-vs-rest ROC curves with their AUC in the legend.
pub fn roc_curves(path: &Path, curves: &[(String, &RocCurve, Option<f64>)]) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (700, 640)).into_drawing_area();
    root.fill(&WHITE).drawn(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("ROC curves (one class against the rest)", (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .drawn(path)?;
    chart
        .configure_mesh()
        .x_desc("false positive rate")
        .y_desc("true positive rate")
        .label_style((FONT, 14))
        .draw()
        .drawn(path)?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
        .drawn(path)?;
    for (k, (name, curve, auc)) in curves.iter().enumerate() {
        let colour = Palette99::pick(k).to_rgba();
        let points: Vec<(f64, f64)> = curve
            .false_positive_rate
            .iter()
            .copied()
            .zip(curve.true_positive_rate.iter().copied())
            .collect();
        let label = match auc {
            Some(a) => format!("{name} (AUC {a:.3})"),
            None => name.clone(),
        };
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .drawn(path)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .drawn(path)?;
    root.present().drawn(path)?;
    Ok(())
}

/// Reliability diagrams side by side: accuracy per confidence bin against the diagonal.
pub fn reliability_panels(path: &Path, panels: &[(String, &Reliability)]) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT / 10 * 8)).into_drawing_area();
    root.fill(&WHITE).drawn(path)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, (title, r)) in areas.iter().zip(panels) {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{title}: ECE {:.3}", r.ece), (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .drawn(path)?;
        chart
            .configure_mesh()
            .x_desc("confidence (top-1 probability)")
            .y_desc("accuracy")
            .label_style((FONT, 14))
            .draw()
            .drawn(path)?;
        let bins = r.bins.iter().filter(|b| b.count > 0);
        chart
            .draw_series(bins.clone().map(|b| {
                Rectangle::new(
                    [(b.lower, 0.0), (b.upper, b.accuracy)],
                    BLUE.mix(0.45).filled(),
                )
            }))
            .drawn(path)?;
        chart
            .draw_series(
                bins.clone()
                    .map(|b| Rectangle::new([(b.lower, 0.0), (b.upper, b.accuracy)], BLUE)),
            )
            .drawn(path)?;
        chart
            .draw_series(
                bins.map(|b| Circle::new((b.mean_confidence, b.accuracy), 4, RED.filled())),
            )
            .drawn(path)?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                BLACK.mix(0.5).stroke_width(2),
            ))
            .drawn(path)?;
    }
    root.present().drawn(path)?;
    Ok(())
}

/// Categories on the x axis, each with one or more estimates and their intervals (per-class
/// recall; balanced accuracy per value of a sweep axis, one mark per seed). `reference` draws a
/// dashed horizontal line (e.g. chance).
pub fn intervals_by_category(
    path: &Path,
    title: &str,
    y_desc: &str,
    categories: &[(String, Vec<Interval>)],
    reference: Option<(String, f64)>,
) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).drawn(path)?;
    let n = categories.len().max(1);
    let names: Vec<String> = categories.iter().map(|(c, _)| c.clone()).collect();
    let formatter = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            names.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..1f64)
        .drawn(path)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&formatter)
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .draw()
        .drawn(path)?;
    let has_reference = reference.is_some();
    if let Some((name, y)) = reference {
        chart
            .draw_series(DashedLineSeries::new(
                [(-0.5, y), (n as f64 - 0.5, y)],
                6,
                4,
                BLACK.mix(0.5).into(),
            ))
            .drawn(path)?
            .label(name)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    }
    for (i, (_, intervals)) in categories.iter().enumerate() {
        let m = intervals.len().max(1) as f64;
        let width = 0.5;
        for (k, interval) in intervals.iter().enumerate() {
            let x = i as f64
                + if m > 1.0 {
                    -width / 2.0 + width * k as f64 / (m - 1.0)
                } else {
                    0.0
                };
            let colour = Palette99::pick(k).to_rgba();
            chart
                .draw_series([ErrorBar::new_vertical(
                    x,
                    interval.low,
                    interval.estimate,
                    interval.high,
                    colour.stroke_width(2),
                    10,
                )])
                .drawn(path)?;
            chart
                .draw_series([Circle::new((x, interval.estimate), 5, colour.filled())])
                .drawn(path)?;
        }
        if intervals.len() > 1 {
            let mean = intervals.iter().map(|v| v.estimate).sum::<f64>() / m;
            chart
                .draw_series(LineSeries::new(
                    [(i as f64 - 0.35, mean), (i as f64 + 0.35, mean)],
                    BLACK.stroke_width(2),
                ))
                .drawn(path)?;
        }
    }
    if has_reference {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .drawn(path)?;
    }
    root.present().drawn(path)?;
    Ok(())
}
