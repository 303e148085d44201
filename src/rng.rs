//! Counter-based random numbers shared bit-for-bit by the CPU and the CUDA kernels.
//!
//! A counter-based generator (value = f(seed, i)) needs no state, so element `i` of a
//! dropout mask is the same whichever device, thread or worker computes it.

/// Uniform in `[0, 1)` for element `i` under `seed`: a splitmix64 finalizer of
/// `seed + (i + 1) * golden_gamma`, top 24 bits scaled by 2^-24 (exact in f32).
///
/// `kernels/elementwise.cu` (`uniform_hash`) computes the identical value on the GPU.
pub fn uniform_hash(seed: u64, i: u64) -> f32 {
    let x = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 * (1.0 / 16_777_216.0)
}

#[cfg(test)]
mod tests {
    use super::uniform_hash;

    #[test]
    fn uniform_hash_is_in_unit_interval_and_spread() {
        let n = 100_000u64;
        let mut sum = 0.0f64;
        for i in 0..n {
            let u = uniform_hash(42, i);
            assert!((0.0..1.0).contains(&u), "u = {u}");
            sum += u as f64;
        }
        let mean = sum / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert_ne!(uniform_hash(1, 0), uniform_hash(2, 0));
    }
}
