//! The reference optimum f* (`qtrain solve`, `--fstar auto`): inexact Newton with
//! conjugate gradients over MPI, to ‖∇f(x)‖ ≤ tol (1e-10 by default), so curves of
//! f − f* are meaningful down to machine precision.
//!
//! Each Hessian-vector product is one allreduce of d floats:
//! H v = Σ_i w_i (1/m_i) A_iᵀ diag(φ''(A_i x)) A_i v + R''(x) ∘ v. CG stops at the
//! forcing tolerance min(0.5, √‖g‖)·‖g‖ (superlinear convergence) or on non-positive
//! curvature (the non-convex objective), and an Armijo backtracking line search keeps
//! every step a descent step.

use crate::comm::Comm;
use crate::error::{Error, Result};
use crate::problem::Problem;

#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    pub x: Vec<f64>,
    pub f: f64,
    pub grad_norm: f64,
    pub newton_iters: usize,
    pub cg_iters: usize,
}

pub fn newton(comm: &mut Comm, p: &mut Problem, x0: Vec<f64>, tol: f64, max_iters: usize) -> Result<Solution> {
    let d = p.dim;
    let mut x = x0;
    let mut fg = vec![0.0; d + 1];
    let mut margins: Vec<Vec<f64>> = p.workers.iter().map(|w| vec![0.0; w.rows()]).collect();
    let mut scratch = margins.clone();
    let mut cg_total = 0;
    for iter in 0..=max_iters {
        p.full_value_and_gradient(comm, &x, &mut fg);
        let f = fg[0];
        let g = fg[1..].to_vec();
        let grad_norm = norm(&g);
        log::debug!("newton {iter}: f = {f:.15e}, ‖∇f‖ = {grad_norm:.3e}");
        if comm.max_u64(u64::from(grad_norm <= tol || !grad_norm.is_finite())) == 1 || iter == max_iters {
            if grad_norm.is_nan() || grad_norm > tol {
                return Err(Error::Numerical {
                    what: format!(
                        "Newton stopped at ‖∇f‖ = {grad_norm:.3e} after {iter} iterations (tolerance {tol:.1e})"
                    ),
                    fix: "raise --max-iters or --tol; for the non-convex objective f* is only a stationary value"
                        .into(),
                });
            }
            return Ok(Solution { x, f, grad_norm, newton_iters: iter, cg_iters: cg_total });
        }
        for (w, m) in p.workers.iter().zip(margins.iter_mut()) {
            w.a.margins(&x, m);
        }
        let hessian = |v: &[f64], out: &mut [f64], comm: &mut Comm, scratch: &mut [Vec<f64>]| {
            out.fill(0.0);
            for ((w, m), s) in p.workers.iter().zip(&margins).zip(scratch.iter_mut()) {
                w.add_weighted_hessian_product(&p.objective, m, v, s, out);
            }
            comm.monitor_sum(out);
            for ((o, vj), xj) in out.iter_mut().zip(v).zip(&x) {
                *o += p.objective.regularizer_curvature(*xj) * vj;
            }
        };
        let (direction, cg_iters) = conjugate_gradient(&g, grad_norm, comm, &mut scratch, hessian);
        cg_total += cg_iters;
        x = line_search(comm, p, &x, f, &g, &direction, &mut fg)?;
    }
    unreachable!("the loop returns at iter == max_iters")
}

/// Solves H p = −g approximately; returns p and the CG iterations used.
fn conjugate_gradient(
    g: &[f64],
    grad_norm: f64,
    comm: &mut Comm,
    scratch: &mut [Vec<f64>],
    mut hessian: impl FnMut(&[f64], &mut [f64], &mut Comm, &mut [Vec<f64>]),
) -> (Vec<f64>, usize) {
    let d = g.len();
    let forcing = grad_norm.sqrt().min(0.5) * grad_norm;
    let mut p = vec![0.0; d];
    let mut r: Vec<f64> = g.iter().map(|v| -v).collect();
    let mut dir = r.clone();
    let mut hd = vec![0.0; d];
    let mut rr = dot(&r, &r);
    for k in 0..d.max(1) * 2 {
        hessian(&dir, &mut hd, comm, scratch);
        let curvature = dot(&dir, &hd);
        if comm.max_u64(u64::from(curvature <= 0.0)) == 1 {
            // Negative curvature (non-convex f): fall back to the steepest descent
            // direction on the first iteration, else keep the progress made so far.
            if k == 0 {
                p.copy_from_slice(&r);
            }
            return (p, k + 1);
        }
        let alpha = rr / curvature;
        for j in 0..d {
            p[j] += alpha * dir[j];
            r[j] -= alpha * hd[j];
        }
        let rr_next = dot(&r, &r);
        if comm.max_u64(u64::from(rr_next.sqrt() <= forcing)) == 1 {
            return (p, k + 1);
        }
        let beta = rr_next / rr;
        rr = rr_next;
        for j in 0..d {
            dir[j] = r[j] + beta * dir[j];
        }
    }
    (p, 2 * d)
}

/// Armijo backtracking from the full Newton step.
fn line_search(
    comm: &mut Comm,
    p: &mut Problem,
    x: &[f64],
    f: f64,
    g: &[f64],
    dir: &[f64],
    fg: &mut [f64],
) -> Result<Vec<f64>> {
    let slope = dot(g, dir);
    let mut step = 1.0;
    let mut trial = vec![0.0; x.len()];
    for _ in 0..60 {
        for ((t, xj), dj) in trial.iter_mut().zip(x).zip(dir) {
            *t = xj + step * dj;
        }
        p.full_value_and_gradient(comm, &trial, fg);
        // Accept also when f cannot decrease measurably any more (at machine precision).
        let accept = fg[0] <= f + 1e-4 * step * slope || (fg[0] - f).abs() <= 1e-15 * f.abs();
        if comm.max_u64(u64::from(accept)) == 1 {
            return Ok(trial);
        }
        step *= 0.5;
    }
    Err(Error::Numerical {
        what: "Newton line search found no decrease".into(),
        fix: "the objective may be badly scaled: check the data and --lambda".into(),
    })
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}
