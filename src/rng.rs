//! Every random number of the crate comes from here: the per-thread seed stream,
//! counter-based hashes shared by the CPU and CUDA paths, and seeded generators.
//!
//! Dropout masks must be identical on both devices for the same seed, so both compute
//! `uniform_hash(seed, i)` for element `i` (a splitmix64 finaliser over a Weyl sequence)
//! instead of drawing from a stateful generator.

use rand::rngs::{StdRng, Xoshiro256PlusPlus};
use rand::SeedableRng;

/// SplitMix64: spreads nearby inputs (seed 1 vs 2, epoch 3 vs 4) far apart.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator for one (seed, stream) pair, e.g. (loader seed, epoch): shuffling,
/// splits, synthetic data.
pub(crate) fn generator(seed: u64, stream: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(splitmix64(seed ^ splitmix64(stream)))
}

/// The generator of one parameter's initial values.
pub(crate) fn init_generator(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A uniform number in `[0, 1)` for element `i` of a stream named by `seed`.
#[inline]
pub fn uniform_hash(seed: u64, i: u64) -> f32 {
    // The Weyl sequence seed + (i + 1)·γ through the finaliser: splitmix64 adds the
    // last γ itself.
    let z = splitmix64(seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    // `z >> 40` < 2^24 fits an i32: converting through u32 is one instruction, while a u64
    // to f32 conversion is a branchy sequence on baseline x86-64 (same value either way).
    ((z >> 40) as u32) as f32 * (1.0 / 16_777_216.0)
}

/// Mixes a base seed with a counter into a new seed (for per-call dropout streams).
pub fn mix_seed(seed: u64, counter: u64) -> u64 {
    let mut z = seed ^ counter.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    z ^ (z >> 33)
}

use std::cell::Cell;

thread_local! {
    // Per thread: tests and programs that train on several threads at once must not
    // advance each other's stream (that made seeded runs differ from run to run).
    static STREAM: Cell<(u64, u64)> = const { Cell::new((0x5EED_B050_0000_0001, 0)) };
}

/// Seeds this thread's random stream (Gluon's `mx.random.seed`): parameter
/// initialisation and dropout layers without their own seed draw from it, in call order.
pub fn seed(seed: u64) {
    STREAM.with(|s| s.set((seed, 0)));
}

/// A fresh seed from this thread's stream.
pub fn next_seed() -> u64 {
    STREAM.with(|s| {
        let (seed, counter) = s.get();
        s.set((seed, counter + 1));
        mix_seed(seed, counter)
    })
}

/// This thread's stream position `(seed, counter)`, saved in checkpoints so that a
/// resumed run draws the same numbers as an uninterrupted one.
pub fn state() -> (u64, u64) {
    STREAM.with(|s| s.get())
}

/// Restores a position returned by [`state`].
pub fn set_state(state: (u64, u64)) {
    STREAM.with(|s| s.set(state));
}
