//! The sparse payload shared by top-k and rand-k: k values, then their k indices.
//!
//! Spec: ../shared/ALGORITHMS.md §1.2 and §1.3 ("k·32 values + k·⌈log₂ d⌉ indices").
//!
//! Wire layout (little-endian) for k kept coordinates out of d, with b = ⌈log₂ d⌉:
//! * bytes 0..4k: the k values as f32, in increasing index order;
//! * then ⌈k·b/8⌉ bytes: the k indices, each in b bits, packed least-significant bit
//!   first (`wire::BitWriter`), the last byte zero-padded. b = 0 when d = 1: the one
//!   index is implied.
//!
//! Total 4k + ⌈k·b/8⌉ bytes; paper bits k(32 + ⌈log₂ d⌉).
//!
//! Indices are strictly increasing. That makes each message canonical and lets the
//! decoder reject duplicated or reordered indices with one comparison per index.

use super::wire::{ceil_log2, expect_dim, expect_len, packed_len, put_f32, BitReader, BitWriter, Reader};
use super::{check_k, Spec};
use crate::error::{Error, Result};

/// The sparse format for one (d, k); the compressor that owns it chooses the indices.
pub struct SparseFormat {
    name: &'static str,
    d: usize,
    k: usize,
    index_bits: u32,
}

impl SparseFormat {
    /// Checks 1 ≤ k ≤ d, and that every index fits the u32 the bit packer takes.
    pub fn new(name: &'static str, spec: &Spec, d: usize, k: usize) -> Result<Self> {
        check_k(spec, k, d)?;
        if d > u32::MAX as usize {
            return Err(Error::config(
                format!("compressor '{}': d = {d} coordinates do not fit 32-bit indices", spec.text()),
                "use a dense compressor (identity, qsgd, natural) for this model",
            ));
        }
        Ok(SparseFormat { name, d, k, index_bits: ceil_log2(d as u64) })
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn wire_bytes(&self) -> usize {
        4 * self.k + packed_len(self.k, self.index_bits)
    }

    pub fn paper_bits(&self) -> u64 {
        self.k as u64 * (32 + self.index_bits as u64)
    }

    /// Clears `out` and writes `value(j)` for each of the k strictly increasing `indices`.
    pub fn write(&self, indices: &[u32], value: impl Fn(usize) -> f32, out: &mut Vec<u8>) {
        debug_assert_eq!(indices.len(), self.k);
        debug_assert!(indices.windows(2).all(|w| w[0] < w[1]));
        out.clear();
        out.reserve(self.wire_bytes());
        for &j in indices {
            put_f32(out, value(j as usize));
        }
        let mut bits = BitWriter::new(out);
        for &j in indices {
            bits.put(j, self.index_bits);
        }
        bits.finish();
    }

    /// acc += scale · (the sparse vector in `msg`). Rejects a wrong length, an index ≥ d
    /// and indices that are not strictly increasing.
    pub fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(self.name, acc, self.d)?;
        expect_len(self.name, msg, self.wire_bytes())?;
        let mut r = Reader::new(msg, self.name);
        let mut values = Reader::new(r.take(4 * self.k)?, self.name);
        let mut indices = BitReader::new(r.take(packed_len(self.k, self.index_bits))?);
        r.finish()?;
        // The smallest index the next field may hold: strictly increasing, below d.
        let mut lowest = 0;
        for i in 0..self.k {
            let j = indices.get(self.index_bits) as usize;
            if j < lowest || j >= self.d {
                let (d, name) = (self.d, self.name);
                let what = format!("index #{i} is {j}, expected {lowest}..{d} (increasing, below d)");
                return Err(Error::wire(name, what));
            }
            lowest = j + 1;
            acc[j] += scale * values.f32()? as f64;
        }
        Ok(())
    }
}
