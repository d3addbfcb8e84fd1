//! `qtrain shard`: splits a LIBSVM file into per-rank files part-0.svm … part-{N-1}.svm
//! with the same contiguous row blocks a training run would give N workers, so that
//! `--data 'DIR/part-{rank}.svm'` on N ranks trains on exactly those rows. Data lines
//! are copied verbatim; blank and comment lines are dropped.

use super::libsvm;
use super::split::{self, SplitRule};
use crate::error::{Error, Result};
use crate::metrics::hdf5_file::partial_path;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

pub fn part_path(dir: &Path, part: usize) -> PathBuf {
    dir.join(format!("part-{part}.svm"))
}

/// Writes the shards and returns their paths and row counts.
pub fn write_shards(
    data: &Path,
    parts: usize,
    dir: &Path,
    rule: SplitRule,
    force: bool,
) -> Result<Vec<(PathBuf, u64)>> {
    if parts == 0 {
        return Err(Error::config("--parts 0", "give the number of shard files, at least 1"));
    }
    let len = libsvm::file_len(data)?;
    let rows = libsvm::census(data, 0, len)?.rows;
    let bounds = split::bounds(rows, parts, rule)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, format!("cannot create the folder: {e}")))?;
    let targets: Vec<PathBuf> = (0..parts).map(|i| part_path(dir, i)).collect();
    if let Some(existing) = targets.iter().find(|p| p.exists()).filter(|_| !force) {
        return Err(Error::OutputExists { path: existing.clone() });
    }
    let reader = BufReader::new(libsvm::open(data)?);
    let mut lines = reader.split(b'\n');
    let mut written = Vec::with_capacity(parts);
    for (part, target) in targets.iter().enumerate() {
        let want = bounds[part + 1] - bounds[part];
        let partial = partial_path(target);
        let file = std::fs::File::create(&partial).map_err(|e| Error::io(&partial, e))?;
        let mut out = BufWriter::new(file);
        let mut copied = 0;
        while copied < want {
            let line = lines
                .next()
                .ok_or_else(|| Error::io(data, "the file changed while it was being split"))?
                .map_err(|e| Error::io(data, e))?;
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if libsvm::is_data_line(line) {
                out.write_all(line).and_then(|_| out.write_all(b"\n")).map_err(|e| Error::io(&partial, e))?;
                copied += 1;
            }
        }
        out.flush().map_err(|e| Error::io(&partial, e))?;
        drop(out);
        std::fs::rename(&partial, target).map_err(|e| Error::io(target, e))?;
        written.push((target.clone(), want));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_hold_the_balanced_blocks_in_order() {
        let dir = crate::testing::TempDir::new("shard");
        let data = dir.join("d.svm");
        std::fs::write(&data, "# header\n1 1:1\r\n0 2:1\n\n1 3:1\n0 1:2\n1 2:2\n").unwrap();
        let out = dir.join("parts");
        let written = write_shards(&data, 2, &out, SplitRule::Balanced, false).unwrap();
        assert_eq!(written.iter().map(|w| w.1).collect::<Vec<_>>(), vec![3, 2]);
        assert_eq!(std::fs::read_to_string(part_path(&out, 0)).unwrap(), "1 1:1\n0 2:1\n1 3:1\n");
        assert_eq!(std::fs::read_to_string(part_path(&out, 1)).unwrap(), "0 1:2\n1 2:2\n");
        assert!(matches!(write_shards(&data, 2, &out, SplitRule::Balanced, false), Err(Error::OutputExists { .. })));
        assert!(write_shards(&data, 2, &out, SplitRule::Balanced, true).is_ok());
    }
}
