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

/// ‖x‖_∞, NaN if any coordinate is NaN (`f64::max` would silently drop it): the bits of a
/// plain sequential fold, a NaN's payload included (the last NaN's).
/// The maximum is taken in eight lanes with the NaN test kept apart: no branch and no
/// chain through one register, so it vectorizes (a sequential fold cost about as much as
/// TernGrad's coins). A maximum does not depend on the order, so the lanes change no bit.
pub fn max_abs(x: &[f64]) -> f64 {
    let fold =
        |start: f64, x: &[f64]| x.iter().map(|v| v.abs()).fold(start, |m, a| if a > m || a.is_nan() { a } else { m });
    let mut lanes = [0.0f64; 8];
    let mut nan = false;
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            let a = v.abs();
            nan |= a.is_nan();
            *lane = if a > *lane { a } else { *lane };
        }
    }
    if nan {
        return fold(0.0, x);
    }
    fold(fold(0.0, &lanes), tail)
}

/// ‖a − b‖².
pub fn distance_sq(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the sequential fold, bit for bit: every length around the lane width, the
    /// maximum in each lane and in the tail, and NaNs with payloads.
    #[test]
    fn max_abs_is_the_sequential_maximum() {
        let sequential =
            |x: &[f64]| x.iter().map(|v| v.abs()).fold(0.0, |m, a| if a > m || a.is_nan() { a } else { m });
        let nan = |payload: u64| f64::from_bits(0xfff8_0000_0000_0000 | payload);
        for n in 0..30 {
            for peak in 0..n {
                let mut x: Vec<f64> = (0..n).map(|i| ((i * 7) % 5) as f64 - 2.0).collect();
                x[peak] = -9.5;
                assert_eq!(max_abs(&x).to_bits(), sequential(&x).to_bits(), "n = {n}, peak {peak}");
                x[n - 1 - peak] = nan(7);
                x[peak] = nan(3);
                let got = max_abs(&x);
                assert_eq!(got.to_bits(), sequential(&x).to_bits(), "n = {n}, NaN at {peak}");
                assert!(got.is_nan());
            }
        }
        assert_eq!(max_abs(&[]), 0.0);
        assert_eq!(max_abs(&[f64::NEG_INFINITY, 1.0]), f64::INFINITY);
    }

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
