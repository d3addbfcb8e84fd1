//! The dense quantizers' encode loop: one fixed-width field per coordinate, computed from
//! the coordinate and its coin (issue 13).
//!
//! Written as one loop (draw a coin, round, `BitWriter::put`) every step waits on the
//! writer's bit position, and the rounding stays scalar: 4–5 ns per coordinate on top of
//! the coins. Here a chunk of coordinates goes through three loops of its own: the coins
//! as f64 units ([`Coins::units`]), the fields (`field(j, x_j, u_j)`, with nothing carried
//! from one coordinate to the next, so the compiler vectorizes it wherever `field` is
//! plain arithmetic and comparisons), and the packing ([`BitWriter::put_all`]). The bits
//! written are those of the one-loop version, coin for coin.

use super::wire::BitWriter;
use crate::rng::Coins;

/// Coordinates per chunk: its units (2 KiB) and fields (1 KiB) stay in L1 beside the input.
const CHUNK: usize = 256;

/// Where the u_j of [`put_fields`] come from.
pub enum Units<'c, 'r> {
    /// The next coin of the pass for every coordinate.
    Coins(&'c mut Coins<'r>),
    /// The same u for every coordinate (deterministic rounding, no coins drawn).
    Fixed(f64),
}

impl Units<'_, '_> {
    fn fill(&mut self, out: &mut [f64]) {
        match self {
            Units::Coins(coins) => coins.units(out),
            Units::Fixed(u) => out.fill(*u),
        }
    }
}

/// Writes `field(first + i, x[i], u_i)`, `bits` wide, for every i in order. `field` must
/// return a value below 2^bits.
pub fn put_fields(
    writer: &mut BitWriter,
    bits: u32,
    x: &[f64],
    first: usize,
    units: &mut Units,
    field: impl Fn(usize, f64, f64) -> u32,
) {
    let mut u = [0.0; CHUNK];
    let mut fields = [0u32; CHUNK];
    for (c, values) in x.chunks(CHUNK).enumerate() {
        let (u, fields) = (&mut u[..values.len()], &mut fields[..values.len()]);
        units.fill(u);
        let start = first + c * CHUNK;
        for (i, ((f, &v), &u)) in fields.iter_mut().zip(values).zip(u.iter()).enumerate() {
            *f = field(start + i, v, u);
        }
        writer.put_all(fields, bits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{private, Purpose};

    /// The chunked loop writes the bytes of the one-field-at-a-time loop and consumes the
    /// same coins, for every width and lengths around the chunk size.
    #[test]
    fn chunked_fields_are_the_one_loop_fields() {
        for bits in [1, 2, 3, 4, 5, 8, 9, 16, 17, 32] {
            for n in [0, 1, 7, 31, 255, 256, 257, 1000] {
                let x: Vec<f64> = (0..n).map(|j| (j as f64 * 0.37).sin()).collect();
                let mask = if bits == 32 { u32::MAX } else { (1 << bits) - 1 };
                // Depends on j, x_j and u_j, so that a shifted coin or index shows.
                let field = |j: usize, v: f64, u: f64| {
                    ((j as u32).wrapping_mul(2_654_435_761) ^ (v * 1e6) as i32 as u32 ^ (u * 4e9) as u32) & mask
                };

                let mut want = vec![0xAB];
                let mut stream = private(5, 2, Purpose::Compressor);
                let mut coins = Coins::new(&mut stream, n);
                let mut w = BitWriter::new(&mut want);
                w.put(5, 3); // a writer mid-word, as after a header or another block
                for (j, &v) in x.iter().enumerate() {
                    w.put(field(10 + j, v, coins.unit()), bits);
                }
                w.finish();
                let after_one_loop = stream.get_word_pos();

                let mut got = vec![0xAB];
                let mut stream = private(5, 2, Purpose::Compressor);
                let mut coins = Coins::new(&mut stream, n);
                let mut w = BitWriter::new(&mut got);
                w.put(5, 3);
                put_fields(&mut w, bits, &x, 10, &mut Units::Coins(&mut coins), field);
                w.finish();
                assert_eq!(got, want, "{bits}-bit fields, n = {n}");
                assert_eq!(stream.get_word_pos(), after_one_loop);
            }
        }
    }

    /// A fixed u reaches every field and draws no coin.
    #[test]
    fn fixed_units_are_passed_to_every_field() {
        let x = vec![1.0; 600];
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        put_fields(&mut w, 2, &x, 0, &mut Units::Fixed(0.5), |_, v, u| (v + u) as u32);
        w.finish();
        assert!(out.iter().all(|&b| b == 0b0101_0101), "{out:?}");
        assert_eq!(out.len(), 150);
    }
}
