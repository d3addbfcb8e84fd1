//! e^x for x ≤ 0 in plain IEEE arithmetic, for the sigmoid of every gradient.
//!
//! libm's `exp` is a call per sample that no loop can vectorize, and with the division
//! it was a fifth of an a9a round (BENCHMARKS.md, issue 13). This one is a handful of
//! multiplications, additions and bit operations that the compiler turns into vector
//! code: SSE2 on every x86-64, and AVX2 where the CPU has it, detected at run time by
//! [`crate::simd::on_every_element`] (one binary for a mixed cluster). Without fused multiply-adds (Rust never
//! contracts `a * b + c`) every instruction set rounds every step alike, so a worker's
//! gradient has the same bits whichever node computes it: rank layouts stay
//! interchangeable (docs/architecture.md, "Determinism across nodes").
//!
//! Method (Cody–Waite, as fdlibm): x = n·ln 2 + r with n = round(x/ln 2) and |r| ≤ ln 2/2,
//! ln 2 split in a high part whose product with n is exact and a low part; e^r by its
//! Taylor polynomial of degree 13 (truncation r¹⁴/14! < 4·10⁻¹⁸, below the last bit),
//! and 2ⁿ from its exponent bits. Relative error ≤ 2 ulp against libm (unit test).
//! Below −708, where 2ⁿ would be subnormal, the result is 0: e^{−708} ≈ 3·10⁻³⁰⁸, so a
//! sigmoid or a derivative loses nothing measurable.

/// ln 2 = LN2_HI + LN2_LO; LN2_HI has 32 trailing zero bits, so n·LN2_HI is exact.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// Adding 1.5·2⁵² rounds a |t| < 2⁵¹ to the nearest integer (ties to even) in the
/// mantissa, whose low bits then hold n.
const ROUND: f64 = 6_755_399_441_055_744.0;
/// The smallest x whose 2ⁿ is still normal.
const LOWEST: f64 = -708.0;
/// 1/k! for k = 13 down to 2, for Horner's rule.
const INVERSE_FACTORIALS: [f64; 12] = [
    1.0 / 6_227_020_800.0,
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
];

/// e^x for x ≤ 0 (NaN stays NaN; x < −708 gives 0). Branch-free, to be inlined into loops.
#[inline(always)]
pub fn exp_nonpositive(x: f64) -> f64 {
    let shifted = x * std::f64::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = INVERSE_FACTORIALS[0];
    for c in &INVERSE_FACTORIALS[1..] {
        p = p * r + c;
    }
    p = (p * r + 1.0) * r + 1.0;
    // n + 1023 in the exponent field; wrapping u64 arithmetic, as n ∈ [−1022, 0].
    let biased = shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(1023);
    let scale = f64::from_bits(biased << 52);
    if x < LOWEST {
        0.0
    } else {
        p * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> u64 {
        a.to_bits().abs_diff(b.to_bits())
    }

    /// Within 2 ulp of libm over [−708, 0] (a dense grid and the range reduction's edges),
    /// and the documented ends.
    #[test]
    fn matches_libm_within_two_ulp() {
        let grid = (0..=200_000).map(|i| -708.0 * i as f64 / 200_000.0);
        let edges = (0..=1021).flat_map(|n| {
            let half = (n as f64 + 0.5) * std::f64::consts::LN_2;
            [-half, -half.next_up(), -half.next_down()]
        });
        let mut worst = 0;
        for x in grid.chain(edges).filter(|&x| x >= LOWEST) {
            let (ours, libm) = (exp_nonpositive(x), x.exp());
            worst = worst.max(ulps(ours, libm));
            assert!(ulps(ours, libm) <= 2, "e^{x:e}: {ours:e} against libm {libm:e}");
        }
        assert!(worst >= 1, "a polynomial that matches libm everywhere is suspicious: worst {worst} ulp");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-0.0), 1.0);
        assert_eq!(exp_nonpositive(-709.0), 0.0);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f64::NAN).is_nan());
    }
}
