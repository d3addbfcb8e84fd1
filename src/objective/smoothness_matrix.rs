//! Per-worker smoothness matrices (ALGORITHMS.md §A.1, §A.3): f_i(x) ≤ f_i(y) +
//! ⟨∇f_i(y), x − y⟩ + ½‖x − y‖²_{L_i} with L_i = c·A_iᵀA_i/m_i + L_R·I (c = sup φ'', ¼ for
//! the logistic loss; L_R the regulariser's constant, λ for ridge), and the factors the
//! smoothness-aware methods whiten and de-whiten with: L_i^{1/2} and L_i^{†1/2}.
//!
//! Two shapes (`--smoothness-matrix`):
//! * **dense**: L_i itself, d×d, factored by a symmetric eigendecomposition (faer) once per
//!   worker at set-up. Memory 8d² bytes per factor; refused above `--matrix-memory`.
//! * **diagonal**: D_i = diag(c/m_i Σ_r ‖a_r‖₀ a_rj² + L_R) ⪰ L_i, by Cauchy–Schwarz
//!   ((a_rᵀv)² ≤ ‖a_r‖₀ Σ_j a_rj² v_j² for every row r). O(d) memory and time; f_i is
//!   D_i-smooth, so every guarantee of §A.3 holds with D_i in place of L_i, at a larger L̃
//!   (the bound is loose by at most the largest row's nonzero count).
//!
//! Both factors are exactly symmetric (the dense ones are symmetrised after the
//! product), so the packed upper triangle a worker ships at t = 0 is the matrix its server
//! de-whitens with, bit for bit.

use super::Objective;
use crate::comm::Comm;
use crate::data::Csr;
use crate::error::{Error, Result};
use crate::worker::Worker;
use faer::{Mat, Side};
use std::sync::Arc;
use std::time::Instant;

/// Eigenvalues below this fraction of the largest are treated as zero in L^{†1/2} (the
/// pseudo-inverse of §A.3 for λ = 0).
const RANK_TOLERANCE: f64 = 1e-12;

/// `--smoothness-matrix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// L_i itself (d×d per worker).
    Dense,
    /// A diagonal D_i ⪰ L_i (d per worker).
    Diagonal,
}

/// A symmetric factor: a dense row-major d×d matrix or a diagonal.
#[derive(Clone, Debug, PartialEq)]
pub enum Factor {
    Dense { d: usize, entries: Vec<f64> },
    Diagonal(Vec<f64>),
}

impl Factor {
    pub fn dim(&self) -> usize {
        match self {
            Factor::Dense { d, .. } => *d,
            Factor::Diagonal(v) => v.len(),
        }
    }

    /// out = F·v.
    pub fn apply(&self, v: &[f64], out: &mut [f64]) {
        out.fill(0.0);
        self.apply_add(v, 1.0, out);
    }

    /// acc += scale · F·v.
    pub fn apply_add(&self, v: &[f64], scale: f64, acc: &mut [f64]) {
        match self {
            Factor::Dense { d, entries } => {
                for (row, a) in entries.chunks_exact(*d).zip(acc.iter_mut()) {
                    *a += scale * row.iter().zip(v).map(|(m, x)| m * x).sum::<f64>();
                }
            }
            Factor::Diagonal(diag) => {
                for ((a, m), x) in acc.iter_mut().zip(diag).zip(v) {
                    *a += scale * m * x;
                }
            }
        }
    }

    /// The floats that determine it: the upper triangle row by row (d(d+1)/2), or the
    /// diagonal (d).
    pub fn packed(&self) -> Vec<f64> {
        match self {
            Factor::Dense { d, entries } => {
                (0..*d).flat_map(|i| entries[i * d + i..(i + 1) * d].iter().copied()).collect()
            }
            Factor::Diagonal(diag) => diag.clone(),
        }
    }

    /// The factor `packed` wrote, for dimension d; None if the length does not fit.
    pub fn unpack(shape: Shape, d: usize, packed: &[f64]) -> Option<Factor> {
        match shape {
            Shape::Diagonal => (packed.len() == d).then(|| Factor::Diagonal(packed.to_vec())),
            Shape::Dense => {
                if packed.len() != d * (d + 1) / 2 {
                    return None;
                }
                let mut entries = vec![0.0; d * d];
                let mut next = packed.iter();
                for i in 0..d {
                    for j in i..d {
                        let v = *next.next().expect("length checked");
                        entries[i * d + j] = v;
                        entries[j * d + i] = v;
                    }
                }
                Some(Factor::Dense { d, entries })
            }
        }
    }

    /// Floats the papers count for shipping it (§A.3: d² for a dense matrix).
    pub fn paper_floats(&self) -> u64 {
        match self {
            Factor::Dense { d, .. } => (*d as u64) * (*d as u64),
            Factor::Diagonal(diag) => diag.len() as u64,
        }
    }
}

/// One worker's smoothness matrix as the methods use it.
#[derive(Clone, Debug)]
pub struct WorkerMatrix {
    /// diag(L_i) (of D_i for the diagonal shape): what the compressors' steps adapt to.
    pub diag: Vec<f64>,
    /// λ_max of the matrix in use.
    pub top: f64,
    /// L_i^{1/2}.
    pub root: Factor,
    /// L_i^{†1/2}.
    pub inv_root: Factor,
}

impl WorkerMatrix {
    /// The matrix of a worker with rows `a`, for objective `obj`.
    pub fn of(a: &Csr, obj: &Objective, shape: Shape) -> Result<WorkerMatrix> {
        let scale = obj.loss_curvature_bound() / a.rows() as f64;
        let shift = obj.regularizer_smoothness();
        match shape {
            Shape::Dense => Self::from_dense(&gram(a, scale, shift)),
            Shape::Diagonal => Ok(Self::from_diagonal(row_weighted_diagonal(a, scale, shift))),
        }
    }

    fn from_diagonal(diag: Vec<f64>) -> WorkerMatrix {
        let top = diag.iter().copied().fold(0.0, f64::max);
        let cutoff = RANK_TOLERANCE * top;
        let root = diag.iter().map(|v| v.max(0.0).sqrt()).collect();
        let inv_root = diag.iter().map(|&v| if v > cutoff { 1.0 / v.sqrt() } else { 0.0 }).collect();
        WorkerMatrix { diag, top, root: Factor::Diagonal(root), inv_root: Factor::Diagonal(inv_root) }
    }

    /// Factors a symmetric positive semi-definite matrix by its eigendecomposition
    /// L = U S Uᵀ: L^{1/2} = U S^{1/2} Uᵀ, L^{†1/2} = U S^{†1/2} Uᵀ.
    pub fn from_dense(l: &Mat<f64>) -> Result<WorkerMatrix> {
        let d = l.nrows();
        let evd = l.self_adjoint_eigen(Side::Lower).map_err(|e| Error::Numerical {
            what: format!("the eigendecomposition of a {d}×{d} smoothness matrix did not converge ({e:?})"),
            fix: "use --smoothness-matrix diagonal".into(),
        })?;
        let (u, s) = (evd.U(), evd.S().column_vector());
        let top = (0..d).map(|k| s[k]).fold(0.0, f64::max);
        let cutoff = RANK_TOLERANCE * top;
        let with = |f: &dyn Fn(f64) -> f64| {
            let scaled = Mat::from_fn(d, d, |i, k| u[(i, k)] * f(s[k]));
            symmetric_entries(&(&scaled * u.transpose()))
        };
        Ok(WorkerMatrix {
            diag: (0..d).map(|j| l[(j, j)]).collect(),
            top,
            root: Factor::Dense { d, entries: with(&|v| v.max(0.0).sqrt()) },
            inv_root: Factor::Dense { d, entries: with(&|v| if v > cutoff { 1.0 / v.sqrt() } else { 0.0 }) },
        })
    }
}

/// Row-major entries of M, symmetrised as (M + Mᵀ)/2.
fn symmetric_entries(m: &Mat<f64>) -> Vec<f64> {
    let d = m.nrows();
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for j in i..d {
            let v = 0.5 * (m[(i, j)] + m[(j, i)]);
            out[i * d + j] = v;
            out[j * d + i] = v;
        }
    }
    out
}

/// scale·AᵀA + shift·I as a dense matrix (O(Σ_r nnz_r²) from the rows).
pub fn gram(a: &Csr, scale: f64, shift: f64) -> Mat<f64> {
    let d = a.cols;
    let mut m = Mat::<f64>::zeros(d, d);
    for r in 0..a.rows() {
        let (idx, val) = a.row(r);
        for (p, (&i, &vi)) in idx.iter().zip(val).enumerate() {
            for (&j, &vj) in idx[p..].iter().zip(&val[p..]) {
                m[(i as usize, j as usize)] += scale * vi * vj;
            }
        }
    }
    for i in 0..d {
        m[(i, i)] += shift;
        for j in i + 1..d {
            m[(j, i)] = m[(i, j)];
        }
    }
    m
}

/// The diagonal bound scale·Σ_r ‖a_r‖₀ a_rj² + shift ⪰ scale·AᵀA + shift·I.
fn row_weighted_diagonal(a: &Csr, scale: f64, shift: f64) -> Vec<f64> {
    let mut diag = vec![shift; a.cols];
    for r in 0..a.rows() {
        let (idx, val) = a.row(r);
        let count = idx.len() as f64;
        for (&j, &v) in idx.iter().zip(val) {
            diag[j as usize] += scale * count * v * v;
        }
    }
    diag
}

/// Every local worker's matrix, and what the methods need of all W workers.
pub struct Matrices {
    pub shape: Shape,
    /// The local workers', in local order.
    pub local: Vec<Arc<WorkerMatrix>>,
    /// diag of every worker's matrix, by global id (gathered at set-up).
    pub diagonals: Vec<Vec<f64>>,
    /// λ_max of every worker's matrix, by global id.
    pub tops: Vec<f64>,
    /// The regulariser's constant L_R (λ for ridge): the λ of the DIANA+ steps.
    pub lambda: f64,
    /// The slowest local worker's set-up seconds (Gram matrix and factors).
    pub seconds: f64,
}

/// Bytes one rank holds for the dense shape: two factors per local worker and, on a
/// serving rank, one square root per worker of the run.
pub fn dense_bytes(d: usize, local_workers: usize, workers: usize) -> u64 {
    8 * (d as u64) * (d as u64) * (2 * local_workers + workers) as u64
}

/// Refuses the dense shape when it would take more than `limit_mib` on a rank.
pub fn check_memory(shape: Shape, d: usize, local_workers: usize, workers: usize, limit_mib: u64) -> Result<()> {
    let bytes = dense_bytes(d, local_workers, workers);
    if shape == Shape::Dense && bytes > limit_mib << 20 {
        return Err(Error::config(
            format!(
                "dense smoothness matrices for d = {d} take {:.1} GiB on a rank ({} local and {workers} server \
                 copies of 8·d² bytes each), above --matrix-memory {limit_mib} MiB",
                bytes as f64 / (1u64 << 30) as f64,
                2 * local_workers
            ),
            "use --smoothness-matrix diagonal (a diagonal D_i ⪰ L_i: O(d) memory, every guarantee kept at a \
             larger L̃), or raise --matrix-memory if the machine has the memory",
        ));
    }
    Ok(())
}

/// Every rank, at set-up: the local workers' matrices (timed and logged) and every
/// worker's diagonal and λ_max (gathered: W(d + 1) floats, set-up traffic like the L
/// estimate's, not counted in the metrics). Errors are agreed, so every rank fails alike.
pub fn prepare(comm: &mut Comm, workers: &[Worker], obj: &Objective, shape: Shape, limit_mib: u64) -> Result<Matrices> {
    let d = workers[0].grad.len();
    let total = comm.sum_u64(workers.len() as u64) as usize;
    comm.agree(check_memory(shape, d, workers.len(), total, limit_mib))?;
    let local = (|| {
        let mut slowest: f64 = 0.0;
        let mut out = Vec::with_capacity(workers.len());
        for w in workers {
            let start = Instant::now();
            out.push(Arc::new(WorkerMatrix::of(&w.a, obj, shape)?));
            slowest = slowest.max(start.elapsed().as_secs_f64());
        }
        Ok((out, slowest))
    })();
    let (local, seconds) = comm.agree(local)?;
    let seconds = comm.all_gather_f64(&[seconds]).into_iter().fold(0.0, f64::max);
    log::info!(
        "smoothness matrices ({}, d = {d}, {total} workers): {:.3} s for the slowest worker{}",
        crate::train::cli_name(shape),
        seconds,
        if shape == Shape::Dense { " (Gram matrix and eigendecomposition)" } else { "" }
    );
    let flat: Vec<f64> = local.iter().flat_map(|m| m.diag.iter().copied()).collect();
    let diagonals = comm.all_gather_f64(&flat).chunks_exact(d).map(<[f64]>::to_vec).collect();
    let tops = comm.all_gather_f64(&local.iter().map(|m| m.top).collect::<Vec<_>>());
    Ok(Matrices { shape, local, diagonals, tops, lambda: obj.regularizer_smoothness(), seconds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::ObjectiveKind;
    use rand::{Rng, SeedableRng};

    fn random_rows(rows: usize, d: usize, seed: u64) -> Csr {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut a = Csr::empty(d);
        for _ in 0..rows {
            let mut entries = Vec::new();
            for j in 0..d as u32 {
                let (keep, v) = (rng.random::<f64>(), rng.random::<f64>());
                if keep < 0.3 {
                    entries.push((j, v - 0.3));
                }
            }
            a.push_row(entries);
        }
        a
    }

    fn dense(f: &Factor) -> Mat<f64> {
        let d = f.dim();
        let mut m = Mat::zeros(d, d);
        for j in 0..d {
            let mut e = vec![0.0; d];
            e[j] = 1.0;
            let mut col = vec![0.0; d];
            f.apply(&e, &mut col);
            for i in 0..d {
                m[(i, j)] = col[i];
            }
        }
        m
    }

    fn max_abs_diff(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
        let mut worst: f64 = 0.0;
        for i in 0..a.nrows() {
            for j in 0..a.ncols() {
                worst = worst.max((a[(i, j)] - b[(i, j)]).abs());
            }
        }
        worst
    }

    #[test]
    fn the_square_root_squares_to_the_matrix_and_whitening_round_trips() {
        let obj = Objective::new(ObjectiveKind::Logistic, 0.1);
        let a = random_rows(60, 17, 3);
        let l = gram(&a, 0.25 / 60.0, 0.1);
        let m = WorkerMatrix::of(&a, &obj, Shape::Dense).unwrap();
        let root = dense(&m.root);
        let scale = (0..17).map(|j| l[(j, j)]).fold(0.0, f64::max);
        assert!(max_abs_diff(&(&root * &root), &l) <= 1e-10 * scale, "L^½L^½ ≠ L");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for _ in 0..20 {
            let v: Vec<f64> = (0..17).map(|_| rng.random::<f64>() - 0.5).collect();
            let (mut z, mut back) = (vec![0.0; 17], vec![0.0; 17]);
            m.inv_root.apply(&v, &mut z);
            m.root.apply(&z, &mut back);
            let err = v.iter().zip(&back).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            assert!(err <= 1e-10 * norm, "L^½L^-½v ≠ v: {err:e}");
        }
        // The Gram matrix against its definition, entry by entry.
        let mut direct = Mat::<f64>::zeros(17, 17);
        for r in 0..a.rows() {
            let mut row = [0.0; 17];
            let (idx, val) = a.row(r);
            idx.iter().zip(val).for_each(|(&j, &v)| row[j as usize] = v);
            for i in 0..17 {
                for j in 0..17 {
                    direct[(i, j)] += 0.25 / 60.0 * row[i] * row[j];
                }
            }
        }
        (0..17).for_each(|i| direct[(i, i)] += 0.1);
        assert!(max_abs_diff(&direct, &l) <= 1e-14);
        let top = l.self_adjoint_eigenvalues(Side::Lower).unwrap()[16];
        assert!((m.top - top).abs() <= 1e-12 * top);
    }

    #[test]
    fn a_rank_deficient_matrix_gets_the_pseudo_inverse_root() {
        // λ = 0 and fewer rows than columns: L is singular; L^½ L^†½ is the projector on
        // its range, so it maps a vector of the range to itself.
        let obj = Objective::new(ObjectiveKind::Logistic, 0.0);
        let a = random_rows(4, 12, 5);
        let m = WorkerMatrix::of(&a, &obj, Shape::Dense).unwrap();
        let (idx, val) = a.row(0);
        let mut v = vec![0.0; 12];
        idx.iter().zip(val).for_each(|(&j, &x)| v[j as usize] = x);
        let (mut z, mut back) = (vec![0.0; 12], vec![0.0; 12]);
        m.inv_root.apply(&v, &mut z);
        m.root.apply(&z, &mut back);
        assert!(z.iter().all(|x| x.is_finite()));
        let err = v.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err <= 1e-9, "{err:e}");
    }

    #[test]
    fn the_diagonal_bound_dominates_the_matrix() {
        let obj = Objective::new(ObjectiveKind::Logistic, 0.01);
        for seed in 0..5 {
            let a = random_rows(40, 15, seed);
            let l = gram(&a, 0.25 / 40.0, 0.01);
            let m = WorkerMatrix::of(&a, &obj, Shape::Diagonal).unwrap();
            let mut gap = dense(&m.root);
            gap = &gap * &gap - &l;
            let lowest = gap.self_adjoint_eigenvalues(Side::Lower).unwrap()[0];
            assert!(lowest >= -1e-12, "D − L has eigenvalue {lowest:e}");
        }
    }

    #[test]
    fn packing_keeps_the_factor_bit_for_bit() {
        let obj = Objective::new(ObjectiveKind::LeastSquares, 0.5);
        let a = random_rows(30, 9, 1);
        for shape in [Shape::Dense, Shape::Diagonal] {
            let m = WorkerMatrix::of(&a, &obj, shape).unwrap();
            let packed = m.root.packed();
            assert_eq!(Factor::unpack(shape, 9, &packed), Some(m.root.clone()));
            assert_eq!(Factor::unpack(shape, 9, &packed[1..]), None);
        }
    }

    #[test]
    fn the_dense_shape_is_refused_above_the_memory_limit() {
        let e = check_memory(Shape::Dense, 48_407, 1, 4, 1024).unwrap_err().to_string();
        assert!(e.contains("d = 48407") && e.contains("--smoothness-matrix diagonal"), "{e}");
        check_memory(Shape::Diagonal, 48_407, 1, 4, 1024).unwrap();
        check_memory(Shape::Dense, 124, 4, 4, 1024).unwrap();
    }
}
