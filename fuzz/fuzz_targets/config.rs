//! A config file (`--config FILE`) on arbitrary text: its lines become flags, clap parses
//! them, and the training's validation rules run on what parsed. Never a panic.
#![no_main]
use clap::Parser;
use libfuzzer_sys::fuzz_target;
use qtrain::cli::{check_moved_flags, config_flags, Cli, Command};

fuzz_target!(|text: &str| {
    let Ok(flags) = config_flags(text, "fuzz.conf") else { return };
    let mut args: Vec<String> = vec!["qtrain".into(), "train".into()];
    args.extend(flags);
    args.extend(["--data", "data/none.svm", "--out", "none.h5"].map(String::from));
    if check_moved_flags(&args).is_err() {
        return;
    }
    if let Ok(Cli { command: Some(Command::Train(train)) }) = Cli::try_parse_from(&args) {
        let _ = qtrain::config::check_train(&train);
        let _ = qtrain::compress::build(&train.compressor, 64, train.seed);
        let _ = qtrain::spec::Spec::parse_method(&train.method);
    }
});
