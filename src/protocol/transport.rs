//! Each phase kind on each topology, as `Comm` calls (the table of docs/architecture.md).
//! The only code that knows where the server runs.

use super::Topology;
use crate::comm::{Comm, Messages};
use crate::error::Result;

/// The rank of the server on the server topology.
pub(super) const SERVER_RANK: usize = 0;

pub(super) struct Transport {
    pub(super) topology: Topology,
    rank: usize,
}

impl Transport {
    pub(super) fn new(topology: Topology, rank: usize) -> Self {
        Transport { topology, rank }
    }

    /// Whether this rank runs a server role (every rank, or the server rank).
    pub(super) fn serves(&self) -> bool {
        self.topology == Topology::Replicated || self.rank == SERVER_RANK
    }

    /// Gather phase: the messages in global worker order, on the ranks that serve.
    pub(super) fn gather<'c>(&self, comm: &'c mut Comm, outbox: &[Vec<u8>]) -> Result<Option<Messages<'c>>> {
        match self.topology {
            Topology::Replicated => comm.all_gather_messages(outbox).map(Some),
            Topology::Server => comm.gather_messages_to_root(SERVER_RANK, outbox),
        }
    }

    /// Sum phase: `buf` holds the sum over all ranks on the ranks that serve.
    pub(super) fn sum(&self, comm: &mut Comm, buf: &mut Vec<f64>) {
        match self.topology {
            Topology::Replicated => comm.sum(buf),
            Topology::Server => comm.sum_to_root(SERVER_RANK, buf),
        }
    }

    /// Downlink: on the server topology the server rank broadcasts `wire` (or "nothing"
    /// when `sent` is false); returns whether a downlink arrived. Not called on the
    /// replicated topology, where every replica has its own.
    pub(super) fn deliver(&self, comm: &mut Comm, wire: &mut Vec<u8>, sent: bool) -> bool {
        debug_assert_eq!(self.topology, Topology::Server);
        comm.broadcast_message(SERVER_RANK, wire, sent)
    }
}
