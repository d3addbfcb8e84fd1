//! Smoothness-aware independent sparsification "rand-τ+" (Safaryan, Hanzely, Richtárik
//! 2021, "Smoothness Matrices Beat Smoothness Constants"), the sparsification baseline of
//! the smoothness-aware quantization paper (its reference code's `ind_sparsification`).
//!
//! Spec: ../shared/ALGORITHMS.md §A.2c. SPEC: `rand-tau-plus[:tau=T][,biased]`.
//!
//! * Definition: coordinate j kept with probability p_j, independently, and sent as
//!   z_j/p_j (unbiased). `biased` sends z_j unscaled, as the reference code does (contrary
//!   to the theory it is compared under); the class is then contractive with α = min_j p_j,
//!   and the smoothness-aware methods still take the code's ω and L̃ for it, to reproduce
//!   its runs.
//! * Probabilities: τ = ⌊d/n⌋ expected coordinates (T given: τ = T). Until a
//!   smoothness-aware method adapts them, p_j = τ/d. Adapted (§A.2c): L'_jj = L_jj/(nλ) + 1,
//!   ρ > 0 with Σ_j L'_jj/(L'_jj + ρ) = τ (bisection to machine precision), p_j =
//!   L'_jj/(L'_jj + ρ); p_j = 1 for all j when τ ≥ d.
//! * Constants: ω = max_j (1/p_j − 1), L̃ = max_j (1/p_j − 1)·L_jj (the errors are
//!   independent and zero-mean with E e_j² = (1/p_j − 1) z_j²).
//! * Wire and paper bits: those of `bernoulli-sparse` ([`KeptFormat`]): a u32 count c, c f32
//!   values, c indices of ⌈log₂ d⌉ bits; paper bits 32 + c(32 + ⌈log₂ d⌉) (the reference
//!   code counts τ·32 per round, the expected values without indices).
//! * Randomness: one coin per coordinate (`rng::Coins`, a 32-bit uniform) from the worker's private stream.

use super::bernoulli_sparse::KeptFormat;
use super::smoothness_aware::{Curvature, PerWorker, SmoothnessAware};
use super::{Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::{Coins, Stream};

const NAME: &str = "rand-tau-plus";

pub struct RandTauPlus {
    spec: String,
    tau: usize,
    biased: bool,
    /// p_j per worker.
    probabilities: PerWorker,
    format: KeptFormat,
}

impl RandTauPlus {
    pub fn from_spec(spec: &mut Spec, d: usize, workers: usize) -> Result<Self> {
        let tau = spec.take_usize_or("tau", (d / workers).max(1))?;
        if tau == 0 || tau > d {
            return Err(Error::config(
                format!("compressor '{}': τ = {tau} expected coordinates for d = {d}", spec.text()),
                format!("choose 1 ≤ tau ≤ {d} (the default is ⌊d/n⌋)"),
            ));
        }
        let biased = spec.take_flag("biased")?;
        Ok(RandTauPlus {
            spec: spec.text().to_string(),
            tau,
            biased,
            probabilities: PerWorker::new(vec![tau as f64 / d as f64; d]),
            format: KeptFormat::new(NAME, spec, d)?,
        })
    }
}

/// p_j = w_j/(w_j + ρ) with Σ p_j = τ (§A.2c), by bisection on ρ (the sum decreases in ρ).
fn probabilities(weights: &[f64], tau: usize) -> Vec<f64> {
    if tau >= weights.len() {
        return vec![1.0; weights.len()];
    }
    let total = |rho: f64| weights.iter().map(|w| w / (w + rho)).sum::<f64>();
    let (mut low, mut high) = (0.0, 1.0);
    while total(high) > tau as f64 {
        high *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (low + high);
        if mid <= low || mid >= high {
            break;
        }
        if total(mid) > tau as f64 {
            low = mid;
        } else {
            high = mid;
        }
    }
    weights.iter().map(|w| w / (w + high)).collect()
}

/// (ω, L̃) of keep probabilities p for a diagonal.
fn constants(p: &[f64], diag: &[f64]) -> (f64, f64) {
    let omega = p.iter().map(|p| 1.0 / p - 1.0).fold(0.0, f64::max);
    let l_tilde = p.iter().zip(diag).map(|(p, l)| (1.0 / p - 1.0) * l).fold(0.0, f64::max);
    (omega, l_tilde)
}

impl SmoothnessAware for RandTauPlus {
    fn adapt(&mut self, worker: usize, c: &Curvature) -> Result<(f64, f64)> {
        let nl = c.n_lambda(&self.spec)?;
        let weights: Vec<f64> = c.diag.iter().map(|l| l / nl + 1.0).collect();
        self.probabilities.set(worker, probabilities(&weights, self.tau));
        Ok(constants(self.probabilities.of(worker), c.diag))
    }

    /// Nothing: the values travel already divided by p_j.
    fn parameters(&self, _worker: usize) -> &[f64] {
        &[]
    }
}

impl Compressor for RandTauPlus {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        let all = || self.probabilities.all().flatten().copied();
        if self.biased {
            return Class::Contractive { alpha: all().fold(1.0, f64::min) };
        }
        Class::Unbiased { omega: all().map(|p| 1.0 / p - 1.0).fold(0.0, f64::max) }
    }

    fn begin_worker(&mut self, worker: usize) {
        self.probabilities.select(worker);
    }

    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        let p = self.probabilities.current();
        let biased = self.biased;
        let mut coins = Coins::new(rng, x.len());
        self.format.encode(
            x,
            |j| coins.unit() < p[j],
            |j| if biased { x[j] as f32 } else { (x[j] / p[j]) as f32 },
            out,
        );
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        self.format.decode_add(msg, scale, acc)
    }

    fn paper_bits(&self, msg: &[u8]) -> u64 {
        self.format.paper_bits(msg)
    }

    fn smoothness_aware(&mut self) -> Option<&mut dyn SmoothnessAware> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probabilities_sum_to_tau_and_follow_the_weights() {
        let weights: Vec<f64> = (0..50).map(|j| 1.0 + (j as f64).powi(2) / 100.0).collect();
        for tau in [1, 7, 25, 49] {
            let p = probabilities(&weights, tau);
            let sum: f64 = p.iter().sum();
            assert!((sum - tau as f64).abs() <= 1e-9, "τ = {tau}: Σp = {sum}");
            assert!(p.windows(2).all(|w| w[0] <= w[1]), "p follows the weights");
            assert!(p.iter().all(|&p| p > 0.0 && p <= 1.0));
        }
        assert_eq!(probabilities(&weights, 50), vec![1.0; 50]);
    }
}
