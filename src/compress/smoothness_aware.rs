//! What the smoothness-aware compressors (ALGORITHMS.md §A.2) adapt to, and the per-worker
//! parameters they keep.
//!
//! DCGD+ and DIANA+ compress the whitened vector z_i = L_i^{†1/2}∇f_i. A compressor with a
//! [`SmoothnessAware`] view sets its steps (or keep probabilities) for each worker from
//! diag(L_i) and reports the two constants the step sizes need: ω_i with
//! E‖Q(z) − z‖² ≤ ω_i‖z‖², and the smoothness-aware variance L̃_i with
//! E‖Q(z) − z‖²_{L_i} ≤ L̃_i‖z‖² (§A.1). Every rank adapts every worker's steps (the
//! diagonals are gathered at set-up), so decoding needs no state from the wire; the
//! parameters a server must know are still shipped once at t = 0 and checked on arrival.

use crate::error::{Error, Result};

/// The method whose optimal steps a compressor takes (§A.2a, §A.2b).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// DCGD+: minimise the L̃ of DCGD+'s step 1/(L + 2L̃/n).
    Dcgd,
    /// DIANA+: the steps of SD-/BL-DIANA-plus, which weigh L_jj against nλ.
    Diana,
}

/// One worker's curvature as a compressor adapts to it.
#[derive(Clone, Copy, Debug)]
pub struct Curvature<'a> {
    /// diag(L_i).
    pub diag: &'a [f64],
    /// The regulariser's constant λ (the DIANA+ steps and rand-τ+ divide by nλ).
    pub lambda: f64,
    /// n, the number of workers of the step rules (n_eff for unequal weights).
    pub workers: f64,
    pub rule: Rule,
}

impl Curvature<'_> {
    /// nλ, refused when λ = 0 (a rule that divides by it has no steps then).
    pub fn n_lambda(&self, compressor: &str) -> Result<f64> {
        if self.lambda > 0.0 {
            return Ok(self.workers * self.lambda);
        }
        Err(Error::config(
            format!("compressor '{compressor}' weighs L_jj against nλ, and λ = 0"),
            "give the ridge term a weight (--lambda 1e-3, as the reference code), or use the DCGD+ steps (--method dcgd-plus)",
        ))
    }
}

pub trait SmoothnessAware {
    /// Adapts worker `worker`'s parameters to its curvature; returns (ω_i, L̃_i).
    fn adapt(&mut self, worker: usize, curvature: &Curvature) -> Result<(f64, f64)>;

    /// The parameters of `worker` its server must know to decode, shipped once at t = 0
    /// (§A.3: the step vector h_i); empty when they follow from the SPEC alone.
    fn parameters(&self, worker: usize) -> &[f64];
}

/// Per-worker parameter vectors with a common default, and the one in use (selected by
/// `Compressor::begin_worker`).
pub struct PerWorker {
    default: Vec<f64>,
    /// By global worker id; empty until adapted.
    adapted: Vec<Vec<f64>>,
    current: usize,
}

impl PerWorker {
    pub fn new(default: Vec<f64>) -> Self {
        PerWorker { default, adapted: Vec::new(), current: 0 }
    }

    pub fn select(&mut self, worker: usize) {
        self.current = worker;
    }

    /// The current worker's parameters.
    pub fn current(&self) -> &[f64] {
        self.of(self.current)
    }

    pub fn of(&self, worker: usize) -> &[f64] {
        match self.adapted.get(worker) {
            Some(v) if !v.is_empty() => v,
            _ => &self.default,
        }
    }

    /// Whether any worker has its own parameters.
    pub fn is_adapted(&self) -> bool {
        self.adapted.iter().any(|v| !v.is_empty())
    }

    pub fn set(&mut self, worker: usize, values: Vec<f64>) {
        if self.adapted.len() <= worker {
            self.adapted.resize(worker + 1, Vec::new());
        }
        self.adapted[worker] = values;
    }

    /// Every parameter vector in use (the default alone when none is adapted).
    pub fn all(&self) -> impl Iterator<Item = &[f64]> {
        let adapted = self.adapted.iter().filter(|v| !v.is_empty()).map(Vec::as_slice);
        std::iter::once(self.default.as_slice()).filter(move |_| !self.is_adapted()).chain(adapted)
    }
}

/// ‖v‖₂.
pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_worker_parameters_fall_back_to_the_default() {
        let mut p = PerWorker::new(vec![1.0]);
        assert_eq!(p.all().collect::<Vec<_>>(), vec![&[1.0][..]]);
        p.set(2, vec![3.0]);
        p.select(2);
        assert_eq!(p.current(), &[3.0]);
        p.select(1);
        assert_eq!(p.current(), &[1.0]);
        assert_eq!(p.all().collect::<Vec<_>>(), vec![&[3.0][..]]);
        let c = Curvature { diag: &[1.0], lambda: 0.0, workers: 2.0, rule: Rule::Diana };
        assert!(c.n_lambda("x").unwrap_err().to_string().contains("λ = 0"));
    }
}
