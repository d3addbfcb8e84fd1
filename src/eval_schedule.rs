//! Which rounds the monitor evaluates (`--eval-every K|auto`).
//!
//! An evaluation is not free: the loss values of every local sample, a full gradient for
//! a method that does not compute one itself (minibatches, VR-MARINA, AsyLPG), and an
//! allreduce of d + 1 floats, more than a compressed method's own traffic at large d.
//! `auto` (the default) measures what an evaluation adds to a round and evaluates every
//! K rounds, K the smallest of 1, 2, 5, 10, 20, 50, … that keeps the evaluations under
//! [`TARGET_SHARE`] of the run's time:
//!
//! * rounds first + 1 ..= first + W (W = [`WINDOW`]) are evaluated, and the next W are
//!   not; the wall time of each window gives a round with and without an evaluation,
//!   hence the cost c of one evaluation and the round's time r;
//! * K is chosen for the largest c / r over the ranks (one allreduce, on every rank at
//!   the same round, so every rank evaluates the same rounds), and at most a tenth of the
//!   rounds left, so that a run keeps ten rows or more;
//! * from then on round t is evaluated when K divides t. The first and the last round
//!   are always evaluated, and so is a run too short to measure.
//!
//! Evaluating never changes the iterates (the monitor's gradient is the one the method
//! would compute), so `auto` changes which rows the file holds, not the run. The rows
//! depend on measured times: `--eval-every K` gives the same rows on every run.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use crate::comm::Comm;

/// Rounds per calibration window.
pub const WINDOW: u64 = 8;

/// The share of the run's time the evaluations may take under `auto`.
pub const TARGET_SHARE: f64 = 0.05;

/// `--eval-every`: a fixed period or the measured rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalEvery {
    Auto,
    Every(u64),
}

impl FromStr for EvalEvery {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(EvalEvery::Auto),
            n => match n.parse::<u64>() {
                Ok(k) if k > 0 => Ok(EvalEvery::Every(k)),
                _ => Err(format!("'{n}': give a number of rounds (1 or more) or 'auto'")),
            },
        }
    }
}

impl fmt::Display for EvalEvery {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            EvalEvery::Auto => f.write_str("auto"),
            EvalEvery::Every(k) => write!(f, "{k}"),
        }
    }
}

impl EvalEvery {
    /// The period for the result file's `eval_every` attribute: K, or 0 for `auto`.
    pub fn attribute(self) -> u64 {
        match self {
            EvalEvery::Auto => 0,
            EvalEvery::Every(k) => k,
        }
    }
}

/// The evaluation rounds of one run (or of one resumed part of it).
pub struct Schedule {
    /// The period in force (1 while `auto` calibrates).
    every: u64,
    calibration: Option<Calibration>,
}

/// `auto`'s measurement: the round where it started and the instants at which the
/// evaluated and the plain window began.
struct Calibration {
    first: u64,
    iters: u64,
    evaluated_from: Option<Instant>,
    plain_from: Option<Instant>,
}

impl Calibration {
    /// The round after the evaluated window, and the one after the plain window.
    fn bounds(&self) -> (u64, u64) {
        (self.first + 1 + WINDOW, self.first + 1 + 2 * WINDOW)
    }
}

impl Schedule {
    /// The schedule of rounds `first..=iters`.
    pub fn new(rule: EvalEvery, first: u64, iters: u64) -> Schedule {
        match rule {
            EvalEvery::Every(k) => Schedule { every: k, calibration: None },
            // Too short to measure (and to matter): every round.
            EvalEvery::Auto if iters < first + 1 + 4 * WINDOW => Schedule { every: 1, calibration: None },
            EvalEvery::Auto => Schedule {
                every: 1,
                calibration: Some(Calibration { first, iters, evaluated_from: None, plain_from: None }),
            },
        }
    }

    /// The period in force.
    pub fn every(&self) -> u64 {
        self.every
    }

    /// Whether round t is evaluated (the first and the last always are; the caller adds
    /// the last, and a preempted round).
    pub fn evaluates(&self, t: u64) -> bool {
        match &self.calibration {
            Some(c) if t >= c.bounds().0 => false,
            _ => t.is_multiple_of(self.every),
        }
    }

    /// Called at the start of every round t, on every rank: times the calibration
    /// windows and, when they are over, chooses the period (a collective).
    pub fn at_round_start(&mut self, t: u64, comm: &mut Comm) {
        let Some(c) = &mut self.calibration else { return };
        let (evaluated_end, plain_end) = c.bounds();
        if t == c.first + 1 {
            c.evaluated_from = Some(Instant::now());
        } else if t == evaluated_end {
            c.plain_from = Some(Instant::now());
        } else if t == plain_end {
            let (Some(evaluated_from), Some(plain_from)) = (c.evaluated_from, c.plain_from) else {
                unreachable!("both windows started before round {t}");
            };
            let evaluated = plain_from.duration_since(evaluated_from).as_secs_f64() / WINDOW as f64;
            let plain = plain_from.elapsed().as_secs_f64() / WINDOW as f64;
            let mut ratio = [(evaluated - plain).max(0.0) / plain.max(1e-9)];
            comm.max_f64(&mut ratio);
            let (every, capped) = choose(ratio[0], c.iters - t);
            log::info!(
                "monitoring: an evaluation costs {:.2} rounds (here {:.3} ms against {:.3} ms a round; \
                 the largest ratio over the ranks); evaluating every {every} rounds keeps it at {:.1} % \
                 of the run{} (--eval-every K to choose)",
                ratio[0],
                1e3 * (evaluated - plain).max(0.0),
                1e3 * plain,
                100.0 * share(ratio[0], every),
                if capped { ", at most a tenth of the rounds left so that the run keeps ten rows" } else { "" }
            );
            self.every = every;
            self.calibration = None;
        }
    }
}

/// The share of the time evaluations take when one costs `ratio` rounds and every
/// `every`-th round has one.
fn share(ratio: f64, every: u64) -> f64 {
    ratio / (ratio + every as f64)
}

/// The smallest of 1, 2, 5, 10, 20, 50, … whose evaluations take at most
/// [`TARGET_SHARE`], or the largest of them within a tenth of the `left` rounds when
/// that one is smaller; whether that cap applied.
fn choose(ratio: f64, left: u64) -> (u64, bool) {
    let cap = (left / 10).max(1);
    let mut within_cap = 1;
    for decade in std::iter::successors(Some(1u64), |d| d.checked_mul(10)) {
        for every in [decade, 2 * decade, 5 * decade] {
            if every > cap {
                return (within_cap, true);
            }
            if share(ratio, every) <= TARGET_SHARE {
                return (every, false);
            }
            within_cap = every;
        }
    }
    (within_cap, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_periods_and_auto() {
        assert_eq!("auto".parse::<EvalEvery>(), Ok(EvalEvery::Auto));
        assert_eq!("7".parse::<EvalEvery>(), Ok(EvalEvery::Every(7)));
        assert!("0".parse::<EvalEvery>().unwrap_err().contains("1 or more"));
        assert!("often".parse::<EvalEvery>().is_err());
    }

    /// The chosen period is the smallest of the 1-2-5 sequence within the share, checked
    /// against a direct search over that sequence.
    #[test]
    fn chooses_the_smallest_period_within_the_share() {
        let sequence: Vec<u64> = (0..12).flat_map(|e| [1, 2, 5].map(|m| m * 10u64.pow(e))).collect();
        for ratio in [0.0, 0.01, 0.0526, 0.06, 0.3, 1.0, 2.5, 40.0, 1e4] {
            let expected = *sequence.iter().find(|&&k| share(ratio, k) <= TARGET_SHARE).unwrap();
            assert_eq!(choose(ratio, u64::MAX / 2), (expected, false), "ratio {ratio}");
        }
        // A tenth of the rounds left at most.
        assert_eq!(choose(1e4, 1000), (100, true));
        assert_eq!(choose(1e4, 5), (1, true));
    }

    /// Calibration: every round of the first window, none of the second, then the period.
    #[test]
    fn calibration_windows_then_the_period() {
        let s = Schedule::new(EvalEvery::Auto, 0, 1000);
        let evaluated: Vec<u64> = (0..=2 * WINDOW + 2).filter(|&t| s.evaluates(t)).collect();
        assert_eq!(evaluated, (0..=WINDOW).collect::<Vec<_>>());
        let short = Schedule::new(EvalEvery::Auto, 0, 3 * WINDOW);
        assert!((0..=3 * WINDOW).all(|t| short.evaluates(t)));
        let fixed = Schedule::new(EvalEvery::Every(4), 0, 1000);
        assert_eq!((0..=9).filter(|&t| fixed.evaluates(t)).collect::<Vec<_>>(), [0, 4, 8]);
    }
}
