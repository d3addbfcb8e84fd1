//! Sketched-SGD (ALGORITHMS.md §C.2, practical version of the reference code).
//! ```text
//! worker i: u_i ← ρ u_i + ∇f_i;  v_i ← v_i + u_i            (momentum, error accumulation)
//! phase 0:  S = Σ_i w_i Sketch(v_i)  by one allreduce of r·c values
//!           P > 0: H = the P·k largest |v̂_j| (nonzero)      → downlink H
//! phase 1:  e = Σ_i w_i v_i[H] by a second allreduce of |H| values;  Δ = Top_k(e) on H
//!           P = 0: Δ = Top_k(v̂) from phase 0 alone
//!           x ← x − γΔ;  u_i[supp Δ] = 0, v_i[supp Δ] = 0   (momentum stopping, error reset)
//! ```
//! `heavymix` (the theory version): H = {j : v̂_j² ≥ ℓ̂²/k} (ℓ̂² the sketch's norm
//! estimate), capped at the k largest, filled up to k with uniformly random coordinates
//! from the server's shared stream; Δ = the exact values of those k coordinates.
//! `gamma-at=accumulator` accumulates γu (the paper) instead of applying γ to Δ.
//! The count sketch (`--compressor sketch:rows=R,cols=C`, `compress::count_sketch`) has
//! hashes from the shared stream, so sketches add. Keys: `k` (required), `p2` (default
//! 0), `momentum` ρ (default 0), `heavymix`, `gamma-at`. Paper bits per round:
//! r·c·32 + 32|H| uplink per worker; k(32 + ⌈log₂d⌉) downlink per worker (the paper
//! counts the update broadcast, §0.4). Default step: the EF21 rule with α = k/d
//! (HEAVYMIX is a k-contraction, §C.2).

use super::step_size::{self, StepSize};
use super::{own_compressor, Entry, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::compress::count_sketch::CountSketch;
use crate::compress::top_k::select_top_k;
use crate::compress::wire::ceil_log2;
use crate::compress::{check_k, Spec};
use crate::error::{Error, Result};
use crate::protocol::{Down, Phase, Plan, Protocol, Received, Sent, ServerRole, Update, Uplink, WorkerRole};
use crate::rng::{self, Purpose, Stream};
use crate::worker::Worker;
use rand::Rng;

pub const ENTRY: Entry = Entry {
    name: "sketched-sgd",
    about: "Sketched-SGD: count sketches summed by allreduce, heavy hitters, exact second round",
    keys: &[
        ("k", "coordinates of the update (required)"),
        ("p2", "second round: exact values of the P·k largest estimates (default 0: none)"),
        ("momentum", "momentum ρ, 0 ≤ ρ < 1 (default 0)"),
        ("heavymix", "flag: the theory version of heavy-hitter recovery"),
        ("gamma-at", "update (default: γ applied to Δ, the reference code) or accumulator (γu, the paper)"),
    ],
    dense_downlink: false,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[
        ("sketched-sgd:k=10,p2=3,momentum=0.5", "sketch:rows=5,cols=40"),
        ("sketched-sgd:k=10,heavymix,gamma-at=accumulator", "sketch:rows=3,cols=60"),
    ],
    build,
};

fn build(setup: &Setup, spec: &mut Spec) -> Result<Box<dyn Method>> {
    let d = setup.dim;
    let k = spec.take_usize("k")?;
    check_k(spec, k, d)?;
    let p2 = spec.take_usize_or("p2", 0)?;
    let momentum = spec.take_f64_or("momentum", 0.0)?;
    let heavymix = spec.take_flag("heavymix")?;
    let accumulate_gamma = spec.take_choice("gamma-at", &["update", "accumulator"], "update")? == "accumulator";
    if !(0.0..1.0).contains(&momentum) {
        return Err(Error::config(format!("--method {}: ρ = {momentum}", spec.text()), "choose 0 ≤ momentum < 1"));
    }
    setup.no_collective("sketched-sgd", "sums its sketches by allreduce")?;
    let mut compressor = own_compressor(setup, "sketched-sgd", "sketch", "sketch:rows=5,cols=C")?;
    let sketch = CountSketch::from_spec(&mut compressor, d, setup.seed)?;
    compressor.finish()?;
    let (gamma, rule) = step_size::ef21(setup.smoothness, k as f64 / d as f64);
    let step = StepSize::resolve(gamma, &rule, setup.step);
    let (accumulate, apply) = if accumulate_gamma { (step.gamma, 1.0) } else { (1.0, step.gamma) };
    let plan = SketchPlan {
        step,
        table_len: sketch.table_len(),
        sketch,
        second_round: heavymix || p2 > 0,
        momentum,
        accumulate,
        candidates: Vec::with_capacity((p2 * k).min(d).max(k)),
    };
    let workers =
        (0..setup.local_workers).map(|_| SketchWorker { momentum: vec![0.0; d], error: vec![0.0; d] }).collect();
    let server = setup.server(|| SketchServer {
        k,
        p2,
        heavymix,
        apply,
        index_bits: u64::from(ceil_log2(d as u64)),
        table: Vec::new(),
        estimates: vec![0.0; d],
        order: Vec::with_capacity(d),
        candidates: Vec::with_capacity((p2 * k).min(d).max(k)),
        candidate_bytes: Vec::new(),
        exact: Vec::new(),
        indices: Vec::with_capacity(k),
        values: Vec::with_capacity(k),
        shared: rng::shared(setup.seed, Purpose::Server),
        in_candidates: vec![false; d],
    });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, workers, server)?))
}

struct SketchPlan {
    step: StepSize,
    sketch: CountSketch,
    table_len: usize,
    /// P > 0 or HEAVYMIX: exact values of the candidates in a second phase.
    second_round: bool,
    momentum: f64,
    /// 1, or γ for `gamma-at=accumulator`.
    accumulate: f64,
    /// H, as the phase-0 downlink announced it.
    candidates: Vec<u32>,
}

impl Plan for SketchPlan {
    fn begin_round(&mut self, _t: u64) -> usize {
        if self.second_round {
            2
        } else {
            1
        }
    }

    fn phase(&self, i: usize) -> Phase {
        match i {
            0 => Phase::Sum { len: self.table_len },
            _ => Phase::Sum { len: self.candidates.len() },
        }
    }

    fn on_downlink(&mut self, i: usize, down: &Down, _x: &mut [f64]) -> Result<()> {
        if i == 0 && self.second_round {
            self.candidates.clear();
            self.candidates.extend(down.extra.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        }
        Ok(())
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }

    /// The candidates are announced anew every round.
    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}

struct SketchWorker {
    /// u_i.
    momentum: Vec<f64>,
    /// v_i.
    error: Vec<f64>,
}

impl WorkerRole<SketchPlan> for SketchWorker {
    fn begin_round(&mut self, plan: &mut SketchPlan, data: &mut Worker) {
        for ((ui, vi), gi) in self.momentum.iter_mut().zip(self.error.iter_mut()).zip(&data.grad) {
            *ui = plan.momentum * *ui + gi;
            *vi += plan.accumulate * *ui;
        }
    }

    fn uplink(&mut self, plan: &mut SketchPlan, i: usize, _data: &mut Worker, up: Uplink) -> Result<Sent> {
        let Uplink::Sum { weight, acc } = up else { unreachable!("Sketched-SGD's phases are sums") };
        if i == 0 {
            plan.sketch.add(&self.error, weight, acc);
            return Ok(Sent::Bits(32 * plan.table_len as u64));
        }
        for (e, &c) in acc.iter_mut().zip(&plan.candidates) {
            *e += weight * self.error[c as usize];
        }
        Ok(Sent::Bits(32 * plan.candidates.len() as u64))
    }

    /// Momentum stopping and error reset on supp Δ.
    fn downlink(&mut self, _plan: &SketchPlan, _i: usize, down: &Down, _own: &[u8]) -> Result<()> {
        if let Update::Sparse { indices, .. } = down.update {
            for &j in indices {
                self.momentum[j as usize] = 0.0;
                self.error[j as usize] = 0.0;
            }
        }
        Ok(())
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("u_i", &self.momentum);
        w.f64s("v_i", &self.error);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("u_i", &mut self.momentum)?;
        r.f64s_into("v_i", &mut self.error)
    }
}

struct SketchServer {
    k: usize,
    p2: usize,
    heavymix: bool,
    /// γ, or 1 for `gamma-at=accumulator`.
    apply: f64,
    index_bits: u64,
    table: Vec<f64>,
    estimates: Vec<f64>,
    order: Vec<u32>,
    candidates: Vec<u32>,
    candidate_bytes: Vec<u8>,
    exact: Vec<f64>,
    /// The update Δ.
    indices: Vec<u32>,
    values: Vec<f64>,
    /// Shared stream for HEAVYMIX's random fill (every replica draws alike).
    shared: Stream,
    in_candidates: Vec<bool>,
}

impl SketchServer {
    /// Candidates H: the nonzero entries among the P·k largest |v̂_j| (§C.2 edge case).
    fn top_candidates(&mut self) {
        let count = (self.p2 * self.k).min(self.estimates.len());
        self.candidates.clear();
        let top = select_top_k(&mut self.order, &self.estimates, count);
        self.candidates.extend(top.iter().copied().filter(|&j| self.estimates[j as usize] != 0.0));
    }

    /// HEAVYMIX: heavy coordinates by the sketch's own norm estimate, then a uniformly
    /// random fill from the shared stream up to k.
    fn heavymix_candidates(&mut self, sketch: &CountSketch) {
        let threshold = sketch.norm_sq_estimate(&self.table) / self.k as f64;
        let top = select_top_k(&mut self.order, &self.estimates, self.k);
        self.candidates.clear();
        self.candidates.extend(top.iter().copied().filter(|&j| self.estimates[j as usize].powi(2) >= threshold));
        for &c in &self.candidates {
            self.in_candidates[c as usize] = true;
        }
        let d = self.estimates.len() as u32;
        while self.candidates.len() < self.k {
            let j = self.shared.random_range(0..d);
            if !self.in_candidates[j as usize] {
                self.in_candidates[j as usize] = true;
                self.candidates.push(j);
            }
        }
        for &c in &self.candidates {
            self.in_candidates[c as usize] = false;
        }
        self.candidates.sort_unstable();
    }

    /// Δ from (H, exact values): the k largest, or all of them for HEAVYMIX; or, with
    /// no second round, the top k of the estimates.
    fn select_update(&mut self, from_estimates: bool) {
        self.indices.clear();
        self.values.clear();
        if from_estimates {
            let top = select_top_k(&mut self.order, &self.estimates, self.k);
            self.indices.extend_from_slice(top);
            self.values.extend(top.iter().map(|&j| self.estimates[j as usize]));
        } else if self.heavymix || self.candidates.len() <= self.k {
            self.indices.extend_from_slice(&self.candidates);
            self.values.extend_from_slice(&self.exact);
        } else {
            let top = select_top_k(&mut self.order, &self.exact, self.k);
            self.indices.extend(top.iter().map(|&i| self.candidates[i as usize]));
            self.values.extend(top.iter().map(|&i| self.exact[i as usize]));
        }
    }
}

impl ServerRole<SketchPlan> for SketchServer {
    fn serve(&mut self, plan: &mut SketchPlan, i: usize, received: Received, _x: &[f64]) -> Result<Down<'_>> {
        let Received::Sum(sum) = received else { unreachable!("Sketched-SGD's server receives sums") };
        if i == 1 {
            std::mem::swap(&mut self.exact, sum);
            self.select_update(false);
            return Ok(Down::sparse(self.apply, &self.indices, &self.values).counted());
        }
        std::mem::swap(&mut self.table, sum);
        plan.sketch.estimate_all(&self.table, &mut self.estimates);
        if !plan.second_round {
            self.select_update(true);
            return Ok(Down::sparse(self.apply, &self.indices, &self.values).counted());
        }
        if self.heavymix {
            self.heavymix_candidates(&plan.sketch);
        } else {
            self.top_candidates();
        }
        self.candidate_bytes.clear();
        self.candidate_bytes.extend(self.candidates.iter().flat_map(|j| j.to_le_bytes()));
        let bits = self.candidates.len() as u64 * self.index_bits;
        Ok(Down::nothing().with_extra(&self.candidate_bytes, bits))
    }

    /// HEAVYMIX's fill stream; the rest is recomputed every round.
    fn save(&self, w: &mut StateWriter) {
        w.stream("heavymix fill", &self.shared);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.stream("heavymix fill", &mut self.shared)
    }
}
