//! Elias-omega code of the positive integers (ALGORITHMS.md §1.7), for the `elias`
//! encoding of the dithering quantizers (§1.6).
//!
//! encode(1) = "0"; for N ≥ 2 the code is built backwards: start with "0", prepend
//! binary(N), set N ← (bit length of N) − 1, and repeat until N = 1. Decoding reads
//! groups from N = 1: a 0 bit ends the word; a 1 bit starts a group of N + 1 bits (the 1
//! included), whose value is the next N.
//!
//! Bits are written in code order, one word after another, through the LSB-first
//! [`BitWriter`] (so the first code bit is bit 0 of the first byte). Values are u32 ≥ 1:
//! the longest word (for 2^32 − 1) has 1 + 2 + 3 + 5 + 32 + 1 = 44 bits in 5 groups.

use super::wire::{BitReader, BitWriter};

/// Groups of one word: at most 5 for a u32 (32 → 5 → 2 → 1 bits of length).
const MAX_GROUPS: usize = 5;

/// Bit length of n ≥ 1.
fn bit_length(n: u32) -> u32 {
    32 - n.leading_zeros()
}

/// The groups of the word for n ≥ 1, last group first (the order they are found in).
fn groups(mut n: u32) -> ([u32; MAX_GROUPS], usize) {
    let (mut found, mut count) = ([0; MAX_GROUPS], 0);
    while n > 1 {
        found[count] = n;
        count += 1;
        n = bit_length(n) - 1;
    }
    (found, count)
}

/// Length in bits of the word for n ≥ 1.
pub fn code_len(n: u32) -> u32 {
    debug_assert!(n >= 1, "Elias-omega codes the positive integers");
    let (found, count) = groups(n);
    1 + found[..count].iter().map(|&g| bit_length(g)).sum::<u32>()
}

/// Appends the word for n ≥ 1.
pub fn put(bits: &mut BitWriter, n: u32) {
    debug_assert!(n >= 1, "Elias-omega codes the positive integers");
    let (found, count) = groups(n);
    for &g in found[..count].iter().rev() {
        // binary(g), most significant bit first, through the LSB-first writer.
        let len = bit_length(g);
        bits.put(g.reverse_bits() >> (32 - len), len);
    }
    bits.put(0, 1);
}

/// Reads one word, or None when the bits end inside it or its value exceeds u32.
pub fn get(bits: &mut BitReader) -> Option<u32> {
    let mut n: u32 = 1;
    loop {
        if bits.remaining_bits() == 0 {
            return None;
        }
        if bits.get(1) == 0 {
            return Some(n);
        }
        // A group of n + 1 bits whose leading 1 was just read; it fits u32 only if n < 32.
        if n >= 32 || bits.remaining_bits() < n as usize {
            return None;
        }
        let mut value = 1u32;
        for _ in 0..n {
            value = value << 1 | bits.get(1);
        }
        n = value;
    }
}

/// Whether what is left of `bits` is the padding of [`BitWriter::pad_with_ones`]: fewer
/// than 8 bits, all 1. Every word contains a 0, so padding cannot be mistaken for data.
pub fn at_padding(bits: &BitReader) -> bool {
    let left = bits.remaining_bits();
    left < 8 && {
        let mut peek = bits.clone();
        peek.get(left as u32) == (1 << left) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word as a '0'/'1' string, written from the definition by string prepending.
    fn by_definition(n: u32) -> String {
        let mut code = String::from("0");
        let mut n = n as u64;
        while n > 1 {
            let binary = format!("{n:b}");
            n = binary.len() as u64 - 1;
            code = binary + &code;
        }
        code
    }

    fn encode_all(values: &[u32]) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut w = BitWriter::new(&mut buf);
        values.iter().for_each(|&n| put(&mut w, n));
        w.pad_with_ones();
        w.finish();
        buf
    }

    fn as_bit_string(bytes: &[u8], len: usize) -> String {
        (0..len).map(|i| if bytes[i / 8] >> (i % 8) & 1 == 1 { '1' } else { '0' }).collect()
    }

    #[test]
    fn known_words_of_section_1_7() {
        let known = [
            "0",
            "100",
            "110",
            "101000",
            "101010",
            "101100",
            "101110",
            "1110000",
            "1110010",
            "1110100",
            "1110110",
            "1111000",
            "1111010",
            "1111100",
            "1111110",
            "10100100000",
            "10100100010",
        ];
        let mut cases: Vec<(u32, &str)> = known.iter().enumerate().map(|(i, &w)| (i as u32 + 1, w)).collect();
        cases.push((100, "1011011001000"));
        cases.push((1000, "11100111111010000"));
        for (n, word) in cases {
            assert_eq!(by_definition(n), word, "the reference itself for {n}");
            let bytes = encode_all(&[n]);
            assert_eq!(as_bit_string(&bytes, word.len()), word, "encode({n})");
            assert_eq!(code_len(n) as usize, word.len(), "code_len({n})");
        }
    }

    #[test]
    fn round_trip_one_to_a_hundred_thousand_and_adversarial_values() {
        let mut values: Vec<u32> = (1..=100_000).collect();
        // Around every power of two (group lengths change there) and the u32 end.
        for e in 1..32 {
            values.extend([(1u32 << e) - 1, 1 << e, (1u32 << e) + 1]);
        }
        values.extend([u32::MAX, u32::MAX - 1, 1, 1, 1]);
        let bytes = encode_all(&values);
        let total: usize = values.iter().map(|&n| by_definition(n).len()).sum();
        assert_eq!(bytes.len(), total.div_ceil(8), "the stream is the sum of the word lengths");
        let mut r = BitReader::new(&bytes);
        for &n in &values {
            assert!(!at_padding(&r));
            assert_eq!(get(&mut r), Some(n));
        }
        assert!(at_padding(&r), "only padding is left");
    }

    #[test]
    fn every_padding_length_is_recognised() {
        // Streams of 1..=8 words "0" (gap 1): 1..=8 code bits, 7..=0 padding bits.
        for words in 1..=8 {
            let bytes = encode_all(&vec![1; words]);
            let mut r = BitReader::new(&bytes);
            let mut read = 0;
            while !at_padding(&r) {
                assert_eq!(get(&mut r), Some(1));
                read += 1;
            }
            assert_eq!(read, words);
        }
    }

    #[test]
    fn truncated_and_oversized_words_are_rejected() {
        // Bits 1,1,1,0,0,0,0,0: "1110000" + "0" is the whole word for 8.
        assert_eq!(get(&mut BitReader::new(&[0b0000_0111])), Some(8));
        // encode(1000) has 17 bits; without its third byte the final 0 is missing.
        let bytes = encode_all(&[1000]);
        assert_eq!(get(&mut BitReader::new(&bytes[..2])), None);
        // A group of 15 ones needs 15 more bits than one byte has.
        assert_eq!(get(&mut BitReader::new(&[0xff])), None);
        // Groups that never end grow past u32.
        assert_eq!(get(&mut BitReader::new(&[0xff; 8])), None);
    }
}
