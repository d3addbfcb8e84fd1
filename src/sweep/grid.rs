//! The grid of `qtrain sweep`: the `--grid KEY=V1,V2,…` axes, the SPEC each key belongs
//! to, and the points (the axes' cartesian product with the step factors), each with the
//! method and compressor SPECs it trains and the name of its result file.
//!
//! A key is the method's when the method registry lists it (`Entry::keys`), a
//! compressor's when that compressor's own parser asks for it (`spec::keys_read` around
//! `compress::build`), so both answers come from the code that reads the SPEC. A key that
//! both, or two compressors of a `;` list, take is ambiguous and an error.

use crate::error::{Error, Result};
use crate::method;
use crate::spec::Spec;

/// Where a grid key goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The `--method` SPEC.
    Method,
    /// The SPEC at this index of the `--compressor` list (`C1;C2;…`; 0 for one SPEC).
    Compressor(usize),
}

/// One `--grid` axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

/// `KEY=V1,V2,…`: a key and its distinct values; none may be empty or contain the SPEC
/// separators (`:` `;` `=`) or whitespace.
pub fn parse_axis(text: &str) -> Result<Axis> {
    let bad = |why: &str| {
        Error::config(format!("--grid '{text}': {why}"), "write --grid KEY=V1,V2,…, e.g. --grid zeta=0,1,4")
    };
    let (key, values) = text.split_once('=').ok_or_else(|| bad("no '='"))?;
    let key = key.trim();
    let plain = |s: &str| !s.is_empty() && !s.contains([':', ';', '=', ',']) && !s.contains(char::is_whitespace);
    if !plain(key) {
        return Err(bad("the key must be one word"));
    }
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
    if let Some(v) = values.iter().find(|v| !plain(v)) {
        return Err(bad(&format!("the value '{v}' is empty or holds ':', ';', '=' or a space")));
    }
    if let Some((i, v)) = values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)) {
        return Err(bad(&format!("the value '{v}' is given twice (again as value {})", i + 1)));
    }
    Ok(Axis { key: key.to_string(), values })
}

/// The axes of every `--grid`; a key may have one axis only.
pub fn parse_axes(texts: &[String]) -> Result<Vec<Axis>> {
    let axes = texts.iter().map(|t| parse_axis(t)).collect::<Result<Vec<_>>>()?;
    for (i, axis) in axes.iter().enumerate() {
        if axes[..i].iter().any(|a| a.key == axis.key) {
            return Err(Error::config(
                format!("--grid {} is given twice", axis.key),
                "give each key one --grid with all its values",
            ));
        }
    }
    Ok(axes)
}

/// Checks `--step-factors`: at least one, each finite and positive, none twice.
pub fn check_step_factors(factors: &[f64]) -> Result<()> {
    let bad =
        |what: String| Error::config(what, "give positive factors of the default step, e.g. --step-factors 1,2,4");
    if factors.is_empty() {
        return Err(bad("--step-factors is empty".into()));
    }
    if let Some(f) = factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
        return Err(bad(format!("--step-factors {f}")));
    }
    if let Some((_, f)) = factors.iter().enumerate().find(|(i, f)| factors[..*i].contains(f)) {
        return Err(bad(format!("--step-factors gives {f} twice")));
    }
    Ok(())
}

/// Where each axis's key goes. `compressor_keys(spec)` lists the keys the compressor of
/// `spec` asks for when it is built.
pub fn resolve(
    axes: &[Axis],
    method_spec: &str,
    compressor: &str,
    compressor_keys: impl Fn(&str) -> Vec<String>,
) -> Result<Vec<Place>> {
    let entry = method::entry(&Spec::parse_method(method_spec)?)?;
    let method_keys: Vec<&str> = entry.keys.iter().map(|k| k.0).collect();
    let specs = compressor_specs(compressor)?;
    axes.iter()
        .map(|axis| {
            let mut places = Vec::new();
            let mut known = vec![describe_keys(&format!("method {}", entry.name), &method_keys)];
            if method_keys.contains(&axis.key.as_str()) {
                places.push(Place::Method);
            }
            for (i, spec) in specs.iter().enumerate() {
                let mut probe = spec.clone();
                probe.set(&axis.key, &axis.values[0]);
                let keys = compressor_keys(probe.text());
                if keys.contains(&axis.key) {
                    places.push(Place::Compressor(i));
                }
                let mut asked: Vec<&str> = Vec::new();
                for k in &keys {
                    if !asked.contains(&k.as_str()) {
                        asked.push(k);
                    }
                }
                known.push(describe_keys(&format!("compressor {}", spec.name), &asked));
            }
            match places[..] {
                [place] => Ok(place),
                [] => Err(Error::config(
                    format!(
                        "--grid {}: neither --method '{}' nor --compressor '{}' takes the key '{}'",
                        axis.key,
                        method_spec.trim(),
                        compressor.trim(),
                        axis.key
                    ),
                    format!("{}; give one of those keys", known.join("; ")),
                )),
                _ => Err(Error::config(
                    format!(
                        "--grid {}: the key is taken by more than one SPEC ({})",
                        axis.key,
                        names(&places, entry.name, &specs)
                    ),
                    "a grid key must belong to one SPEC of --method and --compressor",
                )),
            }
        })
        .collect()
}

fn describe_keys(what: &str, keys: &[&str]) -> String {
    match keys {
        [] => format!("{what} takes no keys"),
        _ => format!("{what} takes {}", keys.join(", ")),
    }
}

fn names(places: &[Place], method: &str, specs: &[Spec]) -> String {
    let name = |p: &Place| match p {
        Place::Method => format!("--method {method}"),
        Place::Compressor(i) => format!("--compressor {}", specs[*i].text()),
    };
    places.iter().map(name).collect::<Vec<_>>().join(", ")
}

fn compressor_specs(compressor: &str) -> Result<Vec<Spec>> {
    compressor.split(';').map(Spec::parse_compressor).collect()
}

/// One point of the sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The value of each axis, in axis order.
    pub values: Vec<String>,
    pub step_factor: f64,
    /// The SPECs it trains.
    pub method: String,
    pub compressor: String,
    /// The stem of its result file: `KEY=V_…_step=F`.
    pub name: String,
}

impl Point {
    /// `zeta=1 k=2 step×4`, for progress lines.
    pub fn label(&self, axes: &[Axis]) -> String {
        label(axes, &self.values, self.step_factor)
    }
}

/// Every point: the first axis varies slowest, the step factor fastest. Fails when two
/// points would share a file name (values that differ only in characters a file name
/// cannot keep).
pub fn points(axes: &[Axis], places: &[Place], factors: &[f64], method: &str, compressor: &str) -> Result<Vec<Point>> {
    let mut combos: Vec<Vec<String>> = vec![Vec::new()];
    for axis in axes {
        combos = combos
            .iter()
            .flat_map(|c| axis.values.iter().map(move |v| [c.clone(), vec![v.clone()]].concat()))
            .collect();
    }
    let mut out: Vec<Point> = Vec::with_capacity(combos.len() * factors.len());
    for values in combos {
        let mut method_spec = Spec::parse_method(method)?;
        let mut specs = compressor_specs(compressor)?;
        for ((axis, place), value) in axes.iter().zip(places).zip(&values) {
            match place {
                Place::Method => method_spec.set(&axis.key, value),
                Place::Compressor(i) => specs[*i].set(&axis.key, value),
            }
        }
        let compressor_spec = specs.iter().map(Spec::text).collect::<Vec<_>>().join(";");
        for &factor in factors {
            let mut parts: Vec<String> =
                axes.iter().zip(&values).map(|(a, v)| format!("{}={}", file_safe(&a.key), file_safe(v))).collect();
            parts.push(format!("step={}", file_safe(&factor.to_string())));
            let name = parts.join("_");
            if let Some(other) = out.iter().find(|p| p.name == name) {
                return Err(Error::config(
                    format!(
                        "--grid: the points {} and {} would share the file {name}.h5",
                        other.label(axes),
                        label(axes, &values, factor)
                    ),
                    "give values that differ in letters, digits, '.', '+' or '-'",
                ));
            }
            let method = if places.contains(&Place::Method) {
                method_spec.text().to_string()
            } else {
                method.trim().to_string()
            };
            let compressor = if places.iter().any(|p| matches!(p, Place::Compressor(_))) {
                compressor_spec.clone()
            } else {
                compressor.trim().to_string()
            };
            out.push(Point { values: values.clone(), step_factor: factor, method, compressor, name });
        }
    }
    Ok(out)
}

fn label(axes: &[Axis], values: &[String], factor: f64) -> String {
    let mut parts: Vec<String> = axes.iter().zip(values).map(|(a, v)| format!("{}={v}", a.key)).collect();
    parts.push(format!("step×{factor}"));
    parts.join(" ")
}

/// A value as it appears in a file name: letters, digits, '.', '+' and '-' stay, any
/// other character becomes '_'.
pub fn file_safe(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || ".+-".contains(c) { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axes(texts: &[&str]) -> Vec<Axis> {
        parse_axes(&texts.iter().map(|t| t.to_string()).collect::<Vec<_>>()).unwrap()
    }

    /// The keys the real compressors ask for (d = 126).
    fn real_keys(spec: &str) -> Vec<String> {
        crate::spec::keys_read(|| crate::compress::build(spec, 126, 0).map(|_| ())).1
    }

    #[test]
    fn axes_are_keys_with_distinct_plain_values() {
        assert_eq!(
            axes(&["zeta=0, 1,4"]),
            [Axis { key: "zeta".into(), values: vec!["0".into(), "1".into(), "4".into()] }]
        );
        for bad in ["zeta", "=1,2", "zeta=", "zeta=1,,2", "zeta=1,1", "k=1;2", "k=a:b", "k k=1"] {
            let e = parse_axis(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("--grid '{bad}'")), "{bad}: {e}");
        }
        let e = parse_axes(&["k=1".into(), "k=2".into()]).unwrap_err().to_string();
        assert!(e.contains("--grid k is given twice"), "{e}");
    }

    #[test]
    fn step_factors_are_positive_and_distinct() {
        check_step_factors(&[1.0, 0.5, 2048.0]).unwrap();
        for bad in [&[][..], &[1.0, 0.0], &[f64::NAN], &[-1.0], &[2.0, 2.0]] {
            assert!(check_step_factors(bad).is_err(), "{bad:?}");
        }
    }

    /// Method keys come from the registry, compressor keys from the compressor's parser;
    /// with a ';' list the one SPEC that takes the key is chosen.
    #[test]
    fn keys_resolve_to_the_spec_that_takes_them() {
        let a = axes(&["zeta=0,4", "k=1,2"]);
        assert_eq!(resolve(&a, "clag", "top-k:k=2", real_keys).unwrap(), [Place::Method, Place::Compressor(0)]);
        let a = axes(&["s=2,4"]);
        assert_eq!(resolve(&a, "3pcv2", "top-k:k=2;qsgd:s=8", real_keys).unwrap(), [Place::Compressor(1)]);
        // A required key the SPEC lacks is found too (the probe sets it).
        assert_eq!(resolve(&axes(&["k=1,2"]), "ef21", "top-k", real_keys).unwrap(), [Place::Compressor(0)]);
    }

    #[test]
    fn unknown_and_ambiguous_keys_are_errors_naming_what_is_taken() {
        let e = resolve(&axes(&["zeta2=1"]), "clag:zeta=1", "top-k:k=2", real_keys).unwrap_err().to_string();
        assert!(
            e.contains(
                "--grid zeta2: neither --method 'clag:zeta=1' nor --compressor 'top-k:k=2' takes the key 'zeta2'"
            ),
            "{e}"
        );
        assert!(e.contains("method clag takes zeta, init; compressor top-k takes k, sampled"), "{e}");
        let e = resolve(&axes(&["k=1,2"]), "3pcv4", "top-k:k=2;top-k:k=5", real_keys).unwrap_err().to_string();
        assert!(e.contains("more than one SPEC") && e.contains("top-k:k=5"), "{e}");
        let e = resolve(&axes(&["k=1"]), "gd", "identity", real_keys).unwrap_err().to_string();
        assert!(e.contains("method gd takes no keys; compressor identity takes no keys"), "{e}");
    }

    /// The product in order (first axis slowest), the SPECs with the values set (a
    /// present key replaced), and one readable file name per point.
    #[test]
    fn points_set_each_value_in_its_spec_and_name_their_file() {
        let a = axes(&["zeta=0,4", "k=1,2/3"]);
        let places = [Place::Method, Place::Compressor(0)];
        let p = points(&a, &places, &[1.0, 0.5], "clag:zeta=9,init=compressed", "top-k:k=2").unwrap();
        assert_eq!(p.len(), 8);
        let first = &p[0];
        assert_eq!((first.method.as_str(), first.compressor.as_str()), ("clag:zeta=0,init=compressed", "top-k:k=1"));
        assert_eq!((first.name.as_str(), first.step_factor), ("zeta=0_k=1_step=1", 1.0));
        assert_eq!(p[1].name, "zeta=0_k=1_step=0.5");
        assert_eq!(p[3].name, "zeta=0_k=2_3_step=0.5");
        assert_eq!(p[7].label(&a), "zeta=4 k=2/3 step×0.5");
        assert_eq!(p[7].compressor, "top-k:k=2/3");
        // No axis: the SPECs as given, one point per step factor.
        let p = points(&[], &[], &[1.0, 2.0], " ef21 ", "top-k:k=2;top-k:k=3").unwrap();
        assert_eq!(p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["step=1", "step=2"]);
        assert_eq!((p[0].method.as_str(), p[0].compressor.as_str()), ("ef21", "top-k:k=2;top-k:k=3"));
        let clash = axes(&["k=1/2,1_2"]);
        let e = points(&clash, &[Place::Compressor(0)], &[1.0], "ef21", "top-k").unwrap_err().to_string();
        assert!(e.contains("would share the file k=1_2_step=1.h5"), "{e}");
    }
}
