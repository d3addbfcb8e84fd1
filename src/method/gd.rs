//! Gradient descent (ALGORITHMS.md §0.2 baseline): the workers' weighted gradients are
//! summed by a dense allreduce and every rank takes x ← x − γ∇f(x), γ = 1/L.
//!
//! Bits: each worker sends d floats, 32d paper bits (§0.6 float convention).

use super::step_size::{self, StepSize};
use super::{descend, Method, RoundStats, Setup};
use crate::comm::Comm;
use crate::error::Result;
use crate::worker::Worker;

pub struct Gd {
    step: StepSize,
    g: Vec<f64>,
    workers: usize,
}

impl Gd {
    pub fn new(setup: &Setup) -> Self {
        let (gamma, rule) = step_size::gd(setup.smoothness);
        Gd { step: StepSize::resolve(gamma, &rule, setup.step), g: vec![0.0; setup.dim], workers: setup.workers() }
    }
}

/// g = Σ_i w_i ∇f_i over all workers: local weighted sum, then a dense allreduce.
pub fn full_gradient(workers: &[Worker], comm: &mut Comm, g: &mut [f64]) {
    g.fill(0.0);
    for w in workers {
        for (gj, dj) in g.iter_mut().zip(&w.grad) {
            *gj += w.weight * dj;
        }
    }
    comm.sum(g);
}

impl Method for Gd {
    fn step(&mut self, x: &mut [f64], workers: &mut [Worker], comm: &mut Comm) -> Result<RoundStats> {
        full_gradient(workers, comm, &mut self.g);
        descend(x, self.step.gamma, &self.g);
        Ok(RoundStats { paper_bits_up: 32 * (self.g.len() * self.workers) as u64, ..Default::default() })
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }
}
