//! The high-level training loop (Gluon's `gluon.contrib.estimator`).
//!
//! PLACEHOLDER_DOCS

mod batch;
#[allow(clippy::module_inception)]
mod estimator;
mod event;
mod handlers;
mod log;
mod processor;

pub use batch::{Batch, BatchSource, IntoBatch, SplitWith};
pub use estimator::{Estimator, EstimatorBuilder, FitUntil, Mode, Progress};
pub use event::{priority, EventHandler, HandlerRole, Signal};
pub use handlers::{
    CheckpointHandler, EarlyStoppingHandler, GradientUpdateHandler, LogInterval, LoggingHandler,
    MetricHandler, MonitorMode, StoppingHandler, ValidationHandler,
};
pub use log::LogCapture;
pub use processor::{BatchProcessor, DefaultBatchProcessor, StepOutput};
