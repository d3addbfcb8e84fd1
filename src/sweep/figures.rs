//! The figures of `qtrain sweep` (through `report::plot`, PNG and SVG):
//!
//! * `heatmap`: bits (or time) to the target over the first two grid axes, each cell
//!   the best point with those two values (over the step factors and any further axes),
//!   its best step factor written under the value; with one grid axis, that axis × the
//!   step factors; with none, one row over the step factors. Grey cells never reached
//!   the target ("not reached", or "diverged" when every point of the cell diverged).
//! * `best`: ‖∇f‖² against bits up (or training time) of the best point for each value
//!   of the first grid axis (with no grid axis, of each step factor), and the target.

use super::grid::{Axis, Point};
use super::ranking::{measure, Outcome};
use crate::cli::RankBy;
use crate::error::Result;
use crate::report::plot::{self, Chart, Curve, Figure, Heatmap};
use std::path::{Path, PathBuf};

/// The sweep: its axes, points and their outcomes, best first (`order`).
pub struct Sweep<'a> {
    pub axes: &'a [Axis],
    pub points: &'a [Point],
    pub outcomes: &'a [Outcome],
    pub order: &'a [usize],
    pub target: f64,
    pub by: RankBy,
    /// The method SPEC as given (the heatmap's row without a grid axis).
    pub method: &'a str,
}

impl Sweep<'_> {
    /// The best point (first in rank order) among those `keep` accepts.
    fn best(&self, keep: impl Fn(&Point) -> bool) -> Option<usize> {
        self.order.iter().copied().find(|&i| keep(&self.points[i]))
    }

    /// The value and text of a heatmap cell for its best point.
    fn cell(&self, best: Option<usize>, with_factor: bool) -> (Option<f64>, String) {
        let Some(i) = best else { return (None, String::new()) };
        let o = &self.outcomes[i];
        match (o.cost(self.by), o.diverged_at) {
            (Some(v), _) if with_factor => {
                (Some(v), format!("{}\n×{}", compact(v, self.by), self.points[i].step_factor))
            }
            (Some(v), _) => (Some(v), compact(v, self.by)),
            (None, Some(_)) => (None, "diverged".into()),
            (None, None) => (None, "not\nreached".into()),
        }
    }
}

fn compact(v: f64, by: RankBy) -> String {
    match by {
        RankBy::Bits => format!("{v:.2e}"),
        RankBy::Time => format!("{v:.2e} s"),
    }
}

/// Writes `heatmap` and `best` (PNG and SVG) into `dir`; returns the files.
pub fn write(dir: &Path, s: &Sweep) -> Result<Vec<PathBuf>> {
    let mut files = heatmap(dir, s)?;
    files.extend(best(dir, s)?);
    Ok(files)
}

fn factor_labels(points: &[Point]) -> Vec<String> {
    let mut factors: Vec<f64> = Vec::new();
    for p in points {
        if !factors.contains(&p.step_factor) {
            factors.push(p.step_factor);
        }
    }
    factors.iter().map(|f| format!("×{f}")).collect()
}

fn heatmap(dir: &Path, s: &Sweep) -> Result<Vec<PathBuf>> {
    let factors = factor_labels(s.points);
    let factor_of = |label: &str, p: &Point| format!("×{}", p.step_factor) == label;
    let (columns, rows, x_label, y_label, cells): (Vec<String>, Vec<String>, String, String, Vec<Vec<_>>) = match s.axes
    {
        [first, second, ..] => {
            let cells = second
                .values
                .iter()
                .map(|r| {
                    first
                        .values
                        .iter()
                        .map(|c| s.cell(s.best(|p| p.values[0] == *c && p.values[1] == *r), true))
                        .collect()
                })
                .collect();
            (first.values.clone(), second.values.clone(), first.key.clone(), second.key.clone(), cells)
        }
        [only] => {
            let cells = only
                .values
                .iter()
                .map(|r| {
                    factors.iter().map(|c| s.cell(s.best(|p| p.values[0] == *r && factor_of(c, p)), false)).collect()
                })
                .collect();
            (factors.clone(), only.values.clone(), "step factor".into(), only.key.clone(), cells)
        }
        [] => {
            let cells = vec![factors.iter().map(|c| s.cell(s.best(|p| factor_of(c, p)), false)).collect()];
            (factors.clone(), vec![s.method.to_string()], "step factor".into(), "method".into(), cells)
        }
    };
    let values: Vec<Vec<Option<f64>>> = cells.iter().map(|r| r.iter().map(|c| c.0).collect()).collect();
    let text: Vec<Vec<String>> = cells.iter().map(|r| r.iter().map(|c| c.1.clone()).collect()).collect();
    let over = if s.axes.len() >= 2 { " (best step factor per cell)" } else { "" };
    let title = format!("{} to ‖∇f‖² ≤ {:e}{over}", measure(s.by), s.target);
    let figure = Figure::Heatmap(Heatmap {
        title: &title,
        x_label: &x_label,
        y_label: &y_label,
        scale_label: measure(s.by),
        missing_label: "not reached",
        columns: &columns,
        rows: &rows,
        values: &values,
        text: &text,
    });
    plot::save(dir, "heatmap", &figure)
}

fn best(dir: &Path, s: &Sweep) -> Result<Vec<PathBuf>> {
    let bests: Vec<usize> = match s.axes.first() {
        Some(axis) => axis.values.iter().filter_map(|v| s.best(|p| p.values[0] == *v)).collect(),
        None => (0..s.points.len()).collect(),
    };
    let x_of = |o: &Outcome| match s.by {
        RankBy::Bits => o.curves.bits.clone(),
        RankBy::Time => o.curves.time.clone(),
    };
    let mut curves: Vec<Curve> = bests
        .iter()
        .map(|&i| {
            let o = &s.outcomes[i];
            let cost = match (o.cost(s.by), o.diverged_at) {
                (Some(v), _) => format!("{} {}", compact(v, s.by), measure(s.by)),
                (None, Some(t)) => format!("diverged at round {t}"),
                (None, None) => "not reached".into(),
            };
            let points = x_of(o)
                .into_iter()
                .zip(o.curves.grad_norm_sq.iter().copied())
                .filter(|(x, y)| *x > 0.0 && *y > 0.0 && y.is_finite())
                .collect();
            Curve { label: format!("{}: {cost}", o.curves.label), points }
        })
        .collect();
    let xs = curves.iter().flat_map(|c| c.points.iter().map(|p| &p.0));
    let (x0, x1) = match s.by {
        RankBy::Bits => plot::log_bounds(xs),
        RankBy::Time => plot::linear_bounds(xs),
    };
    curves
        .push(Curve {
            label: format!("target ‖∇f‖² = {:e}", s.target), points: vec![(x0, s.target), (x1, s.target)]
        });
    let (y0, y1) = plot::log_bounds(curves.iter().flat_map(|c| c.points.iter().map(|p| &p.1)));
    let (x_label, x) = match s.by {
        RankBy::Bits => ("bits sent by all workers (paper convention, cumulative)", plot::Axis::Log(x0, x1)),
        RankBy::Time => ("training time (s)", plot::Axis::Linear(x0, x1)),
    };
    let per = s.axes.first().map_or_else(|| "step factor".to_string(), |a| a.key.clone());
    let title = format!("‖∇f‖² of the best point per {per}");
    let chart = Chart { title: &title, x_label, y_label: "‖∇f(x)‖²", curves: &curves };
    plot::save(dir, "best", &Figure::Line { chart, x, y: plot::Axis::Log(y0, y1) })
}
