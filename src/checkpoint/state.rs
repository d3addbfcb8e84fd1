//! The state of a run as bytes: what every role, stream and counter needs to continue a
//! run bit for bit (issue: checkpoint and bitwise resume).
//!
//! A state is a sequence of named, typed entries, read back in the order they were
//! written; a reader that expects another entry, kind or length fails with a message that
//! names both. Every length field is checked against the bytes that remain before
//! anything is allocated, so a corrupt or hostile file is an error, never a panic or a
//! huge allocation (`fuzz/` feeds it random bytes).
//!
//! Layout (little-endian): the magic `qtrainst`, a u32 version, then per entry: a u16 name
//! length and the name (UTF-8), a u8 kind, a u64 count, and count values of the kind's
//! size (u64 and f64: 8 bytes; u32: 4; bytes: 1; a random stream: 32 + 8 + 16 bytes —
//! its seed, stream number and word position).

use crate::error::{Error, Result};
use crate::rng::Stream;

const MAGIC: &[u8; 8] = b"qtrainst";
const VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    U64 = 1,
    F64 = 2,
    U32 = 3,
    Bytes = 4,
    Stream = 5,
}

impl Kind {
    fn size(self) -> usize {
        match self {
            Kind::U64 | Kind::F64 => 8,
            Kind::U32 => 4,
            Kind::Bytes => 1,
            Kind::Stream => STREAM_BYTES,
        }
    }

    fn from_code(code: u8) -> Option<Kind> {
        [Kind::U64, Kind::F64, Kind::U32, Kind::Bytes, Kind::Stream].into_iter().find(|k| *k as u8 == code)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::U64 => "u64",
            Kind::F64 => "f64",
            Kind::U32 => "u32",
            Kind::Bytes => "bytes",
            Kind::Stream => "random stream",
        }
    }
}

const STREAM_BYTES: usize = 32 + 8 + 16;

/// Builds a state.
#[derive(Default)]
pub struct StateWriter {
    bytes: Vec<u8>,
}

impl StateWriter {
    pub fn new() -> Self {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        StateWriter { bytes }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn header(&mut self, name: &str, kind: Kind, count: usize) {
        let name = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
        self.bytes.extend_from_slice(&(name.len() as u16).to_le_bytes());
        self.bytes.extend_from_slice(name);
        self.bytes.push(kind as u8);
        self.bytes.extend_from_slice(&(count as u64).to_le_bytes());
    }

    pub fn u64(&mut self, name: &str, v: u64) {
        self.u64s(name, &[v]);
    }

    pub fn bool(&mut self, name: &str, v: bool) {
        self.u64(name, u64::from(v));
    }

    pub fn u64s(&mut self, name: &str, v: &[u64]) {
        self.header(name, Kind::U64, v.len());
        v.iter().for_each(|x| self.bytes.extend_from_slice(&x.to_le_bytes()));
    }

    pub fn f64(&mut self, name: &str, v: f64) {
        self.f64s(name, &[v]);
    }

    pub fn f64s(&mut self, name: &str, v: &[f64]) {
        self.header(name, Kind::F64, v.len());
        v.iter().for_each(|x| self.bytes.extend_from_slice(&x.to_le_bytes()));
    }

    pub fn u32s(&mut self, name: &str, v: &[u32]) {
        self.header(name, Kind::U32, v.len());
        v.iter().for_each(|x| self.bytes.extend_from_slice(&x.to_le_bytes()));
    }

    pub fn bytes(&mut self, name: &str, v: &[u8]) {
        self.header(name, Kind::Bytes, v.len());
        self.bytes.extend_from_slice(v);
    }

    /// A random stream's position: its key, stream number and word position (ChaCha8).
    pub fn stream(&mut self, name: &str, s: &Stream) {
        self.header(name, Kind::Stream, 1);
        self.bytes.extend_from_slice(&s.get_seed());
        self.bytes.extend_from_slice(&s.get_stream().to_le_bytes());
        self.bytes.extend_from_slice(&s.get_word_pos().to_le_bytes());
    }

    /// A nested state (a role's), as one entry.
    pub fn section(&mut self, name: &str, fill: impl FnOnce(&mut StateWriter)) {
        let mut inner = StateWriter::new();
        fill(&mut inner);
        self.bytes(name, &inner.bytes);
    }
}

/// Reads a state back, entry by entry, in the order it was written.
#[derive(Debug)]
pub struct StateReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// What the state is (a file, a section), for error messages.
    source: String,
}

impl<'a> StateReader<'a> {
    /// Checks the magic and the version.
    pub fn new(bytes: &'a [u8], source: impl Into<String>) -> Result<Self> {
        let mut r = StateReader { bytes, pos: 0, source: source.into() };
        let head = r.take(MAGIC.len() + 4).map_err(|_| r.error("not a qtrain state (too short)".into()))?;
        if &head[..8] != MAGIC {
            return Err(r.error("not a qtrain state (wrong magic bytes)".into()));
        }
        let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(r.error(format!("state format version {version}, this qtrain reads version {VERSION}")));
        }
        Ok(r)
    }

    fn error(&self, what: String) -> Error {
        Error::Checkpoint { what: format!("{}: {what}", self.source) }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            self.error(format!("truncated: {n} more bytes needed at offset {}, {} there", self.pos, self.bytes.len()))
        })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next entry's header, which must be `name` of `kind`; returns its count.
    fn expect(&mut self, name: &str, kind: Kind) -> Result<usize> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        let found = String::from_utf8_lossy(self.take(len)?).into_owned();
        let code = self.take(1)?[0];
        let count = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        let found_kind = Kind::from_code(code);
        if found != name || found_kind != Some(kind) {
            let what = found_kind.map_or_else(|| format!("kind {code}"), |k| k.name().to_string());
            return Err(self.error(format!("expected entry '{name}' ({}), found '{found}' ({what})", kind.name())));
        }
        // The values must be there before anything is allocated for them.
        let remaining = (self.bytes.len() - self.pos) as u64;
        match count.checked_mul(kind.size() as u64) {
            Some(bytes) if bytes <= remaining => Ok(count as usize),
            _ => Err(self.error(format!("entry '{name}' claims {count} values, more than the {remaining} bytes left"))),
        }
    }

    fn values(&mut self, name: &str, kind: Kind) -> Result<&'a [u8]> {
        let count = self.expect(name, kind)?;
        self.take(count * kind.size())
    }

    /// A single value: `count` must be 1.
    fn one(&mut self, name: &str, kind: Kind) -> Result<[u8; 8]> {
        let v = self.values(name, kind)?;
        v.try_into().map_err(|_| self.error(format!("entry '{name}' holds {} values, expected 1", v.len() / 8)))
    }

    pub fn u64(&mut self, name: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.one(name, Kind::U64)?))
    }

    pub fn bool(&mut self, name: &str) -> Result<bool> {
        match self.u64(name)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.error(format!("entry '{name}' is {v}, expected 0 or 1"))),
        }
    }

    pub fn u64s(&mut self, name: &str) -> Result<Vec<u64>> {
        let v = self.values(name, Kind::U64)?;
        Ok(v.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect())
    }

    pub fn f64(&mut self, name: &str) -> Result<f64> {
        Ok(f64::from_le_bytes(self.one(name, Kind::F64)?))
    }

    /// An f64 array of exactly `out.len()` values, into `out` (the buffer a role owns).
    pub fn f64s_into(&mut self, name: &str, out: &mut [f64]) -> Result<()> {
        let v = self.values(name, Kind::F64)?;
        if v.len() != 8 * out.len() {
            return Err(self.error(format!("entry '{name}' holds {} values, expected {}", v.len() / 8, out.len())));
        }
        out.iter_mut().zip(v.chunks_exact(8)).for_each(|(o, b)| *o = f64::from_le_bytes(b.try_into().expect("8")));
        Ok(())
    }

    pub fn u32s(&mut self, name: &str) -> Result<Vec<u32>> {
        let v = self.values(name, Kind::U32)?;
        Ok(v.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).collect())
    }

    pub fn bytes(&mut self, name: &str) -> Result<&'a [u8]> {
        self.values(name, Kind::Bytes)
    }

    /// Restores a random stream's position; the stream must have the same key and stream
    /// number (it was built from the same seed and purpose).
    pub fn stream(&mut self, name: &str, s: &mut Stream) -> Result<()> {
        let count = self.expect(name, Kind::Stream)?;
        if count != 1 {
            return Err(self.error(format!("entry '{name}' holds {count} streams, expected 1")));
        }
        let v = self.take(STREAM_BYTES)?;
        let (seed, rest) = v.split_at(32);
        let stream = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
        let word_pos = u128::from_le_bytes(rest[8..].try_into().expect("16 bytes"));
        // ChaCha's word position has 68 bits; set_word_pos would silently wrap a larger
        // one to another position (found by the checkpoint fuzz target).
        if word_pos >> 68 != 0 {
            return Err(
                self.error(format!("random stream '{name}' has word position {word_pos}, beyond ChaCha's 2^68"))
            );
        }
        if seed != s.get_seed() || stream != s.get_stream() {
            return Err(self.error(format!(
                "random stream '{name}' comes from another seed or worker (stream {stream}, expected {})",
                s.get_stream()
            )));
        }
        s.set_word_pos(word_pos);
        Ok(())
    }

    /// A nested state written by `StateWriter::section`.
    pub fn section(&mut self, name: &str) -> Result<StateReader<'a>> {
        let bytes = self.bytes(name)?;
        StateReader::new(bytes, format!("{} › {name}", self.source))
    }

    /// Fails unless every entry was read.
    pub fn finish(self) -> Result<()> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(self.error(format!("{} bytes of entries nobody read", self.bytes.len() - self.pos)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{self, Purpose};
    use rand::Rng;

    fn sample() -> (Vec<u8>, Stream) {
        let mut stream = rng::private(3, 2, Purpose::Compressor);
        let _: u64 = stream.random();
        let mut w = StateWriter::new();
        w.u64("round", 7);
        w.bool("pending", true);
        w.f64s("g", &[0.5, -1.0 / 3.0, f64::MIN_POSITIVE]);
        w.u32s("support", &[1, 5]);
        w.stream("coins", &stream);
        w.section("server", |s| s.f64("gamma", 0.25));
        (w.into_bytes(), stream)
    }

    /// Every kind comes back bit for bit, and a restored stream continues where it was.
    #[test]
    fn states_round_trip() {
        let (bytes, mut original) = sample();
        let mut r = StateReader::new(&bytes, "test").unwrap();
        assert_eq!(r.u64("round").unwrap(), 7);
        assert!(r.bool("pending").unwrap());
        let mut g = [0.0; 3];
        r.f64s_into("g", &mut g).unwrap();
        assert_eq!(g, [0.5, -1.0 / 3.0, f64::MIN_POSITIVE]);
        assert_eq!(r.u32s("support").unwrap(), [1, 5]);
        let mut restored = rng::private(3, 2, Purpose::Compressor);
        r.stream("coins", &mut restored).unwrap();
        assert_eq!(restored.random::<u64>(), original.random::<u64>());
        let mut server = r.section("server").unwrap();
        assert_eq!(server.f64("gamma").unwrap(), 0.25);
        server.finish().unwrap();
        r.finish().unwrap();
    }

    /// A reader that expects something else names what it expected and what it found.
    #[test]
    fn mismatches_name_both_entries() {
        let (bytes, _) = sample();
        let mut r = StateReader::new(&bytes, "part-1.bin").unwrap();
        let e = r.f64("round").unwrap_err().to_string();
        assert!(e.contains("part-1.bin") && e.contains("expected entry 'round' (f64), found 'round' (u64)"), "{e}");
        let mut r = StateReader::new(&bytes, "x").unwrap();
        r.u64("round").unwrap();
        r.bool("pending").unwrap();
        let e = r.f64s_into("g", &mut [0.0; 2]).unwrap_err().to_string();
        assert!(e.contains("holds 3 values, expected 2"), "{e}");
        let mut other = rng::private(3, 9, Purpose::Compressor);
        let mut r = StateReader::new(&bytes, "x").unwrap();
        let _ = (r.u64("round"), r.bool("pending"), r.f64s_into("g", &mut [0.0; 3]), r.u32s("support"));
        assert!(r.stream("coins", &mut other).unwrap_err().to_string().contains("another seed or worker"));
    }

    /// Truncations, a wrong magic, and counts larger than the file are errors, never
    /// panics or allocations.
    #[test]
    fn corrupt_states_are_errors() {
        let (bytes, _) = sample();
        for len in 0..bytes.len() {
            let read = |b: &[u8]| -> Result<()> {
                let mut r = StateReader::new(b, "x")?;
                r.u64("round")?;
                r.bool("pending")?;
                r.f64s_into("g", &mut [0.0; 3])?;
                r.u32s("support")?;
                r.stream("coins", &mut rng::private(3, 2, Purpose::Compressor))?;
                r.section("server")?.f64("gamma")?;
                r.finish()
            };
            assert!(read(&bytes[..len]).is_err(), "prefix of {len} bytes accepted");
        }
        let mut huge = StateWriter::new();
        huge.header("g", Kind::F64, 0);
        let mut bytes = huge.into_bytes();
        let at = bytes.len() - 8;
        bytes[at..].copy_from_slice(&(1u64 << 60).to_le_bytes());
        let e = StateReader::new(&bytes, "x").unwrap().f64s_into("g", &mut []).unwrap_err().to_string();
        assert!(e.contains("claims 1152921504606846976 values"), "{e}");
        assert!(StateReader::new(b"qtrainsX\x01\0\0\0", "x").is_err());
        assert!(StateReader::new(b"qtrainst\x02\0\0\0", "x").unwrap_err().to_string().contains("version 2"));
    }

    /// A word position beyond ChaCha's 68 bits would wrap to another position: an error
    /// (the checkpoint fuzz target found it as two byte strings reading as one state).
    #[test]
    fn stream_positions_beyond_68_bits_are_errors() {
        let (mut bytes, _) = sample();
        let name = bytes.windows(5).position(|w| w == b"coins").unwrap();
        let word_pos = name + 5 + 1 + 8 + 32 + 8;
        bytes[word_pos + 15] = 0x80;
        let mut r = StateReader::new(&bytes, "x").unwrap();
        let _ = (r.u64("round"), r.bool("pending"), r.f64s_into("g", &mut [0.0; 3]), r.u32s("support"));
        let e = r.stream("coins", &mut rng::private(3, 2, Purpose::Compressor)).unwrap_err().to_string();
        assert!(e.contains("beyond ChaCha's 2^68"), "{e}");
    }
}
