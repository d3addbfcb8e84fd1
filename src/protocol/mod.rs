//! The round protocol (docs/architecture.md): a method is a **plan** (one per rank,
//! identical on every rank), a **worker role** (one per logical worker) and a **server
//! role** (one: on every rank with `--topology replicated`, on rank 0 with `server`).
//! [`Protocol`] runs their rounds over MPI; the roles never touch MPI.
//!
//! A round is a sequence of phases. In each, the workers' uplinks travel by the
//! phase's [`Phase`] kind, the server turns them into a [`Down`] (the model update and
//! anything else the workers need), and every rank applies it.

pub mod asynchronous;
pub mod downlink;
mod engine;
mod transport;

pub use engine::{Layout, Protocol, RoundStats};

use crate::checkpoint::{StateReader, StateWriter};
use crate::comm::Messages;
use crate::error::Result;
use crate::method::StepSize;
use crate::worker::Worker;

/// Where the server runs (`--topology`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Topology {
    /// Every rank runs a replica of the server; messages are allgathered or allreduced.
    Replicated,
    /// Rank 0 runs the one server: it gathers (or reduces) the uplink, and broadcasts
    /// the downlink, compressed with `--down-compressor`.
    Server,
}

/// How one phase's uplink travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Every worker sends a byte message (empty = skip); the server receives them all,
    /// in global worker order.
    Gather,
    /// Every worker adds w_i × its `len` values into one sum (nothing = skip); the server
    /// receives the sum.
    Sum { len: usize },
    /// Global worker `from` sends exactly `len` bytes to every rank (`Plan::on_broadcast`);
    /// no server step follows.
    Broadcast { from: usize, len: usize },
    /// No uplink: the server speaks first (a request, a model).
    Serve,
}

/// The gradient oracle's work for a round (docs/architecture.md, "Gradients and the
/// monitor").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oracle {
    /// ∇f_i(x^t) into `Worker::grad`: full, or the mean over a minibatch with `--batch`.
    Round,
    /// The full ∇f_i(x^t) whatever `--batch` says (VR-MARINA's exact rounds).
    Full,
    /// ∇f_I(x^t) into `grad` and ∇f_I(x^{t−1}) into `Worker::pair`, on one minibatch I
    /// (VR-MARINA's compressed rounds; full gradients without `--batch`).
    Pair,
    /// The full ∇f_i at the plan's first point (`Plan::oracle_points`): a snapshot that is
    /// not x^t (accelerated AsyLPG).
    FullAt,
    /// ∇f_I at the plan's two points into `grad` and `pair`, on one minibatch I (AsyLPG:
    /// the quantized model and the snapshot).
    PairAt,
}

/// What a worker did in an uplink phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// A message of this many paper-convention bits (§0.4).
    Bits(u64),
    /// Nothing (an empty message, no contribution to the sum).
    Skip,
}

/// A worker's side of one uplink phase.
pub enum Uplink<'a> {
    /// Gather and Broadcast: the message, cleared before the call.
    Bytes(&'a mut Vec<u8>),
    /// Sum: add `weight` × the contribution into `acc` (this rank's partial sum).
    Sum { weight: f64, acc: &'a mut [f64] },
}

/// What the server received in a phase.
pub enum Received<'a> {
    Messages(Messages<'a>),
    /// The sum over all workers. A server may swap it with a buffer of its own (and
    /// return a Down that borrows it) instead of copying it.
    Sum(&'a mut Vec<f64>),
    /// A `Serve` phase.
    Nothing,
}

/// The model update a downlink carries: x ← x − step·update.
#[derive(Clone, Copy, Debug)]
pub enum Update<'a> {
    None,
    /// A d-vector.
    Dense(&'a [f64]),
    /// Values at strictly increasing coordinates.
    Sparse {
        indices: &'a [u32],
        values: &'a [f64],
    },
}

/// The server's answer to one phase, as every worker receives it.
#[derive(Clone, Copy, Debug)]
pub struct Down<'a> {
    pub step: f64,
    pub update: Update<'a>,
    /// Anything else the workers need, in the method's own format (candidate sets).
    pub extra: &'a [u8],
    /// Paper bits of `extra` per worker.
    pub extra_bits: u64,
    /// Counted in `bits_down` on the replicated topology too, because the method's paper
    /// counts this downlink (§0.4: Sketched-SGD's update broadcast).
    pub counted: bool,
    /// The update reaches the other ranks only so that every rank holds the server's x
    /// (for the monitor); the method's workers never read it, so its bits are not the
    /// method's downlink (AsyLPG's workers see the quantized model in `extra`).
    pub mirrored: bool,
}

impl<'a> Down<'a> {
    /// Nothing to apply (an upload-only phase, or a server that only stores).
    pub fn nothing() -> Down<'static> {
        Down { step: 0.0, update: Update::None, extra: &[], extra_bits: 0, counted: false, mirrored: false }
    }

    /// x ← x − step·v.
    pub fn dense(step: f64, v: &'a [f64]) -> Down<'a> {
        Down { step, update: Update::Dense(v), ..Down::nothing() }
    }

    /// x[I] ← x[I] − step·v.
    pub fn sparse(step: f64, indices: &'a [u32], values: &'a [f64]) -> Down<'a> {
        Down { step, update: Update::Sparse { indices, values }, ..Down::nothing() }
    }

    /// The same downlink with method-specific bytes attached.
    pub fn with_extra(self, extra: &'a [u8], extra_bits: u64) -> Down<'a> {
        Down { extra, extra_bits, ..self }
    }

    /// Marked as counted in `bits_down` on the replicated topology.
    pub fn counted(self) -> Down<'a> {
        Down { counted: true, ..self }
    }

    /// The update marked as a mirror of the server's model, not counted in `bits_down`.
    pub fn mirrored(self) -> Down<'a> {
        Down { mirrored: true, ..self }
    }
}

/// The rank-level part of a method, identical on every rank: the round's schedule, its
/// shared random draws, the uplink codec, replicated counters.
pub trait Plan {
    /// Round t starts on every rank, whoever skips: draw the round's shared randomness
    /// and return the number of phases.
    fn begin_round(&mut self, t: u64) -> usize;

    /// The kind of phase `i`, asked right before the phase (after the downlinks of the
    /// phases before it were applied).
    fn phase(&self, i: usize) -> Phase;

    /// The bytes of `Broadcast` phase `i` arrived (every rank).
    fn on_broadcast(&mut self, _i: usize, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }

    /// Phase `i`'s downlink arrived and its update was applied to x (every rank). A
    /// method whose update travels in its own format (`extra`) applies it here.
    fn on_downlink(&mut self, _i: usize, _down: &Down, _x: &mut [f64]) -> Result<()> {
        Ok(())
    }

    fn step_size(&self) -> &StepSize;

    /// The gradients the round needs of every local worker before its phases (asked
    /// after `begin_round`). Default: the method's gradient at x^t.
    fn oracle(&self) -> Oracle {
        Oracle::Round
    }

    /// Whether the plan ever asks for `Oracle::Pair`: the engine then keeps x^{t−1}
    /// (asked once, at construction).
    fn two_point(&self) -> bool {
        false
    }

    /// Whether global worker `worker` computes its gradients and sends this round
    /// (default: every worker). A worker left out gets no oracle call, so its minibatch
    /// stream does not move, and its uplink is not asked for (AsyLPG's serial schedule,
    /// `order=serial`: one worker per inner round).
    fn takes_part(&self, _worker: usize) -> bool {
        true
    }

    /// The points of `Oracle::FullAt` (the first) and `Oracle::PairAt`.
    fn oracle_points(&self) -> (&[f64], &[f64]) {
        unreachable!("a plan that asks for FullAt or PairAt gives its points")
    }

    /// Diagnostics of the last round from `monitored` = Σ_i w_i × each worker role's
    /// `monitored()` vector (an unmetered allreduce); empty when roles monitor nothing.
    fn diagnostics(&mut self, _monitored: &[f64]) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// What a checkpoint needs to continue: the state that lives from round to round
    /// (stream positions, replicated counters), not what every round recomputes.
    fn save(&self, w: &mut StateWriter);

    /// Restores what `save` wrote.
    fn load(&mut self, r: &mut StateReader) -> Result<()>;
}

/// One logical worker's part of a method: its state, its uplink, what it does with the
/// downlink.
pub trait WorkerRole<P: Plan> {
    /// Every round, before the phases (after the gradient): local preparation.
    fn begin_round(&mut self, _plan: &mut P, _data: &mut Worker) {}

    /// This worker's uplink in phase `i` (a Gather, Sum or, for the sender, Broadcast).
    fn uplink(&mut self, plan: &mut P, i: usize, data: &mut Worker, up: Uplink) -> Result<Sent>;

    /// Phase `i`'s downlink, after the model update. `own` is this worker's message of
    /// the phase (empty for Sum phases and skips).
    fn downlink(&mut self, _plan: &P, _i: usize, _down: &Down, _own: &[u8]) -> Result<()> {
        Ok(())
    }

    /// A vector the plan's diagnostics read as a weighted sum over all workers.
    fn monitored(&self) -> Option<&[f64]> {
        None
    }

    /// This worker's state for a checkpoint (error memories, estimators, shifts,
    /// momenta): restored on whichever rank hosts the worker after a resume.
    fn save(&self, w: &mut StateWriter);

    fn load(&mut self, r: &mut StateReader) -> Result<()>;
}

/// The server's part of a method.
pub trait ServerRole<P: Plan> {
    /// The uplinks of phase `i` (in global worker order, or summed) → the downlink.
    /// `x` is the model before the phase's update.
    fn serve(&mut self, plan: &mut P, i: usize, received: Received, x: &[f64]) -> Result<Down<'_>>;

    /// The server's state for a checkpoint (aggregates, shifts, its streams).
    fn save(&self, w: &mut StateWriter);

    fn load(&mut self, r: &mut StateReader) -> Result<()>;
}
