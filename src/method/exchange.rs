//! One compressed exchange (ALGORITHMS.md §0.3): every local worker encodes a vector
//! with its private stream, the messages are all-gathered, and every rank decodes all
//! of them in global worker order into the replicated server state. Shared by all
//! compressed methods so that none repeats the encode/gather/decode loop.

use super::{RoundStats, Setup};
use crate::comm::Comm;
use crate::compress::{self, wire, Compressor};
use crate::error::{Error, Result};
use crate::rng::Stream;
use std::time::Instant;

pub struct Exchange {
    /// One coder per local worker (compressors may keep per-worker scratch).
    coders: Vec<Box<dyn Compressor>>,
    outbox: Vec<Vec<u8>>,
    first_worker: usize,
    /// Decoding scale of each global worker's message in the server aggregate.
    server_scale: Vec<f64>,
}

impl Exchange {
    /// `server_scale[i]` multiplies worker i's decoded message in the aggregate
    /// (typically its weight w_i).
    pub fn new(spec: &str, dim: usize, first_worker: usize, local: usize, server_scale: Vec<f64>) -> Result<Self> {
        let coders = (0..local).map(|_| compress::build(spec, dim)).collect::<Result<Vec<_>>>()?;
        Ok(Exchange { coders, outbox: vec![Vec::new(); local], first_worker, server_scale })
    }

    /// The exchange of a method: messages weighted by w_i in the aggregate.
    pub fn from_setup(setup: &Setup) -> Result<Self> {
        Self::new(setup.compressor, setup.dim, setup.first_worker, setup.local_workers, setup.weights.to_vec())
    }

    pub fn compressor(&self) -> &dyn Compressor {
        self.coders[0].as_ref()
    }

    /// Encodes `input` as local worker `j`'s message.
    pub fn encode(&mut self, j: usize, input: &[f64], rng: &mut Stream, stats: &mut RoundStats) {
        let start = Instant::now();
        self.coders[j].encode(input, rng, &mut self.outbox[j]);
        stats.t_compress += start.elapsed().as_secs_f64();
    }

    /// The uncompressed exchange of EF21's first round: every worker sends its vector
    /// as d little-endian f64 (exact), and aggregate += Σ_i server_scale[i]·v_i is summed
    /// in worker order, so it does not depend on the rank layout (a dense allreduce
    /// would). Paper bits: d floats of 32 bits per worker (§0.6 convention).
    pub fn exchange_dense<'v>(
        &mut self,
        comm: &mut Comm,
        local: impl Iterator<Item = &'v [f64]>,
        aggregate: &mut [f64],
        stats: &mut RoundStats,
    ) -> Result<()> {
        for (out, v) in self.outbox.iter_mut().zip(local) {
            out.clear();
            v.iter().for_each(|x| wire::put_f64(out, *x));
        }
        let messages = comm.gather_bytes(&self.outbox)?;
        let start = Instant::now();
        for (i, msg) in messages.iter().enumerate() {
            if msg.len() != 8 * aggregate.len() {
                return Err(Error::wire("dense f64", format!("{} bytes for d = {}", msg.len(), aggregate.len())));
            }
            for (a, b) in aggregate.iter_mut().zip(msg.chunks_exact(8)) {
                *a += self.server_scale[i] * f64::from_le_bytes(b.try_into().expect("8-byte chunk"));
            }
            stats.paper_bits_up += 32 * aggregate.len() as u64;
        }
        stats.t_decode += start.elapsed().as_secs_f64();
        Ok(())
    }

    /// Gathers the encoded messages and sets aggregate += Σ_i server_scale[i]·scale·C_i;
    /// then, for each local worker j, `own(j, decoder, message)` lets the method update
    /// that worker's state from its own message. Adds paper bits and decode time to
    /// `stats`.
    pub fn exchange(
        &mut self,
        comm: &mut Comm,
        scale: f64,
        aggregate: &mut [f64],
        stats: &mut RoundStats,
        mut own: impl FnMut(usize, &dyn Compressor, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let messages = comm.gather_bytes(&self.outbox)?;
        let start = Instant::now();
        let decoder = self.coders[0].as_ref();
        for (i, msg) in messages.iter().enumerate() {
            decoder.decode_add(msg, scale * self.server_scale[i], aggregate)?;
            stats.paper_bits_up += decoder.paper_bits(msg);
        }
        for j in 0..self.coders.len() {
            own(j, decoder, messages.get(self.first_worker + j))?;
        }
        stats.t_decode += start.elapsed().as_secs_f64();
        Ok(())
    }
}
