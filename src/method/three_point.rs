//! The 3PC mechanism (ALGORITHMS.md §G.1–G.3): one plan, worker role and server role for
//! every three-point compressor C_{h,y}(x), with h = g_i^t, y = ∇f_i(x^t) and
//! x = ∇f_i(x^{t+1}):
//! ```text
//! x^{t+1} = x^t − γ g^t
//! worker i: g_i^{t+1} = C_{g_i^t, ∇f_i(x^t)}(∇f_i(x^{t+1}));  send what rebuilds it from g_i^t
//! server  : g^{t+1} = g^t + Σ_i w_i (g_i^{t+1} − g_i^t)
//! ```
//! γ = 1/(L + L̃√(B/A)) with the rule's constants (A, B) of the §G.1 table. The rules
//! ([`Rule`]) and their messages (a skip is an empty message; `skipped` counts it):
//!
//! | method | g_i^{t+1} | message (paper bits) |
//! |---|---|---|
//! | `ef21` | h + C(x−h) | C(x−h) |
//! | `clag:zeta=ζ` | h + C(x−h) if ‖x−h‖² > ζ‖x−y‖², else h | C(x−h), or nothing |
//! | `lag:zeta=ζ` | x if ‖x−h‖² > ζ‖x−y‖², else h | x − h exact (32d), or nothing |
//! | `3pcv1` | y + C(x−y) | y − h exact (32d), then C(x−y) |
//! | `3pcv2` `'C;Q'` | b + C(x−b), b = h + Q(x−y) | Q(x−y), then C(x−b) |
//! | `3pcv4` `'C1;C2'` | b + C1(x−b), b = h + C2(x−h) | C2(x−h), then C1(x−b) |
//! | `3pcv5:p=p` | x with probability p (one shared coin), else h + C(x−y) | x exact (32d), or C(x−y) |
//! | `marina:p=p` (§H.1) | x with probability p (one shared coin), else h + Q(x−y), Q unbiased and unscaled | the exact round is a sum of x (32d); else Q(x−y) |
//! | `adacgd:zeta=ζ` `'C1;…;Cm'` | §G.3: skip, or the first level j < m with ‖x − (h + C_j(x−h))‖² ≤ ζ‖x−y‖², else m | j (⌈log₂(m+1)⌉ bits), then C_j(x−h) |
//!
//! Every worker applies its own message to g_i with the decoder the server uses, so the
//! server's aggregate stays Σ_i w_i g_i (§G.5), up to the summation order. A message of
//! two parts is framed as [u32 length of the first][first][second]; the framing is wire
//! bytes, not paper bits. An unbiased compressor in the place of a contractive one is
//! used as Q/(ω+1) (§0.1); 3PCv2's Q is used as it is.
//!
//! Start (`init`, §3 item 7): `full` (default, the reference codes) sends g_i⁰ = ∇f_i(x⁰)
//! exactly (d floats per worker, counted); `compressed` starts from g_i = 0 and y = 0.
//! The lazy rules' trigger is the reference code's strict ">" on consecutive gradients
//! (§G.4a): in the round after the full first send h = y, so every worker skips when
//! ζ ≥ 1. With ζ = 0 a nonzero difference is always sent: CLAG is then EF21 and LAG is GD.
//!
//! 3PCv1's message carries y − h because the server must rebuild g_i^{t+1} = y + C(x−y)
//! from g_i^t; the reference code (`3PCv1_topk_fg.py`) counts only the k values of
//! C(x−y), as if the server knew every worker's gradient.
//!
//! With `--topology server --down-compressor C` every rule is bidirectional (§G.3): the
//! engine's downlink keeps the broadcast state g̃ and the model steps with it.

use super::codec::{add_exact, add_exact_message, write_exact, Codec};
use super::step_size::{self, StepSize};
use super::{require_alpha, require_unbiased, Entry, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::compress::wire::{self, Reader};
use crate::error::{Error, Result};
use crate::protocol::{Down, Oracle, Phase, Plan, Protocol, Received, Sent, ServerRole, Uplink, WorkerRole};
use crate::rng::{self, Purpose, Stream};
use crate::spec::Spec;
use crate::vector::{add_scaled, difference, distance_sq};
use crate::worker::Worker;
use rand::Rng;

const INIT: (&str, &str) = ("init", "full (default: first round exact) or compressed (g_i⁰ = C(∇f_i(x⁰)))");
const ZETA: (&str, &str) = ("zeta", "the trigger ζ ≥ 0 (required)");

pub const EF21: Entry = Entry {
    name: "ef21",
    about: "EF21: g_i ← g_i + C(∇f_i − g_i), x ← x − γ Σ w_i g_i (§G.2)",
    keys: &[INIT],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("ef21", "top-k:k=10"), ("ef21:init=compressed", "rand-k:k=20,shared")],
    build: |setup, spec| build(setup, spec, RuleName::Ef21),
};

pub const CLAG: Entry = Entry {
    name: "clag",
    about: "CLAG: EF21 that skips the upload while ‖∇f_i − g_i‖² ≤ ζ‖∇f_i − ∇f_i(prev)‖² (§G.1)",
    keys: &[ZETA, INIT],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("clag:zeta=0.5", "top-k:k=10"), ("clag:zeta=2", "identity")],
    build: |setup, spec| build(setup, spec, RuleName::Clag),
};

pub const LAG: Entry = Entry {
    name: "lag",
    about: "LAG as a 3PC: upload ∇f_i exactly while ‖∇f_i − g_i‖² > ζ‖∇f_i − ∇f_i(prev)‖², else skip (§G.1)",
    keys: &[ZETA, INIT],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("lag:zeta=1", "identity")],
    build: |setup, spec| build(setup, spec, RuleName::Lag),
};

pub const V1: Entry = Entry {
    name: "3pcv1",
    about: "3PCv1: g_i ← ∇f_i(prev) + C(∇f_i − ∇f_i(prev)) (§G.1; the message carries ∇f_i(prev) − g_i)",
    keys: &[INIT],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("3pcv1", "top-k:k=10")],
    build: |setup, spec| build(setup, spec, RuleName::V1),
};

pub const V2: Entry = Entry {
    name: "3pcv2",
    about: "3PCv2 --compressor 'C;Q': b = g_i + Q(∇f_i − ∇f_i(prev)), g_i ← b + C(∇f_i − b), Q unbiased (§G.1)",
    keys: &[INIT],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("3pcv2", "top-k:k=10;rand-k:k=20")],
    build: |setup, spec| build(setup, spec, RuleName::V2),
};

pub const V4: Entry = Entry {
    name: "3pcv4",
    about: "3PCv4 --compressor 'C1;C2': b = g_i + C2(∇f_i − g_i), g_i ← b + C1(∇f_i − b) (§G.1)",
    keys: &[INIT],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("3pcv4", "top-k:k=10;top-k:k=5")],
    build: |setup, spec| build(setup, spec, RuleName::V4),
};

pub const V5: Entry = Entry {
    name: "3pcv5",
    about: "3PCv5: with probability p (a shared coin) every worker sends ∇f_i exactly, else g_i ← g_i + C(∇f_i − ∇f_i(prev)) (§G.1)",
    keys: &[("p", "probability of the exact round (default: α of C, the reference's k/d)"), INIT],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("3pcv5:p=0.1", "top-k:k=10")],
    build: |setup, spec| build(setup, spec, RuleName::V5),
};

pub const MARINA: Entry = Entry {
    name: "marina",
    about: "MARINA: with probability p (a shared coin) every worker sends ∇f_i exactly (a sum), else the unbiased Q(∇f_i − ∇f_i(prev)); g ← g + Σ w_i Q(·) (§H.1)",
    keys: &[
        (
            "p",
            "probability of the dense round: F, or auto (the fewest expected bits to a tolerance, MiniFL's rule; default 1/(1+ω) of Q: k/d for rand-k)",
        ),
        (
            "vr",
            "flag: VR-MARINA with --batch B: a compressed round sends Q(∇f_I(x^t) − ∇f_I(x^{t−1})) on one minibatch I, a dense round the full ∇f_i; p = min(1/(1+ω), B/(B + m̄)) by default",
        ),
    ],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: true,
    examples: &[("marina:p=0.2", "rand-k:k=20")],
    build: |setup, spec| build(setup, spec, RuleName::Marina),
};

pub const ADACGD: Entry = Entry {
    name: "adacgd",
    about: "AdaCGD --compressor 'C1;…;Cm' (most to least aggressive): skip, or the first level that meets the CLAG trigger (§G.3)",
    keys: &[ZETA, INIT],
    dense_downlink: true,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("adacgd:zeta=1", "top-k:k=2;top-k:k=8;top-k:k=32")],
    build: |setup, spec| build(setup, spec, RuleName::AdaCgd),
};

/// The most compressors AdaCGD takes: the levels' diagnostics have fixed names.
const MAX_LEVELS: usize = 8;
const LEVEL_NAMES: [&str; MAX_LEVELS + 1] = [
    "level_share_skip",
    "level_share_1",
    "level_share_2",
    "level_share_3",
    "level_share_4",
    "level_share_5",
    "level_share_6",
    "level_share_7",
    "level_share_8",
];

#[derive(Clone, Copy, PartialEq)]
enum RuleName {
    Ef21,
    Clag,
    Lag,
    V1,
    V2,
    V4,
    V5,
    Marina,
    AdaCgd,
}

/// A three-point compressor of §G.1 (the compressors it uses are the plan's parts).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    Ef21,
    Clag {
        zeta: f64,
    },
    Lag {
        zeta: f64,
    },
    V1,
    V2,
    V4,
    V5 {
        p: f64,
    },
    /// 3PCv5's update with an unbiased Q used unscaled, and MARINA's step (§H.1). While
    /// the SPEC is read, p = NaN stands for the default and −∞ for `auto`.
    Marina {
        p: f64,
    },
    AdaCgd {
        zeta: f64,
    },
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Ef21 => "ef21",
            Rule::Clag { .. } => "clag",
            Rule::Lag { .. } => "lag",
            Rule::V1 => "3pcv1",
            Rule::V2 => "3pcv2",
            Rule::V4 => "3pcv4",
            Rule::V5 { .. } => "3pcv5",
            Rule::Marina { .. } => "marina",
            Rule::AdaCgd { .. } => "adacgd",
        }
    }

    /// The lazy rules' ζ: skip while ‖x − h‖² ≤ ζ‖x − y‖².
    fn trigger(self) -> Option<f64> {
        match self {
            Rule::Clag { zeta } | Rule::Lag { zeta } | Rule::AdaCgd { zeta } => Some(zeta),
            _ => None,
        }
    }

    /// The probability of the shared coin's exact round, for the rules that toss one.
    fn coin(self) -> Option<f64> {
        match self {
            Rule::V5 { p } | Rule::Marina { p } => Some(p),
            _ => None,
        }
    }

    /// Whether it reads y = ∇f_i(x^t).
    fn needs_previous(self) -> bool {
        !matches!(self, Rule::Ef21 | Rule::V4)
    }

    /// How many compressors it takes: exactly n, or (AdaCGD) 1..=n.
    fn compressors(self) -> (usize, usize) {
        match self {
            Rule::Lag { .. } => (0, 0),
            Rule::V2 | Rule::V4 => (2, 2),
            Rule::AdaCgd { .. } => (1, MAX_LEVELS),
            _ => (1, 1),
        }
    }
}

/// One compressor of the rule and the factor its decoded values are used with.
pub struct Part {
    pub codec: Codec,
    pub scale: f64,
}

fn build(setup: &Setup, spec: &mut Spec, name: RuleName) -> Result<Box<dyn Method>> {
    let plan = plan(setup, spec, name)?;
    let rule = plan.rule;
    let previous = || if rule.needs_previous() { vec![0.0; setup.dim] } else { Vec::new() };
    let levels = if matches!(rule, Rule::AdaCgd { .. }) { plan.parts.len() + 1 } else { 0 };
    let workers = (0..setup.local_workers)
        .map(|_| ThreePointWorker {
            g: vec![0.0; setup.dim],
            previous: previous(),
            own: Vec::new(),
            own_pending: false,
            choice: vec![0.0; levels],
        })
        .collect();
    let server = setup.server(|| ThreePointServer { g: vec![0.0; setup.dim], weights: setup.weights.to_vec() });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, workers, server)?))
}

/// The rule a method name and SPEC give, its compressors and its step size.
fn plan(setup: &Setup, spec: &mut Spec, name: RuleName) -> Result<ThreePointPlan> {
    let rule = match name {
        RuleName::Ef21 => Rule::Ef21,
        RuleName::Clag => Rule::Clag { zeta: take_zeta(spec)? },
        RuleName::Lag => Rule::Lag { zeta: take_zeta(spec)? },
        RuleName::V1 => Rule::V1,
        RuleName::V2 => Rule::V2,
        RuleName::V4 => Rule::V4,
        // NaN: the default, α of C, known once C is built.
        RuleName::V5 => Rule::V5 { p: spec.take_f64_or("p", f64::NAN)? },
        RuleName::Marina => {
            Rule::Marina { p: spec.take_f64_or_word("p", "auto", f64::NAN)?.unwrap_or(f64::NEG_INFINITY) }
        }
        RuleName::AdaCgd => Rule::AdaCgd { zeta: take_zeta(spec)? },
    };
    let full_init = spec.take_choice(INIT.0, &["full", "compressed"], "full")? == "full";
    let vr = if name == RuleName::Marina { vr_batch(setup, spec)? } else { None };
    let parts = parts(setup, rule)?;
    let alpha = |j: usize| -> Result<f64> {
        let part: &Part = &parts[j];
        require_alpha(part.codec.class(), rule.name(), part.codec.spec())
    };
    let omega = || require_unbiased(parts[0].codec.class(), rule.name(), parts[0].codec.spec());
    let check_p = |p: f64| {
        if p > 0.0 && p <= 1.0 {
            Ok(p)
        } else {
            Err(Error::config(
                format!("--method {}: p = {p}", spec.text()),
                format!("{}'s p is the probability of an exact round: write p=F with 0 < F ≤ 1", rule.name()),
            ))
        }
    };
    let rule = match rule {
        Rule::V5 { p } => Rule::V5 { p: check_p(if p.is_nan() { alpha(0)? } else { p })? },
        Rule::Marina { p } if p == f64::NEG_INFINITY => Rule::Marina { p: bit_optimal_p(setup, &parts[0].codec)? },
        Rule::Marina { p } if p.is_nan() => {
            let plain = 1.0 / (1.0 + omega()?);
            Rule::Marina { p: check_p(vr.map_or(plain, |(b, m)| plain.min(b / (b + m))))? }
        }
        Rule::Marina { p } => Rule::Marina { p: check_p(p)? },
        other => other,
    };
    let (gamma, text) = match rule {
        Rule::Marina { p } if vr.is_some() => {
            if parts[0].codec.ab().is_some() {
                return Err(Error::config(
                    format!("--method {} --compressor {}", spec.text(), parts[0].codec.spec()),
                    "VR-MARINA's step is the rule for independent compressors: use rand-k, qsgd, indep-q, …",
                ));
            }
            let (omega, n, (b, _)) = (omega()?, setup.effective_workers(), vr.expect("guarded"));
            step_size::vr_marina(setup.smoothness, omega, n, b, p)
        }
        Rule::Marina { p } => {
            let (ab, what) = match parts[0].codec.ab() {
                Some((a, b)) => ((a, b), format!("A = {a}, B = {b} ({})", parts[0].codec.spec())),
                None => {
                    let (omega, n) = (omega()?, setup.effective_workers());
                    ((omega / n, 0.0), format!("A = ω/n, ω = {omega:.6}, n = {n:.3}"))
                }
            };
            step_size::marina(setup.smoothness, ab, p, &what)
        }
        _ => {
            let (a, b, what) = constants(rule, &parts)?;
            step_size::three_point(setup.smoothness, a, b, &what)
        }
    };
    let coin = rule.coin().map(|_| rng::shared(setup.seed, Purpose::SharedCoin));
    let plan = ThreePointPlan {
        step: StepSize::resolve(gamma, &text, setup.step),
        rule,
        parts,
        pending_full_init: full_init,
        full_round: false,
        coin,
        dim: setup.dim,
        diff: vec![0.0; setup.dim],
        candidate: vec![0.0; setup.dim],
        first: Vec::new(),
        second: Vec::new(),
        level: 0,
        vr: vr.is_some(),
    };
    Ok(plan)
}

/// VR-MARINA's minibatch B and the mean rows m̄ per worker, when the `vr` flag is set
/// (§H.1): it needs `--batch` and an independent compressor.
fn vr_batch(setup: &Setup, spec: &mut Spec) -> Result<Option<(f64, f64)>> {
    if !spec.take_flag("vr")? {
        return Ok(None);
    }
    let Some(b) = setup.batch else {
        return Err(Error::config(
            format!("--method {} without --batch", spec.text()),
            "VR-MARINA compresses minibatch gradient differences: give --batch B (the papers use 1 % of a worker's rows)",
        ));
    };
    let rows = setup.rows.iter().sum::<u64>() as f64 / setup.rows.len() as f64;
    Ok(Some((b as f64, rows)))
}

/// MARINA's `p=auto` (§H.1, MiniFL `get_optimal_homogeneous_p`): the p that minimises the
/// expected bits to a tolerance, ∝ (p + (1 − p)c)·(1 + √(A(1 − p)/p)) — the bits of a
/// round times the rounds, whose count scales with 1/γ — over p ∈ [1e-5, 1 − 1e-5], with
/// A = ω/n and c = (bits of one compressed message)/(32d), measured on a probe message
/// (a fresh compressor, so the run's streams are untouched). Needs independent
/// compressors (B = 0), as MiniFL asserts.
fn bit_optimal_p(setup: &Setup, codec: &Codec) -> Result<f64> {
    if codec.ab().is_some() {
        return Err(Error::config(
            format!("--method marina:p=auto --compressor {}", codec.spec()),
            "p=auto is the rule for independent compressors (B = 0); give p=F for a correlated one such as perm-k",
        ));
    }
    let omega = require_unbiased(codec.class(), "marina", codec.spec())?;
    let a = omega / setup.effective_workers();
    let mut probe = crate::compress::build_for(codec.spec(), setup.dim, setup.seed, setup.workers())?;
    let mut draws = rng::shared(setup.seed, Purpose::Generator);
    probe.begin_round(&mut draws);
    probe.begin_worker(0);
    let x: Vec<f64> = (0..setup.dim).map(|_| draws.random::<f64>() - 0.5).collect();
    let mut msg = Vec::new();
    probe.encode(&x, &mut draws, &mut msg);
    let c = probe.paper_bits(&msg) as f64 / (32.0 * setup.dim as f64);
    Ok(minimise_bits_to_tolerance(a, c))
}

/// argmin over p ∈ [1e-5, 1 − 1e-5] of (p + (1 − p)c)(1 + √(A(1 − p)/p)): a log-spaced grid
/// of 10⁴ points, then golden-section search between the best point's neighbours.
fn minimise_bits_to_tolerance(a: f64, c: f64) -> f64 {
    let cost = |p: f64| (p + (1.0 - p) * c) * (1.0 + (a * (1.0 - p) / p).sqrt());
    let (lo, hi): (f64, f64) = (1e-5, 1.0 - 1e-5);
    let grid: Vec<f64> = (0..=10_000).map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / 1e4).exp()).collect();
    let best = (0..grid.len()).min_by(|&i, &j| cost(grid[i]).total_cmp(&cost(grid[j]))).unwrap_or(0);
    let (mut l, mut r) = (grid[best.saturating_sub(1)], grid[(best + 1).min(grid.len() - 1)]);
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..100 {
        let (m1, m2) = (r - ratio * (r - l), l + ratio * (r - l));
        if cost(m1) <= cost(m2) {
            r = m2;
        } else {
            l = m1;
        }
    }
    0.5 * (l + r)
}

/// The constants (A, B) of §G.1's table for a rule with its compressors, and their
/// ingredients for the log.
fn constants(rule: Rule, parts: &[Part]) -> Result<(f64, f64, String)> {
    let alpha = |j: usize| -> Result<f64> { require_alpha(parts[j].codec.class(), rule.name(), parts[j].codec.spec()) };
    // EF21's pair for a contraction α: A = 1 − √(1−α), B = (1−α)/A.
    let ef21 = |alpha: f64| {
        let a = 1.0 - (1.0 - alpha).sqrt();
        (a, (1.0 - alpha) / a)
    };
    Ok(match rule {
        Rule::Ef21 => {
            let (a, b) = ef21(alpha(0)?);
            (a, b, format!("EF21, α = {:.6}", alpha(0)?))
        }
        Rule::Clag { zeta } | Rule::AdaCgd { zeta } => {
            // AdaCGD: CLAG's constants with its finest compressor (§G.3).
            let finest = alpha(parts.len() - 1)?;
            let (a, b) = ef21(finest);
            (a, zeta.max(b), format!("{}, α = {finest:.6}, ζ = {zeta}, B = max(ζ, (1−α)/A)", rule.name()))
        }
        Rule::Lag { zeta } => (1.0, zeta, format!("LAG, ζ = {zeta}")),
        Rule::V1 => (1.0, 1.0 - alpha(0)?, format!("3PCv1, α = {:.6}", alpha(0)?)),
        Rule::V2 => {
            let a = alpha(0)?;
            let q = &parts[1].codec;
            let omega = require_unbiased(q.class(), "3pcv2 (its Q, the second compressor)", q.spec())?;
            (a, (1.0 - a) * omega, format!("3PCv2, α = {a:.6}, ω = {omega:.6}"))
        }
        Rule::V4 => {
            let (a1, a2) = (alpha(0)?, alpha(1)?);
            let joint = 1.0 - (1.0 - a1) * (1.0 - a2);
            let (a, b) = ef21(joint);
            (a, b, format!("3PCv4, α1 = {a1:.6}, α2 = {a2:.6}, ᾱ = {joint:.6}"))
        }
        Rule::V5 { p } => {
            let a = alpha(0)?;
            let s = (1.0 - p).sqrt();
            // B = (1−p)(1 + 1/t)(1−α) with t = 1/√(1−p) − 1, i.e. 1/t = √(1−p)/(1 − √(1−p));
            // p = 1 gives B = 0.
            let b = if s > 0.0 { (1.0 - p) * (1.0 + s / (1.0 - s)) * (1.0 - a) } else { 0.0 };
            (1.0 - s, b, format!("3PCv5, p = {p}, α = {a:.6}"))
        }
        Rule::Marina { .. } => unreachable!("MARINA's step is not a three-point rule's (step_size::marina)"),
    })
}

/// The lazy rules' ζ (required, ≥ 0).
fn take_zeta(spec: &mut Spec) -> Result<f64> {
    let zeta = spec.take_f64_or("zeta", -1.0)?;
    if zeta < 0.0 {
        return Err(Error::config(
            format!("--method {}: ζ = {zeta}", spec.text()),
            format!("{} needs its trigger: write {}:zeta=F with F ≥ 0", spec.name, spec.name),
        ));
    }
    Ok(zeta)
}

/// The compressors of `--compressor` (a `;`-separated list for the rules that take
/// several), in the order the rule's documentation gives.
fn parts(setup: &Setup, rule: Rule) -> Result<Vec<Part>> {
    let name = rule.name();
    let specs: Vec<&str> = setup.compressor.split(';').map(str::trim).collect();
    let (least, most) = rule.compressors();
    if least == 0 {
        if setup.compressor.trim() != "identity" {
            return Err(Error::config(
                format!("--method {name} --compressor {}", setup.compressor),
                format!("{name} uploads the exact gradient difference and takes no compressor: drop --compressor"),
            ));
        }
        return Ok(Vec::new());
    }
    if specs.len() < least || specs.len() > most {
        let want = if least == most { format!("{least}") } else { format!("{least} to {most}") };
        return Err(Error::config(
            format!(
                "--method {name} takes {want} compressors, --compressor '{}' gives {}",
                setup.compressor,
                specs.len()
            ),
            match rule {
                Rule::V2 => "write --compressor 'C;Q' (C contractive, Q unbiased), e.g. 'top-k:k=10;rand-k:k=20'",
                Rule::V4 => "write --compressor 'C1;C2', e.g. 'top-k:k=10;top-k:k=5'",
                Rule::AdaCgd { .. } => {
                    "write --compressor 'C1;…;Cm' from most to least aggressive, e.g. 'top-k:k=1;top-k:k=4;top-k:k=16'"
                }
                _ => "write one compressor SPEC",
            },
        ));
    }
    if specs.len() == 1 && !matches!(rule, Rule::AdaCgd { .. }) {
        let codec = Codec::new(setup, name)?;
        // EF21 and CLAG send C(x − h) alone, which a summable compressor can sum (Sum
        // phase); the other rules' messages need the worker's own decoding first.
        if !matches!(rule, Rule::Ef21 | Rule::Clag { .. }) && codec.phase() != Phase::Gather {
            return Ok(vec![part(Codec::part(setup, specs[0], 0, name)?, rule, 0)]);
        }
        return Ok(vec![part(codec, rule, 0)]);
    }
    specs.iter().enumerate().map(|(j, spec)| Ok(part(Codec::part(setup, spec, j, name)?, rule, j))).collect()
}

fn part(codec: Codec, rule: Rule, j: usize) -> Part {
    // 3PCv2's Q (its second compressor) enters unscaled: b = h + Q(x − y); so does
    // MARINA's, whose step accounts for ω instead.
    let unscaled = (rule == Rule::V2 && j == 1) || matches!(rule, Rule::Marina { .. });
    let scale = if unscaled { 1.0 } else { codec.class().contractive_scale() };
    Part { codec, scale }
}

struct ThreePointPlan {
    step: StepSize,
    rule: Rule,
    parts: Vec<Part>,
    /// The exact first round is still to come (`init=full`).
    pending_full_init: bool,
    /// This round every worker sends ∇f_i exactly (the first round, 3PCv5's coin).
    full_round: bool,
    /// 3PCv5's shared coin.
    coin: Option<Stream>,
    dim: usize,
    /// Rank-level scratch of the worker being encoded.
    diff: Vec<f64>,
    candidate: Vec<f64>,
    first: Vec<u8>,
    second: Vec<u8>,
    /// AdaCGD: the level (0-based) of the message encoded last.
    level: usize,
    /// VR-MARINA: compressed rounds read the two-point minibatch oracle.
    vr: bool,
}

impl Plan for ThreePointPlan {
    fn begin_round(&mut self, _t: u64) -> usize {
        self.full_round = std::mem::take(&mut self.pending_full_init);
        if let (Some(coin), Some(p)) = (self.coin.as_mut(), self.rule.coin()) {
            self.full_round |= coin.random::<f64>() < p;
        }
        // An exact round draws no support, so the shared stream's draws stay those of
        // the compressed rounds.
        if !self.full_round {
            self.parts.iter_mut().for_each(|p| p.codec.begin_round());
        }
        1
    }

    fn phase(&self, _i: usize) -> Phase {
        match self.rule {
            Rule::Ef21 | Rule::Clag { .. } | Rule::Marina { .. } if !self.full_round => self.parts[0].codec.phase(),
            // MARINA's dense round is the mean gradient: a sum, like GD's (§H.1).
            Rule::Marina { .. } => Phase::Sum { len: self.dim },
            _ => Phase::Gather,
        }
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }

    /// VR-MARINA: the full gradient in a dense round, a minibatch pair otherwise.
    fn oracle(&self) -> Oracle {
        match (self.vr, self.full_round) {
            (false, _) => Oracle::Round,
            (true, true) => Oracle::Full,
            (true, false) => Oracle::Pair,
        }
    }

    fn two_point(&self) -> bool {
        self.vr
    }

    /// AdaCGD: the weighted share of workers that skipped or chose each level in the
    /// last round.
    fn diagnostics(&mut self, monitored: &[f64]) -> Vec<(&'static str, f64)> {
        LEVEL_NAMES.iter().zip(monitored).map(|(name, share)| (*name, *share)).collect()
    }

    fn save(&self, w: &mut StateWriter) {
        self.parts.iter().for_each(|p| p.codec.save(w));
        w.bool("pending full init", self.pending_full_init);
        if let Some(coin) = &self.coin {
            w.stream("shared coin", coin);
        }
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        for p in &mut self.parts {
            p.codec.load(r)?;
        }
        self.pending_full_init = r.bool("pending full init")?;
        if let Some(coin) = self.coin.as_mut() {
            r.stream("shared coin", coin)?;
        }
        Ok(())
    }
}

/// What a worker's uplink did with its estimator.
enum Applied {
    /// g_i already holds g_i^{t+1} (or the worker skipped).
    Done,
    /// A Sum phase: g_i^{t+1} = g_i^t + the kept values, applied with the downlink.
    Pending,
}

impl ThreePointPlan {
    /// One worker's three-point step from h = `g`, y = `y`, x = `x`: writes the message
    /// into `up` and (on a Gather) sets `g` to g_i^{t+1} with the server's decoder.
    // The three points (h, y, x), the sender (id, coins) and the uplink with its own
    // values: splitting them into structs would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        worker: usize,
        g: &mut [f64],
        y: &[f64],
        x: &[f64],
        rng: &mut Stream,
        up: Uplink,
        own: &mut Vec<f64>,
    ) -> Result<(Sent, Applied)> {
        if self.full_round {
            g.copy_from_slice(x);
            return Ok(match up {
                Uplink::Bytes(out) => (write_exact(x, out), Applied::Done),
                Uplink::Sum { weight, acc } => {
                    add_scaled(acc, weight, x);
                    (Sent::Bits(32 * x.len() as u64), Applied::Done)
                }
            });
        }
        if let Some(zeta) = self.rule.trigger() {
            if distance_sq(x, g) <= zeta * distance_sq(x, y) {
                return Ok((Sent::Skip, Applied::Done));
            }
        }
        let out = match up {
            Uplink::Bytes(out) => out,
            sum @ Uplink::Sum { .. } => {
                // EF21/CLAG send C(x − h); MARINA sends Q(x − y).
                let base = if matches!(self.rule, Rule::Marina { .. }) { y } else { &*g };
                difference(&mut self.diff, x, base);
                return Ok((self.parts[0].codec.encode(worker, &self.diff, rng, sum, own), Applied::Pending));
            }
        };
        let bits = self.encode(worker, g, y, x, rng, out)?;
        self.decode_add(out, 1.0, g)?;
        Ok((Sent::Bits(bits), Applied::Done))
    }

    /// The message of a worker that sends (no skip, no exact round); its paper bits.
    fn encode(
        &mut self,
        worker: usize,
        g: &[f64],
        y: &[f64],
        x: &[f64],
        rng: &mut Stream,
        out: &mut Vec<u8>,
    ) -> Result<u64> {
        let d = self.dim;
        let (parts, diff, candidate) = (&mut self.parts, &mut self.diff, &mut self.candidate);
        let (first, second) = (&mut self.first, &mut self.second);
        Ok(match self.rule {
            Rule::Ef21 | Rule::Clag { .. } => {
                difference(diff, x, g);
                bits_of(parts[0].codec.encode(worker, diff, rng, Uplink::Bytes(out), &mut Vec::new()))
            }
            Rule::Lag { .. } => {
                difference(diff, x, g);
                bits_of(write_exact(diff, out))
            }
            Rule::V1 => {
                difference(diff, y, g);
                write_exact(diff, out);
                difference(diff, x, y);
                let c = bits_of(parts[0].codec.encode(worker, diff, rng, Uplink::Bytes(first), &mut Vec::new()));
                out.extend_from_slice(first);
                32 * d as u64 + c
            }
            Rule::V2 | Rule::V4 => {
                // The first part (3PCv2: Q(x − y); 3PCv4: C2(x − h)) gives b; the second
                // is C(x − b) (C1 for 3PCv4).
                if self.rule == Rule::V2 {
                    difference(diff, x, y);
                } else {
                    difference(diff, x, g);
                }
                let a = bits_of(parts[1].codec.encode(worker, diff, rng, Uplink::Bytes(first), &mut Vec::new()));
                candidate.copy_from_slice(g);
                parts[1].codec.decode_add(first, parts[1].scale, candidate)?;
                difference(diff, x, candidate);
                let b = bits_of(parts[0].codec.encode(worker, diff, rng, Uplink::Bytes(second), &mut Vec::new()));
                out.clear();
                out.extend_from_slice(&(first.len() as u32).to_le_bytes());
                out.extend_from_slice(first);
                out.extend_from_slice(second);
                a + b
            }
            Rule::V5 { .. } | Rule::Marina { .. } => {
                difference(diff, x, y);
                bits_of(parts[0].codec.encode(worker, diff, rng, Uplink::Bytes(out), &mut Vec::new()))
            }
            Rule::AdaCgd { zeta } => {
                let threshold = zeta * distance_sq(x, y);
                difference(diff, x, g);
                let m = parts.len();
                let mut chosen = (m - 1, 0);
                for (j, part) in parts.iter_mut().enumerate() {
                    let bits = bits_of(part.codec.encode(worker, diff, rng, Uplink::Bytes(first), &mut Vec::new()));
                    chosen = (j, bits);
                    if j + 1 == m {
                        break;
                    }
                    candidate.copy_from_slice(g);
                    part.codec.decode_add(first, part.scale, candidate)?;
                    if distance_sq(x, candidate) <= threshold {
                        break;
                    }
                }
                self.level = chosen.0;
                out.clear();
                out.push(chosen.0 as u8);
                out.extend_from_slice(first);
                u64::from(wire::ceil_log2(m as u64 + 1)) + chosen.1
            }
        })
    }

    /// acc += scale × (g_i^{t+1} − g_i^t) from a sent message (not a skip, not an exact
    /// round): the server's aggregation and the worker's own update alike.
    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        let parts = &self.parts;
        match self.rule {
            Rule::Ef21 | Rule::Clag { .. } | Rule::V5 { .. } | Rule::Marina { .. } => {
                parts[0].codec.decode_add(msg, scale * parts[0].scale, acc)
            }
            Rule::Lag { .. } => add_exact_message(msg, scale, acc),
            Rule::V1 => {
                let mut r = Reader::new(msg, "3pcv1");
                add_exact_message(r.take(8 * self.dim)?, scale, acc)?;
                parts[0].codec.decode_add(r.take(msg.len() - 8 * self.dim)?, scale * parts[0].scale, acc)
            }
            Rule::V2 | Rule::V4 => {
                let mut r = Reader::new(msg, "3pc two-part message");
                let len = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes")) as usize;
                parts[1].codec.decode_add(r.take(len)?, scale * parts[1].scale, acc)?;
                parts[0].codec.decode_add(r.take(msg.len() - 4 - len)?, scale * parts[0].scale, acc)
            }
            Rule::AdaCgd { .. } => {
                let mut r = Reader::new(msg, "adacgd");
                let level = usize::from(r.take(1)?[0]);
                let part = parts.get(level).ok_or_else(|| {
                    r.error(format!("level {} in the header, but there are {} compressors", level + 1, parts.len()))
                })?;
                part.codec.decode_add(r.take(msg.len() - 1)?, scale * part.scale, acc)
            }
        }
    }
}

fn bits_of(sent: Sent) -> u64 {
    match sent {
        Sent::Bits(b) => b,
        Sent::Skip => 0,
    }
}

struct ThreePointWorker {
    /// g_i.
    g: Vec<f64>,
    /// y = ∇f_i of the previous round (the rules that read it).
    previous: Vec<f64>,
    /// Its values of a Sum phase.
    own: Vec<f64>,
    own_pending: bool,
    /// AdaCGD: one-hot of the last round's choice (skip, level 1, …, level m).
    choice: Vec<f64>,
}

impl WorkerRole<ThreePointPlan> for ThreePointWorker {
    fn uplink(&mut self, plan: &mut ThreePointPlan, _i: usize, data: &mut Worker, up: Uplink) -> Result<Sent> {
        let grad = &data.grad;
        // VR-MARINA's y is ∇f_I(x^{t−1}) on this round's minibatch.
        let y = if plan.vr && !plan.full_round { &data.pair } else { &self.previous };
        let (sent, applied) = plan.step(data.id, &mut self.g, y, grad, &mut data.rng, up, &mut self.own)?;
        self.own_pending = matches!(applied, Applied::Pending);
        if plan.rule.needs_previous() {
            self.previous.copy_from_slice(grad);
        }
        // AdaCGD's choice (an exact round is none of them).
        if !self.choice.is_empty() {
            self.choice.fill(0.0);
            match sent {
                Sent::Skip => self.choice[0] = 1.0,
                Sent::Bits(_) if !plan.full_round => self.choice[1 + plan.level] = 1.0,
                Sent::Bits(_) => {}
            }
        }
        Ok(sent)
    }

    /// A Sum phase's g_i += C(∇f_i − g_i), from the kept values.
    fn downlink(&mut self, plan: &ThreePointPlan, _i: usize, _down: &Down, own: &[u8]) -> Result<()> {
        if !std::mem::take(&mut self.own_pending) {
            return Ok(());
        }
        plan.parts[0].codec.add_own(own, &self.own, plan.parts[0].scale, &mut self.g)
    }

    fn monitored(&self) -> Option<&[f64]> {
        (!self.choice.is_empty()).then_some(&self.choice[..])
    }

    /// g_i, and the previous gradient of the rules that read it.
    fn save(&self, w: &mut StateWriter) {
        w.f64s("g_i", &self.g);
        w.f64s("previous gradient", &self.previous);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("g_i", &mut self.g)?;
        r.f64s_into("previous gradient", &mut self.previous)
    }
}

struct ThreePointServer {
    /// g = Σ w_i g_i.
    g: Vec<f64>,
    weights: Vec<f64>,
}

impl ServerRole<ThreePointPlan> for ThreePointServer {
    fn serve(&mut self, plan: &mut ThreePointPlan, _i: usize, received: Received, _x: &[f64]) -> Result<Down<'_>> {
        if plan.full_round {
            match received {
                Received::Sum(sum) => self.g.copy_from_slice(sum),
                gathered => {
                    self.g.fill(0.0);
                    add_exact(gathered, &self.weights, &mut self.g)?;
                }
            }
        } else {
            match (plan.rule, received) {
                (Rule::Ef21 | Rule::Clag { .. } | Rule::Marina { .. }, received) => {
                    plan.parts[0].codec.aggregate(received, plan.parts[0].scale, &mut self.g)?
                }
                (_, Received::Messages(messages)) => {
                    for (msg, w) in messages.iter().zip(&self.weights) {
                        if !msg.is_empty() {
                            plan.decode_add(msg, *w, &mut self.g)?;
                        }
                    }
                }
                _ => return Err(Error::Comm { what: "3PC messages arrive through a gather (a method bug)".into() }),
            }
        }
        Ok(Down::dense(plan.step.gamma, &self.g))
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("g", &self.g);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("g", &mut self.g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::smoothness::Smoothness;
    use crate::protocol::Topology;

    const D: usize = 24;

    fn plan_of(method: &str, compressor: &str) -> ThreePointPlan {
        let smoothness = Smoothness { l: 1.0, l_i: vec![1.0], l_tilde: 1.0, l_max: 1.0, l_pm: None };
        let setup = Setup {
            compressor,
            dim: D,
            weights: &[1.0],
            first_worker: 0,
            local_workers: 1,
            smoothness: &smoothness,
            matrices: None,
            step: step_size::Override { step: None, factor: 1.0 },
            collective: None,
            topology: Topology::Replicated,
            batch: None,
            ridge: None,
            rows: &[10],
            down_compressor: "identity",
            seed: 5,
            rank: 0,
            ranks: 1,
            checkpoints: false,
        };
        let mut spec = Spec::parse_method(method).unwrap();
        let name = match spec.name.as_str() {
            "ef21" => RuleName::Ef21,
            "clag" => RuleName::Clag,
            "lag" => RuleName::Lag,
            "3pcv1" => RuleName::V1,
            "3pcv2" => RuleName::V2,
            "3pcv4" => RuleName::V4,
            "3pcv5" => RuleName::V5,
            "marina" => RuleName::Marina,
            "adacgd" => RuleName::AdaCgd,
            other => panic!("not a 3PC method: {other}"),
        };
        plan(&setup, &mut spec, name).unwrap()
    }

    fn gaussian_like(rng: &mut Stream, scale: f64) -> Vec<f64> {
        (0..D).map(|_| scale * (rng.random::<f64>() - 0.5) * (1.0 + 3.0 * rng.random::<f64>())).collect()
    }

    /// ALGORITHMS.md §G.1, §G.5: E‖C_{h,y}(x) − x‖² ≤ (1 − A)‖h − y‖² + B‖x − y‖² for every
    /// rule, by Monte Carlo over the compressors' coins (and, for 3PCv5, exactly over its
    /// coin: the exact round has error 0) at 30 random (h, y, x) of mixed scales. The
    /// mean may exceed the bound by 4 standard errors of the sample.
    #[test]
    fn every_rule_is_a_three_point_compressor_with_its_constants() {
        let cases = [
            ("ef21", "top-k:k=3"),
            ("ef21", "rand-k:k=6"),
            ("ef21", "qsgd:s=2"),
            ("clag:zeta=0.5", "top-k:k=3"),
            ("clag:zeta=4", "rand-k:k=6"),
            ("clag:zeta=64", "top-k:k=12"),
            ("lag:zeta=2", "identity"),
            ("3pcv1", "top-k:k=3"),
            ("3pcv1", "natural"),
            ("3pcv2", "top-k:k=3;rand-k:k=6"),
            ("3pcv4", "top-k:k=3;top-k:k=5"),
            ("3pcv4", "top-k:k=2;rand-k:k=8"),
            ("3pcv5:p=0.3", "top-k:k=3"),
            ("adacgd:zeta=1", "top-k:k=1;top-k:k=4;top-k:k=12"),
            ("adacgd:zeta=0.25", "rand-k:k=4;top-k:k=8"),
        ];
        let trials = 400;
        let mut points = rng::shared(11, Purpose::Generator);
        for (method, compressor) in cases {
            let mut plan = plan_of(method, compressor);
            let (a, b, _) = constants(plan.rule, &plan.parts).unwrap();
            let mut coins = rng::private(3, 0, Purpose::Compressor);
            for point in 0..30 {
                let y = gaussian_like(&mut points, 1.0);
                let scale_h = 10f64.powf(2.0 * points.random::<f64>() - 1.0);
                let scale_x = 10f64.powf(2.0 * points.random::<f64>() - 1.0);
                let h: Vec<f64> = y.iter().zip(gaussian_like(&mut points, scale_h)).map(|(y, u)| y + u).collect();
                let x: Vec<f64> = y.iter().zip(gaussian_like(&mut points, scale_x)).map(|(y, v)| y + v).collect();
                let bound = (1.0 - a) * distance_sq(&h, &y) + b * distance_sq(&x, &y);
                let (mut sum, mut sum_sq) = (0.0, 0.0);
                for _ in 0..trials {
                    plan.parts.iter_mut().for_each(|p| p.codec.begin_round());
                    let (mut g, mut out, mut own) = (h.clone(), Vec::new(), Vec::new());
                    plan.step(0, &mut g, &y, &x, &mut coins, Uplink::Bytes(&mut out), &mut own).unwrap();
                    let mut error = distance_sq(&g, &x);
                    if let Rule::V5 { p } = plan.rule {
                        error *= 1.0 - p;
                    }
                    sum += error;
                    sum_sq += error * error;
                }
                let mean = sum / trials as f64;
                let std_err = ((sum_sq / trials as f64 - mean * mean).max(0.0) / trials as f64).sqrt();
                assert!(
                    mean <= bound * (1.0 + 1e-12) + 4.0 * std_err,
                    "{method} with {compressor}, point {point}: E‖C − x‖² = {mean:.6e} ± {std_err:.1e} > bound {bound:.6e} (A = {a}, B = {b})"
                );
            }
        }
    }

    /// The server's decoder rebuilds what the worker applied to itself, for every rule:
    /// after one step, h + decode(message) equals the worker's g_i^{t+1} exactly.
    #[test]
    fn the_message_rebuilds_the_workers_estimator() {
        let mut points = rng::shared(12, Purpose::Generator);
        for (method, compressor) in [
            ("ef21", "rand-k:k=6"),
            ("lag:zeta=0", "identity"),
            ("3pcv1", "top-k:k=3"),
            ("3pcv2", "top-k:k=3;rand-k:k=6"),
            ("3pcv4", "top-k:k=3;top-k:k=5"),
            ("3pcv5:p=0.3", "qsgd:s=2"),
            ("marina:p=0.3", "rand-k:k=6"),
            ("adacgd:zeta=0.5", "top-k:k=1;rand-k:k=4;top-k:k=12"),
        ] {
            let mut plan = plan_of(method, compressor);
            let mut coins = rng::private(3, 0, Purpose::Compressor);
            for _ in 0..20 {
                let (h, y, x) =
                    (gaussian_like(&mut points, 1.0), gaussian_like(&mut points, 1.0), gaussian_like(&mut points, 1.0));
                plan.parts.iter_mut().for_each(|p| p.codec.begin_round());
                let (mut g, mut out, mut own) = (h.clone(), Vec::new(), Vec::new());
                let (sent, _) = plan.step(0, &mut g, &y, &x, &mut coins, Uplink::Bytes(&mut out), &mut own).unwrap();
                if sent == Sent::Skip {
                    assert_eq!(g, h, "{method}: a skip keeps g_i");
                    continue;
                }
                let mut rebuilt = h.clone();
                plan.decode_add(&out, 1.0, &mut rebuilt).unwrap();
                assert_eq!(rebuilt, g, "{method} with {compressor}");
            }
        }
    }

    /// AdaCGD's bits: ⌈log₂(m+1)⌉ for the level, then the chosen compressor's (top-k: 32
    /// bits a value and ⌈log₂ d⌉ an index); its header names a level the decoder has.
    #[test]
    fn adacgd_counts_its_level_and_rejects_an_unknown_one() {
        let mut plan = plan_of("adacgd:zeta=0", "top-k:k=1;top-k:k=4;top-k:k=12");
        let mut coins = rng::private(3, 0, Purpose::Compressor);
        let mut points = rng::shared(13, Purpose::Generator);
        let (h, y, x) =
            (gaussian_like(&mut points, 1.0), gaussian_like(&mut points, 1.0), gaussian_like(&mut points, 1.0));
        let (mut g, mut out, mut own) = (h.clone(), Vec::new(), Vec::new());
        let (sent, _) = plan.step(0, &mut g, &y, &x, &mut coins, Uplink::Bytes(&mut out), &mut own).unwrap();
        // ζ = 0: no candidate meets ‖x − cand‖² ≤ 0, so the finest level (12 values) goes.
        assert_eq!(out[0], 2);
        let index_bits = u64::from(wire::ceil_log2(D as u64));
        assert_eq!(sent, Sent::Bits(2 + 12 * (32 + index_bits)));
        out[0] = 3;
        let e = plan.decode_add(&out, 1.0, &mut g).unwrap_err().to_string();
        assert!(e.contains("level 4 in the header, but there are 3 compressors"), "{e}");
    }

    /// `p=auto` minimises MiniFL's bit cost: no p of a fine independent grid does better,
    /// and it moves the right way with the message size c (cheaper messages → fewer
    /// dense rounds) and with A (more variance → more dense rounds).
    #[test]
    fn bit_optimal_p_minimises_the_cost() {
        let cost = |a: f64, c: f64, p: f64| (p + (1.0 - p) * c) * (1.0 + (a * (1.0 - p) / p).sqrt());
        for (a, c) in [(4.5, 0.05), (0.5, 0.3), (30.0, 0.01), (1.0, 0.9)] {
            let p = minimise_bits_to_tolerance(a, c);
            let best_on_grid = (1..100_000).map(|i| cost(a, c, i as f64 / 100_000.0)).fold(f64::INFINITY, f64::min);
            assert!(cost(a, c, p) <= best_on_grid * (1.0 + 1e-9), "A = {a}, c = {c}: p = {p}");
        }
        assert!(minimise_bits_to_tolerance(4.5, 0.01) < minimise_bits_to_tolerance(4.5, 0.1));
        assert!(minimise_bits_to_tolerance(20.0, 0.05) > minimise_bits_to_tolerance(2.0, 0.05));
    }

    /// §G.1 table values: EF21's closed form √(B/A) = √(1−α)/(1 − √(1−α)); 3PCv5 with
    /// p = 1 is GD (A = 1, B = 0); 3PCv4 with two identities is GD.
    #[test]
    fn constants_match_the_table() {
        let plan = plan_of("ef21", "top-k:k=6");
        let (a, b, _) = constants(plan.rule, &plan.parts).unwrap();
        let alpha: f64 = 6.0 / D as f64;
        assert!(((b / a).sqrt() - (1.0 - alpha).sqrt() / (1.0 - (1.0 - alpha).sqrt())).abs() < 1e-12);
        let plan = plan_of("3pcv5:p=1", "top-k:k=6");
        let (a, b, _) = constants(plan.rule, &plan.parts).unwrap();
        assert_eq!((a, b), (1.0, 0.0));
        let plan = plan_of("3pcv4", "identity;identity");
        let (a, b, _) = constants(plan.rule, &plan.parts).unwrap();
        assert_eq!((a, b), (1.0, 0.0));
    }
}
