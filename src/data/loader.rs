//! [`DataLoader`]: batches a dataset in the caller's thread or in worker threads.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::data::batch_sampler::{BatchSampler, LastBatch};
use crate::data::batchify::{Batchify, StackBatchify};
use crate::data::dataset::Dataset;
use crate::data::sample_context::with_sample;
use crate::data::sampler::{RandomSampler, Sampler, SequentialSampler};
use crate::error::{Error, Result};

/// The options of a [`DataLoader`], checked by [`build`](Self::build) with Gluon's rules.
///
/// * `batch_size` is required unless `batch_sampler` is given;
/// * `batch_sampler` excludes `batch_size`, `shuffle`, `sampler` and `last_batch`;
/// * `shuffle` excludes `sampler`;
/// * `batch_size` 0 is an error.
pub struct DataLoaderBuilder<D, F = StackBatchify> {
    dataset: D,
    batch_size: Option<usize>,
    shuffle: bool,
    sampler: Option<Box<dyn Sampler>>,
    batch_sampler: Option<BatchSampler>,
    last_batch: Option<LastBatch>,
    batchify: F,
    num_workers: usize,
    prefetch: Option<usize>,
    seed: u64,
    shard: Option<(usize, usize)>,
}

/// The seed a shuffling loader uses when none is given: shuffles are reproducible by
/// default, as everything else in boson.
pub const DEFAULT_SEED: u64 = 0;

impl<D, F> DataLoaderBuilder<D, F> {
    /// Shard `index` of `num_shards` (a data-parallel rank and the world size): each
    /// batch of `batch_size` is this shard's part of a batch of `batch_size ×
    /// num_shards`, drawn alike on every shard ([`BatchSampler::shard`]). Give every
    /// shard the same seed.
    pub fn shard(mut self, num_shards: usize, index: usize) -> Self {
        self.shard = Some((num_shards, index));
        self
    }

    /// Samples per batch (required unless a batch sampler is given).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = Some(batch_size);
        self
    }

    /// Visit the samples in a fresh seeded random order every epoch.
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// Visit the samples in the order `sampler` gives (excludes `shuffle`).
    pub fn sampler(mut self, sampler: impl Sampler + 'static) -> Self {
        self.sampler = Some(Box::new(sampler));
        self
    }

    /// Take the batches from `batch_sampler` (excludes `batch_size`, `shuffle`,
    /// `sampler` and `last_batch`).
    pub fn batch_sampler(mut self, batch_sampler: BatchSampler) -> Self {
        self.batch_sampler = Some(batch_sampler);
        self
    }

    /// What to do with a short last batch (default [`LastBatch::Keep`]).
    pub fn last_batch(mut self, last_batch: LastBatch) -> Self {
        self.last_batch = Some(last_batch);
        self
    }

    /// Worker threads: 0 loads in the caller's thread (the default).
    pub fn num_workers(mut self, num_workers: usize) -> Self {
        self.num_workers = num_workers;
        self
    }

    /// How many finished batches may wait, over all workers (default
    /// `2 * num_workers`, as Gluon). Each worker gets `ceil(prefetch / num_workers)`.
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = Some(prefetch);
        self
    }

    /// The seed (default [`DEFAULT_SEED`]) of the shuffle and of the random transforms:
    /// epoch `e` of seed `s` is always the same permutation, and sample `i` of it always
    /// draws the same [`sample_rng`](crate::data::sample_rng) streams.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Replaces the batchify function (default [`StackBatchify`]).
    pub fn batchify<G>(self, batchify: G) -> DataLoaderBuilder<D, G> {
        DataLoaderBuilder {
            dataset: self.dataset,
            batch_size: self.batch_size,
            shuffle: self.shuffle,
            sampler: self.sampler,
            batch_sampler: self.batch_sampler,
            last_batch: self.last_batch,
            batchify,
            num_workers: self.num_workers,
            prefetch: self.prefetch,
            seed: self.seed,
            shard: self.shard,
        }
    }
}

impl<D, F> DataLoaderBuilder<D, F>
where
    D: Dataset + 'static,
    F: Batchify<D::Item> + 'static,
{
    /// Checks the options and builds the loader.
    pub fn build(self) -> Result<DataLoader<D, F>> {
        let batch_sampler = match self.batch_sampler {
            Some(batch_sampler) => {
                if self.batch_size.is_some()
                    || self.shuffle
                    || self.sampler.is_some()
                    || self.last_batch.is_some()
                {
                    return Err(Error::InvalidArgument(
                        "batch_sampler is mutually exclusive with batch_size, shuffle, \
                         sampler and last_batch"
                            .into(),
                    ));
                }
                batch_sampler
            }
            None => {
                let batch_size = self.batch_size.ok_or_else(|| {
                    Error::InvalidArgument(
                        "batch_size is required unless batch_sampler is given".into(),
                    )
                })?;
                let len = self.dataset.len();
                let sampler: Box<dyn Sampler> = match (self.sampler, self.shuffle) {
                    (Some(_), true) => {
                        return Err(Error::InvalidArgument(
                            "shuffle and sampler are mutually exclusive".into(),
                        ))
                    }
                    (Some(sampler), false) => sampler,
                    (None, true) => Box::new(RandomSampler::new(len, self.seed)),
                    (None, false) => Box::new(SequentialSampler::new(len)),
                };
                BatchSampler::new(sampler, batch_size, self.last_batch.unwrap_or_default())?
            }
        };
        let batch_sampler = match self.shard {
            Some((n, i)) => batch_sampler.shard(n, i)?,
            None => batch_sampler,
        };
        let prefetch = self.prefetch.unwrap_or(2 * self.num_workers);
        Ok(DataLoader {
            dataset: Arc::new(self.dataset),
            batchify: Arc::new(self.batchify),
            batch_sampler: Mutex::new(batch_sampler),
            num_workers: self.num_workers,
            prefetch_per_worker: prefetch.div_ceil(self.num_workers.max(1)),
            seed: self.seed,
        })
    }
}

/// Gluon's `DataLoader`: batches a [`Dataset`] epoch after epoch.
///
/// Each call to [`iter`](Self::iter) (or `for batch in &loader`) is the next epoch: a
/// shuffling loader reshuffles, a rollover loader starts with the previous leftovers.
/// Items are `Result`s; the batches and their order do not depend on `num_workers`, nor
/// do random transforms that draw from [`sample_rng`](crate::data::sample_rng): each
/// sample is read with its (seed, epoch, index) set on the thread that reads it.
///
/// Errors: a failing `get` or batchify, or a panic inside either, becomes an `Err` item
/// for that batch (never a panic or hang in the caller), and the epoch then goes on with
/// the following batches, so what an epoch yields is the same for every worker count.
/// Use `collect::<Result<Vec<_>>>()` or `?` to stop at the first error.
///
/// ```
/// use boson::data::{ArrayDataset, DataLoader, LastBatch};
///
/// let ds = ArrayDataset::new((vec![0i64, 1, 2, 3, 4], vec![1.0f32, 2.0, 3.0, 4.0, 5.0]))?;
/// let loader = DataLoader::builder(ds)
///     .batch_size(2)
///     .last_batch(LastBatch::Discard)
///     .num_workers(2)
///     .build()?;
/// assert_eq!(loader.len(), 2);
/// for batch in &loader {
///     let (ids, values) = batch?;
///     assert_eq!(ids.shape(), &[2]);
///     assert_eq!(values.shape(), &[2]);
/// }
/// # Ok::<(), boson::error::Error>(())
/// ```
pub struct DataLoader<D, F = StackBatchify> {
    dataset: Arc<D>,
    batchify: Arc<F>,
    batch_sampler: Mutex<BatchSampler>,
    num_workers: usize,
    prefetch_per_worker: usize,
    seed: u64,
}

impl<D: Dataset + 'static> DataLoader<D, StackBatchify> {
    /// Starts configuring a loader over `dataset` (see [`DataLoaderBuilder`]).
    pub fn builder(dataset: D) -> DataLoaderBuilder<D, StackBatchify> {
        DataLoaderBuilder {
            dataset,
            batch_size: None,
            shuffle: false,
            sampler: None,
            batch_sampler: None,
            last_batch: None,
            batchify: StackBatchify,
            num_workers: 0,
            prefetch: None,
            seed: DEFAULT_SEED,
            shard: None,
        }
    }
}

impl<D, F> DataLoader<D, F>
where
    D: Dataset + 'static,
    F: Batchify<D::Item> + 'static,
{
    /// The number of batches the next epoch yields (Gluon's `len(loader)`).
    pub fn len(&self) -> usize {
        self.sampler().len()
    }

    /// True when the next epoch yields no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dataset.
    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// The number of worker threads (0 = the caller's thread).
    pub fn num_workers(&self) -> usize {
        self.num_workers
    }

    /// The number of the epoch the next `iter()` produces (0 first).
    pub fn epoch(&self) -> u64 {
        self.sampler().epoch()
    }

    /// Starts the next epoch.
    pub fn iter(&self) -> Epoch<'_, D, F> {
        let (epoch, batches) = {
            let mut sampler = self.sampler();
            (sampler.epoch(), sampler.next_epoch())
        };
        let workers = self.num_workers.min(batches.len());
        let mode = if workers == 0 {
            Mode::Caller(batches.into_iter().enumerate())
        } else {
            match Workers::start(self, batches, workers, epoch) {
                Ok(workers) => Mode::Workers(workers),
                Err(e) => Mode::Failed(Some(e)),
            }
        };
        Epoch {
            loader: self,
            mode,
            epoch,
        }
    }

    fn sampler(&self) -> std::sync::MutexGuard<'_, BatchSampler> {
        // The lock is never held while user code runs, but a user `Sampler` may panic
        // inside `next_epoch`; its state is still usable, so ignore the poison.
        self.batch_sampler
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<'a, D, F> IntoIterator for &'a DataLoader<D, F>
where
    D: Dataset + 'static,
    F: Batchify<D::Item> + 'static,
{
    type Item = Result<F::Batch>;
    type IntoIter = Epoch<'a, D, F>;
    fn into_iter(self) -> Epoch<'a, D, F> {
        self.iter()
    }
}

/// One epoch of a [`DataLoader`]: an iterator over `Result<batch>`.
///
/// Dropping it early stops the workers (they finish the batch in hand and exit).
pub struct Epoch<'a, D: Dataset, F: Batchify<D::Item>> {
    loader: &'a DataLoader<D, F>,
    mode: Mode<F::Batch>,
    epoch: u64,
}

enum Mode<B> {
    /// Loading in the caller's thread: (batch number, indices).
    Caller(std::iter::Enumerate<std::vec::IntoIter<Vec<usize>>>),
    Workers(Workers<B>),
    /// The worker threads could not be started; the error is reported once.
    Failed(Option<Error>),
}

impl<D, F> Iterator for Epoch<'_, D, F>
where
    D: Dataset + 'static,
    F: Batchify<D::Item> + 'static,
{
    type Item = Result<F::Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.mode {
            Mode::Caller(batches) => {
                let (number, indices) = batches.next()?;
                let job = Job {
                    number,
                    epoch: self.epoch,
                    seed: self.loader.seed,
                };
                Some(load_batch(
                    &*self.loader.dataset,
                    &*self.loader.batchify,
                    &indices,
                    job,
                ))
            }
            Mode::Workers(workers) => workers.next(),
            Mode::Failed(error) => error.take().map(Err),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.mode {
            Mode::Caller(batches) => batches.size_hint(),
            Mode::Workers(workers) => {
                let left = workers.total - workers.next;
                (0, Some(left))
            }
            Mode::Failed(error) => (0, Some(usize::from(error.is_some()))),
        }
    }
}

/// Worker threads for one epoch. Worker `w` loads batches `w, w + n, w + 2n, …` and
/// sends them, in that order, on its own bounded channel; the caller reads batch `k`
/// from channel `k % n`, which keeps the order exact whatever the timing.
struct Workers<B> {
    receivers: Vec<Receiver<Result<B>>>,
    handles: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    next: usize,
    total: usize,
}

impl<B: Send + 'static> Workers<B> {
    fn start<D, F>(
        loader: &DataLoader<D, F>,
        batches: Vec<Vec<usize>>,
        count: usize,
        epoch: u64,
    ) -> Result<Self>
    where
        D: Dataset + 'static,
        F: Batchify<D::Item, Batch = B> + 'static,
    {
        let total = batches.len();
        let mut jobs: Vec<Vec<(Job, Vec<usize>)>> = vec![Vec::new(); count];
        for (number, indices) in batches.into_iter().enumerate() {
            let job = Job {
                number,
                epoch,
                seed: loader.seed,
            };
            jobs[number % count].push((job, indices));
        }
        // Built up in place so that, if a spawn fails, dropping it stops the others.
        let mut workers = Workers {
            receivers: Vec::with_capacity(count),
            handles: Vec::with_capacity(count),
            stop: Arc::new(AtomicBool::new(false)),
            next: 0,
            total,
        };
        for (w, jobs) in jobs.into_iter().enumerate() {
            let (sender, receiver) = sync_channel(loader.prefetch_per_worker);
            let dataset = Arc::clone(&loader.dataset);
            let batchify = Arc::clone(&loader.batchify);
            let stop = Arc::clone(&workers.stop);
            let handle = std::thread::Builder::new()
                .name(format!("boson-data-{w}"))
                .spawn(move || run_worker(&*dataset, &*batchify, jobs, sender, &stop))
                .map_err(|e| Error::Data(format!("could not start data worker {w}: {e}")))?;
            workers.receivers.push(receiver);
            workers.handles.push(handle);
        }
        Ok(workers)
    }

    fn next(&mut self) -> Option<Result<B>> {
        if self.next >= self.total {
            return None;
        }
        let number = self.next;
        let worker = number % self.receivers.len();
        self.next += 1;
        match self.receivers[worker].recv() {
            Ok(batch) => Some(batch),
            Err(_) => {
                // Only reachable if a worker thread died outside `catch_unwind`; end the
                // epoch rather than wait for batches that will never come.
                self.next = self.total;
                Some(Err(Error::Data(format!(
                    "data worker {worker} stopped before sending batch {number}"
                ))))
            }
        }
    }
}

impl<B> Drop for Workers<B> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receivers makes a worker blocked on a full channel return.
        self.receivers.clear();
        for handle in self.handles.drain(..) {
            // A worker never panics out (panics are caught per batch); nothing to report.
            let _ = handle.join();
        }
    }
}

fn run_worker<D, F>(
    dataset: &D,
    batchify: &F,
    jobs: Vec<(Job, Vec<usize>)>,
    sender: SyncSender<Result<F::Batch>>,
    stop: &AtomicBool,
) where
    D: Dataset,
    F: Batchify<D::Item>,
{
    for (job, indices) in jobs {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let batch = load_batch(dataset, batchify, &indices, job);
        if sender.send(batch).is_err() {
            return; // the epoch iterator was dropped
        }
    }
}

/// Which batch of which epoch a batch is, and the loader's seed.
#[derive(Clone, Copy, Debug)]
struct Job {
    number: usize,
    epoch: u64,
    seed: u64,
}

/// Reads and batchifies one batch; a panic in user code becomes an `Err`, so it reaches
/// the caller the same way from a worker thread or from the caller's own thread. Each
/// sample is read with its (seed, epoch, index) as the thread's sample context.
fn load_batch<D, F>(dataset: &D, batchify: &F, indices: &[usize], job: Job) -> Result<F::Batch>
where
    D: Dataset + ?Sized,
    F: Batchify<D::Item> + ?Sized,
{
    let Job {
        number,
        epoch,
        seed,
    } = job;
    let attempt = catch_unwind(AssertUnwindSafe(|| {
        let items = indices
            .iter()
            .map(|&i| with_sample(seed, epoch, i, || dataset.get(i)))
            .collect::<Result<Vec<_>>>()?;
        batchify.batchify(items)
    }));
    match attempt {
        Ok(batch) => batch,
        Err(payload) => Err(Error::Data(format!(
            "panic while loading batch {number}: {}",
            panic_message(payload.as_ref())
        ))),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
