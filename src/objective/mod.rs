//! Objectives (ALGORITHMS.md §0.2): f_i(x) = (1/m_i) Σ_j φ(a_jᵀx; b_j) + R(x).
//!
//! An objective is a per-sample loss φ and a regulariser R. The global objective is
//! f = Σ_i w_i f_i with Σ w_i = 1 (weights m_i/m by default, so f is the mean over all
//! samples and an uncompressed run gives the same iterates for any rank count).

pub mod exp;
pub mod least_squares;
pub mod logistic;
pub mod regularizer;
pub mod sigmoid_squared;
pub mod smoothness;
pub mod smoothness_matrix;

use crate::data::Csr;

/// Objective names as the CLI spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectiveKind {
    /// L2-regularised logistic regression.
    Logistic,
    /// L2-regularised least squares on the ±1 labels.
    LeastSquares,
    /// Logistic loss with the non-convex regulariser λ Σ x²/(1+x²) (EF21 / 3PC papers).
    LogisticNonconvex,
    /// The non-convex loss (1 − σ(b·aᵀx))² with the ridge (λ/2)‖x‖² (MARINA papers, §H.3).
    SigmoidSquared,
}

/// The per-sample loss φ(t; b) of a margin t = aᵀx and a label b.
pub trait Loss: Send + Sync {
    /// φ(t; b) and ∂φ/∂t.
    fn value(&self, t: f64, b: f64) -> (f64, f64);

    /// ∂φ/∂t alone, bit for bit the second part of `value`: rounds that are not
    /// evaluated need no loss values.
    fn derivative(&self, t: f64, b: f64) -> f64 {
        self.value(t, b).1
    }

    /// Over a shard: t_j ← φ'(t_j; b_j)/m for every margin, b_j = `labels[j]`, or
    /// `labels[rows[j]]` for a minibatch. One dynamic call per gradient: this default
    /// body is compiled for each loss, so the per-sample calls inside are static and
    /// inlined (a `dyn` call per sample cost about as much as the loss itself).
    /// The loop is compiled for AVX2 too, chosen at run time ([`crate::simd::on_every_element`]).
    fn shard_derivatives(&self, margins: &mut [f64], labels: &[f64], rows: Option<&[u32]>, m: f64) {
        crate::simd::on_every_element(Derivatives { loss: self, margins, labels, rows, m })
    }

    /// As `shard_derivatives` over all rows, returning Σ_j φ(t_j; b_j).
    fn shard_values_and_derivatives(&self, margins: &mut [f64], labels: &[f64], m: f64) -> f64 {
        let mut total = 0.0;
        for (t, &b) in margins.iter_mut().zip(labels) {
            let (phi, dphi) = self.value(*t, b);
            total += phi;
            *t = dphi / m;
        }
        total
    }

    /// ∂²φ/∂t², for Hessian-vector products (`qtrain solve`).
    fn curvature(&self, t: f64, b: f64) -> f64;

    /// sup_t |∂²φ/∂t²|: the factor c in the smoothness matrix c·AᵀA/m (+ regulariser).
    fn curvature_bound(&self) -> f64;

    /// Whether φ'' is the same everywhere (the squared loss): the Hessian is then c·AᵀA/m.
    fn has_constant_curvature(&self) -> bool {
        false
    }

    /// Whether φ is convex in t.
    fn is_convex(&self) -> bool {
        true
    }
}

/// A separable regulariser R(x) = Σ_j r(x_j).
pub trait Regularizer: Send + Sync {
    /// R(x), adding ∇R(x) to `grad`.
    fn apply(&self, x: &[f64], grad: &mut [f64]) -> f64;

    /// Adds ∇R(x) to `grad`, bit for bit as `apply` does, without the value.
    fn add_gradient(&self, x: &[f64], grad: &mut [f64]) {
        self.apply(x, grad);
    }

    /// r''(x_j).
    fn curvature(&self, xj: f64) -> f64;

    /// The smoothness constant of R (sup |r''|).
    fn smoothness(&self) -> f64;

    /// Whether r'' is the same everywhere (ridge).
    fn has_constant_curvature(&self) -> bool {
        false
    }

    fn is_convex(&self) -> bool;
}

/// A loss and a regulariser.
pub struct Objective {
    loss: Box<dyn Loss>,
    regularizer: Box<dyn Regularizer>,
}

impl Objective {
    pub fn new(kind: ObjectiveKind, lambda: f64) -> Objective {
        let (loss, regularizer): (Box<dyn Loss>, Box<dyn Regularizer>) = match kind {
            ObjectiveKind::Logistic => (Box::new(logistic::Logistic), Box::new(regularizer::Ridge { lambda })),
            ObjectiveKind::LeastSquares => (Box::new(least_squares::Squared), Box::new(regularizer::Ridge { lambda })),
            ObjectiveKind::LogisticNonconvex => {
                (Box::new(logistic::Logistic), Box::new(regularizer::NonconvexPenalty { lambda }))
            }
            ObjectiveKind::SigmoidSquared => {
                (Box::new(sigmoid_squared::SigmoidSquared), Box::new(regularizer::Ridge { lambda }))
            }
        };
        Objective { loss, regularizer }
    }

    /// φ(t; b) and ∂φ/∂t.
    pub fn loss(&self, t: f64, b: f64) -> (f64, f64) {
        self.loss.value(t, b)
    }

    pub fn loss_curvature(&self, t: f64, b: f64) -> f64 {
        self.loss.curvature(t, b)
    }

    pub fn loss_curvature_bound(&self) -> f64 {
        self.loss.curvature_bound()
    }

    /// R(x), adding ∇R(x) to `grad`.
    pub fn regularize(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.regularizer.apply(x, grad)
    }

    pub fn loss_derivative(&self, t: f64, b: f64) -> f64 {
        self.loss.derivative(t, b)
    }

    pub fn regularizer_curvature(&self, xj: f64) -> f64 {
        self.regularizer.curvature(xj)
    }

    pub fn regularizer_smoothness(&self) -> f64 {
        self.regularizer.smoothness()
    }

    /// Whether every f_i is quadratic: constant Hessians c·A_iᵀA_i/m_i + L_R·I.
    pub fn is_quadratic(&self) -> bool {
        self.loss.has_constant_curvature() && self.regularizer.has_constant_curvature()
    }

    /// λ of the ridge (λ/2)‖x‖², when that is the regulariser (a method may then treat it
    /// as a proximal term, AsyLPG's `ridge=prox`).
    pub fn ridge(&self) -> Option<f64> {
        (self.regularizer.has_constant_curvature() && self.regularizer.is_convex())
            .then(|| self.regularizer.smoothness())
    }

    /// Whether f is convex (the Newton solver's f* is the optimum only then).
    pub fn is_convex(&self) -> bool {
        self.loss.is_convex() && self.regularizer.is_convex()
    }
}

/// f_i(x) with ∇f_i(x) written into `grad`; `margins` is scratch of length m_i.
pub fn value_and_gradient(
    obj: &Objective,
    a: &Csr,
    b: &[f64],
    x: &[f64],
    grad: &mut [f64],
    margins: &mut [f64],
) -> f64 {
    let m = b.len() as f64;
    a.margins(x, margins);
    let total = obj.loss.shard_values_and_derivatives(margins, b, m);
    grad.fill(0.0);
    a.add_transposed(margins, grad);
    total / m + obj.regularize(x, grad)
}

/// ∇f_i(x) over all rows (`rows = None`) or the mean over a minibatch of rows, into
/// `grad`, without computing loss values: (1/|S|) Σ_{j∈S} φ'(a_jᵀx; b_j) a_j + ∇R(x).
/// The full-batch gradient is bit for bit the one of `value_and_gradient`.
pub fn gradient(
    obj: &Objective,
    a: &Csr,
    b: &[f64],
    x: &[f64],
    rows: Option<&[u32]>,
    grad: &mut [f64],
    margins: &mut [f64],
) {
    grad.fill(0.0);
    match rows {
        None => {
            let m = b.len() as f64;
            a.margins(x, margins);
            obj.loss.shard_derivatives(margins, b, None, m);
            a.add_transposed(margins, grad);
        }
        Some(rows) => {
            let (m, margins) = (rows.len() as f64, &mut margins[..rows.len()]);
            a.margins_of(rows, x, margins);
            obj.loss.shard_derivatives(margins, b, Some(rows), m);
            a.add_transposed_of(rows, margins, grad);
        }
    }
    obj.regularizer.add_gradient(x, grad);
}

/// The loop of [`Loss::shard_derivatives`], as a kernel compiled for AVX2 too.
struct Derivatives<'a, L: Loss + ?Sized> {
    loss: &'a L,
    margins: &'a mut [f64],
    labels: &'a [f64],
    rows: Option<&'a [u32]>,
    m: f64,
}

impl<L: Loss + ?Sized> crate::simd::Kernel for Derivatives<'_, L> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Derivatives { loss, margins, labels, rows, m } = self;
        // Plain loops: an iterator adaptor's closure is one more call that might not be
        // inlined into the AVX2 copy.
        match rows {
            None => {
                for (t, &b) in margins.iter_mut().zip(labels) {
                    *t = loss.derivative(*t, b) / m;
                }
            }
            Some(rows) => {
                for (t, &r) in margins.iter_mut().zip(rows) {
                    *t = loss.derivative(*t, labels[r as usize]) / m;
                }
            }
        }
    }
}

/// σ(z) = 1/(1+e^{−z}), without overflow for large |z|: e = e^{−|z|} ≤ 1, then 1/(1+e)
/// for z ≥ 0 and e/(1+e) below. One `exp` of −|z| and a select instead of a branch on the
/// sign, which margins of both signs mispredict half the time (the same bits either way).
#[inline(always)]
pub fn sigmoid(z: f64) -> f64 {
    let e = exp::exp_nonpositive(-z.abs());
    let numerator = if z >= 0.0 { 1.0 } else { e };
    numerator / (1.0 + e)
}

/// log(1+e^z), without overflow for large z or loss of precision for very negative z.
pub fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central finite differences of f_i, an independent check of every gradient.
    fn check_gradient(kind: ObjectiveKind) {
        let obj = Objective::new(kind, 0.3);
        let mut a = Csr::empty(3);
        a.push_row([(0, 1.0), (2, -2.0)]);
        a.push_row([(1, 0.5)]);
        a.push_row([(0, 3.0), (1, 1.0), (2, 1.0)]);
        let b = [1.0, -1.0, -1.0];
        let x = [0.2, -0.7, 0.4];
        let mut g = vec![0.0; 3];
        let mut margins = vec![0.0; 3];
        value_and_gradient(&obj, &a, &b, &x, &mut g, &mut margins);
        for j in 0..3 {
            let h = 1e-6;
            let mut xp = x;
            let mut xm = x;
            xp[j] += h;
            xm[j] -= h;
            let mut scratch = vec![0.0; 3];
            let fp = value_and_gradient(&obj, &a, &b, &xp, &mut scratch, &mut margins);
            let fm = value_and_gradient(&obj, &a, &b, &xm, &mut scratch, &mut margins);
            let fd = (fp - fm) / (2.0 * h);
            assert!((fd - g[j]).abs() < 1e-8, "{kind:?} coordinate {j}: {fd} vs {}", g[j]);
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_gradient(ObjectiveKind::Logistic);
        check_gradient(ObjectiveKind::LeastSquares);
        check_gradient(ObjectiveKind::LogisticNonconvex);
        check_gradient(ObjectiveKind::SigmoidSquared);
    }

    #[test]
    fn curvatures_match_finite_differences_of_the_derivatives() {
        for kind in [
            ObjectiveKind::Logistic,
            ObjectiveKind::LeastSquares,
            ObjectiveKind::LogisticNonconvex,
            ObjectiveKind::SigmoidSquared,
        ] {
            let obj = Objective::new(kind, 0.3);
            for &(t, b) in &[(0.3, 1.0), (-2.0, -1.0), (5.0, 1.0)] {
                let h = 1e-6;
                let fd = (obj.loss(t + h, b).1 - obj.loss(t - h, b).1) / (2.0 * h);
                assert!((fd - obj.loss_curvature(t, b)).abs() < 1e-7, "{kind:?}");
                assert!(obj.loss_curvature(t, b).abs() <= obj.loss_curvature_bound() + 1e-15);
            }
            for &xj in &[0.0, 0.4, -1.3] {
                let h = 1e-6;
                let mut gp = [0.0];
                let mut gm = [0.0];
                obj.regularize(&[xj + h], &mut gp);
                obj.regularize(&[xj - h], &mut gm);
                let fd = (gp[0] - gm[0]) / (2.0 * h);
                assert!((fd - obj.regularizer_curvature(xj)).abs() < 1e-7, "{kind:?}");
                assert!(obj.regularizer_curvature(xj).abs() <= obj.regularizer_smoothness() + 1e-15);
            }
        }
    }

    /// σ against the textbook two-branch form with libm's exp (1/(1+e^{−z}) for z ≥ 0,
    /// e^z/(1+e^z) below): within 4·2⁻⁵² relatively wherever σ is normal; 0 and 1 at the
    /// ends; NaN stays NaN.
    #[test]
    fn sigmoid_agrees_with_the_two_branch_form() {
        let two_branch = |z: f64| if z >= 0.0 { 1.0 / (1.0 + (-z).exp()) } else { z.exp() / (1.0 + z.exp()) };
        let special = [0.0, -0.0, f64::MIN_POSITIVE / 4.0, 1e-300, 36.0, 700.0, 708.0];
        let grid = (-4000..=4000).map(|i| i as f64 * 0.0123 + 1e-3);
        for z in special.into_iter().flat_map(|z| [z, -z]).chain(grid) {
            let relative = (sigmoid(z) - two_branch(z)).abs() / two_branch(z);
            assert!(relative <= 4.0 * f64::EPSILON, "σ({z:e}) = {:e}, libm form {:e}", sigmoid(z), two_branch(z));
        }
        assert_eq!((sigmoid(f64::NEG_INFINITY), sigmoid(f64::INFINITY)), (0.0, 1.0));
        assert!(sigmoid(f64::NAN).is_nan());
    }

    #[test]
    fn logistic_helpers_are_stable() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        // Where precision matters: log(1 + e^z) for very negative z is e^z − e^{2z}/2 + …,
        // which the naive ln(1 + e^z) rounds to 0 (1 + e^{-40} == 1 in f64). Relative
        // error ≤ 1e-15 against the series.
        for z in [-40.0f64, -300.0, -700.0] {
            let series = z.exp() - (2.0 * z).exp() / 2.0;
            assert!(((softplus(z) - series) / series).abs() <= 1e-15, "softplus({z}) = {}", softplus(z));
        }
        assert_eq!(softplus(800.0), 800.0);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
        // log(1 + e^z) = z + log(1 + e^{−z}) for large z: the small part is not lost.
        assert!((softplus(40.0) - 40.0 - (-40.0f64).exp()).abs() <= 1e-15 * 40.0);
    }

    /// The derivative-only kernel gives the gradient of `value_and_gradient` bit for bit,
    /// and a minibatch of all rows in order gives the same numbers as the full batch.
    #[test]
    fn gradient_without_values_matches_value_and_gradient() {
        let mut a = Csr::empty(3);
        a.push_row([(0, 1.0), (2, -2.0)]);
        a.push_row([(1, 0.5)]);
        a.push_row([(0, 3.0), (1, 1.0), (2, 1.0)]);
        let (b, x) = ([1.0, -1.0, -1.0], [0.2, -0.7, 0.4]);
        for kind in [
            ObjectiveKind::Logistic,
            ObjectiveKind::LeastSquares,
            ObjectiveKind::LogisticNonconvex,
            ObjectiveKind::SigmoidSquared,
        ] {
            let obj = Objective::new(kind, 0.3);
            let (mut g1, mut g2, mut g3, mut margins) = (vec![0.0; 3], vec![0.0; 3], vec![0.0; 3], vec![0.0; 3]);
            value_and_gradient(&obj, &a, &b, &x, &mut g1, &mut margins);
            gradient(&obj, &a, &b, &x, None, &mut g2, &mut margins);
            gradient(&obj, &a, &b, &x, Some(&[0, 1, 2]), &mut g3, &mut margins);
            assert_eq!(g1, g2, "{kind:?}");
            assert_eq!(g1, g3, "{kind:?}");
            // One row: φ'(a_1ᵀx; b_1)·a_1 + ∇R.
            let mut g4 = vec![0.0; 3];
            gradient(&obj, &a, &b, &x, Some(&[1]), &mut g4, &mut margins);
            let mut want = vec![0.0, 0.5 * obj.loss(0.5 * -0.7, -1.0).1, 0.0];
            obj.regularize(&x, &mut want);
            assert_eq!(g4, want, "{kind:?}");
        }
    }
}
