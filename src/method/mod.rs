//! Optimisation methods behind one trait.
//!
//! A method owns its worker-side state (error memories, shifts, local estimators) for
//! the workers of this rank and a replica of the server state. Each `step` turns x^t
//! into x^{t+1} given the workers' gradients at x^t (computed by the training loop,
//! which also records metrics): methods never print, write files or test `rank == 0`,
//! and they talk to other ranks only through `Comm` (ALGORITHMS.md §0.3, replicated
//! server pattern).

pub mod dcgd;
pub mod diana;
pub mod ef;
pub mod ef21;
pub mod exchange;
pub mod gd;
pub mod scalecom;
pub mod sketched_sgd;
pub mod step_size;

use crate::comm::Comm;
use crate::compress::Class;
use crate::error::{Error, Result};
use crate::objective::smoothness::Smoothness;
use crate::worker::Worker;
pub use step_size::StepSize;

/// Method names as the CLI spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodKind {
    /// Gradient descent: dense allreduce of the gradients, x ← x − γ∇f(x).
    Gd,
    /// Distributed compressed GD with an unbiased compressor (no memory).
    Dcgd,
    /// Classic error feedback (Seide et al. / Karimireddy et al.; §I.3).
    Ef,
    /// EF21 (Richtárik et al.; §G.2 with the EF21 three-point compressor).
    Ef21,
    /// DIANA: compressed gradient differences with learned shifts (§A.3 baseline).
    Diana,
    /// ScaleCom: cyclic local top-k through allreduce, low-pass filtered memory (§E).
    Scalecom,
    /// Sketched-SGD: count sketches summed by allreduce, heavy hitters, exact values (§C).
    SketchedSgd,
}

/// Where classic EF applies the step size (§I.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EfVariant {
    /// v_i = C(e_i + γ g_i), x ← x − Σ w_i v_i (EF21 repo `tkef_distributed_stable.py`).
    Inside,
    /// v_i = C(e_i + g_i), x ← x − γ Σ w_i v_i (EF21 repo `DL/EF_100K.py`).
    Outside,
}

/// How EF21 starts (§3 item 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Ef21Init {
    /// g_i⁰ = ∇f_i(x⁰) sent uncompressed, as the EF21 and 3PC reference code does.
    Full,
    /// g_i⁰ = C(∇f_i(x⁰)), as MiniFL does (g_i^{-1} = 0).
    Compressed,
}

/// What one round cost, beyond what `Comm` meters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RoundStats {
    /// Paper-convention bits sent by all workers to the server (§0.4).
    pub paper_bits_up: u64,
    /// Paper-convention bits sent by the server to the workers.
    pub paper_bits_down: u64,
    /// Workers that sent nothing this round (lazy methods).
    pub skipped: u32,
    /// Seconds spent encoding (this rank's workers).
    pub t_compress: f64,
    /// Seconds spent decoding and applying the server update.
    pub t_decode: f64,
}

pub trait Method {
    /// x ← x^{t+1}, given `workers[j].grad` = ∇f_i(x^t) for this rank's workers.
    fn step(&mut self, x: &mut [f64], workers: &mut [Worker], comm: &mut Comm) -> Result<RoundStats>;

    /// The step size in use and the rule it came from.
    fn step_size(&self) -> &StepSize;

    /// Method-specific diagnostics of the last round, computed on evaluation rounds
    /// (may use unmetered collectives: every rank calls it).
    fn diagnostics(&mut self, _comm: &mut Comm) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
}

/// Everything a method needs to build itself.
pub struct Setup<'a> {
    pub kind: MethodKind,
    pub compressor: &'a str,
    pub dim: usize,
    /// Weights w_i of all W workers, by global id.
    pub weights: &'a [f64],
    /// Global id of this rank's first worker.
    pub first_worker: usize,
    pub local_workers: usize,
    pub smoothness: &'a Smoothness,
    pub step: step_size::Override,
    pub ef_variant: EfVariant,
    pub ef21_init: Ef21Init,
    /// `--collective`; None picks allreduce for shared-support compressors.
    pub collective: Option<exchange::Collective>,
    pub seed: u64,
    /// ScaleCom low-pass filter β and uncompressed warm-up rounds (§E.2).
    pub beta: f64,
    pub warmup: u64,
    /// Sketched-SGD momentum ρ, HEAVYMIX recovery and step placement (§C.2).
    pub momentum: f64,
    pub heavymix: bool,
    pub sketch_step: SketchStep,
}

/// Where Sketched-SGD applies γ (§C.2 note on η placement).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SketchStep {
    /// Accumulate u and multiply the update by γ (reference code).
    Update,
    /// Accumulate γ·u (the paper); the update is applied as recovered.
    Accumulator,
}

impl Setup<'_> {
    pub fn workers(&self) -> usize {
        self.weights.len()
    }
}

pub fn build(setup: &Setup) -> Result<Box<dyn Method>> {
    Ok(match setup.kind {
        MethodKind::Gd => Box::new(gd::Gd::new(setup)?),
        MethodKind::Dcgd => Box::new(dcgd::Dcgd::new(setup)?),
        MethodKind::Ef => Box::new(ef::Ef::new(setup)?),
        MethodKind::Ef21 => Box::new(ef21::Ef21::new(setup)?),
        MethodKind::Diana => Box::new(diana::Diana::new(setup)?),
        MethodKind::Scalecom => Box::new(scalecom::ScaleCom::new(setup)?),
        MethodKind::SketchedSgd => Box::new(sketched_sgd::SketchedSgd::new(setup)?),
    })
}

/// ω of an unbiased compressor, or an error explaining which methods take a biased one.
pub fn require_unbiased(class: Class, method: &str, spec: &str) -> Result<f64> {
    match class {
        Class::Unbiased { omega } => Ok(omega),
        Class::Contractive { .. } => Err(Error::config(
            format!("{method} needs an unbiased compressor, but '{spec}' is biased"),
            "use rand-k, qsgd, natural, nat-dither, terngrad or identity, or a method with \
             error feedback (--method ef or ef21)",
        )),
    }
}

/// x ← x − γ g.
pub fn descend(x: &mut [f64], gamma: f64, g: &[f64]) {
    for (xj, gj) in x.iter_mut().zip(g) {
        *xj -= gamma * gj;
    }
}
