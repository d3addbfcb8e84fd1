//! The μ-bounded model quantizer of double quantization (ALGORITHMS.md §B.1–B.2): the
//! server sends the workers a low-precision copy Q(x) of the model whose error is
//! relative to the distance from the epoch's snapshot x̃,
//! ```text
//! E‖Q(x) − x‖² ≤ μ‖x − x̃‖²,
//! ```
//! so that the bias it puts into the workers' gradients vanishes as x, x̃ → x* (§B.2).
//!
//! * Grid (§B.1): dom(δ, b) = {−2^{b−1}δ, …, 0, …, (2^{b−1}−1)δ}; stochastic rounding of
//!   v/δ to the integers below and above, so E Q(v) = v and the per-coordinate variance
//!   is (v − kδ)((k+1)δ − v) ≤ δ²/4.
//! * Step: δ = 2√(μ/d)·‖x − x̃‖₂, rounded down to f32 (what travels), so
//!   E‖Q(x) − x‖² ≤ dδ²/4 ≤ μ‖x − x̃‖² holds for the δ the worker decodes with.
//! * [`Mode::Direct`] (AsyLPG's rule, §B.2): the model itself on that grid, with the
//!   smallest width that never clips, b_x = 1 + ⌈log₂(⌈‖x‖_∞/δ⌉ + 1)⌉ — it grows like
//!   log₂(‖x‖_∞/‖x − x̃‖) as x approaches x̃. [`Mode::Delta`] (our construction, §B.2
//!   "kept from the old spec"): x − x̃ on the same δ, added to x̃ by the worker; since
//!   ‖x − x̃‖_∞ ≤ ‖x − x̃‖₂ its width is the constant 1 + ⌈log₂(⌈½√(d/μ)⌉ + 1)⌉.
//! * [`Mode::Fixed`]`(b_x)`: the model at a fixed width with δ = ‖x‖_∞/(2^{b_x−1} − 1)
//!   rounded up (the baseline of §B.6 that stalls at a floor: its error does not shrink
//!   with ‖x − x̃‖). Paper bits 32 + b_x·d.
//! * At x = x̃ the message is empty (the worker holds x̃). A width above 32 bits (μ tiny,
//!   or μ = 0: the quantizer off) sends the model exactly as f64.
//! * Randomness: one coin per coordinate (`rng::Coins`, a 32-bit uniform) from the stream the caller passes (the
//!   server's shared stream, so every replica sends the same bits).
//! * Wire: empty; or a width byte b ∈ 1..=32, δ as f32, then d fields of b bits holding
//!   k + 2^{b−1} (byte-padded); or the byte 64 and d f64.
//! * Paper bits (§B.2): 0 for the empty message; Direct 32 + 8 + b·d (δ and its dynamic
//!   width); Delta 32 + b·d; exact 8 + 32·d (§B.2's cap "b_x = 32 → fp32": the paper's
//!   float convention, §0.6, for what travels as f64 here).

use super::rounding::signed_stochastic_round;
use super::wire::{
    ceil_log2, f32_round_down, f32_round_up, packed_len, put_f32, put_f64, BitReader, BitWriter, Reader,
};
use crate::error::{Error, Result};
use crate::rng::{Coins, Stream};

const NAME: &str = "model quantizer";
/// The width byte of an exact (f64) model.
const EXACT: u8 = 64;
/// The widest grid; wider would be no cheaper than the exact model.
const MAX_WIDTH: u32 = 32;

/// What the grid carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The model x itself (AsyLPG, §B.2).
    Direct,
    /// x − x̃, which the worker adds to its snapshot (our construction, §B.2).
    Delta,
    /// The model at a fixed width b_x with δ = ‖x‖_∞/(2^{b_x−1} − 1) (HALP-style
    /// model-only quantization, §B.6): not μ-bounded, a floor the others do not have.
    Fixed(u32),
}

#[derive(Clone, Debug)]
pub struct ModelQuantizer {
    pub mode: Mode,
    /// μ in E‖Q(x) − x‖² ≤ μ‖x − x̃‖² (0: exact models).
    pub mu: f64,
    d: usize,
}

impl ModelQuantizer {
    pub fn new(mode: Mode, mu: f64, d: usize) -> Result<Self> {
        if !(mu.is_finite() && mu >= 0.0) {
            return Err(Error::config(format!("model error constant mu = {mu}"), "use mu ≥ 0 (0: exact models)"));
        }
        if let Mode::Fixed(b) = mode {
            if !(2..=MAX_WIDTH).contains(&b) {
                return Err(Error::config(format!("a fixed model width of {b} bits"), "choose 2 ≤ bx ≤ 32"));
            }
        }
        Ok(ModelQuantizer { mode, mu, d })
    }

    /// The width Delta uses whenever x ≠ x̃ (None: exact).
    pub fn delta_width(&self) -> Option<u32> {
        // ‖x − x̃‖_∞/δ ≤ ½√(d/μ), with a margin for the f32 rounding of δ.
        let ratio = 0.5 * (self.d as f64 / self.mu).sqrt() * (1.0 + 1e-6);
        width_for(ratio)
    }

    /// Q(x) relative to `snapshot` into `out`; returns its paper bits.
    pub fn encode(&self, x: &[f64], snapshot: &[f64], rng: &mut Stream, out: &mut Vec<u8>) -> u64 {
        assert_eq!((x.len(), snapshot.len()), (self.d, self.d), "{NAME}: vectors of the wrong dimension");
        out.clear();
        let distance = x.iter().zip(snapshot).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
        if distance == 0.0 {
            return 0;
        }
        let largest = x.iter().map(|v| v.abs()).fold(0.0, f64::max);
        let delta = match self.mode {
            // The smallest positive step for the zero model: every level is 0.
            Mode::Fixed(b) => f32_round_up(largest / ((1u64 << (b - 1)) - 1) as f64).max(f32::MIN_POSITIVE),
            _ => f32_round_down(2.0 * (self.mu / self.d as f64).sqrt() * distance),
        };
        let offset = |j: usize| if self.mode == Mode::Delta { snapshot[j] } else { 0.0 };
        let width = match self.mode {
            // A diverged model (NaN or ∞) travels as it is, so the monitor sees it.
            _ if delta == 0.0 || !distance.is_finite() || !largest.is_finite() => None,
            Mode::Delta => self.delta_width(),
            Mode::Direct => width_for(largest / delta as f64),
            Mode::Fixed(b) => Some(b),
        };
        let Some(b) = width else {
            out.push(EXACT);
            x.iter().for_each(|&v| put_f64(out, v));
            return 8 + 32 * self.d as u64;
        };
        out.push(b as u8);
        put_f32(out, delta);
        let (delta, bias) = (delta as f64, 1i64 << (b - 1));
        let mut fields = BitWriter::new(out);
        let mut coins = Coins::new(rng, x.len());
        for (j, &v) in x.iter().enumerate() {
            // The width leaves no level past ±(2^{b−1} − 1) but for an ulp of v/δ.
            let level = signed_stochastic_round((v - offset(j)) / delta, coins.unit()).clamp(1 - bias, bias - 1);
            fields.put((level + bias) as u32, b);
        }
        fields.finish();
        let width_field = if self.mode == Mode::Direct { 8 } else { 0 };
        32 + width_field + b as u64 * self.d as u64
    }

    /// The worker's view Q(x) from a message and its snapshot.
    pub fn decode(&self, msg: &[u8], snapshot: &[f64], view: &mut [f64]) -> Result<()> {
        if view.len() != self.d || snapshot.len() != self.d {
            return Err(Error::wire(NAME, format!("decoding into length {}, but d = {}", view.len(), self.d)));
        }
        let Some((&width, rest)) = msg.split_first() else {
            view.copy_from_slice(snapshot);
            return Ok(());
        };
        let mut r = Reader::new(rest, NAME);
        if width == EXACT {
            for v in view.iter_mut() {
                *v = r.f64()?;
            }
            return r.finish();
        }
        let b = u32::from(width);
        if !(1..=MAX_WIDTH).contains(&b) {
            return Err(Error::wire(NAME, format!("width byte {width}: expected 1..=32 or 64 (exact)")));
        }
        let delta = r.f32()? as f64;
        if !(delta.is_finite() && delta > 0.0) {
            return Err(Error::wire(NAME, format!("grid step δ = {delta}: expected a finite δ > 0")));
        }
        let mut fields = BitReader::new(r.take(packed_len(self.d, b))?);
        r.finish()?;
        let bias = 1i64 << (b - 1);
        for (j, v) in view.iter_mut().enumerate() {
            let level = i64::from(fields.get(b)) - bias;
            *v = delta * level as f64 + if self.mode == Mode::Delta { snapshot[j] } else { 0.0 };
        }
        Ok(())
    }
}

/// The smallest b with 2^{b−1} − 1 ≥ ⌈ratio⌉ (no clipping of |v|/δ ≤ ratio), if b ≤ 32.
fn width_for(ratio: f64) -> Option<u32> {
    let top = ratio.ceil();
    (top.is_finite() && top < (1u64 << (MAX_WIDTH - 1)) as f64).then(|| 1 + ceil_log2(top as u64 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand::SeedableRng;

    fn random(d: usize, scale: f64, rng: &mut Stream) -> Vec<f64> {
        (0..d).map(|_| scale * (2.0 * rng.random::<f64>() - 1.0)).collect()
    }

    fn width(msg: &[u8]) -> u8 {
        msg[0]
    }

    /// Exact E‖Q(x) − x‖² of one message's grid, Σ_j (v − kδ)((k+1)δ − v), and the largest
    /// error a draw can have, Σ_j max(v − kδ, (k+1)δ − v)².
    fn exact_variance(q: &ModelQuantizer, msg: &[u8], x: &[f64], snapshot: &[f64]) -> (f64, f64) {
        let delta = f32::from_le_bytes(msg[1..5].try_into().unwrap()) as f64;
        (0..x.len())
            .map(|j| {
                let v = x[j] - if q.mode == Mode::Delta { snapshot[j] } else { 0.0 };
                let low = (v / delta).floor() * delta;
                let (below, above) = (v - low, low + delta - v);
                (below * above, below.max(above).powi(2))
            })
            .fold((0.0, 0.0), |(a, b), (c, e)| (a + c, b + e))
    }

    /// §B.6: E‖Q(x) − x‖² by Monte-Carlo equals the exact per-coordinate variance sum (4σ/√N,
    /// with σ² ≤ max_error·E since each draw's error lies in [0, max_error]),
    /// which is ≤ μ‖x − x̃‖²; for random pairs and for x = x̃ + εe_j with tiny ε; the
    /// decoded values are on the grid and unclipped (each within one δ of x).
    #[test]
    fn the_model_error_is_mu_bounded() {
        let mut g = Stream::seed_from_u64(11);
        let d = 50;
        for mode in [Mode::Direct, Mode::Delta] {
            // Case 4 is tight: x − x̃ = ±c on every coordinate with μ = 1/9 puts every
            // coordinate at the midpoint of its grid interval (v/δ = 1.5).
            for (case, mu) in [(0, 0.5), (1, 0.05), (2, 2.0), (3, 0.5), (4, 1.0 / 9.0)] {
                let snapshot = if case == 4 { vec![0.0; d] } else { random(d, 3.0, &mut g) };
                let mut x = snapshot.clone();
                if case == 4 {
                    x.iter_mut().enumerate().for_each(|(j, v)| *v = if j % 3 == 0 { -0.7 } else { 0.7 });
                } else if case == 3 {
                    x[7] += 1e-6;
                } else {
                    x.iter_mut().zip(random(d, 0.1 * (case + 1) as f64, &mut g)).for_each(|(a, e)| *a += e);
                }
                let distance2: f64 = x.iter().zip(&snapshot).map(|(a, b)| (a - b) * (a - b)).sum();
                let q = ModelQuantizer::new(mode, mu, d).unwrap();
                let (mut msg, mut view) = (Vec::new(), vec![0.0; d]);
                let mut rng = Stream::seed_from_u64(case);
                let n = 4000;
                let (mut sum, mut variance, mut largest) = (0.0, 0.0, 0.0);
                for _ in 0..n {
                    q.encode(&x, &snapshot, &mut rng, &mut msg);
                    q.decode(&msg, &snapshot, &mut view).unwrap();
                    if width(&msg) == EXACT {
                        assert_eq!(view, x);
                        continue;
                    }
                    (variance, largest) = exact_variance(&q, &msg, &x, &snapshot);
                    let delta = f32::from_le_bytes(msg[1..5].try_into().unwrap()) as f64;
                    assert!(
                        view.iter().zip(&x).all(|(v, x)| (v - x).abs() <= delta * (1.0 + 1e-12)),
                        "{mode:?}: clipped"
                    );
                    let e: f64 = view.iter().zip(&x).map(|(v, x)| (v - x) * (v - x)).sum();
                    sum += e;
                }
                let mean = sum / n as f64;
                let sigma = (largest * variance).sqrt();
                assert!(
                    (mean - variance).abs() <= 4.0 * sigma / (n as f64).sqrt(),
                    "{mode:?} case {case}: {mean} vs {variance}"
                );
                assert!(
                    variance <= mu * distance2 * (1.0 + 1e-12),
                    "{mode:?} case {case}: {variance} > μ‖x − x̃‖² = {}",
                    mu * distance2
                );
            }
        }
    }

    /// §B.6: Direct's width shrinks (never grows) as x moves away from x̃ and the message is
    /// empty at x = x̃; Delta's width is constant, and Fixed's is its own; Direct and Fixed are
    /// unclipped and unbiased coordinate-wise (mean of the decoded views within 4σ/√N of x);
    /// a non-finite model is sent exactly.
    #[test]
    fn direct_widths_follow_the_distance_and_delta_widths_are_constant() {
        let mut g = Stream::seed_from_u64(5);
        let d = 40;
        let snapshot = random(d, 2.0, &mut g);
        let direction = random(d, 1.0, &mut g);
        let (mut msg, mut rng) = (Vec::new(), Stream::seed_from_u64(1));
        for mode in [Mode::Direct, Mode::Delta, Mode::Fixed(6)] {
            let q = ModelQuantizer::new(mode, 0.5, d).unwrap();
            assert_eq!(q.encode(&snapshot, &snapshot, &mut rng, &mut msg), 0);
            assert!(msg.is_empty());
            let mut widths = Vec::new();
            for e in [1e-8, 1e-6, 1e-4, 1e-2, 1.0] {
                let x: Vec<f64> = snapshot.iter().zip(&direction).map(|(s, v)| s + e * v).collect();
                let bits = q.encode(&x, &snapshot, &mut rng, &mut msg);
                let b = width(&msg) as u64;
                assert_eq!(bits, 32 + if mode == Mode::Direct { 8 } else { 0 } + b * d as u64);
                widths.push(b);
            }
            match mode {
                Mode::Direct => assert!(widths.windows(2).all(|w| w[1] <= w[0]) && widths[0] > widths[4], "{widths:?}"),
                Mode::Delta => assert!(widths.iter().all(|&b| b as u32 == q.delta_width().unwrap()), "{widths:?}"),
                Mode::Fixed(b) => assert!(widths.iter().all(|&w| w == b as u64), "{widths:?}"),
            }
        }
        let x: Vec<f64> = snapshot.iter().zip(&direction).map(|(s, v)| s + 0.3 * v).collect();
        for mode in [Mode::Direct, Mode::Fixed(6)] {
            let q = ModelQuantizer::new(mode, 1.0, d).unwrap();
            let n = 20000;
            let (mut mean, mut view) = (vec![0.0; d], vec![0.0; d]);
            for _ in 0..n {
                q.encode(&x, &snapshot, &mut rng, &mut msg);
                q.decode(&msg, &snapshot, &mut view).unwrap();
                mean.iter_mut().zip(&view).for_each(|(m, v)| *m += v / n as f64);
            }
            let delta = f32::from_le_bytes(msg[1..5].try_into().unwrap()) as f64;
            // Unclipped: within one step of x; unbiased: per-coordinate σ ≤ δ/2.
            assert!(view.iter().zip(&x).all(|(v, x)| (v - x).abs() <= delta), "{mode:?}: clipped");
            assert!(
                mean.iter().zip(&x).all(|(m, x)| (m - x).abs() <= 4.0 * 0.5 * delta / (n as f64).sqrt()),
                "{mode:?}"
            );
        }
        // A diverged model travels exactly in every mode (the monitor then sees it).
        let mut diverged = x.clone();
        diverged[3] = f64::NAN;
        for mode in [Mode::Direct, Mode::Delta, Mode::Fixed(6)] {
            ModelQuantizer::new(mode, 0.5, d).unwrap().encode(&diverged, &snapshot, &mut rng, &mut msg);
            assert_eq!(width(&msg), EXACT, "{mode:?}");
        }
    }

    /// μ = 0 (the quantizer off) and widths past 32 bits send the exact model; malformed
    /// messages are errors, not panics.
    #[test]
    fn exact_models_and_malformed_messages() {
        let mut g = Stream::seed_from_u64(2);
        let (d, mut msg) = (10, Vec::new());
        let snapshot = random(d, 1.0, &mut g);
        let x = random(d, 1.0, &mut g);
        let q = ModelQuantizer::new(Mode::Direct, 0.0, d).unwrap();
        assert_eq!(q.encode(&x, &snapshot, &mut g, &mut msg), 8 + 32 * d as u64);
        let mut view = vec![0.0; d];
        q.decode(&msg, &snapshot, &mut view).unwrap();
        assert_eq!(view, x);
        let mut tiny = snapshot.clone();
        tiny[3] += 1e-12;
        let q = ModelQuantizer::new(Mode::Direct, 0.5, d).unwrap();
        q.encode(&tiny, &snapshot, &mut g, &mut msg);
        assert_eq!(width(&msg), EXACT);
        q.encode(&x, &snapshot, &mut g, &mut msg);
        for bad in [&msg[..msg.len() - 1], &[7u8][..], &[200u8, 0, 0, 0, 0][..]] {
            assert!(q.decode(bad, &snapshot, &mut view).is_err());
        }
        let mut zero_step = msg.clone();
        zero_step[1..5].copy_from_slice(&0f32.to_le_bytes());
        assert!(q.decode(&zero_step, &snapshot, &mut view).is_err());
        assert!(ModelQuantizer::new(Mode::Direct, -1.0, d).is_err());
    }
}
