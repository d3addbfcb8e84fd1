//! `qtrain sweep` on real data (phishing, 2 ranks): each point is the train run of its
//! SPEC and step, a rerun skips what is finished, the ranking agrees with the files read
//! here, a preempted sweep resumes, and bad grids fail before any run. 10–20 s in all
//! on 2 cores.

use crate::util::*;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `sweep --data phishing` with 100 rounds of CLAG + Top-k into `out`, then `rest`.
fn sweep_args(data: &Path, out: &Path, method: &str, rest: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "sweep",
        "--data",
        data.to_str().unwrap(),
        "--method",
        method,
        "--compressor",
        "top-k:k=2",
        "--iters",
        "100",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

/// The 2 × 2 grid of the first tests: ζ ∈ {0, 4} × step factors {1, 2}.
const GRID: [&str; 4] = ["--grid", "zeta=0,4", "--step-factors", "1,2"];

/// The result files in a folder.
fn results(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".h5"))
        .collect();
    names.sort();
    names
}

/// `qtrain compare A B` (one process, no launcher needed): its exit code and line.
fn compare(a: &Path, b: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(qtrain()).arg("compare").arg(a).arg(b).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Each file's modification time and inode (a rewrite, even within the same second,
/// renames a new file into place).
fn stamps(dir: &Path) -> BTreeMap<String, (std::time::SystemTime, u64)> {
    results(dir)
        .into_iter()
        .map(|n| {
            let m = std::fs::metadata(dir.join(&n)).unwrap();
            (n, (m.modified().unwrap(), m.ino()))
        })
        .collect()
}

/// The points a sweep ran (its progress lines with an arrow) and skipped.
fn ran_and_skipped(run: &Run) -> (Vec<String>, Vec<String>) {
    let pick = |tail: &str| {
        run.stderr.lines().filter(|l| l.contains("] point ") && l.contains(tail)).map(str::to_string).collect()
    };
    (pick(" → "), pick("finished earlier"))
}

/// The grid sets the key and the step: every point's file is, bit for bit, the direct
/// `qtrain train` run with that SPEC and `--step-factor` (f* too: computed once by the
/// sweep, by each train run itself); and a point is not the run of another value.
#[test]
fn each_point_is_the_train_run_of_its_spec_and_step() {
    let Some(data) = shared_data("phishing.txt") else { return };
    let dir = TempDir::new("sweep-points");
    let grid = dir.path("grid");
    let mut rest = GRID.to_vec();
    rest.extend(["--fstar", "auto"]);
    mpirun(2, &strs(&sweep_args(&data, &grid, "clag", &rest))).expect_ok();
    let names = ["zeta=0_step=1.h5", "zeta=0_step=2.h5", "zeta=4_step=1.h5", "zeta=4_step=2.h5"];
    assert_eq!(results(&grid), names);
    for (zeta, factor) in [("0", "1"), ("0", "2"), ("4", "1"), ("4", "2")] {
        let direct = dir.path(&format!("direct-{zeta}-{factor}.h5"));
        let mut args = train_args_like(&data, &direct, &format!("clag:zeta={zeta}"));
        args.extend(["--step-factor", factor, "--fstar", "auto"].map(String::from));
        mpirun(2, &strs(&args)).expect_ok();
        let point = grid.join(format!("zeta={zeta}_step={factor}.h5"));
        let (code, said) = compare(&point, &direct);
        assert_eq!(code, Some(0), "zeta={zeta} step×{factor}: {said}");
        assert_eq!(attr_str(&point, "method_spec"), format!("clag:zeta={zeta}"));
    }
    // The control: another ζ, or another step, is another run.
    let (code, said) = compare(&grid.join("zeta=0_step=1.h5"), &dir.path("direct-4-1.h5"));
    assert_eq!(code, Some(1), "{said}");
    let (code, said) = compare(&grid.join("zeta=4_step=1.h5"), &dir.path("direct-4-2.h5"));
    assert_eq!(code, Some(1), "{said}");
}

/// `qtrain train` flags of the same runs as [`sweep_args`]: with `--eval-every 1`, which
/// a sweep's points take for the default `auto`.
fn train_args_like(data: &Path, out: &Path, method: &str) -> Vec<String> {
    let mut args = sweep_args(data, out, method, &["--eval-every", "1"]);
    args[0] = "train".into();
    args
}

/// A rerun skips every finished point (each says so; no file is touched); a deleted
/// file is run again, and only it, as the same run; changed settings are an error
/// naming the file and the setting, before any run.
#[test]
fn a_rerun_skips_finished_points_and_reruns_a_deleted_one() {
    let Some(data) = shared_data("phishing.txt") else { return };
    let dir = TempDir::new("sweep-rerun");
    let grid = dir.path("grid");
    let args = sweep_args(&data, &grid, "clag", &GRID);
    let first = mpirun(2, &strs(&args)).expect_ok();
    assert_eq!(ran_and_skipped(&first).0.len(), 4, "{}", first.stderr);
    let before = stamps(&grid);

    let again = mpirun(2, &strs(&args)).expect_ok();
    let (ran, skipped) = ran_and_skipped(&again);
    assert!(ran.is_empty(), "{ran:?}");
    assert_eq!(skipped.len(), 4, "{}", again.stderr);
    assert!(skipped[2].contains("point 3/4: zeta=4 step×1: finished earlier"), "{skipped:?}");
    assert_eq!(stamps(&grid), before);

    let deleted = grid.join("zeta=4_step=1.h5");
    let original = dir.path("original.h5");
    std::fs::rename(&deleted, &original).unwrap();
    let third = mpirun(2, &strs(&args)).expect_ok();
    let (ran, skipped) = ran_and_skipped(&third);
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert!(ran[0].contains("point 3/4: zeta=4 step×1 → ") && ran[0].ends_with("zeta=4_step=1.h5"), "{ran:?}");
    assert_eq!(skipped.len(), 3);
    let after = stamps(&grid);
    for (name, stamp) in &before {
        if name != "zeta=4_step=1.h5" {
            assert_eq!(&after[name], stamp, "{name} was rewritten");
        }
    }
    let (code, said) = compare(&deleted, &original);
    assert_eq!(code, Some(0), "{said}");

    let mut changed = args.clone();
    changed.extend(["--iters", "50"].map(String::from));
    let run = mpirun(2, &strs(&changed));
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("zeta=0_step=1.h5: is a finished result of other settings (iters"), "{}", run.stderr);
    assert!(ran_and_skipped(&run).0.is_empty() && ran_and_skipped(&run).1.is_empty());
    assert_eq!(stamps(&grid), after);
}

/// A sweep stopped by a signal (Slurm's warning before the time limit) exits 4 with
/// the point's checkpoint written; the same command again resumes that point from its
/// checkpoint, bit for bit the uninterrupted train run, and runs the rest.
#[test]
fn a_preempted_sweep_resumes_its_point_on_the_rerun() {
    let Some(data) = shared_data("phishing.txt") else { return };
    let dir = TempDir::new("sweep-preempt");
    let (grid, checkpoints) = (dir.path("grid"), dir.path("ck"));
    let ck = checkpoints.to_str().unwrap();
    let rest = ["--step-factors", "1,2", "--checkpoint-dir", ck, "--checkpoint-every", "20"];
    let args = sweep_args(&data, &grid, "clag:zeta=4", &rest);
    let stopped = mpirun_env(2, &strs(&args), &[("QTRAIN_FAULT", "usr1@*:50")]);
    assert_eq!(stopped.code, Some(4), "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("sweep preempted at point 1/2: step×1 (the same command resumes it"),
        "{}",
        stopped.stderr
    );
    assert_eq!(attr_str(&grid.join("step=1.h5"), "status"), "preempted");
    assert_eq!(results(&grid), ["step=1.h5"]);

    let resumed = mpirun(2, &strs(&args)).expect_ok();
    let (ran, skipped) = ran_and_skipped(&resumed);
    assert_eq!((ran.len(), skipped.len()), (2, 0), "{ran:?}");
    assert!(
        resumed.stderr.contains(&format!("resumed from {}", checkpoints.join("step=1").display())),
        "{}",
        resumed.stderr
    );
    let direct = dir.path("direct.h5");
    mpirun(2, &strs(&train_args_like(&data, &direct, "clag:zeta=4"))).expect_ok();
    let (code, said) = compare(&grid.join("step=1.h5"), &direct);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(attr_str(&grid.join("step=2.h5"), "status"), "max-iters");
}

/// What the test reads from a result file itself: (bits up at the first row with
/// ‖∇f‖² ≤ target, or None; the final ‖∇f‖²; diverged).
fn read_back(file: &Path, target: f64) -> (Option<u64>, f64, bool) {
    let g = column::<f64>(file, "grad_norm_sq");
    let bits = column::<u64>(file, "bits_up");
    let diverged = attr_str(file, "status") == "diverged";
    (g.iter().position(|&v| v <= target).map(|i| bits[i]).filter(|_| !diverged), *g.last().unwrap(), diverged)
}

/// The table's rows as (file, bits column), in printed order.
fn ranked_rows(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter(|l| l.starts_with("| ") && l.split('|').nth(1).is_some_and(|c| c.trim().parse::<usize>().is_ok()))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[cells.len() - 2].to_string(), cells[6].to_string())
        })
        .collect()
}

/// The printed ranking is the one this test computes from the files: bits up to
/// ‖∇f‖² ≤ 1e-4 (fewest first), then the points that never got there (smallest final
/// ‖∇f‖² first), then the diverged ones (×2048 diverges) in grid order. `--rank-by time`
/// re-ranks the finished files without running them. The figures are written.
#[test]
fn the_ranking_follows_bits_to_target_read_from_the_files() {
    let Some(data) = shared_data("phishing.txt") else { return };
    let dir = TempDir::new("sweep-rank");
    let grid = dir.path("grid");
    let target = 1e-4;
    let rest = ["--grid", "k=1,5", "--step-factors", "4,32,2048", "--target", "1e-4"];
    let args = sweep_args(&data, &grid, "clag:zeta=1", &rest);
    let run = mpirun(2, &strs(&args)).expect_ok();
    let rows = ranked_rows(&run.stdout);
    assert_eq!(rows.len(), 6, "{}", run.stdout);

    // In grid order (k slowest); a stable sort keeps the diverged points in it.
    let names =
        ["k=1_step=4.h5", "k=1_step=32.h5", "k=1_step=2048.h5", "k=5_step=4.h5", "k=5_step=32.h5", "k=5_step=2048.h5"];
    let mut sorted = names.map(String::from).to_vec();
    sorted.sort();
    assert_eq!(results(&grid), sorted);
    let mut expected: Vec<(String, Option<u64>, f64, bool)> = names
        .iter()
        .map(|name| {
            let (bits, last, diverged) = read_back(&grid.join(name), target);
            (name.to_string(), bits, last, diverged)
        })
        .collect();
    let group = |e: &(String, Option<u64>, f64, bool)| match e {
        (_, _, _, true) => 2,
        (_, Some(_), _, false) => 0,
        _ => 1,
    };
    let key = |e: &(String, Option<u64>, f64, bool)| match e {
        (_, _, _, true) => 0.0,
        (_, Some(bits), _, false) => *bits as f64,
        (_, None, last, false) => *last,
    };
    expected.sort_by(|a, b| group(a).cmp(&group(b)).then(key(a).total_cmp(&key(b))));
    let groups: Vec<usize> = expected.iter().map(group).collect();
    assert!(groups.contains(&0) && groups.contains(&1) && groups.contains(&2), "all three kinds: {expected:?}");
    let printed: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let computed: Vec<&str> = expected.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(printed, computed, "{}", run.stdout);
    for ((_, bits_cell), (name, bits, ..)) in rows.iter().zip(&expected) {
        assert_eq!(bits_cell.parse::<u64>().ok(), *bits, "{name}");
    }
    let md = std::fs::read_to_string(grid.join("sweep.md")).unwrap();
    assert_eq!(ranked_rows(&md), rows);

    for name in ["heatmap", "best"] {
        let png = std::fs::read(grid.join(format!("{name}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png");
        assert!(png.len() > 10_000, "{name}.png has content");
    }
    let heatmap = std::fs::read_to_string(grid.join("heatmap.svg")).unwrap();
    for text in ["bits up to ‖∇f‖² ≤ 1e-4", "step factor", "×2048", "diverged", "not", "reached"] {
        assert!(heatmap.contains(text), "heatmap.svg: {text}");
    }
    let best = std::fs::read_to_string(grid.join("best.svg")).unwrap();
    for text in ["k=1 step×", "k=5 step×", "target ‖∇f‖² = 1e-4", "bits sent by all workers"] {
        assert!(best.contains(text), "best.svg: {text}");
    }

    let mut by_time = args.clone();
    by_time.extend(["--rank-by", "time"].map(String::from));
    let timed = mpirun(2, &strs(&by_time)).expect_ok();
    assert!(ran_and_skipped(&timed).0.is_empty());
    let seconds = |name: &str| {
        let (g, t) = (column::<f64>(&grid.join(name), "grad_norm_sq"), column::<f64>(&grid.join(name), "time"));
        g.iter().position(|&v| v <= target).map(|i| t[i])
    };
    let reached: Vec<(String, f64)> =
        expected.iter().filter(|e| e.1.is_some()).map(|e| (e.0.clone(), seconds(&e.0).unwrap())).collect();
    let mut fastest = reached.clone();
    fastest.sort_by(|a, b| a.1.total_cmp(&b.1));
    let printed: Vec<String> = ranked_rows(&timed.stdout).into_iter().map(|r| r.0).take(reached.len()).collect();
    assert_eq!(printed, fastest.into_iter().map(|r| r.0).collect::<Vec<_>>(), "{}", timed.stdout);
    assert!(timed.stdout.contains("ranked by training time to ‖∇f‖² ≤ 1e-4"));
}

/// Bad grids fail on every rank with one message, before any run and any file: a key no
/// SPEC takes (the message names it and what the method and compressor take), a value
/// the compressor rejects (k = 0, even after a valid point), a flag a sweep sets itself.
#[test]
fn bad_grids_fail_before_any_run() {
    let Some(data) = shared_data("phishing.txt") else { return };
    let dir = TempDir::new("sweep-errors");
    let grid = dir.path("grid");
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &["--grid", "zeta2=1,2"],
            &[
                "--grid zeta2",
                "takes the key 'zeta2'",
                "method clag takes zeta, init; compressor top-k takes k, sampled",
            ],
        ),
        (&["--grid", "k=2,0"], &["top-k:k=0", "k = 0"]),
        (&["--step-factor", "2"], &["--step-factor 2 with qtrain sweep", "--step-factors"]),
    ];
    for (rest, expect) in cases {
        let args = sweep_args(&data, &grid, "clag:zeta=1", rest);
        let msg = crate::errors::fails(2, &strs(&args));
        for e in expect {
            assert!(msg.contains(e), "{rest:?}: '{e}' in {msg}");
        }
        assert!(!grid.exists(), "{rest:?}: the sweep folder was created");
    }
    let run = mpirun(2, &strs(&sweep_args(&data, &grid, "clag:zeta=1", &["--grid", "k=2,0"])));
    assert!(!run.stderr.contains("] point "), "a point ran:\n{}", run.stderr);
}
