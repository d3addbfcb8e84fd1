//! Preemption (Slurm's `--signal`, `scancel --signal`, a node going down): SIGTERM or
//! SIGUSR1 asks the run to stop. The handler only sets a flag; the training loop votes it
//! into the next round's closing agreement, so every rank stops after the same round,
//! writes a checkpoint and closes its result with status `preempted` (exit code 4).

use crate::error::{Error, Result};
use signal_hook::consts::{SIGTERM, SIGUSR1};
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handlers (idempotent).
pub fn install() -> Result<()> {
    for signal in [SIGTERM, SIGUSR1] {
        signal_hook::flag::register(signal, &REQUESTED)
            .map_err(|e| Error::Comm { what: format!("cannot install the handler of signal {signal}: {e}") })?;
    }
    Ok(())
}

/// Whether a stop was asked for on this rank.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
