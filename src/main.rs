//! Entry point: start MPI, parse the command line, run, print one error, exit.
//! Exit codes: 0 success, 1 `qtrain compare` found a difference, 2 any error (on every rank), 3 a panic (every rank is
//! aborted through MPI_Abort so that none waits in a collective), 4 preempted (a
//! checkpoint was written: resume with --resume), 5 the run diverged.

use clap::Parser;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use qtrain::cli::{check_moved_flags, expand_config, Cli};
use qtrain::comm::Comm;
use qtrain::error::Error;
use qtrain::train::Ending;

/// Counts allocations so that the result file can record the rounds' (crate::allocations).
#[global_allocator]
static ALLOCATOR: qtrain::allocations::Counting = qtrain::allocations::Counting;

fn main() {
    let Some(universe) = mpi::initialize() else {
        eprintln!("qtrain: error: MPI could not be initialised (already initialised?)");
        std::process::exit(2);
    };
    let world = universe.world();
    if let Some(m) = qtrain::launcher::mismatch(world.size() as usize, |v| std::env::var(v).ok()) {
        if m.index == 0 {
            let library = mpi::environment::library_version().unwrap_or_default();
            // "Open MPI v4.1.4, package: …" or "MPICH Version:\t4.0.2\n…": its name and version.
            let first = library.lines().next().unwrap_or("an unknown MPI").split(',').next().unwrap_or_default();
            let library = first.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("qtrain: error: {}", m.explain(&library));
        } else {
            // A launcher tears the job down at the first non-zero exit: the others wait, so
            // that the first process's message is out before then (on a loaded machine a
            // silent process could otherwise exit first and the message be lost).
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        std::process::exit(2);
    }
    let rank = world.rank() as usize;
    install_panic_hook(rank, world.size() > 1);
    qtrain::logging::init(rank);

    let code = match parse(rank) {
        Err(code) => code,
        Ok(cli) => {
            let mut comm = Comm::new(world);
            match qtrain::run(&mut comm, cli.command) {
                Ok(Ending::Done) => 0,
                Ok(Ending::Preempted) => 4,
                Ok(Ending::Diverged) => 5,
                Ok(Ending::Differ) => 1,
                Err(e) => report(&comm, e),
            }
        }
    };
    drop(universe);
    std::process::exit(code);
}

/// Parses on every rank (all see the same arguments); only rank 0 prints help or errors.
fn parse(rank: usize) -> Result<Cli, i32> {
    let args =
        expand_config(std::env::args().collect()).and_then(|a| check_moved_flags(&a).map(|()| a)).map_err(|msg| {
            if rank == 0 {
                eprintln!("qtrain: error: {msg}");
            }
            2
        })?;
    Cli::try_parse_from(args).map_err(|e| {
        if rank == 0 {
            let _ = e.print();
        }
        e.exit_code()
    })
}

/// Agreed errors (`Error::Ranks`) are printed once by rank 0 and every rank exits 2.
/// Any other error means this rank failed alone: it prints and aborts the job, since
/// the others may be waiting for it in a collective.
fn report(comm: &Comm, e: Error) -> i32 {
    match e {
        Error::Ranks { .. } => {
            if comm.is_root() {
                eprintln!("qtrain: error: {e}");
            }
            2
        }
        other => {
            eprintln!("qtrain: error on rank {}: {other}", comm.rank());
            if comm.size() > 1 {
                comm.abort(2);
            }
            2
        }
    }
}

fn install_panic_hook(rank: usize, several: bool) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("qtrain: rank {rank} panicked (a bug; please report it):");
        default(info);
        if several {
            SimpleCommunicator::world().abort(3);
        }
        std::process::exit(3);
    }));
}
