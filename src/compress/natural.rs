//! Natural compression C_nat (Horváth et al.): stochastic rounding to powers of two; and
//! its deterministic counterpart, rounding to the nearest power of two.
//!
//! Spec: ../shared/ALGORITHMS.md §1.8 and §1.13 ("general biased rounding"). SPEC:
//! `natural[,nearest]`.
//!
//! * Definition, per coordinate t: t = 0 → 0; otherwise with a = ⌊log₂|t|⌋, |t| becomes
//!   2^a with probability (2^{a+1} − |t|)/2^a, else 2^{a+1}; the sign is kept. An exact
//!   power of two is unchanged.
//! * Class: unbiased with ω = 1/8; the per-coordinate variance is exactly
//!   (2^{a+1} − |t|)(|t| − 2^a) ≤ t²/8.
//! * Range, f32 exponents on the wire:
//!   - |t| < 2^-126 (below the smallest normal f32) rounds between 0 and 2^-126, up with
//!     probability |t|·2^126: still unbiased, but the variance (2^-126 − |t|)|t| exceeds
//!     t²/8 there; in absolute terms it is below 2^-252 per coordinate.
//!   - finite |t| ≥ 2^127 is clamped to 2^127 (biased; only the top binade of f32 and
//!     beyond, > 1.7·10^38);
//!   - ±∞ and NaN travel as ±∞, so a diverged worker stays visible.
//! * `nearest` (Beznosikov et al.'s biased rounding onto the level set {±2^a}): |t| goes
//!   to whichever of 2^a, 2^{a+1} is nearer, ties down (the same rule with u = 1/2 in
//!   place of the coin). |C(t) − t| ≤ |t|/3 (worst at |t| = 1.5·2^a; the ratio of
//!   consecutive levels r = 2 gives (r − 1)/(r + 1)), so ‖C(x) − x‖² ≤ ‖x‖²/9: contractive
//!   with α = 8/9, B3(9/8). Outside the normal f32 range the range rules below apply:
//!   |t| < 2^-126 rounds to 0 or 2^-126, finite |t| ≥ 2^127 to 2^127.
//! * Randomness: one coin per coordinate (`rng::Coins`, a 32-bit uniform) from the worker's private stream (§0.3);
//!   none with `nearest`.
//! * Wire: d fields of 9 bits packed least-significant bit first (`wire::BitWriter`),
//!   last byte zero-padded; ⌈9d/8⌉ bytes. Bit 0 of a field is the sign (1 = negative),
//!   bits 1..9 the f32 biased exponent e: e = 0 is zero, e = 1..=254 is ±2^{e−127},
//!   e = 255 is ±∞. Every field value is valid.
//! * Paper bits: 9d (sign + 8-bit exponent, mantissa dropped; §1.8).

use super::fields::{put_fields, Units};
use super::wire::{expect_dim, expect_len, packed_len, with_sign_bit, BitReader, BitWriter};
use super::{Class, Compressor, Spec};
use crate::error::Result;
use crate::rng::{Coins, Stream};

const NAME: &str = "natural";
const FIELD_BITS: u32 = 9;
/// f32's exponent bias: field e stands for 2^{e − BIAS}.
const BIAS: i32 = 127;
const INFINITE: u32 = 255;

pub struct Natural {
    spec: String,
    d: usize,
    /// Deterministic rounding to the nearest power of two instead of the coin.
    nearest: bool,
}

impl Natural {
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        let nearest = spec.take_flag("nearest")?;
        Ok(Natural { spec: spec.text().to_string(), d, nearest })
    }
}

/// ⌊log₂ v⌋ for finite v > 0, exact for normal and subnormal f64 (read from the bits,
/// because `log2` may round up just below a power of two).
pub fn floor_log2(v: f64) -> i32 {
    let bits = v.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    if exponent > 0 {
        exponent - 1023
    } else {
        let mantissa = bits & ((1 << 52) - 1);
        -1074 + (63 - mantissa.leading_zeros() as i32)
    }
}

/// 2^e as an f64, exact for −1074 ≤ e ≤ 1023; 0 below, +∞ above.
pub const fn pow2(e: i32) -> f64 {
    if e > 1023 {
        f64::INFINITY
    } else if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else if e >= -1074 {
        f64::from_bits(1 << (e + 1074))
    } else {
        0.0
    }
}

/// (a, v/2^a − 1) with a = ⌊log₂ v⌋, for a normal f64 v > 0: a is v's biased exponent
/// − 1023 and v/2^a − 1 (exact) its mantissa read as 1.m − 1. Bit operations only, so
/// the rounding loops that use it vectorize; for other v the pair is meaningless (the
/// callers select another case there).
#[inline(always)]
pub(super) fn binade(v: f64) -> (i32, f64) {
    const MANTISSA: u64 = (1 << 52) - 1;
    let bits = v.to_bits();
    ((bits >> 52) as i32 - 1023, f64::from_bits(bits & MANTISSA | 1f64.to_bits()) - 1.0)
}

/// The exponent field for |t| given a uniform u ∈ [0, 1) (range rules in the module doc).
///
/// Every range's field is computed and one is selected, with no branch on the data, so the
/// encode loop vectorizes (`compress::fields`). Where the last case is selected |t| is a
/// normal f64 (≥ 2^-126), as [`binade`] needs.
#[inline(always)]
fn exponent_field(magnitude: f64, u: f64) -> u32 {
    let (a, above_power) = binade(magnitude);
    // Between 0 and 2^-126 (field 1): up with probability |t|/2^-126.
    let tiny = (u < magnitude * pow2(BIAS - 1)) as u32;
    // Between 2^a and 2^{a+1}: up with probability (|t| − 2^a)/2^a.
    // Added as i32: below 2^-126, a + BIAS may be −1 (not selected, but it must not
    // overflow in a debug build).
    let normal = (a + BIAS + i32::from(u < above_power)) as u32;
    if !magnitude.is_finite() {
        INFINITE
    } else if magnitude >= pow2(BIAS) {
        (2 * BIAS) as u32
    } else if magnitude < pow2(1 - BIAS) {
        tiny
    } else {
        normal
    }
}

/// The magnitude an exponent field stands for.
fn field_value(exponent: u32) -> f64 {
    FIELD_VALUES[exponent as usize]
}

/// Every field's magnitude, so that decoding is a load rather than a branch per
/// coordinate: 0, 2^{e−127} for e = 1..=254, +∞.
const FIELD_VALUES: [f64; 256] = {
    let mut values = [0.0; 256];
    let mut e = 1;
    while e < INFINITE as usize {
        values[e] = pow2(e as i32 - BIAS);
        e += 1;
    }
    values[INFINITE as usize] = f64::INFINITY;
    values
};

impl Compressor for Natural {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        if self.nearest {
            Class::Contractive { alpha: 8.0 / 9.0 }
        } else {
            Class::Unbiased { omega: 1.0 / 8.0 }
        }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{NAME}: encoding a vector of the wrong dimension");
        out.clear();
        out.reserve(packed_len(self.d, FIELD_BITS));
        let mut fields = BitWriter::new(out);
        let mut coins = Coins::new(rng, if self.nearest { 0 } else { x.len() });
        // Rounding up when u < (|t| − 2^a)/2^a: u = 1/2 rounds to the nearer power.
        let mut units = if self.nearest { Units::Fixed(0.5) } else { Units::Coins(&mut coins) };
        put_fields(&mut fields, FIELD_BITS, x, 0, &mut units, |_, t, u| {
            let exponent = exponent_field(t.abs(), u);
            // NaN keeps its sign bit; zero is always sent as +0.
            let negative = (t.is_sign_negative() & (exponent > 0)) as u32;
            negative | exponent << 1
        });
        fields.finish();
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(NAME, acc, self.d)?;
        expect_len(NAME, msg, packed_len(self.d, FIELD_BITS))?;
        let mut fields = BitReader::new(msg);
        for a in acc.iter_mut() {
            let field = fields.get(FIELD_BITS);
            *a += scale * with_sign_bit(field_value(field >> 1), field);
        }
        Ok(())
    }

    fn paper_bits(&self, _msg: &[u8]) -> u64 {
        9 * self.d as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_log2_and_pow2_agree_across_the_f64_range() {
        for e in -1074..=1023 {
            let p = pow2(e);
            assert_eq!(floor_log2(p), e, "2^{e}");
            // Doubling is exact, so the chain from 2^-1074 pins every value down.
            if e < 1023 {
                assert_eq!(2.0 * p, pow2(e + 1), "2^{e}");
            }
            if e < 1023 {
                // Just below 2^(e+1) is still in binade e.
                let below_next = f64::from_bits(pow2(e + 1).to_bits() - 1);
                assert_eq!(floor_log2(below_next), e, "just below 2^{}", e + 1);
            }
        }
        assert_eq!(pow2(0), 1.0);
        assert_eq!(pow2(-1074), f64::from_bits(1));
        assert_eq!(pow2(-1075), 0.0);
        assert_eq!(pow2(1024), f64::INFINITY);
    }

    #[test]
    fn exponent_fields_cover_the_range_rules() {
        assert_eq!(exponent_field(0.0, 0.0), 0);
        assert_eq!(exponent_field(1.0, 0.999), 127);
        assert_eq!(exponent_field(1.5, 0.49), 128);
        assert_eq!(exponent_field(1.5, 0.51), 127);
        assert_eq!(exponent_field(pow2(-130), 0.05), 1);
        assert_eq!(exponent_field(pow2(-130), 0.07), 0);
        assert_eq!(exponent_field(1.5 * pow2(127), 0.0), 254);
        assert_eq!(exponent_field(f64::MAX, 0.0), 254);
        assert_eq!(exponent_field(f64::INFINITY, 0.0), INFINITE);
        assert_eq!(exponent_field(f64::NAN, 0.0), INFINITE);
        assert_eq!(field_value(0), 0.0);
        assert_eq!(field_value(INFINITE), f64::INFINITY);
        for e in 1..INFINITE {
            assert_eq!(field_value(e), pow2(e as i32 - BIAS), "field {e}");
        }
    }
}
