//! Training events and the handler trait.

use super::batch::Batch;
use super::processor::StepOutput;
use super::Estimator;
use crate::error::Result;

/// What a `batch_end` or `epoch_end` handler asks of the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Signal {
    /// Go on training.
    #[default]
    Continue,
    /// Stop: after `batch_end`, the epoch ends early (its `epoch_end` still runs);
    /// after `epoch_end`, training ends (`train_end` still runs).
    Stop,
}

/// Handler priorities, Gluon's defaults: lower runs first, equal priorities keep the
/// order handlers were given in (user handlers before the defaults `fit` adds).
pub mod priority {
    /// [`GradientUpdateHandler`](crate::estimator::GradientUpdateHandler): parameters are
    /// updated first.
    pub const GRADIENT_UPDATE: i32 = -2000;
    /// [`MetricHandler`](crate::estimator::MetricHandler): metrics see the batch next.
    pub const METRIC: i32 = -1000;
    /// [`ValidationHandler`](crate::estimator::ValidationHandler): validation runs after
    /// the training metrics are updated.
    pub const VALIDATION: i32 = -1000;
    /// User handlers, stopping and early stopping.
    pub const DEFAULT: i32 = 0;
    /// [`CheckpointHandler`](crate::estimator::CheckpointHandler): after the default
    /// priority, so a checkpoint holds the other handlers' state after the same event.
    pub const CHECKPOINT: i32 = 1000;
    /// [`LoggingHandler`](crate::estimator::LoggingHandler): logging sees everything else.
    pub const LOGGING: i32 = i32::MAX;
}

/// Which built-in role a handler plays. `fit` adds a default handler for each role that
/// is missing from the handlers it was given (Gluon's "added if absent").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerRole {
    /// A user handler (or checkpoint / early stopping): never replaced by a default.
    User,
    /// Stops at the estimator's epoch or batch budget.
    Stopping,
    /// Steps the trainer.
    GradientUpdate,
    /// Updates the metrics.
    Metric,
    /// Runs validation.
    Validation,
    /// Logs progress.
    Logging,
}

/// A fit-loop event handler. Gluon's mixins `TrainBegin`, `EpochBegin`, `BatchBegin`,
/// `BatchEnd`, `EpochEnd` and `TrainEnd` are the six methods here, each with a default
/// that does nothing: implement the events you care about. Every method gets the
/// estimator, so a handler can read its progress, metrics and trainer (or change them).
/// An `Err` from any handler ends `fit` with that error.
///
/// During [`Estimator::evaluate`] only `epoch_begin`, `batch_begin`, `batch_end` and
/// `epoch_end` run; [`Estimator::mode`] tells the two apart.
pub trait EventHandler {
    /// Where the handler runs among the others (see [`priority`]).
    fn priority(&self) -> i32 {
        priority::DEFAULT
    }

    /// The built-in role this handler fills, if any.
    fn role(&self) -> HandlerRole {
        HandlerRole::User
    }

    /// Names of the metrics this handler monitors; `fit` checks that each names one of
    /// the estimator's (non-composite) metrics before training starts.
    fn monitored_metrics(&self) -> Vec<String> {
        Vec::new()
    }

    /// State that must survive a checkpoint and resume, under a key unique among the
    /// handlers (early stopping's best value and patience count). The default: none.
    /// `fit` reads it after each of the handler's events; checkpoints store it.
    fn state(&self) -> Option<(String, serde_json::Value)> {
        None
    }

    /// Puts back what [`state`](Self::state) returned, when `fit` resumes from a
    /// checkpoint (after every handler's `train_begin`).
    fn restore_state(&mut self, state: &serde_json::Value) -> Result<()> {
        let _ = state;
        Ok(())
    }

    /// Once, before the first epoch.
    fn train_begin(&mut self, est: &mut Estimator) -> Result<()> {
        let _ = est;
        Ok(())
    }

    /// At the start of every epoch.
    fn epoch_begin(&mut self, est: &mut Estimator) -> Result<()> {
        let _ = est;
        Ok(())
    }

    /// Before each batch is processed.
    fn batch_begin(&mut self, est: &mut Estimator, batch: &Batch) -> Result<()> {
        let _ = (est, batch);
        Ok(())
    }

    /// After each batch; may ask to stop.
    fn batch_end(&mut self, est: &mut Estimator, out: &StepOutput) -> Result<Signal> {
        let _ = (est, out);
        Ok(Signal::Continue)
    }

    /// After each epoch; may ask to stop.
    fn epoch_end(&mut self, est: &mut Estimator) -> Result<Signal> {
        let _ = est;
        Ok(Signal::Continue)
    }

    /// Once, after training stopped.
    fn train_end(&mut self, est: &mut Estimator) -> Result<()> {
        let _ = est;
        Ok(())
    }
}
