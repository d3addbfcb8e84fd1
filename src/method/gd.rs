//! Gradient descent (ALGORITHMS.md §0.2 baseline): x ← x − γ∇f(x), γ = 1/L.
//!
//! One phase: each worker's w_i∇f_i is summed (allreduce, or a reduce to the server), or,
//! with `--collective allgather`, each worker's gradient travels exactly (d f64) and the
//! server sums them in global worker order, so the iterates do not depend on the rank
//! layout. Paper bits: 32d per worker (§0.6 float convention). `--compressor
//! powersgd:rank=R` makes it PowerSGD without error feedback (src/method/powersgd.rs).

use super::codec::{add_exact, write_exact};
use super::step_size::{self, StepSize};
use super::{Collective, Entry, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::error::{Error, Result};
use crate::protocol::{Down, Phase, Plan, Protocol, Received, Sent, ServerRole, Uplink, WorkerRole};
use crate::spec::Spec;
use crate::worker::Worker;

pub const ENTRY: Entry = Entry {
    name: "gd",
    about: "gradient descent: the workers' gradients summed, x ← x − γ∇f(x)",
    keys: &[],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("gd", "identity")],
    build,
};

fn build(setup: &Setup, _spec: &mut Spec) -> Result<Box<dyn Method>> {
    if super::powersgd::requested(setup) {
        return super::powersgd::build(setup, false);
    }
    if setup.compressor != "identity" {
        return Err(Error::config(
            format!("gd sends uncompressed gradients, but --compressor {} was given", setup.compressor),
            "drop --compressor, give it powersgd:rank=R (low-rank, no error feedback), or choose a \
             compressed method (dcgd, ef, ef21, diana)",
        ));
    }
    let (gamma, rule) = step_size::gd(setup.smoothness);
    let plan = GdPlan {
        step: StepSize::resolve(gamma, &rule, setup.step),
        exact_gather: setup.collective == Some(Collective::Allgather),
        dim: setup.dim,
    };
    let server = setup.server(|| GdServer { g: vec![0.0; setup.dim], weights: setup.weights.to_vec() });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, vec![GdWorker; setup.local_workers], server)?))
}

struct GdPlan {
    step: StepSize,
    exact_gather: bool,
    dim: usize,
}

impl Plan for GdPlan {
    fn begin_round(&mut self, _t: u64) -> usize {
        1
    }

    fn phase(&self, _i: usize) -> Phase {
        if self.exact_gather {
            Phase::Gather
        } else {
            Phase::Sum { len: self.dim }
        }
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }

    /// GD keeps nothing from round to round.
    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}

#[derive(Clone)]
struct GdWorker;

impl WorkerRole<GdPlan> for GdWorker {
    fn uplink(&mut self, _plan: &mut GdPlan, _i: usize, data: &mut Worker, up: Uplink) -> Result<Sent> {
        Ok(match up {
            Uplink::Bytes(out) => write_exact(&data.grad, out),
            Uplink::Sum { weight, acc } => {
                crate::vector::add_scaled(acc, weight, &data.grad);
                Sent::Bits(32 * data.grad.len() as u64)
            }
        })
    }

    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}

struct GdServer {
    /// g = Σ_i w_i ∇f_i.
    g: Vec<f64>,
    weights: Vec<f64>,
}

impl ServerRole<GdPlan> for GdServer {
    fn serve(&mut self, plan: &mut GdPlan, _i: usize, received: Received, _x: &[f64]) -> Result<Down<'_>> {
        match received {
            Received::Sum(sum) => std::mem::swap(&mut self.g, sum),
            gathered => {
                self.g.fill(0.0);
                add_exact(gathered, &self.weights, &mut self.g)?;
            }
        }
        Ok(Down::dense(plan.step.gamma, &self.g))
    }

    /// g is recomputed from the uplink every round.
    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}
