//! Runtime choice of vector instructions for the CPU kernels' hot loops.
//!
//! Release builds target baseline x86-64 (SSE2), where a loop of 64-bit multiplies (the
//! dropout hash) or of f64 sums (the gradient norm) stays scalar and f32 loops use
//! 4-wide vectors. [`vectorized`] runs a [`Kernel`] inside a function compiled for
//! AVX-512 or AVX2 when the CPU has them, so the compiler can vectorise its loop there.
//! The arithmetic is the same in every version (no fused multiply-add is introduced where
//! the source has none: Rust never contracts `a * b + c`, and a fused one written as
//! `mul_add` is exactly rounded everywhere), so results are bit-identical on every
//! machine.

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

/// The vector extension [`vectorized`] compiles kernels for on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// AVX-512 (F, DQ, VL, BW) with FMA: 32 registers of 16 floats.
    Avx512,
    /// AVX2 with FMA: 16 registers of 8 floats.
    Avx2,
    /// The build's baseline (SSE2 on x86-64), or another architecture.
    Baseline,
}

/// The widest [`Level`] this CPU runs.
#[inline(always)]
pub(crate) fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// Runs `k` compiled for the widest vector extension the CPU supports. `f32::mul_add`
/// compiles to one instruction in both vector builds (FMA is part of each); at baseline
/// x86-64 it is a call to `fmaf`, slower but with the same exactly rounded result.
#[inline(always)]
pub(crate) fn vectorized<K: Kernel>(k: K) -> K::Output {
    match level() {
        // SAFETY: `level` checked that the CPU supports every feature `avx512` enables.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { x86::avx512(k) },
        // SAFETY: `level` checked AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { x86::avx2(k) },
        _ => k.run(),
    }
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

    #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")]
    pub(super) unsafe fn avx512<K: Kernel>(k: K) -> K::Output {
        k.run()
    }

    #[target_feature(enable = "avx2,fma")]
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
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports AVX2 and FMA.
                assert_eq!(unsafe { super::x86::avx2(Loops(&x)) }, expected);
            }
            if super::level() == super::Level::Avx512 {
                // SAFETY: the CPU supports the features `avx512` is compiled with.
                assert_eq!(unsafe { super::x86::avx512(Loops(&x)) }, expected);
            }
        }
    }
}
