//! Samplers: which dataset indices an epoch visits, and in what order.

use rand::seq::SliceRandom;

/// The indices one epoch visits, as Gluon's `Sampler` (`__iter__` + `__len__`).
///
/// Gluon samplers keep their state in the Python iterator; here the epoch number is
/// passed in, so a sampler is immutable, shareable between threads, and an epoch's
/// order is a pure function of (sampler, epoch).
pub trait Sampler: Send + Sync {
    /// How many indices one epoch yields.
    fn len(&self) -> usize;

    /// True when an epoch yields nothing.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The indices of epoch `epoch` (0, 1, 2, …), `len()` of them.
    fn indices(&self, epoch: u64) -> Vec<usize>;
}

impl<S: Sampler + ?Sized> Sampler for Box<S> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn indices(&self, epoch: u64) -> Vec<usize> {
        (**self).indices(epoch)
    }
}

/// `start, start + 1, …, start + length - 1` every epoch, as Gluon's `SequentialSampler`.
///
/// ```
/// use boson::data::{Sampler, SequentialSampler};
///
/// assert_eq!(SequentialSampler::new(3).indices(0), vec![0, 1, 2]);
/// assert_eq!(SequentialSampler::with_start(2, 5).indices(7), vec![5, 6]);
/// ```
#[derive(Clone, Debug)]
pub struct SequentialSampler {
    length: usize,
    start: usize,
}

impl SequentialSampler {
    /// `0..length`.
    pub fn new(length: usize) -> Self {
        SequentialSampler { length, start: 0 }
    }

    /// `start..start + length`.
    pub fn with_start(length: usize, start: usize) -> Self {
        SequentialSampler { length, start }
    }
}

impl Sampler for SequentialSampler {
    fn len(&self) -> usize {
        self.length
    }
    fn indices(&self, _epoch: u64) -> Vec<usize> {
        // Saturating: an absurd start must not overflow (it yields fewer indices).
        (self.start..self.start.saturating_add(self.length)).collect()
    }
}

/// A random permutation of `0..length` (without replacement), as Gluon's
/// `RandomSampler`, but seeded: each epoch is a different permutation, and the same
/// (seed, epoch) always gives the same one.
///
/// ```
/// use boson::data::{RandomSampler, Sampler};
///
/// let s = RandomSampler::new(10, 42);
/// let mut e0 = s.indices(0);
/// assert_eq!(e0, s.indices(0));
/// assert_ne!(e0, s.indices(1));
/// e0.sort();
/// assert_eq!(e0, (0..10).collect::<Vec<_>>());
/// ```
#[derive(Clone, Debug)]
pub struct RandomSampler {
    length: usize,
    seed: u64,
}

impl RandomSampler {
    /// A sampler over `0..length` shuffled from `seed`.
    pub fn new(length: usize, seed: u64) -> Self {
        RandomSampler { length, seed }
    }
}

impl Sampler for RandomSampler {
    fn len(&self) -> usize {
        self.length
    }
    fn indices(&self, epoch: u64) -> Vec<usize> {
        let mut indices: Vec<usize> = (0..self.length).collect();
        indices.shuffle(&mut crate::rng::generator(self.seed, epoch));
        indices
    }
}
