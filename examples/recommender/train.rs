//! Train: the epoch loop with `Trainer` directly (the reference notebook's loop).
//!
//! The loop body is what `Estimator::fit` will run once the Estimator lands: `fit` below
//! becomes `Estimator::new(model, L2Loss, metrics=[RMSE], trainer).fit(train_loader,
//! val=test, epochs)` with a LoggingHandler printing each epoch, and `on_epoch` becomes
//! that handler. Until then the loop is written out here.

use crate::evaluate::rmse;
use crate::model::{predict, RecModel};
use boson::data::{DataLoader, LastBatch};
use boson::loss::{L2Loss, Loss};
use boson::optim::{Optimizer, Trainer};
use boson::ratings::RatingsDataset;
use boson::{autograd, Device, Error, Result};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Which optimizer `--opt` picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptKind {
    Sgd,
    Adam,
}

/// The training hyperparameters (saved in the model's config).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub opt: OptKind,
    pub lr: f32,
    pub momentum: f32,
    pub wd: f32,
    pub seed: u64,
}

impl TrainConfig {
    fn optimizer(&self) -> Optimizer {
        match self.opt {
            OptKind::Sgd => Optimizer::sgd(self.lr).momentum(self.momentum).wd(self.wd),
            OptKind::Adam => Optimizer::adam(self.lr).wd(self.wd),
        }
    }
}

/// One epoch's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    /// RMSE over the whole train set in predict mode (as the reference's `eval_net`).
    pub train_rmse: f64,
    pub test_rmse: f64,
    /// Wall seconds of the training pass alone (batches, forward, backward, update).
    pub train_seconds: f64,
    pub samples: usize,
}

/// The whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub epochs: Vec<EpochMetrics>,
}

impl History {
    /// Training samples per second over all epochs (evaluation excluded).
    pub fn samples_per_sec(&self) -> f64 {
        let s: f64 = self.epochs.iter().map(|e| e.train_seconds).sum();
        let n: usize = self.epochs.iter().map(|e| e.samples).sum();
        if s > 0.0 {
            n as f64 / s
        } else {
            0.0
        }
    }
}

/// Trains `model` on `train`, evaluating train and test RMSE after every epoch and handing
/// each epoch's metrics to `on_epoch` (the future LoggingHandler).
pub fn fit(
    model: &dyn RecModel,
    train: &RatingsDataset,
    test: &RatingsDataset,
    config: &TrainConfig,
    device: Device,
    mut on_epoch: impl FnMut(&EpochMetrics),
) -> Result<History> {
    if config.batch_size == 0 || config.epochs == 0 {
        return Err(Error::InvalidArgument(format!(
            "epochs and batch size must be positive, got {} and {}",
            config.epochs, config.batch_size
        )));
    }
    let loader = DataLoader::builder(train.clone())
        .batch_size(config.batch_size)
        .shuffle(true)
        .last_batch(LastBatch::Rollover)
        .seed(config.seed)
        .build()?;
    let mut trainer = Trainer::new(model.collect_params(), config.optimizer());
    let loss_fn = L2Loss::new();
    let mut history = History::default();
    for epoch in 0..config.epochs {
        let start = Instant::now();
        let mut samples = 0;
        for batch in loader.iter() {
            let (users, items, stars) = batch?;
            let n = stars.shape()[0];
            let (users, items, stars) = (
                users.to_device(device)?,
                items.to_device(device)?,
                stars.to_device(device)?,
            );
            let loss = autograd::record(|| {
                let pred = model.forward_many(&[users, items])?;
                loss_fn.forward(&pred, &stars, None)
            })?;
            loss.backward()?;
            trainer.step(n)?;
            samples += n;
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let m = EpochMetrics {
            epoch,
            train_rmse: dataset_rmse(model, train, device)?,
            test_rmse: dataset_rmse(model, test, device)?,
            train_seconds,
            samples,
        };
        if !m.train_rmse.is_finite() {
            return Err(Error::NonFinite(format!(
                "train RMSE is {} after epoch {epoch}: lower the learning rate",
                m.train_rmse
            )));
        }
        on_epoch(&m);
        history.epochs.push(m);
    }
    Ok(history)
}

/// The model's RMSE on every row of `data`.
pub fn dataset_rmse(model: &dyn RecModel, data: &RatingsDataset, device: Device) -> Result<f64> {
    let (users, items, ratings) = data.columns();
    let pred = predict(model, users, items, device)?;
    Ok(rmse(&pred, ratings))
}
