//! qtrain: communication-compressed distributed training over MPI.
//!
//! Spec: ../shared/ALGORITHMS.md. Every MPI rank hosts one or more logical workers with
//! their shard of a LIBSVM file, computes local gradients, compresses them into packed
//! byte messages and exchanges them through MPI collectives; every rank keeps a
//! replica of the server state (§0.3). Rank 0 writes per-iteration metrics to HDF5.

pub mod allocations;
pub mod checkpoint;
pub mod cli;
pub mod comm;
pub mod compress;
pub mod config;
pub mod cost_model;
pub mod data;
pub mod demo;
pub mod error;
pub mod eval_schedule;
pub mod faults;
pub mod fuzzing;
pub mod launcher;
pub mod logging;
pub mod method;
pub mod metrics;
pub mod monitor;
pub mod objective;
pub mod problem;
pub mod protocol;
pub mod report;
pub mod resources;
pub mod rng;
pub mod signals;
pub mod simd;
pub mod solve;
pub mod spec;
pub mod sweep;
#[cfg(test)]
mod testing;
pub mod train;
pub mod vector;
pub mod worker;

use cli::{Command, SolveArgs};
use comm::Comm;
use error::Result;

/// Runs a parsed command on this rank. Errors returned here have been agreed by all
/// ranks (`Comm::agree`), so `main` can print one message and exit everywhere.
pub fn run(comm: &mut Comm, command: Option<Command>) -> Result<train::Ending> {
    match &command {
        Some(Command::Train(args)) => return train::run(comm, args),
        Some(Command::Sweep(args)) => return sweep::run(comm, args),
        Some(Command::Compare(a)) => {
            // Rank 0 reads and prints; a difference is its exit code, not an error.
            let verdict = comm.is_root().then(|| report::compare::compare(&a.first, &a.second, a.across_layouts));
            let verdict = comm.agree(verdict.transpose())?;
            return Ok(match verdict {
                Some(v @ report::compare::Verdict::Differ(_)) => {
                    println!("{v}");
                    train::Ending::Differ
                }
                Some(same) => {
                    println!("{same}");
                    train::Ending::Done
                }
                None => train::Ending::Done,
            });
        }
        _ => {}
    }
    run_other(comm, command).map(|()| train::Ending::Done)
}

fn run_other(comm: &mut Comm, command: Option<Command>) -> Result<()> {
    match command {
        None => demo::run(comm, &cli::DemoArgs { iters: cli::DEMO_ITERS, out: None }),
        Some(Command::Demo(args)) => demo::run(comm, &args),
        Some(Command::Train(_) | Command::Sweep(_) | Command::Compare(_)) => {
            unreachable!("run() handles the commands with an exit status")
        }
        Some(Command::Solve(args)) => run_solve(comm, &args),
        Some(Command::Report(a)) => {
            let runs = if comm.is_root() {
                a.files.iter().map(|f| report::read(f, a.target)).collect()
            } else {
                Ok(Vec::new())
            };
            let runs = comm.agree(runs)?;
            let figures = match (&a.out, comm.is_root()) {
                (Some(dir), true) => report::figures(dir, &runs),
                _ => Ok(Vec::new()),
            };
            let figures = comm.agree(figures)?;
            if comm.is_root() {
                print!("{}", report::table(&runs));
                if let Some(target) = a.target {
                    print!("{}", report::target_table(&runs, target));
                }
                for f in figures {
                    println!("figure  {}", f.display());
                }
            }
            Ok(())
        }
        Some(Command::Project(a)) => {
            let result = if comm.is_root() { run_project(&a) } else { Ok(()) };
            comm.agree(result)
        }
        Some(Command::Compressors(a)) => {
            if comm.is_root() {
                print!("{}", compress::describe(a.examples, a.dim));
            }
            Ok(())
        }
        Some(Command::Methods(a)) => {
            if comm.is_root() {
                print!("{}", method::describe(a.examples));
            }
            Ok(())
        }
        Some(Command::Generate(a)) => {
            let shape = data::generate::Shape {
                rows: a.rows,
                features: a.features,
                nnz: a.nnz,
                zipf: a.zipf,
                planted: a.planted.min(a.features),
                seed: a.seed,
            };
            let result = if comm.is_root() { data::generate::generate(shape, &a.out, a.force) } else { Ok(()) };
            comm.agree(result)
        }
        Some(Command::Shard(args)) => {
            let result = if comm.is_root() {
                data::write_shards::write_shards(&args.data, args.parts, &args.out_dir, args.split, args.force).map(
                    |parts| {
                        for (path, rows) in parts {
                            println!("{}\t{rows} rows", path.display());
                        }
                    },
                )
            } else {
                Ok(())
            };
            comm.agree(result)
        }
    }
}

fn run_project(a: &cli::ProjectArgs) -> Result<()> {
    let net = cost_model::Network {
        latency: cost_model::parse_latency(&a.latency)?,
        bandwidth: cost_model::parse_bandwidth(&a.bandwidth)?,
    };
    let measured = cost_model::read(&a.file)?;
    let mut ranks = vec![measured.ranks];
    ranks.extend(a.ranks.iter().copied().filter(|&p| p != measured.ranks));
    if ranks.contains(&0) {
        return Err(error::Error::config("--ranks 0", "rank counts are positive"));
    }
    let rows: Vec<_> = ranks.iter().map(|&p| cost_model::project(&measured, p, net, a.scaling)).collect();
    println!("α = {} s, bandwidth = {} B/s, {} scaling", net.latency, net.bandwidth, train::cli_name(a.scaling));
    print!("{}", cost_model::table(&measured, &rows));
    println!(
        "\ncheck at {} ranks: measured comm {:.1} µs vs model {:.1} µs on the given network",
        measured.ranks,
        1e6 * measured.t_comm,
        1e6 * rows[0].comm()
    );
    if let Some(dir) = &a.out {
        for f in report::plot::projection_figure(dir, &measured, &rows)? {
            println!("figure  {}", f.display());
        }
    }
    Ok(())
}

fn run_solve(comm: &mut Comm, args: &SolveArgs) -> Result<()> {
    let out_ok = match &args.out {
        Some(p) if comm.is_root() && p.exists() && !args.force => Err(error::Error::OutputExists { path: p.clone() }),
        _ => Ok(()),
    };
    comm.agree(out_ok)?;
    let mut problem = problem::Problem::load(comm, &args.data, &args.objective, 0, 0)?;
    if !problem.objective.is_convex() {
        log::warn!("the objective is non-convex: the solver returns a stationary point, not necessarily f*");
    }
    let x0 = vec![0.0; problem.dim];
    let sol = solve::newton(comm, &mut problem, x0, args.tol, args.max_iters);
    let sol = comm.agree(sol)?;
    let saved = match &args.out {
        Some(path) if comm.is_root() => config::write_vector_text(path, &sol.x, args.force),
        _ => Ok(()),
    };
    comm.agree(saved)?;
    if comm.is_root() {
        println!("f*        {:.17e}", sol.f);
        println!("‖∇f(x*)‖  {:.3e}", sol.grad_norm);
        println!("newton    {} iterations, {} CG products", sol.newton_iters, sol.cg_iters);
        if let Some(path) = &args.out {
            println!("x*        {}", path.display());
        }
    }
    Ok(())
}
