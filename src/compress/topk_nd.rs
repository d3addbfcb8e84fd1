//! Top-k ∘ natural dithering (Beznosikov et al.'s biased compressor), scaled by 1/ζ.
//!
//! Spec: ../shared/ALGORITHMS.md §1.10. SPEC: `topk-nd:k=K,s=S` with 1 ≤ K ≤ d, S ≥ 1.
//!
//! * Definition: C(x) = (1/ζ)·ND(Top_k(x)): the k coordinates of largest |x_j| (ties to the
//!   lowest index, as `top-k`), natural dithering (`nat-dither:s=S`, 2-norm) of that
//!   k-vector, scaled by 1/ζ with ζ = 1 + ω_ND(k), the dithering's ω at dimension k.
//! * Class: contractive with α = k/(d·ζ) (§1.10: (1/ζ)·U(ζ) ∘ B3(d/k) ⊂ B3(ζd/k)). The
//!   1/ζ scaling is the form the contraction theory covers; without it the composition
//!   is in general not contractive (ζ > 2 can make E‖C(x) − x‖² exceed ‖x‖²), so it is the
//!   only form offered here.
//! * Randomness: one uniform f64 per kept coordinate from the worker's private stream.
//! * Wire (little-endian): the dithering payload of the k values (bytes 0..4 the norm of
//!   the k-vector as f32 rounded up, then k fields of 1 + ⌈log₂(s+1)⌉ bits, see
//!   [`super::qsgd::Dithering`]), then the k increasing indices in ⌈log₂ d⌉ bits each:
//!   4 + ⌈k(1 + ⌈log₂(s+1)⌉)/8⌉ + ⌈k⌈log₂ d⌉/8⌉ bytes.
//! * Paper bits: 32 + k(⌈log₂ d⌉ + 1 + ⌈log₂(s+1)⌉) (§1.10, the zero level coded).

use super::nat_dither::{level_value, omega, round_to_level};
use super::qsgd::{Coding, Dithering, Norm};
use super::sparse::index_bits;
use super::top_k::select_top_k;
use super::wire::{ceil_log2, expect_dim, expect_len, packed_len, BitReader, BitWriter, Reader};
use super::{check_k, check_levels, Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::Stream;
use std::cell::RefCell;

const NAME: &str = "topk-nd";

pub struct TopKNatDither {
    spec: String,
    d: usize,
    k: usize,
    index_bits: u32,
    /// Natural dithering of the k kept values.
    levels: Dithering,
    /// 1/ζ.
    inverse_zeta: f64,
    /// Scratch, kept to avoid reallocating: the selection, the kept values, the
    /// dithering payload, and the decoded values.
    order: Vec<u32>,
    kept: Vec<f64>,
    payload: Vec<u8>,
    decoded: RefCell<Vec<f64>>,
}

impl TopKNatDither {
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        let k = spec.take_usize("k")?;
        check_k(spec, k, d)?;
        let s = spec.take_usize("s")?;
        check_levels(spec, s)?;
        Ok(TopKNatDither {
            spec: spec.text().to_string(),
            d,
            k,
            index_bits: index_bits(spec, d)?,
            levels: Dithering::new(NAME, k, s as u32, Norm::L2, Coding::Fixed),
            inverse_zeta: 1.0 / (1.0 + omega(k, s as u32)),
            order: Vec::with_capacity(d),
            kept: vec![0.0; k],
            payload: Vec::new(),
            decoded: RefCell::new(vec![0.0; k]),
        })
    }

    fn wire_bytes(&self) -> usize {
        self.levels.fixed_wire_bytes() + packed_len(self.k, self.index_bits)
    }
}

impl Compressor for TopKNatDither {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn class(&self) -> Class {
        Class::Contractive { alpha: self.k as f64 * self.inverse_zeta / self.d as f64 }
    }

    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        assert_eq!(x.len(), self.d, "{NAME}: encoding a vector of the wrong dimension");
        let bytes = self.wire_bytes();
        let top = select_top_k(&mut self.order, x, self.k);
        self.kept.iter_mut().zip(top).for_each(|(v, &j)| *v = x[j as usize]);
        let s = self.levels.s();
        self.levels.encode(&self.kept, rng, &mut self.payload, |y, u| round_to_level(s, y, u));
        out.clear();
        out.reserve(bytes);
        out.extend_from_slice(&self.payload);
        let mut bits = BitWriter::new(out);
        for &j in top {
            bits.put(j, self.index_bits);
        }
        bits.finish();
    }

    /// acc += scale·(1/ζ)·ND(values) at the message's indices. Rejects a wrong length, an
    /// index ≥ d and indices that are not strictly increasing.
    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(NAME, acc, self.d)?;
        expect_len(NAME, msg, self.wire_bytes())?;
        let mut r = Reader::new(msg, NAME);
        let payload = r.take(self.levels.fixed_wire_bytes())?;
        let mut indices = BitReader::new(r.take(packed_len(self.k, self.index_bits))?);
        r.finish()?;
        let mut decoded = self.decoded.borrow_mut();
        decoded.fill(0.0);
        let s = self.levels.s();
        self.levels.decode_add(payload, self.inverse_zeta, &mut decoded, |u| level_value(s, u))?;
        let mut lowest = 0;
        for (i, v) in decoded.iter().enumerate() {
            let j = indices.get(self.index_bits) as usize;
            if j < lowest || j >= self.d {
                return Err(Error::wire(
                    NAME,
                    format!("index #{i} is {j}, expected {lowest}..{} (increasing, below d)", self.d),
                ));
            }
            lowest = j + 1;
            acc[j] += scale * v;
        }
        Ok(())
    }

    fn paper_bits(&self, _msg: &[u8]) -> u64 {
        let k = self.k as u64;
        32 + k * (u64::from(self.index_bits) + 1 + u64::from(ceil_log2(u64::from(self.levels.s()) + 1)))
    }
}
