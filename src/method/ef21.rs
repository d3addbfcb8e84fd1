//! EF21 (ALGORITHMS.md §G.2 with the EF21 three-point compressor of §G.1) and CLAG, its
//! lazy form (§G.1 row CLAG; LAG is CLAG with `--compressor identity`):
//! ```text
//! x^{t+1} = x^t − γ g^t
//! worker i: c_i = C(∇f_i(x^{t+1}) − g_i^t);  g_i^{t+1} = g_i^t + c_i;  send c_i
//!           CLAG: skip (send nothing, g_i^{t+1} = g_i^t) unless
//!                 ‖∇f_i(x^{t+1}) − g_i^t‖² > ζ‖∇f_i(x^{t+1}) − ∇f_i(x^t)‖²
//! server  : g^{t+1} = g^t + Σ_i w_i c_i
//! ```
//! γ = 1/(L + L̃√(B/A)); EF21: A = 1 − √(1−α), B = (1−α)/A; CLAG: the same A,
//! B = max{ζ, (1−α)/A}. Start (`init`, §3 item 7): `full` sends g_i⁰ = ∇f_i(x⁰) exactly
//! (reference code; d floats per worker, counted), `compressed` starts from
//! g_i^{-1} = 0 so the first message is C(∇f_i(x⁰)). An unbiased Q is used as
//! Q/(ω+1) ∈ 𝔹(1/(ω+1)) (§0.1).
//!
//! CLAG's trigger is the reference code's strict ">" on consecutive gradients (§G.4a): in
//! the round after the full first send, g_i = ∇f_i(x^t), so every worker skips when
//! ζ ≥ 1. With ζ = 0 it never skips a nonzero difference: CLAG is then EF21.
//! With `--topology server --down-compressor C` this is bidirectional EF21/CLAG (§G.3):
//! the engine's downlink keeps the broadcast state g̃ and the model steps with it.

use super::codec::{add_exact, write_exact, Codec};
use super::step_size::{self, StepSize};
use super::{require_alpha, Entry, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::error::{Error, Result};
use crate::protocol::{Down, Phase, Plan, Protocol, Received, Sent, ServerRole, Uplink, WorkerRole};
use crate::spec::Spec;
use crate::vector::{difference, distance_sq};
use crate::worker::Worker;

const INIT: (&str, &str) = ("init", "full (default: first round exact) or compressed (g_i⁰ = C(∇f_i(x⁰)))");

pub const ENTRY: Entry = Entry {
    name: "ef21",
    about: "EF21: g_i ← g_i + C(∇f_i − g_i), x ← x − γ Σ w_i g_i",
    keys: &[INIT],
    dense_downlink: true,
    examples: &[("ef21", "top-k:k=10"), ("ef21:init=compressed", "rand-k:k=20,shared")],
    build: build_ef21,
};

pub const CLAG: Entry = Entry {
    name: "clag",
    about: "CLAG: EF21 that skips the upload while ‖∇f_i − g_i‖² ≤ ζ‖∇f_i − ∇f_i(prev)‖² (LAG with identity)",
    keys: &[("zeta", "the trigger ζ ≥ 0 (required)"), INIT],
    dense_downlink: true,
    examples: &[("clag:zeta=0.5", "top-k:k=10"), ("clag:zeta=2", "identity")],
    build: build_clag,
};

fn build_ef21(setup: &Setup, spec: &mut Spec) -> Result<Box<dyn Method>> {
    build(setup, spec, None)
}

fn build_clag(setup: &Setup, spec: &mut Spec) -> Result<Box<dyn Method>> {
    let zeta = spec.take_f64_or("zeta", -1.0)?;
    if zeta < 0.0 {
        return Err(Error::config(
            format!("--method {}: ζ = {zeta}", spec.text()),
            "clag needs its trigger: write clag:zeta=F with F ≥ 0",
        ));
    }
    build(setup, spec, Some(zeta))
}

fn build(setup: &Setup, spec: &mut Spec, zeta: Option<f64>) -> Result<Box<dyn Method>> {
    let full_init = spec.take_choice(INIT.0, &["full", "compressed"], "full")? == "full";
    let name = if zeta.is_some() { "clag" } else { "ef21" };
    let codec = Codec::new(setup, name)?;
    let alpha = require_alpha(codec.class(), name, setup.compressor)?;
    let (gamma, rule) = match zeta {
        None => step_size::ef21(setup.smoothness, alpha),
        Some(zeta) => step_size::clag(setup.smoothness, alpha, zeta),
    };
    let plan = Ef21Plan {
        step: StepSize::resolve(gamma, &rule, setup.step),
        scale: codec.class().contractive_scale(),
        codec,
        pending_full_init: full_init,
        full_round: false,
        zeta,
        diff: vec![0.0; setup.dim],
    };
    let previous = |_| if zeta.is_some() { vec![0.0; setup.dim] } else { Vec::new() };
    let workers = (0..setup.local_workers)
        .map(|j| Ef21Worker { g: vec![0.0; setup.dim], previous: previous(j), own: Vec::new(), sent: false })
        .collect();
    let server = setup.server(|| Ef21Server { g: vec![0.0; setup.dim], weights: setup.weights.to_vec() });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, workers, server)?))
}

struct Ef21Plan {
    step: StepSize,
    scale: f64,
    codec: Codec,
    /// The exact first round is still to come (`init=full`).
    pending_full_init: bool,
    /// This round is the exact first round.
    full_round: bool,
    /// CLAG's trigger ζ; None for EF21.
    zeta: Option<f64>,
    /// ∇f_i − g_i of the worker being encoded (rank-level scratch).
    diff: Vec<f64>,
}

impl Plan for Ef21Plan {
    fn begin_round(&mut self, _t: u64) -> usize {
        self.full_round = std::mem::take(&mut self.pending_full_init);
        // The exact round draws no support, so the shared stream's draws stay those of
        // the compressed rounds.
        if !self.full_round {
            self.codec.begin_round();
        }
        1
    }

    fn phase(&self, _i: usize) -> Phase {
        if self.full_round {
            Phase::Gather
        } else {
            self.codec.phase()
        }
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }

    fn save(&self, w: &mut StateWriter) {
        self.codec.save(w);
        w.bool("pending full init", self.pending_full_init);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        self.codec.load(r)?;
        self.pending_full_init = r.bool("pending full init")?;
        Ok(())
    }
}

struct Ef21Worker {
    /// g_i.
    g: Vec<f64>,
    /// ∇f_i of the previous round (CLAG's trigger only).
    previous: Vec<f64>,
    own: Vec<f64>,
    /// Whether this round's uplink sent a compressed difference.
    sent: bool,
}

impl WorkerRole<Ef21Plan> for Ef21Worker {
    fn uplink(&mut self, plan: &mut Ef21Plan, _i: usize, data: &mut Worker, up: Uplink) -> Result<Sent> {
        let grad = &data.grad;
        self.sent = false;
        let skip = match plan.zeta {
            Some(zeta) if !plan.full_round => distance_sq(grad, &self.g) <= zeta * distance_sq(grad, &self.previous),
            _ => false,
        };
        if plan.zeta.is_some() {
            self.previous.copy_from_slice(grad);
        }
        if plan.full_round {
            self.g.copy_from_slice(grad);
            let Uplink::Bytes(out) = up else { unreachable!("the exact round is a Gather") };
            return Ok(write_exact(grad, out));
        }
        if skip {
            return Ok(Sent::Skip);
        }
        difference(&mut plan.diff, grad, &self.g);
        self.sent = true;
        Ok(plan.codec.encode(&plan.diff, &mut data.rng, up, &mut self.own))
    }

    /// g_i += C(∇f_i − g_i), unless this worker skipped.
    fn downlink(&mut self, plan: &Ef21Plan, _i: usize, _down: &Down, own: &[u8]) -> Result<()> {
        if !self.sent {
            return Ok(());
        }
        plan.codec.add_own(own, &self.own, plan.scale, &mut self.g)
    }

    /// g_i, and for CLAG the previous gradient of its trigger.
    fn save(&self, w: &mut StateWriter) {
        w.f64s("g_i", &self.g);
        w.f64s("previous gradient", &self.previous);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("g_i", &mut self.g)?;
        r.f64s_into("previous gradient", &mut self.previous)
    }
}

struct Ef21Server {
    /// g = Σ w_i g_i.
    g: Vec<f64>,
    weights: Vec<f64>,
}

impl ServerRole<Ef21Plan> for Ef21Server {
    fn serve(&mut self, plan: &mut Ef21Plan, _i: usize, received: Received, _x: &[f64]) -> Result<Down<'_>> {
        if plan.full_round {
            self.g.fill(0.0);
            add_exact(received, &self.weights, &mut self.g)?;
        } else {
            plan.codec.aggregate(received, plan.scale, &mut self.g)?;
        }
        Ok(Down::dense(plan.step.gamma, &self.g))
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("g", &self.g);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("g", &mut self.g)
    }
}
