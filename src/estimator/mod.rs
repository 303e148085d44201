//! The high-level training loop (Gluon's `gluon.contrib.estimator`).
//!
//! An [`Estimator`] holds a net, a loss, a [`Trainer`](crate::optim::Trainer) and
//! metrics. [`Estimator::fit`] runs epochs of batches from a [`BatchSource`] (any
//! [`DataLoader`](crate::data::DataLoader) whose batches are `(x, y)` or
//! `(users, items, ratings)`, see [`IntoBatch`]) and calls [`EventHandler`]s at each
//! event, in [`priority`] order: the trainer steps, then metrics update, then
//! validation, then user handlers (checkpoints, early stopping), then logging.
//!
//! A handler is a plain struct implementing the events it cares about:
//!
//! ```
//! use boson::data::{ArrayDataset, DataLoader};
//! use boson::estimator::{
//!     CheckpointHandler, EarlyStoppingHandler, Estimator, EventHandler, FitUntil, LogCapture,
//!     Signal,
//! };
//! use boson::loss::L2Loss;
//! use boson::metric::Rmse;
//! use boson::nn::{Block, Dense, Initializer};
//! use boson::optim::{self, AdaGrad, Adam, Ftrl, Optimizer, RmsProp, Sgd, Trainer};
//! use std::sync::Arc;
//!
//! /// Halves the learning rate after every epoch and remembers the training RMSE.
//! struct HalveLr {
//!     history: Vec<f32>,
//! }
//!
//! impl EventHandler for HalveLr {
//!     fn epoch_end(&mut self, est: &mut Estimator) -> boson::Result<Signal> {
//!         let rmse = est.monitored_metric("training rmse")?.get().1;
//!         self.history.push(rmse);
//!         let lr = est.trainer().learning_rate();
//!         est.trainer_mut().set_learning_rate(lr / 2.0)?;
//!         Ok(Signal::Continue)
//!     }
//! }
//!
//! // y = 3x - 1
//! let xs: Vec<Vec<f32>> = (0..64).map(|i| vec![i as f32 / 64.0]).collect();
//! let ys: Vec<f32> = xs.iter().map(|x| 3.0 * x[0] - 1.0).collect();
//! let train = DataLoader::builder(ArrayDataset::new((xs.clone(), ys.clone()))?)
//!     .batch_size(8)
//!     .shuffle(true)
//!     .build()?;
//! let val = DataLoader::builder(ArrayDataset::new((xs, ys))?).batch_size(32).build()?;
//!
//! let net = Arc::new(Dense::new(1).in_units(1));
//! let trainer = Trainer::new(net.collect_params(), Sgd::new(0.5))?;
//! let log = LogCapture::new(); // or leave it out to log to stderr
//! let mut est = Estimator::builder(net.clone(), L2Loss::new())
//!     .trainer(trainer)
//!     .train_metric(Rmse::new())
//!     .initializer(Initializer::Zero)
//!     .log_writer(log.clone())
//!     .build()?;
//!
//! let dir = std::env::temp_dir().join(format!("boson-doc-{}", std::process::id()));
//! let mut checkpoints = CheckpointHandler::new(&dir)
//!     .max_checkpoints(2)
//!     .save_best("validation rmse", Default::default());
//! let mut early = EarlyStoppingHandler::new("validation rmse").patience(3);
//! let mut halve = HalveLr { history: Vec::new() };
//! est.fit(
//!     &train,
//!     Some(&val),
//!     FitUntil::Epochs(6),
//!     &mut [&mut halve, &mut checkpoints, &mut early],
//! )?;
//!
//! assert_eq!(halve.history.len(), 6);
//! assert!(halve.history[5] < halve.history[0]);
//! assert!(est.monitored_metric("validation rmse")?.get().1 < 0.5);
//! assert!(log.contents().contains("[Epoch 5] Finished"));
//! assert!(dir.join("model-best.params").exists());
//! std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), boson::Error>(())
//! ```
//!
//! To resume an interrupted run, build the same net after the same
//! [`rng::seed`](crate::rng::seed), a fresh loader, and pass a
//! [`CheckpointHandler`] with `resume_from_checkpoint(true)`: training continues from
//! the newest checkpoint with the remaining budget and ends with the same parameters as
//! an uninterrupted run.

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
    MetricHandler, MonitorMode, ProgressBarMode, ReduceLrOnPlateauHandler, StoppingHandler,
    ValidationHandler, WeightAverageHandler,
};
pub use log::LogCapture;
pub use processor::{BatchProcessor, DefaultBatchProcessor, StepOutput};
