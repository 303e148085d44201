//! `StoppingHandler`: ends training at the epoch or batch budget.

use crate::error::Result;
use crate::estimator::event::{EventHandler, HandlerRole, Signal};
use crate::estimator::processor::StepOutput;
use crate::estimator::{Estimator, FitUntil};

/// Stops training when the budget is spent: the estimator's [`FitUntil`] by default, or
/// explicit limits. It keeps no state between fits, so one handler can serve several
/// `fit` calls (Gluon's never cleared its stop flag).
#[derive(Clone, Debug, Default)]
pub struct StoppingHandler {
    max_epochs: Option<usize>,
    max_batches: Option<usize>,
}

impl StoppingHandler {
    /// Stops at the budget given to `fit`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also stops after `n` completed epochs.
    pub fn max_epochs(mut self, n: usize) -> Self {
        self.max_epochs = Some(n);
        self
    }

    /// Also stops after `n` batches.
    pub fn max_batches(mut self, n: usize) -> Self {
        self.max_batches = Some(n);
        self
    }

    fn limits(&self, est: &Estimator) -> (Option<usize>, Option<usize>) {
        let (mut e, mut b) = (self.max_epochs, self.max_batches);
        match est.until() {
            Some(FitUntil::Epochs(n)) => e = Some(e.map_or(n, |m| m.min(n))),
            Some(FitUntil::Batches(n)) => b = Some(b.map_or(n, |m| m.min(n))),
            None => {}
        }
        (e, b)
    }
}

impl EventHandler for StoppingHandler {
    fn role(&self) -> HandlerRole {
        HandlerRole::Stopping
    }

    fn batch_end(&mut self, est: &mut Estimator, _out: &StepOutput) -> Result<Signal> {
        let (_, max_batches) = self.limits(est);
        Ok(match max_batches {
            Some(n) if est.progress().batches_done >= n => Signal::Stop,
            _ => Signal::Continue,
        })
    }

    fn epoch_end(&mut self, est: &mut Estimator) -> Result<Signal> {
        let (max_epochs, max_batches) = self.limits(est);
        let p = est.progress();
        let done = max_epochs.is_some_and(|n| p.epochs_done >= n)
            || max_batches.is_some_and(|n| p.batches_done >= n);
        Ok(if done { Signal::Stop } else { Signal::Continue })
    }
}
