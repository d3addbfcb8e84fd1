//! What the user typed: clap definitions of the subcommands and their flags, and the
//! optional config file. Validation into ready-to-use values lives in `config.rs`;
//! defaults live here only.

use crate::data::SplitRule;
use crate::eval_schedule::EvalEvery;
use crate::method::Collective;
use crate::objective::ObjectiveKind;
use crate::protocol::Topology;
use crate::worker::Weighting;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Rounds of the demo (and of `qtrain` without arguments).
pub const DEMO_ITERS: u64 = 2000;
/// `qtrain solve` (and `--fstar auto`): stop at ‖∇f‖ ≤ this, after at most this many
/// Newton iterations.
pub const SOLVE_TOL: f64 = 1e-10;
pub const SOLVE_MAX_ITERS: usize = 100;

const AFTER_HELP: &str = "\
Run under MPI, e.g.  mpirun -n 4 target/release/qtrain train --data a9a.txt …
Without a subcommand, qtrain trains on the embedded mushrooms data (the demo).";

#[derive(Parser, Debug)]
#[command(name = "qtrain", version, about = "Communication-compressed distributed training over MPI", after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

// Parsed once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model with a (compressed) distributed method; rank 0 writes HDF5 metrics.
    #[command(args_override_self = true)]
    Train(TrainArgs),
    /// Compute the optimum f* (Newton-CG over MPI) to measure f − f*.
    #[command(args_override_self = true)]
    Solve(SolveArgs),
    /// Split a LIBSVM file into per-rank shard files part-0.svm … part-{N-1}.svm.
    #[command(args_override_self = true)]
    Shard(ShardArgs),
    /// Train on the embedded mushrooms data (what qtrain does without arguments).
    #[command(args_override_self = true)]
    Demo(DemoArgs),
    /// Summarise result files: a table of what ran, its final state and its per-round cost.
    #[command(args_override_self = true)]
    Report(ReportArgs),
    /// Project the time per round to more ranks with a latency–bandwidth model.
    #[command(args_override_self = true)]
    Project(ProjectArgs),
    /// Write a seeded synthetic LIBSVM data set (Zipf features, planted labels).
    #[command(args_override_self = true)]
    Generate(GenerateArgs),
    /// Train every point of a grid (SPEC keys × step factors) inside one mpirun, then rank
    /// them by bits or time to a target ‖∇f‖², with a heatmap.
    #[command(args_override_self = true, after_help = SWEEP_AFTER_HELP)]
    Sweep(SweepArgs),
    /// List the methods, their SPEC keys and defaults.
    Methods(MethodsArgs),
    /// List the compressors with their class for a dimension.
    Compressors(CompressorsArgs),
    /// Are two result files the same run bit for bit (timings aside)? Exit 0 if so, 1 if
    /// not (naming the first differing row of each column), 2 when a file cannot be read.
    #[command(args_override_self = true)]
    Compare(CompareArgs),
}

#[derive(Args, Debug, Clone)]
pub struct CompressorsArgs {
    /// Print one example SPEC per compressor family instead, a line each.
    #[arg(long)]
    pub examples: bool,
    /// The dimension d the classes are computed for.
    #[arg(long, value_name = "D", default_value_t = 126)]
    pub dim: usize,
}

#[derive(Args, Debug, Clone)]
pub struct MethodsArgs {
    /// Print each method's example (method SPEC, compressor SPEC) pairs as tab-separated
    /// lines instead (what the integration suites run).
    #[arg(long)]
    pub examples: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// HDF5 result files written by qtrain train.
    #[arg(required = true, value_name = "FILE.h5")]
    pub files: Vec<PathBuf>,
    /// Write figures (PNG and SVG) into DIR: convergence against rounds, bits and time;
    /// scaling (time split, bytes per rank) when the files cover several rank counts.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also print, per run, the round, bits and training time at which f − f* ≤ F.
    #[arg(long, value_name = "F")]
    pub target: Option<f64>,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// A result file of qtrain train (e.g. the uninterrupted run).
    #[arg(value_name = "A.h5")]
    pub first: PathBuf,
    /// The other (e.g. the preempted and resumed run).
    #[arg(value_name = "B.h5")]
    pub second: PathBuf,
    /// Also ignore the columns that count the ranks' bytes and calls (wire bytes
    /// included): for runs on different rank counts with the same --workers.
    #[arg(long)]
    pub across_layouts: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ProjectArgs {
    /// A result file of qtrain train (its median round is projected).
    #[arg(value_name = "FILE.h5")]
    pub file: PathBuf,
    /// Rank counts to project to.
    #[arg(long, value_name = "P,P,…", value_delimiter = ',', default_value = "64,256,1024")]
    pub ranks: Vec<usize>,
    /// Link bandwidth, e.g. 10Gbit/s, 1gbit, 100Mbit/s, 1.25GB/s.
    #[arg(long, value_name = "RATE", default_value = "10Gbit/s")]
    pub bandwidth: String,
    /// Per-message latency α, e.g. 2us, 50us, 1.5ms.
    #[arg(long, value_name = "TIME", default_value = "2us")]
    pub latency: String,
    /// strong: the data set is fixed; weak: each rank keeps its rows.
    #[arg(long, value_enum, default_value_t = crate::cost_model::Scaling::Strong)]
    pub scaling: crate::cost_model::Scaling,
    /// Also write projection.png / .svg into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct GenerateArgs {
    #[arg(long, value_name = "M")]
    pub rows: usize,
    #[arg(long, value_name = "D")]
    pub features: usize,
    /// Nonzero features per row.
    #[arg(long, value_name = "Z", default_value_t = 30)]
    pub nnz: usize,
    /// Zipf exponent of the feature frequencies.
    #[arg(long, value_name = "S", default_value_t = 1.1)]
    pub zipf: f64,
    /// Features of the planted model (the most frequent ones).
    #[arg(long, value_name = "P", default_value_t = 1000)]
    pub planted: usize,
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

/// Where the data come from and how they are split (shared by train and solve).
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Training data in LIBSVM format; a pattern with {rank} gives one file per rank
    /// (e.g. 'shards/part-{rank}.svm').
    #[arg(long, value_name = "PATH")]
    pub data: String,
    /// The model dimension d (default: the largest feature index in the data).
    #[arg(long, value_name = "D")]
    pub features: Option<usize>,
    /// Logical workers W, a multiple of the rank count (default: one per rank).
    #[arg(long, value_name = "W")]
    pub workers: Option<usize>,
    /// How rows are divided into the workers' contiguous blocks.
    #[arg(long, value_enum, default_value_t = SplitRule::Balanced)]
    pub split: SplitRule,
    /// f = Σ w_i f_i with w_i = m_i/m (samples) or 1/W (workers, as the papers' code).
    #[arg(long, value_enum, default_value_t = Weighting::Samples)]
    pub weighting: Weighting,
    /// Prepend a constant feature 1 to every row, training and test (LIBLINEAR's -B 1):
    /// d grows by one and x_0 is the intercept, regularised like the other coordinates.
    #[arg(long)]
    pub bias: bool,
}

/// The objective (shared by train and solve).
#[derive(Args, Debug, Clone)]
pub struct ObjectiveArgs {
    #[arg(long, value_enum, default_value_t = ObjectiveKind::Logistic)]
    pub objective: ObjectiveKind,
    /// Regularisation strength λ.
    #[arg(long, value_name = "F", default_value_t = 0.1)]
    pub lambda: f64,
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub objective: ObjectiveArgs,
    /// Held-out LIBSVM data for test accuracy (a {rank} pattern works too).
    #[arg(long, value_name = "PATH")]
    pub test: Option<String>,
    /// Method SPEC NAME[:key=value,…]: gd, dcgd, ef[:variant=inside|outside],
    /// ef21[:init=full|compressed], clag:zeta=F, lag:zeta=F, 3pcv1, 3pcv2, 3pcv4,
    /// 3pcv5[:p=F], adacgd:zeta=F (the 3PC family, each with init=…),
    /// lag-wk[:D=N,xi=F], lag-ps[:D=N,xi=F], laq[:bits=B,D=N,xi=F,tbar=T],
    /// marina[:p=F|auto][,vr], diana[:rule=…], dcgd-plus, diana-plus, bl-dcgd, bl-diana,
    /// scalecom[:beta=F,warmup=N], sketched-sgd:k=K[,p2=P,momentum=F,heavymix,
    /// gamma-at=update|accumulator], asylpg[:mu=F,epoch=M,model=…], sparse-asylpg,
    /// acc-asylpg:unverified, signum[:momentum=F], dgc[:momentum=F,clip=F,warmup=N]
    /// (README "Methods"; `qtrain methods` lists every key).
    #[arg(long, value_name = "SPEC", default_value = "gd")]
    pub method: String,
    /// Compressor SPEC: identity, rand-k:k=K[,unscaled][,shared], top-k:k=K, topk-nd:k=K,s=S,
    /// qsgd:s=S[,norm=inf], natural, nat-dither:s=S[,norm=inf], sign, terngrad, perm-k,
    /// corr-q, indep-q, opt-sparse:budget=F, smooth-dither, block-qsgd[:blocks=B],
    /// rand-tau-plus, lowp:b=B, sparse-lowp:k=K,b=B, powersgd:rank=R (ef, gd) (README "Compressors"; `qtrain
    /// compressors` lists them);
    /// clt-k:k=K (scalecom); sketch:rows=R,cols=C (sketched-sgd). A ';'-separated list
    /// for the methods that take several (3pcv2 'C;Q', 3pcv4 'C1;C2', adacgd 'C1;…;Cm').
    #[arg(long, value_name = "SPEC", default_value = "identity")]
    pub compressor: String,
    /// How compressed messages travel (default: allreduce for shared-support
    /// compressors such as rand-k:k=K,shared, allgather otherwise; gd: allreduce). On
    /// the server topology: gather or reduce to rank 0.
    #[arg(long, value_enum)]
    pub collective: Option<Collective>,
    /// replicated: every rank runs a replica of the server; server: rank 0 gathers the
    /// uplink, runs the server and broadcasts the downlink (docs/architecture.md).
    #[arg(long, value_enum, default_value_t = Topology::Replicated)]
    pub topology: Topology,
    /// Compressor SPEC of the downlink (EF21-style broadcast state, §G.3); identity =
    /// uncompressed. For methods whose downlink is a dense direction.
    #[arg(long, value_name = "SPEC", default_value = "identity")]
    pub down_compressor: String,
    /// The smoothness matrices of dcgd-plus and diana-plus: dense (L_i = c·A_iᵀA_i/m_i + λI,
    /// eigendecomposed once per worker) or diagonal (a bound D_i ⪰ L_i, O(d) memory).
    #[arg(long, value_enum, default_value_t = crate::objective::smoothness_matrix::Shape::Dense)]
    pub smoothness_matrix: crate::objective::smoothness_matrix::Shape,
    /// The most memory (MiB per rank) the dense smoothness matrices may take; above it
    /// the run is refused with the alternatives.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub matrix_memory: u64,
    /// Minibatch size B: each worker's gradient is the mean over B of its rows, drawn
    /// without replacement from its private stream every round (default: all rows).
    /// The metrics still hold the full ‖∇f‖².
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    /// Straggler emulation (a test and benchmark aid): rank RANK computes every gradient
    /// FACTOR times slower (it sleeps FACTOR − 1 times each computation's duration after
    /// it), which changes the timings and never the iterates.
    #[arg(long, value_name = "RANK:FACTOR", value_parser = parse_straggler)]
    pub straggler: Option<Straggler>,
    /// Number of rounds.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub iters: u64,
    /// Stop early once ‖∇f(x)‖² ≤ F.
    #[arg(long, value_name = "F")]
    pub tol: Option<f64>,
    /// Seed of every random stream (§0.3).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Start from the point in FILE (text, one value per line) instead of x⁰ = 0.
    #[arg(long, value_name = "FILE")]
    pub x0: Option<PathBuf>,
    /// Step size γ (overrides the method's default rule).
    #[arg(long, value_name = "F", conflicts_with = "step_factor")]
    pub step: Option<f64>,
    /// Multiply the method's default step size by F.
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub step_factor: f64,
    /// The optimal value f*, for f − f*; 'auto' computes it first (Newton-CG).
    #[arg(long, value_name = "F|auto")]
    pub fstar: Option<String>,
    /// Result file (HDF5), written by rank 0.
    #[arg(long, value_name = "FILE.h5")]
    pub out: PathBuf,
    /// Replace an existing result file.
    #[arg(long)]
    pub force: bool,
    /// Record a metrics row every K rounds (each costs the loss values and one allreduce
    /// of d floats); 'auto' measures that cost over rounds 1–16 and evaluates every K
    /// rounds, K in 1, 2, 5, 10, 20, … so that monitoring stays under 5 % of the run.
    #[arg(long, value_name = "K|auto", default_value = "auto")]
    pub eval_every: EvalEvery,
    /// Print a progress line every K rounds (default: about 10 lines per run).
    #[arg(long, value_name = "K")]
    pub log_every: Option<u64>,
    /// Measure test accuracy every K rounds (default: with the progress line).
    #[arg(long, value_name = "K")]
    pub test_every: Option<u64>,
    /// Write buffered metrics rows to the HDF5 file every K rows.
    #[arg(long, value_name = "K", default_value_t = 100)]
    pub flush_every: usize,
    /// Compare a digest of the model across ranks on every evaluated round (an
    /// allgather of 8 bytes); a mismatch stops the run with an error.
    #[arg(long)]
    pub check_replicas: bool,
    /// Write a checkpoint every N rounds (and when preempted by SIGTERM or SIGUSR1) into
    /// --checkpoint-dir.
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Folder of the checkpoints (every rank must reach it: a shared file system on a
    /// cluster).
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Complete checkpoints to keep (older ones are removed).
    #[arg(long, value_name = "K", default_value_t = 2)]
    pub checkpoint_keep: usize,
    /// Continue from the newest complete checkpoint in --checkpoint-dir, bit for bit (on
    /// any rank count with the same --workers); the result file --out continues too.
    /// `--resume=auto` (for job scripts that are requeued): resume when the folder has a
    /// complete checkpoint, else start at round 0, replacing an OUT.partial that a
    /// stopped attempt of this run left.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "always", value_name = "auto")]
    pub resume: Option<Resume>,
}

/// `qtrain sweep`'s default step factors: 2^0 … 2^11 of the method's rule, as the papers tune.
pub const SWEEP_STEP_FACTORS: &str = "1,2,4,8,16,32,64,128,256,512,1024,2048";
/// `qtrain sweep`'s default target ‖∇f‖² (the papers' bits to ‖∇f‖² ≤ 1e-6).
pub const SWEEP_TARGET: &str = "1e-6";

const SWEEP_AFTER_HELP: &str = "\
Every train flag applies to every point, except --step and --step-factor (the sweep sets
each point's factor: use --step-factors). Points: the cartesian product of the --grid axes
and the step factors, run one after another, each written to DIR/KEY=V_…_step=F.h5. A rerun
skips the points whose file is finished (converged, max-iters or diverged) and reruns or
resumes the others; --force reruns every point. With --checkpoint-dir CK each point
checkpoints into CK/<point>/ and an interrupted point resumes from there (as --resume=auto,
which the sweep implies; --resume is accepted and changes nothing).
At the end rank 0 prints the ranked table and writes DIR/sweep.md, DIR/heatmap.png/.svg and
DIR/best.png/.svg (README \"Sweeps\").
  mpirun -n 2 qtrain sweep --data phishing.txt --method clag --compressor top-k:k=2 \\
      --grid 'zeta=0,1,4' --step-factors 1,4 --out grid/";

const SWEEP_OUT_HELP: &str = "Folder of the sweep: a result file per point, sweep.md and the figures";
const SWEEP_CHECKPOINT_HELP: &str =
    "Folder of the points' checkpoints, CK/<point>/: an interrupted point resumes from there (as --resume=auto)";

/// `qtrain sweep`: the train flags (with `--out DIR` a folder), the grid and the ranking.
#[derive(Args, Debug, Clone)]
#[command(
    mut_arg("out", |a| a.value_name("DIR").help(SWEEP_OUT_HELP)),
    mut_arg("step", |a| a.hide(true)),
    mut_arg("step_factor", |a| a.hide(true)),
    mut_arg("force", |a| a.help("Rerun every point, replacing finished results")),
    mut_arg("checkpoint_dir", |a| a.value_name("CK").help(SWEEP_CHECKPOINT_HELP)),
    mut_arg("resume", |a| a.hide(true))
)]
pub struct SweepArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// A grid axis: KEY is a key of the method SPEC (qtrain methods) or of the compressor
    /// SPEC (e.g. zeta, k); each value replaces (or adds) the key in its SPEC. Repeat the
    /// flag for more axes. With a ';' list of compressors, the one SPEC that takes KEY.
    #[arg(long = "grid", value_name = "KEY=V1,V2,…", action = clap::ArgAction::Append)]
    pub grids: Vec<String>,
    /// Multiples of the method's default step size, tried at every grid point.
    #[arg(long, value_name = "F1,F2,…", value_delimiter = ',', default_value = SWEEP_STEP_FACTORS)]
    pub step_factors: Vec<f64>,
    /// The target ‖∇f‖² (metrics column grad_norm_sq): points are ranked by what the first
    /// evaluated round at or below it cost.
    #[arg(long, value_name = "F", default_value = SWEEP_TARGET)]
    pub target: f64,
    /// What ranks the points: bits (bits_up, the uplink's paper-convention bits; bits_down
    /// are shown, not counted) or time (training seconds) to the target.
    #[arg(long, value_enum, default_value_t = RankBy::Bits)]
    pub rank_by: RankBy,
}

/// What `qtrain sweep` ranks its points by (to the target).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankBy {
    /// Cumulative bits_up.
    Bits,
    /// Cumulative training seconds (the `time` column).
    Time,
}

/// When `--resume` resumes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Always: no complete checkpoint is an error.
    Always,
    /// When there is a complete checkpoint.
    Auto,
}

#[derive(Args, Debug, Clone)]
pub struct SolveArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub objective: ObjectiveArgs,
    /// Stop when ‖∇f(x)‖ ≤ F.
    #[arg(long, value_name = "F", default_value_t = SOLVE_TOL)]
    pub tol: f64,
    /// Newton iterations at most.
    #[arg(long, value_name = "N", default_value_t = SOLVE_MAX_ITERS)]
    pub max_iters: usize,
    /// Save x* as text, one value per line (usable as --x0).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace an existing --out file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ShardArgs {
    /// The LIBSVM file to split.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    /// Number of shard files.
    #[arg(long, value_name = "N")]
    pub parts: usize,
    /// Folder for part-0.svm … part-{N-1}.svm.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = SplitRule::Balanced)]
    pub split: SplitRule,
    /// Replace existing shard files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DemoArgs {
    /// Result file (default: results/demo-<time>.h5).
    #[arg(long, value_name = "FILE.h5")]
    pub out: Option<PathBuf>,
    /// Number of rounds.
    #[arg(long, value_name = "N", default_value_t = DEMO_ITERS)]
    pub iters: u64,
}

/// Flags of earlier versions that became keys of a method SPEC: (flag, what to write).
const MOVED_FLAGS: &[(&str, &str)] = &[
    ("--beta", "--method scalecom:beta=F"),
    ("--warmup", "--method scalecom:warmup=N"),
    ("--momentum", "--method sketched-sgd:k=K,momentum=F"),
    ("--heavymix", "--method sketched-sgd:k=K,heavymix"),
    ("--sketch-step", "--method sketched-sgd:k=K,gamma-at=update|accumulator"),
    ("--ef-variant", "--method ef:variant=inside|outside"),
    ("--ef21-init", "--method ef21:init=full|compressed"),
];

/// A flag that moved into a method SPEC gets a message naming its new form (clap alone
/// would only say that it is unexpected).
pub fn check_moved_flags(args: &[String]) -> Result<(), String> {
    for (i, arg) in args.iter().enumerate() {
        let flag = arg.split('=').next().unwrap_or(arg);
        if let Some((old, new)) = MOVED_FLAGS.iter().find(|(old, _)| *old == flag) {
            return Err(format!("{old} is now a key of the method SPEC: write {new} (README \"Methods\")"));
        }
        // --resume takes its optional value only with '=' (so that it cannot swallow the
        // next argument); the spaced form would read as a stray word.
        if arg == "--resume" && args.get(i + 1).is_some_and(|v| v == "auto") {
            return Err("write --resume=auto (with '='): --resume alone requires a checkpoint".into());
        }
    }
    Ok(())
}

/// The part of a config-file line before its comment: a `#` at the start of the line or
/// after whitespace, outside double quotes (so `out = runs/#3.h5` keeps its `#`).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut previous_blank = true;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted && previous_blank => return &line[..i],
            _ => {}
        }
        previous_blank = c.is_whitespace();
    }
    line
}

/// The flags that the lines of a config file stand for (`path` names it in errors).
pub fn config_flags(text: &str, path: &str) -> Result<Vec<String>, String> {
    let mut flags = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = strip_comment(line).trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) =
            line.split_once('=').ok_or_else(|| format!("{path}:{}: expected 'key = value', found '{line}'", n + 1))?;
        let (key, value) = (key.trim().replace('_', "-"), value.trim().trim_matches('"'));
        match value {
            "true" => flags.push(format!("--{key}")),
            "false" => {}
            _ => flags.push(format!("--{key}={value}")),
        }
    }
    Ok(flags)
}

/// Prepends the `key = value` lines of `--config FILE` to the command line, so that flags
/// typed on the command line override the file (the command accepts a flag twice and
/// keeps the last). Lines: `key = value`, `flag = true`, `# comments`.
pub fn expand_config(args: Vec<String>) -> Result<Vec<String>, String> {
    let Some(pos) = args.iter().position(|a| a == "--config" || a.starts_with("--config=")) else {
        return Ok(args);
    };
    let (path, consumed) = match args[pos].strip_prefix("--config=") {
        Some(p) => (p.to_string(), 1),
        None => (args.get(pos + 1).cloned().ok_or("--config needs a file name")?, 2),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: cannot read the config file: {e}"))?;
    let from_file = config_flags(&text, &path)?;
    // The file's flags go right after the subcommand name, the command line's after them.
    let mut out: Vec<String> = args[..pos].to_vec();
    out.extend(args[pos + consumed..].iter().cloned());
    let insert_at = out
        .iter()
        .position(|a| ["train", "sweep", "solve", "shard", "demo"].contains(&a.as_str()))
        .map_or(1, |i| i + 1);
    out.splice(insert_at..insert_at, from_file);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_flags_name_their_spec_form() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let e = check_moved_flags(&args(&["qtrain", "train", "--beta", "0.5"])).unwrap_err();
        assert!(e.contains("--method scalecom:beta=F"), "{e}");
        let e = check_moved_flags(&args(&["qtrain", "train", "--ef21-init=compressed"])).unwrap_err();
        assert!(e.contains("ef21:init="), "{e}");
        assert!(check_moved_flags(&args(&["qtrain", "train", "--method", "scalecom:beta=0.5"])).is_ok());
        let e = check_moved_flags(&args(&["qtrain", "train", "--resume", "auto"])).unwrap_err();
        assert!(e.contains("--resume=auto"), "{e}");
        assert!(check_moved_flags(&args(&["qtrain", "train", "--resume", "--iters", "5"])).is_ok());
    }

    /// Sweep takes every train flag; --grid accumulates (args_override_self keeps only the
    /// last of the other flags, so a config file's values can be overridden); --out is its
    /// folder.
    #[test]
    fn sweep_parses_train_flags_repeated_grids_and_step_factors() {
        let cli = Cli::try_parse_from([
            "qtrain",
            "sweep",
            "--data",
            "d.svm",
            "--method",
            "clag",
            "--iters",
            "5",
            "--iters",
            "7",
            "--grid",
            "zeta=0,1",
            "--grid",
            "k=1,2",
            "--step-factors",
            "1,4",
            "--out",
            "grid/",
        ])
        .unwrap();
        let Some(Command::Sweep(a)) = cli.command else { panic!("a sweep") };
        assert_eq!(a.grids, ["zeta=0,1", "k=1,2"]);
        assert_eq!(a.step_factors, [1.0, 4.0]);
        assert_eq!((a.train.iters, a.train.out.to_str(), a.target, a.rank_by), (7, Some("grid/"), 1e-6, RankBy::Bits));
        let cli = Cli::try_parse_from(["qtrain", "sweep", "--data", "d", "--out", "g"]).unwrap();
        let Some(Command::Sweep(a)) = cli.command else { panic!("a sweep") };
        let powers: Vec<f64> = (0..12).map(|i| f64::from(1u32 << i)).collect();
        assert_eq!(a.step_factors, powers);
        assert!(a.grids.is_empty());
    }

    #[test]
    fn config_file_lines_become_flags_that_the_command_line_overrides() {
        let dir = crate::testing::TempDir::new("cfg");
        let path = dir.join("run.conf");
        std::fs::write(&path, "# a run\nmethod = ef21\ncompressor = \"top-k:k=5\"\nforce = true\niters=10\n").unwrap();
        let args: Vec<String> = ["qtrain", "train", "--config", path.to_str().unwrap(), "--iters", "20"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let expanded = expand_config(args).unwrap();
        assert_eq!(
            expanded,
            vec![
                "qtrain",
                "train",
                "--method=ef21",
                "--compressor=top-k:k=5",
                "--force",
                "--iters=10",
                "--iters",
                "20"
            ]
        );
        // `#` starts a comment only at the start of a line or after whitespace.
        std::fs::write(&path, "out = runs/#3.h5 # the third run\ncompressor = \"top-k:k=5 # not a comment\"\n")
            .unwrap();
        let expanded =
            expand_config(vec!["qtrain".into(), "train".into(), "--config".into(), path.to_str().unwrap().into()])
                .unwrap();
        assert_eq!(expanded, vec!["qtrain", "train", "--out=runs/#3.h5", "--compressor=top-k:k=5 # not a comment"]);
        std::fs::write(&path, "no equals sign\n").unwrap();
        let err = expand_config(vec!["qtrain".into(), "--config".into(), path.to_str().unwrap().into()]).unwrap_err();
        assert!(err.contains("run.conf:1"), "{err}");
    }
}

/// `--straggler RANK:FACTOR`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Straggler {
    pub rank: usize,
    pub factor: f64,
}

fn parse_straggler(text: &str) -> std::result::Result<Straggler, String> {
    let parsed = text.split_once(':').and_then(|(r, f)| Some((r.trim().parse().ok()?, f.trim().parse().ok()?)));
    match parsed {
        Some((rank, factor)) if f64::is_finite(factor) && factor >= 1.0 => Ok(Straggler { rank, factor }),
        _ => Err(format!("'{text}': expected RANK:FACTOR with FACTOR ≥ 1, e.g. 1:3 (rank 1 computes 3× slower)")),
    }
}
