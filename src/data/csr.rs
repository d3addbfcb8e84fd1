//! Compressed sparse row storage of a block of samples, and the two products every
//! objective needs: margins A·x and the transposed accumulation Aᵀ·y.

/// Rows of a sparse matrix; column indices are 0-based and strictly increasing per row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Csr {
    /// Number of columns (the model dimension d).
    pub cols: usize,
    /// Row i occupies `indices[indptr[i]..indptr[i+1]]`.
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Vec<f64>,
}

impl Csr {
    pub fn empty(cols: usize) -> Self {
        Csr { cols, indptr: vec![0], indices: Vec::new(), values: Vec::new() }
    }

    pub fn rows(&self) -> usize {
        self.indptr.len() - 1
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Appends one row given as (0-based index, value) pairs in increasing index order.
    pub fn push_row(&mut self, entries: impl IntoIterator<Item = (u32, f64)>) {
        for (j, v) in entries {
            self.indices.push(j);
            self.values.push(v);
        }
        self.indptr.push(self.indices.len());
    }

    pub fn row(&self, i: usize) -> (&[u32], &[f64]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.values[a..b])
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
        out
    }

    /// Rows `start..end` as a new matrix.
    pub fn slice_rows(&self, start: usize, end: usize) -> Csr {
        let (a, b) = (self.indptr[start], self.indptr[end]);
        Csr {
            cols: self.cols,
            indptr: self.indptr[start..=end].iter().map(|p| p - a).collect(),
            indices: self.indices[a..b].to_vec(),
            values: self.values[a..b].to_vec(),
        }
    }

    /// out[i] = a_i · x.
    pub fn margins(&self, x: &[f64], out: &mut [f64]) {
        debug_assert_eq!(out.len(), self.rows());
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.row_dot(i, x);
        }
    }

    /// acc += Aᵀ y.
    pub fn add_transposed(&self, y: &[f64], acc: &mut [f64]) {
        debug_assert_eq!(y.len(), self.rows());
        for (i, &yi) in y.iter().enumerate() {
            self.add_row(i, yi, acc);
        }
    }

    /// out[k] = a_{rows[k]} · x, for a subset of the rows (a minibatch).
    pub fn margins_of(&self, rows: &[u32], x: &[f64], out: &mut [f64]) {
        for (o, &i) in out.iter_mut().zip(rows) {
            *o = self.row_dot(i as usize, x);
        }
    }

    /// acc += Σ_k y[k]·a_{rows[k]}.
    pub fn add_transposed_of(&self, rows: &[u32], y: &[f64], acc: &mut [f64]) {
        for (&yk, &i) in y.iter().zip(rows) {
            self.add_row(i as usize, yk, acc);
        }
    }

    // Inlined into the loops above: a call per row cost ≈ 7 % of a9a's gradient
    // (BENCHMARKS.md, "Round protocol: round time before and after").
    #[inline(always)]
    fn row_dot(&self, i: usize, x: &[f64]) -> f64 {
        let (idx, val) = self.row(i);
        idx.iter().zip(val).map(|(&j, &v)| v * x[j as usize]).sum()
    }

    /// acc += y·a_i (nothing for y = 0).
    #[inline(always)]
    fn add_row(&self, i: usize, y: f64, acc: &mut [f64]) {
        if y == 0.0 {
            return;
        }
        let (idx, val) = self.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            acc[j as usize] += v * y;
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

    #[test]
    fn slicing_keeps_rows() {
        let a = example();
        let s = a.slice_rows(1, 3);
        assert_eq!(s.rows(), 2);
        assert_eq!(s.row(1), (&[1u32, 2][..], &[3.0, 4.0][..]));
        assert_eq!(s.row(0).0.len(), 0);
    }
}
