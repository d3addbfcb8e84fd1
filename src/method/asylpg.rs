//! Double quantization (Yu, Wu, Huang, NeurIPS 2019; ALGORITHMS.md §B): AsyLPG,
//! Sparse-AsyLPG and accelerated AsyLPG, synchronous execution on the round protocol.
//!
//! Prox-SVRG epochs with both directions quantized (§B.2):
//! ```text
//! epoch s:   x̃ (snapshot), ∇f(x̃) in full precision (one Sum of the workers' full gradients)
//! inner t:   server → workers  Q(x_t), μ-bounded: E‖Q(x_t) − x_t‖² ≤ μ‖x_t − x̃‖²
//!            worker i          α_i = ∇f_{i,I}(Q(x_t)) − ∇f_{i,I}(x̃) + ∇f(x̃) on a minibatch I
//!                              of --batch rows, sends Q_(δ,b)(α_i) (--compressor)
//!            server            x_{t+1} = prox_{ηh}(x_t − η Σ_i w_i Q(α_i))
//! x̃^{s+1} = x_m (the last iterate)
//! ```
//! Synchronous: every worker contributes every inner step (`order=serial`: one worker
//! per inner step, in worker order, m·W steps per epoch), so this is deterministic and
//! bit-identical across rank layouts. Asynchronous (`async`, `staleness=τ`): the same
//! pieces on `protocol::asynchronous` (a data-free parameter server on rank 0 applying
//! each worker's term w_j·Q(α_j) as it arrives; docs/architecture.md, "Asynchronous
//! execution"); with `order=serial` it is the synchronous serial schedule bit for bit.
//!
//! What follows the paper and what is ours (§B tags; README "Double quantization"):
//! * [secondary] the structure above, the model quantized directly with a μ-bounded
//!   error (`model=direct`, `compress::model_quant`), the gradient on the b-bit grid
//!   (`lowp:b=B`), Sparse-AsyLPG's sparsify-then-quantize (`sparse-lowp:k=K,b=B`).
//! * [recall/ours] δ_x = 2√(μ/d)‖x − x̃‖ with the smallest unclipped width; the last
//!   iterate as the next snapshot; one minibatch per worker per inner step (the sync
//!   execution: every worker, every step); the default η = 1/(4·L_max·(1 + ω/n)) (no
//!   theory default was readable) and m = one pass over a worker's rows.
//! * Accelerated AsyLPG: the coefficients of the paper's box were not read; the MiG
//!   template of §B.4 is behind the flag `unverified` (θ_s = 2/(s+4), η_s = 1/(c·L_max·θ_s);
//!   the quantized point is x_t = θ_s y_t + (1 − θ_s)x̃, the server steps y, and
//!   x̃^{s+1} = θ_s·mean(y_1..y_m) + (1 − θ_s)x̃^s).
//! * Ridge: `ridge=smooth` keeps (λ/2)‖x‖² inside f (h = 0, the prox is the identity);
//!   `ridge=prox` makes it h: the workers' α leave λx out and the server steps
//!   x ← (x − ηḡ)/(1 + ηλ) (§B.6: a floor from the gradient noise at ∇f(x*) ≠ 0).
//!
//! Rounds: one snapshot round (phases: Sum(d) of w_i∇f_i(x̃), then Serve of Q(x_0)), then
//! m inner rounds (the uplink phase, then Serve of the next Q(x), except in the last).
//! Bits (§B.2): uplink the compressor's paper bits per inner step, 32d per worker for the
//! snapshot gradient; downlink n × the model message (empty at x = x̃) per inner step,
//! n × 64d per snapshot (x̃ and ∇f(x̃) in fp32). The exact model update x ← x − η·ḡ only
//! mirrors the server's x to every rank for the monitor (`Down::mirrored`): not counted.

use super::codec::{add_exact_message, write_exact, Codec};
use super::step_size::StepSize;
use super::{require_family, require_unbiased, Entry, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::compress::model_quant::{Mode, ModelQuantizer};
use crate::error::{Error, Result};
use crate::objective::Objective;
use crate::protocol::asynchronous::{Algorithm, Asynchronous, Options};
use crate::protocol::{Down, Oracle, Phase, Plan, Protocol, Received, Sent, ServerRole, Topology, Uplink, WorkerRole};
use crate::rng::{self, Purpose, Stream};
use crate::spec::Spec;
use crate::worker::Worker;

/// The keys both variants share.
const EPOCH: (&str, &str) =
    ("epoch", "inner steps m per epoch (default ⌈mean rows/B⌉ with --batch B: one pass; 1 without --batch)");
const MU: (&str, &str) =
    ("mu", "model error constant μ: E‖Q(x) − x‖² ≤ μ‖x − x̃‖² (default 0.5; direct and delta only)");
const MODEL: (&str, &str) = (
    "model",
    "direct (default: the model on its own grid, §B.2), delta (x − x̃, our construction), exact (fp32 models) \
     or fixed (width bx, not μ-bounded)",
);
const BX: (&str, &str) = ("bx", "the model width of model=fixed (δ = ‖x‖_∞/(2^{bx−1} − 1), HALP-style)");
const RIDGE: (&str, &str) = ("ridge", "smooth (default: λ inside f) or prox (the ridge as h, through prox_ηh)");
const ASYNC: (&str, &str) = (
    "async",
    "flag: the asynchronous execution (rank 0 a data-free parameter server applying each update as it arrives; \
     a round is then an epoch of m·W updates)",
);
const STALENESS: (&str, &str) =
    ("staleness", "τ of async: an update computed on a model more than τ versions old is dropped (default P − 2)");
const ORDER: (&str, &str) = (
    "order",
    "parallel (default: every worker every inner step; async: as updates arrive) or serial (one worker per inner \
     step, in worker order; m·W steps per epoch)",
);

const KEYS: &[(&str, &str)] = &[
    ("eta", "step η (default 1/(4·L_max·(1 + ω/n)), our SVRG-type choice; or --step / --step-factor)"),
    EPOCH,
    MU,
    MODEL,
    BX,
    RIDGE,
    ASYNC,
    STALENESS,
    ORDER,
];

const ACC_KEYS: &[(&str, &str)] = &[
    ("eta", "step η_0 of the first epoch (default 1/(c·L_max·θ_0)); later epochs η_s = η_0·θ_0/θ_s"),
    EPOCH,
    MU,
    MODEL,
    BX,
    RIDGE,
    ASYNC,
    STALENESS,
    ORDER,
    ("theta", "a constant momentum weight θ in (0, 1] (default θ_s = 2/(s+4), the MiG template)"),
    ("c", "the constant of η_s = 1/(c·L_max·θ_s) (default 3)"),
    ("unverified", "required flag: the coefficients are the MiG template of §B.4, not the paper's box"),
];

pub const ASYLPG: Entry = Entry {
    name: "asylpg",
    about: "AsyLPG (§B.2): prox-SVRG epochs, the μ-bounded quantized model down, Q_(δ,b) of the SVRG gradient up",
    keys: KEYS,
    dense_downlink: false,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("asylpg:epoch=4", "lowp:b=8"), ("asylpg:epoch=3,model=delta,ridge=prox", "identity")],
    build: |setup, spec| build(setup, spec, Variant::Plain),
};

pub const SPARSE_ASYLPG: Entry = Entry {
    name: "sparse-asylpg",
    about: "Sparse-AsyLPG (§B.3): AsyLPG with the gradient sparsified before quantizing (--compressor sparse-lowp)",
    keys: KEYS,
    dense_downlink: false,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("sparse-asylpg:epoch=4", "sparse-lowp:k=20,b=8")],
    build: |setup, spec| {
        require_family(setup, "sparse-asylpg", "sparse-lowp:k=K,b=B")?;
        build(setup, spec, Variant::Plain)
    },
};

pub const ACC_ASYLPG: Entry = Entry {
    name: "acc-asylpg",
    about: "accelerated AsyLPG (§B.4, unverified coefficients: the MiG template): momentum on double quantization",
    keys: ACC_KEYS,
    dense_downlink: false,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("acc-asylpg:unverified,epoch=4", "lowp:b=8")],
    build: |setup, spec| build(setup, spec, Variant::Accelerated),
};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    Plain,
    Accelerated,
}

/// The momentum weight of accelerated AsyLPG.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Theta {
    /// θ_s = 2/(s + 4) (§B.4 template, non-strongly convex).
    Schedule,
    Constant(f64),
}

impl Theta {
    fn at(self, epoch: u64) -> f64 {
        match self {
            Theta::Schedule => 2.0 / (epoch as f64 + 4.0),
            Theta::Constant(theta) => theta,
        }
    }
}

/// The method's parameters from its SPEC.
struct Params {
    epoch: u64,
    /// `order=serial`: one worker per inner step.
    serial: bool,
    /// `async` with its staleness bound τ.
    asynchronous: Option<u64>,
    quantizer: ModelQuantizer,
    /// λ of h = (λ/2)‖x‖² with `ridge=prox`.
    prox: Option<f64>,
    /// None: plain AsyLPG.
    momentum: Option<Theta>,
}

fn build(setup: &Setup, spec: &mut Spec, variant: Variant) -> Result<Box<dyn Method>> {
    let name = spec.name.clone();
    let codec = Codec::new(setup, &name)?;
    let omega = require_unbiased(codec.class(), &name, setup.compressor)?;
    let params = parse(setup, spec, variant, &name)?;
    let (gamma, rule) = match params.momentum {
        None => {
            let n = setup.effective_workers();
            let gamma = 1.0 / (4.0 * setup.smoothness.l_max * (1.0 + omega / n));
            let rule = format!(
                "1/(4·L_max·(1 + ω/n)), L_max = {:.6e}, ω = {omega:.6}, n = {n:.3} [ours: §B.2 gives no theory default]",
                setup.smoothness.l_max
            );
            (gamma, rule)
        }
        Some(theta) => {
            let c = spec.take_f64_or("c", 3.0)?;
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::config(format!("{name}: c = {c}"), "choose c > 0 (the template uses 3–4)"));
            }
            let theta0 = theta.at(0);
            let gamma = 1.0 / (c * setup.smoothness.l_max * theta0);
            let rule = format!(
                "1/(c·L_max·θ_0), c = {c}, L_max = {:.6e}, θ_0 = {theta0} [§B.4 MiG template, unverified]",
                setup.smoothness.l_max
            );
            (gamma, rule)
        }
    };
    let mut step = match spec.take_f64_or("eta", f64::NAN)? {
        eta if eta.is_nan() => StepSize::resolve(gamma, &rule, setup.step),
        eta if setup.step.step.is_some() || setup.step.factor != 1.0 => {
            return Err(Error::config(
                format!("{name}:eta={eta} together with --step or --step-factor"),
                "give the step once: the eta key or --step",
            ))
        }
        eta if eta > 0.0 && eta.is_finite() => {
            StepSize { gamma: eta, rule: format!("eta = {eta} (default would be {rule} = {gamma:.6e})") }
        }
        eta => return Err(Error::config(format!("{name}:eta={eta}"), "choose η > 0")),
    };
    // §B.6: which split is used decides whether a gradient-noise floor remains.
    step.rule.push_str(&match params.prox {
        Some(lambda) => format!("; the ridge (λ = {lambda}) is the prox term h"),
        None => "; the regulariser is inside f (h = 0)".into(),
    });
    let d = setup.dim;
    let plan = AsyLpgPlan {
        step,
        codec,
        epoch: params.epoch,
        serial: params.serial.then_some(setup.workers() as u64),
        round: 0,
        quantizer: params.quantizer,
        prox: params.prox,
        momentum: params.momentum,
        snapshot: vec![0.0; d],
        full: vec![0.0; d],
        view: vec![0.0; d],
        mean_y: vec![0.0; d],
    };
    if let Some(staleness) = params.asynchronous {
        return build_async(setup, plan, Options { staleness, serial: params.serial });
    }
    let workers = (0..setup.local_workers).map(|_| AsyLpgWorker { alpha: vec![0.0; d], own: Vec::new() }).collect();
    let server = setup.server(|| AsyLpgServer {
        coins: rng::shared(setup.seed, Purpose::ModelQuantizer),
        sum: vec![0.0; d],
        point: vec![0.0; d],
        wire: Vec::new(),
    });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, workers, server)?))
}

fn parse(setup: &Setup, spec: &mut Spec, variant: Variant, name: &str) -> Result<Params> {
    let batch = setup.batch.unwrap_or(usize::MAX).max(1);
    let mean_rows = setup.rows.iter().sum::<u64>() as f64 / setup.rows.len() as f64;
    let one_pass = (mean_rows / batch as f64).ceil().max(1.0) as usize;
    let epoch = spec.take_usize_or("epoch", one_pass)?;
    if !(1..=1 << 40).contains(&epoch) {
        return Err(Error::config(format!("{name}:epoch={epoch}"), "choose 1 ≤ epoch ≤ 2^40 inner steps"));
    }
    let mode = spec.take_choice("model", &["direct", "delta", "exact", "fixed"], "direct")?;
    let mu = match spec.take_f64_or("mu", f64::NAN)? {
        mu if mu.is_nan() => 0.5,
        mu if mode == "direct" || mode == "delta" => mu,
        mu => {
            return Err(Error::config(
                format!("{name}:mu={mu} with model={mode}"),
                "mu bounds model=direct or delta only: drop it",
            ))
        }
    };
    let fixed_width = spec.take_usize_opt("bx")?;
    let quantizer = match (mode.as_str(), fixed_width) {
        ("direct", None) => ModelQuantizer::new(Mode::Direct, mu, setup.dim)?,
        ("delta", None) => ModelQuantizer::new(Mode::Delta, mu, setup.dim)?,
        ("fixed", Some(b)) => ModelQuantizer::new(Mode::Fixed(b.min(64) as u32), mu, setup.dim)?,
        ("fixed", None) => {
            return Err(Error::config(format!("{name}:model=fixed without bx"), "give the width: model=fixed,bx=8"))
        }
        (_, None) => ModelQuantizer::new(Mode::Direct, 0.0, setup.dim)?, // exact
        (_, Some(_)) => {
            return Err(Error::config(format!("{name}:bx with model={mode}"), "bx is the width of model=fixed only"))
        }
    };
    let prox = match spec.take_choice("ridge", &["smooth", "prox"], "smooth")?.as_str() {
        "prox" => Some(setup.ridge.ok_or_else(|| {
            Error::config(
                format!("{name}:ridge=prox with this objective"),
                "ridge=prox needs the ridge (λ/2)‖x‖² (--objective logistic or least-squares); use ridge=smooth",
            )
        })?),
        _ => None,
    };
    let momentum = match variant {
        Variant::Plain => None,
        Variant::Accelerated => {
            if !spec.take_flag("unverified")? {
                return Err(Error::config(
                    format!("--method {}", spec.text()),
                    "acc-asylpg's coefficients are the MiG template of ALGORITHMS.md §B.4, not the paper's \
                     (unread) box: write --method acc-asylpg:unverified to run them",
                ));
            }
            Some(match spec.take_f64_or("theta", f64::NAN)? {
                t if t.is_nan() => Theta::Schedule,
                t if t > 0.0 && t <= 1.0 => Theta::Constant(t),
                t => return Err(Error::config(format!("{name}:theta={t}"), "choose 0 < θ ≤ 1")),
            })
        }
    };
    let serial = spec.take_choice("order", &["parallel", "serial"], "parallel")? == "serial";
    let asynchronous = match (spec.take_flag("async")?, spec.take_usize_opt("staleness")?) {
        (true, tau) => Some(tau.map_or(setup.ranks.saturating_sub(2) as u64, |t| t as u64)),
        (false, None) => None,
        (false, Some(tau)) => {
            return Err(Error::config(
                format!("{name}:staleness={tau} without async"),
                format!("staleness bounds the asynchronous execution: write {name}:async,staleness={tau}"),
            ))
        }
    };
    Ok(Params { epoch: epoch as u64, serial, asynchronous, quantizer, prox, momentum })
}

/// The asynchronous execution of the plan (`crate::protocol::asynchronous`), after the
/// checks that only it needs.
fn build_async(setup: &Setup, mut plan: AsyLpgPlan, options: Options) -> Result<Box<dyn Method>> {
    let refuse = |what: String, fix: &str| Err(Error::config(what, fix));
    if setup.checkpoints {
        return refuse(
            "--checkpoint-dir with an asynchronous run".into(),
            "async runs cannot be resumed (their arrival order is not reproducible): drop --checkpoint-dir",
        );
    }
    if setup.topology != Topology::Replicated {
        return refuse(
            "--topology server with async".into(),
            "the asynchronous execution has its own layout (rank 0 serves): drop --topology",
        );
    }
    if plan.codec.draws_shared() {
        return refuse(
            format!("--compressor {} with async", setup.compressor),
            "it draws a shared support every round, which needs every rank in the same round: choose a compressor \
             with private coins (lowp:b=B, sparse-lowp:k=K,b=B, qsgd, identity, …)",
        );
    }
    if setup.rank == 0 && setup.local_workers > 0 {
        return refuse(
            "async with workers on rank 0".into(),
            "the asynchronous execution needs rank 0 free of data, which `qtrain train` sets up from the SPEC",
        );
    }
    log::info!(
        "asynchronous execution: rank 0 serves, ranks 1..{} host {} workers; staleness τ = {}{}; a round is an epoch of \
         {} applied updates",
        setup.ranks - 1,
        setup.workers(),
        options.staleness,
        if options.serial { ", serial order" } else { "" },
        plan.epoch * setup.workers() as u64
    );
    // Each applied update is one worker's inner step, whatever the service order: the
    // plan counts them as the serial schedule does (m·W per epoch; the accelerated
    // variant's running mean of y and its snapshot after the last).
    plan.serial = Some(setup.workers() as u64);
    let d = setup.dim;
    let algorithm = AsyLpgAsync {
        plan,
        coins: rng::shared(setup.seed, Purpose::ModelQuantizer),
        sum: vec![0.0; d],
        point: vec![0.0; d],
        alpha: vec![0.0; d],
        own: Vec::new(),
        wire: Vec::new(),
    };
    Ok(Box::new(Asynchronous::new(algorithm, options, setup.ranks, setup.first_worker, setup.weights, d)))
}

/// Where round t falls: the snapshot round of an epoch, or inner step r = 1..=m.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stage {
    Snapshot { epoch: u64 },
    Inner { epoch: u64, r: u64 },
}

struct AsyLpgPlan {
    step: StepSize,
    codec: Codec,
    /// m: inner steps of every worker per epoch.
    epoch: u64,
    /// `order=serial`: W, and each inner round is one worker's (m·W rounds per epoch).
    serial: Option<u64>,
    /// The round in progress (set by `begin_round`).
    round: u64,
    quantizer: ModelQuantizer,
    prox: Option<f64>,
    momentum: Option<Theta>,
    /// x̃ and ∇f(x̃) of the epoch, and the workers' view Q(x_t) of the model to step from.
    snapshot: Vec<f64>,
    full: Vec<f64>,
    view: Vec<f64>,
    /// Accelerated: the mean of y_1..y_r of the epoch so far.
    mean_y: Vec<f64>,
}

impl AsyLpgPlan {
    /// Inner rounds per epoch: m, or m·W in the serial schedule.
    fn inner_rounds(&self) -> u64 {
        self.epoch * self.serial.unwrap_or(1)
    }

    fn stage(&self) -> Stage {
        let per_epoch = self.inner_rounds() + 1;
        let (epoch, r) = (self.round / per_epoch, self.round % per_epoch);
        if r == 0 {
            Stage::Snapshot { epoch }
        } else {
            Stage::Inner { epoch, r }
        }
    }

    /// Whether the epoch's snapshot is the model itself (AsyLPG; the first epoch of the
    /// accelerated variant), rather than the accelerated variant's own combination.
    fn snapshot_is_model(&self, epoch: u64) -> bool {
        self.momentum.is_none() || epoch == 0
    }

    /// θ_s of the accelerated variant (1 for AsyLPG: the point quantized is the model).
    fn theta(&self, epoch: u64) -> f64 {
        self.momentum.map_or(1.0, |m| m.at(epoch))
    }

    /// The step of this epoch: η, or η_0·θ_0/θ_s for the accelerated variant.
    fn eta(&self, epoch: u64) -> f64 {
        self.step.gamma * self.theta(0) / self.theta(epoch)
    }

    /// The factor of an inner step x ← x − factor·sum from sum = Σ w_i Q(α_i) (over the
    /// workers of the step); with the ridge as h, sum becomes sum + λx:
    /// prox_ηh(x − η·sum) = (x − η·sum)/(1 + ηλ) = x − η/(1 + ηλ)·(sum + λx).
    fn step_factor(&self, epoch: u64, sum: &mut [f64], x: &[f64]) -> f64 {
        let eta = self.eta(epoch);
        match self.prox {
            None => eta,
            Some(lambda) => {
                crate::vector::add_scaled(sum, lambda, x);
                eta / (1.0 + eta * lambda)
            }
        }
    }

    /// After inner step r of the epoch (x = y_r): the accelerated variant's running mean
    /// of y and, after the last step, its next snapshot θ·mean(y) + (1 − θ)x̃.
    fn after_inner_step(&mut self, epoch: u64, r: u64, x: &[f64]) {
        let Some(theta) = self.momentum.map(|m| m.at(epoch)) else { return };
        let weight = 1.0 / r as f64;
        self.mean_y.iter_mut().zip(x.iter()).for_each(|(m, y)| *m += weight * (y - *m));
        if r == self.inner_rounds() {
            for (s, m) in self.snapshot.iter_mut().zip(&self.mean_y) {
                *s = theta * m + (1.0 - theta) * *s;
            }
        }
    }

    /// The server's model message: Q of θ·x + (1 − θ)x̃ (the model itself for AsyLPG)
    /// into `wire`, with `point` as scratch; its paper bits.
    fn encode_model(&self, epoch: u64, x: &[f64], point: &mut [f64], coins: &mut Stream, wire: &mut Vec<u8>) -> u64 {
        let theta = self.theta(epoch);
        for ((p, &y), &s) in point.iter_mut().zip(x).zip(&self.snapshot) {
            *p = if theta == 1.0 { y } else { theta * y + (1.0 - theta) * s };
        }
        self.quantizer.encode(point, &self.snapshot, coins, wire)
    }
}

impl Plan for AsyLpgPlan {
    fn begin_round(&mut self, t: u64) -> usize {
        self.round = t;
        match self.stage() {
            Stage::Snapshot { .. } => 2,
            Stage::Inner { r, .. } => {
                self.codec.begin_round();
                if r == self.inner_rounds() {
                    1
                } else {
                    2
                }
            }
        }
    }

    fn phase(&self, i: usize) -> Phase {
        match (self.stage(), i) {
            (Stage::Snapshot { .. }, 0) => Phase::Sum { len: self.snapshot.len() },
            (Stage::Inner { .. }, 0) => self.codec.phase(),
            _ => Phase::Serve,
        }
    }

    fn takes_part(&self, worker: usize) -> bool {
        match (self.stage(), self.serial) {
            (Stage::Inner { r, .. }, Some(workers)) => (r - 1) % workers == worker as u64,
            _ => true,
        }
    }

    fn oracle(&self) -> Oracle {
        match self.stage() {
            Stage::Snapshot { epoch } if self.snapshot_is_model(epoch) => Oracle::Full,
            Stage::Snapshot { .. } => Oracle::FullAt,
            Stage::Inner { .. } => Oracle::PairAt,
        }
    }

    fn oracle_points(&self) -> (&[f64], &[f64]) {
        match self.stage() {
            Stage::Snapshot { .. } => (&self.snapshot, &self.snapshot),
            Stage::Inner { .. } => (&self.view, &self.snapshot),
        }
    }

    fn on_downlink(&mut self, i: usize, down: &Down, x: &mut [f64]) -> Result<()> {
        match (self.stage(), i) {
            (Stage::Snapshot { epoch }, 0) => {
                if self.snapshot_is_model(epoch) {
                    self.snapshot.copy_from_slice(x);
                }
                self.full.fill(0.0);
                add_exact_message(down.extra, 1.0, &mut self.full)
            }
            (Stage::Inner { epoch, r }, 0) => {
                self.after_inner_step(epoch, r, x);
                Ok(())
            }
            _ => self.quantizer.decode(down.extra, &self.snapshot, &mut self.view),
        }
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }

    fn save(&self, w: &mut StateWriter) {
        self.codec.save(w);
        w.f64s("snapshot", &self.snapshot);
        w.f64s("snapshot gradient", &self.full);
        w.f64s("quantized model", &self.view);
        w.f64s("mean of y", &self.mean_y);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        self.codec.load(r)?;
        r.f64s_into("snapshot", &mut self.snapshot)?;
        r.f64s_into("snapshot gradient", &mut self.full)?;
        r.f64s_into("quantized model", &mut self.view)?;
        r.f64s_into("mean of y", &mut self.mean_y)
    }
}

struct AsyLpgWorker {
    alpha: Vec<f64>,
    /// The codec's copy of a summed message (unused feedback).
    own: Vec<f64>,
}

impl WorkerRole<AsyLpgPlan> for AsyLpgWorker {
    fn uplink(&mut self, plan: &mut AsyLpgPlan, _i: usize, data: &mut Worker, up: Uplink) -> Result<Sent> {
        if let Stage::Snapshot { .. } = plan.stage() {
            let Uplink::Sum { weight, acc } = up else { unreachable!("the snapshot gradient is summed") };
            crate::vector::add_scaled(acc, weight, &data.grad);
            return Ok(Sent::Bits(32 * data.grad.len() as u64));
        }
        svrg_direction(plan, data, &mut self.alpha);
        Ok(plan.codec.encode(data.id, &self.alpha, &mut data.rng, up, &mut self.own))
    }

    /// The workers keep nothing between rounds: the snapshot and the view are the plan's.
    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}

/// α = ∇f_I(Q(x)) − ∇f_I(x̃) + ∇f(x̃) from the oracle's pair (`grad` at the view, `pair`
/// at the snapshot), less the ridge's λ·Q(x) with `ridge=prox` (h is the server's).
fn svrg_direction(plan: &AsyLpgPlan, data: &Worker, alpha: &mut [f64]) {
    let ridge = plan.prox.unwrap_or(0.0);
    for (j, a) in alpha.iter_mut().enumerate() {
        *a = data.grad[j] - data.pair[j] + plan.full[j] - ridge * plan.view[j];
    }
}

struct AsyLpgServer {
    /// The model quantizer's coins (shared: every replica draws the same).
    coins: Stream,
    /// ∇f(x̃), then Σ_i w_i Q(α_i), or with the ridge as h, that plus λx.
    sum: Vec<f64>,
    /// The point quantized for the workers.
    point: Vec<f64>,
    wire: Vec<u8>,
}

impl ServerRole<AsyLpgPlan> for AsyLpgServer {
    fn serve(&mut self, plan: &mut AsyLpgPlan, i: usize, received: Received, x: &[f64]) -> Result<Down<'_>> {
        let d = x.len() as u64;
        match (plan.stage(), i) {
            (Stage::Snapshot { .. }, 0) => {
                let Received::Sum(sum) = received else { unreachable!("the snapshot gradient is summed") };
                write_exact(sum, &mut self.wire);
                // x̃ and ∇f(x̃) to every worker, fp32 each (§B.2).
                Ok(Down::nothing().with_extra(&self.wire, 64 * d).counted())
            }
            (Stage::Inner { epoch, .. }, 0) => {
                self.sum.fill(0.0);
                plan.codec.aggregate(received, 1.0, &mut self.sum)?;
                let step = plan.step_factor(epoch, &mut self.sum, x);
                Ok(Down::dense(step, &self.sum).mirrored())
            }
            (stage, _) => {
                let epoch = match stage {
                    Stage::Snapshot { epoch } | Stage::Inner { epoch, .. } => epoch,
                };
                let bits = plan.encode_model(epoch, x, &mut self.point, &mut self.coins, &mut self.wire);
                Ok(Down::nothing().with_extra(&self.wire, bits).counted())
            }
        }
    }

    fn save(&self, w: &mut StateWriter) {
        w.stream("model quantizer coins", &self.coins);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.stream("model quantizer coins", &mut self.coins)
    }
}

/// AsyLPG for the asynchronous execution: the same plan, the server's pieces and one
/// worker's scratch (a rank computes one update at a time).
struct AsyLpgAsync {
    plan: AsyLpgPlan,
    coins: Stream,
    sum: Vec<f64>,
    point: Vec<f64>,
    alpha: Vec<f64>,
    own: Vec<f64>,
    wire: Vec<u8>,
}

impl Algorithm for AsyLpgAsync {
    /// m·W: as many gradient pairs as m synchronous inner steps.
    fn updates_per_epoch(&self) -> u64 {
        self.plan.inner_rounds()
    }

    fn begin_epoch(&mut self, epoch: u64, x: &[f64]) {
        if self.plan.snapshot_is_model(epoch) {
            self.plan.snapshot.copy_from_slice(x);
        }
    }

    fn snapshot_is_model(&self, epoch: u64) -> bool {
        self.plan.snapshot_is_model(epoch)
    }

    fn snapshot_mut(&mut self) -> &mut [f64] {
        &mut self.plan.snapshot
    }

    /// The same arithmetic as the synchronous snapshot's exact message (0 + 1·v).
    fn set_snapshot_gradient(&mut self, full: &[f64]) {
        self.plan.full.fill(0.0);
        crate::vector::add_scaled(&mut self.plan.full, 1.0, full);
    }

    fn encode_model(&mut self, epoch: u64, x: &[f64], out: &mut Vec<u8>) -> u64 {
        let bits = self.plan.encode_model(epoch, x, &mut self.point, &mut self.coins, &mut self.wire);
        out.extend_from_slice(&self.wire);
        bits
    }

    /// One worker's term of the synchronous step: x ← x − factor·w_j·Q(α_j).
    fn apply(&mut self, epoch: u64, k: u64, weight: f64, msg: &[u8], x: &mut [f64]) -> Result<()> {
        self.sum.fill(0.0);
        self.plan.codec.decode_add(msg, weight, &mut self.sum)?;
        let step = self.plan.step_factor(epoch, &mut self.sum, x);
        crate::protocol::downlink::apply(&Down::dense(step, &self.sum), x);
        self.plan.after_inner_step(epoch, k, x);
        Ok(())
    }

    fn update(&mut self, model: &[u8], data: &mut Worker, obj: &Objective, out: &mut Vec<u8>) -> Result<(u64, f64)> {
        let plan = &mut self.plan;
        plan.quantizer.decode(model, &plan.snapshot, &mut plan.view)?;
        let seconds = data.pair_gradients(obj, &plan.view, &plan.snapshot);
        svrg_direction(plan, data, &mut self.alpha);
        self.wire.clear();
        let Sent::Bits(bits) =
            plan.codec.encode(data.id, &self.alpha, &mut data.rng, Uplink::Bytes(&mut self.wire), &mut self.own)
        else {
            unreachable!("an encoded message has its bits")
        };
        out.extend_from_slice(&self.wire);
        Ok((bits, seconds))
    }

    fn step_size(&self) -> &StepSize {
        &self.plan.step
    }
}
