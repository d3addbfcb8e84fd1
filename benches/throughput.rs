//! Throughput of the compressors and of the logistic gradient, against memcpy and a
//! measured memory bandwidth. `cargo bench --bench throughput` prints Markdown tables;
//! `QTRAIN_BENCH_QUICK=1` runs fewer sizes and repeats (a smoke test);
//! `QTRAIN_BENCH_ONLY=compressors` or `=gradient` runs one part alone;
//! `QTRAIN_BENCH_VARIANTS=V` fixes the number of distinct inputs per d;
//! `QTRAIN_BENCH_SPECS=top-k,sign` measures only the compressors whose SPEC starts with one
//! of the given names.
//!
//! The harness follows Gloo's benchmark runner: warm up, then time batches of calls
//! (each batch long enough for the clock), and report the median and p90 of the time
//! per call. Throughput is computed from the median. 1 GB = 10⁹ bytes. Single thread.

use std::hint::black_box;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use qtrain::compress;
use qtrain::data::Csr;
use qtrain::objective::{self, Objective, ObjectiveKind};
use qtrain::rng::{self, Purpose};

/// The compressors measured; `{k}` becomes d/100.
const SPECS: &[&str] =
    &["identity", "rand-k:k={k}", "top-k:k={k}", "qsgd:s=4", "natural", "nat-dither:s=4", "sign", "terngrad"];

/// Seed of the generated inputs (the compressor stream is `rng::private(0, 0, ..)`).
const SEED: u64 = 20_240_601;

/// How long and how often to measure.
struct Config {
    quick: bool,
    /// Warm-up: at least this many calls and this many seconds.
    warmup_calls: usize,
    warmup_s: f64,
    /// Each sample times a batch of calls lasting at least this long.
    sample_s: f64,
    /// Samples: at most `samples`, at least `min_samples`, stopping after `budget_s`.
    samples: usize,
    min_samples: usize,
    budget_s: f64,
    dims: Vec<usize>,
    /// Distinct input vectors (and messages) per d, used in turn; `None`: [`variants_for`].
    variants: Option<usize>,
    /// Gradient problems: (rows, features, nnz per row).
    problems: Vec<(usize, usize, usize)>,
    /// Size of the bandwidth arrays in bytes.
    stream_bytes: usize,
}

impl Config {
    fn from_env() -> Config {
        let quick = std::env::var("QTRAIN_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Config {
                quick,
                warmup_calls: 1,
                warmup_s: 0.002,
                sample_s: 0.001,
                samples: 5,
                min_samples: 3,
                budget_s: 0.05,
                dims: vec![10_000, 100_000],
                variants: variants(),
                problems: vec![(10_000, 10_000, 50)],
                stream_bytes: 64 << 20,
            }
        } else {
            Config {
                quick,
                warmup_calls: 3,
                warmup_s: 0.05,
                sample_s: 0.005,
                samples: 31,
                min_samples: 9,
                budget_s: 1.0,
                dims: vec![10_000, 100_000, 1_000_000, 10_000_000],
                variants: variants(),
                problems: vec![(100_000, 10_000, 50), (100_000, 1_000_000, 50)],
                stream_bytes: 512 << 20,
            }
        }
    }
}

/// `QTRAIN_BENCH_VARIANTS=V` fixes the number of distinct inputs per d.
fn variants() -> Option<usize> {
    std::env::var("QTRAIN_BENCH_VARIANTS").ok().and_then(|v| v.parse().ok()).map(|v: usize| v.max(1))
}

/// Distinct inputs used in turn at dimension d: enough that one cycle spans ≥ 8·10⁵
/// coordinates (a branch predictor learns the sign pattern of one repeated 10⁴-long
/// message, which makes `sign` decode look 6× faster), at least 2 and at most 8, so the
/// footprint stays near that of one vector (L2 for d = 10⁴, L3 up to 10⁶).
fn variants_for(cfg: &Config, d: usize) -> usize {
    cfg.variants.unwrap_or_else(|| 800_000usize.div_ceil(d).clamp(2, 8))
}

/// Whether `QTRAIN_BENCH_SPECS` (comma-separated name prefixes; all when unset) selects
/// the compressor `template`.
fn selected(template: &str) -> bool {
    std::env::var("QTRAIN_BENCH_SPECS")
        .map_or(true, |names| names.split(',').any(|name| template.starts_with(name.trim())))
}

/// Seconds per call.
#[derive(Clone, Copy)]
struct Timing {
    median: f64,
    p90: f64,
    samples: usize,
}

impl Timing {
    /// Throughput in GB/s for `bytes` per call, from the median.
    fn gbps(&self, bytes: f64) -> f64 {
        bytes / self.median / 1e9
    }
}

/// Warm-up, calibrate a batch size, then time batches of `f` (Gloo's runner, simplified).
fn measure(cfg: &Config, mut f: impl FnMut()) -> Timing {
    let start = Instant::now();
    let mut calls = 0usize;
    while calls < cfg.warmup_calls || start.elapsed().as_secs_f64() < cfg.warmup_s {
        f();
        calls += 1;
    }
    let per_call = start.elapsed().as_secs_f64() / calls as f64;
    let batch = ((cfg.sample_s / per_call).ceil() as usize).max(1);
    let mut times = Vec::with_capacity(cfg.samples);
    let begin = Instant::now();
    while times.len() < cfg.samples && (times.len() < cfg.min_samples || begin.elapsed().as_secs_f64() < cfg.budget_s) {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        times.push(t.elapsed().as_secs_f64() / batch as f64);
    }
    times.sort_by(f64::total_cmp);
    Timing { median: quantile(&times, 0.5), p90: quantile(&times, 0.9), samples: times.len() }
}

/// The q-quantile of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// n standard normal values (Box–Muller on a seeded ChaCha8 stream).
fn gaussian(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    let mut v = Vec::with_capacity(n + 1);
    while v.len() < n {
        let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        v.push(r * theta.cos());
        v.push(r * theta.sin());
    }
    v.truncate(n);
    v
}

fn us(seconds: f64) -> String {
    format!("{:.1}", seconds * 1e6)
}

// ---------------------------------------------------------------------------------------
// Compressors

/// One compressor at one d: encode and decode timings and the message length.
struct CodecRow {
    spec: String,
    wire_bytes: usize,
    encode: Timing,
    decode: Timing,
}

/// Encode and decode_add of one SPEC, cycling through the input variants (and their
/// messages) so that no branch sees the same data twice in a row. Checks that the
/// message length and the output buffer's capacity do not change across calls (the hot
/// path does not reallocate).
fn bench_codec(cfg: &Config, spec: &str, xs: &[Vec<f64>]) -> CodecRow {
    let d = xs[0].len();
    let mut coder = compress::build(spec, d, 0).unwrap_or_else(|e| panic!("building {spec}: {e}"));
    coder.begin_round(&mut rng::shared(0, Purpose::SharedSupport));
    let mut rng = rng::private(0, 0, Purpose::Compressor);
    let mut messages: Vec<Vec<u8>> = vec![Vec::new(); xs.len()];
    for (x, msg) in xs.iter().zip(&mut messages) {
        coder.encode(x, &mut rng, msg);
    }
    let len = messages[0].len();
    assert!(messages.iter().all(|m| m.len() == len), "{spec}: message lengths differ");
    let mut out = Vec::new();
    coder.encode(&xs[0], &mut rng, &mut out);
    let capacity = out.capacity();
    let mut next = 0;
    let encode = measure(cfg, || {
        next = (next + 1) % xs.len();
        coder.encode(black_box(&xs[next]), &mut rng, &mut out);
        assert_eq!(out.len(), len, "{spec}: message length changed");
    });
    assert_eq!(out.capacity(), capacity, "{spec}: the output buffer was reallocated");
    let mut acc = vec![0.0; d];
    let decode = measure(cfg, || {
        next = (next + 1) % messages.len();
        coder.decode_add(black_box(&messages[next]), 1e-3, &mut acc).expect("decoding its own message");
    });
    black_box(&acc);
    CodecRow { spec: spec.to_string(), wire_bytes: len, encode, decode }
}

/// d coins from the compressor stream (`rng::Coins::units`, a chunk at a time): what the
/// dithering compressors (qsgd, natural, nat-dither, terngrad) draw per message, one per
/// coordinate, so the floor of their encode as long as they keep ChaCha8.
fn bench_coins(cfg: &Config, d: usize) -> Timing {
    let mut rng = rng::private(0, 0, Purpose::Compressor);
    let mut units = [0.0; 256];
    measure(cfg, || {
        let mut coins = rng::Coins::new(&mut rng, d);
        let mut acc = 0.0;
        for start in (0..d).step_by(units.len()) {
            let chunk = &mut units[..(d - start).min(256)];
            coins.units(chunk);
            acc += chunk[0];
        }
        black_box(acc);
    })
}

/// `dst.copy_from_slice(src)` of the same d×f64 inputs: the bound for every compressor.
fn bench_memcpy(cfg: &Config, xs: &[Vec<f64>]) -> Timing {
    let mut dst = vec![0.0; xs[0].len()];
    let mut next = 0;
    let t = measure(cfg, || {
        next = (next + 1) % xs.len();
        dst.copy_from_slice(black_box(&xs[next]));
    });
    black_box(&dst);
    t
}

fn compressor_tables(cfg: &Config) {
    println!("## Compressors: encode and decode_add throughput (GB/s of f64 input, 8d bytes)\n");
    println!("Ratio = throughput / memcpy throughput of the same 8d bytes at the same d.");
    println!(
        "Each d uses V seeded Gaussian inputs in turn (and their messages for decode), so that branch \
         predictors cannot learn one message; memcpy copies the same inputs. Times are per call: \
         median and p90 over n samples (encode/decode).\n"
    );
    println!("| d (V) | SPEC | wire bytes | encode µs (med / p90) | encode GB/s | × memcpy | decode µs (med / p90) | decode GB/s | × memcpy | n |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut data_rng = ChaCha8Rng::seed_from_u64(SEED);
    for &d in &cfg.dims {
        let xs: Vec<Vec<f64>> = (0..variants_for(cfg, d)).map(|_| gaussian(&mut data_rng, d)).collect();
        let bytes = 8.0 * d as f64;
        let copy = bench_memcpy(cfg, &xs);
        let copy_gbps = copy.gbps(bytes);
        println!(
            "| {d} ({}) | memcpy (bound) | {} | {} / {} | {copy_gbps:.2} | 1.00 | | | | {} |",
            xs.len(),
            8 * d,
            us(copy.median),
            us(copy.p90),
            copy.samples
        );
        let draws = bench_coins(cfg, d);
        println!(
            "| {d} | d coins (`rng::Coins`, ChaCha8) | | {} / {} | {:.2} | {:.3} | | | | {} |",
            us(draws.median),
            us(draws.p90),
            draws.gbps(bytes),
            draws.gbps(bytes) / copy_gbps,
            draws.samples
        );
        for template in SPECS.iter().filter(|t| selected(t)) {
            let spec = template.replace("{k}", &(d / 100).to_string());
            let row = bench_codec(cfg, &spec, &xs);
            let (enc, dec) = (row.encode.gbps(bytes), row.decode.gbps(bytes));
            println!(
                "| {d} | `{}` | {} | {} / {} | {enc:.2} | {:.3} | {} / {} | {dec:.2} | {:.3} | {}/{} |",
                row.spec,
                row.wire_bytes,
                us(row.encode.median),
                us(row.encode.p90),
                enc / copy_gbps,
                us(row.decode.median),
                us(row.decode.p90),
                dec / copy_gbps,
                row.encode.samples,
                row.decode.samples
            );
        }
    }
    println!();
}

// ---------------------------------------------------------------------------------------
// Memory bandwidth

/// Sum of a slice with 8 independent accumulators, so the loop is bound by loads rather
/// than by the latency of one floating-point add chain.
fn stream_sum(v: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Bandwidth of a streaming sum (bytes read/s) and of a copy (bytes copied/s).
struct Bandwidth {
    sum: Timing,
    copy: Timing,
    bytes: f64,
}

fn bench_bandwidth(cfg: &Config) -> Bandwidth {
    let n = cfg.stream_bytes / 8;
    let src: Vec<f64> = (0..n).map(|i| (i % 1024) as f64).collect();
    let mut dst = vec![1.0; n];
    let sum = measure(cfg, || {
        black_box(stream_sum(black_box(&src)));
    });
    let copy = measure(cfg, || dst.copy_from_slice(black_box(&src)));
    black_box(&dst);
    Bandwidth { sum, copy, bytes: (8 * n) as f64 }
}

// ---------------------------------------------------------------------------------------
// Gradient

/// A seeded random CSR matrix: `per_row` distinct uniform columns per row (sorted),
/// Gaussian values, ±1 labels.
fn random_problem(rows: usize, cols: usize, per_row: usize, rng: &mut ChaCha8Rng) -> (Csr, Vec<f64>) {
    let mut a = Csr::empty(cols);
    a.indptr.reserve(rows);
    a.indices.reserve(rows * per_row);
    a.values.reserve(rows * per_row);
    let mut picked: Vec<u32> = Vec::with_capacity(per_row);
    for _ in 0..rows {
        picked.clear();
        while picked.len() < per_row.min(cols) {
            let j = rng.random_range(0..cols as u32);
            if !picked.contains(&j) {
                picked.push(j);
            }
        }
        picked.sort_unstable();
        let values = gaussian(rng, picked.len());
        a.push_row(picked.iter().copied().zip(values));
    }
    let labels = (0..rows).map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 }).collect();
    (a, labels)
}

fn gradient_table(cfg: &Config, bw: &Bandwidth) {
    let read_gbps = bw.sum.gbps(bw.bytes);
    println!("## Logistic gradient (`objective::value_and_gradient`) against memory bandwidth\n");
    println!(
        "Streaming sum over {} MiB of f64: {read_gbps:.2} GB/s read (median {} µs, p90 {} µs); copy of {} MiB: {:.2} GB/s copied (read + write = {:.2} GB/s).\n",
        cfg.stream_bytes >> 20,
        us(bw.sum.median),
        us(bw.sum.p90),
        cfg.stream_bytes >> 20,
        bw.copy.gbps(bw.bytes),
        2.0 * bw.copy.gbps(bw.bytes),
    );
    println!("CSR bytes = 2 × nnz × (4 B index + 8 B value), or 2 × nnz × 4 B for the pattern-only matrix");
    println!("(the same indices, every value 1: `Csr::drop_unit_values`): read once for the margins, once for Aᵀy.");
    println!("`value+grad` times `objective::value_and_gradient` (evaluation rounds), `grad` times");
    println!("`objective::gradient` (the derivative-only kernel of every other round); `margins` and `Aᵀy` time");
    println!("`Csr::margins` and `Csr::add_transposed` alone (median ms). GB/s and the ratio are of `grad`.\n");
    println!("| rows | d | nnz | values | CSR MB | ms value+grad (med / p90) | ms grad (med / p90) | margins | Aᵀy | Mnnz/s | GB/s of CSR | × streaming sum | n |");
    println!("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + 1);
    for &(rows, cols, per_row) in &cfg.problems {
        let (a, b) = random_problem(rows, cols, per_row, &mut rng);
        let x: Vec<f64> = gaussian(&mut rng, cols).iter().map(|v| 0.1 * v).collect();
        let mut pattern = a.clone();
        pattern.values.fill(1.0);
        pattern.drop_unit_values();
        for (kind, matrix, bytes_per_nnz) in [("stored", &a, 12.0), ("pattern", &pattern, 4.0)] {
            let g = bench_gradient(cfg, matrix, &b, &x);
            let nnz = matrix.nnz() as f64;
            let gbps = g.derivative.gbps(2.0 * nnz * bytes_per_nnz);
            println!(
                "| {rows} | {cols} | {} | {kind} | {:.1} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} | {:.2} | {:.0} | {gbps:.2} | {:.2} | {} |",
                matrix.nnz(),
                nnz * bytes_per_nnz / 1e6,
                g.full.median * 1e3,
                g.full.p90 * 1e3,
                g.derivative.median * 1e3,
                g.derivative.p90 * 1e3,
                g.margins.median * 1e3,
                g.transposed.median * 1e3,
                nnz / g.derivative.median / 1e6,
                gbps / read_gbps,
                g.derivative.samples
            );
        }
    }
    println!();
}

struct GradientTimings {
    full: Timing,
    derivative: Timing,
    margins: Timing,
    transposed: Timing,
}

/// The logistic objective's `value_and_gradient` and `gradient`, and their two CSR products.
fn bench_gradient(cfg: &Config, a: &Csr, b: &[f64], x: &[f64]) -> GradientTimings {
    let obj = Objective::new(ObjectiveKind::Logistic, 1e-3);
    let (mut grad, mut margins) = (vec![0.0; a.cols], vec![0.0; a.rows()]);
    let full = measure(cfg, || {
        black_box(objective::value_and_gradient(&obj, a, b, black_box(x), &mut grad, &mut margins));
    });
    let derivative = measure(cfg, || {
        objective::gradient(&obj, a, b, black_box(x), None, &mut grad, &mut margins);
        black_box(&grad);
    });
    let margins_only = measure(cfg, || a.margins(black_box(x), &mut margins));
    // Nonzero weights, so that no row is skipped by `add_transposed`.
    let y: Vec<f64> = margins.iter().map(|m| 1e-6 * (1.0 + m.abs())).collect();
    let transposed = measure(cfg, || a.add_transposed(black_box(&y), &mut grad));
    black_box((&grad, &margins));
    GradientTimings { full, derivative, margins: margins_only, transposed }
}

/// CPU time in clock ticks (USER_HZ): (busy on all CPUs, this process), from Linux's
/// /proc/stat and /proc/self/stat; `None` elsewhere.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let all: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let busy = all.iter().take(8).sum::<u64>() - all.get(3)? - all.get(4)?;
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
    let mine = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((busy, mine))
}

/// The average number of CPUs kept busy by other processes while the bench ran: the
/// noise a shared machine adds (this bench itself is single-threaded).
fn report_other_load(before: Option<(u64, u64)>, seconds: f64) {
    if let (Some((busy0, mine0)), Some((busy1, mine1))) = (before, cpu_ticks()) {
        let others = (busy1 - busy0).saturating_sub(mine1 - mine0) as f64 / 100.0 / seconds;
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("Other processes kept {others:.2} of {cpus} CPUs busy on average during the run (/proc/stat).");
    }
}

fn main() {
    let cfg = Config::from_env();
    let started = Instant::now();
    let ticks = cpu_ticks();
    println!("# qtrain throughput{}\n", if cfg.quick { " (QTRAIN_BENCH_QUICK: fewer sizes and repeats)" } else { "" });
    // `QTRAIN_BENCH_ONLY=compressors|gradient` repeats one part alone.
    let only = std::env::var("QTRAIN_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "compressors" {
        compressor_tables(&cfg);
    }
    if only.is_empty() || only == "gradient" {
        let bw = bench_bandwidth(&cfg);
        gradient_table(&cfg, &bw);
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("Total bench time: {seconds:.1} s.");
    report_other_load(ticks, seconds);
}
