//! CLT-k, cyclic local top-k (ScaleCom): the leader's top-k indices, everyone's values.
//!
//! Spec: ../shared/ALGORITHMS.md §E.1. SPEC: `clt-k:k=K` with 1 ≤ K ≤ d; used by
//! `--method scalecom`, which supplies the leader schedule and the index broadcast.
//!
//! * Definition: the leader ℓ picks I = the k largest |p_ℓ| (ties → lowest index, as
//!   Top-k); every worker j then sends p_j restricted to I. All workers share I, so
//!   Σ_j w_j CLT_ℓ(p_j) = CLT_ℓ(Σ_j w_j p_j): the values are summed by an allreduce of k
//!   values (§E.1 commutativity).
//! * Class (one worker, its own leader): Top-k, contractive with α = k/d. With several
//!   workers the contraction of the mean depends on how far the leader's set is from the
//!   true top-k (§E.1; ScaleCom records that overlap as a diagnostic).
//! * Randomness: none.
//! * Wire: the index broadcast is k u32, little-endian, strictly increasing, each < d
//!   (4k bytes); the values are k f32-rounded numbers in the allreduce. As a standalone
//!   message (a leader alone) it is the Top-k sparse payload of [`super::sparse`].
//! * Paper bits: 32k per worker for the values, plus k⌈log₂ d⌉ once per round for the
//!   leader's indices; standalone, k(32 + ⌈log₂ d⌉).

use super::top_k::{select_top_k, TopK};
use super::wire::ceil_log2;
use super::{Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::Stream;

const NAME: &str = "clt-k";

pub struct CltK {
    /// The leader alone: its own top-k, the standalone form.
    alone: TopK,
    d: usize,
    /// Scratch of every selection.
    order: Vec<u32>,
    /// This round's index set I, increasing.
    support: Vec<u32>,
}

impl CltK {
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        let alone = TopK::named(NAME, spec, d)?;
        let k = alone.k();
        Ok(CltK { alone, d, order: Vec::with_capacity(d), support: Vec::with_capacity(k) })
    }

    pub fn k(&self) -> usize {
        self.alone.k()
    }

    /// ⌈log₂ d⌉: the paper bits of one broadcast index.
    pub fn index_bits(&self) -> u64 {
        u64::from(ceil_log2(self.d as u64))
    }

    /// The leader's choice for vector p: writes I = Top_k(|p|) as the broadcast message
    /// (k little-endian u32).
    pub fn select(&mut self, p: &[f64], out: &mut Vec<u8>) {
        let k = self.k();
        let top = select_top_k(&mut self.order, p, k);
        out.clear();
        out.extend(top.iter().flat_map(|j| j.to_le_bytes()));
    }

    /// Fixes this round's support from the leader's broadcast; rejects anything but k
    /// strictly increasing indices below d.
    pub fn set_support(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() != 4 * self.k() {
            return Err(Error::wire(NAME, format!("{} bytes of indices, expected {}", msg.len(), 4 * self.k())));
        }
        self.support.clear();
        let mut lowest = 0u32;
        for (i, b) in msg.chunks_exact(4).enumerate() {
            let j = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if j < lowest || j as usize >= self.d {
                let what = format!("index #{i} is {j}, expected {lowest}..{} (increasing, below d)", self.d);
                return Err(Error::wire(NAME, what));
            }
            lowest = j + 1;
            self.support.push(j);
        }
        Ok(())
    }

    /// This round's index set I.
    pub fn support(&self) -> &[u32] {
        &self.support
    }

    /// values[i] = p[I_i] rounded to f32, as it travels (§0.6).
    pub fn project(&self, p: &[f64], values: &mut [f64]) {
        for (v, &j) in values.iter_mut().zip(&self.support) {
            *v = p[j as usize] as f32 as f64;
        }
    }

    /// acc[I_i] += scale · values[i].
    pub fn add_expanded(&self, values: &[f64], scale: f64, acc: &mut [f64]) {
        for (v, &j) in values.iter().zip(&self.support) {
            acc[j as usize] += scale * v;
        }
    }

    /// |I ∩ Top_k(v)| / k: how much of the true top-k of v the leader's set caught (§E.1).
    pub fn overlap_with_top_k(&mut self, v: &[f64]) -> f64 {
        let k = self.k();
        let truth = select_top_k(&mut self.order, v, k);
        // Both lists are increasing: count the common entries by merging.
        let (mut a, mut b, mut common) = (0, 0, 0);
        while a < truth.len() && b < self.support.len() {
            match truth[a].cmp(&self.support[b]) {
                std::cmp::Ordering::Less => a += 1,
                std::cmp::Ordering::Greater => b += 1,
                std::cmp::Ordering::Equal => {
                    common += 1;
                    a += 1;
                    b += 1;
                }
            }
        }
        common as f64 / truth.len() as f64
    }
}

/// Standalone (one worker, its own leader) CLT-k is Top-k: the form the property suite
/// checks.
impl Compressor for CltK {
    fn spec(&self) -> &str {
        self.alone.spec()
    }

    fn class(&self) -> Class {
        self.alone.class()
    }

    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        self.alone.encode(x, rng, out)
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        self.alone.decode_add(msg, scale, acc)
    }

    fn paper_bits(&self, msg: &[u8]) -> u64 {
        self.alone.paper_bits(msg)
    }

    fn only_for_method(&self) -> Option<&'static str> {
        Some("scalecom")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clt(k: usize, d: usize) -> CltK {
        CltK::from_spec(&mut Spec::parse_compressor(&format!("clt-k:k={k}")).unwrap(), d).unwrap()
    }

    /// §E.4: through this code, the weighted sum of every worker's CLT-k values is the
    /// CLT-k of the weighted sum, for the leader's index set (exactly, summing in the
    /// same order, on f32-exact inputs).
    #[test]
    fn clt_k_commutes_with_the_weighted_sum() {
        let (d, k) = (12, 4);
        let p: Vec<Vec<f64>> =
            (0..3).map(|w| (0..d).map(|j| ((w * 10 + j) * 37 % 17) as f64 - 8.0).collect()).collect();
        let weights = [0.25, 0.5, 0.25];
        let mut c = clt(k, d);
        let mut indices = Vec::new();
        c.select(&p[1], &mut indices);
        c.set_support(&indices).unwrap();
        let (mut summed, mut values) = (vec![0.0; k], vec![0.0; k]);
        for (pj, w) in p.iter().zip(weights) {
            c.project(pj, &mut values);
            summed.iter_mut().zip(&values).for_each(|(s, v)| *s += w * v);
        }
        let mut mean = vec![0.0; d];
        for (pj, w) in p.iter().zip(weights) {
            mean.iter_mut().zip(pj).for_each(|(m, v)| *m += w * v);
        }
        c.project(&mean, &mut values);
        assert_eq!(summed, values);
        // The leader's set is the leader's top-k, as the broadcast carries it.
        let mut expanded = vec![0.0; d];
        c.add_expanded(&values, 1.0, &mut expanded);
        assert_eq!(c.support().len(), k);
        assert!(c.support().windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_overlap_counts_shared_indices() {
        let mut c = clt(2, 6);
        let mut idx = Vec::new();
        c.select(&[5.0, 0.0, 4.0, 0.0, 0.0, 0.0], &mut idx);
        c.set_support(&idx).unwrap();
        assert_eq!(c.overlap_with_top_k(&[5.0, 0.0, 4.0, 0.0, 0.0, 0.0]), 1.0);
        assert_eq!(c.overlap_with_top_k(&[5.0, 0.0, 0.0, 4.5, 0.0, 0.0]), 0.5);
        assert_eq!(c.overlap_with_top_k(&[0.0, 1.0, 0.0, 0.0, 3.0, 0.0]), 0.0);
    }

    #[test]
    fn malformed_index_broadcasts_are_wire_errors() {
        let mut c = clt(2, 6);
        for bad in [vec![0u32, 0], vec![3, 1], vec![1, 6], vec![1]] {
            let msg: Vec<u8> = bad.iter().flat_map(|j| j.to_le_bytes()).collect();
            assert!(matches!(c.set_support(&msg), Err(Error::Wire { .. })), "{bad:?}");
        }
    }
}
