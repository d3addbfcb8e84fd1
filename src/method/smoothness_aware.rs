//! DCGD+ and DIANA+ (Wang, Safaryan, Richtárik 2022; ALGORITHMS.md §A.3): compress the
//! whitened gradient z_i = L_i^{†1/2}∇f_i, de-whiten at the server with L_i^{1/2}.
//! ```text
//! t = 0, set-up phase: worker i sends h_i (its compressor's steps, if the server needs
//!        them) and L_i^{1/2} (upper triangle, or the diagonal); paper bits
//!        32·(|h_i| + d²) (32·(|h_i| + d) diagonal), the reference code's t = 0 charge
//! DCGD+ : worker z_i = L_i^{†1/2}∇f_i, send Q_i(z_i)
//!         server g = Σ_i w_i L_i^{1/2} Q_i(z_i);  x ← x − γ g
//! DIANA+: worker Δ_i = Q_i(L_i^{†1/2}(∇f_i − h_i)), send Δ_i, h_i ← h_i + α L_i^{1/2}Δ_i
//!         server u = Σ_i w_i L_i^{1/2}Δ_i;  g = h + u;  x ← x − γ g;  h ← h + α u
//! ```
//! Constants: the compressor's (ω_i, L̃_i) for each worker, from its smoothness-aware view
//! (smooth-dither, block-qsgd, rand-tau-plus) or, for any other unbiased compressor,
//! L̃_i = ω·λ_max(L_i) (E‖Q(z) − z‖²_L ≤ λ_max(L)·ω‖z‖²). ω_max and L̃_max are maxima over
//! all W workers, computed on every rank from the gathered diagonals (the numbers an
//! allreduce-max of the workers' own values gives). DCGD+ γ = 1/(L + 2L̃_max/n); DIANA+
//! α = 1/(ω_max + 1), γ = 1/(L + 6L̃_max/n); n = n_eff.
//!
//! The messages are always gathered: each is de-whitened with its own worker's matrix.
//! The server keeps the matrices it received (its state, in checkpoints), so a resumed run
//! does not send them again.

use super::codec::Codec;
use super::step_size::{self, StepSize};
use super::{require_unbiased, Entry, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::compress::smoothness_aware::{Curvature, Rule};
use crate::error::{Error, Result};
use crate::objective::smoothness_matrix::{Factor, Matrices, Shape, WorkerMatrix};
use crate::protocol::{Down, Phase, Plan, Protocol, Received, Sent, ServerRole, Uplink, WorkerRole};
use crate::spec::Spec;
use crate::vector::difference;
use crate::worker::Worker;
use std::sync::Arc;

pub const DCGD_PLUS: Entry = Entry {
    name: "dcgd-plus",
    about: "DCGD+: compressed whitened gradients Q(L_i^{-1/2}∇f_i), de-whitened by the server with L_i^{1/2} (§A.3)",
    keys: &[],
    dense_downlink: true,
    smoothness_matrices: true,
    hessian_variance: false,
    examples: &[("dcgd-plus", "smooth-dither"), ("dcgd-plus", "block-qsgd")],
    build: |setup, spec| build(setup, spec, Rule::Dcgd),
};

pub const DIANA_PLUS: Entry = Entry {
    name: "diana-plus",
    about: "DIANA+: DIANA on whitened differences L_i^{-1/2}(∇f_i − h_i), shifts learned in gradient space (§A.3)",
    keys: &[],
    dense_downlink: true,
    smoothness_matrices: true,
    hessian_variance: false,
    examples: &[("diana-plus", "smooth-dither"), ("diana-plus", "rand-tau-plus")],
    build: |setup, spec| build(setup, spec, Rule::Diana),
};

fn name(rule: Rule) -> &'static str {
    match rule {
        Rule::Dcgd => "dcgd-plus",
        Rule::Diana => "diana-plus",
    }
}

fn build(setup: &Setup, _spec: &mut Spec, rule: Rule) -> Result<Box<dyn Method>> {
    let method = name(rule);
    let matrices = setup.matrices.ok_or_else(|| Error::Comm {
        what: format!("{method} was built without smoothness matrices (a caller bug: its entry asks for them)"),
    })?;
    let mut codec = Codec::gathered(setup, method, "are de-whitened worker by worker")?;
    let n = setup.effective_workers();
    let (omega_max, l_tilde_max) = constants(&mut codec, setup, matrices, rule, method)?;
    let (gamma, text) = match rule {
        Rule::Dcgd => step_size::dcgd_plus(setup.smoothness, l_tilde_max, n),
        Rule::Diana => step_size::diana_plus(setup.smoothness, l_tilde_max, n),
    };
    let d = setup.dim;
    let plan = PlusPlan {
        step: StepSize::resolve(gamma, &text, setup.step),
        codec,
        rule,
        alpha: 1.0 / (omega_max + 1.0),
        shape: matrices.shape,
        dim: d,
        weights: setup.weights.to_vec(),
        ship: false,
        z: vec![0.0; d],
    };
    let workers = matrices
        .local
        .iter()
        .map(|m| PlusWorker { matrix: Arc::clone(m), shift: vec![0.0; d], delta: vec![0.0; d], own: Vec::new() })
        .collect();
    let server = setup.server(|| PlusServer {
        roots: Vec::new(),
        shape: matrices.shape,
        workers: setup.workers(),
        h: vec![0.0; d],
        u: vec![0.0; d],
        g: vec![0.0; d],
        decoded: vec![0.0; d],
    });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, workers, server)?))
}

/// (ω_max, L̃_max) over all workers, adapting the compressor's steps to each (§A.3).
fn constants(codec: &mut Codec, setup: &Setup, m: &Matrices, rule: Rule, method: &str) -> Result<(f64, f64)> {
    let class = codec.class();
    let (mut omega_max, mut l_tilde_max) = (0.0f64, 0.0f64);
    for (j, diag) in m.diagonals.iter().enumerate() {
        let curvature = Curvature { diag, lambda: m.lambda, workers: setup.effective_workers(), rule };
        let (omega, l_tilde) = match codec.smoothness_aware() {
            Some(view) => view.adapt(j, &curvature)?,
            None => {
                let omega = require_unbiased(class, method, setup.compressor)?;
                (omega, omega * m.tops[j])
            }
        };
        omega_max = omega_max.max(omega);
        l_tilde_max = l_tilde_max.max(l_tilde);
    }
    Ok((omega_max, l_tilde_max))
}

/// The replicated part: the codec, the constants, and whether this round ships the
/// matrices first.
struct PlusPlan {
    step: StepSize,
    codec: Codec,
    rule: Rule,
    alpha: f64,
    shape: Shape,
    dim: usize,
    weights: Vec<f64>,
    /// Round 0: phase 0 ships the matrices, phase 1 is the round's compressed step.
    ship: bool,
    /// The vector the worker being encoded compresses.
    z: Vec<f64>,
}

impl PlusPlan {
    fn is_setup(&self, phase: usize) -> bool {
        self.ship && phase == 0
    }

    /// The step vector worker `worker`'s server needs (empty when the SPEC implies it).
    fn parameters(&mut self, worker: usize) -> Vec<f64> {
        self.codec.smoothness_aware().map_or_else(Vec::new, |v| v.parameters(worker).to_vec())
    }
}

impl Plan for PlusPlan {
    fn begin_round(&mut self, t: u64) -> usize {
        self.codec.begin_round();
        self.ship = t == 0;
        1 + usize::from(self.ship)
    }

    fn phase(&self, i: usize) -> Phase {
        if self.is_setup(i) {
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
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        self.codec.load(r)
    }
}

struct PlusWorker {
    matrix: Arc<WorkerMatrix>,
    /// DIANA+'s h_i (gradient space).
    shift: Vec<f64>,
    /// This round's decoded own message Δ_i.
    delta: Vec<f64>,
    /// The codec's kept values on a Sum path (unused: these messages are gathered).
    own: Vec<f64>,
}

impl WorkerRole<PlusPlan> for PlusWorker {
    fn uplink(&mut self, plan: &mut PlusPlan, i: usize, data: &mut Worker, up: Uplink) -> Result<Sent> {
        let Uplink::Bytes(out) = up else {
            return Err(Error::Comm { what: "smoothness-aware messages are gathered (a method bug)".into() });
        };
        if plan.is_setup(i) {
            let parameters = plan.parameters(data.id);
            let root = self.matrix.root.packed();
            out.clear();
            parameters.iter().chain(&root).for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            return Ok(Sent::Bits(32 * (parameters.len() as u64 + self.matrix.root.paper_floats())));
        }
        match plan.rule {
            Rule::Dcgd => self.matrix.inv_root.apply(&data.grad, &mut plan.z),
            Rule::Diana => {
                difference(&mut self.delta, &data.grad, &self.shift);
                self.matrix.inv_root.apply(&self.delta, &mut plan.z);
            }
        }
        let sent = plan.codec.encode(data.id, &plan.z, &mut data.rng, Uplink::Bytes(&mut *out), &mut self.own);
        if plan.rule == Rule::Diana {
            plan.codec.decode_from(data.id, out, &mut self.delta)?;
        }
        Ok(sent)
    }

    /// DIANA+: h_i ← h_i + α·L_i^{1/2}Δ_i.
    fn downlink(&mut self, plan: &PlusPlan, i: usize, _down: &Down, _own: &[u8]) -> Result<()> {
        if plan.rule == Rule::Diana && !plan.is_setup(i) {
            self.matrix.root.apply_add(&self.delta, plan.alpha, &mut self.shift);
        }
        Ok(())
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("h_i", &self.shift);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("h_i", &mut self.shift)
    }
}

struct PlusServer {
    /// L_i^{1/2} of every worker, as received at t = 0.
    roots: Vec<Factor>,
    shape: Shape,
    /// W.
    workers: usize,
    /// DIANA+'s h = Σ w_i h_i.
    h: Vec<f64>,
    u: Vec<f64>,
    g: Vec<f64>,
    decoded: Vec<f64>,
}

impl PlusServer {
    /// Stores every worker's L_i^{1/2} from its set-up message, checking the steps it
    /// sent against the ones this rank adapted for it.
    fn receive_matrices(&mut self, plan: &mut PlusPlan, received: Received) -> Result<()> {
        let Received::Messages(messages) = received else {
            return Err(Error::Comm { what: "the smoothness matrices arrive through a gather (a method bug)".into() });
        };
        self.roots.clear();
        for (j, msg) in messages.iter().enumerate() {
            let floats: Vec<f64> =
                msg.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8-byte chunk"))).collect();
            let expected = plan.parameters(j);
            let malformed = |what: String| Error::wire(name(plan.rule), format!("worker {j}'s set-up message {what}"));
            if msg.len() % 8 != 0 || floats.len() < expected.len() {
                return Err(malformed(format!("has {} bytes", msg.len())));
            }
            let (steps, root) = floats.split_at(expected.len());
            if steps.iter().zip(&expected).any(|(a, b)| a.to_bits() != b.to_bits()) {
                return Err(malformed("carries steps other than those adapted to its diagonal".into()));
            }
            let root = Factor::unpack(plan.shape, plan.dim, root)
                .ok_or_else(|| malformed(format!("has {} matrix entries for d = {}", root.len(), plan.dim)))?;
            self.roots.push(root);
        }
        Ok(())
    }
}

impl ServerRole<PlusPlan> for PlusServer {
    fn serve(&mut self, plan: &mut PlusPlan, i: usize, received: Received, _x: &[f64]) -> Result<Down<'_>> {
        if plan.is_setup(i) {
            self.receive_matrices(plan, received)?;
            return Ok(Down::nothing());
        }
        let Received::Messages(messages) = received else {
            return Err(Error::Comm { what: "smoothness-aware messages are gathered (a method bug)".into() });
        };
        self.u.fill(0.0);
        for (j, msg) in messages.iter().enumerate() {
            if msg.is_empty() {
                continue;
            }
            plan.codec.decode_from(j, msg, &mut self.decoded)?;
            self.roots[j].apply_add(&self.decoded, plan.weights[j], &mut self.u);
        }
        if plan.rule == Rule::Dcgd {
            return Ok(Down::dense(plan.step.gamma, &self.u));
        }
        for ((g, h), u) in self.g.iter_mut().zip(self.h.iter_mut()).zip(&self.u) {
            *g = *h + u;
            *h += plan.alpha * u;
        }
        Ok(Down::dense(plan.step.gamma, &self.g))
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("h", &self.h);
        w.f64s("roots", &self.roots.iter().flat_map(Factor::packed).collect::<Vec<_>>());
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("h", &mut self.h)?;
        let (d, shape) = (self.h.len(), self.shape);
        let per = match shape {
            Shape::Dense => d * (d + 1) / 2,
            Shape::Diagonal => d,
        };
        let mut floats = vec![0.0; self.workers * per];
        r.f64s_into("roots", &mut floats)?;
        self.roots = floats.chunks_exact(per).map(|c| Factor::unpack(shape, d, c).expect("length fits")).collect();
        Ok(())
    }
}
