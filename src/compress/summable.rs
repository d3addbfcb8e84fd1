//! Summable compressors (ALGORITHMS.md §0.3): every worker's compressed form lives on
//! the same support, so the forms can be added by an MPI allreduce — a rank's traffic
//! stays constant as ranks grow, where an allgather of (index, value) pairs grows with
//! the rank count.
//!
//! A round has three steps: `begin_round` fixes the support from the *shared* stream
//! (identical on every rank), `project` gives a worker's values on it, and `add_expanded`
//! turns (summed) values back into a d-vector. Through an allgather, the values travel
//! as f32 like any message (`SummableMessages`).

use super::rand_k::SubsetSampler;
use super::{check_k, Class, Spec};
use crate::error::{Error, Result};
use crate::rng::Stream;

pub trait Summable: Send {
    fn spec(&self) -> &str;

    fn class(&self) -> Class;

    /// Number of values a worker contributes per round.
    fn values_per_worker(&self) -> usize;

    /// Fixes this round's support; `shared` is the stream every rank draws from alike.
    fn begin_round(&mut self, shared: &mut Stream);

    /// values = the worker's compressed values of x on this round's support.
    fn project(&self, x: &[f64], values: &mut [f64]);

    /// acc += scale · the d-vector the values stand for.
    fn add_expanded(&self, values: &[f64], scale: f64, acc: &mut [f64]);

    /// Paper-convention bits of one worker's contribution (§0.4).
    fn paper_bits(&self) -> u64;
}

/// Builds a summable compressor, or explains why the SPEC is not one.
pub fn build_summable(spec: &str, d: usize) -> Result<Box<dyn Summable>> {
    let mut parsed = Spec::parse(spec)?;
    let c: Box<dyn Summable> = match parsed.name.as_str() {
        "rand-k" => {
            let k = parsed.take_usize("k")?;
            check_k(&parsed, k, d)?;
            let scaled = !parsed.take_flag("unscaled")?;
            if !parsed.take_flag("shared")? {
                return Err(not_summable(spec, "its indices are private to each worker; add ',shared'"));
            }
            Box::new(SharedRandK::new(parsed.text(), d, k, scaled))
        }
        "identity" => Box::new(SharedRandK::new(parsed.text(), d, d, true)),
        _ => return Err(not_summable(spec, "each worker's message has its own support")),
    };
    parsed.finish()?;
    Ok(c)
}

/// True when a SPEC names a shared-support compressor (used to pick the collective).
pub fn is_shared(spec: &str) -> bool {
    Spec::parse(spec).is_ok_and(|mut s| s.take_flag("shared").unwrap_or(true))
}

fn not_summable(spec: &str, why: &str) -> Error {
    Error::config(
        format!("'{spec}' cannot go through --collective allreduce: {why}"),
        "use --collective allgather, or a summable compressor (rand-k:k=K,shared; clt-k with \
         --method scalecom; sketch with --method sketched-sgd)",
    )
}

/// Rand-k with indices from the shared stream (§1.2): all workers pick the same k
/// coordinates, so only the values travel, and they can be summed. Scaled by d/k
/// (unbiased, ω = d/k − 1) unless `unscaled` (contractive, α = k/d). Paper bits:
/// 32k values + 32 for the seed that replaces the indices (§1.2 "or 32 if indices are
/// regenerated from a shared seed"). With k = d it is the identity (no randomness used).
pub struct SharedRandK {
    spec: String,
    d: usize,
    k: usize,
    factor: f64,
    scaled: bool,
    sampler: SubsetSampler,
}

impl SharedRandK {
    pub fn new(spec: &str, d: usize, k: usize, scaled: bool) -> Self {
        let factor = if scaled { d as f64 / k as f64 } else { 1.0 };
        SharedRandK { spec: spec.to_string(), d, k, factor, scaled, sampler: SubsetSampler::new(d, k) }
    }

    fn support(&self) -> impl Iterator<Item = usize> + '_ {
        let all = self.k == self.d;
        let chosen = self.sampler.current();
        (0..self.k).map(move |i| if all { i } else { chosen[i] as usize })
    }
}

impl Summable for SharedRandK {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        if self.scaled {
            Class::Unbiased { omega: self.factor - 1.0 }
        } else {
            Class::Contractive { alpha: self.k as f64 / self.d as f64 }
        }
    }

    fn values_per_worker(&self) -> usize {
        self.k
    }

    fn begin_round(&mut self, shared: &mut Stream) {
        if self.k < self.d {
            self.sampler.draw(shared);
        }
    }

    fn project(&self, x: &[f64], values: &mut [f64]) {
        for (v, j) in values.iter_mut().zip(self.support()) {
            // Rounded to f32 like every value on the wire (§0.6), so allgather and
            // allreduce give the same compressed vectors.
            *v = (x[j] * self.factor) as f32 as f64;
        }
    }

    fn add_expanded(&self, values: &[f64], scale: f64, acc: &mut [f64]) {
        for (v, j) in values.iter().zip(self.support()) {
            acc[j] += scale * v;
        }
    }

    fn paper_bits(&self) -> u64 {
        if self.k == self.d {
            32 * self.d as u64
        } else {
            32 * self.k as u64 + 32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{self, Purpose};

    /// Sums of projections equal the projection of the sum on the shared support
    /// (exactly, for values that are exact in f32), and workers agree on the support.
    #[test]
    fn shared_supports_make_projections_additive() {
        let d = 50;
        let mut a = build_summable("rand-k:k=7,shared,unscaled", d).unwrap();
        let mut b = build_summable("rand-k:k=7,shared,unscaled", d).unwrap();
        let (mut ra, mut rb) = (rng::shared(3, Purpose::Server), rng::shared(3, Purpose::Server));
        let x: Vec<f64> = (0..d).map(|j| j as f64 * 0.25 - 3.0).collect();
        let y: Vec<f64> = (0..d).map(|j| (j % 7) as f64).collect();
        for _ in 0..20 {
            a.begin_round(&mut ra);
            b.begin_round(&mut rb);
            let (mut va, mut vb, mut vs) = (vec![0.0; 7], vec![0.0; 7], vec![0.0; 7]);
            a.project(&x, &mut va);
            b.project(&y, &mut vb);
            let sum: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p + q).collect();
            a.project(&sum, &mut vs);
            let added: Vec<f64> = va.iter().zip(&vb).map(|(p, q)| p + q).collect();
            assert_eq!(added, vs);
            let (mut ea, mut eb) = (vec![0.0; d], vec![0.0; d]);
            a.add_expanded(&va, 1.0, &mut ea);
            b.add_expanded(&va, 1.0, &mut eb);
            assert_eq!(ea, eb, "both workers expand onto the same support");
            assert_eq!(ea.iter().filter(|v| **v != 0.0).count(), va.iter().filter(|v| **v != 0.0).count());
        }
    }

    /// Unbiasedness of the scaled shared rand-k over rounds (§0.5 recipe, N = 20000).
    #[test]
    fn scaled_shared_rand_k_is_unbiased() {
        let d = 20;
        let n = 20_000;
        let mut c = build_summable("rand-k:k=4,shared", d).unwrap();
        let mut shared = rng::shared(11, Purpose::Server);
        let x: Vec<f64> = (0..d).map(|j| ((j * 7919) % 13) as f64 - 6.0).collect();
        let norm2: f64 = x.iter().map(|v| v * v).sum();
        let mut mean = vec![0.0; d];
        let mut var = 0.0;
        let mut values = vec![0.0; 4];
        for _ in 0..n {
            c.begin_round(&mut shared);
            c.project(&x, &mut values);
            let mut q = vec![0.0; d];
            c.add_expanded(&values, 1.0, &mut q);
            var += q.iter().zip(&x).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / n as f64;
            mean.iter_mut().zip(&q).for_each(|(m, v)| *m += v / n as f64);
        }
        let bias: f64 = mean.iter().zip(&x).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
        assert!(bias <= 5.0 * (var / n as f64).sqrt(), "bias {bias}");
        let omega = d as f64 / 4.0 - 1.0;
        // §1.2: the variance equals (d/k − 1)‖x‖² in expectation.
        assert!(
            (var - omega * norm2).abs() <= 5.0 / (n as f64).sqrt() * omega * norm2 * 2.0,
            "{var} vs {}",
            omega * norm2
        );
    }

    #[test]
    fn non_summable_specs_are_rejected_with_the_fix() {
        for spec in ["top-k:k=3", "rand-k:k=3", "qsgd:s=2"] {
            let e = build_summable(spec, 10).err().unwrap().to_string();
            assert!(e.contains("cannot go through --collective allreduce") && e.contains("allgather"), "{e}");
        }
        assert!(build_summable("rand-k:k=11,shared", 10).is_err());
    }
}
