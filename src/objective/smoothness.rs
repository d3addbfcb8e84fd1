//! Smoothness constants for the step-size rules (ALGORITHMS.md §0.2):
//! L = λ_max(c·Σ_i w_i A_iᵀA_i/m_i) + L_R for f, L_i = λ_max(c·A_iᵀA_i/m_i) + L_R for each
//! worker (c = sup φ'', L_R the regulariser's constant), L̃ = √((1/W)Σ L_i²) and
//! L_max = max_i L_i. Largest eigenvalues come from power iteration; the global one runs
//! over MPI with one allreduce per iteration.

use super::Objective;
use crate::comm::Comm;
use crate::data::Csr;
use crate::rng::{self, Purpose};
use crate::worker::Worker;
use rand::Rng;

/// Power iteration stops when the Rayleigh quotient changes by less than this
/// (relative), or after `MAX_ITERS` products.
const REL_TOL: f64 = 1e-10;
const MAX_ITERS: usize = 2000;

#[derive(Clone, Debug, PartialEq)]
pub struct Smoothness {
    /// L of f.
    pub l: f64,
    /// L_i of every worker, indexed by global worker id.
    pub l_i: Vec<f64>,
    /// Weighted quadratic mean √(Σ w_i L_i²) (√((1/W) Σ L_i²) for uniform weights).
    pub l_tilde: f64,
    pub l_max: f64,
    /// The Hessian variance L_± (§H.1), for quadratic objectives when the method asks
    /// for it (MARINA's AB rule); None elsewhere (the rules then bound it by L̃).
    pub l_pm: Option<f64>,
}

pub fn estimate(comm: &mut Comm, workers: &[Worker], d: usize, obj: &Objective, seed: u64) -> Smoothness {
    let c = obj.loss_curvature_bound();
    let reg = obj.regularizer_smoothness();
    let mut start = vec![0.0; d];
    let mut shared = rng::shared(seed, Purpose::PowerIteration);
    for v in start.iter_mut() {
        *v = 0.5 + shared.random::<f64>();
    }

    let mut scratch: Vec<Vec<f64>> = workers.iter().map(|w| vec![0.0; w.rows()]).collect();
    let mut parts = vec![vec![0.0; d]; workers.len()];
    let total_workers = comm.sum_u64(workers.len() as u64) as usize;
    let global = power_iteration(&start, |v, out, converged| {
        for ((w, s), part) in workers.iter().zip(scratch.iter_mut()).zip(parts.iter_mut()) {
            part.fill(0.0);
            gram_product(&w.a, v, w.weight / w.rows() as f64, s, part);
        }
        // A layout-independent sum: L sets the step size, so with it the iterates of
        // `--workers W` are the same on any number of ranks.
        comm.reproducible_sum(&parts, total_workers, out);
        // The flag is reduced as well, so all ranks stop in the same iteration.
        comm.max_u64(u64::from(converged)) == 1
    });

    let local: Vec<f64> = workers
        .iter()
        .zip(scratch.iter_mut())
        .map(|(w, s)| {
            let own = power_iteration(&start, |v, out, done| {
                out.fill(0.0);
                gram_product(&w.a, v, 1.0 / w.rows() as f64, s, out);
                done
            });
            c * own + reg
        })
        .collect();
    let l_i = comm.all_gather_f64(&local);
    let weights = comm.all_gather_f64(&workers.iter().map(|w| w.weight).collect::<Vec<_>>());
    // √(Σ w_i L_i²): the weighted quadratic mean the 3PC and MARINA rules need for
    // f = Σ w_i f_i (√((1/W) Σ L_i²) for uniform weights).
    let l_tilde = l_i.iter().zip(&weights).map(|(l, w)| w * l * l).sum::<f64>().sqrt();
    let l_max = l_i.iter().copied().fold(0.0, f64::max);
    Smoothness { l: c * global + reg, l_i, l_tilde, l_max, l_pm: None }
}

/// The Hessian variance of f = Σ w_i f_i with constant Hessians H_i (§H.1, Szlendak et al.):
/// the smallest L_± with Σ w_i‖∇f_i(x) − ∇f_i(y)‖² − ‖∇f(x) − ∇f(y)‖² ≤ L_±²‖x − y‖², i.e.
/// L_±² = λ_max(Σ w_i H_i² − H̄²), H̄ = Σ w_i H_i — a variance, so positive semi-definite; the
/// ridge part cancels (Σ w_i = 1). Power iteration over MPI, three layout-independent sums
/// per product. None unless the objective is quadratic.
pub fn hessian_variance(comm: &mut Comm, workers: &[Worker], d: usize, obj: &Objective, seed: u64) -> Option<f64> {
    if !obj.is_quadratic() {
        return None;
    }
    let c = obj.loss_curvature_bound();
    let mut start = vec![0.0; d];
    let mut shared = rng::shared(seed, Purpose::PowerIteration);
    for v in start.iter_mut() {
        *v = 0.5 + shared.random::<f64>();
    }
    let total_workers = comm.sum_u64(workers.len() as u64) as usize;
    let mut scratch: Vec<Vec<f64>> = workers.iter().map(|w| vec![0.0; w.rows()]).collect();
    let mut parts = vec![vec![0.0; d]; workers.len()];
    let (mut hv, mut h2v, mut once) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    // Σ_i w_i G_i u over all workers, G_i = c·A_iᵀA_i/m_i.
    let mut weighted_sum = |comm: &mut Comm, u: &[f64], out: &mut [f64], twice: bool| {
        for ((w, s), part) in workers.iter().zip(scratch.iter_mut()).zip(parts.iter_mut()) {
            part.fill(0.0);
            let scale = c / w.rows() as f64;
            if twice {
                once.fill(0.0);
                gram_product(&w.a, u, scale, s, &mut once);
                gram_product(&w.a, &once, w.weight * scale, s, part);
            } else {
                gram_product(&w.a, u, w.weight * scale, s, part);
            }
        }
        comm.reproducible_sum(&parts, total_workers, out);
    };
    let variance = power_iteration(&start, |v, out, converged| {
        weighted_sum(comm, v, &mut hv, false);
        weighted_sum(comm, v, &mut h2v, true);
        weighted_sum(comm, &hv, out, false);
        out.iter_mut().zip(&h2v).for_each(|(o, s)| *o = s - *o);
        comm.max_u64(u64::from(converged)) == 1
    });
    Some(variance.max(0.0).sqrt())
}

/// out += scale · AᵀA v (scratch has one entry per row).
fn gram_product(a: &Csr, v: &[f64], scale: f64, scratch: &mut [f64], out: &mut [f64]) {
    a.margins(v, scratch);
    for s in scratch.iter_mut() {
        *s *= scale;
    }
    a.add_transposed(scratch, out);
}

/// λ_max of a symmetric positive semi-definite operator. `apply(v, out, converged)`
/// writes the product into `out` and returns whether to stop (given the local test),
/// so a distributed operator can agree on stopping.
fn power_iteration(start: &[f64], mut apply: impl FnMut(&[f64], &mut [f64], bool) -> bool) -> f64 {
    let mut v = start.to_vec();
    normalize(&mut v);
    let mut av = vec![0.0; v.len()];
    let mut previous = f64::INFINITY;
    let mut converged = false;
    let mut lambda = 0.0;
    for _ in 0..MAX_ITERS {
        if apply(&v, &mut av, converged) {
            break;
        }
        lambda = dot(&v, &av);
        converged = (lambda - previous).abs() <= REL_TOL * lambda.abs();
        previous = lambda;
        v.copy_from_slice(&av);
        if normalize(&mut v) == 0.0 {
            return 0.0;
        }
    }
    lambda
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalize(v: &mut [f64]) -> f64 {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_iteration_finds_the_top_eigenvalue_of_a_diagonal_operator() {
        let diag = [1.0, 7.5, 3.0, 7.0];
        let lambda = power_iteration(&[1.0, 1.0, 1.0, 1.0], |v, out, done| {
            for ((o, x), d) in out.iter_mut().zip(v).zip(&diag) {
                *o = x * d;
            }
            done
        });
        assert!((lambda - 7.5).abs() < 1e-6, "{lambda}");
    }

    #[test]
    fn gram_product_matches_dense_algebra() {
        // A = [[1, 2], [0, 3]]: AᵀA = [[1, 2], [2, 13]].
        let mut a = Csr::empty(2);
        a.push_row([(0, 1.0), (1, 2.0)]);
        a.push_row([(1, 3.0)]);
        let mut out = vec![0.0; 2];
        gram_product(&a, &[1.0, 1.0], 0.5, &mut [0.0; 2], &mut out);
        assert_eq!(out, vec![1.5, 7.5]);
    }
}
