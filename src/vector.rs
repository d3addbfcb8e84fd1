//! The few dense-vector operations every part of qtrain uses, written once.

/// acc += w·v (the weighted local sum of workers' vectors).
pub fn add_scaled(acc: &mut [f64], w: f64, v: &[f64]) {
    for (a, x) in acc.iter_mut().zip(v) {
        *a += w * x;
    }
}

/// out = a − b.
pub fn difference(out: &mut [f64], a: &[f64], b: &[f64]) {
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x - y;
    }
}

/// ‖a − b‖².
pub fn distance_sq(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}
