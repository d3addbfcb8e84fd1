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

/// ⌈log₂ d⌉, the bits of one index, once d is known to fit the u32 the bit packer takes.
pub fn index_bits(spec: &Spec, d: usize) -> Result<u32> {
    if d > u32::MAX as usize {
        return Err(Error::config(
            format!("compressor '{}': d = {d} coordinates do not fit 32-bit indices", spec.text()),
            "use a dense compressor (identity, qsgd, natural) for this model",
        ));
    }
    Ok(ceil_log2(d as u64))
}

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
        Ok(SparseFormat { name, d, k, index_bits: index_bits(spec, d)? })
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
        out.clear();
        out.reserve(self.wire_bytes());
        append_payload(indices, self.index_bits, value, out);
    }

    /// acc += scale · (the sparse vector in `msg`). Rejects a wrong length, an index ≥ d
    /// and indices that are not strictly increasing.
    pub fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        expect_dim(self.name, acc, self.d)?;
        expect_len(self.name, msg, self.wire_bytes())?;
        let mut r = Reader::new(msg, self.name);
        let payload = Payload { name: self.name, d: self.d, index_bits: self.index_bits, k: self.k };
        payload.decode_add(&mut r, |j, v| acc[j] += scale * v)?;
        r.finish()
    }
}

/// Appends k values as f32, then their k strictly increasing indices in `index_bits` bits.
pub fn append_payload(indices: &[u32], index_bits: u32, value: impl Fn(usize) -> f32, out: &mut Vec<u8>) {
    debug_assert!(indices.windows(2).all(|w| w[0] < w[1]));
    for &j in indices {
        put_f32(out, value(j as usize));
    }
    let mut bits = BitWriter::new(out);
    for &j in indices {
        bits.put(j, index_bits);
    }
    bits.finish();
}

/// k values and their indices as [`append_payload`] writes them, inside a longer message.
pub struct Payload {
    pub name: &'static str,
    pub d: usize,
    pub index_bits: u32,
    pub k: usize,
}

impl Payload {
    /// Reads the payload from `r`, calling `add(j, value)` per entry; rejects an index ≥ d
    /// and indices that are not strictly increasing.
    pub fn decode_add(&self, r: &mut Reader, mut add: impl FnMut(usize, f64)) -> Result<()> {
        let mut values = Reader::new(r.take(4 * self.k)?, self.name);
        let mut indices = BitReader::new(r.take(packed_len(self.k, self.index_bits))?);
        let mut increasing = Increasing::new(self.name, self.d);
        for i in 0..self.k {
            let j = increasing.next(i, indices.get(self.index_bits) as usize)?;
            add(j, values.f32()? as f64);
        }
        Ok(())
    }
}

/// Checks that the indices of a message are strictly increasing and below d.
pub struct Increasing {
    name: &'static str,
    d: usize,
    /// The smallest index the next field may hold.
    lowest: usize,
}

impl Increasing {
    pub fn new(name: &'static str, d: usize) -> Self {
        Increasing { name, d, lowest: 0 }
    }

    /// Index #i of the message, j, if it is legal.
    pub fn next(&mut self, i: usize, j: usize) -> Result<usize> {
        if j < self.lowest || j >= self.d {
            let (d, lowest) = (self.d, self.lowest);
            let what = format!("index #{i} is {j}, expected {lowest}..{d} (increasing, below d)");
            return Err(Error::wire(self.name, what));
        }
        self.lowest = j + 1;
        Ok(j)
    }
}
