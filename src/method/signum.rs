//! signSGD with majority vote, and Signum (Bernstein et al., "signSGD: compressed
//! optimisation for non-convex problems", ICML 2018; "signSGD with majority vote is
//! communication efficient and fault tolerant", ICLR 2019, Algorithm 1):
//! ```text
//! worker i: m_i ← β·m_i + (1 − β)·g_i          (β = 0: m_i = g_i, signSGD)
//!           send s_i = sign(m_i)                d bits
//! server  : v = sign(Σ_i s_i)                   the majority vote, one vote per worker
//!           broadcast v                         d bits
//! all     : x ← x − γ·v
//! ```
//! SPEC `signum[:momentum=β]` with `--compressor sign` (the 1-bit uplink) and, as in the
//! papers, `--topology server` (on the replicated topology every replica counts the same
//! votes: the same iterates, and the downlink bits are counted all the same).
//!
//! * Zeros (ALGORITHMS.md §1.11, the sketchedsgd reference `_aggAndZeroSignum`): a worker
//!   coordinate m_ij = 0 is sent as a random ±1 from the worker's private stream, and a
//!   tied vote Σ_i s_ij = 0 becomes a random ±1 from the server's stream (`Purpose::Server`,
//!   drawn alike on every replica). A fixed sign(0) = +1 would push every tied or zero
//!   coordinate the same way each round.
//! * The vote is unweighted (each worker one vote, the papers' rule), whatever the
//!   shards' weights w_i.
//! * No error feedback: with a constant step this is a biased method that stalls in a
//!   neighbourhood. For one worker and L-smooth f, f(x − γv) ≤ f(x) − γ‖∇f‖₁ + Lγ²d/2, so
//!   min_{k<K} ‖∇f(x^k)‖₁ ≤ (f(x⁰) − f*)/(γK) + Lγd/2 [derived; Bernstein et al. 2018,
//!   Theorem 1, with ‖L⃗‖₁ ≤ dL]. The scaled-sign method with error feedback is
//!   `--method ef --compressor sign` (EF-signSGD, Karimireddy et al. 2019).
//! * Default step γ = 1/(L·d): the step at which that neighbourhood is ‖∇f‖₁ ≤ 1/2. Set it
//!   with `--step` or `--step-factor` (the papers tune it).
//! * Wire: uplink ⌈d/8⌉ bytes, bit j = 1 for a negative sign (LSB first, as `sign`); the
//!   downlink is the vote in the same layout, in the Down's `extra`. Paper bits d each way.

use rand::Rng;

use super::step_size::StepSize;
use super::{require_family, Entry, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::compress::wire::{add_signed, expect_len, for_each_bit, packed_len, BitWriter};
use crate::error::{Error, Result};
use crate::protocol::{Down, Phase, Plan, Protocol, Received, Sent, ServerRole, Uplink, WorkerRole};
use crate::rng::{self, Purpose, Stream};
use crate::spec::Spec;
use crate::worker::Worker;

const NAME: &str = "signum";

pub const ENTRY: Entry = Entry {
    name: NAME,
    about: "signSGD / Signum with majority vote: 1-bit signs up, the sign of their sum down",
    keys: &[("momentum", "β of m_i ← βm_i + (1−β)g_i, in [0, 1) (default 0: signSGD)")],
    dense_downlink: false,
    smoothness_matrices: false,
    hessian_variance: false,
    examples: &[("signum:momentum=0.9", "sign")],
    build,
};

fn build(setup: &Setup, spec: &mut Spec) -> Result<Box<dyn Method>> {
    require_family(setup, NAME, "sign")?;
    setup.no_collective(NAME, "gathers its workers' sign bits (a vote is not a sum of messages)")?;
    let beta = spec.take_f64_or("momentum", 0.0)?;
    if !(0.0..1.0).contains(&beta) {
        return Err(Error::config(
            format!("--method {}: momentum β = {beta}", spec.text()),
            "choose 0 ≤ β < 1 (0: signSGD; Bernstein et al. use 0.9 for Signum)",
        ));
    }
    let d = setup.dim as f64;
    let gamma = 1.0 / (setup.smoothness.l * d);
    let rule =
        format!("1/(L·d), L = {:.6e}, d = {d} (sign descent's ‖∇f‖₁ ≤ Lγd/2 = 1/2 neighbourhood)", setup.smoothness.l);
    let plan = SignumPlan { step: StepSize::resolve(gamma, &rule, setup.step), beta, dim: setup.dim };
    let workers = (0..setup.local_workers).map(|_| SignumWorker { momentum: vec![0.0; setup.dim] }).collect();
    let server = setup.server(|| SignumServer {
        tally: vec![0; setup.dim],
        vote: Vec::with_capacity(packed_len(setup.dim, 1)),
        ties: rng::shared(setup.seed, Purpose::Server),
    });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, workers, server)?))
}

struct SignumPlan {
    step: StepSize,
    beta: f64,
    dim: usize,
}

impl Plan for SignumPlan {
    fn begin_round(&mut self, _t: u64) -> usize {
        1
    }

    fn phase(&self, _i: usize) -> Phase {
        Phase::Gather
    }

    /// x ← x − γ·v from the broadcast vote.
    fn on_downlink(&mut self, _i: usize, down: &Down, x: &mut [f64]) -> Result<()> {
        expect_len(NAME, down.extra, packed_len(self.dim, 1))?;
        let gamma = self.step.gamma;
        // x − γ = x + (−γ) and x − (−γ) = x + γ exactly: a set (negative) bit adds γ.
        add_signed(down.extra, -gamma, x);
        Ok(())
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }

    /// Nothing lives from round to round in the plan.
    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}

struct SignumWorker {
    /// m_i (g_i itself when β = 0).
    momentum: Vec<f64>,
}

impl WorkerRole<SignumPlan> for SignumWorker {
    fn uplink(&mut self, plan: &mut SignumPlan, _i: usize, data: &mut Worker, up: Uplink) -> Result<Sent> {
        let Uplink::Bytes(out) = up else {
            return Err(Error::Comm { what: "signum's signs travel in a gather (a method bug)".into() });
        };
        let beta = plan.beta;
        for (m, g) in self.momentum.iter_mut().zip(&data.grad) {
            *m = beta * *m + (1.0 - beta) * g;
        }
        write_signs(&self.momentum, &mut data.rng, out);
        Ok(Sent::Bits(plan.dim as u64))
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("m", &self.momentum);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("m", &mut self.momentum)
    }
}

/// Clears `out` and packs sign(v_j) a bit each (1 = negative); a zero (or NaN) draws its
/// sign from `rng`.
fn write_signs(v: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
    write_bits(v.iter().map(|&vj| if vj == 0.0 || vj.is_nan() { rng.random::<bool>() } else { vj < 0.0 }), out);
}

struct SignumServer {
    /// Σ_i s_ij, the votes for +1 minus those for −1.
    tally: Vec<i64>,
    /// sign(tally), packed as the workers' signs.
    vote: Vec<u8>,
    /// Tie-breaking coins (shared: every replica draws the same).
    ties: Stream,
}

impl SignumServer {
    /// vote = sign(Σ_i s_i) over the gathered sign messages.
    fn count(&mut self, messages: impl Iterator<Item = impl AsRef<[u8]>>) -> Result<()> {
        self.tally.fill(0);
        let d = self.tally.len();
        for msg in messages {
            let msg = msg.as_ref();
            expect_len(NAME, msg, packed_len(d, 1))?;
            for_each_bit(msg, &mut self.tally, |t, negative| *t += 1 - 2 * i64::from(negative));
        }
        let SignumServer { tally, vote, ties } = self;
        write_bits(tally.iter().map(|&t| if t == 0 { ties.random::<bool>() } else { t < 0 }), vote);
        Ok(())
    }
}

/// Clears `out` and packs the booleans a bit each.
fn write_bits(negative: impl Iterator<Item = bool>, out: &mut Vec<u8>) {
    out.clear();
    let mut bits = BitWriter::new(out);
    negative.for_each(|n| bits.put(n as u32, 1));
    bits.finish();
}

impl ServerRole<SignumPlan> for SignumServer {
    fn serve(&mut self, plan: &mut SignumPlan, _i: usize, received: Received, _x: &[f64]) -> Result<Down<'_>> {
        let Received::Messages(messages) = received else {
            return Err(Error::Comm { what: "signum's signs arrive through a gather (a method bug)".into() });
        };
        self.count(messages.iter())?;
        Ok(Down::nothing().with_extra(&self.vote, plan.dim as u64).counted())
    }

    fn save(&self, w: &mut StateWriter) {
        w.stream("tie coins", &self.ties);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.stream("tie coins", &mut self.ties)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::wire::BitReader;
    use rand::SeedableRng;

    fn signs_of(v: &[f64]) -> Vec<u8> {
        let mut out = Vec::new();
        write_signs(v, &mut Stream::seed_from_u64(0), &mut out);
        out
    }

    fn unpack(bytes: &[u8], d: usize) -> Vec<i64> {
        let mut r = BitReader::new(bytes);
        (0..d).map(|_| 1 - 2 * r.get(1) as i64).collect()
    }

    fn server(d: usize) -> SignumServer {
        SignumServer { tally: vec![0; d], vote: Vec::new(), ties: Stream::seed_from_u64(3) }
    }

    /// The vote is the sign of the sum of the workers' signs wherever the sum is not zero,
    /// checked against a direct count over random sign patterns of 1–6 workers.
    #[test]
    fn majority_vote_is_the_sign_of_the_sum() {
        let d = 37;
        let mut g = Stream::seed_from_u64(11);
        for workers in 1..=6 {
            for _ in 0..50 {
                let vectors: Vec<Vec<f64>> =
                    (0..workers).map(|_| (0..d).map(|_| g.random::<f64>() - 0.5).collect()).collect();
                let messages: Vec<Vec<u8>> = vectors.iter().map(|v| signs_of(v)).collect();
                let mut s = server(d);
                s.count(messages.iter()).unwrap();
                let vote = unpack(&s.vote, d);
                for j in 0..d {
                    let sum: i64 = vectors.iter().map(|v| if v[j] < 0.0 { -1 } else { 1 }).sum();
                    if sum != 0 {
                        assert_eq!(vote[j], sum.signum(), "{workers} workers, coordinate {j}");
                    }
                }
            }
        }
    }

    /// Ties and zeros are broken by fair coins: over many ties each side wins about half
    /// the time (five standard errors of a Binomial(n, 1/2)).
    #[test]
    fn ties_and_zeros_are_fair_coins() {
        let d = 4000;
        let zeros = signs_of(&vec![0.0; d]);
        let negatives = unpack(&zeros, d).iter().filter(|&&s| s < 0).count() as f64;
        let tolerance = 5.0 * (d as f64 * 0.25).sqrt();
        assert!((negatives - d as f64 / 2.0).abs() <= tolerance, "{negatives} of {d} zeros sent as −1");

        let (plus, minus) = (signs_of(&vec![1.0; d]), signs_of(&vec![-1.0; d]));
        let mut s = server(d);
        s.count([&plus, &minus].into_iter()).unwrap();
        let negatives = unpack(&s.vote, d).iter().filter(|&&v| v < 0).count() as f64;
        assert!((negatives - d as f64 / 2.0).abs() <= tolerance, "{negatives} of {d} tied votes went to −1");
    }

    #[test]
    fn a_message_of_the_wrong_length_is_a_wire_error() {
        let mut s = server(20);
        let err = s.count([vec![0u8; 2]].iter()).unwrap_err();
        assert!(err.to_string().contains(NAME), "{err}");
    }
}
