//! Every compressor's wire decoder (one example SPEC of each family, `qtrain compressors
//! --examples`) on arbitrary messages: decode and count bits without a panic and without
//! allocating what the message merely claims. And what encode writes always decodes.
//! Input: byte 0 picks the compressor, byte 1 the dimension, the rest is the message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use qtrain::compress::{build, EXAMPLES};
use qtrain::rng::{self, Purpose};

const DIMS: [usize; 4] = [40, 100, 1000, 5000];

fuzz_target!(|data: &[u8]| {
    let [pick, dim, msg @ ..] = data else { return };
    let spec = EXAMPLES[*pick as usize % EXAMPLES.len()];
    let d = DIMS[*dim as usize % DIMS.len()];
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
});
