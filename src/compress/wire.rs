//! Byte- and bit-level encoding shared by every wire format.
//!
//! All multi-byte values are little-endian. Received bytes are read with
//! `from_le_bytes` (never `bytemuck::cast_slice`, which panics on misaligned input), and
//! every read is bounds-checked so a truncated or padded message is an `Error::Wire`,
//! never a panic.

use crate::error::{Error, Result};

/// ⌈log₂ n⌉ for n ≥ 1 (0 for n = 1): the bits of a fixed-length code for n symbols.
pub fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

/// The smallest f32 that is ≥ `v` (v ≥ 0, finite). Norms sent as f32 are rounded *up*
/// so that |x_j| / norm ≤ 1 still holds for the receiver's norm, which keeps the
/// stochastic-rounding compressors exactly unbiased with respect to the decoded value.
pub fn f32_round_up(v: f64) -> f32 {
    let r = v as f32;
    if (r as f64) < v {
        f32::from_bits(r.to_bits() + 1)
    } else {
        r
    }
}

/// The largest f32 that is ≤ `v` (v ≥ 0, finite): a grid step sent as f32 rounded *down*
/// keeps an error bound proportional to the step (the model quantizer, §B.2).
pub fn f32_round_down(v: f64) -> f32 {
    let r = v as f32;
    if (r as f64) > v {
        f32::from_bits(r.to_bits() - 1)
    } else {
        r
    }
}

/// `magnitude` with the sign of a field's sign bit (bit 0; the others are ignored):
/// −magnitude's bits for a set bit, so
/// the same value as a branch on the bit would give, without the branch that random
/// signs mispredict half the time.
#[inline]
pub fn with_sign_bit(magnitude: f64, sign_bit: u32) -> f64 {
    f64::from_bits(magnitude.to_bits() ^ (u64::from(sign_bit & 1) << 63))
}

pub fn put_f32(out: &mut Vec<u8>, v: f32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Fails unless `msg` is exactly `want` bytes long. Every qtrain wire format has a length
/// fixed by d and the compressor's parameters, so checking it first turns truncation
/// and padding into one clear message.
pub fn expect_len(compressor: &'static str, msg: &[u8], want: usize) -> Result<()> {
    if msg.len() == want {
        Ok(())
    } else {
        Err(Error::wire(compressor, format!("message has {} bytes, the format needs exactly {want}", msg.len())))
    }
}

/// Fails unless the accumulator has the dimension d the compressor was built for.
pub fn expect_dim(compressor: &'static str, acc: &[f64], d: usize) -> Result<()> {
    if acc.len() == d {
        Ok(())
    } else {
        Err(Error::wire(
            compressor,
            format!("decoding into a vector of length {}, but the compressor was built for d = {d}", acc.len()),
        ))
    }
}

/// A bounds-checked cursor over a received message.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    compressor: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], compressor: &'static str) -> Self {
        Reader { bytes, pos: 0, compressor }
    }

    /// The next `n` bytes, or an error naming how many were missing.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            self.error(format!(
                "truncated: needs {n} more bytes at offset {}, message has {}",
                self.pos,
                self.bytes.len()
            ))
        })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    pub fn f32(&mut self) -> Result<f32> {
        let b = self.take(4)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn f64(&mut self) -> Result<f64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }

    /// Fails unless the whole message was consumed: trailing bytes mean the sender and
    /// receiver disagree on the format.
    pub fn finish(self) -> Result<()> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(self.error(format!("{} trailing bytes after offset {}", self.bytes.len() - self.pos, self.pos)))
        }
    }

    pub fn error(&self, what: String) -> Error {
        Error::wire(self.compressor, what)
    }
}

/// Packs values of up to 32 bits, least-significant bit first, into whole bytes.
pub struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    filled: u32,
}

impl<'a> BitWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, filled: 0 }
    }

    /// Appends the low `bits` bits of `value` (bits ≤ 32).
    ///
    /// Whole 32-bit words leave the accumulator at once: one store per word instead of a
    /// push per byte (the dense quantizers' encode loop). Fewer than 32 bits are pending
    /// before a call, so `value << filled` fits the 64-bit accumulator.
    #[inline]
    pub fn put(&mut self, value: u32, bits: u32) {
        debug_assert!(bits <= 32 && (bits == 32 || value >> bits == 0));
        self.acc |= (value as u64) << self.filled;
        self.filled += bits;
        if self.filled >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.filled -= 32;
        }
    }

    /// Appends every field of `fields` (each below 2^bits, bits ≤ 32), as many `put`
    /// calls would. Widths that divide 32 are first gathered into whole words by
    /// constant shifts (no state carried from field to field, so the compiler unrolls
    /// or vectorizes it); one `put` per word then stores them.
    pub fn put_all(&mut self, fields: &[u32], bits: u32) {
        match bits {
            1 => self.put_words::<1>(fields),
            2 => self.put_words::<2>(fields),
            4 => self.put_words::<4>(fields),
            8 => self.put_words::<8>(fields),
            16 => self.put_words::<16>(fields),
            _ => fields.iter().for_each(|&field| self.put(field, bits)),
        }
    }

    fn put_words<const BITS: u32>(&mut self, fields: &[u32]) {
        let per_word = (32 / BITS) as usize;
        let mut groups = fields.chunks_exact(per_word);
        for group in &mut groups {
            let word = group.iter().enumerate().fold(0, |word, (i, &field)| word | field << (i as u32 * BITS));
            self.put(word, 32);
        }
        groups.remainder().iter().for_each(|&field| self.put(field, BITS));
    }

    /// Pads the last partial byte with 1 bits: a variable-length code whose every word
    /// contains a 0 (Elias-omega) can then tell padding from data.
    pub fn pad_with_ones(&mut self) {
        let pad = (8 - self.filled % 8) % 8;
        self.put((1 << pad) - 1, pad);
    }

    /// Flushes the pending bits, the last byte zero-padded.
    pub fn finish(self) {
        let bytes = self.filled.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
    }
}

/// Appends one bit per element of `items`, `bit(item)`, in the layout [`BitWriter`]
/// gives 1-bit fields (element 8j + i → bit i of byte j), a byte at a time: the 1-bit
/// codecs' hot loop, one store per eight elements instead of a shift and a test per bit.
pub fn pack_bits<T: Copy>(out: &mut Vec<u8>, items: &[T], bit: impl Fn(T) -> bool) {
    out.extend(
        items.chunks(8).map(|chunk| chunk.iter().enumerate().fold(0u8, |byte, (i, &v)| byte | (u8::from(bit(v)) << i))),
    );
}

/// Calls `f(target, bit)` for every element of `targets` with its bit in `bytes` (the
/// layout of [`pack_bits`]), a byte at a time. The caller checked that `bytes` holds
/// [`packed_len`]`(targets.len(), 1)` bytes.
pub fn for_each_bit<T>(bytes: &[u8], targets: &mut [T], mut f: impl FnMut(&mut T, bool)) {
    debug_assert!(bytes.len() >= packed_len(targets.len(), 1));
    for (chunk, &byte) in targets.chunks_mut(8).zip(bytes) {
        for (i, target) in chunk.iter_mut().enumerate() {
            f(target, (byte >> i) & 1 == 1);
        }
    }
}

/// `acc_j += v` with v's sign flipped where bit j of `bits` is set (the layout of
/// [`pack_bits`]): the decode of the 1-bit codecs. Flipping the sign bit gives exactly −v,
/// so this is `acc_j += if bit { -v } else { v }` bit for bit; an XOR with a sign mask from
/// a table (eight masks per byte value) leaves the loop without a per-element branch or
/// variable shift, so it vectorizes with the baseline x86-64 or aarch64 instructions.
/// The caller checked that `bits` holds [`packed_len`]`(acc.len(), 1)` bytes.
pub fn add_signed(bits: &[u8], v: f64, acc: &mut [f64]) {
    const fn sign_masks() -> [[u64; 8]; 256] {
        let mut masks = [[0; 8]; 256];
        let mut byte = 0;
        while byte < 256 {
            let mut i = 0;
            while i < 8 {
                masks[byte][i] = (((byte >> i) & 1) as u64) << 63;
                i += 1;
            }
            byte += 1;
        }
        masks
    }
    static SIGN_MASKS: [[u64; 8]; 256] = sign_masks();
    let v = v.to_bits();
    let (whole, tail) = acc.as_chunks_mut::<8>();
    for (chunk, &byte) in whole.iter_mut().zip(bits) {
        let masks = &SIGN_MASKS[byte as usize];
        for (a, mask) in chunk.iter_mut().zip(masks) {
            *a += f64::from_bits(v ^ mask);
        }
    }
    if let Some(&byte) = bits.get(whole.len()) {
        for (a, mask) in tail.iter_mut().zip(&SIGN_MASKS[byte as usize]) {
            *a += f64::from_bits(v ^ mask);
        }
    }
}

/// Bytes needed for `count` fields of `bits` bits each.
pub fn packed_len(count: usize, bits: u32) -> usize {
    (count * bits as usize).div_ceil(8)
}

/// Reads fields written by [`BitWriter`] from a slice whose length the caller checked
/// with [`packed_len`].
#[derive(Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    next: usize,
    acc: u64,
    filled: u32,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, next: 0, acc: 0, filled: 0 }
    }

    /// The next `bits`-bit field (bits ≤ 32). Reads past the end yield zero bits; the
    /// caller sized the slice with [`packed_len`], so that only happens in padding.
    #[inline]
    pub fn get(&mut self, bits: u32) -> u32 {
        if self.filled < bits {
            self.refill();
            // Past the end: the missing bits read as zeros and are not counted as left.
            self.filled = self.filled.max(bits);
        }
        let v = (self.acc & ((1u64 << bits) - 1)) as u32;
        self.acc >>= bits;
        self.filled -= bits;
        v
    }

    /// Tops the accumulator up to 56 or more bits (fewer at the end). Away from the end it loads eight
    /// bytes at once and keeps the whole bytes that fit; the bits of the next byte that
    /// also land above `filled` are that byte's own bits, so the next load ORs them onto
    /// themselves. The last bytes go one at a time.
    #[inline]
    fn refill(&mut self) {
        if let Some(word) = self.bytes.get(self.next..self.next + 8) {
            self.acc |= u64::from_le_bytes(word.try_into().expect("8 bytes")) << self.filled;
            let whole = (63 - self.filled) / 8;
            self.next += whole as usize;
            self.filled += 8 * whole;
        } else {
            while self.filled <= 56 && self.next < self.bytes.len() {
                self.acc |= (self.bytes[self.next] as u64) << self.filled;
                self.next += 1;
                self.filled += 8;
            }
        }
    }

    /// Bits not yet read.
    pub fn remaining_bits(&self) -> usize {
        (self.bytes.len() - self.next.min(self.bytes.len())) * 8 + self.filled as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_log2_matches_definition() {
        for n in 1u64..5000 {
            let b = ceil_log2(n);
            assert!(1u64 << b >= n, "n={n}");
            assert!(b == 0 || 1u64 << (b - 1) < n, "n={n}");
        }
    }

    /// The byte-at-a-time 1-bit codecs against the general field writer and reader,
    /// at lengths that do and do not fill the last byte.
    #[test]
    fn packed_bits_match_one_bit_fields() {
        for n in [0usize, 1, 7, 8, 9, 63, 64, 1001] {
            let flags: Vec<bool> = (0..n).map(|i| (i * 2654435761) % 7 < 3).collect();
            let mut fields = Vec::new();
            let mut w = BitWriter::new(&mut fields);
            flags.iter().for_each(|&f| w.put(u32::from(f), 1));
            w.finish();
            let mut packed = vec![0xAB];
            pack_bits(&mut packed, &flags, |f| f);
            assert_eq!(packed[1..], fields[..], "n = {n}: pack_bits");
            let mut r = BitReader::new(&fields);
            let mut unpacked = vec![false; n];
            for_each_bit(&fields, &mut unpacked, |u, bit| *u = bit);
            assert!(unpacked.iter().all(|&u| u == (r.get(1) == 1)), "n = {n}: for_each_bit");
            let mut acc: Vec<f64> = (0..n).map(|j| j as f64 - 0.5).collect();
            let expected: Vec<f64> = acc.iter().zip(&flags).map(|(a, &f)| a + if f { 0.25 } else { -0.25 }).collect();
            add_signed(&fields, -0.25, &mut acc);
            assert_eq!(acc, expected, "n = {n}: add_signed");
        }
    }

    #[test]
    fn bit_fields_round_trip() {
        let fields: Vec<(u32, u32)> =
            (0..1000u32).map(|i| (i.wrapping_mul(2654435761) >> (i % 32), 32 - i % 32)).collect();
        let mut buf = Vec::new();
        let mut w = BitWriter::new(&mut buf);
        for &(v, b) in &fields {
            w.put(v & if b == 32 { u32::MAX } else { (1 << b) - 1 }, b);
        }
        w.finish();
        let total: u32 = fields.iter().map(|f| f.1).sum();
        assert_eq!(buf.len(), (total as usize).div_ceil(8));
        let mut r = BitReader::new(&buf);
        for &(v, b) in &fields {
            let want = v & if b == 32 { u32::MAX } else { (1 << b) - 1 };
            assert_eq!(r.get(b), want);
        }
    }

    /// The word-at-a-time writer and reader against the layout written out bit by bit
    /// (stream bit k is bit k % 8 of byte k / 8), for every field width 0..=32 and
    /// streams that end at every offset within a word, with `remaining_bits` after each
    /// field: the reader's eight-byte loads must agree with the byte loop near the end.
    #[test]
    fn bit_fields_match_the_bit_by_bit_layout() {
        for count in [0usize, 1, 2, 3, 5, 8, 13, 40, 41, 300] {
            let fields: Vec<(u32, u32)> = (0..count as u32)
                .map(|i| {
                    let bits = (i * 7 + count as u32) % 33;
                    (i.wrapping_mul(0x9E37_79B9).rotate_left(i) & ((1u64 << bits) - 1) as u32, bits)
                })
                .collect();
            let total: usize = fields.iter().map(|f| f.1 as usize).sum();
            let mut want = vec![0u8; total.div_ceil(8)];
            let mut k = 0;
            for &(v, bits) in &fields {
                for b in 0..bits {
                    want[k / 8] |= (((v >> b) & 1) as u8) << (k % 8);
                    k += 1;
                }
            }
            let mut buf = Vec::new();
            let mut w = BitWriter::new(&mut buf);
            fields.iter().for_each(|&(v, bits)| w.put(v, bits));
            w.finish();
            assert_eq!(buf, want, "{count} fields");
            let mut r = BitReader::new(&buf);
            let mut left = 8 * want.len();
            for (i, &(v, bits)) in fields.iter().enumerate() {
                assert_eq!(r.get(bits), v, "{count} fields: field {i} of {bits} bits");
                left -= bits as usize;
                assert_eq!(r.remaining_bits(), left, "{count} fields: after field {i}");
            }
            // Past the end: zeros, and nothing counted as left.
            assert_eq!(r.get(32), 0);
            assert_eq!(r.remaining_bits(), 0);
        }
    }

    #[test]
    fn round_up_is_an_upper_bound() {
        for &v in &[0.0, 1.0, 0.1, 1e-30, 3.0e38, 123.456_789_123] {
            let r = f32_round_up(v);
            assert!(r as f64 >= v);
            assert!((r as f64 - v) <= (v * 1.2e-7).max(0.0));
        }
    }

    #[test]
    fn reader_rejects_truncation_and_trailing_bytes() {
        let bytes = [0u8; 6];
        let mut r = Reader::new(&bytes, "test");
        assert!(r.f32().is_ok());
        assert!(matches!(r.f32(), Err(Error::Wire { .. })));
        let r = Reader::new(&bytes, "test");
        assert!(matches!(r.finish(), Err(Error::Wire { .. })));
    }
}
