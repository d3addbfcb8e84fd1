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

/// ‖x‖², summed in four interleaved lanes (x_{4i+l} into lane l, the lanes combined as
/// (l0 + l1) + (l2 + l3), then the tail in order): four independent add chains instead of
/// one, so the sum runs at the adder's throughput rather than its latency (a quarter of
/// the time of a sequential sum at d = 10⁶). The order is fixed in the code, not left to
/// the compiler, so every machine gets the same bits.
pub fn norm_sq(x: &[f64]) -> f64 {
    let mut lanes = [0.0; 4];
    let chunks = x.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v * v;
        }
    }
    tail.iter().fold((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]), |sum, v| sum + v * v)
}

/// ‖a − b‖².
pub fn distance_sq(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lane order written out, at lengths with every tail 0..4; and against an exact
    /// sum of integers.
    #[test]
    fn norm_sq_sums_in_its_documented_order() {
        for n in 0..13 {
            let x: Vec<f64> = (0..n).map(|i| 1.0 / (i as f64 + 3.0)).collect();
            let lane = |l: usize| x.iter().skip(l).step_by(4).take(n / 4).fold(0.0, |s, v| s + v * v);
            let want = x[4 * (n / 4)..].iter().fold((lane(0) + lane(1)) + (lane(2) + lane(3)), |s, v| s + v * v);
            assert_eq!(norm_sq(&x).to_bits(), want.to_bits(), "n = {n}");
        }
        let ints: Vec<f64> = (1..=1001).map(f64::from).collect();
        assert_eq!(norm_sq(&ints), (1001.0 * 1002.0 * 2003.0) / 6.0);
    }
}
