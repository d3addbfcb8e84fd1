//! Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/ (committed):
//! well-formed inputs made by qtrain's own writers, so that the fuzzers start from the
//! formats' real shapes. `cargo run --manifest-path fuzz/Cargo.toml --example seeds`.
use qtrain::checkpoint::StateWriter;
use qtrain::compress::EXAMPLES;
use qtrain::rng::{self, Purpose};
use std::path::Path;

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let agaricus = std::fs::read_to_string(root.join("data/agaricus.txt.train")).unwrap();
    let head: String = agaricus.lines().take(12).map(|l| format!("{l}\n")).collect();
    put("libsvm", "agaricus-head", head.as_bytes());
    put("libsvm", "messy", b"# comment\n\n+1 1:0.5 3:-2e-3 \r\n-1\t2:1\n0 # no features\n2 7:1e300\n");
    put("libsvm", "bad-index", b"1 0:1\n1 3:1 2:1\n1 x:1\n");
    put("config", "run", b"# a run\nmethod = ef21\ncompressor = \"top-k:k=5\"\niters = 10\nforce = true\n");
    put("config", "keys", b"method = scalecom:beta=0.5,warmup=10\ncompressor = clt-k:k=12\nbatch = 64\nresume = auto\ncheckpoint_dir = cp\n");
    for (i, spec) in EXAMPLES.iter().enumerate() {
        put("wire", &spec.replace([':', '=', ','], "_"), &qtrain::fuzzing::wire_seed(i));
    }
    let mut stream = rng::private(7, 0, Purpose::Compressor);
    rand::RngCore::next_u64(&mut stream);
    let mut w = StateWriter::new();
    w.u64("round", 40);
    w.f64s("x", &[0.5, -1.0, 0.0, 2.5, 1e-300, -0.0, 3.0, 4.0]);
    w.section("role", |role| {
        role.bool("pending", true);
        role.u32s("support", &[1, 5, 9]);
        role.u64s("counts", &[3, 0, 7]);
        role.f64("scale", 0.25);
        role.stream("stream", &stream);
    });
    w.bytes("rest", b"tail");
    let mut state = vec![1u8];
    state.extend(w.into_bytes());
    put("checkpoint", "state", &state);
    let manifest = "qtrain checkpoint 1\nround 40\nranks 2\nkey method ef21\nkey seed 7\n\
                    file common.bin 120 0f0e 0\nfile part-0.bin 64 a1b2 0,1\nend\n";
    put("checkpoint", "manifest", format!("\0{manifest}").as_bytes());
}
