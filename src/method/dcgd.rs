//! Distributed compressed gradient descent (DCGD; ALGORITHMS.md §A.3 baseline):
//! g = Σ_i w_i Q_i(∇f_i(x)), x ← x − γ g, Q unbiased, γ = 1/(L + 2·L_max·ω/n).

use super::codec::{Codec, CodecPlan};
use super::step_size::{self, StepSize};
use super::{require_unbiased, Entry, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::error::Result;
use crate::protocol::{Down, Protocol, Received, Sent, ServerRole, Uplink, WorkerRole};
use crate::spec::Spec;
use crate::worker::Worker;

pub const ENTRY: Entry = Entry {
    name: "dcgd",
    about: "distributed compressed GD: x ← x − γ Σ w_i Q(∇f_i), Q unbiased",
    keys: &[],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("dcgd", "rand-k:k=20"), ("dcgd", "rand-k:k=20,shared")],
    build,
};

/// BL-DCGD (§A.3 baseline, `BL-DCGD.py`): DCGD with block quantization of the raw
/// gradient, the same step rule with block-qsgd's ω.
pub const BL_DCGD: Entry = Entry {
    name: "bl-dcgd",
    about: "BL-DCGD: DCGD with block quantization of the raw gradient (--compressor block-qsgd; §A.3 baseline)",
    keys: &[],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("bl-dcgd", "block-qsgd")],
    build: |setup, spec| {
        super::require_family(setup, "bl-dcgd", "block-qsgd[:blocks=B,s=S]")?;
        build(setup, spec)
    },
};

fn build(setup: &Setup, _spec: &mut Spec) -> Result<Box<dyn Method>> {
    let codec = Codec::new(setup, "dcgd")?;
    let omega = require_unbiased(codec.class(), "dcgd", setup.compressor)?;
    let (gamma, rule) = step_size::dcgd(setup.smoothness, omega, setup.effective_workers());
    let plan = CodecPlan { step: StepSize::resolve(gamma, &rule, setup.step), codec, method: () };
    let workers = (0..setup.local_workers).map(|_| DcgdWorker { own: Vec::new() }).collect();
    let server = setup.server(|| DcgdServer { g: vec![0.0; setup.dim] });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, workers, server)?))
}

type DcgdPlan = CodecPlan<()>;

struct DcgdWorker {
    own: Vec<f64>,
}

impl WorkerRole<DcgdPlan> for DcgdWorker {
    fn uplink(&mut self, plan: &mut DcgdPlan, _i: usize, data: &mut Worker, up: Uplink) -> Result<Sent> {
        Ok(plan.codec.encode(data.id, &data.grad, &mut data.rng, up, &mut self.own))
    }

    /// DCGD has no memory.
    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}

struct DcgdServer {
    g: Vec<f64>,
}

impl ServerRole<DcgdPlan> for DcgdServer {
    fn serve(&mut self, plan: &mut DcgdPlan, _i: usize, received: Received, _x: &[f64]) -> Result<Down<'_>> {
        self.g.fill(0.0);
        plan.codec.aggregate(received, 1.0, &mut self.g)?;
        Ok(Down::dense(plan.step.gamma, &self.g))
    }

    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}
