//! Allgather of lengths followed by allgatherv of bytes (ALGORITHMS.md §0.3).

use super::mpi_count;
use crate::error::Result;
use mpi::datatype::PartitionMut;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// Reusable buffers: sized on the first round, reused after.
#[derive(Default)]
pub(super) struct Buffers {
    local_lens: Vec<i32>,
    lens: Vec<i32>,
    counts: Vec<i32>,
    displs: Vec<i32>,
    offsets: Vec<usize>,
    send: Vec<u8>,
    recv: Vec<u8>,
}

impl Buffers {
    pub(super) fn run<'a>(&'a mut self, world: &SimpleCommunicator, local: &[Vec<u8>]) -> Result<Messages<'a>> {
        let ranks = world.size() as usize;
        let per_rank = local.len();

        // 1. Lengths: every rank sends one i32 per local message.
        self.local_lens.clear();
        for m in local {
            self.local_lens.push(mpi_count(m.len(), "one message")?);
        }
        self.lens.resize(per_rank * ranks, 0);
        world.all_gather_into(&self.local_lens[..], &mut self.lens[..]);

        // 2. Per-rank counts and displacements, checked against i32 (every rank computes
        //    the same totals from the same lengths, so they fail together or not at all).
        self.counts.clear();
        self.displs.clear();
        self.offsets.clear();
        let mut total = 0usize;
        for r in 0..ranks {
            self.displs.push(mpi_count(total, "the gathered messages")?);
            let rank_lens = &self.lens[r * per_rank..(r + 1) * per_rank];
            let rank_total: usize = rank_lens.iter().map(|&l| l as usize).sum();
            self.counts.push(mpi_count(rank_total, "one rank's messages")?);
            for &l in rank_lens {
                self.offsets.push(total);
                total += l as usize;
            }
        }
        mpi_count(total, "the gathered messages")?;
        self.offsets.push(total);

        // 3. The bytes.
        self.send.clear();
        for m in local {
            self.send.extend_from_slice(m);
        }
        self.recv.resize(total, 0);
        {
            let mut partition = PartitionMut::new(&mut self.recv[..], &self.counts[..], &self.displs[..]);
            world.all_gather_varcount_into(&self.send[..], &mut partition);
        }
        Ok(Messages { bytes: &self.recv, offsets: &self.offsets })
    }
}

/// All workers' messages of one round, in global worker order.
pub struct Messages<'a> {
    bytes: &'a [u8],
    offsets: &'a [usize],
}

impl<'a> Messages<'a> {
    /// Number of messages (= logical workers).
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Message of worker `i`.
    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.bytes[self.offsets[i]..self.offsets[i + 1]]
    }

    pub fn total_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }
}
