//! Random streams (ALGORITHMS.md §0.3).
//!
//! * **private** streams belong to one *logical worker* and are keyed by
//!   (seed, worker, purpose): dithering coins, rand-k masks. Keying by worker rather
//!   than by MPI rank is what makes `--workers 20` on 2 ranks draw exactly what 20
//!   ranks would.
//! * **shared** streams are keyed by (seed, purpose) only and are identical on every
//!   rank; draw from them only in code that every rank runs in the same order.
//!
//! The generator is ChaCha8 from `rand_chacha`: portable and value-stable across
//! releases (rand documents that `StdRng` may change), and `set_stream` gives 2^64
//! independent streams per key.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The generator every stream uses.
pub type Stream = ChaCha8Rng;

/// What a stream is for. Distinct purposes never share draws, so adding a new consumer
/// of randomness does not shift the draws of an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// Compressor randomness of one worker (private).
    Compressor = 1,
    /// Start vectors of power iterations (shared).
    PowerIteration = 2,
    /// Server-side randomness every replica must agree on (shared).
    Server = 3,
    /// Supports of shared-seed compressors (shared rand-k, §0.3).
    SharedSupport = 4,
    /// Count Sketch hash functions (shared, §C.1).
    SketchHashes = 5,
    /// Synthetic data sets (`qtrain generate`).
    Generator = 6,
    /// Minibatch rows of one worker (private, `--batch`).
    Minibatch = 7,
    /// Coins of the downlink compressor (shared: every replica, or rank 0 alone).
    Downlink = 8,
    /// Supports of a shared-seed downlink compressor (shared).
    DownlinkSupport = 9,
    /// Coins every worker shares (3PCv5's full-gradient round, §G.1).
    SharedCoin = 10,
    /// Coins of the server's model quantizer (shared: every replica, or rank 0 alone; §B.2).
    ModelQuantizer = 11,
}

/// SplitMix64: a bijective mixer used to expand (seed, purpose) into a ChaCha key.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key(seed: u64, purpose: Purpose) -> [u8; 32] {
    let mut key = [0u8; 32];
    let mut state = seed ^ (purpose as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    for chunk in key.chunks_exact_mut(8) {
        state = splitmix64(state);
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    key
}

/// The private stream of logical worker `worker` (stream number worker + 1).
pub fn private(seed: u64, worker: usize, purpose: Purpose) -> Stream {
    let mut rng = ChaCha8Rng::from_seed(key(seed, purpose));
    rng.set_stream(worker as u64 + 1);
    rng
}

/// The stream shared by all ranks (stream number 0).
pub fn shared(seed: u64, purpose: Purpose) -> Stream {
    shared_nth(seed, purpose, 0)
}

/// The `n`-th stream of a shared purpose (shared purposes have no private streams, so
/// every number is free): one per compressor of a method that takes several.
pub fn shared_nth(seed: u64, purpose: Purpose, n: u64) -> Stream {
    let mut rng = ChaCha8Rng::from_seed(key(seed, purpose));
    rng.set_stream(n);
    rng
}

/// Uniform coins for one pass over `n` coordinates: the next `n` 32-bit words of a
/// stream, drawn in bulk a chunk at a time (a bulk fill costs about a fifth of one
/// `random::<f64>()` call per coin) and read as u = w·2⁻³² ∈ [0, 1).
///
/// The stream advances by exactly `n` words whatever the chunking, so a checkpoint's
/// word position stays exact. A coin u < p comes up with probability ⌈p·2³²⌉·2⁻³², which
/// exceeds p by less than 2⁻³²: the stochastic-rounding compressors that use these coins
/// are unbiased to a relative 2⁻³² of their level gap (documented in the README).
pub struct Coins<'a> {
    rng: &'a mut Stream,
    /// Words not yet drawn from the stream.
    undrawn: usize,
    chunk: [u32; COIN_CHUNK],
    next: usize,
    filled: usize,
}

/// Coins drawn from the stream at once: 1 KiB, in L1 beside the vector being encoded.
const COIN_CHUNK: usize = 256;

impl<'a> Coins<'a> {
    pub fn new(rng: &'a mut Stream, n: usize) -> Self {
        Coins { rng, undrawn: n, chunk: [0; COIN_CHUNK], next: 0, filled: 0 }
    }

    /// The next coin, u ∈ [0, 1) on the 2⁻³² grid.
    ///
    /// Panics after `n` coins (a caller that announced the wrong count).
    #[inline]
    pub fn unit(&mut self) -> f64 {
        if self.next == self.filled {
            self.draw_chunk();
        }
        let word = self.chunk[self.next];
        self.next += 1;
        f64::from(word) * (1.0 / 4_294_967_296.0)
    }

    /// The next `out.len()` coins at once, in order: the same values as that many
    /// [`unit`](Self::unit) calls, converted a chunk at a time in a loop the compiler
    /// vectorizes (the dense encode loops of `compress::fields`).
    pub fn units(&mut self, mut out: &mut [f64]) {
        while !out.is_empty() {
            if self.next == self.filled {
                self.draw_chunk();
            }
            let n = out.len().min(self.filled - self.next);
            let (head, rest) = out.split_at_mut(n);
            for (u, &word) in head.iter_mut().zip(&self.chunk[self.next..self.next + n]) {
                *u = f64::from(word) * (1.0 / 4_294_967_296.0);
            }
            self.next += n;
            out = rest;
        }
    }

    fn draw_chunk(&mut self) {
        let len = self.undrawn.min(COIN_CHUNK);
        assert!(len > 0, "more coins drawn than announced");
        self.rng.fill(&mut self.chunk[..len]);
        (self.undrawn, self.next, self.filled) = (self.undrawn - len, 0, len);
    }
}

/// A standard Gaussian by Box–Muller (one per two uniforms: simple, and value-stable).
pub fn gaussian(rng: &mut impl rand::Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    /// Coins are the stream's next words in order, whatever the chunking, and leave the
    /// stream exactly n words on: the word position a checkpoint records.
    #[test]
    fn coins_are_the_next_words_of_the_stream() {
        for n in [0, 1, 255, 256, 257, 1000] {
            let mut reference = private(3, 1, Purpose::Compressor);
            let _: u32 = reference.random(); // an odd word position, mid-block
            let mut stream = reference.clone();
            let want: Vec<f64> = (0..n).map(|_| f64::from(reference.next_u32()) / 4_294_967_296.0).collect();
            let mut coins = Coins::new(&mut stream, n);
            let got: Vec<f64> = (0..n).map(|_| coins.unit()).collect();
            assert_eq!(got, want, "n = {n}");
            assert_eq!(stream.get_word_pos(), reference.get_word_pos(), "n = {n}");
            assert_eq!(stream.next_u64(), reference.next_u64(), "n = {n}");
        }
    }

    #[test]
    #[should_panic(expected = "more coins drawn than announced")]
    fn coins_beyond_the_announced_count_are_a_bug() {
        let mut stream = private(3, 1, Purpose::Compressor);
        let mut coins = Coins::new(&mut stream, 2);
        (0..3).for_each(|_| {
            coins.unit();
        });
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| 0).scan(private(7, 3, Purpose::Compressor), |r, _| Some(r.random())).collect();
        let b: Vec<u64> = (0..4).map(|_| 0).scan(private(7, 3, Purpose::Compressor), |r, _| Some(r.random())).collect();
        assert_eq!(a, b);
        let mut other_worker = private(7, 4, Purpose::Compressor);
        let mut other_purpose = private(7, 3, Purpose::Server);
        let mut shared_stream = shared(7, Purpose::Compressor);
        assert_ne!(a[0], other_worker.random::<u64>());
        assert_ne!(a[0], other_purpose.random::<u64>());
        assert_ne!(a[0], shared_stream.random::<u64>());
    }
}
