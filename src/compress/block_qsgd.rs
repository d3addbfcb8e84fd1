//! Block quantization (Wang, Safaryan, Richtárik 2022; the reference code's BL-DCGD,
//! BL-DIANA and BL-…-plus): standard dithering of B contiguous blocks, each with its own
//! ∞-norm and one scalar step h_l.
//!
//! Spec: ../shared/ALGORITHMS.md §A.2b. SPEC: `block-qsgd[:blocks=B][,s=S][,fnl][,elias]`.
//!
//! * Blocks: B = n (the number of workers, the paper's headline) by default; ⌊d/B⌋
//!   coordinates each, the last block taking the remainder.
//! * Steps without a smoothness-aware method (the BL-DCGD / BL-DIANA baselines on raw
//!   gradients), or with `s=S` given: h_l = 1/S, S = max(1, ⌊√⌊d/B⌋ / n⌋) by default (the
//!   code's s). ω = max_l min(d_l/S², √d_l/S) — the code's ω with ⌊d/B⌋ in place of d,
//!   taken over the actual block sizes so the bound holds for the longer last block too.
//! * Adapted by DCGD+ / DIANA+ (no `s`), with β = d/B + B and diag(L)_l the diagonal of
//!   block l: DCGD+ T₁ = ‖diag L‖/√d, T_B = Σ_l √d_l‖diag(L)_l‖/d, δ = dT_B/(β−B) +
//!   √(d/(β−B))·T₁, h_l = δ/‖diag(L)_l‖; DIANA+ A_l = √d_l + ‖diag(L)_l‖/(nλ), T₁ = 1 +
//!   ‖diag L‖/(nλ√d), T_B = Σ_l √d_l A_l/d, δ = dT_B/(2(β−B)) + √(d²T_B²/(4(β−B)²) +
//!   dT₁²/(β−B)), h_l = δ/A_l; `fnl`: the uniform h = (√d_b + √(d_b + 4(β/B−1)))/(2(β/B−1)),
//!   d_b = ⌊d/B⌋. Then ω = max_l h_l√d_l (the code's) and L̃ = max_l h_l‖diag(L)_l‖.
//! * Unbiased for any steps (each block is standard dithering of its own norm).
//! * Wire and paper bits: the dithering payload ([`Dithering`]) with B f32 norms and level
//!   indices in 0..=max ⌈1/h_l⌉: 32B + d(1 + ⌈log₂(s+1)⌉) fixed, or 32B + the Elias-ω code.

use super::qsgd::{Coding, Dithering, Norm};
use super::rounding::round_to_step;
use super::smoothness_aware::{norm, Curvature, PerWorker, Rule, SmoothnessAware};
use super::{Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::Stream;

const NAME: &str = "block-qsgd";

pub struct BlockQsgd {
    spec: String,
    d: usize,
    /// Uniform steps whatever the method: `s` given, or `fnl`.
    uniform: bool,
    fnl: bool,
    coding: Coding,
    /// h_l per block.
    steps: PerWorker,
    levels: Dithering,
}

impl BlockQsgd {
    pub fn from_spec(spec: &mut Spec, d: usize, workers: usize) -> Result<Self> {
        let blocks = spec.take_usize_or("blocks", workers.min(d))?;
        if blocks == 0 || blocks > d {
            return Err(Error::config(
                format!("compressor '{}': {blocks} blocks for d = {d} coordinates", spec.text()),
                format!("choose 1 ≤ blocks ≤ {d} (the default is the number of workers)"),
            ));
        }
        let fixed = spec.take_usize_opt("s")?;
        let s = fixed.unwrap_or_else(|| (((d / blocks) as f64).sqrt() / workers as f64).floor().max(1.0) as usize);
        super::check_levels(spec, s)?;
        let fnl = spec.take_flag("fnl")?;
        let coding = Coding::from_spec(spec)?;
        let levels = Dithering::new(NAME, d, s as u32, Norm::Inf, coding).with_blocks(blocks);
        Ok(BlockQsgd {
            spec: spec.text().to_string(),
            d,
            uniform: fixed.is_some(),
            fnl,
            coding,
            steps: PerWorker::new(vec![1.0 / s as f64; blocks]),
            levels,
        })
    }

    fn block_sizes(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.levels.blocks()).map(|l| self.levels.block(l).len() as f64)
    }

    /// ‖diag(L)_l‖ per block.
    fn block_norms(&self, diag: &[f64]) -> Vec<f64> {
        (0..self.levels.blocks()).map(|l| norm(&diag[self.levels.block(l)])).collect()
    }

    /// §A.2b's steps for a rule.
    fn optimal_steps(&self, c: &Curvature) -> Result<Vec<f64>> {
        let (d, b) = (self.d as f64, self.levels.blocks() as f64);
        let room = d / b; // β − B with β = d/B + B
        let norms = self.block_norms(c.diag);
        let total = norm(c.diag);
        if self.fnl {
            let db = (self.d / self.levels.blocks()) as f64;
            let r = room / b; // β/B − 1
            return Ok(vec![(db.sqrt() + (db + 4.0 * r).sqrt()) / (2.0 * r); norms.len()]);
        }
        Ok(match c.rule {
            Rule::Dcgd => {
                let t1 = total / d.sqrt();
                let tb = self.block_sizes().zip(&norms).map(|(dl, n)| dl.sqrt() * n).sum::<f64>() / d;
                let delta = d * tb / room + (d / room).sqrt() * t1;
                norms.iter().map(|n| delta / n).collect()
            }
            Rule::Diana => {
                let nl = c.n_lambda(&self.spec)?;
                let a: Vec<f64> = self.block_sizes().zip(&norms).map(|(dl, n)| dl.sqrt() + n / nl).collect();
                let t1 = 1.0 + total / (nl * d.sqrt());
                let tb = self.block_sizes().zip(&a).map(|(dl, a)| dl.sqrt() * a).sum::<f64>() / d;
                let delta = d * tb / (2.0 * room) + (d * d * tb * tb / (4.0 * room * room) + d * t1 * t1 / room).sqrt();
                a.iter().map(|a| delta / a).collect()
            }
        })
    }

    /// ω of steps h: the code's max_l h_l√d_l once adapted, max_l min(d_l h², √d_l h) for
    /// the uniform baseline steps.
    fn omega(&self, h: &[f64], adapted: bool) -> f64 {
        self.block_sizes()
            .zip(h)
            .map(|(dl, h)| if adapted { h * dl.sqrt() } else { (dl * h * h).min(dl.sqrt() * h) })
            .fold(0.0, f64::max)
    }
}

impl SmoothnessAware for BlockQsgd {
    fn adapt(&mut self, worker: usize, c: &Curvature) -> Result<(f64, f64)> {
        let adapted = !self.uniform;
        if adapted {
            let h = self.optimal_steps(c)?;
            self.steps.set(worker, h);
            let blocks = self.levels.blocks();
            self.levels =
                Dithering::new(NAME, self.d, self.steps.largest_level(), Norm::Inf, self.coding).with_blocks(blocks);
        }
        let h = self.steps.of(worker);
        let l_tilde = self.block_norms(c.diag).iter().zip(h).map(|(n, h)| h * n).fold(0.0, f64::max);
        Ok((self.omega(h, adapted), l_tilde))
    }

    fn parameters(&self, worker: usize) -> &[f64] {
        if self.uniform || self.fnl {
            &[]
        } else {
            self.steps.of(worker)
        }
    }
}

impl Compressor for BlockQsgd {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        let adapted = self.steps.is_adapted();
        Class::Unbiased { omega: self.steps.all().map(|h| self.omega(h, adapted)).fold(0.0, f64::max) }
    }

    fn begin_worker(&mut self, worker: usize) {
        self.steps.select(worker);
    }

    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        let h = self.steps.current();
        self.levels.encode_by(x, rng, out, |l, _, y, u| round_to_step(y, h[l], u));
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        let h = self.steps.current();
        self.levels.decode_add_by(msg, scale, acc, |l, _, level| level as f64 * h[l])
    }

    fn paper_bits(&self, msg: &[u8]) -> u64 {
        self.levels.paper_bits(msg)
    }

    fn smoothness_aware(&mut self) -> Option<&mut dyn SmoothnessAware> {
        Some(self)
    }
}
