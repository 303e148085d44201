//! `ValidationHandler`: runs `evaluate` every n epochs and/or n batches.

use crate::error::{Error, Result};
use crate::estimator::batch::BatchSource;
use crate::estimator::event::{priority, EventHandler, HandlerRole, Signal};
use crate::estimator::processor::StepOutput;
use crate::estimator::{Estimator, Mode};

/// Evaluates on a validation source every `epoch_period` completed epochs (default 1)
/// and/or every `batch_period` batches (default never), after the training metrics are
/// updated (priority −1000). The validation metrics then hold the latest results.
pub struct ValidationHandler<'a> {
    source: &'a dyn BatchSource,
    epoch_period: Option<usize>,
    batch_period: Option<usize>,
    runs: usize,
}

impl<'a> ValidationHandler<'a> {
    /// Validates on `source` after every epoch.
    pub fn new(source: &'a dyn BatchSource) -> Self {
        ValidationHandler {
            source,
            epoch_period: Some(1),
            batch_period: None,
            runs: 0,
        }
    }

    /// Validate every `n` completed epochs (`None`: not by epochs). `Some(0)` is an
    /// error at `train_begin`.
    pub fn epoch_period(mut self, n: Option<usize>) -> Self {
        self.epoch_period = n;
        self
    }

    /// Validate every `n` batches (`None`: not by batches). `Some(0)` is an error at
    /// `train_begin`.
    pub fn batch_period(mut self, n: Option<usize>) -> Self {
        self.batch_period = n;
        self
    }

    /// How many validations ran in the last `fit`.
    pub fn runs(&self) -> usize {
        self.runs
    }

    fn validate(&mut self, est: &mut Estimator) -> Result<()> {
        self.runs += 1;
        est.evaluate(self.source, &mut [])
    }
}

impl EventHandler for ValidationHandler<'_> {
    fn priority(&self) -> i32 {
        priority::VALIDATION
    }

    fn role(&self) -> HandlerRole {
        HandlerRole::Validation
    }

    fn train_begin(&mut self, _est: &mut Estimator) -> Result<()> {
        if self.epoch_period == Some(0) || self.batch_period == Some(0) {
            return Err(Error::InvalidArgument(
                "ValidationHandler periods must be at least 1".into(),
            ));
        }
        self.runs = 0;
        Ok(())
    }

    fn batch_end(&mut self, est: &mut Estimator, _out: &StepOutput) -> Result<Signal> {
        if est.mode() == Mode::Train {
            if let Some(n) = self.batch_period {
                if est.progress().batches_done.is_multiple_of(n) {
                    self.validate(est)?;
                }
            }
        }
        Ok(Signal::Continue)
    }

    fn epoch_end(&mut self, est: &mut Estimator) -> Result<Signal> {
        let p = est.progress();
        if est.mode() == Mode::Train && !p.in_epoch {
            if let Some(n) = self.epoch_period {
                if p.epochs_done.is_multiple_of(n) {
                    self.validate(est)?;
                }
            }
        }
        Ok(Signal::Continue)
    }
}
