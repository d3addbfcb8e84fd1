//! Count Sketch (ALGORITHMS.md §C.1; reference `csvec.py::CSVec`).
//!
//! r rows × c columns. Row ρ has a bucket hash h_ρ(j) = ((a·j + b) mod P) mod c
//! (2-wise independent) and a sign hash s_ρ(j) = ((((h1·j + h2)·j + h3)·j + h4) mod P)
//! mod 2 → ±1 (4-wise), P = 2⁶¹ − 1, evaluated like the reference code: wrapping i64
//! products and a non-negative remainder. The hash parameters come from the shared
//! stream, so every rank builds the same hashes and sketches are summable:
//! S(a) + S(b) = S(a + b). Hash values are precomputed per (row, coordinate), so
//! sketching and estimating are a table walk.
//!
//! Estimate v̂_j = median_ρ s_ρ(j)·T[ρ, h_ρ(j)] (lower middle for even r, as
//! `torch.median`). Per row, Σ_c T[ρ,c]² is unbiased for ‖v‖².
//!
//! As a registered compressor, SPEC `sketch:rows=R,cols=C` (`--method sketched-sgd`
//! unsketches it; its k and p2 are that method's keys):
//! * Class: one row (r = 1) is unbiased, E‖v̂ − v‖² = (d − 1)‖v‖²/c (each other
//!   coordinate collides with probability 1/c, with a random sign), so ω = (d − 1)/c;
//!   r > 1 rows read by medians have no variance class, only the ∞-norm bound of §C.1.
//! * Randomness: the hashes, from the shared stream of `--seed`, once; none per message.
//! * Wire: the r·c table as f32, row-major, little-endian; 4rc bytes. Sketched-SGD sums
//!   tables in f64 through an allreduce instead.
//! * Paper bits: 32rc.

use super::wire::{expect_dim, expect_len, put_f32};
use super::{Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::{self, Purpose, Stream};
use rand::Rng;

const NAME: &str = "sketch";

const PRIME: i64 = (1 << 61) - 1;
/// Rows are capped so the median can be taken in a stack buffer.
pub const MAX_ROWS: usize = 64;

pub struct CountSketch {
    spec: String,
    rows: usize,
    cols: usize,
    d: usize,
    /// buckets[ρ·d + j] = h_ρ(j).
    buckets: Vec<u32>,
    /// signs[ρ·d + j] = s_ρ(j) ∈ {−1, +1}.
    signs: Vec<i8>,
    /// The f64 table of the last standalone `encode`.
    scratch: Vec<f64>,
}

impl CountSketch {
    /// `sketch:rows=R,cols=C`, with hashes from the shared stream of `seed`.
    pub fn from_spec(spec: &mut Spec, d: usize, seed: u64) -> Result<Self> {
        let (rows, cols) = (spec.take_usize("rows")?, spec.take_usize("cols")?);
        if !(1..=MAX_ROWS).contains(&rows) || cols == 0 {
            return Err(Error::config(
                format!("compressor '{}': a {rows} × {cols} sketch", spec.text()),
                format!("choose 1 ≤ rows ≤ {MAX_ROWS} (odd, e.g. 5) and cols ≥ 1"),
            ));
        }
        let mut sketch = CountSketch::new(rows, cols, d, &mut rng::shared(seed, Purpose::SketchHashes));
        sketch.spec = spec.text().to_string();
        Ok(sketch)
    }

    /// Draws the hash functions from `shared` (every rank must pass the same stream).
    pub fn new(rows: usize, cols: usize, d: usize, shared: &mut Stream) -> Self {
        assert!((1..=MAX_ROWS).contains(&rows) && cols >= 1, "sketch size checked by the caller");
        let mut buckets = Vec::with_capacity(rows * d);
        let mut signs = Vec::with_capacity(rows * d);
        for _ in 0..rows {
            let h: [i64; 6] = std::array::from_fn(|_| shared.random_range(0..PRIME));
            for j in 0..d as i64 {
                let bucket = (h[0].wrapping_mul(j).wrapping_add(h[1])).rem_euclid(PRIME).rem_euclid(cols as i64);
                let poly = h[2]
                    .wrapping_mul(j)
                    .wrapping_add(h[3])
                    .wrapping_mul(j)
                    .wrapping_add(h[4])
                    .wrapping_mul(j)
                    .wrapping_add(h[5]);
                buckets.push(bucket as u32);
                signs.push(if poly.rem_euclid(PRIME).rem_euclid(2) == 1 { 1 } else { -1 });
            }
        }
        CountSketch {
            spec: format!("sketch:rows={rows},cols={cols}"),
            rows,
            cols,
            d,
            buckets,
            signs,
            scratch: Vec::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Length of a table: r·c.
    pub fn table_len(&self) -> usize {
        self.rows * self.cols
    }

    /// table += scale · S(v).
    pub fn add(&self, v: &[f64], scale: f64, table: &mut [f64]) {
        for r in 0..self.rows {
            let row = &mut table[r * self.cols..(r + 1) * self.cols];
            let (b, s) = (&self.buckets[r * self.d..(r + 1) * self.d], &self.signs[r * self.d..(r + 1) * self.d]);
            for ((&vj, &bj), &sj) in v.iter().zip(b).zip(s) {
                if vj != 0.0 {
                    row[bj as usize] += scale * f64::from(sj) * vj;
                }
            }
        }
    }

    /// v̂_j for every coordinate.
    pub fn estimate_all(&self, table: &[f64], out: &mut [f64]) {
        self.estimate_each(|r| &table[r * self.cols..(r + 1) * self.cols], |j, v| out[j] = v);
    }

    /// Calls `emit(j, v̂_j)` for every coordinate, reading row r of the table as
    /// `row(r)[c]`.
    fn estimate_each<'t, T: Copy + Into<f64> + 't>(
        &self,
        row: impl Fn(usize) -> &'t [T],
        mut emit: impl FnMut(usize, f64),
    ) {
        let mut buf = [0.0f64; MAX_ROWS];
        // Per-row slices on the stack: this runs every round, so it must not allocate.
        let slices = |r: usize| {
            let r = r.min(self.rows - 1);
            let span = r * self.d..(r + 1) * self.d;
            (&self.buckets[span.clone()], &self.signs[span], row(r))
        };
        let rows: [(&[u32], &[i8], &[T]); MAX_ROWS] = std::array::from_fn(slices);
        for j in 0..self.d {
            for (slot, (b, s, t)) in buf[..self.rows].iter_mut().zip(&rows) {
                *slot = f64::from(s[j]) * t[b[j] as usize].into();
            }
            emit(j, lower_median(&mut buf[..self.rows]));
        }
    }

    /// median_ρ Σ_c T[ρ,c]²: the reference code's estimate of ‖v‖² (its `l2estimate`
    /// returns the square root).
    pub fn norm_sq_estimate(&self, table: &[f64]) -> f64 {
        let mut buf = [0.0f64; MAX_ROWS];
        for (r, slot) in buf[..self.rows].iter_mut().enumerate() {
            *slot = table[r * self.cols..(r + 1) * self.cols].iter().map(|t| t * t).sum();
        }
        lower_median(&mut buf[..self.rows])
    }

    /// Σ_c T[ρ,c]² of one row (unbiased for ‖v‖²).
    pub fn row_norm_sq(&self, table: &[f64], row: usize) -> f64 {
        table[row * self.cols..(row + 1) * self.cols].iter().map(|t| t * t).sum()
    }
}

impl Compressor for CountSketch {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        if self.rows == 1 {
            Class::Unbiased { omega: (self.d as f64 - 1.0) / self.cols as f64 }
        } else {
            Class::Sketch { rows: self.rows, cols: self.cols }
        }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], _rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{NAME}: encoding a vector of the wrong dimension");
        // Summed in f64 (reused scratch), rounded to f32 once per entry.
        let mut table = std::mem::take(&mut self.scratch);
        table.clear();
        table.resize(self.table_len(), 0.0);
        self.add(x, 1.0, &mut table);
        out.clear();
        out.reserve(4 * table.len());
        table.iter().for_each(|&t| put_f32(out, t as f32));
        self.scratch = table;
    }

    /// acc += scale · v̂ from the table in `msg`. (The standalone form; Sketched-SGD
    /// estimates from its f64 table and never allocates per round.)
    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(NAME, acc, self.d)?;
        expect_len(NAME, msg, 4 * self.table_len())?;
        let table: Vec<f32> = msg.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        self.estimate_each(|r| &table[r * self.cols..(r + 1) * self.cols], |j, v| acc[j] += scale * v);
        Ok(())
    }

    fn paper_bits(&self, _msg: &[u8]) -> u64 {
        32 * self.table_len() as u64
    }

    fn only_for_method(&self) -> Option<&'static str> {
        Some("sketched-sgd")
    }
}

/// The lower middle value (the median for odd lengths). It runs once per coordinate per
/// round: r = 3 and r = 5 (the papers' choice) use branch-free min/max networks, other r
/// an insertion sort.
fn lower_median(v: &mut [f64]) -> f64 {
    match *v {
        [a, b, c] => return a.min(b).max(a.max(b).min(c)),
        [a, b, c, d, e] => return median5(a, b, c, d, e),
        _ => {}
    }
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && v[j - 1] > v[j] {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
    v[(v.len() - 1) / 2]
}

/// Median of five by a min/max network (Paeth's construction): order the pairs (a,b)
/// and (c,d), drop the smaller of their minima and the larger of their maxima, which
/// cannot be the median, and take the median of the remaining three.
fn median5(a: f64, b: f64, c: f64, d: f64, e: f64) -> f64 {
    let (a, b) = (a.min(b), a.max(b));
    let (c, d) = (c.min(d), c.max(d));
    // The smaller of the two minima is below three other values: not the median.
    let (lo, hi_pair) = if a < c { (b, (c, d)) } else { (d, (a, b)) };
    // Now lo pairs with e; the median is the second smallest of {lo, e} ∪ hi_pair.
    let (x, y) = (lo.min(e), lo.max(e));
    let (p, q) = hi_pair;
    // Drop the smaller of the two minima (x or p) again: the median is then the minimum
    // of the larger minimum and the two remaining maxima's smaller.
    if x < p {
        y.min(p)
    } else {
        x.min(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{self, Purpose};
    use rand::Rng;

    /// The networks agree with sorting on every ordering of distinct and tied values.
    #[test]
    fn small_medians_match_sorting() {
        let mut rng = rng::private(1, 0, Purpose::Compressor);
        for _ in 0..20_000 {
            for r in [3usize, 5] {
                let v: Vec<f64> = (0..r).map(|_| (rng.random_range(0..4) as f64) - 1.5).collect();
                let mut sorted = v.clone();
                sorted.sort_by(f64::total_cmp);
                assert_eq!(lower_median(&mut v.clone()), sorted[(r - 1) / 2], "{v:?}");
            }
        }
    }

    fn sketch(rows: usize, cols: usize, d: usize, seed: u64) -> CountSketch {
        CountSketch::new(rows, cols, d, &mut rng::shared(seed, Purpose::SketchHashes))
    }

    /// S(a) + S(b) = S(a + b) exactly (integer-valued vectors, so no rounding).
    #[test]
    fn sketches_are_linear() {
        let cs = sketch(5, 16, 200, 1);
        let a: Vec<f64> = (0..200).map(|j| (j % 9) as f64 - 4.0).collect();
        let b: Vec<f64> = (0..200).map(|j| ((j * 7) % 5) as f64).collect();
        let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let (mut ta, mut tb, mut ts) = (vec![0.0; 80], vec![0.0; 80], vec![0.0; 80]);
        cs.add(&a, 1.0, &mut ta);
        cs.add(&b, 1.0, &mut tb);
        cs.add(&sum, 1.0, &mut ts);
        let added: Vec<f64> = ta.iter().zip(&tb).map(|(x, y)| x + y).collect();
        assert_eq!(added, ts);
    }

    /// Same seed, same hashes: what makes the sketches of different ranks summable.
    #[test]
    fn hashes_depend_only_on_the_shared_seed() {
        let (a, b) = (sketch(3, 10, 50, 9), sketch(3, 10, 50, 9));
        assert_eq!(a.buckets, b.buckets);
        assert_eq!(a.signs, b.signs);
        assert!(a.buckets.iter().all(|&h| (h as usize) < 10));
        assert_ne!(a.buckets, sketch(3, 10, 50, 10).buckets);
    }

    /// A k-sparse vector is recovered exactly when its coordinates do not collide
    /// (c ≫ k; with this seed no row has a collision that the median cannot outvote).
    #[test]
    fn sparse_vectors_are_recovered_exactly() {
        let d = 1000;
        let cs = sketch(5, 500, d, 4);
        let mut v = vec![0.0; d];
        for (i, j) in [3usize, 77, 400, 401, 999].iter().enumerate() {
            v[*j] = (i as f64 + 1.0) * if i % 2 == 0 { 1.0 } else { -2.5 };
        }
        let mut t = vec![0.0; cs.table_len()];
        cs.add(&v, 1.0, &mut t);
        let mut est = vec![0.0; d];
        cs.estimate_all(&t, &mut est);
        assert_eq!(est, v);
    }

    /// §C.1: per coordinate, P(|v̂_j − v_j| > 2‖v‖/√c) ≤ e^{−r/8}. Monte-Carlo over 200
    /// hash draws × d coordinates of a vector with 5 heavy coordinates; the failure rate
    /// must stay below the bound plus 5 standard errors of the estimated rate. With
    /// r = 41 rows the bound (0.006) is below the share of heavy coordinates (5/300), so
    /// an estimator that misses them — one returning 0 everywhere — fails this test.
    #[test]
    fn estimates_meet_the_heavy_hitter_bound() {
        let (d, rows, cols, trials) = (300, 41, 40, 200);
        let mut data = rng::private(5, 0, Purpose::Compressor);
        let v: Vec<f64> = (0..d).map(|j| if j < 5 { 20.0 } else { data.random::<f64>() - 0.5 }).collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let threshold = 2.0 * norm / (cols as f64).sqrt();
        let heavy = v.iter().filter(|x| x.abs() > threshold).count();
        let mut failures = 0usize;
        for seed in 0..trials {
            let cs = sketch(rows, cols, d, 100 + seed);
            let mut t = vec![0.0; cs.table_len()];
            cs.add(&v, 1.0, &mut t);
            let mut est = vec![0.0; d];
            cs.estimate_all(&t, &mut est);
            failures += est.iter().zip(&v).filter(|(e, x)| (*e - *x).abs() > threshold).count();
        }
        let n = (d * trials as usize) as f64;
        let bound = (-(rows as f64) / 8.0).exp();
        let allowed = bound + 5.0 * (bound * (1.0 - bound) / n).sqrt();
        assert!(heavy as f64 / d as f64 > allowed, "the test vector must have detectable heavy coordinates");
        let rate = failures as f64 / n;
        assert!(rate <= allowed, "failure rate {rate} vs bound {bound}");
    }

    /// Each row's Σ_c T² is unbiased for ‖v‖² (§C.1): mean over 4000 hash draws within 5
    /// standard errors.
    #[test]
    fn row_norm_estimate_is_unbiased() {
        let d = 64;
        let v: Vec<f64> = (0..d).map(|j| ((j * 37) % 11) as f64 - 5.0).collect();
        let norm_sq: f64 = v.iter().map(|x| x * x).sum();
        let n = 4000;
        let (mut mean, mut sq) = (0.0, 0.0);
        for seed in 0..n {
            let cs = sketch(1, 8, d, 10_000 + seed);
            let mut t = vec![0.0; 8];
            cs.add(&v, 1.0, &mut t);
            let e = cs.row_norm_sq(&t, 0);
            mean += e / n as f64;
            sq += e * e / n as f64;
        }
        let se = ((sq - mean * mean) / n as f64).sqrt();
        assert!((mean - norm_sq).abs() <= 5.0 * se, "mean {mean} vs ‖v‖² {norm_sq} (se {se})");
    }
}
