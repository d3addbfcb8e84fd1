//! PermK (Szlendak et al.; as MARINA and the correlated-quantization paper use it): the
//! workers of a round send disjoint blocks of one shared random permutation, scaled by n.
//!
//! Spec: ../shared/ALGORITHMS.md §1.4. SPEC: `perm-k` (n = the run's number of logical
//! workers W).
//!
//! * Definition, per round: a shared permutation π of 0..d and a shared permutation σ of
//!   the n blocks; π is cut into n blocks by `tensor_split` (the first d mod n blocks one
//!   longer); worker i gets block B = σ(i) and Q_i(x) = n·Σ_{j∈B} x_j e_j. Re-drawing σ
//!   each round is what keeps P(j ∈ B_i) = 1/n when n ∤ d (§1.4, MiniFL's semantics).
//! * Class: each Q_i is unbiased with ω = n − 1. Collectively the workers satisfy the AB
//!   inequality E‖(1/n)Σ Q_i(a_i) − ā‖² ≤ A·(1/n)Σ‖a_i‖² − B‖ā‖² with A = B = 1 (d ≥ n;
//!   A = B = 1 − (n − d)/(n − 1) when d < n), with equality when n | d; for identical
//!   inputs the mean is exact (the blocks are disjoint and cover 0..d).
//! * Randomness: the shared stream only (`begin_round`, on every rank); none private.
//! * Wire (little-endian): the block index as u32, then the |B| values x_j as f32 in block
//!   order (unscaled: the decoder multiplies by n, exactly); 4 + 4|B| bytes, |B| ∈
//!   {⌊d/n⌋, ⌈d/n⌉}. The receiver rebuilds the coordinates from π.
//! * Paper bits: 32|B| (§1.4: indices from the shared seed; the block index is implied by
//!   the sender's id and σ, so it is framing, not counted).

use rand::seq::SliceRandom;

use super::wire::{expect_dim, put_f32, Reader};
use super::{Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::Stream;

const NAME: &str = "perm-k";

pub struct PermK {
    spec: String,
    d: usize,
    n: usize,
    /// This round's π and σ.
    coordinates: Vec<u32>,
    blocks: Vec<u32>,
    /// The worker being encoded.
    worker: usize,
}

impl PermK {
    pub fn new(spec: &Spec, d: usize, workers: usize) -> Result<Self> {
        if d > u32::MAX as usize {
            return Err(Error::config(
                format!("compressor '{}': d = {d} coordinates do not fit 32-bit indices", spec.text()),
                "use a dense compressor for this model",
            ));
        }
        let n = workers.max(1);
        Ok(PermK {
            spec: spec.text().to_string(),
            d,
            n,
            coordinates: (0..d as u32).collect(),
            blocks: (0..n as u32).collect(),
            worker: 0,
        })
    }

    /// The coordinates of block b of π (tensor_split: the first d mod n blocks are one longer).
    fn block(&self, b: usize) -> &[u32] {
        let (q, r) = (self.d / self.n, self.d % self.n);
        let start = b * q + b.min(r);
        let len = q + usize::from(b < r);
        &self.coordinates[start..start + len]
    }
}

impl Compressor for PermK {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        Class::Unbiased { omega: self.n as f64 - 1.0 }
    }

    fn ab(&self) -> Option<(f64, f64)> {
        let (n, d) = (self.n as f64, self.d as f64);
        let c = if self.d >= self.n || self.n == 1 { 1.0 } else { 1.0 - (n - d) / (n - 1.0) };
        Some((c, c))
    }

    /// π and σ, the same on every rank: a Fisher–Yates shuffle of the identity from the
    /// shared stream, so that they depend on the stream alone (a resumed run, which has
    /// only the stream's position, draws the same).
    fn draws_shared(&self) -> bool {
        true
    }

    fn begin_round(&mut self, shared: &mut Stream) {
        self.coordinates.iter_mut().enumerate().for_each(|(j, c)| *c = j as u32);
        self.blocks.iter_mut().enumerate().for_each(|(b, c)| *c = b as u32);
        self.coordinates.shuffle(shared);
        self.blocks.shuffle(shared);
    }

    fn begin_worker(&mut self, worker: usize) {
        self.worker = worker;
    }

    /// Panics if `x.len() != d`, or for a worker id ≥ n (caller bugs, not wire conditions).
    fn encode(&mut self, x: &[f64], _rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{NAME}: encoding a vector of the wrong dimension");
        assert!(self.worker < self.n, "{NAME}: worker {} of {} workers", self.worker, self.n);
        let b = self.blocks[self.worker] as usize;
        out.clear();
        out.reserve(4 + 4 * self.block(b).len());
        out.extend_from_slice(&(b as u32).to_le_bytes());
        for &j in self.block(b) {
            put_f32(out, x[j as usize] as f32);
        }
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(NAME, acc, self.d)?;
        let mut r = Reader::new(msg, NAME);
        let head = r.take(4)?;
        let b = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if b >= self.n {
            return Err(r.error(format!("block {b} of {} blocks", self.n)));
        }
        let block = self.block(b);
        let mut values = Reader::new(r.take(4 * block.len())?, NAME);
        r.finish()?;
        let factor = scale * self.n as f64;
        for &j in block {
            acc[j as usize] += factor * values.f32()? as f64;
        }
        Ok(())
    }

    fn paper_bits(&self, msg: &[u8]) -> u64 {
        32 * (msg.len().saturating_sub(4) / 4) as u64
    }
}

#[cfg(test)]
mod tests {
    use crate::compress::{build_for, decode};
    use crate::rng::{self, Purpose};

    /// §1.4's exact invariant: with every worker compressing the same x in one round, the
    /// supports are disjoint, cover 0..d, and the mean of the decoded vectors is x (to
    /// the rounding of (1/n)·n); for n ∤ d and for d < n too.
    #[test]
    fn identical_inputs_average_exactly() {
        for (d, n) in [(12, 4), (13, 4), (10, 3), (7, 7), (3, 5), (100, 8)] {
            let x: Vec<f64> = (0..d).map(|j| ((j * 7 + 3) % 11) as f64 as f32 as f64 - 5.0).collect();
            let mut c = build_for("perm-k", d, 0, n).unwrap();
            let mut shared = rng::shared(1, Purpose::SharedSupport);
            for _ in 0..20 {
                c.begin_round(&mut shared);
                let (mut mean, mut covered) = (vec![0.0; d], vec![0usize; d]);
                let mut msg = Vec::new();
                let mut own = vec![0.0; d];
                for i in 0..n {
                    c.begin_worker(i);
                    c.encode(&x, &mut rng::private(0, i, Purpose::Compressor), &mut msg);
                    c.decode_add(&msg, 1.0 / n as f64, &mut mean).unwrap();
                    decode(c.as_ref(), &msg, &mut own).unwrap();
                    own.iter()
                        .zip(&x)
                        .zip(&mut covered)
                        .for_each(|((o, v), k)| *k += usize::from(*o != 0.0 || *v == 0.0));
                }
                for j in 0..d {
                    assert!((mean[j] - x[j]).abs() <= 1e-15 * x[j].abs(), "d = {d}, n = {n}: coordinate {j}");
                }
                // Each coordinate in exactly one block (a zero x_j counts for every worker).
                assert!(x.iter().zip(&covered).all(|(v, &k)| *v == 0.0 || k == 1), "d = {d}, n = {n}: {covered:?}");
            }
        }
    }
}
