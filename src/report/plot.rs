//! Figures of `qtrain report --out DIR` (plotters): the curves these papers show —
//! f − f* (or ‖∇f‖² when f* is unknown) against rounds, bits sent and wall time, one
//! curve per run on a log scale — and, when the runs cover several rank counts, the
//! scaling figures: time per round split (compute, compress, communicate, decode) and
//! bytes received per rank per round against the rank count.
//!
//! Every figure is written twice: PNG (bitmap, with the DejaVu Sans font compiled in,
//! so no system font is needed) and SVG (text stays text, so tests and scripts can
//! check labels and series names).

use super::RunSummary;
use crate::error::{Error, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const SIZE: (u32, u32) = (960, 640);
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One curve: a label and its points.
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart with named axes; the axis kinds are chosen by the caller's ranges.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub curves: &'a [Curve],
}

/// The per-round series of one result file.
pub struct RunCurves {
    pub label: String,
    pub iter: Vec<f64>,
    pub gap: Vec<f64>,
    pub grad_norm_sq: Vec<f64>,
    pub bits: Vec<f64>,
    pub bits_down: Vec<f64>,
    pub time: Vec<f64>,
}

pub fn read_curves(path: &Path, label: String) -> Result<RunCurves> {
    let h5 = |e: hdf5::Error| Error::hdf5(path, e);
    let file = hdf5::File::open(path).map_err(h5)?;
    let f64s = |name: &str| -> Result<Vec<f64>> {
        file.dataset(&format!("metrics/{name}")).and_then(|d| d.read_raw()).map_err(h5)
    };
    let as_f64 = |name: &str| -> Result<Vec<f64>> {
        let v: Vec<u64> = file.dataset(&format!("metrics/{name}")).and_then(|d| d.read_raw()).map_err(h5)?;
        Ok(v.into_iter().map(|x| x as f64).collect())
    };
    Ok(RunCurves {
        label,
        iter: as_f64("iter")?,
        gap: f64s("f_gap")?,
        grad_norm_sq: f64s("grad_norm_sq")?,
        bits: as_f64("bits_up")?,
        bits_down: as_f64("bits_down")?,
        time: f64s("time")?,
    })
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and valid; a failure here is a build problem.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// An axis: linear or logarithmic over [lo, hi].
#[derive(Clone, Copy, Debug)]
pub enum Axis {
    Linear(f64, f64),
    Log(f64, f64),
}

/// A figure: one chart, a grid of charts (rows × columns), or a heatmap.
pub enum Figure<'a> {
    Line { chart: Chart<'a>, x: Axis, y: Axis },
    Grid { rows: usize, cols: usize, cells: Vec<Figure<'a>> },
    Heatmap(Heatmap<'a>),
}

/// Cells coloured by a value on a log scale, the smallest brightest (`qtrain sweep`:
/// bits to a target), cells without a value grey; each cell's text written in it (lines
/// split at '\n'), and a colour bar on the right. Row 0 is drawn at the bottom.
pub struct Heatmap<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// What the colour bar measures, e.g. "bits up".
    pub scale_label: &'a str,
    /// The grey cells' meaning in the colour bar, e.g. "not reached".
    pub missing_label: &'a str,
    pub columns: &'a [String],
    pub rows: &'a [String],
    /// `values[row][col]`.
    pub values: &'a [Vec<Option<f64>>],
    pub text: &'a [Vec<String>],
}

impl Figure<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        match self {
            Figure::Line { chart, x, y } => match (*x, *y) {
                (Axis::Linear(a, b), Axis::Linear(c, d)) => line_chart(area, chart, a..b, c..d),
                (Axis::Linear(a, b), Axis::Log(c, d)) => line_chart(area, chart, a..b, (c..d).log_scale()),
                (Axis::Log(a, b), Axis::Linear(c, d)) => line_chart(area, chart, (a..b).log_scale(), c..d),
                (Axis::Log(a, b), Axis::Log(c, d)) => line_chart(area, chart, (a..b).log_scale(), (c..d).log_scale()),
            },
            Figure::Heatmap(h) => heatmap(area, h),
            Figure::Grid { rows, cols, cells } => {
                area.fill(&WHITE).map_err(|e| plot_error(Path::new("grid"), e))?;
                for (cell, figure) in area.split_evenly((*rows, *cols)).iter().zip(cells) {
                    figure.draw(cell)?;
                }
                Ok(())
            }
        }
    }
}

/// Writes `DIR/NAME.png` and `DIR/NAME.svg`; returns both paths.
pub fn save(dir: &Path, name: &str, figure: &Figure) -> Result<Vec<PathBuf>> {
    register_font();
    let (png, svg) = (dir.join(format!("{name}.png")), dir.join(format!("{name}.svg")));
    {
        let area = BitMapBackend::new(&png, SIZE).into_drawing_area();
        figure.draw(&area)?;
        area.present().map_err(|e| plot_error(&png, e))?;
    }
    {
        let area = SVGBackend::new(&svg, SIZE).into_drawing_area();
        figure.draw(&area)?;
        area.present().map_err(|e| plot_error(&svg, e))?;
    }
    Ok(vec![png, svg])
}

pub fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(path, format!("cannot draw the figure: {e}"))
}

/// Draws a line chart into `area` over the given axis ranges (linear `a..b` or
/// `(a..b).log_scale()`).
pub fn line_chart<DB, X, Y>(area: &DrawingArea<DB, Shift>, chart: &Chart, x: X, y: Y) -> Result<()>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let fail = |e: &dyn std::fmt::Display| Error::io(Path::new(chart.title), format!("cannot draw the figure: {e}"));
    area.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut ctx = ChartBuilder::on(area)
        .caption(chart.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(84)
        .build_cartesian_2d(x, y)
        .map_err(|e| fail(&e))?;
    ctx.configure_mesh()
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(|e| fail(&e))?;
    for (i, curve) in chart.curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        ctx.draw_series(LineSeries::new(curve.points.iter().copied(), color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(curve.label.as_str())
            .legend(move |(px, py)| PathElement::new(vec![(px, py), (px + 24, py)], color.stroke_width(2)));
        if curve.points.len() <= 16 {
            ctx.draw_series(curve.points.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(|e| fail(&e))?;
        }
    }
    ctx.configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| fail(&e))?;
    Ok(())
}

/// The heatmap's colour map (viridis at five stops): dark violet at 0, yellow at 1.
const VIRIDIS: [RGBColor; 5] =
    [RGBColor(68, 1, 84), RGBColor(59, 82, 139), RGBColor(33, 145, 140), RGBColor(94, 201, 98), RGBColor(253, 231, 37)];
const NO_VALUE: RGBColor = RGBColor(205, 205, 205);

/// The colour of t ∈ [0, 1], linear between the stops.
fn colour_at(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f64;
    let i = (t.floor() as usize).min(VIRIDIS.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + f * (f64::from(b) - f64::from(a))).round() as u8;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Where a value sits on the log colour scale of [lo, hi]: 1 for lo (brightest), 0 for hi.
fn log_position(v: f64, (lo, hi): (f64, f64)) -> f64 {
    if hi > lo {
        (hi.ln() - v.max(lo).ln()) / (hi.ln() - lo.ln())
    } else {
        1.0
    }
}

fn heatmap<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, h: &Heatmap) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| Error::io(Path::new(h.title), format!("cannot draw the figure: {e}"));
    area.fill(&WHITE).map_err(|e| fail(&e))?;
    let (width, height) = area.dim_in_pixel();
    let (cells, bar) = area.split_horizontally(width.saturating_sub(150));
    let (nx, ny) = (h.columns.len().max(1) as i32, h.rows.len().max(1) as i32);
    let mut ctx = ChartBuilder::on(&cells)
        .caption(h.title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(110)
        .build_cartesian_2d((0..nx - 1).into_segmented(), (0..ny - 1).into_segmented())
        .map_err(|e| fail(&e))?;
    let name = |labels: &[String], v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
        SegmentValue::Last => String::new(),
    };
    ctx.configure_mesh()
        .disable_mesh()
        .x_labels(nx as usize + 1)
        .y_labels(ny as usize + 1)
        .x_label_formatter(&|v| name(h.columns, v))
        .y_label_formatter(&|v| name(h.rows, v))
        .x_desc(h.x_label)
        .y_desc(h.y_label)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(|e| fail(&e))?;
    let present = h.values.iter().flatten().flatten().copied().filter(|v| *v > 0.0 && v.is_finite());
    let bounds = present.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let edge = |i: i32, n: i32| if i + 1 < n { SegmentValue::Exact(i + 1) } else { SegmentValue::Last };
    for (r, row) in h.values.iter().enumerate() {
        for (c, value) in row.iter().enumerate() {
            let t = value.map(|v| log_position(v, bounds));
            let (x, y) = (c as i32, r as i32);
            let corners = [(SegmentValue::Exact(x), SegmentValue::Exact(y)), (edge(x, nx), edge(y, ny))];
            let fill = t.map_or(NO_VALUE, colour_at);
            ctx.draw_series(std::iter::once(Rectangle::new(corners.clone(), fill.filled()))).map_err(|e| fail(&e))?;
            ctx.draw_series(std::iter::once(Rectangle::new(corners, WHITE.stroke_width(2)))).map_err(|e| fail(&e))?;
            let ink = if t.is_some_and(|t| t < 0.6) { WHITE } else { BLACK };
            let style = ("sans-serif", 13).into_font().color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
            let lines: Vec<&str> = h.text.get(r).and_then(|t| t.get(c)).map_or("", String::as_str).lines().collect();
            let centre = (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y));
            for (k, line) in lines.iter().enumerate() {
                let dy = 16 * k as i32 - 8 * (lines.len() as i32 - 1);
                let text = EmptyElement::at(centre.clone()) + Text::new(line.to_string(), (0, dy), style.clone());
                ctx.draw_series(std::iter::once(text)).map_err(|e| fail(&e))?;
            }
        }
    }
    colour_bar(&bar, h, bounds, height).map_err(|e| fail(&e))
}

/// The colour bar beside a heatmap: the scale from its smallest value (top) to its largest,
/// and the grey of the cells without one.
fn colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    h: &Heatmap,
    (lo, hi): (f64, f64),
    height: u32,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = ("sans-serif", 14).into_font().color(&BLACK);
    let (top, bottom) = (70, height as i32 - 140);
    area.draw(&Text::new(h.scale_label.to_string(), (10, top - 30), style.clone()))?;
    if lo <= hi {
        let steps = 64;
        for s in 0..steps {
            let y0 = top + (bottom - top) * s / steps;
            let y1 = top + (bottom - top) * (s + 1) / steps;
            let colour = colour_at(1.0 - f64::from(s) / f64::from(steps - 1));
            area.draw(&Rectangle::new([(10, y0), (40, y1)], colour.filled()))?;
        }
        area.draw(&Text::new(tick(&lo), (46, top - 6), style.clone()))?;
        area.draw(&Text::new(tick(&hi), (46, bottom - 10), style.clone()))?;
    }
    area.draw(&Rectangle::new([(10, bottom + 30), (40, bottom + 50)], NO_VALUE.filled()))?;
    area.draw(&Text::new(h.missing_label.to_string(), (46, bottom + 33), style))?;
    Ok(())
}

/// Compact tick labels: 0.001, 12, 3e+06.
fn tick(v: &f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.0e}");
        s.replace("e", "e+").replace("e+-", "e-")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// (min, max) of the positive values, widened to a usable log range.
pub fn log_bounds<'a>(values: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| **v > 0.0 && v.is_finite())
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (1e-16, 1.0)
    } else if lo == hi {
        (lo / 10.0, hi * 10.0)
    } else {
        (lo / 1.5, hi * 1.5)
    }
}

/// (min, max) for a linear axis.
pub fn linear_bounds<'a>(values: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (0.0, 1.0)
    } else if lo == hi {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi + 0.02 * (hi - lo))
    }
}

/// The convergence figures of a set of runs: against rounds, bits and time.
pub fn convergence_figures(dir: &Path, runs: &[RunCurves]) -> Result<Vec<PathBuf>> {
    let use_gap = runs.iter().all(|r| r.gap.iter().any(|g| g.is_finite()));
    let (name, y_label) = if use_gap { ("f − f*", "f(x) − f*") } else { ("‖∇f‖²", "‖∇f(x)‖²") };
    let value = |r: &RunCurves| if use_gap { r.gap.clone() } else { r.grad_norm_sq.clone() };
    let curves_over = |x: &dyn Fn(&RunCurves) -> Vec<f64>, positive_x: bool| -> Vec<Curve> {
        runs.iter()
            .map(|r| Curve {
                label: r.label.clone(),
                points: x(r)
                    .iter()
                    .zip(value(r))
                    .filter(|(xv, yv)| *yv > 0.0 && yv.is_finite() && (!positive_x || **xv > 0.0))
                    .map(|(xv, yv)| (*xv, yv))
                    .collect(),
            })
            .collect()
    };
    let mut written = Vec::new();
    let by_iter = curves_over(&|r| r.iter.clone(), false);
    let by_bits = curves_over(&|r| r.bits.clone(), true);
    let by_time = curves_over(&|r| r.time.clone(), true);
    let ys = |c: &[Curve]| log_bounds(c.iter().flat_map(|c| c.points.iter().map(|p| &p.1)));
    let xs_lin = |c: &[Curve]| linear_bounds(c.iter().flat_map(|c| c.points.iter().map(|p| &p.0)));
    let xs_log = |c: &[Curve]| log_bounds(c.iter().flat_map(|c| c.points.iter().map(|p| &p.0)));

    let lin = |(lo, hi): (f64, f64)| Axis::Linear(lo, hi);
    let log = |(lo, hi): (f64, f64)| Axis::Log(lo, hi);
    let titles =
        [format!("{name} against rounds"), format!("{name} against bits sent up"), format!("{name} against wall time")];
    let figures = [
        ("convergence_rounds", &titles[0], "round t", &by_iter, lin(xs_lin(&by_iter))),
        (
            "convergence_bits",
            &titles[1],
            "bits sent by all workers (paper convention, cumulative)",
            &by_bits,
            log(xs_log(&by_bits)),
        ),
        ("convergence_time", &titles[2], "training time (s)", &by_time, lin(xs_lin(&by_time))),
    ];
    for (file, title, x_label, curves, x) in figures {
        let chart = Chart { title, x_label, y_label, curves };
        written.extend(save(dir, file, &Figure::Line { chart, x, y: log(ys(curves)) })?);
    }
    // Methods whose papers count the downlink (double quantization, bidirectional
    // compression, Sketched-SGD): against the bits of both directions too.
    if runs.iter().any(|r| r.bits_down.iter().any(|&b| b > 0.0)) {
        let by_total = curves_over(&|r| r.bits.iter().zip(&r.bits_down).map(|(u, d)| u + d).collect(), true);
        let title = format!("{name} against bits sent up and down");
        let chart = Chart {
            title: &title,
            x_label: "bits up + down (paper convention, cumulative)",
            y_label,
            curves: &by_total,
        };
        let figure = Figure::Line { chart, x: log(xs_log(&by_total)), y: log(ys(&by_total)) };
        written.extend(save(dir, "convergence_bits_total", &figure)?);
    }
    Ok(written)
}

/// The scaling figures: per (method, compressor), time per round split and received
/// bytes per rank against the rank count. Needs runs at two or more rank counts.
pub fn scaling_figures(dir: &Path, runs: &[RunSummary]) -> Result<Vec<PathBuf>> {
    let mut groups: Vec<(String, Vec<&RunSummary>)> = Vec::new();
    for r in runs {
        let key = format!("{} {}", r.method, r.compressor);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    for (_, members) in groups.iter_mut() {
        members.sort_by_key(|r| r.ranks);
    }
    let curves = |value: &dyn Fn(&RunSummary) -> f64| -> Vec<Curve> {
        groups
            .iter()
            .map(|(key, members)| Curve {
                label: key.clone(),
                points: members.iter().map(|r| (r.ranks as f64, value(r))).collect(),
            })
            .collect()
    };
    type Part = (&'static str, fn(&RunSummary) -> f64);
    let parts: [Part; 4] = [
        ("compute", |r| 1e6 * r.t_compute),
        ("compress", |r| 1e6 * r.t_compress),
        ("communicate", |r| 1e6 * r.t_comm),
        ("decode", |r| 1e6 * r.t_decode),
    ];
    let panels: Vec<(String, Vec<Curve>)> = parts.iter().map(|(name, f)| (name.to_string(), curves(f))).collect();
    let all_ranks: Vec<f64> = runs.iter().map(|r| r.ranks as f64).collect();
    let x = Axis::Log(log_bounds(all_ranks.iter()).0, log_bounds(all_ranks.iter()).1);
    let titles: Vec<String> = panels.iter().map(|(name, _)| format!("{name}: µs per round (median)")).collect();
    let cells = panels
        .iter()
        .zip(&titles)
        .map(|((_, c), title)| {
            let (_, y1) = linear_bounds(c.iter().flat_map(|c| c.points.iter().map(|p| &p.1)));
            let chart = Chart { title, x_label: "MPI ranks", y_label: "µs per round", curves: c };
            Figure::Line { chart, x, y: Axis::Linear(0.0, y1.max(1.0)) }
        })
        .collect();
    let mut written = save(dir, "scaling_time", &Figure::Grid { rows: 2, cols: 2, cells })?;
    let bytes = curves(&|r| r.recv_bytes_round.max(1.0));
    let chart = Chart {
        title: "bytes received per rank per round (median)",
        x_label: "MPI ranks",
        y_label: "bytes per rank per round",
        curves: &bytes,
    };
    let (y0, y1) = log_bounds(bytes.iter().flat_map(|c| c.points.iter().map(|p| &p.1)));
    written.extend(save(dir, "scaling_bytes", &Figure::Line { chart, x, y: Axis::Log(y0, y1) })?);
    Ok(written)
}

/// `qtrain project --out`: the modelled components of a round against the rank count.
pub fn projection_figure(
    dir: &Path,
    measured: &crate::cost_model::Measured,
    rows: &[crate::cost_model::Projection],
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, format!("cannot create the folder: {e}")))?;
    let mut sorted = rows.to_vec();
    sorted.sort_by_key(|r| r.ranks);
    let line = |label: &str, f: &dyn Fn(&crate::cost_model::Projection) -> f64| Curve {
        label: label.to_string(),
        points: sorted.iter().map(|r| (r.ranks as f64, 1e6 * f(r))).filter(|p| p.1 > 0.0).collect(),
    };
    let mut curves = vec![
        line("total (model)", &|r| r.total()),
        line("compute", &|r| r.compute),
        line("communication (model)", &|r| r.comm()),
        line("compress + decode", &|r| r.compress + r.decode),
    ];
    curves.push(Curve {
        label: format!("measured comm ({} ranks)", measured.ranks),
        points: vec![(measured.ranks as f64, 1e6 * measured.t_comm.max(1e-9))],
    });
    let xs: Vec<f64> = sorted.iter().map(|r| r.ranks as f64).collect();
    let (x0, x1) = log_bounds(xs.iter());
    let (y0, y1) = log_bounds(curves.iter().flat_map(|c| c.points.iter().map(|p| &p.1)));
    let chart = Chart {
        title: "projected time per round (α–β model)",
        x_label: "MPI ranks",
        y_label: "µs per round",
        curves: &curves,
    };
    save(dir, "projection", &Figure::Line { chart, x: Axis::Log(x0, x1), y: Axis::Log(y0, y1) })
}
