//! The logistic loss (ALGORITHMS.md §0.2): φ(t; b) = log(1 + e^{−bt}), sup φ'' = 1/4.
//! With the ridge regulariser it is L2-regularised logistic regression (smoothness
//! matrix AᵀA/(4m) + λI); with the non-convex penalty, the EF21 / 3PC objective.

use super::{sigmoid, softplus, Loss};

pub struct Logistic;

impl Loss for Logistic {
    #[inline(always)]
    fn value(&self, t: f64, b: f64) -> (f64, f64) {
        (softplus(-b * t), self.derivative(t, b))
    }

    #[inline(always)]
    fn derivative(&self, t: f64, b: f64) -> f64 {
        -b * sigmoid(-b * t)
    }

    fn curvature(&self, t: f64, b: f64) -> f64 {
        let s = sigmoid(b * t);
        s * (1.0 - s)
    }

    fn curvature_bound(&self) -> f64 {
        0.25
    }
}
