//! Sparse-AsyLPG's uplink compressor (ALGORITHMS.md §B.3): an unbiased sparsification
//! with a density budget, then the low-precision grid of §B.1 on the kept values.
//!
//! SPEC: `sparse-lowp:k=K,b=B` (1 ≤ K ≤ d kept coordinates expected, 2 ≤ B ≤ 21 bits).
//!
//! * Sparsifier (§B.3, Wangni-type; [recall]): keep α_j with probability
//!   p_j = min(1, |α_j|/m), m chosen so that Σ_j p_j = K (§F.3's greedy, shared with
//!   `opt-sparse:density=K/d`), and send α_j/p_j: α_j itself when saturated, ±m otherwise
//!   (m travels as an f32 rounded up, the p_j computed against it, as in opt-sparse).
//! * Quantizer (§B.1): the kept values on the grid δ·{−s, …, s}, s = 2^{B−1} − 1, by
//!   stochastic rounding. δ = (the largest value the message can carry)/s, rounded up to
//!   f32: max(max_saturated |α_j|, m if some coordinate is unsaturated). §B.3 takes the
//!   largest value actually kept; ours is never smaller and differs only when no
//!   unsaturated coordinate was drawn, and it does not depend on the draw, so the
//!   variance below is a closed form. Kept values that round to level 0 are not sent.
//! * Class: unbiased (E over both stages); E‖Q(S(α)) − α‖² = Σ_j (1/p_j − 1)α_j² +
//!   Σ_j p_j (v_j − ℓδ)((ℓ+1)δ − v_j), at most (d/K − 1)‖α‖² (the density budget's
//!   optimum, §F) plus K·max(1, d/K²)‖α‖²/(4s²) (each kept value's rounding variance is
//!   ≤ δ²/4 and δ ≤ max(‖α‖_∞, m)/s with m ≤ ‖α‖₁/K ≤ √d‖α‖/K); ω is that sum, plus
//!   2⁻²³·d/K for m's f32 rounding (it lowers the p_j), inflated by a relative 10⁻⁶ for δ's.
//! * Randomness: one uniform f64 per unsaturated nonzero coordinate and one per kept
//!   coordinate, from the worker's private stream.
//! * Wire (little-endian): δ as f32; the count n of sent coordinates as u32; a layout
//!   byte (0: an index list of n fields of ⌈log₂ d⌉ bits, 1: a d-bit bitmap — whichever
//!   has fewer bits, the list on a tie), byte-padded; then n fields of B bits holding
//!   ℓ + s, byte-padded. A non-finite input sends δ = NaN and nothing else, which decodes
//!   to NaN everywhere (a diverged worker stays visible).
//! * Paper bits (§B.3): 32 + min(n·⌈log₂ d⌉, d) + n·B (the count and layout byte are
//!   framing the paper does not count).

use rand::Rng;

use super::opt_sparse::density_budget_magnitude;
use super::rounding::signed_stochastic_round;
use super::sparse::{index_bits, Increasing};
use super::wire::{expect_dim, f32_round_up, packed_len, put_f32, BitReader, BitWriter, Reader};
use super::{check_k, qsgd, Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::Stream;

const NAME: &str = "sparse-lowp";
const LIST: u8 = 0;
const BITMAP: u8 = 1;

pub struct SparseLowPrecision {
    spec: String,
    d: usize,
    k: usize,
    bits: u32,
    /// s = 2^{b−1} − 1.
    top: u32,
    index_bits: u32,
    /// Scratch: the sent coordinates and their levels + s.
    sent: Vec<(u32, u32)>,
}

impl SparseLowPrecision {
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        let k = spec.take_usize("k")?;
        check_k(spec, k, d)?;
        let top = qsgd::low_precision_levels(spec)?;
        Ok(SparseLowPrecision {
            spec: spec.text().to_string(),
            d,
            k,
            bits: 32 - top.leading_zeros() + 1,
            top,
            index_bits: index_bits(spec, d)?,
            sent: Vec::with_capacity(d),
        })
    }

    /// Whether n sent coordinates use the bitmap (fewer paper bits than the index list).
    fn bitmap(&self, n: usize) -> bool {
        (self.d as u64) < n as u64 * self.index_bits as u64
    }
}

impl Compressor for SparseLowPrecision {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        let (d, k, s) = (self.d as f64, self.k as f64, self.top as f64);
        // m rounded up to f32 lowers each p_j by up to 2⁻²³ (relative): at most
        // 2⁻²³·m‖α‖₁ ≤ 2⁻²³(d/K)‖α‖² more sparsification variance.
        let omega = d / k - 1.0 + k * (d / (k * k)).max(1.0) / (4.0 * s * s) + 2f64.powi(-23) * d / k;
        Class::Unbiased { omega: omega * (1.0 + 1e-6) }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{NAME}: encoding a vector of the wrong dimension");
        out.clear();
        self.sent.clear();
        let norm2: f64 = x.iter().map(|v| v * v).sum();
        if !norm2.is_finite() {
            put_f32(out, f32::NAN);
            out.extend_from_slice(&0u32.to_le_bytes());
            out.push(LIST);
            return;
        }
        let m = if norm2 > 0.0 {
            f32_round_up(density_budget_magnitude(x, self.k as f64 / self.d as f64)) as f64
        } else {
            0.0
        };
        let largest_saturated = x.iter().map(|v| v.abs()).filter(|&a| a >= m).fold(0.0, f64::max);
        let any_unsaturated = x.iter().any(|v| v.abs() > 0.0 && v.abs() < m);
        let largest = if any_unsaturated { largest_saturated.max(m) } else { largest_saturated };
        let delta = f32_round_up(largest / self.top as f64);
        let (step, s) = (delta as f64, self.top as i64);
        for (j, &v) in x.iter().enumerate() {
            let a = v.abs();
            let kept = if a >= m && a > 0.0 {
                v
            } else if a > 0.0 && rng.random::<f64>() < a / m {
                m.copysign(v)
            } else {
                continue;
            };
            let level = signed_stochastic_round(kept / step, rng.random()).clamp(-s, s);
            if level != 0 {
                self.sent.push((j as u32, (level + s) as u32));
            }
        }
        let n = self.sent.len();
        put_f32(out, delta);
        out.extend_from_slice(&(n as u32).to_le_bytes());
        let mut fields = BitWriter::new(out);
        if self.bitmap(n) {
            fields.put(BITMAP as u32, 8);
            let mut next = self.sent.iter().map(|&(j, _)| j as usize).peekable();
            for j in 0..self.d {
                let hit = next.next_if_eq(&j).is_some();
                fields.put(hit as u32, 1);
            }
        } else {
            fields.put(LIST as u32, 8);
            self.sent.iter().for_each(|&(j, _)| fields.put(j, self.index_bits));
        }
        fields.finish();
        let mut levels = BitWriter::new(out);
        self.sent.iter().for_each(|&(_, level)| levels.put(level, self.bits));
        levels.finish();
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(NAME, acc, self.d)?;
        let mut r = Reader::new(msg, NAME);
        let delta = r.f32()? as f64;
        let n = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes")) as usize;
        let layout = r.take(1)?[0];
        if delta.is_nan() {
            r.finish()?;
            acc.iter_mut().for_each(|a| *a = f64::NAN);
            return Ok(());
        }
        if n > self.d || !(delta.is_finite() && delta >= 0.0) || (layout != LIST && layout != BITMAP) {
            return Err(Error::wire(
                NAME,
                format!("header δ = {delta}, {n} coordinates, layout {layout} (d = {})", self.d),
            ));
        }
        if (layout == BITMAP) != self.bitmap(n) {
            return Err(Error::wire(NAME, format!("layout {layout} for {n} coordinates: not the shorter one")));
        }
        let positions = if layout == BITMAP { packed_len(self.d, 1) } else { packed_len(n, self.index_bits) };
        let mut indices = BitReader::new(r.take(positions)?);
        let mut levels = BitReader::new(r.take(packed_len(n, self.bits))?);
        r.finish()?;
        let mut add = |j: usize| -> Result<()> {
            let level = i64::from(levels.get(self.bits)) - self.top as i64;
            if level == 0 || level.unsigned_abs() > self.top as u64 {
                return Err(Error::wire(NAME, format!("coordinate {j}: level {level} outside ±1..±{}", self.top)));
            }
            acc[j] += scale * delta * level as f64;
            Ok(())
        };
        if layout == LIST {
            let mut increasing = Increasing::new(NAME, self.d);
            for i in 0..n {
                add(increasing.next(i, indices.get(self.index_bits) as usize)?)?;
            }
            return Ok(());
        }
        let mut set = 0;
        for j in 0..self.d {
            if indices.get(1) == 1 {
                set += 1;
                if set > n {
                    break;
                }
                add(j)?;
            }
        }
        if set != n {
            return Err(Error::wire(NAME, format!("the bitmap marks {set} coordinates, the header {n}")));
        }
        Ok(())
    }

    fn paper_bits(&self, msg: &[u8]) -> u64 {
        let n = msg.get(4..8).map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as u64);
        32 + (n * self.index_bits as u64).min(self.d as u64) + n * self.bits as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The class bound holds where it is tightest, K close to d with a fine grid, for the
    /// m that travels (f32, rounded up): the exact variance Σ(1/p − 1)α² + Σ p·(rounding
    /// variance) stays below ω‖α‖² (red without ω's 2⁻²³·d/K term).
    #[test]
    fn the_class_bound_covers_the_f32_magnitude() {
        for (d, k, b, alpha) in
            [(1000, 999, 21, vec![1.0; 1000]), (2, 2, 21, vec![1.0, 0.3]), (100, 99, 16, vec![0.5; 100])]
        {
            let mut spec = Spec::parse_compressor(&format!("sparse-lowp:k={k},b={b}")).unwrap();
            let c = SparseLowPrecision::from_spec(&mut spec, d).unwrap();
            let Class::Unbiased { omega } = c.class() else { unreachable!() };
            let m = f32_round_up(density_budget_magnitude(&alpha, k as f64 / d as f64)) as f64;
            let largest = alpha.iter().map(|a: &f64| if a.abs() >= m { a.abs() } else { m }).fold(0.0, f64::max);
            let delta = f32_round_up(largest / c.top as f64) as f64;
            let exact: f64 = alpha
                .iter()
                .map(|&a: &f64| {
                    let (p, v) = if a.abs() >= m { (1.0, a.abs()) } else { (a.abs() / m, m) };
                    let low = (v / delta).floor() * delta;
                    (1.0 / p - 1.0) * a * a + p * (v - low) * (low + delta - v)
                })
                .sum();
            let norm2: f64 = alpha.iter().map(|a| a * a).sum();
            assert!(exact <= omega * norm2, "d = {d}, K = {k}, b = {b}: {exact:e} > ω‖α‖² = {:e}", omega * norm2);
        }
    }
}
