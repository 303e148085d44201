//! In-memory datasets: [`SimpleDataset`] (one `Vec`) and [`ArrayDataset`] (columns).

use crate::data::dataset::{out_of_range, Dataset};
use crate::error::{Error, Result};

/// A dataset over a `Vec` of samples, as Gluon's `SimpleDataset`. `get` clones.
///
/// ```
/// use boson::data::{Dataset, SimpleDataset};
///
/// let ds = SimpleDataset::new(vec![(1i64, 2.5f32), (2, 3.5)]);
/// assert_eq!(ds.get(1)?, (2, 3.5));
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct SimpleDataset<T> {
    items: Vec<T>,
}

impl<T> SimpleDataset<T> {
    /// Wraps `items`.
    pub fn new(items: Vec<T>) -> Self {
        SimpleDataset { items }
    }

    /// The samples.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// Gives the samples back.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

impl<T> From<Vec<T>> for SimpleDataset<T> {
    fn from(items: Vec<T>) -> Self {
        SimpleDataset::new(items)
    }
}

impl<T: Clone + Send + Sync> Dataset for SimpleDataset<T> {
    type Item = T;
    fn len(&self) -> usize {
        self.items.len()
    }
    fn get(&self, index: usize) -> Result<T> {
        self.items
            .get(index)
            .cloned()
            .ok_or_else(|| out_of_range("SimpleDataset", index, self.items.len()))
    }
}

/// Column storage for [`ArrayDataset`]: a single `Vec` (samples are its elements, not
/// wrapped in a tuple, as in Gluon) or a tuple of 2 to 4 `Vec`s (samples are tuples).
pub trait Columns: Send + Sync {
    /// One sample: one value from each column.
    type Row;
    /// The length of each column, in order.
    fn lengths(&self) -> Vec<usize>;
    /// Row `index`; the caller has checked that it is in range.
    fn row(&self, index: usize) -> Self::Row;
}

impl<A: Clone + Send + Sync> Columns for Vec<A> {
    type Row = A;
    fn lengths(&self) -> Vec<usize> {
        vec![self.len()]
    }
    fn row(&self, i: usize) -> A {
        self[i].clone()
    }
}

impl<A, B> Columns for (Vec<A>, Vec<B>)
where
    A: Clone + Send + Sync,
    B: Clone + Send + Sync,
{
    type Row = (A, B);
    fn lengths(&self) -> Vec<usize> {
        vec![self.0.len(), self.1.len()]
    }
    fn row(&self, i: usize) -> (A, B) {
        (self.0[i].clone(), self.1[i].clone())
    }
}

impl<A, B, C> Columns for (Vec<A>, Vec<B>, Vec<C>)
where
    A: Clone + Send + Sync,
    B: Clone + Send + Sync,
    C: Clone + Send + Sync,
{
    type Row = (A, B, C);
    fn lengths(&self) -> Vec<usize> {
        vec![self.0.len(), self.1.len(), self.2.len()]
    }
    fn row(&self, i: usize) -> (A, B, C) {
        (self.0[i].clone(), self.1[i].clone(), self.2[i].clone())
    }
}

impl<A, B, C, E> Columns for (Vec<A>, Vec<B>, Vec<C>, Vec<E>)
where
    A: Clone + Send + Sync,
    B: Clone + Send + Sync,
    C: Clone + Send + Sync,
    E: Clone + Send + Sync,
{
    type Row = (A, B, C, E);
    fn lengths(&self) -> Vec<usize> {
        vec![self.0.len(), self.1.len(), self.2.len(), self.3.len()]
    }
    fn row(&self, i: usize) -> (A, B, C, E) {
        (
            self.0[i].clone(),
            self.1[i].clone(),
            self.2[i].clone(),
            self.3[i].clone(),
        )
    }
}

/// A dataset over equal-length columns, as Gluon's `ArrayDataset(*args)`: sample `i` is
/// the tuple of every column's element `i`.
///
/// ```
/// use boson::data::{ArrayDataset, Dataset};
///
/// let ds = ArrayDataset::new((vec![0i64, 1], vec![10i64, 11], vec![4.0f32, 5.0]))?;
/// assert_eq!(ds.get(1)?, (1, 11, 5.0));
/// assert!(ArrayDataset::new((vec![0i64], vec![1.0f32, 2.0])).is_err());
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ArrayDataset<C> {
    columns: C,
    len: usize,
}

impl<C: Columns> ArrayDataset<C> {
    /// Builds the dataset; columns of different lengths are an [`Error::Data`].
    pub fn new(columns: C) -> Result<Self> {
        let lengths = columns.lengths();
        let len = lengths.first().copied().unwrap_or(0);
        if lengths.iter().any(|&l| l != len) {
            return Err(Error::Data(format!(
                "ArrayDataset: columns must have equal lengths, got {lengths:?}"
            )));
        }
        Ok(ArrayDataset { columns, len })
    }

    /// The columns.
    pub fn columns(&self) -> &C {
        &self.columns
    }

    /// Gives the columns back.
    pub fn into_columns(self) -> C {
        self.columns
    }
}

impl<C: Columns> Dataset for ArrayDataset<C> {
    type Item = C::Row;
    fn len(&self) -> usize {
        self.len
    }
    fn get(&self, index: usize) -> Result<C::Row> {
        if index >= self.len {
            return Err(out_of_range("ArrayDataset", index, self.len));
        }
        Ok(self.columns.row(index))
    }
}
