//! Adaptive random sparsification (Beznosikov et al.): one coordinate, drawn with
//! probability proportional to its magnitude, sent unscaled.
//!
//! Spec: ../shared/ALGORITHMS.md §1.13. SPEC: `adaptive-rand`.
//!
//! * Definition: j is drawn with probability |x_j|/‖x‖₁ and C(x) = x_j e_j.
//! * Class: B3(d), i.e. contractive with α = 1/d: E‖C(x) − x‖² = ‖x‖² − Σ_j|x_j|³/‖x‖₁,
//!   and Chebyshev's sum inequality gives d·Σ|x_j|³ ≥ ‖x‖₁‖x‖² (§1.13). The draw favours
//!   large coordinates, so on skewed vectors it does much better than rand-1
//!   (E‖C(x) − x‖² = (1 − 1/d)‖x‖²) while still costing one value and one index.
//! * Edge cases: the zero vector sends (index 0, value 0); if ‖x‖₁ is not finite the first
//!   non-finite coordinate is sent, so that a diverged worker stays visible.
//! * Randomness: one uniform f64 per message from the worker's private stream, inverted
//!   through the running sum of |x_j| (one pass, no allocation).
//! * Wire: the sparse payload of [`super::sparse`] with k = 1: the value as f32, then the
//!   index in ⌈log₂ d⌉ bits; 4 + ⌈⌈log₂ d⌉/8⌉ bytes.
//! * Paper bits: 32 + ⌈log₂ d⌉.

use rand::Rng;

use super::sparse::SparseFormat;
use super::{Class, Compressor, Spec};
use crate::error::Result;
use crate::rng::Stream;

const NAME: &str = "adaptive-rand";

pub struct AdaptiveRand {
    spec: String,
    d: usize,
    format: SparseFormat,
}

impl AdaptiveRand {
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        let format = SparseFormat::new(NAME, spec, d, 1)?;
        Ok(AdaptiveRand { spec: spec.text().to_string(), d, format })
    }
}

/// The coordinate drawn with probability |x_j|/‖x‖₁ for a uniform u ∈ [0, 1): the first j
/// whose running sum of magnitudes exceeds u·‖x‖₁. Rounding in the running sum can leave
/// u·‖x‖₁ above the last partial sum; the last nonzero coordinate is taken then.
fn draw(x: &[f64], u: f64) -> usize {
    let l1: f64 = x.iter().map(|v| v.abs()).sum();
    if !l1.is_finite() {
        return x.iter().position(|v| !v.is_finite()).unwrap_or(0);
    }
    let target = u * l1;
    let (mut running, mut last_nonzero) = (0.0, 0);
    for (j, v) in x.iter().enumerate() {
        if *v == 0.0 {
            continue;
        }
        running += v.abs();
        last_nonzero = j;
        if running > target {
            return j;
        }
    }
    last_nonzero
}

impl Compressor for AdaptiveRand {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        Class::Contractive { alpha: 1.0 / self.d as f64 }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{NAME}: encoding a vector of the wrong dimension");
        let j = draw(x, rng.random::<f64>());
        self.format.write(&[j as u32], |j| x[j] as f32, out);
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        self.format.decode_add(msg, scale, acc)
    }

    fn paper_bits(&self, _msg: &[u8]) -> u64 {
        self.format.paper_bits()
    }
}

#[cfg(test)]
mod tests {
    use super::draw;

    #[test]
    fn the_draw_inverts_the_running_sum() {
        let x = [0.0, -1.0, 0.0, 3.0, 0.0];
        // Cumulative |x|: 1 at j = 1, 4 at j = 3; u·‖x‖₁ = 4u.
        assert_eq!(draw(&x, 0.0), 1);
        assert_eq!(draw(&x, 0.2499), 1);
        assert_eq!(draw(&x, 0.25), 3);
        assert_eq!(draw(&x, 0.999_999), 3);
        assert_eq!(draw(&[0.0; 4], 0.5), 0);
        assert_eq!(draw(&[1.0, f64::NAN, f64::INFINITY], 0.1), 1);
    }
}
