//! Compressors behind one trait (ALGORITHMS.md §0.6, catalogue in §1).
//!
//! A compressor turns a worker's f64 vector into a packed byte message (`encode`) and
//! adds a scaled decoded message into an f64 accumulator (`decode_add`). Two counts are
//! kept apart (§0.4): the *paper-convention bits* of a message (`paper_bits`, the
//! formula of §1 for that compressor) and the *wire bytes* (the message length).
//!
//! Randomness comes from the caller's stream: a worker's private stream for dithering
//! coins and rand-k masks (§0.3). Shared-support compressors draw their support once per
//! round from a shared stream (`begin_round`, called on every rank whether or not its
//! workers skip). Decoding is deterministic, which keeps the replicated server state
//! bit-identical on every rank.
//!
//! One instance per rank serves all of that rank's workers and its server role: encoding
//! keeps only scratch between calls, never a worker's state.

pub mod adaptive_rand;
pub mod bernoulli_sparse;
pub mod block_qsgd;
pub mod clt_k;
pub mod correlated;
pub mod count_sketch;
pub mod elias;
pub mod fields;
pub mod half_cast;
pub mod identity;
pub mod low_rank;
pub mod model_quant;
pub mod nat_dither;
pub mod natural;
pub mod opt_sparse;
pub mod perm_k;
pub mod qsgd;
pub mod rand_k;
pub mod rand_tau_plus;
pub mod rounding;
pub mod sign;
pub mod smooth_dither;
pub mod smoothness_aware;
pub mod sparse;
pub mod sparse_lowp;
pub mod summable;
pub mod terngrad;
pub mod threshold;
pub mod top_k;
pub mod topk_nd;
pub mod wire;

#[cfg(test)]
mod properties;

use crate::error::{Error, Result};
use crate::rng::Stream;
pub use crate::spec::Spec;

/// The variance class a compressor belongs to (ALGORITHMS.md §0.1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Class {
    /// E Q(x) = x and E‖Q(x) − x‖² ≤ ω‖x‖².
    Unbiased { omega: f64 },
    /// E‖C(x) − x‖² ≤ (1 − α)‖x‖² (biased).
    Contractive { alpha: f64 },
    /// A count sketch of r > 1 rows read by medians (§C.1): no variance class, only
    /// ‖v̂ − v‖∞ ≤ 2‖v‖/√c with probability ≥ 1 − d·e^{−r/8}. Used by Sketched-SGD only.
    Sketch { rows: usize, cols: usize },
    /// ‖C(x) − x‖² ≤ bound for every x, whatever its norm: an *absolute* compressor
    /// (Sahu et al. 2021; threshold sparsification, bound = dτ²). Not contractive, so only
    /// the methods whose analysis covers it take it (`ef`: the memory stays below √bound).
    Absolute { bound: f64 },
}

impl Class {
    /// The contraction constant α; an unbiased Q is used as Q/(ω+1) ∈ 𝔹(1/(ω+1)) (§0.1).
    /// None for a sketch.
    pub fn alpha(self) -> Option<f64> {
        match self {
            Class::Unbiased { omega } => Some(1.0 / (omega + 1.0)),
            Class::Contractive { alpha } => Some(alpha),
            Class::Sketch { .. } | Class::Absolute { .. } => None,
        }
    }

    /// The factor that makes the compressor contractive: 1/(ω+1) for an unbiased one
    /// (§0.1), 1 for one that already is.
    pub fn contractive_scale(self) -> f64 {
        match self {
            Class::Unbiased { omega } => 1.0 / (omega + 1.0),
            Class::Contractive { .. } | Class::Sketch { .. } | Class::Absolute { .. } => 1.0,
        }
    }
}

pub trait Compressor: Send {
    /// The SPEC it was built from, e.g. `top-k:k=10`.
    fn spec(&self) -> &str;

    /// Its class and constant for the dimension it was built for.
    fn class(&self) -> Class;

    /// Clears `out` and writes the packed message for `x` into it. `rng` is the
    /// worker's private stream (§0.3); deterministic compressors do not touch it.
    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>);

    /// acc += scale · decode(msg). Fails, without panicking, on a truncated or
    /// malformed message; `acc` may then hold a partial sum.
    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()>;

    /// Paper-convention bits of `msg` (§0.4 and the formula in the compressor's §1 entry).
    fn paper_bits(&self, msg: &[u8]) -> u64;

    /// Draws this round's shared randomness (a shared-seed support) from `shared`, the
    /// stream every rank holds alike. Called once per round on every rank, before any
    /// encode or decode of that round. Default: nothing to draw.
    fn begin_round(&mut self, _shared: &mut Stream) {}

    /// Whether `begin_round` draws anything: such a compressor needs every rank in the
    /// same round, which the asynchronous execution has not.
    fn draws_shared(&self) -> bool {
        false
    }

    /// Names the worker (global id) whose vector the next `encode` compresses; called
    /// before every encode. For compressors whose workers differ by design (PermK's
    /// blocks). Default: nothing to do.
    fn begin_worker(&mut self, _worker: usize) {}

    /// The collective AB constants (A, B) of E‖(1/n)Σ Q_i(a_i) − ā‖² ≤ A·(1/n)Σ‖a_i‖² −
    /// B‖ā‖² (§H.1) for compressors whose workers are correlated by design; None for
    /// independent ones (A = ω/n, B = 0).
    fn ab(&self) -> Option<(f64, f64)> {
        None
    }

    /// The summable view, for compressors whose messages are values on a support every
    /// worker shares in a round: such messages can be summed by an allreduce.
    fn summable(&self) -> Option<&dyn Summable> {
        None
    }

    /// The smoothness-aware view (§A.2): compressors whose steps adapt to a worker's
    /// smoothness matrix, for DCGD+ and DIANA+. Default: none.
    fn smoothness_aware(&mut self) -> Option<&mut dyn smoothness_aware::SmoothnessAware> {
        None
    }

    /// The method that supplies what this compressor needs beyond one worker's vector
    /// (CLT-k: the leader's indices; the count sketch: the unsketching rule), if any.
    fn only_for_method(&self) -> Option<&'static str> {
        None
    }
}

/// Messages that are values on a support shared by every worker in the round
/// (ALGORITHMS.md §0.3): a sum of messages is the message of the sum, so an allreduce of
/// the values replaces the allgather of the messages, and a rank's traffic stays constant
/// as ranks grow.
pub trait Summable {
    /// Values per worker and round.
    fn values_per_worker(&self) -> usize;

    /// values = the compressed values of x on this round's support, rounded to f32 as on
    /// the wire (so that allgather and allreduce give the same compressed vectors).
    fn project(&self, x: &[f64], values: &mut [f64]);

    /// acc += scale · the d-vector `values` stand for.
    fn add_expanded(&self, values: &[f64], scale: f64, acc: &mut [f64]);

    /// Paper-convention bits of one worker's values (§0.4).
    fn paper_bits(&self) -> u64;

    /// Whether its messages are summed (allreduce) unless `--collective` says otherwise.
    fn sum_by_default(&self) -> bool {
        true
    }
}

/// out = decode(msg).
pub fn decode(c: &dyn Compressor, msg: &[u8], out: &mut [f64]) -> Result<()> {
    out.fill(0.0);
    c.decode_add(msg, 1.0, out)
}

/// The one factory: builds the compressor a SPEC names for dimension `d`; `seed` is the
/// run's seed, for compressors that draw shared parameters once (the count sketch's
/// hashes). As one worker's compressor: see [`build_for`].
pub fn build(spec: &str, d: usize, seed: u64) -> Result<Box<dyn Compressor>> {
    build_for(spec, d, seed, 1)
}

/// [`build`] for a run of `workers` logical workers (PermK's n).
pub fn build_for(spec: &str, d: usize, seed: u64, workers: usize) -> Result<Box<dyn Compressor>> {
    let mut spec = Spec::parse_compressor(spec)?;
    let c: Box<dyn Compressor> = match spec.name.as_str() {
        "identity" => Box::new(identity::Identity::new(&spec, d)),
        "rand-k" if spec.has_flag("shared") => Box::new(summable::SharedRandK::from_spec(&mut spec, d)?),
        "rand-k" => Box::new(rand_k::RandK::from_spec(&mut spec, d)?),
        "random-block" => Box::new(summable::SharedRandK::block_from_spec(&mut spec, d)?),
        "top-k" => Box::new(top_k::TopK::from_spec(&mut spec, d)?),
        "bernoulli-sparse" => Box::new(bernoulli_sparse::BernoulliSparse::from_spec(&mut spec, d)?),
        "adaptive-rand" => Box::new(adaptive_rand::AdaptiveRand::from_spec(&mut spec, d)?),
        "opt-sparse" => Box::new(opt_sparse::OptSparse::from_spec(&mut spec, d)?),
        "topk-nd" => Box::new(topk_nd::TopKNatDither::from_spec(&mut spec, d)?),
        "qsgd" => Box::new(qsgd::Qsgd::from_spec(&mut spec, d)?),
        "lowp" => Box::new(qsgd::Qsgd::low_precision(&mut spec, d)?),
        "sparse-lowp" => Box::new(sparse_lowp::SparseLowPrecision::from_spec(&mut spec, d)?),
        "natural" => Box::new(natural::Natural::from_spec(&mut spec, d)?),
        "nat-dither" => Box::new(nat_dither::NatDither::from_spec(&mut spec, d)?),
        "smooth-dither" => Box::new(smooth_dither::SmoothDither::from_spec(&mut spec, d, workers)?),
        "block-qsgd" => Box::new(block_qsgd::BlockQsgd::from_spec(&mut spec, d, workers)?),
        "rand-tau-plus" => Box::new(rand_tau_plus::RandTauPlus::from_spec(&mut spec, d, workers)?),
        "sign" => Box::new(sign::ScaledSign::new(&spec, d)),
        "fp16" => Box::new(half_cast::HalfCast::new(&spec, half_cast::Format::Fp16, d)),
        "bf16" => Box::new(half_cast::HalfCast::new(&spec, half_cast::Format::Bf16, d)),
        "terngrad" => Box::new(terngrad::TernGrad::new(&spec, d)),
        "threshold" => Box::new(threshold::Threshold::from_spec(&mut spec, d)?),
        "clt-k" => Box::new(clt_k::CltK::from_spec(&mut spec, d)?),
        "sketch" => Box::new(count_sketch::CountSketch::from_spec(&mut spec, d, seed)?),
        "perm-k" => Box::new(perm_k::PermK::new(&spec, d, workers)?),
        "corr-q" => Box::new(correlated::OneBitQuantizer::new(&spec, d, workers, true)?),
        "indep-q" => Box::new(correlated::OneBitQuantizer::new(&spec, d, workers, false)?),
        "powersgd" => {
            // Read (and check) its keys, so `qtrain sweep` resolves `rank` to it.
            low_rank::LowRank::from_spec(&mut spec, d)?;
            spec.finish()?;
            return Err(Error::config(
                "powersgd's P and Q are sums over the workers, not one worker's message",
                "run it with --method ef (with error feedback) or --method gd (without): \
                 --method ef --compressor powersgd:rank=R",
            ));
        }
        other => {
            return Err(Error::config(
                format!("unknown compressor '{other}'"),
                format!("choose one of {}", NAMES.join(", ")),
            ))
        }
    };
    spec.finish()?;
    Ok(c)
}

/// One SPEC of every family `build` knows (a family: one compressor file), sized for the
/// embedded data (d = 126): what the generic integration suites cross with every method
/// (`qtrain compressors --examples`).
pub const EXAMPLES: &[&str] = &[
    "identity",
    "rand-k:k=20",
    "rand-k:k=20,shared",
    "top-k:k=10",
    "bernoulli-sparse:p=0.2",
    "adaptive-rand",
    "opt-sparse:budget=1",
    "perm-k",
    "corr-q",
    "topk-nd:k=10,s=3",
    "qsgd:s=2",
    "natural",
    "nat-dither:s=3",
    "smooth-dither:s=2",
    "block-qsgd:blocks=3,s=2",
    "rand-tau-plus:tau=20",
    "sign",
    "fp16",
    "terngrad",
    "threshold:tau=0.01",
    "clt-k:k=10",
    "sketch:rows=3,cols=40",
];

/// The compressor names `build` knows, for help texts and errors.
pub const NAMES: &[&str] = &[
    "identity",
    "rand-k",
    "random-block",
    "top-k",
    "bernoulli-sparse",
    "adaptive-rand",
    "opt-sparse",
    "perm-k",
    "corr-q",
    "indep-q",
    "topk-nd",
    "qsgd",
    "lowp",
    "sparse-lowp",
    "natural",
    "nat-dither",
    "smooth-dither",
    "block-qsgd",
    "rand-tau-plus",
    "sign",
    "fp16",
    "bf16",
    "terngrad",
    "threshold",
    "clt-k",
    "sketch",
];

/// `qtrain compressors`: every example SPEC with its class at dimension d, or (`examples`)
/// the SPECs alone, a line each.
pub fn describe(examples: bool, d: usize) -> String {
    let mut out = String::new();
    for spec in EXAMPLES {
        if examples {
            out.push_str(spec);
            out.push('\n');
            continue;
        }
        let line = match build(spec, d, 0) {
            Ok(c) => {
                let class = match c.class() {
                    Class::Unbiased { omega } => format!("unbiased, ω = {omega:.4}"),
                    Class::Contractive { alpha } => format!("contractive, α = {alpha:.4}"),
                    Class::Sketch { rows, cols } => format!("count sketch of {rows} × {cols}, read by medians"),
                    Class::Absolute { bound } => format!("absolute, ‖C(x) − x‖² ≤ {bound:.4e}"),
                };
                let owner = c.only_for_method().map_or(String::new(), |m| format!(" (--method {m})"));
                format!("{class}{owner}")
            }
            Err(e) => format!("not for d = {d}: {e}"),
        };
        out.push_str(&format!("{spec:<24} {line}\n"));
    }
    out
}

/// Validates `k` for the sparsifiers: 1 ≤ k ≤ d.
pub fn check_k(spec: &Spec, k: usize, d: usize) -> Result<()> {
    if k == 0 || k > d {
        return Err(Error::config(
            format!("compressor '{}': k = {k} but the model has d = {d} coordinates", spec.text()),
            format!("choose 1 ≤ k ≤ {d}"),
        ));
    }
    Ok(())
}

/// Validates the number of levels `s` of the dithering quantizers: s ≥ 1.
pub fn check_levels(spec: &Spec, s: usize) -> Result<()> {
    if s == 0 || s > 1 << 20 {
        return Err(Error::config(
            format!("compressor '{}': s = {s} quantization levels", spec.text()),
            "choose s ≥ 1 (and at most 2^20)",
        ));
    }
    Ok(())
}
