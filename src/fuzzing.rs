//! What the fuzz targets check (README "Fuzzing"), one function per target: each panics
//! when its property fails. The cargo-fuzz targets of `fuzz/` call them on libFuzzer's
//! inputs (`scripts/fuzz.sh`, coverage-guided, with AddressSanitizer); the tests below
//! replay the committed seed corpus and a fixed set of mutations of it on every
//! `cargo test`, so CI checks the same properties without a nightly toolchain or the
//! sanitizer build (which cost CI more than ten minutes on a fresh machine).

use std::path::Path;

use clap::Parser;

use crate::checkpoint::{Manifest, StateReader, StateWriter};
use crate::cli::{check_moved_flags, config_flags, Cli, Command};
use crate::compress::{build, EXAMPLES};
use crate::data::libsvm::{aligned_start, census, parse_range, Rows};
use crate::rng::{self, Purpose, Stream};

/// `libsvm`: the LIBSVM reader on arbitrary bytes, as a file (the reader works on byte
/// ranges of a file): the whole file, and the same file split at an aligned byte position
/// as two ranks would read it. When the whole file parses, the two halves parse to the
/// same rows, the CSR is well formed and the census counts the rows. `scratch` is the
/// file to write the bytes to.
pub fn libsvm(data: &[u8], scratch: &Path) {
    std::fs::write(scratch, data).expect("the scratch file can be written");
    let len = data.len() as u64;
    let whole = census(scratch, 0, len).expect("a readable file always has a census");
    let mut rows = Rows::default();
    let parsed = parse_range(scratch, (0, len), 1, 0, u64::MAX, &mut rows);
    // A split where a second rank would start: the byte the input's first byte points at.
    let cut = aligned_start(scratch, u64::from(data.first().copied().unwrap_or(0)) % (len + 1)).unwrap();
    assert!(cut <= len && (cut == 0 || cut == len || data[cut as usize - 1] == b'\n'), "cut {cut}");
    let (a, b) = (census(scratch, 0, cut).unwrap(), census(scratch, cut, len).unwrap());
    assert_eq!((a.rows + b.rows, a.lines + b.lines), (whole.rows, whole.lines));
    if parsed.is_ok() {
        let m = &rows.matrix;
        assert_eq!(rows.labels.len() as u64, whole.rows);
        assert_eq!(m.indptr.len(), rows.labels.len() + 1);
        assert!(m.indptr.windows(2).all(|w| w[0] <= w[1]) && *m.indptr.last().unwrap() == m.indices.len());
        assert!(m.indices.iter().all(|&j| (j as usize) < m.cols));
        let (mut first, mut second) = (Rows::default(), Rows::default());
        parse_range(scratch, (0, cut), 1, 0, u64::MAX, &mut first).unwrap();
        parse_range(scratch, (cut, len), 1 + a.lines, 0, u64::MAX, &mut second).unwrap();
        first.labels.extend(&second.labels);
        first.lines.extend(&second.lines);
        assert_eq!((first.labels.len(), &first.lines), (rows.labels.len(), &rows.lines));
    }
}

/// `config`: a config file (`--config FILE`) on arbitrary text: its lines become flags,
/// clap parses them, and the training's validation rules run on what parsed. Never a panic.
pub fn config(text: &str) {
    let Ok(flags) = config_flags(text, "fuzz.conf") else { return };
    let mut args: Vec<String> = vec!["qtrain".into(), "train".into()];
    args.extend(flags);
    args.extend(["--data", "data/none.svm", "--out", "none.h5"].map(String::from));
    if check_moved_flags(&args).is_err() {
        return;
    }
    if let Ok(Cli { command: Some(Command::Train(train)) }) = Cli::try_parse_from(&args) {
        let _ = crate::config::check_train(&train);
        let _ = build(&train.compressor, 64, train.seed);
        let _ = crate::spec::Spec::parse_method(&train.method);
    }
}

/// The dimensions the `wire` target builds its compressors for.
const WIRE_DIMS: [usize; 4] = [40, 100, 1000, 5000];

/// `wire`: every compressor's decoder (one example SPEC of each family) on arbitrary
/// messages: decode and count bits without a panic and without allocating what the
/// message merely claims; and what encode writes always decodes. Byte 0 picks the
/// compressor, byte 1 the dimension, the rest is the message.
pub fn wire(data: &[u8]) {
    let [pick, dim, msg @ ..] = data else { return };
    let spec = EXAMPLES[*pick as usize % EXAMPLES.len()];
    let d = WIRE_DIMS[*dim as usize % WIRE_DIMS.len()];
    let mut c = build(spec, d, 7).expect("every example SPEC builds at these dimensions");
    c.begin_round(&mut rng::shared(7, Purpose::SharedSupport));
    let mut acc = vec![0.0; d];
    let _ = c.decode_add(msg, 1.0, &mut acc);
    let _ = c.paper_bits(msg);
    // A vector from the message's bytes: its own encoding must decode.
    let x: Vec<f64> = (0..d).map(|i| f64::from(msg.get(i % msg.len().max(1)).copied().unwrap_or(0)) - 127.5).collect();
    let mut wire = Vec::new();
    c.encode(&x, &mut rng::private(7, 0, Purpose::Compressor), &mut wire);
    acc.fill(0.0);
    c.decode_add(&wire, 1.0, &mut acc).unwrap_or_else(|e| panic!("{spec}: its own message does not decode: {e}"));
    if let Some(s) = c.summable() {
        let values: Vec<f64> = msg.iter().take(s.values_per_worker()).map(|&b| f64::from(b)).collect();
        if values.len() == s.values_per_worker() {
            s.add_expanded(&values, 1.0, &mut acc);
        }
    }
}

/// A well-formed `wire` input: example SPEC `pick`'s message for a fixed vector at
/// d = 100 (the seed corpus's, `fuzz/examples/seeds.rs`, and the replay's fresh seeds).
pub fn wire_seed(pick: usize) -> Vec<u8> {
    let d = WIRE_DIMS[1];
    let mut c = build(EXAMPLES[pick], d, 7).expect("every example SPEC builds at d = 100");
    c.begin_round(&mut rng::shared(7, Purpose::SharedSupport));
    let x: Vec<f64> = (0..d).map(|j| ((j * 37 % 11) as f64 - 5.0) / 3.0).collect();
    let mut wire = Vec::new();
    c.encode(&x, &mut rng::private(7, 0, Purpose::Compressor), &mut wire);
    let mut input = vec![pick as u8, 1];
    input.extend(&wire);
    input
}

/// The entries of the `checkpoint` corpus's state files, in order.
struct State<'a> {
    round: u64,
    x: [f64; 8],
    pending: bool,
    support: Vec<u32>,
    counts: Vec<u64>,
    scale: f64,
    stream: Stream,
    rest: &'a [u8],
}

fn read_state(bytes: &[u8]) -> crate::error::Result<State<'_>> {
    let mut r = StateReader::new(bytes, "fuzz")?;
    let round = r.u64("round")?;
    let mut x = [0.0; 8];
    r.f64s_into("x", &mut x)?;
    let mut role = r.section("role")?;
    let pending = role.bool("pending")?;
    let support = role.u32s("support")?;
    let counts = role.u64s("counts")?;
    let scale = role.f64("scale")?;
    let mut stream = rng::private(7, 0, Purpose::Compressor);
    role.stream("stream", &mut stream)?;
    role.finish()?;
    let rest = r.bytes("rest")?;
    r.finish()?;
    Ok(State { round, x, pending, support, counts, scale, stream, rest })
}

fn write_state(s: &State) -> Vec<u8> {
    let mut w = StateWriter::new();
    w.u64("round", s.round);
    w.f64s("x", &s.x);
    w.section("role", |role| {
        role.bool("pending", s.pending);
        role.u32s("support", &s.support);
        role.u64s("counts", &s.counts);
        role.f64("scale", s.scale);
        role.stream("stream", &s.stream);
    });
    w.bytes("rest", s.rest);
    w.into_bytes()
}

/// `checkpoint`: a manifest (byte 0 even) or a state file (odd) read through the typed
/// entries every role's `load` uses. Never a panic, never an allocation for a count the
/// bytes cannot hold; a state that reads is exactly what the writer makes of the values
/// read (no two byte strings read as the same state).
pub fn checkpoint(data: &[u8]) {
    let [kind, body @ ..] = data else { return };
    if kind % 2 == 0 {
        if let Ok(m) = Manifest::parse(&String::from_utf8_lossy(body), Path::new("fuzz/MANIFEST")) {
            assert!(m.files.iter().all(|(name, ..)| !name.contains('/') && !name.contains("..")));
        }
    } else if let Ok(state) = read_state(body) {
        assert!(write_state(&state) == body, "a state that reads must be the writer's bytes for its values");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Mutations per corpus input: enough to reach every length field and branch of the
    /// small formats near their seeds, at a few seconds per CI pass.
    const MUTATIONS: usize = 2000;

    /// The committed seed corpus of a target (fuzz/corpus/<target>/).
    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let inputs: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
        assert!(!inputs.is_empty(), "{}: an empty seed corpus", dir.display());
        inputs
    }

    /// `seed` and MUTATIONS mutants of it, each one to four of libFuzzer's basic edits (a
    /// flipped bit, a random byte, an erased or inserted byte, a truncation) from `rng`.
    fn mutants(seed: &[u8], rng: &mut Stream) -> Vec<Vec<u8>> {
        let mut out = vec![seed.to_vec()];
        for _ in 0..MUTATIONS {
            let mut m = seed.to_vec();
            for _ in 0..rng.random_range(1..=4) {
                let at = rng.random_range(0..=m.len());
                match rng.random_range(0..5) {
                    0 if at < m.len() => m[at] ^= 1 << rng.random_range(0..8),
                    1 if at < m.len() => m[at] = rng.random(),
                    2 if at < m.len() => {
                        m.remove(at);
                    }
                    3 => m.insert(at, rng.random()),
                    _ => m.truncate(at),
                }
            }
            out.push(m);
        }
        out
    }

    fn replay(target: &str, extra_seeds: Vec<Vec<u8>>, check: impl Fn(&[u8])) {
        let mut rng = Stream::seed_from_u64(0x5eed);
        for seed in corpus(target).into_iter().chain(extra_seeds) {
            for input in mutants(&seed, &mut rng) {
                check(&input);
            }
        }
    }

    #[test]
    fn libsvm_corpus_and_mutants_keep_the_reader_properties() {
        let scratch = std::env::temp_dir().join(format!("qtrain-replay-libsvm-{}.svm", std::process::id()));
        replay("libsvm", Vec::new(), |input| libsvm(input, &scratch));
        let _ = std::fs::remove_file(scratch);
    }

    #[test]
    fn config_corpus_and_mutants_never_panic() {
        replay("config", Vec::new(), |input| config(&String::from_utf8_lossy(input)));
    }

    /// Besides the corpus, a fresh message of every example SPEC (so a compressor added
    /// after the corpus was written is replayed too).
    #[test]
    fn wire_corpus_and_mutants_decode_without_panics() {
        let fresh = (0..EXAMPLES.len()).map(wire_seed).collect();
        replay("wire", fresh, wire);
    }

    #[test]
    fn checkpoint_corpus_and_mutants_read_or_fail_cleanly() {
        replay("checkpoint", Vec::new(), checkpoint);
    }
}
