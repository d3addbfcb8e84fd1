//! Checkpoints: a run's state on disk, written by every rank for its part, complete only
//! once a manifest with every part's checksum is in place; and resuming from the newest
//! complete one, on any rank count with the same logical workers.
//!
//! Layout of `--checkpoint-dir DIR` (a folder every rank can reach):
//!
//! ```text
//! DIR/round-000000100/common.bin    rank 0: the loop's state and the method's shared state
//!                     part-R.bin    rank R: the states of its logical workers, by global id
//!                     MANIFEST      rank 0, last: the run's fingerprint, every file's size
//!                                   and SHA-256, which workers each part holds
//! ```
//!
//! Writing: rank 0 first removes an old MANIFEST of the same round; every rank writes its
//! part (to a temporary name, fsync, rename); after an agreement rank 0 writes
//! `common.bin` the same way and then the manifest (write, fsync, rename, fsync the
//! folder). A checkpoint without a manifest, or whose files do not match it, is
//! incomplete: resuming skips it (with a message) and takes the previous complete one.
//! Rank 0 keeps the newest `keep` complete checkpoints and removes older ones.

mod state;

pub use state::{StateReader, StateWriter};

use crate::comm::Comm;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const MANIFEST: &str = "MANIFEST";
const COMMON: &str = "common.bin";
const HEADER: &str = "qtrain checkpoint 1";

/// The settings that define a run's iterates: a checkpoint resumes only a run with the
/// same values (the dataset's checksum, the objective, the method, the compressor, …).
#[derive(Clone, Debug, PartialEq)]
pub struct Fingerprint(pub Vec<(String, String)>);

impl Fingerprint {
    /// Every key whose value differs, as "key: checkpoint A, this run B".
    fn differences(&self, other: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        for (key, value) in &self.0 {
            match other.0.iter().find(|(k, _)| k == key) {
                Some((_, v)) if v == value => {}
                Some((_, v)) => out.push(format!("{key}: checkpoint {v}, this run {value}")),
                None => out.push(format!("{key}: not in the checkpoint, this run {value}")),
            }
        }
        out
    }
}

/// What this rank contributes to a checkpoint.
pub struct Snapshot<'a> {
    pub round: u64,
    /// Rank 0: the loop's and the method's shared state.
    pub common: Option<Vec<u8>>,
    /// This rank's workers: (global id, state).
    pub workers: Vec<(usize, &'a [u8])>,
}

/// A checkpoint as this rank reads it back.
pub struct Restored {
    pub round: u64,
    pub common: Vec<u8>,
    /// The states of the requested workers, in the order requested.
    pub workers: Vec<Vec<u8>>,
    /// Where it came from, for the log.
    pub path: PathBuf,
}

fn round_dir(dir: &Path, round: u64) -> PathBuf {
    dir.join(format!("round-{round:09}"))
}

fn io(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::io(path, format!("{what}: {e}"))
}

/// Writes `bytes` to `path` durably: a temporary file, fsync, rename. Returns the size and
/// the SHA-256 of what it wrote.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(u64, String)> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| io(&tmp, "cannot create the checkpoint file", e))?;
    f.write_all(bytes).map_err(|e| io(&tmp, "cannot write the checkpoint file", e))?;
    f.sync_all().map_err(|e| io(&tmp, "cannot sync the checkpoint file", e))?;
    fs::rename(&tmp, path).map_err(|e| io(path, "cannot move the checkpoint file into place", e))?;
    Ok((bytes.len() as u64, hex_sha256(bytes)))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, "cannot sync the checkpoint folder", e))
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes this rank's part of the checkpoint of `snapshot.round` into `dir`, every rank
/// together; complete when this returns Ok on every rank. Keeps the newest `keep`.
pub fn write(comm: &mut Comm, dir: &Path, keep: usize, fingerprint: &Fingerprint, snapshot: Snapshot) -> Result<()> {
    let here = round_dir(dir, snapshot.round);
    let prepared = (|| {
        fs::create_dir_all(&here).map_err(|e| io(&here, "cannot create the checkpoint folder", e))?;
        if comm.is_root() && here.join(MANIFEST).exists() {
            fs::remove_file(here.join(MANIFEST)).map_err(|e| io(&here, "cannot replace the manifest", e))?;
            sync_dir(&here)?;
        }
        Ok(())
    })();
    comm.agree(prepared)?;

    let name = format!("part-{}.bin", comm.rank());
    let part = (|| {
        let mut w = StateWriter::new();
        let ids: Vec<u64> = snapshot.workers.iter().map(|(id, _)| *id as u64).collect();
        w.u64s("workers", &ids);
        for (id, state) in &snapshot.workers {
            w.bytes(&format!("worker {id}"), state);
        }
        let (size, sha) = write_durably(&here.join(&name), &w.into_bytes())?;
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        Ok(format!("file {name} {size} {sha} {}", ids.join(",")))
    })();
    let line = comm.agree(part)?;
    let lines = comm.all_gather_bytes(line.as_bytes());

    let manifest = match (comm.is_root(), snapshot.common) {
        (true, Some(common)) => (|| {
            let (size, sha) = write_durably(&here.join(COMMON), &common)?;
            let mut text = format!("{HEADER}\nround {}\nranks {}\n", snapshot.round, comm.size());
            for (key, value) in &fingerprint.0 {
                text.push_str(&format!("key {key} {}\n", value.replace('\n', "\\n")));
            }
            text.push_str(&format!("file {COMMON} {size} {sha}\n"));
            for l in &lines {
                text.push_str(&String::from_utf8_lossy(l));
                text.push('\n');
            }
            text.push_str("end\n");
            write_durably(&here.join(MANIFEST), text.as_bytes())?;
            sync_dir(&here)?;
            sync_dir(dir)?;
            prune(dir, keep);
            Ok(())
        })(),
        (true, None) => Err(Error::Checkpoint { what: "rank 0 has no common state to write (a bug)".into() }),
        (false, _) => Ok(()),
    };
    comm.agree(manifest)
}

/// Removes complete checkpoints beyond the newest `keep`, and incomplete ones older than
/// the newest complete one (best effort: a failure leaves a folder behind, nothing worse).
fn prune(dir: &Path, keep: usize) {
    let rounds = list_rounds(dir);
    let complete: Vec<u64> = rounds.iter().copied().filter(|&r| round_dir(dir, r).join(MANIFEST).exists()).collect();
    let Some(&newest) = complete.first() else { return };
    for &r in &rounds {
        let stale = if complete.contains(&r) {
            complete.iter().position(|&c| c == r).unwrap() >= keep.max(1)
        } else {
            r < newest
        };
        if stale {
            let _ = fs::remove_dir_all(round_dir(dir, r));
        }
    }
}

/// Whether `dir` holds a checkpoint with its manifest (complete unless damaged since;
/// reading it checks that).
pub fn has_complete(dir: &Path) -> bool {
    list_rounds(dir).iter().any(|&r| round_dir(dir, r).join(MANIFEST).exists())
}

/// The rounds of the `round-*` folders in `dir`, newest first.
fn list_rounds(dir: &Path) -> Vec<u64> {
    let mut rounds: Vec<u64> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("round-")?.parse().ok())
        .collect();
    rounds.sort_unstable_by(|a, b| b.cmp(a));
    rounds
}

/// A parsed manifest.
#[derive(Debug, PartialEq)]
pub struct Manifest {
    pub round: u64,
    pub ranks: usize,
    pub fingerprint: Fingerprint,
    /// (file name, size, SHA-256, worker ids).
    pub files: Vec<(String, u64, String, Vec<usize>)>,
}

impl Manifest {
    /// Parses a manifest; any deviation (a truncated file has no `end`) is an error.
    pub fn parse(text: &str, source: &Path) -> Result<Manifest> {
        let bad = |what: String| Error::Checkpoint { what: format!("{}: {what}", source.display()) };
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(bad(format!("not a qtrain manifest (first line is not '{HEADER}')")));
        }
        let number = |key: &str, line: Option<&str>| -> Result<u64> {
            line.and_then(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| bad(format!("missing '{key}'")))
        };
        let round = number("round ", lines.next())?;
        let ranks = number("ranks ", lines.next())? as usize;
        let (mut fingerprint, mut files, mut ended) = (Vec::new(), Vec::new(), false);
        for line in lines {
            if line == "end" {
                ended = true;
                break;
            }
            if let Some(rest) = line.strip_prefix("key ") {
                let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
                fingerprint.push((key.to_string(), value.replace("\\n", "\n")));
            } else if let Some(rest) = line.strip_prefix("file ") {
                let fields: Vec<&str> = rest.split(' ').collect();
                let (name, size, sha) = match fields[..] {
                    [name, size, sha, ..] => (name, size, sha),
                    _ => return Err(bad(format!("malformed line '{line}'"))),
                };
                let size = size.parse().map_err(|_| bad(format!("malformed size in '{line}'")))?;
                let workers = match fields.get(3) {
                    Some(list) if !list.is_empty() => list
                        .split(',')
                        .map(|w| w.parse())
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| bad(format!("malformed worker list in '{line}'")))?,
                    _ => Vec::new(),
                };
                if name.contains('/') || name.contains("..") {
                    return Err(bad(format!("file name '{name}' outside the checkpoint folder")));
                }
                files.push((name.to_string(), size, sha.to_string(), workers));
            } else {
                return Err(bad(format!("unexpected line '{line}'")));
            }
        }
        if !ended {
            return Err(bad("truncated (no 'end' line)".into()));
        }
        Ok(Manifest { round, ranks, fingerprint: Fingerprint(fingerprint), files })
    }
}

/// Checks that every file of the manifest is there with its size and checksum.
fn verify(here: &Path, manifest: &Manifest) -> Result<()> {
    for (name, size, sha, _) in &manifest.files {
        let path = here.join(name);
        let bytes = fs::read(&path).map_err(|e| Error::Checkpoint { what: format!("{}: {e}", path.display()) })?;
        if bytes.len() as u64 != *size || hex_sha256(&bytes) != *sha {
            return Err(Error::Checkpoint {
                what: format!("{}: {} bytes that do not match the manifest's checksum", path.display(), bytes.len()),
            });
        }
    }
    Ok(())
}

/// Rank 0's choice: the newest checkpoint in `dir` whose manifest and files check out,
/// with a message for every newer one it skipped.
fn choose(dir: &Path) -> Result<(Manifest, Vec<String>)> {
    let mut skipped = Vec::new();
    for round in list_rounds(dir) {
        let here = round_dir(dir, round);
        let checked = fs::read_to_string(here.join(MANIFEST))
            .map_err(|_| Error::Checkpoint { what: format!("{}: no manifest (incomplete)", here.display()) })
            .and_then(|text| Manifest::parse(&text, &here.join(MANIFEST)))
            .and_then(|m| verify(&here, &m).map(|()| m));
        match checked {
            Ok(m) => return Ok((m, skipped)),
            Err(e) => skipped.push(e.to_string()),
        }
    }
    let why = if skipped.is_empty() { "none found".to_string() } else { skipped.join("; ") };
    Err(Error::Checkpoint {
        what: format!(
            "--resume: no complete checkpoint in {} ({why}); run without --resume to start anew",
            dir.display()
        ),
    })
}

/// Every rank together: the newest complete checkpoint in `dir` made by a run with this
/// `fingerprint`, and the states of this rank's `workers` (global ids) from it.
pub fn read_newest(comm: &mut Comm, dir: &Path, fingerprint: &Fingerprint, workers: &[usize]) -> Result<Restored> {
    let chosen = if comm.is_root() {
        choose(dir).map(|(m, skipped)| {
            for s in skipped {
                log::warn!("skipping a checkpoint: {s}");
            }
            round_dir(dir, m.round)
        })
    } else {
        Ok(PathBuf::new())
    };
    let chosen = comm.agree(chosen)?;
    let chosen = PathBuf::from(
        String::from_utf8_lossy(&comm.all_gather_bytes(chosen.to_string_lossy().as_bytes())[0]).into_owned(),
    );
    let restored = (|| {
        let text = read(&chosen.join(MANIFEST))?;
        let manifest = Manifest::parse(&String::from_utf8_lossy(&text), &chosen.join(MANIFEST))?;
        let differences = fingerprint.differences(&manifest.fingerprint);
        if !differences.is_empty() {
            return Err(Error::Checkpoint {
                what: format!(
                    "--resume: {} was made by a different run ({}); resume with the same settings, or start anew without --resume",
                    chosen.display(),
                    differences.join("; ")
                ),
            });
        }
        let common = read_checked(&chosen, &manifest, COMMON)?;
        let mut states = Vec::with_capacity(workers.len());
        let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
        for &id in workers {
            let Some((name, ..)) = manifest.files.iter().find(|f| f.3.contains(&id)) else {
                return Err(Error::Checkpoint { what: format!("{}: no part holds worker {id}", chosen.display()) });
            };
            if !parts.iter().any(|(n, _)| n == name) {
                parts.push((name.clone(), read_checked(&chosen, &manifest, name)?));
            }
            let bytes = &parts.iter().find(|(n, _)| n == name).expect("just read").1;
            let mut r = StateReader::new(bytes, chosen.join(name).display().to_string())?;
            let ids = r.u64s("workers")?;
            let mut found = None;
            for &other in &ids {
                let state = r.bytes(&format!("worker {other}"))?;
                if other as usize == id {
                    found = Some(state.to_vec());
                }
            }
            r.finish()?;
            states.push(found.ok_or_else(|| Error::Checkpoint { what: format!("{name}: no state of worker {id}") })?);
        }
        Ok(Restored { round: manifest.round, common, workers: states, path: chosen.clone() })
    })();
    comm.agree(restored)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::Checkpoint { what: format!("{}: {e}", path.display()) })
}

/// A file of the manifest, checked against its size and checksum.
fn read_checked(here: &Path, manifest: &Manifest, name: &str) -> Result<Vec<u8>> {
    let path = here.join(name);
    let bytes = read(&path)?;
    let ok = manifest
        .files
        .iter()
        .any(|(n, size, sha, _)| n == name && bytes.len() as u64 == *size && hex_sha256(&bytes) == *sha);
    if !ok {
        return Err(Error::Checkpoint { what: format!("{}: does not match the manifest's checksum", path.display()) });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_text() -> String {
        format!("{HEADER}\nround 100\nranks 2\nkey method ef21\nkey compressor top-k:k=5 with a space\nfile common.bin 12 abc\nfile part-0.bin 7 def 0,1\nfile part-1.bin 7 0ff 2,3\nend\n")
    }

    #[test]
    fn manifests_round_trip_their_fields() {
        let m = Manifest::parse(&manifest_text(), Path::new("M")).unwrap();
        assert_eq!((m.round, m.ranks), (100, 2));
        assert_eq!(m.fingerprint.0[1], ("compressor".to_string(), "top-k:k=5 with a space".to_string()));
        assert_eq!(m.files[2], ("part-1.bin".to_string(), 7, "0ff".to_string(), vec![2, 3]));
        assert!(m.files[0].3.is_empty());
    }

    /// A truncated or tampered manifest is an error naming the file, never a panic.
    #[test]
    fn damaged_manifests_are_errors() {
        let text = manifest_text();
        for len in 0..text.len() - 1 {
            assert!(Manifest::parse(&text[..len], Path::new("M")).is_err(), "prefix {len} accepted");
        }
        for bad in ["file ../x 1 a\n", "file a 1\n", "file a x y\n", "file a 1 s 1,x\n", "bogus\n"] {
            let t = text.replace("end\n", &format!("{bad}end\n"));
            let e = Manifest::parse(&t, Path::new("DIR/MANIFEST")).unwrap_err().to_string();
            assert!(e.contains("DIR/MANIFEST"), "{e}");
        }
    }

    #[test]
    fn fingerprint_differences_name_both_values() {
        let a = Fingerprint(vec![("method".into(), "ef21".into()), ("seed".into(), "0".into())]);
        let b = Fingerprint(vec![("method".into(), "clag:zeta=1".into()), ("seed".into(), "0".into())]);
        assert_eq!(b.differences(&a), ["method: checkpoint ef21, this run clag:zeta=1"]);
        assert!(a.differences(&a).is_empty());
    }

    /// Keeps the newest complete checkpoints; drops older ones and stale incomplete ones.
    #[test]
    fn pruning_keeps_the_newest_complete_checkpoints() {
        let dir = crate::testing::TempDir::new("prune");
        let root = dir.join("cp");
        for (round, complete) in [(10, true), (20, false), (30, true), (40, true), (50, false)] {
            let here = round_dir(&root, round);
            fs::create_dir_all(&here).unwrap();
            if complete {
                fs::write(here.join(MANIFEST), "x").unwrap();
            }
        }
        prune(&root, 2);
        assert_eq!(list_rounds(&root), [50, 40, 30], "50 is newer than every complete one: it may be in progress");
    }
}
