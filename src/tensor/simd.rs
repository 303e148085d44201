//! Runtime choice of vector instructions for the CPU kernels' hot loops.
//!
//! Release builds target baseline x86-64 (SSE2), where a loop of 64-bit multiplies (the
//! dropout hash) or of f64 sums (the gradient norm) stays scalar and f32 loops use
//! 4-wide vectors. [`vectorized`] runs a [`Kernel`] inside a function compiled for
//! AVX-512 or AVX2 when the CPU has them, so the compiler can vectorise its loop there.
//! The arithmetic is the same in every version (no fused multiply-add is introduced where
//! the source has none: Rust never contracts `a * b + c`), so results are bit-identical
//! on every machine.

/// A loop to compile for the widest vectors. Implementations mark `run`
/// `#[inline(always)]`: forced inlining is what puts the loop inside the target-feature
/// function. (A closure is not enough: it is inlined there only when the inliner judges it
/// small, and the optimizer rules' row loop was not, so it stayed on baseline SSE.)
pub(crate) trait Kernel {
    /// What the loop returns.
    type Output;
    /// The loop.
    fn run(self) -> Self::Output;
}

/// Runs `k` compiled for the widest vector extension the CPU supports.
#[inline(always)]
pub(crate) fn vectorized<K: Kernel>(k: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            // SAFETY: the CPU supports every feature `avx512` is compiled with.
            return unsafe { x86::avx512(k) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            return unsafe { x86::avx2(k) };
        }
    }
    k.run()
}

/// Asks the CPU to bring `x`'s cache lines closer: a hint for rows about to be read at
/// scattered places in a large table (no effect on results).
#[inline(always)]
pub(crate) fn prefetch<T>(x: &[T]) {
    #[cfg(target_arch = "x86_64")]
    for k in (0..std::mem::size_of_val(x)).step_by(64) {
        // SAFETY: prefetching is a hint and never faults; the address is inside `x`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                x.as_ptr().cast::<i8>().wrapping_add(k),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Kernel;

    #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw,avx2")]
    pub(super) unsafe fn avx512<K: Kernel>(k: K) -> K::Output {
        k.run()
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2<K: Kernel>(k: K) -> K::Output {
        k.run()
    }
}

#[cfg(test)]
mod tests {
    use super::{vectorized, Kernel};

    /// An affine map and a run of dropout hashes, the two kinds of loop boson vectorises.
    struct Loops<'a>(&'a [f32]);

    impl Kernel for Loops<'_> {
        type Output = (Vec<f32>, Vec<f32>);
        #[inline(always)]
        fn run(self) -> Self::Output {
            let affine = self.0.iter().map(|v| v * 1.7 + 0.25).collect();
            let hash = (0..999).map(|i| crate::rng::uniform_hash(42, i)).collect();
            (affine, hash)
        }
    }

    #[test]
    fn every_vector_build_matches_the_plain_loop_bit_for_bit() {
        let x: Vec<f32> = (0..1003)
            .map(|i| ((i * 37) % 101) as f32 * 0.013 - 0.6)
            .collect();
        let expected = Loops(&x).run();
        assert_eq!(vectorized(Loops(&x)), expected);
        #[cfg(target_arch = "x86_64")]
        {
            // Each build this CPU can run, not only the one `vectorized` picks.
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2.
                assert_eq!(unsafe { super::x86::avx2(Loops(&x)) }, expected);
            }
            if std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                // SAFETY: the CPU supports the features `avx512` is compiled with.
                assert_eq!(unsafe { super::x86::avx512(Loops(&x)) }, expected);
            }
        }
    }
}
