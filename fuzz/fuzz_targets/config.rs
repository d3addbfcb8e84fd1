//! A config file (`--config FILE`) on arbitrary text (`qtrain::fuzzing::config`: its
//! flags go through clap and the training's validation rules). Never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| qtrain::fuzzing::config(text));
