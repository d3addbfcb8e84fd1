//! Regularisers (ALGORITHMS.md §0.2): the ridge (λ/2)‖x‖² and the non-convex penalty
//! λ Σ_j x_j²/(1 + x_j²) of the EF21 / 3PC / AdaCGD experiments (§G.4).

use super::Regularizer;

/// (λ/2)‖x‖²: gradient λx, smoothness λ.
pub struct Ridge {
    pub lambda: f64,
}

impl Regularizer for Ridge {
    fn apply(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let mut sq = 0.0;
        for (g, &xj) in grad.iter_mut().zip(x) {
            *g += self.lambda * xj;
            sq += xj * xj;
        }
        0.5 * self.lambda * sq
    }

    fn add_gradient(&self, x: &[f64], grad: &mut [f64]) {
        for (g, &xj) in grad.iter_mut().zip(x) {
            *g += self.lambda * xj;
        }
    }

    fn curvature(&self, _xj: f64) -> f64 {
        self.lambda
    }

    fn smoothness(&self) -> f64 {
        self.lambda
    }

    fn has_constant_curvature(&self) -> bool {
        true
    }

    fn is_convex(&self) -> bool {
        true
    }
}

/// λ Σ_j x_j²/(1 + x_j²): gradient 2λx_j/(1+x_j²)², smoothness 2λ (the reference code's
/// L_i = λ_max(A_iᵀA_i)/(4m_i) + 2λ).
pub struct NonconvexPenalty {
    pub lambda: f64,
}

impl Regularizer for NonconvexPenalty {
    fn apply(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let mut value = 0.0;
        for (g, &xj) in grad.iter_mut().zip(x) {
            let q = 1.0 + xj * xj;
            value += xj * xj / q;
            *g += 2.0 * self.lambda * xj / (q * q);
        }
        self.lambda * value
    }

    fn add_gradient(&self, x: &[f64], grad: &mut [f64]) {
        for (g, &xj) in grad.iter_mut().zip(x) {
            let q = 1.0 + xj * xj;
            *g += 2.0 * self.lambda * xj / (q * q);
        }
    }

    /// d/dx 2λx/(1+x²)² = 2λ(1 − 3x²)/(1+x²)³, which lies in [−λ/2, 2λ].
    fn curvature(&self, xj: f64) -> f64 {
        let q = 1.0 + xj * xj;
        2.0 * self.lambda * (1.0 - 3.0 * xj * xj) / (q * q * q)
    }

    fn smoothness(&self) -> f64 {
        2.0 * self.lambda
    }

    fn is_convex(&self) -> bool {
        false
    }
}
