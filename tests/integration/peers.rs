//! The systems frameworks' compressors on qtrain's terms (issue 12): each reaches its
//! documented accuracy on real data, through the same protocol and metrics as the papers'
//! methods. (random-block, a summable sparsifier, is in summable.rs.)

use crate::util::*;
use std::path::Path;

/// Trains `method`/`compressor` on a9a with 4 workers (`to_1e_6_on_a9a`, plus `extra`) and
/// checks that it converged to f − f* ≤ 1e-6.
fn reaches_1e_6_on_a9a(data: &Path, out: &Path, ranks: usize, method: &str, compressor: &str, extra: &[&str]) {
    let extra = [&["--workers", "4"][..], extra].concat();
    let run = mpirun(ranks, &strs(&to_1e_6_on_a9a(data, out, method, compressor, &extra))).expect_ok();
    let what = format!("{method} with {compressor} on {ranks} ranks");
    assert_eq!(attr_str(out, "status"), "converged", "{what}:\n{}", run.stderr);
    let gap = *column::<f64>(out, "f_gap").last().unwrap();
    assert!(gap <= 1e-6, "{what}: f − f* = {gap:e}");
}

/// fp16 and bf16 (what DDP's communication hooks and Horovod ship) with error feedback —
/// EF21 — reach f − f* ≤ 1e-6 on a9a at 2 and 4 ranks (the casts' error is relative, so
/// nothing stalls), at 16d paper bits per worker and round and 2d wire bytes per message.
#[test]
fn half_precision_casts_reach_1e_6_on_a9a() {
    let Some(data) = shared_data("a9a.txt") else { return };
    let dir = TempDir::new("half");
    for &ranks in convergence_rank_counts() {
        for compressor in ["fp16", "bf16"] {
            let out = dir.path(&format!("{compressor}-{ranks}.h5"));
            reaches_1e_6_on_a9a(&data, &out, ranks, "ef21", compressor, &[]);
            let d = final_x(&out).len() as u64;
            let (bits, wire) = (column::<u64>(&out, "bits_up_round"), column::<u64>(&out, "wire_bytes_round"));
            assert_eq!(bits[2], 4 * 16 * d, "{compressor}: 16d bits per worker");
            // The allgather: 2d bytes and an 8-byte length per message.
            assert_eq!(wire[2], 4 * (2 * d + 8), "{compressor}: 2d bytes per message");
        }
    }
}

/// `train` on mushrooms (logistic, λ = 0.1) with f* solved first, every round evaluated.
fn on_mushrooms(data: &Path, out: &Path, method: &str, compressor: &str, extra: &[&str]) -> Vec<String> {
    let head = ["train", "--data", data.to_str().unwrap(), "--lambda", "0.1", "--fstar", "auto", "--eval-every", "1"];
    let rest = ["--method", method, "--compressor", compressor, "--out", out.to_str().unwrap()];
    head.iter().chain(&rest).chain(extra).map(|s| s.to_string()).collect()
}

/// The sign-descent neighbourhood of a run (signum.rs): the mean of ‖∇f(x^k)‖₂ over its
/// K rounds and the bound (f(x⁰) − f*)/(γK) + Lγd/2 that the mean of ‖∇f(x^k)‖₁ ≥ ‖∇f(x^k)‖₂
/// obeys for one worker.
fn sign_descent_neighbourhood(out: &Path) -> (f64, f64) {
    let norms: Vec<f64> = column::<f64>(out, "grad_norm_sq").iter().map(|g| g.sqrt()).collect();
    let gap0 = column::<f64>(out, "f_gap")[0];
    let rounds = (norms.len() - 1) as f64;
    let (gamma, l, d) = (attr_f64(out, "step"), attr_f64(out, "L"), final_x(out).len() as f64);
    let mean = norms[..norms.len() - 1].iter().sum::<f64>() / rounds;
    (mean, gap0 / (gamma * rounds) + l * gamma * d / 2.0)
}

/// signSGD on one worker (the vote of one is the sign of the full gradient) stays inside
/// the neighbourhood sign descent's theory predicts for its constant step, and does not
/// reach far below it: without error feedback it stalls at a gap that error feedback
/// (EF-signSGD, the next test) removes.
#[test]
fn signsgd_on_one_worker_meets_the_sign_descent_bound() {
    let Some(data) = shared_data("mushrooms.txt") else { return };
    let dir = TempDir::new("signsgd");
    let out = dir.path("one.h5");
    let args = on_mushrooms(&data, &out, "signum", "sign", &["--iters", "400", "--step-factor", "4"]);
    let run = mpirun(1, &strs(&args)).expect_ok();
    let (mean, bound) = sign_descent_neighbourhood(&out);
    assert!(mean <= bound, "mean ‖∇f‖ = {mean:e} above the sign-descent bound {bound:e}:\n{}", run.stderr);
    let gap = *column::<f64>(&out, "f_gap").last().unwrap();
    assert!(gap > 1e-6, "a constant-step sign method should stall, but f − f* = {gap:e}");
}

/// The majority vote (Signum with and without momentum, `--topology server`) on 4 workers
/// at 2 and 4 ranks: d bits up per worker and d bits down per worker each round, and, on
/// these shards (a balanced split of one file, whose gradients agree in sign where they
/// matter), the one-worker neighbourhood holds for the vote too.
#[test]
fn majority_vote_counts_d_bits_each_way_and_stays_in_the_neighbourhood() {
    let Some(data) = shared_data("mushrooms.txt") else { return };
    let dir = TempDir::new("signum");
    for &ranks in convergence_rank_counts() {
        for method in ["signum", "signum:momentum=0.9"] {
            let out = dir.path(&format!("{method}-{ranks}.h5"));
            let extra = ["--iters", "400", "--step-factor", "4", "--workers", "4", "--topology", "server"];
            let run = mpirun(ranks, &strs(&on_mushrooms(&data, &out, method, "sign", &extra))).expect_ok();
            let d = final_x(&out).len() as u64;
            assert_eq!(column::<u64>(&out, "bits_up_round")[2], 4 * d, "{method}: d bits per worker up");
            assert_eq!(column::<u64>(&out, "bits_down_round")[2], 4 * d, "{method}: d bits per worker down");
            let (mean, bound) = sign_descent_neighbourhood(&out);
            assert!(mean <= bound, "{method} on {ranks} ranks: mean ‖∇f‖ = {mean:e} > {bound:e}:\n{}", run.stderr);
        }
    }
}

/// EF-signSGD (Karimireddy et al. 2019: `ef` with the scaled sign) converges where
/// signSGD stalls: f − f* ≤ 1e-6 on a9a at 2 and 4 ranks, at d + 32 bits per worker.
#[test]
fn ef_signsgd_reaches_1e_6_on_a9a() {
    let Some(data) = shared_data("a9a.txt") else { return };
    let dir = TempDir::new("ef-sign");
    for &ranks in convergence_rank_counts() {
        let out = dir.path(&format!("ef-sign-{ranks}.h5"));
        reaches_1e_6_on_a9a(&data, &out, ranks, "ef", "sign", &["--step-factor", "16"]);
        let d = final_x(&out).len() as u64;
        assert_eq!(column::<u64>(&out, "bits_up_round")[2], 4 * (d + 32));
    }
}

/// Threshold sparsification with error feedback reaches the neighbourhood its absolute
/// bound predicts (step_size::ef_absolute): x stays within ‖e‖ < √d·τ of an iterate that
/// moves as GD with gradient error ≤ L√d·τ, so for this λ-strongly convex f the final
/// gradient is within L√d·τ·(1 + L/λ) of zero — and a smaller τ gets closer. Every message
/// is exactly the coordinates at or above τ, so the bits vary per round.
#[test]
fn threshold_with_error_feedback_reaches_its_neighbourhood() {
    let Some(data) = shared_data("mushrooms.txt") else { return };
    let dir = TempDir::new("threshold");
    for &ranks in convergence_rank_counts() {
        let mut finals = Vec::new();
        for tau in ["1e-3", "1e-5"] {
            let out = dir.path(&format!("t{tau}-{ranks}.h5"));
            let compressor = format!("threshold:tau={tau}");
            let extra = ["--iters", "600", "--workers", "4", "--eval-every", "10"];
            let run = mpirun(ranks, &strs(&on_mushrooms(&data, &out, "ef", &compressor, &extra))).expect_ok();
            let (l, d, tau): (f64, f64, f64) = (attr_f64(&out, "L"), final_x(&out).len() as f64, tau.parse().unwrap());
            let grad = column::<f64>(&out, "grad_norm_sq").last().unwrap().sqrt();
            let radius = l * d.sqrt() * tau * (1.0 + l / 0.1);
            assert!(grad <= radius, "τ = {tau} on {ranks} ranks: ‖∇f‖ = {grad:e} > {radius:e}:\n{}", run.stderr);
            let bits = column::<u64>(&out, "bits_up_round");
            assert!(bits[1..].windows(2).any(|w| w[0] != w[1]), "τ = {tau}: the message sizes never changed");
            finals.push(grad);
        }
        assert!(finals[1] < finals[0], "a smaller τ ends farther from x*: {finals:?}");
    }
}

/// DGC with every coordinate sent (top-k:k=d) and no clipping, against a direct
/// computation on the embedded data: with factor masking off it is heavy-ball momentum
/// SGD, U ← βU + ∇f(x), x ← x − γU (momentum correction keeps the sum over workers exact);
/// with masking on, no momentum survives a round and it is GD with step γ. Values travel
/// as f32, hence the tolerance.
#[test]
fn dgc_sending_every_coordinate_is_momentum_sgd_or_gd() {
    let reference = Reference::embedded(0.1);
    let (d, m) = (reference.rows[0].len(), reference.rows.len());
    let dir = TempDir::new("dgc-dense");
    let (gamma, beta, rounds) = (0.5, 0.9, 30);
    for masking in ["off", "on"] {
        let out = dir.path(&format!("{masking}.h5"));
        let method = format!("dgc:momentum={beta},masking={masking}");
        let top_k = format!("top-k:k={d}");
        let rest = ["--method", &method, "--compressor", &top_k, "--iters", "30", "--workers", "2", "--step", "0.5"];
        let args = train_args(out.to_str().unwrap(), &[&rest[..], &["--eval-every", "30"]].concat());
        let run = mpirun(2, &strs(&args)).expect_ok();
        let (mut x, mut velocity) = (vec![0.0; d], vec![0.0; d]);
        for _ in 0..rounds {
            let g = reference.gradient(&x, 0..m, reference.lambda);
            let kept = if masking == "on" { 0.0 } else { beta };
            velocity.iter_mut().zip(&g).for_each(|(u, gj)| *u = kept * *u + gj);
            x.iter_mut().zip(&velocity).for_each(|(xj, u)| *xj -= gamma * u);
        }
        let got = final_x(&out);
        let scale = x.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let worst = got.iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(
            worst <= 1e-5 * scale,
            "masking={masking}: ‖x − x_ref‖∞ = {worst:e} (scale {scale:e}):\n{}",
            run.stderr
        );
    }
}

/// DGC's sparsity warm-up (§3.4 of the paper): four equal stages of densities 1/4, 1/16,
/// 1/64, 1/256 (never below K/d) over `warmup` rounds, then k = K; every round's paper bits
/// are W·k(32 + ⌈log₂ d⌉) for that round's k.
#[test]
fn dgc_warm_up_follows_the_exponential_schedule() {
    let dir = TempDir::new("dgc-warmup");
    let out = dir.path("warmup.h5");
    let rest = ["--method", "dgc:warmup=8", "--compressor", "top-k:k=1", "--workers", "2", "--iters", "12"];
    mpirun(1, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
    let d = final_x(&out).len();
    let index_bits = (d as f64).log2().ceil() as u64;
    let bits = column::<u64>(&out, "bits_up_round");
    for t in 0..12usize {
        let density = if t < 8 { 0.25f64.powi(t as i32 / 2 + 1) } else { 0.0 };
        let k = ((d as f64 * density).ceil() as u64).max(1);
        assert_eq!(bits[t + 1], 2 * k * (32 + index_bits), "round {t}: k should be {k}");
    }
}

/// DGC on a9a at 2 and 4 ranks (4 workers, top-k at 10 % of d): with factor masking off
/// (and half the default step, which the delayed coordinates need) it reaches f − f* ≤ 1e-6;
/// with masking on (the paper's default) it stalls in a neighbourhood above that, since
/// each worker's momentum restarts at its own send times, so the workers' gradients are
/// summed with unequal gains and their heterogeneity shifts the fixed point: measured
/// 2.6e-6 here, asserted within 1e-5.
#[test]
fn dgc_reaches_1e_6_without_masking_and_its_neighbourhood_with_it() {
    let Some(data) = shared_data("a9a.txt") else { return };
    let dir = TempDir::new("dgc");
    for &ranks in convergence_rank_counts() {
        let out = dir.path(&format!("off-{ranks}.h5"));
        reaches_1e_6_on_a9a(&data, &out, ranks, "dgc:masking=off", "top-k:k=12,sampled", &["--step-factor", "0.5"]);

        let out = dir.path(&format!("on-{ranks}.h5"));
        let args = ["--method", "dgc", "--compressor", "top-k:k=12", "--workers", "4", "--iters", "1500"];
        let head =
            ["train", "--data", data.to_str().unwrap(), "--lambda", "0.1", "--fstar", "auto", "--eval-every", "100"];
        let args: Vec<&str> = head.iter().chain(&args).chain(&["--out", out.to_str().unwrap()]).copied().collect();
        let run = mpirun(ranks, &args).expect_ok();
        let gap = *column::<f64>(&out, "f_gap").last().unwrap();
        assert!(gap > 1e-6 && gap <= 1e-5, "masking on, {ranks} ranks: f − f* = {gap:e}:\n{}", run.stderr);
    }
}

/// PowerSGD at rank = full (r = b = 11 for the embedded data's 12 × 11 view of d = 126):
/// P̂P̂ᵀM = M, so with or without error feedback every round is GD's, checked against GD
/// computed directly on the embedded data (≤ 1e-9 relative: the factors are f64 sums in
/// MPI's order). Rank 1 is not GD (the check can fail). Bits: 32r(a + b) per worker and
/// round up, and on the server topology the same down.
#[test]
fn powersgd_at_full_rank_is_gd() {
    let reference = Reference::embedded(0.1);
    let (d, m) = (reference.rows[0].len(), reference.rows.len());
    let (gamma, rounds) = (0.5, 30);
    let mut x = vec![0.0; d];
    for _ in 0..rounds {
        let g = reference.gradient(&x, 0..m, reference.lambda);
        x.iter_mut().zip(&g).for_each(|(xj, gj)| *xj -= gamma * gj);
    }
    let scale = x.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let dir = TempDir::new("powersgd-full");
    let runs = [("gd", "full", "replicated"), ("ef", "full", "server"), ("ef", "1", "replicated")];
    for (method, rank, topology) in runs {
        let out = dir.path(&format!("{method}-{rank}.h5"));
        let compressor = format!("powersgd:rank={rank}");
        let rest = ["--method", method, "--compressor", &compressor, "--workers", "4", "--step", "0.5"];
        let rest = [&rest[..], &["--iters", "30", "--eval-every", "30", "--topology", topology]].concat();
        let run = mpirun(2, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
        let worst = final_x(&out).iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let r = if rank == "full" { 11 } else { 1 };
        assert_eq!(
            rank == "full",
            worst <= 1e-9 * scale,
            "{method} rank {rank}: ‖x − x_gd‖∞ = {worst:e}:\n{}",
            run.stderr
        );
        let per_worker = 32 * r * (12 + 11);
        assert_eq!(column::<u64>(&out, "bits_up_round")[1], 4 * per_worker, "{method} rank {rank}: bits up");
        let down = if topology == "server" { 4 * per_worker } else { 0 };
        assert_eq!(column::<u64>(&out, "bits_down_round")[1], down, "{method} rank {rank} on {topology}: bits down");
    }
}

/// PowerSGD on a9a at 2 and 4 ranks (4 workers, rank 1, 32(a + b) = 736 bits per worker
/// and round against GD's 32d = 3936): with error feedback it reaches f − f* ≤ 1e-6;
/// without, each round is the projected gradient step P̂P̂ᵀ∇f, a descent step at γ = 1/L
/// (f never rises, checked every round), but P̂ lags the gradient, so over the rounds
/// the error-feedback run needed it is still above its accuracy (measured: 70 rounds
/// with error feedback, 600 without).
#[test]
fn powersgd_reaches_1e_6_on_a9a_with_error_feedback_and_descends_without() {
    let Some(data) = shared_data("a9a.txt") else { return };
    let dir = TempDir::new("powersgd");
    for &ranks in convergence_rank_counts() {
        let out = dir.path(&format!("ef-{ranks}.h5"));
        reaches_1e_6_on_a9a(&data, &out, ranks, "ef", "powersgd:rank=1", &[]);
        assert_eq!(column::<u64>(&out, "bits_up_round")[1], 4 * 32 * (12 + 11));
        let rounds = *column::<u64>(&out, "iter").last().unwrap();

        let plain = dir.path(&format!("plain-{ranks}.h5"));
        let iters = rounds.to_string();
        let extra = ["--workers", "4", "--eval-every", "1", "--iters", &iters];
        let run = mpirun(ranks, &strs(&to_1e_6_on_a9a(&data, &plain, "gd", "powersgd:rank=1", &extra))).expect_ok();
        let loss = column::<f64>(&plain, "loss");
        for (t, pair) in loss.windows(2).enumerate() {
            assert!(pair[1] <= pair[0] * (1.0 + 1e-14), "{ranks} ranks, round {t}: f rose {pair:?}:\n{}", run.stderr);
        }
        let gap = *column::<f64>(&plain, "f_gap").last().unwrap();
        assert!(gap > 1e-6, "{ranks} ranks: without error feedback f − f* = {gap:e} already");
    }
}
