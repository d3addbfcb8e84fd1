//! Top-k: keeps the k coordinates of largest magnitude.
//!
//! Spec: ../shared/ALGORITHMS.md §1.3. SPEC: `top-k:k=K[,sampled]` with 1 ≤ K ≤ d.
//!
//! * Definition: C(x) keeps the k largest |x_j| and zeros the rest. Ties go to the lowest
//!   index (§0.5), so the selection is a total order: |x| descending (`f64::total_cmp`,
//!   which also places NaN above every number), then index ascending. Deterministic.
//! * Class: contractive with α = k/d; ‖C(x) − x‖² ≤ (1 − k/d)‖x‖² holds for every x,
//!   not only in expectation (§1.3).
//! * `sampled`: DGC's selection (Lin et al., "Deep gradient compression", ICLR 2018, §3
//!   "Implementing DGC"): the threshold is estimated from a sample of |x| (1 % of d, at
//!   least 64, drawn with replacement from the worker's stream), every coordinate at or
//!   above it becomes a candidate, and the exact top-k of the candidates is sent. The
//!   sample aims at 2k candidates; when fewer than k pass, the selection falls back to the
//!   full one. Either way the message is exactly the top-k one: the k largest all pass a
//!   threshold that at least k coordinates pass. Only the work differs (one comparison
//!   per coordinate, and a partition of ~2k candidates instead of d).
//! * Randomness: none, except `sampled`'s sample positions (which never change the message).
//! * Wire: the sparse payload of [`super::sparse`]: k f32 values, then the k increasing
//!   indices in ⌈log₂ d⌉ bits each; 4k + ⌈k⌈log₂ d⌉/8⌉ bytes.
//! * Paper bits: k(32 + ⌈log₂ d⌉).

use rand::Rng;

use super::sparse::SparseFormat;
use super::{Class, Compressor, Spec};
use crate::error::Result;
use crate::rng::Stream;

const NAME: &str = "top-k";

pub struct TopK {
    spec: String,
    d: usize,
    format: SparseFormat,
    /// Coordinate indices, reordered by every selection; kept to avoid reallocating.
    order: Vec<u32>,
    /// `sampled`: the |x_j| of the threshold's sample (scratch), else None.
    sample: Option<Vec<f64>>,
}

impl TopK {
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        let mut top_k = TopK::named(NAME, spec, d)?;
        top_k.sample = spec.take_flag("sampled")?.then(|| Vec::with_capacity(sample_size(d)));
        Ok(top_k)
    }

    /// Top-k under another compressor's name (in its wire errors): CLT-k's leader alone.
    pub fn named(name: &'static str, spec: &mut Spec, d: usize) -> Result<Self> {
        let k = spec.take_usize("k")?;
        let format = SparseFormat::new(name, spec, d, k)?;
        Ok(TopK { spec: spec.text().to_string(), d, format, order: Vec::with_capacity(d), sample: None })
    }

    pub fn k(&self) -> usize {
        self.format.k()
    }

    /// [`Compressor::encode`], returning the k indices sent (DGC masks them).
    ///
    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    pub fn encode_support(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) -> &[u32] {
        assert_eq!(x.len(), self.d, "{NAME}: encoding a vector of the wrong dimension");
        let k = self.format.k();
        let top = match &mut self.sample {
            Some(sample) => select_sampled(&mut self.order, sample, x, k, rng),
            None => select_top_k(&mut self.order, x, k),
        };
        self.format.write(top, |j| x[j] as f32, out);
        top
    }
}

/// The sample size of `sampled`: 1 % of d, at least 64.
fn sample_size(d: usize) -> usize {
    (d / 100).max(64)
}

/// DGC's sampled selection (module docs): the same indices as [`select_top_k`].
fn select_sampled<'a>(
    order: &'a mut Vec<u32>,
    sample: &mut Vec<f64>,
    x: &[f64],
    k: usize,
    rng: &mut Stream,
) -> &'a [u32] {
    let (d, m) = (x.len(), sample_size(x.len()));
    if m >= d || 2 * k >= d {
        return select_top_k(order, x, k);
    }
    sample.clear();
    sample.extend((0..m).map(|_| x[rng.random_range(0..d)].abs()));
    // The sample's (2k·m/d)-th largest |x_j| lets through about 2k coordinates.
    let rank = (2 * k * m / d).clamp(1, m);
    let threshold = *sample.select_nth_unstable_by(rank - 1, |a, b| b.total_cmp(a)).1;
    order.clear();
    order.extend((0..d as u32).filter(|&j| x[j as usize].abs().total_cmp(&threshold).is_ge()));
    if order.len() < k {
        return select_top_k(order, x, k);
    }
    top_of(order, x, k)
}

/// The k indices of largest |x_j| (ties → lowest index), in increasing order; `order`
/// is reusable scratch. Shared with ScaleCom's leader selection (CLT-k, §E.1) and
/// Sketched-SGD.
///
/// Large vectors go through [`select_by_histogram`] (two streaming passes over x);
/// small ones through `select_nth_unstable_by`, which partitions in O(d) on average but
/// with a comparison, a gather and an unpredictable branch per step.
pub fn select_top_k<'a>(order: &'a mut Vec<u32>, x: &[f64], k: usize) -> &'a [u32] {
    if x.len() >= HISTOGRAM_MIN_D && k < x.len() {
        return select_by_histogram(order, x, k);
    }
    order.clear();
    order.extend(0..x.len() as u32);
    top_of(order, x, k)
}

/// The selection's order on |x_j| as an integer: clearing the sign bit gives |x_j|, and
/// on non-negative floats `f64::total_cmp` is the order of the bit patterns (NaN above
/// +∞), so comparing keys is comparing magnitudes exactly as [`top_of`] does.
#[inline(always)]
fn magnitude_key(v: f64) -> u64 {
    v.to_bits() & !(1 << 63)
}

/// Histogram buckets: the key's top 16 bits, whose first is the cleared sign bit, so
/// 2¹⁵ buckets: the 11 exponent bits and 4 mantissa bits (16 buckets per binade).
const BUCKET_SHIFT: u32 = 48;
const BUCKETS: usize = 1 << 15;
/// Interleaved histograms of pass 1 (4 × 128 KiB, within L2), from this length on.
const HISTOGRAMS: usize = 4;
const INTERLEAVE_MIN_D: usize = 1 << 18;

/// From this length on the histogram's fixed cost (2¹⁵ counters, 128 KiB) is small
/// against a partition of the whole vector (measured in `benches/throughput.rs`).
const HISTOGRAM_MIN_D: usize = 1 << 15;

#[inline(always)]
fn bucket_of(v: f64) -> usize {
    (magnitude_key(v) >> BUCKET_SHIFT) as usize & (BUCKETS - 1)
}

/// [`select_top_k`] by a histogram of the keys' top bits, for 1 ≤ k < d: pass 1 counts
/// the keys per bucket and finds the bucket b that holds the k-th largest; pass 2
/// collects, in index order, every j in a bucket ≥ b (the `above` ones above b all win;
/// b's members are about d/2¹⁵ per binade-sixteenth, a small fraction). The winners in b
/// are b's `need` = k − above largest: their threshold T comes from a partition of b's
/// members alone, and one pass over the candidates keeps key > T, and key = T while
/// ties remain (lowest index first, since the candidates are in index order). The
/// result is the same index set as [`top_of`]'s, already in increasing order.
fn select_by_histogram<'a>(order: &'a mut Vec<u32>, x: &[f64], k: usize) -> &'a [u32] {
    debug_assert!(0 < k && k < x.len());
    // Pass 1: the histogram, kept in `order` itself (no second scratch buffer).
    count_buckets(order, x);
    let counts = &order[..BUCKETS];
    let (mut above, mut b) = (0usize, BUCKETS - 1);
    while above + (counts[b] as usize) < k {
        above += counts[b] as usize;
        b -= 1;
    }
    let in_b = counts[b] as usize;
    let need = k - above;

    // Pass 2: the candidates, in index order.
    order.clear();
    order.extend((0..x.len() as u32).filter(|&j| bucket_of(x[j as usize]) >= b));
    if in_b == need {
        return order;
    }

    // b's members after the candidates: the need-th largest of them is the threshold.
    let candidates = order.len();
    for i in 0..candidates {
        if bucket_of(x[order[i] as usize]) == b {
            order.push(order[i]);
        }
    }
    let members = &mut order[candidates..];
    let larger_first =
        |a: &u32, c: &u32| magnitude_key(x[*c as usize]).cmp(&magnitude_key(x[*a as usize])).then(a.cmp(c));
    members.select_nth_unstable_by(need - 1, larger_first);
    let threshold = magnitude_key(x[members[need - 1] as usize]);
    let mut ties = members[..need].iter().filter(|&&j| magnitude_key(x[j as usize]) == threshold).count();

    order.truncate(candidates);
    order.retain(|&j| {
        let key = magnitude_key(x[j as usize]);
        let keep = key > threshold || (key == threshold && ties > 0);
        ties -= usize::from(key == threshold && ties > 0);
        keep
    });
    debug_assert_eq!(order.len(), k);
    order
}

/// The bucket counts of `x` into `order[..BUCKETS]`. From [`INTERLEAVE_MIN_D`] on, four
/// interleaved histograms summed after: neighbouring coordinates of a real gradient often
/// share a bucket, and a single histogram then waits on its own store at every increment
/// (EF21's top-1 % at d = 10⁶: 3.6 → 2.6 ms per compress, BENCHMARKS.md). Below, zeroing
/// and summing the extra 384 KiB costs more than it saves.
fn count_buckets(order: &mut Vec<u32>, x: &[f64]) {
    order.clear();
    if x.len() < INTERLEAVE_MIN_D {
        order.resize(BUCKETS, 0);
        for &v in x {
            order[bucket_of(v)] += 1;
        }
        return;
    }
    order.resize(HISTOGRAMS * BUCKETS, 0);
    let (counts, others) = order.split_at_mut(BUCKETS);
    let (h1, rest) = others.split_at_mut(BUCKETS);
    let (h2, h3) = rest.split_at_mut(BUCKETS);
    let mut quads = x.chunks_exact(HISTOGRAMS);
    for q in quads.by_ref() {
        counts[bucket_of(q[0])] += 1;
        h1[bucket_of(q[1])] += 1;
        h2[bucket_of(q[2])] += 1;
        h3[bucket_of(q[3])] += 1;
    }
    for &v in quads.remainder() {
        counts[bucket_of(v)] += 1;
    }
    for (((c, &a), &b), &d) in counts.iter_mut().zip(&*h1).zip(&*h2).zip(&*h3) {
        *c += a + b + d;
    }
}

/// The k candidates in `order` of largest |x_j| (ties → lowest index), in increasing
/// order; `order` holds at least k candidates.
fn top_of<'a>(order: &'a mut [u32], x: &[f64], k: usize) -> &'a [u32] {
    let larger_first = |a: &u32, b: &u32| {
        let (ma, mb) = (x[*a as usize].abs(), x[*b as usize].abs());
        mb.total_cmp(&ma).then(a.cmp(b))
    };
    if k < order.len() {
        order.select_nth_unstable_by(k - 1, larger_first);
    }
    let top = &mut order[..k];
    top.sort_unstable();
    top
}

impl Compressor for TopK {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        Class::Contractive { alpha: self.format.k() as f64 / self.d as f64 }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        self.encode_support(x, rng, out);
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        self.format.decode_add(msg, scale, acc)
    }

    fn paper_bits(&self, _msg: &[u8]) -> u64 {
        self.format.paper_bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The partition-based selection, the reference for the histogram one.
    fn by_partition(x: &[f64], k: usize) -> Vec<u32> {
        let mut order: Vec<u32> = (0..x.len() as u32).collect();
        top_of(&mut order, x, k).to_vec()
    }

    /// The histogram selection against the partition one, on vectors whose structure
    /// stresses each of its branches: b's members all winning, a threshold with ties
    /// cut in the middle, one bucket holding everything, NaN, ±∞, ±0, subnormals.
    #[test]
    fn histogram_selection_equals_the_partition_one() {
        let mut failures = Vec::new();
        // One histogram, and the four interleaved ones (with a remainder of 3).
        for d in [HISTOGRAM_MIN_D + 123, INTERLEAVE_MIN_D + 3] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let gaussian: Vec<f64> = (0..d).map(|_| crate::rng::gaussian(&mut rng)).collect();
            // Few distinct magnitudes: long runs of ties inside one bucket.
            let coarse: Vec<f64> = (0..d).map(|_| f64::from(rng.random_range(-3i32..=3)) * 0.5).collect();
            let zeros = vec![0.0; d];
            let mut special = gaussian.clone();
            for (j, v) in [f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 5e-324, -5e-324, f64::MAX]
                .into_iter()
                .enumerate()
            {
                special[j * 997] = v;
            }
            // The last coordinates (the interleaved pass's remainder) carry the largest value.
            let mut last = gaussian.clone();
            last[d - 1] = 1e3;
            for (name, x) in [
                ("gaussian", &gaussian),
                ("coarse", &coarse),
                ("zeros", &zeros),
                ("special", &special),
                ("last", &last),
            ] {
                for k in [1, 2, 7, 100, d / 100, d / 3, d / 2, d - 1] {
                    let mut order = Vec::new();
                    let fast = select_by_histogram(&mut order, x, k).to_vec();
                    if fast != by_partition(x, k) {
                        failures.push(format!("d = {d}, {name}, k = {k}"));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "histogram selection differs on: {failures:?}");
    }
}
