//! Half-precision casts: `fp16` (IEEE 754 binary16) and `bf16` (bfloat16), what PyTorch
//! DDP's communication hooks (`fp16_compress_hook`, `bf16_compress_hook`) and Horovod's
//! `Compression.fp16` ship: every coordinate rounded to the 16-bit format.
//!
//! Issue 12 (no ALGORITHMS.md section: the formats are IEEE 754-2008 §3.6 for binary16 and
//! the truncated-binary32 bfloat16 of Google's TPUs; the `half` crate holds the 16-bit
//! patterns).
//!
//! * Definition: C(x)_j = the nearest value of the format to x_j, ties to the even
//!   significand (round-to-nearest-even, from f64 in one rounding: `Format::round`). binary16: 11 significand bits, normal range [2⁻¹⁴, 65504], subnormals
//!   down to 2⁻²⁴; bfloat16: 8 significand bits, binary32's exponent range.
//! * Overflow, as the frameworks' casts do: |x_j| ≥ 65520 (binary16; (2 − 2⁻⁸)·2¹²⁷ for
//!   bfloat16) becomes ±∞, and the training diverges visibly (NaN in f); a NaN stays NaN.
//!   Values below half the smallest subnormal flush to ±0.
//! * Class: contractive with α = 1 − u², u = 2⁻¹¹ (binary16) or 2⁻⁸ (bfloat16), the unit
//!   roundoff: |C(x)_j − x_j| ≤ u|x_j| for every x_j in the normal range, hence
//!   ‖C(x) − x‖² ≤ u²‖x‖². Outside it the bound does not hold (overflow; an underflowing
//!   coordinate loses up to all of itself): deterministic, but not a uniform constant —
//!   error feedback (`ef`, `ef21`) is what makes the casts safe near convergence, where
//!   gradients are tiny.
//! * Randomness: none.
//! * Wire (little-endian): d values of 2 bytes, coordinate j at bytes 2j..2j+2; 2d bytes.
//! * Paper bits: 16d.

use super::wire::{expect_dim, expect_len};
use super::{Class, Compressor, Spec};
use crate::error::Result;
use crate::rng::Stream;
use half::{bf16, f16};

/// The two formats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    Fp16,
    Bf16,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Fp16 => "fp16",
            Format::Bf16 => "bf16",
        }
    }

    /// The unit roundoff 2^−p (p significand bits).
    fn unit_roundoff(self) -> f64 {
        match self {
            Format::Fp16 => 2f64.powi(-11),
            Format::Bf16 => 2f64.powi(-8),
        }
    }

    /// (significand bits p, smallest normal exponent, largest exponent).
    fn shape(self) -> (i32, i32, i32) {
        match self {
            Format::Fp16 => (11, -14, 15),
            Format::Bf16 => (8, -126, 127),
        }
    }

    /// v rounded to nearest-even in the format, ±∞ past its largest finite value: v over
    /// the quantum 2^(e − p + 1) of its binade e (at least the smallest normal exponent, so
    /// subnormals share one quantum) is exact, a power of two, and is rounded ties-to-even.
    /// Ours, not `half`'s `from_f64`: that one rounds some values twice (2⁻²⁵ + 2⁻⁵⁴ went to
    /// 0 instead of the smallest subnormal 2⁻²⁴; found by `other_values_round_to_nearest_even`).
    fn round(self, v: f64) -> f64 {
        if !v.is_finite() || v == 0.0 {
            return v;
        }
        let (p, min_exp, max_exp) = self.shape();
        let binade = (((v.abs().to_bits() >> 52) & 0x7ff) as i32 - 1023).max(min_exp);
        let quantum = 2f64.powi(binade - p + 1);
        let rounded = (v / quantum).round_ties_even() * quantum;
        let largest = 2f64.powi(max_exp) * (2.0 - 2f64.powi(1 - p));
        if rounded.abs() > largest {
            f64::INFINITY.copysign(v)
        } else {
            rounded
        }
    }

    /// The bit pattern of `round(v)`: that value is exact in the format (and in f32), so
    /// the crate's conversion of it cannot round.
    fn encode_value(self, v: f64) -> u16 {
        let exact = self.round(v);
        match self {
            Format::Fp16 => f16::from_f64(exact).to_bits(),
            Format::Bf16 => bf16::from_f64(exact).to_bits(),
        }
    }

    fn decode_value(self, bits: u16) -> f64 {
        match self {
            Format::Fp16 => f16::from_bits(bits).to_f64(),
            Format::Bf16 => bf16::from_bits(bits).to_f64(),
        }
    }
}

pub struct HalfCast {
    spec: String,
    format: Format,
    d: usize,
}

impl HalfCast {
    pub fn new(spec: &Spec, format: Format, d: usize) -> Self {
        HalfCast { spec: spec.text().to_string(), format, d }
    }
}

impl Compressor for HalfCast {
    fn spec(&self) -> &str {
        &self.spec
    }

    /// On the normal range (module docs).
    fn class(&self) -> Class {
        let u = self.format.unit_roundoff();
        Class::Contractive { alpha: 1.0 - u * u }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], _rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{}: encoding a vector of the wrong dimension", self.format.name());
        out.clear();
        out.reserve(2 * self.d);
        for &v in x {
            out.extend_from_slice(&self.format.encode_value(v).to_le_bytes());
        }
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        let name = self.format.name();
        expect_dim(name, acc, self.d)?;
        expect_len(name, msg, 2 * self.d)?;
        for (a, b) in acc.iter_mut().zip(msg.chunks_exact(2)) {
            *a += scale * self.format.decode_value(u16::from_le_bytes([b[0], b[1]]));
        }
        Ok(())
    }

    fn paper_bits(&self, _msg: &[u8]) -> u64 {
        16 * self.d as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{build, decode};
    use crate::rng::{self, Purpose};

    /// C(values) through the wire, one coordinate each.
    fn cast(spec: &str, values: &[f64]) -> Vec<f64> {
        let mut c = build(spec, values.len(), 0).unwrap();
        let mut msg = Vec::new();
        c.encode(values, &mut rng::private(1, 0, Purpose::Compressor), &mut msg);
        let mut out = vec![0.0; values.len()];
        decode(c.as_ref(), &msg, &mut out).unwrap();
        out
    }

    /// Every finite value of the format, as f64 in bit-pattern order per sign.
    fn finite_values(format: Format) -> Vec<(u16, f64)> {
        (0..=u16::MAX).map(|b| (b, format.decode_value(b))).filter(|(_, v)| v.is_finite()).collect()
    }

    /// Every finite value of both formats survives the round trip exactly (a −0 decodes as
    /// 0: decoding adds into the accumulator).
    #[test]
    fn representable_values_round_trip_exactly() {
        for (spec, format) in [("fp16", Format::Fp16), ("bf16", Format::Bf16)] {
            let values: Vec<f64> = finite_values(format).into_iter().map(|(_, v)| v).collect();
            let out = cast(spec, &values);
            for (v, o) in values.iter().zip(&out) {
                assert!(v == o, "{spec}: {v:e} came back as {o:e}");
            }
        }
    }

    /// Between two neighbours a < b of the format: below the midpoint gives a, above gives
    /// b — also a hair (2⁻³⁰(b − a)) from it, where rounding through f32 first would land on
    /// the tie — and the midpoint itself the one with the even significand (even bit
    /// pattern); for every pair of positive finite neighbours.
    #[test]
    fn other_values_round_to_nearest_even() {
        for (spec, format) in [("fp16", Format::Fp16), ("bf16", Format::Bf16)] {
            let positive: Vec<(u16, f64)> = finite_values(format).into_iter().filter(|&(b, _)| b < 0x8000).collect();
            let (mut inputs, mut want) = (Vec::new(), Vec::new());
            for pair in positive.windows(2) {
                let ((pa, a), (pb, b)) = (pair[0], pair[1]);
                let mid = a + (b - a) / 2.0; // exact in f64: 5 or 16 more significand bits
                let even = if pa % 2 == 0 { a } else { b };
                assert!(pa % 2 != pb % 2);
                let (quarter, hair) = ((b - a) / 4.0, (b - a) * 2f64.powi(-30));
                // mid ± hair: a cast through f32 would round them onto the tie (twice).
                inputs.extend([mid - quarter, mid, mid + quarter, -mid, mid - hair, mid + hair]);
                want.extend([a, even, b, -even, a, b]);
            }
            let out = cast(spec, &inputs);
            for ((v, o), w) in inputs.iter().zip(&out).zip(&want) {
                assert!(o == w, "{spec}: {v:e} → {o:e}, want {w:e}");
            }
        }
    }

    /// Overflow is the frameworks' cast: ±∞ from the rounding threshold on; a NaN stays NaN;
    /// below half the smallest subnormal, ±0.
    #[test]
    fn overflow_gives_infinity_and_underflow_zero() {
        let fp16 = cast("fp16", &[65519.99, 65520.0, -1e6, f64::NAN, 2f64.powi(-25), -2f64.powi(-26)]);
        assert_eq!(&fp16[..3], &[65504.0, f64::INFINITY, f64::NEG_INFINITY]);
        assert!(fp16[3].is_nan());
        assert_eq!((fp16[4], fp16[5]), (0.0, 0.0), "2⁻²⁵ ties to the even 0, 2⁻²⁶ is below it");
        assert_eq!(cast("fp16", &[2f64.powi(-25) * 1.5])[0], 2f64.powi(-24), "above the tie: the smallest subnormal");
        let max = 2f64.powi(127) * (2.0 - 2f64.powi(-7));
        let bf16 = cast("bf16", &[max, 2f64.powi(127) * (2.0 - 2f64.powi(-8)), 1e39]);
        assert_eq!(bf16, vec![max, f64::INFINITY, f64::INFINITY]);
    }
}
