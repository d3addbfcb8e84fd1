//! Compressor SPEC strings: `name[:key=value,flag,…]`, e.g. `top-k:k=10`,
//! `qsgd:s=4,norm=inf`, `rand-k:k=5,unscaled`.

use crate::error::{Error, Result};

/// A parsed SPEC. Parameters keep their textual order; `take_*` consume them so that
/// [`Spec::finish`] can reject anything a compressor did not understand.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub name: String,
    params: Vec<(String, Option<String>)>,
    text: String,
}

impl Spec {
    pub fn parse(text: &str) -> Result<Spec> {
        let text = text.trim();
        let (name, rest) = match text.split_once(':') {
            Some((n, r)) => (n.trim(), Some(r)),
            None => (text, None),
        };
        if name.is_empty() {
            return Err(Error::config(
                format!("empty compressor spec '{text}'"),
                "use e.g. --compressor top-k:k=10 (see qtrain train --help)",
            ));
        }
        let mut params = Vec::new();
        for part in rest.unwrap_or("").split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k, v)) => params.push((k.trim().to_string(), Some(v.trim().to_string()))),
                None => params.push((part.to_string(), None)),
            }
        }
        Ok(Spec { name: name.to_string(), params, text: text.to_string() })
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn take(&mut self, key: &str) -> Option<Option<String>> {
        let pos = self.params.iter().position(|(k, _)| k == key)?;
        Some(self.params.remove(pos).1)
    }

    /// A required positive integer parameter such as `k=10`.
    pub fn take_usize(&mut self, key: &str) -> Result<usize> {
        match self.take(key) {
            Some(Some(v)) => v.parse::<usize>().map_err(|_| {
                Error::config(
                    format!("compressor '{}': {key}={v} is not a whole number", self.text),
                    format!("write {key}=N with N a positive integer"),
                )
            }),
            _ => Err(Error::config(
                format!("compressor '{}' needs the parameter {key}", self.text),
                format!("write {}:{key}=N", self.name),
            )),
        }
    }

    /// A parameter with one of `choices` as value, or `default` when absent.
    pub fn take_choice(&mut self, key: &str, choices: &[&str], default: &str) -> Result<String> {
        match self.take(key) {
            None => Ok(default.to_string()),
            Some(Some(v)) if choices.contains(&v.as_str()) => Ok(v),
            Some(v) => Err(Error::config(
                format!(
                    "compressor '{}': {key}={} is not one of {}",
                    self.text,
                    v.unwrap_or_default(),
                    choices.join(", ")
                ),
                format!("write {key}={}", choices[0]),
            )),
        }
    }

    /// A bare flag such as `unscaled`; `unscaled=true` is an error rather than being
    /// silently ignored.
    pub fn take_flag(&mut self, flag: &str) -> Result<bool> {
        match self.take(flag) {
            None => Ok(false),
            Some(None) => Ok(true),
            Some(Some(v)) => Err(Error::config(
                format!("compressor '{}': {flag}={v}", self.text),
                format!("{flag} is a flag: write it alone, e.g. {}:…,{flag}", self.name),
            )),
        }
    }

    /// Rejects leftover parameters, so a typo never silently falls back to a default.
    pub fn finish(self) -> Result<()> {
        if self.params.is_empty() {
            return Ok(());
        }
        let left: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect();
        Err(Error::config(
            format!("compressor '{}': unknown parameter(s) {}", self.text, left.join(", ")),
            "see the SPEC list in qtrain train --help",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_values_and_flags() {
        let mut s = Spec::parse("rand-k:k=5, unscaled").unwrap();
        assert_eq!(s.name, "rand-k");
        assert_eq!(s.take_usize("k").unwrap(), 5);
        assert!(s.take_flag("unscaled").unwrap());
        assert!(!s.clone().take_flag("other").unwrap());
        s.finish().unwrap();
    }

    #[test]
    fn leftovers_and_bad_numbers_are_errors() {
        let s = Spec::parse("top-k:k=3,kk=4").unwrap();
        let mut s2 = s.clone();
        s2.take_usize("k").unwrap();
        assert!(s2.finish().is_err());
        let mut bad = Spec::parse("top-k:k=three").unwrap();
        assert!(bad.take_usize("k").is_err());
        let mut valued = Spec::parse("rand-k:k=2,unscaled=true").unwrap();
        assert!(valued.take_flag("unscaled").is_err());
        let mut missing = Spec::parse("top-k").unwrap();
        assert!(missing.take_usize("k").is_err());
    }
}
