//! ScaleCom (ALGORITHMS.md §E): cyclic local top-k (CLT-k, `compress::clt_k`) with a
//! low-pass filtered error memory.
//! ```text
//! worker j: p_j = m_j + γ∇f_j
//! phase 0:  leader ℓ = t mod W broadcasts I = Top_k(|p_ℓ|)             (k indices)
//! phase 1:  c = Σ_j w_j p_j[I] by one allreduce of k values           (CLT-k commutes
//!           x[I] ← x[I] − c                                            with the sum, §E.1)
//! worker j: m_j ← (1 − β) m_j + β (p_j − scatter(I, p_j[I]))
//! ```
//! Values are rounded to f32 before the sum (the §0.6 wire convention, 32 paper bits
//! each), so one worker with β = 1 is Top-k with classic error feedback bit for bit
//! (§E.4). Rounds before `warmup` send p_j uncompressed (one Sum of d values).
//! Keys: `beta` (the filter, 0 < β ≤ 1, default 1 = plain error feedback) and `warmup`
//! (uncompressed first rounds, default 0). Paper bits per round: 32k per worker +
//! k⌈log₂d⌉ for the leader's indices. Default step: the EF21 rule with α = k/d, as for
//! classic EF (§I.3). Diagnostic: the overlap |I ∩ Top_k(Σ_j w_j p_j)|/k of the leader's
//! set with the true top-k of the averaged vector (§E.1), on evaluation rounds.

use super::step_size::{self, StepSize};
use super::{own_compressor, Entry, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::compress::clt_k::CltK;
use crate::error::{Error, Result};
use crate::protocol::{Down, Phase, Plan, Protocol, Received, Sent, ServerRole, Uplink, WorkerRole};
use crate::spec::Spec;
use crate::worker::Worker;

pub const ENTRY: Entry = Entry {
    name: "scalecom",
    about: "ScaleCom: cyclic local top-k through allreduce, low-pass filtered error memory",
    keys: &[
        ("beta", "low-pass filter β of the error memory, 0 < β ≤ 1 (default 1: plain error feedback)"),
        ("warmup", "rounds without compression at the start (default 0)"),
    ],
    dense_downlink: false,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("scalecom:beta=0.5,warmup=3", "clt-k:k=10")],
    build,
};

fn build(setup: &Setup, spec: &mut Spec) -> Result<Box<dyn Method>> {
    let beta = spec.take_f64_or("beta", 1.0)?;
    let warmup = spec.take_usize_or("warmup", 0)? as u64;
    if !(beta > 0.0 && beta <= 1.0) {
        return Err(Error::config(
            format!("--method {}: β = {beta}", spec.text()),
            "the low-pass filter needs 0 < β ≤ 1",
        ));
    }
    setup.no_collective("scalecom", "sums its CLT-k values by allreduce")?;
    let mut compressor = own_compressor(setup, "scalecom", "clt-k", "clt-k:k=K")?;
    let clt = CltK::from_spec(&mut compressor, setup.dim)?;
    compressor.finish()?;
    let (gamma, rule) = step_size::ef21(setup.smoothness, clt.k() as f64 / setup.dim as f64);
    let k = clt.k();
    let plan = ScaleComPlan {
        step: StepSize::resolve(gamma, &rule, setup.step),
        clt,
        beta,
        warmup,
        workers: setup.workers(),
        dim: setup.dim,
        round: 0,
        compressed: false,
    };
    let d = setup.dim;
    let workers = (0..setup.local_workers).map(|_| ScaleComWorker { memory: vec![0.0; d], p: vec![0.0; d] }).collect();
    let server = setup.server(|| ScaleComServer { sum: Vec::new(), indices: Vec::with_capacity(k) });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, workers, server)?))
}

struct ScaleComPlan {
    step: StepSize,
    clt: CltK,
    beta: f64,
    warmup: u64,
    workers: usize,
    dim: usize,
    round: u64,
    /// This round compresses (past the warm-up).
    compressed: bool,
}

impl ScaleComPlan {
    fn leader(&self) -> usize {
        (self.round % self.workers as u64) as usize
    }
}

impl Plan for ScaleComPlan {
    fn begin_round(&mut self, t: u64) -> usize {
        self.round = t;
        self.compressed = t >= self.warmup;
        if self.compressed {
            2
        } else {
            1
        }
    }

    fn phase(&self, i: usize) -> Phase {
        match (self.compressed, i) {
            (false, _) => Phase::Sum { len: self.dim },
            (true, 0) => Phase::Broadcast { from: self.leader(), len: 4 * self.clt.k() },
            (true, _) => Phase::Sum { len: self.clt.k() },
        }
    }

    fn on_broadcast(&mut self, _i: usize, bytes: &[u8]) -> Result<()> {
        self.clt.set_support(bytes)
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }

    fn diagnostics(&mut self, monitored: &[f64]) -> Vec<(&'static str, f64)> {
        if !self.compressed {
            return Vec::new();
        }
        vec![("leader_overlap", self.clt.overlap_with_top_k(monitored))]
    }

    /// The round, the leader and the index set are derived anew every round.
    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}

struct ScaleComWorker {
    /// m_j.
    memory: Vec<f64>,
    /// p_j = m_j + γ∇f_j.
    p: Vec<f64>,
}

/// A value as it travels (f32, §0.6).
fn on_wire(v: f64) -> f64 {
    v as f32 as f64
}

impl WorkerRole<ScaleComPlan> for ScaleComWorker {
    fn begin_round(&mut self, plan: &mut ScaleComPlan, data: &mut Worker) {
        let gamma = plan.step.gamma;
        self.p.iter_mut().zip(&self.memory).zip(&data.grad).for_each(|((p, m), g)| *p = m + gamma * g);
    }

    fn uplink(&mut self, plan: &mut ScaleComPlan, i: usize, _data: &mut Worker, up: Uplink) -> Result<Sent> {
        Ok(match (plan.compressed, i, up) {
            (true, 0, Uplink::Bytes(out)) => {
                plan.clt.select(&self.p, out);
                Sent::Bits(plan.clt.k() as u64 * plan.clt.index_bits())
            }
            (true, _, Uplink::Sum { weight, acc }) => {
                for (a, &j) in acc.iter_mut().zip(plan.clt.support()) {
                    *a += weight * on_wire(self.p[j as usize]);
                }
                Sent::Bits(32 * plan.clt.k() as u64)
            }
            (false, _, Uplink::Sum { weight, acc }) => {
                crate::vector::add_scaled(acc, weight, &self.p);
                Sent::Bits(32 * self.p.len() as u64)
            }
            _ => unreachable!("ScaleCom's phases are a broadcast and sums"),
        })
    }

    /// m_j ← (1 − β) m_j + β (p_j − p_j[I]); in warm-up rounds nothing was left out.
    fn downlink(&mut self, plan: &ScaleComPlan, i: usize, _down: &Down, _own: &[u8]) -> Result<()> {
        let beta = plan.beta;
        if !plan.compressed {
            self.memory.iter_mut().for_each(|v| *v *= 1.0 - beta);
        } else if i == 1 {
            self.memory.iter_mut().zip(&self.p).for_each(|(m, p)| *m = (1.0 - beta) * *m + beta * p);
            for &j in plan.clt.support() {
                self.memory[j as usize] -= beta * on_wire(self.p[j as usize]);
            }
        }
        Ok(())
    }

    fn monitored(&self) -> Option<&[f64]> {
        Some(&self.p)
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("m_j", &self.memory);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("m_j", &mut self.memory)
    }
}

struct ScaleComServer {
    sum: Vec<f64>,
    indices: Vec<u32>,
}

impl ServerRole<ScaleComPlan> for ScaleComServer {
    /// x ← x − Σ_j w_j p_j (warm-up), or x[I] ← x[I] − Σ_j w_j p_j[I].
    fn serve(&mut self, plan: &mut ScaleComPlan, _i: usize, received: Received, _x: &[f64]) -> Result<Down<'_>> {
        let Received::Sum(sum) = received else { unreachable!("ScaleCom's server receives sums") };
        std::mem::swap(&mut self.sum, sum);
        if !plan.compressed {
            return Ok(Down::dense(1.0, &self.sum));
        }
        self.indices.clear();
        self.indices.extend_from_slice(plan.clt.support());
        Ok(Down::sparse(1.0, &self.indices, &self.sum))
    }

    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shard::WorkerData;
    use crate::data::Csr;

    fn plan(beta: f64, d: usize, k: usize) -> ScaleComPlan {
        let clt = CltK::from_spec(&mut Spec::parse_compressor(&format!("clt-k:k={k}")).unwrap(), d).unwrap();
        let step = StepSize { gamma: 0.5, rule: "test".into() };
        ScaleComPlan { step, clt, beta, warmup: 0, workers: 1, dim: d, round: 0, compressed: false }
    }

    /// §E.4, through the worker role's own code: with β = 1, after a compressed round the
    /// memory plus what was sent is p_j, exactly: m_j^{t+1} + scatter(I, p_j[I]) = p_j
    /// (sent values are f32, so the memory keeps their rounding error too).
    #[test]
    fn memory_plus_sent_values_is_the_compensated_vector() {
        let d = 6;
        let mut plan = plan(1.0, d, 2);
        let mut data = Worker::new(WorkerData { id: 0, a: Csr::empty(d), b: Vec::new() }, 1.0, 0);
        data.grad = vec![0.1, -3.0, 0.7, 2.5, 0.0, -0.3];
        let mut worker = ScaleComWorker { memory: vec![0.25, 0.0, -1.0, 0.0, 1.0 / 3.0, 0.0], p: vec![0.0; d] };
        assert_eq!(plan.begin_round(0), 2);
        worker.begin_round(&mut plan, &mut data);
        let p = worker.p.clone();
        let mut indices = Vec::new();
        let sent = worker.uplink(&mut plan, 0, &mut data, Uplink::Bytes(&mut indices)).unwrap();
        assert_eq!(sent, Sent::Bits(2 * 3), "k indices of ⌈log₂ 6⌉ bits");
        plan.on_broadcast(0, &indices).unwrap();
        assert_eq!(plan.clt.support(), [1, 3], "the leader's top-2 of |p|");
        let mut acc = vec![0.0; 2];
        worker.uplink(&mut plan, 1, &mut data, Uplink::Sum { weight: 1.0, acc: &mut acc }).unwrap();
        assert_eq!(acc, [p[1] as f32 as f64, p[3] as f32 as f64]);
        worker.downlink(&plan, 1, &Down::nothing(), &[]).unwrap();
        let mut restored = worker.memory.clone();
        plan.clt.add_expanded(&acc, 1.0, &mut restored);
        assert_eq!(restored, p);
    }

    /// β < 1 filters the memory: m ← (1 − β)m + β(p − p[I]).
    #[test]
    fn the_low_pass_filter_blends_old_memory_and_the_residual() {
        let d = 4;
        let mut plan = plan(0.25, d, 1);
        let mut data = Worker::new(WorkerData { id: 0, a: Csr::empty(d), b: Vec::new() }, 1.0, 0);
        data.grad = vec![2.0, -8.0, 4.0, 0.0];
        let mut worker = ScaleComWorker { memory: vec![1.0, 1.0, 1.0, 1.0], p: vec![0.0; d] };
        plan.begin_round(0);
        worker.begin_round(&mut plan, &mut data);
        let mut indices = Vec::new();
        worker.uplink(&mut plan, 0, &mut data, Uplink::Bytes(&mut indices)).unwrap();
        plan.on_broadcast(0, &indices).unwrap();
        worker.downlink(&plan, 1, &Down::nothing(), &[]).unwrap();
        // p = m + γg = [2, −3, 3, 1]; I = {1}; m = 0.75·1 + 0.25·(p − p[I]).
        assert_eq!(worker.memory, [0.75 + 0.5, 0.75, 0.75 + 0.75, 0.75 + 0.25]);
    }
}
