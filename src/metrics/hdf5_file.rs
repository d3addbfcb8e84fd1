//! The HDF5 result file, written by rank 0 only.
//!
//! Layout (README "HDF5 schema"): root attributes hold the configuration and the
//! constants of the run; `/metrics` holds one chunked, resizable 1-D dataset per entry
//! of [`COLUMNS`]; `/test` holds `iter` and `accuracy`; `/model/x` the final model.
//!
//! Safety of results: the file is written as `OUT.partial` (created exclusively) and
//! renamed to `OUT` only when the run finished, so an existing result is never
//! clobbered by a failed run, and a half-written file never carries the final name.
//! Rows are buffered and written every `flush_every` rows, then flushed to disk, so
//! a running job can be watched with h5py.
//!
//! A run with checkpoints keeps `OUT.partial` when it fails, and a resumed run continues
//! it (`MetricsFile::resume`): rows from the checkpoint's round on are dropped and written
//! again, so the file ends as an uninterrupted run's would.

use super::{Getter, Row, COLUMNS};
use crate::error::{Error, Result};
use hdf5::types::VarLenUnicode;
use hdf5::{Dataset, Extent, File};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// An attribute value for the root group.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Str(String),
    F64(f64),
    U64(u64),
}

pub struct MetricsFile {
    file: Option<File>,
    partial: PathBuf,
    target: PathBuf,
    force: bool,
    columns: Vec<Dataset>,
    series: Vec<Series>,
    pending: Vec<Row>,
    rows_written: usize,
    flush_every: usize,
    u64_buf: Vec<u64>,
    f64_buf: Vec<f64>,
    /// Keep OUT.partial when the run does not finish (it has checkpoints to resume from).
    keep_unfinished: bool,
}

const CHUNK: usize = 1024;

/// The name a result is written under until it is complete.
pub fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Fails if `target` exists and `force` is not set (checked before training starts).
pub fn check_target(target: &Path, force: bool) -> Result<()> {
    if target.exists() && !force {
        return Err(Error::OutputExists { path: target.to_path_buf() });
    }
    let partial = partial_path(target);
    if partial.exists() {
        return Err(Error::Io {
            path: partial,
            what: "exists: another run is writing this result, or a killed run left it; \
                   remove it or choose another --out"
                .into(),
        });
    }
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, format!("cannot create the output folder: {e}")))?;
    // A folder that cannot take the result fails now, with the system's reason, rather
    // than after the training (or with HDF5's less readable message).
    let probe = dir.join(format!(".qtrain-write-test-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| Error::io(target, format!("cannot write the result here: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

impl MetricsFile {
    pub fn create(target: &Path, force: bool, flush_every: usize, attrs: &[(String, Attr)]) -> Result<Self> {
        check_target(target, force)?;
        let partial = partial_path(target);
        let h5 = |e: hdf5::Error| Error::hdf5(&partial, e);
        let file = File::create_excl(&partial).map_err(h5)?;
        // From here on, failure removes the partial file (Drop).
        let mut columns = Vec::with_capacity(COLUMNS.len());
        let metrics = file.create_group("metrics").map_err(h5)?;
        for (name, getter, doc) in COLUMNS {
            let builder = metrics.new_dataset_builder();
            let ds = match getter {
                Getter::U64(_) => builder.empty::<u64>(),
                Getter::F64(_) => builder.empty::<f64>(),
            }
            .chunk(CHUNK)
            .shape(Extent::resizable(0))
            .create(*name)
            .map_err(h5)?;
            write_attr(&ds, "description", &Attr::Str(doc.to_string())).map_err(h5)?;
            columns.push(ds);
        }
        let mut me = MetricsFile {
            file: Some(file),
            partial,
            target: target.to_path_buf(),
            force,
            columns,
            series: Vec::new(),
            pending: Vec::with_capacity(flush_every),
            rows_written: 0,
            flush_every: flush_every.max(1),
            u64_buf: Vec::new(),
            f64_buf: Vec::new(),
            keep_unfinished: false,
        };
        me.set_attrs(attrs)?;
        Ok(me)
    }

    /// Continues the result of a run resumed at `round`: `OUT.partial` (a killed run) or
    /// `OUT` (a preempted one, moved back to `OUT.partial`). Rows and test accuracies from
    /// `round` on, and diagnostics after it, are dropped (the resumed run writes them
    /// again); the file's own `expect` attributes must equal the run's; `attrs` are set.
    pub fn resume(
        target: &Path,
        round: u64,
        flush_every: usize,
        expect: &[(String, Attr)],
        attrs: &[(String, Attr)],
    ) -> Result<Self> {
        let partial = partial_path(target);
        if !partial.exists() {
            if !target.exists() {
                return Err(Error::Io {
                    path: target.to_path_buf(),
                    what: "--resume continues the run's result file, but neither it nor its .partial exists; \
                           give the --out of the interrupted run, or start anew without --resume"
                        .into(),
                });
            }
            std::fs::rename(target, &partial)
                .map_err(|e| Error::io(target, format!("cannot reopen the result to continue it: {e}")))?;
        }
        let h5 = |e: hdf5::Error| Error::hdf5(&partial, e);
        let file = File::open_rw(&partial).map_err(h5)?;
        let differences = differences(&file, expect);
        if !differences.is_empty() {
            return Err(Error::Io {
                path: partial.clone(),
                what: format!("is the result of another run: {}; give this run's --out", differences.join(", ")),
            });
        }
        let metrics = file.group("metrics").map_err(h5)?;
        let columns =
            COLUMNS.iter().map(|(name, ..)| metrics.dataset(name)).collect::<hdf5::Result<Vec<_>>>().map_err(h5)?;
        let iters: Vec<u64> = columns[0].read_raw().map_err(h5)?;
        let kept = iters.iter().take_while(|&&t| t < round).count();
        for ds in &columns {
            ds.resize(kept).map_err(h5)?;
        }
        let mut series = Vec::new();
        for (group, keep_through) in series_groups(&file) {
            let bound = if keep_through { round + 1 } else { round };
            series.push(Series::reopen(&file, &group, bound).map_err(h5)?);
        }
        if file.link_exists("model") {
            file.unlink("model").map_err(h5)?;
        }
        let mut me = MetricsFile {
            file: Some(file),
            partial,
            target: target.to_path_buf(),
            force: true,
            columns,
            series,
            pending: Vec::with_capacity(flush_every),
            rows_written: kept,
            flush_every: flush_every.max(1),
            u64_buf: Vec::new(),
            f64_buf: Vec::new(),
            keep_unfinished: true,
        };
        me.set_attrs(attrs)?;
        Ok(me)
    }

    /// Keeps `OUT.partial` if the run fails, for a later `--resume`.
    pub fn keep_unfinished(&mut self) {
        self.keep_unfinished = true;
    }

    pub fn path(&self) -> &Path {
        &self.target
    }

    fn file(&self) -> &File {
        self.file.as_ref().expect("metrics file used after finish")
    }

    pub fn set_attrs(&mut self, attrs: &[(String, Attr)]) -> Result<()> {
        for (name, value) in attrs {
            let file = self.file();
            if file.attr(name).is_ok() {
                file.delete_attr(name).map_err(|e| Error::hdf5(&self.partial, e))?;
            }
            write_attr(file, name, value).map_err(|e| Error::hdf5(&self.partial, e))?;
        }
        Ok(())
    }

    /// Buffers a row; writes and flushes every `flush_every` rows.
    pub fn push(&mut self, row: Row) -> Result<()> {
        self.pending.push(row);
        if self.pending.len() >= self.flush_every {
            self.flush()?;
        }
        Ok(())
    }

    /// Buffers one (iter, value) pair of a sparse series stored as `/group/iter` and
    /// `/group/{value_name}` (test accuracy, method diagnostics); created on first use.
    pub fn push_series(&mut self, group: &str, value_name: &str, iter: u64, value: f64) -> Result<()> {
        let index = match self.series.iter().position(|s| s.group == group) {
            Some(i) => i,
            None => {
                let created =
                    Series::create(self.file(), group, value_name).map_err(|e| Error::hdf5(&self.partial, e))?;
                self.series.push(created);
                self.series.len() - 1
            }
        };
        self.series[index].pending.push((iter, value));
        Ok(())
    }

    /// Writes buffered rows and asks HDF5 to flush the file to disk.
    pub fn flush(&mut self) -> Result<()> {
        self.write_pending().map_err(|e| Error::hdf5(&self.partial, e))
    }

    fn write_pending(&mut self) -> hdf5::Result<()> {
        let (start, n) = (self.rows_written, self.pending.len());
        for ((_, getter, _), ds) in COLUMNS.iter().zip(&self.columns) {
            ds.resize(start + n)?;
            match getter {
                Getter::U64(get) => {
                    self.u64_buf.clear();
                    self.u64_buf.extend(self.pending.iter().map(get));
                    ds.write_slice(&self.u64_buf, start..start + n)?;
                }
                Getter::F64(get) => {
                    self.f64_buf.clear();
                    self.f64_buf.extend(self.pending.iter().map(get));
                    ds.write_slice(&self.f64_buf, start..start + n)?;
                }
            }
        }
        self.rows_written += n;
        self.pending.clear();

        for series in self.series.iter_mut() {
            series.write_pending()?;
        }
        self.file().flush()
    }

    /// Stores a 1-D array as `/group/name` (the final model, per-worker constants).
    pub fn write_array<T: hdf5::H5Type>(&mut self, group: &str, name: &str, data: &[T]) -> Result<()> {
        let file = self.file();
        let h5 = |e: hdf5::Error| Error::hdf5(&self.partial, e);
        let group = file.group(group).or_else(|_| file.create_group(group)).map_err(h5)?;
        group.new_dataset_builder().with_data(data).create(name).map_err(h5)?;
        Ok(())
    }

    /// Writes what is buffered, closes the file and gives it its final name.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.flush()?;
        self.file.take().map(File::close).transpose().map_err(|e| Error::hdf5(&self.partial, e))?;
        if self.target.exists() && !self.force {
            return Err(Error::OutputExists { path: self.target.clone() });
        }
        std::fs::rename(&self.partial, &self.target)
            .map_err(|e| Error::io(&self.target, format!("cannot move the finished result into place: {e}")))?;
        Ok(self.target.clone())
    }
}

/// The series groups of a file: (`test`, keep through nothing after the resumed round)
/// and every `diagnostics/NAME` (recorded after a round: the resumed round's is kept).
fn series_groups(file: &File) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    if file.link_exists("test") {
        out.push(("test".to_string(), false));
    }
    if let Ok(diagnostics) = file.group("diagnostics") {
        for name in diagnostics.member_names().unwrap_or_default() {
            out.push((format!("diagnostics/{name}"), true));
        }
    }
    out
}

/// The attributes of `file` that differ from `expect` (absent ones too), each as
/// "NAME FOUND (this run WANT)".
fn differences(file: &File, expect: &[(String, Attr)]) -> Vec<String> {
    expect
        .iter()
        .filter_map(|(name, want)| {
            let found = read_attr(file, name, want);
            (found.as_ref() != Some(want)).then(|| format!("{name} {found:?} (this run {want:?})"))
        })
        .collect()
}

/// What a result file at its final name says: the attributes `wanted`, each read as the
/// kind of its example value (None where absent), and those of `expect` that differ
/// (`qtrain sweep`: is a point's file finished, and by the same settings?).
pub fn read_attrs(
    path: &Path,
    wanted: &[(&str, Attr)],
    expect: &[(String, Attr)],
) -> Result<(Vec<Option<Attr>>, Vec<String>)> {
    let file = File::open(path).map_err(|e| Error::hdf5(path, e))?;
    let found = wanted.iter().map(|(name, like)| read_attr(&file, name, like)).collect();
    Ok((found, differences(&file, expect)))
}

/// An attribute of the file as the `Attr` kind of `like`, if it is there.
fn read_attr(file: &File, name: &str, like: &Attr) -> Option<Attr> {
    let attr = file.attr(name).ok()?;
    match like {
        Attr::Str(_) => attr.read_scalar::<VarLenUnicode>().ok().map(|v| Attr::Str(v.as_str().to_string())),
        Attr::F64(_) => attr.read_scalar::<f64>().ok().map(Attr::F64),
        Attr::U64(_) => attr.read_scalar::<u64>().ok().map(Attr::U64),
    }
}

/// A resizable (iter, value) pair of datasets written as values arrive.
struct Series {
    group: String,
    iter: Dataset,
    value: Dataset,
    pending: Vec<(u64, f64)>,
    written: usize,
}

impl Series {
    fn create(file: &File, path: &str, value_name: &str) -> hdf5::Result<Series> {
        let mut group = file.as_group()?;
        for part in path.split('/') {
            group = group.group(part).or_else(|_| group.create_group(part))?;
        }
        let iter = group.new_dataset::<u64>().chunk(CHUNK).shape(Extent::resizable(0)).create("iter")?;
        let value = group.new_dataset::<f64>().chunk(CHUNK).shape(Extent::resizable(0)).create(value_name)?;
        Ok(Series { group: path.to_string(), iter, value, pending: Vec::new(), written: 0 })
    }

    /// An existing series, cut to the entries with iter < `bound`.
    fn reopen(file: &File, path: &str, bound: u64) -> hdf5::Result<Series> {
        let group = file.group(path)?;
        let value_name = group.member_names()?.into_iter().find(|n| n != "iter").unwrap_or_else(|| "value".into());
        let (iter, value) = (group.dataset("iter")?, group.dataset(&value_name)?);
        let kept = iter.read_raw::<u64>()?.iter().take_while(|&&t| t < bound).count();
        iter.resize(kept)?;
        value.resize(kept)?;
        Ok(Series { group: path.to_string(), iter, value, pending: Vec::new(), written: kept })
    }

    fn write_pending(&mut self) -> hdf5::Result<()> {
        let (start, n) = (self.written, self.pending.len());
        let iters: Vec<u64> = self.pending.iter().map(|p| p.0).collect();
        let values: Vec<f64> = self.pending.iter().map(|p| p.1).collect();
        self.iter.resize(start + n)?;
        self.value.resize(start + n)?;
        self.iter.write_slice(&iters, start..start + n)?;
        self.value.write_slice(&values, start..start + n)?;
        self.written += n;
        self.pending.clear();
        Ok(())
    }
}

impl Drop for MetricsFile {
    /// A result that was not finished is removed: only complete files carry results —
    /// unless the run has checkpoints, whose resume continues it.
    fn drop(&mut self) {
        if self.file.is_none() {
            return;
        }
        if self.keep_unfinished {
            let _ = self.write_pending();
            self.file.take();
        } else {
            self.file.take();
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

fn write_attr(loc: &hdf5::Location, name: &str, value: &Attr) -> hdf5::Result<()> {
    match value {
        Attr::Str(s) => {
            let v = VarLenUnicode::from_str(s).unwrap_or_else(|_| VarLenUnicode::from_str("<invalid text>").unwrap());
            loc.new_attr::<VarLenUnicode>().shape(()).create(name)?.write_scalar(&v)
        }
        Attr::F64(v) => loc.new_attr::<f64>().shape(()).create(name)?.write_scalar(v),
        Attr::U64(v) => loc.new_attr::<u64>().shape(()).create(name)?.write_scalar(v),
    }
}
