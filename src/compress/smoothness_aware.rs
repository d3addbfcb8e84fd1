//! What the smoothness-aware compressors (ALGORITHMS.md §A.2) adapt to, and the per-worker
//! parameters they keep.
//!
//! DCGD+ and DIANA+ compress the whitened vector z_i = L_i^{†1/2}∇f_i. A compressor with a
//! [`SmoothnessAware`] view sets its steps (or keep probabilities) for each worker from
//! diag(L_i) and reports the two constants the step sizes need: ω_i with
//! E‖Q(z) − z‖² ≤ ω_i‖z‖², and the smoothness-aware variance L̃_i with
//! E‖Q(z) − z‖²_{L_i} ≤ L̃_i‖z‖² (§A.1). Every rank adapts every worker's steps (the
//! diagonals are gathered at set-up), so decoding needs no state from the wire; the
//! parameters a server must know are still shipped once at t = 0 and checked on arrival.

use crate::error::{Error, Result};

/// The method whose optimal steps a compressor takes (§A.2a, §A.2b).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// DCGD+: minimise the L̃ of DCGD+'s step 1/(L + 2L̃/n).
    Dcgd,
    /// DIANA+: the steps of SD-/BL-DIANA-plus, which weigh L_jj against nλ.
    Diana,
}

/// One worker's curvature as a compressor adapts to it.
#[derive(Clone, Copy, Debug)]
pub struct Curvature<'a> {
    /// diag(L_i).
    pub diag: &'a [f64],
    /// The regulariser's constant λ (the DIANA+ steps and rand-τ+ divide by nλ).
    pub lambda: f64,
    /// n, the number of workers of the step rules (n_eff for unequal weights).
    pub workers: f64,
    pub rule: Rule,
}

impl Curvature<'_> {
    /// nλ, refused when λ = 0 (a rule that divides by it has no steps then).
    pub fn n_lambda(&self, compressor: &str) -> Result<f64> {
        if self.lambda > 0.0 {
            return Ok(self.workers * self.lambda);
        }
        Err(Error::config(
            format!("compressor '{compressor}' weighs L_jj against nλ, and λ = 0"),
            "give the ridge term a weight (--lambda 1e-3, as the reference code), or use the DCGD+ steps (--method dcgd-plus)",
        ))
    }
}

pub trait SmoothnessAware {
    /// Adapts worker `worker`'s parameters to its curvature; returns (ω_i, L̃_i).
    fn adapt(&mut self, worker: usize, curvature: &Curvature) -> Result<(f64, f64)>;

    /// The parameters of `worker` its server must know to decode, shipped once at t = 0
    /// (§A.3: the step vector h_i); empty when they follow from the SPEC alone.
    fn parameters(&self, worker: usize) -> &[f64];
}

/// Per-worker parameter vectors with a common default, and the one in use (selected by
/// `Compressor::begin_worker`).
pub struct PerWorker {
    default: Vec<f64>,
    /// By global worker id; empty until adapted.
    adapted: Vec<Vec<f64>>,
    current: usize,
}

impl PerWorker {
    pub fn new(default: Vec<f64>) -> Self {
        PerWorker { default, adapted: Vec::new(), current: 0 }
    }

    pub fn select(&mut self, worker: usize) {
        self.current = worker;
    }

    /// The current worker's parameters.
    pub fn current(&self) -> &[f64] {
        self.of(self.current)
    }

    pub fn of(&self, worker: usize) -> &[f64] {
        match self.adapted.get(worker) {
            Some(v) if !v.is_empty() => v,
            _ => &self.default,
        }
    }

    /// Whether any worker has its own parameters.
    pub fn is_adapted(&self) -> bool {
        self.adapted.iter().any(|v| !v.is_empty())
    }

    pub fn set(&mut self, worker: usize, values: Vec<f64>) {
        if self.adapted.len() <= worker {
            self.adapted.resize(worker + 1, Vec::new());
        }
        self.adapted[worker] = values;
    }

    /// The largest level index ⌈1/h⌉ any step in use reaches (at least 1), for step
    /// parameters h.
    pub fn largest_level(&self) -> u32 {
        self.all().flatten().map(|h| (1.0 / h).ceil()).fold(1.0, f64::max).min(u32::MAX as f64) as u32
    }

    /// Every parameter vector in use (the default alone when none is adapted).
    pub fn all(&self) -> impl Iterator<Item = &[f64]> {
        let adapted = self.adapted.iter().filter(|v| !v.is_empty()).map(Vec::as_slice);
        std::iter::once(self.default.as_slice()).filter(move |_| !self.is_adapted()).chain(adapted)
    }
}

/// ‖v‖₂.
pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{build_for, decode, Compressor};
    use crate::data::Csr;
    use crate::objective::smoothness_matrix::{gram, WorkerMatrix};
    use crate::rng::{self, Purpose};
    use rand::{Rng, SeedableRng};

    const D: usize = 24;
    const WORKERS: usize = 3;
    /// Draws per vector: the tolerances below are five standard errors of these means.
    const N: usize = 6000;

    /// A worker's rows with features of very different scales (so diag(L) is far from
    /// uniform and the adapted steps differ from the plain ones).
    fn rows(seed: u64) -> Csr {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut a = Csr::empty(D);
        for _ in 0..80 {
            let mut entries = Vec::new();
            for j in 0..D as u32 {
                let (keep, v) = (rng.random::<f64>(), rng.random::<f64>() - 0.5);
                if keep < 0.4 {
                    entries.push((j, v * (1.0 + j as f64 / 3.0)));
                }
            }
            a.push_row(entries);
        }
        a
    }

    /// mean ∓ five standard errors of the samples.
    fn interval(samples: &[f64]) -> (f64, f64) {
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let half = 5.0 * (var / n).sqrt();
        (mean - half, mean + half)
    }

    /// §A.5: for each smoothness-aware compressor adapted to a real L (dense, from rows),
    /// by Monte-Carlo on whitened vectors of several shapes: E Q(z) = z coordinate-wise;
    /// E‖Q(z) − z‖² ≤ ω‖z‖²; E‖Q(z) − z‖²_L ≤ L̃‖z‖²; and the de-whitened estimator is
    /// unbiased, E L^{1/2}Q(L^{−1/2}g) = g. Each inequality must hold for the lower end
    /// of a five-standard-error interval of the sampled mean. (The L̃ bounds are loose by
    /// construction — ‖z‖_∞ ≤ ‖z‖ and Cauchy–Schwarz — so only an L̃ several times too small
    /// fails: a tenth of smooth-dither's does.)
    #[test]
    fn adapted_compressors_keep_their_constants_and_the_de_whitened_estimator_is_unbiased() {
        let obj = crate::objective::Objective::new(crate::objective::ObjectiveKind::Logistic, 0.05);
        let a = rows(11);
        let l = gram(&a, 0.25 / 80.0, 0.05);
        let m = WorkerMatrix::of(&a, &obj, crate::objective::smoothness_matrix::Shape::Dense).unwrap();
        for spec in ["smooth-dither", "smooth-dither:fnl", "block-qsgd", "block-qsgd:fnl", "rand-tau-plus"] {
            for rule in [Rule::Dcgd, Rule::Diana] {
                let mut q = build_for(spec, D, 3, WORKERS).unwrap();
                let c = Curvature { diag: &m.diag, lambda: 0.05, workers: WORKERS as f64, rule };
                let (omega, l_tilde) = q.smoothness_aware().unwrap().adapt(1, &c).unwrap();
                q.begin_worker(1);
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
                let mut unit = vec![0.0; D];
                unit[D - 1] = 3.0;
                let random: Vec<f64> = (0..D).map(|_| rng.random::<f64>() - 0.5).collect();
                let g: Vec<f64> = (0..D).map(|j| (j as f64 * 0.7).cos()).collect();
                let mut whitened = vec![0.0; D];
                m.inv_root.apply(&g, &mut whitened);
                for (shape, z) in [("e_d", unit), ("random", random), ("whitened", whitened)] {
                    let ctx = format!("{spec} ({rule:?}) on {shape}");
                    check(q.as_mut(), &z, &l, (omega, l_tilde), &ctx);
                }
                // De-whitening: L^{1/2}Q(L^{-1/2}g) averages to g.
                let mut stream = rng::private(9, 1, Purpose::Compressor);
                let (mut msg, mut out, mut lifted) = (Vec::new(), vec![0.0; D], vec![0.0; D]);
                let mut z = vec![0.0; D];
                m.inv_root.apply(&g, &mut z);
                let mut samples = vec![Vec::new(); D];
                for _ in 0..N {
                    q.encode(&z, &mut stream, &mut msg);
                    decode(q.as_ref(), &msg, &mut out).unwrap();
                    m.root.apply(&out, &mut lifted);
                    lifted.iter().zip(samples.iter_mut()).for_each(|(v, s)| s.push(*v));
                }
                for (j, s) in samples.iter().enumerate() {
                    let (low, high) = interval(s);
                    assert!(
                        low <= g[j] && g[j] <= high,
                        "{spec} ({rule:?}): E[L½Q(L^-½g)]_{j} ∉ [{low}, {high}] ∌ {}",
                        g[j]
                    );
                }
            }
        }
    }

    fn check(q: &mut dyn Compressor, z: &[f64], l: &faer::Mat<f64>, (omega, l_tilde): (f64, f64), ctx: &str) {
        let mut stream = rng::private(7, 1, Purpose::Compressor);
        let (mut msg, mut out) = (Vec::new(), vec![0.0; D]);
        let mut per_coordinate = vec![Vec::new(); D];
        let (mut plain, mut weighted) = (Vec::with_capacity(N), Vec::with_capacity(N));
        for _ in 0..N {
            q.encode(z, &mut stream, &mut msg);
            decode(q, &msg, &mut out).unwrap();
            let e: Vec<f64> = out.iter().zip(z).map(|(o, v)| o - v).collect();
            plain.push(e.iter().map(|v| v * v).sum::<f64>());
            let mut le = 0.0;
            for i in 0..D {
                for k in 0..D {
                    le += e[i] * l[(i, k)] * e[k];
                }
            }
            weighted.push(le);
            out.iter().zip(per_coordinate.iter_mut()).for_each(|(v, s)| s.push(*v));
        }
        let norm2: f64 = z.iter().map(|v| v * v).sum();
        // The f32 norm on the wire adds a relative 2^-23 to each bound.
        let slack = 1.0 + 1e-6;
        assert!(
            interval(&plain).0 <= omega * norm2 * slack,
            "{ctx}: E‖e‖² = {} > ω‖z‖² = {}",
            interval(&plain).0,
            omega * norm2
        );
        assert!(interval(&weighted).0 <= l_tilde * norm2 * slack, "{ctx}: E‖e‖²_L > L̃‖z‖² = {}", l_tilde * norm2);
        for (j, s) in per_coordinate.iter().enumerate() {
            let (low, high) = interval(s);
            let tolerance = 1e-6 * z[j].abs();
            assert!(
                low <= z[j] + tolerance && z[j] - tolerance <= high,
                "{ctx}: E Q(z)_{j} ∉ [{low}, {high}] ∌ {}",
                z[j]
            );
        }
    }

    #[test]
    fn per_worker_parameters_fall_back_to_the_default() {
        let mut p = PerWorker::new(vec![1.0]);
        assert_eq!(p.all().collect::<Vec<_>>(), vec![&[1.0][..]]);
        p.set(2, vec![3.0]);
        p.select(2);
        assert_eq!(p.current(), &[3.0]);
        p.select(1);
        assert_eq!(p.current(), &[1.0]);
        assert_eq!(p.all().collect::<Vec<_>>(), vec![&[3.0][..]]);
        let c = Curvature { diag: &[1.0], lambda: 0.0, workers: 2.0, rule: Rule::Diana };
        assert!(c.n_lambda("x").unwrap_err().to_string().contains("λ = 0"));
    }
}
