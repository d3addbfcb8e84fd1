//! PowerSGD on the round protocol (Vogels, Karimireddy, Jaggi, NeurIPS 2019: Algorithm 1,
//! the compressor, inside the error feedback of Algorithm 2; ALGORITHMS.md §1.14; the
//! algebra and the reshape rule in `compress::low_rank`). `--method ef --compressor
//! powersgd:rank=R` runs it with error feedback, `--method gd --compressor
//! powersgd:rank=R` without:
//! ```text
//! worker i: M_i = ∇f_i + e_i                  (e_i = 0 without error feedback)
//! phase 0 : P = Σ_i w_i M_i Q                 Sum of a·r values (allreduce, or reduce)
//! server  : P̂ = orth(P)                       down: P̂ (a·r f64, paper 32ar)
//! phase 1 : Q ← Σ_i w_i M_iᵀ P̂                Sum of b·r values
//!           e_i ← M_i − P̂(M_iᵀP̂)ᵀ            (error feedback: the worker's residual)
//! server  :                                   down: Q (b·r f64, paper 32br)
//! all     : x ← x − γ·vec(P̂Qᵀ);  Q is the next round's warm start
//! ```
//! * Warm start: Q⁰ has i.i.d. standard Gaussian entries from a shared stream
//!   (`Purpose::PowerIteration`, stream 1; stream 0 estimates L); a column of Q that comes
//!   out exactly zero (M of rank < r, a zero gradient) is redrawn from it, so it cannot
//!   stay zero forever. Q and the stream join the checkpoint.
//! * Error feedback: the references (epfml/powersgd `RankKReducer`, PyTorch's
//!   `powerSGD_hook`) keep e_i = M_i − P̂Q̄ᵀ with the aggregate Q̄; this keeps the worker's
//!   own residual M_i − P̂P̂ᵀM_i. Given P̂, the round is linear in the M_i and Σ_i w_i = 1,
//!   so Σ_i w_i e_i, and with it every iterate, is the same either way. Both `ef`
//!   variants are this method (the compression is positively homogeneous). No momentum.
//! * Without error feedback the step is the projected gradient P̂P̂ᵀ∇f (reshaped):
//!   f(x⁺) ≤ f(x) − (γ − Lγ²/2)‖P̂ᵀM‖²_F, a descent step for γ ≤ 2/L, but P̂ need not keep
//!   up with the gradient, so it may stall (Vogels et al. report it converging worse).
//! * Default step 1/L, the step of the GD it reproduces at rank = full; the paper uses
//!   SGD's learning rate.
//! * Collectives: both phases are sums (the method's point: P and Q are linear in M_i).
//!   Sums of f64 in MPI's order: layout-invariant to rounding, as GD's allreduce.
//!   On the server topology rank 0 broadcasts P̂ and Q: 32r(a + b) paper bits down per
//!   worker; on the replicated one every replica orthonormalises the same P itself.

use super::step_size::{self, StepSize};
use super::{Collective, Method, Setup};
use crate::checkpoint::{StateReader, StateWriter};
use crate::compress::low_rank::{orthonormalise, LowRank};
use crate::error::{Error, Result};
use crate::method::codec::{add_exact_message, write_exact};
use crate::protocol::{Down, Phase, Plan, Protocol, Received, Sent, ServerRole, Uplink, WorkerRole};
use crate::rng::{self, gaussian, Purpose, Stream};
use crate::spec::Spec;
use crate::worker::Worker;

const NAME: &str = "powersgd";

/// Whether `--compressor` names PowerSGD, which `ef` and `gd` hand over to [`build`].
pub fn requested(setup: &Setup) -> bool {
    Spec::parse_compressor(setup.compressor).is_ok_and(|s| s.name == NAME)
}

/// PowerSGD for `--method ef` (`error_feedback`) or `--method gd`.
pub fn build(setup: &Setup, error_feedback: bool) -> Result<Box<dyn Method>> {
    let method = if error_feedback { "ef" } else { "gd" };
    if setup.collective == Some(Collective::Allgather) {
        return Err(Error::config(
            format!("--collective allgather with --method {method} --compressor {}", setup.compressor),
            "PowerSGD's P and Q are sums over the workers, which travel by allreduce: drop --collective",
        ));
    }
    if setup.down_compressor.trim() != "identity" {
        return Err(Error::config(
            format!("--down-compressor {} with --compressor {}", setup.down_compressor, setup.compressor),
            "PowerSGD's downlink is its factors P̂ and Q, already low-rank: drop --down-compressor",
        ));
    }
    let mut spec = Spec::parse_compressor(setup.compressor)?;
    let shape = LowRank::from_spec(&mut spec, setup.dim)?;
    spec.finish()?;
    let (gamma, rule) = step_size::gd(setup.smoothness);
    let mut redraws = rng::shared_nth(setup.seed, Purpose::PowerIteration, 1);
    let q = (0..shape.right_len()).map(|_| gaussian(&mut redraws)).collect();
    let plan = PowerSgdPlan {
        step: StepSize::resolve(gamma, &rule, setup.step),
        shape,
        q,
        p_hat: vec![0.0; shape.left_len()],
        redraws,
    };
    let workers = (0..setup.local_workers)
        .map(|_| PowerSgdWorker {
            error: if error_feedback { vec![0.0; setup.dim] } else { Vec::new() },
            input: vec![0.0; setup.dim],
            own_q: vec![0.0; shape.right_len()],
        })
        .collect();
    let server = setup.server(|| PowerSgdServer { factor: Vec::new(), bytes: Vec::new() });
    Ok(Box::new(Protocol::new(&setup.layout(), plan, workers, server)?))
}

struct PowerSgdPlan {
    step: StepSize,
    shape: LowRank,
    /// Q (b × r): the warm start of the round, then (from phase 1's downlink) Σ w_i M_iᵀP̂.
    q: Vec<f64>,
    /// P̂ (a × r) of the round, from phase 0's downlink.
    p_hat: Vec<f64>,
    /// Gaussian redraws of Q's zero columns (shared).
    redraws: Stream,
}

impl PowerSgdPlan {
    /// Zero columns of Q drawn anew, so the next power iteration can find their direction.
    fn redraw_zero_columns(&mut self) {
        let r = self.shape.rank;
        for k in 0..r {
            if self.q.chunks_exact(r).all(|row| row[k] == 0.0) {
                for row in self.q.chunks_exact_mut(r) {
                    row[k] = gaussian(&mut self.redraws);
                }
            }
        }
    }
}

impl Plan for PowerSgdPlan {
    fn begin_round(&mut self, _t: u64) -> usize {
        2
    }

    fn phase(&self, i: usize) -> Phase {
        let len = if i == 0 { self.shape.left_len() } else { self.shape.right_len() };
        Phase::Sum { len }
    }

    /// Phase 0: P̂ arrives. Phase 1: Q arrives; x ← x − γ·vec(P̂Qᵀ).
    fn on_downlink(&mut self, i: usize, down: &Down, x: &mut [f64]) -> Result<()> {
        if i == 0 {
            self.p_hat.fill(0.0);
            return add_exact_message(down.extra, 1.0, &mut self.p_hat);
        }
        self.q.fill(0.0);
        add_exact_message(down.extra, 1.0, &mut self.q)?;
        self.shape.add_product(&self.p_hat, &self.q, -self.step.gamma, x);
        self.redraw_zero_columns();
        Ok(())
    }

    fn step_size(&self) -> &StepSize {
        &self.step
    }

    /// The warm start and the redraw stream; P̂ is recomputed every round.
    fn save(&self, w: &mut StateWriter) {
        w.f64s("Q", &self.q);
        w.stream("redraws", &self.redraws);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("Q", &mut self.q)?;
        r.stream("redraws", &mut self.redraws)
    }
}

struct PowerSgdWorker {
    /// e_i (empty without error feedback).
    error: Vec<f64>,
    /// M_i = ∇f_i + e_i.
    input: Vec<f64>,
    /// M_iᵀP̂, this worker's part of Q.
    own_q: Vec<f64>,
}

impl WorkerRole<PowerSgdPlan> for PowerSgdWorker {
    fn uplink(&mut self, plan: &mut PowerSgdPlan, i: usize, data: &mut Worker, up: Uplink) -> Result<Sent> {
        let Uplink::Sum { weight, acc } = up else {
            return Err(Error::Comm { what: "PowerSGD's factors travel in sums (a method bug)".into() });
        };
        let shape = plan.shape;
        if i == 0 {
            self.input.copy_from_slice(&data.grad);
            if !self.error.is_empty() {
                crate::vector::add_scaled(&mut self.input, 1.0, &self.error);
            }
            shape.add_left(&self.input, &plan.q, weight, acc);
            return Ok(Sent::Bits(32 * shape.left_len() as u64));
        }
        self.own_q.fill(0.0);
        shape.add_right(&self.input, &plan.p_hat, 1.0, &mut self.own_q);
        crate::vector::add_scaled(acc, weight, &self.own_q);
        if !self.error.is_empty() {
            self.error.copy_from_slice(&self.input);
            shape.add_product(&plan.p_hat, &self.own_q, -1.0, &mut self.error);
        }
        Ok(Sent::Bits(32 * shape.right_len() as u64))
    }

    fn save(&self, w: &mut StateWriter) {
        w.f64s("e", &self.error);
    }

    fn load(&mut self, r: &mut StateReader) -> Result<()> {
        r.f64s_into("e", &mut self.error)
    }
}

struct PowerSgdServer {
    /// The round's P (orthonormalised: P̂) or Q, swapped out of the sum.
    factor: Vec<f64>,
    /// `factor` as little-endian f64, the downlink's extra.
    bytes: Vec<u8>,
}

impl ServerRole<PowerSgdPlan> for PowerSgdServer {
    fn serve(&mut self, plan: &mut PowerSgdPlan, i: usize, received: Received, _x: &[f64]) -> Result<Down<'_>> {
        let Received::Sum(sum) = received else {
            return Err(Error::Comm { what: "PowerSGD's factors arrive as sums (a method bug)".into() });
        };
        std::mem::swap(&mut self.factor, sum);
        if i == 0 {
            orthonormalise(&mut self.factor, plan.shape.rank);
        }
        write_exact(&self.factor, &mut self.bytes);
        Ok(Down::nothing().with_extra(&self.bytes, 32 * self.factor.len() as u64))
    }

    /// P and Q are recomputed every round.
    fn save(&self, _w: &mut StateWriter) {}

    fn load(&mut self, _r: &mut StateReader) -> Result<()> {
        Ok(())
    }
}
