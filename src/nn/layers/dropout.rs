//! `Dropout`: inverted dropout with a resumable mask stream.

use crate::autograd;
use crate::error::Result;
use crate::nn::{Block, Forward};
use crate::tensor::Tensor;
use std::sync::atomic::{AtomicU64, Ordering};

/// Inverted dropout, active only in training mode. Each call draws a fresh mask from a
/// counter-based stream, so runs with the same seed drop the same elements. The count of
/// masks drawn is the layer's [`State`](crate::nn::State) (`{name}.calls`), so checkpoints
/// resume with the same masks.
#[derive(Block)]
pub struct Dropout {
    #[block(skip)]
    rate: f32,
    #[block(skip)]
    seed: u64,
    #[block(state)]
    calls: AtomicU64,
}

impl Dropout {
    /// Drops each element with probability `rate`; the seed comes from the global stream.
    pub fn new(rate: f32) -> Dropout {
        Dropout {
            rate,
            seed: crate::rng::next_seed(),
            calls: AtomicU64::new(0),
        }
    }

    /// Uses an explicit seed.
    pub fn with_seed(mut self, seed: u64) -> Dropout {
        self.seed = seed;
        self
    }

    /// How many masks this layer has drawn (saved in checkpoints for exact resume).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Restores the mask counter.
    pub fn set_calls(&self, calls: u64) {
        self.calls.store(calls, Ordering::SeqCst)
    }
}

impl Forward for Dropout {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !autograd::is_training() || self.rate == 0.0 {
            return Ok(x.clone());
        }
        let c = self.calls.fetch_add(1, Ordering::SeqCst);
        x.dropout(self.rate, crate::rng::mix_seed(self.seed, c))
    }
}
