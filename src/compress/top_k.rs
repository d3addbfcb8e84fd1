//! Top-k: keeps the k coordinates of largest magnitude.
//!
//! Spec: ../shared/ALGORITHMS.md §1.3. SPEC: `top-k:k=K` with 1 ≤ K ≤ d.
//!
//! * Definition: C(x) keeps the k largest |x_j| and zeros the rest. Ties go to the lowest
//!   index (§0.5), so the selection is a total order: |x| descending (`f64::total_cmp`,
//!   which also places NaN above every number), then index ascending. Deterministic.
//! * Class: contractive with α = k/d; ‖C(x) − x‖² ≤ (1 − k/d)‖x‖² holds for every x,
//!   not only in expectation (§1.3).
//! * Randomness: none.
//! * Wire: the sparse payload of [`super::sparse`]: k f32 values, then the k increasing
//!   indices in ⌈log₂ d⌉ bits each; 4k + ⌈k⌈log₂ d⌉/8⌉ bytes.
//! * Paper bits: k(32 + ⌈log₂ d⌉).

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
}

impl TopK {
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        TopK::named(NAME, spec, d)
    }

    /// Top-k under another compressor's name (in its wire errors): CLT-k's leader alone.
    pub fn named(name: &'static str, spec: &mut Spec, d: usize) -> Result<Self> {
        let k = spec.take_usize("k")?;
        let format = SparseFormat::new(name, spec, d, k)?;
        Ok(TopK { spec: spec.text().to_string(), d, format, order: Vec::with_capacity(d) })
    }

    pub fn k(&self) -> usize {
        self.format.k()
    }
}

/// The k indices of largest |x_j| (ties → lowest index), in increasing order; `order`
/// is reusable scratch. Shared with ScaleCom's leader selection (CLT-k, §E.1).
///
/// `select_nth_unstable_by` partitions in O(d) on average; only the k winners are sorted.
pub fn select_top_k<'a>(order: &'a mut Vec<u32>, x: &[f64], k: usize) -> &'a [u32] {
    order.clear();
    order.extend(0..x.len() as u32);
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
    fn encode(&mut self, x: &[f64], _rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{NAME}: encoding a vector of the wrong dimension");
        let top = select_top_k(&mut self.order, x, self.format.k());
        self.format.write(top, |j| x[j] as f32, out);
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        self.format.decode_add(msg, scale, acc)
    }

    fn paper_bits(&self, _msg: &[u8]) -> u64 {
        self.format.paper_bits()
    }
}
