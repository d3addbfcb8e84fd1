//! `qtrain train`: set-up, the training loop and the result file.
//!
//! Round t: a checkpoint when one is due; on evaluation rounds the monitor computes
//! f(x^t) and ‖∇f(x^t)‖² and rank 0 writes the row; then the method's round
//! (docs/architecture.md) turns x^t into x^{t+1}. Stop decisions are taken from
//! allreduced values and agreed, so every rank leaves the loop in the same round.
//!
//! A run with `--checkpoint-dir` can be resumed bit for bit (`--resume`): a checkpoint of
//! round t holds x^t, the method's state, every random stream's position and the metrics
//! ledger, and the resumed run writes row t again, exactly as the uninterrupted run did.

use crate::checkpoint::{self, Fingerprint, Snapshot, StateReader, StateWriter};
use crate::cli::{Resume, TrainArgs, SOLVE_MAX_ITERS, SOLVE_TOL};
use crate::comm::Comm;
use crate::config::{self, Fstar};
use crate::data::{checksum, shard, Csr};
use crate::error::{Error, Result};
use crate::eval_schedule::Schedule;
use crate::method::{self, step_size, Method, Setup};
use crate::metrics::hdf5_file::{self, Attr, MetricsFile};
use crate::metrics::summary::{self, RunInfo};
use crate::metrics::Row;
use crate::monitor::{Evaluation, Ledger, Monitor};
use crate::objective::smoothness::{self, Smoothness};
use crate::objective::smoothness_matrix::{self, Matrices};
use crate::problem::Problem;
use crate::spec::Spec;
use crate::{allocations, faults, resources, signals, solve};
use std::time::Instant;

/// How a run ended (stored as the `status` attribute).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Running = 0,
    Converged = 1,
    Diverged = 2,
    WriteFailed = 3,
    Preempted = 4,
}

/// How `qtrain train` ended, for the exit code (README "Errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Converged or ran its rounds (exit 0).
    Done,
    /// Stopped by SIGTERM/SIGUSR1 after writing a checkpoint (exit 4).
    Preempted,
    /// f or ∇f stopped being finite (exit 5).
    Diverged,
    /// `qtrain compare`: the two runs differ (exit 1, as cmp and diff do).
    Differ,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Running => "max-iters",
            Status::Converged => "converged",
            Status::Diverged => "diverged",
            Status::WriteFailed => "write-failed",
            Status::Preempted => "preempted",
        }
    }

    fn from_code(code: u64) -> Status {
        match code {
            0 => Status::Running,
            1 => Status::Converged,
            2 => Status::Diverged,
            _ => Status::WriteFailed,
        }
    }
}

pub fn run(comm: &mut Comm, args: &TrainArgs) -> Result<Ending> {
    let fstar_mode = comm.agree(config::check_train(args))?;
    let faults = comm.agree(faults::from_env())?;
    comm.agree(signals::install())?;
    let resuming = resuming(comm, args)?;
    let target_ok = match (comm.is_root(), resuming) {
        (true, false) => hdf5_file::check_target(&args.out, args.force),
        _ => Ok(()),
    };
    comm.agree(target_ok)?;

    let load_start = Instant::now();
    let mut problem = Problem::load(comm, &args.data, &args.objective, args.seed, data_free_ranks(args))?;
    let loading = resources::Loading::measured(comm, &problem, load_start.elapsed().as_secs_f64());
    log::info!(
        "{}: {} rows, d = {}, {} workers on {} ranks ({} split, {} weighting), {}",
        problem.source.describe(),
        problem.total_rows(),
        problem.dim,
        problem.total_workers(),
        comm.size(),
        cli_name(args.data.split),
        cli_name(args.data.weighting),
        problem.labels.describe()
    );
    if let Some(b) = args.batch {
        comm.agree(problem.use_minibatches(b))?;
        log::info!("minibatches of {b} rows per worker and round, without replacement");
    }
    if let Some(s) = args.straggler {
        comm.agree(config::straggler(s, comm.size()))?;
        if s.rank == comm.rank() {
            problem.workers.iter_mut().for_each(|w| w.set_slowdown(s.factor));
        }
        log::info!("straggler emulation: rank {} computes every gradient {}× slower (--straggler)", s.rank, s.factor);
    }
    let d = problem.dim;
    let test = match &args.test {
        Some(t) if args.data.bias => {
            let (a, b) = shard::load_test(comm, &shard::Source::new(t), d - 1, problem.labels)?;
            Some((a.with_bias_column(), b))
        }
        Some(t) => Some(shard::load_test(comm, &shard::Source::new(t), d, problem.labels)?),
        None => None,
    };
    let x0 = match &args.x0 {
        Some(path) => comm.agree(config::read_x0(path, d))?,
        None => vec![0.0; d],
    };
    let fstar = optimum(comm, &mut problem, fstar_mode)?;
    let entry = method_entry(comm, args)?;
    let smooth = estimate_smoothness(comm, args, &problem, entry);

    let matrices = smoothness_matrices(comm, args, &problem, entry)?;
    let setup = method_setup(args, &problem, &smooth, matrices.as_ref(), (comm.rank(), comm.size()));
    let mut method = comm.agree(method::build(&args.method, &setup))?;
    log::info!("step size γ = {:.6e}: {}", method.step_size().gamma, method.step_size().rule);

    let dataset_sha = checksum::of_source(comm, &problem.source)?;
    let fingerprint = fingerprint(args, &problem, method.as_ref(), &dataset_sha);
    let start = match (&args.checkpoint_dir, resuming) {
        (Some(dir), true) => resume(comm, dir, &fingerprint, method.as_mut(), &mut problem)?,
        _ => Start { round: 0, x: x0, ledger: Ledger::default(), next_log: 0 },
    };
    let file = if comm.is_root() {
        let mut attrs = attributes(args, comm, &problem, &smooth, method.as_ref(), fstar, &dataset_sha);
        attrs.extend([
            ("load_seconds".into(), Attr::F64(loading.seconds)),
            ("data_bytes".into(), Attr::U64(loading.data_bytes)),
        ]);
        if resuming {
            attrs.push(("resumed_at".into(), Attr::U64(start.round)));
            MetricsFile::resume(&args.out, start.round, args.flush_every, &identity(&attrs), &attrs).map(Some)
        } else {
            MetricsFile::create(&args.out, args.force, args.flush_every, &attrs).and_then(|mut f| {
                f.write_array("workers", "rows", &problem.rows_per_worker)?;
                f.write_array("workers", "weight", &problem.weights)?;
                f.write_array("workers", "L", &smooth.l_i)?;
                if args.checkpoint_dir.is_some() {
                    f.keep_unfinished();
                }
                Ok(Some(f))
            })
        }
    } else {
        Ok(None)
    };
    let file = comm.agree(file)?;

    let mut training = Training {
        comm,
        monitor: Monitor::new(d, problem.total_workers()),
        problem: &mut problem,
        method: method.as_mut(),
        args,
        fstar,
        test: test.as_ref(),
        test_margins: Vec::new(),
        recorder: Recorder { file, error: None },
        fingerprint,
        faults,
    };
    let outcome = training.train(start);
    let Training { mut recorder, comm, method, .. } = training;
    for (name, values) in method.records() {
        recorder.write(|f| f.write_array("async", name, &values));
    }
    let outcome = match recorder.error.take() {
        Some(e) => outcome.and(Err(e)),
        None => outcome,
    };
    finish(comm, recorder.file, args, loading.shard_bytes, outcome)
}

/// Ranks that hold no rows: 1 for the asynchronous execution (`async` in the method
/// SPEC: rank 0 is its parameter server), else 0.
pub fn data_free_ranks(args: &TrainArgs) -> usize {
    usize::from(Spec::parse_method(&args.method).is_ok_and(|spec| spec.has_flag("async")))
}

/// The registry entry of `--method` (agreed: a bad name fails on every rank).
pub fn method_entry(comm: &mut Comm, args: &TrainArgs) -> Result<&'static method::Entry> {
    comm.agree(Spec::parse_method(&args.method).and_then(|spec| method::entry(&spec)))
}

/// L, L_i, L̃, L_max, and the Hessian variance L_± when the method reads it (logged).
pub fn estimate_smoothness(comm: &mut Comm, args: &TrainArgs, problem: &Problem, entry: &method::Entry) -> Smoothness {
    let mut smooth = smoothness::estimate(comm, &problem.workers, problem.dim, &problem.objective, args.seed);
    log::info!("smoothness: L = {:.6e}, L̃ = {:.6e}, L_max = {:.6e}", smooth.l, smooth.l_tilde, smooth.l_max);
    if entry.hessian_variance {
        smooth.l_pm = smoothness::hessian_variance(comm, &problem.workers, problem.dim, &problem.objective, args.seed);
        if let Some(l_pm) = smooth.l_pm {
            log::info!("Hessian variance L_± = {l_pm:.6e} (quadratic objective)");
        }
    }
    smooth
}

/// The workers' smoothness matrices, when the method asks for them (§A.3 set-up).
pub fn smoothness_matrices(
    comm: &mut Comm,
    args: &TrainArgs,
    problem: &Problem,
    entry: &method::Entry,
) -> Result<Option<Matrices>> {
    if !entry.smoothness_matrices {
        return Ok(None);
    }
    smoothness_matrix::prepare(comm, &problem.workers, &problem.objective, args.smoothness_matrix, args.matrix_memory)
        .map(Some)
}

/// What `method::build` takes from the flags and the loaded problem (also what
/// `qtrain sweep` checks each point with before any run).
pub fn method_setup<'a>(
    args: &'a TrainArgs,
    problem: &'a Problem,
    smooth: &'a Smoothness,
    matrices: Option<&'a Matrices>,
    (rank, ranks): (usize, usize),
) -> Setup<'a> {
    Setup {
        compressor: &args.compressor,
        dim: problem.dim,
        weights: &problem.weights,
        first_worker: problem.first_worker,
        local_workers: problem.workers.len(),
        smoothness: smooth,
        matrices,
        step: step_size::Override { step: args.step, factor: args.step_factor },
        collective: args.collective,
        topology: args.topology,
        batch: args.batch,
        ridge: problem.objective.ridge(),
        rows: &problem.rows_per_worker,
        down_compressor: &args.down_compressor,
        seed: args.seed,
        rank,
        ranks,
        checkpoints: args.checkpoint_dir.is_some(),
    }
}

/// Whether a result's `status` attribute says that its run finished (converged, ran its
/// rounds or diverged), rather than stopped to be resumed.
pub fn is_finished(status: &str) -> bool {
    [Status::Running, Status::Converged, Status::Diverged].iter().any(|s| s.name() == status)
}

/// Whether this run continues a checkpoint: `--resume`, or `--resume=auto` when rank 0
/// sees a complete one (then every rank is told, so that all take the same path). An
/// `auto` start at round 0 removes the `OUT.partial` of a stopped attempt.
fn resuming(comm: &mut Comm, args: &TrainArgs) -> Result<bool> {
    let (Some(Resume::Auto), Some(dir)) = (args.resume, &args.checkpoint_dir) else {
        return Ok(args.resume.is_some());
    };
    let mut found = [0u64];
    let local = if comm.is_root() {
        found[0] = u64::from(checkpoint::has_complete(dir));
        let partial = hdf5_file::partial_path(&args.out);
        match (found[0], partial.exists()) {
            (0, true) => {
                log::warn!(
                    "--resume=auto: no checkpoint in {}: starting at round 0, replacing {}",
                    dir.display(),
                    partial.display()
                );
                std::fs::remove_file(&partial).map_err(|e| Error::io(&partial, format!("cannot remove it: {e}")))
            }
            _ => Ok(()),
        }
    } else {
        Ok(())
    };
    comm.agree_sums(local, &mut found)?;
    if found[0] == 0 {
        log::info!("--resume=auto: no complete checkpoint in {}: starting at round 0", dir.display());
    }
    Ok(found[0] == 1)
}

/// Where the loop starts: round 0, or a checkpoint's round with its model and ledger.
struct Start {
    round: u64,
    x: Vec<f64>,
    ledger: Ledger,
    /// The round of the next progress line.
    next_log: u64,
}

/// Reads the newest complete checkpoint and restores the method from it.
fn resume(
    comm: &mut Comm,
    dir: &std::path::Path,
    fingerprint: &Fingerprint,
    method: &mut dyn Method,
    problem: &mut Problem,
) -> Result<Start> {
    let ids: Vec<usize> = problem.workers.iter().map(|w| w.id).collect();
    let restored = checkpoint::read_newest(comm, dir, fingerprint, &ids)?;
    let start = (|| {
        let mut r = StateReader::new(&restored.common, restored.path.join("common.bin").display().to_string())?;
        let mut state = r.section("loop")?;
        let round = state.u64("round")?;
        let mut x = vec![0.0; problem.dim];
        state.f64s_into("x", &mut x)?;
        let ledger = Ledger { round: read_row(&mut state, "last round")?, totals: read_row(&mut state, "totals")? };
        let next_log = state.u64("next progress line")?;
        state.finish()?;
        let common = r.bytes("method")?;
        r.finish()?;
        let states: Vec<&[u8]> = restored.workers.iter().map(Vec::as_slice).collect();
        method.load(&mut problem.workers, common, &states)?;
        Ok(Start { round, x, ledger, next_log })
    })();
    let start = comm.agree(start)?;
    log::info!("resumed from {} (round {})", restored.path.display(), start.round);
    Ok(start)
}

fn read_row(r: &mut StateReader, name: &str) -> Result<Row> {
    let bytes = r.bytes(name)?;
    bytemuck::try_pod_read_unaligned(bytes).map_err(|_| crate::error::Error::Checkpoint {
        what: format!("entry '{name}' has {} bytes, a metrics row has {}", bytes.len(), std::mem::size_of::<Row>()),
    })
}

/// The settings a resume must share with the checkpointed run: everything that shapes
/// the iterates (the rank count may differ, with the same --workers).
fn fingerprint(args: &TrainArgs, p: &Problem, method: &dyn Method, dataset_sha: &str) -> Fingerprint {
    let text = |v: &str| v.to_string();
    Fingerprint(vec![
        ("dataset_sha256".into(), text(dataset_sha)),
        ("features".into(), p.dim.to_string()),
        ("bias".into(), args.data.bias.to_string()),
        ("rows".into(), p.total_rows().to_string()),
        ("workers".into(), p.total_workers().to_string()),
        ("split".into(), cli_name(args.data.split)),
        ("weighting".into(), cli_name(args.data.weighting)),
        ("objective".into(), cli_name(args.objective.objective)),
        ("lambda".into(), format!("{:e}", args.objective.lambda)),
        ("method".into(), text(args.method.trim())),
        ("compressor".into(), text(args.compressor.trim())),
        ("collective".into(), args.collective.map_or_else(|| "default".into(), cli_name)),
        ("topology".into(), cli_name(args.topology)),
        ("down_compressor".into(), text(args.down_compressor.trim())),
        ("batch".into(), args.batch.map_or_else(|| "full".into(), |b| b.to_string())),
        ("smoothness_matrix".into(), cli_name(args.smoothness_matrix)),
        ("seed".into(), args.seed.to_string()),
        ("step".into(), format!("{:e}", method.step_size().gamma)),
    ])
}

/// The attributes that identify a run's result file (checked when a resume continues it).
fn identity(attrs: &[(String, Attr)]) -> Vec<(String, Attr)> {
    const KEYS: [&str; 10] = [
        "dataset_sha256",
        "bias",
        "method_spec",
        "compressor",
        "topology",
        "down_compressor",
        "objective",
        "lambda",
        "seed",
        "workers",
    ];
    attrs.iter().filter(|(k, _)| KEYS.contains(&k.as_str())).cloned().collect()
}

/// The attributes a finished result of this run holds that say which run it is: the
/// identity, the rounds, the step and the evaluation schedule (`qtrain sweep` skips a
/// point only when its file has these values).
pub fn settings(
    args: &TrainArgs,
    comm: &Comm,
    p: &Problem,
    s: &Smoothness,
    method: &dyn Method,
    dataset_sha: &str,
) -> Vec<(String, Attr)> {
    const MORE: [&str; 4] = ["iters", "step", "eval_every", "batch"];
    let attrs = attributes(args, comm, p, s, method, None, dataset_sha);
    let mut settings = identity(&attrs);
    settings.extend(attrs.into_iter().filter(|(k, _)| MORE.contains(&k.as_str())));
    settings
}

/// f* for the f_gap column: given, unknown, or computed first by Newton-CG.
fn optimum(comm: &mut Comm, problem: &mut Problem, mode: Fstar) -> Result<Option<f64>> {
    Ok(match mode {
        Fstar::Given(v) => Some(v),
        Fstar::Unknown => None,
        Fstar::Auto => {
            let sol = solve::newton(comm, problem, vec![0.0; problem.dim], SOLVE_TOL, SOLVE_MAX_ITERS);
            let sol = comm.agree(sol)?;
            log::info!(
                "f* = {:.15e} (Newton-CG: {} iterations, ‖∇f‖ = {:.2e})",
                sol.f,
                sol.newton_iters,
                sol.grad_norm
            );
            Some(sol.f)
        }
    })
}

struct Outcome {
    x: Vec<f64>,
    last: Row,
    totals: Row,
    status: Status,
    rounds: u64,
    test_accuracy: Option<f64>,
    /// The last evaluated row whose f and ‖∇f‖² were finite (for a diverged run).
    last_finite: Option<Row>,
    /// Heap allocations inside the rounds after this process's first (hot paths reuse
    /// their buffers, so this should be 0).
    round_allocations: u64,
    /// The evaluation period in force at the end (`--eval-every auto`'s choice).
    eval_every: u64,
}

/// Rank 0's result file, and the first error writing it (the run then stops, agreed).
struct Recorder {
    file: Option<MetricsFile>,
    error: Option<Error>,
}

impl Recorder {
    fn write(&mut self, f: impl FnOnce(&mut MetricsFile) -> Result<()>) {
        if let (Some(file), None) = (self.file.as_mut(), &self.error) {
            self.error = f(file).err();
        }
    }
}

struct Training<'a> {
    comm: &'a mut Comm,
    monitor: Monitor,
    problem: &'a mut Problem,
    method: &'a mut dyn Method,
    args: &'a TrainArgs,
    fstar: Option<f64>,
    test: Option<&'a (Csr, Vec<f64>)>,
    /// Reused by every test-accuracy evaluation.
    test_margins: Vec<f64>,
    recorder: Recorder,
    fingerprint: Fingerprint,
    faults: Vec<faults::Fault>,
}

impl Training<'_> {
    fn train(&mut self, start: Start) -> Result<Outcome> {
        let Start { round: mut t, mut x, mut ledger, mut next_log } = start;
        let (first, iters) = (t, self.args.iters);
        let log_every = self.args.log_every.unwrap_or((iters / 10).max(1));
        let test_every = self.args.test_every.unwrap_or(log_every);
        let mut last = Row::default();
        let mut last_finite = None;
        let mut test_accuracy = None;
        let mut status = Status::Running;
        let mut preempted = false;
        let mut round_allocations = 0;
        let mut schedule = Schedule::new(self.args.eval_every, first, iters);
        loop {
            schedule.at_round_start(t, self.comm);
            let every = self.args.checkpoint_every;
            // A stop request without --checkpoint-dir ends the run with the rows so far.
            if (preempted && self.args.checkpoint_dir.is_some()) || (every.is_some_and(|n| t % n == 0) && t != first) {
                self.checkpoint(t, &x, &ledger, next_log)?;
            }
            if schedule.evaluates(t) || t == iters || preempted {
                last = ledger.row(t, self.evaluate(t, &x), self.fstar);
                self.recorder.write(|f| f.push(last));
                if t >= next_log || t == iters || preempted {
                    log::info!("{}", progress(&last, iters));
                    next_log = t + log_every;
                }
                status = self.agree_status(&last);
                if status != Status::Diverged {
                    last_finite = Some(last);
                }
                if preempted && status == Status::Running {
                    status = Status::Preempted;
                }
            }
            if self.test.is_some() && (t % test_every == 0 || t == iters || status != Status::Running) {
                let acc = self.test_accuracy(&x);
                self.recorder.write(|f| f.push_series("test", "accuracy", t, acc));
                test_accuracy = Some(acc);
            }
            if t == iters || status != Status::Running {
                break;
            }

            self.inject_faults(t, &mut x);
            self.comm.take_meter();
            allocations::trace(t > first);
            let (start, allocations) = (Instant::now(), allocations::count());
            let (data, obj) = (&mut self.problem.workers, &self.problem.objective);
            let stats = self.method.round(t, &mut x, data, obj, self.comm, signals::requested())?;
            ledger.record(&stats, &self.comm.take_meter(), start.elapsed().as_secs_f64());
            allocations::trace(false);
            if t > first {
                round_allocations += allocations::count() - allocations;
            }
            t += 1;
            if stats.stop {
                match self.args.checkpoint_dir {
                    Some(_) => log::warn!("stop requested (SIGTERM or SIGUSR1): checkpoint at round {t}, then exit"),
                    None => {
                        log::warn!("stop requested (SIGTERM or SIGUSR1): no --checkpoint-dir, so exit at round {t}")
                    }
                }
                preempted = true;
            }
            if schedule.evaluates(t) || t == iters {
                self.record_diagnostics(t);
                if self.args.check_replicas {
                    check_replicas(self.comm, &x)?;
                }
            }
        }
        if let Some(e) = self.recorder.error.take() {
            return Err(e);
        }
        let (totals, eval_every) = (ledger.totals, schedule.every());
        Ok(Outcome { x, last, totals, status, rounds: t, test_accuracy, last_finite, round_allocations, eval_every })
    }

    /// The checkpoint of round t, every rank together: the metrics rows before t on disk
    /// first, then every rank's part, then the manifest.
    fn checkpoint(&mut self, t: u64, x: &[f64], ledger: &Ledger, next_log: u64) -> Result<()> {
        let dir = self.args.checkpoint_dir.clone().expect("checkpoints need --checkpoint-dir (checked)");
        self.recorder.write(|f| f.flush());
        let flushed = self.recorder.error.take().map_or(Ok(()), Err);
        self.comm.agree(flushed)?;
        let (common, workers) = self.method.save(&self.problem.workers);
        let common = self.comm.is_root().then(|| {
            let mut w = StateWriter::new();
            w.section("loop", |s| {
                s.u64("round", t);
                s.f64s("x", x);
                s.bytes("last round", bytemuck::bytes_of(&ledger.round));
                s.bytes("totals", bytemuck::bytes_of(&ledger.totals));
                s.u64("next progress line", next_log);
            });
            w.bytes("method", &common);
            w.into_bytes()
        });
        let ids = self.problem.workers.iter().map(|w| w.id);
        let snapshot = Snapshot { round: t, common, workers: ids.zip(workers.iter().map(Vec::as_slice)).collect() };
        checkpoint::write(self.comm, &dir, self.args.checkpoint_keep, &self.fingerprint, snapshot)?;
        log::info!("checkpoint of round {t} in {}", dir.display());
        Ok(())
    }

    /// `QTRAIN_FAULT` (crate::faults): what this rank suffers at the start of round t.
    fn inject_faults(&mut self, t: u64, x: &mut [f64]) {
        let due: Vec<faults::Kind> = faults::due(&self.faults, self.comm.rank(), t).collect();
        for kind in due {
            log::warn!("QTRAIN_FAULT: {kind:?} at round {t}");
            match kind {
                faults::Kind::Nan => x[0] = f64::NAN,
                faults::Kind::Huge => self.comm.claim_extra_bytes_next_gather(1 << 31),
                other => faults::strike(other),
            }
        }
    }

    fn evaluate(&mut self, t: u64, x: &[f64]) -> Evaluation {
        self.monitor.evaluate(t, x, &mut self.problem.workers, &self.problem.objective, self.comm)
    }

    /// The most severe of every rank's view of the run's state (an unmetered allreduce
    /// of one integer), so all ranks stop together.
    fn agree_status(&mut self, row: &Row) -> Status {
        let local = if self.recorder.error.is_some() {
            Status::WriteFailed
        } else if !(row.loss.is_finite() && row.grad_norm_sq.is_finite()) {
            Status::Diverged
        } else if self.args.tol.is_some_and(|tol| row.grad_norm_sq <= tol) {
            Status::Converged
        } else {
            Status::Running
        };
        Status::from_code(self.comm.max_u64(local as u64))
    }

    /// Stores the method's diagnostics of round t − 1 under `/diagnostics/NAME`.
    fn record_diagnostics(&mut self, t: u64) {
        for (name, value) in self.method.diagnostics(&self.problem.workers, self.comm) {
            log::debug!("round {}: {name} = {value}", t - 1);
            self.recorder.write(|f| f.push_series(&format!("diagnostics/{name}"), "value", t, value));
        }
    }

    fn test_accuracy(&mut self, x: &[f64]) -> f64 {
        let (a, b) = self.test.expect("test data present");
        self.test_margins.resize(b.len(), 0.0);
        a.margins(x, &mut self.test_margins);
        let correct = self.test_margins.iter().zip(b).filter(|(&m, &label)| (m >= 0.0) == (label > 0.0)).count();
        let mut counts = [correct as f64, b.len() as f64];
        self.comm.monitor_sum(&mut counts);
        counts[0] / counts[1]
    }
}

fn progress(row: &Row, iters: u64) -> String {
    let gap = if row.f_gap.is_finite() { format!("  f−f* {:.3e}", row.f_gap) } else { String::new() };
    let per_iter = if row.iter > 0 { row.time / row.iter as f64 } else { 0.0 };
    let down = if row.bits_down > 0 { format!("  bits↓ {:.4e}", row.bits_down as f64) } else { String::new() };
    format!(
        "iter {:>width$}/{iters}  f {:.10e}{gap}  ‖∇f‖² {:.3e}  bits↑ {:.4e}{down}  {:.1} µs/iter",
        row.iter,
        row.loss,
        row.grad_norm_sq,
        row.bits_up as f64,
        1e6 * per_iter,
        width = iters.to_string().len()
    )
}

/// Checks that every rank holds the same model, stores the final state and moves the
/// result file into place; prints the summary on rank 0.
fn finish(
    comm: &mut Comm,
    file: Option<MetricsFile>,
    args: &TrainArgs,
    shard_bytes: u64,
    outcome: Result<Outcome>,
) -> Result<Ending> {
    let outcome = comm.agree(outcome)?;
    let digest = check_replicas(comm, &outcome.x)?;
    let round_allocations = comm.max_u64(outcome.round_allocations);
    if round_allocations > 0 {
        log::info!("{round_allocations} heap allocations in the rounds after the first (the most on one rank)");
    }
    let peak_rss = comm.max_u64(resources::peak_rss_bytes().unwrap_or(0));
    if peak_rss > 0 {
        log::info!(
            "peak memory {:.1} MB on the largest rank, {:.2}× the largest shard",
            peak_rss as f64 / 1e6,
            peak_rss as f64 / shard_bytes.max(1) as f64
        );
    }
    let written = match file {
        Some(mut file) => {
            let mut extra = vec![
                ("status".to_string(), Attr::Str(outcome.status.name().into())),
                ("rounds".to_string(), Attr::U64(outcome.rounds)),
                ("x_digest".to_string(), Attr::Str(format!("{digest:016x}"))),
                ("final_loss".to_string(), Attr::F64(outcome.last.loss)),
                ("final_grad_norm_sq".to_string(), Attr::F64(outcome.last.grad_norm_sq)),
                ("allocations_after_first_round".to_string(), Attr::U64(round_allocations)),
                ("peak_rss_bytes".to_string(), Attr::U64(peak_rss)),
                ("shard_bytes".to_string(), Attr::U64(shard_bytes)),
                ("eval_every_used".to_string(), Attr::U64(outcome.eval_every)),
            ];
            if let (Status::Diverged, Some(row)) = (outcome.status, outcome.last_finite) {
                extra.push(("diverged_at".into(), Attr::U64(outcome.last.iter)));
                extra.push(("last_finite_iter".into(), Attr::U64(row.iter)));
                extra.push(("last_finite_loss".into(), Attr::F64(row.loss)));
                extra.push(("last_finite_grad_norm_sq".into(), Attr::F64(row.grad_norm_sq)));
            }
            file.set_attrs(&extra)
                .and_then(|_| file.write_array("model", "x", &outcome.x))
                .and_then(|_| file.finish())
                .map(Some)
        }
        None => Ok(None),
    };
    let written = comm.agree(written)?;
    if let Some(path) = written {
        let info = RunInfo {
            method: &args.method,
            compressor: &args.compressor,
            ranks: comm.size(),
            workers: args.data.workers.unwrap_or(comm.size()),
            status: outcome.status.name(),
            test_accuracy: outcome.test_accuracy,
            rounds: outcome.rounds,
        };
        println!("{}", summary::render(&info, &outcome.last, &outcome.totals));
        println!("metrics           {}", path.display());
    }
    Ok(match outcome.status {
        Status::Diverged => {
            if comm.is_root() {
                let last = outcome.last_finite.map_or_else(
                    || "no finite evaluation".to_string(),
                    |r| {
                        format!(
                            "the last finite one at round {}: f = {:e}, ‖∇f‖² = {:e}",
                            r.iter, r.loss, r.grad_norm_sq
                        )
                    },
                );
                eprintln!(
                    "qtrain: the run diverged at round {} (f or ∇f is not finite; {last}); try a smaller --step-factor",
                    outcome.last.iter
                );
            }
            Ending::Diverged
        }
        Status::Preempted => {
            if comm.is_root() {
                match &args.checkpoint_dir {
                    Some(dir) => eprintln!(
                        "qtrain: preempted after round {}: checkpoint in {}; continue with the same command and --resume",
                        outcome.rounds,
                        dir.display()
                    ),
                    None => eprintln!(
                        "qtrain: stopped by a signal after round {}: the rows so far are in {} (status preempted); \
                         without --checkpoint-dir the run cannot be resumed",
                        outcome.rounds,
                        args.out.display()
                    ),
                }
            }
            Ending::Preempted
        }
        _ => Ending::Done,
    })
}

/// Fails on every rank alike unless all ranks hold bit-identical models; returns the
/// digest.
fn check_replicas(comm: &mut Comm, x: &[f64]) -> Result<u64> {
    let digest = model_digest(x);
    let digests = comm.all_gather_u64(digest);
    if digests.iter().any(|&h| h != digest) {
        let e = Error::Numerical {
            what: format!("the model replicas differ across ranks (digests {digests:x?})"),
            fix: "this is a bug in a method's replicated server state: please report it with the command".into(),
        };
        return Err(Error::Ranks { failed: vec![(0, e.to_string())], ranks: comm.size() });
    }
    Ok(digest)
}

/// FNV-1a over the bits of x: equal digests on all ranks mean bit-identical replicas.
pub fn model_digest(x: &[f64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in x {
        for b in v.to_bits().to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn attributes(
    args: &TrainArgs,
    comm: &Comm,
    p: &Problem,
    s: &Smoothness,
    method: &dyn Method,
    fstar: Option<f64>,
    dataset_sha: &str,
) -> Vec<(String, Attr)> {
    let text = |v: &str| Attr::Str(v.to_string());
    vec![
        ("qtrain_version".into(), text(env!("CARGO_PKG_VERSION"))),
        ("git_commit".into(), text(option_env!("QTRAIN_GIT_COMMIT").unwrap_or("unknown"))),
        ("command_line".into(), text(&std::env::args().collect::<Vec<_>>().join(" "))),
        ("config".into(), text(&format!("{args:?}"))),
        ("method".into(), text(method_name(&args.method))),
        ("method_spec".into(), text(&args.method)),
        ("compressor".into(), text(&args.compressor)),
        ("topology".into(), text(&cli_name(args.topology))),
        ("down_compressor".into(), text(&args.down_compressor)),
        ("batch".into(), Attr::U64(args.batch.unwrap_or(0) as u64)),
        ("smoothness_matrix".into(), text(&cli_name(args.smoothness_matrix))),
        ("objective".into(), text(&cli_name(args.objective.objective))),
        ("lambda".into(), Attr::F64(args.objective.lambda)),
        ("ranks".into(), Attr::U64(comm.size() as u64)),
        ("workers".into(), Attr::U64(p.total_workers() as u64)),
        ("seed".into(), Attr::U64(args.seed)),
        ("dataset".into(), text(&p.source.describe())),
        ("dataset_sha256".into(), text(dataset_sha)),
        ("test_dataset".into(), text(args.test.as_deref().unwrap_or_default())),
        ("rows".into(), Attr::U64(p.total_rows())),
        ("features".into(), Attr::U64(p.dim as u64)),
        ("bias".into(), Attr::U64(u64::from(args.data.bias))),
        ("labels".into(), text(&p.labels.describe())),
        ("split".into(), text(&cli_name(args.data.split))),
        ("weighting".into(), text(&cli_name(args.data.weighting))),
        ("iters".into(), Attr::U64(args.iters)),
        ("step".into(), Attr::F64(method.step_size().gamma)),
        ("step_rule".into(), text(&method.step_size().rule)),
        ("L".into(), Attr::F64(s.l)),
        ("L_tilde".into(), Attr::F64(s.l_tilde)),
        ("L_max".into(), Attr::F64(s.l_max)),
        ("L_pm".into(), Attr::F64(s.l_pm.unwrap_or(f64::NAN))),
        ("fstar".into(), Attr::F64(fstar.unwrap_or(f64::NAN))),
        ("eval_every".into(), Attr::U64(args.eval_every.attribute())),
        ("mpi_library".into(), text(&mpi_library())),
        (
            "started_unix".into(),
            Attr::U64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())),
        ),
    ]
}

/// The method's name in a `--method` SPEC (`scalecom` of `scalecom:beta=0.5`).
pub fn method_name(spec: &str) -> &str {
    spec.split(':').next().unwrap_or(spec).trim()
}

/// A flag value as the command line spells it (`sketched-sgd`, `remainder-last`).
pub fn cli_name(v: impl clap::ValueEnum) -> String {
    v.to_possible_value().map_or_else(String::new, |p| p.get_name().to_string())
}

fn mpi_library() -> String {
    mpi::environment::library_version()
        .map(|v| v.trim_end_matches('\0').trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
