//! The LIBSVM reader on arbitrary bytes (`qtrain::fuzzing::libsvm`: a file split where a
//! second rank starts reads as the whole; the CSR is well formed). Never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scratch = std::env::temp_dir().join(format!("qtrain-fuzz-libsvm-{}.svm", std::process::id()));
    qtrain::fuzzing::libsvm(data, &scratch);
});
