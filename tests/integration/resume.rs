//! Checkpoints and bitwise resume (docs/reliability.md): every registered method (its
//! examples, on both topologies) and every compressor family (with four representative
//! methods), stopped by a real signal or a SIGKILL and resumed, gives the metrics of the run that was never interrupted; a
//! checkpoint resumes on another rank count; damaged checkpoints and changed settings
//! are detected. The methods and compressors come from the registry
//! (`qtrain methods --examples`, `qtrain compressors --examples`).

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn lines_of(args: &[&str]) -> Vec<String> {
    let out = Command::new(qtrain()).args(args).output().expect("qtrain runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

/// Every method's examples (both topologies), and every compressor family crossed with
/// [`REPRESENTATIVES`] (the replicated topology); pairs a method rejects at set-up are left
/// out where they fail. A method's own state is exercised by its examples; a compressor's
/// (its shared streams, its per-worker coins) lives in the codec every method shares, so
/// four methods of different state — error memories, 3PC estimators, DIANA shifts,
/// MARINA's coin with the collective compressors — cover it without the full product,
/// whose cost grew with every method and compressor (500 pairs, the slowest test of CI).
fn cases() -> Vec<(String, String, &'static str)> {
    let examples: Vec<(String, String)> = lines_of(&["methods", "--examples"])
        .iter()
        .map(|l| l.split_once('\t').map(|(m, c)| (m.to_string(), c.to_string())).unwrap())
        .collect();
    let mut cases: Vec<(String, String, &str)> = Vec::new();
    for (m, c) in &examples {
        cases.push((m.clone(), c.clone(), "replicated"));
        cases.push((m.clone(), c.clone(), "server"));
    }
    // Under MPICH (whose runs start slower on these machines) only the examples: the
    // cross product below checks the methods' and compressors' state, not the MPI.
    if std::env::var("QTRAIN_MPI").is_ok_and(|m| m == "mpich") {
        return cases;
    }
    for compressor in lines_of(&["compressors", "--examples"]) {
        for method in REPRESENTATIVES {
            if !examples.iter().any(|(m, c)| m == method && *c == compressor) {
                cases.push((method.to_string(), compressor.clone(), "replicated"));
            }
        }
    }
    cases
}

/// The methods every compressor family is resumed with (see `cases`).
const REPRESENTATIVES: [&str; 4] = ["ef", "ef21", "diana", "marina"];

/// The common flags of a 30-round run with 4 workers.
fn common<'a>(method: &'a str, compressor: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--method", method, "--compressor", compressor, "--iters", "30", "--workers", "4", "--seed", "5"];
    v.extend_from_slice(extra);
    v
}

/// `mpirun` with QTRAIN_FAULT set for the ranks.
fn mpirun_fault(ranks: usize, fault: &str, args: &[String]) -> Run {
    mpirun_env(ranks, &strs(args), &[("QTRAIN_FAULT", fault)])
}

/// Columns that describe the machine or the rank layout rather than the run: timings,
/// and the bytes one rank contributed or received.
const LAYOUT_COLUMNS: [&str; 10] = [
    "time",
    "t_compute",
    "t_compress",
    "t_comm",
    "t_decode",
    "recv_bytes_round",
    "allgather_bytes_round",
    "gather_bytes_round",
    "allgather_calls_round",
    "gather_calls_round",
];

/// Every /metrics column (time columns aside; with `layouts`, also the per-rank ones),
/// the test and diagnostic series, and the final model agree bit for bit.
fn assert_same_run(a: &Path, b: &Path, layouts: bool, ctx: &str) {
    let fa = hdf5::File::open(a).unwrap();
    let fb = hdf5::File::open(b).unwrap();
    let names = fa.group("metrics").unwrap().member_names().unwrap();
    for name in names
        .iter()
        .filter(|n| !(LAYOUT_COLUMNS[..5].contains(&n.as_str()) || layouts && LAYOUT_COLUMNS.contains(&n.as_str())))
    {
        // Bit patterns, so that floats compare bit for bit (NaN included).
        let read = |f: &hdf5::File| -> Vec<u64> {
            let ds = f.dataset(&format!("metrics/{name}")).unwrap();
            match ds.dtype().unwrap().to_descriptor().unwrap() {
                hdf5::types::TypeDescriptor::Float(_) => {
                    ds.read_raw::<f64>().unwrap().iter().map(|v| v.to_bits()).collect()
                }
                _ => ds.read_raw::<u64>().unwrap(),
            }
        };
        assert_eq!(read(&fa), read(&fb), "{ctx}: /metrics/{name}");
    }
    for series in ["test/accuracy", "diagnostics/leader_overlap/value"] {
        if let Ok(ds) = fa.dataset(series) {
            let other = fb.dataset(series).unwrap_or_else(|_| panic!("{ctx}: {series} missing after the resume"));
            assert_eq!(ds.read_raw::<f64>().unwrap(), other.read_raw::<f64>().unwrap(), "{ctx}: {series}");
        }
    }
    assert_eq!(attr_str(a, "x_digest"), attr_str(b, "x_digest"), "{ctx}: final model");
    assert_eq!(final_x(a), final_x(b), "{ctx}: /model/x");
}

fn run_args(out: &Path, cp: &Path, method: &str, compressor: &str, extra: &[&str]) -> Vec<String> {
    let cp = cp.to_str().unwrap().to_string();
    let mut rest: Vec<String> = common(method, compressor, extra).iter().map(|s| s.to_string()).collect();
    rest.extend(["--checkpoint-every".into(), "10".into(), "--checkpoint-dir".into(), cp]);
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    train_args(out.to_str().unwrap(), &rest)
}

/// One case: the uninterrupted run; a run stopped by `fault`; its resume with `--resume`
/// on `resume_ranks` ranks. Returns the two result files, or None when the method
/// rejects the compressor at set-up.
fn interrupted_and_resumed(
    dir: &TempDir,
    name: &str,
    case: (&str, &str, &[&str]),
    ranks: usize,
    fault: &str,
    resume_ranks: usize,
) -> Option<(PathBuf, PathBuf)> {
    let (method, compressor, extra) = case;
    let (a, b) = (dir.path(&format!("{name}-a.h5")), dir.path(&format!("{name}-b.h5")));
    let (cp_a, cp_b) = (dir.path(&format!("{name}-cp-a")), dir.path(&format!("{name}-cp-b")));
    let whole = mpirun(ranks, &strs(&run_args(&a, &cp_a, method, compressor, extra)));
    if whole.code == Some(2) && whole.stderr.contains("invalid configuration") {
        return None;
    }
    whole.expect_ok();
    let stopped = mpirun_fault(ranks, fault, &run_args(&b, &cp_b, method, compressor, extra));
    assert!(!stopped.ok(), "{name}: the fault {fault} must stop the run\n{}", stopped.stderr);
    let mut resumed = run_args(&b, &cp_b, method, compressor, extra);
    resumed.push("--resume".into());
    let run = mpirun(resume_ranks, &strs(&resumed));
    assert!(
        run.ok() && run.stderr.contains("resumed from"),
        "{name}: {}\nthe stopped run said:\n{}",
        run.stderr,
        stopped.stderr
    );
    Some((a, b))
}

/// SIGUSR1 on rank 0 after round 17 (`QTRAIN_FAULT`, a real signal): every rank stops
/// after the same round, checkpoints round 18, closes its result as `preempted` (exit 4);
/// `--resume` continues, and the result is the uninterrupted run's — for every example
/// pair on both topologies, and (under OpenMPI) every compressor family with the
/// representative methods.
/// The cases are dealt round-robin to `SHARES` tests, which the harness runs side by side
/// (each case is mostly launcher start-up, which leaves the cores idle).
fn resumes_bit_for_bit_after_a_signal(share: usize) {
    let dir = TempDir::new(&format!("resume-{share}"));
    let mut ran = 0;
    for (n, (method, compressor, topology)) in cases().iter().enumerate().filter(|(n, _)| n % SHARES == share) {
        let extra = ["--topology", topology];
        let Some((a, b)) =
            interrupted_and_resumed(&dir, &format!("c{n}"), (method, compressor, &extra), 2, "usr1@0:17", 2)
        else {
            continue;
        };
        assert_same_run(&a, &b, false, &format!("{method} with {compressor} on {topology}"));
        assert_eq!(hdf5::File::open(&b).unwrap().attr("resumed_at").unwrap().read_scalar::<u64>().unwrap(), 18);
        ran += 1;
    }
    // Both topologies for every example pair (under MPICH only those), and the
    // representatives with every compressor family they accept.
    let least = if std::env::var("QTRAIN_MPI").is_ok_and(|m| m == "mpich") { 40 } else { 50 } / SHARES;
    eprintln!("{ran} method/compressor pairs resumed bit for bit (share {share} of {SHARES})");
    assert!(ran >= least, "only {ran} method/compressor pairs ran in share {share}");
}

const SHARES: usize = 4;

#[test]
fn every_method_resumes_bit_for_bit_after_a_signal_0() {
    resumes_bit_for_bit_after_a_signal(0)
}

#[test]
fn every_method_resumes_bit_for_bit_after_a_signal_1() {
    resumes_bit_for_bit_after_a_signal(1)
}

#[test]
fn every_method_resumes_bit_for_bit_after_a_signal_2() {
    resumes_bit_for_bit_after_a_signal(2)
}

#[test]
fn every_method_resumes_bit_for_bit_after_a_signal_3() {
    resumes_bit_for_bit_after_a_signal(3)
}

/// A preempted run says so: exit code 4 on every rank, one message, status `preempted`.
#[test]
fn a_preempted_run_exits_4_with_its_checkpoint_named() {
    let dir = TempDir::new("preempt");
    let (out, cp) = (dir.path("p.h5"), dir.path("cp"));
    let run = mpirun_fault(2, "term@1:12", &run_args(&out, &cp, "ef21", "top-k:k=10", &[]));
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("qtrain: preempted")).collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].contains("after round 13") && lines[0].contains("--resume"), "{}", lines[0]);
    assert_eq!(attr_str(&out, "status"), "preempted");
    assert!(cp.join("round-000000013/MANIFEST").exists());
}

/// A SIGKILL loses nothing but the rounds after the last checkpoint: the resume from
/// round 20 of a run killed at round 25 ends as the uninterrupted run.
#[test]
fn a_killed_run_resumes_from_its_last_checkpoint() {
    let dir = TempDir::new("killed");
    for (method, compressor) in [("ef21", "top-k:k=10"), ("sketched-sgd:k=10,p2=3", "sketch:rows=5,cols=40")] {
        let name = method.replace(':', "_");
        let (a, b) = interrupted_and_resumed(&dir, &name, (method, compressor, &[]), 2, "kill@1:25", 2).unwrap();
        assert_same_run(&a, &b, false, method);
    }
}

/// VR-MARINA's two-point oracle reads x^{t−1}, which the engine keeps for it: the
/// checkpoint holds it, so a run killed at round 25 resumes bit for bit.
#[test]
fn vr_marina_resumes_with_the_previous_model() {
    let dir = TempDir::new("vr");
    let case = ("marina:vr,p=0.3", "rand-k:k=20", &["--batch", "10"][..]);
    let (a, b) = interrupted_and_resumed(&dir, "vr", case, 2, "kill@1:25", 2).unwrap();
    assert_same_run(&a, &b, false, "VR-MARINA");
}

/// Iterates do not depend on the rank layout for a fixed --workers, so a checkpoint of 4
/// ranks resumes on 2 and on 1 rank, bit for bit (for methods whose messages are
/// gathered; summed ones agree to MPI's summation order only).
#[test]
fn checkpoints_resume_on_another_rank_count() {
    let dir = TempDir::new("ranks");
    for (method, compressor) in [("ef21", "top-k:k=10"), ("diana", "rand-k:k=20"), ("clag:zeta=2", "identity")] {
        for resume_ranks in [2, 1] {
            let name = format!("{}-{resume_ranks}", method.replace(':', "_"));
            let (a, b) =
                interrupted_and_resumed(&dir, &name, (method, compressor, &[]), 4, "kill@2:25", resume_ranks).unwrap();
            assert_same_run(&a, &b, true, &format!("{method} from 4 ranks to {resume_ranks}"));
        }
    }
}

/// A damaged newest checkpoint (a truncated part) is skipped with a message; the
/// previous complete one is used and the result is still the uninterrupted run's.
#[test]
fn a_damaged_checkpoint_falls_back_to_the_previous_one() {
    let dir = TempDir::new("damaged");
    let (a, b, cp) = (dir.path("a.h5"), dir.path("b.h5"), dir.path("cp"));
    mpirun(2, &strs(&run_args(&a, &dir.path("cp-a"), "ef21", "top-k:k=10", &[]))).expect_ok();
    let killed = mpirun_fault(2, "kill@0:25", &run_args(&b, &cp, "ef21", "top-k:k=10", &[]));
    assert!(!killed.ok(), "the run must die at round 25");
    let part = cp.join("round-000000020/part-1.bin");
    let bytes = std::fs::read(&part).unwrap();
    std::fs::write(&part, &bytes[..bytes.len() / 2]).unwrap();
    let mut resumed = run_args(&b, &cp, "ef21", "top-k:k=10", &[]);
    resumed.push("--resume".into());
    let run = mpirun(2, &strs(&resumed)).expect_ok();
    assert!(run.stderr.contains("skipping a checkpoint") && run.stderr.contains("part-1.bin"), "{}", run.stderr);
    assert!(run.stderr.contains("round-000000010 (round 10)"), "{}", run.stderr);
    assert_same_run(&a, &b, false, "fallback to round 10");
}

/// Resuming with other settings is an error that names each difference; resuming with
/// no checkpoint is an error too; neither touches the result file.
#[test]
fn resume_with_changed_settings_names_what_differs() {
    let dir = TempDir::new("changed");
    let (out, cp) = (dir.path("r.h5"), dir.path("cp"));
    assert_eq!(mpirun_fault(2, "usr1@0:12", &run_args(&out, &cp, "ef21", "top-k:k=10", &[])).code, Some(4));
    let before = std::fs::read(&out).unwrap();
    let mut other = run_args(&out, &cp, "clag:zeta=1", "top-k:k=5", &["--lambda", "0.2"]);
    other.push("--resume".into());
    let run = mpirun(2, &strs(&other));
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    for what in [
        "method: checkpoint ef21, this run clag:zeta=1",
        "compressor: checkpoint top-k:k=10, this run top-k:k=5",
        "lambda",
    ] {
        assert!(run.stderr.contains(what), "{what}:\n{}", run.stderr);
    }
    let mut empty = run_args(&dir.path("x.h5"), &dir.path("none"), "ef21", "top-k:k=10", &[]);
    empty.push("--resume".into());
    let run = mpirun(2, &strs(&empty));
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("no complete checkpoint"), "{}", run.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), before, "a refused resume leaves the result as it was");
}

/// `qtrain compare` (what jobs/ and scripts/test-slurm.sh check requeued runs with):
/// exit 0 for a resumed run and its uninterrupted twin; exit 1 naming the first
/// differing row for a run with another seed; across rank counts only with
/// --across-layouts (the per-rank byte columns differ, the run does not).
#[test]
fn compare_tells_the_same_run_from_another() {
    let dir = TempDir::new("compare");
    let (a, b) = interrupted_and_resumed(&dir, "ef21", ("ef21", "rand-k:k=10", &[]), 4, "kill@1:25", 2).unwrap();
    let compare = |extra: &[&str], x: &Path, y: &Path| {
        let out = Command::new(qtrain()).arg("compare").args(extra).arg(x).arg(y).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let (code, said) = compare(&["--across-layouts"], &a, &b);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.starts_with("same run: 31 rows"), "{said}");
    let (code, said) = compare(&[], &a, &b);
    assert_eq!(code, Some(1), "4 ranks against 2: {said}");
    assert!(said.contains("metrics/recv_bytes_round") && !said.contains("metrics/loss"), "{said}");
    let c = dir.path("seed.h5");
    mpirun(4, &strs(&train_args(c.to_str().unwrap(), &common("ef21", "rand-k:k=10", &["--seed", "6"])))).expect_ok();
    let (code, said) = compare(&[], &a, &c);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("metrics/loss: row 1 (iter 1)") && said.contains("final model"), "{said}");
}

/// `--resume=auto`, what a requeued job script passes every time: an attempt killed
/// before its first checkpoint leaves only OUT.partial, and the next attempt starts
/// again at round 0 (replacing it); an attempt preempted later resumes from its
/// checkpoint. Either way the result is the uninterrupted run's.
#[test]
fn resume_auto_starts_or_continues_as_the_folder_says() {
    let dir = TempDir::new("auto");
    let (a, b, cp) = (dir.path("a.h5"), dir.path("b.h5"), dir.path("cp"));
    mpirun(2, &strs(&run_args(&a, &dir.path("cp-a"), "ef21", "top-k:k=10", &[]))).expect_ok();
    let auto = run_args(&b, &cp, "ef21", "top-k:k=10", &["--resume=auto"]);
    assert!(!mpirun_fault(2, "kill@1:5", &auto).ok(), "killed before the first checkpoint");
    assert!(partial_of(&b).exists() && !cp.join("round-000000010").exists());
    let again = mpirun_fault(2, "usr1@0:15", &auto);
    assert_eq!(again.code, Some(4), "{}", again.stderr);
    assert!(again.stderr.contains("starting at round 0, replacing"), "{}", again.stderr);
    let last = mpirun(2, &strs(&auto)).expect_ok();
    assert!(last.stderr.contains("resumed from") && last.stderr.contains("(round 16)"), "{}", last.stderr);
    assert_same_run(&a, &b, false, "--resume=auto");
}
