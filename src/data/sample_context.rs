//! [`sample_rng`]: the random numbers of one sample's transforms (random crops, flips),
//! drawn from (loader seed, epoch, sample index) inside a [`DataLoader`], so that
//! augmented batches do not depend on the worker count or on thread timing.
//!
//! [`DataLoader`]: crate::data::DataLoader

use std::cell::Cell;

use rand::rngs::Xoshiro256PlusPlus;

use crate::rng::{generator, mix_seed, next_seed};

/// Keeps the sample streams apart from the loader's shuffle stream of the same seed.
const SAMPLE_STREAM_TAG: u64 = 0x5A3D_1E5E_ED00_0001;

/// The sample being loaded on this thread: (loader seed, epoch, index, generators given
/// out so far for it).
#[derive(Clone, Copy)]
struct SampleContext {
    seed: u64,
    epoch: u64,
    index: u64,
    draws: u64,
}

thread_local! {
    static CONTEXT: Cell<Option<SampleContext>> = const { Cell::new(None) };
}

/// Restores the previous context when dropped, also when `get` panics.
struct Restore(Option<SampleContext>);

impl Drop for Restore {
    fn drop(&mut self) {
        CONTEXT.with(|c| c.set(self.0));
    }
}

/// Runs `f` (a dataset's `get` for sample `index`) with this thread's sample context
/// set to (seed, epoch, index), then restores the previous one.
pub(crate) fn with_sample<R>(seed: u64, epoch: u64, index: usize, f: impl FnOnce() -> R) -> R {
    let context = SampleContext {
        seed,
        epoch,
        index: index as u64,
        draws: 0,
    };
    let _restore = Restore(CONTEXT.with(|c| c.replace(Some(context))));
    f()
}

/// A random generator for the sample being read, for random transforms.
///
/// Inside a [`DataLoader`](crate::data::DataLoader), the `k`-th call while one sample is
/// read returns the generator of (loader seed, epoch, sample index, `k`): the same seed
/// gives the same augmented batches whatever `num_workers`, and each epoch different
/// ones. Outside a loader (a plain `dataset.get(i)`) it is seeded from this thread's
/// stream ([`crate::rng::next_seed`], set with [`crate::rng::seed`]).
///
/// ```
/// use boson::data::sample_rng;
/// use rand::RngExt;
///
/// boson::rng::seed(3);
/// let a: u32 = sample_rng().random_range(0..1000);
/// boson::rng::seed(3);
/// assert_eq!(sample_rng().random_range(0..1000), a);
/// ```
pub fn sample_rng() -> Xoshiro256PlusPlus {
    let inside = CONTEXT.with(|c| {
        let mut context = c.get()?;
        let draw = context.draws;
        context.draws += 1;
        c.set(Some(context));
        Some((context, draw))
    });
    match inside {
        Some((context, draw)) => {
            let stream = mix_seed(mix_seed(context.epoch, context.index), draw);
            generator(mix_seed(context.seed, SAMPLE_STREAM_TAG), stream)
        }
        None => generator(next_seed(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn context_streams_are_fixed_by_seed_epoch_index_and_call() {
        let draw = |seed, epoch, index| {
            with_sample(seed, epoch, index, || {
                (sample_rng().next_u64(), sample_rng().next_u64())
            })
        };
        let (a, b) = draw(1, 0, 5);
        assert_ne!(a, b, "two calls for one sample give two streams");
        assert_eq!(draw(1, 0, 5), (a, b));
        assert_ne!(draw(1, 1, 5).0, a, "another epoch");
        assert_ne!(draw(1, 0, 6).0, a, "another sample");
        assert_ne!(draw(2, 0, 5).0, a, "another seed");
    }

    #[test]
    fn context_is_restored_after_the_sample() {
        crate::rng::seed(9);
        let outside = sample_rng().next_u64();
        crate::rng::seed(9);
        with_sample(1, 2, 3, || sample_rng().next_u64());
        assert_eq!(sample_rng().next_u64(), outside);
    }
}
