//! Losses with Gluon's conventions: each returns one value per sample (`[batch]`),
//! the mean over every non-batch axis (the sum for `KLDivLoss`, as Gluon), after applying
//! the optional scalar weight (`weighted(w)`, Gluon's `weight=`) and a broadcastable
//! `sample_weight` (`[batch]`, `[batch, 1]` or the loss's shape). Where boson differs
//! from Gluon on purpose, docs/gluon-differences.md says so.
//!
//! ```
//! use boson::loss::{L2Loss, Loss};
//! use boson::Tensor;
//! let pred = Tensor::from_vec(vec![1.0, 2.0], &[2, 1])?;
//! let label = Tensor::from_vec(vec![0.0, 0.0], &[2])?;
//! let l = L2Loss::new().forward(&pred, &label, None)?;
//! assert_eq!(l.to_vec_f32()?, vec![0.5, 2.0]);
//! # Ok::<(), boson::Error>(())
//! ```

/// `weighted(w)`: the builder of Gluon's global `weight` option, for every loss.
macro_rules! weighted {
    () => {
        /// Scales the loss by `weight` (Gluon's `weight=`).
        pub fn weighted(mut self, weight: f32) -> Self {
            self.weight = Some(weight);
            self
        }
    };
}

mod classification;
mod pairwise;
mod ranking;
mod regression;

pub use classification::{
    KLDivLoss, LabelFormat, LogisticLoss, SigmoidBinaryCrossEntropyLoss, SoftmaxCrossEntropyLoss,
};
pub use pairwise::{CosineEmbeddingLoss, HingeLoss, TripletLoss};
pub use ranking::BprLoss;
pub use regression::{HuberLoss, L1Loss, L2Loss};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A loss of a prediction against a label.
pub trait Loss: Send + Sync {
    /// The element-wise loss before weighting and averaging (same shape as `pred`, or
    /// `[batch, ...]`).
    fn elementwise(&self, pred: &Tensor, label: &Tensor) -> Result<Tensor>;

    /// The global scalar weight (Gluon's `weight`), if any.
    fn weight(&self) -> Option<f32> {
        None
    }

    /// A short name for logs and metrics (`l2loss`).
    fn name(&self) -> &'static str;

    /// Whether the per-sample loss sums the weighted element-wise loss over every axis
    /// but the first instead of averaging it (Gluon's `KLDivLoss` sums).
    fn sums_over_sample(&self) -> bool {
        false
    }

    /// Per-sample loss `[batch]`: weighted by `weight` and `sample_weight`, averaged (or
    /// summed, see [`Loss::sums_over_sample`]) over every axis but the first.
    fn forward(
        &self,
        pred: &Tensor,
        label: &Tensor,
        sample_weight: Option<&Tensor>,
    ) -> Result<Tensor> {
        let l = apply_weighting(self.elementwise(pred, label)?, self.weight(), sample_weight)?;
        if l.rank() <= 1 {
            return Ok(l);
        }
        let axes: Vec<usize> = (1..l.rank()).collect();
        match self.sums_over_sample() {
            true => l.sum_axes(&axes, false),
            false => l.mean_axes(&axes, false),
        }
    }
}

/// Multiplies by `sample_weight` (broadcast) and the scalar `weight`.
pub(crate) fn apply_weighting(
    loss: Tensor,
    weight: Option<f32>,
    sample_weight: Option<&Tensor>,
) -> Result<Tensor> {
    let mut l = loss;
    if let Some(sw) = sample_weight {
        let mut sw = sw.clone();
        // A per-sample weight written `[batch, 1]` (Gluon's docs' shape) for a `[batch]`
        // loss: its trailing 1s go, so it does not broadcast to `[batch, batch]`.
        while sw.rank() > l.rank() && sw.shape().last() == Some(&1) {
            sw = sw.reshape(&sw.shape()[..sw.rank() - 1])?;
        }
        // A [batch] weight applies per sample: give it trailing axes to broadcast.
        while sw.rank() < l.rank() {
            sw = sw.expand_dims(sw.rank())?;
        }
        l = l.mul(&sw)?;
    }
    if let Some(w) = weight {
        l = l.mul_scalar(w)?;
    }
    Ok(l)
}

/// The mean over every axis but the first (the batch axis).
pub(crate) fn batch_mean(l: Tensor) -> Result<Tensor> {
    if l.rank() <= 1 {
        return Ok(l);
    }
    let axes: Vec<usize> = (1..l.rank()).collect();
    l.mean_axes(&axes, false)
}

/// The label reshaped to `pred`'s shape (Gluon's `_reshape_like`), or an error naming both.
pub(crate) fn label_like(pred: &Tensor, label: &Tensor, op: &'static str) -> Result<Tensor> {
    if label.elem_count() != pred.elem_count() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: pred.shape().to_vec(),
            rhs: label.shape().to_vec(),
        });
    }
    label.reshape(pred.shape())
}
