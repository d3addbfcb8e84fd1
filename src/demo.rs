//! The demo (`qtrain` without arguments): EF21 with Top-k on the embedded mushrooms
//! data (UCI agaricus in LIBSVM format, from the xgboost-sys 0.1.2 crate, Apache-2.0;
//! see data/README.md), with test accuracy and f − f*.
//!
//! The data are compiled into the binary, so the demo runs from any folder and on any
//! node: each rank writes its own temporary copy and reads its rows from it.

use crate::cli::{Cli, Command, DemoArgs};
use crate::comm::Comm;
use crate::error::{Error, Result};
use clap::Parser;
use std::path::{Path, PathBuf};

const TRAIN: &[u8] = include_bytes!("../data/agaricus.txt.train");
const TEST: &[u8] = include_bytes!("../data/agaricus.txt.test");

pub fn run(comm: &mut Comm, args: &DemoArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("qtrain-demo-{}", std::process::id()));
    let written = write_copy(&dir);
    comm.agree(written)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        PathBuf::from(format!("results/demo-{now}.h5"))
    });
    let (train, test) = (dir.join("agaricus.txt.train"), dir.join("agaricus.txt.test"));
    let argv = [
        "qtrain",
        "train",
        "--data",
        path_str(&train),
        "--test",
        path_str(&test),
        "--objective",
        "logistic",
        "--lambda",
        "0.1",
        "--method",
        "ef21",
        "--compressor",
        "top-k:k=12",
        "--iters",
        &args.iters.to_string(),
        "--fstar",
        "auto",
        "--out",
        path_str(&out),
    ];
    let parsed = Cli::try_parse_from(argv).map_err(|e| Error::config(e.to_string(), "report this as a bug"));
    let command = comm.agree(parsed)?.command;
    log::info!("demo: EF21 + top-k (k = 12) on the embedded mushrooms data, λ = 0.1, {} rounds", args.iters);
    let result = match command {
        Some(Command::Train(train_args)) => crate::train::run(comm, &train_args).map(|_| ()),
        _ => unreachable!("the demo builds a train command"),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn write_copy(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (name, bytes) in [("agaricus.txt.train", TRAIN), ("agaricus.txt.test", TEST)] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or("")
}
