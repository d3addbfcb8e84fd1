//! The checkpoint reader on arbitrary bytes (`qtrain::fuzzing::checkpoint`: a manifest
//! or a state file; a state that reads is the writer's bytes for the values read).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qtrain::fuzzing::checkpoint(data));
