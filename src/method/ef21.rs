//! EF21 (ALGORITHMS.md §G.2 with the EF21 three-point compressor of §G.1):
//! ```text
//! x^{t+1} = x^t − γ g^t
//! worker i: c_i = C(∇f_i(x^{t+1}) − g_i^t);  g_i^{t+1} = g_i^t + c_i;  send c_i
//! server  : g^{t+1} = g^t + Σ_i w_i c_i
//! ```
//! γ = 1/(L + L̃√(B/A)), A = 1 − √(1−α), B = (1−α)/A. Start (`--ef21-init`, §3 item 7):
//! `full` sends g_i⁰ = ∇f_i(x⁰) uncompressed (reference code; d floats per worker,
//! counted), `compressed` starts from g_i^{-1} = 0 so the first message is C(∇f_i(x⁰)).
//! An unbiased Q is used as Q/(ω+1) ∈ 𝔹(1/(ω+1)) (§0.1).

use super::exchange::Exchange;
use super::step_size::{self, StepSize};
use super::{descend, Ef21Init, Method, RoundStats, Setup};
use crate::comm::Comm;
use crate::error::Result;
use crate::worker::Worker;

pub struct Ef21 {
    step: StepSize,
    exchange: Exchange,
    scale: f64,
    /// Still to send the uncompressed first round.
    pending_full_init: bool,
    /// Local estimators g_i of this rank's workers.
    local: Vec<Vec<f64>>,
    /// Server estimator g = Σ w_i g_i (replicated on every rank).
    g: Vec<f64>,
    diff: Vec<f64>,
}

impl Ef21 {
    pub fn new(setup: &Setup) -> Result<Self> {
        let exchange = Exchange::from_setup(setup)?;
        let class = exchange.class();
        let scale = class.contractive_scale();
        let (gamma, rule) = step_size::ef21(setup.smoothness, class.alpha());
        Ok(Ef21 {
            step: StepSize::resolve(gamma, &rule, setup.step),
            exchange,
            scale,
            pending_full_init: setup.ef21_init == Ef21Init::Full,
            local: vec![vec![0.0; setup.dim]; setup.local_workers],
            g: vec![0.0; setup.dim],
            diff: vec![0.0; setup.dim],
        })
    }

    /// g_i⁰ = ∇f_i(x⁰) sent uncompressed, g⁰ = Σ w_i ∇f_i(x⁰).
    fn full_init(&mut self, workers: &[Worker], comm: &mut Comm) -> Result<RoundStats> {
        let mut stats = RoundStats::default();
        for (g_i, w) in self.local.iter_mut().zip(workers) {
            g_i.copy_from_slice(&w.grad);
        }
        self.g.fill(0.0);
        self.exchange.exchange_dense(comm, workers.iter().map(|w| &w.grad[..]), &mut self.g, &mut stats)?;
        Ok(stats)
    }

    /// g_i += C(∇f_i − g_i) for every worker, g += Σ w_i C(∇f_i − g_i).
    fn compressed_update(&mut self, workers: &mut [Worker], comm: &mut Comm) -> Result<RoundStats> {
        let mut stats = RoundStats::default();
        for (j, w) in workers.iter_mut().enumerate() {
            for ((dj, gj), hj) in self.diff.iter_mut().zip(&w.grad).zip(&self.local[j]) {
                *dj = gj - hj;
            }
            self.exchange.encode(j, &self.diff, &mut w.rng, &mut stats);
        }
        let (local, scale) = (&mut self.local, self.scale);
        self.exchange.exchange(comm, scale, &mut self.g, &mut stats, |j, own| own.add_to(scale, &mut local[j]))?;
        Ok(stats)
    }
}

impl Method for Ef21 {
    fn step(&mut self, x: &mut [f64], workers: &mut [Worker], comm: &mut Comm) -> Result<RoundStats> {
        let stats = if self.pending_full_init {
            self.pending_full_init = false;
            self.full_init(workers, comm)?
        } else {
            self.compressed_update(workers, comm)?
        };
        descend(x, self.step.gamma, &self.g);
        Ok(stats)
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }
}
