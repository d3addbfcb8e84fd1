//! Deep gradient compression (Lin, Han, Mao, Wang, Dally, "Deep gradient compression:
//! reducing the communication bandwidth for distributed training", ICLR 2018,
//! Algorithm 4 with §3.2–3.3):
//! ```text
//! worker i: g ← ∇f_i · min(1, (c/√W)/‖∇f_i‖)    local gradient clipping (clip=c)
//!           u_i ← β·u_i + g                      momentum correction
//!           v_i ← v_i + u_i                      local accumulation
//!           send Top_k(v_i)  (support S)         `top-k:k=K[,sampled]`
//!           v_i[S] ← 0;  u_i[S] ← 0              momentum factor masking (u: masking=on)
//! server  : x ← x − γ·Σ_i w_i Top_k(v_i)
//! ```
//! SPEC `dgc[:momentum=β,clip=c,warmup=N,masking=on|off]` with `--compressor
//! top-k:k=K[,sampled]` (`sampled`: DGC's threshold estimated from a sample, top_k.rs).
//!
//! * Momentum correction accumulates the velocity u, not the gradient, so that with every
//!   coordinate sent (k = d) and masking off the update is Σ_i w_i u_i = β·(the last
//!   update) + ∇f: heavy-ball momentum SGD, x ← x − γu (tested against a direct
//!   computation). Factor masking stops the stale momentum of a coordinate once it is sent:
//!   with k = d and masking on nothing carries over, and it is GD with step γ.
//! * Clipping: the threshold c of the global gradient norm is scaled by W^{−1/2} for each
//!   worker (§3.3: the sum of W independent gradients has √W times their norm).
//! * Warm-up (§3.4): the sparsity rises exponentially over the first N rounds in four
//!   equal stages, densities 25 %, 6.25 %, 1.5625 %, 0.39 % (DGC's 75 % … 99.6 %), never
//!   below the final K/d; from round N on, k = K. The stage is a function of the round,
//!   so nothing about it joins the checkpoint; u_i and v_i do.
//! * Default step γ = (1 − β)/L: momentum's effective step γ/(1 − β) is GD's 1/L (ours;
//!   DGC tunes the learning rate).
//! * Bits: top-k's k(32 + ⌈log₂ d⌉) per worker and round (§1.3), the stage's k.

use super::step_size::StepSize;
use super::{require_family, Entry, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::compress::top_k::TopK;
use crate::compress::Compressor;
use crate::error::{Error, Result};
use crate::protocol::{Down, Phase, Plan, Protocol, Received, Sent, ServerRole, Uplink, WorkerRole};
use crate::spec::Spec;
use crate::worker::Worker;

const NAME: &str = "dgc";

pub const ENTRY: Entry = Entry {
    name: NAME,
    about: "deep gradient compression: momentum correction, local accumulation, top-k, factor masking, warm-up",
    keys: &[
        ("momentum", "β of u_i ← βu_i + ∇f_i (default 0.9)"),
        ("clip", "the global gradient-norm threshold c; each worker clips at c/√W (default: none)"),
        ("warmup", "rounds of exponentially rising sparsity before k = K (default 0)"),
        ("masking", "on (default: u_i is zeroed where sent) or off"),
    ],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("dgc:warmup=8,clip=1", "top-k:k=10,sampled")],
    build,
};

/// The densities of the four warm-up stages (§3.4).
const WARMUP_DENSITIES: [f64; 4] = [0.25, 0.0625, 0.015625, 0.00390625];

fn build(setup: &Setup, spec: &mut Spec) -> Result<Box<dyn Method>> {
    require_family(setup, NAME, "top-k:k=K[,sampled]")?;
    setup.no_collective(NAME, "gathers its workers' top-k messages (each has its own support)")?;
    let beta = spec.take_f64_or("momentum", 0.9)?;
    if !(0.0..1.0).contains(&beta) {
        return Err(Error::config(format!("--method {}: momentum β = {beta}", spec.text()), "choose 0 ≤ β < 1"));
    }
    let clip = match spec.take_f64_or("clip", f64::INFINITY)? {
        c if c > 0.0 => c / (setup.workers() as f64).sqrt(),
        c => {
            return Err(Error::config(
                format!("--method {}: clipping threshold c = {c}", spec.text()),
                "choose c > 0, or leave clip out",
            ))
        }
    };
    let warmup = spec.take_usize_or("warmup", 0)? as u64;
    let masking = spec.take_choice("masking", &["on", "off"], "on")? == "on";

    let stages = stages(setup, warmup)?;
    let gamma = (1.0 - beta) / setup.smoothness.l;
    let rule =
        format!("(1 − β)/L, β = {beta}, L = {:.6e} (momentum's effective step γ/(1−β) = 1/L)", setup.smoothness.l);
    let plan =
        DgcPlan { step: StepSize::resolve(gamma, &rule, setup.step), stages, warmup, stage: 0, beta, clip, masking };
    let workers = (0..setup.local_workers)
        .map(|_| DgcWorker { velocity: vec![0.0; setup.dim], accumulated: vec![0.0; setup.dim] })
        .collect();
    let server = setup.server(|| DgcServer { update: vec![0.0; setup.dim], weights: setup.weights.to_vec() });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, workers, server)?))
}

/// The top-k of each warm-up stage, then the final `--compressor` one.
fn stages(setup: &Setup, warmup: u64) -> Result<Vec<TopK>> {
    let build = |k: Option<usize>| -> Result<TopK> {
        let mut spec = Spec::parse_compressor(setup.compressor)?;
        if let Some(k) = k {
            spec.set("k", &k.to_string());
        }
        let top_k = TopK::from_spec(&mut spec, setup.dim)?;
        spec.finish()?;
        Ok(top_k)
    };
    let last = build(None)?;
    let mut stages = Vec::new();
    if warmup > 0 {
        for density in WARMUP_DENSITIES {
            let k = ((setup.dim as f64 * density).ceil() as usize).clamp(last.k(), setup.dim);
            stages.push(build(Some(k))?);
        }
    }
    stages.push(last);
    Ok(stages)
}

struct DgcPlan {
    step: StepSize,
    /// The warm-up stages' top-k, then the final one.
    stages: Vec<TopK>,
    warmup: u64,
    /// This round's entry of `stages`.
    stage: usize,
    beta: f64,
    /// Each worker's gradient-norm threshold c/√W (∞: no clipping).
    clip: f64,
    masking: bool,
}

impl DgcPlan {
    fn top_k(&mut self) -> &mut TopK {
        &mut self.stages[self.stage]
    }
}

impl Plan for DgcPlan {
    fn begin_round(&mut self, t: u64) -> usize {
        let stages = WARMUP_DENSITIES.len() as u64;
        self.stage = if t < self.warmup { (t * stages / self.warmup) as usize } else { self.stages.len() - 1 };
        1
    }

    fn phase(&self, _i: usize) -> Phase {
        Phase::Gather
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }

    /// The stage follows from the round; top-k draws nothing shared.
    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}

struct DgcWorker {
    /// u_i, the momentum-corrected velocity.
    velocity: Vec<f64>,
    /// v_i, the velocity not yet sent.
    accumulated: Vec<f64>,
}

impl WorkerRole<DgcPlan> for DgcWorker {
    fn uplink(&mut self, plan: &mut DgcPlan, _i: usize, data: &mut Worker, up: Uplink) -> Result<Sent> {
        let Uplink::Bytes(out) = up else {
            return Err(Error::Comm { what: "dgc's top-k messages travel in a gather (a method bug)".into() });
        };
        let norm = || data.grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        let clip = match plan.clip {
            c if c.is_finite() => c / norm().max(c),
            _ => 1.0,
        };
        let (beta, masking) = (plan.beta, plan.masking);
        for ((u, v), g) in self.velocity.iter_mut().zip(self.accumulated.iter_mut()).zip(&data.grad) {
            *u = beta * *u + clip * g;
            *v += *u;
        }
        let top_k = plan.top_k();
        for &j in top_k.encode_support(&self.accumulated, &mut data.rng, out) {
            self.accumulated[j as usize] = 0.0;
            if masking {
                self.velocity[j as usize] = 0.0;
            }
        }
        Ok(Sent::Bits(top_k.paper_bits(out)))
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("u", &self.velocity);
        w.f64s("v", &self.accumulated);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("u", &mut self.velocity)?;
        r.f64s_into("v", &mut self.accumulated)
    }
}

struct DgcServer {
    update: Vec<f64>,
    weights: Vec<f64>,
}

impl ServerRole<DgcPlan> for DgcServer {
    /// x ← x − γ Σ_i w_i Top_k(v_i), in global worker order.
    fn serve(&mut self, plan: &mut DgcPlan, _i: usize, received: Received, _x: &[f64]) -> Result<Down<'_>> {
        let Received::Messages(messages) = received else {
            return Err(Error::Comm { what: "dgc's messages arrive through a gather (a method bug)".into() });
        };
        self.update.fill(0.0);
        let top_k = plan.top_k();
        for (msg, w) in messages.iter().zip(&self.weights) {
            top_k.decode_add(msg, *w, &mut self.update)?;
        }
        Ok(Down::dense(plan.step.gamma, &self.update))
    }

    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}
