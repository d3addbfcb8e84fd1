//! Loops compiled for the CPU's vector units, chosen at run time: one binary serves a
//! cluster whose nodes differ (issue 13), and every version of a loop must round alike
//! (plain IEEE operations, no fused multiply-adds) so that a worker's results do not
//! depend on the node (docs/architecture.md, "Determinism across nodes").

/// A loop over a shard that [`on_every_element`] compiles twice. A trait rather than a
/// closure because `run` can be forced inline into the AVX2 copy (a closure may stay a
/// call of its own, compiled for the baseline: that happened, and cost 40 % of the
/// derivative loop's speed).
pub trait Kernel {
    type Output;
    /// Must be `#[inline(always)]`, with everything it calls in the loop.
    fn run(self) -> Self::Output;
}

/// Runs `kernel` compiled for AVX2 when the CPU has it, else for the baseline; both
/// versions give the same bits.
#[inline]
pub fn on_every_element<K: Kernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn with_avx2<K: Kernel>(kernel: K) -> K::Output {
            kernel.run()
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just found to support AVX2.
            return unsafe { with_avx2(kernel) };
        }
    }
    kernel.run()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::exp::exp_nonpositive;

    /// The AVX2 build of a loop and the baseline build give the same bits.
    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        struct Fill<'a>(&'a mut [f64]);
        impl Kernel for Fill<'_> {
            type Output = ();
            #[inline(always)]
            fn run(self) {
                for (i, o) in self.0.iter_mut().enumerate() {
                    *o = exp_nonpositive(-(i as f64) * 0.0137);
                }
            }
        }
        let mut dispatched = vec![0.0; 50_000];
        let mut baseline = vec![0.0; 50_000];
        on_every_element(Fill(&mut dispatched));
        Fill(&mut baseline).run();
        assert!(dispatched.iter().zip(&baseline).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
