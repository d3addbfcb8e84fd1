//! The squared loss (ALGORITHMS.md §0.2): φ(t; b) = ½(t − b)², φ'' = 1, so with the
//! ridge regulariser the smoothness matrix AᵀA/m + λI is the Hessian.

use super::Loss;

pub struct Squared;

impl Loss for Squared {
    #[inline(always)]
    fn value(&self, t: f64, b: f64) -> (f64, f64) {
        let r = t - b;
        (0.5 * r * r, r)
    }

    fn curvature(&self, _t: f64, _b: f64) -> f64 {
        1.0
    }

    fn curvature_bound(&self) -> f64 {
        1.0
    }

    fn has_constant_curvature(&self) -> bool {
        true
    }
}
