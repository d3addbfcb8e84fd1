//! TernGrad (Wen et al.): ternary {−s, 0, +s} with s = ‖x‖_∞.
//!
//! Spec: ../shared/ALGORITHMS.md §1.12. SPEC: `terngrad`.
//!
//! * Definition: s = ‖x‖_∞; C(x)_j = s·sign(x_j)·β_j with β_j ~ Bernoulli(|x_j|/s).
//!   The zero vector gives s = 0 and all zeros. The per-layer scaling and 2.5σ clipping
//!   of the original paper are out of scope (§1.12).
//! * Exact unbiasedness: s travels as an f32 rounded up and the probabilities use that
//!   rounded s (as in §1.6), so |x_j|/s ≤ 1 and E[decoded] = x_j.
//! * Class: unbiased with ω = √d − 1: E‖C(x) − x‖² = s‖x‖₁ − ‖x‖² ≤ (√d − 1)‖x‖².
//! * Randomness: one coin per coordinate (`rng::Coins`, a 32-bit uniform) from the worker's private stream (§0.3).
//! * Wire (little-endian): bytes 0..4 s as f32; then d fields of 2 bits, packed
//!   least-significant bit first (`wire::BitWriter`): 0 = zero, 1 = +s, 2 = −s; 3 is
//!   malformed. Last byte zero-padded: 4 + ⌈2d/8⌉ bytes.
//! * Paper bits: 32 + 2d (§1.12; base-3 packing would give 32 + d·log₂3).
//! * Non-finite input: s becomes NaN or ∞ and every decoded coordinate NaN or ±∞, so a
//!   diverged worker stays visible.

use super::fields::{put_fields, Units};
use super::wire::{expect_dim, expect_len, f32_round_up, packed_len, put_f32, BitReader, BitWriter, Reader};
use super::{Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::{Coins, Stream};
use crate::vector::max_abs;

const NAME: &str = "terngrad";
const ZERO: u32 = 0;
const PLUS: u32 = 1;
const MINUS: u32 = 2;

pub struct TernGrad {
    spec: String,
    d: usize,
}

impl TernGrad {
    pub fn new(spec: &Spec, d: usize) -> Self {
        TernGrad { spec: spec.text().to_string(), d }
    }

    fn wire_bytes(&self) -> usize {
        4 + packed_len(self.d, 2)
    }
}

impl Compressor for TernGrad {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        Class::Unbiased { omega: (self.d as f64).sqrt() - 1.0 }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{NAME}: encoding a vector of the wrong dimension");
        out.clear();
        out.reserve(self.wire_bytes());
        let s = f32_round_up(max_abs(x));
        put_f32(out, s);
        let s = s as f64;
        let mut fields = BitWriter::new(out);
        let mut coins = Coins::new(rng, x.len());
        put_fields(&mut fields, 2, x, 0, &mut Units::Coins(&mut coins), |_, v, u| {
            // `s > 0` also excludes NaN; then β = 0 everywhere and the NaN scale carries.
            let kept = (s > 0.0) & (u < v.abs() / s);
            match (kept, v < 0.0) {
                (false, _) => ZERO,
                (true, false) => PLUS,
                (true, true) => MINUS,
            }
        });
        fields.finish();
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(NAME, acc, self.d)?;
        expect_len(NAME, msg, self.wire_bytes())?;
        let mut r = Reader::new(msg, NAME);
        let s = r.f32()? as f64;
        let mut fields = BitReader::new(r.take(packed_len(self.d, 2))?);
        r.finish()?;
        // Indexed by the field, so that a random ternary costs a load, not a branch; the
        // undefined field 3 is checked on its own (a predictable branch).
        const TERNARY: [f64; 4] = {
            let mut t = [f64::NAN; 4];
            (t[ZERO as usize], t[PLUS as usize], t[MINUS as usize]) = (0.0, 1.0, -1.0);
            t
        };
        for (j, a) in acc.iter_mut().enumerate() {
            let field = fields.get(2);
            if field > MINUS {
                return Err(Error::wire(
                    NAME,
                    format!("coordinate {j} has field {field}; only 0, 1 and 2 are defined"),
                ));
            }
            // Zero fields are added too (s·0), so that a non-finite s shows up as NaN.
            *a += scale * (s * TERNARY[field as usize]);
        }
        Ok(())
    }

    fn paper_bits(&self, _msg: &[u8]) -> u64 {
        32 + 2 * self.d as u64
    }
}
