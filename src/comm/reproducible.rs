//! Sums over all logical workers that are bit for bit the same however the workers are
//! spread over ranks (not metered): the smoothness constant that sets the step size, and
//! the monitor's f and ∇f, so that metrics rows do not depend on the rank layout either
//! (a checkpoint resumes on another rank count with identical rows).
//!
//! Each worker's term becomes a 64-bit fixed-point integer on a scale shared by a block
//! of entries (agreed by an allreduce max of one value per block), so the sum is integer
//! addition, which is associative. Terms get 62 − ⌈log₂ W⌉ bits below the block's largest
//! magnitude, so no sum of W terms overflows; the rounding error is below 2⁻⁶⁰ of that
//! largest term. A non-finite term makes its whole block NaN (divergence stays visible).

use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// Reusable buffers (sized on first use).
#[derive(Default)]
pub(super) struct Buffers {
    maxima: Vec<f64>,
    agreed: Vec<f64>,
    scales: Vec<f64>,
    local: Vec<i64>,
    total: Vec<i64>,
}

/// |v| with NaN winning (f64::max would drop it).
fn max_abs(m: f64, v: f64) -> f64 {
    if v.abs() > m || v.is_nan() {
        v.abs()
    } else {
        m
    }
}

impl Buffers {
    /// out = Σ over all workers w of term(w, k), for this rank's `parts` workers of
    /// `total_parts`; `blocks` are the lengths of consecutive runs of out sharing a scale.
    pub(super) fn sum(
        &mut self,
        world: &SimpleCommunicator,
        parts: usize,
        total_parts: usize,
        blocks: &[usize],
        term: impl Fn(usize, usize) -> f64,
        out: &mut [f64],
    ) {
        debug_assert_eq!(blocks.iter().sum::<usize>(), out.len());
        let n = out.len();
        self.maxima.clear();
        let mut start = 0;
        for &len in blocks {
            let block_max = (0..parts)
                .flat_map(|p| (start..start + len).map(move |k| (p, k)))
                .fold(0.0, |m, (p, k)| max_abs(m, term(p, k)));
            self.maxima.push(block_max);
            start += len;
        }
        self.agreed.clear();
        self.agreed.resize(blocks.len(), 0.0);
        world.all_reduce_into(&self.maxima[..], &mut self.agreed[..], SystemOperation::max());
        let headroom = usize::BITS - total_parts.leading_zeros();
        self.scales.clear();
        self.scales.extend(self.agreed.iter().map(|&max: &f64| {
            let shift = (62 - headroom as i32 - max.log2().ceil() as i32).clamp(-1000, 1000);
            2f64.powi(shift)
        }));
        self.local.clear();
        self.local.resize(n, 0);
        let mut start = 0;
        for (&len, &scale) in blocks.iter().zip(&self.scales) {
            for p in 0..parts {
                for (k, acc) in self.local[start..start + len].iter_mut().enumerate() {
                    *acc += (term(p, start + k) * scale).round() as i64;
                }
            }
            start += len;
        }
        self.total.clear();
        self.total.resize(n, 0);
        world.all_reduce_into(&self.local[..], &mut self.total[..], SystemOperation::sum());
        let mut start = 0;
        for ((&len, &scale), &max) in blocks.iter().zip(&self.scales).zip(&self.agreed) {
            let block = &mut out[start..start + len];
            if !(max > 0.0 && max.is_finite()) {
                block.fill(if max == 0.0 { 0.0 } else { f64::NAN });
            } else {
                for (o, t) in block.iter_mut().zip(&self.total[start..start + len]) {
                    *o = *t as f64 / scale;
                }
            }
            start += len;
        }
    }
}
