//! `MetricHandler`: feeds each batch to the metrics.

use crate::error::Result;
use crate::estimator::event::{priority, EventHandler, HandlerRole, Signal};
use crate::estimator::processor::StepOutput;
use crate::estimator::{Estimator, Mode};

/// Resets the metrics at `epoch_begin` and updates them at every `batch_end`
/// (priority −1000): the training metrics during `fit`, the validation metrics during
/// `evaluate`. Loss metrics get the per-sample loss, the others `(label, pred)`.
#[derive(Clone, Debug, Default)]
pub struct MetricHandler;

impl MetricHandler {
    /// The handler.
    pub fn new() -> Self {
        MetricHandler
    }
}

impl EventHandler for MetricHandler {
    fn priority(&self) -> i32 {
        priority::METRIC
    }

    fn role(&self) -> HandlerRole {
        HandlerRole::Metric
    }

    fn epoch_begin(&mut self, est: &mut Estimator) -> Result<()> {
        let metrics = match est.mode() {
            Mode::Train => est.train_metrics_mut(),
            Mode::Evaluate => est.val_metrics_mut(),
        };
        for m in metrics {
            m.reset();
        }
        Ok(())
    }

    fn batch_end(&mut self, est: &mut Estimator, out: &StepOutput) -> Result<Signal> {
        let metrics = match est.mode() {
            Mode::Train => est.train_metrics_mut(),
            Mode::Evaluate => est.val_metrics_mut(),
        };
        for m in metrics {
            let preds = if m.wants_loss() { &out.loss } else { &out.pred };
            m.update(&out.batch.label, preds)?;
        }
        Ok(Signal::Continue)
    }
}
