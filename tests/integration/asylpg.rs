//! Double quantization (ALGORITHMS.md §B.6): AsyLPG without quantization is prox-SVRG
//! (against a serial reference written here), it converges linearly where a fixed model
//! precision stalls, and its bit counters follow the §B.2 formulas.

use crate::util::{
    attr_str, attr_u64, column, convergence_rank_counts, final_x, mpirun, partial_of, shared_data, spawn_mpirun, strs,
    to_1e_6_on_a9a, train_args, Reference, TempDir,
};
use qtrain::compress::rand_k::SubsetSampler;
use qtrain::rng::{self, Purpose};
use std::time::{Duration, Instant};

const SEED: u64 = 5;

/// A serial prox-SVRG over W workers of the embedded data (balanced contiguous split,
/// w_i = m_i/m), each inner step one minibatch of `batch` rows per worker drawn by
/// qtrain's sampler from the worker's minibatch stream (the only part taken from qtrain:
/// which rows; the gradients and the iteration are this function's). The workers' α are
/// rounded to f32, as the identity compressor sends them.
impl Reference {
    /// x after `rounds` rounds (one snapshot round, then `epoch` inner rounds, repeated);
    /// `prox`: the ridge as h (x ← (x − ηḡ)/(1 + ηλ)) instead of inside f; `accelerated`:
    /// the MiG template of §B.4 (θ_s = 2/(s+4), η_s = η·θ_0/θ_s, gradients at
    /// θ_s y + (1 − θ_s)x̃, x̃ ← θ_s·mean(y) + (1 − θ_s)x̃ at an epoch's end); `serial`: one
    /// worker per inner round, in worker order (epoch·W inner rounds per epoch), stepping
    /// with its own term w_i·α_i.
    #[allow(clippy::too_many_arguments)]
    fn prox_svrg(
        &self,
        workers: usize,
        batch: usize,
        epoch: usize,
        eta: f64,
        rounds: usize,
        prox: bool,
        accelerated: bool,
        serial: bool,
    ) -> Vec<f64> {
        let epoch = if serial { epoch * workers } else { epoch };
        let (m, d) = (self.rows.len(), self.rows[0].len());
        let bounds: Vec<usize> = (0..=workers).map(|i| i * (m / workers) + i.min(m % workers)).collect();
        let weights: Vec<f64> = (0..workers).map(|i| (bounds[i + 1] - bounds[i]) as f64 / m as f64).collect();
        let mut samplers: Vec<SubsetSampler> =
            (0..workers).map(|i| SubsetSampler::new(bounds[i + 1] - bounds[i], batch)).collect();
        let mut streams: Vec<_> = (0..workers).map(|i| rng::private(SEED, i, Purpose::Minibatch)).collect();
        let ridge_in_f = if prox { 0.0 } else { self.lambda };
        let theta = |s: usize| if accelerated { 2.0 / (s as f64 + 4.0) } else { 1.0 };
        let (mut x, mut snapshot, mut full, mut mean) = (vec![0.0; d], vec![0.0; d], vec![0.0; d], vec![0.0; d]);
        for t in 0..rounds {
            let (s, r) = (t / (epoch + 1), t % (epoch + 1));
            if r == 0 {
                if !accelerated || s == 0 {
                    snapshot.clone_from(&x);
                }
                full = vec![0.0; d];
                for i in 0..workers {
                    let g = self.gradient(&snapshot, bounds[i]..bounds[i + 1], ridge_in_f);
                    full.iter_mut().zip(&g).for_each(|(f, gj)| *f += weights[i] * gj);
                }
                continue;
            }
            let th = theta(s);
            let point: Vec<f64> = if accelerated {
                x.iter().zip(&snapshot).map(|(y, z)| th * y + (1.0 - th) * z).collect()
            } else {
                x.clone()
            };
            let mut step = vec![0.0; d];
            for i in (0..workers).filter(|&i| !serial || i == (r - 1) % workers) {
                let picked: Vec<usize> =
                    samplers[i].draw(&mut streams[i]).iter().map(|&r| bounds[i] + r as usize).collect();
                let at_point = self.gradient(&point, picked.iter().copied(), ridge_in_f);
                let at_snapshot = self.gradient(&snapshot, picked.iter().copied(), ridge_in_f);
                for j in 0..d {
                    let alpha = at_point[j] - at_snapshot[j] + full[j];
                    step[j] += weights[i] * (alpha as f32 as f64);
                }
            }
            let eta_s = eta * theta(0) / th;
            for j in 0..d {
                x[j] -= eta_s * step[j];
                if prox {
                    x[j] /= 1.0 + eta_s * self.lambda;
                }
            }
            if accelerated {
                mean.iter_mut().zip(&x).for_each(|(mj, y)| *mj += (y - *mj) / r as f64);
                if r == epoch {
                    snapshot.iter_mut().zip(&mean).for_each(|(z, mj)| *z = th * mj + (1.0 - th) * *z);
                }
            }
        }
        x
    }
}

/// §B.6 reduction: with the identity compressor and exact models, AsyLPG's iterates are
/// prox-SVRG's (same rows), with λ inside f and as the prox term, on 1 and 2 ranks; and the
/// accelerated variant's are the MiG template's. Both sides run the same f64 operations
/// on the same rows but for the CSR against dense dot products (a relative 1e-16 apart), so
/// the iterates agree to ~1e-15 unless an α lands on an f32 rounding boundary (then one
/// coordinate moves by ≈ η·w_i·6e-8|α_j|): 1e-9 of ‖x‖_∞ lies between the two, and a
/// run that skipped the f32 rounding already misses it (checked once).
#[test]
fn asylpg_without_quantization_is_prox_svrg() {
    let dir = TempDir::new("asylpg-svrg");
    let reference = Reference::embedded(0.1);
    let (workers, batch, epoch, eta, rounds) = (4, 5, 7, 0.5, 24);
    for (name, ridge, accelerated) in
        [("asylpg", "smooth", false), ("asylpg", "prox", false), ("acc-asylpg", "smooth", true)]
    {
        let prox = ridge == "prox";
        let want = reference.prox_svrg(workers, batch, epoch, eta, rounds, prox, accelerated, false);
        for ranks in [1, 2] {
            let out = dir.path(&format!("{name}-{ridge}-{ranks}.h5"));
            let flag = if accelerated { "unverified," } else { "" };
            let method = format!("{name}:{flag}model=exact,epoch={epoch},ridge={ridge}");
            let rest = [
                "--method",
                &method,
                "--compressor",
                "identity",
                "--workers",
                "4",
                "--batch",
                "5",
                "--step",
                "0.5",
                "--iters",
                "24",
                "--seed",
                "5",
            ];
            let run = mpirun(ranks, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
            let got = final_x(&out);
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(
                worst <= 1e-9 * scale,
                "{method}, {ranks} ranks: max |Δx| = {worst:e} (‖x‖_∞ = {scale:e})\n{}",
                run.stderr
            );
        }
    }
    // The workers' gradients are taken at the model they receive: a 2-bit model moves x.
    let out = dir.path("coarse.h5");
    let rest = ["--method", "asylpg:model=fixed,bx=2,epoch=7", "--workers", "4", "--batch", "5", "--step", "0.5"];
    let rest = [&rest[..], &["--iters", "24", "--seed", "5"]].concat();
    mpirun(1, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
    let want = reference.prox_svrg(workers, batch, epoch, eta, rounds, false, false, false);
    let moved = final_x(&out).iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(
        moved > 1e-3 * want.iter().fold(0.0f64, |m, v| m.max(v.abs())),
        "a 2-bit model changed x by only {moved:e}"
    );
}

/// §B.2 bits: per inner round W(32 + 8d) up for lowp:b=8 and W × one Direct model message
/// down (32 + 8 + b_x·d, or nothing at x = x̃, and none in the epoch's last round); per
/// snapshot round 32d up and 64d down per worker.
#[test]
fn asylpg_counts_the_bits_of_section_b2() {
    let dir = TempDir::new("asylpg-bits");
    let out = dir.path("bits.h5");
    let rest = [
        "--method",
        "asylpg:epoch=4",
        "--compressor",
        "lowp:b=8",
        "--workers",
        "4",
        "--iters",
        "15",
        "--eval-every",
        "1",
    ];
    mpirun(2, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
    let d = final_x(&out).len() as u64;
    let (up, down) = (column::<u64>(&out, "bits_up_round"), column::<u64>(&out, "bits_down_round"));
    let iter = column::<u64>(&out, "iter");
    let mut widths = Vec::new();
    for ((&t, &up), &down) in iter.iter().zip(&up).zip(&down).filter(|((&t, _), _)| t > 0) {
        let round = t - 1;
        match round % 5 {
            0 => {
                assert_eq!(up, 4 * 32 * d, "snapshot round {round}: up");
                assert_eq!(down, 4 * 64 * d, "snapshot round {round}: down (Q(x̃) = x̃ is empty)");
            }
            r => {
                assert_eq!(up, 4 * (32 + 8 * d), "inner round {round}: up");
                if r == 4 {
                    assert_eq!(down, 0, "the epoch's last round sends no model");
                } else {
                    assert_eq!((down / 4 - 40) % d, 0, "inner round {round}: {down} bits down");
                    widths.push((down / 4 - 40) / d);
                }
            }
        }
    }
    assert!(widths.len() >= 6 && widths.iter().all(|&b| (1..=32).contains(&b)), "{widths:?}");
    // Both directions count (§0.4: double quantization counts the model broadcast), so
    // the report draws f − f* against their sum too and lists bits down at the target.
    let figs = dir.path("figs");
    let run =
        mpirun(1, &["report", out.to_str().unwrap(), "--target", "1", "--out", figs.to_str().unwrap()]).expect_ok();
    assert!(run.stdout.contains("| bits up | bits down | training time (s) |"), "{}", run.stdout);
    let svg = std::fs::read_to_string(figs.join("convergence_bits_total.svg")).unwrap();
    assert!(svg.contains("bits up + down"), "the total-bits figure labels its axis");
}

/// §B.6 convergence on a9a (λ = 0.1 inside f, strongly convex): AsyLPG with lowp:b=8 and
/// the μ rule, Sparse-AsyLPG and the accelerated variant reach f − f* ≤ 1e-6 (through
/// ‖∇f‖² ≤ 1e-7); a fixed 4-bit model precision stalls above 1e-5 in as many rounds.
#[test]
fn asylpg_converges_linearly_where_a_fixed_model_precision_stalls() {
    let Some(data) = shared_data("a9a.txt") else { return };
    let dir = TempDir::new("asylpg-a9a");
    let extra = ["--workers", "4", "--batch", "16"];
    for &ranks in convergence_rank_counts() {
        for (method, compressor) in
            [("asylpg", "lowp:b=8"), ("sparse-asylpg", "sparse-lowp:k=20,b=8"), ("acc-asylpg:unverified", "lowp:b=8")]
        {
            let out = dir.path(&format!("{ranks}-{}.h5", method.replace([':', ','], "_")));
            let run = mpirun(ranks, &strs(&to_1e_6_on_a9a(&data, &out, method, compressor, &extra))).expect_ok();
            assert_eq!(attr_str(&out, "status"), "converged", "{method} on {ranks} ranks:\n{}", run.stderr);
            let gap = *column::<f64>(&out, "f_gap").last().unwrap();
            assert!(gap <= 1e-6, "{method} on {ranks} ranks: f − f* = {gap:e}");
        }
    }
    let out = dir.path("fixed.h5");
    let mut args = to_1e_6_on_a9a(&data, &out, "asylpg:model=fixed,bx=4", "lowp:b=8", &extra);
    let iters = args.iter().position(|a| a == "--iters").unwrap() + 1;
    args[iters] = "3000".into();
    mpirun(2, &strs(&args)).expect_ok();
    let gap = column::<f64>(&out, "f_gap");
    let tail = gap[gap.len() - 20..].iter().fold(f64::INFINITY, |m, &g| m.min(g));
    assert!(tail > 1e-5, "a fixed 4-bit model should stall at a floor, but f − f* reached {tail:e}");
}

/// What the double-quantization methods cannot run is refused before any round, with the
/// fix: the accelerated variant's unverified coefficients, Sparse-AsyLPG without its
/// compressor, the ridge as a prox term of a non-ridge objective, a biased compressor, two
/// steps at once, a fixed model precision without its width.
#[test]
fn asylpg_refuses_what_it_cannot_run() {
    let dir = TempDir::new("asylpg-refusals");
    let out = dir.path("never.h5");
    let cases: [(&[&str], &str); 6] = [
        (&["--method", "acc-asylpg", "--compressor", "lowp:b=8"], "acc-asylpg:unverified"),
        (&["--method", "sparse-asylpg", "--compressor", "lowp:b=8"], "sparse-lowp"),
        (&["--method", "asylpg:ridge=prox", "--compressor", "lowp:b=8"], "ridge=smooth"),
        (&["--method", "asylpg", "--compressor", "top-k:k=5"], "unbiased"),
        (&["--method", "asylpg:eta=0.1", "--compressor", "lowp:b=8", "--step", "0.2"], "give the step once"),
        (&["--method", "asylpg:model=fixed", "--compressor", "lowp:b=8"], "model=fixed,bx=8"),
    ];
    for (rest, fix) in cases {
        let mut args = train_args(out.to_str().unwrap(), rest);
        if rest[1].contains("ridge=prox") {
            let objective = args.iter().position(|a| a == "--objective").unwrap() + 1;
            args[objective] = "logistic-nonconvex".into();
        }
        let run = mpirun(1, &strs(&args));
        assert_eq!(run.code, Some(2), "{rest:?}: {}", run.stderr);
        assert!(run.stderr.contains(fix), "{rest:?} should name the fix '{fix}':\n{}", run.stderr);
        assert!(!out.exists(), "{rest:?} left a result file");
    }
}

/// The serial schedule (`order=serial`: one worker per inner round) is serial prox-SVRG
/// (identity, exact models, on 1 and 2 ranks); and the asynchronous execution with
/// staleness 0 and serial service order is that synchronous run bit for bit, with the
/// μ-bounded model and lowp:b=8, on 2 ranks (one worker rank) and 3 (two), and in arrival
/// order on 2 ranks (where it is worker order): the same final x, the same per-epoch f and
/// the same bits up. Fails with a wrong worker turn, with the accelerated variant's mean
/// counting m instead of m·W updates per epoch in arrival order (both seen red).
#[test]
fn asynchronous_serial_execution_equals_the_synchronous_serial_schedule() {
    let dir = TempDir::new("asylpg-serial");
    let reference = Reference::embedded(0.1);
    let (workers, batch, epoch, eta) = (2, 5, 6, 0.5);
    let rounds = 3 * (epoch * workers + 1);
    let iters = rounds.to_string();
    let want = reference.prox_svrg(workers, batch, epoch, eta, rounds, false, false, true);
    for ranks in [1, 2] {
        let out = dir.path(&format!("reference-{ranks}.h5"));
        let method = format!("asylpg:model=exact,epoch={epoch},order=serial");
        let rest = ["--method", &method, "--compressor", "identity", "--workers", "2", "--batch", "5", "--step", "0.5"];
        let rest = [&rest[..], &["--iters", &iters, "--seed", "5"]].concat();
        mpirun(ranks, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
        let got = final_x(&out);
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst <= 1e-9 * scale, "serial schedule on {ranks} ranks: max |Δx| = {worst:e} (‖x‖_∞ = {scale:e})");
    }

    let common = ["--compressor", "lowp:b=8", "--workers", "2", "--batch", "5", "--eval-every", "1", "--seed", "5"];
    for (variant, flag) in [("asylpg", ""), ("acc-asylpg", "unverified,")] {
        let sync = dir.path(&format!("{variant}-sync.h5"));
        let method = format!("{variant}:{flag}epoch={epoch},order=serial");
        let rest = [&["--method", &method, "--iters", &iters][..], &common].concat();
        mpirun(1, &strs(&train_args(sync.to_str().unwrap(), &rest))).expect_ok();
        let sync_f = column::<f64>(&sync, "loss");
        let sync_up = column::<u64>(&sync, "bits_up");
        // With one worker rank, arrival order is worker order too (the rank's workers in
        // turn, one request at a time): the arrival path must give the same bits.
        for (ranks, order) in [(2, "order=serial,"), (3, "order=serial,"), (2, "")] {
            let out = dir.path(&format!("{variant}-async-{ranks}-{order}.h5"));
            let method = format!("{variant}:{flag}async,staleness=0,{order}epoch={epoch}");
            let rest = [&["--method", &method, "--iters", "3"][..], &common].concat();
            let run = mpirun(ranks, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
            assert_eq!(
                attr_str(&out, "x_digest"),
                attr_str(&sync, "x_digest"),
                "{variant}: async ({order}) on {ranks} ranks differs from the synchronous serial run\n{}",
                run.stderr
            );
            let (f, up) = (column::<f64>(&out, "loss"), column::<u64>(&out, "bits_up"));
            for s in 0..=3 {
                let t = s * (epoch * workers + 1);
                assert_eq!(f[s].to_bits(), sync_f[t].to_bits(), "{variant}, {ranks} ranks: f after epoch {s}");
                assert_eq!(up[s], sync_up[t], "{variant}, {ranks} ranks: bits up after epoch {s}");
            }
            let outcome = async_record(&out, "outcome");
            assert!(outcome.iter().all(|&o| o == 1), "serial order applies every update: {outcome:?}");
        }
    }
}

fn async_record(file: &std::path::Path, name: &str) -> Vec<u64> {
    hdf5::File::open(file).unwrap().dataset(&format!("async/{name}")).unwrap().read_raw::<u64>().unwrap()
}

/// Asynchronous AsyLPG and accelerated AsyLPG, 1 server + 3 workers with staleness 2,
/// reach f − f* ≤ 1e-6 on a9a (λ = 0.1; through ‖∇f‖² ≤ 1e-7) and the `/async/` records
/// explain the run (whether any update is stale depends on the scheduling: on OpenMPI
/// most are, under MPICH's busy-polling oversubscribed ranks none may be): every
/// arrival applied exactly when its staleness is at most τ, the histogram and the
/// per-worker counts are those of the log, and each epoch applies m·W updates.
#[test]
fn asynchronous_asylpg_converges_with_bounded_staleness() {
    let Some(data) = shared_data("a9a.txt") else { return };
    let dir = TempDir::new("asylpg-async");
    let (tau, epoch, workers) = (2u64, 200u64, 3u64);
    for variant in ["asylpg", "acc-asylpg:unverified"] {
        let out = dir.path(&format!("{}.h5", variant.replace(':', "-")));
        let joint = if variant.contains(':') { ',' } else { ':' };
        let method = format!("{variant}{joint}async,staleness={tau},epoch={epoch}");
        let mut args = to_1e_6_on_a9a(&data, &out, &method, "lowp:b=8", &["--workers", "3", "--batch", "16"]);
        let at = |args: &[String], flag: &str| args.iter().position(|a| a == flag).unwrap() + 1;
        let (iters, every) = (at(&args, "--iters"), at(&args, "--eval-every"));
        args[iters] = "100".into();
        args[every] = "1".into();
        let run = mpirun(4, &strs(&args)).expect_ok();
        assert_eq!(attr_str(&out, "status"), "converged", "{method}: {}", run.stderr);
        let gap = *column::<f64>(&out, "f_gap").last().unwrap();
        assert!(gap <= 1e-6, "{method}: f − f* = {gap:e}");

        let (computed, arrived) = (async_record(&out, "computed_version"), async_record(&out, "arrival_version"));
        let (outcome, worker) = (async_record(&out, "outcome"), async_record(&out, "worker"));
        let mut histogram = vec![0u64; tau as usize + 1];
        let mut per_worker = vec![0u64; workers as usize];
        for i in 0..outcome.len() {
            let staleness = arrived[i] - computed[i];
            match outcome[i] {
                1 => {
                    assert!(staleness <= tau, "{method}, arrival {i}: applied at staleness {staleness}");
                    histogram[staleness as usize] += 1;
                    per_worker[worker[i] as usize] += 1;
                }
                0 => assert!(staleness > tau, "{method}, arrival {i}: dropped at staleness {staleness}"),
                2 => {}
                other => panic!("{method}, arrival {i}: outcome {other}"),
            }
        }
        assert_eq!(async_record(&out, "staleness_histogram"), histogram, "{method}");
        assert_eq!(async_record(&out, "applied_per_worker"), per_worker, "{method}");
        let epochs = attr_u64(&out, "rounds");
        assert_eq!(per_worker.iter().sum::<u64>(), epochs * epoch * workers, "{method}: m·W updates per epoch");
    }
}

/// What the asynchronous execution cannot run is refused before any epoch, on every rank,
/// with the fix: one rank, checkpoints, the server topology, a shared-support compressor,
/// staleness without async, workers that do not divide over the worker ranks.
#[test]
fn asynchronous_asylpg_refuses_what_it_cannot_run() {
    let dir = TempDir::new("asylpg-async-refusals");
    let out = dir.path("never.h5");
    let ckpt = dir.path("ckpt");
    let ckpt = ckpt.to_str().unwrap();
    let lowp = ["--compressor", "lowp:b=8"];
    let cases: [(usize, Vec<&str>, &str); 6] = [
        (1, [&["--method", "asylpg:async"][..], &lowp].concat(), "launch at least 2 ranks"),
        (2, [&["--method", "asylpg:async", "--checkpoint-dir", ckpt][..], &lowp].concat(), "drop --checkpoint-dir"),
        (2, [&["--method", "asylpg:async", "--topology", "server"][..], &lowp].concat(), "drop --topology"),
        (2, vec!["--method", "asylpg:async", "--compressor", "rand-k:k=5,shared"], "private coins"),
        (2, [&["--method", "asylpg:staleness=2"][..], &lowp].concat(), "asylpg:async,staleness=2"),
        (3, [&["--method", "asylpg:async", "--workers", "3"][..], &lowp].concat(), "multiple of the worker ranks"),
    ];
    for (ranks, rest, fix) in cases {
        let args = train_args(out.to_str().unwrap(), &rest);
        let run = mpirun(ranks, &strs(&args));
        assert_eq!(run.code, Some(2), "{rest:?} on {ranks} ranks: {}", run.stderr);
        assert!(run.stderr.contains(fix), "{rest:?} should name the fix '{fix}':\n{}", run.stderr);
        let messages = run.stderr.lines().filter(|l| l.starts_with("qtrain: error")).count();
        assert_eq!(messages, 1, "{rest:?}: one message, not one per rank:\n{}", run.stderr);
        assert!(!out.exists(), "{rest:?} left a result file");
    }
}

/// SIGKILL of a worker rank in the middle of an epoch's point-to-point exchange (the
/// server waiting in its probe, the other worker in its receive): every rank is gone
/// within 10 s, the launcher names the signal, and no result file is left under the final
/// name (the OUT.partial, if any, is a valid HDF5 file). Found by its rank variable
/// (OpenMPI's OMPI_COMM_WORLD_RANK, MPICH's PMI_RANK) and a tag only this launch has.
#[test]
fn a_killed_worker_rank_ends_the_asynchronous_run_within_10_s() {
    let dir = TempDir::new("asylpg-async-kill");
    let out = dir.path("killed.h5");
    let tag = dir.0.to_str().unwrap().to_string();
    // One epoch of 2·10⁶ updates: far longer than the test waits, so the kill lands in it.
    let rest = ["--method", "asylpg:async,epoch=1000000", "--compressor", "lowp:b=8", "--workers", "2"];
    let rest = [&rest[..], &["--batch", "5", "--iters", "1000", "--flush-every", "1"]].concat();
    let mut job = spawn_mpirun(3, &strs(&train_args(out.to_str().unwrap(), &rest)), &[("QTRAIN_KILL_TAG", &tag)]);
    let partial = partial_of(&out);
    let waited = Instant::now();
    while !partial.exists() && waited.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(partial.exists(), "the run did not start within 60 s");
    std::thread::sleep(Duration::from_millis(1500));
    let victim = process_of_rank(1, &tag).expect("rank 1 of the launch is running");
    assert_eq!(std::process::Command::new("kill").args(["-9", &victim.to_string()]).status().unwrap().code(), Some(0));
    let killed = Instant::now();
    let code = loop {
        if let Some(status) = job.try_wait().unwrap() {
            break status.code();
        }
        assert!(killed.elapsed() < Duration::from_secs(20), "the job still runs 20 s after the kill");
        std::thread::sleep(Duration::from_millis(50));
    };
    let seconds = killed.elapsed().as_secs_f64();
    let output = job.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    assert!(seconds < 10.0, "the ranks took {seconds:.1} s to stop\n{text}");
    assert!(code.is_some_and(|c| c != 0), "exit code {code:?}\n{text}");
    assert!(text.contains("signal 9") || text.contains("Killed"), "the launcher names the signal:\n{text}");
    assert!(process_of_rank(0, &tag).is_none() && process_of_rank(2, &tag).is_none(), "a rank outlived the job");
    assert!(!out.exists(), "no result under the final name");
    if partial.exists() {
        hdf5::File::open(&partial).expect("OUT.partial is a valid HDF5 file");
    }
}

/// The PID of the live process of `rank` whose environment holds QTRAIN_KILL_TAG=tag.
fn process_of_rank(rank: usize, tag: &str) -> Option<u32> {
    let wanted = [format!("OMPI_COMM_WORLD_RANK={rank}"), format!("PMI_RANK={rank}")];
    let tagged = format!("QTRAIN_KILL_TAG={tag}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let environ = std::fs::read(entry.path().join("environ")).ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
        let has = |v: &str| vars.contains(&v.as_bytes());
        let live = !std::fs::read_to_string(entry.path().join("stat")).ok()?.contains(") Z ");
        (comm.trim() == "qtrain" && live && has(&tagged) && wanted.iter().any(|w| has(w))).then_some(pid)
    })
}
