//! The Slurm workflow for real: `scripts/test-slurm.sh` starts a single-node Slurm on this
//! machine, submits every `jobs/*.sbatch` with `sbatch -W` and small parameters, checks
//! each job's final state and its HDF5 files, and stops Slurm again (jobs/README.md).
//! The script skips itself where a local Slurm cannot run (not root, no apt-get);
//! `QTRAIN_SKIP_SLURM=1` skips this test everywhere. About 40 s once Slurm is installed.

use crate::util::*;
use std::path::Path;
use std::process::Command;

#[test]
fn jobs_run_under_a_local_single_node_slurm() {
    if std::env::var("QTRAIN_SKIP_SLURM").as_deref() == Ok("1") {
        return skip("slurm", "QTRAIN_SKIP_SLURM=1");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The script's own waits are bounded (start 300 s, each job 60 s, the preemption
    // jobs 240 s); this is the backstop.
    let out = Command::new("timeout")
        .args(["--kill-after=60", "600", "bash"])
        .arg(root.join("scripts/test-slurm.sh"))
        .current_dir(root)
        .env("QTRAIN", qtrain())
        .env("JOB_TIMEOUT", "60")
        .output()
        .expect("bash and timeout must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(124), "scripts/test-slurm.sh hung: killed by the timeout\n{stdout}\n{stderr}");
    if let Some(line) = stdout.lines().find(|l| l.starts_with("skipped:")) {
        return skip("slurm", line.trim_start_matches("skipped:").trim());
    }
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "scripts/test-slurm.sh failed ({:?}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status.code()
    );
}
