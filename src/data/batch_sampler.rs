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
    /// (number of shards, this shard): each batch is this shard's part of a batch of
    /// `batch_size × shards` (data-parallel training, one shard per rank).
    shard: (usize, usize),
}

impl fmt::Debug for BatchSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchSampler")
            .field("sampler_len", &self.sampler.len())
            .field("batch_size", &self.batch_size)
            .field("last_batch", &self.last_batch)
            .field("epoch", &self.epoch)
            .field("leftover", &self.leftover.len())
            .field("shard", &self.shard)
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
            shard: (1, 0),
        })
    }

    /// This sampler as shard `index` of `num_shards` (one per rank of a data-parallel
    /// run): the batches are drawn as batches of `batch_size × num_shards`, the same on
    /// every shard given the same seed, and shard `index` gets its contiguous part of
    /// each. So N shards of batch B see exactly the batches one process with batch N·B
    /// sees. An error for `index >= num_shards`, or when some shard's part of the last
    /// batch (last_batch Keep) would be empty.
    ///
    /// ```
    /// use boson::data::{BatchSampler, LastBatch, SequentialSampler};
    ///
    /// let shard = |i| BatchSampler::new(SequentialSampler::new(8), 2, LastBatch::Keep)?.shard(2, i);
    /// assert_eq!(shard(0)?.next_epoch(), vec![vec![0, 1], vec![4, 5]]);
    /// assert_eq!(shard(1)?.next_epoch(), vec![vec![2, 3], vec![6, 7]]);
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    pub fn shard(mut self, num_shards: usize, index: usize) -> Result<Self> {
        if num_shards == 0 || index >= num_shards {
            return Err(Error::InvalidArgument(format!(
                "shard {index} of {num_shards}: the index must be below the number of \
                 shards (rank < world size)"
            )));
        }
        let global = self.batch_size * num_shards;
        let n = self.sampler.len();
        let last = n % global;
        if self.last_batch == LastBatch::Keep && last > 0 && last < num_shards {
            return Err(Error::InvalidArgument(format!(
                "the last batch of {last} samples cannot be split over {num_shards} \
                 shards; use last_batch Discard or Rollover"
            )));
        }
        if n > 0 && global > n && self.last_batch != LastBatch::Keep {
            return Err(Error::InvalidArgument(format!(
                "batch_size {} × {num_shards} shards is larger than the {n} samples: with \
                 last_batch {:?} an epoch yields no batch",
                self.batch_size, self.last_batch
            )));
        }
        self.shard = (num_shards, index);
        Ok(self)
    }

    /// (number of shards, this shard's index); (1, 0) unless [`shard`](Self::shard)ed.
    pub fn shard_of(&self) -> (usize, usize) {
        self.shard
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
        let bs = self.global_batch_size();
        match self.last_batch {
            LastBatch::Keep => n.div_ceil(bs),
            LastBatch::Discard => n / bs,
            LastBatch::Rollover => (self.leftover.len() + n) / bs,
        }
    }

    /// The batch size over all shards.
    fn global_batch_size(&self) -> usize {
        self.batch_size * self.shard.0
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

        let bs = self.global_batch_size();
        let mut batches: Vec<Vec<usize>> = pending.chunks(bs).map(|chunk| chunk.to_vec()).collect();
        let short_last = batches.last().is_some_and(|last| last.len() < bs);
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
        let (shards, index) = self.shard;
        if shards > 1 {
            // Shard i of a batch of L: [i·L/N, (i+1)·L/N), B each for a full batch.
            for batch in &mut batches {
                let l = batch.len();
                *batch = batch[index * l / shards..(index + 1) * l / shards].to_vec();
            }
        }
        batches
    }
}
