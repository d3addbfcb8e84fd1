//! Gradient sparsification with optimal probabilities (Wangni, Wang, Liu, Zhang, NeurIPS
//! 2018): unbiased, each coordinate kept independently with the probability that
//! minimises the expected density for a variance budget, or the variance for a density
//! budget.
//!
//! Spec: ../shared/ALGORITHMS.md §F. SPEC: `opt-sparse:budget=F` (F > 0: variance at most
//! F·‖g‖²) or `opt-sparse:density=F` (0 < F ≤ 1: expected F·d coordinates).
//!
//! * Definition (§F.1): Q(g)_j = Z_j·g_j/p_j with Z_j ~ Bernoulli(p_j) independent; E Q(g) = g
//!   and E‖Q(g) − g‖² = Σ_j g_j²(1/p_j − 1). Both budgets give p_j = min(1, |g_j|/m) for a
//!   magnitude m (m = 1/λ): coordinates with |g_j| ≥ m are *saturated* (always sent, as
//!   they are), the others are sent as sign(g_j)·m. Zero coordinates are never sent.
//!   - `budget=ε` (§F.2, closed form): with |g| sorted descending a_1 ≥ … ≥ a_d, the first
//!     k = 0, 1, … with λ_k·a_{k+1} ≤ 1, λ_k = Σ_{i>k} a_i / (ε‖g‖² + Σ_{i>k} a_i²); then
//!     the variance is exactly ε‖g‖².
//!   - `density=ρ` (§F.3, the paper's greedy Alg. 2): p_j = min(1, ρd|g_j|/‖g‖₁), then
//!     rescale the unsaturated p by c = (ρd − #saturated)/Σ_unsat p_j and re-cap, until
//!     c ≤ 1 or no new coordinate saturates (we iterate to convergence, at most d + 1
//!     passes, where the paper suggests two: the fixed point is the minimum-variance p
//!     for Σp = ρd, which is what makes ω = 1/ρ − 1 below valid).
//! * Exact unbiasedness on the wire: m travels as an f32 rounded *up* and the p_j are
//!   computed against that m, so every unsaturated value sent, ±m, is exactly g_j/p_j.
//!   The rounding lowers the p_j by at most a relative 2^-24 (the density drops and the
//!   variance rises by that much at most).
//! * Class: unbiased with ω = ε (`budget`) or ω = 1/ρ − 1 (`density`: uniform p = ρ is
//!   feasible with exactly that variance, and the greedy fixed point is optimal), both up
//!   to the f32 rounding of m.
//! * Non-finite input: if ‖g‖ is not finite, the non-finite coordinates are sent as
//!   saturated and nothing else (m = 0), so a diverged worker stays visible.
//! * Randomness: one uniform f64 per nonzero unsaturated coordinate, from the worker's
//!   private stream.
//! * Wire ("hybrid" coding, little-endian): bytes 0..4 m as f32; 4..8 the saturated count
//!   S as u32; 8..12 the unsaturated count U as u32; then the sparse payload of the S
//!   saturated entries ([`super::sparse`]: S f32 values, then S increasing indices in
//!   b = ⌈log₂ d⌉ bits, byte-padded); then U fields of b + 1 bits, the increasing index
//!   followed by a sign bit (1 = negative), byte-padded:
//!   12 + 4S + ⌈Sb/8⌉ + ⌈U(b + 1)/8⌉ bytes.
//! * Paper bits (§F.5): 32 + U(⌈log₂ d⌉ + 1) + S(⌈log₂ d⌉ + 32); the two counts are
//!   framing the paper does not count.

use rand::Rng;

use super::sparse::{append_payload, index_bits, Increasing, Payload};
use super::wire::{expect_dim, f32_round_up, packed_len, put_f32, BitReader, BitWriter, Reader};
use super::{Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::Stream;

const NAME: &str = "opt-sparse";
/// Bytes before the saturated payload: m, S and U.
const HEADER: usize = 12;

/// What the probabilities are optimal for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// E‖Q(g) − g‖² ≤ ε‖g‖² with the fewest expected coordinates (§F.2).
    Variance(f64),
    /// Σ p_j = ρd with the least variance (§F.3).
    Density(f64),
}

pub struct OptSparse {
    spec: String,
    d: usize,
    budget: Budget,
    index_bits: u32,
    /// Scratch, kept to avoid reallocating: sorted magnitudes and their suffix sums, and
    /// the indices of the message being written.
    sorted: Vec<f64>,
    suffix: Vec<(f64, f64)>,
    saturated: Vec<u32>,
    unsaturated: Vec<u32>,
}

impl OptSparse {
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        let budget = match (spec.take_f64_or("budget", f64::NAN)?, spec.take_f64_or("density", f64::NAN)?) {
            (eps, rho) if rho.is_nan() && eps > 0.0 => Budget::Variance(eps),
            (eps, rho) if eps.is_nan() && rho > 0.0 && rho <= 1.0 => Budget::Density(rho),
            _ => {
                return Err(Error::config(
                    format!("compressor '{}' needs one budget: a variance budget F > 0 or a density 0 < F ≤ 1", spec.text()),
                    "write opt-sparse:budget=F (variance ≤ F·‖g‖², e.g. budget=1) or opt-sparse:density=F (e.g. density=0.1)",
                ))
            }
        };
        let index_bits = index_bits(spec, d)?;
        Ok(OptSparse {
            spec: spec.text().to_string(),
            d,
            budget,
            index_bits,
            sorted: Vec::with_capacity(d),
            suffix: Vec::with_capacity(d + 1),
            saturated: Vec::with_capacity(d),
            unsaturated: Vec::with_capacity(d),
        })
    }

    /// The magnitude m = 1/λ of p_j = min(1, |g_j|/m), before rounding, for finite g ≠ 0.
    pub(super) fn magnitude(&mut self, g: &[f64]) -> f64 {
        match self.budget {
            Budget::Variance(eps) => self.variance_budget_magnitude(g, eps),
            Budget::Density(rho) => density_budget_magnitude(g, rho),
        }
    }

    /// §F.2's closed form over the nonzero magnitudes sorted descending.
    fn variance_budget_magnitude(&mut self, g: &[f64], eps: f64) -> f64 {
        self.sorted.clear();
        self.sorted.extend(g.iter().map(|v| v.abs()).filter(|&a| a > 0.0));
        self.sorted.sort_unstable_by(|a, b| b.total_cmp(a));
        // suffix[k] = (Σ_{i≥k} a_i, Σ_{i≥k} a_i²), summed from the small end: no
        // cancellation when most of the mass saturates.
        self.suffix.clear();
        self.suffix.resize(self.sorted.len() + 1, (0.0, 0.0));
        for k in (0..self.sorted.len()).rev() {
            let (s1, s2) = self.suffix[k + 1];
            let a = self.sorted[k];
            self.suffix[k] = (s1 + a, s2 + a * a);
        }
        let norm2 = self.suffix[0].1;
        for (k, &a_next) in self.sorted.iter().enumerate() {
            let (s1, s2) = self.suffix[k];
            let lambda = s1 / (eps * norm2 + s2);
            if lambda * a_next <= 1.0 {
                return 1.0 / lambda;
            }
        }
        unreachable!("λ·a ≤ 1 holds at the last coordinate for ε > 0")
    }
}

/// §F.3's greedy rescaling, tracked as the common factor C of the unsaturated p_j = C|g_j|.
pub(super) fn density_budget_magnitude(g: &[f64], rho: f64) -> f64 {
    let l1: f64 = g.iter().map(|v| v.abs()).sum();
    let target = rho * g.len() as f64;
    let mut factor = target / l1;
    let mut saturated_before = usize::MAX;
    for _ in 0..=g.len() {
        let (mut saturated, mut unsaturated_sum) = (0usize, 0.0);
        for a in g.iter().map(|v| v.abs()) {
            if factor * a >= 1.0 {
                saturated += 1;
            } else {
                unsaturated_sum += factor * a;
            }
        }
        // Converged: nothing new saturated since the last rescaling, or nothing left.
        if saturated == saturated_before || unsaturated_sum == 0.0 {
            break;
        }
        let c = (target - saturated as f64) / unsaturated_sum;
        factor *= c;
        if c <= 1.0 {
            break;
        }
        saturated_before = saturated;
    }
    1.0 / factor
}

impl Compressor for OptSparse {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        match self.budget {
            Budget::Variance(eps) => Class::Unbiased { omega: eps },
            Budget::Density(rho) => Class::Unbiased { omega: 1.0 / rho - 1.0 },
        }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{NAME}: encoding a vector of the wrong dimension");
        self.saturated.clear();
        self.unsaturated.clear();
        let norm2: f64 = x.iter().map(|v| v * v).sum();
        let m = if norm2.is_finite() && norm2 > 0.0 { f32_round_up(self.magnitude(x)) } else { 0.0 };
        let mf = m as f64;
        for (j, &v) in x.iter().enumerate() {
            let a = v.abs();
            if !norm2.is_finite() {
                if !v.is_finite() {
                    self.saturated.push(j as u32);
                }
            } else if a >= mf && a > 0.0 {
                self.saturated.push(j as u32);
            } else if a > 0.0 && rng.random::<f64>() < a / mf {
                self.unsaturated.push(j as u32);
            }
        }
        let (s, u, b) = (self.saturated.len(), self.unsaturated.len(), self.index_bits);
        out.clear();
        out.reserve(HEADER + 4 * s + packed_len(s, b) + packed_len(u, b + 1));
        put_f32(out, m);
        out.extend_from_slice(&(s as u32).to_le_bytes());
        out.extend_from_slice(&(u as u32).to_le_bytes());
        append_payload(&self.saturated, b, |j| x[j] as f32, out);
        let mut fields = BitWriter::new(out);
        for &j in &self.unsaturated {
            fields.put(j, b);
            fields.put((x[j as usize] < 0.0) as u32, 1);
        }
        fields.finish();
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(NAME, acc, self.d)?;
        let mut r = Reader::new(msg, NAME);
        let (m, s, u) = self.header(&mut r)?;
        Payload { name: NAME, d: self.d, index_bits: self.index_bits, k: s }
            .decode_add(&mut r, |j, v| acc[j] += scale * v)?;
        let b = self.index_bits;
        let mut fields = BitReader::new(r.take(packed_len(u, b + 1))?);
        r.finish()?;
        let mut increasing = Increasing::new(NAME, self.d);
        for i in 0..u {
            let j = increasing.next(i, fields.get(b) as usize)?;
            acc[j] += scale * if fields.get(1) == 1 { -m } else { m };
        }
        Ok(())
    }

    fn paper_bits(&self, msg: &[u8]) -> u64 {
        let (_, s, u) = self.header(&mut Reader::new(msg, NAME)).unwrap_or((0.0, 0, 0));
        let b = self.index_bits as u64;
        32 + u as u64 * (b + 1) + s as u64 * (b + 32)
    }
}

impl OptSparse {
    /// m, S and U, with S + U ≤ d.
    fn header(&self, r: &mut Reader) -> Result<(f64, usize, usize)> {
        let m = r.f32()? as f64;
        let mut count = || -> Result<usize> {
            let b = r.take(4)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let (s, u) = (count()?, count()?);
        if s + u > self.d {
            return Err(Error::wire(NAME, format!("{s} saturated and {u} other coordinates, but d = {}", self.d)));
        }
        Ok((m, s, u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::build;
    use rand::SeedableRng;

    fn probabilities(g: &[f64], m: f64) -> Vec<f64> {
        g.iter().map(|v| (v.abs() / m).min(1.0)).collect()
    }

    fn student_t_vector(d: usize, seed: u64) -> Vec<f64> {
        let mut g = Stream::seed_from_u64(seed);
        (0..d)
            .map(|_| {
                let (u, v, w) = (1.0 - g.random::<f64>(), g.random::<f64>(), 1.0 - g.random::<f64>());
                let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
                z / (-w.ln()).sqrt()
            })
            .collect()
    }

    fn opt(spec: &str, d: usize) -> OptSparse {
        let mut s = Spec::parse_compressor(spec).unwrap();
        OptSparse::from_spec(&mut s, d).unwrap()
    }

    /// §F.5: the variance Σ g²/p − ‖g‖² is ε‖g‖² (rel. 1e-12) and p ∈ (0, 1] on nonzeros.
    #[test]
    fn the_closed_form_spends_exactly_the_variance_budget() {
        for (seed, eps) in [(1, 0.01), (2, 0.1), (3, 0.5), (4, 1.0), (5, 3.0)] {
            let g = student_t_vector(200, seed);
            let mut c = opt(&format!("opt-sparse:budget={eps}"), g.len());
            let p = probabilities(&g, c.magnitude(&g));
            let norm2: f64 = g.iter().map(|v| v * v).sum();
            let variance: f64 = g.iter().zip(&p).map(|(v, p)| v * v / p).sum::<f64>() - norm2;
            assert!((variance - eps * norm2).abs() <= 1e-12 * eps * norm2 * 10.0, "ε = {eps}: {variance}");
            assert!(p.iter().all(|&p| p > 0.0 && p <= 1.0));
        }
    }

    /// Minimality: for every KKT-consistent saturation count k (p = 1 on the k largest,
    /// λa on the rest, with λ from the budget), the density is at least the closed form's.
    #[test]
    fn the_closed_form_is_the_least_dense_kkt_point() {
        for seed in 0..200 {
            let d = 2 + seed as usize % 11;
            let g = student_t_vector(d, 100 + seed);
            let eps = [0.01, 0.1, 0.5, 1.0, 3.0][seed as usize % 5];
            let mut c = opt(&format!("opt-sparse:budget={eps}"), d);
            let ours: f64 = probabilities(&g, c.magnitude(&g)).iter().sum();
            let mut a: Vec<f64> = g.iter().map(|v| v.abs()).collect();
            a.sort_by(|x, y| y.total_cmp(x));
            let norm2: f64 = a.iter().map(|v| v * v).sum();
            let mut best = f64::INFINITY;
            for k in 0..d {
                let rest1: f64 = a[k..].iter().sum();
                let rest2: f64 = a[k..].iter().map(|v| v * v).sum();
                let lambda = rest1 / (eps * norm2 + rest2);
                let consistent = a[k] * lambda <= 1.0 + 1e-12 && (k == 0 || a[k - 1] * lambda >= 1.0 - 1e-12);
                if consistent {
                    best = best.min(k as f64 + lambda * rest1);
                }
            }
            assert!((ours - best).abs() <= 1e-12 * best, "d = {d}, ε = {eps}: {ours} vs {best}");
        }
    }

    /// §F.5: Σ p_j = ρd once the greedy converged, with ρd below the nonzero count.
    #[test]
    fn the_greedy_reaches_the_density_budget() {
        for (seed, rho) in [(1, 0.01), (2, 0.05), (3, 0.1), (4, 0.3), (5, 1.0)] {
            let g = student_t_vector(1000, seed);
            let p = probabilities(&g, density_budget_magnitude(&g, rho));
            let sum: f64 = p.iter().sum();
            assert!((sum - rho * 1000.0).abs() <= 1e-9 * 1000.0, "ρ = {rho}: Σp = {sum}");
        }
        // Fewer nonzeros than ρd: every nonzero saturates.
        let g = [0.0, 3.0, 0.0, -1.0];
        assert_eq!(probabilities(&g, density_budget_magnitude(&g, 0.9)), [0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn build_rejects_missing_both_and_out_of_range_budgets() {
        for spec in ["opt-sparse", "opt-sparse:budget=1,density=0.1", "opt-sparse:budget=0", "opt-sparse:density=1.5"] {
            match build(spec, 10, 0) {
                Err(Error::Config { what, fix }) => {
                    assert!(what.contains("one budget") && fix.contains("density=F"), "{what}")
                }
                Err(other) => panic!("{spec}: {other}"),
                Ok(_) => panic!("{spec} accepted"),
            }
        }
    }
}
