//! The asynchronous execution (docs/architecture.md, "Asynchronous execution"): rank 0
//! is a parameter server that holds no data and applies each worker's update as it
//! arrives; ranks 1..P−1 host the logical workers. One `round` of the training loop is
//! one epoch, so the loop's evaluation, stop agreement, faults and metrics rows come once
//! per epoch.
//!
//! An epoch, every rank:
//! 1. the snapshot gradient Σ w_i ∇f_i(x̃) (an allreduce; the server adds nothing);
//! 2. point-to-point: the server sends each worker rank `MODEL(version, worker j, Q(x))`;
//!    the rank computes worker j's update from it and answers `UPDATE(version, j, msg)`;
//!    the server probes any source, applies the update when it was computed at most τ
//!    versions ago (else drops it: §B.2's bounded delay, enforced by dropping and
//!    refreshing the worker with the current model), and answers with the next request,
//!    until the epoch's updates are applied; then it collects the updates still in
//!    flight (discarded: "late") and sends every worker rank `END`;
//! 3. a broadcast of the server's model (and the next snapshot, when it is not the
//!    model), then one allreduce that agrees on failure and sums the counters.
//!
//! With `order=serial` the server asks one worker at a time, in global worker order:
//! staleness is then 0 and the run is the synchronous serial schedule, bit for bit.
//! A worker's error travels to the server as `ERROR(text)`, which ends the epoch; the
//! agreement at its end gives every rank the message. A rank that dies is the launcher's
//! to report: OpenMPI and MPICH then end every rank (docs/reliability.md).

use super::RoundStats;
use crate::comm::Comm;
use crate::error::{Error, Result};
use crate::method::{Method, StepSize};
use crate::objective::Objective;
use crate::worker::Worker;
use std::time::Instant;

/// The server's rank.
const SERVER: usize = 0;

/// Message tags.
const MODEL: i32 = 1;
const UPDATE: i32 = 2;
const END: i32 = 3;
const ERROR: i32 = 4;

/// version (u64) and worker (u32), little-endian, before a message's payload.
const HEADER: usize = 12;

/// The method's side of the asynchronous execution: the mathematics without the
/// messages (the method never touches MPI).
pub trait Algorithm {
    /// Updates the server applies per epoch.
    fn updates_per_epoch(&self) -> u64;

    /// Every rank, at the start of epoch `epoch` with the replicated model x.
    fn begin_epoch(&mut self, epoch: u64, x: &[f64]);

    /// Whether the snapshot x̃ is the model x (else `snapshot()`, set by `end_epoch` on
    /// the server and broadcast).
    fn snapshot_is_model(&self, epoch: u64) -> bool;

    fn snapshot_mut(&mut self) -> &mut [f64];

    /// Every rank: ∇f(x̃) of the epoch.
    fn set_snapshot_gradient(&mut self, full: &[f64]);

    /// Server: the model message for x (appended to `out`); its paper bits.
    fn encode_model(&mut self, epoch: u64, x: &[f64], out: &mut Vec<u8>) -> u64;

    /// Server: applies update number `k` (1-based in the epoch) of worker `worker` (weight
    /// `weight`) from its message to x.
    fn apply(&mut self, epoch: u64, k: u64, weight: f64, msg: &[u8], x: &mut [f64]) -> Result<()>;

    /// Worker side: the update of `data` from a model message, appended to `out`;
    /// (paper bits, seconds of gradient computation).
    fn update(&mut self, model: &[u8], data: &mut Worker, obj: &Objective, out: &mut Vec<u8>) -> Result<(u64, f64)>;

    fn step_size(&self) -> &StepSize;
}

/// How the server serves (`staleness=N`, `order=serial`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// τ: an update computed on a model more than τ versions old is dropped.
    pub staleness: u64,
    /// One request at a time, in global worker order.
    pub serial: bool,
}

/// What happened to every update that reached the server, in arrival order (the
/// `/async/` datasets of the result file).
#[derive(Default)]
struct Arrivals {
    epoch: Vec<u64>,
    worker: Vec<u64>,
    /// The model version the update was computed on, and the server's at arrival.
    computed: Vec<u64>,
    arrived: Vec<u64>,
    /// 1 applied, 0 dropped (too stale), 2 late (arrived after the epoch's last update).
    outcome: Vec<u64>,
}

const DROPPED: u64 = 0;
const APPLIED: u64 = 1;
const LATE: u64 = 2;

pub struct Asynchronous<A> {
    algorithm: A,
    options: Options,
    /// Logical workers per worker rank.
    per_rank: usize,
    first_worker: usize,
    weights: Vec<f64>,
    /// The server's model version: updates applied since the start.
    version: u64,
    /// Per rank, the next of its local workers to ask for (arrival order).
    next_local: Vec<usize>,
    arrivals: Arrivals,
    /// The last epoch's counts, for the diagnostics.
    last: EpochCounts,
    inbox: Vec<u8>,
    outbox: Vec<u8>,
    snapshot_sum: Vec<f64>,
    /// Per rank: a request of this epoch awaits its answer (reused, no per-epoch allocation).
    outstanding: Vec<bool>,
}

#[derive(Clone, Copy, Default)]
struct EpochCounts {
    applied: u64,
    dropped: u64,
    late: u64,
    staleness_sum: u64,
    staleness_max: u64,
}

impl<A: Algorithm> Asynchronous<A> {
    /// `ranks` MPI ranks: the server and ranks − 1 worker ranks of equal worker counts.
    pub fn new(algorithm: A, options: Options, ranks: usize, first_worker: usize, weights: &[f64], dim: usize) -> Self {
        Asynchronous {
            algorithm,
            options,
            per_rank: weights.len() / (ranks - 1),
            first_worker,
            weights: weights.to_vec(),
            version: 0,
            next_local: vec![0; ranks],
            arrivals: Arrivals::default(),
            last: EpochCounts::default(),
            inbox: Vec::new(),
            outbox: Vec::new(),
            snapshot_sum: vec![0.0; dim],
            outstanding: vec![false; ranks],
        }
    }

    fn rank_of(&self, worker: usize) -> usize {
        1 + worker / self.per_rank
    }

    /// The worker the server asks `rank` for next (arrival order: its local workers in turn).
    fn next_worker_of(&mut self, rank: usize) -> usize {
        let local = self.next_local[rank];
        self.next_local[rank] = (local + 1) % self.per_rank;
        (rank - 1) * self.per_rank + local
    }

    /// Server: sends `rank` a request for `worker`'s update at the current model.
    fn request(&mut self, comm: &mut Comm, epoch: u64, rank: usize, worker: usize, x: &[f64], bits: &mut u64) {
        self.outbox.clear();
        write_header(&mut self.outbox, self.version, worker);
        *bits += self.algorithm.encode_model(epoch, x, &mut self.outbox);
        comm.send_message(rank, MODEL, &self.outbox);
    }

    /// The server's epoch: requests, arrivals, the staleness rule, the drain.
    fn serve(&mut self, comm: &mut Comm, epoch: u64, x: &mut [f64], stats: &mut RoundStats) -> Result<()> {
        let target = self.algorithm.updates_per_epoch();
        let mut counts = EpochCounts::default();
        let mut failure = None;
        let mut outstanding = std::mem::take(&mut self.outstanding);
        outstanding.fill(false);
        let mut bits_down = 0;
        if self.options.serial {
            let worker = 0;
            let rank = self.rank_of(worker);
            self.request(comm, epoch, rank, worker, x, &mut bits_down);
            outstanding[rank] = true;
        } else {
            for (rank, pending) in outstanding.iter_mut().enumerate().skip(1) {
                let worker = self.next_worker_of(rank);
                self.request(comm, epoch, rank, worker, x, &mut bits_down);
                *pending = true;
            }
        }
        while counts.applied < target && failure.is_none() {
            let mut inbox = std::mem::take(&mut self.inbox);
            let (rank, tag) = comm.receive_any(&mut inbox);
            outstanding[rank] = false;
            let start = Instant::now();
            match (tag, read_header(&inbox)) {
                (UPDATE, Some((computed, worker))) if worker < self.weights.len() && self.rank_of(worker) == rank => {
                    let arrived = self.version;
                    let staleness = arrived - computed.min(arrived);
                    let outcome = if staleness <= self.options.staleness {
                        counts.applied += 1;
                        counts.staleness_sum += staleness;
                        counts.staleness_max = counts.staleness_max.max(staleness);
                        let weight = self.weights[worker];
                        match self.algorithm.apply(epoch, counts.applied, weight, &inbox[HEADER..], x) {
                            Ok(()) => self.version += 1,
                            Err(e) => failure = Some(e),
                        }
                        APPLIED
                    } else {
                        counts.dropped += 1;
                        DROPPED
                    };
                    self.arrivals.record(epoch, worker, computed, arrived, outcome);
                }
                (ERROR, _) => failure = Some(worker_error(rank, &inbox)),
                _ => {
                    failure = Some(Error::Comm {
                        what: format!("rank {rank} sent a malformed message (tag {tag}, {} bytes)", inbox.len()),
                    })
                }
            }
            stats.t_decode += start.elapsed().as_secs_f64();
            self.inbox = inbox;
            if counts.applied < target && failure.is_none() {
                let worker = if self.options.serial {
                    (counts.applied as usize) % self.weights.len()
                } else {
                    self.next_worker_of(rank)
                };
                let rank = self.rank_of(worker);
                self.request(comm, epoch, rank, worker, x, &mut bits_down);
                outstanding[rank] = true;
            }
        }
        // The updates still in flight: received (so that no message is left behind) and
        // discarded; then every worker rank leaves the epoch.
        for (rank, &pending) in outstanding.iter().enumerate().skip(1) {
            if pending {
                let mut inbox = std::mem::take(&mut self.inbox);
                let tag = comm.receive_from(rank, &mut inbox);
                match (tag, read_header(&inbox)) {
                    (UPDATE, Some((computed, worker))) => {
                        counts.late += 1;
                        self.arrivals.record(epoch, worker, computed, self.version, LATE);
                    }
                    (ERROR, _) => {
                        failure.get_or_insert(worker_error(rank, &inbox));
                    }
                    _ => {}
                }
                self.inbox = inbox;
            }
            comm.send_message(rank, END, &[]);
        }
        self.outstanding = outstanding;
        stats.paper_bits_down += bits_down;
        self.last = counts;
        failure.map_or(Ok(()), Err)
    }

    /// A worker rank's epoch: answer every request until `END`.
    fn work(&mut self, comm: &mut Comm, data: &mut [Worker], obj: &Objective, stats: &mut RoundStats) -> Result<()> {
        let mut failure = None;
        loop {
            let mut inbox = std::mem::take(&mut self.inbox);
            let tag = comm.receive_from(SERVER, &mut inbox);
            if tag == END {
                self.inbox = inbox;
                break;
            }
            let answer = match (tag, read_header(&inbox)) {
                (MODEL, Some((version, worker))) if failure.is_none() => {
                    let start = Instant::now();
                    self.outbox.clear();
                    write_header(&mut self.outbox, version, worker);
                    let local = worker.checked_sub(self.first_worker).filter(|&j| j < data.len());
                    let result = match local {
                        Some(j) => self.algorithm.update(&inbox[HEADER..], &mut data[j], obj, &mut self.outbox),
                        None => {
                            Err(Error::Comm { what: format!("the server asked for worker {worker}, not hosted here") })
                        }
                    };
                    match result {
                        Ok((bits, seconds)) => {
                            stats.paper_bits_up += bits;
                            stats.t_compute += seconds;
                            stats.t_compress += start.elapsed().as_secs_f64() - seconds;
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                (MODEL, Some(_)) => Ok(()),
                _ => Err(Error::Comm { what: format!("the server sent a malformed message (tag {tag})") }),
            };
            self.inbox = inbox;
            match answer {
                Ok(()) if failure.is_none() => comm.send_message(SERVER, UPDATE, &self.outbox),
                Ok(()) => {}
                Err(e) => {
                    comm.send_message(SERVER, ERROR, e.to_string().as_bytes());
                    failure = Some(e);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

impl Arrivals {
    fn record(&mut self, epoch: u64, worker: usize, computed: u64, arrived: u64, outcome: u64) {
        self.epoch.push(epoch);
        self.worker.push(worker as u64);
        self.computed.push(computed);
        self.arrived.push(arrived);
        self.outcome.push(outcome);
    }
}

fn write_header(out: &mut Vec<u8>, version: u64, worker: usize) {
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(worker as u32).to_le_bytes());
}

fn read_header(msg: &[u8]) -> Option<(u64, usize)> {
    let version = u64::from_le_bytes(msg.get(..8)?.try_into().ok()?);
    let worker = u32::from_le_bytes(msg.get(8..HEADER)?.try_into().ok()?);
    Some((version, worker as usize))
}

fn worker_error(rank: usize, text: &[u8]) -> Error {
    Error::Comm { what: format!("worker rank {rank} failed: {}", String::from_utf8_lossy(text)) }
}

impl<A: Algorithm> Method for Asynchronous<A> {
    /// Round t is epoch t.
    fn round(
        &mut self,
        t: u64,
        x: &mut [f64],
        data: &mut [Worker],
        obj: &Objective,
        comm: &mut Comm,
        stop_vote: bool,
    ) -> Result<RoundStats> {
        let mut stats = RoundStats::default();
        let d = x.len() as u64;
        let snapshot_is_model = self.algorithm.snapshot_is_model(t);
        self.algorithm.begin_epoch(t, x);
        // The snapshot gradient, in full precision: 32d bits up per worker, x̃ and ∇f(x̃)
        // down (64d per worker), as in the synchronous execution (§B.2).
        let sum = &mut self.snapshot_sum;
        sum.fill(0.0);
        for w in data.iter_mut() {
            let (seconds, reused) = if snapshot_is_model {
                w.full_gradient(obj, x, t)
            } else {
                (w.gradient_at(obj, self.algorithm.snapshot_mut()), false)
            };
            stats.t_compute += seconds;
            if reused {
                stats.t_compute_before += seconds;
            }
            crate::vector::add_scaled(sum, w.weight, &w.grad);
            stats.paper_bits_up += 32 * d;
        }
        comm.sum(sum);
        self.algorithm.set_snapshot_gradient(sum);
        if comm.is_root() {
            stats.paper_bits_down += 64 * d * self.weights.len() as u64;
        }

        let outcome =
            if comm.is_root() { self.serve(comm, t, x, &mut stats) } else { self.work(comm, data, obj, &mut stats) };

        // Every rank continues from the server's model (and snapshot).
        comm.broadcast_bytes(SERVER, bytemuck::cast_slice_mut(x));
        if !self.algorithm.snapshot_is_model(t + 1) {
            comm.broadcast_bytes(SERVER, bytemuck::cast_slice_mut(self.algorithm.snapshot_mut()));
        }
        let point = comm.point_meter();
        let mut counts = [stats.paper_bits_up, stats.paper_bits_down, u64::from(stop_vote), point.calls, point.bytes];
        comm.agree_sums(outcome, &mut counts)?;
        let stops;
        [stats.paper_bits_up, stats.paper_bits_down, stops, ..] = counts;
        comm.meter_point_totals(counts[3], counts[4]);
        stats.stop = stops > 0;
        Ok(stats)
    }

    fn step_size(&self) -> &StepSize {
        self.algorithm.step_size()
    }

    /// The server's view of the last epoch (rank 0's, broadcast so that every rank
    /// returns the same).
    fn diagnostics(&mut self, _data: &[Worker], comm: &mut Comm) -> Vec<(&'static str, f64)> {
        let c = self.last;
        let mean = if c.applied > 0 { c.staleness_sum as f64 / c.applied as f64 } else { 0.0 };
        let mut values = [c.applied as f64, c.dropped as f64, c.late as f64, mean, c.staleness_max as f64];
        if !comm.is_root() {
            values.fill(0.0);
        }
        comm.monitor_sum(&mut values);
        let names = ["async_applied", "async_dropped", "async_late", "async_staleness_mean", "async_staleness_max"];
        names.into_iter().zip(values).collect()
    }

    /// Async runs are not resumable: their arrival order is not reproducible, and
    /// `--checkpoint-dir` is refused at set-up, so nothing ever asks for this state.
    fn save(&self, _data: &[Worker]) -> (Vec<u8>, Vec<Vec<u8>>) {
        (Vec::new(), Vec::new())
    }

    fn load(&mut self, _data: &mut [Worker], _common: &[u8], _workers: &[&[u8]]) -> Result<()> {
        Err(Error::Checkpoint { what: "asynchronous runs cannot be resumed".into() })
    }

    /// The arrival log, the staleness histogram of the applied updates and the updates
    /// applied per worker (meaningful on rank 0).
    fn records(&self) -> Vec<(&'static str, Vec<u64>)> {
        let a = &self.arrivals;
        let applied = (0..a.outcome.len()).filter(|&i| a.outcome[i] == APPLIED);
        let largest = applied.clone().map(|i| a.arrived[i] - a.computed[i]).max().unwrap_or(0);
        let mut histogram = vec![0u64; largest.max(self.options.staleness) as usize + 1];
        let mut per_worker = vec![0u64; self.weights.len()];
        for i in applied {
            histogram[(a.arrived[i] - a.computed[i]) as usize] += 1;
            per_worker[a.worker[i] as usize] += 1;
        }
        vec![
            ("epoch", a.epoch.clone()),
            ("worker", a.worker.clone()),
            ("computed_version", a.computed.clone()),
            ("arrival_version", a.arrived.clone()),
            ("outcome", a.outcome.clone()),
            ("staleness_histogram", histogram),
            ("applied_per_worker", per_worker),
        ]
    }
}
