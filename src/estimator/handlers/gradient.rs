//! `GradientUpdateHandler`: the optimizer step after each batch.

use crate::error::{Error, Result};
use crate::estimator::event::{priority, EventHandler, HandlerRole, Signal};
use crate::estimator::processor::StepOutput;
use crate::estimator::Estimator;

/// Calls `trainer.step(batch_size)` at every `batch_end`, first of all handlers
/// (priority −2000). Before stepping it checks that the gradients are finite: a NaN or
/// infinite gradient is an [`Error::NonFinite`] naming the epoch and batch, and the
/// parameters keep their last good values.
#[derive(Clone, Debug)]
pub struct GradientUpdateHandler {
    check_finite: bool,
}

impl GradientUpdateHandler {
    /// A handler that checks gradients before each step.
    pub fn new() -> Self {
        GradientUpdateHandler { check_finite: true }
    }

    /// Turns the finite-gradient check off (it reads every gradient once per step).
    pub fn check_finite(mut self, check: bool) -> Self {
        self.check_finite = check;
        self
    }
}

impl Default for GradientUpdateHandler {
    fn default() -> Self {
        Self::new()
    }
}

impl EventHandler for GradientUpdateHandler {
    fn priority(&self) -> i32 {
        priority::GRADIENT_UPDATE
    }

    fn role(&self) -> HandlerRole {
        HandlerRole::GradientUpdate
    }

    fn batch_end(&mut self, est: &mut Estimator, out: &StepOutput) -> Result<Signal> {
        if self.check_finite {
            let norm = est.trainer().grad_global_norm()?;
            if !norm.is_finite() {
                let p = est.progress();
                return Err(Error::NonFinite(format!(
                    "gradient at epoch {} batch {} (batch {} overall) has global norm {norm}; \
                     parameters were not updated with it",
                    p.epoch(),
                    p.batch_in_epoch.saturating_sub(1),
                    p.batches_done.saturating_sub(1)
                )));
            }
        }
        let batch_size = out.loss.shape().first().copied().unwrap_or(1).max(1);
        est.trainer_mut().step(batch_size)?;
        Ok(Signal::Continue)
    }
}
