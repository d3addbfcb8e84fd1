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

/// Entries summed per allreduce: 256 KiB of i64 per buffer.
const CHUNK: usize = 1 << 15;

/// Reusable buffers (sized on first use).
#[derive(Default)]
pub(super) struct Buffers {
    maxima: Vec<f64>,
    agreed: Vec<f64>,
    scales: Vec<f64>,
    local: Vec<i64>,
    total: Vec<i64>,
    /// One chunk of the sums, as f64.
    sums: Vec<f64>,
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
    /// The sums s_k = Σ over all workers w of term(w, k), for this rank's `parts` workers
    /// of `total_parts`, handed to `visit(k0, [s_k0, s_k0+1, …])` a chunk at a time, in
    /// order of k, covering every entry once; `blocks` are the lengths of consecutive runs
    /// of entries sharing a scale. A caller that needs only a reduction of the sums (the
    /// monitor's ‖∇f‖²) holds no d-vector for them.
    pub(super) fn sum(
        &mut self,
        world: &SimpleCommunicator,
        parts: usize,
        total_parts: usize,
        blocks: &[usize],
        term: impl Fn(usize, usize) -> f64,
        mut visit: impl FnMut(usize, &[f64]),
    ) {
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
        // The fixed-point sums a chunk at a time: integer sums are exact, so the chunking
        // changes no bit, and the buffers stay at CHUNK entries instead of d-vectors held
        // for the whole run (they had been the monitor's largest cost in memory, issue
        // 13). Every rank walks the same blocks and chunks (their lengths and the agreed
        // maxima are the same everywhere), so the allreduces match.
        let mut start = 0;
        for ((&len, &scale), &max) in blocks.iter().zip(&self.scales).zip(&self.agreed) {
            let agreed = max > 0.0 && max.is_finite();
            for first in (start..start + len).step_by(CHUNK) {
                let n = CHUNK.min(start + len - first);
                self.sums.clear();
                if !agreed {
                    self.sums.resize(n, if max == 0.0 { 0.0 } else { f64::NAN });
                } else {
                    self.local.clear();
                    self.local.resize(n, 0);
                    for p in 0..parts {
                        for (k, acc) in self.local.iter_mut().enumerate() {
                            *acc += (term(p, first + k) * scale).round() as i64;
                        }
                    }
                    self.total.clear();
                    self.total.resize(n, 0);
                    world.all_reduce_into(&self.local[..], &mut self.total[..], SystemOperation::sum());
                    self.sums.extend(self.total.iter().map(|&t| t as f64 / scale));
                }
                visit(first, &self.sums);
            }
            start += len;
        }
    }
}
