//! `ReduceLrOnPlateauHandler`: lowers the learning rate when a monitored metric stalls.

use super::{patience_state, restore_patience_state, Monitor, MonitorMode};
use crate::error::{Error, Result};
use crate::estimator::event::{EventHandler, Signal};
use crate::estimator::Estimator;

/// Multiplies the trainer's learning rate by `factor` once the monitored metric has gone
/// `patience` epochs in a row without improving by more than `min_delta`, never below
/// `min_lr` (PyTorch's and Keras' `ReduceLROnPlateau`; Gluon has none). The count starts
/// again after each reduction. The trainer must not have an LR scheduler (it would own
/// the rate); the monitor must name one of the estimator's metrics. Both are checked
/// when `fit` starts. Checkpoints keep the lowered rate with the handler's state, and a
/// resumed run sets it again before its first epoch.
#[derive(Clone, Debug)]
pub struct ReduceLrOnPlateauHandler {
    monitor: Monitor,
    factor: f32,
    patience: usize,
    min_lr: f32,
    min_delta: f32,
    best: f32,
    wait: usize,
    reductions: usize,
    /// The rate this handler last set, if it lowered it (checkpointed).
    lowered_to: Option<f32>,
    /// A rate from a checkpoint, set at the next `epoch_begin` (`restore_state` has no
    /// estimator to set it on).
    restored: Option<f32>,
}

impl ReduceLrOnPlateauHandler {
    /// Monitors the metric named `monitor` (`auto` mode), halving the rate after
    /// `patience` epochs without improvement. `factor` must be in (0, 1) and `patience`
    /// at least 1 (errors naming the value otherwise).
    pub fn new(monitor: impl Into<String>, factor: f32, patience: usize) -> Result<Self> {
        if !(factor > 0.0 && factor < 1.0) {
            return Err(Error::InvalidArgument(format!(
                "ReduceLrOnPlateauHandler: factor must be in (0, 1), got {factor}"
            )));
        }
        if patience == 0 {
            return Err(Error::InvalidArgument(
                "ReduceLrOnPlateauHandler: patience must be at least 1 epoch, got 0".into(),
            ));
        }
        Ok(ReduceLrOnPlateauHandler {
            monitor: Monitor::new(monitor, MonitorMode::Auto),
            factor,
            patience,
            min_lr: 0.0,
            min_delta: 0.0,
            best: f32::NAN,
            wait: 0,
            reductions: 0,
            lowered_to: None,
            restored: None,
        })
    }

    /// The rate it never goes below (default 0).
    pub fn min_lr(mut self, lr: f32) -> Self {
        self.min_lr = lr.max(0.0);
        self
    }

    /// The smallest change that counts as an improvement (its sign is ignored).
    pub fn min_delta(mut self, d: f32) -> Self {
        self.min_delta = d.abs();
        self
    }

    /// Which direction is better.
    pub fn mode(mut self, mode: MonitorMode) -> Self {
        self.monitor.mode = mode;
        self
    }

    /// How many times the rate was lowered in the last fit.
    pub fn reductions(&self) -> usize {
        self.reductions
    }
}

impl EventHandler for ReduceLrOnPlateauHandler {
    fn monitored_metrics(&self) -> Vec<String> {
        vec![self.monitor.name.clone()]
    }

    // Checkpoints keep the best value, the count and the lowered rate, so a resumed run
    // goes on at that rate and lowers it at the same epochs as an uninterrupted one.
    fn state(&self) -> Option<(String, serde_json::Value)> {
        let key = format!("lr on plateau of {}", self.monitor.name);
        let mut state = patience_state(self.best, self.wait);
        state["lr"] = serde_json::json!(self.lowered_to);
        Some((key, state))
    }

    fn restore_state(&mut self, state: &serde_json::Value) -> Result<()> {
        (self.best, self.wait) = restore_patience_state(state, &self.monitor, "lr on plateau")?;
        self.restored = match &state["lr"] {
            serde_json::Value::Null => None,
            v => Some(v.as_f64().filter(|lr| *lr >= 0.0).ok_or_else(|| {
                Error::InvalidArgument(format!("lr on plateau state {state} is malformed"))
            })? as f32),
        };
        self.lowered_to = self.restored;
        Ok(())
    }

    fn epoch_begin(&mut self, est: &mut Estimator) -> Result<()> {
        if let Some(lr) = self.restored.take() {
            est.trainer_mut().set_learning_rate(lr)?;
        }
        Ok(())
    }

    fn train_begin(&mut self, est: &mut Estimator) -> Result<()> {
        self.monitor.resolve(est)?;
        if est.trainer().optimizer().hyper().scheduler.is_some() {
            return Err(Error::InvalidArgument(
                "ReduceLrOnPlateauHandler sets the learning rate, but the optimizer has an LR \
                 scheduler: use one or the other"
                    .into(),
            ));
        }
        self.best = self.monitor.worst();
        self.wait = 0;
        self.reductions = 0;
        self.lowered_to = None;
        self.restored = None;
        Ok(())
    }

    fn epoch_end(&mut self, est: &mut Estimator) -> Result<Signal> {
        let value = self.monitor.value(est)?;
        if self.monitor.improves(value, self.best, self.min_delta) {
            self.best = value;
            self.wait = 0;
            return Ok(Signal::Continue);
        }
        self.wait += 1;
        if self.wait >= self.patience {
            self.wait = 0;
            let lr = est.trainer().learning_rate();
            let lowered = (lr * self.factor).max(self.min_lr);
            if lowered < lr {
                est.trainer_mut().set_learning_rate(lowered)?;
                self.lowered_to = Some(lowered);
                self.reductions += 1;
                est.log(&format!(
                    "[Epoch {}] {} did not improve on {} for {} epoch(s): learning rate {lr} -> {lowered}",
                    est.progress().epoch(),
                    self.monitor.name,
                    self.best,
                    self.patience
                ))?;
            }
        }
        Ok(Signal::Continue)
    }
}
