//! `qtrain sweep`: every point of a grid — values of method or compressor SPEC keys
//! (`--grid KEY=V1,V2,…`) × multiples of the method's default step (`--step-factors`) —
//! trained one after another inside one mpirun, one result file per point in `--out DIR`,
//! then ranked by bits (or time) to ‖∇f‖² ≤ `--target` (README "Sweeps").
//!
//! The phases, each ending in an agreement so that every rank takes the same path:
//! 1. the flags (grid axes, step factors, the train flags a sweep cannot take);
//! 2. the data, loaded once for the checks, and the smoothness constants;
//! 3. every point: its keys placed in their SPECs, its train flags checked and its method
//!    built, so that a bad value fails on every rank before any run and any file;
//! 4. f* once, when `--fstar auto` (every point then gets the value);
//! 5. rank 0 looks at each point's file: finished (skipped, and its settings must be this
//!    sweep's), stopped (run again, or resumed from its checkpoints) or absent;
//! 6. the points in order, each by `train::run` in this process: a point that diverges
//!    is recorded and the sweep goes on, an error ends the sweep, a preemption ends it
//!    with exit 4 (the rerun resumes the point and skips the finished ones);
//! 7. rank 0 reads every file back, prints the ranking and writes `sweep.md`, `heatmap`
//!    and `best` (PNG and SVG) into DIR.

pub mod figures;
pub mod grid;
pub mod ranking;

use crate::cli::{Resume, SweepArgs, TrainArgs, SOLVE_MAX_ITERS, SOLVE_TOL};
use crate::comm::Comm;
use crate::data::checksum;
use crate::error::{Error, Result};
use crate::eval_schedule::EvalEvery;
use crate::metrics::hdf5_file::{self, Attr};
use crate::objective::smoothness::Smoothness;
use crate::objective::smoothness_matrix::Matrices;
use crate::problem::Problem;
use crate::train::{self, Ending};
use crate::{compress, config, method, solve, spec};
use grid::{Axis, Point};
use std::path::Path;

/// What rank 0 found at a point's result path before the sweep started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    Absent = 0,
    /// Finished (converged, ran its rounds, or diverged) with this sweep's settings.
    Finished = 1,
    /// Stopped (preempted) or not at its final name yet: run again or resumed.
    Stopped = 2,
}

/// A point ready to run: its train flags and what its finished file must say.
struct Planned {
    point: Point,
    args: TrainArgs,
    settings: Vec<(String, Attr)>,
}

pub fn run(comm: &mut Comm, args: &SweepArgs) -> Result<Ending> {
    let axes = comm.agree(check_flags(args))?;
    let (planned, fstar) = plan(comm, args, &axes)?;
    let found = look(comm, &planned, args.train.force)?;
    create_folder(comm, &args.train.out)?;
    let n = planned.len();
    log::info!(
        "sweep: {n} points ({} grid cells × {} step factors) into {}",
        n / args.step_factors.len(),
        args.step_factors.len(),
        args.train.out.display()
    );
    for (i, (p, found)) in planned.iter().zip(found).enumerate() {
        let label = format!("point {}/{n}: {}", i + 1, p.point.label(&axes));
        if found == Found::Finished && !args.train.force {
            log::info!("{label}: finished earlier ({}), skipped", p.args.out.display());
            continue;
        }
        log::info!("{label} → {}", p.args.out.display());
        // A stopped point's file is replaced where it cannot be resumed; a finished one
        // only with --force.
        let point_args = TrainArgs { fstar: fstar.clone(), force: found != Found::Absent, ..p.args.clone() };
        let prepared = if comm.is_root() { prepare(&point_args, args.train.force) } else { Ok(()) };
        comm.agree(prepared)?;
        match train::run(comm, &point_args)? {
            Ending::Done => {}
            Ending::Diverged => log::warn!("{label} diverged: recorded, the sweep goes on"),
            Ending::Preempted => {
                if comm.is_root() {
                    eprintln!(
                        "qtrain: sweep preempted at {label} (the same command resumes it and skips the finished points)"
                    );
                }
                return Ok(Ending::Preempted);
            }
            Ending::Differ => unreachable!("train::run does not compare"),
        }
    }
    let summary = if comm.is_root() { summarise(args, &axes, &planned) } else { Ok(()) };
    comm.agree(summary)?;
    Ok(Ending::Done)
}

/// Phases 2 to 4: the data, every point checked, and f* (`--fstar auto`: once, given
/// to every point as its value).
fn plan(comm: &mut Comm, args: &SweepArgs, axes: &[Axis]) -> Result<(Vec<Planned>, Option<String>)> {
    let train = &args.train;
    let mut problem = Problem::load(comm, &train.data, &train.objective, train.seed, 0)?;
    if let Some(b) = train.batch {
        comm.agree(problem.use_minibatches(b))?;
    }
    let entry = train::method_entry(comm, train)?;
    let smooth = train::estimate_smoothness(comm, train, &problem, entry);
    let points = comm.agree(plan_points(args, axes, problem.dim))?;
    let dataset_sha = checksum::of_source(comm, &problem.source)?;
    // The method name is the same at every point, so one set of matrices checks them all.
    let matrices = train::smoothness_matrices(comm, train, &problem, entry)?;
    let context = (&problem, &smooth, matrices.as_ref());
    let planned = comm.agree(check_points(comm, args, points, context, &dataset_sha))?;
    let fstar = match train.fstar.as_deref() {
        Some("auto") => {
            let x0 = vec![0.0; problem.dim];
            let sol = solve::newton(comm, &mut problem, x0, SOLVE_TOL, SOLVE_MAX_ITERS);
            let f = comm.agree(sol)?.f;
            log::info!("sweep: f* = {f:.15e} (Newton-CG, once for every point)");
            Some(format!("{f:e}"))
        }
        other => other.map(str::to_string),
    };
    Ok((planned, fstar))
}

/// Phase 5: what rank 0 finds at each point's path, told to every rank.
fn look(comm: &mut Comm, planned: &[Planned], force: bool) -> Result<Vec<Found>> {
    let found = if comm.is_root() { planned.iter().map(|p| inspect(p, force)).collect() } else { Ok(Vec::new()) };
    let codes: Vec<u8> = comm.agree(found)?.iter().map(|f| *f as u8).collect();
    Ok(comm.all_gather_bytes(&codes)[0].iter().map(|&c| decode(c)).collect())
}

/// Phase 1: the grid axes, the step factors and the flags a sweep does not take.
fn check_flags(args: &SweepArgs) -> Result<Vec<Axis>> {
    let train = &args.train;
    let per_point = "the sweep sets each point's step as a factor of the method's default: give --step-factors F1,F2,…";
    if let Some(step) = train.step {
        return Err(Error::config(format!("--step {step} with qtrain sweep"), per_point));
    }
    if train.step_factor != 1.0 {
        return Err(Error::config(format!("--step-factor {} with qtrain sweep", train.step_factor), per_point));
    }
    // A sweep resumes its interrupted points by itself; --resume (the advice a preempted
    // run prints) is accepted where there is something to resume from.
    if train.resume.is_some() && train.checkpoint_dir.is_none() {
        return Err(Error::config(
            "--resume without --checkpoint-dir",
            "a sweep resumes each interrupted point from --checkpoint-dir by itself: give the folder, or drop --resume",
        ));
    }
    if train.out.is_file() {
        return Err(Error::config(
            format!("--out {} is a file", train.out.display()),
            "qtrain sweep writes a folder of result files: give a folder name such as grid/",
        ));
    }
    if !(args.target.is_finite() && args.target >= 0.0) {
        return Err(Error::config(format!("--target {}", args.target), "the target ‖∇f‖² must be a number ≥ 0"));
    }
    grid::check_step_factors(&args.step_factors)?;
    grid::parse_axes(&args.grids)
}

/// Phase 3a: each key's SPEC (compressor keys: what the compressor's parser asks for at
/// dimension d), and the points.
fn plan_points(args: &SweepArgs, axes: &[Axis], d: usize) -> Result<Vec<Point>> {
    let train = &args.train;
    let keys = |spec: &str| spec::keys_read(|| compress::build(spec, d, train.seed).map(|_| ())).1;
    let places = grid::resolve(axes, &train.method, &train.compressor, keys)?;
    grid::points(axes, &places, &args.step_factors, &train.method, &train.compressor)
}

/// Phase 3b: every point's train flags, checked as train checks them, and its method
/// built (which builds its compressors) on this rank's part of the problem.
fn check_points(
    comm: &Comm,
    args: &SweepArgs,
    points: Vec<Point>,
    (problem, smooth, matrices): (&Problem, &Smoothness, Option<&Matrices>),
    dataset_sha: &str,
) -> Result<Vec<Planned>> {
    let train = &args.train;
    points
        .into_iter()
        .map(|point| {
            let mut a = train.clone();
            a.method = point.method.clone();
            a.compressor = point.compressor.clone();
            a.step_factor = point.step_factor;
            // Points are ranked by the first evaluated round at the target: measured
            // periods (`auto`) would make that resolution differ from point to point.
            if a.eval_every == EvalEvery::Auto {
                a.eval_every = EvalEvery::Every(1);
            }
            a.out = train.out.join(format!("{}.h5", point.name));
            a.checkpoint_dir = train.checkpoint_dir.as_ref().map(|d| d.join(&point.name));
            a.resume = a.checkpoint_dir.as_ref().map(|_| Resume::Auto);
            config::check_train(&a)?;
            let built = method::build(
                &a.method,
                &train::method_setup(&a, problem, smooth, matrices, (comm.rank(), comm.size())),
            )?;
            let settings = train::settings(&a, comm, problem, smooth, built.as_ref(), dataset_sha);
            Ok(Planned { point, args: a, settings })
        })
        .collect()
}

fn decode(code: u8) -> Found {
    match code {
        0 => Found::Absent,
        1 => Found::Finished,
        _ => Found::Stopped,
    }
}

/// Phase 5 (rank 0): what is at a point's result path. A finished file of other
/// settings is an error (unless `force`: then every point runs again); a file that is
/// not a result is never replaced.
fn inspect(p: &Planned, force: bool) -> Result<Found> {
    let out = &p.args.out;
    if !out.exists() {
        return Ok(Found::Absent);
    }
    let (found, differences) = hdf5_file::read_attrs(out, &[("status", Attr::Str(String::new()))], &p.settings)?;
    match &found[0] {
        Some(Attr::Str(status)) if train::is_finished(status) => {
            if !differences.is_empty() && !force {
                return Err(Error::Io {
                    path: out.clone(),
                    what: format!(
                        "is a finished result of other settings ({}); give another --out folder, or --force \
                         to run every point again",
                        differences.join(", ")
                    ),
                });
            }
            Ok(Found::Finished)
        }
        Some(_) => Ok(Found::Stopped),
        None => Err(Error::Io {
            path: out.clone(),
            what: "exists but is not a result of qtrain train (no status attribute); remove it to run this point"
                .into(),
        }),
    }
}

fn create_folder(comm: &mut Comm, dir: &Path) -> Result<()> {
    let made = if comm.is_root() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, format!("cannot create the sweep folder: {e}")))
    } else {
        Ok(())
    };
    comm.agree(made)
}

/// Rank 0, before a point runs: `--force` starts it anew (its old checkpoints removed);
/// without checkpoints, an `OUT.partial` that a killed run of this point left is removed
/// (with checkpoints, `--resume=auto` continues or replaces it).
fn prepare(a: &TrainArgs, force: bool) -> Result<()> {
    match &a.checkpoint_dir {
        Some(dir) if force && dir.exists() => {
            log::info!("--force: removing the checkpoints of the earlier run in {}", dir.display());
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, format!("cannot remove it: {e}")))
        }
        Some(_) => Ok(()),
        None => {
            let partial = hdf5_file::partial_path(&a.out);
            if !partial.exists() {
                return Ok(());
            }
            log::warn!("removing {}, left by an interrupted run of this point", partial.display());
            std::fs::remove_file(&partial).map_err(|e| Error::io(&partial, format!("cannot remove it: {e}")))
        }
    }
}

/// Phase 7 (rank 0): the ranking, `sweep.md` and the figures.
fn summarise(args: &SweepArgs, axes: &[Axis], planned: &[Planned]) -> Result<()> {
    let dir = &args.train.out;
    let outcomes = planned
        .iter()
        .map(|p| ranking::Outcome::read(&p.args.out, p.point.label(axes), args.target))
        .collect::<Result<Vec<_>>>()?;
    let points: Vec<Point> = planned.iter().map(|p| p.point.clone()).collect();
    let order = ranking::rank(&outcomes, args.rank_by);
    let table = ranking::table(axes, &points, &outcomes, &order, args.target, args.rank_by);
    let header = format!(
        "# qtrain sweep: {} {} --compressor {} ({} points)\n\n",
        args.train.method,
        args.grids.iter().map(|g| format!("--grid {g}")).collect::<Vec<_>>().join(" "),
        args.train.compressor,
        points.len()
    );
    let md = dir.join("sweep.md");
    std::fs::write(&md, format!("{header}{table}")).map_err(|e| Error::io(&md, e))?;
    let sweep = figures::Sweep {
        axes,
        points: &points,
        outcomes: &outcomes,
        order: &order,
        target: args.target,
        by: args.rank_by,
        method: &args.train.method,
    };
    let files = figures::write(dir, &sweep)?;
    println!("\n{table}");
    println!("table   {}", md.display());
    for f in &files {
        println!("figure  {}", f.display());
    }
    if order.first().is_some_and(|&best| outcomes[best].reached.is_none()) {
        println!("no point reached ‖∇f‖² ≤ {:e}: more --iters, other --step-factors or a larger --target", args.target);
    }
    Ok(())
}
