//! `EarlyStoppingHandler`: stops when a monitored metric stops improving.

use super::{patience_state, restore_patience_state, Monitor, MonitorMode};
use crate::error::Result;
use crate::estimator::event::{EventHandler, Signal};
use crate::estimator::Estimator;
use crate::tensor::Tensor;

/// Stops training once the monitored metric has gone `patience` epochs in a row without
/// improving by more than `min_delta` (as Gluon, patience 0 behaves as 1).
/// With a `baseline`, the metric must beat it to count as improving at all.
/// The monitor must name one of the estimator's metrics (checked when `fit` starts).
#[derive(Clone, Debug)]
pub struct EarlyStoppingHandler {
    monitor: Monitor,
    min_delta: f32,
    patience: usize,
    baseline: Option<f32>,
    best: f32,
    wait: usize,
    stopped_epoch: Option<usize>,
    restore_best: bool,
    /// The parameters after the best epoch so far (with `restore_best`), and that epoch.
    best_params: Option<(usize, Vec<Tensor>)>,
}

impl EarlyStoppingHandler {
    /// Monitors the metric named `monitor` (e.g. `"validation rmse"`), `auto` mode.
    pub fn new(monitor: impl Into<String>) -> Self {
        EarlyStoppingHandler {
            monitor: Monitor::new(monitor, MonitorMode::Auto),
            min_delta: 0.0,
            patience: 0,
            baseline: None,
            best: f32::NAN,
            wait: 0,
            stopped_epoch: None,
            restore_best: false,
            best_params: None,
        }
    }

    /// Whether training ends with the parameters of the best epoch instead of the last
    /// (Keras' `restore_best_weights`; default false). The best epoch's values are kept in
    /// memory. A resumed run can only restore an epoch it trained itself: when the best
    /// epoch came before the interruption, load the checkpoint handler's `save_best` file.
    pub fn restore_best(mut self, on: bool) -> Self {
        self.restore_best = on;
        self
    }

    /// The smallest change that counts as an improvement (its sign is ignored).
    pub fn min_delta(mut self, d: f32) -> Self {
        self.min_delta = d.abs();
        self
    }

    /// How many epochs in a row without improvement stop training.
    pub fn patience(mut self, n: usize) -> Self {
        self.patience = n;
        self
    }

    /// Which direction is better.
    pub fn mode(mut self, mode: MonitorMode) -> Self {
        self.monitor.mode = mode;
        self
    }

    /// The value to beat from the start.
    pub fn baseline(mut self, v: f32) -> Self {
        self.baseline = Some(v);
        self
    }

    /// The 0-based epoch at which it stopped training in the last fit, if it did.
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.stopped_epoch
    }

    /// The best value seen in the last fit (the baseline or ±inf before any).
    pub fn best(&self) -> f32 {
        self.best
    }
}

impl EventHandler for EarlyStoppingHandler {
    fn monitored_metrics(&self) -> Vec<String> {
        vec![self.monitor.name.clone()]
    }

    // Checkpoints keep the best value and the patience count, so a resumed run stops
    // at the same epoch as an uninterrupted one.
    fn state(&self) -> Option<(String, serde_json::Value)> {
        let key = format!("early stopping on {}", self.monitor.name);
        Some((key, patience_state(self.best, self.wait)))
    }

    fn restore_state(&mut self, state: &serde_json::Value) -> Result<()> {
        (self.best, self.wait) = restore_patience_state(state, &self.monitor, "early stopping")?;
        Ok(())
    }

    fn train_begin(&mut self, est: &mut Estimator) -> Result<()> {
        self.monitor.resolve(est)?;
        self.best = self.baseline.unwrap_or(self.monitor.worst());
        self.wait = 0;
        self.stopped_epoch = None;
        self.best_params = None;
        Ok(())
    }

    fn epoch_end(&mut self, est: &mut Estimator) -> Result<Signal> {
        let value = self.monitor.value(est)?;
        if self.monitor.improves(value, self.best, self.min_delta) {
            self.best = value;
            self.wait = 0;
            if self.restore_best {
                let params = est.net().collect_params();
                let values = params
                    .iter()
                    .map(|(_, p)| p.data()?.copy())
                    .collect::<Result<Vec<_>>>()?;
                self.best_params = Some((est.progress().epoch(), values));
            }
            return Ok(Signal::Continue);
        }
        self.wait += 1;
        if self.wait >= self.patience.max(1) {
            self.stopped_epoch = Some(est.progress().epoch());
            return Ok(Signal::Stop);
        }
        Ok(Signal::Continue)
    }

    fn train_end(&mut self, est: &mut Estimator) -> Result<()> {
        if let Some(e) = self.stopped_epoch {
            est.log(&format!(
                "[Epoch {e}] early stopping: {} did not improve on {} for {} epoch(s)",
                self.monitor.name, self.best, self.wait
            ))?;
        }
        if let Some((epoch, values)) = self.best_params.take() {
            let params = est.net().collect_params();
            for ((_, p), v) in params.iter().zip(&values) {
                p.set_data(v)?;
            }
            est.log(&format!(
                "restored the parameters of epoch {epoch} ({} {})",
                self.monitor.name, self.best
            ))?;
        }
        Ok(())
    }
}
