//! Injected faults, a test and demonstration aid (docs/reliability.md): the environment
//! variable `QTRAIN_FAULT` lists `KIND@RANK:ROUND` items, comma-separated, and rank RANK
//! (`*` for every rank) suffers KIND at the start of round ROUND:
//!
//! | KIND | what happens |
//! |---|---|
//! | `kill` | the process sends itself SIGKILL |
//! | `segv` | it raises SIGSEGV (a crash) |
//! | `abort` | it aborts (SIGABRT) |
//! | `exit` | it exits with code 1 without leaving MPI |
//! | `term`, `usr1` | it receives SIGTERM / SIGUSR1 (preemption) |
//! | `nan` | the model gets a NaN (divergence) |
//! | `huge` | its next message claims 2³¹ + 1 more bytes than it has (MPI's count limit) |
//!
//! Unset, nothing is injected: the check is one comparison per round.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Kill,
    Segv,
    Abort,
    Exit,
    Term,
    Usr1,
    Nan,
    Huge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: Kind,
    /// None: every rank.
    pub rank: Option<usize>,
    pub round: u64,
}

/// The faults `QTRAIN_FAULT` asks for.
pub fn from_env() -> Result<Vec<Fault>> {
    match std::env::var("QTRAIN_FAULT") {
        Ok(text) => parse(&text),
        Err(_) => Ok(Vec::new()),
    }
}

pub fn parse(text: &str) -> Result<Vec<Fault>> {
    let bad = |item: &str| {
        Error::config(
            format!("QTRAIN_FAULT item '{item}'"),
            "write KIND@RANK:ROUND with KIND one of kill, segv, abort, exit, term, usr1, nan, huge (docs/reliability.md)",
        )
    };
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (kind, place) = item.split_once('@').ok_or_else(|| bad(item))?;
            let (rank, round) = place.split_once(':').ok_or_else(|| bad(item))?;
            let kind = match kind {
                "kill" => Kind::Kill,
                "segv" => Kind::Segv,
                "abort" => Kind::Abort,
                "exit" => Kind::Exit,
                "term" => Kind::Term,
                "usr1" => Kind::Usr1,
                "nan" => Kind::Nan,
                "huge" => Kind::Huge,
                _ => return Err(bad(item)),
            };
            let rank = if rank == "*" { None } else { Some(rank.parse().map_err(|_| bad(item))?) };
            Ok(Fault { kind, rank, round: round.parse().map_err(|_| bad(item))? })
        })
        .collect()
}

/// The faults of `rank` due at the start of `round`.
pub fn due(faults: &[Fault], rank: usize, round: u64) -> impl Iterator<Item = Kind> + '_ {
    faults.iter().filter(move |f| f.round == round && f.rank.is_none_or(|r| r == rank)).map(|f| f.kind)
}

/// Carries out the process-level faults (the others are the caller's).
pub fn strike(kind: Kind) {
    use signal_hook::consts::{SIGKILL, SIGSEGV, SIGTERM, SIGUSR1};
    let raise = |signal| {
        let _ = signal_hook::low_level::raise(signal);
    };
    match kind {
        Kind::Kill => raise(SIGKILL),
        // Raised by hand, SIGSEGV would be caught by Rust's stack-overflow handler, which
        // returns expecting the faulting instruction to fault again: restore the default
        // action first, as a real crash meets it.
        Kind::Segv => {
            let _ = signal_hook::low_level::emulate_default_handler(SIGSEGV);
        }
        Kind::Abort => std::process::abort(),
        Kind::Exit => std::process::exit(1),
        Kind::Term => raise(SIGTERM),
        Kind::Usr1 => raise(SIGUSR1),
        Kind::Nan | Kind::Huge => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_and_select_by_rank_and_round() {
        let faults = parse("kill@1:20, nan@*:5,usr1@0:7").unwrap();
        assert_eq!(faults[0], Fault { kind: Kind::Kill, rank: Some(1), round: 20 });
        assert_eq!(due(&faults, 3, 5).collect::<Vec<_>>(), [Kind::Nan]);
        assert_eq!(due(&faults, 1, 20).collect::<Vec<_>>(), [Kind::Kill]);
        assert_eq!(due(&faults, 0, 20).count(), 0);
        for bad in ["kill", "kill@1", "boom@1:2", "kill@x:2", "kill@1:x"] {
            assert!(parse(bad).unwrap_err().to_string().contains("QTRAIN_FAULT"), "{bad}");
        }
        assert!(parse("").unwrap().is_empty());
    }
}
