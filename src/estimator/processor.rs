//! The batch processor: what one training or evaluation step computes.

use super::batch::Batch;
use crate::autograd;
use crate::error::Result;
use crate::loss::Loss;
use crate::nn::Model;
use crate::tensor::Tensor;

/// What a processed batch produced; handlers receive it at `batch_end`.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// The batch (on the estimator's device).
    pub batch: Batch,
    /// The model's prediction.
    pub pred: Tensor,
    /// The per-sample loss `[batch]`.
    pub loss: Tensor,
}

/// Computes one step (Gluon's `BatchProcessor`). Replace it on the estimator for custom
/// steps (several losses, extra forward arguments). `fit_batch` records and runs
/// backward but does not update parameters: the
/// [`GradientUpdateHandler`](super::GradientUpdateHandler) does that.
pub trait BatchProcessor: Send {
    /// Forward under `autograd::record`, loss, backward.
    fn fit_batch(&mut self, net: &dyn Model, loss: &dyn Loss, batch: Batch) -> Result<StepOutput>;

    /// Forward and loss in predict mode, nothing recorded.
    fn evaluate_batch(
        &mut self,
        net: &dyn Model,
        loss: &dyn Loss,
        batch: Batch,
    ) -> Result<StepOutput>;
}

/// The default step: `pred = net.forward_tensors(inputs)`, `loss = loss(pred, label)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultBatchProcessor;

impl BatchProcessor for DefaultBatchProcessor {
    fn fit_batch(&mut self, net: &dyn Model, loss: &dyn Loss, batch: Batch) -> Result<StepOutput> {
        let (pred, l) = autograd::record(|| -> Result<(Tensor, Tensor)> {
            let pred = net.forward_tensors(&batch.inputs)?;
            let l = loss.forward(&pred, &batch.label, None)?;
            Ok((pred, l))
        })?;
        l.backward()?;
        Ok(StepOutput {
            batch,
            pred: pred.detach(),
            loss: l.detach(),
        })
    }

    fn evaluate_batch(
        &mut self,
        net: &dyn Model,
        loss: &dyn Loss,
        batch: Batch,
    ) -> Result<StepOutput> {
        autograd::pause(|| {
            let pred = net.forward_tensors(&batch.inputs)?;
            let l = loss.forward(&pred, &batch.label, None)?;
            Ok(StepOutput {
                batch,
                pred,
                loss: l,
            })
        })
    }
}
