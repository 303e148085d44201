//! [`BatchSampler`]: groups a sampler's indices into batches, with Gluon's `last_batch`.

use std::fmt;
use std::str::FromStr;

use crate::data::sampler::Sampler;
use crate::error::{Error, Result};

/// What to do with the last, short batch of an epoch (Gluon's `last_batch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LastBatch {
    /// Return it (shorter than `batch_size`).
    #[default]
    Keep,
    /// Drop it.
    Discard,
    /// Put its indices at the front of the next epoch.
    Rollover,
}

impl FromStr for LastBatch {
    type Err = Error;

    /// Parses Gluon's spelling: `"keep"`, `"discard"` or `"rollover"`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "keep" => Ok(LastBatch::Keep),
            "discard" => Ok(LastBatch::Discard),
            "rollover" => Ok(LastBatch::Rollover),
            other => Err(Error::InvalidArgument(format!(
                "last_batch must be keep, discard or rollover, got {other:?}"
            ))),
        }
    }
}

impl fmt::Display for LastBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LastBatch::Keep => "keep",
            LastBatch::Discard => "discard",
            LastBatch::Rollover => "rollover",
        })
    }
}

/// Wraps a [`Sampler`] and yields batches of indices, as Gluon's `BatchSampler`.
///
/// Each call to [`next_epoch`](Self::next_epoch) is one pass (one Gluon `__iter__`),
/// advancing the epoch number passed to the inner sampler. With
/// [`LastBatch::Rollover`] the leftover indices of an epoch are held and placed in
/// front of the next epoch's indices; they are only held when the epoch's batches were
/// produced, which here is always the whole epoch at once.
///
/// ```
/// use boson::data::{BatchSampler, LastBatch, SequentialSampler};
///
/// let mut bs = BatchSampler::new(SequentialSampler::new(5), 2, LastBatch::Rollover)?;
/// assert_eq!(bs.len(), 2);
/// assert_eq!(bs.next_epoch(), vec![vec![0, 1], vec![2, 3]]);
/// // index 4 rolled over: the next epoch starts with it.
/// assert_eq!(bs.len(), 3);
/// assert_eq!(bs.next_epoch(), vec![vec![4, 0], vec![1, 2], vec![3, 4]]);
/// # Ok::<(), boson::error::Error>(())
/// ```
pub struct BatchSampler {
    sampler: Box<dyn Sampler>,
    batch_size: usize,
    last_batch: LastBatch,
    epoch: u64,
    leftover: Vec<usize>,
}

impl fmt::Debug for BatchSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchSampler")
            .field("sampler_len", &self.sampler.len())
            .field("batch_size", &self.batch_size)
            .field("last_batch", &self.last_batch)
            .field("epoch", &self.epoch)
            .field("leftover", &self.leftover.len())
            .finish()
    }
}

impl BatchSampler {
    /// Batches of `batch_size` from `sampler`; `batch_size` 0 is an error.
    pub fn new(
        sampler: impl Sampler + 'static,
        batch_size: usize,
        last_batch: LastBatch,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::InvalidArgument("batch_size must be > 0".into()));
        }
        let len = sampler.len();
        if len > 0 && batch_size > len && last_batch != LastBatch::Keep {
            return Err(Error::InvalidArgument(format!(
                "batch_size {batch_size} is larger than the {len} samples: with last_batch \
                 {last_batch:?} an epoch yields no batch; use batch_size <= {len}, or \
                 last_batch Keep for one short batch"
            )));
        }
        Ok(BatchSampler {
            sampler: Box::new(sampler),
            batch_size,
            last_batch,
            epoch: 0,
            leftover: Vec::new(),
        })
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The last-batch mode.
    pub fn last_batch(&self) -> LastBatch {
        self.last_batch
    }

    /// The number of the epoch the next call to `next_epoch` produces.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The number of batches the next epoch yields, by Gluon's formula: keep
    /// `ceil(n / bs)`, discard `floor(n / bs)`, rollover `floor((leftover + n) / bs)`.
    pub fn len(&self) -> usize {
        let n = self.sampler.len();
        match self.last_batch {
            LastBatch::Keep => n.div_ceil(self.batch_size),
            LastBatch::Discard => n / self.batch_size,
            LastBatch::Rollover => (self.leftover.len() + n) / self.batch_size,
        }
    }

    /// True when the next epoch yields no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batches of the next epoch, in order; never an empty batch.
    pub fn next_epoch(&mut self) -> Vec<Vec<usize>> {
        let indices = self.sampler.indices(self.epoch);
        self.epoch += 1;
        let mut pending = std::mem::take(&mut self.leftover);
        pending.reserve(indices.len());
        pending.extend(indices);

        let mut batches: Vec<Vec<usize>> = pending
            .chunks(self.batch_size)
            .map(|chunk| chunk.to_vec())
            .collect();
        let short_last = batches
            .last()
            .is_some_and(|last| last.len() < self.batch_size);
        if short_last {
            match self.last_batch {
                LastBatch::Keep => {}
                LastBatch::Discard => {
                    batches.pop();
                }
                LastBatch::Rollover => {
                    self.leftover = batches.pop().unwrap_or_default();
                }
            }
        }
        batches
    }
}
