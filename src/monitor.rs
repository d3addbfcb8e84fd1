//! What the metrics report, apart from the method: on evaluation rounds the full f(x^t)
//! and ∇f(x^t) over all workers (an unmetered allreduce of d + 1 values, summed so that
//! the result is bit for bit the same on any rank layout: `Comm::reproducible_sum_by`),
//! and the per-round counters of `/metrics` (the [`Ledger`]).
//!
//! The monitor always evaluates the *full* objective, whatever gradient the method uses
//! (`--batch`): ‖∇f‖² and `--tol` never become minibatch quantities. A full-batch method
//! reuses the gradient the monitor computed at x^t (`Worker::round_gradient`), so
//! evaluating costs it only the loss values and the allreduce.

use crate::comm::{Comm, Meter};
use crate::metrics::Row;
use crate::objective::Objective;
use crate::protocol::RoundStats;
use crate::worker::Worker;

/// f(x^t) and ‖∇f(x^t)‖², on every rank.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub grad_norm_sq: f64,
}

pub struct Monitor {
    dim: usize,
    /// W, the logical workers of all ranks.
    workers: usize,
}

impl Monitor {
    pub fn new(dim: usize, workers: usize) -> Self {
        Monitor { dim, workers }
    }

    /// Evaluates every local worker at x = x^t (recorded for round t's reuse) and sums
    /// over all ranks.
    pub fn evaluate(
        &mut self,
        t: u64,
        x: &[f64],
        workers: &mut [Worker],
        obj: &Objective,
        comm: &mut Comm,
    ) -> Evaluation {
        for w in workers.iter_mut() {
            w.evaluate_round(obj, x, t);
        }
        // The loss and the gradient on their own fixed-point scales.
        let blocks = [1, self.dim];
        let term = |p: usize, k: usize| {
            let w = &workers[p];
            w.weight * if k == 0 { w.loss } else { w.grad[k - 1] }
        };
        // Entry 0 is f, the rest ∇f: ‖∇f‖² accumulates chunk by chunk in the order of a
        // sequential sum over ∇f, and ∇f itself is never held.
        // −0.0, the neutral element `Iterator::sum` starts from, so that even d = 0 gives
        // the bits of the sequential sum this replaced.
        let mut e = Evaluation { loss: 0.0, grad_norm_sq: -0.0 };
        comm.reproducible_sum_by(workers.len(), self.workers, &blocks, term, |first, sums| {
            for (k, &s) in (first..).zip(sums) {
                if k == 0 {
                    e.loss = s;
                } else {
                    e.grad_norm_sq += s * s;
                }
            }
        });
        e
    }
}

/// The per-round columns of `/metrics`: the last round's and the running totals.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ledger {
    /// Round t − 1 (the one that produced x^t).
    pub round: Row,
    /// Cumulative sums of the per-round columns.
    pub totals: Row,
}

impl Ledger {
    /// Records a finished round: the method's stats, `Comm`'s meter and the round's
    /// wall time (to which the reused gradient time of the monitor is added, so that
    /// `time` is a round's work whether or not it was an evaluation round).
    pub fn record(&mut self, stats: &RoundStats, meter: &Meter, seconds: f64) {
        self.round = Row {
            bits_up_round: stats.paper_bits_up,
            bits_down_round: stats.paper_bits_down,
            wire_bytes_round: meter.wire_bytes,
            recv_bytes_round: meter.received_bytes,
            allgather_calls_round: meter.allgather.calls,
            allgather_bytes_round: meter.allgather.bytes,
            allreduce_calls_round: meter.allreduce.calls,
            allreduce_bytes_round: meter.allreduce.bytes,
            bcast_calls_round: meter.bcast.calls,
            bcast_bytes_round: meter.bcast.bytes,
            gather_calls_round: meter.gather.calls,
            gather_bytes_round: meter.gather.bytes,
            reduce_calls_round: meter.reduce.calls,
            reduce_bytes_round: meter.reduce.bytes,
            t_compute: stats.t_compute,
            t_compress: stats.t_compress,
            t_comm: meter.seconds,
            t_decode: stats.t_decode,
            skipped: stats.skipped,
            time: seconds + stats.t_compute_before,
            ..Row::default()
        };
        let (t, r) = (&mut self.totals, &self.round);
        t.bits_up += r.bits_up_round;
        t.bits_down += r.bits_down_round;
        t.wire_bytes += r.wire_bytes_round;
        t.time += r.time;
        t.t_compute += r.t_compute;
        t.t_compress += r.t_compress;
        t.t_comm += r.t_comm;
        t.t_decode += r.t_decode;
        t.skipped += r.skipped;
    }

    /// The metrics row of x^t.
    pub fn row(&self, t: u64, eval: Evaluation, fstar: Option<f64>) -> Row {
        Row {
            iter: t,
            loss: eval.loss,
            grad_norm_sq: eval.grad_norm_sq,
            f_gap: fstar.map_or(f64::NAN, |fs| eval.loss - fs),
            bits_up: self.totals.bits_up,
            bits_down: self.totals.bits_down,
            wire_bytes: self.totals.wire_bytes,
            time: self.totals.time,
            skipped_total: self.totals.skipped,
            ..self.round
        }
    }
}
