//! `qtrain project`: a latency–bandwidth (α–β) model of one round at rank counts
//! beyond the machine, from a run's measured compute, compress and decode times and
//! its per-round collectives (calls and bytes, recorded in the result file).
//!
//! Per call, with p ranks, latency α and β = 1/bandwidth (seconds per byte):
//! * allreduce of n bytes: the faster of ring, 2(p−1)α + 2((p−1)/p)·nβ, and recursive
//!   doubling, ⌈log₂p⌉(α + nβ) (MPI libraries switch between them by size);
//! * allgather of m bytes per rank: recursive doubling / Bruck, ⌈log₂p⌉α + (p−1)·mβ;
//! * broadcast of n bytes: the faster of a binomial tree, ⌈log₂p⌉(α + nβ), and
//!   scatter + allgather, (⌈log₂p⌉ + p − 1)α + 2((p−1)/p)·nβ;
//! * gather of m bytes per rank to one root (`--topology server`): a binomial tree,
//!   ⌈log₂p⌉α + (p−1)·mβ (the root receives what an allgather delivers to every rank);
//! * reduce of n bytes to one root: the faster of a binomial tree, ⌈log₂p⌉(α + nβ), and
//!   reduce-scatter + gather, 2⌈log₂p⌉α + 2((p−1)/p)·nβ.
//!
//! Computation: with `--scaling strong` (fixed data) a rank's gradient time scales as
//! R/p; with `weak` (fixed rows per rank) it stays. Encoding is per worker and stays.
//! Decoding stays for allreduce methods and grows as p/R for allgather methods, which
//! decode every worker's message. Message sizes stay (one worker per rank).

use crate::error::{Error, Result};
use crate::report::median;
use std::path::Path;

/// A network: latency in seconds, bandwidth in bytes per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Network {
    pub latency: f64,
    pub bandwidth: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scaling {
    /// The data set is fixed: each rank's share shrinks as ranks grow.
    Strong,
    /// Each rank keeps its rows: the data set grows with the ranks.
    Weak,
}

/// Calls and total bytes of one kind of collective per round.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Calls {
    pub calls: f64,
    pub bytes: f64,
}

/// A run's median round.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub ranks: usize,
    pub t_compute: f64,
    pub t_compress: f64,
    pub t_decode: f64,
    pub t_comm: f64,
    pub allgather: Calls,
    pub allreduce: Calls,
    pub bcast: Calls,
    pub gather: Calls,
    pub reduce: Calls,
}

/// The model's round at p ranks, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Projection {
    pub ranks: usize,
    pub compute: f64,
    pub compress: f64,
    pub decode: f64,
    pub allgather: f64,
    pub allreduce: f64,
    pub bcast: f64,
    pub gather: f64,
    pub reduce: f64,
}

impl Projection {
    pub fn comm(&self) -> f64 {
        self.allgather + self.allreduce + self.bcast + self.gather + self.reduce
    }

    pub fn total(&self) -> f64 {
        self.compute + self.compress + self.decode + self.comm()
    }
}

fn log2_ceil(p: usize) -> f64 {
    (p as f64).log2().ceil()
}

pub fn allreduce(n: f64, p: usize, net: Network) -> f64 {
    if p <= 1 {
        return 0.0;
    }
    let (a, b, pf) = (net.latency, 1.0 / net.bandwidth, p as f64);
    let ring = 2.0 * (pf - 1.0) * a + 2.0 * (pf - 1.0) / pf * n * b;
    let doubling = log2_ceil(p) * (a + n * b);
    ring.min(doubling)
}

pub fn allgather(m: f64, p: usize, net: Network) -> f64 {
    if p <= 1 {
        return 0.0;
    }
    log2_ceil(p) * net.latency + (p as f64 - 1.0) * m / net.bandwidth
}

pub fn bcast(n: f64, p: usize, net: Network) -> f64 {
    if p <= 1 {
        return 0.0;
    }
    let (a, b, pf) = (net.latency, 1.0 / net.bandwidth, p as f64);
    let tree = log2_ceil(p) * (a + n * b);
    let scatter_allgather = (log2_ceil(p) + pf - 1.0) * a + 2.0 * (pf - 1.0) / pf * n * b;
    tree.min(scatter_allgather)
}

pub fn gather(m: f64, p: usize, net: Network) -> f64 {
    allgather(m, p, net)
}

pub fn reduce(n: f64, p: usize, net: Network) -> f64 {
    if p <= 1 {
        return 0.0;
    }
    let (a, b, pf) = (net.latency, 1.0 / net.bandwidth, p as f64);
    let tree = log2_ceil(p) * (a + n * b);
    let scatter_gather = 2.0 * log2_ceil(p) * a + 2.0 * (pf - 1.0) / pf * n * b;
    tree.min(scatter_gather)
}

/// `calls` calls sharing `bytes` in total, each costed at the mean size.
fn per_call(c: Calls, cost: impl Fn(f64) -> f64) -> f64 {
    if c.calls == 0.0 {
        0.0
    } else {
        c.calls * cost(c.bytes / c.calls)
    }
}

pub fn project(m: &Measured, p: usize, net: Network, scaling: Scaling) -> Projection {
    let ratio = m.ranks as f64 / p as f64;
    Projection {
        ranks: p,
        compute: match scaling {
            Scaling::Strong => m.t_compute * ratio,
            Scaling::Weak => m.t_compute,
        },
        compress: m.t_compress,
        decode: if m.allgather.calls > 0.0 || m.gather.calls > 0.0 { m.t_decode / ratio } else { m.t_decode },
        allgather: per_call(m.allgather, |b| allgather(b, p, net)),
        allreduce: per_call(m.allreduce, |b| allreduce(b, p, net)),
        bcast: per_call(m.bcast, |b| bcast(b, p, net)),
        gather: per_call(m.gather, |b| gather(b, p, net)),
        reduce: per_call(m.reduce, |b| reduce(b, p, net)),
    }
}

/// The median round of a result file (rounds ≥ 1).
pub fn read(path: &Path) -> Result<Measured> {
    let h5 = |e: hdf5::Error| Error::hdf5(path, e);
    let file = hdf5::File::open(path).map_err(h5)?;
    // The median over rounds ≥ 1 of a column (0 for a run of no rounds).
    let column = |name: &str| -> Result<f64> {
        let ds = file.dataset(&format!("metrics/{name}")).map_err(|_| Error::Io {
            path: path.to_path_buf(),
            what: format!("has no metrics/{name}: written by an older qtrain; rerun the training"),
        })?;
        let values: Vec<f64> = match ds.dtype().map_err(h5)?.size() {
            8 if name.starts_with("t_") => ds.read_raw::<f64>().map_err(h5)?,
            _ => ds.read_raw::<u64>().map_err(h5)?.into_iter().map(|v| v as f64).collect(),
        };
        let m = median(values.into_iter().skip(1).collect());
        Ok(if m.is_nan() { 0.0 } else { m })
    };
    let ranks: u64 = file.attr("ranks").and_then(|a| a.read_scalar()).map_err(h5)?;
    let calls = |kind: &str| -> Result<Calls> {
        Ok(Calls { calls: column(&format!("{kind}_calls_round"))?, bytes: column(&format!("{kind}_bytes_round"))? })
    };
    // Files written before the server topology have no gather or reduce columns: none ran.
    let calls_if_present = |kind: &str| -> Result<Calls> {
        match file.dataset(&format!("metrics/{kind}_calls_round")) {
            Ok(_) => calls(kind),
            Err(_) => Ok(Calls::default()),
        }
    };
    Ok(Measured {
        ranks: ranks as usize,
        t_compute: column("t_compute")?,
        t_compress: column("t_compress")?,
        t_decode: column("t_decode")?,
        t_comm: column("t_comm")?,
        allgather: calls("allgather")?,
        allreduce: calls("allreduce")?,
        bcast: calls("bcast")?,
        gather: calls_if_present("gather")?,
        reduce: calls_if_present("reduce")?,
    })
}

/// Parses `10Gbit/s`, `1gbit`, `100Mbit/s`, `1.25GB/s`, `500MB/s` into bytes per second
/// (a lower-case `b` or `bit` is bits, an upper-case `B` bytes).
pub fn parse_bandwidth(text: &str) -> Result<f64> {
    let t = text.trim();
    let t = t.strip_suffix("/s").or_else(|| t.strip_suffix("ps")).unwrap_or(t);
    let split = t.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(|| bad_bandwidth(text))?;
    let (number, unit) = t.split_at(split);
    let value: f64 = number.trim().parse().map_err(|_| bad_bandwidth(text))?;
    let (prefix, base) = match unit.chars().next() {
        Some(c) if "kKmMgGtT".contains(c) && unit.len() > 1 => unit.split_at(1),
        _ => ("", unit),
    };
    let scale = match prefix.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        _ => 1e12,
    };
    let bits = match base {
        "b" | "bit" => 1.0,
        "B" | "byte" => 8.0,
        _ => return Err(bad_bandwidth(text)),
    };
    let bytes_per_s = value * scale * bits / 8.0;
    if !(bytes_per_s > 0.0 && bytes_per_s.is_finite()) {
        return Err(bad_bandwidth(text));
    }
    Ok(bytes_per_s)
}

fn bad_bandwidth(text: &str) -> Error {
    Error::config(format!("--bandwidth {text}"), "write e.g. 10Gbit/s, 1gbit, 100Mbit/s or 1.25GB/s")
}

/// Parses `2us`, `1.5ms`, `50ns`, `0.001s`, `0` into seconds.
pub fn parse_latency(text: &str) -> Result<f64> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic() || c == 'µ').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.trim().parse().map_err(|_| bad_latency(text))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        _ => return Err(bad_latency(text)),
    };
    if !(value >= 0.0 && value.is_finite()) {
        return Err(bad_latency(text));
    }
    Ok(value * scale)
}

fn bad_latency(text: &str) -> Error {
    Error::config(format!("--latency {text}"), "write e.g. 2us, 1.5ms or 0")
}

/// The table `qtrain project` prints (µs per round).
pub fn table(m: &Measured, rows: &[Projection]) -> String {
    let mut out = format!(
        "measured at {} ranks (median round): compute {:.1} µs, compress {:.1} µs, decode {:.1} µs, comm {:.1} µs\n\n",
        m.ranks,
        1e6 * m.t_compute,
        1e6 * m.t_compress,
        1e6 * m.t_decode,
        1e6 * m.t_comm
    );
    out.push_str("| ranks | compute µs | compress µs | decode µs | allgather µs | allreduce µs | bcast µs | gather µs | reduce µs | comm µs | total µs | comm share |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let us = |v: f64| format!("{:.1}", 1e6 * v);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} % |\n",
            r.ranks,
            us(r.compute),
            us(r.compress),
            us(r.decode),
            us(r.allgather),
            us(r.allreduce),
            us(r.bcast),
            us(r.gather),
            us(r.reduce),
            us(r.comm()),
            us(r.total()),
            100.0 * r.comm() / r.total().max(f64::MIN_POSITIVE)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: Network = Network { latency: 2e-6, bandwidth: 1.25e9 };

    #[test]
    fn units_parse() {
        assert_eq!(parse_bandwidth("10Gbit/s").unwrap(), 1.25e9);
        assert_eq!(parse_bandwidth("1gbit").unwrap(), 1.25e8);
        assert_eq!(parse_bandwidth("100Mbit/s").unwrap(), 1.25e7);
        assert_eq!(parse_bandwidth("1.25GB/s").unwrap(), 1.25e9);
        assert!(parse_bandwidth("fast").is_err());
        assert!(parse_bandwidth("0gbit").is_err());
        assert_eq!(parse_latency("2us").unwrap(), 2e-6);
        assert_eq!(parse_latency("1.5ms").unwrap(), 1.5e-3);
        assert_eq!(parse_latency("0").unwrap(), 0.0);
        assert!(parse_latency("-1us").is_err());
    }

    /// Closed forms at p = 4 (two doubling steps), checked by hand.
    #[test]
    fn collective_costs_match_the_closed_forms() {
        let n = 1e6;
        let ring = 2.0 * 3.0 * 2e-6 + 2.0 * 0.75 * n / 1.25e9;
        let doubling = 2.0 * (2e-6 + n / 1.25e9);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
        assert!(close(allreduce(n, 4, NET), ring.min(doubling)));
        assert!(close(allgather(1000.0, 4, NET), 2.0 * 2e-6 + 3.0 * 1000.0 / 1.25e9));
        assert_eq!(allreduce(n, 1, NET), 0.0);
        // Small messages: the tree broadcast wins; huge ones: scatter + allgather.
        assert!(close(bcast(8.0, 64, NET), 6.0 * (2e-6 + 8.0 / 1.25e9)));
        assert!(bcast(1e9, 64, NET) < 6.0 * (2e-6 + 1e9 / 1.25e9));
    }

    /// Without latency, an allreduce's cost stays below 2nβ for any p while an
    /// allgather's grows as (p−1)mβ: the reason summable compression scales.
    #[test]
    fn allgather_grows_with_ranks_and_allreduce_does_not() {
        let net = Network { latency: 0.0, bandwidth: 1.25e9 };
        let n = 8e4;
        for p in [2, 16, 1024, 4096] {
            assert!(allreduce(n, p, net) <= 2.0 * n / 1.25e9 * (1.0 + 1e-12), "p = {p}");
            assert!((allgather(n, p, net) - (p as f64 - 1.0) * n / 1.25e9).abs() < 1e-15);
        }
    }

    /// A gather to one root costs what an allgather costs its receivers; a small reduce
    /// is a tree, a large one reduce-scatter + gather (2(p−1)/p·nβ, below 2nβ).
    #[test]
    fn gather_and_reduce_follow_their_formulas() {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
        assert!(close(gather(1000.0, 4, NET), allgather(1000.0, 4, NET)));
        assert!(close(reduce(8.0, 64, NET), 6.0 * (2e-6 + 8.0 / 1.25e9)));
        let n = 1e9;
        assert!(close(reduce(n, 64, NET), 12.0 * 2e-6 + 2.0 * 63.0 / 64.0 * n / 1.25e9));
        assert_eq!(reduce(n, 1, NET), 0.0);
    }

    #[test]
    fn strong_scaling_divides_compute_and_allgather_decode_grows() {
        let m = Measured {
            ranks: 4,
            t_compute: 4e-3,
            t_compress: 1e-4,
            t_decode: 2e-5,
            t_comm: 1e-4,
            allgather: Calls { calls: 2.0, bytes: 1000.0 },
            allreduce: Calls::default(),
            bcast: Calls::default(),
            gather: Calls::default(),
            reduce: Calls::default(),
        };
        let p = project(&m, 64, NET, Scaling::Strong);
        assert!((p.compute - 2.5e-4).abs() < 1e-15);
        assert!((p.decode - 3.2e-4).abs() < 1e-15);
        assert_eq!(p.compress, 1e-4);
        assert!((project(&m, 64, NET, Scaling::Weak).compute - 4e-3).abs() < 1e-15);
    }
}
