//! Threshold (hard-threshold) sparsification: sends every coordinate with |x_j| ≥ τ.
//!
//! Strom, "Scalable distributed DNN training using commodity GPU cloud computing"
//! (Interspeech 2015) introduced it with error feedback; Sahu et al., "Rethinking gradient
//! sparsification as total error minimization" (NeurIPS 2021) named the class. SPEC:
//! `threshold:tau=F` with F > 0 (in the units of the compressed vector: with `--method ef`
//! that is e_i + γ∇f_i, a model-space quantity).
//!
//! * Definition: C(x)_j = x_j if |x_j| ≥ τ, else 0. Deterministic. A non-finite
//!   coordinate is always sent (a diverged worker stays visible), a zero never is.
//! * Class: *absolute* (Sahu et al.): ‖C(x) − x‖² = Σ_{|x_j|<τ} x_j² < d·τ² for every x,
//!   whatever its norm — not contractive (a vector below τ everywhere is sent as 0) and
//!   not unbiased. The f32 rounding of the kept values adds at most 2^-48‖x‖².
//!   Under error feedback this bounds the memory itself: ‖e_i‖ < √d·τ every round.
//! * Randomness: none.
//! * Wire: the count-prefixed sparse message of `bernoulli_sparse::KeptFormat`: a u32
//!   count c, c f32 values, c indices in ⌈log₂ d⌉ bits: 4 + 4c + ⌈c⌈log₂ d⌉/8⌉ bytes, c
//!   varying per message (so it is gathered, never summed).
//! * Paper bits: 32 + c(32 + ⌈log₂ d⌉).

use super::bernoulli_sparse::KeptFormat;
use super::{Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::Stream;

const NAME: &str = "threshold";

pub struct Threshold {
    spec: String,
    tau: f64,
    d: usize,
    format: KeptFormat,
}

impl Threshold {
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        let tau = spec.take_f64("tau")?;
        if !(tau > 0.0 && tau.is_finite()) {
            return Err(Error::config(
                format!("compressor '{}': the threshold τ must be a positive number", spec.text()),
                "give it as threshold:tau=F, e.g. tau=1e-3 (coordinates with |x_j| ≥ τ are sent)",
            ));
        }
        Ok(Threshold { spec: spec.text().to_string(), tau, d, format: KeptFormat::new(NAME, spec, d)? })
    }
}

impl Compressor for Threshold {
    fn spec(&self) -> &str {
        &self.spec
    }

    /// ‖C(x) − x‖² < dτ² (Sahu et al.'s absolute bound).
    fn class(&self) -> Class {
        Class::Absolute { bound: self.d as f64 * self.tau * self.tau }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], _rng: &mut Stream, out: &mut Vec<u8>) {
        let tau = self.tau;
        self.format.encode(x, |j| x[j].abs() >= tau, |j| x[j] as f32, out);
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        self.format.decode_add(msg, scale, acc)
    }

    fn paper_bits(&self, msg: &[u8]) -> u64 {
        self.format.paper_bits(msg)
    }
}
