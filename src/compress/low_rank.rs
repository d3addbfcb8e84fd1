//! The low-rank compression of PowerSGD (Vogels, Karimireddy, Jaggi, "PowerSGD: practical
//! low-rank gradient compression for distributed optimization", NeurIPS 2019, Algorithm 1;
//! ALGORITHMS.md §1.14): the algebra. Its messages are sums over workers, so it is no
//! per-worker [`Compressor`](super::Compressor): `--method ef|gd --compressor
//! powersgd:rank=R` runs it as two allreduces a round (src/method/powersgd.rs).
//!
//! * Reshape rule: a d-vector v is the a × b matrix M, a = ⌈√d⌉, b = ⌈d/a⌉ (so b ≤ a and
//!   the ab − d < a padding entries fill the end of the last row), filled row-major:
//!   M[i, j] = v[i·b + j], zero from d on. The padding is never stored: the products skip
//!   it, and the approximation's entries there are dropped, which only shortens a step
//!   (a gradient is zero there, so the step's inner product with it is unchanged).
//! * Rank r: 1 ≤ r ≤ b = min(a, b); `rank=full` is r = b, at which P̂P̂ᵀM = M whenever
//!   MQ has the rank of M.
//! * One power-iteration step from the warm start Q (b × r): P = MQ, P̂ = orth(P),
//!   Q ← MᵀP̂; the approximation is P̂Qᵀ = P̂P̂ᵀM, the projection of M's columns onto
//!   span(P̂).
//! * Orthonormalisation: Gram–Schmidt with every column projected twice ("twice is
//!   enough", Giraud, Langou, Rozložník 2005), so P̂ is orthonormal to rounding however
//!   ill-conditioned P is; a column whose residual falls below 10⁻¹² of its norm (M of
//!   rank < r) becomes zero rather than normalised rounding noise.
//! * Layout: P is a × r and Q is b × r, row-major (P[i, k] = p[i·r + k]).
//! * Paper bits (§1.14): 32r(a + b) per worker and round: P's a·r values and Q's b·r.

use super::Spec;
use crate::error::{Error, Result};

/// A column whose Gram–Schmidt residual is below this share of its norm is dependent.
const DEPENDENT: f64 = 1e-12;

/// The shape and rank PowerSGD compresses a d-vector with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LowRank {
    pub d: usize,
    /// a = ⌈√d⌉.
    pub rows: usize,
    /// b = ⌈d/a⌉ ≤ a.
    pub cols: usize,
    /// r.
    pub rank: usize,
}

impl LowRank {
    /// `powersgd[:rank=R|full]` (default rank 1, as PyTorch's `powerSGD_hook`).
    pub fn from_spec(spec: &mut Spec, d: usize) -> Result<LowRank> {
        let (rows, cols) = shape(d);
        let rank = match spec.take_f64_or_word("rank", "full", 1.0)? {
            None => cols,
            Some(r) if r >= 1.0 && r <= cols as f64 && r.fract() == 0.0 => r as usize,
            Some(r) => {
                return Err(Error::config(
                    format!(
                        "compressor '{}': rank {r} for d = {d}, which PowerSGD views as a {rows} × {cols} matrix",
                        spec.text()
                    ),
                    format!("choose a whole rank 1 ≤ R ≤ {cols}, or rank=full"),
                ))
            }
        };
        Ok(LowRank { d, rows, cols, rank })
    }

    /// Values of P (a·r).
    pub fn left_len(&self) -> usize {
        self.rows * self.rank
    }

    /// Values of Q (b·r).
    pub fn right_len(&self) -> usize {
        self.cols * self.rank
    }

    /// 32r(a + b) (§1.14).
    pub fn paper_bits(&self) -> u64 {
        32 * (self.left_len() + self.right_len()) as u64
    }

    /// The rows of M over v: (i, M[i, ·] without the padding).
    fn matrix_rows<'v>(&self, v: &'v [f64]) -> impl Iterator<Item = (usize, &'v [f64])> {
        debug_assert_eq!(v.len(), self.d);
        v.chunks(self.cols).enumerate()
    }

    /// p += w·M q: P's a × r values from M and the b × r matrix q.
    pub fn add_left(&self, v: &[f64], q: &[f64], w: f64, p: &mut [f64]) {
        let r = self.rank;
        for (i, row) in self.matrix_rows(v) {
            let p_row = &mut p[i * r..(i + 1) * r];
            for (mij, q_row) in row.iter().zip(q.chunks_exact(r)) {
                let scaled = w * mij;
                p_row.iter_mut().zip(q_row).for_each(|(pk, qk)| *pk += scaled * qk);
            }
        }
    }

    /// q += w·Mᵀ p: Q's b × r values from M and the a × r matrix p.
    pub fn add_right(&self, v: &[f64], p: &[f64], w: f64, q: &mut [f64]) {
        let r = self.rank;
        for (i, row) in self.matrix_rows(v) {
            let p_row = &p[i * r..(i + 1) * r];
            for (mij, q_row) in row.iter().zip(q.chunks_exact_mut(r)) {
                let scaled = w * mij;
                q_row.iter_mut().zip(p_row).for_each(|(qk, pk)| *qk += scaled * pk);
            }
        }
    }

    /// out += scale·vec(p qᵀ), the padding dropped.
    pub fn add_product(&self, p: &[f64], q: &[f64], scale: f64, out: &mut [f64]) {
        let r = self.rank;
        for (i, out_row) in out.chunks_mut(self.cols).enumerate() {
            let p_row = &p[i * r..(i + 1) * r];
            for (o, q_row) in out_row.iter_mut().zip(q.chunks_exact(r)) {
                *o += scale * p_row.iter().zip(q_row).map(|(a, b)| a * b).sum::<f64>();
            }
        }
    }
}

/// (a, b) = (⌈√d⌉, ⌈d/a⌉).
fn shape(d: usize) -> (usize, usize) {
    let mut a = (d as f64).sqrt() as usize;
    while a * a < d {
        a += 1;
    }
    let a = a.max(1);
    (a, d.div_ceil(a).max(1))
}

/// Orthonormalises the r columns of the row-major rows × r matrix p in place (Gram–Schmidt,
/// twice per column); dependent columns become zero. A non-finite column stays non-finite,
/// so a diverged run is seen, not hidden.
pub fn orthonormalise(p: &mut [f64], r: usize) {
    let column_norm = |p: &[f64], k: usize| p.chunks_exact(r).map(|row| row[k] * row[k]).sum::<f64>().sqrt();
    for k in 0..r {
        let before = column_norm(p, k);
        for _ in 0..2 {
            for l in 0..k {
                let dot: f64 = p.chunks_exact(r).map(|row| row[l] * row[k]).sum();
                p.chunks_exact_mut(r).for_each(|row| row[k] -= dot * row[l]);
            }
        }
        let after = column_norm(p, k);
        let dependent = before.is_finite() && after <= DEPENDENT * before;
        let scale = if dependent { 0.0 } else { 1.0 / after };
        p.chunks_exact_mut(r).for_each(|row| row[k] *= scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{gaussian, Stream};
    use rand::SeedableRng;

    fn low_rank(d: usize, rank: &str) -> Result<LowRank> {
        LowRank::from_spec(&mut Spec::parse_compressor(&format!("powersgd:rank={rank}")).unwrap(), d)
    }

    fn random(n: usize, rng: &mut Stream) -> Vec<f64> {
        (0..n).map(|_| gaussian(rng)).collect()
    }

    /// The reshape rule: a = ⌈√d⌉, b = ⌈d/a⌉, b ≤ a and ab ≥ d > ab − a, for every d up to
    /// 2000 (perfect squares and one past them included).
    #[test]
    fn shape_is_the_documented_rule() {
        for d in 1..=2000usize {
            let (a, b) = shape(d);
            assert!(a * a >= d && (a - 1) * (a - 1) < d, "d = {d}: a = {a} is ⌈√d⌉");
            assert_eq!(b, d.div_ceil(a), "d = {d}");
            assert!(b <= a && a * b >= d && a * b - d < a, "d = {d}: {a} × {b}");
        }
        assert_eq!(shape(124), (12, 11));
        assert_eq!(low_rank(124, "full").unwrap().rank, 11);
    }

    #[test]
    fn ranks_outside_1_to_b_are_refused_with_the_shape() {
        for bad in ["0", "12", "1.5", "-1"] {
            let err = low_rank(124, bad).unwrap_err().to_string();
            assert!(err.contains("12 × 11") && err.contains("1 ≤ R ≤ 11"), "{bad}: {err}");
        }
        assert!(low_rank(124, "11").is_ok());
    }

    /// The products against a dense a × b matrix built by the reshape rule.
    #[test]
    fn products_are_those_of_the_reshaped_matrix() {
        let mut rng = Stream::seed_from_u64(1);
        let c = low_rank(23, "2").unwrap(); // 5 × 5, two padding entries
        let v = random(23, &mut rng);
        let m = |i: usize, j: usize| if i * c.cols + j < c.d { v[i * c.cols + j] } else { 0.0 };
        let (q, p) = (random(c.right_len(), &mut rng), random(c.left_len(), &mut rng));
        let mut mq = vec![0.5; c.left_len()];
        c.add_left(&v, &q, 2.0, &mut mq);
        let mut mtp = vec![0.0; c.right_len()];
        c.add_right(&v, &p, 1.0, &mut mtp);
        let mut pq = vec![1.0; c.d];
        c.add_product(&p, &q, -1.0, &mut pq);
        for i in 0..c.rows {
            for k in 0..c.rank {
                let want = 0.5 + 2.0 * (0..c.cols).map(|j| m(i, j) * q[j * c.rank + k]).sum::<f64>();
                assert!((mq[i * c.rank + k] - want).abs() < 1e-12);
            }
        }
        for j in 0..c.cols {
            for k in 0..c.rank {
                let want: f64 = (0..c.rows).map(|i| m(i, j) * p[i * c.rank + k]).sum();
                assert!((mtp[j * c.rank + k] - want).abs() < 1e-12);
            }
        }
        for (l, got) in pq.iter().enumerate() {
            let (i, j) = (l / c.cols, l % c.cols);
            let want = 1.0 - (0..c.rank).map(|k| p[i * c.rank + k] * q[j * c.rank + k]).sum::<f64>();
            assert!((got - want).abs() < 1e-12);
        }
    }

    /// P̂ᵀP̂ = I to 1e-12 for well- and ill-conditioned P (columns nearly parallel), and
    /// span(P̂) = span(P): P̂P̂ᵀP = P.
    #[test]
    fn orthonormalise_gives_an_orthonormal_basis_of_the_span() {
        let mut rng = Stream::seed_from_u64(2);
        let (rows, r) = (12, 4);
        for closeness in [1.0, 1e-4, 1e-8] {
            let base = random(rows, &mut rng);
            let mut p: Vec<f64> = (0..rows * r).map(|l| base[l / r] + closeness * gaussian(&mut rng)).collect();
            let original = p.clone();
            orthonormalise(&mut p, r);
            for k in 0..r {
                for l in 0..r {
                    let dot: f64 = p.chunks_exact(r).map(|row| row[k] * row[l]).sum();
                    assert!((dot - f64::from(u8::from(k == l))).abs() < 1e-12, "{closeness}: ⟨p{k}, p{l}⟩ = {dot}");
                }
            }
            for k in 0..r {
                let coef: Vec<f64> = (0..r)
                    .map(|l| p.chunks_exact(r).zip(original.chunks_exact(r)).map(|(a, o)| a[l] * o[k]).sum())
                    .collect();
                for (i, row) in p.chunks_exact(r).enumerate() {
                    let back: f64 = (0..r).map(|l| row[l] * coef[l]).sum();
                    assert!((back - original[i * r + k]).abs() < 1e-9, "{closeness}: column {k} leaves the span");
                }
            }
        }
    }

    /// A dependent column (here a copy of the first, and a zero one) becomes zero; the
    /// others stay orthonormal. A NaN column stays NaN.
    #[test]
    fn dependent_columns_become_zero_and_nan_stays_visible() {
        let mut rng = Stream::seed_from_u64(3);
        let (rows, r) = (9, 3);
        let first = random(rows, &mut rng);
        let mut p: Vec<f64> = (0..rows).flat_map(|i| [first[i], 3.0 * first[i], 0.0]).collect();
        orthonormalise(&mut p, r);
        let norms: Vec<f64> = (0..r).map(|k| p.chunks_exact(r).map(|row| row[k] * row[k]).sum::<f64>()).collect();
        assert!((norms[0] - 1.0).abs() < 1e-12 && norms[1] == 0.0 && norms[2] == 0.0, "{norms:?}");
        let mut bad = vec![f64::NAN, 1.0, 2.0, 3.0];
        orthonormalise(&mut bad, 2);
        assert!(bad[0].is_nan() && bad[2].is_nan(), "{bad:?}");
    }

    /// rank = full reproduces M: P̂P̂ᵀM = M for a random M and a random start Q (the
    /// property behind `--compressor powersgd:rank=full` ≡ GD), and rank 1 does not.
    #[test]
    fn full_rank_reproduces_the_matrix() {
        let mut rng = Stream::seed_from_u64(4);
        for d in [23, 124, 1000] {
            for (rank, exact) in [("full", true), ("1", false)] {
                let c = low_rank(d, rank).unwrap();
                let v = random(d, &mut rng);
                let q = random(c.right_len(), &mut rng);
                let mut p = vec![0.0; c.left_len()];
                c.add_left(&v, &q, 1.0, &mut p);
                orthonormalise(&mut p, c.rank);
                let mut q_new = vec![0.0; c.right_len()];
                c.add_right(&v, &p, 1.0, &mut q_new);
                let mut residual = v.clone();
                c.add_product(&p, &q_new, -1.0, &mut residual);
                let rel =
                    residual.iter().map(|x| x * x).sum::<f64>().sqrt() / v.iter().map(|x| x * x).sum::<f64>().sqrt();
                assert_eq!(rel < 1e-10, exact, "d = {d}, rank {rank}: ‖M − P̂P̂ᵀM‖/‖M‖ = {rel:e}");
            }
        }
    }
}
