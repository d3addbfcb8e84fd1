//! The downlink: a phase's [`Down`] as it reaches the workers.
//!
//! * **Uncompressed** (`--down-compressor identity`, the default): on the server
//!   topology rank 0 broadcasts the Down losslessly (f64 values), so a method's iterates
//!   do not depend on the topology; on the replicated topology nothing is sent.
//! * **Compressed** (`--down-compressor C`, dense updates only; ALGORITHMS.md §G.3
//!   "Bidirectional compression"): every rank keeps the broadcast state g̃. The first
//!   downlink is sent exactly (g̃⁰ = the first update, as biCLAG's g̃⁰ = mean ∇f_i(x⁰));
//!   after it the server sends C(v − g̃) and every rank sets g̃ ← g̃ + C(v − g̃); the model
//!   steps with g̃. An unbiased C is used as C/(ω+1), which is contractive (§0.1), as on
//!   the uplink of EF21. The compressor's coins come from a stream every rank holds alike
//!   (`Purpose::Downlink`), so the replicated topology computes the same g̃ on every
//!   replica, and both topologies give the same iterates.
//!
//! Broadcast format (little-endian): kind u8 (0 none, 1 dense, 2 sparse, 3 exact first
//! state, 4 compressed), step f64, extra length u64 and the extra bytes, then the
//! payload: dense d × f64; sparse n u64, n × u32 indices, n × f64 values; exact first
//! state d × f64; compressed the compressor's message.

use super::{Down, Update};
use crate::checkpoint::{StateReader, StateWriter};
use crate::compress::wire::{ceil_log2, put_f64, Reader};
use crate::compress::{self, Compressor};
use crate::error::{Error, Result};
use crate::rng::{self, Purpose, Stream};

const NAME: &str = "downlink";

const NONE: u8 = 0;
const DENSE: u8 = 1;
const SPARSE: u8 = 2;
const EXACT_STATE: u8 = 3;
const COMPRESSED: u8 = 4;

/// The compressed downlink's state (g̃ and its compressor), identical on every rank.
struct Compression {
    compressor: Box<dyn Compressor>,
    /// 1 for a contractive compressor, 1/(ω+1) for an unbiased one.
    scale: f64,
    coins: Stream,
    support: Stream,
    /// g̃: the workers' copy of the server's direction.
    state: Vec<f64>,
    started: bool,
    diff: Vec<f64>,
}

pub struct Downlink {
    dim: usize,
    index_bits: u64,
    compression: Option<Compression>,
    /// The last compressed message (server side), or the received payload.
    message: Vec<u8>,
    /// Whether the last compressed Down was the exact first state.
    sent_exact: bool,
    dense: Vec<f64>,
    indices: Vec<u32>,
    values: Vec<f64>,
    extra: Vec<u8>,
    received_kind: u8,
    received_step: f64,
}

impl Downlink {
    /// `spec`: the `--down-compressor` SPEC; `identity` means uncompressed.
    pub fn new(spec: &str, dim: usize, seed: u64) -> Result<Downlink> {
        let compression = if spec.trim() == "identity" {
            None
        } else {
            let compressor = compress::build(spec, dim, seed)?;
            if let Some(method) = compressor.only_for_method() {
                return Err(Error::config(
                    format!("--down-compressor {spec}: it is the compressor of --method {method}"),
                    "choose a compressor of the catalogue, e.g. --down-compressor top-k:k=K",
                ));
            }
            let scale = compressor.class().contractive_scale();
            Some(Compression {
                compressor,
                scale,
                coins: rng::shared(seed, Purpose::Downlink),
                support: rng::shared(seed, Purpose::DownlinkSupport),
                state: vec![0.0; dim],
                started: false,
                diff: vec![0.0; dim],
            })
        };
        Ok(Downlink {
            dim,
            index_bits: u64::from(ceil_log2(dim as u64)),
            compression,
            message: Vec::new(),
            sent_exact: false,
            dense: Vec::new(),
            indices: Vec::new(),
            values: Vec::new(),
            extra: Vec::new(),
            received_kind: NONE,
            received_step: 0.0,
        })
    }

    pub fn is_compressed(&self) -> bool {
        self.compression.is_some()
    }

    /// The compressed downlink's state: g̃, whether the exact first state was sent, and the
    /// compressor's streams (nothing for an uncompressed downlink).
    pub fn save(&self, w: &mut StateWriter) {
        w.bool("compressed", self.compression.is_some());
        if let Some(c) = &self.compression {
            w.f64s("broadcast state", &c.state);
            w.bool("started", c.started);
            w.stream("coins", &c.coins);
            w.stream("supports", &c.support);
        }
    }

    pub fn load(&mut self, r: &mut StateReader) -> Result<()> {
        if r.bool("compressed")? != self.compression.is_some() {
            return Err(Error::Checkpoint {
                what: "the checkpoint's downlink compression differs from --down-compressor".into(),
            });
        }
        if let Some(c) = self.compression.as_mut() {
            r.f64s_into("broadcast state", &mut c.state)?;
            c.started = r.bool("started")?;
            r.stream("coins", &mut c.coins)?;
            r.stream("supports", &mut c.support)?;
        }
        Ok(())
    }

    /// On the server (every replica, or rank 0): prepares the downlink of `down` — with a
    /// compressed downlink, this round's message C(v − g̃) and the new g̃. Then `view`
    /// gives the Down the workers apply.
    pub fn prepare(&mut self, down: &Down) -> Result<()> {
        let Some(c) = self.compression.as_mut() else { return Ok(()) };
        let v = match down.update {
            Update::Dense(v) => v,
            Update::None => return Ok(()),
            Update::Sparse { .. } => {
                return Err(Error::config(
                    "--down-compressor with a method whose downlink is a sparse update",
                    "use --down-compressor identity with this method",
                ))
            }
        };
        self.sent_exact = !c.started;
        if c.started {
            c.diff.iter_mut().zip(v).zip(&c.state).for_each(|((d, vj), s)| *d = vj - s);
            c.compressor.begin_round(&mut c.support);
            c.compressor.encode(&c.diff, &mut c.coins, &mut self.message);
            c.compressor.decode_add(&self.message, c.scale, &mut c.state)?;
        } else {
            c.state.copy_from_slice(v);
            c.started = true;
        }
        Ok(())
    }

    /// The Down the workers apply, after `prepare` or `receive`: with a compressed
    /// downlink a dense update is replaced by g̃.
    pub fn view<'a>(&'a self, down: Down<'a>) -> Down<'a> {
        match (&self.compression, down.update) {
            (Some(c), Update::Dense(_)) => Down { update: Update::Dense(&c.state), ..down },
            _ => down,
        }
    }

    /// Paper bits per worker of a Down produced by `compress` (§0.4).
    pub fn paper_bits(&self, down: &Down) -> u64 {
        let update = match (&self.compression, down.update) {
            (_, Update::None) => 0,
            _ if down.mirrored => 0,
            (Some(c), Update::Dense(_)) if !self.sent_exact => c.compressor.paper_bits(&self.message),
            (_, Update::Dense(v)) => 32 * v.len() as u64,
            (_, Update::Sparse { indices, .. }) => indices.len() as u64 * (32 + self.index_bits),
        };
        update + down.extra_bits
    }

    /// The broadcast bytes of a Down produced by `compress`.
    pub fn encode(&self, down: &Down, out: &mut Vec<u8>) {
        out.clear();
        let kind = match (&self.compression, down.update) {
            (_, Update::None) => NONE,
            (Some(_), Update::Dense(_)) if self.sent_exact => EXACT_STATE,
            (Some(_), Update::Dense(_)) => COMPRESSED,
            (None, Update::Dense(_)) => DENSE,
            (_, Update::Sparse { .. }) => SPARSE,
        };
        out.push(kind);
        put_f64(out, down.step);
        out.extend_from_slice(&(down.extra.len() as u64).to_le_bytes());
        out.extend_from_slice(down.extra);
        match (kind, down.update) {
            (COMPRESSED, _) => out.extend_from_slice(&self.message),
            (_, Update::Dense(v)) => v.iter().for_each(|&x| put_f64(out, x)),
            (_, Update::Sparse { indices, values }) => {
                out.extend_from_slice(&(indices.len() as u64).to_le_bytes());
                indices.iter().for_each(|j| out.extend_from_slice(&j.to_le_bytes()));
                values.iter().for_each(|&x| put_f64(out, x));
            }
            (_, Update::None) => {}
        }
    }

    /// On the other ranks of the server topology: takes in the broadcast `bytes`; then
    /// `received` gives the Down.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<()> {
        let mut r = Reader::new(bytes, NAME);
        let kind = r.take(1)?[0];
        self.received_step = r.f64()?;
        let extra_len = read_len(&mut r, bytes.len())?;
        self.extra.clear();
        self.extra.extend_from_slice(r.take(extra_len)?);
        let d = self.dim;
        match kind {
            NONE => r.finish()?,
            DENSE | EXACT_STATE => {
                self.dense.clear();
                for _ in 0..d {
                    self.dense.push(r.f64()?);
                }
                r.finish()?;
            }
            SPARSE => {
                let n = read_len(&mut r, bytes.len())?;
                self.indices.clear();
                self.values.clear();
                for _ in 0..n {
                    let b = r.take(4)?;
                    self.indices.push(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                }
                for _ in 0..n {
                    self.values.push(r.f64()?);
                }
                r.finish()?;
                if self.indices.iter().any(|&j| j as usize >= d) || self.indices.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(Error::wire(NAME, "sparse update indices not increasing below d"));
                }
            }
            COMPRESSED => {
                self.message.clear();
                self.message.extend_from_slice(r.take(bytes.len() - (1 + 8 + 8 + extra_len))?);
            }
            other => return Err(Error::wire(NAME, format!("unknown downlink kind {other}"))),
        }
        if kind == EXACT_STATE || kind == COMPRESSED {
            let Some(c) = self.compression.as_mut() else {
                return Err(Error::wire(NAME, "a compressed downlink, but this rank has no --down-compressor"));
            };
            if kind == EXACT_STATE {
                c.state.copy_from_slice(&self.dense);
                c.started = true;
            } else {
                c.compressor.begin_round(&mut c.support);
                c.compressor.decode_add(&self.message, c.scale, &mut c.state)?;
            }
        }
        self.received_kind = kind;
        Ok(())
    }

    /// The Down of the last `receive`.
    pub fn received(&self) -> Down<'_> {
        let update = match (self.received_kind, &self.compression) {
            (DENSE, _) => Update::Dense(&self.dense),
            (SPARSE, _) => Update::Sparse { indices: &self.indices, values: &self.values },
            (EXACT_STATE | COMPRESSED, Some(c)) => Update::Dense(&c.state),
            _ => Update::None,
        };
        Down { step: self.received_step, update, extra: &self.extra, extra_bits: 0, counted: false, mirrored: false }
    }
}

/// A u64 length field that cannot exceed the message it is in.
fn read_len(r: &mut Reader, total: usize) -> Result<usize> {
    let b = r.take(8)?;
    let n = u64::from_le_bytes(b.try_into().expect("8 bytes"));
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= total)
        .ok_or_else(|| r.error(format!("length field {n} exceeds the message")))
}

/// x ← x − step·update.
pub fn apply(down: &Down, x: &mut [f64]) {
    let step = down.step;
    match down.update {
        Update::None => {}
        Update::Dense(v) => x.iter_mut().zip(v).for_each(|(xj, vj)| *xj -= step * vj),
        Update::Sparse { indices, values } => {
            for (&j, &v) in indices.iter().zip(values) {
                x[j as usize] -= step * v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(spec: &str, downs: &[Down]) -> Vec<Vec<f64>> {
        let (mut server, mut worker) = (Downlink::new(spec, 4, 1).unwrap(), Downlink::new(spec, 4, 1).unwrap());
        let mut out = Vec::new();
        let mut models = Vec::new();
        for down in downs {
            server.prepare(down).unwrap();
            let sent = server.view(*down);
            server.encode(&sent, &mut out);
            let mut x_server = vec![1.0; 4];
            apply(&sent, &mut x_server);
            worker.receive(&out).unwrap();
            let received = worker.received();
            let mut x_worker = vec![1.0; 4];
            apply(&received, &mut x_worker);
            assert_eq!(x_server, x_worker, "{spec}");
            assert_eq!(received.extra, sent.extra);
            models.push(x_worker);
        }
        models
    }

    /// Every kind of Down reaches the workers bit for bit, uncompressed.
    #[test]
    fn uncompressed_downlinks_are_lossless() {
        let v = [0.1, -2.5e-300, 1.0 / 3.0, 7.0];
        let models = round_trip(
            "identity",
            &[
                Down::dense(0.5, &v),
                Down::sparse(2.0, &[1, 3], &[0.25, -1.0 / 7.0]),
                Down::nothing().with_extra(&[1, 2, 3], 24),
            ],
        );
        assert_eq!(models[0], [1.0 - 0.05, 1.0 + 0.5 * 2.5e-300, 1.0 - 0.5 / 3.0, -2.5]);
        assert_eq!(models[1], [1.0, 0.5, 1.0, 1.0 + 2.0 / 7.0]);
        assert_eq!(models[2], [1.0; 4]);
    }

    /// §G.3: the first state is exact, then g̃ moves by C(v − g̃) on both sides alike; with
    /// Top-1 a constant v is reached coordinate by coordinate.
    #[test]
    fn compressed_downlink_tracks_the_update() {
        let v = [4.0, -3.0, 2.0, 1.0];
        let mut server = Downlink::new("top-k:k=1", 4, 1).unwrap();
        let zero = [0.0; 4];
        server.prepare(&Down::dense(1.0, &zero)).unwrap();
        let first = server.view(Down::dense(1.0, &zero));
        assert_eq!(server.paper_bits(&first), 32 * 4, "the first state is sent exactly");
        let mut states = Vec::new();
        for _ in 0..4 {
            server.prepare(&Down::dense(1.0, &v)).unwrap();
            let down = server.view(Down::dense(1.0, &v));
            assert_eq!(server.paper_bits(&down), 32 + 2);
            let Update::Dense(state) = down.update else { panic!() };
            states.push(state.to_vec());
        }
        assert_eq!(states[0], [4.0, 0.0, 0.0, 0.0]);
        assert_eq!(states[3], v);
        round_trip(
            "top-k:k=1",
            &[Down::dense(1.0, &v), Down::dense(0.5, &[1.0, 2.0, 0.0, -1.0]), Down::dense(1.0, &v)],
        );
    }

    #[test]
    fn truncated_or_corrupt_downlinks_are_wire_errors() {
        let mut server = Downlink::new("identity", 4, 1).unwrap();
        let mut out = Vec::new();
        let down = Down::sparse(1.0, &[0, 2], &[1.0, 2.0]);
        server.prepare(&down).unwrap();
        server.encode(&server.view(down), &mut out);
        let mut worker = Downlink::new("identity", 4, 1).unwrap();
        for len in 0..out.len() {
            assert!(matches!(worker.receive(&out[..len]), Err(Error::Wire { .. })), "prefix {len}");
        }
        let mut bad = out.clone();
        bad[0] = 9;
        assert!(worker.receive(&bad).is_err());
        // A length field claiming more than the message holds is an error, not an allocation.
        let mut huge = out.clone();
        huge[9..17].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(worker.receive(&huge).is_err());
        let mut unsorted = out.clone();
        unsorted[25..29].copy_from_slice(&3u32.to_le_bytes());
        assert!(worker.receive(&unsorted).is_err());
        assert!(Downlink::new("sketch:rows=3,cols=4", 4, 1).is_err());
    }
}
