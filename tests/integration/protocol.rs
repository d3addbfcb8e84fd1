//! The round protocol (docs/architecture.md): iterates that do not change with the
//! refactor, the rank layout or the topology; the compressed downlink; skipping workers;
//! minibatch oracles. The generic suites run every example of every registered method
//! (`qtrain methods --examples`), so a new method is covered without being named here.

use crate::util::*;
use std::process::Command;

/// The registry's (method SPEC, compressor SPEC) examples.
fn examples() -> Vec<(String, String)> {
    let out = Command::new(qtrain()).args(["methods", "--examples"]).output().expect("qtrain runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let pairs: Vec<(String, String)> = text
        .lines()
        .map(|l| l.split_once('\t').expect("method<TAB>compressor"))
        .map(|(m, c)| (m.into(), c.into()))
        .collect();
    assert!(pairs.len() >= 8, "{text}");
    pairs
}

/// Trains 30 rounds of `method`/`compressor` with 4 logical workers, seed 7.
fn run(dir: &TempDir, name: &str, ranks: usize, method: &str, compressor: &str, extra: &[&str]) -> std::path::PathBuf {
    let out = dir.path(&format!("{name}.h5"));
    let mut rest =
        vec!["--method", method, "--compressor", compressor, "--iters", "30", "--workers", "4", "--seed", "7"];
    rest.extend_from_slice(extra);
    mpirun(ranks, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();
    out
}

/// Whether a run's method traffic was all gathers (no sums), so that its aggregates are
/// taken in global worker order.
fn only_gathers(file: &std::path::Path) -> bool {
    ["allreduce_calls_round", "reduce_calls_round"].iter().all(|c| column::<u64>(file, c).iter().all(|&n| n == 0))
}

fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-300)).fold(0.0, f64::max)
}

/// The digests recorded before the round-protocol refactor (scripts/record-digests.sh,
/// every method × two compressors × {1, 2, 4} ranks × {allgather, allreduce}): every run
/// gives the same final model bit for bit.
#[test]
fn matrix_digests_are_unchanged() {
    let table = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/digests.tsv")).unwrap();
    let dir = TempDir::new("digests");
    let common = ["--objective", "logistic", "--lambda", "0.1", "--workers", "4", "--iters", "30", "--seed", "7"];
    let mut changed = Vec::new();
    for (n, line) in table.lines().enumerate() {
        let mut fields = line.split('\t');
        let (ranks, digest, args) = (fields.next().unwrap(), fields.next().unwrap(), fields.next().unwrap());
        let out = dir.path(&format!("d{n}.h5"));
        let data = embedded("agaricus.txt.train");
        let mut argv = vec!["train", "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()];
        argv.extend_from_slice(&common);
        argv.extend(args.split_whitespace());
        mpirun(ranks.parse().unwrap(), &argv).expect_ok();
        let got = attr_str(&out, "x_digest");
        if got != digest {
            changed.push(format!("{ranks} ranks, {args}: {got} (recorded {digest})"));
        }
    }
    assert!(changed.is_empty(), "final models changed:\n{}", changed.join("\n"));
}

/// Every example gives bit-identical iterates on both topologies: gathered messages are
/// aggregated in global worker order either way, and the uncompressed downlink is
/// lossless. At 2 ranks a reduce and an allreduce add the same two terms, so summed
/// methods agree too.
#[test]
fn every_method_gives_the_same_iterates_on_both_topologies() {
    let dir = TempDir::new("topology");
    for (i, (method, compressor)) in examples().iter().enumerate() {
        let a = run(&dir, &format!("r{i}"), 2, method, compressor, &["--topology", "replicated"]);
        let b = run(&dir, &format!("s{i}"), 2, method, compressor, &["--topology", "server"]);
        assert_eq!(attr_str(&a, "x_digest"), attr_str(&b, "x_digest"), "{method} with {compressor}");
        assert_eq!(column::<u64>(&a, "bits_up"), column::<u64>(&b, "bits_up"), "{method}: bits up");
        if !only_gathers(&a) {
            assert!(column::<u64>(&b, "reduce_calls_round")[1] > 0, "{method}: the server topology reduces");
        } else {
            assert!(column::<u64>(&b, "gather_calls_round")[1] > 0, "{method}: the server topology gathers");
        }
    }
}

/// With a fixed number of logical workers, every method whose messages are gathered
/// gives bit-identical iterates on 1, 2 and 4 ranks (1 and 2 under MPICH) (private streams keyed by worker,
/// aggregates in worker order); summed ones agree to rounding.
#[test]
fn every_method_is_layout_invariant() {
    let dir = TempDir::new("layout");
    for (i, (method, compressor)) in examples().iter().enumerate() {
        let runs: Vec<_> =
            layout_rank_counts().iter().map(|&r| run(&dir, &format!("l{i}-{r}"), r, method, compressor, &[])).collect();
        if only_gathers(&runs[0]) {
            let digests: Vec<String> = runs.iter().map(|f| attr_str(f, "x_digest")).collect();
            assert!(digests.iter().all(|d| *d == digests[0]), "{method} with {compressor}: {digests:?}");
        } else {
            let loss: Vec<Vec<f64>> = runs.iter().map(|f| column::<f64>(f, "loss")).collect();
            for l in &loss[1..] {
                assert!(max_rel_diff(&loss[0], l) <= 1e-6, "{method} with {compressor}: {}", max_rel_diff(&loss[0], l));
            }
        }
    }
}

/// GD is the same algorithm on both topologies: a reduce to rank 0 and a lossless
/// broadcast of the direction, against an allreduce (≤ 1e-12 relative, the summation
/// order of MPI's reduce and allreduce may differ).
#[test]
fn gd_iterates_agree_on_both_topologies() {
    let dir = TempDir::new("gd-topology");
    for ranks in [1, 2, 4] {
        let a = run(&dir, &format!("r{ranks}"), ranks, "gd", "identity", &["--iters", "60"]);
        let b = run(&dir, &format!("s{ranks}"), ranks, "gd", "identity", &["--iters", "60", "--topology", "server"]);
        let (xa, xb) = (final_x(&a), final_x(&b));
        assert!(max_rel_diff(&xa, &xb) <= 1e-12, "{ranks} ranks: {}", max_rel_diff(&xa, &xb));
        assert!(max_rel_diff(&column(&a, "loss"), &column(&b, "loss")) <= 1e-12);
        // Server topology: every worker receives the d-vector direction (32 bits a value).
        let down = column::<u64>(&b, "bits_down_round");
        assert_eq!(down[1], 4 * 32 * 126, "{ranks} ranks");
        assert_eq!(column::<u64>(&a, "bits_down_round")[1], 0, "nothing is sent down on the replicated topology");
    }
}

/// ALGORITHMS.md §G.3, bidirectional EF21 on real data (phishing, non-convex logistic,
/// λ = 0.1, 2 and 4 ranks): with the downlink compressed by Top-k it still reaches
/// ‖∇f‖² ≤ 1e-8, and its downlink bits are fewer than those of the uncompressed
/// downlink's run.
#[test]
fn bidirectional_ef21_reaches_1e_8_on_phishing_with_fewer_downlink_bits() {
    let Some(data) = shared_data("phishing.txt") else { return };
    let dir = TempDir::new("bidirectional");
    for ranks in [2, 4] {
        let mut bits_down = Vec::new();
        for down in ["identity", "top-k:k=4"] {
            let out = dir.path(&format!("{ranks}-{down}.h5"));
            let args = paper_setup_args(
                &data,
                &out,
                "ef21",
                "top-k:k=10",
                &["--topology", "server", "--down-compressor", down],
            );
            let run = mpirun(ranks, &strs(&args)).expect_ok();
            assert_eq!(attr_str(&out, "status"), "converged", "{ranks} ranks, downlink {down}:\n{}", run.stderr);
            assert!(*column::<f64>(&out, "grad_norm_sq").last().unwrap() <= 1e-8);
            let total = *column::<u64>(&out, "bits_down").last().unwrap();
            assert!(total > 0, "{down}: bits_down counted");
            bits_down.push(total);
        }
        eprintln!("{ranks} ranks: downlink bits uncompressed {} vs top-k:k=4 {}", bits_down[0], bits_down[1]);
        assert!(bits_down[1] < bits_down[0], "{ranks} ranks: {bits_down:?}");
    }
}

/// The compressed downlink is part of the algorithm, not of the transport: every
/// replica computes the same g̃, so a bidirectional run has the same iterates on the
/// replicated topology (nothing sent) and on the server topology (broadcast), and counts
/// the same downlink bits.
#[test]
fn compressed_downlink_gives_the_same_iterates_on_both_topologies() {
    let dir = TempDir::new("down");
    for (method, compressor) in [("ef21", "top-k:k=10"), ("diana", "natural"), ("gd", "identity")] {
        for ranks in [2, 4] {
            let extra = ["--down-compressor", "top-k:k=20"];
            let a = run(&dir, &format!("{method}-r{ranks}"), ranks, method, compressor, &extra);
            let server = [&extra[..], &["--topology", "server"]].concat();
            let b = run(&dir, &format!("{method}-s{ranks}"), ranks, method, compressor, &server);
            if only_gathers(&a) {
                assert_eq!(attr_str(&a, "x_digest"), attr_str(&b, "x_digest"), "{method} on {ranks} ranks");
            }
            let down = column::<u64>(&b, "bits_down_round");
            // The first downlink is exact (g̃⁰ = the first direction), then Top-20.
            assert_eq!(down[1], 4 * 32 * 126, "{method}");
            assert_eq!(down[2], 4 * 20 * (32 + 7), "{method}");
            assert_eq!(column::<u64>(&a, "bits_down"), column::<u64>(&b, "bits_down"), "{method}");
            let loss = column::<f64>(&b, "loss");
            assert!(loss[30] < loss[0], "{method} must make progress");
        }
    }
}

/// CLAG (§G.1): ζ = 0 is EF21 bit for bit; with ζ ≥ 1 every worker skips the round after
/// the exact first one (the reference code's strict trigger, §G.4a), skips travel as
/// empty messages through allgatherv and gatherv, and `skipped` counts them.
#[test]
fn clag_skips_uploads_and_zero_zeta_is_ef21() {
    let dir = TempDir::new("clag");
    let ef21 = run(&dir, "ef21", 2, "ef21", "top-k:k=10", &[]);
    let clag0 = run(&dir, "clag0", 2, "clag:zeta=0", "top-k:k=10", &[]);
    assert_eq!(attr_f64(&ef21, "step"), attr_f64(&clag0, "step"), "B = max(0, (1−α)/A) is EF21's B");
    assert_eq!(attr_str(&ef21, "x_digest"), attr_str(&clag0, "x_digest"));
    assert!(column::<u64>(&clag0, "skipped").iter().all(|&s| s == 0));
    for topology in ["replicated", "server"] {
        let lazy = run(&dir, &format!("lazy-{topology}"), 2, "clag:zeta=4", "top-k:k=10", &["--topology", topology]);
        let skipped = column::<u64>(&lazy, "skipped");
        let bits = column::<u64>(&lazy, "bits_up_round");
        // Row t describes round t − 1: round 0 is the exact first round, round 1 skips.
        assert_eq!((skipped[1], skipped[2]), (0, 4), "{topology}");
        assert_eq!(bits[2], 0, "{topology}: a skipped round sends no bits");
        for (s, b) in skipped.iter().zip(&bits).skip(2) {
            assert_eq!(*b, (4 - s) * 10 * (32 + 7), "{topology}: bits of the workers that sent");
        }
        assert!(skipped[3..].iter().any(|&s| s < 4), "{topology}: workers upload again");
        let loss = column::<f64>(&lazy, "loss");
        assert!(loss[30] < loss[0]);
    }
}

/// `--batch B`: every method runs on minibatch gradients from private streams; the
/// metrics still hold the full objective and gradient (row 0, at the common x⁰, is the
/// full-batch run's bit for bit), and the iterates are those of a stochastic method.
#[test]
fn every_method_runs_on_minibatches_with_full_metrics() {
    let dir = TempDir::new("batch");
    for (i, (method, compressor)) in examples().iter().enumerate() {
        let full = run(&dir, &format!("f{i}"), 2, method, compressor, &[]);
        let batch = run(&dir, &format!("b{i}"), 2, method, compressor, &["--batch", "32"]);
        let (gf, gb) = (column::<f64>(&full, "grad_norm_sq"), column::<f64>(&batch, "grad_norm_sq"));
        assert_eq!(gf[0].to_bits(), gb[0].to_bits(), "{method}: ‖∇f(x⁰)‖² is the full gradient's");
        assert_ne!(
            attr_str(&full, "x_digest"),
            attr_str(&batch, "x_digest"),
            "{method}: minibatches change the iterates"
        );
        let loss = column::<f64>(&batch, "loss");
        assert!(loss.iter().all(|l| l.is_finite()) && loss[30] < loss[0], "{method} with {compressor}: {loss:?}");
        assert_eq!(hdf5::File::open(&batch).unwrap().attr("batch").unwrap().read_scalar::<u64>().unwrap(), 32);
    }
}

/// Minibatches are drawn from each worker's own stream: the same on any rank layout.
#[test]
fn minibatch_iterates_are_layout_invariant() {
    let dir = TempDir::new("batch-layout");
    let digests: Vec<String> = [1, 2, 4]
        .iter()
        .map(|&r| attr_str(&run(&dir, &format!("r{r}"), r, "ef", "top-k:k=10", &["--batch", "16"]), "x_digest"))
        .collect();
    assert!(digests.iter().all(|d| *d == digests[0]), "{digests:?}");
}

/// The hot paths allocate nothing once their buffers have grown (crate::allocations):
/// every example, on 2 ranks with the server topology (gathers, reduces and broadcasts)
/// and monitoring every round, makes as many heap allocations in the rounds after the
/// first in 90 rounds as in 30, on every rank: rounds 31..90 of the same seeded run
/// allocate nothing, whatever rounds 2..30 needed to reach their high-water marks.
#[test]
fn no_method_allocates_once_its_buffers_have_grown() {
    let dir = TempDir::new("allocations");
    let allocations = |file: &std::path::Path| attr_u64(file, "allocations_after_first_round");
    let mut allocating = Vec::new();
    for (i, (method, compressor)) in examples().iter().enumerate() {
        let short = run(&dir, &format!("a{i}"), 2, method, compressor, &["--topology", "server"]);
        let long = run(&dir, &format!("b{i}"), 2, method, compressor, &["--topology", "server", "--iters", "90"]);
        let (early, all) = (allocations(&short), allocations(&long));
        if all != early {
            allocating.push(format!("{method} with {compressor}: {early} in rounds 2..30, {all} in 2..90"));
        }
    }
    assert!(allocating.is_empty(), "allocations after round 30:\n{}", allocating.join("\n"));
}
