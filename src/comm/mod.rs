//! The communication layer: every collective qtrain uses, and the byte counts of each.
//!
//! Methods never call rsmpi directly. Two kinds of traffic are kept apart:
//! * **method traffic** (`all_gather_messages`, `gather_messages_to_root`, `sum`,
//!   `sum_to_root`, `broadcast_bytes`, `broadcast_message`): what the algorithm
//!   exchanges, on either topology (docs/architecture.md). Its bytes (summed over all
//!   ranks) and its wall time are metered and reported per round as `wire_bytes` and
//!   `t_comm`.
//! * **setup and monitoring traffic** (`agree`, `monitor_sum`, `all_gather_u64`, …):
//!   loading, error agreement and the metrics of rank 0. Not metered, since a real
//!   deployment would not send it every round.
//!
//! Buffers (counts, displacements, send and receive bytes) live here and are reused,
//! so a round allocates nothing once sizes have peaked (ALGORITHMS.md §0.3).

mod agree;
mod gather;
mod point;
mod reproducible;

pub use gather::Messages;

use gather::Dest;

use crate::error::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// Method traffic accumulated since the last [`Comm::take_meter`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Meter {
    /// Bytes all ranks put into method collectives (payloads plus length headers).
    pub wire_bytes: u64,
    /// Bytes this rank received from method collectives: the other ranks' messages of
    /// an allgather (and everyone's lengths), the messages of a gather at its root, the
    /// reduced vector of an allreduce or at the root of a reduce (whatever algorithm MPI
    /// uses underneath), the broadcast bytes on non-root ranks.
    pub received_bytes: u64,
    /// Seconds this rank spent inside method collectives.
    pub seconds: f64,
    /// What the collectives were, for the latency-bandwidth cost model.
    pub allgather: Op,
    pub allreduce: Op,
    pub bcast: Op,
    /// Gathers and reduces to one root (`--topology server`).
    pub gather: Op,
    pub reduce: Op,
    /// Point-to-point sends of the asynchronous execution (payload bytes).
    pub point: Op,
}

/// Calls of one kind of collective and their sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Op {
    pub calls: u64,
    /// allgather and gather: the mean bytes one rank contributes, summed over calls;
    /// allreduce, reduce and bcast: the vector's bytes, summed over calls.
    pub bytes: u64,
}

impl Op {
    fn add(&mut self, bytes: u64) {
        self.calls += 1;
        self.bytes += bytes;
    }
}

pub struct Comm {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    meter: Meter,
    gather: gather::Buffers,
    reproducible: reproducible::Buffers,
    reduce_scratch: Vec<f64>,
}

impl Comm {
    pub fn new(world: SimpleCommunicator) -> Self {
        let rank = world.rank() as usize;
        let size = world.size() as usize;
        Comm {
            world,
            rank,
            size,
            meter: Meter::default(),
            gather: gather::Buffers::default(),
            reproducible: reproducible::Buffers::default(),
            reduce_scratch: Vec::new(),
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Returns and resets the method-traffic meter.
    pub fn take_meter(&mut self) -> Meter {
        std::mem::take(&mut self.meter)
    }

    /// Allgather of variable-size messages (§0.3 step 2): every rank contributes the
    /// messages of its local workers (the same number on every rank) and receives all
    /// of them, in global worker order. Metered: Σ lengths + 8 bytes (a u64 length) per
    /// message.
    pub fn all_gather_messages(&mut self, local: &[Vec<u8>]) -> Result<Messages<'_>> {
        self.gather_to(Dest::All, local)?;
        Ok(self.gather.messages())
    }

    /// The same messages gathered to `root` only (`--topology server`): the lengths still
    /// go to every rank (so that every rank checks MPI's count limit), the bytes to the
    /// root. Returns the messages on the root, None elsewhere.
    pub fn gather_messages_to_root(&mut self, root: usize, local: &[Vec<u8>]) -> Result<Option<Messages<'_>>> {
        let received = self.gather_to(Dest::Root(root), local)?;
        Ok(received.then(|| self.gather.messages()))
    }

    fn gather_to(&mut self, dest: Dest, local: &[Vec<u8>]) -> Result<bool> {
        let start = mpi::time();
        let result = self.gather.run(&self.world, local, dest);
        self.meter.seconds += mpi::time() - start;
        let received = result?;
        let (count, total) = self.gather.totals();
        let own: usize = local.iter().map(Vec::len).sum();
        // The u64 lengths (an allgather), then the bytes.
        self.meter.wire_bytes += 8 * count as u64 + total as u64;
        self.meter.received_bytes += 8 * (count - local.len()) as u64;
        self.meter.allgather.add(8 * local.len() as u64);
        if received {
            self.meter.received_bytes += (total - own) as u64;
        }
        let per_rank = total as u64 / self.size as u64;
        match dest {
            Dest::All => self.meter.allgather.add(per_rank),
            Dest::Root(_) => self.meter.gather.add(per_rank),
        }
        Ok(received)
    }

    /// Allreduce sum of a dense vector into `buf` (metered: 8 bytes per entry per rank).
    ///
    /// rsmpi has no `MPI_IN_PLACE`, and copying `buf` into a send buffer cost a third of
    /// a 4 MB allreduce (BENCHMARKS.md, "Collectives"). Instead `buf` and the scratch
    /// vector trade places: the caller's values become the send buffer and the scratch's
    /// storage receives the sum, so `buf` may come back with another allocation (of the
    /// same length; the two alternate once both have grown).
    pub fn sum(&mut self, buf: &mut Vec<f64>) {
        let start = mpi::time();
        let send = trade_for_receive_buffer(&mut self.reduce_scratch, buf);
        self.world.all_reduce_into(&send[..], &mut buf[..], SystemOperation::sum());
        self.reduce_scratch = send;
        self.meter.seconds += mpi::time() - start;
        self.meter.wire_bytes += (8 * buf.len() * self.size) as u64;
        self.meter.allreduce.add(8 * buf.len() as u64);
        if self.size > 1 {
            self.meter.received_bytes += 8 * buf.len() as u64;
        }
    }

    /// Sum of a dense vector over all ranks into `buf` on `root` (MPI_Reduce; other
    /// ranks' `buf` is left as it was, since they only send it). Metered like `sum`,
    /// and on the root without a copy in the same way.
    pub fn sum_to_root(&mut self, root: usize, buf: &mut Vec<f64>) {
        let start = mpi::time();
        let root_process = self.world.process_at_rank(root as i32);
        if self.rank == root {
            let send = trade_for_receive_buffer(&mut self.reduce_scratch, buf);
            root_process.reduce_into_root(&send[..], &mut buf[..], SystemOperation::sum());
            self.reduce_scratch = send;
        } else {
            root_process.reduce_into(&buf[..], SystemOperation::sum());
        }
        self.meter.seconds += mpi::time() - start;
        self.meter.wire_bytes += (8 * buf.len() * self.size) as u64;
        self.meter.reduce.add(8 * buf.len() as u64);
        if self.size > 1 && self.rank == root {
            self.meter.received_bytes += 8 * buf.len() as u64;
        }
    }

    /// Broadcast of bytes whose length every rank knows (metered once, as the root's
    /// upload).
    pub fn broadcast_bytes(&mut self, root: usize, buf: &mut [u8]) {
        let start = mpi::time();
        self.world.process_at_rank(root as i32).broadcast_into(buf);
        self.meter.seconds += mpi::time() - start;
        self.meter_broadcast(root, buf.len() as u64);
    }

    /// Broadcast of a message whose length only the root knows: a u64 header, then the
    /// bytes (two broadcasts). On the root, `sent` says whether `buf` holds a message; if
    /// not, the header is `u64::MAX` ("no message", e.g. the server failed) and no bytes
    /// follow. Every rank returns whether a message came; non-root ranks receive it into
    /// `buf` (resized).
    pub fn broadcast_message(&mut self, root: usize, buf: &mut Vec<u8>, sent: bool) -> bool {
        let start = mpi::time();
        let process = self.world.process_at_rank(root as i32);
        let mut header = if sent { buf.len() as u64 } else { u64::MAX };
        process.broadcast_into(&mut header);
        let present = header != u64::MAX;
        if present && header > 0 {
            if self.rank != root {
                buf.resize(header as usize, 0);
            }
            process.broadcast_into(&mut buf[..]);
        } else if present {
            buf.clear();
        }
        self.meter.seconds += mpi::time() - start;
        self.meter_broadcast(root, 8);
        if present {
            self.meter_broadcast(root, header);
        }
        present
    }

    fn meter_broadcast(&mut self, root: usize, bytes: u64) {
        self.meter.wire_bytes += bytes;
        self.meter.bcast.add(bytes);
        if self.rank != root {
            self.meter.received_bytes += bytes;
        }
    }

    /// In-place allreduce sum that is not metered (metrics, setup).
    pub fn monitor_sum(&mut self, buf: &mut [f64]) {
        self.allreduce(buf, SystemOperation::sum());
    }

    /// In-place allreduce max (not metered).
    pub fn max_f64(&mut self, buf: &mut [f64]) {
        self.allreduce(buf, SystemOperation::max());
    }

    fn allreduce(&mut self, buf: &mut [f64], op: SystemOperation) {
        self.reduce_scratch.clear();
        self.reduce_scratch.extend_from_slice(buf);
        self.world.all_reduce_into(&self.reduce_scratch[..], buf, op);
    }

    /// out = Σ over all workers of their vectors (`parts`: this rank's workers), bit for
    /// bit the same however the workers are spread over ranks (not metered; one fixed-point
    /// scale for all entries, see `reproducible.rs`). Used where a result must not depend
    /// on the rank layout: the smoothness constant that sets the step size.
    pub fn reproducible_sum(&mut self, parts: &[Vec<f64>], total_parts: usize, out: &mut [f64]) {
        let n = out.len();
        self.reproducible_sum_by(
            parts.len(),
            total_parts,
            &[n],
            |p, k| parts[p][k],
            |first, sums| out[first..first + sums.len()].copy_from_slice(sums),
        );
    }

    /// The same with the terms given by `term(local part, entry)` and a fixed-point scale
    /// per block of `blocks` (consecutive lengths), so that entries of different
    /// magnitudes (a loss and a gradient) keep their relative precision; the sums are
    /// handed to `visit(first entry, sums)` a chunk at a time, in order.
    pub fn reproducible_sum_by(
        &mut self,
        parts: usize,
        total_parts: usize,
        blocks: &[usize],
        term: impl Fn(usize, usize) -> f64,
        visit: impl FnMut(usize, &[f64]),
    ) {
        self.reproducible.sum(&self.world, parts, total_parts, blocks, term, visit);
    }

    /// Max of one u64 over all ranks (not metered).
    pub fn max_u64(&self, v: u64) -> u64 {
        let mut out = 0u64;
        self.world.all_reduce_into(&v, &mut out, SystemOperation::max());
        out
    }

    /// Sum of one u64 over all ranks (not metered).
    pub fn sum_u64(&self, v: u64) -> u64 {
        let mut out = 0u64;
        self.world.all_reduce_into(&v, &mut out, SystemOperation::sum());
        out
    }

    /// Each rank's `v`, indexed by rank (setup; allocates).
    pub fn all_gather_u64(&self, v: u64) -> Vec<u64> {
        let mut out = vec![0u64; self.size];
        self.world.all_gather_into(&v, &mut out[..]);
        out
    }

    /// Each rank's slice, concatenated in rank order (setup; allocates). The lengths may
    /// differ: the asynchronous execution's server rank contributes none of its workers'.
    pub fn all_gather_f64(&self, local: &[f64]) -> Vec<f64> {
        let counts: Vec<i32> = self.all_gather_u64(local.len() as u64).into_iter().map(|n| n as i32).collect();
        let displs: Vec<i32> = counts.iter().scan(0, |at, &n| Some(std::mem::replace(at, *at + n))).collect();
        let mut out = vec![0f64; counts.iter().sum::<i32>() as usize];
        let mut partition = PartitionMut::new(&mut out[..], &counts[..], &displs[..]);
        self.world.all_gather_varcount_into(local, &mut partition);
        out
    }

    /// Every rank's byte string, indexed by rank (setup; allocates).
    pub fn all_gather_bytes(&self, mine: &[u8]) -> Vec<Vec<u8>> {
        agree::all_gather_bytes(&self.world, self.size, mine)
    }

    /// Makes every rank hold the same outcome of a fallible phase: if any rank failed,
    /// all return `Error::Ranks` listing each failing rank's message. Call it at the end
    /// of every phase that can fail on some ranks only, before the next collective.
    pub fn agree<T>(&mut self, local: Result<T>) -> Result<T> {
        agree::agree(&self.world, self.size, local)
    }

    /// Makes this rank's next message gather claim `bytes` more than it sends (the `huge`
    /// fault of `crate::faults`: MPI's count limit, checked on every rank before the
    /// byte collective, without allocating gigabytes).
    pub fn claim_extra_bytes_next_gather(&mut self, bytes: u64) {
        self.gather.claim_extra = bytes;
    }

    /// `agree` for a phase that also sums a few counters over all ranks (at most 7), in
    /// one allreduce: the trailer of a training round. Not metered.
    pub fn agree_sums(&mut self, local: Result<()>, counts: &mut [u64]) -> Result<()> {
        agree::agree_sums(&self.world, self.size, local, counts)
    }

    /// Ends the job from a state where the other ranks cannot be reached by `agree`
    /// (a panic, an error that was not agreed): MPI_Abort terminates every rank.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

/// Gives `buf`'s values back as the send buffer and puts the scratch storage, with
/// `buf`'s length, in its place for the result (resizing allocates only while the scratch
/// is shorter, in the first rounds). The caller returns the send buffer to the scratch.
fn trade_for_receive_buffer(scratch: &mut Vec<f64>, buf: &mut Vec<f64>) -> Vec<f64> {
    let n = buf.len();
    let send = std::mem::replace(buf, std::mem::take(scratch));
    buf.resize(n, 0.0);
    send
}

/// Converts a byte count to MPI's `i32` count, or fails with the size that overflowed.
pub(crate) fn mpi_count(n: usize, what: &str) -> Result<i32> {
    i32::try_from(n).map_err(|_| Error::Comm {
        what: format!(
            "{what}: {n} bytes, above MPI's count limit of 2^31 bytes per call; use more \
             ranks or a stronger compressor"
        ),
    })
}

/// Gives a byte buffer an address of its own before MPI sees it. An empty, never
/// allocated `Vec<u8>` points at address 1, which is OpenMPI's `MPI_IN_PLACE`: as a send
/// buffer it means "in place" (a non-root gatherv rejects it with MPI_ERR_ARG, an
/// allgatherv takes the receive buffer instead). A buffer allocated once keeps its address.
pub(super) fn allocated(buf: &mut Vec<u8>) {
    if buf.capacity() == 0 {
        buf.reserve(1);
    }
}
