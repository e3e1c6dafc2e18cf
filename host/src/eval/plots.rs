//! The report's figures, drawn with plotters into PNG files. Each function takes plain data and
//! a path, so the report decides what to show and this module only how.

use anyhow::anyhow;
use dermo_calibration::{Interval, Reliability, RocCurve};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
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
    let (y0, y1) = (y0 - pad, y1 + pad);
    let mut traced = Vec::new();
    for s in series {
        trace_path(&mut traced, &s.points);
    }
    let (w, h) = area.dim_in_pixel();
    // The plot itself: the panel less its caption, label areas and margins.
    let plot = (w.saturating_sub(56 + 24), h.saturating_sub(30 + 40 + 24));
    let labels: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    let corner = quiet_corner(&traced, (x0, x1), (y0, y1), legend_share(&labels, plot));
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)
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
        .position(corner)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Points along a polyline, dense enough that a legend box over any stretch of it is noticed.
fn trace_path(out: &mut Vec<(f64, f64)>, points: &[(f64, f64)]) {
    const STEPS: usize = 24;
    out.extend(points.first().copied());
    for w in points.windows(2) {
        let ((xa, ya), (xb, yb)) = (w[0], w[1]);
        out.extend((1..=STEPS).map(|i| {
            let t = i as f64 / STEPS as f64;
            (xa + (xb - xa) * t, ya + (yb - ya) * t)
        }));
    }
}

/// The share of a plot's width and height that a legend of these labels covers (14 px font,
/// plotters' 10 px offset from the corner included), for a plot of `area` pixels.
fn legend_share(labels: &[&str], area: (u32, u32)) -> (f64, f64) {
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
    let width = 10.0 + 30.0 + 7.5 * longest + 12.0;
    let height = 10.0 + 19.0 * labels.len() as f64 + 10.0;
    let (w, h) = (area.0.max(1) as f64, area.1.max(1) as f64);
    ((width / w).min(1.0), (height / h).min(1.0))
}

/// The corner of the plot that the fewest traced points fall into: the legend box goes there, so
/// it hides as little data as possible (a fixed corner covered the first epochs' curve).
fn quiet_corner(
    points: &[(f64, f64)],
    x: (f64, f64),
    y: (f64, f64),
    (wide, tall): (f64, f64),
) -> SeriesLabelPosition {
    use SeriesLabelPosition as At;
    let share = |v: f64, (lo, hi): (f64, f64)| (v - lo) / (hi - lo).max(f64::MIN_POSITIVE);
    // A span of the unit interval at the start (-1), the middle (0) or the end (1).
    let within = |f: f64, side: i8, size: f64| match side {
        -1 => f <= size,
        0 => (f - 0.5).abs() <= size / 2.0,
        _ => f >= 1.0 - size,
    };
    let covered = |h: i8, v: i8| {
        points
            .iter()
            .filter(|&&(px, py)| within(share(px, x), h, wide) && within(share(py, y), v, tall))
            .count()
    };
    // In order of preference: the corners first, the middle of an edge only when they are taken.
    [
        (At::UpperRight, 1, 1),
        (At::UpperLeft, -1, 1),
        (At::LowerRight, 1, -1),
        (At::LowerLeft, -1, -1),
        (At::MiddleRight, 1, 0),
        (At::MiddleLeft, -1, 0),
        (At::UpperMiddle, 0, 1),
        (At::LowerMiddle, 0, -1),
    ]
    .into_iter()
    .min_by_key(|&(_, h, v)| covered(h, v))
    .map(|(at, _, _)| at)
    .unwrap_or(SeriesLabelPosition::UpperRight)
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
            .x_desc("confidence (top-1 probability); numbers: images per bin")
            .y_desc("accuracy")
            .label_style((FONT, 14))
            .draw()
            .drawn(path)?;
        let bins = r.bins.iter().filter(|b| b.count > 0);
        // A bin of one or two images reads like a full bar otherwise: shade by how many images
        // it holds and print the count at its foot.
        let most = r.bins.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
        chart
            .draw_series(bins.clone().map(|b| {
                let weight = (b.count as f64 / most).sqrt();
                Rectangle::new(
                    [(b.lower, 0.0), (b.upper, b.accuracy)],
                    BLUE.mix(0.12 + 0.5 * weight).filled(),
                )
            }))
            .drawn(path)?;
        let count_style = TextStyle::from((FONT, 11).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom))
            .color(&BLACK);
        chart
            .draw_series(bins.clone().map(|b| {
                Text::new(
                    b.count.to_string(),
                    ((b.lower + b.upper) / 2.0, 0.01),
                    count_style.clone(),
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
/// recall; balanced accuracy per value of a sweep axis, one mark per seed). `marks` names the
/// k-th estimate of every category for the legend (e.g. "seed 0"); empty when they need no name.
/// `reference` draws a dashed horizontal line (e.g. chance, or the baseline).
pub fn intervals_by_category(
    path: &Path,
    title: &str,
    y_desc: &str,
    categories: &[(String, Vec<Interval>)],
    marks: &[String],
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
    // The axis starts at zero (a share is read against zero) but stops a step above the highest
    // interval or reference: on a fixed 0..1 axis, estimates around 0.2 were squashed together.
    let highest = categories
        .iter()
        .flat_map(|(_, v)| v.iter().map(|i| i.high.max(i.estimate)))
        .chain(reference.as_ref().map(|(_, y)| *y))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let top = (((highest + 0.05) * 10.0).ceil() / 10.0).clamp(0.1, 1.0);
    let x_range = (-0.5f64, n as f64 - 0.5);
    let spread = |i: usize, k: usize, m: usize| -> f64 {
        let width = 0.5;
        i as f64
            + if m > 1 {
                -width / 2.0 + width * k as f64 / (m - 1) as f64
            } else {
                0.0
            }
    };
    let mut traced = Vec::new();
    for (i, (_, intervals)) in categories.iter().enumerate() {
        for (k, v) in intervals.iter().enumerate() {
            let x = spread(i, k, intervals.len());
            trace_path(&mut traced, &[(x, v.low), (x, v.high)]);
        }
    }
    if let Some((_, y)) = &reference {
        trace_path(&mut traced, &[(x_range.0, *y), (x_range.1, *y)]);
    }
    let mut labels: Vec<&str> = reference.iter().map(|(l, _)| l.as_str()).collect();
    labels.extend(marks.iter().map(String::as_str));
    if categories.iter().any(|(_, v)| v.len() > 1) {
        labels.push("mean");
    }
    let plot = (WIDTH - 56 - 24, HEIGHT - 30 - 50 - 24);
    let corner = quiet_corner(&traced, x_range, (0.0, top), legend_share(&labels, plot));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(56)
        .build_cartesian_2d(x_range.0..x_range.1, 0f64..top)
        .drawn(path)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&formatter)
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .light_line_style(BLACK.mix(0.04))
        .draw()
        .drawn(path)?;
    let mut legend = false;
    if let Some((name, y)) = reference {
        chart
            .draw_series(DashedLineSeries::new(
                [(x_range.0, y), (x_range.1, y)],
                6,
                4,
                BLACK.mix(0.5).into(),
            ))
            .drawn(path)?
            .label(name)
            .legend(|(x, y)| {
                DashedPathElement::new(vec![(x, y), (x + 20, y)], 5, 3, BLACK.mix(0.5))
            });
        legend = true;
    }
    for (k, name) in marks.iter().enumerate() {
        let colour = Palette99::pick(k).to_rgba();
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .drawn(path)?
            .label(name.clone())
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
        legend = true;
    }
    let mut mean_labelled = false;
    for (i, (_, intervals)) in categories.iter().enumerate() {
        // The mean goes under the marks, so that a seed close to it stays visible.
        if intervals.len() > 1 {
            let mean = intervals.iter().map(|v| v.estimate).sum::<f64>() / intervals.len() as f64;
            let drawn = chart
                .draw_series(LineSeries::new(
                    [(i as f64 - 0.35, mean), (i as f64 + 0.35, mean)],
                    BLACK.mix(0.7).stroke_width(2),
                ))
                .drawn(path)?;
            if !mean_labelled {
                drawn.label("mean").legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.7).stroke_width(2))
                });
                mean_labelled = true;
                legend = true;
            }
        }
        for (k, interval) in intervals.iter().enumerate() {
            let x = spread(i, k, intervals.len());
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
    }
    if legend {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .position(corner)
            .draw()
            .drawn(path)?;
    }
    root.present().drawn(path)?;
    Ok(())
}
