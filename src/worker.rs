//! A logical worker: its rows, its weight in f = Σ w_i f_i, its private random stream
//! and its latest local gradient. Several workers can live on one MPI rank
//! (`--workers W`), which gives the same iterates as W ranks would, because every
//! worker's randomness is keyed by its global id (ALGORITHMS.md §0.3).

use crate::data::Csr;
use crate::data::WorkerData;
use crate::objective::{value_and_gradient, Objective};
use crate::rng::{self, Purpose, Stream};

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
    /// ∇f_i at the point of the last `evaluate`.
    pub grad: Vec<f64>,
    /// f_i at the point of the last `evaluate`.
    pub loss: f64,
    margins: Vec<f64>,
}

impl Worker {
    pub fn new(data: WorkerData, weight: f64, seed: u64) -> Self {
        let d = data.a.cols;
        let m = data.b.len();
        Worker {
            id: data.id,
            rng: rng::private(seed, data.id, Purpose::Compressor),
            a: data.a,
            b: data.b,
            weight,
            grad: vec![0.0; d],
            loss: 0.0,
            margins: vec![0.0; m],
        }
    }

    pub fn rows(&self) -> usize {
        self.b.len()
    }

    /// Computes f_i(x) and ∇f_i(x) into `loss` and `grad` (no allocation).
    pub fn evaluate(&mut self, obj: &Objective, x: &[f64]) {
        self.loss = value_and_gradient(obj, &self.a, &self.b, x, &mut self.grad, &mut self.margins);
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
