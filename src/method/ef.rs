//! Classic error feedback (ALGORITHMS.md §I.3; EF21 repo `tkef_distributed_stable.py`):
//! ```text
//! worker i: v_i = C(e_i + γ∇f_i);  e_i ← e_i + γ∇f_i − v_i;  send v_i     (inside)
//! server  : x ← x − Σ_i w_i v_i
//! ```
//! `ef:variant=outside` compresses e_i + ∇f_i and applies γ at the server
//! (`DL/EF_100K.py`); both agree for positively homogeneous C (Top-k) and constant γ.
//! e_i⁰ = 0. An unbiased Q is used as Q/(ω+1), which is contractive (§0.1). Default step:
//! the EF21 rule (§I.3: "the EF21 experiments run EF with the EF21 theoretical step"); with
//! an absolute compressor (`threshold:tau=F`) 1/L, since ‖e_i‖ < √d·τ keeps x within √d·τ
//! of an iterate that moves as GD's (Sahu et al. 2021; `step_size::ef_absolute`). EF with
//! `sign` is EF-signSGD (Karimireddy et al. 2019, Algorithm 1: p = γg + e, Δ = (‖p‖₁/d)·sign(p)).
//! With `--batch`, this is distributed SGD with error feedback (§I.3). With
//! `--compressor powersgd:rank=R` it is PowerSGD (src/method/powersgd.rs: two allreduces
//! a round instead of one message per worker).

use super::codec::{Codec, CodecPlan};
use super::step_size::{self, StepSize};
use super::{require_alpha, Entry, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::compress::Class;
use crate::error::Result;
use crate::protocol::{Down, Protocol, Received, Sent, ServerRole, Uplink, WorkerRole};
use crate::spec::Spec;
use crate::worker::Worker;

pub const ENTRY: Entry = Entry {
    name: "ef",
    about: "classic error feedback: v_i = C(e_i + γ∇f_i), e_i ← e_i + γ∇f_i − v_i",
    keys: &[("variant", "inside (default: γ inside the compressor) or outside (γ at the server)")],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("ef", "top-k:k=10"), ("ef:variant=outside", "natural"), ("ef", "powersgd:rank=2")],
    build,
};

fn build(setup: &Setup, spec: &mut Spec) -> Result<Box<dyn Method>> {
    let outside = spec.take_choice("variant", &["inside", "outside"], "inside")? == "outside";
    if super::powersgd::requested(setup) {
        return super::powersgd::build(setup, true);
    }
    let codec = Codec::new(setup, "ef")?;
    let (gamma, rule) = match codec.class() {
        Class::Absolute { bound } => step_size::ef_absolute(setup.smoothness, bound),
        class => step_size::ef21(setup.smoothness, require_alpha(class, "ef", setup.compressor)?),
    };
    let step = StepSize::resolve(gamma, &rule, setup.step);
    let input_step = if outside { 1.0 } else { step.gamma };
    let plan = CodecPlan { method: Ef { scale: codec.class().contractive_scale(), input_step }, step, codec };
    let workers = (0..setup.local_workers)
        .map(|_| EfWorker { error: vec![0.0; setup.dim], input: vec![0.0; setup.dim], own: Vec::new() })
        .collect();
    let server = setup.server(|| EfServer { update: vec![0.0; setup.dim] });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, workers, server)?))
}

type EfPlan = CodecPlan<Ef>;

/// EF's replicated constants.
struct Ef {
    /// γ inside the compressor's input (inside), or 1 (outside).
    input_step: f64,
    /// 1 for a contractive C, 1/(ω+1) for an unbiased Q.
    scale: f64,
}

struct EfWorker {
    /// e_i.
    error: Vec<f64>,
    /// The compressed input u_i = e_i + (γ)∇f_i.
    input: Vec<f64>,
    own: Vec<f64>,
}

impl WorkerRole<EfPlan> for EfWorker {
    fn uplink(&mut self, plan: &mut EfPlan, _i: usize, data: &mut Worker, up: Uplink) -> Result<Sent> {
        for ((uj, ej), gj) in self.input.iter_mut().zip(&self.error).zip(&data.grad) {
            *uj = ej + plan.method.input_step * gj;
        }
        Ok(plan.codec.encode(data.id, &self.input, &mut data.rng, up, &mut self.own))
    }

    /// e_i ← u_i − v_i.
    fn downlink(&mut self, plan: &EfPlan, _i: usize, _down: &Down, own: &[u8]) -> Result<()> {
        self.error.copy_from_slice(&self.input);
        plan.codec.add_own(own, &self.own, -plan.method.scale, &mut self.error)
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("e", &self.error);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("e", &mut self.error)
    }
}

struct EfServer {
    update: Vec<f64>,
}

impl ServerRole<EfPlan> for EfServer {
    /// x ← x − (γ/input_step) Σ_i w_i v_i.
    fn serve(&mut self, plan: &mut EfPlan, _i: usize, received: Received, _x: &[f64]) -> Result<Down<'_>> {
        self.update.fill(0.0);
        plan.codec.aggregate(received, plan.method.scale, &mut self.update)?;
        Ok(Down::dense(plan.step.gamma / plan.method.input_step, &self.update))
    }

    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}
