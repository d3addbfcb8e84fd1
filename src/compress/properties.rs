//! Property tests for every compressor of the catalogue (ALGORITHMS.md §0.5, §2).
//!
//! `catalogue_tests!` applies the same checks to every entry, like ripgrep's `rgtest!`.
//! Each entry pairs a SPEC with a [`Kind`]: the test's own statement of that compressor,
//! written from ALGORITHMS.md and not from the implementation: its class constant, its
//! paper bits and wire bytes, its intended output (checked bit for bit where the output
//! is determined, by membership in the level set where it is random) and its expected
//! squared error in closed form.
//!
//! Monte-Carlo checks follow §0.5: N = 10⁴ draws with fixed seeds on six input families;
//! tolerances are five standard errors derived from N. Inputs are rounded to f32 first,
//! so that the f32 wire rounding never masquerades as bias; a relative slack of 10⁻⁶
//! covers the f32 rounding of scaled values (rand-k's x_j·d/k, sign's scale).
//!
//! Where a compressor's randomness is drawn elsewhere than from the worker's stream,
//! the draws follow it: a shared support is drawn by `begin_round` before every message
//! (as the protocol does once per round), and the count sketch's randomness is its hash
//! functions, so its Monte-Carlo draws build a sketch per draw (seeds 0..N).

use rand::{Rng, RngCore, SeedableRng};

use super::wire::BitWriter;
use super::{build, build_for, decode, Class, Compressor, NAMES};
use crate::error::Error;
use crate::rng::{self, Purpose, Stream};

/// The run seed compressors are built with (the count sketch's hashes).
const BUILD_SEED: u64 = 17;

/// Dimension of the Monte-Carlo families ("d around 50–200").
const D: usize = 100;
/// Draws per Monte-Carlo estimate (§0.5).
const N: usize = 10_000;
/// Dimensions for the exact checks: the smallest legal for k = 10, odd sizes, and sizes
/// around powers of two (index widths and bit padding change there).
const DIMS: [usize; 6] = [10, 37, 64, 65, 129, 200];

// ---------------------------------------------------------------------------------------
// What each compressor should be, independently of its implementation.

#[derive(Clone, Copy, Debug)]
enum Kind {
    Identity,
    RandK {
        k: usize,
        scaled: bool,
    },
    /// Rand-k with its support from the shared stream: the values only on the wire.
    SharedRandK {
        k: usize,
        scaled: bool,
    },
    /// The same with the support one cyclic block {s, …, s+k−1} mod d, s uniform.
    RandomBlock {
        k: usize,
        scaled: bool,
    },
    /// Every coordinate rounded to nearest-even in a format of `bits` significand bits
    /// (11: binary16, 8: bfloat16), of exponents down to `min_exp` (subnormals below) and
    /// with ∞ from 2^`max_exp`·(2 − 2^−bits) on.
    HalfCast {
        bits: i32,
        min_exp: i32,
        max_exp: i32,
    },
    TopK {
        k: usize,
    },
    /// (1/ζ)·natural dithering (2-norm) of the top-k values, ζ = 1 + ω_ND(k) (§1.10).
    TopKNatDither {
        k: usize,
        s: u32,
    },
    /// A leader alone: its own top-k (§E.1).
    CltK {
        k: usize,
    },
    /// Count sketch read by medians (§C.1); r = 1 is unbiased with ω = (d − 1)/c.
    Sketch {
        rows: usize,
        cols: usize,
    },
    /// `elias`: the variable-length code of §1.6 instead of fixed fields.
    Qsgd {
        s: u32,
        inf: bool,
        elias: bool,
    },
    Natural,
    /// Deterministic rounding to the nearest power of two (§1.13 biased rounding).
    NaturalNearest,
    NatDither {
        s: u32,
        inf: bool,
        elias: bool,
    },
    /// Each coordinate kept with probability p, unscaled (§1.13).
    BernoulliSparse {
        p: f64,
    },
    /// Every coordinate with |x_j| ≥ τ, unscaled (Strom 2015; an absolute compressor).
    Threshold {
        tau: f64,
    },
    /// One coordinate, drawn with probability |x_j|/‖x‖₁, unscaled (§1.13).
    AdaptiveRand,
    /// Optimal unbiased sparsification (§F) for a variance budget ε or a density ρ.
    OptSparse {
        budget: OptBudget,
    },
    /// PermK for n workers (§1.4), seen from worker 0: its block of this round's π.
    PermK {
        n: usize,
    },
    /// One-bit quantization on [−‖x‖, ‖x‖] (§H.2), stratified thresholds across n
    /// workers or independent ones, seen from worker 0.
    OneBit {
        n: usize,
    },
    Sign,
    TernGrad,
    /// ∞-norm standard dithering of B blocks with s levels each (§A.2b, unadapted).
    BlockQsgd {
        blocks: usize,
        s: u32,
    },
    /// Independent sparsification with p_j = τ/d, rescaled by 1/p (§A.2c, unadapted).
    RandTau {
        tau: usize,
    },
    /// Sparse-AsyLPG's uplink (§B.3): the density-budget sparsifier with Σp = k, then the
    /// b-bit grid δ·{−s..s} on the kept values, δ = max(saturated |x_j|, m)/s.
    SparseLowp {
        k: usize,
        b: u32,
    },
}

#[derive(Clone, Copy, Debug)]
enum OptBudget {
    Variance(f64),
    Density(f64),
}

struct Expect {
    spec: &'static str,
    kind: Kind,
}

/// ⌈log₂ n⌉ by counting, independent of `wire::ceil_log2`.
fn clog2(n: usize) -> u64 {
    let mut bits = 0;
    while (1u64 << bits) < n as u64 {
        bits += 1;
    }
    bits
}

/// Length of the Elias-ω word for n ≥ 1 (§1.7), counted from the definition: one final
/// 0, and before it the binary groups N, ⌊log₂ N⌋, … down to a group for 2 or 3.
fn elias_len(n: u64) -> u64 {
    let (mut bits, mut n) = (1, n);
    while n > 1 {
        let group = 64 - n.leading_zeros() as u64;
        bits += group;
        n = group - 1;
    }
    bits
}

impl Kind {
    /// The class constants of §1 and the table of §2.
    fn class(self, d: usize) -> Class {
        let df = d as f64;
        match self {
            Kind::Identity => Class::Unbiased { omega: 0.0 },
            Kind::RandK { k, scaled: true }
            | Kind::SharedRandK { k, scaled: true }
            | Kind::RandomBlock { k, scaled: true } => Class::Unbiased { omega: df / k as f64 - 1.0 },
            Kind::RandK { k, scaled: false }
            | Kind::SharedRandK { k, scaled: false }
            | Kind::RandomBlock { k, scaled: false }
            | Kind::TopK { k }
            | Kind::CltK { k } => Class::Contractive { alpha: k as f64 / df },
            Kind::Sketch { rows: 1, cols } => Class::Unbiased { omega: (df - 1.0) / cols as f64 },
            Kind::Sketch { rows, cols } => Class::Sketch { rows, cols },
            Kind::Qsgd { s, .. } => {
                let s = s as f64;
                Class::Unbiased { omega: (df / (s * s)).min(df.sqrt() / s) }
            }
            Kind::Natural => Class::Unbiased { omega: 0.125 },
            // |C(t) − t| ≤ |t|/3 (levels a factor 2 apart).
            Kind::NaturalNearest => Class::Contractive { alpha: 8.0 / 9.0 },
            Kind::BernoulliSparse { p } => Class::Contractive { alpha: p },
            Kind::Threshold { tau } => Class::Absolute { bound: df * tau * tau },
            Kind::AdaptiveRand => Class::Contractive { alpha: 1.0 / df },
            Kind::OptSparse { budget: OptBudget::Variance(eps) } => Class::Unbiased { omega: eps },
            Kind::OptSparse { budget: OptBudget::Density(rho) } => Class::Unbiased { omega: 1.0 / rho - 1.0 },
            Kind::PermK { n } => Class::Unbiased { omega: n as f64 - 1.0 },
            // d − 1, plus the f32 round-up of r (at most a relative 2^-23, squared: 2^-22).
            Kind::OneBit { .. } => Class::Unbiased { omega: df * (1.0 + 2f64.powi(-22)) - 1.0 },
            Kind::NatDither { s, .. } => {
                let t = df.sqrt() * 0.5f64.powi(s as i32 - 1);
                Class::Unbiased { omega: 0.125 + t * t.min(1.0) }
            }
            Kind::Sign => Class::Contractive { alpha: 1.0 / df },
            Kind::HalfCast { bits, .. } => Class::Contractive { alpha: 1.0 - 2f64.powi(-2 * bits) },
            Kind::TernGrad => Class::Unbiased { omega: df.sqrt() - 1.0 },
            Kind::TopKNatDither { k, s } => Class::Contractive { alpha: k as f64 / (df * self.zeta(k, s)) },
            Kind::BlockQsgd { blocks, s } => {
                let s = s as f64;
                let omega = block_ranges(d, blocks)
                    .map(|r| r.len() as f64)
                    .map(|dl| (dl / (s * s)).min(dl.sqrt() / s))
                    .fold(0.0, f64::max);
                Class::Unbiased { omega }
            }
            Kind::RandTau { tau } => Class::Unbiased { omega: df / tau as f64 - 1.0 },
            // The density budget's (d/k − 1), plus k kept values' rounding δ²/4 each with
            // δ ≤ max(‖x‖_∞, ‖x‖₁/k)/s ≤ max(1, √d/k)‖x‖/s (§B.3), and the f32 slack.
            Kind::SparseLowp { k, b } => {
                let (k, s) = (k as f64, ((1u64 << (b - 1)) - 1) as f64);
                let rounding = 2f64.powi(-23) * df / k; // m's f32 round-up lowers the p_j
                Class::Unbiased {
                    omega: (df / k - 1.0 + k * (df / (k * k)).max(1.0) / (4.0 * s * s) + rounding) * (1.0 + 1e-6),
                }
            }
        }
    }

    /// Sparse-lowp's (m, p_j, the value v_j sent when kept, δ) for x (§B.3).
    fn sparse_lowp_grid(self, x: &[f64]) -> (Vec<f64>, Vec<f64>, f64) {
        let Kind::SparseLowp { k, b } = self else { unreachable!("sparse-lowp only") };
        let m = f32_up(opt_sparse_magnitude(OptBudget::Density(k as f64 / x.len() as f64), x));
        let p: Vec<f64> = x.iter().map(|v| (v.abs() / m).min(1.0)).collect();
        let v: Vec<f64> = x.iter().map(|&v| if v.abs() >= m { v } else { m.copysign(v) }).collect();
        let carried = x.iter().zip(&v).filter(|(x, _)| **x != 0.0).map(|(_, v)| v.abs()).fold(0.0, f64::max);
        (p, v, f32_up(carried / ((1u64 << (b - 1)) - 1) as f64))
    }

    /// The plain ∞-norm quantizer each block of a `BlockQsgd` is.
    fn block_quantizer(s: u32) -> Kind {
        Kind::Qsgd { s, inf: true, elias: false }
    }

    /// ζ = 1 + ω of natural dithering at dimension k (§1.9 with r = 2).
    fn zeta(self, k: usize, s: u32) -> f64 {
        let t = (k as f64).sqrt() * 0.5f64.powi(s as i32 - 1);
        1.0 + 0.125 + t * t.min(1.0)
    }

    /// (paper-convention bits, wire bytes) of the message that decoded to `out` for input
    /// `x` (§0.4, each §1 entry and the layouts in each file's `//!` doc). Most formats
    /// have sizes fixed by d; the variable-length ones are sized from what `out` shows.
    fn sizes(self, x: &[f64], out: &[f64]) -> Vec<(u64, usize)> {
        match self {
            // Worker 0's block this round: one of the two block lengths of tensor_split.
            Kind::PermK { n } => {
                let d = x.len();
                [d / n, d.div_ceil(n)].iter().map(|&len| (32 * len as u64, 4 + 4 * len)).collect()
            }
            _ => vec![self.fixed_sizes(x, out)],
        }
    }

    /// [`Kind::sizes`] of the formats with one possible size for (x, out).
    fn fixed_sizes(self, x: &[f64], out: &[f64]) -> (u64, usize) {
        let d = x.len();
        let d64 = d as u64;
        let packed = |fields: usize, bits: u64| (fields * bits as usize).div_ceil(8);
        let b = clog2(d);
        match self {
            Kind::Identity => (32 * d64, 4 * d),
            Kind::RandK { k, .. } | Kind::TopK { k } | Kind::CltK { k } => (k as u64 * (32 + b), 4 * k + packed(k, b)),
            // §1.2: a 32-bit seed replaces the indices (none needed when k = d).
            Kind::SharedRandK { k, .. } | Kind::RandomBlock { k, .. } if k == d => (32 * d64, 4 * k),
            Kind::SharedRandK { k, .. } | Kind::RandomBlock { k, .. } => (32 * k as u64 + 32, 4 * k),
            Kind::Sketch { rows, cols } => (32 * (rows * cols) as u64, 4 * rows * cols),
            Kind::Qsgd { elias: true, .. } | Kind::NatDither { elias: true, .. } => {
                let code = self.elias_code_bits(x, out);
                (32 + code, 4 + (code as usize).div_ceil(8))
            }
            Kind::Qsgd { s, .. } | Kind::NatDither { s, .. } => {
                let field = 1 + clog2(s as usize + 1);
                (32 + d64 * field, 4 + packed(d, field))
            }
            Kind::Natural | Kind::NaturalNearest => (9 * d64, packed(d, 9)),
            Kind::Sign | Kind::OneBit { .. } => (d64 + 32, 4 + packed(d, 1)),
            Kind::HalfCast { .. } => (16 * d64, 2 * d),
            Kind::TernGrad => (32 + 2 * d64, 4 + packed(d, 2)),
            Kind::TopKNatDither { k, s } => {
                let field = 1 + clog2(s as usize + 1);
                (32 + k as u64 * (b + field), 4 + packed(k, field) + packed(k, b))
            }
            Kind::BernoulliSparse { .. } | Kind::RandTau { .. } | Kind::Threshold { .. } => {
                let c = nonzeros(out);
                (32 + c as u64 * (32 + b), 4 + 4 * c + packed(c, b))
            }
            Kind::BlockQsgd { blocks, s } => {
                let field = 1 + clog2(s as usize + 1);
                (32 * blocks as u64 + d64 * field, 4 * blocks + packed(d, field))
            }
            Kind::AdaptiveRand => (32 + b, 4 + packed(1, b)),
            Kind::SparseLowp { b: bits, .. } => {
                let n = nonzeros(out);
                let positions = (n as u64 * b).min(d64);
                let layout = if n as u64 * b > d64 { packed(d, 1) } else { packed(n, b) };
                (32 + positions + n as u64 * bits as u64, 9 + layout + packed(n, bits as u64))
            }
            // Saturated entries decode to x_j (as f32); the others to ±m, and |x_j| < m.
            Kind::OptSparse { .. } => {
                let sat = out.iter().zip(x).filter(|(o, v)| **o != 0.0 && **o == **v as f32 as f64).count();
                let unsat = nonzeros(out) - sat;
                (
                    32 + unsat as u64 * (b + 1) + sat as u64 * (b + 32),
                    12 + 4 * sat + packed(sat, b) + packed(unsat, b + 1),
                )
            }
            Kind::PermK { .. } => unreachable!("PermK has two sizes (Kind::sizes)"),
        }
    }

    /// The number of workers the compressor is built for (PermK's n; 1 for the others).
    fn workers(self) -> usize {
        match self {
            Kind::PermK { n } | Kind::OneBit { n, .. } => n,
            _ => 1,
        }
    }

    /// The Elias-ω code bits of §1.6 for the levels `out` shows: per nonzero level, the
    /// word of the gap from the previous nonzero (from −1), a sign bit, the word of the
    /// level index; word lengths counted by `elias_len`.
    fn elias_code_bits(self, x: &[f64], out: &[f64]) -> u64 {
        let (levels, inf) = self.levels().unwrap();
        let n = f32_up(norm_p(x, inf));
        let (mut bits, mut previous) = (0, -1i64);
        for (j, &o) in out.iter().enumerate() {
            if o == 0.0 {
                continue;
            }
            let level = levels.iter().position(|&l| n * l == o.abs()).expect("a decoded value is norm × a level");
            bits += elias_len(j as u64 - (previous + 1) as u64 + 1) + 1 + elias_len(level as u64);
            previous = j as i64;
        }
        bits
    }

    /// The magnitudes a quantizer may output for x_j, given the transmitted norm n.
    fn levels(self) -> Option<(Vec<f64>, bool)> {
        match self {
            Kind::Qsgd { s, inf, .. } => Some(((0..=s).map(|l| l as f64 / s as f64).collect(), inf)),
            Kind::NatDither { s, inf, .. } => Some((natural_levels(s), inf)),
            Kind::TopKNatDither { s, .. } => Some((natural_levels(s), false)),
            _ => None,
        }
    }

    /// Whether the randomness is in the compressor's construction (the sketch's hashes)
    /// rather than in its messages.
    /// Round-to-nearest-even into the `HalfCast` format, from its definition: the quantum
    /// of v's binade (or of the subnormals) is 2^(e − bits + 1); v/quantum (exact: a power
    /// of two) rounded ties-to-even, times the quantum; ∞ past the largest finite value.
    fn round_to_format(self, v: f64) -> f64 {
        let Kind::HalfCast { bits, min_exp, max_exp } = self else { unreachable!("half casts only") };
        if !v.is_finite() || v == 0.0 {
            return v;
        }
        let binade = (((v.abs().to_bits() >> 52) & 0x7ff) as i32 - 1023).max(min_exp);
        let quantum = 2f64.powi(binade - bits + 1);
        let rounded = (v / quantum).round_ties_even() * quantum;
        let largest = 2f64.powi(max_exp) * (2.0 - 2f64.powi(1 - bits));
        if rounded.abs() > largest {
            f64::INFINITY.copysign(v)
        } else {
            rounded
        }
    }

    fn random_at_build(self) -> bool {
        matches!(self, Kind::Sketch { .. })
    }

    /// E‖C(x) − x‖² in closed form (§1.x), for the f32 norm/scale the wire carries; None
    /// where there is none (a sketch of several rows).
    fn expected_sq_error(self, x: &[f64]) -> Option<f64> {
        let d = x.len() as f64;
        Some(match self {
            Kind::Identity => x.iter().map(|&v| (v as f32 as f64 - v).powi(2)).sum(),
            Kind::RandK { k, scaled } | Kind::SharedRandK { k, scaled } | Kind::RandomBlock { k, scaled } => {
                let q = k as f64 / d;
                dot(x, x) * if scaled { 1.0 / q - 1.0 } else { 1.0 - q }
            }
            Kind::TopK { k } | Kind::CltK { k } => dist2(&naive_top_k(x, k), x),
            // One row: every other coordinate falls into j's bucket with probability 1/c,
            // with an independent sign (§C.1).
            Kind::Sketch { rows: 1, cols } => (d - 1.0) * dot(x, x) / cols as f64,
            Kind::Sketch { .. } => return None,
            Kind::Qsgd { .. } | Kind::NatDither { .. } => {
                let (levels, inf) = self.levels().unwrap();
                let n = f32_up(norm_p(x, inf));
                x.iter().map(|&v| two_point_variance(bracket(&levels, n, v.abs()), v.abs())).sum()
            }
            Kind::Natural => x.iter().map(|&v| two_point_variance(pow2_bracket(v.abs()), v.abs())).sum(),
            Kind::NaturalNearest => x.iter().map(|&v| (nearest_pow2(v.abs()) - v.abs()).powi(2)).sum(),
            Kind::BernoulliSparse { p } => (1.0 - p) * dot(x, x),
            Kind::Threshold { tau } => {
                let kept = |v: f64| if v.abs() >= tau { v as f32 as f64 } else { 0.0 };
                x.iter().map(|&v| (kept(v) - v).powi(2)).sum()
            }
            Kind::BlockQsgd { blocks, s } => {
                block_ranges(x.len(), blocks).map(|r| Kind::block_quantizer(s).expected_sq_error(&x[r]).unwrap()).sum()
            }
            // Kept with probability p as (x_j/p) rounded to f32, else 0.
            Kind::RandTau { tau } => {
                let p = tau as f64 / d;
                x.iter().map(|&v| p * ((v / p) as f32 as f64 - v).powi(2) + (1.0 - p) * v * v).sum()
            }
            // Each coordinate in worker 0's block with probability 1/n, then scaled by n.
            Kind::PermK { n } => (n as f64 - 1.0) * dot(x, x),
            // Per coordinate (2r)²y(1 − y) = r² − x_j² with r the f32 norm.
            Kind::OneBit { .. } => {
                let r = f32_up(norm_p(x, false));
                d * r * r - dot(x, x)
            }
            Kind::AdaptiveRand => {
                let l1: f64 = x.iter().map(|v| v.abs()).sum();
                let cubes: f64 = x.iter().map(|v| v.abs().powi(3)).sum();
                if l1 == 0.0 {
                    0.0
                } else {
                    dot(x, x) - cubes / l1
                }
            }
            // Unsaturated coordinates are sent as ±m with probability |x_j|/m.
            Kind::OptSparse { budget } => {
                let m = f32_up(opt_sparse_magnitude(budget, x));
                x.iter().map(|v| v.abs()).filter(|&a| a > 0.0 && a < m).map(|a| a * m - a * a).sum()
            }
            // Sparsification (1/p − 1)x² plus, when kept, the grid's two-point variance.
            Kind::SparseLowp { .. } => {
                let (p, v, delta) = self.sparse_lowp_grid(x);
                (0..x.len())
                    .filter(|&j| x[j] != 0.0)
                    .map(|j| {
                        let t = v[j].abs();
                        let low = (t / delta).floor() * delta;
                        (1.0 / p[j] - 1.0) * x[j] * x[j] + p[j] * (t - low) * (low + delta - t)
                    })
                    .sum()
            }
            Kind::Sign => dot(x, x) - x.iter().map(|v| v.abs()).sum::<f64>().powi(2) / d,
            Kind::HalfCast { .. } => x.iter().map(|&v| (self.round_to_format(v) - v).powi(2)).sum(),
            Kind::TernGrad => {
                let n = f32_up(norm_p(x, true));
                x.iter().map(|&v| n * v.abs() - v * v).sum()
            }
            // Off the top k: x_j². On it: E((1/ζ)q − x)² = Var(q)/ζ² + x²(1 − 1/ζ)², the
            // dithering unbiased around x_j against the f32 norm of the k-vector.
            Kind::TopKNatDither { k, s } => {
                let (levels, _) = self.levels().unwrap();
                let zeta = self.zeta(k, s);
                let kept = top_k_support(x, k);
                let n = f32_up(kept.iter().map(|&j| x[j] * x[j]).sum::<f64>().sqrt());
                let on: f64 = kept
                    .iter()
                    .map(|&j| {
                        let t = x[j].abs();
                        two_point_variance(bracket(&levels, n, t), t) / (zeta * zeta)
                            + t * t * (1.0 - 1.0 / zeta).powi(2)
                    })
                    .sum();
                dot(x, x) - kept.iter().map(|&j| x[j] * x[j]).sum::<f64>() + on
            }
        })
    }

    /// Checks one decoded output against the definition: bit for bit where it is
    /// determined, by level-set membership where it is random. `seed`: the build seed.
    fn check_output(self, x: &[f64], out: &[f64], seed: u64, ctx: &str) {
        let d = x.len();
        match self {
            Kind::Identity => {
                let want: Vec<f64> = x.iter().map(|&v| v as f32 as f64).collect();
                assert_bitwise(out, &want, ctx);
            }
            Kind::TopK { k } | Kind::CltK { k } => assert_bitwise(out, &naive_top_k(x, k), ctx),
            Kind::Sketch { rows, cols } => assert_bitwise(out, &naive_sketch_estimate(x, rows, cols, seed), ctx),
            Kind::RandK { k, scaled } | Kind::SharedRandK { k, scaled } | Kind::RandomBlock { k, scaled } => {
                let factor = if scaled { d as f64 / k as f64 } else { 1.0 };
                for (j, (&o, &v)) in out.iter().zip(x).enumerate() {
                    let kept = (v * factor) as f32 as f64;
                    assert!(o == 0.0 || o.to_bits() == kept.to_bits(), "{ctx}: out[{j}] = {o}");
                }
                assert!(nonzeros(out) <= k, "{ctx}: {} nonzeros > k = {k}", nonzeros(out));
                if let Kind::RandomBlock { .. } = self {
                    // The kept coordinates fit in one cyclic window of k from some start.
                    let fits = |s: usize| out.iter().enumerate().all(|(j, &o)| o == 0.0 || (j + d - s) % d < k);
                    assert!((0..d).any(fits), "{ctx}: the kept coordinates are not one cyclic block of {k}");
                }
            }
            Kind::Qsgd { .. } | Kind::NatDither { .. } => {
                let (levels, inf) = self.levels().unwrap();
                let n = f32_up(norm_p(x, inf));
                for (j, (&o, &v)) in out.iter().zip(x).enumerate() {
                    let (lo, hi) = bracket(&levels, n, v.abs());
                    assert!(o.abs() == lo || o.abs() == hi, "{ctx}: out[{j}] = {o} ∉ ±{{{lo}, {hi}}}");
                    assert!(o == 0.0 || (o < 0.0) == (v < 0.0), "{ctx}: sign of out[{j}]");
                }
            }
            Kind::TopKNatDither { k, s } => {
                let (levels, _) = self.levels().unwrap();
                let kept = top_k_support(x, k);
                let n = f32_up(kept.iter().map(|&j| x[j] * x[j]).sum::<f64>().sqrt());
                let inverse_zeta = 1.0 / self.zeta(k, s);
                for (j, (&o, &v)) in out.iter().zip(x).enumerate() {
                    if !kept.contains(&j) {
                        assert_eq!(o, 0.0, "{ctx}: out[{j}] = {o} outside the top k");
                        continue;
                    }
                    let (lo, hi) = bracket(&levels, n, v.abs());
                    let near = |m: f64| (o.abs() - inverse_zeta * m).abs() <= 1e-15 * m;
                    assert!(near(lo) || near(hi), "{ctx}: out[{j}] = {o} ∉ ±{{{lo}, {hi}}}/ζ");
                    assert!(o == 0.0 || (o < 0.0) == (v < 0.0), "{ctx}: sign of out[{j}]");
                }
            }
            Kind::Natural => {
                for (j, (&o, &v)) in out.iter().zip(x).enumerate() {
                    let (lo, hi) = pow2_bracket(v.abs());
                    let exact = lo == v.abs();
                    let ok = o.abs() == lo || (!exact && o.abs() == hi);
                    assert!(ok && (o == 0.0 || (o < 0.0) == (v < 0.0)), "{ctx}: out[{j}] = {o} for {v}");
                }
            }
            Kind::NaturalNearest => {
                let want: Vec<f64> = x.iter().map(|&v| nearest_pow2(v.abs()).copysign(v)).collect();
                let want: Vec<f64> = want.iter().map(|&v| if v == 0.0 { 0.0 } else { v }).collect();
                assert_bitwise(out, &want, ctx);
            }
            // Exactly the coordinates at or above τ, each as its f32 value.
            Kind::Threshold { tau } => {
                let want: Vec<f64> = x.iter().map(|&v| if v.abs() >= tau { v as f32 as f64 } else { 0.0 }).collect();
                assert_bitwise(out, &want, ctx);
            }
            Kind::BernoulliSparse { .. } => {
                for (j, (&o, &v)) in out.iter().zip(x).enumerate() {
                    assert!(o == 0.0 || o.to_bits() == v.to_bits(), "{ctx}: out[{j}] = {o} for {v}");
                }
            }
            Kind::BlockQsgd { blocks, s } => {
                for r in block_ranges(d, blocks) {
                    let ctx = format!("{ctx}, block {r:?}");
                    Kind::block_quantizer(s).check_output(&x[r.clone()], &out[r], seed, &ctx);
                }
            }
            Kind::RandTau { tau } => {
                let p = tau as f64 / d as f64;
                for (j, (&o, &v)) in out.iter().zip(x).enumerate() {
                    let kept = (v / p) as f32 as f64;
                    assert!(o == 0.0 || o.to_bits() == kept.to_bits(), "{ctx}: out[{j}] = {o} for {v}");
                }
            }
            Kind::OneBit { .. } => {
                let r = f32_up(norm_p(x, false));
                for (j, &o) in out.iter().enumerate() {
                    assert!(o.abs() == r || (o.is_nan() && r.is_nan()), "{ctx}: out[{j}] = {o}, r = {r}");
                }
            }
            Kind::PermK { n } => {
                assert!(nonzeros(out) <= d.div_ceil(n), "{ctx}: {} nonzeros", nonzeros(out));
                for (j, (&o, &v)) in out.iter().zip(x).enumerate() {
                    let kept = n as f64 * (v as f32 as f64);
                    assert!(o == 0.0 || o.to_bits() == kept.to_bits(), "{ctx}: out[{j}] = {o} for {v}");
                }
            }
            Kind::AdaptiveRand => {
                assert!(nonzeros(out) <= 1, "{ctx}: {} nonzeros", nonzeros(out));
                for (j, (&o, &v)) in out.iter().zip(x).enumerate() {
                    assert!(o == 0.0 || o.to_bits() == v.to_bits(), "{ctx}: out[{j}] = {o} for {v}");
                }
            }
            Kind::OptSparse { budget } => {
                let m = f32_up(opt_sparse_magnitude(budget, x));
                let near = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b;
                for (j, (&o, &v)) in out.iter().zip(x).enumerate() {
                    let a = v.abs();
                    let saturated = o != 0.0 && o.to_bits() == v.to_bits() && a >= m * (1.0 - 1e-6);
                    let unsaturated = near(o.abs(), m) && (o < 0.0) == (v < 0.0) && a < m * (1.0 + 1e-6) && a > 0.0;
                    let dropped = o == 0.0 && a < m * (1.0 + 1e-6);
                    assert!(saturated || unsaturated || dropped, "{ctx}: out[{j}] = {o} for {v}, m = {m}");
                }
            }
            Kind::HalfCast { .. } => {
                let want: Vec<f64> = x.iter().map(|&v| self.round_to_format(v)).collect();
                assert_bitwise(out, &want, ctx);
            }
            Kind::Sign => {
                let m = (x.iter().map(|v| v.abs()).sum::<f64>() / d as f64) as f32 as f64;
                let want: Vec<f64> = x.iter().map(|&v| if v < 0.0 { -m } else { m }).collect();
                assert_bitwise(out, &want, ctx);
            }
            Kind::SparseLowp { b, .. } => {
                let (_, v, delta) = self.sparse_lowp_grid(x);
                for (j, &o) in out.iter().enumerate() {
                    let (lo, hi) = ((v[j].abs() / delta).floor() * delta, ((v[j].abs() / delta).floor() + 1.0) * delta);
                    let on_grid =
                        o == 0.0 || (x[j] != 0.0 && (o.abs() == lo || o.abs() == hi) && (o < 0.0) == (x[j] < 0.0));
                    assert!(
                        on_grid && o.abs() <= delta * ((1u64 << (b - 1)) - 1) as f64,
                        "{ctx}: out[{j}] = {o} for {}",
                        x[j]
                    );
                }
            }
            Kind::TernGrad => {
                let n = f32_up(norm_p(x, true));
                for (j, (&o, &v)) in out.iter().zip(x).enumerate() {
                    let signed = if v < 0.0 { -n } else { n };
                    let ok = o == 0.0 || (v != 0.0 && o == signed);
                    assert!(ok, "{ctx}: out[{j}] = {o} for {v}, s = {n}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Independent reference computations.

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// B blocks of ⌊d/B⌋ coordinates, the last one to d (§A.2b).
fn block_ranges(d: usize, blocks: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let len = d / blocks;
    (0..blocks).map(move |l| l * len..if l + 1 == blocks { d } else { (l + 1) * len })
}

fn nonzeros(v: &[f64]) -> usize {
    v.iter().filter(|&&x| x != 0.0).count()
}

fn norm_p(x: &[f64], inf: bool) -> f64 {
    if inf {
        x.iter().fold(0.0, |m, v| m.max(v.abs()))
    } else {
        dot(x, x).sqrt()
    }
}

/// The smallest f32 ≥ v, found with `f32::next_up` (independent of `wire::f32_round_up`).
fn f32_up(v: f64) -> f64 {
    let r = v as f32;
    (if (r as f64) < v { r.next_up() } else { r }) as f64
}

/// The two transmittable magnitudes n·ℓ around t = |x_j| (ℓ from the sorted `levels`).
fn bracket(levels: &[f64], n: f64, t: f64) -> (f64, f64) {
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let y = t / n;
    let lo = levels.iter().copied().filter(|&l| l <= y).fold(0.0, f64::max);
    let hi = levels.iter().copied().filter(|&l| l >= y).fold(1.0, f64::min);
    (n * lo, n * hi)
}

/// The powers of two 2^a ≤ t < 2^{a+1} (both 0 for t = 0), found from `log2` and fixed
/// up by comparison (independent of `natural::floor_log2`).
fn pow2_bracket(t: f64) -> (f64, f64) {
    if t == 0.0 {
        return (0.0, 0.0);
    }
    let mut a = t.log2().floor();
    if 2f64.powf(a) > t {
        a -= 1.0;
    }
    if 2f64.powf(a + 1.0) <= t {
        a += 1.0;
    }
    (2f64.powf(a), 2f64.powf(a + 1.0))
}

/// The nearer of the powers of two around t, ties to the lower (0 for t = 0).
fn nearest_pow2(t: f64) -> f64 {
    let (lo, hi) = pow2_bracket(t);
    if t - lo <= hi - t {
        lo
    } else {
        hi
    }
}

/// §F's magnitude m (p_j = min(1, |x_j|/m)) found independently of opt_sparse.rs: for a
/// variance budget, the least dense of every KKT-consistent saturation count (brute
/// force over k); for a density, bisection on C in Σ min(1, C|x_j|) = ρd. Tiny when every
/// nonzero saturates; +∞ for the zero vector (nothing sent).
fn opt_sparse_magnitude(budget: OptBudget, x: &[f64]) -> f64 {
    let mut a: Vec<f64> = x.iter().map(|v| v.abs()).filter(|&a| a > 0.0).collect();
    a.sort_by(|p, q| q.total_cmp(p));
    if a.is_empty() {
        return f64::INFINITY;
    }
    match budget {
        OptBudget::Variance(eps) => {
            let norm2: f64 = a.iter().map(|v| v * v).sum();
            let mut best = (f64::INFINITY, 0.0);
            for k in 0..a.len() {
                let rest1: f64 = a[k..].iter().sum();
                let rest2: f64 = a[k..].iter().map(|v| v * v).sum();
                let lambda = rest1 / (eps * norm2 + rest2);
                let consistent = a[k] * lambda <= 1.0 + 1e-12 && (k == 0 || a[k - 1] * lambda >= 1.0 - 1e-12);
                if consistent && (k as f64 + lambda * rest1) < best.0 {
                    best = (k as f64 + lambda * rest1, 1.0 / lambda);
                }
            }
            best.1
        }
        OptBudget::Density(rho) => {
            let target = rho * x.len() as f64;
            if a.len() as f64 <= target {
                return f64::MIN_POSITIVE;
            }
            let density = |c: f64| a.iter().map(|v| (c * v).min(1.0)).sum::<f64>();
            let (mut lo, mut hi) = (0.0, 1.0 / a[a.len() - 1]);
            for _ in 0..200 {
                let mid = 0.5 * (lo + hi);
                if density(mid) < target {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            1.0 / hi
        }
    }
}

/// Variance of unbiased rounding of t to lo or hi: (hi − t)(t − lo).
fn two_point_variance((lo, hi): (f64, f64), t: f64) -> f64 {
    (hi - t) * (t - lo)
}

/// Natural dithering's levels 0, 2^{1−s}, …, 1/2, 1 (§1.9).
fn natural_levels(s: u32) -> Vec<f64> {
    std::iter::once(0.0).chain((1..=s).map(|u| 0.5f64.powi((s - u) as i32))).collect()
}

/// The k indices of largest |x_j| (ties to the lowest index), by a full sort.
fn top_k_support(x: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[b].abs().partial_cmp(&x[a].abs()).unwrap().then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// Top-k by a full stable sort on (|x| descending, index ascending).
fn naive_top_k(x: &[f64], k: usize) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[b].abs().partial_cmp(&x[a].abs()).unwrap().then(a.cmp(&b)));
    let mut out = vec![0.0; x.len()];
    for &j in &order[..k] {
        out[j] = x[j] as f32 as f64;
    }
    out
}

/// The count sketch of §C.1 written from the spec: per row six parameters from the shared
/// stream of `seed`, bucket ((a·j + b) mod P) mod c and sign (((h1·j + h2)·j + h3)·j + h4)
/// mod P mod 2 in wrapping i64 with non-negative remainders; the table summed in f64 in
/// coordinate order and sent as f32; the estimate the lower median by sorting.
fn naive_sketch_estimate(x: &[f64], rows: usize, cols: usize, seed: u64) -> Vec<f64> {
    const P: i64 = (1 << 61) - 1;
    let mut shared = rng::shared(seed, Purpose::SketchHashes);
    let hashes: Vec<Vec<(usize, f64)>> = (0..rows)
        .map(|_| {
            let h: Vec<i64> = (0..6).map(|_| shared.random_range(0..P)).collect();
            (0..x.len() as i64)
                .map(|j| {
                    let bucket = h[0].wrapping_mul(j).wrapping_add(h[1]).rem_euclid(P).rem_euclid(cols as i64);
                    let poly =
                        h[2].wrapping_mul(j).wrapping_add(h[3]).wrapping_mul(j).wrapping_add(h[4]).wrapping_mul(j);
                    let sign = if poly.wrapping_add(h[5]).rem_euclid(P) % 2 == 1 { 1.0 } else { -1.0 };
                    (bucket as usize, sign)
                })
                .collect()
        })
        .collect();
    let tables: Vec<Vec<f64>> = hashes
        .iter()
        .map(|row| {
            let mut t = vec![0.0f64; cols];
            for (&(b, s), &v) in row.iter().zip(x) {
                if v != 0.0 {
                    t[b] += s * v;
                }
            }
            t.iter().map(|&v| v as f32 as f64).collect()
        })
        .collect();
    (0..x.len())
        .map(|j| {
            let mut est: Vec<f64> = (0..rows).map(|r| hashes[r][j].1 * tables[r][hashes[r][j].0]).collect();
            est.sort_by(f64::total_cmp);
            // decode adds the estimate to 0.0, which turns −0.0 into +0.0.
            0.0 + est[(rows - 1) / 2]
        })
        .collect()
}

fn assert_bitwise(got: &[f64], want: &[f64], ctx: &str) {
    for (j, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{ctx}: coordinate {j}: got {g}, want {w}");
    }
}

// ---------------------------------------------------------------------------------------
// Inputs (§0.5): six families, rounded to f32.

fn gaussian(g: &mut Stream) -> f64 {
    // Box–Muller; 1 − u ∈ (0, 1] keeps the logarithm finite.
    let (u, v) = (1.0 - g.random::<f64>(), g.random::<f64>());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Student-t with ν = 2: Z/√(V/2) with V ~ χ²₂ = −2 ln U.
fn student_t2(g: &mut Stream) -> f64 {
    let z = gaussian(g);
    z / (-(1.0 - g.random::<f64>()).ln()).sqrt()
}

fn families(d: usize, seed: u64) -> Vec<(&'static str, Vec<f64>)> {
    let mut g = Stream::seed_from_u64(seed);
    let f32x = |v: f64| v as f32 as f64;
    let dense: Vec<f64> = (0..d).map(|_| f32x(gaussian(&mut g))).collect();
    let sparse: Vec<f64> = (0..d).map(|j| if j % 7 == 3 { f32x(gaussian(&mut g)) } else { 0.0 }).collect();
    let heavy: Vec<f64> = (0..d).map(|_| f32x(student_t2(&mut g))).collect();
    let mut spike = vec![0.0; d];
    spike[d / 3] = f32x(3.7);
    vec![
        ("dense Gaussian", dense),
        ("sparse", sparse),
        ("heavy-tailed t(2)", heavy),
        ("all-equal", vec![f32x(-0.3); d]),
        ("single spike", spike),
        ("zero vector", vec![0.0; d]),
    ]
}

// ---------------------------------------------------------------------------------------
// The checks every catalogue entry goes through.

struct Moments {
    /// Mean of the decoded vectors.
    mean: Vec<f64>,
    /// v̂: mean of ‖C(x) − x‖².
    err2: f64,
    /// Sample standard deviation of ‖C(x) − x‖² (for the standard error of v̂).
    err2_sd: f64,
}

/// A compressor as a run builds it (seed `seed`), with its shared support of a first round.
fn build_seeded(e: &Expect, d: usize, seed: u64) -> Box<dyn Compressor> {
    let spec = e.spec;
    let mut c = build_for(spec, d, seed, e.kind.workers()).unwrap_or_else(|err| panic!("{spec} at d = {d}: {err}"));
    c.begin_round(&mut rng::shared(seed, Purpose::SharedSupport));
    c
}

fn build_ok(e: &Expect, d: usize) -> Box<dyn Compressor> {
    build_seeded(e, d, BUILD_SEED)
}

/// One round's message: this round's shared support from `shared`, then the encoding.
fn encode_round(c: &mut dyn Compressor, x: &[f64], rng: &mut Stream, shared: &mut Stream, out: &mut Vec<u8>) {
    c.begin_round(shared);
    c.encode(x, rng, out);
}

/// N draws of C(x): messages of one compressor, or, where the randomness is in the
/// construction (the sketch's hashes), one compressor per draw.
fn sample(e: &Expect, x: &[f64], draws: usize, stream: usize) -> Moments {
    let mut rng = rng::private(2024, stream, Purpose::Compressor);
    let mut shared = rng::shared(2024 + stream as u64, Purpose::SharedSupport);
    let (mut msg, mut out) = (Vec::new(), vec![0.0; x.len()]);
    let mut sum = vec![0.0; x.len()];
    let mut c = build_ok(e, x.len());
    // Welford's update: no cancellation when the error is (nearly) deterministic.
    let (mut mean, mut m2) = (0.0, 0.0);
    for i in 1..=draws {
        if e.kind.random_at_build() {
            c = build_seeded(e, x.len(), i as u64);
        }
        encode_round(c.as_mut(), x, &mut rng, &mut shared, &mut msg);
        decode(c.as_ref(), &msg, &mut out).expect("a compressor decodes its own message");
        let e2 = dist2(&out, x);
        let delta = e2 - mean;
        mean += delta / i as f64;
        m2 += delta * (e2 - mean);
        sum.iter_mut().zip(&out).for_each(|(s, o)| *s += o);
    }
    let mean_vec = sum.iter().map(|s| s / draws as f64).collect();
    Moments { mean: mean_vec, err2: mean, err2_sd: (m2 / (draws - 1) as f64).sqrt() }
}

fn check_class(e: &Expect) {
    for d in DIMS {
        let c = build_ok(e, d);
        assert_eq!(c.spec(), e.spec);
        let (got, want) = (c.class(), e.kind.class(d));
        let same = match (got, want) {
            (Class::Unbiased { omega: a }, Class::Unbiased { omega: b })
            | (Class::Contractive { alpha: a }, Class::Contractive { alpha: b }) => (a - b).abs() <= 1e-12 * b.abs(),
            (a @ Class::Sketch { .. }, b @ Class::Sketch { .. }) => a == b,
            (Class::Absolute { bound: a }, Class::Absolute { bound: b }) => (a - b).abs() <= 1e-12 * b.abs(),
            _ => false,
        };
        assert!(same, "{} at d = {d}: class {got:?}, spec says {want:?}", e.spec);
    }
}

/// §0.5: unbiasedness, variance / contraction bounds, and v̂ against the closed form; for
/// a sketch of several rows, the ∞-norm bound of §C.1 instead.
fn check_moments(e: &Expect) {
    for (stream, (family, x)) in families(D, 1).into_iter().enumerate() {
        let ctx = format!("{} on {family}", e.spec);
        if let Class::Sketch { rows, cols } = e.kind.class(D) {
            check_sketch_bound(e, &x, rows, cols, &ctx);
            continue;
        }
        let m = sample(e, &x, N, stream);
        let norm2 = dot(&x, &x);
        let root_n = (N as f64).sqrt();
        let slack = 1e-6 * norm2;
        let standard_errors = 5.0 * m.err2_sd / root_n;

        let exact = e.kind.expected_sq_error(&x).expect("a closed form for every variance class");
        assert!(
            (m.err2 - exact).abs() <= standard_errors + slack,
            "{ctx}: v̂ = {} but the closed form gives {exact} (±{standard_errors})",
            m.err2
        );
        let bound = match e.kind.class(D) {
            Class::Unbiased { omega } => omega * norm2,
            Class::Contractive { alpha } => (1.0 - alpha) * norm2,
            // Whatever the norm; the kept values' f32 rounding is within the slack.
            Class::Absolute { bound } => bound,
            Class::Sketch { .. } => unreachable!("handled above"),
        };
        assert!(exact <= bound + slack, "{ctx}: closed form {exact} above the class bound {bound}");
        // §0.5's one-sided (1 + 5/√N), or five standard errors where the squared error is
        // heavy-tailed (a spike under rand-k: (1 + 5/√N) alone is only ~2σ there).
        let tolerance = (bound * 5.0 / root_n).max(standard_errors);
        assert!(m.err2 <= bound + tolerance + slack, "{ctx}: v̂ = {} > bound {bound}", m.err2);

        if let Class::Unbiased { .. } = e.kind.class(D) {
            let bias = dist2(&m.mean, &x).sqrt();
            let allowed = 5.0 * (m.err2 / N as f64).sqrt() + 1e-6 * norm2.sqrt();
            assert!(bias <= allowed, "{ctx}: ‖mean − x‖ = {bias} > {allowed}");
        }
    }
}

/// §C.1: per coordinate, P(|v̂_j − x_j| > 2‖x‖/√c) ≤ e^{−r/8}, over sketches of N/10
/// seeds; the failure rate may exceed the bound by five standard errors of the rate
/// (plus the f32 rounding of the table).
fn check_sketch_bound(e: &Expect, x: &[f64], rows: usize, cols: usize, ctx: &str) {
    let draws = N / 10;
    let threshold = 2.0 * dot(x, x).sqrt() / (cols as f64).sqrt() * (1.0 + 1e-6);
    let (mut msg, mut out, mut failures) = (Vec::new(), vec![0.0; x.len()], 0usize);
    for seed in 0..draws {
        let mut c = build_seeded(e, x.len(), seed as u64);
        c.encode(x, &mut rng::private(1, 0, Purpose::Compressor), &mut msg);
        decode(c.as_ref(), &msg, &mut out).unwrap();
        failures += out.iter().zip(x).filter(|(o, v)| (*o - *v).abs() > threshold).count();
    }
    let n = (draws * x.len()) as f64;
    let bound = (-(rows as f64) / 8.0).exp();
    let rate = failures as f64 / n;
    assert!(
        rate <= bound + 5.0 * (bound * (1.0 - bound) / n).sqrt(),
        "{ctx}: failure rate {rate} > e^(-r/8) = {bound}"
    );
}

/// Exact round trip, decode_add's accumulation, sizes, and determinism per seed.
fn check_round_trip(e: &Expect) {
    for d in DIMS {
        for (family, x) in families(d, 2) {
            let ctx = format!("{} at d = {d} on {family}", e.spec);
            let mut c = build_ok(e, d);
            let mut rng = rng::private(7, d, Purpose::Compressor);
            let mut shared = rng::shared(7, Purpose::SharedSupport);
            let mut msg = Vec::new();
            let mut out = vec![0.0; d];
            for _ in 0..20 {
                encode_round(c.as_mut(), &x, &mut rng, &mut shared, &mut msg);
                decode(c.as_ref(), &msg, &mut out).unwrap();
                check_sizes_of(e, c.as_ref(), &msg, &x, &out, &ctx);
                e.kind.check_output(&x, &out, BUILD_SEED, &ctx);
                check_accumulates(c.as_ref(), &msg, &out, &ctx);
            }
            // Same seeds, same stream positions ⇒ same bytes (replicas must agree, §0.3).
            let mut again = build_ok(e, d);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let streams = || (rng::private(9, 0, Purpose::Compressor), rng::shared(9, Purpose::SharedSupport));
            let ((mut r1, mut s1), (mut r2, mut s2)) = (streams(), streams());
            encode_round(c.as_mut(), &x, &mut r1, &mut s1, &mut a);
            encode_round(again.as_mut(), &x, &mut r2, &mut s2, &mut b);
            assert_eq!(a, b, "{ctx}: encoding is not a function of the seed");
        }
    }
}

/// decode_add(msg, scale, acc) must give acc + scale·decode(msg), bit for bit.
fn check_accumulates(c: &dyn Compressor, msg: &[u8], out: &[f64], ctx: &str) {
    let base: Vec<f64> = (0..out.len()).map(|j| 1.0 + j as f64 / 3.0).collect();
    let mut acc = base.clone();
    c.decode_add(msg, -0.5, &mut acc).unwrap();
    let want: Vec<f64> = base.iter().zip(out).map(|(b, o)| b + -0.5 * o).collect();
    assert_bitwise(&acc, &want, &format!("{ctx} (decode_add, scale −0.5)"));
}

fn check_sizes(e: &Expect) {
    let mut g = Stream::seed_from_u64(3);
    for d in [10, 11, 16, 17, 31, 32, 33, 100, 255, 256, 257, 1000, 4099] {
        let x: Vec<f64> = (0..d).map(|_| gaussian(&mut g)).collect();
        let mut c = build_ok(e, d);
        let (mut msg, mut out) = (Vec::new(), vec![0.0; d]);
        c.encode(&x, &mut rng::private(1, 0, Purpose::Compressor), &mut msg);
        decode(c.as_ref(), &msg, &mut out).unwrap();
        check_sizes_of(e, c.as_ref(), &msg, &x, &out, &format!("{} at d = {d}", e.spec));
    }
}

/// Wire bytes and paper bits of one message against the statement's formulas.
fn check_sizes_of(e: &Expect, c: &dyn Compressor, msg: &[u8], x: &[f64], out: &[f64], ctx: &str) {
    let allowed = e.kind.sizes(x, out);
    let got = (c.paper_bits(msg), msg.len());
    assert!(allowed.contains(&got), "{ctx}: (paper bits, wire bytes) = {got:?}, the formulas allow {allowed:?}");
}

fn is_wire_error(r: crate::error::Result<()>) -> bool {
    matches!(r, Err(Error::Wire { .. }))
}

/// Every truncation and one extra byte are `Error::Wire`; so is a wrong-sized accumulator.
fn check_malformed(e: &Expect) {
    for d in [10, 100] {
        let x = &families(d, 4)[0].1;
        let mut c = build_ok(e, d);
        let mut msg = Vec::new();
        c.encode(x, &mut rng::private(1, 0, Purpose::Compressor), &mut msg);
        let mut out = vec![0.0; d];
        // An Elias stream carries no length: a cut at a word boundary is a valid shorter
        // message, so only the header must be complete, and the transport (MPI's message
        // length) delimits it. Trailing 1 bits beyond a byte are never padding.
        let elias = matches!(e.kind, Kind::Qsgd { elias: true, .. } | Kind::NatDither { elias: true, .. });
        let (checked, extras) = if elias { (4, &[0xff][..]) } else { (msg.len(), &[0u8, 0xff][..]) };
        for len in 0..checked {
            let r = decode(c.as_ref(), &msg[..len], &mut out);
            assert!(is_wire_error(r), "{} d = {d}: prefix of {len} bytes accepted", e.spec);
        }
        for &extra in extras {
            let mut longer = msg.clone();
            longer.push(extra);
            assert!(is_wire_error(decode(c.as_ref(), &longer, &mut out)), "{}: padded", e.spec);
        }
        for wrong in [d - 1, d + 1] {
            let r = c.decode_add(&msg, 1.0, &mut vec![0.0; wrong]);
            assert!(is_wire_error(r), "{}: accumulator of length {wrong} accepted", e.spec);
        }
        assert!(decode(c.as_ref(), &msg, &mut out).is_ok());
    }
}

/// Random bytes, of the right length and of random lengths, may fail but never panic.
fn check_garbage(e: &Expect) {
    let mut g = Stream::seed_from_u64(99);
    for d in [10, 100, 129] {
        let mut c = build_ok(e, d);
        // A typical length: that of a dense Gaussian's message.
        let mut typical = Vec::new();
        c.encode(&families(d, 4)[0].1, &mut rng::private(1, 0, Purpose::Compressor), &mut typical);
        let len = typical.len();
        let mut out = vec![0.0; d];
        let mut msg = vec![0u8; len];
        for _ in 0..2000 {
            g.fill_bytes(&mut msg);
            let _ = decode(c.as_ref(), &msg, &mut out);
        }
        for _ in 0..200 {
            let mut odd = vec![0u8; g.random_range(0..2 * len + 2)];
            g.fill_bytes(&mut odd);
            let _ = decode(c.as_ref(), &odd, &mut out);
        }
    }
}

macro_rules! catalogue_tests {
    ($($module:ident => $spec:literal, $kind:expr;)+) => {
        $(
            mod $module {
                use super::*;
                const E: Expect = Expect { spec: $spec, kind: $kind };

                #[test]
                fn class_constant_matches_the_spec() {
                    check_class(&E)
                }

                #[test]
                fn moments_on_six_families() {
                    check_moments(&E)
                }

                #[test]
                fn round_trip_is_exact() {
                    check_round_trip(&E)
                }

                #[test]
                fn sizes_match_the_formulas() {
                    check_sizes(&E)
                }

                #[test]
                fn truncated_or_padded_messages_fail() {
                    check_malformed(&E)
                }

                #[test]
                fn garbage_never_panics() {
                    check_garbage(&E)
                }
            }
        )+

        /// A compressor added to `build` without a catalogue entry fails here.
        #[test]
        fn every_compressor_name_is_tested() {
            let specs = [$($spec),+];
            for name in NAMES {
                let tested = specs.iter().any(|s| s.split(':').next() == Some(*name));
                assert!(tested, "compressor '{name}' has no catalogue_tests! entry");
            }
        }
    };
}

catalogue_tests! {
    identity => "identity", Kind::Identity;
    rand_k_scaled => "rand-k:k=10", Kind::RandK { k: 10, scaled: true };
    rand_k_unscaled => "rand-k:k=10,unscaled", Kind::RandK { k: 10, scaled: false };
    rand_k_shared => "rand-k:k=10,shared", Kind::SharedRandK { k: 10, scaled: true };
    rand_k_shared_unscaled => "rand-k:k=10,shared,unscaled", Kind::SharedRandK { k: 10, scaled: false };
    random_block => "random-block:k=10", Kind::RandomBlock { k: 10, scaled: true };
    random_block_unscaled => "random-block:k=10,unscaled", Kind::RandomBlock { k: 10, scaled: false };
    top_k => "top-k:k=10", Kind::TopK { k: 10 };
    // DGC's sampled threshold changes the work, never the message.
    top_k_sampled => "top-k:k=10,sampled", Kind::TopK { k: 10 };
    bernoulli_sparse => "bernoulli-sparse:p=0.2", Kind::BernoulliSparse { p: 0.2 };
    bernoulli_sparse_all => "bernoulli-sparse:p=1", Kind::BernoulliSparse { p: 1.0 };
    adaptive_rand => "adaptive-rand", Kind::AdaptiveRand;
    perm_k_four => "perm-k", Kind::PermK { n: 4 };
    perm_k_three => "perm-k", Kind::PermK { n: 3 };
    corr_q => "corr-q", Kind::OneBit { n: 4 };
    indep_q => "indep-q", Kind::OneBit { n: 4 };
    opt_sparse_budget => "opt-sparse:budget=1", Kind::OptSparse { budget: OptBudget::Variance(1.0) };
    opt_sparse_small_budget => "opt-sparse:budget=0.05", Kind::OptSparse { budget: OptBudget::Variance(0.05) };
    opt_sparse_density => "opt-sparse:density=0.1", Kind::OptSparse { budget: OptBudget::Density(0.1) };
    opt_sparse_half => "opt-sparse:density=0.5", Kind::OptSparse { budget: OptBudget::Density(0.5) };
    topk_nd => "topk-nd:k=10,s=3", Kind::TopKNatDither { k: 10, s: 3 };
    topk_nd_one_level => "topk-nd:k=7,s=1", Kind::TopKNatDither { k: 7, s: 1 };
    clt_k => "clt-k:k=10", Kind::CltK { k: 10 };
    sketch_one_row => "sketch:rows=1,cols=25", Kind::Sketch { rows: 1, cols: 25 };
    sketch_five_rows => "sketch:rows=5,cols=40", Kind::Sketch { rows: 5, cols: 40 };
    qsgd_l2 => "qsgd:s=4", Kind::Qsgd { s: 4, inf: false, elias: false };
    qsgd_inf => "qsgd:s=2,norm=inf", Kind::Qsgd { s: 2, inf: true, elias: false };
    qsgd_one_level => "qsgd:s=1,norm=2", Kind::Qsgd { s: 1, inf: false, elias: false };
    // Q_(δ,b) of §B.1 is ∞-norm QSGD with s = 2^{b−1} − 1 (qsgd.rs, `low_precision`).
    lowp_two_bits => "lowp:b=2", Kind::Qsgd { s: 1, inf: true, elias: false };
    lowp_eight_bits => "lowp:b=8", Kind::Qsgd { s: 127, inf: true, elias: false };
    sparse_lowp => "sparse-lowp:k=10,b=4", Kind::SparseLowp { k: 10, b: 4 };
    sparse_lowp_eight_bits => "sparse-lowp:k=3,b=8", Kind::SparseLowp { k: 3, b: 8 };
    // K close to d with a fine grid: the bound is then mostly m's f32 rounding.
    sparse_lowp_fine => "sparse-lowp:k=9,b=21", Kind::SparseLowp { k: 9, b: 21 };
    natural => "natural", Kind::Natural;
    natural_nearest => "natural:nearest", Kind::NaturalNearest;
    qsgd_elias => "qsgd:s=4,elias", Kind::Qsgd { s: 4, inf: false, elias: true };
    qsgd_elias_sqrt_d => "qsgd:s=10,norm=inf,elias", Kind::Qsgd { s: 10, inf: true, elias: true };
    nat_dither_elias => "nat-dither:s=3,elias", Kind::NatDither { s: 3, inf: false, elias: true };
    nat_dither_l2 => "nat-dither:s=3", Kind::NatDither { s: 3, inf: false, elias: false };
    nat_dither_inf => "nat-dither:s=4,norm=inf", Kind::NatDither { s: 4, inf: true, elias: false };
    // Unadapted (uniform steps h = 1/s), smooth-dither is qsgd with the ∞-norm.
    smooth_dither => "smooth-dither:s=2", Kind::Qsgd { s: 2, inf: true, elias: false };
    smooth_dither_elias => "smooth-dither:s=4,elias", Kind::Qsgd { s: 4, inf: true, elias: true };
    block_qsgd => "block-qsgd:blocks=3,s=2", Kind::BlockQsgd { blocks: 3, s: 2 };
    block_qsgd_one_block => "block-qsgd:blocks=1,s=4", Kind::BlockQsgd { blocks: 1, s: 4 };
    rand_tau_plus => "rand-tau-plus:tau=5", Kind::RandTau { tau: 5 };
    sign => "sign", Kind::Sign;
    fp16 => "fp16", Kind::HalfCast { bits: 11, min_exp: -14, max_exp: 15 };
    bf16 => "bf16", Kind::HalfCast { bits: 8, min_exp: -126, max_exp: 127 };
    terngrad => "terngrad", Kind::TernGrad;
    threshold => "threshold:tau=0.5", Kind::Threshold { tau: 0.5 };
    threshold_small => "threshold:tau=0.01", Kind::Threshold { tau: 0.01 };
}

// ---------------------------------------------------------------------------------------
// Tiny dimensions and non-finite input, over the whole catalogue.

/// The catalogue with k = 1, legal down to d = 1.
const SMALL: [Expect; 33] = [
    Expect { spec: "sparse-lowp:k=1,b=3", kind: Kind::SparseLowp { k: 1, b: 3 } },
    Expect { spec: "identity", kind: Kind::Identity },
    Expect { spec: "rand-k:k=1", kind: Kind::RandK { k: 1, scaled: true } },
    Expect { spec: "rand-k:k=1,unscaled", kind: Kind::RandK { k: 1, scaled: false } },
    Expect { spec: "rand-k:k=1,shared", kind: Kind::SharedRandK { k: 1, scaled: true } },
    Expect { spec: "random-block:k=1", kind: Kind::RandomBlock { k: 1, scaled: true } },
    Expect { spec: "top-k:k=1", kind: Kind::TopK { k: 1 } },
    Expect { spec: "top-k:k=1,sampled", kind: Kind::TopK { k: 1 } },
    Expect { spec: "topk-nd:k=1,s=2", kind: Kind::TopKNatDither { k: 1, s: 2 } },
    Expect { spec: "clt-k:k=1", kind: Kind::CltK { k: 1 } },
    Expect { spec: "sketch:rows=1,cols=2", kind: Kind::Sketch { rows: 1, cols: 2 } },
    Expect { spec: "sketch:rows=3,cols=3", kind: Kind::Sketch { rows: 3, cols: 3 } },
    Expect { spec: "qsgd:s=1", kind: Kind::Qsgd { s: 1, inf: false, elias: false } },
    Expect { spec: "qsgd:s=3,norm=inf", kind: Kind::Qsgd { s: 3, inf: true, elias: false } },
    Expect { spec: "natural", kind: Kind::Natural },
    Expect { spec: "natural:nearest", kind: Kind::NaturalNearest },
    Expect { spec: "bernoulli-sparse:p=0.5", kind: Kind::BernoulliSparse { p: 0.5 } },
    Expect { spec: "adaptive-rand", kind: Kind::AdaptiveRand },
    Expect { spec: "perm-k", kind: Kind::PermK { n: 4 } },
    Expect { spec: "corr-q", kind: Kind::OneBit { n: 4 } },
    Expect { spec: "indep-q", kind: Kind::OneBit { n: 4 } },
    Expect { spec: "opt-sparse:budget=1", kind: Kind::OptSparse { budget: OptBudget::Variance(1.0) } },
    Expect { spec: "opt-sparse:density=0.5", kind: Kind::OptSparse { budget: OptBudget::Density(0.5) } },
    Expect { spec: "qsgd:s=2,elias", kind: Kind::Qsgd { s: 2, inf: false, elias: true } },
    Expect { spec: "nat-dither:s=2,norm=inf,elias", kind: Kind::NatDither { s: 2, inf: true, elias: true } },
    Expect { spec: "nat-dither:s=1", kind: Kind::NatDither { s: 1, inf: false, elias: false } },
    Expect { spec: "nat-dither:s=2,norm=inf", kind: Kind::NatDither { s: 2, inf: true, elias: false } },
    Expect { spec: "sign", kind: Kind::Sign },
    Expect { spec: "terngrad", kind: Kind::TernGrad },
    Expect { spec: "smooth-dither:s=2", kind: Kind::Qsgd { s: 2, inf: true, elias: false } },
    Expect { spec: "block-qsgd:blocks=1,s=2", kind: Kind::BlockQsgd { blocks: 1, s: 2 } },
    Expect { spec: "rand-tau-plus:tau=1", kind: Kind::RandTau { tau: 1 } },
    Expect { spec: "threshold:tau=0.3", kind: Kind::Threshold { tau: 0.3 } },
];

#[test]
fn dimensions_one_to_nine_round_trip() {
    for e in &SMALL {
        for d in 1..10 {
            for (family, x) in families(d, 5) {
                let ctx = format!("{} at d = {d} on {family}", e.spec);
                let mut c = build_ok(e, d);
                let mut rng = rng::private(3, d, Purpose::Compressor);
                let mut shared = rng::shared(3, Purpose::SharedSupport);
                let (mut msg, mut out) = (Vec::new(), vec![0.0; d]);
                for _ in 0..10 {
                    encode_round(c.as_mut(), &x, &mut rng, &mut shared, &mut msg);
                    decode(c.as_ref(), &msg, &mut out).unwrap();
                    check_sizes_of(e, c.as_ref(), &msg, &x, &out, &ctx);
                    e.kind.check_output(&x, &out, BUILD_SEED, &ctx);
                }
            }
        }
    }
}

#[test]
fn zero_vector_decodes_to_exact_zeros() {
    for e in &SMALL {
        let d = 12;
        let mut c = build_ok(e, d);
        let mut msg = Vec::new();
        c.encode(&[0.0; 12], &mut rng::private(1, 0, Purpose::Compressor), &mut msg);
        let mut out = vec![1.0; d];
        decode(c.as_ref(), &msg, &mut out).unwrap();
        assert!(out.iter().all(|&v| v.to_bits() == 0), "{}: {out:?}", e.spec);
    }
}

/// A NaN gradient must not vanish in compression: the trainer detects divergence on the
/// decoded vectors. (All-NaN input, so that even rand-k must keep a NaN.)
#[test]
fn non_finite_input_stays_visible() {
    for e in &SMALL {
        let mut c = build_ok(e, 4);
        let mut msg = Vec::new();
        c.encode(&[f64::NAN; 4], &mut rng::private(1, 0, Purpose::Compressor), &mut msg);
        let mut out = vec![0.0; 4];
        decode(c.as_ref(), &msg, &mut out).unwrap();
        assert!(out.iter().any(|v| !v.is_finite()), "{}: {out:?}", e.spec);
    }
}

// ---------------------------------------------------------------------------------------
// Beznosikov et al.'s classes (§1.13): B1(α, β): α‖x‖² ≤ E‖C(x)‖² ≤ β·E⟨C(x), x⟩;
// B2(γ, β): max{γ‖x‖², E‖C(x)‖²/β} ≤ E⟨C(x), x⟩; B3(δ): E‖C(x) − x‖² ≤ (1 − 1/δ)‖x‖².

/// (B1's (α, β), B2's (γ, β), B3's δ); None where no constant is claimed.
type BiasedClasses = (Option<(f64, f64)>, Option<(f64, f64)>, f64);

/// The classes §1.13 (and §1.3) place each biased compressor in, at dimension d.
fn biased_classes(spec: &str, d: f64) -> BiasedClasses {
    let k = 10.0;
    match spec {
        "bernoulli-sparse:p=0.2" => (Some((0.2, 1.0)), Some((0.2, 1.0)), 1.0 / 0.2),
        "adaptive-rand" => (Some((1.0 / d, 1.0)), Some((1.0 / d, 1.0)), d),
        "natural:nearest" => (None, None, 9.0 / 8.0),
        "top-k:k=10" => (Some((k / d, 1.0)), Some((k / d, 1.0)), d / k),
        _ => unreachable!("{spec}"),
    }
}

/// Mean and standard error of per-draw samples.
fn mean_and_error(samples: &[f64]) -> (f64, f64) {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// Monte-Carlo check of each class inequality: every inequality E[a] ≥ E[b] is tested on
/// the per-draw differences a − b, with five standard errors of their mean as tolerance.
#[test]
fn biased_compressors_satisfy_their_class_inequalities() {
    for spec in ["bernoulli-sparse:p=0.2", "adaptive-rand", "natural:nearest", "top-k:k=10"] {
        for (stream, (family, x)) in families(D, 12).into_iter().enumerate() {
            let ctx = format!("{spec} on {family}");
            let mut c = build(spec, D, BUILD_SEED).unwrap();
            let mut rng = rng::private(31, stream, Purpose::Compressor);
            let (mut msg, mut out) = (Vec::new(), vec![0.0; D]);
            let norm2 = dot(&x, &x);
            let (b1, b2, delta) = biased_classes(spec, D as f64);
            // Per draw: ‖C‖², ⟨C, x⟩, ‖C − x‖².
            let mut draws = Vec::with_capacity(N);
            for _ in 0..N {
                c.encode(&x, &mut rng, &mut msg);
                decode(c.as_ref(), &msg, &mut out).unwrap();
                draws.push((dot(&out, &out), dot(&out, &x), dist2(&out, &x)));
            }
            let at_least = |what: &str, f: &dyn Fn(&(f64, f64, f64)) -> f64| {
                let (mean, error) = mean_and_error(&draws.iter().map(f).collect::<Vec<_>>());
                assert!(mean >= -5.0 * error - 1e-12 * norm2, "{ctx}: {what} fails by {mean} (±{error})");
            };
            if let Some((alpha, beta)) = b1 {
                at_least("B1 α‖x‖² ≤ E‖C‖²", &|&(sq, _, _)| sq - alpha * norm2);
                at_least("B1 E‖C‖² ≤ β E⟨C,x⟩", &|&(sq, inner, _)| beta * inner - sq);
            }
            if let Some((gamma, beta)) = b2 {
                at_least("B2 γ‖x‖² ≤ E⟨C,x⟩", &|&(_, inner, _)| inner - gamma * norm2);
                at_least("B2 E‖C‖²/β ≤ E⟨C,x⟩", &|&(sq, inner, _)| inner - sq / beta);
            }
            at_least("B3 E‖C − x‖² ≤ (1 − 1/δ)‖x‖²", &|&(_, _, err)| {
                (1.0 - 1.0 / delta) * norm2 - err
            });
        }
    }
}

// ---------------------------------------------------------------------------------------
// Top-k (§1.3).

fn compress_once(spec: &str, x: &[f64]) -> Vec<f64> {
    let mut c = build(spec, x.len(), BUILD_SEED).unwrap();
    let mut msg = Vec::new();
    c.encode(x, &mut rng::private(1, 0, Purpose::Compressor), &mut msg);
    let mut out = vec![0.0; x.len()];
    decode(c.as_ref(), &msg, &mut out).unwrap();
    out
}

/// DGC's sampled selection (top_k.rs) sends exactly the top-k message on vectors large
/// enough for its 1 % sample: where the threshold lets at least k through, and where a
/// vector's few large entries make it let through fewer (the fallback).
#[test]
fn sampled_top_k_sends_the_exact_top_k_message() {
    let few_large = |d: usize| (0..d).map(|j| if j % 130 == 7 { 10.0 + j as f64 } else { 1e-3 }).collect::<Vec<f64>>();
    for (d, k) in [(20_000, 50), (20_000, 100), (20_000, 2_000), (5_000, 1)] {
        let mut inputs = families(d, 40);
        inputs.push(("few large entries", few_large(d)));
        for (family, x) in inputs {
            let mut exact = build(&format!("top-k:k={k}"), d, BUILD_SEED).unwrap();
            let mut sampled = build(&format!("top-k:k={k},sampled"), d, BUILD_SEED).unwrap();
            let mut rng = rng::private(41, 0, Purpose::Compressor);
            let (mut want, mut got) = (Vec::new(), Vec::new());
            for _ in 0..5 {
                exact.encode(&x, &mut rng, &mut want);
                sampled.encode(&x, &mut rng, &mut got);
                assert!(want == got, "d = {d}, k = {k}, {family}: the sampled selection differs");
            }
        }
    }
}

#[test]
fn top_k_ties_go_to_the_lowest_index() {
    let x = [1.0, -3.0, 3.0, 2.0, -3.0, 0.5];
    assert_eq!(compress_once("top-k:k=2", &x), [0.0, -3.0, 3.0, 0.0, 0.0, 0.0]);
    assert_eq!(compress_once("top-k:k=3", &x), [0.0, -3.0, 3.0, 0.0, -3.0, 0.0]);
    assert_eq!(compress_once("top-k:k=3", &[2.0; 8]), [2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    // −0 and +0 tie too.
    let zeros = compress_once("top-k:k=2", &[0.0, -0.0, 0.0, 1.0]);
    assert_eq!(zeros.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), [0, 0, 0, 1f64.to_bits()]);
}

#[test]
fn top_k_is_idempotent_exactly_k_sparse_and_within_its_bound() {
    for (family, x) in families(D, 6) {
        for k in [1, 10, 50, D] {
            let spec = format!("top-k:k={k}");
            let once = compress_once(&spec, &x);
            assert_bitwise(&compress_once(&spec, &once), &once, &format!("{spec} on {family}"));
            if family == "dense Gaussian" {
                assert_eq!(nonzeros(&once), k, "{spec}");
            }
            // Deterministic residual bound ‖C(x) − x‖² ≤ (1 − k/d)‖x‖² (§1.3); the inputs are
            // f32, so the kept values are exact and only summation order can differ.
            let bound = (1.0 - k as f64 / D as f64) * dot(&x, &x);
            assert!(dist2(&once, &x) <= bound * (1.0 + 1e-12), "{spec} on {family}");
        }
    }
}

/// ‖C(x)‖ ≥ ‖C'(x)‖ for any other restriction C' of x to k coordinates (§1.3).
#[test]
fn top_k_keeps_more_energy_than_any_other_k_subset() {
    let mut g = Stream::seed_from_u64(8);
    let (x, k) = (&families(D, 7)[2].1, 10);
    let kept = dot(&compress_once("top-k:k=10", x), &compress_once("top-k:k=10", x));
    for _ in 0..500 {
        let subset = rand::seq::index::sample(&mut g, D, k);
        let other: f64 = subset.iter().map(|j| x[j] * x[j]).sum();
        assert!(other <= kept, "a random subset keeps {other} > top-k's {kept}");
    }
}

// ---------------------------------------------------------------------------------------
// Rand-k (§1.2).

/// Exactly k distinct coordinates per message, each chosen with frequency k/d.
#[test]
fn rand_k_draws_k_distinct_uniform_indices() {
    let x = &families(D, 9)[0].1; // dense Gaussian: no zero coordinates
    assert_eq!(nonzeros(x), D);
    for (spec, k) in [("rand-k:k=10", 10), ("rand-k:k=10,unscaled", 10), ("rand-k:k=99", 99)] {
        let mut c = build(spec, D, BUILD_SEED).unwrap();
        let mut rng = rng::private(4, 0, Purpose::Compressor);
        let (mut msg, mut out) = (Vec::new(), vec![0.0; D]);
        let mut hits = vec![0usize; D];
        for _ in 0..N {
            c.encode(x, &mut rng, &mut msg);
            decode(c.as_ref(), &msg, &mut out).unwrap();
            assert_eq!(nonzeros(&out), k, "{spec}");
            out.iter().zip(&mut hits).filter(|(o, _)| **o != 0.0).for_each(|(_, h)| *h += 1);
        }
        let p = k as f64 / D as f64;
        let (mean, sd) = (N as f64 * p, (N as f64 * p * (1.0 - p)).sqrt());
        for (j, &h) in hits.iter().enumerate() {
            assert!((h as f64 - mean).abs() <= 5.0 * sd, "{spec}: index {j} chosen {h} times");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Natural compression (§1.8).

/// Per-coordinate variance (2^{a+1} − |t|)(|t| − 2^a), Monte-Carlo on scalars, including
/// the equality case |t| = (4/3)·2^a of the bound t²/8 and a value below 2^-126.
#[test]
fn natural_scalar_variance_matches_the_closed_form() {
    let draws = 100_000;
    let tiny = 1.5 * 2f64.powi(-130);
    for (stream, t) in [0.3, -(4.0 / 3.0) * 0.125, 5.5, 1e-3, 1.0, tiny].into_iter().enumerate() {
        let m = sample(&Expect { spec: "natural", kind: Kind::Natural }, &[t], draws, stream);
        let (lo, hi) = if t == tiny { (0.0, 2f64.powi(-126)) } else { pow2_bracket(t.abs()) };
        let want = two_point_variance((lo, hi), t.abs());
        let root_n = (draws as f64).sqrt();
        assert!((m.err2 - want).abs() <= 5.0 * m.err2_sd / root_n + 1e-15 * want, "t = {t}");
        assert!((m.mean[0] - t).abs() <= 5.0 * (m.err2 / draws as f64).sqrt(), "t = {t}: biased");
        if t != tiny {
            assert!(want <= t * t / 8.0 * (1.0 + 1e-12), "t = {t}: variance above t²/8");
        }
    }
    let t = (4.0 / 3.0) * 0.125;
    let at_equality = two_point_variance(pow2_bracket(t), t);
    assert!((at_equality - t * t / 8.0).abs() <= 1e-15);
}

/// Range rules of natural.rs: clamping above 2^127, ±∞ and NaN as ±∞, 2^-126 exact.
#[test]
fn natural_handles_the_ends_of_the_f32_range() {
    let p127 = 2f64.powi(127);
    let x = [1.5 * p127, -f64::MAX, f64::INFINITY, f64::NEG_INFINITY, 2f64.powi(-126), -p127];
    let out = compress_once("natural", &x);
    assert_eq!(out[..2], [p127, -p127]);
    assert_eq!(out[2..4], [f64::INFINITY, f64::NEG_INFINITY]);
    assert_eq!(out[4..], [2f64.powi(-126), -p127]);
    assert!(compress_once("natural", &[f64::NAN])[0].is_infinite());
}

// ---------------------------------------------------------------------------------------
// Scaled sign (§1.11).

/// ‖C(x) − x‖² = ‖x‖² − ‖x‖₁²/d, up to d·(scale_f32 − ‖x‖₁/d)² from the f32 scale; also
/// for inputs that are not f32 values.
#[test]
fn sign_error_identity_is_exact() {
    let mut g = Stream::seed_from_u64(10);
    let raw: Vec<f64> = (0..D).map(|_| gaussian(&mut g) * 1e3).collect();
    let mut inputs = families(D, 11);
    inputs.push(("raw f64 Gaussian", raw));
    for (family, x) in inputs {
        let out = compress_once("sign", &x);
        let l1: f64 = x.iter().map(|v| v.abs()).sum();
        let scale = l1 / D as f64;
        let rounding = D as f64 * (scale as f32 as f64 - scale).powi(2);
        let want = dot(&x, &x) - l1 * l1 / D as f64;
        let got = dist2(&out, &x);
        let tolerance = rounding + 1e-12 * dot(&x, &x);
        assert!((got - want).abs() <= tolerance, "{family}: {got} vs {want}");
    }
}

// ---------------------------------------------------------------------------------------
// Malformed payloads that have the right length.

fn message(header: Option<f32>, values: &[f32], fields: &[u32], bits: u32) -> Vec<u8> {
    let mut msg = Vec::new();
    header.iter().chain(values).for_each(|v| msg.extend_from_slice(&v.to_le_bytes()));
    let mut w = BitWriter::new(&mut msg);
    fields.iter().for_each(|&f| w.put(f, bits));
    w.finish();
    msg
}

#[test]
fn sparse_decoder_rejects_bad_indices() {
    for spec in ["top-k:k=3", "rand-k:k=3"] {
        let c = build(spec, 10, BUILD_SEED).unwrap(); // indices in 4 bits
        let mut out = vec![0.0; 10];
        let values = [1.0, 2.0, 3.0];
        let ok = message(None, &values, &[1, 2, 9], 4);
        decode(c.as_ref(), &ok, &mut out).unwrap();
        assert_eq!(out, [0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]);
        for bad in [[1, 1, 5], [5, 2, 7], [1, 2, 10], [0, 15, 3]] {
            let msg = message(None, &values, &bad, 4);
            assert!(is_wire_error(decode(c.as_ref(), &msg, &mut out)), "{spec}: {bad:?}");
        }
    }
}

#[test]
fn quantizers_reject_levels_above_s() {
    // s = 4: fields of 1 sign bit + 3 level bits; levels 5..7 do not exist.
    for spec in ["qsgd:s=4", "nat-dither:s=4,norm=inf"] {
        let c = build(spec, 5, BUILD_SEED).unwrap();
        let mut out = vec![0.0; 5];
        let top = message(Some(2.0), &[], &[0, 4 << 1, (4 << 1) | 1, 0, 0], 4);
        decode(c.as_ref(), &top, &mut out).unwrap();
        assert_eq!(out, [0.0, 2.0, -2.0, 0.0, 0.0], "{spec}");
        for level in 5..8 {
            let msg = message(Some(2.0), &[], &[0, level << 1, 0, 0, 0], 4);
            assert!(is_wire_error(decode(c.as_ref(), &msg, &mut out)), "{spec}: level {level}");
        }
    }
}

#[test]
fn terngrad_rejects_field_three() {
    let c = build("terngrad", 5, BUILD_SEED).unwrap();
    let mut out = vec![0.0; 5];
    let ok = message(Some(0.5), &[], &[0, 1, 2, 0, 1], 2);
    decode(c.as_ref(), &ok, &mut out).unwrap();
    assert_eq!(out, [0.0, 0.5, -0.5, 0.0, 0.5]);
    let bad = message(Some(0.5), &[], &[0, 1, 2, 3, 1], 2);
    assert!(is_wire_error(decode(c.as_ref(), &bad, &mut out)));
}

// ---------------------------------------------------------------------------------------
// `build` errors: each names the value and the fix (one test per rule).

fn config_error(spec: &str, d: usize) -> (String, String) {
    match build(spec, d, BUILD_SEED) {
        Err(Error::Config { what, fix }) => (what, fix),
        Err(other) => panic!("{spec}: expected a configuration error, got {other}"),
        Ok(_) => panic!("{spec} was accepted for d = {d}"),
    }
}

#[test]
fn build_rejects_k_zero() {
    for spec in ["top-k:k=0", "rand-k:k=0", "rand-k:k=0,unscaled"] {
        let (what, fix) = config_error(spec, 100);
        assert!(what.contains("k = 0") && fix.contains("1 ≤ k ≤ 100"), "{what}; {fix}");
    }
}

#[test]
fn build_rejects_k_above_d() {
    for spec in ["top-k:k=101", "rand-k:k=101"] {
        let (what, fix) = config_error(spec, 100);
        assert!(what.contains("k = 101") && what.contains("d = 100"), "{what}");
        assert!(fix.contains("1 ≤ k ≤ 100"), "{fix}");
    }
}

#[test]
fn build_rejects_zero_levels() {
    for spec in ["qsgd:s=0", "nat-dither:s=0,norm=inf"] {
        let (what, fix) = config_error(spec, 100);
        assert!(what.contains("s = 0") && fix.contains("s ≥ 1"), "{what}; {fix}");
    }
}

#[test]
fn build_rejects_unknown_names() {
    let (what, fix) = config_error("topk:k=3", 100);
    assert!(what.contains("'topk'") && fix.contains("top-k"), "{what}; {fix}");
}

#[test]
fn build_rejects_unknown_parameters() {
    for (spec, leftover) in
        [("top-k:k=3,unscaled", "unscaled"), ("identity:k=3", "k=3"), ("qsgd:s=2,nrom=inf", "nrom=inf")]
    {
        let (what, fix) = config_error(spec, 100);
        assert!(what.contains(leftover) && fix.contains("SPEC"), "{what}; {fix}");
    }
}

#[test]
fn build_rejects_missing_or_malformed_values() {
    let (what, fix) = config_error("top-k", 100);
    assert!(what.contains("needs the parameter k") && fix.contains("top-k:k=N"), "{what}; {fix}");
    let (what, fix) = config_error("qsgd:s=two", 100);
    assert!(what.contains("s=two") && fix.contains("s=N"), "{what}; {fix}");
    let (what, fix) = config_error("nat-dither:s=2,norm=1", 100);
    assert!(what.contains("norm=1") && fix.contains("norm=2"), "{what}; {fix}");
}

/// §H.1/§H.4: the collective AB inequality E‖(1/n)Σ Q_i(a_i) − ā‖² ≤ A·(1/n)Σ‖a_i‖² − B‖ā‖²,
/// by Monte Carlo (20 000 rounds, fresh private streams per worker, five standard errors),
/// on heterogeneous inputs and on identical ones. PermK (A = B = 1, n | d) and the
/// independent unbiased compressors (A = ω/n, B = 0: rand-k, indep-q) meet it with equality
/// (their variances are exact); corr-q is within the independent bound, and for identical
/// inputs its mean is within r²·d/n² (stratified thresholds, §H.2) — far below indep-q's.
#[test]
fn collective_ab_constants_by_monte_carlo() {
    let (d, n, rounds) = (12, 4, 20_000);
    let heterogeneous: Vec<Vec<f64>> =
        (0..n).map(|i| (0..d).map(|j| (((i * 5 + j * 3) % 7) as f64 - 3.0) * (1.0 + i as f64)).collect()).collect();
    let identical: Vec<Vec<f64>> = vec![(0..d).map(|j| (j as f64 * 0.9).sin()).collect(); n];
    let norm2 = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
    for (spec, exact) in [("perm-k", true), ("rand-k:k=3", true), ("indep-q", true), ("corr-q", false)] {
        for (inputs, a) in [("heterogeneous", &heterogeneous), ("identical", &identical)] {
            let mut c = build_for(spec, d, 0, n).unwrap();
            let (big_a, big_b) = c.ab().unwrap_or_else(|| match c.class() {
                Class::Unbiased { omega } => (omega / n as f64, 0.0),
                other => panic!("{spec}: {other:?}"),
            });
            let mean_a: Vec<f64> = (0..d).map(|j| a.iter().map(|v| v[j]).sum::<f64>() / n as f64).collect();
            let bound = big_a * a.iter().map(|v| norm2(v)).sum::<f64>() / n as f64 - big_b * norm2(&mean_a);
            let mut shared = rng::shared(2, Purpose::SharedSupport);
            let mut streams: Vec<Stream> = (0..n).map(|i| rng::private(3, i, Purpose::Compressor)).collect();
            let (mut sum, mut sum_sq, mut msg) = (0.0, 0.0, Vec::new());
            for _ in 0..rounds {
                c.begin_round(&mut shared);
                let mut mean = vec![0.0; d];
                for (i, ai) in a.iter().enumerate() {
                    c.begin_worker(i);
                    c.encode(ai, &mut streams[i], &mut msg);
                    c.decode_add(&msg, 1.0 / n as f64, &mut mean).unwrap();
                }
                let e: f64 = mean.iter().zip(&mean_a).map(|(m, t)| (m - t).powi(2)).sum();
                sum += e;
                sum_sq += e * e;
            }
            let m = sum / rounds as f64;
            let se = ((sum_sq / rounds as f64 - m * m).max(0.0) / rounds as f64).sqrt();
            let ctx = format!("{spec} on {inputs} inputs: E‖mean − ā‖² = {m:.5} ± {se:.5}, A·… − B·… = {bound:.5}");
            // The f32 values on the wire add a relative 2^-22 to the exact variances.
            assert!(m - 5.0 * se <= bound * (1.0 + 1e-6) + 1e-12, "{ctx}");
            if exact {
                assert!(m + 5.0 * se >= bound * (1.0 - 1e-6) - 1e-12, "{ctx}: the equality");
            }
            if spec == "corr-q" && inputs == "identical" {
                let r2 = f32_up(norm2(&a[0]).sqrt()).powi(2);
                assert!(m <= r2 * d as f64 / (n * n) as f64, "{ctx}: above r²d/n²");
            }
        }
    }
}
