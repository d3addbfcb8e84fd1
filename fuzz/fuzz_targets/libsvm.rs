//! The LIBSVM reader on arbitrary bytes, as a file (the reader works on byte ranges of a
//! file): the whole file, and the same file split at an aligned byte position as two
//! ranks would read it. Never a panic; when the whole file parses, the two halves parse
//! to the same rows, the CSR is well formed and the census counts the rows.
#![no_main]
use libfuzzer_sys::fuzz_target;
use qtrain::data::libsvm::{aligned_start, census, parse_range, Rows};
use std::path::PathBuf;

fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("qtrain-fuzz-libsvm-{}.svm", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(&path, data).expect("the scratch file can be written");
    let len = data.len() as u64;
    let whole = census(&path, 0, len).expect("a readable file always has a census");
    let mut rows = Rows::default();
    let parsed = parse_range(&path, (0, len), 1, 0, u64::MAX, &mut rows);
    // A split where a second rank would start: the byte the input's first byte points at.
    let cut = aligned_start(&path, u64::from(data.first().copied().unwrap_or(0)) % (len + 1)).unwrap();
    assert!(cut <= len && (cut == 0 || cut == len || data[cut as usize - 1] == b'\n'), "cut {cut}");
    let (a, b) = (census(&path, 0, cut).unwrap(), census(&path, cut, len).unwrap());
    assert_eq!((a.rows + b.rows, a.lines + b.lines), (whole.rows, whole.lines));
    if parsed.is_ok() {
        let m = &rows.matrix;
        assert_eq!(rows.labels.len() as u64, whole.rows);
        assert_eq!(m.indptr.len(), rows.labels.len() + 1);
        assert!(m.indptr.windows(2).all(|w| w[0] <= w[1]) && *m.indptr.last().unwrap() == m.indices.len());
        assert!(m.indices.iter().all(|&j| (j as usize) < m.cols));
        let (mut first, mut second) = (Rows::default(), Rows::default());
        parse_range(&path, (0, cut), 1, 0, u64::MAX, &mut first).unwrap();
        parse_range(&path, (cut, len), 1 + a.lines, 0, u64::MAX, &mut second).unwrap();
        first.labels.extend(&second.labels);
        first.lines.extend(&second.lines);
        assert_eq!((first.labels.len(), &first.lines), (rows.labels.len(), &rows.lines));
    }
});
