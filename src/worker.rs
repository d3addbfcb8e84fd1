//! A logical worker: its rows, its weight in f = Σ w_i f_i, its private random streams
//! and its latest local gradient — the gradient oracle of the round protocol. Several
//! workers can live on one MPI rank (`--workers W`), which gives the same iterates as W
//! ranks would, because every worker's randomness is keyed by its global id
//! (ALGORITHMS.md §0.3).

use crate::checkpoint::{StateReader, StateWriter};
use crate::compress::rand_k::SubsetSampler;
use crate::data::Csr;
use crate::data::WorkerData;
use crate::error::Result;
use crate::objective::{gradient, value_and_gradient, Objective};
use crate::rng::{self, Purpose, Stream};
use std::time::Instant;

/// How the workers' objectives are weighted (`--weighting`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Weighting {
    /// w_i = m_i/m: f is the mean over all samples, independent of the split.
    Samples,
    /// w_i = 1/W: f = (1/W) Σ f_i, each f_i a mean over its own rows, as the papers'
    /// reference code (ALGORITHMS.md §0.1).
    Workers,
}

/// Weights of all W workers from their row counts.
pub fn weights(rows_per_worker: &[u64], weighting: Weighting) -> Vec<f64> {
    let w = rows_per_worker.len() as f64;
    let m: u64 = rows_per_worker.iter().sum();
    rows_per_worker
        .iter()
        .map(|&mi| match weighting {
            Weighting::Samples => mi as f64 / m as f64,
            Weighting::Workers => 1.0 / w,
        })
        .collect()
}

pub struct Worker {
    /// Global id in 0..W.
    pub id: usize,
    pub a: Csr,
    pub b: Vec<f64>,
    /// w_i in f = Σ w_i f_i.
    pub weight: f64,
    /// Private stream for compressor randomness (§0.3).
    pub rng: Stream,
    /// Private stream of minibatch rows (`--batch`).
    batch_rng: Stream,
    /// Draws minibatches of B rows without replacement, when `--batch B` < m_i.
    batch: Option<SubsetSampler>,
    /// The worker's gradient of this round: ∇f_i(x) after `evaluate`, the method's
    /// (full or minibatch) gradient after `round_gradient`.
    pub grad: Vec<f64>,
    /// f_i at the point of the last `evaluate`.
    pub loss: f64,
    /// ∇f_I(x^{t−1}) on this round's minibatch, after `pair_gradients` (empty before).
    pub pair: Vec<f64>,
    /// The round whose model `grad` holds the full gradient of (set by the monitor), and
    /// the seconds it took: a full-batch method reuses it.
    full_at: Option<(u64, f64)>,
    margins: Vec<f64>,
    /// `--straggler`: every gradient of the round takes this many times as long (≥ 1).
    slowdown: f64,
}

impl Worker {
    pub fn new(data: WorkerData, weight: f64, seed: u64) -> Self {
        let d = data.a.cols;
        let m = data.b.len();
        let mut a = data.a;
        // Binary features need no values: the gradient then reads a third of the bytes.
        a.drop_unit_values();
        Worker {
            id: data.id,
            rng: rng::private(seed, data.id, Purpose::Compressor),
            batch_rng: rng::private(seed, data.id, Purpose::Minibatch),
            batch: None,
            a,
            b: data.b,
            weight,
            grad: vec![0.0; d],
            loss: 0.0,
            pair: Vec::new(),
            full_at: None,
            margins: vec![0.0; m],
            slowdown: 1.0,
        }
    }

    pub fn rows(&self) -> usize {
        self.b.len()
    }

    /// The positions of this worker's private streams (compressor coins, minibatches).
    pub fn save_streams(&self, w: &mut StateWriter) {
        w.stream("compressor coins", &self.rng);
        w.stream("minibatch rows", &self.batch_rng);
    }

    pub fn load_streams(&mut self, r: &mut StateReader) -> Result<()> {
        r.stream("compressor coins", &mut self.rng)?;
        r.stream("minibatch rows", &mut self.batch_rng)
    }

    /// Uses minibatches of `b` rows from now on (`b` < m_i; b ≥ m_i is the full batch).
    pub fn set_batch(&mut self, b: usize) {
        self.batch = (b < self.rows()).then(|| SubsetSampler::new(self.rows(), b));
    }

    /// Emulates a slower machine (`--straggler`): every round gradient from now on takes
    /// `factor` times its duration.
    pub fn set_slowdown(&mut self, factor: f64) {
        self.slowdown = factor;
    }

    /// The seconds since `start`, stretched by the slowdown (sleeping the difference).
    fn finish(&self, start: Instant) -> f64 {
        let spent = start.elapsed();
        if self.slowdown > 1.0 {
            std::thread::sleep(spent.mul_f64(self.slowdown - 1.0));
        }
        start.elapsed().as_secs_f64()
    }

    /// Computes f_i(x) and ∇f_i(x) into `loss` and `grad` (no allocation).
    pub fn evaluate(&mut self, obj: &Objective, x: &[f64]) {
        self.loss = value_and_gradient(obj, &self.a, &self.b, x, &mut self.grad, &mut self.margins);
        self.full_at = None;
    }

    /// `evaluate` at the model of round t, recorded so that the round can reuse the
    /// gradient (the monitor's evaluation rounds).
    pub fn evaluate_round(&mut self, obj: &Objective, x: &[f64], t: u64) {
        let start = Instant::now();
        self.evaluate(obj, x);
        self.full_at = Some((t, self.finish(start)));
    }

    /// The method's gradient at the model x of round t into `grad`: the full ∇f_i(x)
    /// (reused from `evaluate_round` when the monitor computed it this round) or, with
    /// `--batch B`, the mean gradient over B rows drawn without replacement from the
    /// private minibatch stream. Returns the seconds it took and whether they were spent
    /// before, by `evaluate_round` (reused).
    pub fn round_gradient(&mut self, obj: &Objective, x: &[f64], t: u64) -> (f64, bool) {
        let Some(batch) = self.batch.as_mut() else {
            return self.full_gradient(obj, x, t);
        };
        let start = Instant::now();
        let rows = batch.draw(&mut self.batch_rng);
        gradient(obj, &self.a, &self.b, x, Some(rows), &mut self.grad, &mut self.margins);
        self.full_at = None;
        (self.finish(start), false)
    }

    /// The full ∇f_i(x) of round t into `grad`, whatever `--batch` says (reused from
    /// `evaluate_round` when the monitor computed it this round); (seconds, reused).
    pub fn full_gradient(&mut self, obj: &Objective, x: &[f64], t: u64) -> (f64, bool) {
        if let Some((_, seconds)) = self.full_at.filter(|(round, _)| *round == t) {
            return (seconds, true);
        }
        let start = Instant::now();
        gradient(obj, &self.a, &self.b, x, None, &mut self.grad, &mut self.margins);
        self.full_at = None;
        (self.finish(start), false)
    }

    /// The full ∇f_i(point) into `grad`, at a point that is not the round's model; its
    /// seconds.
    pub fn gradient_at(&mut self, obj: &Objective, point: &[f64]) -> f64 {
        let start = Instant::now();
        gradient(obj, &self.a, &self.b, point, None, &mut self.grad, &mut self.margins);
        self.full_at = None;
        self.finish(start)
    }

    /// ∇f_I(x) into `grad` and ∇f_I(previous) into `pair` on one minibatch I drawn from
    /// the private minibatch stream (full gradients without `--batch`); its seconds.
    pub fn pair_gradients(&mut self, obj: &Objective, x: &[f64], previous: &[f64]) -> f64 {
        let start = Instant::now();
        self.pair.resize(self.grad.len(), 0.0);
        let rows = self.batch.as_mut().map(|s| s.draw(&mut self.batch_rng));
        gradient(obj, &self.a, &self.b, x, rows, &mut self.grad, &mut self.margins);
        gradient(obj, &self.a, &self.b, previous, rows, &mut self.pair, &mut self.margins);
        self.full_at = None;
        self.finish(start)
    }

    /// acc += w_i (1/m_i) A_iᵀ diag(φ''(A_i x)) A_i v: the data part of this worker's
    /// weighted Hessian-vector product; `margins` holds A_i x, `scratch` has m_i entries.
    pub fn add_weighted_hessian_product(
        &self,
        obj: &Objective,
        margins: &[f64],
        v: &[f64],
        scratch: &mut [f64],
        acc: &mut [f64],
    ) {
        let scale = self.weight / self.rows() as f64;
        self.a.margins(v, scratch);
        for ((s, &t), &label) in scratch.iter_mut().zip(margins).zip(&self.b) {
            *s *= scale * obj.loss_curvature(t, label);
        }
        self.a.add_transposed(scratch, acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one() {
        for rule in [Weighting::Samples, Weighting::Workers] {
            let w = weights(&[3, 3, 4], rule);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        }
        assert_eq!(weights(&[1, 3], Weighting::Samples), vec![0.25, 0.75]);
        assert_eq!(weights(&[1, 3], Weighting::Workers), vec![0.5, 0.5]);
    }
}
