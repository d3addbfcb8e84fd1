//! Variable-size messages: an allgather of u64 lengths, then an allgatherv of the bytes
//! to every rank, or a gatherv to one root (ALGORITHMS.md §0.3).
//!
//! The lengths go to *every* rank in both cases and as u64, so every rank computes the
//! same totals and checks them against MPI's i32 counts itself: an oversize round fails
//! on all ranks before any of them enters the byte collective, instead of one rank
//! returning an error while the others wait in the collective for it.

use super::mpi_count;
use crate::error::Result;
use mpi::datatype::PartitionMut;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// Where the bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dest {
    /// Every rank receives every message.
    All,
    /// Only this rank receives them (the server of `--topology server`).
    Root(usize),
}

/// Reusable buffers: sized on the first round, reused after.
#[derive(Default)]
pub(super) struct Buffers {
    local_lens: Vec<u64>,
    lens: Vec<u64>,
    counts: Vec<i32>,
    displs: Vec<i32>,
    offsets: Vec<usize>,
    send: Vec<u8>,
    recv: Vec<u8>,
    /// Bytes the next run claims on top of its real first message (the `huge` fault).
    pub(super) claim_extra: u64,
}

impl Buffers {
    /// Gathers `local` (this rank's messages, the same count on every rank) to `dest`.
    /// Returns whether this rank received them ([`Buffers::messages`]); fails on every
    /// rank alike when the round exceeds MPI's counts.
    pub(super) fn run(&mut self, world: &SimpleCommunicator, local: &[Vec<u8>], dest: Dest) -> Result<bool> {
        let ranks = world.size() as usize;
        let per_rank = local.len();

        // 1. Lengths, to every rank: one u64 per local message.
        self.local_lens.clear();
        self.local_lens.extend(local.iter().map(|m| m.len() as u64));
        if let Some(first) = self.local_lens.first_mut() {
            *first += std::mem::take(&mut self.claim_extra);
        }
        self.lens.resize(per_rank * ranks, 0);
        world.all_gather_into(&self.local_lens[..], &mut self.lens[..]);

        // 2. Counts and displacements, checked on every rank alike.
        let total = self.layout(ranks, per_rank)?;

        // 3. The bytes: none when every message is empty (all workers skipped).
        let receives = match dest {
            Dest::All => true,
            Dest::Root(root) => world.rank() as usize == root,
        };
        if total == 0 {
            self.recv.clear();
            return Ok(receives);
        }
        // One local worker (the usual layout) sends its message as it is; several are
        // concatenated. A never-allocated message would point at OpenMPI's MPI_IN_PLACE
        // (see `allocated`), so it goes the copying way.
        let send: &[u8] = match local {
            [only] if only.capacity() > 0 => only,
            _ => {
                self.send.clear();
                for m in local {
                    self.send.extend_from_slice(m);
                }
                super::allocated(&mut self.send);
                &self.send
            }
        };
        if receives {
            self.recv.resize(total, 0);
            super::allocated(&mut self.recv);
        }
        match dest {
            Dest::All => {
                let mut partition = PartitionMut::new(&mut self.recv[..], &self.counts[..], &self.displs[..]);
                world.all_gather_varcount_into(send, &mut partition);
            }
            Dest::Root(root) => {
                let root_process = world.process_at_rank(root as i32);
                if receives {
                    let mut partition = PartitionMut::new(&mut self.recv[..], &self.counts[..], &self.displs[..]);
                    root_process.gather_varcount_into_root(send, &mut partition);
                } else {
                    root_process.gather_varcount_into(send);
                }
            }
        }
        Ok(receives)
    }

    /// The messages of the last `run`, in global worker order (on a receiving rank).
    pub(super) fn messages(&self) -> Messages<'_> {
        Messages { bytes: &self.recv, offsets: &self.offsets }
    }

    /// Number of messages and Σ of their lengths in the last `run` (known on every rank).
    pub(super) fn totals(&self) -> (usize, usize) {
        (self.lens.len(), self.offsets.last().copied().unwrap_or(0))
    }

    /// Per-rank counts, displacements and per-message offsets from `lens`; fails, on
    /// every rank alike, when a count does not fit MPI's i32. Returns the total length.
    fn layout(&mut self, ranks: usize, per_rank: usize) -> Result<usize> {
        self.counts.clear();
        self.displs.clear();
        self.offsets.clear();
        let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let mut total = 0u64;
        for rank_lens in self.lens.chunks_exact(per_rank.max(1)).take(ranks) {
            self.displs.push(mpi_count(as_usize(total), "the gathered messages")?);
            let rank_total = rank_lens.iter().fold(0u64, |s, &l| s.saturating_add(l));
            self.counts.push(mpi_count(as_usize(rank_total), "one rank's messages")?);
            total = total.saturating_add(rank_total);
        }
        mpi_count(as_usize(total), "the gathered messages")?;
        // Every count and the total fit an i32 now, so the offsets cannot overflow.
        let mut offset = 0usize;
        for &l in &self.lens {
            self.offsets.push(offset);
            offset += l as usize;
        }
        self.offsets.push(offset);
        Ok(offset)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(lens: &[u64], ranks: usize) -> Result<(Vec<i32>, Vec<i32>, Vec<usize>)> {
        let mut b = Buffers { lens: lens.to_vec(), ..Buffers::default() };
        b.layout(ranks, lens.len() / ranks)?;
        Ok((b.counts, b.displs, b.offsets))
    }

    #[test]
    fn layout_gives_counts_displacements_and_offsets() {
        let (counts, displs, offsets) = layout(&[3, 0, 5, 2], 2).unwrap();
        assert_eq!(counts, [3, 7]);
        assert_eq!(displs, [0, 3]);
        assert_eq!(offsets, [0, 3, 3, 8, 10]);
    }

    /// A round whose bytes exceed MPI's i32 counts is an error computed from the lengths
    /// alone, which every rank holds: all ranks fail together, none enters the collective.
    #[test]
    fn counts_beyond_i32_are_errors_not_wraps() {
        let limit = i32::MAX as u64;
        assert!(layout(&[limit, 0], 2).is_ok());
        for lens in [vec![limit + 1, 0], vec![limit, 1], vec![1 << 40, 0], vec![u64::MAX, u64::MAX]] {
            let e = layout(&lens, 2).unwrap_err().to_string();
            assert!(e.contains("2^31"), "{lens:?}: {e}");
        }
        // One rank's messages fit, the sum over ranks does not.
        assert!(layout(&[limit / 2 + 1, limit / 2 + 1], 2).is_err());
    }
}
