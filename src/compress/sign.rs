//! Scaled sign (1-bit compression with an ℓ₁ scale).
//!
//! Spec: ../shared/ALGORITHMS.md §1.11. SPEC: `sign`.
//!
//! * Definition: C(x) = (‖x‖₁/d)·sign(x), with sign(0) = +1 (also for −0.0): a fixed,
//!   deterministic convention (§1.11 asks to document it). Zeros cost nothing extra
//!   since the scale of the zero vector is 0, so C(0) = 0.
//! * Class: contractive. ‖C(x) − x‖² = ‖x‖² − ‖x‖₁²/d exactly, so α(x) = ‖x‖₁²/(d‖x‖²),
//!   whose worst case over x is α = 1/d (a single spike). The f32 rounding of the scale
//!   adds d·(scale_f32 − ‖x‖₁/d)² ≤ 2^-48‖x‖² to that identity.
//! * Randomness: none.
//! * Wire (little-endian): bytes 0..4 the scale ‖x‖₁/d as f32 (rounded to nearest); then
//!   d sign bits packed least-significant bit first (`wire::BitWriter`), 1 = negative,
//!   last byte zero-padded. 4 + ⌈d/8⌉ bytes.
//! * Paper bits: d + 32.

use super::wire::{add_signed, expect_dim, expect_len, pack_bits, packed_len, put_f32, Reader};
use super::{Class, Compressor, Spec};
use crate::error::Result;
use crate::rng::Stream;

const NAME: &str = "sign";

pub struct ScaledSign {
    spec: String,
    d: usize,
}

impl ScaledSign {
    pub fn new(spec: &Spec, d: usize) -> Self {
        ScaledSign { spec: spec.text().to_string(), d }
    }

    fn wire_bytes(&self) -> usize {
        4 + packed_len(self.d, 1)
    }
}

impl Compressor for ScaledSign {
    fn spec(&self) -> &str {
        &self.spec
    }

    /// The worst case of ‖x‖₁²/(d‖x‖²) (§1.11).
    fn class(&self) -> Class {
        Class::Contractive { alpha: 1.0 / self.d as f64 }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], _rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{NAME}: encoding a vector of the wrong dimension");
        out.clear();
        out.reserve(self.wire_bytes());
        let l1: f64 = x.iter().map(|v| v.abs()).sum();
        put_f32(out, (l1 / self.d as f64) as f32);
        pack_bits(out, x, |v| v < 0.0);
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(NAME, acc, self.d)?;
        expect_len(NAME, msg, self.wire_bytes())?;
        let mut r = Reader::new(msg, NAME);
        let magnitude = r.f32()? as f64;
        let signs = r.take(packed_len(self.d, 1))?;
        r.finish()?;
        // A set bit is a negative coordinate: scale·(−m) = −(scale·m) exactly.
        add_signed(signs, scale * magnitude, acc);
        Ok(())
    }

    fn paper_bits(&self, _msg: &[u8]) -> u64 {
        self.d as u64 + 32
    }
}
