//! Sketched-SGD (ALGORITHMS.md §C.2, practical version of the reference code).
//! ```text
//! worker i: u_i ← ρ u_i + ∇f_i;  v_i ← v_i + u_i            (momentum, error accumulation)
//! all:      S = Σ_i w_i Sketch(v_i)  by one allreduce of r·c values
//!           P > 0: H = the P·k largest |v̂_j| (nonzero);  e = Σ_i w_i v_i[H] by a
//!                  second allreduce of |H| values;  Δ = Top_k(e) on H
//!           P = 0: Δ = Top_k(v̂)
//!           x ← x − γΔ;  u_i[supp Δ] = 0, v_i[supp Δ] = 0   (momentum stopping, error reset)
//! ```
//! `--heavymix` (the theory version): H = {j : v̂_j² ≥ ℓ̂²/k} (ℓ̂² the sketch's norm
//! estimate), capped at the k largest, filled up to k with uniformly random coordinates
//! from the shared stream; Δ = the exact values of those k coordinates.
//! `--sketch-step accumulator` accumulates γu (the paper) instead of applying γ to Δ.
//! The count sketch's hashes come from the shared stream (§C.1), so sketches add.
//! Paper bits per round: r·c·32 + 32|H| uplink per worker; k(32 + ⌈log₂d⌉) downlink per
//! worker (the paper counts the update broadcast, §0.4). Default step: the EF21 rule
//! with α = k/d (HEAVYMIX is a k-contraction, §C.2).

use super::step_size::{self, StepSize};
use super::{Method, RoundStats, Setup, SketchStep};
use crate::comm::Comm;
use crate::compress::count_sketch::{CountSketch, MAX_ROWS};
use crate::compress::top_k::select_top_k;
use crate::compress::wire::ceil_log2;
use crate::compress::{check_k, Spec};
use crate::error::{Error, Result};
use crate::rng::{self, Purpose, Stream};
use crate::worker::Worker;
use rand::Rng;
use std::time::Instant;

pub struct SketchedSgd {
    step: StepSize,
    sketch: CountSketch,
    k: usize,
    p2: usize,
    momentum: f64,
    heavymix: bool,
    placement: SketchStep,
    weights: Vec<f64>,
    first_worker: usize,
    /// Momenta u_i and error accumulators v_i of this rank's workers.
    momenta: Vec<Vec<f64>>,
    errors: Vec<Vec<f64>>,
    table: Vec<f64>,
    estimates: Vec<f64>,
    order: Vec<u32>,
    candidates: Vec<u32>,
    exact: Vec<f64>,
    /// The update Δ as (index, value) pairs.
    update: Vec<(u32, f64)>,
    /// Shared stream for HEAVYMIX's random fill.
    shared: Stream,
    in_candidates: Vec<bool>,
}

/// Parsed `sketch:rows=R,cols=C,k=K,p2=P`.
struct SketchSpec {
    rows: usize,
    cols: usize,
    k: usize,
    p2: usize,
}

fn parse(text: &str, d: usize) -> Result<SketchSpec> {
    let mut spec = Spec::parse(text)?;
    if spec.name != "sketch" {
        return Err(Error::config(
            format!("sketched-sgd compresses with a count sketch, not '{text}'"),
            "write --compressor sketch:rows=5,cols=C,k=K,p2=P",
        ));
    }
    let (rows, cols, k, p2) =
        (spec.take_usize("rows")?, spec.take_usize("cols")?, spec.take_usize("k")?, spec.take_usize("p2")?);
    check_k(&spec, k, d)?;
    if !(1..=MAX_ROWS).contains(&rows) || cols == 0 {
        return Err(Error::config(
            format!("compressor '{text}': a {rows} × {cols} sketch"),
            format!("choose 1 ≤ rows ≤ {MAX_ROWS} (odd, e.g. 5) and cols ≥ 1"),
        ));
    }
    spec.finish()?;
    Ok(SketchSpec { rows, cols, k, p2 })
}

impl SketchedSgd {
    pub fn new(setup: &Setup) -> Result<Self> {
        let d = setup.dim;
        let s = parse(setup.compressor, d)?;
        if !(0.0..1.0).contains(&setup.momentum) {
            return Err(Error::config(format!("--momentum {}", setup.momentum), "choose 0 ≤ ρ < 1"));
        }
        let sketch = CountSketch::new(s.rows, s.cols, d, &mut rng::shared(setup.seed, Purpose::SketchHashes));
        let (gamma, rule) = step_size::ef21(setup.smoothness, s.k as f64 / d as f64);
        let local = setup.local_workers;
        let candidates = (s.p2 * s.k).min(d).max(s.k);
        Ok(SketchedSgd {
            step: StepSize::resolve(gamma, &rule, setup.step),
            table: vec![0.0; sketch.table_len()],
            sketch,
            k: s.k,
            p2: s.p2,
            momentum: setup.momentum,
            heavymix: setup.heavymix,
            placement: setup.sketch_step,
            weights: setup.weights.to_vec(),
            first_worker: setup.first_worker,
            momenta: vec![vec![0.0; d]; local],
            errors: vec![vec![0.0; d]; local],
            estimates: vec![0.0; d],
            order: Vec::with_capacity(d),
            candidates: Vec::with_capacity(candidates),
            exact: Vec::with_capacity(candidates),
            update: Vec::with_capacity(s.k),
            shared: rng::shared(setup.seed, Purpose::Server),
            in_candidates: vec![false; d],
        })
    }

    fn weight(&self, j: usize) -> f64 {
        self.weights[self.first_worker + j]
    }

    /// e = Σ_i w_i v_i[candidates] by allreduce.
    fn exact_values(&mut self, comm: &mut Comm) {
        self.exact.clear();
        self.exact.resize(self.candidates.len(), 0.0);
        for j in 0..self.errors.len() {
            let w = self.weight(j);
            for (e, &c) in self.exact.iter_mut().zip(&self.candidates) {
                *e += w * self.errors[j][c as usize];
            }
        }
        comm.sum(&mut self.exact);
    }

    /// Candidates H: the nonzero entries among the P·k largest |v̂_j| (§C.2 edge case).
    fn top_candidates(&mut self) {
        let count = (self.p2 * self.k).min(self.estimates.len());
        self.candidates.clear();
        let top = select_top_k(&mut self.order, &self.estimates, count);
        self.candidates.extend(top.iter().copied().filter(|&j| self.estimates[j as usize] != 0.0));
    }

    /// HEAVYMIX: heavy coordinates by the sketch's own norm estimate, then a uniformly
    /// random fill from the shared stream up to k.
    fn heavymix_candidates(&mut self) {
        let threshold = self.sketch.norm_sq_estimate(&self.table) / self.k as f64;
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

    /// Δ from (candidates, exact values): the k largest, or all of them for HEAVYMIX.
    fn select_update(&mut self) {
        self.update.clear();
        if self.heavymix || self.candidates.len() <= self.k {
            self.update.extend(self.candidates.iter().copied().zip(self.exact.iter().copied()));
            return;
        }
        let top = select_top_k(&mut self.order, &self.exact, self.k);
        self.update.extend(top.iter().map(|&i| (self.candidates[i as usize], self.exact[i as usize])));
    }
}

impl Method for SketchedSgd {
    fn step(&mut self, x: &mut [f64], workers: &mut [Worker], comm: &mut Comm) -> Result<RoundStats> {
        let mut stats = RoundStats::default();
        let gamma = self.step.gamma;
        let (accumulate, apply) = match self.placement {
            SketchStep::Update => (1.0, gamma),
            SketchStep::Accumulator => (gamma, 1.0),
        };
        let start = Instant::now();
        self.table.fill(0.0);
        for (j, w) in workers.iter().enumerate() {
            let (u, v) = (&mut self.momenta[j], &mut self.errors[j]);
            for ((ui, vi), gi) in u.iter_mut().zip(v.iter_mut()).zip(&w.grad) {
                *ui = self.momentum * *ui + gi;
                *vi += accumulate * *ui;
            }
            self.sketch.add(&self.errors[j], self.weight(j), &mut self.table);
        }
        stats.t_compress += start.elapsed().as_secs_f64();
        comm.sum(&mut self.table);

        let start = Instant::now();
        self.sketch.estimate_all(&self.table, &mut self.estimates);
        if self.heavymix {
            self.heavymix_candidates();
        } else if self.p2 > 0 {
            self.top_candidates();
        }
        stats.t_decode += start.elapsed().as_secs_f64();
        if self.heavymix || self.p2 > 0 {
            self.exact_values(comm);
        } else {
            self.candidates.clear();
            self.candidates.extend(select_top_k(&mut self.order, &self.estimates, self.k).iter().copied());
            self.exact.clear();
            self.exact.extend(self.candidates.iter().map(|&j| self.estimates[j as usize]));
        }

        let start = Instant::now();
        self.select_update();
        for &(i, value) in &self.update {
            x[i as usize] -= apply * value;
            for (u, v) in self.momenta.iter_mut().zip(self.errors.iter_mut()) {
                u[i as usize] = 0.0;
                v[i as usize] = 0.0;
            }
        }
        stats.t_decode += start.elapsed().as_secs_f64();

        let workers_total = self.weights.len() as u64;
        let second_round = if self.heavymix || self.p2 > 0 { self.candidates.len() as u64 } else { 0 };
        stats.paper_bits_up = workers_total * 32 * (self.sketch.table_len() as u64 + second_round);
        stats.paper_bits_down = workers_total * self.update.len() as u64 * (32 + u64::from(ceil_log2(x.len() as u64)));
        Ok(stats)
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }
}
