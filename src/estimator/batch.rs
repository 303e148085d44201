//! Batches as the estimator sees them: model inputs plus a label, and the sources that
//! yield them epoch by epoch.

use crate::data::{Batchify, DataLoader, Dataset};
use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;

/// One training or validation batch: the model's inputs (passed to
/// [`Model::forward_tensors`](crate::nn::Model::forward_tensors)) and the label the loss
/// compares the prediction with.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The model inputs, e.g. `[x]` or `[users, items]`.
    pub inputs: Vec<Tensor>,
    /// The target values.
    pub label: Tensor,
}

impl Batch {
    /// A batch from its parts.
    pub fn new(inputs: Vec<Tensor>, label: Tensor) -> Batch {
        Batch { inputs, label }
    }

    /// The same batch with every tensor moved to `device` (a cheap clone when already
    /// there).
    pub fn to_device(self, device: Device) -> Result<Batch> {
        Ok(Batch {
            inputs: self
                .inputs
                .iter()
                .map(|t| t.to_device(device))
                .collect::<Result<_>>()?,
            label: self.label.to_device(device)?,
        })
    }

    /// The number of samples: the label's first dimension (1 for a scalar label).
    pub fn size(&self) -> usize {
        self.label.shape().first().copied().unwrap_or(1)
    }
}

/// How a data loader's batch splits into inputs and label. The last tensor of a tuple
/// is the label and the others are inputs, so `(x, y)` and the recommender's
/// `(users, items, ratings)` work as they come. Implement it for your own batch type,
/// or use [`SplitWith`] for a one-off closure.
pub trait IntoBatch {
    /// Splits `self` into model inputs and label.
    fn into_batch(self) -> Result<Batch>;
}

impl IntoBatch for Batch {
    fn into_batch(self) -> Result<Batch> {
        Ok(self)
    }
}

impl IntoBatch for (Tensor, Tensor) {
    fn into_batch(self) -> Result<Batch> {
        Ok(Batch::new(vec![self.0], self.1))
    }
}

impl IntoBatch for (Tensor, Tensor, Tensor) {
    fn into_batch(self) -> Result<Batch> {
        Ok(Batch::new(vec![self.0, self.1], self.2))
    }
}

impl IntoBatch for (Tensor, Tensor, Tensor, Tensor) {
    fn into_batch(self) -> Result<Batch> {
        Ok(Batch::new(vec![self.0, self.1, self.2], self.3))
    }
}

/// Where the estimator gets its batches: one call to [`batches`](Self::batches) is
/// one epoch. Implemented for every [`DataLoader`] whose batches are [`IntoBatch`].
pub trait BatchSource {
    /// The batches of the next epoch.
    fn batches(&self) -> Box<dyn Iterator<Item = Result<Batch>> + '_>;

    /// The number of the epoch the next [`batches`](Self::batches) call yields (0 first).
    /// Checkpoints save it, and a resumed run skips epochs until the source reaches it,
    /// so shuffling continues with the same permutations.
    fn epoch(&self) -> u64;

    /// The number of batches the next epoch yields.
    fn len(&self) -> usize;

    /// True when the next epoch yields no batch.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<D, F> BatchSource for DataLoader<D, F>
where
    D: Dataset + 'static,
    F: Batchify<D::Item> + 'static,
    F::Batch: IntoBatch,
{
    fn batches(&self) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        Box::new(self.iter().map(|b| b.and_then(IntoBatch::into_batch)))
    }
    fn epoch(&self) -> u64 {
        DataLoader::epoch(self)
    }
    fn len(&self) -> usize {
        DataLoader::len(self)
    }
}

/// A data loader whose batches are split by a closure: for batch layouts that
/// [`IntoBatch`] does not cover (e.g. a label that is not the last field).
///
/// ```
/// use boson::data::{ArrayDataset, DataLoader};
/// use boson::estimator::{Batch, BatchSource, SplitWith};
///
/// // Items are (rating, user, item): the label comes first here.
/// let ds = ArrayDataset::new((vec![4.0f32, 3.0], vec![0i64, 1], vec![5i64, 6]))?;
/// let loader = DataLoader::builder(ds).batch_size(2).build()?;
/// let source = SplitWith::new(&loader, |(r, u, i)| Ok(Batch::new(vec![u, i], r)));
/// let batch = source.batches().next().unwrap()?;
/// assert_eq!(batch.inputs.len(), 2);
/// # Ok::<(), boson::Error>(())
/// ```
pub struct SplitWith<'a, D, F, S> {
    loader: &'a DataLoader<D, F>,
    split: S,
}

impl<'a, D, F, S> SplitWith<'a, D, F, S> {
    /// Wraps `loader`, splitting each of its batches with `split`.
    pub fn new(loader: &'a DataLoader<D, F>, split: S) -> Self {
        SplitWith { loader, split }
    }
}

impl<D, F, S> BatchSource for SplitWith<'_, D, F, S>
where
    D: Dataset + 'static,
    F: Batchify<D::Item> + 'static,
    S: Fn(F::Batch) -> Result<Batch>,
{
    fn batches(&self) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        Box::new(self.loader.iter().map(|b| b.and_then(&self.split)))
    }
    fn epoch(&self) -> u64 {
        self.loader.epoch()
    }
    fn len(&self) -> usize {
        self.loader.len()
    }
}
