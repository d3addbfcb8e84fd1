//! A loaded problem: this rank's workers with their data, weights and private streams,
//! and the objective. Shared by `train` and `solve`.

use crate::cli::{DataArgs, ObjectiveArgs};
use crate::comm::Comm;
use crate::config;
use crate::data::shard::{self, Layout};
use crate::data::{Dataset, LabelMap, Source};
use crate::error::{Error, Result};
use crate::objective::Objective;
use crate::worker::{self, Worker};

pub struct Problem {
    pub source: Source,
    pub workers: Vec<Worker>,
    /// Weights w_i of all W workers, by global id.
    pub weights: Vec<f64>,
    /// The global id of this rank's first worker (0 on a data-free server rank).
    pub first_worker: usize,
    pub rows_per_worker: Vec<u64>,
    pub dim: usize,
    pub labels: LabelMap,
    pub objective: Objective,
}

impl Problem {
    /// `data_free`: ranks 0..data_free hold no rows (1 for the asynchronous execution's
    /// parameter server).
    pub fn load(comm: &mut Comm, data: &DataArgs, obj: &ObjectiveArgs, seed: u64, data_free: usize) -> Result<Problem> {
        let checked = config::workers(data, comm.size(), data_free).and_then(|w| config::lambda(obj.lambda).map(|_| w));
        let workers = comm.agree(checked)?;
        let source = Source::new(&data.data);
        let layout = Layout { workers, split: data.split, features: data.features, data_free };
        let first_worker = layout.workers_of(comm.rank(), comm.size()).0;
        let Dataset { workers: mut shards, rows_per_worker, mut dim, labels } =
            shard::load_training(comm, &source, layout)?;
        if data.bias {
            shards.iter_mut().for_each(|s| s.a = s.a.with_bias_column());
            dim += 1;
        }
        let weights = worker::weights(&rows_per_worker, data.weighting);
        let workers = shards
            .into_iter()
            .map(|s| {
                let weight = weights[s.id];
                Worker::new(s, weight, seed)
            })
            .collect();
        Ok(Problem {
            source,
            workers,
            weights,
            first_worker,
            rows_per_worker,
            dim,
            labels,
            objective: Objective::new(obj.objective, obj.lambda),
        })
    }

    pub fn total_workers(&self) -> usize {
        self.weights.len()
    }

    pub fn total_rows(&self) -> u64 {
        self.rows_per_worker.iter().sum()
    }

    /// `--batch b`: every worker's round gradient becomes a mean over b of its rows. Every
    /// rank checks b against the smallest worker of all (so they fail alike).
    pub fn use_minibatches(&mut self, b: usize) -> Result<()> {
        let smallest = self.rows_per_worker.iter().copied().min().unwrap_or(0);
        if b == 0 || b as u64 > smallest {
            return Err(Error::config(
                format!("--batch {b} with workers of {smallest} rows or more"),
                format!("choose 1 ≤ B ≤ {smallest} (the smallest worker's rows), or fewer --workers"),
            ));
        }
        self.workers.iter_mut().for_each(|w| w.set_batch(b));
        Ok(())
    }

    /// Evaluates every local worker at x and writes [f(x), ∇f(x)] into `out` (length
    /// d + 1) after an unmetered allreduce: the monitor's view of the full objective.
    pub fn full_value_and_gradient(&mut self, comm: &mut Comm, x: &[f64], out: &mut [f64]) {
        for w in self.workers.iter_mut() {
            w.evaluate(&self.objective, x);
        }
        weighted_sum(&self.workers, out);
        comm.monitor_sum(out);
    }
}

/// out = [Σ w_i f_i, Σ w_i ∇f_i] over this rank's workers (before the allreduce).
pub fn weighted_sum(workers: &[Worker], out: &mut [f64]) {
    out.fill(0.0);
    for w in workers {
        out[0] += w.weight * w.loss;
        crate::vector::add_scaled(&mut out[1..], w.weight, &w.grad);
    }
}
