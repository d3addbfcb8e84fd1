//! One-bit quantization on [−r, r] with correlated (stratified) thresholds across the
//! workers (Suresh et al. 2022, as the MARINA correlated-quantization paper uses it), and
//! the same quantizer with independent thresholds, its baseline.
//!
//! Spec: ../shared/ALGORITHMS.md §H.2 (MiniFL HEAD a687565). SPECs: `corr-q` and `indep-q`
//! (n = the run's number of logical workers W).
//!
//! * Definition for worker i, per round: r = ‖x‖₂ (sent as f32 rounded up, so |x_j| ≤ r),
//!   y_j = (x_j + r)/(2r) ∈ [0, 1], bit β_j = 1[y_j > U_ij], decoded 2rβ_j − r.
//!   - `corr-q`: U_ij = (π_j(i) + γ_ij)/n with one shared permutation π_j of the n workers
//!     per coordinate and round, and a private γ_ij ~ U[0, 1): each U_ij is U[0, 1), and the
//!     n thresholds of a coordinate fall one into each [t/n, (t+1)/n).
//!   - `indep-q`: U_ij ~ U[0, 1) private (MiniFL's "DeCorrelatedQuantizer" shares its
//!     thresholds instead, which is not the independent baseline; §H.2 ⚠).
//! * Class: each worker's output is unbiased (P(β_j = 1) = y_j) with per-coordinate
//!   variance (2r)²y_j(1 − y_j) = r² − x_j², so E‖Q(x) − x‖² = (d − 1)‖x‖²: ω = d − 1
//!   for both (d(1 + 2^-22) − 1 with r rounded up to f32). Collectively the stratified bits of a coordinate are negatively correlated
//!   (with f_i(a) = clamp(n·y_i − a, 0, 1), Cov(β_i, β_k) = (n·y_i·y_k − Σ_a f_i(a)f_k(a))/
//!   (n(n − 1)) ≤ 0 by Chebyshev's sum inequality, both f non-increasing), so the variance
//!   of the mean is at most the independent one and MARINA's independent rule (A = ω/n,
//!   B = 0) stays valid; for identical inputs the error of the mean is at most 2r/n per
//!   coordinate, against Θ(r/√n) for `indep-q`.
//! * Randomness: `corr-q` draws d permutations of n from the shared stream per round
//!   (`begin_round`; a table of d·n u16, so n ≤ 65 536) and one coin per coordinate
//!   (`rng::Coins`, a 32-bit uniform) from the worker's private stream; `indep-q` only the latter.
//! * Wire (little-endian): bytes 0..4 r as f32; then d bits β_j packed least-significant
//!   bit first, the last byte zero-padded: 4 + ⌈d/8⌉ bytes.
//! * Paper bits: 32 + d (§H.2, MiniFL).

use rand::seq::SliceRandom;

use super::wire::{add_signed, expect_dim, expect_len, f32_round_up, packed_len, put_f32, BitWriter, Reader};
use super::{Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::{Coins, Stream};
use crate::vector::norm_sq;

pub struct OneBitQuantizer {
    spec: String,
    name: &'static str,
    d: usize,
    n: usize,
    correlated: bool,
    /// `corr-q`: this round's π_j(i) for every coordinate j (row) and worker i (column).
    positions: Vec<u16>,
    /// Scratch for one coordinate's permutation.
    order: Vec<u16>,
    worker: usize,
}

impl OneBitQuantizer {
    /// `corr-q` (`correlated`) or `indep-q` for a run of `workers` logical workers.
    pub fn new(spec: &Spec, d: usize, workers: usize, correlated: bool) -> Result<Self> {
        let n = workers.max(1);
        if correlated && n > usize::from(u16::MAX) + 1 {
            return Err(Error::config(
                format!("compressor '{}' with {n} workers: its threshold table holds at most 65 536", spec.text()),
                "use indep-q, or fewer logical workers",
            ));
        }
        Ok(OneBitQuantizer {
            spec: spec.text().to_string(),
            name: if correlated { "corr-q" } else { "indep-q" },
            d,
            n,
            correlated,
            positions: if correlated { vec![0; d * n] } else { Vec::new() },
            order: (0..n as u16).collect(),
            worker: 0,
        })
    }

    fn wire_bytes(&self) -> usize {
        4 + packed_len(self.d, 1)
    }
}

impl Compressor for OneBitQuantizer {
    fn spec(&self) -> &str {
        &self.spec
    }

    /// ω = d − 1 for both (module doc), plus what the f32 round-up of r adds: r ≤
    /// ‖x‖(1 + 2^-23), so d·r² − ‖x‖² ≤ (d(1 + 2^-22) − 1)‖x‖².
    fn class(&self) -> Class {
        Class::Unbiased { omega: self.d as f64 * (1.0 + 2f64.powi(-22)) - 1.0 }
    }

    /// `corr-q`: one permutation of the n workers per coordinate, each shuffled from the
    /// identity (so that it depends on the shared stream alone).
    fn draws_shared(&self) -> bool {
        true
    }

    fn begin_round(&mut self, shared: &mut Stream) {
        if !self.correlated {
            return;
        }
        for row in self.positions.chunks_exact_mut(self.n) {
            self.order.iter_mut().enumerate().for_each(|(i, o)| *o = i as u16);
            self.order.shuffle(shared);
            // order[t] = the worker in stratum t; positions[i] = its stratum.
            for (t, &i) in self.order.iter().enumerate() {
                row[usize::from(i)] = t as u16;
            }
        }
    }

    fn begin_worker(&mut self, worker: usize) {
        self.worker = worker;
    }

    /// Panics if `x.len() != d`, or for a worker id ≥ n (caller bugs, not wire conditions).
    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{}: encoding a vector of the wrong dimension", self.name);
        assert!(!self.correlated || self.worker < self.n, "{}: worker {} of {}", self.name, self.worker, self.n);
        out.clear();
        out.reserve(self.wire_bytes());
        let r = f32_round_up(norm_sq(x).sqrt());
        put_f32(out, r);
        let (r, n) = (r as f64, self.n as f64);
        let mut bits = BitWriter::new(out);
        let mut coins = Coins::new(rng, x.len());
        for (j, &v) in x.iter().enumerate() {
            let gamma = coins.unit();
            let threshold =
                if self.correlated { (f64::from(self.positions[j * self.n + self.worker]) + gamma) / n } else { gamma };
            // r = 0 (the zero vector) sends 0s: every coordinate decodes to −0 + 0 = 0.
            let y = if r > 0.0 { ((v + r) / (2.0 * r)).clamp(0.0, 1.0) } else { 0.0 };
            bits.put(u32::from(y > threshold), 1);
        }
        bits.finish();
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(self.name, acc, self.d)?;
        expect_len(self.name, msg, self.wire_bytes())?;
        let mut r = Reader::new(msg, self.name);
        let radius = r.f32()? as f64;
        let bits = r.take(packed_len(self.d, 1))?;
        r.finish()?;
        // A set bit is +radius, a clear one −radius: scale·radius = −(scale·(−radius)) exactly.
        add_signed(bits, scale * -radius, acc);
        Ok(())
    }

    fn paper_bits(&self, _msg: &[u8]) -> u64 {
        32 + self.d as u64
    }
}

#[cfg(test)]
mod tests {
    use crate::compress::{build_for, decode, wire::f32_round_up};
    use crate::rng::{self, Purpose};

    const D: usize = 40;
    const N: usize = 8;

    /// x, its radius r, and, for each of 200 rounds, the mean over the N workers of the
    /// decoded Q_i(x) (every worker compressing the same x).
    fn means_of_identical_inputs(spec: &str) -> (Vec<f64>, f64, Vec<Vec<f64>>) {
        let x: Vec<f64> = (0..D).map(|j| ((j * 13 % 17) as f64 - 8.0) / 3.0).collect();
        let r = f32_round_up(x.iter().map(|v| v * v).sum::<f64>().sqrt()) as f64;
        let mut c = build_for(spec, D, 0, N).unwrap();
        let mut shared = rng::shared(4, Purpose::SharedSupport);
        let (mut msg, mut one) = (Vec::new(), vec![0.0; D]);
        let means = (0..200)
            .map(|round| {
                c.begin_round(&mut shared);
                let mut mean = vec![0.0; D];
                for i in 0..N {
                    c.begin_worker(i);
                    c.encode(&x, &mut rng::private(round, i, Purpose::Compressor), &mut msg);
                    decode(c.as_ref(), &msg, &mut one).unwrap();
                    mean.iter_mut().zip(&one).for_each(|(m, o)| *m += o / N as f64);
                }
                mean
            })
            .collect();
        (x, r, means)
    }

    /// §H.4: the thresholds of a coordinate are stratified (one per [t/n, (t+1)/n)), so for
    /// identical inputs the error of the mean is at most 2r/n per coordinate.
    #[test]
    fn identical_inputs_have_a_mean_error_below_2r_over_n() {
        let (x, r, means) = means_of_identical_inputs("corr-q");
        for (round, mean) in means.iter().enumerate() {
            for j in 0..D {
                assert!((mean[j] - x[j]).abs() <= 2.0 * r / N as f64 * (1.0 + 1e-12), "round {round}, j = {j}");
            }
        }
    }

    /// With independent thresholds the mean's error exceeds 2r/n somewhere (so the test
    /// above can tell the two apart).
    #[test]
    fn independent_thresholds_are_worse_for_identical_inputs() {
        let (x, r, means) = means_of_identical_inputs("indep-q");
        let worst = means.iter().flat_map(|m| m.iter().zip(&x).map(|(m, v)| (m - v).abs())).fold(0.0, f64::max);
        assert!(worst > 2.0 * r / N as f64, "worst error {worst} ≤ 2r/n = {}", 2.0 * r / N as f64);
    }
}
