//! LIBSVM text format: `label index:value index:value … [# comment]`.
//!
//! Accepted: 1-based strictly increasing indices, any real label (mapped to ±1 later,
//! see `labels.rs`), `#` comments, blank lines, rows with a label and no features,
//! trailing spaces, tabs and CRLF line ends. Everything else is an `Error::Parse` that
//! names the file, the line and the fix.
//!
//! Files are read by byte range so a rank reads only its own part: a line belongs to
//! the range that holds its first byte (`aligned_start`).

use super::csr::Csr;
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Rows parsed from one byte range, with raw (unmapped) labels.
#[derive(Debug)]
pub struct Rows {
    pub labels: Vec<f64>,
    /// 1-based line number of each row, for label errors found after parsing.
    pub lines: Vec<u64>,
    /// `cols` is the largest index seen (1-based), i.e. the local dimension.
    pub matrix: Csr,
}

impl Default for Rows {
    fn default() -> Self {
        Rows { labels: Vec::new(), lines: Vec::new(), matrix: Csr::empty(0) }
    }
}

/// Data rows and lines in a byte range (phase 1 of sharded loading).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Census {
    pub rows: u64,
    pub lines: u64,
}

/// Opens `path` with an error that names it.
pub fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::io(path, format!("cannot open: {e}")))
}

pub fn file_len(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, format!("cannot open: {e}")))?;
    Ok(meta.len())
}

/// The first line start at or after byte `pos`: 0, or one past the first newline at or
/// after `pos − 1`; the file length if there is none.
pub fn aligned_start(path: &Path, pos: u64) -> Result<u64> {
    if pos == 0 {
        return Ok(0);
    }
    let mut reader = BufReader::new(open(path)?);
    reader.seek(SeekFrom::Start(pos - 1)).map_err(|e| Error::io(path, e))?;
    let mut skipped = Vec::new();
    let n = reader.read_until(b'\n', &mut skipped).map_err(|e| Error::io(path, e))?;
    Ok(pos - 1 + n as u64)
}

/// Calls `each(line_bytes_without_eol, local_line_index)` for every line starting in
/// `[start, end)`, both already line-aligned. Stops early when `each` returns false.
fn for_each_line(path: &Path, start: u64, end: u64, mut each: impl FnMut(&[u8], u64) -> Result<bool>) -> Result<()> {
    let mut file = open(path)?;
    file.seek(SeekFrom::Start(start)).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file.take(end - start));
    let mut line = Vec::with_capacity(256);
    let mut index = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if !each(&line, index)? {
            return Ok(());
        }
        index += 1;
    }
}

/// True for a line holding a sample (not blank, not only a comment).
pub fn is_data_line(line: &[u8]) -> bool {
    let content = match line.iter().position(|&b| b == b'#') {
        Some(p) => &line[..p],
        None => line,
    };
    content.iter().any(|b| !b.is_ascii_whitespace())
}

/// Counts data rows and lines in `[start, end)` without parsing them.
pub fn census(path: &Path, start: u64, end: u64) -> Result<Census> {
    let mut c = Census::default();
    for_each_line(path, start, end, |line, _| {
        c.lines += 1;
        c.rows += u64::from(is_data_line(line));
        Ok(true)
    })?;
    Ok(c)
}

/// Parses the data rows of `[start, end)`, skipping the first `skip` data rows and
/// keeping at most `take`. `first_line` is the 1-based file line number of `start`.
pub fn parse_range(
    path: &Path,
    (start, end): (u64, u64),
    first_line: u64,
    skip: u64,
    take: u64,
    rows: &mut Rows,
) -> Result<()> {
    let mut seen = 0u64;
    let mut kept = 0u64;
    for_each_line(path, start, end, |bytes, index| {
        if kept == take {
            return Ok(false);
        }
        if !is_data_line(bytes) {
            return Ok(true);
        }
        seen += 1;
        if seen <= skip {
            return Ok(true);
        }
        let line_no = first_line + index;
        let text = std::str::from_utf8(bytes).map_err(|_| Error::Parse {
            path: path.to_path_buf(),
            line: line_no,
            what: "the line is not valid UTF-8 text".into(),
            fix: "LIBSVM files are plain ASCII text; check the file is not binary or compressed".into(),
        })?;
        parse_line(text, &mut rows.matrix)
            .map(|label| {
                rows.labels.push(label);
                rows.lines.push(line_no);
            })
            .map_err(|(what, fix)| Error::Parse { path: path.to_path_buf(), line: line_no, what, fix })?;
        kept += 1;
        Ok(true)
    })
}

type LineError = (String, String);

/// Parses one data line into a new row of `matrix` (growing `matrix.cols` to the
/// largest 1-based index) and returns its raw label.
pub fn parse_line(line: &str, matrix: &mut Csr) -> Result<f64, LineError> {
    // Byte searches: `str::split(char)` and `split_once(char)` compare every match with
    // a `memcmp` call, a fifth of a9a's parsing time.
    let content = &line[..line.bytes().position(|b| b == b'#').unwrap_or(line.len())];
    let mut pos = 0;
    let label_text = next_token(content, &mut pos).unwrap_or("");
    let label: f64 = parse_value(label_text).filter(|v: &f64| v.is_finite()).ok_or_else(|| {
        (
            format!("the label '{label_text}' is not a number"),
            "each row starts with its label (e.g. +1, -1, 0 or 2), then index:value pairs".to_string(),
        )
    })?;
    let row_start = matrix.indices.len();
    let mut previous = 0u32;
    while let Some(token) = next_token(content, &mut pos) {
        let pair = plain_pair(token.as_bytes()).map_or_else(|| parse_pair(token), Ok);
        let (j, v) = pair.inspect_err(|_| truncate(matrix, row_start))?;
        if j <= previous {
            truncate(matrix, row_start);
            let what = if j == previous {
                format!("feature index {j} appears twice")
            } else {
                format!("feature index {j} comes after {previous}")
            };
            return Err((what, "sort the features of each row by increasing index".into()));
        }
        previous = j;
        matrix.indices.push(j - 1);
        matrix.values.push(v);
        matrix.cols = matrix.cols.max(j as usize);
    }
    matrix.indptr.push(matrix.indices.len());
    Ok(label)
}

/// The next token of `text` from byte `pos` on, split at ASCII whitespace as
/// `str::split_ascii_whitespace` does, by plain loops (that iterator's adapters cost more
/// than parsing the tokens did); `pos` moves past it.
fn next_token<'a>(text: &'a str, pos: &mut usize) -> Option<&'a str> {
    let bytes = text.as_bytes();
    let mut i = *pos;
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    let start = i;
    while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    *pos = i;
    (i > start).then(|| &text[start..i])
}

/// `parse_pair` for the form LIBSVM files hold — 1 to 9 digits, not all zero, a colon, a
/// plain decimal — in one pass; None for anything else, which `parse_pair` then reads
/// (or rejects, with its message).
fn plain_pair(token: &[u8]) -> Option<(u32, f64)> {
    let mut j = 0u32;
    let mut i = 0;
    while i < token.len() && i < 9 && token[i].is_ascii_digit() {
        j = j * 10 + u32::from(token[i] - b'0');
        i += 1;
    }
    if i == 0 || j == 0 || token.get(i) != Some(&b':') {
        return None;
    }
    Some((j, plain_decimal(&token[i + 1..])?))
}

fn truncate(matrix: &mut Csr, len: usize) {
    matrix.indices.truncate(len);
    matrix.values.truncate(len);
}

fn parse_pair(token: &str) -> Result<(u32, f64), LineError> {
    let bad = |what: String| (what, "features are written index:value with index ≥ 1".to_string());
    let colon = token.bytes().position(|b| b == b':').ok_or_else(|| bad(format!("'{token}' is not index:value")))?;
    let (j, v) = (&token[..colon], &token[colon + 1..]);
    let j: u32 = parse_index(j).ok_or_else(|| bad(format!("'{j}' in '{token}' is not an index")))?;
    if j == 0 {
        return Err((
            format!("feature index 0 in '{token}'"),
            "LIBSVM indices start at 1: add 1 to every index of a 0-based file".into(),
        ));
    }
    let v: f64 = parse_value(v)
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| bad(format!("'{v}' in '{token}' is not a finite number")))?;
    Ok((j, v))
}

/// `text.parse::<u32>()`, with the form LIBSVM files hold (1 to 9 ASCII digits) read
/// directly: the general parser was a tenth of a9a's reading time.
fn parse_index(text: &str) -> Option<u32> {
    let digits = text.as_bytes();
    if (1..=9).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) {
        return Some(digits.iter().fold(0, |n, &c| n * 10 + u32::from(c - b'0')));
    }
    text.parse().ok()
}

/// `text.parse::<f64>()`, bit for bit, with plain decimals read directly (the values of
/// every LIBSVM file here: `1`, `-1`, `0.0088627805`); anything else goes to the general
/// parser.
fn parse_value(text: &str) -> Option<f64> {
    plain_decimal(text.as_bytes()).or_else(|| text.parse().ok())
}

/// `[+-]digits[.digits]` (either run of digits may be empty, not both) with at most 15
/// digits: then the digits as an integer m < 10¹⁵ < 2⁵³ and 10^k (k ≤ 15 digits after the
/// point) are exact f64s, and the one correctly rounded division m/10^k is the correctly
/// rounded value of the text, which is what `str::parse` returns (Clinger's fast path).
/// None for any other text.
fn plain_decimal(text: &[u8]) -> Option<f64> {
    const POWERS_OF_TEN: [f64; 16] =
        [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    let (negative, body) = match text.first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mut mantissa, mut digits, mut point) = (0u64, 0usize, None);
    for (i, &c) in body.iter().enumerate() {
        match c {
            b'0'..=b'9' if digits < 15 => (mantissa, digits) = (mantissa * 10 + u64::from(c - b'0'), digits + 1),
            b'.' if point.is_none() => point = Some(i),
            _ => return None,
        }
    }
    if digits == 0 {
        return None;
    }
    // Through i64 (m < 10¹⁵): baseline x86-64 converts signed integers in one instruction,
    // unsigned ones with a branch.
    let m = mantissa as i64 as f64;
    let magnitude = match point.map_or(0, |p| body.len() - p - 1) {
        0 => m,
        decimals => m / POWERS_OF_TEN[decimals],
    };
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The tokenizer against `split_ascii_whitespace`, and the one-pass pair reader against
    /// `parse_pair`, on random lines over digits, colons, points, signs and every ASCII
    /// whitespace.
    #[test]
    fn one_pass_tokens_and_pairs_are_the_general_ones() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let alphabet = b"0123456789001:::.-e \t\r\x0c\n";
        let mut plain = 0;
        for _ in 0..50_000 {
            let len = rng.random_range(0..30);
            let line: String = (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect();
            let mut pos = 0;
            let mut got = Vec::new();
            while let Some(token) = next_token(&line, &mut pos) {
                got.push(token);
            }
            assert_eq!(got, line.split_ascii_whitespace().collect::<Vec<_>>(), "{line:?}");
            for token in got {
                if let Some((j, v)) = plain_pair(token.as_bytes()) {
                    assert_eq!(parse_pair(token).map(|(j, v)| (j, v.to_bits())), Ok((j, v.to_bits())), "{token:?}");
                    plain += 1;
                }
            }
        }
        assert!(plain > 3_000, "only {plain} plain pairs were drawn");
        assert_eq!(plain_pair(b"123456789:1"), Some((123456789, 1.0)));
        assert_eq!(plain_pair(b"1234567890:1"), None); // ten digits: parse_pair's business
        assert_eq!(plain_pair(b"0:1"), None);
    }

    /// The fast paths against `str::parse`, bit for bit (or both rejecting): random
    /// strings over digits, signs, points and exponents, and the edges by hand.
    #[test]
    fn number_fast_paths_are_str_parse() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let alphabet = b"0123456789000999..-+e";
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "+0",
            "1",
            "-1",
            ".5",
            "5.",
            ".",
            "-",
            "+",
            "",
            "1.2.3",
            "0.0088627805",
            "999999999999999",
            "9999999999999999",
            "0.000000000000001",
            "123456789012345.",
            "1e5",
            "inf",
            "NaN",
            "4294967295",
            "4294967296",
            "000000001",
            "0000000001",
            "1234567890",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        for _ in 0..200_000 {
            let len = rng.random_range(1..20);
            texts.push((0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect());
        }
        for t in &texts {
            let want: Option<f64> = t.parse().ok();
            assert_eq!(parse_value(t).map(f64::to_bits), want.map(f64::to_bits), "'{t}'");
            assert_eq!(parse_index(t), t.parse::<u32>().ok(), "'{t}'");
        }
        assert!(
            texts.iter().filter(|t| plain_decimal(t.as_bytes()).is_some()).count() > 20_000,
            "the fast path was hardly taken"
        );
    }

    #[test]
    fn parses_the_accepted_forms() {
        let mut m = Csr::empty(0);
        assert_eq!(parse_line("+1 1:0.5 3:2  ", &mut m), Ok(1.0));
        assert_eq!(parse_line("0\t2:1 # trailing comment", &mut m), Ok(0.0));
        assert_eq!(parse_line("-1", &mut m), Ok(-1.0));
        assert_eq!(m.rows(), 3);
        assert_eq!(m.cols, 3);
        assert_eq!(m.row(0), (&[0u32, 2][..], &[0.5, 2.0][..]));
        assert_eq!(m.row(1), (&[1u32][..], &[1.0][..]));
        assert_eq!(m.row(2).0.len(), 0);
    }

    #[test]
    fn rejects_malformed_lines_and_leaves_the_matrix_unchanged() {
        for bad in ["x 1:1", "1 1:1 1:2", "1 3:1 2:1", "1 0:1", "1 1:abc", "1 1", "1 1:nan", "1 a:1"] {
            let mut m = Csr::empty(0);
            assert!(parse_line(bad, &mut m).is_err(), "{bad}");
            assert_eq!(m.nnz(), 0, "{bad}");
            assert_eq!(m.rows(), 0, "{bad}");
        }
    }

    #[test]
    fn data_lines_exclude_blank_and_comment_lines() {
        assert!(is_data_line(b"1 1:1"));
        assert!(is_data_line(b"-1"));
        assert!(!is_data_line(b"   \t"));
        assert!(!is_data_line(b"# header"));
        assert!(!is_data_line(b""));
    }
}
