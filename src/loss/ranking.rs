//! Ranking losses over a positive and sampled negatives: each row of `pred` scores one
//! positive item and some negatives, and the label is the positive's column (the layout
//! of [`NegativeSampler`](crate::ratings::NegativeSampler)'s batches). The sampled
//! softmax over such rows is [`SoftmaxCrossEntropyLoss`](super::SoftmaxCrossEntropyLoss)
//! with sparse labels; the pairwise one is [`BprLoss`].

use super::classification::class_indices;
use super::Loss;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Bayesian personalised ranking (Rendle et al. 2009): `log(1 + exp(s_neg − s_pos))`
/// averaged over a row's negatives, i.e. `−log σ(s_pos − s_neg)`. `pred` is `[batch,
/// candidates]` (at least 2 candidates) and the label `[batch]` the positive's column.
///
/// ```
/// use boson::loss::{BprLoss, Loss};
/// use boson::Tensor;
/// let pred = Tensor::from_vec(vec![2.0, 0.0, 2.0], &[1, 3])?; // positive first
/// let label = Tensor::from_vec(vec![0.0], &[1])?;
/// let l = BprLoss::new().forward(&pred, &label, None)?.to_vec_f32()?[0];
/// let expected = ((1.0f32 + (-2.0f32).exp()).ln() + 2f32.ln()) / 2.0;
/// assert!((l - expected).abs() < 1e-6);
/// # Ok::<(), boson::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct BprLoss {
    weight: Option<f32>,
}

impl BprLoss {
    weighted!();
    /// Unweighted.
    pub fn new() -> Self {
        Self::default()
    }
    /// Scaled by `weight` (Gluon's `weight`).
    pub fn with_weight(weight: f32) -> Self {
        BprLoss {
            weight: Some(weight),
        }
    }
}

impl Loss for BprLoss {
    fn elementwise(&self, pred: &Tensor, label: &Tensor) -> Result<Tensor> {
        let candidates = match pred.shape() {
            [_, c] if *c >= 2 => *c,
            _ => {
                return Err(Error::InvalidShape {
                    op: "BprLoss",
                    msg: format!(
                        "prediction must be [batch, candidates] with a positive and at least \
                         one negative per row, got {:?}",
                        pred.shape()
                    ),
                })
            }
        };
        let idx = class_indices(label)?;
        if idx.elem_count() != pred.shape()[0] {
            return Err(Error::ShapeMismatch {
                op: "BprLoss labels",
                lhs: pred.shape().to_vec(),
                rhs: label.shape().to_vec(),
            });
        }
        if let Some(&bad) = idx
            .to_vec_i64()?
            .iter()
            .find(|&&c| c < 0 || c as usize >= candidates)
        {
            return Err(Error::IndexOutOfRange {
                what: "BprLoss positive column (candidates)".into(),
                index: bad,
                size: candidates,
            });
        }
        let positive = Tensor::one_hot(&idx.to_device(pred.device())?, candidates)?;
        let s_pos = pred.mul(&positive)?.sum_axis(1, true)?;
        let negative = positive.affine(-1.0, 1.0)?;
        // The batch mean averages over every column; the positive's is 0, so rescale to
        // the mean over the negatives.
        let scale = candidates as f32 / (candidates - 1) as f32;
        pred.sub(&s_pos)?
            .softrelu()?
            .mul(&negative)?
            .mul_scalar(scale)
    }
    fn weight(&self) -> Option<f32> {
        self.weight
    }
    fn name(&self) -> &'static str {
        "bprloss"
    }
}
