//! Bad input: one clear message, every rank exits non-zero, nothing hangs (the
//! launcher's timeout fails the test), no result file is clobbered.

use crate::util::*;
use std::process::Command;

/// The error lines a run printed (each rank would print its own if not agreed).
fn error_lines(run: &Run) -> Vec<String> {
    run.stderr.lines().filter(|l| l.starts_with("qtrain: error")).map(str::to_string).collect()
}

/// Runs a failing command and returns its one error message.
pub(crate) fn fails(ranks: usize, args: &[&str]) -> String {
    let run = mpirun(ranks, args);
    assert_eq!(run.code, Some(2), "expected exit code 2\n{}\n{}", run.stdout, run.stderr);
    let lines = error_lines(&run);
    assert_eq!(lines.len(), 1, "exactly one error message, got:\n{}", run.stderr);
    assert!(!run.stderr.contains("MPI_ABORT"), "agreed errors must not need MPI_Abort:\n{}", run.stderr);
    lines[0].clone()
}

#[test]
fn malformed_file_names_file_line_and_fix() {
    let dir = TempDir::new("bad");
    let bad = dir.write("bad.svm", "1 1:1 2:1\n0 2:1\n# comment\n1 3:x\n0 1:1\n1 2:1\n0 3:1\n");
    let out = dir.path("o.h5");
    let msg = fails(2, &["train", "--data", bad.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(msg.contains("bad.svm:4:") && msg.contains("'x'"), "{msg}");
    assert!(!out.exists());
}

#[test]
fn k_larger_than_d_is_rejected() {
    let dir = TempDir::new("k");
    let out = dir.path("o.h5");
    let msg = fails(2, &strs(&train_args(out.to_str().unwrap(), &["--method", "ef21", "--compressor", "top-k:k=500"])));
    assert!(msg.contains("k = 500") && msg.contains("d = 126") && msg.contains("1 ≤ k ≤ 126"), "{msg}");
}

#[test]
fn zero_quantization_levels_are_rejected() {
    let dir = TempDir::new("s");
    let out = dir.path("o.h5");
    let msg = fails(2, &strs(&train_args(out.to_str().unwrap(), &["--method", "diana", "--compressor", "qsgd:s=0"])));
    assert!(msg.contains("s = 0"), "{msg}");
}

#[test]
fn biased_compressor_for_an_unbiased_method_is_rejected() {
    let dir = TempDir::new("biased");
    let out = dir.path("o.h5");
    let msg = fails(1, &strs(&train_args(out.to_str().unwrap(), &["--method", "diana", "--compressor", "top-k:k=3"])));
    assert!(msg.contains("diana needs an unbiased compressor"), "{msg}");
}

#[test]
fn more_workers_than_rows_is_rejected() {
    let dir = TempDir::new("rows");
    let tiny = dir.write("tiny.svm", "1 1:1\n0 2:1\n1 1:2\n");
    let out = dir.path("o.h5");
    let msg = fails(2, &["train", "--data", tiny.to_str().unwrap(), "--workers", "4", "--out", out.to_str().unwrap()]);
    assert!(msg.contains("4 workers but only 3 data rows"), "{msg}");
}

#[test]
fn workers_must_be_a_multiple_of_ranks() {
    let dir = TempDir::new("mult");
    let out = dir.path("o.h5");
    let msg = fails(2, &strs(&train_args(out.to_str().unwrap(), &["--workers", "3"])));
    assert!(msg.contains("--workers 3 with 2 MPI ranks"), "{msg}");
}

/// A failure on one rank only (its shard file is missing) stops all ranks with one
/// message that names the rank and the file.
#[test]
fn a_failure_on_one_rank_stops_every_rank() {
    let dir = TempDir::new("onerank");
    dir.write("part-0.svm", "1 1:1\n0 2:1\n");
    let pattern = format!("{}/part-{{rank}}.svm", dir.0.display());
    let out = dir.path("o.h5");
    let msg = fails(2, &["train", "--data", &pattern, "--out", out.to_str().unwrap()]);
    assert!(msg.contains("rank 1") && msg.contains("part-1.svm") && msg.contains("cannot open"), "{msg}");
    assert!(!msg.contains("rank 0"), "{msg}");
}

#[test]
fn a_third_label_is_rejected_with_its_line() {
    let dir = TempDir::new("labels");
    let data = dir.write("l.svm", "1 1:1\n0 2:1\n1 1:2\n2 2:2\n");
    let out = dir.path("o.h5");
    let msg = fails(2, &["train", "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(msg.contains("l.svm:") && msg.contains("label 1 is neither 0 nor 2"), "{msg}");
}

/// An existing result is kept byte for byte unless --force is given.
#[test]
fn existing_result_is_not_overwritten_without_force() {
    let dir = TempDir::new("exists");
    let out = dir.write("o.h5", "precious");
    let msg = fails(2, &strs(&train_args(out.to_str().unwrap(), &["--iters", "2"])));
    assert!(msg.contains("already exists") && msg.contains("--force"), "{msg}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious");
    mpirun(2, &strs(&train_args(out.to_str().unwrap(), &["--iters", "2", "--force"]))).expect_ok();
    assert!(hdf5::File::open(&out).is_ok());
    assert!(!dir.path("o.h5.partial").exists());
}

#[test]
fn impossible_numbers_are_rejected() {
    let dir = TempDir::new("numbers");
    let out = dir.path("o.h5");
    for (flag, value, expect) in
        [("--lambda", "-1", "--lambda -1"), ("--step", "0", "--step 0"), ("--fstar", "abc", "--fstar abc")]
    {
        let msg = fails(2, &strs(&train_args(out.to_str().unwrap(), &[&format!("{flag}={value}")])));
        assert!(msg.contains(expect), "{msg}");
    }
}

#[test]
fn unknown_compressor_lists_the_known_ones() {
    let dir = TempDir::new("unknown");
    let out = dir.path("o.h5");
    let msg = fails(1, &strs(&train_args(out.to_str().unwrap(), &["--method", "dcgd", "--compressor", "topk:k=3"])));
    assert!(msg.contains("unknown compressor 'topk'") && msg.contains("top-k"), "{msg}");
}

/// A method key the method does not know is an error that lists the keys it knows.
#[test]
fn unknown_method_keys_name_the_known_ones() {
    let dir = TempDir::new("keys");
    let out = dir.path("o.h5");
    let msg = fails(
        2,
        &strs(&train_args(out.to_str().unwrap(), &["--method", "ef21:beta=0.5", "--compressor", "top-k:k=5"])),
    );
    assert!(msg.contains("ef21:beta=0.5") && msg.contains("beta=0.5") && msg.contains("ef21 knows: init"), "{msg}");
    let msg = fails(
        1,
        &strs(&train_args(out.to_str().unwrap(), &["--method", "scalecom:beta=2", "--compressor", "clt-k:k=5"])),
    );
    assert!(msg.contains("0 < β ≤ 1"), "{msg}");
    let msg = fails(1, &strs(&train_args(out.to_str().unwrap(), &["--method", "clag", "--compressor", "top-k:k=5"])));
    assert!(msg.contains("clag:zeta=F"), "{msg}");
    let msg = fails(1, &strs(&train_args(out.to_str().unwrap(), &["--method", "sgd"])));
    assert!(msg.contains("unknown method 'sgd'") && msg.contains("sketched-sgd"), "{msg}");
    assert!(!out.exists());
}

/// The per-method flags of earlier versions say where they went.
#[test]
fn moved_flags_point_to_the_method_spec() {
    let dir = TempDir::new("moved");
    let out = dir.path("o.h5");
    let msg = fails(2, &strs(&train_args(out.to_str().unwrap(), &["--method", "scalecom", "--beta", "0.5"])));
    assert!(msg.contains("--beta is now a key of the method SPEC") && msg.contains("scalecom:beta=F"), "{msg}");
}

/// Options that do not apply to the method are errors, not silently ignored.
#[test]
fn options_that_do_not_apply_are_rejected() {
    let dir = TempDir::new("apply");
    let out = dir.path("o.h5");
    let o = out.to_str().unwrap();
    let msg = fails(
        2,
        &strs(&train_args(o, &["--method", "scalecom", "--compressor", "clt-k:k=5", "--collective", "allgather"])),
    );
    assert!(msg.contains("scalecom sums its CLT-k values by allreduce: drop --collective"), "{msg}");
    let msg = fails(
        2,
        &strs(&train_args(o, &["--method", "scalecom", "--compressor", "clt-k:k=5", "--down-compressor", "top-k:k=3"])),
    );
    assert!(msg.contains("sparse update") && msg.contains("ef21"), "{msg}");
    let msg = fails(2, &strs(&train_args(o, &["--method", "ef21", "--compressor", "clt-k:k=5"])));
    assert!(msg.contains("compressor of --method scalecom"), "{msg}");
    let msg = fails(2, &strs(&train_args(o, &["--method", "ef21", "--compressor", "top-k:k=5", "--batch", "5000"])));
    assert!(msg.contains("--batch 5000") && msg.contains("1 ≤ B ≤ 3256"), "{msg}");
    assert!(!out.exists());
}

/// A binary started by the other MPI's launcher would run N one-rank jobs; it stops at
/// once instead, every process with exit 2, one message naming the library it was built
/// against and the fix, and no result file. Needs both MPIs (CI's MPICH pass has them).
#[test]
fn the_other_mpis_launcher_is_refused_with_the_fix() {
    let (other, built) = match std::env::var("QTRAIN_MPI").as_deref() {
        Ok("mpich") => ("mpirun.openmpi", "MPICH"),
        _ => ("mpiexec.mpich", "Open MPI"),
    };
    if Command::new(other).arg("--version").output().is_err() {
        return skip(
            "two-mpis",
            &format!("{other} is not installed (QTRAIN_MPI=mpich scripts/setup.sh installs MPICH)"),
        );
    }
    let dir = TempDir::new("launcher");
    let out = dir.path("o.h5");
    let run = Command::new("timeout")
        .args(["60", other, "-n", "3"])
        .arg(qtrain())
        .args(train_args(out.to_str().unwrap(), &["--iters", "5"]))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_ne!(run.status.code(), Some(0), "{stderr}");
    let messages: Vec<&str> = stderr.lines().filter(|l| l.starts_with("qtrain: error")).collect();
    assert_eq!(messages.len(), 1, "one message, from the launcher's first process:\n{stderr}");
    assert!(
        messages[0].contains("started 3 processes") && messages[0].contains(&format!("built against {built}")),
        "{}",
        messages[0]
    );
    assert!(!out.exists() && !partial_of(&out).exists(), "no result file");
}
