//! Dataset checksums for the HDF5 attributes: SHA-256, the digest `sha256sum` prints,
//! so a user can check which file a result was computed from.

use super::Source;
use crate::comm::Comm;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = super::libsvm::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The checksum of a training source: one digest for a file (computed by rank 0), or
/// `rank:digest` pairs for per-rank files. Every rank returns the same string.
pub fn of_source(comm: &mut Comm, source: &Source) -> Result<String> {
    let mine = match source {
        Source::File(p) if comm.is_root() => sha256_file(p),
        Source::File(_) => Ok(String::new()),
        Source::PerRank(_) => sha256_file(&source.path_for(comm.rank())),
    };
    let mine = comm.agree(mine)?;
    let all = comm.all_gather_bytes(mine.as_bytes());
    Ok(match source {
        Source::File(_) => String::from_utf8_lossy(&all[0]).into_owned(),
        Source::PerRank(_) => all
            .iter()
            .enumerate()
            .map(|(r, d)| format!("{r}:{}", String::from_utf8_lossy(d)))
            .collect::<Vec<_>>()
            .join(","),
    })
}
