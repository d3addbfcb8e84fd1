//! Sparsifiers with a shared support: `rand-k:k=K,shared[,unscaled]` and
//! `random-block:k=K[,unscaled]`.
//!
//! Spec: ../shared/ALGORITHMS.md §1.2 and §0.3 ("use MPI_Allreduce when the compressed
//! representation is summable").
//!
//! * Definition: as rand-k, but the k coordinates S come from the *shared* stream, drawn
//!   once per round in `begin_round` on every rank, so all workers keep the same S and
//!   their messages can be added: Σ_i C(x_i) = C(Σ_i x_i) on S.
//!   Scaled (default): Q(x) = (d/k)·Σ_{j∈S} x_j e_j, unbiased with ω = d/k − 1.
//!   `unscaled`: contractive with α = k/d (in expectation). k = d draws nothing.
//! * `random-block` (the contiguous-block sparsifier that systems frameworks ship, e.g.
//!   GRACE's "randomk" with a block; Stich et al. 2018 analyse it as rand-k's cheaper twin):
//!   S = {s, s+1, …, s+k−1} mod d, one cyclic block with its start s uniform on 0..d.
//!   Every coordinate lies in the block with probability exactly k/d, so the scaled form is
//!   unbiased with ω = d/k − 1 and the unscaled one contractive with α = k/d in
//!   expectation, as rand-k; only the joint law of the support differs (neighbours are kept
//!   together), which these constants do not see.
//! * Randomness: the shared stream (one subset per round, Floyd's algorithm; or one block
//!   start); none private.
//! * Wire (allgather): the k values as f32 (already multiplied by d/k when scaled), in
//!   increasing index order (a block: from s on, cyclically); 4k bytes. No indices: the receiver knows S. Through an
//!   allreduce the same f32-rounded values are summed (`Summable`), so both collectives
//!   give the same compressed vectors.
//! * Paper bits: 32k + 32, a 32-bit seed in place of the indices (§1.2 "or 32 if indices
//!   are regenerated from a shared seed"); 32d for k = d.

use super::rand_k::SubsetSampler;
use super::wire::{expect_dim, expect_len, put_f32};
use super::{check_k, Class, Compressor, Spec, Summable};
use crate::error::Result;
use crate::rng::Stream;
use rand::Rng;

pub struct SharedRandK {
    spec: String,
    /// The family, for messages.
    name: &'static str,
    d: usize,
    k: usize,
    factor: f64,
    scaled: bool,
    support: Support,
}

/// How the round's k coordinates are drawn from the shared stream.
enum Support {
    /// A uniform k-subset (rand-k).
    Subset(SubsetSampler),
    /// A cyclic block of k from a uniform start (random-block).
    Block { start: usize },
}

impl SharedRandK {
    /// `rand-k:k=K,shared[,unscaled]`.
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        spec.take_flag("shared")?;
        let (k, scaled) = Self::k_and_scaling(spec, d)?;
        Ok(SharedRandK::new(spec.text(), d, k, scaled))
    }

    /// `random-block:k=K[,unscaled]`.
    pub fn block_from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        let (k, scaled) = Self::k_and_scaling(spec, d)?;
        let block = Support::Block { start: 0 };
        Ok(SharedRandK { name: "random-block", support: block, ..SharedRandK::new(spec.text(), d, k, scaled) })
    }

    fn k_and_scaling(spec: &mut Spec, d: usize) -> Result<(usize, bool)> {
        let k = spec.take_usize("k")?;
        check_k(spec, k, d)?;
        Ok((k, !spec.take_flag("unscaled")?))
    }

    pub fn new(spec: &str, d: usize, k: usize, scaled: bool) -> Self {
        let factor = if scaled { d as f64 / k as f64 } else { 1.0 };
        let support = Support::Subset(SubsetSampler::new(d, k));
        SharedRandK { spec: spec.to_string(), name: "rand-k", d, k, factor, scaled, support }
    }

    fn support(&self) -> impl Iterator<Item = usize> + '_ {
        let (all, d) = (self.k == self.d, self.d);
        (0..self.k).map(move |i| match &self.support {
            _ if all => i,
            Support::Subset(sampler) => sampler.current()[i] as usize,
            Support::Block { start } => (start + i) % d,
        })
    }
}

impl Compressor for SharedRandK {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        if self.scaled {
            Class::Unbiased { omega: self.factor - 1.0 }
        } else {
            Class::Contractive { alpha: self.k as f64 / self.d as f64 }
        }
    }

    fn draws_shared(&self) -> bool {
        true
    }

    fn begin_round(&mut self, shared: &mut Stream) {
        if self.k < self.d {
            match &mut self.support {
                Support::Subset(sampler) => {
                    sampler.draw(shared);
                }
                Support::Block { start } => *start = shared.random_range(0..self.d),
            }
        }
    }

    fn encode(&mut self, x: &[f64], _rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{}: encoding a vector of the wrong dimension", self.name);
        out.clear();
        out.reserve(4 * self.k);
        for j in self.support() {
            put_f32(out, (x[j] * self.factor) as f32);
        }
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(self.name, acc, self.d)?;
        expect_len(self.name, msg, 4 * self.k)?;
        for (j, b) in self.support().zip(msg.chunks_exact(4)) {
            acc[j] += scale * f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64;
        }
        Ok(())
    }

    fn paper_bits(&self, _msg: &[u8]) -> u64 {
        Summable::paper_bits(self)
    }

    fn summable(&self) -> Option<&dyn Summable> {
        Some(self)
    }
}

impl Summable for SharedRandK {
    fn values_per_worker(&self) -> usize {
        self.k
    }

    fn project(&self, x: &[f64], values: &mut [f64]) {
        for (v, j) in values.iter_mut().zip(self.support()) {
            *v = (x[j] * self.factor) as f32 as f64;
        }
    }

    fn add_expanded(&self, values: &[f64], scale: f64, acc: &mut [f64]) {
        for (v, j) in values.iter().zip(self.support()) {
            acc[j] += scale * v;
        }
    }

    fn paper_bits(&self) -> u64 {
        if self.k == self.d {
            32 * self.d as u64
        } else {
            32 * self.k as u64 + 32
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::compress::build;
    use crate::rng::{self, Purpose};

    /// Sums of projections equal the projection of the sum on the shared support
    /// (exactly, for values that are exact in f32), and workers agree on the support.
    #[test]
    fn shared_supports_make_projections_additive() {
        let d = 50;
        let mut a = build("rand-k:k=7,shared,unscaled", d, 0).unwrap();
        let mut b = build("rand-k:k=7,shared,unscaled", d, 0).unwrap();
        let (mut ra, mut rb) = (rng::shared(3, Purpose::Server), rng::shared(3, Purpose::Server));
        let x: Vec<f64> = (0..d).map(|j| j as f64 * 0.25 - 3.0).collect();
        let y: Vec<f64> = (0..d).map(|j| (j % 7) as f64).collect();
        for _ in 0..20 {
            a.begin_round(&mut ra);
            b.begin_round(&mut rb);
            let (sa, sb) = (a.summable().unwrap(), b.summable().unwrap());
            let (mut va, mut vb, mut vs) = (vec![0.0; 7], vec![0.0; 7], vec![0.0; 7]);
            sa.project(&x, &mut va);
            sb.project(&y, &mut vb);
            let sum: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p + q).collect();
            sa.project(&sum, &mut vs);
            let added: Vec<f64> = va.iter().zip(&vb).map(|(p, q)| p + q).collect();
            assert_eq!(added, vs);
            let (mut ea, mut eb) = (vec![0.0; d], vec![0.0; d]);
            sa.add_expanded(&va, 1.0, &mut ea);
            sb.add_expanded(&va, 1.0, &mut eb);
            assert_eq!(ea, eb, "both workers expand onto the same support");
            assert_eq!(ea.iter().filter(|v| **v != 0.0).count(), va.iter().filter(|v| **v != 0.0).count());
        }
    }

    /// Through an allgather (bytes) or an allreduce (values), a worker's compressed vector
    /// is the same, bit for bit.
    #[test]
    fn message_and_projection_decode_alike() {
        let d = 40;
        let mut c = build("rand-k:k=9,shared", d, 0).unwrap();
        c.begin_round(&mut rng::shared(5, Purpose::SharedSupport));
        let x: Vec<f64> = (0..d).map(|j| (j as f64 * 0.37).sin()).collect();
        let mut msg = Vec::new();
        c.encode(&x, &mut rng::private(1, 0, Purpose::Compressor), &mut msg);
        let (mut from_msg, mut from_values, mut values) = (vec![0.0; d], vec![0.0; d], vec![0.0; 9]);
        c.decode_add(&msg, 0.5, &mut from_msg).unwrap();
        let s = c.summable().unwrap();
        s.project(&x, &mut values);
        s.add_expanded(&values, 0.5, &mut from_values);
        assert_eq!(from_msg, from_values);
    }

    #[test]
    fn private_compressors_are_not_summable() {
        for spec in ["top-k:k=3", "rand-k:k=3", "qsgd:s=2", "clt-k:k=3", "sketch:rows=3,cols=4"] {
            assert!(build(spec, 10, 0).unwrap().summable().is_none(), "{spec}");
        }
        assert!(build("identity", 10, 0).unwrap().summable().is_some());
        assert!(build("rand-k:k=11,shared", 10, 0).is_err());
    }
}
