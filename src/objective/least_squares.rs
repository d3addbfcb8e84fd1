//! L2-regularised least squares (ALGORITHMS.md §0.2):
//! φ(t; b) = ½(t − b)², R(x) = (λ/2)‖x‖², smoothness matrix AᵀA/m + λI (the Hessian).

use super::logistic::ridge;
use super::Objective;

pub struct LeastSquares {
    pub lambda: f64,
}

impl Objective for LeastSquares {
    fn loss(&self, t: f64, b: f64) -> (f64, f64) {
        let r = t - b;
        (0.5 * r * r, r)
    }

    fn loss_curvature(&self, _t: f64, _b: f64) -> f64 {
        1.0
    }

    fn loss_curvature_bound(&self) -> f64 {
        1.0
    }

    fn regularize(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        ridge(self.lambda, x, grad)
    }

    fn regularizer_curvature(&self, _xj: f64) -> f64 {
        self.lambda
    }

    fn regularizer_smoothness(&self) -> f64 {
        self.lambda
    }

    fn is_convex(&self) -> bool {
        true
    }
}
