//! The plain-text summary rank 0 prints at the end of a run.

use super::Row;

/// What the summary reports besides the last row.
pub struct RunInfo<'a> {
    pub method: &'a str,
    pub compressor: &'a str,
    pub ranks: usize,
    pub workers: usize,
    pub status: &'a str,
    pub test_accuracy: Option<f64>,
    pub rounds: u64,
}

fn human_bits(bits: u64) -> String {
    let b = bits as f64;
    match b {
        b if b >= 1e9 => format!("{:.3} Gbit", b / 1e9),
        b if b >= 1e6 => format!("{:.3} Mbit", b / 1e6),
        b if b >= 1e3 => format!("{:.3} kbit", b / 1e3),
        b => format!("{b} bit"),
    }
}

pub fn render(info: &RunInfo, last: &Row, totals: &Row) -> String {
    let per_round = |v: f64| if info.rounds > 0 { v / info.rounds as f64 } else { 0.0 };
    let mut lines = vec![
        format!("method            {} ({})", info.method, info.compressor),
        format!("ranks / workers   {} / {}", info.ranks, info.workers),
        format!("rounds            {} ({})", info.rounds, info.status),
        format!("f(x)              {:.12e}", last.loss),
        format!("‖∇f(x)‖²          {:.3e}", last.grad_norm_sq),
    ];
    if last.f_gap.is_finite() {
        lines.push(format!("f(x) − f*         {:.3e}", last.f_gap));
    }
    if let Some(acc) = info.test_accuracy {
        lines.push(format!("test accuracy     {:.2} %", 100.0 * acc));
    }
    lines.extend([format!(
        "bits up (paper)   {} ({} per round)",
        human_bits(last.bits_up),
        human_bits(per_round(last.bits_up as f64) as u64)
    )]);
    if last.bits_down > 0 {
        lines.push(format!(
            "bits down (paper) {} ({} per round)",
            human_bits(last.bits_down),
            human_bits(per_round(last.bits_down as f64) as u64)
        ));
    }
    lines.extend([
        format!("wire bytes        {:.3} MB", last.wire_bytes as f64 / 1e6),
        format!("training time     {:.3} s ({:.1} µs per round)", last.time, 1e6 * per_round(last.time)),
        format!(
            "time split        compute {:.1} % · compress {:.1} % · comm {:.1} % · decode {:.1} %",
            percent(totals.t_compute, last.time),
            percent(totals.t_compress, last.time),
            percent(totals.t_comm, last.time),
            percent(totals.t_decode, last.time)
        ),
    ]);
    lines.join("\n")
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        100.0 * part / whole
    } else {
        0.0
    }
}
