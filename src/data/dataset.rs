//! The [`Dataset`] trait and the views its combinators return.

use std::sync::Arc;

use crate::data::sampler::Sampler;
use crate::error::{Error, Result};

/// A finite, indexable collection of samples, as Gluon's `gluon.data.Dataset`.
///
/// `get` takes `&self` so that several [`DataLoader`](crate::data::DataLoader) workers
/// can read one dataset at the same time; that is also why a dataset is `Send + Sync`.
///
/// ```
/// use boson::data::{Dataset, SimpleDataset};
///
/// let ds = SimpleDataset::new(vec![1.0f32, 2.0, 3.0]);
/// assert_eq!(ds.len(), 3);
/// assert_eq!(ds.get(1)?, 2.0);
/// assert!(ds.get(3).is_err());
/// # Ok::<(), boson::error::Error>(())
/// ```
pub trait Dataset: Send + Sync {
    /// One sample.
    type Item;

    /// The number of samples.
    fn len(&self) -> usize;

    /// Sample `index`; an index `>= len()` is an [`Error::IndexOutOfRange`].
    fn get(&self, index: usize) -> Result<Self::Item>;

    /// True when the dataset has no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A lazy view that applies `f` to each sample when it is read (Gluon's
    /// `transform(fn, lazy=True)`): a random `f` gives fresh values on every read.
    ///
    /// ```
    /// use boson::data::{Dataset, SimpleDataset};
    ///
    /// let doubled = SimpleDataset::new(vec![1.0f32, 2.0]).transform(|x| Ok(x * 2.0));
    /// assert_eq!(doubled.get(1)?, 4.0);
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    fn transform<U, F>(self, f: F) -> Transform<Self, F>
    where
        Self: Sized,
        F: Fn(Self::Item) -> Result<U> + Send + Sync,
    {
        Transform { inner: self, f }
    }

    /// A lazy view that applies `f` to the first field of each tuple sample only
    /// (Gluon's `transform_first`: transform the data, leave the label alone).
    ///
    /// ```
    /// use boson::data::{Dataset, SimpleDataset};
    ///
    /// let ds = SimpleDataset::new(vec![(1.0f32, 7i64)]).transform_first(|x| Ok(x + 0.5));
    /// assert_eq!(ds.get(0)?, (1.5, 7));
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    fn transform_first<U, F>(self, f: F) -> TransformFirst<Self, F>
    where
        Self: Sized,
        Self::Item: MapFirst,
        F: Fn(<Self::Item as MapFirst>::First) -> Result<U> + Send + Sync,
    {
        TransformFirst { inner: self, f }
    }

    /// The samples for which `predicate` is true, in their original order. As in Gluon,
    /// the predicate runs once over every sample now, so a failing `get` is returned here.
    ///
    /// ```
    /// use boson::data::{Dataset, SimpleDataset};
    ///
    /// let even = SimpleDataset::new((0..10i64).collect()).filter(|x| x % 2 == 0)?;
    /// assert_eq!(even.len(), 5);
    /// assert_eq!(even.get(4)?, 8);
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    fn filter<P>(self, predicate: P) -> Result<Subset<Self>>
    where
        Self: Sized,
        P: Fn(&Self::Item) -> bool,
    {
        let mut indices = Vec::new();
        for i in 0..self.len() {
            if predicate(&self.get(i)?) {
                indices.push(i);
            }
        }
        Ok(Subset {
            inner: self,
            indices,
        })
    }

    /// Contiguous shard `index` of `num_shards`. The first `len % num_shards` shards hold
    /// one more sample than the others, as in Gluon. Shard before shuffling.
    ///
    /// ```
    /// use boson::data::{Dataset, SimpleDataset};
    ///
    /// // 10 samples in 3 shards: sizes 4, 3, 3.
    /// let shard = SimpleDataset::new((0..10i64).collect()).shard(3, 1)?;
    /// assert_eq!(shard.len(), 3);
    /// assert_eq!(shard.get(0)?, 4);
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    fn shard(self, num_shards: usize, index: usize) -> Result<Slice<Self>>
    where
        Self: Sized,
    {
        if num_shards == 0 {
            return Err(Error::InvalidArgument(
                "shard: num_shards must be > 0".into(),
            ));
        }
        if index >= num_shards {
            return Err(Error::InvalidArgument(format!(
                "shard: index {index} must be < num_shards {num_shards}"
            )));
        }
        let total = self.len();
        let base = total / num_shards;
        let rest = total % num_shards;
        let start = base * index + index.min(rest);
        let len = base + usize::from(index < rest);
        Ok(Slice {
            inner: self,
            start,
            len,
        })
    }

    /// The first `count` samples (all of them when `count >= len()`).
    ///
    /// ```
    /// use boson::data::{Dataset, SimpleDataset};
    ///
    /// assert_eq!(SimpleDataset::new(vec![1i64, 2, 3]).take(2).len(), 2);
    /// assert_eq!(SimpleDataset::new(vec![1i64, 2, 3]).take(99).len(), 3);
    /// ```
    fn take(self, count: usize) -> Slice<Self>
    where
        Self: Sized,
    {
        let len = count.min(self.len());
        Slice {
            inner: self,
            start: 0,
            len,
        }
    }

    /// A view through the indices `sampler` yields for its epoch 0, fixed from now on
    /// (Gluon's `sample`). An index outside the dataset is an error.
    ///
    /// ```
    /// use boson::data::{Dataset, SequentialSampler, SimpleDataset};
    ///
    /// let tail = SimpleDataset::new(vec![1i64, 2, 3, 4]).sample(&SequentialSampler::with_start(2, 2))?;
    /// assert_eq!(tail.get(0)?, 3);
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    fn sample<S>(self, sampler: &S) -> Result<Subset<Self>>
    where
        Self: Sized,
        S: Sampler + ?Sized,
    {
        let indices = sampler.indices(0);
        let len = self.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= len) {
            return Err(Error::IndexOutOfRange {
                what: "dataset (from sampler)".into(),
                index: bad as i64,
                size: len,
            });
        }
        Ok(Subset {
            inner: self,
            indices,
        })
    }
}

/// The error every dataset returns for an index past its end.
pub(crate) fn out_of_range(what: &str, index: usize, size: usize) -> Error {
    Error::IndexOutOfRange {
        what: what.to_string(),
        index: i64::try_from(index).unwrap_or(i64::MAX),
        size,
    }
}

/// Sharing a dataset between loaders: `Arc<D>` is a dataset too.
impl<D: Dataset + ?Sized> Dataset for Arc<D> {
    type Item = D::Item;
    fn len(&self) -> usize {
        (**self).len()
    }
    fn get(&self, index: usize) -> Result<Self::Item> {
        (**self).get(index)
    }
}

/// A boxed dataset (for instance `Box<dyn Dataset<Item = f32>>`) is a dataset too.
impl<D: Dataset + ?Sized> Dataset for Box<D> {
    type Item = D::Item;
    fn len(&self) -> usize {
        (**self).len()
    }
    fn get(&self, index: usize) -> Result<Self::Item> {
        (**self).get(index)
    }
}

/// The view [`Dataset::transform`] returns.
#[derive(Clone, Debug)]
pub struct Transform<D, F> {
    inner: D,
    f: F,
}

impl<D, F, U> Dataset for Transform<D, F>
where
    D: Dataset,
    F: Fn(D::Item) -> Result<U> + Send + Sync,
{
    type Item = U;
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, index: usize) -> Result<U> {
        (self.f)(self.inner.get(index)?)
    }
}

/// Tuples whose first field [`Dataset::transform_first`] can replace.
pub trait MapFirst {
    /// The type of the first field.
    type First;
    /// The tuple with its first field replaced by a `U`.
    type WithFirst<U>;
    /// Replaces the first field by `f(first)`.
    fn map_first<U>(self, f: impl FnOnce(Self::First) -> Result<U>) -> Result<Self::WithFirst<U>>;
}

impl<A, B> MapFirst for (A, B) {
    type First = A;
    type WithFirst<U> = (U, B);
    fn map_first<U>(self, f: impl FnOnce(A) -> Result<U>) -> Result<(U, B)> {
        Ok((f(self.0)?, self.1))
    }
}

impl<A, B, C> MapFirst for (A, B, C) {
    type First = A;
    type WithFirst<U> = (U, B, C);
    fn map_first<U>(self, f: impl FnOnce(A) -> Result<U>) -> Result<(U, B, C)> {
        Ok((f(self.0)?, self.1, self.2))
    }
}

impl<A, B, C, E> MapFirst for (A, B, C, E) {
    type First = A;
    type WithFirst<U> = (U, B, C, E);
    fn map_first<U>(self, f: impl FnOnce(A) -> Result<U>) -> Result<(U, B, C, E)> {
        Ok((f(self.0)?, self.1, self.2, self.3))
    }
}

/// The view [`Dataset::transform_first`] returns.
#[derive(Clone, Debug)]
pub struct TransformFirst<D, F> {
    inner: D,
    f: F,
}

impl<D, F, U> Dataset for TransformFirst<D, F>
where
    D: Dataset,
    D::Item: MapFirst,
    F: Fn(<D::Item as MapFirst>::First) -> Result<U> + Send + Sync,
{
    type Item = <D::Item as MapFirst>::WithFirst<U>;
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, index: usize) -> Result<Self::Item> {
        self.inner.get(index)?.map_first(&self.f)
    }
}

/// A view through a fixed list of indices ([`Dataset::filter`], [`Dataset::sample`]).
#[derive(Clone, Debug)]
pub struct Subset<D> {
    inner: D,
    indices: Vec<usize>,
}

impl<D> Subset<D> {
    /// The indices into the underlying dataset, in view order.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
}

impl<D: Dataset> Dataset for Subset<D> {
    type Item = D::Item;
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn get(&self, index: usize) -> Result<D::Item> {
        match self.indices.get(index) {
            Some(&i) => self.inner.get(i),
            None => Err(out_of_range("subset", index, self.indices.len())),
        }
    }
}

/// A contiguous range of another dataset ([`Dataset::shard`], [`Dataset::take`]).
#[derive(Clone, Debug)]
pub struct Slice<D> {
    inner: D,
    start: usize,
    len: usize,
}

impl<D> Slice<D> {
    /// Where the slice starts in the underlying dataset.
    pub fn start(&self) -> usize {
        self.start
    }
}

impl<D: Dataset> Dataset for Slice<D> {
    type Item = D::Item;
    fn len(&self) -> usize {
        self.len
    }
    fn get(&self, index: usize) -> Result<D::Item> {
        if index >= self.len {
            return Err(out_of_range("slice", index, self.len));
        }
        self.inner.get(self.start + index)
    }
}
