//! LAG-WK, LAG-PS and LAQ (ALGORITHMS.md §D): lazily aggregated gradients, uploaded only when they
//! changed by more than the recent steps of the model could hide.
//! ```text
//! RHS_i^k = (1/(γ²W²w_i²)) Σ_{d=1..D} ξ ‖x^{k+1−d} − x^{k−d}‖²     (zero-padded for k < D)
//! LAG-WK : upload δ_i = ∇f_i(x^k) − u_i (u_i: its last upload) iff ‖δ_i‖² > RHS_i^k
//! LAG-PS : the server asks worker i for δ_i iff L_i²‖x̂_i − x^k‖² > RHS_i^k (x̂_i: the
//!          model of its last upload)
//! LAQ    : Q_i = the innovation quantizer of ∇f_i(x^k) around Q̂_i (b bits a coordinate),
//!          ε_i = Q_i − ∇f_i(x^k); upload Q_i − Q̂_i iff ‖Q_i − Q̂_i‖² ≥ RHS_i^k + 3(‖ε_i‖² + ‖ε̂_i‖²)
//!          or the worker skipped t̄ rounds running
//! server : ∇^k = ∇^{k−1} + Σ_{uploaded} w_i (new_i − old_i);  x^{k+1} = x^k − γ∇^k
//! ```
//! §D writes f = Σ_m f_m with step α = 1/L_F, hence its 1/(α²M²); qtrain's f = Σ_i w_i f_i
//! gives the same iterates with γ = 1/L, and the rule above is §D's in these units (for
//! w_i = 1/W it is (1/γ²)Σ ξ‖Δx‖²; with unequal weights each worker's share of the
//! aggregate error is what the threshold bounds). ξ is the same for every d, as in both
//! reference codes (LAG-WK: ξ = 1/D; LAG-PS: ξ = 10/D; LAQ: ξ = 0.8/D).
//!
//! LAG-PS's request depends only on x̂_i, L_i and the model's history, all of which the
//! worker knows too: each worker evaluates the server's rule for itself (every replica
//! of the server would reach the same decision), so no request travels and no server
//! stores W copies of the model. Unlike the paper's worker, qtrain's still computes its
//! gradient every round (the protocol computes every local gradient before the phases):
//! the uploads, bits and iterates are LAG-PS's, `t_compute` is not.
//!
//! The uploads start from u_i = Q̂_i = 0 and round 0 uploads every gradient (§D's
//! recommended full upload at k = 0, instead of the reference's all-ones start and, for
//! LAG-PS, x̂_i = 0; from Q̂_i = 0 LAQ's rule alone may skip it at few bits). LAG-WK
//! uploads exact differences (32d paper bits, f64 on the wire); LAQ sends R (f32, rounded up
//! so that every coordinate stays in range) and d levels of b bits: 32 + b·d paper bits
//! (the LAQ code's plots count b·d). LAQ uploads on a tie, as its code does ("≥").

use super::codec::{add_exact_message, write_exact};
use super::step_size::{self, StepSize};
use super::{Entry, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::compress::wire::{f32_round_up, packed_len, BitReader, BitWriter, Reader};
use crate::error::{Error, Result};
use crate::protocol::{Down, Phase, Plan, Protocol, Received, Sent, ServerRole, Update, Uplink, WorkerRole};
use crate::spec::Spec;
use crate::vector::distance_sq;
use crate::worker::Worker;
use std::collections::VecDeque;

const DEPTH: (&str, &str) = ("D", "history depth D (default 10)");

pub const LAG_WK: Entry = Entry {
    name: "lag-wk",
    about: "LAG-WK: a worker uploads ∇f_i − (its last upload) when it changed more than the last D steps allow (§D.1)",
    keys: &[DEPTH, ("xi", "weight ξ of every past step (default 1/D)")],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("lag-wk", "identity"), ("lag-wk:D=3,xi=0.5", "identity")],
    build: |setup, spec| build(setup, spec, "lag-wk"),
};

pub const LAG_PS: Entry = Entry {
    name: "lag-ps",
    about: "LAG-PS: worker i uploads when L_i²‖x(last upload) − x‖² exceeds what the last D steps allow (§D.1)",
    keys: &[DEPTH, ("xi", "weight ξ of every past step (default 10/D)")],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("lag-ps", "identity")],
    build: |setup, spec| build(setup, spec, "lag-ps"),
};

pub const LAQ: Entry = Entry {
    name: "laq",
    about: "LAQ: LAG with b-bit innovation quantization and a forced upload after t̄ skips (§D.2)",
    keys: &[
        ("bits", "b bits per coordinate (default 4)"),
        DEPTH,
        ("xi", "weight ξ of every past step (default 0.8/D)"),
        ("tbar", "forced upload after t̄ consecutive skips (default 100; 0: never skip)"),
    ],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("laq", "identity"), ("laq:bits=2,D=4,tbar=3", "identity")],
    build: |setup, spec| build(setup, spec, "laq"),
};

/// Which rule decides an upload.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rule {
    WorkerSide,
    ServerSide,
    /// LAQ's quantizer: b bits a coordinate, levels Q̂_j − R + 2τR·q, τ = 1/(2^b − 1).
    Quantized {
        bits: u32,
        max_skips: u64,
    },
}

fn build(setup: &Setup, spec: &mut Spec, name: &str) -> Result<Box<dyn Method>> {
    if setup.compressor.trim() != "identity" {
        return Err(Error::config(
            format!("--method {name} --compressor {}", setup.compressor),
            format!("{name} has its own upload format: drop --compressor"),
        ));
    }
    setup.no_collective(name, "gathers its uploads")?;
    let depth = spec.take_usize_or("D", 10)?;
    if depth == 0 {
        return Err(Error::config(format!("--method {}: D = 0", spec.text()), "write D=N with N ≥ 1"));
    }
    let xi = spec.take_f64_or(
        "xi",
        match name {
            "laq" => 0.8,
            "lag-ps" => 10.0,
            _ => 1.0,
        } / depth as f64,
    )?;
    if xi < 0.0 {
        return Err(Error::config(format!("--method {}: ξ = {xi}", spec.text()), "write xi=F with F ≥ 0"));
    }
    let rule = if name == "laq" {
        let bits = spec.take_usize_or("bits", 4)?;
        if !(1..=16).contains(&bits) {
            return Err(Error::config(
                format!("--method {}: bits = {bits}", spec.text()),
                "write bits=B with 1 ≤ B ≤ 16",
            ));
        }
        Rule::Quantized { bits: bits as u32, max_skips: spec.take_usize_or("tbar", 100)? as u64 }
    } else if name == "lag-ps" {
        Rule::ServerSide
    } else {
        Rule::WorkerSide
    };
    let (gamma, text) = step_size::gd(setup.smoothness);
    let step = StepSize::resolve(gamma, &text, setup.step);
    let workers = setup.weights.len() as f64;
    // 1/(γ²W²w_i²) of every local worker, in local order.
    let gamma = step.gamma;
    let scale = |w: f64| 1.0 / (gamma * gamma * workers * workers * w * w);
    let plan = LazyPlan { step, depth, xi, rule, steps: VecDeque::with_capacity(depth), dim: setup.dim };
    let roles = (0..setup.local_workers)
        .map(|j| {
            let id = setup.first_worker + j;
            LazyWorker {
                threshold_scale: scale(setup.weights[id]),
                smoothness_sq: setup.smoothness.l_i[id] * setup.smoothness.l_i[id],
                last: vec![0.0; setup.dim],
                candidate: vec![0.0; setup.dim],
                drift: if rule == Rule::ServerSide { vec![0.0; setup.dim] } else { Vec::new() },
                uploaded: false,
                last_error_sq: 0.0,
                skips: 0,
            }
        })
        .collect();
    let server = setup.server(|| LazyServer { aggregate: vec![0.0; setup.dim], weights: setup.weights.to_vec() });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, roles, server)?))
}

struct LazyPlan {
    step: StepSize,
    depth: usize,
    xi: f64,
    rule: Rule,
    /// ‖x^{k+1−d} − x^{k−d}‖² for d = 1..D, newest first.
    steps: VecDeque<f64>,
    dim: usize,
}

impl LazyPlan {
    /// Σ_d ξ ‖x^{k+1−d} − x^{k−d}‖² (before the worker's 1/(γ²W²w_i²)).
    fn history(&self) -> f64 {
        self.xi * self.steps.iter().sum::<f64>()
    }
}

/// LAQ's message for ∇ around Q̂ = `last` (R, then the levels), and Q into `candidate`.
fn quantize(bits: u32, grad: &[f64], last: &[f64], candidate: &mut [f64], out: &mut Vec<u8>) {
    let radius = f32_round_up(grad.iter().zip(last).map(|(g, q)| (g - q).abs()).fold(0.0, f64::max));
    out.clear();
    out.extend_from_slice(&radius.to_le_bytes());
    let radius = f64::from(radius);
    let top = (1u32 << bits) - 1;
    let delta = radius / f64::from(top);
    let mut w = BitWriter::new(out);
    for ((c, g), q) in candidate.iter_mut().zip(grad).zip(last) {
        // q_j = ⌊(∇_j − Q̂_j + R)/(2τR) + 1/2⌋ with 2τR = 2δ; R = 0 sends level 0.
        let level = if radius > 0.0 { (((g - q + radius) / (2.0 * delta) + 0.5).floor() as u32).min(top) } else { 0 };
        w.put(level, bits);
        *c = q + innovation_value(radius, delta, level);
    }
    w.finish();
}

/// Q_j − Q̂_j for a level: −R + 2δ·q (δ = τR).
fn innovation_value(radius: f64, delta: f64, level: u32) -> f64 {
    -radius + 2.0 * delta * f64::from(level)
}

impl Plan for LazyPlan {
    fn begin_round(&mut self, _t: u64) -> usize {
        1
    }

    fn phase(&self, _i: usize) -> Phase {
        Phase::Gather
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }

    /// Records ‖x^{k+1} − x^k‖² = γ²‖∇^k‖² for the next rounds' thresholds.
    fn on_downlink(&mut self, _i: usize, down: &Down, _x: &mut [f64]) -> Result<()> {
        let Update::Dense(direction) = down.update else {
            return Err(Error::Comm { what: "lazy aggregation expects a dense downlink (a method bug)".into() });
        };
        let moved = down.step * down.step * direction.iter().map(|v| v * v).sum::<f64>();
        if self.steps.len() == self.depth {
            self.steps.pop_back();
        }
        self.steps.push_front(moved);
        Ok(())
    }

    fn save(&self, w: &mut StateWriter) {
        w.u64("recent step count", self.steps.len() as u64);
        w.f64s("recent steps", &self.steps.iter().copied().collect::<Vec<_>>());
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        let n = r.u64("recent step count")? as usize;
        if n > self.depth {
            return Err(Error::Checkpoint { what: format!("{n} recent steps for a history of depth {}", self.depth) });
        }
        let mut steps = vec![0.0; n];
        r.f64s_into("recent steps", &mut steps)?;
        self.steps = steps.into();
        Ok(())
    }
}

struct LazyWorker {
    /// 1/(γ²W²w_i²).
    threshold_scale: f64,
    /// L_i² (LAG-PS).
    smoothness_sq: f64,
    /// u_i (LAG-WK, LAG-PS) or Q̂_i (LAQ): what the server holds for this worker.
    last: Vec<f64>,
    /// x^k − x̂_i (LAG-PS).
    drift: Vec<f64>,
    /// Whether it has uploaded once: round 0 always does.
    uploaded: bool,
    /// LAQ's Q_i of this round.
    candidate: Vec<f64>,
    /// ‖ε̂_i‖² of the last upload (LAQ).
    last_error_sq: f64,
    /// Consecutive skips (LAQ).
    skips: u64,
}

impl WorkerRole<LazyPlan> for LazyWorker {
    fn uplink(&mut self, plan: &mut LazyPlan, _i: usize, data: &mut Worker, up: Uplink) -> Result<Sent> {
        let Uplink::Bytes(out) = up else { unreachable!("lazy aggregation gathers") };
        let grad = &data.grad;
        let threshold = self.threshold_scale * plan.history();
        let first = !std::mem::replace(&mut self.uploaded, true);
        let (bits, max_skips) = match plan.rule {
            Rule::Quantized { bits, max_skips } => (bits, max_skips),
            rule => {
                // The reference code's strict ">", on the stored gradient (LAG-WK) or on
                // the model's drift since the last upload (LAG-PS).
                let change = match rule {
                    Rule::ServerSide => self.smoothness_sq * self.drift.iter().map(|v| v * v).sum::<f64>(),
                    _ => distance_sq(grad, &self.last),
                };
                if change <= threshold && !first {
                    return Ok(Sent::Skip);
                }
                for (c, (g, u)) in self.candidate.iter_mut().zip(grad.iter().zip(&self.last)) {
                    *c = g - u;
                }
                let sent = write_exact(&self.candidate, out);
                add_exact_message(out, 1.0, &mut self.last)?;
                self.drift.fill(0.0);
                return Ok(sent);
            }
        };
        quantize(bits, grad, &self.last, &mut self.candidate, out);
        let error_sq = distance_sq(&self.candidate, grad);
        let change = distance_sq(&self.candidate, &self.last);
        if change < threshold + 3.0 * (error_sq + self.last_error_sq) && self.skips < max_skips && !first {
            self.skips += 1;
            out.clear();
            return Ok(Sent::Skip);
        }
        decode_laq(bits, plan.dim, out, 1.0, &mut self.last)?;
        self.last_error_sq = error_sq;
        self.skips = 0;
        Ok(Sent::Bits(32 + u64::from(bits) * plan.dim as u64))
    }

    /// LAG-PS: x^{k+1} − x̂_i = (x^k − x̂_i) − step·update.
    fn downlink(&mut self, _plan: &LazyPlan, _i: usize, down: &Down, _own: &[u8]) -> Result<()> {
        if let (false, Update::Dense(update)) = (self.drift.is_empty(), down.update) {
            self.drift.iter_mut().zip(update).for_each(|(r, u)| *r -= down.step * u);
        }
        Ok(())
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("last upload", &self.last);
        w.f64s("drift since the last upload", &self.drift);
        w.bool("uploaded", self.uploaded);
        w.f64("last quantization error", self.last_error_sq);
        w.u64("consecutive skips", self.skips);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("last upload", &mut self.last)?;
        r.f64s_into("drift since the last upload", &mut self.drift)?;
        self.uploaded = r.bool("uploaded")?;
        self.last_error_sq = r.f64("last quantization error")?;
        self.skips = r.u64("consecutive skips")?;
        Ok(())
    }
}

/// acc += scale·(Q − Q̂) from a LAQ message (R, then d levels of `bits` bits).
fn decode_laq(bits: u32, dim: usize, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
    let mut r = Reader::new(msg, "laq");
    let radius = f64::from(r.f32()?);
    if !(radius.is_finite() && radius >= 0.0) {
        return Err(r.error(format!("radius {radius} is not a finite non-negative number")));
    }
    let mut levels = BitReader::new(r.take(packed_len(dim, bits))?);
    r.finish()?;
    let delta = radius / f64::from((1u32 << bits) - 1);
    for a in acc.iter_mut() {
        *a += scale * innovation_value(radius, delta, levels.get(bits));
    }
    Ok(())
}

struct LazyServer {
    /// ∇ = Σ_i w_i (last upload of i).
    aggregate: Vec<f64>,
    weights: Vec<f64>,
}

impl ServerRole<LazyPlan> for LazyServer {
    fn serve(&mut self, plan: &mut LazyPlan, _i: usize, received: Received, _x: &[f64]) -> Result<Down<'_>> {
        let Received::Messages(messages) = received else {
            return Err(Error::Comm {
                what: "lazy aggregation's uploads arrive through a gather (a method bug)".into(),
            });
        };
        for (msg, w) in messages.iter().zip(&self.weights) {
            match plan.rule {
                _ if msg.is_empty() => {}
                Rule::Quantized { bits, .. } => decode_laq(bits, plan.dim, msg, *w, &mut self.aggregate)?,
                _ => add_exact_message(msg, *w, &mut self.aggregate)?,
            }
        }
        Ok(Down::dense(plan.step.gamma, &self.aggregate))
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("aggregate", &self.aggregate);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("aggregate", &mut self.aggregate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{self, Purpose};
    use rand::Rng;

    /// §D.4: every level is in range (the decoder reads them back), ‖Q − ∇‖∞ ≤ τR, the
    /// decoder rebuilds Q − Q̂ exactly, Q = ∇ on the grid, and R = 0 gives Q = Q̂.
    #[test]
    fn innovation_quantizer_meets_its_bounds() {
        let mut g = rng::shared(4, Purpose::Generator);
        for bits in [1, 2, 4, 8] {
            for _ in 0..200 {
                let d = g.random_range(1..40);
                let grad: Vec<f64> = (0..d).map(|_| g.random::<f64>() * 4.0 - 2.0).collect();
                let last: Vec<f64> = (0..d).map(|_| g.random::<f64>() - 0.5).collect();
                let (mut q, mut out) = (vec![0.0; d], Vec::new());
                quantize(bits, &grad, &last, &mut q, &mut out);
                assert_eq!(out.len(), 4 + packed_len(d, bits));
                let radius = f64::from(f32::from_le_bytes(out[..4].try_into().unwrap()));
                let tau = 1.0 / f64::from((1u32 << bits) - 1);
                let worst = q.iter().zip(&grad).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(worst <= tau * radius * (1.0 + 1e-12), "bits {bits}: {worst} > τR = {}", tau * radius);
                let mut rebuilt = last.clone();
                decode_laq(bits, d, &out, 1.0, &mut rebuilt).unwrap();
                assert_eq!(rebuilt, q);
            }
        }
        // ∇ on the grid (R = 1, b = 2: Q̂ + {−1, −1/3, 1/3, 1}) is sent exactly.
        let (last, grad) = (vec![0.5, 0.5, 0.5], vec![-0.5, 0.5 + 1.0 / 3.0, 1.5]);
        let (mut q, mut out) = (vec![0.0; 3], Vec::new());
        quantize(2, &grad, &last, &mut q, &mut out);
        assert!(q.iter().zip(&grad).all(|(a, b)| (a - b).abs() < 1e-15), "{q:?}");
        // R = 0: Q = Q̂ and the levels are 0.
        quantize(3, &last, &last, &mut q, &mut out);
        assert_eq!(q, last);
        assert!(out[4..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_malformed_laq_message_is_an_error() {
        let mut acc = vec![0.0; 5];
        assert!(decode_laq(4, 5, &[0, 0, 128, 63, 1], 1.0, &mut acc).is_err(), "levels missing");
        let nan = f32::NAN.to_le_bytes();
        assert!(decode_laq(4, 5, &[nan[0], nan[1], nan[2], nan[3], 0, 0, 0], 1.0, &mut acc).is_err());
    }
}
