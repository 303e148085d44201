//! Turning a list of samples into one batch: the [`Stack`] trait (default) and
//! [`Batchify`] (anything that can batch, closures included).

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Sample types the default batchify knows how to stack into tensors.
///
/// * `f32` → f32 tensor `[B]`; `i64` → i64 tensor `[B]`;
/// * `Vec<f32>` (`Vec<i64>`) of length `d` → f32 (i64) tensor `[B, d]` (different
///   lengths are an error);
/// * f32 [`Tensor`]s of one shape `[d0, d1, …]` → f32 tensor `[B, d0, d1, …]` (a
///   different shape is an error naming it), e.g. images after
///   [`ToTensor`](crate::data::vision::transforms::ToTensor);
/// * tuples of 2 to 4 of those → the tuple of the stacked fields.
///
/// ```
/// use boson::data::Stack;
///
/// let (users, items, ratings) =
///     <(i64, i64, f32)>::stack(vec![(0, 5, 4.0), (1, 6, 3.0)])?;
/// assert_eq!(users.shape(), &[2]);
/// assert_eq!(items.to_vec_i64()?, vec![5, 6]);
/// assert_eq!(ratings.to_vec_f32()?, vec![4.0, 3.0]);
/// # Ok::<(), boson::error::Error>(())
/// ```
pub trait Stack: Sized {
    /// What a stacked batch of these is.
    type Batch: Send;
    /// Stacks `items` along a new first axis.
    fn stack(items: Vec<Self>) -> Result<Self::Batch>;
}

impl Stack for f32 {
    type Batch = Tensor;
    fn stack(items: Vec<f32>) -> Result<Tensor> {
        let n = items.len();
        Tensor::from_vec(items, &[n])
    }
}

impl Stack for i64 {
    type Batch = Tensor;
    fn stack(items: Vec<i64>) -> Result<Tensor> {
        let n = items.len();
        Tensor::from_vec_i64(items, &[n])
    }
}

impl Stack for Vec<f32> {
    type Batch = Tensor;
    fn stack(items: Vec<Vec<f32>>) -> Result<Tensor> {
        let (flat, shape) = flatten_rows(&items)?;
        Tensor::from_vec(flat, &shape)
    }
}

impl Stack for Vec<i64> {
    type Batch = Tensor;
    fn stack(items: Vec<Vec<i64>>) -> Result<Tensor> {
        let (flat, shape) = flatten_rows(&items)?;
        Tensor::from_vec_i64(flat, &shape)
    }
}

impl Stack for Tensor {
    type Batch = Tensor;
    /// One copy of each sample's values into one new tensor (errors: no samples, a
    /// shape that differs from sample 0's, a tensor that is not f32).
    fn stack(items: Vec<Tensor>) -> Result<Tensor> {
        let first = items
            .first()
            .ok_or_else(|| Error::Data("batchify: cannot stack an empty list of tensors".into()))?;
        let shape = first.shape().to_vec();
        if let Some((i, bad)) = items.iter().enumerate().find(|(_, t)| t.shape() != shape) {
            return Err(Error::Data(format!(
                "batchify: sample 0 is a tensor of shape {shape:?} but sample {i} has shape {:?}",
                bad.shape()
            )));
        }
        let mut batch_shape = Vec::with_capacity(shape.len() + 1);
        batch_shape.push(items.len());
        batch_shape.extend_from_slice(&shape);
        // Joining along axis 0 copies each sample's values once into one buffer; a
        // scalar sample has no axis 0, so it is viewed as `[1]` first.
        let joined = if shape.is_empty() {
            let rows = items
                .iter()
                .map(|t| t.reshape(&[1]))
                .collect::<Result<Vec<_>>>()?;
            Tensor::concat(&rows.iter().collect::<Vec<_>>(), 0)?
        } else {
            Tensor::concat(&items.iter().collect::<Vec<_>>(), 0)?
        };
        joined.reshape(&batch_shape)
    }
}

/// Equal-length rows as one row-major buffer and its `[rows, width]` shape.
fn flatten_rows<T: Copy>(items: &[Vec<T>]) -> Result<(Vec<T>, [usize; 2])> {
    let width = items.first().map_or(0, Vec::len);
    let mut flat = Vec::with_capacity(items.len() * width);
    for (i, item) in items.iter().enumerate() {
        if item.len() != width {
            return Err(Error::Data(format!(
                "batchify: ragged batch, sample 0 has {width} values but sample {i} has {}",
                item.len()
            )));
        }
        flat.extend_from_slice(item);
    }
    Ok((flat, [items.len(), width]))
}

impl<A: Stack, B: Stack> Stack for (A, B) {
    type Batch = (A::Batch, B::Batch);
    fn stack(items: Vec<(A, B)>) -> Result<Self::Batch> {
        let n = items.len();
        let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (x, y) in items {
            a.push(x);
            b.push(y);
        }
        Ok((A::stack(a)?, B::stack(b)?))
    }
}

impl<A: Stack, B: Stack, C: Stack> Stack for (A, B, C) {
    type Batch = (A::Batch, B::Batch, C::Batch);
    fn stack(items: Vec<(A, B, C)>) -> Result<Self::Batch> {
        let n = items.len();
        let (mut a, mut b, mut c) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (x, y, z) in items {
            a.push(x);
            b.push(y);
            c.push(z);
        }
        Ok((A::stack(a)?, B::stack(b)?, C::stack(c)?))
    }
}

impl<A: Stack, B: Stack, C: Stack, E: Stack> Stack for (A, B, C, E) {
    type Batch = (A::Batch, B::Batch, C::Batch, E::Batch);
    fn stack(items: Vec<(A, B, C, E)>) -> Result<Self::Batch> {
        let n = items.len();
        let (mut a, mut b, mut c, mut e) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (w, x, y, z) in items {
            a.push(w);
            b.push(x);
            c.push(y);
            e.push(z);
        }
        Ok((A::stack(a)?, B::stack(b)?, C::stack(c)?, E::stack(e)?))
    }
}

/// Makes one batch from the samples of a batch, in sampler order (Gluon's
/// `batchify_fn`). Implemented by [`StackBatchify`] (the default) and by every
/// `Fn(Vec<T>) -> Result<B> + Send + Sync` closure.
///
/// ```
/// use boson::data::Batchify;
///
/// let sum = |items: Vec<f32>| Ok(items.iter().sum::<f32>());
/// assert_eq!(sum.batchify(vec![1.0, 2.0])?, 3.0);
/// # Ok::<(), boson::error::Error>(())
/// ```
pub trait Batchify<T>: Send + Sync {
    /// The batch type.
    type Batch: Send;
    /// Builds the batch; `items` is never empty when called by a `DataLoader`.
    fn batchify(&self, items: Vec<T>) -> Result<Self::Batch>;
}

/// The default batchify: [`Stack`]s the samples into tensors.
#[derive(Clone, Copy, Debug, Default)]
pub struct StackBatchify;

impl<T: Stack> Batchify<T> for StackBatchify {
    type Batch = T::Batch;
    fn batchify(&self, items: Vec<T>) -> Result<T::Batch> {
        T::stack(items)
    }
}

impl<T, B, F> Batchify<T> for F
where
    B: Send,
    F: Fn(Vec<T>) -> Result<B> + Send + Sync,
{
    type Batch = B;
    fn batchify(&self, items: Vec<T>) -> Result<B> {
        self(items)
    }
}
