//! How rows are divided into contiguous blocks, one per logical worker.

use crate::error::{Error, Result};

/// Row-splitting rule (`--split`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitRule {
    /// Sizes differ by at most one: the first m mod W workers get one extra row.
    Balanced,
    /// ⌊m/W⌋ rows each and the remainder to the last worker, as the papers' reference
    /// code does (ALGORITHMS.md §G.4 data loading), to reproduce a published setup.
    RemainderLast,
    /// ⌊m/W⌋ rows each, and the last m mod W rows of the file left out: the 3PC
    /// reference code's split (ALGORITHMS.md §G.4a), to repeat its runs exactly.
    DropRemainder,
}

/// Block boundaries: worker i owns rows `bounds[i]..bounds[i+1]` (W + 1 entries).
pub fn bounds(rows: u64, workers: usize, rule: SplitRule) -> Result<Vec<u64>> {
    let w = workers as u64;
    if workers == 0 || rows < w {
        return Err(Error::config(
            format!("{workers} workers but only {rows} data rows"),
            "every worker needs at least one row: use fewer --workers (or ranks) or more data",
        ));
    }
    let base = rows / w;
    let extra = rows % w;
    let mut out = Vec::with_capacity(workers + 1);
    let mut at = 0u64;
    out.push(0);
    for i in 0..w {
        at += match rule {
            SplitRule::Balanced => base + u64::from(i < extra),
            SplitRule::RemainderLast => base + if i == w - 1 { extra } else { 0 },
            SplitRule::DropRemainder => base,
        };
        out.push(at);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_sizes_differ_by_at_most_one() {
        let b = bounds(10, 4, SplitRule::Balanced).unwrap();
        assert_eq!(b, vec![0, 3, 6, 8, 10]);
    }

    #[test]
    fn remainder_goes_to_the_last_worker() {
        let b = bounds(10, 4, SplitRule::RemainderLast).unwrap();
        assert_eq!(b, vec![0, 2, 4, 6, 10]);
    }

    #[test]
    fn the_remainder_can_be_left_out() {
        let b = bounds(10, 4, SplitRule::DropRemainder).unwrap();
        assert_eq!(b, vec![0, 2, 4, 6, 8]);
        assert_eq!(bounds(8, 4, SplitRule::DropRemainder).unwrap(), bounds(8, 4, SplitRule::Balanced).unwrap());
    }

    #[test]
    fn more_workers_than_rows_is_an_error() {
        let e = bounds(3, 4, SplitRule::Balanced).unwrap_err().to_string();
        assert!(e.contains("4 workers but only 3 data rows"), "{e}");
    }
}
