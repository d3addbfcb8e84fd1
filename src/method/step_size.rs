//! Default step sizes from ALGORITHMS.md, and the user's overrides.

use crate::objective::smoothness::Smoothness;

/// `--step` (absolute) or `--step-factor` (multiplies the default rule).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Override {
    pub step: Option<f64>,
    pub factor: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepSize {
    pub gamma: f64,
    /// The rule with its source, as logged and stored in the HDF5 attributes.
    pub rule: String,
}

impl StepSize {
    pub fn resolve(default: f64, rule: &str, over: Override) -> StepSize {
        match over.step {
            Some(gamma) => {
                StepSize { gamma, rule: format!("--step {gamma} (default would be {rule} = {default:.6e})") }
            }
            None if over.factor != 1.0 => {
                StepSize { gamma: over.factor * default, rule: format!("{} × {rule}", over.factor) }
            }
            None => StepSize { gamma: default, rule: rule.to_string() },
        }
    }
}

/// GD: γ = 1/L (§0.2, all reference codes).
pub fn gd(s: &Smoothness) -> (f64, String) {
    (1.0 / s.l, format!("1/L, L = {:.6e} [ALGORITHMS.md §0.2]", s.l))
}

/// DCGD with an unbiased compressor: γ = 1/(L + 2·L_max·ω/n) (§A.3 baseline, `SD-DCGD.py`),
/// n = n_eff = 1/Σ w_i² (the workers' variances add with weights w_i²).
pub fn dcgd(s: &Smoothness, omega: f64, n: f64) -> (f64, String) {
    let gamma = 1.0 / (s.l + 2.0 * s.l_max * omega / n);
    (gamma, format!("1/(L + 2·L_max·ω/n), L = {:.6e}, L_max = {:.6e}, ω = {omega:.6}, n = {n:.3} [§A.3]", s.l, s.l_max))
}

/// DIANA with α = 1/(ω+1): the unified analysis' (1 + 2ω/n)L + 4ωL/n with the variance
/// terms bounded by L_max, since each f_i is only L_i-smooth: γ = 1/(L + 6·L_max·ω/n)
/// (the textbook 1/(L(1 + 6ω/n)) when every L_i = L; §A.3 note), n = n_eff = 1/Σ w_i².
pub fn diana(s: &Smoothness, omega: f64, n: f64) -> (f64, String) {
    let gamma = 1.0 / (s.l + 6.0 * s.l_max * omega / n);
    (gamma, format!("1/(L + 6·L_max·ω/n), L = {:.6e}, L_max = {:.6e}, ω = {omega:.6}, n = {n:.3} [§A.3]", s.l, s.l_max))
}

/// The smoothness-aware reference code's DIANA baseline: γ = 1/(L_max(1 + 2ω/n)) (§A.3,
/// `SD-DIANA.py`).
pub fn diana_reference(s: &Smoothness, omega: f64, n: f64) -> (f64, String) {
    let gamma = 1.0 / (s.l_max * (1.0 + 2.0 * omega / n));
    (gamma, format!("1/(L_max(1 + 2ω/n)), L_max = {:.6e}, ω = {omega:.6}, n = {n:.3} [§A.3 reference code]", s.l_max))
}

/// DCGD+ (§A.3, `SD-DCGD-plus.py`): γ = 1/(L + 2·L̃_max/n), L̃_max the largest
/// smoothness-aware variance over the workers.
pub fn dcgd_plus(s: &Smoothness, l_tilde_max: f64, n: f64) -> (f64, String) {
    let gamma = 1.0 / (s.l + 2.0 * l_tilde_max / n);
    (gamma, format!("1/(L + 2·L̃_max/n), L = {:.6e}, L̃_max = {l_tilde_max:.6e}, n = {n:.3} [§A.3]", s.l))
}

/// DIANA+ (§A.3, `SD-DIANA-plus.py`): γ = 1/(L + 6·L̃_max/n).
pub fn diana_plus(s: &Smoothness, l_tilde_max: f64, n: f64) -> (f64, String) {
    let gamma = 1.0 / (s.l + 6.0 * l_tilde_max / n);
    (gamma, format!("1/(L + 6·L̃_max/n), L = {:.6e}, L̃_max = {l_tilde_max:.6e}, n = {n:.3} [§A.3]", s.l))
}

/// EF21 (and classic EF, §I.3): γ = 1/(L + L̃·√(B/A)) with the EF21 three-point
/// constants A = 1 − √(1−α), B = (1−α)/A (§G.1, §G.2).
pub fn ef21(s: &Smoothness, alpha: f64) -> (f64, String) {
    let a = 1.0 - (1.0 - alpha).sqrt();
    let b = (1.0 - alpha) / a;
    let gamma = 1.0 / (s.l + s.l_tilde * (b / a).sqrt());
    (
        gamma,
        format!(
            "1/(L + L̃·√(B/A)), L = {:.6e}, L̃ = {:.6e}, α = {alpha:.6}, A = {a:.6}, B = {b:.6} [§G.2]",
            s.l, s.l_tilde
        ),
    )
}

/// Classic EF with an absolute compressor (threshold; Sahu et al. 2021): γ = 1/L. The
/// perturbed iterate x̃ = x − Σ_i w_i e_i moves exactly as GD does, x̃ ← x̃ − γ∇f(x), and
/// every ‖e_i‖² stays below the compressor's bound b, so ∇f(x) is ∇f(x̃) up to L√b: GD's
/// step with a gradient error of at most L√b [derived].
pub fn ef_absolute(s: &Smoothness, bound: f64) -> (f64, String) {
    (
        1.0 / s.l,
        format!("1/L, L = {:.6e} (absolute compressor, ‖e_i‖² ≤ {bound:.3e}: EF's perturbed iterate follows GD) [Sahu et al. 2021]", s.l),
    )
}

/// CLAG (§G.1): γ = 1/(L + L̃·√(B/A)) with A = 1 − √(1−α), B = max{ζ, (1−α)/A}. LAG is
/// α = 1: A = 1, B = ζ, γ = 1/(L + L̃√ζ).
pub fn clag(s: &Smoothness, alpha: f64, zeta: f64) -> (f64, String) {
    let a = 1.0 - (1.0 - alpha).sqrt();
    let b = zeta.max((1.0 - alpha) / a);
    let gamma = 1.0 / (s.l + s.l_tilde * (b / a).sqrt());
    (
        gamma,
        format!(
            "1/(L + L̃·√(B/A)), L = {:.6e}, L̃ = {:.6e}, α = {alpha:.6}, ζ = {zeta}, A = {a:.6}, B = max(ζ, (1−α)/A) = {b:.6} [§G.1]",
            s.l, s.l_tilde
        ),
    )
}

/// Any three-point compressor of §G.1 with constants (A, B): γ = 1/(L + L̃·√(B/A)) (§G.2).
pub fn three_point(s: &Smoothness, a: f64, b: f64, what: &str) -> (f64, String) {
    let gamma = 1.0 / (s.l + s.l_tilde * (b / a).sqrt());
    (gamma, format!("1/(L + L̃·√(B/A)), L = {:.6e}, L̃ = {:.6e}, {what}, A = {a:.6}, B = {b:.6} [§G.1]", s.l, s.l_tilde))
}

/// MARINA (§H.1): γ = 1/(L_− + √(((1−p)/p)·((A − B)L_+² + B·L_±²))) with L_− = L and
/// L_+ = L̃. Independent unbiased compressors have A = ω/n (n = 1/Σ w_i²), B = 0:
/// γ = 1/(L + L̃√((1−p)ω/(pn))). Correlated ones (PermK) give their own A, B; the Hessian
/// variance L_± is bounded by L_+ here, which makes the rule 1/(L + L̃√((1−p)A/p)) — valid,
/// and conservative where L_± ≪ L_+.
pub fn marina(s: &Smoothness, (a, b): (f64, f64), p: f64, what: &str) -> (f64, String) {
    match s.l_pm {
        // L_± ≤ L̃ always (Σ w_i‖∇f_i(x) − ∇f_i(y)‖² ≤ L̃²‖x − y‖²), and with that bound the
        // rule is 1/(L + L̃√((1−p)A/p)).
        None => {
            let gamma = 1.0 / (s.l + s.l_tilde * ((1.0 - p) * a / p).sqrt());
            let rule = "1/(L + L̃·√((1−p)A/p)) (L_± ≤ L̃)";
            (gamma, format!("{rule}, L = {:.6e}, L̃ = {:.6e}, {what}, p = {p:.6} [§H.1]", s.l, s.l_tilde))
        }
        Some(l_pm) => {
            let variance = (a - b) * s.l_tilde * s.l_tilde + b * l_pm * l_pm;
            let gamma = 1.0 / (s.l + ((1.0 - p) / p * variance).sqrt());
            let rule = "1/(L + √((1−p)/p·((A−B)L̃² + B·L_±²)))";
            let values = format!("L = {:.6e}, L̃ = {:.6e}, L_± = {l_pm:.6e}", s.l, s.l_tilde);
            (gamma, format!("{rule}, {values}, {what}, p = {p:.6} [§H.1]"))
        }
    }
}

/// VR-MARINA (§H.1, the reference code's `i_use_vr_marina` branch): γ = 1/(L + √(ωL_max² +
/// (1+ω)L_max²/b)·√((1−p)/(pn))), L_max standing for the per-sample smoothness as in the code.
pub fn vr_marina(s: &Smoothness, omega: f64, n: f64, b: f64, p: f64) -> (f64, String) {
    let l2 = s.l_max * s.l_max;
    let gamma = 1.0 / (s.l + (omega * l2 + (1.0 + omega) * l2 / b).sqrt() * ((1.0 - p) / (p * n)).sqrt());
    (
        gamma,
        format!(
            "1/(L + √(ωL_max² + (1+ω)L_max²/b)·√((1−p)/(pn))), L = {:.6e}, L_max = {:.6e}, ω = {omega:.6}, n = {n:.3}, b = {b}, p = {p:.6} [§H.1 VR]",
            s.l, s.l_max
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Smoothness {
        Smoothness { l: 2.0, l_i: vec![1.0, 3.0], l_tilde: 5f64.sqrt(), l_max: 3.0, l_pm: None }
    }

    #[test]
    fn ef21_with_alpha_one_is_gd() {
        assert_eq!(ef21(&s(), 1.0).0, 0.5);
        // √(B/A) = √(1−α)/(1 − √(1−α)) (§G.1 closed form).
        let alpha: f64 = 0.19;
        let closed = 1.0 / (2.0 + 5f64.sqrt() * (0.9 / 0.1));
        assert!((ef21(&s(), alpha).0 - closed).abs() < 1e-15);
    }

    /// §G.1: CLAG with ζ below EF21's B is EF21; LAG (α = 1) is 1/(L + L̃√ζ).
    #[test]
    fn clag_rule_reduces_to_ef21_and_to_lag() {
        assert_eq!(clag(&s(), 0.19, 0.0).0, ef21(&s(), 0.19).0);
        let lag = clag(&s(), 1.0, 4.0).0;
        assert!((lag - 1.0 / (2.0 + 5f64.sqrt() * 2.0)).abs() < 1e-15, "{lag}");
        assert!(clag(&s(), 0.19, 1e6).0 < ef21(&s(), 0.19).0);
    }

    #[test]
    fn unbiased_rules_reduce_to_gd_without_compression() {
        assert_eq!(dcgd(&s(), 0.0, 4.0).0, 0.5);
        assert_eq!(diana(&s(), 0.0, 4.0).0, 0.5);
        // L = 2, L_max = 3: 1/(2 + 6·3·2/4).
        assert!((diana(&s(), 2.0, 4.0).0 - 1.0 / 11.0).abs() < 1e-15);
        // Every L_i = L: the textbook 1/(L(1 + 6ω/n)).
        let flat = Smoothness { l: 2.0, l_i: vec![2.0, 2.0], l_tilde: 2.0, l_max: 2.0, l_pm: None };
        assert!((diana(&flat, 2.0, 4.0).0 - 1.0 / (2.0 * 4.0)).abs() < 1e-15);
        assert!((diana_reference(&flat, 2.0, 4.0).0 - 1.0 / (2.0 * 2.0)).abs() < 1e-15);
    }

    /// §H.1: p = 1 or A = 0 is GD; the reference code's rule 1/(L_max(1 + √(ω²/n))) is the
    /// independent case A = ω/n at p = 1/(1+ω) with L = L̃ = L_max.
    #[test]
    fn marina_rule_reduces_to_gd_and_to_the_reference_code() {
        assert_eq!(marina(&s(), (3.0, 0.0), 1.0, "").0, 0.5);
        assert_eq!(marina(&s(), (0.0, 0.0), 0.3, "").0, 0.5);
        let flat = Smoothness { l: 3.0, l_i: vec![3.0], l_tilde: 3.0, l_max: 3.0, l_pm: None };
        let (omega, n): (f64, f64) = (7.0, 5.0);
        let reference = 1.0 / (3.0 * (1.0 + (omega * omega / n).sqrt()));
        assert!((marina(&flat, (omega / n, 0.0), 1.0 / (1.0 + omega), "").0 - reference).abs() < 1e-15);
    }

    #[test]
    fn overrides() {
        let o = Override { step: None, factor: 4.0 };
        assert_eq!(StepSize::resolve(0.25, "r", o).gamma, 1.0);
        let o = Override { step: Some(0.1), factor: 4.0 };
        assert_eq!(StepSize::resolve(0.25, "r", o).gamma, 0.1);
    }
}
