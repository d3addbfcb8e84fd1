//! Natural dithering (Horváth et al.): dithering onto levels that are powers of two.
//!
//! Spec: ../shared/ALGORITHMS.md §1.9. SPEC: `nat-dither:s=S[,norm=2|inf][,elias]` (norm
//! defaults to 2; `elias`: the variable-length code of §1.6, see `qsgd`).
//!
//! * Definition: levels ℓ_0 = 0 and ℓ_u = 2^{u−s} for u = 1..s (2^{1−s}, …, 1/2, 1).
//!   y_j = |x_j|/‖x‖_p is rounded to the two levels that bracket it, up with probability
//!   (y_j − ℓ_low)/(ℓ_high − ℓ_low), which makes it unbiased; Q(x)_j = ‖x‖_p·sign(x_j)·ℓ.
//!   The zero vector gives norm 0 and all levels 0.
//! * Exact unbiasedness: the norm travels as an f32 rounded up and y_j is computed against
//!   it (as in §1.6, see `qsgd`).
//! * Class: unbiased with ω = 1/8 + d^{1/r}·2^{1−s}·min(1, d^{1/r}·2^{1−s}), r = min(p, 2);
//!   r = 2 for both p = 2 and p = ∞.
//! * Randomness: one coin per coordinate (`rng::Coins`, a 32-bit uniform) from the worker's private stream (§0.3).
//! * Wire: the level payload of [`super::qsgd::Dithering`] (little-endian): bytes 0..4 the
//!   norm as f32; then d fields of 1 + ⌈log₂(s+1)⌉ bits, least-significant bit first:
//!   bit 0 the sign (1 = negative), the higher bits the level index u ∈ 0..=s (a larger
//!   index is malformed). 4 + ⌈d(1 + ⌈log₂(s+1)⌉)/8⌉ bytes.
//! * Paper bits: 32 + d(1 + ⌈log₂(s+1)⌉) (our wire format, §1.9; the MARINA code counts
//!   d(1 + ⌈log₂ s⌉) instead).
//! * Precision: a decoded value norm·2^{u−s} is exact while it is a normal f64 (≥ 2^-1022);
//!   only absurd s (levels below 2^-1022 relative to the norm) lose precision there.

use super::natural::{binade, floor_log2, pow2};
use super::qsgd::{Coding, Dithering, Norm};
use super::{check_levels, Class, Compressor, Spec};
use crate::error::Result;
use crate::rng::Stream;

const NAME: &str = "nat-dither";

pub struct NatDither {
    spec: String,
    levels: Dithering,
}

impl NatDither {
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        let s = spec.take_usize("s")?;
        check_levels(spec, s)?;
        let norm = Norm::from_spec(spec)?;
        let coding = Coding::from_spec(spec)?;
        Ok(NatDither { spec: spec.text().to_string(), levels: Dithering::new(NAME, d, s as u32, norm, coding) })
    }
}

/// [`round_to_level`] for s ≤ 1022, bit for bit, with no branch on the data (so the
/// encode loop vectorizes): there ℓ_1 = 2^{1−s} is a normal f64, so every y at or above it
/// is normal ([`binade`]), and every subnormal y lies below it.
#[inline(always)]
pub(super) fn round_to_level_normal(s: u32, y: f64, u: f64) -> u32 {
    debug_assert!(s <= MAX_NORMAL_S);
    let (a, above_power) = binade(y);
    // y·2^{s−1} = y/ℓ_1, exactly (a power-of-two scaling that neither overflows nor
    // underflows, as the division it replaces).
    let below_first = (u < y * pow2(s as i32 - 1)) as u32;
    // Added as i32: below ℓ_1, a + s may be −1 here (a value not selected, but it must not
    // overflow in a debug build).
    let between = (a + s as i32 + i32::from(u < above_power)) as u32;
    if y < pow2(1 - s as i32) {
        below_first
    } else {
        between
    }
}

/// The largest s for [`round_to_level_normal`].
pub(super) const MAX_NORMAL_S: u32 = 1022;

/// Unbiased rounding of y ∈ [0, 1] to the level indices 0..=s (level u is 2^{u−s}).
pub(super) fn round_to_level(s: u32, y: f64, u: f64) -> u32 {
    if y <= 0.0 {
        return 0;
    }
    let smallest = 1 - s as i32; // ℓ_1 = 2^{1−s}
    let a = floor_log2(y);
    if a < smallest {
        // Between ℓ_0 = 0 and ℓ_1: up with probability y/ℓ_1.
        (u < y / pow2(smallest)) as u32
    } else {
        // Between 2^a (index a + s) and 2^{a+1}: up with probability y/2^a − 1.
        (a + s as i32) as u32 + (u < y / pow2(a) - 1.0) as u32
    }
}

/// ω = 1/8 + t·min(1, t), t = d^{1/r}·2^{1−s} with r = min(p, 2) = 2 (§1.9), for d
/// coordinates and s levels.
pub(super) fn omega(d: usize, s: u32) -> f64 {
    let r = 2.0;
    let t = (d as f64).powf(1.0 / r) * pow2(1 - s as i32);
    1.0 / 8.0 + t * t.min(1.0)
}

/// ℓ_u: 0 for u = 0, else 2^{u−s}.
pub(super) fn level_value(s: u32, u: u32) -> f64 {
    if u == 0 {
        0.0
    } else {
        pow2(u as i32 - s as i32)
    }
}

impl Compressor for NatDither {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        Class::Unbiased { omega: omega(self.levels.d(), self.levels.s()) }
    }

    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        let s = self.levels.s();
        if s <= MAX_NORMAL_S {
            self.levels.encode(x, rng, out, |y, u| round_to_level_normal(s, y, u));
        } else {
            self.levels.encode(x, rng, out, |y, u| round_to_level(s, y, u));
        }
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        let s = self.levels.s();
        self.levels.decode_add(msg, scale, acc, |u| level_value(s, u))
    }

    fn paper_bits(&self, msg: &[u8]) -> u64 {
        self.levels.paper_bits(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The branch-free rule against the general one, bit for bit: s up to its limit, y at,
    /// beside and between every level down to ℓ_1, subnormal, zero and 1, coins at the
    /// thresholds.
    #[test]
    fn the_normal_range_rule_is_the_general_rule() {
        for s in [1, 2, 3, 4, 8, 52, 100, 1000, MAX_NORMAL_S] {
            let mut ys = vec![0.0, f64::from_bits(1), f64::MIN_POSITIVE, 1.0, f64::from_bits(1f64.to_bits() - 1)];
            for e in (1 - s as i32 - 2)..=0 {
                let p = pow2(e);
                ys.extend([p, 1.5 * p, 1.25 * p, f64::from_bits(p.to_bits() + 1), f64::from_bits(p.to_bits() - 1)]);
            }
            for y in ys.into_iter().filter(|y| (0.0..=1.0).contains(y)) {
                // The probability of going up, and the coins on either side of it.
                let p = if y < pow2(1 - s as i32) { y * pow2(s as i32 - 1) } else { binade(y).1 };
                let beside = [p, f64::from_bits(p.to_bits().saturating_sub(1)), f64::from_bits(p.to_bits() + 1)];
                for u in [0.0, 0.25, 0.5, 0.75, 0.999_999, 2f64.powi(-32)].into_iter().chain(beside) {
                    assert_eq!(round_to_level_normal(s, y, u), round_to_level(s, y, u), "s = {s}, y = {y:e}, u = {u}");
                }
            }
        }
    }

    #[test]
    fn rounding_brackets_y_between_adjacent_levels() {
        // s = 3: levels 0, 1/4, 1/2, 1.
        assert_eq!(round_to_level(3, 0.0, 0.0), 0);
        assert_eq!(round_to_level(3, 0.1, 0.39), 1); // p(up) = 0.1/0.25 = 0.4
        assert_eq!(round_to_level(3, 0.1, 0.41), 0);
        assert_eq!(round_to_level(3, 0.25, 0.0), 1);
        assert_eq!(round_to_level(3, 0.75, 0.49), 3); // between 1/2 and 1, p(up) = 0.5
        assert_eq!(round_to_level(3, 0.75, 0.51), 2);
        assert_eq!(round_to_level(3, 1.0, 0.0), 3);
        // Huge s: the smallest levels are subnormal or below f64, and nothing overflows.
        assert_eq!(round_to_level(1 << 20, 1e-300, 0.0), (floor_log2(1e-300) + (1 << 20)) as u32 + 1);
        assert_eq!(level_value(1 << 20, 1), 0.0);
    }
}
