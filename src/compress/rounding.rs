//! The stochastic rounding rules the quantizers share, and the floor they are built on.
//!
//! `f64::floor` is a libm call on baseline x86-64 (`roundsd` needs SSE4.1, which qtrain's
//! one portable binary does not assume): a call per coordinate was the largest cost of
//! QSGD's encode after its coins. [`floor`] computes the same value from an integer
//! conversion, inlined.

/// ⌊v⌋, equal to `f64::floor(v)` for every v but in the sign of a zero result (−0.0
/// floors to +0.0 here): the rounding rules below only convert it to an integer and
/// subtract it, where the sign of zero does not matter. Exact for |v| < 2⁶³ by the
/// integer conversion; `f64::floor` beyond (and for NaN).
#[inline]
pub fn floor(v: f64) -> f64 {
    if v.abs() < 9.2e18 {
        let truncated = v as i64 as f64;
        if truncated > v {
            truncated - 1.0
        } else {
            truncated
        }
    } else {
        v.floor()
    }
}

/// ⌊v⌋ for 0 ≤ v < 2³², as an integer, from IEEE additions, a comparison and a bit move:
/// adding 2⁵² rounds v to the nearest integer in the low mantissa bits, and one is taken
/// off where that rounded up. Equal to `v as u32` on that range. Baseline SSE2 has no
/// vector conversion of f64 to unsigned or 64-bit integers, so `v as u32` stays scalar in
/// the dense quantizers' field loop (`compress::fields`); this vectorizes.
#[inline(always)]
pub fn floor_small(v: f64) -> u32 {
    debug_assert!((0.0..4_294_967_296.0).contains(&v), "floor_small({v})");
    const SHIFT: f64 = 4_503_599_627_370_496.0; // 2⁵²: the ulp of v + 2⁵² is 1
    let shifted = v + SHIFT;
    let nearest = shifted.to_bits() as u32;
    // Wrapping: just below 2³² the shift rounds up to 2³², whose low bits are 0.
    nearest.wrapping_sub((shifted - SHIFT > v) as u32)
}

/// Stochastic rounding of y to the multiples of a step h below and above it (§A.2a): the
/// index ⌊y/h⌋, plus one with probability y/h − ⌊y/h⌋, so E[index]·h = y.
pub fn round_to_step(y: f64, h: f64, u: f64) -> u32 {
    let scaled = y / h;
    let low = floor(scaled);
    low as u32 + (u < scaled - low) as u32
}

/// ⌊y⌋, plus one with probability y − ⌊y⌋ (`u` uniform in [0, 1)): E = y (§B.1's rounding).
pub fn signed_stochastic_round(y: f64, u: f64) -> i64 {
    let low = floor(y);
    low as i64 + i64::from(u < y - low)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against `as u32` on integers, halves (ties to even must still floor), their
    /// neighbours, and the ends of the range.
    #[test]
    fn floor_small_is_truncation() {
        let mut values = vec![0.0, 1e-300, 0.25, 4_294_967_295.0, f64::from_bits(4_294_967_296f64.to_bits() - 1)];
        for k in [0u64, 1, 2, 3, 4, 5, 1000, 1 << 20, (1 << 31) - 1, 1 << 31, (1 << 32) - 2] {
            for v in [k as f64, k as f64 + 0.5, k as f64 + 0.25, k as f64 + 0.75] {
                for w in [v, f64::from_bits(v.to_bits() + 1), f64::from_bits(v.to_bits().saturating_sub(1))] {
                    if (0.0..4_294_967_296.0).contains(&w) {
                        values.push(w);
                    }
                }
            }
        }
        for v in values {
            assert_eq!(floor_small(v), v as u32, "floor_small({v:e})");
        }
    }

    /// Against `f64::floor` on integers, halves, the neighbours of integers and of 2⁵²,
    /// 2⁶³ and beyond, and NaN.
    #[test]
    fn floor_is_libm_floor() {
        let mut values = vec![0.0, -0.0, 0.5, -0.5, 1e-300, -1e-300, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
        for e in [0, 1, 2, 10, 31, 32, 51, 52, 53, 62, 63, 64, 100] {
            let p = 2f64.powi(e);
            for v in [p, p + 0.5, p - 0.5, p * 1.5, 3.0 * p + 0.25] {
                for w in [v, f64::from_bits(v.to_bits() + 1), f64::from_bits(v.to_bits() - 1)] {
                    values.extend([w, -w]);
                }
            }
        }
        for v in values {
            let (got, want) = (floor(v), v.floor());
            assert!(got == want || (got.is_nan() && want.is_nan()), "floor({v:e}) = {got:e}, libm {want:e}");
        }
    }
}
