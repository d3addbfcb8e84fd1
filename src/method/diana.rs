//! DIANA (ALGORITHMS.md §A.3, the baseline form on raw gradients):
//! ```text
//! worker i: Δ_i = Q(∇f_i(x) − h_i);  h_i ← h_i + α Δ_i;  send Δ_i
//! server  : Δ = Σ_i w_i Δ_i;  g = h + Δ;  x ← x − γ g;  h ← h + α Δ
//! ```
//! h_i⁰ = h⁰ = 0, α = 1/(ω+1), γ = 1/(L(1 + 6ω/n)) (textbook rule named by the issue;
//! the reference code's baseline uses 1/(L_max(1 + 2ω/n)), §3 item 1).

use super::exchange::Exchange;
use super::step_size::{self, StepSize};
use super::{require_unbiased, Method, RoundStats, Setup};
use crate::comm::Comm;
use crate::error::Result;
use crate::worker::Worker;

pub struct Diana {
    step: StepSize,
    exchange: Exchange,
    alpha: f64,
    /// Shifts h_i of this rank's workers.
    shifts: Vec<Vec<f64>>,
    /// Server shift h = Σ w_i h_i (replicated).
    h: Vec<f64>,
    diff: Vec<f64>,
    delta: Vec<f64>,
}

impl Diana {
    pub fn new(setup: &Setup) -> Result<Self> {
        let exchange = Exchange::from_setup(setup)?;
        let omega = require_unbiased(exchange.class(), "diana", setup.compressor)?;
        let (gamma, rule) = step_size::diana(setup.smoothness, omega, setup.workers());
        Ok(Diana {
            step: StepSize::resolve(gamma, &rule, setup.step),
            exchange,
            alpha: 1.0 / (omega + 1.0),
            shifts: vec![vec![0.0; setup.dim]; setup.local_workers],
            h: vec![0.0; setup.dim],
            diff: vec![0.0; setup.dim],
            delta: vec![0.0; setup.dim],
        })
    }
}

impl Method for Diana {
    fn step(&mut self, x: &mut [f64], workers: &mut [Worker], comm: &mut Comm) -> Result<RoundStats> {
        let mut stats = RoundStats::default();
        for (j, w) in workers.iter_mut().enumerate() {
            for ((dj, gj), hj) in self.diff.iter_mut().zip(&w.grad).zip(&self.shifts[j]) {
                *dj = gj - hj;
            }
            self.exchange.encode(j, &self.diff, &mut w.rng, &mut stats);
        }
        self.delta.fill(0.0);
        let (shifts, alpha) = (&mut self.shifts, self.alpha);
        self.exchange.exchange(comm, 1.0, &mut self.delta, &mut stats, |j, own| own.add_to(alpha, &mut shifts[j]))?;
        let gamma = self.step.gamma;
        for ((xj, hj), dj) in x.iter_mut().zip(self.h.iter_mut()).zip(&self.delta) {
            *xj -= gamma * (*hj + dj);
            *hj += alpha * dj;
        }
        Ok(stats)
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }
}
