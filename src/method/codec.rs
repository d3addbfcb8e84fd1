//! A compressor's messages as the uplink of a phase, for the methods that compress a
//! vector per worker (DCGD, EF, EF21, CLAG, DIANA): one instance per rank, in the plan.
//!
//! * **Gather** (any compressor): the worker's packed message; the server decodes every
//!   message in global worker order, so the aggregate does not depend on the rank layout.
//!   An empty message is a skip.
//! * **Sum** (a summable compressor: shared support; the default for them, or
//!   `--collective allreduce`): the worker adds w_i × its f32-rounded values to the
//!   rank's partial sum and keeps them for its own feedback; the server expands the sum.
//!
//! Also the exact f64 messages of the uncompressed rounds (EF21's first round, GD through
//! allgather): d little-endian f64, 32 paper bits per value (§0.6 convention).

use super::{Collective, Setup, StepSize};
use crate::checkpoint::{StateReader, StateWriter};
use crate::compress::smoothness_aware::SmoothnessAware;
use crate::compress::{self, wire, Class, Compressor};
use crate::error::{Error, Result};
use crate::protocol::{Phase, Plan, Received, Sent, Uplink};
use crate::rng::{self, Purpose, Stream};

/// The plan of a method whose every round is one phase of its codec's messages (DCGD,
/// EF, DIANA): the step, the codec, and the method's own replicated constants `M`.
pub struct CodecPlan<M> {
    pub step: StepSize,
    pub codec: Codec,
    pub method: M,
}

impl<M> Plan for CodecPlan<M> {
    fn begin_round(&mut self, _t: u64) -> usize {
        self.codec.begin_round();
        1
    }

    fn phase(&self, _i: usize) -> Phase {
        self.codec.phase()
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }

    fn save(&self, w: &mut StateWriter) {
        self.codec.save(w);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        self.codec.load(r)
    }
}

pub struct Codec {
    compressor: Box<dyn Compressor>,
    /// Through a Sum phase (allreduce / reduce) rather than a Gather.
    summed: bool,
    /// The stream of shared supports, drawn once per round on every rank.
    shared: Stream,
    weights: Vec<f64>,
}

impl Codec {
    /// The `--compressor` of `method`, through the `--collective` the compressor allows.
    pub fn new(setup: &Setup, method: &str) -> Result<Codec> {
        one_compressor(setup, method)?;
        let compressor = Self::compressor(setup, setup.compressor, method)?;
        let summable = compressor.summable().is_some();
        let summed = match setup.collective {
            None => compressor.summable().is_some_and(|s| s.sum_by_default()),
            Some(Collective::Allgather) => false,
            Some(Collective::Allreduce) if summable => true,
            Some(Collective::Allreduce) => {
                return Err(Error::config(
                    format!(
                        "'{}' cannot go through --collective allreduce: each worker's message has its own support",
                        setup.compressor
                    ),
                    "use --collective allgather, or a summable compressor (identity, rand-k:k=K,shared; \
                     clt-k with --method scalecom; sketch with --method sketched-sgd)",
                ))
            }
        };
        Ok(Codec {
            compressor,
            summed,
            shared: rng::shared(setup.seed, Purpose::SharedSupport),
            weights: setup.weights.to_vec(),
        })
    }

    /// Compressor `index` of a `;`-separated `--compressor` list: always gathered (its
    /// message is one part of a longer one), its shared supports from stream `index`.
    pub fn part(setup: &Setup, spec: &str, index: usize, method: &str) -> Result<Codec> {
        let shared = rng::shared_nth(setup.seed, Purpose::SharedSupport, index as u64);
        Self::gathered_with(setup, spec, shared, method, "carry several parts or a header")
    }

    /// The `--compressor` of `method`, gathered whatever the compressor: `why` says why
    /// the method's messages cannot be summed.
    pub fn gathered(setup: &Setup, method: &str, why: &str) -> Result<Codec> {
        one_compressor(setup, method)?;
        let shared = rng::shared(setup.seed, Purpose::SharedSupport);
        Self::gathered_with(setup, setup.compressor, shared, method, why)
    }

    fn gathered_with(setup: &Setup, spec: &str, shared: Stream, method: &str, why: &str) -> Result<Codec> {
        if setup.collective == Some(Collective::Allreduce) {
            return Err(Error::config(
                format!("--collective allreduce with --method {method}"),
                format!("{method}'s messages {why}, so they are gathered: drop --collective"),
            ));
        }
        Ok(Codec {
            compressor: Self::compressor(setup, spec, method)?,
            summed: false,
            shared,
            weights: setup.weights.to_vec(),
        })
    }

    fn compressor(setup: &Setup, spec: &str, method: &str) -> Result<Box<dyn Compressor>> {
        let compressor = compress::build_for(spec, setup.dim, setup.seed, setup.workers())?;
        if let Some(owner) = compressor.only_for_method() {
            return Err(Error::config(
                format!("--method {method} --compressor {spec}"),
                format!("{} is the compressor of --method {owner}", compressor.spec()),
            ));
        }
        Ok(compressor)
    }

    pub fn class(&self) -> Class {
        self.compressor.class()
    }

    /// The compressor's collective AB constants, if its workers are correlated (§H.1).
    pub fn ab(&self) -> Option<(f64, f64)> {
        self.compressor.ab()
    }

    pub fn spec(&self) -> &str {
        self.compressor.spec()
    }

    /// The compressor's smoothness-aware view (§A.2), if it has one.
    pub fn smoothness_aware(&mut self) -> Option<&mut dyn SmoothnessAware> {
        self.compressor.smoothness_aware()
    }

    /// The shared-support stream's position (the codec's only state between rounds).
    pub fn save(&self, w: &mut StateWriter) {
        w.stream("shared supports", &self.shared);
    }

    pub fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.stream("shared supports", &mut self.shared)
    }

    /// Whether its compressor draws a shared support every round (all ranks in step).
    pub fn draws_shared(&self) -> bool {
        self.compressor.draws_shared()
    }

    /// Every rank, every round the codec is used: this round's shared support.
    pub fn begin_round(&mut self) {
        self.compressor.begin_round(&mut self.shared);
    }

    /// The phase its messages travel in.
    pub fn phase(&self) -> Phase {
        match self.compressor.summable() {
            Some(s) if self.summed => Phase::Sum { len: s.values_per_worker() },
            _ => Phase::Gather,
        }
    }

    /// Worker side: compresses global worker `worker`'s `input` (private coins from
    /// `rng`) into the uplink; on the Sum path `own` keeps the worker's values for `add_own`.
    pub fn encode(&mut self, worker: usize, input: &[f64], rng: &mut Stream, up: Uplink, own: &mut Vec<f64>) -> Sent {
        self.compressor.begin_worker(worker);
        match up {
            Uplink::Bytes(out) => {
                self.compressor.encode(input, rng, out);
                Sent::Bits(self.compressor.paper_bits(out))
            }
            Uplink::Sum { weight, acc } => {
                let s = self.compressor.summable().expect("Sum phases only for summable compressors");
                own.resize(s.values_per_worker(), 0.0);
                s.project(input, own);
                crate::vector::add_scaled(acc, weight, own);
                Sent::Bits(s.paper_bits())
            }
        }
    }

    /// acc += scale · the worker's own compressed vector: from its message (Gather) or
    /// its kept values (Sum).
    pub fn add_own(&self, msg: &[u8], own: &[f64], scale: f64, acc: &mut [f64]) -> Result<()> {
        match self.compressor.summable() {
            Some(s) if self.summed => {
                s.add_expanded(own, scale, acc);
                Ok(())
            }
            _ => self.compressor.decode_add(msg, scale, acc),
        }
    }

    /// acc += scale · C(x) from one gathered message.
    pub fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        self.compressor.decode_add(msg, scale, acc)
    }

    /// out = C_i(x) from global worker `worker`'s gathered message, decoded with that
    /// worker's parameters (the smoothness-aware compressors' per-worker steps).
    pub fn decode_from(&mut self, worker: usize, msg: &[u8], out: &mut [f64]) -> Result<()> {
        self.compressor.begin_worker(worker);
        compress::decode(self.compressor.as_ref(), msg, out)
    }

    /// Server side: agg += scale · Σ_i w_i C_i, in global worker order (skips add nothing).
    pub fn aggregate(&self, received: Received, scale: f64, agg: &mut [f64]) -> Result<()> {
        match received {
            Received::Messages(messages) => {
                for (msg, w) in messages.iter().zip(&self.weights) {
                    if !msg.is_empty() {
                        self.compressor.decode_add(msg, scale * w, agg)?;
                    }
                }
                Ok(())
            }
            Received::Sum(sum) => {
                let s = self.compressor.summable().expect("Sum phases only for summable compressors");
                s.add_expanded(&sum[..], scale, agg);
                Ok(())
            }
            Received::Nothing => Ok(()),
        }
    }
}

/// Fails for a ';'-separated compressor list.
fn one_compressor(setup: &Setup, method: &str) -> Result<()> {
    if setup.compressor.contains(';') {
        return Err(Error::config(
            format!("--method {method} --compressor '{}'", setup.compressor),
            format!("{method} takes one compressor; a ';'-separated list is for 3pcv2, 3pcv4 and adacgd"),
        ));
    }
    Ok(())
}

/// An exact message: v as d little-endian f64. Paper bits 32d (§0.6).
pub fn write_exact(v: &[f64], out: &mut Vec<u8>) -> Sent {
    out.clear();
    out.reserve(8 * v.len());
    v.iter().for_each(|x| wire::put_f64(out, *x));
    Sent::Bits(32 * v.len() as u64)
}

/// acc += Σ_i w_i v_i over exact messages, in global worker order (skips add nothing).
pub fn add_exact(received: Received, weights: &[f64], acc: &mut [f64]) -> Result<()> {
    let Received::Messages(messages) = received else {
        return Err(Error::Comm { what: "exact messages arrive through a gather (a method bug)".into() });
    };
    for (msg, w) in messages.iter().zip(weights) {
        if !msg.is_empty() {
            add_exact_message(msg, *w, acc)?;
        }
    }
    Ok(())
}

/// acc += scale · v from one exact message.
pub fn add_exact_message(msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
    wire::expect_len("dense f64", msg, 8 * acc.len())?;
    for (a, b) in acc.iter_mut().zip(msg.chunks_exact(8)) {
        *a += scale * f64::from_le_bytes(b.try_into().expect("8-byte chunk"));
    }
    Ok(())
}
