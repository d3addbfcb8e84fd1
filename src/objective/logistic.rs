//! L2-regularised logistic regression (ALGORITHMS.md §0.2):
//! φ(t; b) = log(1 + e^{−bt}), R(x) = (λ/2)‖x‖², smoothness matrix AᵀA/(4m) + λI.

use super::{sigmoid, softplus, Objective};

pub struct Logistic {
    pub lambda: f64,
}

/// The logistic loss itself, shared with the non-convex variant.
pub fn logistic_loss(t: f64, b: f64) -> (f64, f64) {
    (softplus(-b * t), -b * sigmoid(-b * t))
}

pub fn logistic_curvature(t: f64, b: f64) -> f64 {
    let s = sigmoid(b * t);
    s * (1.0 - s)
}

/// (λ/2)‖x‖², adding λx to `grad`.
pub fn ridge(lambda: f64, x: &[f64], grad: &mut [f64]) -> f64 {
    let mut sq = 0.0;
    for (g, &xj) in grad.iter_mut().zip(x) {
        *g += lambda * xj;
        sq += xj * xj;
    }
    0.5 * lambda * sq
}

impl Objective for Logistic {
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
