//! Logging: env_logger with the rank in every line. Rank 0 logs at `info` (progress,
//! set-up facts); other ranks at `warn`, so a 16-rank job prints one progress stream.
//! `RUST_LOG` overrides both.

use std::io::Write;

pub fn init(rank: usize) {
    let default = if rank == 0 { "info" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(move |buf, record| {
            writeln!(buf, "[{} rank {rank}] {}", record.level().as_str().to_lowercase(), record.args())
        })
        .init();
}
