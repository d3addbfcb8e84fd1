//! The non-convex sigmoid-squared loss of the MARINA experiments (ALGORITHMS.md §H.3):
//! φ(t; b) = (1 − σ(bt))², with the ridge regulariser (λ/2)‖x‖².
//!
//! With s = σ(bt) and b² = 1 (labels ±1): φ' = −2b·s(1 − s)², φ'' = −2s(1 − s)²(1 − 3s).
//! sup |φ''| is reached where d/ds [s(1 − s)²(3s − 1)] = 0, i.e. 12s² − 9s + 1 = 0 at
//! s = (9 + √33)/24 ≈ 0.614 (the other root, ≈ 0.136, gives the smaller local maximum
//! 0.120 of the other sign): 2s(1 − s)²(3s − 1) ≈ 0.154, against logistic's 1/4.

use super::{sigmoid, Loss};

pub struct SigmoidSquared;

impl Loss for SigmoidSquared {
    #[inline(always)]
    fn value(&self, t: f64, b: f64) -> (f64, f64) {
        let miss = sigmoid(-b * t); // 1 − σ(bt), without cancellation
        (miss * miss, self.derivative(t, b))
    }

    #[inline(always)]
    fn derivative(&self, t: f64, b: f64) -> f64 {
        let (s, miss) = (sigmoid(b * t), sigmoid(-b * t));
        -2.0 * b * s * miss * miss
    }

    fn curvature(&self, t: f64, b: f64) -> f64 {
        let (s, miss) = (sigmoid(b * t), sigmoid(-b * t));
        -2.0 * b * b * s * miss * miss * (1.0 - 3.0 * s)
    }

    fn curvature_bound(&self) -> f64 {
        let s = (9.0 + 33f64.sqrt()) / 24.0;
        2.0 * s * (1.0 - s) * (1.0 - s) * (3.0 * s - 1.0)
    }

    fn is_convex(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed-form bound is the maximum of |φ''| over a fine grid of margins, and an
    /// upper bound of it.
    #[test]
    fn the_curvature_bound_is_the_supremum() {
        let bound = SigmoidSquared.curvature_bound();
        let grid_max =
            (-200_000..=200_000).map(|i| SigmoidSquared.curvature(i as f64 * 1e-4, 1.0).abs()).fold(0.0, f64::max);
        assert!(grid_max <= bound * (1.0 + 1e-12), "{grid_max} > {bound}");
        assert!(grid_max >= bound * (1.0 - 1e-6), "{grid_max} ≪ {bound}");
        assert!((bound - 0.154).abs() < 1e-3);
    }
}
