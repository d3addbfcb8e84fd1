//! What each point of a sweep reached, read back from its result file, and the ranking:
//! by the bits (`bits_up`, the uplink's paper-convention bits; `bits_down` is shown
//! beside them and not counted) or the training time at the first evaluated round with
//! ‖∇f‖² ≤ the target (`grad_norm_sq`). Points that never got there follow, closest
//! (smallest final ‖∇f‖²) first, and diverged points come last, in grid order.

use super::grid::{Axis, Point};
use crate::cli::RankBy;
use crate::error::{Error, Result};
use crate::metrics::hdf5_file::{self, Attr};
use crate::report::plot::{self, RunCurves};
use std::path::Path;

/// The first evaluated round at or below the target, and what it had cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reached {
    pub round: u64,
    pub bits_up: f64,
    pub bits_down: f64,
    pub time: f64,
}

/// One point's run.
pub struct Outcome {
    pub curves: RunCurves,
    /// The step size γ it ran with.
    pub step: f64,
    pub rounds: u64,
    /// The round at which f or ∇f stopped being finite.
    pub diverged_at: Option<u64>,
    /// None when never reached, or when the run diverged.
    pub reached: Option<Reached>,
    pub final_grad_norm_sq: f64,
}

impl Outcome {
    /// Reads a point's finished result file; `label` names its curve.
    pub fn read(path: &Path, label: String, target: f64) -> Result<Outcome> {
        let curves = plot::read_curves(path, label)?;
        let wanted = [("status", Attr::Str(String::new())), ("step", Attr::F64(0.0)), ("diverged_at", Attr::U64(0))];
        let (found, _) = hdf5_file::read_attrs(path, &wanted, &[])?;
        let (Some(Attr::Str(status)), Some(Attr::F64(step))) = (&found[0], &found[1]) else {
            return Err(Error::io(path, "is not a finished result of qtrain train (no status or step attribute)"));
        };
        let diverged_at = match (status.as_str(), &found[2]) {
            ("diverged", Some(Attr::U64(t))) => Some(*t),
            ("diverged", _) => Some(curves.iter.last().map_or(0, |&t| t as u64)),
            _ => None,
        };
        Ok(Outcome::new(curves, *step, diverged_at, target))
    }

    pub fn new(curves: RunCurves, step: f64, diverged_at: Option<u64>, target: f64) -> Outcome {
        let first = curves.grad_norm_sq.iter().position(|&g| g <= target);
        let reached = first.filter(|_| diverged_at.is_none()).map(|i| Reached {
            round: curves.iter[i] as u64,
            bits_up: curves.bits[i],
            bits_down: curves.bits_down[i],
            time: curves.time[i],
        });
        let rounds = curves.iter.last().map_or(0, |&t| t as u64);
        let final_grad_norm_sq = curves.grad_norm_sq.last().copied().unwrap_or(f64::NAN);
        Outcome { curves, step, rounds, diverged_at, reached, final_grad_norm_sq }
    }

    /// What ranks it: bits up or seconds to the target (None when not reached).
    pub fn cost(&self, by: RankBy) -> Option<f64> {
        self.reached.map(|r| match by {
            RankBy::Bits => r.bits_up,
            RankBy::Time => r.time,
        })
    }
}

/// The indices of `outcomes`, best first.
pub fn rank(outcomes: &[Outcome], by: RankBy) -> Vec<usize> {
    // (group, key): reached by cost, then not reached by final ‖∇f‖² (NaN last), then diverged.
    let key = |o: &Outcome| match (o.cost(by), o.diverged_at) {
        (_, Some(_)) => (2, 0.0),
        (Some(cost), None) => (0, cost),
        (None, None) => (1, if o.final_grad_norm_sq.is_nan() { f64::INFINITY } else { o.final_grad_norm_sq }),
    };
    let mut order: Vec<usize> = (0..outcomes.len()).collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (key(&outcomes[a]), key(&outcomes[b]));
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(a.cmp(&b))
    });
    order
}

/// What the ranking measures, in words: "bits up" or "training time".
pub fn measure(by: RankBy) -> &'static str {
    match by {
        RankBy::Bits => "bits up",
        RankBy::Time => "training time",
    }
}

/// The ranked table in Markdown, with a line saying what it ranks by.
pub fn table(
    axes: &[Axis],
    points: &[Point],
    outcomes: &[Outcome],
    order: &[usize],
    target: f64,
    by: RankBy,
) -> String {
    let mut out = format!(
        "ranked by {} to ‖∇f‖² ≤ {target:e} (bits up: bits_up, the uplink's paper-convention bits; bits down: \
         bits_down, shown and not counted); not reached, then diverged, last\n\n",
        measure(by)
    );
    let keys: String = axes.iter().map(|a| format!(" {} |", a.key)).collect();
    let aligns: String = axes.iter().map(|_| "---|").collect();
    out.push_str(&format!(
        "| rank |{keys} step × | γ | rounds to target | bits up to target | bits down to target | time to target (s) | final ‖∇f‖² | file |\n\
         |---:|{aligns}---:|---:|---:|---:|---:|---:|---:|---|\n"
    ));
    for (place, &i) in order.iter().enumerate() {
        let (p, o) = (&points[i], &outcomes[i]);
        let values: String = p.values.iter().map(|v| format!(" {v} |")).collect();
        let reached = match (o.reached, o.diverged_at) {
            (_, Some(t)) => format!("diverged at round {t} | | |"),
            (Some(r), None) => format!("{} | {:.0} | {:.0} | {:.3}", r.round, r.bits_up, r.bits_down, r.time),
            (None, None) => format!("not reached in {} rounds | | |", o.rounds),
        };
        out.push_str(&format!(
            "| {} |{values} {} | {:.6e} | {reached} | {:.3e} | {}.h5 |\n",
            place + 1,
            p.step_factor,
            o.step,
            o.final_grad_norm_sq,
            p.name
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's curves: ‖∇f‖² halves every round from 1, bits and time grow by `per_round`.
    pub(crate) fn halving(label: &str, rounds: usize, per_round: f64) -> RunCurves {
        let iter: Vec<f64> = (0..=rounds).map(|t| t as f64).collect();
        RunCurves {
            label: label.into(),
            grad_norm_sq: iter.iter().map(|t| 0.5f64.powf(*t)).collect(),
            gap: vec![f64::NAN; rounds + 1],
            bits: iter.iter().map(|t| t * per_round).collect(),
            bits_down: vec![0.0; rounds + 1],
            time: iter.iter().map(|t| t * 1e-3).collect(),
            iter,
        }
    }

    /// 2⁻⁴ ≤ 0.07 first at round 4: bits 4·per_round, time 0.004 s.
    #[test]
    fn the_first_row_at_or_below_the_target_counts() {
        let o = Outcome::new(halving("a", 10, 100.0), 0.5, None, 0.07);
        assert_eq!(o.reached, Some(Reached { round: 4, bits_up: 400.0, bits_down: 0.0, time: 0.004 }));
        assert_eq!((o.cost(RankBy::Bits), o.cost(RankBy::Time)), (Some(400.0), Some(0.004)));
        assert_eq!(o.rounds, 10);
        assert_eq!(Outcome::new(halving("b", 3, 100.0), 0.5, None, 0.07).reached, None);
        assert_eq!(Outcome::new(halving("c", 10, 100.0), 0.5, Some(9), 0.07).reached, None);
    }

    /// Reached by cost, then not reached by final ‖∇f‖², then diverged; ties keep grid order.
    #[test]
    fn ranking_puts_reached_first_then_closest_then_diverged() {
        let target = 0.07;
        let outcomes = vec![
            Outcome::new(halving("diverged", 10, 1.0), 1.0, Some(3), target),
            Outcome::new(halving("far", 2, 1.0), 1.0, None, target),
            Outcome::new(halving("costly", 10, 300.0), 1.0, None, target),
            Outcome::new(halving("close", 3, 1.0), 1.0, None, target),
            Outcome::new(halving("cheap", 10, 100.0), 1.0, None, target),
            Outcome::new(halving("cheap too", 10, 100.0), 1.0, None, target),
        ];
        assert_eq!(rank(&outcomes, RankBy::Bits), [4, 5, 2, 3, 1, 0]);
        // By time all reached points cost 0.004 s: grid order among them.
        assert_eq!(rank(&outcomes, RankBy::Time), [2, 4, 5, 3, 1, 0]);
    }

    #[test]
    fn the_table_lists_every_point_in_rank_order() {
        let axes = vec![Axis { key: "zeta".into(), values: vec!["0".into(), "4".into()] }];
        let point = |v: &str, f: f64| Point {
            values: vec![v.into()],
            step_factor: f,
            method: String::new(),
            compressor: String::new(),
            name: format!("zeta={v}_step={f}"),
        };
        let points = vec![point("0", 1.0), point("4", 2.0), point("4", 4.0)];
        let outcomes = vec![
            Outcome::new(halving("a", 2, 1.0), 0.25, None, 0.07),
            Outcome::new(halving("b", 10, 64.0), 0.5, None, 0.07),
            Outcome::new(halving("c", 10, 1.0), 1.0, Some(5), 0.07),
        ];
        let order = rank(&outcomes, RankBy::Bits);
        let text = table(&axes, &points, &outcomes, &order, 0.07, RankBy::Bits);
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| rank")).collect();
        assert_eq!(rows[0], "| 1 | 4 | 2 | 5.000000e-1 | 4 | 256 | 0 | 0.004 | 9.766e-4 | zeta=4_step=2.h5 |");
        assert_eq!(
            rows[1],
            "| 2 | 0 | 1 | 2.500000e-1 | not reached in 2 rounds | | | | 2.500e-1 | zeta=0_step=1.h5 |"
        );
        assert_eq!(rows[2], "| 3 | 4 | 4 | 1.000000e0 | diverged at round 5 | | | | 9.766e-4 | zeta=4_step=4.h5 |");
        assert!(text.starts_with("ranked by bits up to ‖∇f‖² ≤ 7e-2"), "{text}");
        assert!(text.contains("| rank | zeta | step × |"), "{text}");
    }
}
