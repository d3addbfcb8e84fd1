//! `Protocol`: one round of a method over the phases its plan declares
//! (docs/architecture.md, "One page: the protocol").
//!
//! Per round: the plan's `begin_round` on every rank; the gradient oracle; every
//! worker's `begin_round`; per phase the uplinks, the transport, the server, the
//! downlink, the model update and the notifications; then one trailer allreduce that
//! agrees on failure and sums the round's counters. Buffers live here and are reused,
//! so rounds allocate nothing once message sizes have peaked.
//!
//! A failure (a method error, a malformed message) does not stop this rank from entering
//! the round's remaining collectives — it contributes empty messages and zeros, and
//! calls no method code — so the trailer is reached on every rank and every rank returns
//! the same error. On the server topology a failed server broadcasts "no downlink".

use super::downlink::{self, Downlink};
use super::transport::{Transport, SERVER_RANK};
use super::{Down, Oracle, Phase, Plan, Received, Sent, ServerRole, Topology, Uplink, WorkerRole};
use crate::checkpoint::{StateReader, StateWriter};
use crate::comm::Comm;
use crate::error::{Error, Result};
use crate::method::{Method, StepSize};
use crate::objective::Objective;
use crate::worker::Worker;
use std::time::Instant;

/// What one round cost, beyond what `Comm` meters. Counters are totals over all ranks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RoundStats {
    /// Paper-convention bits sent by all workers to the server (§0.4).
    pub paper_bits_up: u64,
    /// Paper-convention bits sent by the server to the workers.
    pub paper_bits_down: u64,
    /// Workers that sent nothing in every uplink phase they were asked for.
    pub skipped: u64,
    /// Seconds computing this rank's gradients.
    pub t_compute: f64,
    /// The part of `t_compute` spent before the round: the monitor's evaluation of x^t,
    /// whose gradients the round reused (the round's wall time does not include it).
    pub t_compute_before: f64,
    /// Seconds in the worker roles (preparing and encoding messages).
    pub t_compress: f64,
    /// Seconds in the server role, the downlink and applying it.
    pub t_decode: f64,
    /// Some rank asked to stop after this round (preemption): agreed, the same on all.
    pub stop: bool,
}

/// Where a run's workers are and how the protocol runs (from the method's `Setup`).
pub struct Layout<'a> {
    pub dim: usize,
    /// w_i of all W workers, by global id.
    pub weights: &'a [f64],
    pub first_worker: usize,
    pub topology: Topology,
    /// `--down-compressor`.
    pub down_compressor: &'a str,
    pub seed: u64,
    pub rank: usize,
}

/// Per local worker: what it did in the round's uplink phases so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Activity {
    NotAsked,
    Skipped,
    Sent,
}

pub struct Protocol<P, W, S> {
    plan: P,
    workers: Vec<W>,
    /// Present on the ranks that serve.
    server: Option<S>,
    io: Io,
}

/// Everything of a round that is not a role: transport, downlink, reused buffers.
struct Io {
    transport: Transport,
    downlink: Downlink,
    weights: Vec<f64>,
    first_worker: usize,
    workers_per_rank: usize,
    outbox: Vec<Vec<u8>>,
    activity: Vec<Activity>,
    sum: Vec<f64>,
    /// Broadcast bytes: a Broadcast phase's message, or the encoded downlink.
    wire: Vec<u8>,
    monitored: Vec<f64>,
    /// x^{t−1} for `Oracle::Pair` (empty unless the plan is `two_point`).
    previous_x: Vec<f64>,
}

/// The state of one round in progress on this rank.
struct Round {
    stats: RoundStats,
    /// This rank's error; it stops calling method code for the rest of the round.
    failure: Option<Error>,
    /// This rank asks to stop after the round.
    stop_vote: bool,
    /// The server failed (its "no downlink" arrived): the round is void, no error here.
    void: bool,
}

impl Round {
    fn live(&self) -> bool {
        self.failure.is_none() && !self.void
    }

    fn fail(&mut self, e: Error) {
        self.failure.get_or_insert(e);
    }

    /// Runs `f` and adds its seconds to the chosen timer.
    fn timed<T>(&mut self, timer: fn(&mut RoundStats) -> &mut f64, f: impl FnOnce(&mut Round) -> T) -> T {
        let start = Instant::now();
        let out = f(self);
        *timer(&mut self.stats) += start.elapsed().as_secs_f64();
        out
    }
}

fn compress_timer(s: &mut RoundStats) -> &mut f64 {
    &mut s.t_compress
}

fn decode_timer(s: &mut RoundStats) -> &mut f64 {
    &mut s.t_decode
}

impl<P: Plan, W: WorkerRole<P>, S: ServerRole<P>> Protocol<P, W, S> {
    /// `server` is built only on the ranks that serve ([`Layout::serves`]).
    pub fn new(layout: &Layout, plan: P, workers: Vec<W>, server: Option<S>) -> Result<Self> {
        let transport = Transport::new(layout.topology, layout.rank);
        assert_eq!(server.is_some(), transport.serves(), "a server role exactly on the ranks that serve");
        let local = workers.len();
        let io = Io {
            transport,
            downlink: Downlink::new(layout.down_compressor, layout.dim, layout.seed)?,
            weights: layout.weights.to_vec(),
            first_worker: layout.first_worker,
            workers_per_rank: local,
            outbox: vec![Vec::new(); local],
            activity: vec![Activity::NotAsked; local],
            sum: Vec::new(),
            wire: Vec::new(),
            monitored: Vec::new(),
            previous_x: if plan.two_point() { vec![0.0; layout.dim] } else { Vec::new() },
        };
        Ok(Protocol { plan, workers, server, io })
    }

    fn gather_phase(&mut self, i: usize, x: &mut [f64], data: &mut [Worker], comm: &mut Comm, round: &mut Round) {
        round.timed(compress_timer, |round| {
            for (j, (role, w)) in self.workers.iter_mut().zip(data.iter_mut()).enumerate() {
                let mut msg = std::mem::take(&mut self.io.outbox[j]);
                msg.clear();
                if !self.io.uplink(&mut self.plan, role, i, j, w, Uplink::Bytes(&mut msg), round) {
                    msg.clear();
                }
                self.io.outbox[j] = msg;
            }
            if !round.live() {
                self.io.outbox.iter_mut().for_each(Vec::clear);
            }
        });
        let served = match self.io.transport.gather(comm, &self.io.outbox) {
            Err(e) => {
                round.fail(e);
                None
            }
            Ok(messages) => round.timed(decode_timer, |round| {
                serve(&mut self.server, &mut self.plan, i, messages.map(Received::Messages), x, round)
            }),
        };
        self.io.deliver(&mut self.plan, &mut self.workers, i, served, true, x, comm, round);
    }

    fn sum_phase(
        &mut self,
        i: usize,
        len: usize,
        x: &mut [f64],
        data: &mut [Worker],
        comm: &mut Comm,
        round: &mut Round,
    ) {
        let mut acc = std::mem::take(&mut self.io.sum);
        round.timed(compress_timer, |round| {
            acc.clear();
            acc.resize(len, 0.0);
            for (j, (role, w)) in self.workers.iter_mut().zip(data.iter_mut()).enumerate() {
                let up = Uplink::Sum { weight: w.weight, acc: &mut acc };
                self.io.uplink(&mut self.plan, role, i, j, w, up, round);
            }
            if !round.live() {
                acc.fill(0.0);
            }
        });
        self.io.transport.sum(comm, &mut acc);
        let served = round.timed(decode_timer, |round| {
            serve(&mut self.server, &mut self.plan, i, Some(Received::Sum(&mut acc)), x, round)
        });
        self.io.deliver(&mut self.plan, &mut self.workers, i, served, false, x, comm, round);
        self.io.sum = acc;
    }

    fn broadcast_phase(
        &mut self,
        i: usize,
        from: usize,
        len: usize,
        data: &mut [Worker],
        comm: &mut Comm,
        round: &mut Round,
    ) {
        let mut msg = std::mem::take(&mut self.io.wire);
        msg.clear();
        let local = from.checked_sub(self.io.first_worker).filter(|&j| j < self.workers.len());
        if let Some(j) = local {
            round.timed(compress_timer, |round| {
                self.io.uplink(&mut self.plan, &mut self.workers[j], i, j, &mut data[j], Uplink::Bytes(&mut msg), round)
            });
            if round.live() && msg.len() != len {
                round.fail(Error::Comm {
                    what: format!("worker {from} wrote {} bytes in a broadcast of {len} (a method bug)", msg.len()),
                });
            }
        }
        msg.resize(len, 0);
        comm.broadcast_bytes(from / self.io.workers_per_rank, &mut msg);
        if round.live() {
            if let Err(e) = self.plan.on_broadcast(i, &msg) {
                round.fail(e);
            }
        }
        self.io.wire = msg;
    }
}

impl Io {
    /// The uplink of local worker j in phase i, with its accounting; no call after a
    /// failure. Returns whether the worker sent something.
    #[allow(clippy::too_many_arguments)]
    fn uplink<P: Plan, W: WorkerRole<P>>(
        &mut self,
        plan: &mut P,
        role: &mut W,
        i: usize,
        j: usize,
        data: &mut Worker,
        up: Uplink,
        round: &mut Round,
    ) -> bool {
        if !round.live() {
            return false;
        }
        if !plan.takes_part(data.id) {
            if self.activity[j] == Activity::NotAsked {
                self.activity[j] = Activity::Skipped;
            }
            return false;
        }
        match role.uplink(plan, i, data, up) {
            Ok(Sent::Bits(bits)) => {
                round.stats.paper_bits_up += bits;
                self.activity[j] = Activity::Sent;
                true
            }
            Ok(Sent::Skip) => {
                if self.activity[j] == Activity::NotAsked {
                    self.activity[j] = Activity::Skipped;
                }
                false
            }
            Err(e) => {
                round.fail(e);
                false
            }
        }
    }

    /// The downlink of phase i: the server's Down (on the ranks that serve), through the
    /// downlink codec and, on the server topology, the broadcast; then the model update
    /// and the notifications. `own`: workers see their messages of this phase.
    #[allow(clippy::too_many_arguments)]
    fn deliver<P: Plan, W: WorkerRole<P>>(
        &mut self,
        plan: &mut P,
        workers: &mut [W],
        i: usize,
        served: Option<Down>,
        own: bool,
        x: &mut [f64],
        comm: &mut Comm,
        round: &mut Round,
    ) {
        let down = if self.transport.serves() {
            let start = Instant::now();
            let mut prepared = None;
            if let Some(down) = served {
                match self.downlink.prepare(&down) {
                    Ok(()) => prepared = Some(down),
                    Err(e) => round.fail(e),
                }
            }
            let outgoing = prepared.map(|down| self.downlink.view(down));
            let topology = self.transport.topology;
            if let (Some(down), true) = (&outgoing, comm.is_root()) {
                if topology == Topology::Server || down.counted || self.downlink.is_compressed() {
                    round.stats.paper_bits_down += self.weights.len() as u64 * self.downlink.paper_bits(down);
                }
            }
            if topology == Topology::Server {
                if let Some(down) = &outgoing {
                    self.downlink.encode(down, &mut self.wire);
                }
                round.stats.t_decode += start.elapsed().as_secs_f64();
                self.transport.deliver(comm, &mut self.wire, outgoing.is_some());
            } else {
                round.stats.t_decode += start.elapsed().as_secs_f64();
            }
            outgoing
        } else if !self.transport.deliver(comm, &mut self.wire, false) {
            // The server failed: its error comes with the trailer.
            round.void = true;
            None
        } else if !round.live() {
            None
        } else {
            match self.downlink.receive(&self.wire) {
                Ok(()) => Some(self.downlink.received()),
                Err(e) => {
                    round.fail(e);
                    None
                }
            }
        };
        let Some(down) = down.filter(|_| round.live()) else { return };
        round.timed(decode_timer, |round| {
            downlink::apply(&down, x);
            let mut result = plan.on_downlink(i, &down, x);
            for (j, role) in workers.iter_mut().enumerate() {
                let mine: &[u8] = if own { &self.outbox[j] } else { &[] };
                result = result.and_then(|()| role.downlink(plan, i, &down, mine));
            }
            if let Err(e) = result {
                round.fail(e);
            }
        });
    }

    /// One allreduce: every rank's failure, counters and stop vote. Only rank 0 counts
    /// bits down.
    fn trailer(&mut self, round: Round, comm: &mut Comm) -> Result<RoundStats> {
        let Round { mut stats, failure, stop_vote, .. } = round;
        let skipped = self.activity.iter().filter(|&&a| a == Activity::Skipped).count() as u64;
        let mut counts = [stats.paper_bits_up, skipped, stats.paper_bits_down, u64::from(stop_vote)];
        comm.agree_sums(failure.map_or(Ok(()), Err), &mut counts)?;
        let stops;
        [stats.paper_bits_up, stats.skipped, stats.paper_bits_down, stops] = counts;
        stats.stop = stops > 0;
        Ok(stats)
    }
}

/// The server's Down for phase i, on the ranks that serve, while the round is live.
fn serve<'s, P: Plan, S: ServerRole<P>>(
    server: &'s mut Option<S>,
    plan: &mut P,
    i: usize,
    received: Option<Received>,
    x: &[f64],
    round: &mut Round,
) -> Option<Down<'s>> {
    let (Some(server), Some(received), true) = (server.as_mut(), received, round.live()) else { return None };
    match server.serve(plan, i, received, x) {
        Ok(down) => Some(down),
        Err(e) => {
            round.fail(e);
            None
        }
    }
}

impl<P: Plan, W: WorkerRole<P>, S: ServerRole<P>> Method for Protocol<P, W, S> {
    fn round(
        &mut self,
        t: u64,
        x: &mut [f64],
        data: &mut [Worker],
        obj: &Objective,
        comm: &mut Comm,
        stop_vote: bool,
    ) -> Result<RoundStats> {
        let mut round = Round { stats: RoundStats::default(), failure: None, void: false, stop_vote };
        let phases = self.plan.begin_round(t);
        let oracle = self.plan.oracle();
        for w in data.iter_mut().filter(|w| self.plan.takes_part(w.id)) {
            let (seconds, reused) = match oracle {
                Oracle::Round => w.round_gradient(obj, x, t),
                Oracle::Full => w.full_gradient(obj, x, t),
                Oracle::Pair => (w.pair_gradients(obj, x, &self.io.previous_x), false),
                Oracle::FullAt => (w.gradient_at(obj, self.plan.oracle_points().0), false),
                Oracle::PairAt => {
                    let (a, b) = self.plan.oracle_points();
                    (w.pair_gradients(obj, a, b), false)
                }
            };
            round.stats.t_compute += seconds;
            if reused {
                round.stats.t_compute_before += seconds;
            }
        }
        if !self.io.previous_x.is_empty() {
            self.io.previous_x.copy_from_slice(x);
        }
        round.timed(compress_timer, |_| {
            for (role, w) in self.workers.iter_mut().zip(data.iter_mut()) {
                role.begin_round(&mut self.plan, w);
            }
        });
        self.io.activity.fill(Activity::NotAsked);
        for i in 0..phases {
            match self.plan.phase(i) {
                Phase::Gather => self.gather_phase(i, x, data, comm, &mut round),
                Phase::Sum { len } => self.sum_phase(i, len, x, data, comm, &mut round),
                Phase::Broadcast { from, len } => self.broadcast_phase(i, from, len, data, comm, &mut round),
                Phase::Serve => {
                    let served = round.timed(decode_timer, |round| {
                        serve(&mut self.server, &mut self.plan, i, Some(Received::Nothing), x, round)
                    });
                    self.io.deliver(&mut self.plan, &mut self.workers, i, served, false, x, comm, &mut round);
                }
            }
        }
        self.io.trailer(round, comm)
    }

    fn step_size(&self) -> &StepSize {
        self.plan.step_size()
    }

    fn save(&self, data: &[Worker]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut common = StateWriter::new();
        common.section("plan", |w| self.plan.save(w));
        common.section("server", |w| {
            if let Some(server) = &self.server {
                server.save(w);
            }
        });
        common.section("downlink", |w| self.io.downlink.save(w));
        if !self.io.previous_x.is_empty() {
            common.section("oracle", |w| w.f64s("previous model", &self.io.previous_x));
        }
        let workers = self
            .workers
            .iter()
            .zip(data)
            .map(|(role, w)| {
                let mut state = StateWriter::new();
                state.section("role", |s| role.save(s));
                state.section("data", |s| w.save_streams(s));
                state.into_bytes()
            })
            .collect();
        (common.into_bytes(), workers)
    }

    fn load(&mut self, data: &mut [Worker], common: &[u8], workers: &[&[u8]]) -> Result<()> {
        let mut r = StateReader::new(common, "common state")?;
        let mut plan = r.section("plan")?;
        self.plan.load(&mut plan)?;
        plan.finish()?;
        let mut server = r.section("server")?;
        if let Some(s) = self.server.as_mut() {
            s.load(&mut server)?;
            server.finish()?;
        }
        let mut down = r.section("downlink")?;
        self.io.downlink.load(&mut down)?;
        down.finish()?;
        if !self.io.previous_x.is_empty() {
            let mut oracle = r.section("oracle")?;
            oracle.f64s_into("previous model", &mut self.io.previous_x)?;
            oracle.finish()?;
        }
        r.finish()?;
        for ((role, w), bytes) in self.workers.iter_mut().zip(data.iter_mut()).zip(workers) {
            let mut state = StateReader::new(bytes, format!("worker {}", w.id))?;
            let mut own = state.section("role")?;
            role.load(&mut own)?;
            own.finish()?;
            let mut streams = state.section("data")?;
            w.load_streams(&mut streams)?;
            streams.finish()?;
            state.finish()?;
        }
        Ok(())
    }

    /// Σ_i w_i × each worker's monitored vector (unmetered), read by the plan.
    fn diagnostics(&mut self, data: &[Worker], comm: &mut Comm) -> Vec<(&'static str, f64)> {
        let Some(len) = self.workers.first().and_then(|w| w.monitored()).map(<[f64]>::len) else {
            return Vec::new();
        };
        let monitored = &mut self.io.monitored;
        monitored.clear();
        monitored.resize(len, 0.0);
        for (role, w) in self.workers.iter().zip(data) {
            if let Some(v) = role.monitored() {
                crate::vector::add_scaled(monitored, w.weight, v);
            }
        }
        comm.monitor_sum(monitored);
        self.plan.diagnostics(monitored)
    }
}

impl Layout<'_> {
    /// Whether this rank runs the server role.
    pub fn serves(&self) -> bool {
        self.topology == Topology::Replicated || self.rank == SERVER_RANK
    }
}
