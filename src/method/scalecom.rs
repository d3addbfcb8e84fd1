//! ScaleCom (ALGORITHMS.md §E): cyclic local top-k (CLT-k) with a low-pass filtered
//! error memory.
//! ```text
//! worker j: p_j = m_j + γ∇f_j
//! leader ℓ = t mod W: I = Top_k(|p_ℓ|); broadcast I                (k indices)
//! all:      c = Σ_j w_j p_j[I]  by one allreduce of k values        (CLT-k commutes
//!           x[I] ← x[I] − c                                          with the sum, §E.1)
//! worker j: m_j ← (1 − β) m_j + β (p_j − scatter(I, p_j[I]))
//! ```
//! Values are rounded to f32 before the sum (the §0.6 wire convention, 32 paper bits
//! each), so one worker with β = 1 is Top-k with classic error feedback bit for bit
//! (§E.4). Rounds before `--warmup` send p_j uncompressed (dense allreduce).
//! Paper bits per round: 32k per worker + k⌈log₂d⌉ for the leader's index broadcast.
//! Default step: the EF21 rule with α = k/d, as for classic EF (§I.3).
//! Diagnostic: the overlap |I ∩ Top_k(Σ_j w_j p_j)|/k of the leader's set with the
//! true top-k of the averaged vector (§E.1), computed on evaluation rounds.

use super::step_size::{self, StepSize};
use super::{Method, RoundStats, Setup};
use crate::comm::Comm;
use crate::compress::top_k::select_top_k;
use crate::compress::wire::ceil_log2;
use crate::compress::{check_k, Spec};
use crate::error::{Error, Result};
use crate::worker::Worker;
use std::time::Instant;

pub struct ScaleCom {
    step: StepSize,
    k: usize,
    beta: f64,
    warmup: u64,
    round: u64,
    weights: Vec<f64>,
    first_worker: usize,
    workers_per_rank: usize,
    /// Error memories m_j and error-compensated vectors p_j of this rank's workers.
    memories: Vec<Vec<f64>>,
    compensated: Vec<Vec<f64>>,
    order: Vec<u32>,
    indices: Vec<u32>,
    values: Vec<f64>,
    dense: Vec<f64>,
    /// Whether `indices` hold the last round's CLT-k set (for the diagnostic).
    compressed_last: bool,
}

impl ScaleCom {
    pub fn new(setup: &Setup) -> Result<Self> {
        let mut spec = Spec::parse(setup.compressor)?;
        if spec.name != "clt-k" {
            return Err(Error::config(
                format!("scalecom compresses with CLT-k, not '{}'", setup.compressor),
                "write --compressor clt-k:k=K",
            ));
        }
        let k = spec.take_usize("k")?;
        check_k(&spec, k, setup.dim)?;
        spec.finish()?;
        if !(setup.beta > 0.0 && setup.beta <= 1.0) {
            return Err(Error::config(format!("--beta {}", setup.beta), "the low-pass filter needs 0 < β ≤ 1"));
        }
        let (gamma, rule) = step_size::ef21(setup.smoothness, k as f64 / setup.dim as f64);
        let local = setup.local_workers;
        Ok(ScaleCom {
            step: StepSize::resolve(gamma, &rule, setup.step),
            k,
            beta: setup.beta,
            warmup: setup.warmup,
            round: 0,
            weights: setup.weights.to_vec(),
            first_worker: setup.first_worker,
            workers_per_rank: local,
            memories: vec![vec![0.0; setup.dim]; local],
            compensated: vec![vec![0.0; setup.dim]; local],
            order: Vec::with_capacity(setup.dim),
            indices: vec![0; k],
            values: vec![0.0; k],
            dense: vec![0.0; setup.dim],
            compressed_last: false,
        })
    }

    fn weight(&self, j: usize) -> f64 {
        self.weights[self.first_worker + j]
    }

    /// Rounds before `--warmup`: x ← x − Σ_j w_j p_j by a dense allreduce; the memory
    /// only decays, since nothing was left out.
    fn dense_round(&mut self, x: &mut [f64], comm: &mut Comm) -> RoundStats {
        self.dense.fill(0.0);
        for j in 0..self.compensated.len() {
            let w = self.weight(j);
            self.dense.iter_mut().zip(&self.compensated[j]).for_each(|(s, p)| *s += w * p);
        }
        comm.sum(&mut self.dense);
        x.iter_mut().zip(&self.dense).for_each(|(xi, s)| *xi -= s);
        for m in self.memories.iter_mut() {
            m.iter_mut().for_each(|v| *v *= 1.0 - self.beta);
        }
        RoundStats { paper_bits_up: 32 * (x.len() * self.weights.len()) as u64, ..Default::default() }
    }

    fn compressed_round(&mut self, x: &mut [f64], comm: &mut Comm) -> RoundStats {
        let mut stats = RoundStats::default();
        let start = Instant::now();
        let leader = (self.round % self.weights.len() as u64) as usize;
        let leader_rank = leader / self.workers_per_rank;
        if let Some(local) = leader.checked_sub(self.first_worker).filter(|&j| j < self.workers_per_rank) {
            let top = select_top_k(&mut self.order, &self.compensated[local], self.k);
            self.indices.copy_from_slice(top);
        }
        stats.t_compress += start.elapsed().as_secs_f64();
        comm.broadcast_u32(leader_rank, &mut self.indices);

        let start = Instant::now();
        self.values.fill(0.0);
        for j in 0..self.compensated.len() {
            let w = self.weight(j);
            for (v, &i) in self.values.iter_mut().zip(&self.indices) {
                *v += w * on_wire(self.compensated[j][i as usize]);
            }
        }
        stats.t_compress += start.elapsed().as_secs_f64();
        comm.sum(&mut self.values);

        let start = Instant::now();
        for (&i, v) in self.indices.iter().zip(&self.values) {
            x[i as usize] -= v;
        }
        let beta = self.beta;
        for (m, p) in self.memories.iter_mut().zip(&self.compensated) {
            m.iter_mut().zip(p).for_each(|(mi, pi)| *mi = (1.0 - beta) * *mi + beta * pi);
            for &i in &self.indices {
                m[i as usize] -= beta * on_wire(p[i as usize]);
            }
        }
        stats.t_decode += start.elapsed().as_secs_f64();
        let d = x.len() as u64;
        stats.paper_bits_up = (32 * self.k * self.weights.len()) as u64 + self.k as u64 * u64::from(ceil_log2(d));
        stats
    }
}

/// A value as it travels (f32, §0.6).
fn on_wire(v: f64) -> f64 {
    v as f32 as f64
}

impl Method for ScaleCom {
    fn step(&mut self, x: &mut [f64], workers: &mut [Worker], comm: &mut Comm) -> Result<RoundStats> {
        let gamma = self.step.gamma;
        for ((p, m), w) in self.compensated.iter_mut().zip(&self.memories).zip(workers.iter()) {
            p.iter_mut().zip(m).zip(&w.grad).for_each(|((pi, mi), gi)| *pi = mi + gamma * gi);
        }
        let stats = if self.round < self.warmup { self.dense_round(x, comm) } else { self.compressed_round(x, comm) };
        self.compressed_last = self.round >= self.warmup;
        self.round += 1;
        Ok(stats)
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }

    fn diagnostics(&mut self, comm: &mut Comm) -> Vec<(&'static str, f64)> {
        if !self.compressed_last {
            return Vec::new();
        }
        self.dense.fill(0.0);
        for j in 0..self.compensated.len() {
            let w = self.weight(j);
            self.dense.iter_mut().zip(&self.compensated[j]).for_each(|(s, p)| *s += w * p);
        }
        comm.monitor_sum(&mut self.dense);
        let truth = select_top_k(&mut self.order, &self.dense, self.k);
        // Both index lists are sorted: count the common entries by merging.
        let (mut a, mut b, mut common) = (0, 0, 0);
        while a < truth.len() && b < self.indices.len() {
            match truth[a].cmp(&self.indices[b]) {
                std::cmp::Ordering::Less => a += 1,
                std::cmp::Ordering::Greater => b += 1,
                std::cmp::Ordering::Equal => {
                    common += 1;
                    a += 1;
                    b += 1;
                }
            }
        }
        vec![("leader_overlap", common as f64 / self.k as f64)]
    }
}

#[cfg(test)]
mod tests {
    /// §E.4: CLT-k commutes with the (weighted) mean for a fixed index set, exactly when
    /// the sums are taken in the same order.
    #[test]
    fn clt_k_commutes_with_the_mean() {
        let p: Vec<Vec<f64>> =
            (0..3).map(|w| (0..10).map(|j| ((w * 10 + j) * 37 % 17) as f64 - 8.0).collect()).collect();
        let weights = [0.25, 0.5, 0.25];
        let indices = [1usize, 4, 7];
        let mut of_each = [0.0; 3];
        for (pj, w) in p.iter().zip(weights) {
            for (v, &i) in of_each.iter_mut().zip(&indices) {
                *v += w * pj[i];
            }
        }
        let mut mean = [0.0; 10];
        for (pj, w) in p.iter().zip(weights) {
            mean.iter_mut().zip(pj).for_each(|(m, v)| *m += w * v);
        }
        let of_mean: Vec<f64> = indices.iter().map(|&i| mean[i]).collect();
        assert_eq!(of_each.to_vec(), of_mean);
    }
}
