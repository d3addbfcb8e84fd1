//! The emulated multi-host cluster (docs/emulated-cluster.md): runs
//! `scripts/test-cluster.sh`, which brings up four network-namespace hosts with
//! rate-limited veth links, trains with both example hostfiles and checks that t_comm of
//! dense GD is much larger at 100mbit than at 10gbit. Needs root; the script prints
//! `skipped: …` and succeeds where namespaces cannot be made. `QTRAIN_SKIP_CLUSTER=1`
//! skips it too.

use crate::util::{qtrain, skip};
use std::process::Command;

#[test]
fn emulated_cluster_runs_both_hostfiles_and_shapes_the_links() {
    if std::env::var("QTRAIN_SKIP_CLUSTER").is_ok_and(|v| v == "1") {
        return skip("cluster", "QTRAIN_SKIP_CLUSTER=1");
    }
    let root = env!("CARGO_MANIFEST_DIR");
    // ~20 s here; each mpirun is bounded by 120 s and the whole script by 180 s.
    let out = Command::new("timeout")
        .args(["--kill-after=15", "180", "bash", "scripts/test-cluster.sh"])
        .current_dir(root)
        .env("QTRAIN_BIN", qtrain())
        .env("QTRAIN_CLUSTER_TIMEOUT", "120")
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG")
        .output()
        .expect("bash and timeout must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(124), "scripts/test-cluster.sh hung: killed after 180 s\n{stdout}\n{stderr}");
    if let Some(line) = stdout.lines().find(|l| l.starts_with("skipped:")) {
        assert!(out.status.success(), "the script skipped but failed:\n{stdout}\n{stderr}");
        return skip("cluster", line.trim_start_matches("skipped:").trim());
    }
    assert!(
        out.status.success(),
        "scripts/test-cluster.sh failed ({:?}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status.code()
    );
    eprint!("{stdout}");
}
