//! End-to-end training runs: equal iterates across rank layouts, convergence of the
//! compressed methods, and f* against an independent computation.

use crate::util::*;

fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-300)).fold(0.0, f64::max)
}

/// Uncompressed GD is the same algorithm for every rank count: the objective is the
/// mean over all samples, so only the summation order differs (≤ 1e-12 relative).
#[test]
fn gd_iterates_agree_for_1_2_4_ranks_and_4_logical_workers() {
    let dir = TempDir::new("gd");
    let layouts: [(usize, &[&str]); 4] = [(1, &[]), (2, &[]), (4, &[]), (1, &["--workers", "4"])];
    let mut results = Vec::new();
    for (i, (ranks, extra)) in layouts.iter().enumerate() {
        let out = dir.path(&format!("gd{i}.h5"));
        let mut rest = vec!["--method", "gd", "--iters", "60"];
        rest.extend_from_slice(extra);
        mpirun(*ranks, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
        results.push((final_x(&out), column::<f64>(&out, "loss")));
    }
    let (x1, loss1) = &results[0];
    assert!(loss1[60] < loss1[0], "GD must decrease f");
    for (x, loss) in &results[1..] {
        assert!(max_rel_diff(x1, x) <= 1e-12, "x differs by {}", max_rel_diff(x1, x));
        assert!(max_rel_diff(loss1, loss) <= 1e-12);
    }
}

fn converges(method: &str, compressor: &str) {
    let dir = TempDir::new(method);
    let out = dir.path("run.h5");
    let rest =
        ["--method", method, "--compressor", compressor, "--iters", "30000", "--tol", "1e-10", "--eval-every", "10"];
    let run = mpirun(2, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
    assert_eq!(attr_str(&out, "status"), "converged", "{}", run.stderr);
    let g = column::<f64>(&out, "grad_norm_sq");
    assert!(*g.last().unwrap() <= 1e-10, "{method}: final ‖∇f‖² = {}", g.last().unwrap());
    let bits = column::<u64>(&out, "bits_up");
    assert!(bits.windows(2).all(|w| w[0] <= w[1]), "cumulative bits must not decrease");
}

/// ALGORITHMS.md §G.2: EF21 with Top-k and the default step 1/(L + L̃√(B/A)).
#[test]
fn ef21_top_k_reaches_grad_norm_1e_10_on_embedded_data() {
    converges("ef21", "top-k:k=16");
}

/// ALGORITHMS.md §A.3: DIANA with QSGD, α = 1/(ω+1), γ = 1/(L(1+6ω/n)).
#[test]
fn diana_qsgd_reaches_grad_norm_1e_10_on_embedded_data() {
    converges("diana", "qsgd:s=4");
}

/// Plain error feedback also converges to the optimum on this problem; its error
/// memory keeps the compressed steps unbiased in the long run.
#[test]
fn classic_ef_with_top_k_converges() {
    let dir = TempDir::new("ef");
    let out = dir.path("run.h5");
    let rest = ["--method", "ef", "--compressor", "top-k:k=16", "--iters", "3000", "--eval-every", "50"];
    mpirun(2, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
    let g = column::<f64>(&out, "grad_norm_sq");
    assert!(*g.last().unwrap() < 1e-3 * g[0], "EF: {} → {}", g[0], g.last().unwrap());
}

/// Paper bits per round follow the §1 formulas: Top-k sends k(32 + ⌈log₂ d⌉) bits per
/// worker (d = 126 → 7 index bits); EF21's first round sends d floats per worker.
#[test]
fn bits_per_round_follow_the_formulas() {
    let dir = TempDir::new("bits");
    let out = dir.path("run.h5");
    let rest = ["--method", "ef21", "--compressor", "top-k:k=10", "--iters", "5", "--workers", "4"];
    mpirun(2, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
    let per_round = column::<u64>(&out, "bits_up_round");
    assert_eq!(per_round[0], 0);
    assert_eq!(per_round[1], 4 * 32 * 126);
    for &b in &per_round[2..] {
        assert_eq!(b, 4 * 10 * (32 + 7));
    }
    let wire = column::<u64>(&out, "wire_bytes_round");
    // 40 bytes of values + ⌈70/8⌉ = 9 bytes of indices + a u64 length, per worker.
    assert_eq!(wire[2], 4 * (40 + 9 + 8));
}

/// f* of `qtrain solve` (Newton-CG over 2 ranks) against an independent computation:
/// a dense single-process gradient descent written here, on the real mushrooms data.
#[test]
fn solve_agrees_with_an_independent_dense_solver_on_real_data() {
    let Some(path) = shared_data("mushrooms.txt") else { return };
    let run = mpirun(2, &["solve", "--data", path.to_str().unwrap(), "--objective", "logistic", "--lambda", "0.01"])
        .expect_ok();
    let line = run.stdout.lines().find(|l| l.starts_with("f*")).expect("solve prints f*");
    let fstar: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let independent = dense_logistic_optimum(&path, 0.01);
    assert!((fstar - independent).abs() <= 1e-11 * independent, "solve {fstar} vs independent {independent}");
}

/// Minimises (1/m)Σ log(1+exp(−b aᵀx)) + (λ/2)‖x‖² by gradient descent with step 1/L,
/// L = λ_max(AᵀA)/(4m) + λ from a dense power iteration; labels {1,2} → {−1,+1}.
fn dense_logistic_optimum(path: &std::path::Path, lambda: f64) -> f64 {
    let (dense, b) = read_dense(path);
    let d = dense[0].len();
    let m = dense.len() as f64;
    let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(a, c)| a * c).sum::<f64>();
    let l = gram_lambda_max(&dense) / (4.0 * m) + lambda;
    let mut x = vec![0.0; d];
    let mut f = 0.0;
    for _ in 0..5000 {
        let mut g: Vec<f64> = x.iter().map(|xj| lambda * xj).collect();
        f = 0.5 * lambda * dot(&x, &x);
        for (a, &bi) in dense.iter().zip(&b) {
            let z = -bi * dot(a, &x);
            f += (z.max(0.0) + (-z.abs()).exp().ln_1p()) / m;
            let s = 1.0 / (1.0 + (-z).exp());
            g.iter_mut().zip(a).for_each(|(gj, aj)| *gj -= bi * s * aj / m);
        }
        if dot(&g, &g).sqrt() < 1e-12 {
            break;
        }
        x.iter_mut().zip(&g).for_each(|(xj, gj)| *xj -= gj / l);
    }
    f
}

/// ALGORITHMS.md §F with DIANA: optimal unbiased sparsification under either budget
/// reaches ‖∇f‖² ≤ 1e-8 on phishing (non-convex logistic, λ = 0.1) at DIANA's theory
/// step for ω = ε or 1/ρ − 1; and at the density of rand-k:k=7 (ρ = 0.1, d = 68) its
/// sign-only coding of the unsaturated entries costs fewer bits to the same tolerance.
#[test]
fn diana_with_optimal_sparsification_reaches_1e_8_on_phishing() {
    let Some(data) = shared_data("phishing.txt") else { return };
    let dir = TempDir::new("diana-opt-sparse");
    for &ranks in convergence_rank_counts() {
        let mut bits = Vec::new();
        for compressor in ["opt-sparse:budget=1", "opt-sparse:density=0.1", "rand-k:k=7"] {
            let out = dir.path(&format!("{ranks}-{}.h5", compressor.replace([':', '=', ','], "_")));
            let run = mpirun(ranks, &strs(&paper_setup_args(&data, &out, "diana", compressor, &[]))).expect_ok();
            assert_eq!(attr_str(&out, "status"), "converged", "{compressor} on {ranks} ranks:\n{}", run.stderr);
            bits.push(*column::<u64>(&out, "bits_up").last().unwrap());
        }
        eprintln!(
            "{ranks} ranks, bits to ‖∇f‖² ≤ 1e-8: budget=1 {}, density=0.1 {}, rand-k:k=7 {}",
            bits[0], bits[1], bits[2]
        );
        assert!(bits[1] < bits[2], "{bits:?}");
    }
}

/// `--fstar auto` makes f − f* meaningful: never below −1e-12 for a convex objective.
#[test]
fn f_gap_with_auto_fstar_is_non_negative() {
    let dir = TempDir::new("fgap");
    let out = dir.path("run.h5");
    let rest = ["--method", "gd", "--iters", "300", "--fstar", "auto"];
    mpirun(2, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
    let gap = column::<f64>(&out, "f_gap");
    assert!(gap.iter().all(|&g| g >= -1e-12), "{:?}", gap.iter().cloned().fold(f64::INFINITY, f64::min));
    assert!(*gap.last().unwrap() < 1e-8);
}

/// ALGORITHMS.md §I.3 with §1.10: distributed SGD with error feedback (`ef --batch 64`) and
/// Top-k∘natural dithering brings ‖∇f‖² below 1e-4 on phishing (non-convex logistic,
/// λ = 0.1, 2 ranks) at the theory step, with fewer bits than Top-k alone at the same k
/// (each value costs 1 + ⌈log₂ 4⌉ bits instead of 32).
#[test]
fn ef_sgd_with_top_k_natural_dithering_reaches_1e_4_on_phishing() {
    let Some(data) = shared_data("phishing.txt") else { return };
    let dir = TempDir::new("ef-sgd-topk-nd");
    let mut bits = Vec::new();
    for compressor in ["topk-nd:k=8,s=3", "top-k:k=8"] {
        let out = dir.path(&format!("{}.h5", compressor.replace([':', '=', ','], "_")));
        let args = paper_setup_args_to("1e-4", &data, &out, "ef", compressor, &["--batch", "64"]);
        let run = mpirun(2, &strs(&args)).expect_ok();
        assert_eq!(attr_str(&out, "status"), "converged", "{compressor}:\n{}", run.stderr);
        bits.push(*column::<u64>(&out, "bits_up").last().unwrap());
    }
    eprintln!("bits to ‖∇f‖² ≤ 1e-4: Top-k∘ND {} against Top-k {}", bits[0], bits[1]);
    assert!(bits[0] < bits[1], "{bits:?}");
}

/// `--straggler RANK:FACTOR` slows one rank's gradients and nothing else: the iterates are
/// bit for bit those of the run without it; a rank outside the run is refused.
#[test]
fn a_straggler_changes_timings_not_iterates() {
    let dir = TempDir::new("straggler");
    let mut finals = Vec::new();
    for (name, extra) in [("plain", &[][..]), ("slow", &["--straggler", "1:4"][..])] {
        let out = dir.path(&format!("{name}.h5"));
        let mut rest = vec!["--method", "asylpg:epoch=4", "--compressor", "lowp:b=8", "--batch", "20", "--iters", "30"];
        rest.extend_from_slice(extra);
        let run = mpirun(2, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
        if !extra.is_empty() {
            assert!(run.stderr.contains("rank 1 computes every gradient 4× slower"), "{}", run.stderr);
        }
        finals.push(final_x(&out));
    }
    assert!(finals[0].iter().zip(&finals[1]).all(|(a, b)| a.to_bits() == b.to_bits()), "the straggler changed x");
    let out = dir.path("refused.h5");
    let run = mpirun(2, &strs(&train_args(out.to_str().unwrap(), &["--straggler", "2:3"])));
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("name a rank from 0 to 1"), "{}", run.stderr);
}

/// SIGTERM without `--checkpoint-dir` (nothing to resume from): every rank stops after the
/// same round with exit 4, one message saying the run cannot be resumed, and a valid
/// result file under its final name with status `preempted` and the rows so far — for a
/// synchronous method and for the asynchronous execution (which takes no checkpoints).
/// Before, rank 0 panicked looking for the checkpoint folder and left only OUT.partial.
#[test]
fn a_signal_without_checkpoints_ends_the_run_with_its_rows() {
    let dir = TempDir::new("term");
    for (ranks, method, compressor) in [(2, "gd", "identity"), (3, "asylpg:async,epoch=20", "lowp:b=8")] {
        let out = dir.path(&format!("{ranks}.h5"));
        let rest = ["--method", method, "--compressor", compressor, "--workers", "2", "--iters", "50"];
        let rest = [&rest[..], &["--eval-every", "1"]].concat();
        let run = mpirun_env(ranks, &strs(&train_args(out.to_str().unwrap(), &rest)), &[("QTRAIN_FAULT", "term@1:3")]);
        assert_eq!(run.code, Some(4), "{method}: {}", run.stderr);
        assert!(run.stderr.contains("stopped by a signal after round 4"), "{method}: {}", run.stderr);
        assert!(run.stderr.contains("cannot be resumed"), "{method}: {}", run.stderr);
        assert_eq!(attr_str(&out, "status"), "preempted", "{method}");
        assert_eq!(column::<u64>(&out, "iter"), (0..=4).collect::<Vec<u64>>(), "{method}: the rows up to the stop");
        assert!(!partial_of(&out).exists(), "{method}: no OUT.partial left");
    }
}

/// `--eval-every auto` (the default, src/eval_schedule.rs) where an evaluation costs far
/// more than a round (a9a, `--batch 1`: the monitor's full gradient over 32 561 rows
/// against one row per worker): rounds 0..=8 are evaluated, 9..=16 are not, and then every
/// K-th, K of the 1-2-5 sequence and at most a tenth of the 1 983 rounds left (100). An
/// evaluation costs ≥ 1 000 such rounds, so K = 100 on a quiet machine; ≥ 20 is asserted,
/// which holds while it costs more than one round (a loaded test machine slows the rounds
/// as much as the evaluations). The log names K, and the iterates are those of
/// `--eval-every 1` bit for bit. One rank there (under an oversubscribed MPICH a 2-rank
/// round can cost as much as an evaluation); on 2 ranks, where every rank must take the
/// same period from the schedule's allreduce, the rows are checked against the K chosen.
#[test]
fn auto_evaluation_period_measures_the_monitor_and_keeps_the_iterates() {
    let Some(data) = shared_data("a9a.txt") else { return };
    let dir = TempDir::new("auto-eval");
    let (auto, every) = (dir.path("auto.h5"), dir.path("every.h5"));
    let run = |out: &std::path::Path, period: &str| {
        let args = ["train", "--data", data.to_str().unwrap(), "--lambda", "0.1", "--method", "dcgd"];
        let rest = ["--compressor", "rand-k:k=10", "--batch", "1", "--iters", "2000", "--workers", "4"];
        let tail = ["--eval-every", period, "--out", out.to_str().unwrap()];
        mpirun(1, &[&args[..], &rest, &tail].concat()).expect_ok()
    };
    let said = run(&auto, "auto").stderr;
    run(&every, "1");

    assert_eq!(attr_u64(&auto, "eval_every"), 0, "auto is recorded as 0");
    let k = attr_u64(&auto, "eval_every_used");
    assert!([20, 50, 100].contains(&k), "period {k}");
    assert!(said.contains(&format!("evaluating every {k} rounds")), "{said}");
    let expected: Vec<u64> = (0..=8).chain((1..=2000 / k).map(|i| i * k)).collect();
    assert_eq!(column::<u64>(&auto, "iter"), expected);
    assert_eq!(attr_str(&auto, "x_digest"), attr_str(&every, "x_digest"), "monitoring changed the iterates");
    let (auto_loss, every_loss) = (column::<f64>(&auto, "loss"), column::<f64>(&every, "loss"));
    for (row, &t) in expected.iter().enumerate() {
        assert_eq!(auto_loss[row].to_bits(), every_loss[t as usize].to_bits(), "f at round {t}");
    }

    let two = dir.path("two.h5");
    let rest = ["--method", "ef21", "--compressor", "top-k:k=10", "--iters", "300", "--eval-every", "auto"];
    mpirun(2, &strs(&train_args(two.to_str().unwrap(), &rest))).expect_ok();
    let k = attr_u64(&two, "eval_every_used");
    let expected: Vec<u64> = (0..=8).chain((17..=300).filter(|t| t % k == 0 || *t == 300)).collect();
    assert_eq!(column::<u64>(&two, "iter"), expected, "2 ranks, period {k}");
}

/// The monitor sums f and ∇f a chunk of 2¹⁵ entries at a time (`comm/reproducible.rs`):
/// at d = 70 000 (three chunks, the last partial; every row has every feature, so that no
/// entry of ∇f(x⁰) is zero and one lost or counted twice at a chunk's edge shows in
/// ‖∇f‖²) its f(x⁰) and ‖∇f(x⁰)‖² match the closed form ln 2 and an independent dense
/// gradient, and every row is bit for bit the same on 1, 2 and 4 ranks (a rank walking
/// other chunks would hang or differ; GD's exact gather makes the iterates themselves
/// layout-invariant).
#[test]
fn monitor_sums_over_several_chunks_are_exact_and_layout_invariant() {
    let dir = TempDir::new("chunks");
    let d = "70000";
    let mut text = String::new();
    for i in 0..8 {
        text.push_str(if i % 3 == 0 { "-1" } else { "+1" });
        for j in 1..=70_000 {
            text.push_str(&format!(" {j}:{}", (i * 7 + j * 13) % 17 + 1));
        }
        text.push('\n');
    }
    let data = dir.write("wide.svm", &text);
    let mut rows = Vec::new();
    for ranks in [1, 2, 4] {
        let out = dir.path(&format!("r{ranks}.h5"));
        let args = [
            "train",
            "--data",
            data.to_str().unwrap(),
            "--features",
            d,
            "--objective",
            "logistic",
            "--lambda",
            "0.1",
            "--method",
            "gd",
            "--collective",
            "allgather",
            "--workers",
            "4",
            "--iters",
            "3",
            "--eval-every",
            "1",
            "--out",
            out.to_str().unwrap(),
        ];
        mpirun(ranks, &args).expect_ok();
        rows.push((column::<f64>(&out, "loss"), column::<f64>(&out, "grad_norm_sq"), column::<u64>(&out, "iter")));
    }
    let (loss, grad, iters) = &rows[0];
    assert_eq!(iters[0], 0);
    assert!((loss[0] - std::f64::consts::LN_2).abs() <= 1e-15, "f(0) = {} ≠ ln 2", loss[0]);
    let (dense, labels) = read_dense(&data);
    let reference = Reference { rows: dense, labels, lambda: 0.1 };
    let g = reference.gradient(&vec![0.0; 70_000], 0..8, 0.1);
    let want: f64 = g.iter().map(|v| v * v).sum();
    assert!((grad[0] - want).abs() <= 1e-12 * want, "‖∇f(0)‖² = {}, independently {want}", grad[0]);
    for (other, ranks) in rows[1..].iter().zip([2, 4]) {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&other.0), bits(loss), "f on {ranks} ranks");
        assert_eq!(bits(&other.1), bits(grad), "‖∇f‖² on {ranks} ranks");
    }
}
