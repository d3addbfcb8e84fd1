//! Classic error feedback (ALGORITHMS.md §I.3; EF21 repo `tkef_distributed_stable.py`):
//! ```text
//! worker i: v_i = C(e_i + γ∇f_i);  e_i ← e_i + γ∇f_i − v_i;  send v_i     (inside)
//! server  : x ← x − Σ_i w_i v_i
//! ```
//! `--ef-variant outside` compresses e_i + ∇f_i and applies γ at the server
//! (`DL/EF_100K.py`); both agree for positively homogeneous C (Top-k) and constant γ.
//! e_i⁰ = 0. An unbiased Q is used as Q/(ω+1), which is contractive (§0.1). Default step:
//! the EF21 rule (§I.3: "the EF21 experiments run EF with the EF21 theoretical step").

use super::exchange::Exchange;
use super::step_size::{self, StepSize};
use super::{descend, EfVariant, Method, RoundStats, Setup};
use crate::comm::Comm;
use crate::error::Result;
use crate::worker::Worker;

pub struct Ef {
    step: StepSize,
    variant: EfVariant,
    exchange: Exchange,
    /// 1 for a contractive C, 1/(ω+1) for an unbiased Q.
    scale: f64,
    /// Error memories e_i of this rank's workers.
    errors: Vec<Vec<f64>>,
    /// The compressed inputs u_i = e_i + (γ)∇f_i.
    inputs: Vec<Vec<f64>>,
    update: Vec<f64>,
}

impl Ef {
    pub fn new(setup: &Setup) -> Result<Self> {
        let exchange = Exchange::from_setup(setup)?;
        let class = exchange.class();
        let scale = class.contractive_scale();
        let (gamma, rule) = step_size::ef21(setup.smoothness, class.alpha());
        let zeros = vec![vec![0.0; setup.dim]; setup.local_workers];
        Ok(Ef {
            step: StepSize::resolve(gamma, &rule, setup.step),
            variant: setup.ef_variant,
            exchange,
            scale,
            errors: zeros.clone(),
            inputs: zeros,
            update: vec![0.0; setup.dim],
        })
    }
}

impl Method for Ef {
    fn step(&mut self, x: &mut [f64], workers: &mut [Worker], comm: &mut Comm) -> Result<RoundStats> {
        let mut stats = RoundStats::default();
        let gamma = self.step.gamma;
        let input_step = match self.variant {
            EfVariant::Inside => gamma,
            EfVariant::Outside => 1.0,
        };
        for (j, w) in workers.iter_mut().enumerate() {
            let u = &mut self.inputs[j];
            for ((uj, ej), gj) in u.iter_mut().zip(&self.errors[j]).zip(&w.grad) {
                *uj = ej + input_step * gj;
            }
            self.exchange.encode(j, u, &mut w.rng, &mut stats);
        }
        self.update.fill(0.0);
        let (errors, inputs, scale) = (&mut self.errors, &self.inputs, self.scale);
        self.exchange.exchange(comm, scale, &mut self.update, &mut stats, |j, own| {
            // e_i ← u_i − v_i
            errors[j].copy_from_slice(&inputs[j]);
            own.add_to(-scale, &mut errors[j])
        })?;
        descend(x, gamma / input_step, &self.update);
        Ok(stats)
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }
}
