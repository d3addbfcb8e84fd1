//! Biased random sparsification (Beznosikov et al.): every coordinate kept with
//! probability p, independently, and not rescaled.
//!
//! Spec: ../shared/ALGORITHMS.md §1.13. SPEC: `bernoulli-sparse:p=F` with 0 < F ≤ 1.
//!
//! * Definition: C(x)_j = Z_j·x_j with Z_j ~ Bernoulli(p) independent. A zero coordinate
//!   is never sent (the same vector); a non-finite one always is, so that a diverged
//!   worker stays visible to the trainer.
//! * Class (§1.13, q = min_j p_j = p): B1(p, 1) and B2(p, 1), since E‖C(x)‖² = E⟨C(x), x⟩
//!   = p‖x‖²; B3(1/p), i.e. contractive with α = p: E‖C(x) − x‖² = (1 − p)‖x‖² exactly.
//!   Unlike `rand-k:k=pd,unscaled` the number sent is random (Binomial(d, p)), and no
//!   sampling without replacement is needed.
//! * Randomness: one coin per coordinate (`rng::Coins`, a 32-bit uniform) from the worker's private stream, whatever
//!   the value (the stream position does not depend on the data).
//! * Wire (little-endian): a u32 count c, then c f32 values in increasing index order,
//!   then their c indices in ⌈log₂ d⌉ bits each ([`super::sparse`]):
//!   4 + 4c + ⌈c⌈log₂ d⌉/8⌉ bytes.
//! * Paper bits: 32 + c(32 + ⌈log₂ d⌉) (the count, then values and indices as rand-k).

use super::sparse::{append_payload, index_bits, Payload};
use super::wire::{expect_dim, packed_len, Reader};
use super::{Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::{Coins, Stream};

const NAME: &str = "bernoulli-sparse";

pub struct BernoulliSparse {
    spec: String,
    p: f64,
    format: KeptFormat,
}

impl BernoulliSparse {
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        let p = spec.take_f64("p")?;
        if !(p > 0.0 && p <= 1.0) {
            return Err(Error::config(
                format!("compressor '{}': the keep probability p must be in (0, 1]", spec.text()),
                "give it as bernoulli-sparse:p=F, e.g. p=0.1 (expected density 10 %)",
            ));
        }
        Ok(BernoulliSparse { spec: spec.text().to_string(), p, format: KeptFormat::new(NAME, spec, d)? })
    }
}

impl Compressor for BernoulliSparse {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        Class::Contractive { alpha: self.p }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        let p = self.p;
        let mut coins = Coins::new(rng, x.len());
        self.format.encode(x, |_| coins.unit() < p, |j| x[j] as f32, out);
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        self.format.decode_add(msg, scale, acc)
    }

    fn paper_bits(&self, msg: &[u8]) -> u64 {
        self.format.paper_bits(msg)
    }
}

/// The message of independent sparsification (this module's and rand-τ+'s): a u32 count
/// c, c f32 values in increasing index order, their indices in ⌈log₂ d⌉ bits each.
pub struct KeptFormat {
    name: &'static str,
    d: usize,
    index_bits: u32,
    /// The kept indices of the message being written; capacity d, reused.
    kept: Vec<u32>,
}

impl KeptFormat {
    pub fn new(name: &'static str, spec: &Spec, d: usize) -> Result<Self> {
        Ok(KeptFormat { name, d, index_bits: index_bits(spec, d)?, kept: Vec::with_capacity(d) })
    }

    /// Clears `out` and writes the coordinates `keep(j)` picks (asked once per coordinate,
    /// in order, whatever the value, so a stream's position does not depend on the data)
    /// with values `value(j)`. A zero coordinate is never sent (the same vector); a
    /// non-finite one always is, so that a diverged worker stays visible.
    ///
    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    pub fn encode(
        &mut self,
        x: &[f64],
        mut keep: impl FnMut(usize) -> bool,
        value: impl Fn(usize) -> f32,
        out: &mut Vec<u8>,
    ) {
        assert_eq!(x.len(), self.d, "{}: encoding a vector of the wrong dimension", self.name);
        self.kept.clear();
        for (j, &v) in x.iter().enumerate() {
            if (keep(j) && v != 0.0) || !v.is_finite() {
                self.kept.push(j as u32);
            }
        }
        out.clear();
        out.reserve(4 + 4 * self.kept.len() + packed_len(self.kept.len(), self.index_bits));
        out.extend_from_slice(&(self.kept.len() as u32).to_le_bytes());
        append_payload(&self.kept, self.index_bits, value, out);
    }

    pub fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(self.name, acc, self.d)?;
        let mut r = Reader::new(msg, self.name);
        let count = count_of(&mut r, self.d)?;
        Payload { name: self.name, d: self.d, index_bits: self.index_bits, k: count }
            .decode_add(&mut r, |j, v| acc[j] += scale * v)?;
        r.finish()
    }

    /// 32 + c(32 + ⌈log₂ d⌉).
    pub fn paper_bits(&self, msg: &[u8]) -> u64 {
        let count = count_of(&mut Reader::new(msg, self.name), self.d).unwrap_or(0) as u64;
        32 + count * (32 + self.index_bits as u64)
    }
}

/// The u32 count at the head of a message, at most d.
fn count_of(r: &mut Reader, d: usize) -> Result<usize> {
    let b = r.take(4)?;
    let count = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if count > d {
        return Err(r.error(format!("the message says {count} coordinates, but d = {d}")));
    }
    Ok(count)
}
