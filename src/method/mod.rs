//! Optimisation methods: the registry, and what every method builds itself from.
//!
//! A method is one file: a plan, a worker role and a server role on the round protocol
//! (`crate::protocol`, docs/architecture.md), its parameters read from its own SPEC
//! (`--method NAME:key=value,…`), and an [`Entry`] listed in [`METHODS`]. Methods never
//! print, write files, test `rank == 0`, or call MPI.

pub mod asylpg;
pub mod codec;
pub mod dcgd;
pub mod dgc;
pub mod diana;
pub mod ef;
pub mod gd;
pub mod lazy_aggregation;
pub mod powersgd;
pub mod scalecom;
pub mod signum;
pub mod sketched_sgd;
pub mod smoothness_aware;
pub mod step_size;
pub mod three_point;

use crate::comm::Comm;
use crate::compress::Class;
use crate::error::{Error, Result};
use crate::objective::smoothness::Smoothness;
use crate::objective::smoothness_matrix::Matrices;
use crate::objective::Objective;
use crate::protocol::{Layout, RoundStats, Topology};
use crate::spec::Spec;
use crate::worker::Worker;
pub use step_size::StepSize;

/// A built method, as the training loop drives it.
pub trait Method {
    /// Round t: x^t → x^{t+1} (x on every rank), the workers' data on this rank.
    /// `stop_vote`: this rank asks to stop after the round; `RoundStats::stop` says whether
    /// any rank did (agreed in the round's closing allreduce, so all stop together).
    fn round(
        &mut self,
        t: u64,
        x: &mut [f64],
        data: &mut [Worker],
        obj: &Objective,
        comm: &mut Comm,
        stop_vote: bool,
    ) -> Result<RoundStats>;

    /// The step size in use and the rule it came from.
    fn step_size(&self) -> &StepSize;

    /// Method-specific diagnostics of the last round, on evaluation rounds (may use
    /// unmetered collectives: every rank calls it).
    fn diagnostics(&mut self, data: &[Worker], comm: &mut Comm) -> Vec<(&'static str, f64)>;

    /// The method's state between rounds: what every rank shares (the plan, the server,
    /// the downlink; meaningful from rank 0, which always runs a server role) and each
    /// local worker's own (its role and its private streams), in local order.
    fn save(&self, data: &[Worker]) -> (Vec<u8>, Vec<Vec<u8>>);

    /// Restores what `save` wrote: `common` from rank 0 of the checkpointed run, one state
    /// per local worker (from whichever rank hosted it then).
    fn load(&mut self, data: &mut [Worker], common: &[u8], workers: &[&[u8]]) -> Result<()>;

    /// Arrays rank 0 stores under `/async/` when the run ends (the asynchronous
    /// execution's arrival log); none for the round protocol.
    fn records(&self) -> Vec<(&'static str, Vec<u64>)> {
        Vec::new()
    }
}

/// The collective a method's compressed messages go through (`--collective`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Collective {
    /// Allgather (or, on the server topology, gather) of the packed bytes.
    Allgather,
    /// Allreduce (or reduce) of the values on a support all workers share.
    Allreduce,
}

/// Everything a method builds itself from. Nothing here is specific to one method: a
/// method's own parameters are keys of its SPEC.
pub struct Setup<'a> {
    /// `--compressor` SPEC.
    pub compressor: &'a str,
    pub dim: usize,
    /// Weights w_i of all W workers, by global id.
    pub weights: &'a [f64],
    /// Global id of this rank's first worker.
    pub first_worker: usize,
    pub local_workers: usize,
    pub smoothness: &'a Smoothness,
    /// The workers' smoothness matrices, for the entries that ask for them.
    pub matrices: Option<&'a Matrices>,
    pub step: step_size::Override,
    /// `--collective`; None lets the compressor decide (allreduce when summable).
    pub collective: Option<Collective>,
    pub topology: Topology,
    /// `--batch` (None: full gradients).
    pub batch: Option<usize>,
    /// λ of the objective's ridge (λ/2)‖x‖², when it has one.
    pub ridge: Option<f64>,
    /// Rows of every worker, by global id.
    pub rows: &'a [u64],
    /// `--down-compressor` SPEC.
    pub down_compressor: &'a str,
    pub seed: u64,
    pub rank: usize,
    /// MPI ranks of the run.
    pub ranks: usize,
    /// `--checkpoint-dir` was given (the asynchronous execution refuses it).
    pub checkpoints: bool,
}

impl Setup<'_> {
    /// W, the number of logical workers.
    pub fn workers(&self) -> usize {
        self.weights.len()
    }

    /// n_eff = 1/Σ w_i²: the number of equally weighted workers whose mean has the same
    /// variance as Σ w_i Q_i (W for uniform weights). The step rules' "n".
    pub fn effective_workers(&self) -> f64 {
        1.0 / self.weights.iter().map(|w| w * w).sum::<f64>()
    }

    pub fn layout(&self) -> Layout<'_> {
        Layout {
            dim: self.dim,
            weights: self.weights,
            first_worker: self.first_worker,
            topology: self.topology,
            down_compressor: self.down_compressor,
            seed: self.seed,
            rank: self.rank,
        }
    }

    /// Builds `make()` on the ranks that run the server role, None elsewhere.
    pub fn server<S>(&self, make: impl FnOnce() -> S) -> Option<S> {
        self.layout().serves().then(make)
    }

    /// Fails for a method that takes no `--collective` choice.
    pub fn no_collective(&self, method: &str, why: &str) -> Result<()> {
        match self.collective {
            None => Ok(()),
            Some(c) => Err(Error::config(
                format!("--collective {} with --method {method}", crate::train::cli_name(c)),
                format!("{method} {why}: drop --collective"),
            )),
        }
    }
}

/// One registered method.
pub struct Entry {
    /// The name `--method` takes.
    pub name: &'static str,
    /// One line for `qtrain train --help` and the README.
    pub about: &'static str,
    /// Its SPEC keys: (key, meaning and default).
    pub keys: &'static [(&'static str, &'static str)],
    /// Whether its downlink is a dense direction, which `--down-compressor` can compress.
    pub dense_downlink: bool,
    /// Whether it needs the workers' smoothness matrices (`Setup::matrices`).
    pub smoothness_matrices: bool,
    /// Whether its step rule reads the Hessian variance L_± (`Smoothness::l_pm`, computed
    /// for quadratic objectives only).
    pub hessian_variance: bool,
    /// (method SPEC, compressor SPEC) pairs that exercise it on the embedded data
    /// (d = 126): the generic integration suites (layouts, topologies, minibatches) run
    /// every example of every entry (`qtrain methods --examples`).
    pub examples: &'static [(&'static str, &'static str)],
    pub build: fn(&Setup, &mut Spec) -> Result<Box<dyn Method>>,
}

/// Every method, in the order of the help text. A new method is one file and one line here.
pub const METHODS: &[Entry] = &[
    gd::ENTRY,
    dcgd::ENTRY,
    dcgd::BL_DCGD,
    ef::ENTRY,
    three_point::EF21,
    three_point::CLAG,
    three_point::LAG,
    lazy_aggregation::LAG_WK,
    lazy_aggregation::LAG_PS,
    lazy_aggregation::LAQ,
    three_point::V1,
    three_point::V2,
    three_point::V4,
    three_point::V5,
    three_point::MARINA,
    three_point::ADACGD,
    diana::ENTRY,
    diana::BL_DIANA,
    smoothness_aware::DCGD_PLUS,
    smoothness_aware::DIANA_PLUS,
    scalecom::ENTRY,
    sketched_sgd::ENTRY,
    signum::ENTRY,
    dgc::ENTRY,
    asylpg::ASYLPG,
    asylpg::SPARSE_ASYLPG,
    asylpg::ACC_ASYLPG,
];

/// `qtrain methods`: every entry with its keys, or (`examples`) its example pairs as
/// tab-separated lines.
pub fn describe(examples: bool) -> String {
    let mut out = String::new();
    for e in METHODS {
        if examples {
            e.examples.iter().for_each(|(m, c)| out.push_str(&format!("{m}\t{c}\n")));
            continue;
        }
        out.push_str(&format!("{}\n    {}\n", e.name, e.about));
        for (key, meaning) in e.keys {
            out.push_str(&format!("    {key:<10} {meaning}\n"));
        }
        if e.dense_downlink {
            out.push_str("    (its downlink can be compressed: --down-compressor)\n");
        }
    }
    out
}

/// The registry entry `--method` names (the part before ':').
pub fn entry(spec: &Spec) -> Result<&'static Entry> {
    METHODS.iter().find(|e| e.name == spec.name).ok_or_else(|| {
        Error::config(
            format!("unknown method '{}'", spec.name),
            format!("choose one of {}", METHODS.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")),
        )
    })
}

/// Builds the method a `--method` SPEC names.
pub fn build(spec: &str, setup: &Setup) -> Result<Box<dyn Method>> {
    let mut spec = Spec::parse_method(spec)?;
    let entry = entry(&spec)?;
    if setup.down_compressor.trim() != "identity" && !entry.dense_downlink {
        return Err(Error::config(
            format!("--down-compressor {} with --method {}", setup.down_compressor, entry.name),
            format!(
                "{}'s downlink is a sparse update; compressed downlinks apply to {}",
                entry.name,
                METHODS.iter().filter(|e| e.dense_downlink).map(|e| e.name).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let method = (entry.build)(setup, &mut spec)?;
    spec.finish_known(&entry.keys.iter().map(|k| k.0).collect::<Vec<_>>())?;
    Ok(method)
}

/// The `--compressor` SPEC of a method built around one compressor (ScaleCom's CLT-k, the
/// count sketch of Sketched-SGD), or an error naming the one it takes.
pub fn own_compressor(setup: &Setup, method: &str, name: &str, example: &str) -> Result<Spec> {
    let spec = Spec::parse_compressor(setup.compressor)?;
    if spec.name != name {
        return Err(Error::config(
            format!("{method} compresses with {name}, not '{}'", setup.compressor),
            format!("write --compressor {example}"),
        ));
    }
    Ok(spec)
}

/// ω of an unbiased compressor, or an error explaining which methods take a biased one.
pub fn require_unbiased(class: Class, method: &str, spec: &str) -> Result<f64> {
    match class {
        Class::Unbiased { omega } => Ok(omega),
        _ => Err(Error::config(
            format!("{method} needs an unbiased compressor, but '{spec}' is biased"),
            "use rand-k, qsgd, natural, nat-dither, terngrad or identity, or a method with \
             error feedback (--method ef or ef21)",
        )),
    }
}

/// Fails unless `--compressor` is of the compressor family that `example` (a SPEC such as
/// `block-qsgd[:blocks=B,s=S]`) names: the methods defined with one compressor.
pub fn require_family(setup: &Setup, method: &str, example: &str) -> Result<()> {
    let family = example.split([':', '[']).next().unwrap_or(example);
    if crate::spec::Spec::parse_compressor(setup.compressor)?.name == family {
        return Ok(());
    }
    Err(Error::config(
        format!("--method {method} --compressor {}", setup.compressor),
        format!("{method} is defined with {family}: write --compressor {example}"),
    ))
}

/// α of a contractive compressor, or of an unbiased one used as Q/(ω+1) (§0.1).
pub fn require_alpha(class: Class, method: &str, spec: &str) -> Result<f64> {
    class.alpha().ok_or_else(|| {
        Error::config(
            format!("{method} needs a contractive or unbiased compressor, but '{spec}' has no variance class"),
            "choose a compressor of the catalogue (qtrain train --help)",
        )
    })
}
