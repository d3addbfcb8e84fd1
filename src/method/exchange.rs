//! One compressed exchange (ALGORITHMS.md §0.3): every local worker compresses a vector,
//! the compressed forms travel, and every rank adds all of them, in global worker order,
//! into the replicated server state. Shared by all compressed methods so that none
//! repeats the encode / communicate / decode loop.
//!
//! Two collectives (`--collective`):
//! * **allgather**: each worker's packed message (any compressor) is all-gathered
//!   (lengths, then bytes) and every rank decodes all of them;
//! * **allreduce**: for a summable compressor (shared support, `compress::summable`),
//!   the workers' values are summed by one allreduce of k floats, so a rank's traffic
//!   does not grow with the number of ranks.

use super::{RoundStats, Setup};
use crate::comm::Comm;
use crate::compress::summable::{self, Summable};
use crate::compress::{self, wire, Class, Compressor};
use crate::error::{Error, Result};
use crate::rng::{self, Purpose, Stream};
use std::time::Instant;

/// The collective a method's messages go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Collective {
    /// Allgather of lengths, then allgatherv of the packed bytes.
    Allgather,
    /// Allreduce of the values on a support all workers share.
    Allreduce,
}

/// What a worker's own compressed vector is, for updating that worker's state.
pub enum Own<'a> {
    Message { decoder: &'a dyn Compressor, msg: &'a [u8] },
    Values { summable: &'a dyn Summable, values: &'a [f64] },
}

impl Own<'_> {
    /// acc += scale · C_j.
    pub fn add_to(&self, scale: f64, acc: &mut [f64]) -> Result<()> {
        match self {
            Own::Message { decoder, msg } => decoder.decode_add(msg, scale, acc),
            Own::Values { summable, values } => {
                summable.add_expanded(values, scale, acc);
                Ok(())
            }
        }
    }
}

// One per method instance: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Coding {
    /// One coder per local worker (compressors may keep per-worker scratch).
    Messages(Vec<Box<dyn Compressor>>),
    /// One summable compressor; its support is drawn from the shared stream.
    Shared { summable: Box<dyn Summable>, stream: Stream, values: Vec<Vec<f64>>, collective: Collective, sum: Vec<f64> },
}

pub struct Exchange {
    coding: Coding,
    outbox: Vec<Vec<u8>>,
    first_worker: usize,
    /// Decoding scale of each global worker's contribution (its weight w_i).
    server_scale: Vec<f64>,
    round_open: bool,
}

impl Exchange {
    /// The exchange of a method: contributions weighted by w_i in the aggregate.
    pub fn from_setup(setup: &Setup) -> Result<Self> {
        let local = setup.local_workers;
        let shared = summable::is_shared(setup.compressor);
        let collective = setup.collective.unwrap_or(if shared { Collective::Allreduce } else { Collective::Allgather });
        let coding = if shared || collective == Collective::Allreduce {
            let summable = summable::build_summable(setup.compressor, setup.dim)?;
            let k = summable.values_per_worker();
            Coding::Shared {
                summable,
                stream: rng::shared(setup.seed, Purpose::SharedSupport),
                values: vec![vec![0.0; k]; local],
                collective,
                sum: vec![0.0; k],
            }
        } else {
            Coding::Messages((0..local).map(|_| compress::build(setup.compressor, setup.dim)).collect::<Result<_>>()?)
        };
        Ok(Exchange {
            coding,
            outbox: vec![Vec::new(); local],
            first_worker: setup.first_worker,
            server_scale: setup.weights.to_vec(),
            round_open: false,
        })
    }

    pub fn class(&self) -> Class {
        match &self.coding {
            Coding::Messages(coders) => coders[0].class(),
            Coding::Shared { summable, .. } => summable.class(),
        }
    }

    pub fn collective(&self) -> Collective {
        match &self.coding {
            Coding::Messages(_) => Collective::Allgather,
            Coding::Shared { collective, .. } => *collective,
        }
    }

    /// Compresses `input` as local worker `j`'s contribution (private stream `rng`).
    pub fn encode(&mut self, j: usize, input: &[f64], rng: &mut Stream, stats: &mut RoundStats) {
        let start = Instant::now();
        match &mut self.coding {
            Coding::Messages(coders) => coders[j].encode(input, rng, &mut self.outbox[j]),
            Coding::Shared { summable, stream, values, collective, .. } => {
                if !self.round_open {
                    summable.begin_round(stream);
                    self.round_open = true;
                }
                summable.project(input, &mut values[j]);
                if *collective == Collective::Allgather {
                    self.outbox[j].clear();
                    values[j].iter().for_each(|v| wire::put_f32(&mut self.outbox[j], *v as f32));
                }
            }
        }
        stats.t_compress += start.elapsed().as_secs_f64();
    }

    /// Communicates the encoded contributions and sets
    /// aggregate += scale · Σ_i server_scale[i] · C_i; then `own(j, C_j)` lets the method
    /// update local worker j's state from its own compressed vector. Adds paper bits and
    /// decode time to `stats`.
    pub fn exchange(
        &mut self,
        comm: &mut Comm,
        scale: f64,
        aggregate: &mut [f64],
        stats: &mut RoundStats,
        mut own: impl FnMut(usize, Own) -> Result<()>,
    ) -> Result<()> {
        self.round_open = false;
        match &mut self.coding {
            Coding::Messages(coders) => {
                let messages = comm.gather_bytes(&self.outbox)?;
                let start = Instant::now();
                let decoder = coders[0].as_ref();
                for (i, msg) in messages.iter().enumerate() {
                    decoder.decode_add(msg, scale * self.server_scale[i], aggregate)?;
                    stats.paper_bits_up += decoder.paper_bits(msg);
                }
                for j in 0..coders.len() {
                    own(j, Own::Message { decoder, msg: messages.get(self.first_worker + j) })?;
                }
                stats.t_decode += start.elapsed().as_secs_f64();
            }
            Coding::Shared { summable, values, collective: Collective::Allreduce, sum, .. } => {
                sum.fill(0.0);
                for (j, v) in values.iter().enumerate() {
                    let w = self.server_scale[self.first_worker + j];
                    sum.iter_mut().zip(v).for_each(|(s, x)| *s += w * x);
                }
                comm.sum(sum);
                let start = Instant::now();
                summable.add_expanded(sum, scale, aggregate);
                stats.paper_bits_up += summable.paper_bits() * self.server_scale.len() as u64;
                for (j, v) in values.iter().enumerate() {
                    own(j, Own::Values { summable: summable.as_ref(), values: v })?;
                }
                stats.t_decode += start.elapsed().as_secs_f64();
            }
            Coding::Shared { summable, values, collective: Collective::Allgather, sum, .. } => {
                let messages = comm.gather_bytes(&self.outbox)?;
                let start = Instant::now();
                for (i, msg) in messages.iter().enumerate() {
                    read_f32_values(msg, sum)?;
                    summable.add_expanded(sum, scale * self.server_scale[i], aggregate);
                    stats.paper_bits_up += summable.paper_bits();
                }
                for (j, v) in values.iter().enumerate() {
                    own(j, Own::Values { summable: summable.as_ref(), values: v })?;
                }
                stats.t_decode += start.elapsed().as_secs_f64();
            }
        }
        Ok(())
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
}

/// Reads exactly `values.len()` f32 values.
fn read_f32_values(msg: &[u8], values: &mut [f64]) -> Result<()> {
    if msg.len() != 4 * values.len() {
        return Err(Error::wire("shared-support values", format!("{} bytes for {} values", msg.len(), values.len())));
    }
    for (v, b) in values.iter_mut().zip(msg.chunks_exact(4)) {
        *v = f32::from_le_bytes(b.try_into().expect("4-byte chunk")) as f64;
    }
    Ok(())
}
