//! What a run costs besides its rounds: the time to read the data and the peak memory of
//! a rank, against what the data and the method need (issue 13, "Loading and memory").

use crate::comm::Comm;
use crate::data::shard::Source;
use crate::problem::Problem;
use crate::worker::Worker;

/// What reading the data cost (the slowest rank's seconds), logged and kept as attributes.
pub struct Loading {
    pub seconds: f64,
    pub data_bytes: u64,
    /// The largest shard of any rank (CSR and labels), for the peak-memory line.
    pub shard_bytes: u64,
}

impl Loading {
    /// Agrees on the slowest rank's `own_seconds` and the sizes, and logs the reading speed.
    pub fn measured(comm: &mut Comm, problem: &Problem, own_seconds: f64) -> Loading {
        let mut seconds = [own_seconds];
        comm.max_f64(&mut seconds);
        let data_bytes = data_bytes(comm, &problem.source).unwrap_or(0);
        let shard_bytes = comm.max_u64(shard_bytes(&problem.workers));
        let per_rank = data_bytes as f64 / comm.size() as f64;
        log::info!(
            "read {:.1} MB in {:.3} s ({:.0} MB/s per rank); the largest shard holds {:.1} MB",
            data_bytes as f64 / 1e6,
            seconds[0],
            per_rank / seconds[0].max(1e-9) / 1e6,
            shard_bytes as f64 / 1e6
        );
        Loading { seconds: seconds[0], data_bytes, shard_bytes }
    }
}

/// The bytes of the training data read by all ranks together: the file, or the sum of
/// the per-rank files. None where a file's size cannot be read (it was just loaded, so
/// only a race with its removal gets here).
pub fn data_bytes(comm: &Comm, source: &Source) -> Option<u64> {
    match source {
        Source::File(path) => std::fs::metadata(path).ok().map(|m| m.len()),
        Source::PerRank(_) => {
            let own = std::fs::metadata(source.path_for(comm.rank())).ok().map(|m| m.len());
            // u64::MAX marks a rank that could not tell; every rank takes part either way.
            let sizes = comm.all_gather_u64(own.unwrap_or(u64::MAX));
            (!sizes.contains(&u64::MAX)).then(|| sizes.iter().sum())
        }
    }
}

/// The heap bytes of this rank's shards: each worker's CSR matrix and labels.
pub fn shard_bytes(workers: &[Worker]) -> u64 {
    workers.iter().map(|w| w.a.heap_bytes() + (w.b.capacity() * std::mem::size_of::<f64>()) as u64).sum()
}

/// This process's peak resident set (`VmHWM` of /proc/self/status), where Linux says it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While 64 MiB are touched the peak is at least that (in bytes, not KiB; Linux only).
    #[test]
    fn peak_rss_sees_a_touched_allocation() {
        if peak_rss_bytes().is_none() {
            eprintln!("skipped: no /proc/self/status here");
            return;
        }
        let block = std::hint::black_box(vec![1u8; 64 << 20]);
        let peak = peak_rss_bytes().unwrap();
        assert!(peak >= 64 << 20, "peak {peak} bytes while 64 MiB are touched");
        assert!(peak < 1 << 40, "peak {peak} bytes: the unit is off");
        drop(block);
    }
}
