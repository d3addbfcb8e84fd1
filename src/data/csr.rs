//! Compressed sparse row storage of a block of samples, and the two products every
//! objective needs: margins A·x and the transposed accumulation Aᵀ·y.
//!
//! A matrix whose every value is 1.0 (binary features: a9a, mushrooms, w8a and many
//! LIBSVM sets) can drop its values ([`Csr::drop_unit_values`]): the products then read
//! 4 bytes per nonzero instead of 12, and give the same bits, since 1·x = x exactly.

/// Rows of a sparse matrix; column indices are 0-based and strictly increasing per row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Csr {
    /// Number of columns (the model dimension d).
    pub cols: usize,
    /// Row i occupies `indices[indptr[i]..indptr[i+1]]`.
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    /// The values of the entries, or empty for a pattern-only matrix.
    pub values: Vec<f64>,
    /// A pattern-only matrix's ones, as many as its longest row has entries, so that
    /// [`Csr::row`] still hands out a value slice; empty otherwise.
    ones: Vec<f64>,
}

/// How a kernel reads the values of a row: stored, or all 1 (pattern-only). A type
/// parameter, so each kernel is compiled for both and the pattern-only one never loads
/// a value.
trait EntryValues: Copy {
    type Row<'a>: RowValues
    where
        Self: 'a;
    /// The values of entries a..b.
    fn row<'a>(&'a self, a: usize, b: usize) -> Self::Row<'a>;
}

trait RowValues: Copy {
    /// The value of the row's k-th entry.
    fn at(self, k: usize) -> f64;
}

#[derive(Clone, Copy)]
struct Stored<'a>(&'a [f64]);

impl EntryValues for Stored<'_> {
    type Row<'a>
        = &'a [f64]
    where
        Self: 'a;

    #[inline(always)]
    fn row(&self, a: usize, b: usize) -> &[f64] {
        &self.0[a..b]
    }
}

impl RowValues for &[f64] {
    #[inline(always)]
    fn at(self, k: usize) -> f64 {
        self[k]
    }
}

#[derive(Clone, Copy)]
struct Ones;

impl EntryValues for Ones {
    type Row<'a> = Ones;

    #[inline(always)]
    fn row(&self, _a: usize, _b: usize) -> Ones {
        Ones
    }
}

impl RowValues for Ones {
    #[inline(always)]
    fn at(self, _k: usize) -> f64 {
        1.0
    }
}

impl Csr {
    pub fn empty(cols: usize) -> Self {
        Csr { cols, indptr: vec![0], ..Csr::default() }
    }

    pub fn rows(&self) -> usize {
        self.indptr.len() - 1
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Heap bytes held (capacities, so what the allocator gave).
    pub fn heap_bytes(&self) -> u64 {
        let words = self.indptr.capacity() + self.values.capacity() + self.ones.capacity();
        (8 * words + 4 * self.indices.capacity()) as u64
    }

    /// Whether the values were dropped because every one is 1.0.
    pub fn is_pattern(&self) -> bool {
        !self.ones.is_empty()
    }

    /// Drops the values when every one of them is 1.0 (nothing changes otherwise):
    /// the products then read only the indices.
    pub fn drop_unit_values(&mut self) {
        if self.is_pattern() || self.values.is_empty() || self.values.iter().any(|&v| v != 1.0) {
            return;
        }
        let longest = self.indptr.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        self.ones = vec![1.0; longest.max(1)];
        self.values = Vec::new();
    }

    /// Appends one row given as (0-based index, value) pairs in increasing index order.
    pub fn push_row(&mut self, entries: impl IntoIterator<Item = (u32, f64)>) {
        assert!(!self.is_pattern(), "rows are pushed before the values are dropped");
        for (j, v) in entries {
            self.indices.push(j);
            self.values.push(v);
        }
        self.indptr.push(self.indices.len());
    }

    pub fn row(&self, i: usize) -> (&[u32], &[f64]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        let values = if self.is_pattern() { &self.ones[..b - a] } else { &self.values[a..b] };
        (&self.indices[a..b], values)
    }

    /// The matrix with a constant column of ones in front: column 0 is the bias feature,
    /// column j + 1 the former column j (`--bias`).
    pub fn with_bias_column(&self) -> Csr {
        let mut out = Csr::empty(self.cols + 1);
        out.indices.reserve(self.nnz() + self.rows());
        out.values.reserve(self.nnz() + self.rows());
        for i in 0..self.rows() {
            let (indices, values) = self.row(i);
            out.push_row(std::iter::once((0, 1.0)).chain(indices.iter().zip(values).map(|(&j, &v)| (j + 1, v))));
        }
        if self.is_pattern() {
            out.drop_unit_values();
        }
        out
    }

    /// Rows `start..end` as a new matrix.
    pub fn slice_rows(&self, start: usize, end: usize) -> Csr {
        let (a, b) = (self.indptr[start], self.indptr[end]);
        Csr {
            cols: self.cols,
            indptr: self.indptr[start..=end].iter().map(|p| p - a).collect(),
            indices: self.indices[a..b].to_vec(),
            values: if self.is_pattern() { Vec::new() } else { self.values[a..b].to_vec() },
            ones: self.ones.clone(),
        }
    }

    /// out[i] = a_i · x.
    pub fn margins(&self, x: &[f64], out: &mut [f64]) {
        debug_assert_eq!(out.len(), self.rows());
        if self.is_pattern() {
            self.margins_by(Ones, x, out)
        } else {
            self.margins_by(Stored(&self.values), x, out)
        }
    }

    fn margins_by<V: EntryValues>(&self, values: V, x: &[f64], out: &mut [f64]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.row_dot(values, i, x);
        }
    }

    /// acc += Aᵀ y.
    pub fn add_transposed(&self, y: &[f64], acc: &mut [f64]) {
        debug_assert_eq!(y.len(), self.rows());
        if self.is_pattern() {
            y.iter().enumerate().for_each(|(i, &yi)| self.add_row(Ones, i, yi, acc));
        } else {
            y.iter().enumerate().for_each(|(i, &yi)| self.add_row(Stored(&self.values), i, yi, acc));
        }
    }

    /// out[k] = a_{rows[k]} · x, for a subset of the rows (a minibatch).
    pub fn margins_of(&self, rows: &[u32], x: &[f64], out: &mut [f64]) {
        for (o, &i) in out.iter_mut().zip(rows) {
            *o = if self.is_pattern() {
                self.row_dot(Ones, i as usize, x)
            } else {
                self.row_dot(Stored(&self.values), i as usize, x)
            };
        }
    }

    /// acc += Σ_k y[k]·a_{rows[k]}.
    pub fn add_transposed_of(&self, rows: &[u32], y: &[f64], acc: &mut [f64]) {
        for (&yk, &i) in y.iter().zip(rows) {
            if self.is_pattern() {
                self.add_row(Ones, i as usize, yk, acc)
            } else {
                self.add_row(Stored(&self.values), i as usize, yk, acc)
            }
        }
    }

    // Inlined into the loops above: a call per row cost ≈ 7 % of a9a's gradient
    // (BENCHMARKS.md, "Round protocol: round time before and after").
    #[inline(always)]
    fn row_dot<V: EntryValues>(&self, values: V, i: usize, x: &[f64]) -> f64 {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        let val = values.row(a, b);
        self.indices[a..b].iter().enumerate().map(|(k, &j)| val.at(k) * x[j as usize]).sum()
    }

    /// acc += y·a_i (nothing for y = 0).
    #[inline(always)]
    fn add_row<V: EntryValues>(&self, values: V, i: usize, y: f64, acc: &mut [f64]) {
        if y == 0.0 {
            return;
        }
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        let val = values.row(a, b);
        for (k, &j) in self.indices[a..b].iter().enumerate() {
            acc[j as usize] += val.at(k) * y;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Csr {
        // [[1, 0, 2], [0, 0, 0], [0, 3, 4]]
        let mut a = Csr::empty(3);
        a.push_row([(0, 1.0), (2, 2.0)]);
        a.push_row([]);
        a.push_row([(1, 3.0), (2, 4.0)]);
        a
    }

    #[test]
    fn products_match_the_dense_matrix() {
        let a = example();
        let mut m = vec![0.0; 3];
        a.margins(&[1.0, 2.0, 3.0], &mut m);
        assert_eq!(m, vec![7.0, 0.0, 18.0]);
        let mut acc = vec![1.0; 3];
        a.add_transposed(&[1.0, 5.0, 2.0], &mut acc);
        assert_eq!(acc, vec![2.0, 7.0, 11.0]);
    }

    #[test]
    fn row_subsets_match_the_full_products() {
        let a = example();
        let x = [1.0, 2.0, 3.0];
        let mut m = vec![0.0; 2];
        a.margins_of(&[2, 0], &x, &mut m);
        assert_eq!(m, vec![18.0, 7.0]);
        let mut acc = vec![0.0; 3];
        a.add_transposed_of(&[0, 2], &[1.0, 2.0], &mut acc);
        assert_eq!(acc, vec![1.0, 6.0, 10.0]);
    }

    /// A pattern-only matrix gives the same products, bit for bit, as the same matrix
    /// with its ones stored, on rows of every length from 0;
    /// a matrix with any other value keeps its values.
    #[test]
    fn dropping_unit_values_keeps_every_product_bit_for_bit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let d = 40;
        let mut a = Csr::empty(d);
        for i in 0..23u32 {
            let mut cols: Vec<u32> = (0..d as u32).filter(|_| rng.random::<f64>() < 0.1 * (i % 6) as f64).collect();
            cols.dedup();
            a.push_row(cols.into_iter().map(|j| (j, 1.0)));
        }
        let mut pattern = a.clone();
        pattern.drop_unit_values();
        assert!(pattern.is_pattern() && pattern.values.is_empty() && !a.is_pattern());
        let x: Vec<f64> = (0..d).map(|_| rng.random::<f64>() - 0.5).collect();
        let y: Vec<f64> = (0..a.rows()).map(|_| rng.random::<f64>() - 0.5).collect();
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let (mut m1, mut m2) = (vec![0.0; a.rows()], vec![0.0; a.rows()]);
        a.margins(&x, &mut m1);
        pattern.margins(&x, &mut m2);
        assert_eq!(bits(&m1), bits(&m2));
        // And the kernels' margins are the dot products written out.
        let direct: Vec<f64> = (0..a.rows())
            .map(|i| {
                let (idx, val) = a.row(i);
                idx.iter().zip(val).map(|(&j, &v)| v * x[j as usize]).sum()
            })
            .collect();
        assert_eq!(bits(&m1), bits(&direct));
        let (mut g1, mut g2) = (vec![0.0; d], vec![0.0; d]);
        a.add_transposed(&y, &mut g1);
        pattern.add_transposed(&y, &mut g2);
        assert_eq!(bits(&g1), bits(&g2));
        assert_eq!(pattern.row(3), a.row(3));
        assert_eq!(pattern.slice_rows(2, 9).row(1), a.slice_rows(2, 9).row(1));
        assert_eq!(pattern.with_bias_column().row(4), a.with_bias_column().row(4));
        let mut valued = example();
        valued.drop_unit_values();
        assert!(!valued.is_pattern() && valued.values.len() == 4);
    }

    #[test]
    fn slicing_keeps_rows() {
        let a = example();
        let s = a.slice_rows(1, 3);
        assert_eq!(s.rows(), 2);
        assert_eq!(s.row(1), (&[1u32, 2][..], &[3.0, 4.0][..]));
        assert_eq!(s.row(0).0.len(), 0);
    }
}
