//! The checkpoint reader on arbitrary bytes: a manifest (byte 0 even) or a state file
//! (odd) read through the typed entries every role's `load` uses. Never a panic, never
//! an allocation for a count the bytes cannot hold; a state that reads is exactly what
//! the writer makes of the values read (no two byte strings read as the same state).
#![no_main]
use libfuzzer_sys::fuzz_target;
use qtrain::checkpoint::{Manifest, StateReader, StateWriter};
use qtrain::rng::{self, Purpose, Stream};
use std::path::Path;

/// The entries of the corpus's state files (fuzz/corpus/checkpoint), in order.
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

fn read(bytes: &[u8]) -> qtrain::error::Result<State<'_>> {
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

fn write(s: &State) -> Vec<u8> {
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

fuzz_target!(|data: &[u8]| {
    let [kind, body @ ..] = data else { return };
    if kind % 2 == 0 {
        if let Ok(m) = Manifest::parse(&String::from_utf8_lossy(body), Path::new("fuzz/MANIFEST")) {
            assert!(m.files.iter().all(|(name, ..)| !name.contains('/') && !name.contains("..")));
        }
    } else if let Ok(state) = read(body) {
        assert!(write(&state) == body, "a state that reads must be the writer's bytes for its values");
    }
});
