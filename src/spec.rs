//! SPEC strings of compressors and methods: `name[:key=value,flag,…]`, e.g. `top-k:k=10`,
//! `qsgd:s=4,norm=inf`, `rand-k:k=5,unscaled`, `scalecom:beta=0.5,warmup=10`.
//!
//! Each compressor or method reads its own keys from the parsed SPEC in its own file
//! (`take_*` consume them) and then calls `finish`, so that a key nobody read — a typo,
//! or a parameter meant for another method — is an error instead of a silent default.

use crate::error::{Error, Result};
use std::cell::RefCell;

thread_local! {
    /// The keys `take` was asked for while [`keys_read`] runs (None otherwise).
    static KEYS_READ: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Runs `f` and returns, beside its result, every key a SPEC parser asked for meanwhile
/// (present or not, in order): what a compressor takes, learnt from its own parser, so
/// no second list of its keys can drift (`qtrain sweep` resolves its grid keys with it).
/// A parser that fails early has asked only for the keys before its failure.
pub fn keys_read<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let outer = KEYS_READ.with(|k| k.borrow_mut().replace(Vec::new()));
    let result = f();
    let keys = KEYS_READ.with(|k| std::mem::replace(&mut *k.borrow_mut(), outer)).unwrap_or_default();
    (result, keys)
}

/// What a SPEC configures: named in every error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecKind {
    Compressor,
    Method,
}

impl SpecKind {
    fn noun(self) -> &'static str {
        match self {
            SpecKind::Compressor => "compressor",
            SpecKind::Method => "method",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            SpecKind::Compressor => "--compressor",
            SpecKind::Method => "--method",
        }
    }
}

/// A parsed SPEC. Parameters keep their textual order.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub name: String,
    params: Vec<(String, Option<String>)>,
    text: String,
    kind: SpecKind,
}

impl Spec {
    pub fn parse_compressor(text: &str) -> Result<Spec> {
        Spec::parse(text, SpecKind::Compressor)
    }

    pub fn parse_method(text: &str) -> Result<Spec> {
        Spec::parse(text, SpecKind::Method)
    }

    pub fn parse(text: &str, kind: SpecKind) -> Result<Spec> {
        let text = text.trim();
        let (name, rest) = match text.split_once(':') {
            Some((n, r)) => (n.trim(), Some(r)),
            None => (text, None),
        };
        if name.is_empty() {
            return Err(Error::config(
                format!("empty {} spec '{text}'", kind.noun()),
                format!("write e.g. {} NAME:key=value (see qtrain train --help)", kind.flag()),
            ));
        }
        let mut params = Vec::new();
        for part in rest.unwrap_or("").split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k, v)) => params.push((k.trim().to_string(), Some(v.trim().to_string()))),
                None => params.push((part.to_string(), None)),
            }
        }
        Ok(Spec { name: name.to_string(), params, text: text.to_string(), kind })
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn take(&mut self, key: &str) -> Option<Option<String>> {
        KEYS_READ.with(|k| k.borrow_mut().as_mut().map(|keys| keys.push(key.to_string())));
        let pos = self.params.iter().position(|(k, _)| k == key)?;
        Some(self.params.remove(pos).1)
    }

    /// Sets `key=value`: replaces the key's value where present (in its place), else
    /// appends it; the text becomes `name:key=value,…` (`qtrain sweep`'s grid points).
    pub fn set(&mut self, key: &str, value: &str) {
        match self.params.iter_mut().find(|(k, _)| k == key) {
            Some(param) => param.1 = Some(value.to_string()),
            None => self.params.push((key.to_string(), Some(value.to_string()))),
        }
        let params: Vec<String> =
            self.params.iter().map(|(k, v)| v.as_ref().map_or_else(|| k.clone(), |v| format!("{k}={v}"))).collect();
        self.text = if params.is_empty() { self.name.clone() } else { format!("{}:{}", self.name, params.join(",")) };
    }

    fn subject(&self) -> String {
        format!("{} '{}'", self.kind.noun(), self.text)
    }

    /// Whether a bare flag is present, without consuming it.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.params.iter().any(|(k, v)| k == flag && v.is_none())
    }

    /// A required whole-number parameter such as `k=10`.
    pub fn take_usize(&mut self, key: &str) -> Result<usize> {
        match self.take(key) {
            Some(Some(v)) => self.parse_usize(key, &v),
            _ => Err(Error::config(
                format!("{} needs the parameter {key}", self.subject()),
                format!("write {}:{key}=N", self.name),
            )),
        }
    }

    /// A whole-number parameter, or `default` when absent.
    pub fn take_usize_or(&mut self, key: &str, default: usize) -> Result<usize> {
        Ok(self.take_usize_opt(key)?.unwrap_or(default))
    }

    /// A whole-number parameter, or None when absent.
    pub fn take_usize_opt(&mut self, key: &str) -> Result<Option<usize>> {
        match self.take(key) {
            None => Ok(None),
            Some(Some(v)) => self.parse_usize(key, &v).map(Some),
            Some(None) => Err(self.needs_value(key, "N")),
        }
    }

    fn parse_usize(&self, key: &str, v: &str) -> Result<usize> {
        v.parse::<usize>().map_err(|_| {
            Error::config(
                format!("{}: {key}={v} is not a whole number", self.subject()),
                format!("write {key}=N with N a non-negative integer"),
            )
        })
    }

    /// A required finite number parameter such as `p=0.1`.
    pub fn take_f64(&mut self, key: &str) -> Result<f64> {
        match self.take(key) {
            Some(Some(v)) => self.parse_f64(key, &v),
            Some(None) => Err(self.needs_value(key, "F")),
            None => Err(Error::config(
                format!("{} needs the parameter {key}", self.subject()),
                format!("write {}:{key}=F", self.name),
            )),
        }
    }

    /// A number parameter that may also be the word `word` (e.g. `p=auto`): Ok(None) for the
    /// word, `default` when absent.
    pub fn take_f64_or_word(&mut self, key: &str, word: &str, default: f64) -> Result<Option<f64>> {
        match self.take(key) {
            None => Ok(Some(default)),
            Some(Some(v)) if v == word => Ok(None),
            Some(Some(v)) => self.parse_f64(key, &v).map(Some).map_err(|_| {
                Error::config(
                    format!("{}: {key}={v} is neither a finite number nor '{word}'", self.subject()),
                    format!("write {key}=F or {key}={word}"),
                )
            }),
            Some(None) => Err(self.needs_value(key, "F")),
        }
    }

    /// A finite number parameter, or `default` when absent.
    pub fn take_f64_or(&mut self, key: &str, default: f64) -> Result<f64> {
        match self.take(key) {
            None => Ok(default),
            Some(Some(v)) => self.parse_f64(key, &v),
            Some(None) => Err(self.needs_value(key, "F")),
        }
    }

    fn parse_f64(&self, key: &str, v: &str) -> Result<f64> {
        v.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| {
            Error::config(
                format!("{}: {key}={v} is not a finite number", self.subject()),
                format!("write {key}=F, e.g. {key}=0.5"),
            )
        })
    }

    fn needs_value(&self, key: &str, placeholder: &str) -> Error {
        Error::config(format!("{}: {key} needs a value", self.subject()), format!("write {key}={placeholder}"))
    }

    /// A parameter with one of `choices` as value, or `default` when absent.
    pub fn take_choice(&mut self, key: &str, choices: &[&str], default: &str) -> Result<String> {
        match self.take(key) {
            None => Ok(default.to_string()),
            Some(Some(v)) if choices.contains(&v.as_str()) => Ok(v),
            Some(v) => Err(Error::config(
                format!("{}: {key}={} is not one of {}", self.subject(), v.unwrap_or_default(), choices.join(", ")),
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
                format!("{}: {flag}={v}", self.subject()),
                format!("{flag} is a flag: write it alone, e.g. {}:…,{flag}", self.name),
            )),
        }
    }

    /// Rejects leftover parameters, so a typo never silently falls back to a default.
    pub fn finish(self) -> Result<()> {
        self.finish_with(|_| "see the SPEC list in qtrain train --help".to_string())
    }

    /// `finish` for a SPEC whose keys are known: the error lists them.
    pub fn finish_known(self, known: &[&str]) -> Result<()> {
        let name = self.name.clone();
        self.finish_with(|kind| match known {
            [] => format!("{} {name} takes no keys", kind.noun()),
            _ => format!("{} {name} knows: {}", kind.noun(), known.join(", ")),
        })
    }

    fn finish_with(self, fix: impl FnOnce(SpecKind) -> String) -> Result<()> {
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
        Err(Error::config(format!("{}: unknown parameter(s) {}", self.subject(), left.join(", ")), fix(self.kind)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_values_and_flags() {
        let mut s = Spec::parse_compressor("rand-k:k=5, unscaled").unwrap();
        assert_eq!(s.name, "rand-k");
        assert!(s.has_flag("unscaled") && !s.has_flag("k"));
        assert_eq!(s.take_usize("k").unwrap(), 5);
        assert!(s.take_flag("unscaled").unwrap());
        assert!(!s.clone().take_flag("other").unwrap());
        s.finish().unwrap();
    }

    #[test]
    fn leftovers_and_bad_numbers_are_errors() {
        let s = Spec::parse_compressor("top-k:k=3,kk=4").unwrap();
        let mut s2 = s.clone();
        s2.take_usize("k").unwrap();
        assert!(s2.finish().is_err());
        let mut bad = Spec::parse_compressor("top-k:k=three").unwrap();
        assert!(bad.take_usize("k").is_err());
        let mut valued = Spec::parse_compressor("rand-k:k=2,unscaled=true").unwrap();
        assert!(valued.take_flag("unscaled").is_err());
        let mut missing = Spec::parse_compressor("top-k").unwrap();
        assert!(missing.take_usize("k").is_err());
    }

    #[test]
    fn defaults_apply_only_when_a_key_is_absent() {
        let mut s = Spec::parse_method("scalecom:beta=0.25").unwrap();
        assert_eq!(s.take_f64_or("beta", 1.0).unwrap(), 0.25);
        assert_eq!(s.take_usize_or("warmup", 7).unwrap(), 7);
        s.finish_known(&["beta", "warmup"]).unwrap();
        for bad in ["scalecom:beta=x", "scalecom:beta=inf", "scalecom:beta"] {
            let mut s = Spec::parse_method(bad).unwrap();
            assert!(s.take_f64_or("beta", 1.0).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_replaces_a_present_key_in_place_or_appends_it() {
        let mut s = Spec::parse_method("clag:zeta=0.5, init=compressed").unwrap();
        s.set("zeta", "4");
        assert_eq!(s.text(), "clag:zeta=4,init=compressed");
        let mut s = Spec::parse_compressor("rand-k:unscaled").unwrap();
        s.set("k", "3");
        assert_eq!(s.text(), "rand-k:unscaled,k=3");
        assert!(s.has_flag("unscaled"));
        assert_eq!(Spec::parse_compressor(s.text()).unwrap(), s);
        let mut bare = Spec::parse_method("clag").unwrap();
        bare.set("zeta", "0");
        assert_eq!(bare.text(), "clag:zeta=0");
    }

    /// The keys a parser asks for are recorded whether present or not, and only inside
    /// `keys_read` (nested calls keep their own lists).
    #[test]
    fn keys_read_records_what_parsers_ask_for() {
        let ((), keys) = keys_read(|| {
            let mut s = Spec::parse_compressor("qsgd:s=2").unwrap();
            s.take_usize("s").unwrap();
            let ((), inner) = keys_read(|| {
                let _ = Spec::parse_compressor("top-k").unwrap().take_usize("k");
            });
            assert_eq!(inner, ["k"]);
            s.take_choice("norm", &["2", "inf"], "2").unwrap();
        });
        assert_eq!(keys, ["s", "norm"]);
        Spec::parse_compressor("top-k:k=1").unwrap().take_usize("k").unwrap();
        assert_eq!(keys_read(|| ()).1, Vec::<String>::new());
    }

    /// A method key the method does not read names the method and the keys it knows.
    #[test]
    fn unknown_method_keys_list_the_known_ones() {
        let mut s = Spec::parse_method("ef21:beta=0.5").unwrap();
        s.take_choice("init", &["full", "compressed"], "full").unwrap();
        let e = s.finish_known(&["init"]).unwrap_err().to_string();
        assert!(
            e.contains("method 'ef21:beta=0.5'") && e.contains("beta=0.5") && e.contains("ef21 knows: init"),
            "{e}"
        );
        let e = Spec::parse_method("gd:x=1").unwrap().finish_known(&[]).unwrap_err().to_string();
        assert!(e.contains("gd takes no keys"), "{e}");
    }
}
