//! Distributed compressed gradient descent (DCGD; ALGORITHMS.md §A.3 baseline):
//! g = Σ_i w_i Q_i(∇f_i(x)), x ← x − γ g, Q unbiased, γ = 1/(L + 2·L_max·ω/n).

use super::exchange::Exchange;
use super::step_size::{self, StepSize};
use super::{descend, require_unbiased, Method, RoundStats, Setup};
use crate::comm::Comm;
use crate::error::Result;
use crate::worker::Worker;

pub struct Dcgd {
    step: StepSize,
    exchange: Exchange,
    g: Vec<f64>,
}

impl Dcgd {
    pub fn new(setup: &Setup) -> Result<Self> {
        let exchange = Exchange::from_setup(setup)?;
        let omega = require_unbiased(exchange.class(), "dcgd", setup.compressor)?;
        let (gamma, rule) = step_size::dcgd(setup.smoothness, omega, setup.workers());
        Ok(Dcgd { step: StepSize::resolve(gamma, &rule, setup.step), exchange, g: vec![0.0; setup.dim] })
    }
}

impl Method for Dcgd {
    fn step(&mut self, x: &mut [f64], workers: &mut [Worker], comm: &mut Comm) -> Result<RoundStats> {
        let mut stats = RoundStats::default();
        for (j, w) in workers.iter_mut().enumerate() {
            self.exchange.encode(j, &w.grad, &mut w.rng, &mut stats);
        }
        self.g.fill(0.0);
        self.exchange.exchange(comm, 1.0, &mut self.g, &mut stats, |_, _| Ok(()))?;
        descend(x, self.step.gamma, &self.g);
        Ok(stats)
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }
}
