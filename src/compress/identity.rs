//! The identity compressor: sends every coordinate as an f32.
//!
//! Spec: ../shared/ALGORITHMS.md §1.1. SPEC: `identity`.
//!
//! * Class: unbiased with ω = 0 (α = 1). The only loss is the f32 rounding of each value
//!   (§0.6: f64 state, f32 on the wire).
//! * Randomness: none.
//! * Wire (little-endian): d values as f32, coordinate j at bytes 4j..4j+4; 4d bytes.
//! * Paper bits: 32d.
//! * Summable: every worker's support is all of 0..d, so `--collective allreduce` sums
//!   the f32-rounded values instead of gathering them.

use super::wire::{expect_dim, expect_len, put_f32};
use super::{Class, Compressor, Spec, Summable};
use crate::error::Result;
use crate::rng::Stream;

const NAME: &str = "identity";

pub struct Identity {
    spec: String,
    d: usize,
}

impl Identity {
    pub fn new(spec: &Spec, d: usize) -> Self {
        Identity { spec: spec.text().to_string(), d }
    }
}

impl Compressor for Identity {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        Class::Unbiased { omega: 0.0 }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], _rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{NAME}: encoding a vector of the wrong dimension");
        out.clear();
        out.reserve(4 * self.d);
        for &v in x {
            put_f32(out, v as f32);
        }
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(NAME, acc, self.d)?;
        expect_len(NAME, msg, 4 * self.d)?;
        // The length is checked once above, so the values are read without a
        // per-value bounds check or Result (BENCHMARKS.md: identity decode was 4.5×
        // slower than its encode through the checked reader).
        for (a, b) in acc.iter_mut().zip(msg.chunks_exact(4)) {
            *a += scale * f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64;
        }
        Ok(())
    }

    fn paper_bits(&self, _msg: &[u8]) -> u64 {
        32 * self.d as u64
    }

    fn summable(&self) -> Option<&dyn Summable> {
        Some(self)
    }
}

impl Summable for Identity {
    fn values_per_worker(&self) -> usize {
        self.d
    }

    fn project(&self, x: &[f64], values: &mut [f64]) {
        for (v, &xj) in values.iter_mut().zip(x) {
            *v = xj as f32 as f64;
        }
    }

    fn add_expanded(&self, values: &[f64], scale: f64, acc: &mut [f64]) {
        for (a, v) in acc.iter_mut().zip(values) {
            *a += scale * v;
        }
    }

    fn paper_bits(&self) -> u64 {
        32 * self.d as u64
    }

    /// Dense messages gather by default (every method's uncompressed baseline); an
    /// allreduce on request.
    fn sum_by_default(&self) -> bool {
        false
    }
}
