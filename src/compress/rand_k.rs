//! Rand-k: keeps k coordinates chosen uniformly at random, scaled or not.
//!
//! Spec: ../shared/ALGORITHMS.md §1.2. SPEC: `rand-k:k=K[,unscaled]` with 1 ≤ K ≤ d.
//!
//! * Definition: S ⊂ {0..d−1} uniform with |S| = k (without replacement).
//!   Scaled (default): Q(x) = (d/k)·Σ_{j∈S} x_j e_j. Unscaled: C(x) = Σ_{j∈S} x_j e_j.
//! * Class: scaled is unbiased with ω = d/k − 1; unscaled is contractive with α = k/d
//!   (E‖C(x) − x‖² = (1 − k/d)‖x‖², in expectation only).
//! * Randomness: the worker's private stream (§0.3), k draws per message (Floyd's
//!   algorithm).
//! * Wire: the sparse payload of [`super::sparse`]: k f32 values (already multiplied by
//!   d/k when scaled), then the k increasing indices in ⌈log₂ d⌉ bits each;
//!   4k + ⌈k⌈log₂ d⌉/8⌉ bytes. Indices travel explicitly, so the receiver needs no
//!   shared seed.
//! * Paper bits: k(32 + ⌈log₂ d⌉) (§1.2; MARINA and MiniFL count only the 32k value bits).

use rand::Rng;

use super::sparse::SparseFormat;
use super::{Class, Compressor, Spec};
use crate::error::Result;
use crate::rng::Stream;

const NAME: &str = "rand-k";

pub struct RandK {
    spec: String,
    d: usize,
    scaled: bool,
    format: SparseFormat,
    sampler: SubsetSampler,
}

/// Uniform k-subsets of 0..d without replacement, drawing without allocation. Shared by
/// private rand-k and shared-seed rand-k.
pub struct SubsetSampler {
    d: usize,
    k: usize,
    /// One bit per coordinate: membership in the sample being drawn. All zero between calls.
    taken: Vec<u64>,
    /// The drawn indices; capacity k, reused.
    chosen: Vec<u32>,
}

impl SubsetSampler {
    pub fn new(d: usize, k: usize) -> Self {
        SubsetSampler { d, k, taken: vec![0; d.div_ceil(64)], chosen: Vec::with_capacity(k) }
    }

    /// Draws k distinct indices uniformly (Floyd's algorithm: for j = d−k..d−1 take a
    /// uniform t ≤ j, or j itself when t is already taken) and returns them sorted.
    /// O(k log k), no allocation; the bitset is cleared again before returning.
    pub fn draw(&mut self, rng: &mut Stream) -> &[u32] {
        let (d, k) = (self.d as u32, self.k as u32);
        self.chosen.clear();
        for j in d - k..d {
            let t = rng.random_range(0..=j);
            let pick = if self.is_taken(t) { j } else { t };
            self.taken[pick as usize / 64] |= 1 << (pick % 64);
            self.chosen.push(pick);
        }
        for &j in &self.chosen {
            self.taken[j as usize / 64] &= !(1 << (j % 64));
        }
        self.chosen.sort_unstable();
        &self.chosen
    }

    /// The last subset drawn.
    pub fn current(&self) -> &[u32] {
        &self.chosen
    }

    fn is_taken(&self, j: u32) -> bool {
        self.taken[j as usize / 64] >> (j % 64) & 1 == 1
    }
}

impl RandK {
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        let k = spec.take_usize("k")?;
        let scaled = !spec.take_flag("unscaled")?;
        let format = SparseFormat::new(NAME, spec, d, k)?;
        Ok(RandK { spec: spec.text().to_string(), d, scaled, format, sampler: SubsetSampler::new(d, k) })
    }
}

impl Compressor for RandK {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        let ratio = self.d as f64 / self.format.k() as f64;
        if self.scaled {
            Class::Unbiased { omega: ratio - 1.0 }
        } else {
            Class::Contractive { alpha: 1.0 / ratio }
        }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{NAME}: encoding a vector of the wrong dimension");
        let factor = if self.scaled { self.d as f64 / self.format.k() as f64 } else { 1.0 };
        let chosen = self.sampler.draw(rng);
        self.format.write(chosen, |j| (x[j] * factor) as f32, out);
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        self.format.decode_add(msg, scale, acc)
    }

    fn paper_bits(&self, _msg: &[u8]) -> u64 {
        self.format.paper_bits()
    }
}
