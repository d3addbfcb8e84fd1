//! Gradient descent (ALGORITHMS.md §0.2 baseline): the workers' weighted gradients are
//! summed by a dense allreduce and every rank takes x ← x − γ∇f(x), γ = 1/L.
//!
//! Bits: each worker sends d floats, 32d paper bits (§0.6 float convention).
//! `--collective allgather` gathers every worker's gradient (d f64) instead and sums
//! them in worker order on every rank.

use super::exchange::{Collective, Exchange};
use super::step_size::{self, StepSize};
use super::{descend, Method, RoundStats, Setup};
use crate::comm::Comm;
use crate::error::{Error, Result};
use crate::worker::Worker;

pub struct Gd {
    step: StepSize,
    g: Vec<f64>,
    workers: usize,
    /// Set for `--collective allgather`: each worker's gradient is gathered as d f64.
    gather: Option<Exchange>,
}

impl Gd {
    pub fn new(setup: &Setup) -> Result<Self> {
        if setup.compressor != "identity" {
            return Err(Error::config(
                format!("gd sends uncompressed gradients, but --compressor {} was given", setup.compressor),
                "drop --compressor, or choose a compressed method (dcgd, ef, ef21, diana)",
            ));
        }
        let (gamma, rule) = step_size::gd(setup.smoothness);
        let gather = match setup.collective {
            Some(Collective::Allgather) => Some(Exchange::from_setup(setup)?),
            _ => None,
        };
        Ok(Gd {
            step: StepSize::resolve(gamma, &rule, setup.step),
            g: vec![0.0; setup.dim],
            workers: setup.workers(),
            gather,
        })
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
        let mut stats = RoundStats::default();
        match self.gather.as_mut() {
            Some(exchange) => {
                self.g.fill(0.0);
                exchange.exchange_dense(comm, workers.iter().map(|w| &w.grad[..]), &mut self.g, &mut stats)?;
            }
            None => {
                full_gradient(workers, comm, &mut self.g);
                stats.paper_bits_up = 32 * (self.g.len() * self.workers) as u64;
            }
        }
        descend(x, self.step.gamma, &self.g);
        Ok(stats)
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }
}
