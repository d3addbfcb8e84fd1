//! Every compressor's wire decoder on arbitrary messages (`qtrain::fuzzing::wire`: byte 0
//! picks the compressor, byte 1 the dimension; what encode writes always decodes).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qtrain::fuzzing::wire(data));
