//! DIANA (ALGORITHMS.md §A.3, the baseline form on raw gradients):
//! ```text
//! worker i: Δ_i = Q(∇f_i(x) − h_i);  h_i ← h_i + α Δ_i;  send Δ_i
//! server  : Δ = Σ_i w_i Δ_i;  g = h + Δ;  x ← x − γ g;  h ← h + α Δ
//! ```
//! h_i⁰ = h⁰ = 0, α = 1/(ω+1), γ = 1/(L + 6·L_max·ω/n) (the textbook 1/(L(1 + 6ω/n)) with
//! the variance terms bounded by L_max, as each f_i is only L_i-smooth; n = 1/Σ w_i²).
//! `rule=reference`: the smoothness-aware code's baseline 1/(L_max(1 + 2ω/n)) (§3 item 1).

use super::codec::{Codec, CodecPlan};
use super::step_size::{self, StepSize};
use super::{require_unbiased, Entry, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::error::Result;
use crate::protocol::{Down, Protocol, Received, Sent, ServerRole, Uplink, WorkerRole};
use crate::spec::Spec;
use crate::vector::difference;
use crate::worker::Worker;

pub const ENTRY: Entry = Entry {
    name: "diana",
    about: "DIANA: compressed differences Q(∇f_i − h_i) with learned shifts h_i ← h_i + αQ",
    keys: &[(
        "rule",
        "step rule: unified (default, 1/(L + 6·L_max·ω/n)) or reference (the §A.3 code's 1/(L_max(1 + 2ω/n)))",
    )],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("diana", "qsgd:s=2"), ("diana", "rand-k:k=20,shared")],
    build,
};

/// BL-DIANA (§A.3 baseline, `BL-DIANA.py`): DIANA with block quantization of the raw
/// gradient and the reference code's step rule (`rule=unified` for the textbook one).
pub const BL_DIANA: Entry = Entry {
    name: "bl-diana",
    about: "BL-DIANA: DIANA with block quantization of the raw gradient (--compressor block-qsgd; §A.3 baseline)",
    keys: &[("rule", "step rule: reference (default, 1/(L_max(1 + 2ω/n)), as the code) or unified")],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("bl-diana", "block-qsgd")],
    build: |setup, spec| {
        super::require_family(setup, "bl-diana", "block-qsgd[:blocks=B,s=S]")?;
        build_with(setup, spec, "reference")
    },
};

fn build(setup: &Setup, spec: &mut Spec) -> Result<Box<dyn Method>> {
    build_with(setup, spec, "unified")
}

fn build_with(setup: &Setup, spec: &mut Spec, default_rule: &str) -> Result<Box<dyn Method>> {
    let reference = spec.take_choice("rule", &["unified", "reference"], default_rule)? == "reference";
    let codec = Codec::new(setup, "diana")?;
    let omega = require_unbiased(codec.class(), "diana", setup.compressor)?;
    let rule = if reference { step_size::diana_reference } else { step_size::diana };
    let (gamma, rule) = rule(setup.smoothness, omega, setup.effective_workers());
    let plan = CodecPlan {
        step: StepSize::resolve(gamma, &rule, setup.step),
        codec,
        method: Diana { alpha: 1.0 / (omega + 1.0), diff: vec![0.0; setup.dim] },
    };
    let workers =
        (0..setup.local_workers).map(|_| DianaWorker { shift: vec![0.0; setup.dim], own: Vec::new() }).collect();
    let d = setup.dim;
    let server = setup.server(|| DianaServer { h: vec![0.0; d], delta: vec![0.0; d], g: vec![0.0; d] });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, workers, server)?))
}

type DianaPlan = CodecPlan<Diana>;

/// DIANA's replicated constants and rank-level scratch.
struct Diana {
    alpha: f64,
    /// ∇f_i − h_i of the worker being encoded.
    diff: Vec<f64>,
}

struct DianaWorker {
    /// h_i.
    shift: Vec<f64>,
    own: Vec<f64>,
}

impl WorkerRole<DianaPlan> for DianaWorker {
    fn uplink(&mut self, plan: &mut DianaPlan, _i: usize, data: &mut Worker, up: Uplink) -> Result<Sent> {
        let diff = &mut plan.method.diff;
        difference(diff, &data.grad, &self.shift);
        Ok(plan.codec.encode(data.id, diff, &mut data.rng, up, &mut self.own))
    }

    /// h_i ← h_i + α Δ_i.
    fn downlink(&mut self, plan: &DianaPlan, _i: usize, _down: &Down, own: &[u8]) -> Result<()> {
        plan.codec.add_own(own, &self.own, plan.method.alpha, &mut self.shift)
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("h_i", &self.shift);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("h_i", &mut self.shift)
    }
}

struct DianaServer {
    /// h = Σ w_i h_i.
    h: Vec<f64>,
    delta: Vec<f64>,
    g: Vec<f64>,
}

impl ServerRole<DianaPlan> for DianaServer {
    fn serve(&mut self, plan: &mut DianaPlan, _i: usize, received: Received, _x: &[f64]) -> Result<Down<'_>> {
        self.delta.fill(0.0);
        plan.codec.aggregate(received, 1.0, &mut self.delta)?;
        let alpha = plan.method.alpha;
        for ((g, h), d) in self.g.iter_mut().zip(self.h.iter_mut()).zip(&self.delta) {
            *g = *h + d;
            *h += alpha * d;
        }
        Ok(Down::dense(plan.step.gamma, &self.g))
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("h", &self.h);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("h", &mut self.h)
    }
}
