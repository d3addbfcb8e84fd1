//! Agreement on the outcome of a fallible phase, so that no rank waits in a collective
//! that a failed rank will never enter (STYLE.md "Errors across ranks").

use crate::error::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

pub(super) fn agree<T>(world: &SimpleCommunicator, size: usize, local: Result<T>) -> Result<T> {
    let failed = u32::from(local.is_err());
    let mut any = 0u32;
    world.all_reduce_into(&failed, &mut any, SystemOperation::max());
    if any == 0 {
        return local;
    }
    gather_failures(world, size, local)
}

/// Most counters one `agree_sums` carries.
pub(super) const MAX_SUMS: usize = 7;

/// `agree` and a sum of a few counters over all ranks in the same single allreduce (the
/// trailer of a training round: failure flag, bits, skips). `counts` holds this rank's
/// values and receives the totals; it is left as it was when some rank failed.
pub(super) fn agree_sums(world: &SimpleCommunicator, size: usize, local: Result<()>, counts: &mut [u64]) -> Result<()> {
    assert!(counts.len() <= MAX_SUMS, "agree_sums carries at most {MAX_SUMS} counters");
    let n = counts.len() + 1;
    let mut send = [0u64; MAX_SUMS + 1];
    send[0] = u64::from(local.is_err());
    send[1..n].copy_from_slice(counts);
    let mut total = [0u64; MAX_SUMS + 1];
    world.all_reduce_into(&send[..n], &mut total[..n], SystemOperation::sum());
    if total[0] == 0 {
        counts.copy_from_slice(&total[1..n]);
        return local;
    }
    gather_failures(world, size, local)
}

/// Some rank failed: every rank gathers every rank's message (empty for ranks that
/// succeeded) and returns the same `Error::Ranks`.
fn gather_failures<T>(world: &SimpleCommunicator, size: usize, local: Result<T>) -> Result<T> {
    let text = match &local {
        Err(Error::Ranks { failed, .. }) => failed.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>().join("\n"),
        Err(e) => e.to_string(),
        Ok(_) => String::new(),
    };
    let failures = all_gather_bytes(world, size, text.as_bytes())
        .into_iter()
        .enumerate()
        .filter(|(_, bytes)| !bytes.is_empty())
        .map(|(r, bytes)| (r, String::from_utf8_lossy(&bytes).into_owned()))
        .collect();
    Err(Error::Ranks { failed: failures, ranks: size })
}

/// Every rank's byte string, indexed by rank (setup only: allocates). Strings longer
/// than 2^31 − 1 bytes are cut to that length.
pub(super) fn all_gather_bytes(world: &SimpleCommunicator, size: usize, mine: &[u8]) -> Vec<Vec<u8>> {
    let my_len = i32::try_from(mine.len()).unwrap_or(i32::MAX);
    let mut mine = mine[..my_len as usize].to_vec();
    super::allocated(&mut mine);
    let mut lens = vec![0i32; size];
    world.all_gather_into(&my_len, &mut lens[..]);
    let mut displs = Vec::with_capacity(size);
    let mut total = 0i32;
    for &l in &lens {
        displs.push(total);
        total = total.saturating_add(l);
    }
    let mut recv = vec![0u8; total as usize];
    if total > 0 {
        let mut partition = PartitionMut::new(&mut recv[..], &lens[..], &displs[..]);
        world.all_gather_varcount_into(&mine[..], &mut partition);
    }
    (0..size).map(|r| recv[displs[r] as usize..(displs[r] + lens[r]) as usize].to_vec()).collect()
}
