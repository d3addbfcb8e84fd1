//! `qtrain report`: reads result files and prints a plain-text table, one row per run:
//! what ran, how far it got, and what a round cost (bytes per rank, time split). The
//! scaling benchmark and the cluster workflow build on it.

pub mod compare;
pub mod plot;

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// What one result file says, as the table shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    pub path: PathBuf,
    /// The method SPEC, with "(server)" on the server topology.
    pub method: String,
    /// The compressor SPEC, with "↓SPEC" for a compressed downlink.
    pub compressor: String,
    pub ranks: u64,
    pub workers: u64,
    pub rounds: u64,
    pub final_loss: f64,
    pub final_gap: f64,
    pub bits_up: u64,
    pub bits_down: u64,
    /// Median over rounds of the method bytes one rank contributed.
    pub bytes_per_rank_round: f64,
    /// Median over rounds of the method bytes rank 0 received.
    pub recv_bytes_round: f64,
    /// The first evaluated round with f − f* ≤ the `--target`: (round, bits up, bits
    /// down, training seconds); None when no target was asked or the run never got there.
    pub reached: Option<(u64, u64, u64, f64)>,
    /// Medians over rounds, in seconds.
    pub t_compute: f64,
    pub t_compress: f64,
    pub t_comm: f64,
    pub t_decode: f64,
}

impl RunSummary {
    pub fn t_round(&self) -> f64 {
        self.t_compute + self.t_compress + self.t_comm + self.t_decode
    }
}

pub fn read(path: &Path, target: Option<f64>) -> Result<RunSummary> {
    let h5 = |e: hdf5::Error| Error::hdf5(path, e);
    if !path.exists() {
        return Err(Error::io(path, "no such result file"));
    }
    let file = hdf5::File::open(path).map_err(h5)?;
    let text = |name: &str| -> Result<String> {
        let v: hdf5::types::VarLenUnicode = file.attr(name).and_then(|a| a.read_scalar()).map_err(h5)?;
        Ok(v.as_str().to_string())
    };
    let number = |name: &str| -> Result<u64> { file.attr(name).and_then(|a| a.read_scalar()).map_err(h5) };
    let f64s = |name: &str| -> Result<Vec<f64>> {
        file.dataset(&format!("metrics/{name}")).and_then(|d| d.read_raw()).map_err(h5)
    };
    let u64s = |name: &str| -> Result<Vec<u64>> {
        file.dataset(&format!("metrics/{name}")).and_then(|d| d.read_raw()).map_err(h5)
    };
    let ranks = number("ranks")?;
    let loss = f64s("loss")?;
    let gap = f64s("f_gap")?;
    let bits = u64s("bits_up")?;
    let wire: Vec<f64> = u64s("wire_bytes_round")?.iter().skip(1).map(|&b| b as f64 / ranks as f64).collect();
    let iters = u64s("iter")?;
    let rounds = iters.last().copied().unwrap_or(0);
    let time = f64s("time")?;
    let down = u64s("bits_down")?;
    let reached = target.and_then(|t| gap.iter().position(|&g| g <= t)).map(|i| (iters[i], bits[i], down[i], time[i]));
    let median_of = |name: &str| -> Result<f64> { Ok(median(f64s(name)?.into_iter().skip(1).collect())) };
    // Files of earlier versions have neither the method's keys nor a topology.
    let optional = |name: &str| text(name).ok();
    let mut method = optional("method_spec").unwrap_or(text("method")?);
    if optional("topology").as_deref() == Some("server") {
        method.push_str(" (server)");
    }
    let mut compressor = text("compressor")?;
    if let Some(down) = optional("down_compressor").filter(|c| c != "identity") {
        compressor.push_str(&format!(" ↓{down}"));
    }
    Ok(RunSummary {
        path: path.to_path_buf(),
        method,
        compressor,
        ranks,
        workers: number("workers")?,
        rounds,
        final_loss: loss.last().copied().unwrap_or(f64::NAN),
        final_gap: gap.last().copied().unwrap_or(f64::NAN),
        bits_up: bits.last().copied().unwrap_or(0),
        bits_down: down.last().copied().unwrap_or(0),
        reached,
        bytes_per_rank_round: median(wire),
        // Absent from files written before it was recorded.
        recv_bytes_round: u64s("recv_bytes_round")
            .map_or(f64::NAN, |v| median(v.iter().skip(1).map(|&b| b as f64).collect())),
        t_compute: median_of("t_compute")?,
        t_compress: median_of("t_compress")?,
        t_comm: median_of("t_comm")?,
        t_decode: median_of("t_decode")?,
    })
}

/// Writes the figures for `runs` into `dir`: convergence against rounds, bits and
/// time; with two or more rank counts, the scaling figures too. Returns the files.
pub fn figures(dir: &Path, runs: &[RunSummary]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, format!("cannot create the folder: {e}")))?;
    let curves = runs.iter().map(|r| plot::read_curves(&r.path, label(r))).collect::<Result<Vec<_>>>()?;
    let mut written = plot::convergence_figures(dir, &curves)?;
    let mut ranks: Vec<u64> = runs.iter().map(|r| r.ranks).collect();
    ranks.sort_unstable();
    ranks.dedup();
    if ranks.len() >= 2 {
        written.extend(plot::scaling_figures(dir, runs)?);
    }
    Ok(written)
}

/// A curve's legend: the file name, then what ran.
fn label(r: &RunSummary) -> String {
    let stem = r.path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    format!("{stem}: {} {} ({} ranks)", r.method, r.compressor, r.ranks)
}

/// The median (NaN for no values).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Rounds, bits and training time to reach f − f* ≤ `target`, one line per run.
pub fn target_table(runs: &[RunSummary], target: f64) -> String {
    let mut out = format!(
        "\n| run | round with f − f* ≤ {target:e} | bits up | bits down | training time (s) |\n|---|---:|---:|---:|---:|\n"
    );
    for r in runs {
        let name = r.path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        match r.reached {
            Some((round, up, down, time)) => {
                out.push_str(&format!("| {name} | {round} | {:.3e} | {:.3e} | {time:.3} |\n", up as f64, down as f64))
            }
            None => out.push_str(&format!("| {name} | not reached in {} rounds | | | |\n", r.rounds)),
        }
    }
    out
}

/// The table, in Markdown (readable in a terminal, pastes into BENCHMARKS.md).
pub fn table(runs: &[RunSummary]) -> String {
    let mut out = String::from(
        "| run | method | compressor | ranks | workers | rounds | f(x) | f − f* | bits up | bits down | sent B/rank/round | recv B/rank/round | µs/round | compute | compress | comm | decode |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in runs {
        let us = |t: f64| format!("{:.1}", 1e6 * t);
        let name = r.path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {:.6e} | {:.2e} | {:.3e} | {:.3e} | {:.0} | {:.0} | {} | {} | {} | {} | {} |\n",
            r.method,
            r.compressor,
            r.ranks,
            r.workers,
            r.rounds,
            r.final_loss,
            r.final_gap,
            r.bits_up as f64,
            r.bits_down as f64,
            r.bytes_per_rank_round,
            r.recv_bytes_round,
            us(r.t_round()),
            us(r.t_compute),
            us(r.t_compress),
            us(r.t_comm),
            us(r.t_decode),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
