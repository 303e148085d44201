//! The built-in event handlers.

mod checkpoint;
mod early_stopping;
mod gradient;
mod logging;
mod metric;
mod plateau;
mod stopping;
mod validation;
mod weight_average;

pub use checkpoint::CheckpointHandler;
pub use early_stopping::EarlyStoppingHandler;
pub use gradient::GradientUpdateHandler;
pub use logging::{LogInterval, LoggingHandler, ProgressBarMode};
pub use metric::MetricHandler;
pub use plateau::ReduceLrOnPlateauHandler;
pub use stopping::StoppingHandler;
pub use validation::ValidationHandler;
pub use weight_average::WeightAverageHandler;

use super::Estimator;
use crate::error::Result;

/// Which direction of a monitored metric is an improvement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MonitorMode {
    /// From the metric: min for errors and losses, max for accuracy-like scores
    /// ([`Metric::higher_is_better`](crate::metric::Metric::higher_is_better)). Gluon's
    /// `auto` always picked max; this does not.
    #[default]
    Auto,
    /// Smaller is better.
    Min,
    /// Larger is better.
    Max,
}

/// A monitored metric resolved against an estimator: its direction and current value.
#[derive(Clone, Debug)]
pub(crate) struct Monitor {
    pub name: String,
    pub mode: MonitorMode,
    pub higher_is_better: bool,
}

impl Monitor {
    pub fn new(name: impl Into<String>, mode: MonitorMode) -> Monitor {
        Monitor {
            name: name.into(),
            mode,
            higher_is_better: false,
        }
    }

    /// Checks the metric exists and fixes the direction (at `train_begin`).
    pub fn resolve(&mut self, est: &Estimator) -> Result<()> {
        let metric = est.monitored_metric(&self.name)?;
        self.higher_is_better = match self.mode {
            MonitorMode::Auto => metric.higher_is_better(),
            MonitorMode::Min => false,
            MonitorMode::Max => true,
        };
        Ok(())
    }

    /// The metric's current value.
    pub fn value(&self, est: &Estimator) -> Result<f32> {
        Ok(est.monitored_metric(&self.name)?.get().1)
    }

    /// The worst possible value: any real value improves on it.
    pub fn worst(&self) -> f32 {
        if self.higher_is_better {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        }
    }

    /// True when `value` beats `best` by more than `min_delta` (NaN never does).
    pub fn improves(&self, value: f32, best: f32, min_delta: f32) -> bool {
        if self.higher_is_better {
            value - min_delta > best
        } else {
            value + min_delta < best
        }
    }
}

/// The checkpointed state of a handler that waits on a metric (early stopping, the
/// learning-rate plateau): the best value so far, null while there is none (JSON has no
/// infinities), and the epochs since it improved.
pub(crate) fn patience_state(best: f32, wait: usize) -> serde_json::Value {
    serde_json::json!({ "best": best.is_finite().then_some(best), "wait": wait })
}

/// `(best, wait)` back from [`patience_state`] (null: the monitor's worst value); an error
/// naming `what` for anything else.
pub(crate) fn restore_patience_state(
    state: &serde_json::Value,
    monitor: &Monitor,
    what: &str,
) -> Result<(f32, usize)> {
    let bad = || crate::error::Error::InvalidArgument(format!("{what} state {state} is malformed"));
    let best = match &state["best"] {
        serde_json::Value::Null => monitor.worst(),
        v => v.as_f64().ok_or_else(bad)? as f32,
    };
    let wait = state["wait"].as_u64().ok_or_else(bad)? as usize;
    Ok((best, wait))
}
