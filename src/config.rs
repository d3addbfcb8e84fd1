//! Validated configuration: every rule a parameter must satisfy, checked once before
//! anything runs (the rules that need the data, such as k ≤ d, are checked by the
//! compressor factory once d is known).

use crate::cli::{DataArgs, TrainArgs};
use crate::error::{Error, Result};
use std::path::Path;

/// Number of logical workers: `--workers` or one per rank; must be a multiple of ranks.
pub fn workers(args: &DataArgs, ranks: usize, data_free: usize) -> Result<usize> {
    if ranks <= data_free {
        return Err(Error::config(
            format!("the asynchronous execution on {ranks} MPI rank{}", if ranks == 1 { "" } else { "s" }),
            "rank 0 is the parameter server and the other ranks are the workers: launch at least 2 ranks \
             (mpirun -n 4 …), or drop async for the synchronous execution",
        ));
    }
    let data_ranks = ranks - data_free;
    let w = args.workers.unwrap_or(data_ranks);
    if w == 0 || !w.is_multiple_of(data_ranks) {
        let (what, of) = match data_free {
            0 => (format!("--workers {w} with {ranks} MPI ranks"), "the rank count".to_string()),
            _ => (
                format!("--workers {w} with {data_ranks} worker ranks (rank 0 is the asynchronous server)"),
                "the worker ranks' count".to_string(),
            ),
        };
        return Err(Error::config(
            what,
            format!("--workers must be a positive multiple of {of}, e.g. {data_ranks} or {}", 2 * data_ranks),
        ));
    }
    if args.features == Some(0) {
        return Err(Error::config("--features 0", "the dimension d must be at least 1"));
    }
    Ok(w)
}

/// `--straggler RANK:FACTOR` names a rank of the run.
pub fn straggler(s: crate::cli::Straggler, ranks: usize) -> Result<()> {
    if s.rank < ranks {
        return Ok(());
    }
    Err(Error::config(
        format!("--straggler {}:{} with {ranks} MPI ranks", s.rank, s.factor),
        format!("name a rank from 0 to {}", ranks - 1),
    ))
}

pub fn lambda(lambda: f64) -> Result<f64> {
    if !(lambda.is_finite() && lambda >= 0.0) {
        return Err(Error::config(format!("--lambda {lambda}"), "λ must be a finite number ≥ 0"));
    }
    Ok(lambda)
}

/// The value of `--fstar`: a number, or `auto` (compute it first).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fstar {
    Unknown,
    Given(f64),
    Auto,
}

/// Checks the training flags that do not depend on the data.
pub fn check_train(args: &TrainArgs) -> Result<Fstar> {
    lambda(args.objective.lambda)?;
    if let Some(step) = args.step {
        if !(step.is_finite() && step > 0.0) {
            return Err(Error::config(format!("--step {step}"), "the step size must be a positive number"));
        }
    }
    if !(args.step_factor.is_finite() && args.step_factor > 0.0) {
        return Err(Error::config(
            format!("--step-factor {}", args.step_factor),
            "the factor must be a positive number",
        ));
    }
    for (flag, value) in [("--log-every", args.log_every), ("--test-every", args.test_every)] {
        if value == Some(0) {
            return Err(Error::config(format!("{flag} 0"), format!("{flag} counts rounds: give 1 or more")));
        }
    }
    if let Some(tol) = args.tol {
        if tol.is_nan() || tol < 0.0 {
            return Err(Error::config(format!("--tol {tol}"), "the tolerance must be ≥ 0"));
        }
    }
    check_out_path(&args.out)?;
    if (args.checkpoint_every.is_some() || args.resume.is_some()) && args.checkpoint_dir.is_none() {
        return Err(Error::config(
            "--checkpoint-every or --resume without --checkpoint-dir",
            "give --checkpoint-dir DIR, a folder every rank can reach",
        ));
    }
    if args.checkpoint_every == Some(0) {
        return Err(Error::config("--checkpoint-every 0", "--checkpoint-every counts rounds: give 1 or more"));
    }
    if args.checkpoint_keep == 0 {
        return Err(Error::config("--checkpoint-keep 0", "keep at least the newest checkpoint: give 1 or more"));
    }
    match args.fstar.as_deref() {
        None => Ok(Fstar::Unknown),
        Some("auto") => Ok(Fstar::Auto),
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Fstar::Given)
            .ok_or_else(|| Error::config(format!("--fstar {text}"), "give a number (the optimal value) or 'auto'")),
    }
}

fn check_out_path(out: &Path) -> Result<()> {
    if out.as_os_str().is_empty() || out.is_dir() {
        return Err(Error::config(
            format!("--out '{}' is not a file name", out.display()),
            "give a file name such as results/run.h5",
        ));
    }
    Ok(())
}

/// Reads `--x0 FILE`: one value per line (blank lines and # comments allowed).
pub fn read_x0(path: &Path, dim: usize) -> Result<Vec<f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, format!("cannot read --x0: {e}")))?;
    let mut x = Vec::with_capacity(dim);
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let v = line.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| Error::Parse {
            path: path.to_path_buf(),
            line: n as u64 + 1,
            what: format!("'{line}' is not a finite number"),
            fix: "--x0 files hold one number per line".into(),
        })?;
        x.push(v);
    }
    if x.len() != dim {
        return Err(Error::config(
            format!("{} holds {} values but the model has d = {dim}", path.display(), x.len()),
            "give one value per feature (see qtrain solve --out for the format)",
        ));
    }
    Ok(x)
}

/// Writes a vector as text, one value per line, with full round-trip precision.
pub fn write_vector_text(path: &Path, x: &[f64], force: bool) -> Result<()> {
    if path.exists() && !force {
        return Err(Error::OutputExists { path: path.to_path_buf() });
    }
    let mut text = String::with_capacity(x.len() * 24);
    for v in x {
        text.push_str(&format!("{v:e}\n"));
    }
    let partial = crate::metrics::hdf5_file::partial_path(path);
    std::fs::write(&partial, text).map_err(|e| Error::io(&partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(workers: Option<usize>) -> DataArgs {
        DataArgs {
            data: "x".into(),
            features: None,
            workers,
            split: crate::data::SplitRule::Balanced,
            weighting: crate::worker::Weighting::Samples,
            bias: false,
        }
    }

    #[test]
    fn workers_must_be_a_multiple_of_ranks() {
        assert_eq!(workers(&data(None), 4, 0).unwrap(), 4);
        assert_eq!(workers(&data(Some(8)), 4, 0).unwrap(), 8);
        let e = workers(&data(Some(6)), 4, 0).unwrap_err().to_string();
        assert!(e.contains("--workers 6 with 4 MPI ranks"), "{e}");
        assert!(workers(&data(Some(0)), 1, 0).is_err());
    }

    /// The asynchronous execution's data-free server: the workers divide over the others.
    #[test]
    fn a_data_free_server_rank_leaves_the_workers_to_the_others() {
        assert_eq!(workers(&data(None), 4, 1).unwrap(), 3);
        assert_eq!(workers(&data(Some(6)), 4, 1).unwrap(), 6);
        let e = workers(&data(Some(4)), 4, 1).unwrap_err().to_string();
        assert!(e.contains("--workers 4 with 3 worker ranks"), "{e}");
        let e = workers(&data(None), 1, 1).unwrap_err().to_string();
        assert!(e.contains("on 1 MPI rank") && e.contains("at least 2 ranks"), "{e}");
    }

    #[test]
    fn lambda_must_be_non_negative() {
        assert!(lambda(-1.0).is_err());
        assert!(lambda(f64::NAN).is_err());
        assert_eq!(lambda(0.0).unwrap(), 0.0);
    }

    #[test]
    fn x0_round_trips_through_text() {
        let dir = crate::testing::TempDir::new("x0");
        let path = dir.join("x0.txt");
        let x = vec![0.1, -2.5e-300, 1.0 / 3.0];
        write_vector_text(&path, &x, false).unwrap();
        assert_eq!(read_x0(&path, 3).unwrap(), x);
        assert!(write_vector_text(&path, &x, false).is_err());
        assert!(read_x0(&path, 4).is_err());
        std::fs::write(&path, "1\nx\n").unwrap();
        assert!(read_x0(&path, 2).unwrap_err().to_string().contains(":2:"));
    }
}
