//! The fault matrix (docs/reliability.md): each fault on a real `mpirun` of 2–4 ranks,
//! injected with `QTRAIN_FAULT` (src/faults.rs) or made real (a full or read-only file
//! system). Every case checks: one clear message naming the cause, every rank gone with a
//! non-zero exit within 10 s, the result file absent or valid. OpenMPI's own teardown
//! delay is left at its default here (util.rs shortens it for the other tests).
//!
//! With `QTRAIN_RELIABILITY_LOG=FILE` each case appends what it observed to FILE;
//! `scripts/reliability-doc.sh` runs this suite so and writes docs/reliability.md from it.

use crate::util::*;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// The cases, as docs/reliability.md names them (a test below checks that it does).
const FAULTS: [&str; 10] = [
    "rank killed (SIGKILL)",
    "rank crashes (SIGSEGV)",
    "rank aborts (SIGABRT)",
    "rank exits without leaving MPI",
    "divergence (NaN in the model)",
    "message above MPI's 2³¹-byte count",
    "disk full while writing metrics",
    "disk full while writing a checkpoint",
    "output folder read-only",
    "preemption (SIGUSR1)",
];

struct Observed {
    code: Option<i32>,
    seconds: f64,
    output: String,
}

/// Runs a training that meets `fault` (QTRAIN_FAULT, or "" for none) with OpenMPI's
/// default teardown.
fn launch(ranks: usize, args: &[&str], fault: &str) -> Observed {
    let start = Instant::now();
    let run = mpirun_env(ranks, args, &[("QTRAIN_FAULT", fault), ("OMPI_MCA_odls_base_sigkill_timeout", "1")]);
    // MPICH's launcher reports a dead rank on stdout, OpenMPI's on stderr.
    Observed { code: run.code, seconds: start.elapsed().as_secs_f64(), output: run.stderr + &run.stdout }
}

/// The line of the output that explains the failure: qtrain's own, or the launcher's.
fn explanation(output: &str) -> String {
    let qtrain = output.lines().filter(|l| l.starts_with("qtrain:")).collect::<Vec<_>>();
    if let Some(first) = qtrain.first() {
        return first.to_string();
    }
    let lines = output.lines().collect::<Vec<_>>();
    if let Some(at) = lines.iter().position(|l| l.trim_start().starts_with("Process name:")) {
        // mpirun names a rank that exited non-zero on two lines: the process, then its code.
        let two = lines[at..].iter().take(2).map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "));
        return two.collect::<Vec<_>>().join(", ");
    }
    lines
        .iter()
        .find(|l| {
            l.contains("noticed that process rank")
                || l.contains("exiting improperly")
                || l.contains("exited on signal")
                || l.contains("TERMINATED WITH THE EXIT STRING")
        })
        .map_or_else(|| lines.last().unwrap_or(&"").to_string(), |l| l.to_string())
}

/// Common checks, and the row for docs/reliability.md.
fn check(fault: &str, how: &str, o: &Observed, expect_code: &[i32], cause: &[&str], out: &Path) -> String {
    assert!(FAULTS.contains(&fault), "{fault} is not in FAULTS");
    let code = o.code.unwrap_or(-1);
    assert!(expect_code.contains(&code), "{fault}: exit code {code}, expected one of {expect_code:?}\n{}", o.output);
    assert!(o.seconds < 10.0, "{fault}: the ranks took {:.1} s to stop", o.seconds);
    let line = explanation(&o.output);
    for c in cause {
        assert!(line.contains(c), "{fault}: the message must name '{c}': {line}\n{}", o.output);
    }
    let qtrain_errors = o.output.lines().filter(|l| l.starts_with("qtrain: error")).count();
    assert!(qtrain_errors <= 1, "{fault}: one message, not one per rank:\n{}", o.output);
    let partial = partial_of(out);
    let kept = match (out.exists(), partial.exists()) {
        (true, _) => {
            hdf5::File::open(out)
                .unwrap_or_else(|e| panic!("{fault}: {} is not a valid HDF5 file: {e}", out.display()));
            format!("result file valid (status {})", attr_str(out, "status"))
        }
        (false, true) => "no result file; OUT.partial kept (rows up to the last flush)".to_string(),
        (false, false) => "no result file".to_string(),
    };
    // The page shows the test's scratch folder as DIR: its name changes with every run.
    let scratch =
        out.ancestors().find(|a| a.file_name().is_some_and(|n| n.to_string_lossy().starts_with("qtrain-test-")));
    let shown = scratch.map_or(line.clone(), |dir| line.replace(dir.to_str().unwrap(), "DIR"));
    let row = format!("{fault}\t{how}\t{code}\t{:.1}\t{}\t{kept}", o.seconds, shown.replace('\t', " "));
    if let Some(log) = std::env::var_os("QTRAIN_RELIABILITY_LOG") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        writeln!(f, "{row}").unwrap();
    }
    row
}

/// 200 rounds on the embedded data, a metrics row flushed every round.
fn long_run<'a>(out: &'a str, rest: &[&'a str]) -> Vec<String> {
    let mut r = vec!["--method", "ef21", "--compressor", "top-k:k=10", "--iters", "200", "--flush-every", "1"];
    r.extend_from_slice(rest);
    train_args(out, &r)
}

/// What the launcher says when a rank dies outside qtrain's control: its exit code and
/// words of its message. The two MPIs differ: OpenMPI's mpirun exits 128 + the signal and
/// names the rank; MPICH's Hydra exits with the signal's number and names the PID. Where
/// a launcher has more than one way to report a fault, each is listed (the one whose code
/// was observed is checked).
struct Expect<'a> {
    openmpi: &'a [(i32, &'a [&'a str])],
    mpich: &'a [(i32, &'a [&'a str])],
}

fn process_fault(fault: &str, injected: &str, ranks: usize, expect: Expect) {
    let dir = TempDir::new("fault");
    let out = dir.path("run.h5");
    let o = launch(ranks, &strs(&long_run(out.to_str().unwrap(), &[])), injected);
    let ways = if std::env::var("QTRAIN_MPI").is_ok_and(|m| m == "mpich") { expect.mpich } else { expect.openmpi };
    let &(code, cause) = ways.iter().find(|(c, _)| Some(*c) == o.code).unwrap_or(&ways[0]);
    let row = check(fault, &format!("QTRAIN_FAULT={injected}"), &o, &[code], cause, &out);
    assert!(!out.exists(), "{fault}: no result under the final name: {row}");
}

#[test]
fn a_rank_killed_by_sigkill_stops_every_rank() {
    let expect = Expect { openmpi: &[(137, &["rank 1", "signal 9"])], mpich: &[(9, &["Killed (signal 9)"])] };
    process_fault("rank killed (SIGKILL)", "kill@1:20", 3, expect);
}

#[test]
fn a_rank_that_crashes_stops_every_rank() {
    let expect =
        Expect { openmpi: &[(139, &["rank 1", "signal 11"])], mpich: &[(11, &["Segmentation fault (signal 11)"])] };
    process_fault("rank crashes (SIGSEGV)", "segv@1:20", 2, expect);
}

#[test]
fn a_rank_that_aborts_stops_every_rank() {
    let expect = Expect { openmpi: &[(134, &["rank 0", "signal 6"])], mpich: &[(6, &["Aborted (signal 6)"])] };
    process_fault("rank aborts (SIGABRT)", "abort@0:20", 2, expect);
}

#[test]
fn a_rank_that_exits_without_mpi_stops_every_rank() {
    // mpirun names the process by job and rank: "[[JOB,1],1]" is rank 1. Hydra reports
    // the SIGKILL it sent to the others — or, seen once on a loaded machine (CI of
    // 2026-12-01, 4 oversubscribed ranks), exits with the rank's own code 1 and prints
    // nothing, leaving the rank's own last line (the injected exit) as the explanation.
    let expect = Expect {
        openmpi: &[(1, &["],1]", "Exit code: 1"])],
        mpich: &[(9, &["Killed (signal 9)"]), (1, &["Exit at round 20"])],
    };
    process_fault("rank exits without leaving MPI", "exit@1:20", 4, expect);
}

/// NaN in the model: every rank stops at the same round with exit 5; the file records
/// the round and the last finite values.
#[test]
fn divergence_stops_with_the_last_finite_values() {
    let dir = TempDir::new("nan");
    let out = dir.path("run.h5");
    let o = launch(2, &strs(&long_run(out.to_str().unwrap(), &[])), "nan@*:10");
    check(
        "divergence (NaN in the model)",
        "QTRAIN_FAULT=nan@*:10",
        &o,
        &[5],
        &["diverged at round 11", "round 10"],
        &out,
    );
    assert_eq!(attr_str(&out, "status"), "diverged");
    let f = hdf5::File::open(&out).unwrap();
    let attr_u64 = |n: &str| f.attr(n).unwrap().read_scalar::<u64>().unwrap();
    assert_eq!((attr_u64("diverged_at"), attr_u64("last_finite_iter")), (11, 10));
    let loss = column::<f64>(&out, "loss");
    assert!(loss[10].is_finite() && loss[11].is_nan());
    assert_eq!(attr_f64(&out, "last_finite_loss").to_bits(), loss[10].to_bits());
}

/// A message whose size MPI's i32 counts cannot hold is refused on every rank before
/// any of them enters the byte collective (here: claimed, not allocated).
#[test]
fn a_message_above_the_count_limit_is_refused_by_every_rank() {
    let dir = TempDir::new("huge");
    let out = dir.path("run.h5");
    let o = launch(4, &strs(&long_run(out.to_str().unwrap(), &[])), "huge@2:10");
    check(
        "message above MPI's 2³¹-byte count",
        "QTRAIN_FAULT=huge@2:10",
        &o,
        &[2],
        &["one rank's messages", "count limit of 2^31 bytes"],
        &out,
    );
    assert!(!out.exists());
}

/// A small tmpfs mounted over `dir` (root only): `Some(unmount guard)`, or None when
/// this machine cannot mount one.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            skip("root", &format!("cannot mount a tmpfs on {} (needs root)", dir.display()));
            return None;
        }
        Some(Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The result file's disk fills up: the write fails on rank 0, every rank stops with
/// that message, and no partial result is left under the final name.
#[test]
fn a_full_disk_while_writing_metrics_is_one_clear_error() {
    let dir = TempDir::new("full");
    let Some(_mount) = Mount::tmpfs(&dir.path("disk"), "size=96k") else { return };
    let out = dir.path("disk/run.h5");
    let o = launch(2, &strs(&long_run(out.to_str().unwrap(), &["--iters", "5000"])), "");
    check(
        "disk full while writing metrics",
        "a 96 KiB tmpfs",
        &o,
        &[2],
        &["run.h5.partial", "No space left on device"],
        &out,
    );
}

/// The checkpoint folder's disk fills up: every rank stops with the message; the last
/// complete checkpoint stays complete and resumable.
#[test]
fn a_full_disk_while_writing_a_checkpoint_keeps_the_previous_one() {
    let dir = TempDir::new("fullcp");
    let Some(_mount) = Mount::tmpfs(&dir.path("disk"), "size=64k") else { return };
    let (out, cp) = (dir.path("run.h5"), dir.path("disk/cp"));
    let args = long_run(
        out.to_str().unwrap(),
        &[
            "--checkpoint-every",
            "5",
            "--checkpoint-dir",
            cp.to_str().unwrap(),
            "--checkpoint-keep",
            "100",
            "--iters",
            "1000",
        ],
    );
    let o = launch(2, &strs(&args), "");
    check(
        "disk full while writing a checkpoint",
        "a 64 KiB tmpfs for --checkpoint-dir",
        &o,
        &[2],
        &["No space left on device"],
        &out,
    );
    let complete: Vec<_> =
        std::fs::read_dir(&cp).unwrap().flatten().filter(|e| e.path().join("MANIFEST").exists()).collect();
    assert!(!complete.is_empty(), "the checkpoints written before the disk filled stay complete");
}

/// An output folder that cannot be written: the error names the file and the cause before
/// any round runs.
#[test]
fn a_read_only_output_folder_is_one_clear_error() {
    let dir = TempDir::new("ro");
    let Some(_mount) = Mount::tmpfs(&dir.path("ro"), "ro,size=64k") else { return };
    let out = dir.path("ro/run.h5");
    let o = launch(2, &strs(&long_run(out.to_str().unwrap(), &[])), "");
    check("output folder read-only", "a read-only tmpfs", &o, &[2], &["run.h5", "Read-only file system"], &out);
}

/// Preemption is not a failure: exit 4, a checkpoint, the result closed as `preempted`
/// (README "Checkpoints and preemption"; resume tests in resume.rs).
#[test]
fn preemption_closes_the_result_and_exits_4() {
    let dir = TempDir::new("preempt-fault");
    let (out, cp) = (dir.path("run.h5"), dir.path("cp"));
    let args = long_run(out.to_str().unwrap(), &["--checkpoint-every", "50", "--checkpoint-dir", cp.to_str().unwrap()]);
    let o = launch(2, &strs(&args), "usr1@1:30");
    check("preemption (SIGUSR1)", "QTRAIN_FAULT=usr1@1:30", &o, &[4], &["preempted after round 31", "--resume"], &out);
    assert_eq!(attr_str(&out, "status"), "preempted");
}

/// docs/reliability.md is generated from this suite (scripts/reliability-doc.sh): it must
/// have a row for every fault.
#[test]
fn the_reliability_page_lists_every_fault() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reliability.md")).unwrap();
    for fault in FAULTS {
        assert!(
            page.lines().any(|l| l.starts_with(&format!("| {fault} |"))),
            "docs/reliability.md has no row for '{fault}'"
        );
    }
}
