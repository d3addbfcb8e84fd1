//! Standard dithering / QSGD (Alistarh et al.), p-norm variant with p ∈ {2, ∞}, and the
//! level payload it shares with natural dithering.
//!
//! Spec: ../shared/ALGORITHMS.md §1.6. SPEC: `qsgd:s=S[,norm=2|inf][,elias]` (norm defaults to 2;
//! `elias`: the variable-length code below).
//!
//! * Definition: y_j = |x_j|/‖x‖_p ∈ [0, 1], l = ⌊s·y_j⌋; ξ_j = (l+1)/s with probability
//!   s·y_j − l, else l/s; Q(x)_j = ‖x‖_p·sign(x_j)·ξ_j. The zero vector gives norm 0 and
//!   all levels 0.
//! * Exact unbiasedness: the norm travels as an f32 rounded *up* (`wire::f32_round_up`),
//!   and y_j is computed against that rounded norm, so E[decoded] = x_j up to f64
//!   rounding and y_j ≤ 1 still holds.
//! * Class: unbiased with ω = min(d/s², √d/s): QSGD Lemma 3.1 for p = 2, and a valid bound
//!   for p = ∞ as well (derivation in §1.6; §3 item 1).
//! * Randomness: one coin per coordinate (`rng::Coins`, a 32-bit uniform) from the worker's private stream (§0.3).
//! * Wire ([`Dithering`], little-endian): bytes 0..4 the norm as f32; then d fields of
//!   1 + ⌈log₂(s+1)⌉ bits packed least-significant bit first (`wire::BitWriter`): bit 0 the
//!   sign (1 = negative; always 0 for level 0), the higher bits the level l ∈ 0..=s. The
//!   last byte is zero-padded: 4 + ⌈d(1 + ⌈log₂(s+1)⌉)/8⌉ bytes. A level above s is
//!   rejected as malformed.
//! * Paper bits: 32 + d(1 + ⌈log₂(s+1)⌉) (the fixed-length encoding of §1.6; the MARINA
//!   count is another convention).
//! * `elias` (SPEC flag, both dithering quantizers): the variable-length code of §1.6 —
//!   bytes 0..4 the norm, then for each nonzero level in increasing j the Elias-ω words
//!   ([`super::elias`]) of the gap j − (previous nonzero j, −1 at first) and, after one
//!   sign bit, of the level; padded with 1 bits to a byte. Paper bits = 32 + the code
//!   words' lengths, bit for bit; wire bytes = 4 + ⌈code bits / 8⌉.
//! * Non-finite input: a NaN or ±∞ coordinate makes the norm non-finite, and the decoded
//!   vector then holds NaN, so a diverged worker stays visible to the trainer.

use super::elias;
use super::fields::{put_fields, Units};
use super::rounding::floor_small;
use super::wire::{
    ceil_log2, expect_dim, expect_len, f32_round_up, packed_len, put_f32, with_sign_bit, BitReader, BitWriter, Reader,
};
use super::{check_levels, Class, Compressor, Spec};
use crate::error::{Error, Result};
use crate::rng::{Coins, Stream};
use crate::vector::{max_abs, norm_sq};

const NAME: &str = "qsgd";

/// The norm p of the dithering quantizers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    L2,
    Inf,
}

impl Norm {
    /// Reads `norm=2|inf` (default 2).
    pub fn from_spec(spec: &mut Spec) -> Result<Norm> {
        let p = spec.take_choice("norm", &["2", "inf"], "2")?;
        Ok(if p == "inf" { Norm::Inf } else { Norm::L2 })
    }

    /// ‖x‖_p in f64; NaN if any coordinate is NaN.
    pub fn of(self, x: &[f64]) -> f64 {
        match self {
            Norm::L2 => norm_sq(x).sqrt(),
            Norm::Inf => max_abs(x),
        }
    }
}

/// How the dithering quantizers code their levels (§1.6 "Encodings").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// A sign bit and a level in ⌈log₂(s+1)⌉ bits for every coordinate.
    Fixed,
    /// The nonzero levels only, each as Elias-ω(gap to the previous nonzero, from −1), a
    /// sign bit and Elias-ω(level): the QSGD paper's code and the smoothness-aware
    /// reference code's bit count.
    Elias,
}

impl Coding {
    /// Reads the flag `elias` (default: fixed-length fields).
    pub fn from_spec(spec: &mut Spec) -> Result<Coding> {
        Ok(if spec.take_flag("elias")? { Coding::Elias } else { Coding::Fixed })
    }
}

/// The level payload of the dithering quantizers (§1.6, §1.9 and the block quantization
/// of §A.2b): one f32 norm per block of coordinates, then a sign and a level index in
/// 0..=s per coordinate, fixed-length or Elias-coded. The quantizer supplies the rounding
/// rule (y ↦ level) and the level values (level ↦ ξ), both per coordinate if it likes.
pub struct Dithering {
    name: &'static str,
    d: usize,
    s: u32,
    norm: Norm,
    coding: Coding,
    level_bits: u32,
    /// B blocks of ⌊d/B⌋ coordinates, the last one taking the remainder (§A.2b); 1 block
    /// for the plain quantizers.
    blocks: usize,
    block_len: usize,
    /// The blocks' norms of the message being written; reused.
    norms: Vec<f64>,
}

impl Dithering {
    pub fn new(name: &'static str, d: usize, s: u32, norm: Norm, coding: Coding) -> Self {
        Dithering {
            name,
            d,
            s,
            norm,
            coding,
            level_bits: ceil_log2(s as u64 + 1),
            blocks: 1,
            block_len: d.max(1),
            norms: Vec::with_capacity(1),
        }
    }

    /// The same payload with one norm per block: `blocks` blocks, 1 ≤ blocks ≤ d.
    pub fn with_blocks(self, blocks: usize) -> Self {
        assert!(blocks >= 1 && blocks <= self.d.max(1), "{}: {blocks} blocks for d = {}", self.name, self.d);
        Dithering { blocks, block_len: (self.d / blocks).max(1), norms: Vec::with_capacity(blocks), ..self }
    }

    /// The coordinates of block l.
    pub fn block(&self, l: usize) -> std::ops::Range<usize> {
        let start = l * self.block_len;
        start..if l + 1 == self.blocks { self.d } else { start + self.block_len }
    }

    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// The block coordinate j belongs to.
    fn block_of(&self, j: usize) -> usize {
        (j / self.block_len).min(self.blocks - 1)
    }

    pub fn d(&self) -> usize {
        self.d
    }

    pub fn s(&self) -> u32 {
        self.s
    }

    fn field_bits(&self) -> u32 {
        1 + self.level_bits
    }

    /// Bytes of the norms.
    fn header_bytes(&self) -> usize {
        4 * self.blocks
    }

    /// Bytes of a fixed-length message (the only length when `Coding::Fixed`).
    pub fn fixed_wire_bytes(&self) -> usize {
        self.header_bytes() + packed_len(self.d, self.field_bits())
    }

    /// Paper bits of `msg`: 32B + d(1 + ⌈log₂(s+1)⌉) fixed; 32B + the sum of the code
    /// words (padding excluded) with Elias. A malformed Elias message counts what decodes.
    pub fn paper_bits(&self, msg: &[u8]) -> u64 {
        let header = 32 * self.blocks as u64;
        match self.coding {
            Coding::Fixed => header + self.d as u64 * self.field_bits() as u64,
            Coding::Elias => {
                let stream = msg.get(self.header_bytes()..).unwrap_or_default();
                let mut bits = BitReader::new(stream);
                let _ = self.walk_elias(&mut bits, |_, _, _| ());
                header + (stream.len() * 8 - bits.remaining_bits()) as u64
            }
        }
    }

    /// Clears `out` and writes the norm and, for every coordinate, the level that
    /// `round(y, u)` picks for y = |x_j|/norm ∈ [0, 1] and a uniform u ∈ [0, 1).
    ///
    /// Panics if `x.len() != d` (a caller bug, not a wire condition).
    pub fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>, round: impl Fn(f64, f64) -> u32) {
        self.encode_by(x, rng, out, |_, _, y, u| round(y, u))
    }

    /// `encode` with a rounding rule `round(l, j, y, u)` that may depend on the coordinate j
    /// or its block l (known to the loop, so the rule need not divide j to find it).
    pub fn encode_by(
        &mut self,
        x: &[f64],
        rng: &mut Stream,
        out: &mut Vec<u8>,
        round: impl Fn(usize, usize, f64, f64) -> u32,
    ) {
        assert_eq!(x.len(), self.d, "{}: encoding a vector of the wrong dimension", self.name);
        out.clear();
        out.reserve(self.fixed_wire_bytes());
        self.norms.clear();
        for l in 0..self.blocks {
            // Rounded up, so that |x_j| ≤ norm for the norm the receiver sees (module doc).
            let norm = f32_round_up(self.norm.of(&x[self.block(l)]));
            put_f32(out, norm);
            self.norms.push(norm as f64);
        }
        let mut fields = BitWriter::new(out);
        let mut coins = Coins::new(rng, x.len());
        let s = self.s;
        // Coordinate j's field from its coin u: its level and a sign bit (set only for a
        // nonzero level).
        let field_of = |l: usize, j: usize, v: f64, n: f64, u: f64| {
            // `min` only guards the last ulp (y ≤ 1 holds since n ≥ ‖x‖_p ≥ |x_j|); a
            // zero or NaN norm sends level 0 everywhere (no 0/0).
            let y = if n > 0.0 { (v.abs() / n).min(1.0) } else { 0.0 };
            let level = round(l, j, y, u).min(s);
            ((v < 0.0) & (level > 0)) as u32 | level << 1
        };
        let norms = &self.norms;
        let blocks = (0..self.blocks).map(|l| (l, self.block(l), norms[l]));
        match self.coding {
            Coding::Fixed => {
                // The dense quantizers' hot path, a chunk at a time (`fields`).
                let bits = self.field_bits();
                let mut units = Units::Coins(&mut coins);
                for (l, block, n) in blocks {
                    let first = block.start;
                    put_fields(&mut fields, bits, &x[block], first, &mut units, |j, v, u| field_of(l, j, v, n, u));
                }
            }
            Coding::Elias => {
                // The index of the last nonzero level written (gaps start from −1).
                let mut previous: i64 = -1;
                for (l, block, n) in blocks {
                    for (j, &v) in block.clone().zip(&x[block]) {
                        let field = field_of(l, j, v, n, coins.unit());
                        if field >> 1 > 0 {
                            elias::put(&mut fields, (j as i64 - previous) as u32);
                            fields.put(field & 1, 1);
                            elias::put(&mut fields, field >> 1);
                            previous = j as i64;
                        }
                    }
                }
            }
        }
        if self.coding == Coding::Elias {
            fields.pad_with_ones();
        }
        fields.finish();
    }

    /// acc += scale · norm · sign · value(level) for every coordinate. Every coordinate
    /// is added, zero levels included, so that a non-finite norm shows up as NaN (with
    /// Elias, a non-finite norm is added as NaN to every coordinate for the same reason).
    pub fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64], value: impl Fn(u32) -> f64) -> Result<()> {
        self.decode_add_by(msg, scale, acc, |_, _, level| value(level))
    }

    /// `decode_add` with level values `value(l, j, level)` that may depend on the coordinate
    /// j or its block l.
    pub fn decode_add_by(
        &self,
        msg: &[u8],
        scale: f64,
        acc: &mut [f64],
        value: impl Fn(usize, usize, u32) -> f64,
    ) -> Result<()> {
        expect_dim(self.name, acc, self.d)?;
        if self.coding == Coding::Fixed {
            expect_len(self.name, msg, self.fixed_wire_bytes())?;
        }
        let mut r = Reader::new(msg, self.name);
        let header = r.take(self.header_bytes())?;
        let norm = |l: usize| f32::from_le_bytes(header[4 * l..4 * l + 4].try_into().expect("4 bytes")) as f64;
        match self.coding {
            Coding::Fixed => {
                let mut fields = BitReader::new(r.take(packed_len(self.d, self.field_bits()))?);
                r.finish()?;
                let bits = self.field_bits();
                for l in 0..self.blocks {
                    let n = norm(l);
                    let block = self.block(l);
                    for (j, a) in block.clone().zip(&mut acc[block]) {
                        let field = fields.get(bits);
                        self.check_level(j, field >> 1)?;
                        *a += scale * with_sign_bit(n * value(l, j, field >> 1), field);
                    }
                }
            }
            Coding::Elias => {
                let stream = r.take(msg.len() - self.header_bytes())?;
                for l in 0..self.blocks {
                    let n = norm(l);
                    if !n.is_finite() {
                        acc[self.block(l)].iter_mut().for_each(|a| *a += scale * (n * 0.0));
                    }
                }
                self.walk_elias(&mut BitReader::new(stream), |j, negative, level| {
                    let l = self.block_of(j);
                    acc[j] += scale * with_sign_bit(norm(l) * value(l, j, level), negative);
                })?;
            }
        }
        Ok(())
    }

    fn check_level(&self, j: usize, level: u32) -> Result<()> {
        if level > self.s {
            return Err(Error::wire(self.name, format!("coordinate {j} has level {level}, above s = {}", self.s)));
        }
        Ok(())
    }

    /// Reads an Elias-coded level stream to its padding, calling `visit(j, sign bit,
    /// level)` for each nonzero level. Rejects a word cut short, a coordinate ≥ d, a
    /// level 0 or above s, and a message that does not end in 0..7 padding 1 bits.
    fn walk_elias(&self, bits: &mut BitReader, mut visit: impl FnMut(usize, u32, u32)) -> Result<()> {
        let malformed = |what: String| Error::wire(self.name, what);
        let mut next = 0usize; // the lowest coordinate the next gap may reach
        while !elias::at_padding(bits) {
            let gap = elias::get(bits)
                .ok_or_else(|| malformed(format!("a gap word after coordinate {next} is cut short")))?;
            let j = next + gap as usize - 1;
            if j >= self.d {
                return Err(malformed(format!("gap {gap} reaches coordinate {j}, beyond d = {}", self.d)));
            }
            if bits.remaining_bits() == 0 {
                return Err(malformed(format!("coordinate {j} has no sign bit")));
            }
            let negative = bits.get(1);
            let level =
                elias::get(bits).ok_or_else(|| malformed(format!("the level word of coordinate {j} is cut short")))?;
            if level == 0 || level > self.s {
                return Err(malformed(format!("coordinate {j} has level {level}, outside 1..={}", self.s)));
            }
            visit(j, negative, level);
            next = j + 1;
        }
        Ok(())
    }
}

pub struct Qsgd {
    spec: String,
    levels: Dithering,
}

impl Qsgd {
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<Self> {
        let s = spec.take_usize("s")?;
        check_levels(spec, s)?;
        let norm = Norm::from_spec(spec)?;
        let coding = Coding::from_spec(spec)?;
        Ok(Qsgd { spec: spec.text().to_string(), levels: Dithering::new(NAME, d, s as u32, norm, coding) })
    }

    /// The low-precision representation Q_(δ,b) of AsyLPG (ALGORITHMS.md §B.1, `lowp:b=B`,
    /// 2 ≤ B ≤ 21): the grid δ·{−2^{b−1}, …, 2^{b−1} − 1} with δ = ‖x‖_∞/(2^{b−1} − 1), the
    /// smallest δ that never clips, and stochastic rounding. That is
    /// `qsgd:s=2^{b−1}−1,norm=inf` exactly: the same two grid points around every x_j with
    /// the same probabilities (−2^{b−1}δ is never reached), δ·s = the f32 norm on the wire,
    /// and the same 32 + b·d paper bits (a sign and b − 1 level bits per coordinate).
    pub fn low_precision(spec: &mut Spec, d: usize) -> Result<Self> {
        let s = low_precision_levels(spec)?;
        Ok(Qsgd { spec: spec.text().to_string(), levels: Dithering::new("lowp", d, s, Norm::Inf, Coding::Fixed) })
    }
}

/// 2^{b−1} − 1, the largest level of the b-bit grid of §B.1, from the SPEC key `b`.
pub fn low_precision_levels(spec: &mut Spec) -> Result<u32> {
    let b = spec.take_usize("b")?;
    if !(2..=21).contains(&b) {
        return Err(Error::config(
            format!("compressor '{}': b = {b} bits per coordinate", spec.text()),
            "choose 2 ≤ b ≤ 21 (b = 1 leaves no nonzero level: δ = ‖x‖_∞/(2^{b−1} − 1) is undefined)",
        ));
    }
    Ok((1u32 << (b - 1)) - 1)
}

/// Stochastic rounding of s·y to the integers below and above (§1.6):
/// up with probability s·y − ⌊s·y⌋, which makes E[level]/s = y.
#[inline(always)]
fn round_to_grid(s: u32, y: f64, u: f64) -> u32 {
    // 0 ≤ s·y ≤ s ≤ 2²⁰.
    let sy = s as f64 * y;
    let low = floor_small(sy);
    low + (u < sy - f64::from(low)) as u32
}

impl Compressor for Qsgd {
    fn spec(&self) -> &str {
        &self.spec
    }

    /// ω = min(d/s², √d/s) (§1.6).
    fn class(&self) -> Class {
        let (d, s) = (self.levels.d() as f64, self.levels.s() as f64);
        Class::Unbiased { omega: (d / (s * s)).min(d.sqrt() / s) }
    }

    fn encode(&mut self, x: &[f64], rng: &mut Stream, out: &mut Vec<u8>) {
        let s = self.levels.s();
        self.levels.encode(x, rng, out, |y, u| round_to_grid(s, y, u));
    }

    fn decode_add(&self, msg: &[u8], scale: f64, acc: &mut [f64]) -> Result<()> {
        let s = self.levels.s() as f64;
        self.levels.decode_add(msg, scale, acc, |level| level as f64 / s)
    }

    fn paper_bits(&self, msg: &[u8]) -> u64 {
        self.levels.paper_bits(msg)
    }
}
