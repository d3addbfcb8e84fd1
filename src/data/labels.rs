//! Binary labels: the smaller of the two label values becomes −1, the larger +1
//! ({−1,+1}, {0,1} and {1,2} all work, as in the papers' code; ALGORITHMS.md §0.2).

use crate::error::{Error, Result};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LabelMap {
    pub negative: f64,
    pub positive: f64,
}

impl LabelMap {
    /// The map from the global smallest and largest label.
    pub fn new(min: f64, max: f64, path: &Path) -> Result<LabelMap> {
        if min >= max {
            return Err(Error::config(
                format!("{}: every row has the label {min}", path.display()),
                "binary classification needs two label values (e.g. -1/+1, 0/1 or 1/2)",
            ));
        }
        Ok(LabelMap { negative: min, positive: max })
    }

    /// Maps raw labels in place; a third value is an error naming its line.
    pub fn apply(&self, labels: &mut [f64], lines: &[u64], path: &Path) -> Result<()> {
        for (label, &line) in labels.iter_mut().zip(lines) {
            *label = if *label == self.negative {
                -1.0
            } else if *label == self.positive {
                1.0
            } else {
                return Err(Error::Parse {
                    path: path.to_path_buf(),
                    line,
                    what: format!(
                        "label {} is neither {} nor {}, the two labels of the training data",
                        label, self.negative, self.positive
                    ),
                    fix: "qtrain trains binary classifiers: use exactly two label values".into(),
                });
            };
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!("labels {} -> -1, {} -> +1", self.negative, self.positive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaller_label_becomes_negative() {
        let path = Path::new("x.svm");
        for (a, b) in [(-1.0, 1.0), (0.0, 1.0), (1.0, 2.0)] {
            let map = LabelMap::new(a, b, path).unwrap();
            let mut l = vec![b, a, b];
            map.apply(&mut l, &[1, 2, 3], path).unwrap();
            assert_eq!(l, vec![1.0, -1.0, 1.0]);
        }
    }

    #[test]
    fn a_third_label_names_its_line() {
        let path = Path::new("x.svm");
        let map = LabelMap::new(0.0, 1.0, path).unwrap();
        let e = map.apply(&mut [0.0, 3.0], &[4, 7], path).unwrap_err().to_string();
        assert!(e.starts_with("x.svm:7: label 3"), "{e}");
        assert!(LabelMap::new(1.0, 1.0, path).is_err());
    }
}
