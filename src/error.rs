//! The one error type of qtrain.
//!
//! Every variant carries what a user needs to fix the problem: the file and line, the
//! rank, the offending value and the remedy. `main` prints an error once (from rank 0,
//! after `Comm::agree` made every rank hold the same one) and exits with code 2.

use std::fmt;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A parameter is impossible or inconsistent; `fix` tells what to change.
    Config { what: String, fix: String },
    /// A LIBSVM file is malformed at `line` (1-based).
    Parse { path: PathBuf, line: u64, what: String, fix: String },
    /// A file could not be opened, read or written.
    Io { path: PathBuf, what: String },
    /// A received message does not match its compressor's wire format.
    Wire { compressor: String, what: String },
    /// The result file exists and `--force` was not given.
    OutputExists { path: PathBuf },
    /// The run went wrong numerically (divergence, replicas that disagree).
    Numerical { what: String, fix: String },
    /// An MPI-level problem (message too large for an `i32` count, …).
    Comm { what: String },
    /// HDF5 reported an error writing metrics.
    Hdf5 { path: PathBuf, what: String },
    /// A checkpoint or a saved state is missing, incomplete, corrupt or does not match
    /// the run; `what` names the file or entry.
    Checkpoint { what: String },
    /// The agreed outcome of a phase in which some ranks failed (`Comm::agree`): each
    /// failing rank with its message. Every rank holds the same list.
    Ranks { failed: Vec<(usize, String)>, ranks: usize },
}

impl Error {
    pub fn config(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::Config { what: what.into(), fix: fix.into() }
    }

    pub fn io(path: impl Into<PathBuf>, err: impl fmt::Display) -> Self {
        Error::Io { path: path.into(), what: err.to_string() }
    }

    pub fn wire(compressor: impl Into<String>, what: impl Into<String>) -> Self {
        Error::Wire { compressor: compressor.into(), what: what.into() }
    }

    pub fn hdf5(path: impl Into<PathBuf>, err: impl fmt::Display) -> Self {
        Error::Hdf5 { path: path.into(), what: hdf5_cause(&err.to_string()) }
    }
}

/// HDF5's report of a failed system call spans lines of buffer addresses and offsets; the
/// user needs its first clause and the system's reason ("No space left on device").
fn hdf5_cause(report: &str) -> String {
    let first = report.split(": time = ").next().unwrap_or(report).trim();
    match report.split("error message = '").nth(1).and_then(|rest| rest.split('\'').next()) {
        Some(reason) => format!("{first}: {reason}"),
        None => first.to_string(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { what, fix } => write!(f, "invalid configuration: {what}; {fix}"),
            Error::Parse { path, line, what, fix } => {
                write!(f, "{}:{line}: {what}; {fix}", path.display())
            }
            Error::Io { path, what } => write!(f, "{}: {what}", path.display()),
            Error::Wire { compressor, what } => {
                write!(f, "malformed {compressor} message: {what}")
            }
            Error::OutputExists { path } => {
                write!(f, "{} already exists; pass --force to replace it or choose another --out", path.display())
            }
            Error::Numerical { what, fix } => write!(f, "{what}; {fix}"),
            Error::Comm { what } => write!(f, "communication error: {what}"),
            Error::Hdf5 { path, what } => write!(f, "{} (HDF5): {what}", path.display()),
            Error::Checkpoint { what } => write!(f, "checkpoint: {what}"),
            Error::Ranks { failed, ranks } => {
                // Ranks that failed the same way are named together; an error that every
                // rank detected (a bad parameter) reads as one message without ranks.
                let mut groups: Vec<(Vec<usize>, &str)> = Vec::new();
                for (rank, msg) in failed {
                    match groups.iter_mut().find(|(_, m)| m == msg) {
                        Some((ranks, _)) => ranks.push(*rank),
                        None => groups.push((vec![*rank], msg)),
                    }
                }
                let lines: Vec<String> = groups
                    .iter()
                    .map(|(who, msg)| {
                        if who.len() == *ranks {
                            return msg.to_string();
                        }
                        let names: Vec<String> = who.iter().map(|r| r.to_string()).collect();
                        let label = if who.len() == 1 { "rank" } else { "ranks" };
                        format!("{label} {}: {msg}", names.join(","))
                    })
                    .collect();
                write!(f, "{}", lines.join("\n"))
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreed_errors_name_ranks_only_when_not_all_failed() {
        let all = Error::Ranks { failed: vec![(0, "bad k".into()), (1, "bad k".into())], ranks: 2 };
        assert_eq!(all.to_string(), "bad k");
        let one = Error::Ranks { failed: vec![(1, "cannot open".into())], ranks: 2 };
        assert_eq!(one.to_string(), "rank 1: cannot open");
        let mixed = Error::Ranks { failed: vec![(0, "a".into()), (2, "b".into()), (3, "a".into())], ranks: 4 };
        assert_eq!(mixed.to_string(), "ranks 0,3: a\nrank 2: b");
    }

    #[test]
    fn hdf5_system_errors_read_as_their_first_clause_and_reason() {
        let report = "H5AC_flush(): Can't flush cache: file write failed: time = Tue Dec  1 08:31:48 2026\n, filename = 'x', file descriptor = 17, errno = 28, error message = 'No space left on device', buf = 0x5606";
        let e = Error::hdf5("run.h5", report);
        assert_eq!(
            e.to_string(),
            "run.h5 (HDF5): H5AC_flush(): Can't flush cache: file write failed: No space left on device"
        );
        assert_eq!(Error::hdf5("a.h5", "unable to open file").to_string(), "a.h5 (HDF5): unable to open file");
    }
}
