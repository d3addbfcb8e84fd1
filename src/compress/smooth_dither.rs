//! Standard dithering with coordinate-varying steps ("quant+", Wang, Safaryan, Richtárik
//! 2022; the reference code's `standard_dithering_plus`).
//!
//! Spec: ../shared/ALGORITHMS.md §A.2a. SPEC: `smooth-dither[:s=S][,fnl][,elias]`.
//!
//! * Definition (∞-norm, as every reference experiment): y_j = |z_j|/‖z‖_∞, l_j =
//!   ⌊y_j/h_j⌋, up to (l_j+1)h_j with probability (y_j − l_j h_j)/h_j, else l_j h_j;
//!   Q(z)_j = ‖z‖_∞·sign(z_j)·level_j·h_j. Unbiased for any h_j > 0.
//! * Steps: the budget Σ_j h_j^{−2} = β² with β = S·√d, the budget of standard dithering
//!   with S levels (S defaults to √d/n, the code's β = d/n). Until a smoothness-aware method
//!   adapts them, h_j = 1/S (the quantizer is then `qsgd:s=S,norm=inf` in distribution).
//!   Adapted to diag(L_i) (§A.2a): DCGD+ h_j = √(Σ_l L_ll / L_jj)/β; DIANA+ h_j =
//!   √(Σ_l A_l / A_j)/β with A_j = √(1 + (L_jj/(nλ))²); `fnl` keeps h_j = 1/S (the code's
//!   "fnl" variants: plain quantization of the whitened vector, h = n/√d).
//! * Constants: ω = min(‖h‖², ‖h‖) (the code's value, valid and looser than the derivable
//!   min(‖h‖²/4, ‖h‖)); L̃ = ‖diag(L)∘h‖₂, since the rounding errors are independent and
//!   zero-mean with E e_j² ≤ ‖z‖_∞ h_j |z_j|.
//! * Wire and paper bits: the dithering payload of `qsgd` ([`Dithering`]) with level indices
//!   in 0..=max_j ⌈1/h_j⌉ over every worker's steps: the f32 norm, then fixed-width fields or,
//!   with `elias`, the Elias-ω code the reference code counts.

use super::qsgd::{Coding, Dithering, Norm};
use super::rounding::round_to_step;
use super::smoothness_aware::{norm, Curvature, PerWorker, Rule, SmoothnessAware};
use super::{Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::Stream;

const NAME: &str = "smooth-dither";

pub struct SmoothDither {
    spec: String,
    d: usize,
    /// β = S√d.
    budget: f64,
    uniform: bool,
    coding: Coding,
    steps: PerWorker,
    levels: Dithering,
}

impl SmoothDither {
    pub fn from_spec(spec: &mut Spec, d: usize, workers: usize) -> Result<Self> {
        let s = spec.take_f64_or("s", (d as f64).sqrt() / workers as f64)?;
        if !(s > 0.0 && s <= (1 << 20) as f64) {
            return Err(Error::config(
                format!("compressor '{}': s = {s} levels", spec.text()),
                "choose 0 < s ≤ 2^20 (the default √d/n is the reference code's budget)",
            ));
        }
        let uniform = spec.take_flag("fnl")?;
        let coding = Coding::from_spec(spec)?;
        let steps = PerWorker::new(vec![1.0 / s; d]);
        let levels = Dithering::new(NAME, d, s.ceil() as u32, Norm::Inf, coding);
        Ok(SmoothDither {
            spec: spec.text().to_string(),
            d,
            budget: s * (d as f64).sqrt(),
            uniform,
            coding,
            steps,
            levels,
        })
    }

    /// The steps §A.2a optimises for a rule.
    fn optimal_steps(&self, c: &Curvature) -> Result<Vec<f64>> {
        let weights: Vec<f64> = match c.rule {
            Rule::Dcgd => c.diag.to_vec(),
            Rule::Diana => {
                let nl = c.n_lambda(&self.spec)?;
                c.diag.iter().map(|l| (1.0 + (l / nl).powi(2)).sqrt()).collect()
            }
        };
        let total: f64 = weights.iter().sum();
        Ok(weights.iter().map(|w| (total / w).sqrt() / self.budget).collect())
    }

    /// Rebuilds the payload for the largest level index any worker's steps reach.
    fn resize_levels(&mut self) {
        self.levels = Dithering::new(NAME, self.d, self.steps.largest_level(), Norm::Inf, self.coding);
    }
}

/// ω = min(‖h‖², ‖h‖) (§A.2a).
fn omega(h: &[f64]) -> f64 {
    let squares: f64 = h.iter().map(|v| v * v).sum();
    squares.min(squares.sqrt())
}

/// (ω, L̃ = ‖diag∘h‖₂) of steps h for a diagonal (§A.2a).
fn constants(h: &[f64], diag: &[f64]) -> (f64, f64) {
    (omega(h), norm(&h.iter().zip(diag).map(|(h, l)| h * l).collect::<Vec<_>>()))
}

impl SmoothnessAware for SmoothDither {
    fn adapt(&mut self, worker: usize, c: &Curvature) -> Result<(f64, f64)> {
        if !self.uniform {
            let h = self.optimal_steps(c)?;
            self.steps.set(worker, h);
            self.resize_levels();
        }
        Ok(constants(self.steps.of(worker), c.diag))
    }

    fn parameters(&self, worker: usize) -> &[f64] {
        if self.uniform {
            &[]
        } else {
            self.steps.of(worker)
        }
    }
}

impl Compressor for SmoothDither {
    fn spec(&self) -> &str {
        &self.spec
    }

    /// ω = min(‖h‖², ‖h‖), the largest over the workers' steps.
    fn class(&self) -> Class {
        let omega = self.steps.all().map(omega).fold(0.0, f64::max);
        Class::Unbiased { omega }
    }

    fn begin_worker(&mut self, worker: usize) {
        self.steps.select(worker);
    }

    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        let h = self.steps.current();
        self.levels.encode_by(x, rng, out, |_, j, y, u| round_to_step(y, h[j], u));
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        let h = self.steps.current();
        self.levels.decode_add_by(msg, scale, acc, |_, j, level| level as f64 * h[j])
    }

    fn paper_bits(&self, msg: &[u8]) -> u64 {
        self.levels.paper_bits(msg)
    }

    fn smoothness_aware(&mut self) -> Option<&mut dyn SmoothnessAware> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_optimal_steps_spend_the_budget_exactly() {
        let diag: Vec<f64> = (0..40).map(|j| 0.01 + (j as f64 * 0.37).sin().abs()).collect();
        for rule in [Rule::Dcgd, Rule::Diana] {
            let mut spec = Spec::parse_compressor("smooth-dither").unwrap();
            let mut q = SmoothDither::from_spec(&mut spec, 40, 4).unwrap();
            q.adapt(1, &Curvature { diag: &diag, lambda: 0.05, workers: 4.0, rule }).unwrap();
            let spent: f64 = q.parameters(1).iter().map(|h| h.powi(-2)).sum();
            let beta: f64 = 40.0 / 4.0;
            assert!(
                (spent - beta * beta).abs() <= 1e-10 * beta * beta,
                "{rule:?}: Σh⁻² = {spent}, β² = {}",
                beta * beta
            );
            assert_eq!(q.parameters(0), &[1.0 / (40f64.sqrt() / 4.0); 40][..], "worker 0 keeps the uniform steps");
        }
    }

    #[test]
    fn fnl_keeps_uniform_steps_and_ships_nothing() {
        let mut spec = Spec::parse_compressor("smooth-dither:fnl").unwrap();
        let mut q = SmoothDither::from_spec(&mut spec, 16, 2).unwrap();
        let (omega, l_tilde) =
            q.adapt(0, &Curvature { diag: &[2.0; 16], lambda: 0.1, workers: 2.0, rule: Rule::Dcgd }).unwrap();
        assert!(q.parameters(0).is_empty());
        // h = 1/S = n/√d = 0.5: ‖h‖² = 4, ‖h‖ = 2; L̃ = ‖2·h‖ = 4.
        assert_eq!((omega, l_tilde), (2.0, 4.0));
    }
}
