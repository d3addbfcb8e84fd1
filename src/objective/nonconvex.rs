//! Logistic loss with the non-convex regulariser of the EF21 / 3PC / AdaCGD experiments
//! (ALGORITHMS.md §0.2, §G.4): R(x) = λ Σ_j x_j²/(1 + x_j²), ∇R = 2λx_j/(1+x_j²)²,
//! smoothness λ_max(AᵀA)/(4m) + 2λ.

use super::logistic::{logistic_curvature, logistic_loss};
use super::Objective;

pub struct LogisticNonconvex {
    pub lambda: f64,
}

impl Objective for LogisticNonconvex {
    fn loss(&self, t: f64, b: f64) -> (f64, f64) {
        logistic_loss(t, b)
    }

    fn loss_curvature(&self, t: f64, b: f64) -> f64 {
        logistic_curvature(t, b)
    }

    fn loss_curvature_bound(&self) -> f64 {
        0.25
    }

    fn regularize(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let mut value = 0.0;
        for (g, &xj) in grad.iter_mut().zip(x) {
            let q = 1.0 + xj * xj;
            value += xj * xj / q;
            *g += 2.0 * self.lambda * xj / (q * q);
        }
        self.lambda * value
    }

    /// d/dx 2λx/(1+x²)² = 2λ(1 − 3x²)/(1+x²)³, which lies in [−λ/2, 2λ].
    fn regularizer_curvature(&self, xj: f64) -> f64 {
        let q = 1.0 + xj * xj;
        2.0 * self.lambda * (1.0 - 3.0 * xj * xj) / (q * q * q)
    }

    fn regularizer_smoothness(&self) -> f64 {
        2.0 * self.lambda
    }

    fn is_convex(&self) -> bool {
        false
    }
}
