//! `qtrain report` (table and figures) and `qtrain project` (cost model).

use crate::util::*;

fn train(dir: &TempDir, name: &str, ranks: usize, rest: &[&str]) -> std::path::PathBuf {
    let out = dir.path(name);
    let mut args = vec!["--iters", "40", "--fstar", "auto"];
    args.extend_from_slice(rest);
    mpirun(ranks, &strs(&train_args(out.to_str().unwrap(), &args))).expect_ok();
    out
}

/// Figures exist, are real PNG/SVG, carry labelled axes and one legend entry per run;
/// the scaling figures appear because the runs cover two rank counts.
#[test]
fn report_writes_labelled_figures_and_a_table() {
    let dir = TempDir::new("report");
    let runs = [
        train(&dir, "gd-1.h5", 1, &["--method", "gd"]),
        train(&dir, "ef21-2.h5", 2, &["--method", "ef21", "--compressor", "top-k:k=8"]),
        train(&dir, "gd-2.h5", 2, &["--method", "gd"]),
    ];
    let figs = dir.path("figs");
    let mut args = vec!["report"];
    args.extend(runs.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--out", figs.to_str().unwrap()]);
    let run = mpirun(1, &args).expect_ok();
    for name in ["gd-1", "ef21-2", "gd-2"] {
        assert!(
            run.stdout.lines().any(|l| l.starts_with(&format!("| {name} |"))),
            "table row for {name}:\n{}",
            run.stdout
        );
    }
    assert!(!figs.join("convergence_bits_total.png").exists(), "no downlink bits, no figure against them");
    let expected = [
        ("convergence_rounds", "round t"),
        ("convergence_bits", "bits sent by all workers"),
        ("convergence_time", "training time (s)"),
        ("scaling_time", "MPI ranks"),
        ("scaling_bytes", "bytes per rank per round"),
    ];
    for (name, x_label) in expected {
        let png = std::fs::read(figs.join(format!("{name}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png is a PNG");
        assert!(png.len() > 10_000, "{name}.png has content");
        let svg = std::fs::read_to_string(figs.join(format!("{name}.svg"))).unwrap();
        assert!(svg.contains(x_label), "{name}: x axis label '{x_label}'");
        if name.starts_with("convergence") {
            assert!(svg.contains("f(x) − f*"), "{name}: y axis label");
            for run in
                ["gd-1: gd identity (1 ranks)", "ef21-2: ef21 top-k:k=8 (2 ranks)", "gd-2: gd identity (2 ranks)"]
            {
                assert!(svg.contains(run), "{name}: legend entry {run}");
            }
        } else {
            assert!(svg.contains("gd identity") && svg.contains("ef21 top-k:k=8"), "{name}: one series per method");
        }
    }
}

/// The cost model prints the measured rank count and the requested ones; for an
/// allgather method the modelled communication grows with the ranks.
#[test]
fn project_models_larger_rank_counts() {
    let dir = TempDir::new("project");
    let run_file = train(&dir, "ef21.h5", 2, &["--method", "ef21", "--compressor", "top-k:k=8"]);
    let figs = dir.path("figs");
    let run = mpirun(
        1,
        &[
            "project",
            run_file.to_str().unwrap(),
            "--ranks",
            "64,1024",
            "--bandwidth",
            "1gbit",
            "--latency",
            "20us",
            "--out",
            figs.to_str().unwrap(),
        ],
    )
    .expect_ok();
    let header = run.stdout.lines().find(|l| l.starts_with("| ranks |")).expect("the table's header");
    let column = header.split('|').position(|c| c.trim() == "comm µs").expect("a comm µs column");
    let comm = |ranks: &str| -> f64 {
        let row = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {ranks} |")))
            .unwrap_or_else(|| panic!("row {ranks}:\n{}", run.stdout));
        row.split('|').nth(column).unwrap().trim().parse().unwrap()
    };
    assert!(comm("1024") > comm("64") && comm("64") > comm("2"), "{}", run.stdout);
    assert!(run.stdout.contains("check at 2 ranks: measured comm"));
    assert!(std::fs::read_to_string(figs.join("projection.svg")).unwrap().contains("MPI ranks"));
    let bad = mpirun(1, &["project", run_file.to_str().unwrap(), "--bandwidth", "fast"]);
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("--bandwidth fast"), "{}", bad.stderr);
}
