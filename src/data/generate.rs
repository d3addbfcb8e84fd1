//! `qtrain generate`: a seeded synthetic LIBSVM data set for large-scale tests and
//! benchmarks (nothing on the reachable registries ships rcv1- or epsilon-sized data).
//!
//! Rows have `nnz` distinct features drawn from a Zipf(s) law over 1..=d, the shape of
//! text data: a few features are frequent, most are rare, so gradients have heavy
//! hitters (the regime Sketched-SGD targets, §C). Values are 1 before each row is
//! L2-normalised (as `spam_tfidf`). Labels come from a planted model: x_true has
//! Gaussian weights on the `planted` most frequent features, b = sign(aᵀx_true + 0.1ε)
//! with ε standard Gaussian noise (a small fraction of labels flip). Everything is
//! drawn from one ChaCha stream keyed by `--seed`, so a seed names a data set.

use crate::error::{Error, Result};
use crate::rng::{self, gaussian, Purpose};
use rand::Rng;
use std::io::{BufWriter, Write};
use std::path::Path;

#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub rows: usize,
    pub features: usize,
    pub nnz: usize,
    /// Zipf exponent s > 0.
    pub zipf: f64,
    pub planted: usize,
    pub seed: u64,
}

pub fn generate(shape: Shape, out: &Path, force: bool) -> Result<()> {
    check(&shape)?;
    if out.exists() && !force {
        return Err(Error::OutputExists { path: out.to_path_buf() });
    }
    let mut rng = rng::shared(shape.seed, Purpose::Generator);
    let cdf = zipf_cdf(shape.features, shape.zipf);
    let truth: Vec<f64> = (0..shape.planted).map(|_| gaussian(&mut rng)).collect();
    let partial = crate::metrics::hdf5_file::partial_path(out);
    let file = std::fs::File::create(&partial).map_err(|e| Error::io(&partial, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut row: Vec<usize> = Vec::with_capacity(shape.nnz);
    let scale = 1.0 / (shape.nnz as f64).sqrt();
    for _ in 0..shape.rows {
        row.clear();
        while row.len() < shape.nnz {
            let u: f64 = rng.random();
            let j = cdf.partition_point(|&c| c < u).min(shape.features - 1);
            if !row.contains(&j) {
                row.push(j);
            }
        }
        row.sort_unstable();
        let margin: f64 = row.iter().filter(|&&j| j < shape.planted).map(|&j| truth[j] * scale).sum();
        let label = if margin + 0.1 * gaussian(&mut rng) >= 0.0 { 1 } else { -1 };
        let mut line = format!("{label:+}");
        for &j in &row {
            line.push_str(&format!(" {}:{scale:.9}", j + 1));
        }
        line.push('\n');
        w.write_all(line.as_bytes()).map_err(|e| Error::io(&partial, e))?;
    }
    w.flush().map_err(|e| Error::io(&partial, e))?;
    drop(w);
    std::fs::rename(&partial, out).map_err(|e| Error::io(out, e))
}

fn check(s: &Shape) -> Result<()> {
    if s.rows == 0 || s.features == 0 || s.nnz == 0 || s.nnz > s.features {
        return Err(Error::config(
            format!("{} rows × {} features with {} nonzeros per row", s.rows, s.features, s.nnz),
            "give rows ≥ 1 and 1 ≤ nnz ≤ features",
        ));
    }
    if !(s.zipf > 0.0 && s.zipf.is_finite()) || s.planted == 0 || s.planted > s.features {
        return Err(Error::config(
            format!("--zipf {} with --planted {}", s.zipf, s.planted),
            "give a Zipf exponent > 0 and 1 ≤ planted ≤ features",
        ));
    }
    Ok(())
}

/// Cumulative probabilities of Zipf(s) over ranks 1..=d (the last entry is 1).
fn zipf_cdf(d: usize, s: f64) -> Vec<f64> {
    let mut cdf: Vec<f64> = Vec::with_capacity(d);
    let mut total = 0.0;
    for rank in 1..=d {
        total += (rank as f64).powf(-s);
        cdf.push(total);
    }
    cdf.iter_mut().for_each(|c| *c /= total);
    cdf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_file_and_valid_libsvm() {
        let dir = crate::testing::TempDir::new("gen");
        let shape = Shape { rows: 50, features: 1000, nnz: 7, zipf: 1.1, planted: 20, seed: 3 };
        let (a, b) = (dir.join("a.svm"), dir.join("b.svm"));
        generate(shape, &a, false).unwrap();
        generate(shape, &b, false).unwrap();
        let text = std::fs::read_to_string(&a).unwrap();
        assert_eq!(text, std::fs::read_to_string(&b).unwrap());
        assert!(generate(shape, &a, false).is_err(), "no overwrite without --force");
        let mut m = crate::data::Csr::empty(0);
        for line in text.lines() {
            let label = crate::data::libsvm::parse_line(line, &mut m).unwrap();
            assert!(label == 1.0 || label == -1.0);
        }
        assert_eq!(m.rows(), 50);
        assert_eq!(m.nnz(), 350);
        // Rows are unit vectors.
        let (_, v) = m.row(0);
        assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-8);
    }

    #[test]
    fn zipf_cdf_is_increasing_and_front_loaded() {
        let cdf = zipf_cdf(1000, 1.1);
        assert!(cdf.windows(2).all(|w| w[0] < w[1]));
        assert!((cdf[999] - 1.0).abs() < 1e-12);
        assert!(cdf[9] > 0.3, "the ten most frequent features carry a large share: {}", cdf[9]);
    }
}
