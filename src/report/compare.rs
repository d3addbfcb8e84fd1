//! `qtrain compare A B`: are two result files the same run, bit for bit? What a resumed,
//! preempted or requeued run is checked with against an uninterrupted one (jobs/README.md,
//! scripts/test-slurm.sh). Compared: every `/metrics` column but the timings, the test
//! and diagnostic series, the final model and its digest. With `--across-layouts`, also
//! the columns that depend on the rank layout are left out, for runs on different rank
//! counts with the same `--workers`.

use crate::error::{Error, Result};
use hdf5::types::TypeDescriptor;
use std::path::Path;

/// Columns that measure the machine, not the run.
pub fn is_timing(column: &str) -> bool {
    column == "time" || column.starts_with("t_")
}

/// Columns that count what the ranks sent or received: they change with the rank count
/// while the run itself does not (one rank's share of an allgather; the bytes all ranks
/// put into an allreduce, one vector each).
pub const LAYOUT_COLUMNS: [&str; 7] = [
    "recv_bytes_round",
    "allgather_bytes_round",
    "gather_bytes_round",
    "allgather_calls_round",
    "gather_calls_round",
    "wire_bytes",
    "wire_bytes_round",
];

/// The series compared besides `/metrics`, where a file has them.
const SERIES: [&str; 2] = ["test/accuracy", "diagnostics/leader_overlap/value"];

/// The verdict, in the one line that `qtrain compare` prints.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// What was compared.
    Same { rows: usize, columns: usize, series: usize, x_digest: String },
    /// Each compared item that differs, with its first differing row.
    Differ(Vec<String>),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Same { rows, columns, series, x_digest } => write!(
                f,
                "same run: {rows} rows × {columns} columns (timings aside), {series} series and the final model (x_digest {x_digest}) bit for bit"
            ),
            Verdict::Differ(items) => write!(f, "different runs: {}", items.join("; ")),
        }
    }
}

/// Bit patterns of a dataset: floats compare bit for bit (a NaN equals the same NaN).
fn bits(file: &hdf5::File, name: &str) -> hdf5::Result<Vec<u64>> {
    let ds = file.dataset(name)?;
    match ds.dtype()?.to_descriptor()? {
        TypeDescriptor::Float(_) => Ok(ds.read_raw::<f64>()?.iter().map(|v| v.to_bits()).collect()),
        _ => ds.read_raw::<u64>(),
    }
}

fn shown(bits: u64, float: bool) -> String {
    if float {
        format!("{:e}", f64::from_bits(bits))
    } else {
        bits.to_string()
    }
}

/// The first difference of two datasets, in words; None when equal. With `prefix`,
/// only the rows both have are compared (the row counts are reported once, elsewhere).
fn difference(name: &str, a: &[u64], b: &[u64], float: bool, iters: &[u64], prefix: bool) -> Option<String> {
    if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
        let at = iters.get(i).map_or(String::new(), |t| format!(" (iter {t})"));
        return Some(format!("{name}: row {i}{at}: {} vs {}", shown(a[i], float), shown(b[i], float)));
    }
    (a.len() != b.len() && !prefix).then(|| format!("{name}: {} rows vs {}", a.len(), b.len()))
}

pub fn compare(a: &Path, b: &Path, across_layouts: bool) -> Result<Verdict> {
    let open = |p: &Path| hdf5::File::open(p).map_err(|e| Error::hdf5(p, e));
    let (fa, fb) = (open(a)?, open(b)?);
    let h5 = |e: hdf5::Error| Error::hdf5(a, e);
    let columns = fa.group("metrics").and_then(|g| g.member_names()).map_err(h5)?;
    let iters = bits(&fa, "metrics/iter").map_err(h5)?;
    let rows_b = bits(&fb, "metrics/iter").map_err(|e| Error::hdf5(b, e))?.len();
    let mut differences = Vec::new();
    if iters.len() != rows_b {
        differences.push(format!("/metrics: {} rows vs {rows_b}", iters.len()));
    }
    let mut compared = 0;
    let wanted = |c: &String| !(is_timing(c) || across_layouts && LAYOUT_COLUMNS.contains(&c.as_str()));
    for column in columns.iter().filter(|c| wanted(c)) {
        let name = format!("metrics/{column}");
        let float = matches!(
            fa.dataset(&name).and_then(|d| d.dtype()).and_then(|t| t.to_descriptor()),
            Ok(TypeDescriptor::Float(_))
        );
        let other = bits(&fb, &name).map_err(|e| Error::hdf5(b, e))?;
        differences.extend(difference(&name, &bits(&fa, &name).map_err(h5)?, &other, float, &iters, true));
        compared += 1;
    }
    let mut series = 0;
    for name in SERIES.iter().filter(|s| fa.link_exists(s) || fb.link_exists(s)) {
        match (bits(&fa, name), bits(&fb, name)) {
            (Ok(x), Ok(y)) => differences.extend(difference(name, &x, &y, true, &[], false)),
            _ => differences.push(format!("{name}: in one file only")),
        }
        series += 1;
    }
    let digest = |f: &hdf5::File, p: &Path| -> Result<String> {
        let v: hdf5::types::VarLenUnicode =
            f.attr("x_digest").and_then(|a| a.read_scalar()).map_err(|e| Error::hdf5(p, e))?;
        Ok(v.as_str().to_string())
    };
    let (da, db) = (digest(&fa, a)?, digest(&fb, b)?);
    if da != db {
        differences.push(format!("final model: x_digest {da} vs {db}"));
    }
    let x = |f: &hdf5::File, p: &Path| bits(f, "model/x").map_err(|e| Error::hdf5(p, e));
    differences.extend(difference("model/x", &x(&fa, a)?, &x(&fb, b)?, true, &[], false));
    if differences.is_empty() {
        return Ok(Verdict::Same { rows: iters.len(), columns: compared, series, x_digest: da });
    }
    Ok(Verdict::Differ(differences))
}
