//! Sharded loading: each rank reads only the rows of its own logical workers.
//!
//! One file (`--data train.svm`) is read in two phases:
//! 1. each rank counts the rows of its 1/ranks byte range (aligned to line starts) and
//!    the counts are all-gathered, so every rank knows which byte range holds which
//!    global rows;
//! 2. each rank parses exactly the rows of its workers' blocks (`split::bounds`), which
//!    lie in its own range and at most its neighbours'.
//!
//! A pattern (`--data 'part-{rank}.svm'`) gives one file per rank, read whole, whose
//! rows are split among that rank's workers.
//!
//! Afterwards the ranks agree on the dimension (max index, or `--features`) and on the
//! label map. Every fallible step ends in `Comm::agree`, so a bad file on one rank stops
//! all ranks with the same message.

use super::csr::Csr;
use super::labels::LabelMap;
use super::libsvm::{self, Rows};
use super::split::{self, SplitRule};
use crate::comm::Comm;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Where the rows come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// One file, split by byte ranges.
    File(PathBuf),
    /// One file per rank; the pattern contains `{rank}`.
    PerRank(String),
}

impl Source {
    pub fn new(text: &str) -> Source {
        if text.contains("{rank}") {
            Source::PerRank(text.to_string())
        } else {
            Source::File(PathBuf::from(text))
        }
    }

    pub fn path_for(&self, rank: usize) -> PathBuf {
        match self {
            Source::File(p) => p.clone(),
            Source::PerRank(pattern) => PathBuf::from(pattern.replace("{rank}", &rank.to_string())),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::PerRank(pattern) => pattern.clone(),
        }
    }
}

/// The rows of one logical worker, labels mapped to ±1.
#[derive(Clone, Debug)]
pub struct WorkerData {
    /// Global worker id (0..W).
    pub id: usize,
    pub a: Csr,
    pub b: Vec<f64>,
}

/// What one rank holds after loading.
#[derive(Debug)]
pub struct Dataset {
    /// This rank's workers, in global id order.
    pub workers: Vec<WorkerData>,
    /// Rows of every worker (all ranks), indexed by global id.
    pub rows_per_worker: Vec<u64>,
    /// The model dimension d agreed by all ranks.
    pub dim: usize,
    pub labels: LabelMap,
}

impl Dataset {
    pub fn total_rows(&self) -> u64 {
        self.rows_per_worker.iter().sum()
    }
}

/// How rows map to workers and how wide the model is.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Logical workers W (a multiple of the rank count).
    pub workers: usize,
    pub split: SplitRule,
    /// `--features d`: the dimension, instead of the largest index found.
    pub features: Option<usize>,
    /// Ranks 0..data_free hold no rows (1: the asynchronous parameter server on rank 0);
    /// the workers are spread over the others.
    pub data_free: usize,
}

impl Layout {
    /// (the first worker of `rank`, how many it hosts) among `ranks`.
    pub fn workers_of(&self, rank: usize, ranks: usize) -> (usize, usize) {
        let per_rank = self.workers / (ranks - self.data_free);
        match rank.checked_sub(self.data_free) {
            Some(r) => (r * per_rank, per_rank),
            None => (0, 0),
        }
    }
}

pub fn load_training(comm: &mut Comm, source: &Source, layout: Layout) -> Result<Dataset> {
    let (rows, blocks, first_worker) = match source {
        Source::File(path) => read_own_blocks(comm, path, layout)?,
        Source::PerRank(pattern) if layout.data_free > 0 => {
            return Err(comm_error(
                comm,
                Error::config(
                    format!("--data {pattern} (one file per rank) with a data-free server rank"),
                    "the asynchronous execution reads one file split over the worker ranks: give --data FILE",
                ),
            ))
        }
        Source::PerRank(_) => read_own_file(comm, source, layout)?,
    };
    let local_workers = layout.workers_of(comm.rank(), comm.size()).1;
    let path = source.path_for(comm.rank());
    let dim = agree_dimension(comm, &rows, layout.features, &path)?;
    let labels = agree_label_map(comm, &rows.labels, source)?;
    let Rows { labels: mut raw, lines, mut matrix } = rows;
    let mapped = labels.apply(&mut raw, &lines, &path);
    comm.agree(mapped)?;
    matrix.cols = dim;
    let local = &blocks[first_worker..first_worker + local_workers + 1];
    let base = local[0];
    let workers = local
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let (a, b) = ((w[0] - base) as usize, (w[1] - base) as usize);
            WorkerData { id: first_worker + i, a: matrix.slice_rows(a, b), b: raw[a..b].to_vec() }
        })
        .collect();
    let rows_per_worker = blocks.windows(2).map(|w| w[1] - w[0]).collect();
    Ok(Dataset { workers, rows_per_worker, dim, labels })
}

/// Held-out rows for accuracy: each rank parses its own byte range (or its own file for
/// a `{rank}` pattern); labels use the training map.
pub fn load_test(comm: &mut Comm, source: &Source, dim: usize, labels: LabelMap) -> Result<(Csr, Vec<f64>)> {
    let path = source.path_for(comm.rank());
    let parsed = (|| {
        let range = match source {
            Source::File(_) => {
                let len = libsvm::file_len(&path)?;
                let (r, n) = (comm.rank() as u64, comm.size() as u64);
                (libsvm::aligned_start(&path, len * r / n)?, libsvm::aligned_start(&path, len * (r + 1) / n)?)
            }
            Source::PerRank(_) => (0, libsvm::file_len(&path)?),
        };
        let mut rows = Rows::default();
        // Line numbers are only exact from the start of a file; for a middle range they
        // are reported relative to the range (the byte offset is in the message).
        libsvm::parse_range(&path, range, 1, 0, u64::MAX, &mut rows).map_err(|e| offset_note(e, range.0))?;
        check_dimension(&rows, dim, &path, "the test file")?;
        labels.apply(&mut rows.labels, &rows.lines, &path)?;
        rows.matrix.cols = dim;
        Ok((rows.matrix, rows.labels))
    })();
    comm.agree(parsed)
}

fn offset_note(e: Error, offset: u64) -> Error {
    match e {
        Error::Parse { path, line, what, fix } if offset > 0 => {
            Error::Parse { path, line, what: format!("{what} (line counted from byte {offset})"), fix }
        }
        other => other,
    }
}

/// File mode: returns this rank's rows, the global block bounds, and its first worker.
fn read_own_blocks(comm: &mut Comm, path: &Path, layout: Layout) -> Result<(Rows, Vec<u64>, usize)> {
    let (rank, ranks) = (comm.rank(), comm.size());
    let len = comm.agree(libsvm::file_len(path))?;
    let my_start = comm.agree(libsvm::aligned_start(path, len * rank as u64 / ranks as u64))?;
    let mut starts = comm.all_gather_u64(my_start);
    starts.push(len);
    let census = comm.agree(libsvm::census(path, starts[rank], starts[rank + 1]))?;
    let chunk_rows = prefix_sums(&comm.all_gather_u64(census.rows));
    let chunk_lines = prefix_sums(&comm.all_gather_u64(census.lines));
    let total = chunk_rows[ranks];
    if total == 0 {
        return Err(comm_error(
            comm,
            Error::config(
                format!("{}: no data rows", path.display()),
                "give a LIBSVM file with at least one 'label index:value …' line",
            ),
        ));
    }
    let blocks = comm.agree(split::bounds(total, layout.workers, layout.split))?;
    let (first_worker, local_workers) = layout.workers_of(rank, ranks);
    let (lo, hi) = (blocks[first_worker], blocks[first_worker + local_workers]);
    let parsed = (|| {
        let mut rows = Rows::default();
        for j in 0..ranks {
            let (r0, r1) = (chunk_rows[j], chunk_rows[j + 1]);
            if r1 <= lo || r0 >= hi {
                continue;
            }
            let skip = lo.saturating_sub(r0);
            let take = hi.min(r1) - lo.max(r0);
            libsvm::parse_range(path, (starts[j], starts[j + 1]), chunk_lines[j] + 1, skip, take, &mut rows)?;
        }
        Ok(rows)
    })();
    Ok((comm.agree(parsed)?, blocks, first_worker))
}

/// Pattern mode: this rank's whole file, split among its workers.
fn read_own_file(comm: &mut Comm, source: &Source, layout: Layout) -> Result<(Rows, Vec<u64>, usize)> {
    let (rank, ranks) = (comm.rank(), comm.size());
    let per_rank = layout.workers / ranks;
    let path = source.path_for(rank);
    let parsed = (|| {
        let mut rows = Rows::default();
        let len = libsvm::file_len(&path)?;
        libsvm::parse_range(&path, (0, len), 1, 0, u64::MAX, &mut rows)?;
        let local = split::bounds(rows.labels.len() as u64, per_rank, layout.split)
            .map_err(|e| Error::config(format!("{}: {e}", path.display()), "give every rank's file enough rows"))?;
        Ok((rows, local))
    })();
    let (rows, local) = comm.agree(parsed)?;
    // Global bounds: concatenate every rank's local block sizes in rank order.
    let sizes: Vec<f64> = local.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
    let all_sizes = comm.all_gather_f64(&sizes);
    let mut blocks = vec![0u64];
    for s in all_sizes {
        blocks.push(blocks.last().unwrap() + s as u64);
    }
    Ok((rows, blocks, rank * per_rank))
}

fn prefix_sums(v: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(v.len() + 1);
    out.push(0);
    for &x in v {
        out.push(out.last().unwrap() + x);
    }
    out
}

/// Every rank returns the same deterministic error (for errors computed from agreed
/// values, so no extra collective is needed).
fn comm_error(comm: &Comm, e: Error) -> Error {
    Error::Ranks { failed: (0..comm.size()).map(|r| (r, e.to_string())).collect(), ranks: comm.size() }
}

fn agree_dimension(comm: &mut Comm, rows: &Rows, features: Option<usize>, path: &Path) -> Result<usize> {
    let local_max = rows.matrix.cols as u64;
    let dim = match features {
        Some(d) => {
            comm.agree(check_dimension(rows, d, path, "--features"))?;
            d
        }
        None => comm.max_u64(local_max) as usize,
    };
    if dim == 0 {
        return Err(comm_error(
            comm,
            Error::config("the data has no features (every row is empty)", "give rows with index:value pairs"),
        ));
    }
    Ok(dim)
}

/// Fails, naming the first offending line, if a row uses an index beyond `dim`.
fn check_dimension(rows: &Rows, dim: usize, path: &Path, against: &str) -> Result<()> {
    if rows.matrix.cols <= dim {
        return Ok(());
    }
    let m = &rows.matrix;
    let bad = (0..m.rows()).find(|&i| m.row(i).0.last().is_some_and(|&j| j as usize >= dim)).unwrap_or(0);
    let index = m.row(bad).0.last().map_or(0, |&j| j + 1);
    Err(Error::Parse {
        path: path.to_path_buf(),
        line: rows.lines[bad],
        what: format!("feature index {index} exceeds the dimension {dim} set by {against}"),
        fix: "pass --features N with N at least the largest index of every file".into(),
    })
}

fn agree_label_map(comm: &mut Comm, labels: &[f64], source: &Source) -> Result<LabelMap> {
    let max = labels.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = labels.iter().copied().fold(f64::INFINITY, f64::min);
    let mut ext = [max, -min];
    comm.max_f64(&mut ext);
    let map = LabelMap::new(-ext[1], ext[0], Path::new(&source.describe()));
    match map {
        Ok(m) => Ok(m),
        Err(e) => Err(comm_error(comm, e)),
    }
}
