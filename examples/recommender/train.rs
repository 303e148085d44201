//! Train: `Estimator::fit` with the reference's loss, optimizer and metric, validation on
//! the held-out ratings after every epoch, and a small custom handler (`HistoryHandler`)
//! that records each epoch's numbers for the training curve and the report.

use crate::data::Prepared;
use crate::model::{RecModel, Task};
use boson::data::{ArrayDataset, DataLoader, DataLoaderBuilder, LastBatch};
use boson::distributed::Communicator;
use boson::estimator::{
    BatchSource, CheckpointHandler, EarlyStoppingHandler, Estimator, EventHandler, FitUntil,
    LoggingHandler, MonitorMode, ReduceLrOnPlateauHandler, Signal, StepOutput, StoppingHandler,
    ValidationHandler, WeightAverageHandler,
};
use boson::loss::{BprLoss, L2Loss, SoftmaxCrossEntropyLoss};
use boson::metric::{HitRate, Ndcg, Rmse};
use boson::nn::{Block, Model};
use boson::optim::{Adam, Optimizer, Sgd, Trainer};
use boson::ratings::{FullRanking, NegativeSampler, RatingsDataset, SeenItems};
use boson::{Device, Error, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which optimizer `--opt` picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptKind {
    Sgd,
    Adam,
}

/// The ranking task's loss over a positive and its sampled negatives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RankingLoss {
    /// Softmax cross-entropy over [positive, negatives] (sampled softmax).
    Softmax,
    /// Bayesian personalised ranking: −log σ(s_pos − s_neg), averaged over negatives.
    Bpr,
}

/// The training hyperparameters (saved in the model's config).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Folders from before the ranking task are rating runs.
    #[serde(default = "rating_task")]
    pub task: Task,
    /// Sampled negatives per positive (ranking).
    #[serde(default)]
    pub negatives: usize,
    #[serde(default = "softmax_loss")]
    pub ranking_loss: RankingLoss,
    pub epochs: usize,
    pub batch_size: usize,
    pub opt: OptKind,
    pub lr: f32,
    pub momentum: f32,
    pub wd: f32,
    pub seed: u64,
    /// The decay of the parameters' moving average that is validated and kept
    /// (`WeightAverageHandler`), if any; none in folders from before it.
    #[serde(default)]
    pub weight_average: Option<f32>,
}

fn rating_task() -> Task {
    Task::Rating
}

fn softmax_loss() -> RankingLoss {
    RankingLoss::Softmax
}

impl TrainConfig {
    /// The metric the best epoch is chosen by.
    pub fn monitor(&self) -> &'static str {
        match self.task {
            Task::Rating => "validation rmse",
            Task::Ranking => "validation ndcg@10",
        }
    }

    fn optimizer(&self) -> Box<dyn Optimizer> {
        match self.opt {
            OptKind::Sgd => Box::new(Sgd::new(self.lr).momentum(self.momentum).wd(self.wd)),
            OptKind::Adam => Box::new(Adam::new(self.lr).wd(self.wd)),
        }
    }
}

/// The optional handlers chosen on the command line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FitOptions {
    /// Checkpoint every epoch into this folder (the newest 3 and the best by validation
    /// RMSE are kept).
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the newest checkpoint in `checkpoint_dir`.
    pub resume: bool,
    /// Stop when validation RMSE has not improved for this many epochs.
    pub early_stopping_patience: Option<usize>,
    /// Stop once this many minutes of training have passed.
    pub max_train_minutes: Option<f64>,
    /// Halve the learning rate after this many epochs without a better validation metric.
    pub lr_plateau_patience: Option<usize>,
    /// Whether the LoggingHandler draws a progress bar.
    pub progress: boson::estimator::ProgressBarMode,
    /// The ranks of a data-parallel run (`--distributed`).
    pub ranks: Option<Ranks>,
}

/// This process's handle on the ranks of a data-parallel run.
#[derive(Clone)]
pub struct Ranks(pub Arc<dyn Communicator>);

impl std::fmt::Debug for Ranks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rank {} of {}", self.0.rank(), self.0.size())
    }
}

impl PartialEq for Ranks {
    fn eq(&self, other: &Ranks) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// One epoch's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    /// The Estimator's running training RMSE: accumulated over the epoch's batches with
    /// dropout on (Gluon's Estimator way; the reference re-predicts the whole train set).
    /// NaN for the ranking task.
    #[serde(deserialize_with = "crate::persist::nan_if_null")]
    pub train_rmse: f64,
    /// RMSE on the validation ratings after the epoch (predict mode); folders from before
    /// the validation split called it `test_rmse` (it was the test split then).
    #[serde(alias = "test_rmse", deserialize_with = "crate::persist::nan_if_null")]
    pub validation_rmse: f64,
    /// The running training loss (ranking task; NaN for rating).
    #[serde(default = "nan", deserialize_with = "crate::persist::nan_if_null")]
    pub train_loss: f64,
    /// HitRate@10 and NDCG@10 of the validation items by full ranking (ranking task).
    #[serde(default = "nan", deserialize_with = "crate::persist::nan_if_null")]
    pub validation_hit_rate_at_10: f64,
    #[serde(default = "nan", deserialize_with = "crate::persist::nan_if_null")]
    pub validation_ndcg_at_10: f64,
    /// Wall seconds of the training pass alone (batches, forward, backward, update), from
    /// the epoch's start to its last batch: validation is not included.
    pub train_seconds: f64,
    pub samples: usize,
}

fn nan() -> f64 {
    f64::NAN
}

/// The whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub epochs: Vec<EpochMetrics>,
}

impl History {
    /// Training samples per second over all epochs (validation excluded).
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

/// A user handler: records each epoch's train and test RMSE and the training pass's
/// time. It runs at the default priority, after the trainer step, the metric update and
/// validation, so at `epoch_end` the validation metric already holds this epoch's value.
///
/// With a checkpoint folder it also keeps the history there (`history.json`), so a
/// resumed run's curve and throughput cover the epochs trained before the interruption.
pub struct HistoryHandler {
    pub history: History,
    task: Task,
    dir: Option<PathBuf>,
    epoch_start: Instant,
    last_batch_end: Instant,
}

impl HistoryHandler {
    pub fn new(dir: Option<PathBuf>, task: Task) -> HistoryHandler {
        let now = Instant::now();
        HistoryHandler {
            history: History::default(),
            task,
            dir,
            epoch_start: now,
            last_batch_end: now,
        }
    }

    fn file(dir: &Path) -> PathBuf {
        dir.join("history.json")
    }
}

fn metric(est: &Estimator, name: &str) -> Result<f64> {
    Ok(f64::from(est.monitored_metric(name)?.get().1))
}

impl HistoryHandler {
    /// A resumed run: picks up the epochs the checkpoint had already trained.
    fn restore(&mut self, est: &Estimator) -> Result<()> {
        let done = est.progress().epochs_done;
        if let (Some(dir), true) = (&self.dir, self.history.epochs.is_empty() && done > 0) {
            let path = Self::file(dir);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let mut saved: History = serde_json::from_slice(&bytes).map_err(|e| Error::Format {
                path: path.clone(),
                msg: e.to_string(),
            })?;
            if saved.epochs.len() < done {
                return Err(Error::Format {
                    path,
                    msg: format!(
                        "holds {} epochs but the checkpoint has trained {done}",
                        saved.epochs.len()
                    ),
                });
            }
            saved.epochs.truncate(done);
            self.history = saved;
        }
        Ok(())
    }
}

impl EventHandler for HistoryHandler {
    fn epoch_begin(&mut self, est: &mut Estimator) -> Result<()> {
        self.restore(est)?;
        self.epoch_start = Instant::now();
        self.last_batch_end = self.epoch_start;
        Ok(())
    }

    fn batch_end(&mut self, _est: &mut Estimator, _out: &StepOutput) -> Result<Signal> {
        self.last_batch_end = Instant::now();
        Ok(Signal::Continue)
    }

    fn epoch_end(&mut self, est: &mut Estimator) -> Result<Signal> {
        let value = |name: &str, task: Task| match task == self.task {
            true => metric(est, name),
            false => Ok(f64::NAN),
        };
        self.history.epochs.push(EpochMetrics {
            epoch: est.progress().epoch(),
            train_rmse: value("training rmse", Task::Rating)?,
            validation_rmse: value("validation rmse", Task::Rating)?,
            train_loss: value("training loss", Task::Ranking)?,
            validation_hit_rate_at_10: value("validation hit_rate@10", Task::Ranking)?,
            validation_ndcg_at_10: value("validation ndcg@10", Task::Ranking)?,
            train_seconds: (self.last_batch_end - self.epoch_start).as_secs_f64(),
            samples: est.progress().samples_in_epoch,
        });
        // Data parallel: rank 0 writes, as it writes the checkpoints.
        if let Some(dir) = self.dir.as_ref().filter(|_| est.rank() == 0) {
            let json = serde_json::to_vec(&self.history)
                .map_err(|e| Error::InvalidArgument(format!("history to JSON: {e}")))?;
            boson::io::write_atomic(&Self::file(dir), &json)?;
        }
        Ok(Signal::Continue)
    }

    // A resumed run that had nothing left to train has no epoch_begin.
    fn train_end(&mut self, est: &mut Estimator) -> Result<()> {
        self.restore(est)
    }
}

/// Shuffled and rolled over for training, in order for validation.
fn settings<D, F>(
    b: DataLoaderBuilder<D, F>,
    training: bool,
    c: &TrainConfig,
    workers: usize,
    ranks: Option<&Ranks>,
) -> DataLoaderBuilder<D, F> {
    let b = b.seed(c.seed);
    // Data parallel: this rank's shard of every batch, training and validation alike.
    let b = match ranks {
        Some(r) => b.shard(r.0.size(), r.0.rank()),
        None => b,
    };
    match training {
        true => b
            .batch_size(c.batch_size)
            .shuffle(true)
            .last_batch(LastBatch::Rollover)
            .num_workers(workers),
        false => b.batch_size(8192),
    }
}

type Setup = (
    Box<dyn BatchSource>,
    Box<dyn BatchSource>,
    boson::estimator::EstimatorBuilder,
);

/// The rating task: batches (users, items, ratings), or (users, items, drift, ratings)
/// for a model that takes each rating's drift input; L2 loss; RMSE.
fn rating_setup(
    model: &Arc<dyn RecModel>,
    data: &Prepared,
    config: &TrainConfig,
    workers: usize,
    ranks: Option<&Ranks>,
) -> Result<Setup> {
    let loader =
        |data: &RatingsDataset, drift: &[f32], training: bool| -> Result<Box<dyn BatchSource>> {
            Ok(if model.uses_drift() {
                let (u, i, r) = data.columns();
                let columns = (u.clone(), i.clone(), drift.to_vec(), r.clone());
                let b = DataLoader::builder(ArrayDataset::new(columns)?);
                Box::new(settings(b, training, config, workers, ranks).build()?)
            } else {
                let b = DataLoader::builder(data.clone());
                Box::new(settings(b, training, config, workers, ranks).build()?)
            })
        };
    let drift = data.drift_inputs();
    let train_loader = loader(&data.train, &drift[0], true)?;
    let val_loader = loader(&data.validation, &drift[1], false)?;
    let net: Arc<dyn Model> = model.clone();
    let est = Estimator::builder(net, L2Loss::new())
        .trainer(Trainer::new(model.collect_params(), config.optimizer())?)
        .train_metric(Rmse::new());
    Ok((train_loader, val_loader, est))
}

/// The ranking task: each train rating is a positive, with `config.negatives` items the
/// user has not rated drawn beside it (fresh each epoch); batches (users, candidates,
/// label), or (users, histories, candidates, label) for a model that takes each
/// interaction's history. Validation ranks each user's validation item against every item
/// the user has not rated in train (`FullRanking`), and the epoch is chosen by NDCG@10.
fn ranking_setup(
    model: &Arc<dyn RecModel>,
    data: &Prepared,
    config: &TrainConfig,
    workers: usize,
    ranks: Option<&Ranks>,
) -> Result<Setup> {
    let s = &data.summary;
    let seen = Arc::new(SeenItems::from_datasets(&[&data.train], s.users, s.items)?);
    if let Some(seq_len) = model.uses_sequences() {
        return sequence_setup(model, data, seen, seq_len, config, workers, ranks);
    }
    // Checked before training: negatives in 1..items, and a batch of candidates within
    // the allocation limit.
    let sampler = NegativeSampler::new(seen.clone(), config.negatives, config.seed)
        .and_then(|sampler| sampler.check_batch(config.batch_size).map(|()| sampler))
        .map_err(|e| match e {
            Error::InvalidArgument(msg) => Error::InvalidArgument(format!(
                "--negatives {} with --batch-size {}: {msg}",
                config.negatives, config.batch_size
            )),
            other => other,
        })?;
    let train_loader: Box<dyn BatchSource> = if model.uses_history() {
        let (u, i, _) = data.train.columns();
        let history = data.history[0]
            .iter()
            .map(|h| crate::rank_models::SeqMf::padded(h, s.items))
            .collect::<Vec<_>>();
        let rows = ArrayDataset::new((u.clone(), history, i.clone()))?;
        let batchify = move |rows: Vec<(i64, Vec<i64>, i64)>| {
            let b = rows.len();
            let users: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let positives: Vec<i64> = rows.iter().map(|r| r.2).collect();
            let history: Vec<i64> = rows.iter().flat_map(|r| r.1.clone()).collect();
            let window = history.len() / b.max(1);
            Ok((
                Tensor::from_vec_i64(users.clone(), &[b])?,
                Tensor::from_vec_i64(history, &[b, window])?,
                sampler.candidates(&users, &positives)?,
                Tensor::zeros(&[b], Device::Cpu)?,
            ))
        };
        let b = DataLoader::builder(rows).batchify(batchify);
        Box::new(settings(b, true, config, workers, ranks).build()?)
    } else {
        let b = DataLoader::builder(data.train.clone()).batchify(sampler);
        Box::new(settings(b, true, config, workers, ranks).build()?)
    };
    let net: Arc<dyn Model> = model.clone();
    let est = match config.ranking_loss {
        RankingLoss::Softmax => Estimator::builder(net, SoftmaxCrossEntropyLoss::new()),
        RankingLoss::Bpr => Estimator::builder(net, BprLoss::new()),
    };
    ranking_validation(train_loader, est, model, data, seen, config, workers, ranks)
}

/// The ranking task for a model trained on whole sequences (`SasRec`): one example per
/// user, the latest `seq_len` train items as input and the next item at every position
/// as label, with softmax cross-entropy over every item; validated as `ranking_setup`.
fn sequence_setup(
    model: &Arc<dyn RecModel>,
    data: &Prepared,
    seen: Arc<SeenItems>,
    seq_len: usize,
    config: &TrainConfig,
    workers: usize,
    ranks: Option<&Ranks>,
) -> Result<Setup> {
    let items = data.summary.items;
    let (inputs, targets): (Vec<_>, Vec<_>) = data
        .sequences
        .iter()
        .flat_map(|s| crate::sasrec::training_windows(s, items, seq_len))
        .unzip();
    if inputs.is_empty() {
        return Err(Error::Data(
            "sasrec: no user has two train items, so there is no next item to learn".into(),
        ));
    }
    // Every position's scores over every item, checked before training.
    let scores = config
        .batch_size
        .saturating_mul(seq_len)
        .saturating_mul(items);
    boson::tensor::check_alloc(scores, 4, || {
        format!(
            "sasrec: the scores of --batch-size {} × --seq-len {seq_len} positions × {items} items \
             (lower --batch-size or --seq-len)",
            config.batch_size
        )
    })?;
    let batchify = move |rows: Vec<(Vec<i64>, Vec<i64>)>| {
        let b = rows.len();
        let next: Vec<i64> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
        let input: Vec<i64> = rows.into_iter().flat_map(|r| r.0).collect();
        let (input, width) = crate::sasrec::trim_padding(input, items, seq_len);
        let seen = crate::sasrec::seen_positions(&input, &next, items, width);
        let (p, k) = (next.len(), seen.len());
        Ok((
            Tensor::from_vec_i64(input, &[b, width])?,
            Tensor::from_vec_i64(seen, &[k])?,
            Tensor::from_vec(next.into_iter().map(|i| i as f32).collect(), &[p])?,
        ))
    };
    let b = DataLoader::builder(ArrayDataset::new((inputs, targets))?).batchify(batchify);
    let train_loader: Box<dyn BatchSource> =
        Box::new(settings(b, true, config, workers, ranks).build()?);
    let est = Estimator::builder(model.clone(), SoftmaxCrossEntropyLoss::new());
    ranking_validation(train_loader, est, model, data, seen, config, workers, ranks)
}

/// The ranking task's validation: each user's validation item ranked against every item
/// the user has not rated in train (`FullRanking`), HitRate@10 and NDCG@10; the trainer
/// and the running training loss.
#[allow(clippy::too_many_arguments)]
fn ranking_validation(
    train_loader: Box<dyn BatchSource>,
    est: boson::estimator::EstimatorBuilder,
    model: &Arc<dyn RecModel>,
    data: &Prepared,
    seen: Arc<SeenItems>,
    config: &TrainConfig,
    workers: usize,
    ranks: Option<&Ranks>,
) -> Result<Setup> {
    let (vu, vi, _) = data.validation.columns();
    let held_out: Vec<f32> = vi.iter().map(|&i| i as f32).collect();
    let b = DataLoader::builder(ArrayDataset::new((vu.clone(), held_out))?);
    let val_loader: Box<dyn BatchSource> =
        Box::new(settings(b, false, config, workers, ranks).build()?);
    let est = est
        .trainer(Trainer::new(model.collect_params(), config.optimizer())?)
        .train_metric(boson::metric::Loss::new("loss"))
        .val_net(Arc::new(FullRanking::new(model.clone(), seen)))
        .val_loss(SoftmaxCrossEntropyLoss::new())
        .val_metric(HitRate::new(10)?)
        .val_metric(Ndcg::new(10)?);
    Ok((train_loader, val_loader, est))
}

/// Trains `model` on `data.train` with `Estimator::fit`: L2Loss, the configured optimizer,
/// training RMSE, validation RMSE on `data.validation` after every epoch, the LoggingHandler's
/// lines to `log`, the optional checkpoints, and early stopping (when a patience is given).
/// The model ends with the parameters of its best epoch by validation RMSE.
pub fn fit(
    model: &Arc<dyn RecModel>,
    data: &Prepared,
    config: &TrainConfig,
    options: &FitOptions,
    device: Device,
    log: impl Write + Send + 'static,
) -> Result<History> {
    if config.batch_size == 0 || config.epochs == 0 {
        return Err(Error::InvalidArgument(format!(
            "epochs and batch size must be positive, got {} and {}",
            config.epochs, config.batch_size
        )));
    }
    if options.early_stopping_patience == Some(0) {
        return Err(Error::InvalidArgument(
            "--early-stopping-patience must be at least 1".into(),
        ));
    }
    if options.lr_plateau_patience == Some(0) {
        return Err(Error::InvalidArgument(
            "--lr-plateau-patience must be at least 1".into(),
        ));
    }
    let mut average = config
        .weight_average
        .map(WeightAverageHandler::new)
        .transpose()?;
    let time_limit = match options.max_train_minutes {
        None => None,
        // Up to a year: Duration::from_secs_f64 panics past its range.
        Some(m) if m > 0.0 && m <= 525_600.0 => Some(Duration::from_secs_f64(m * 60.0)),
        Some(m) => {
            return Err(Error::InvalidArgument(format!(
                "--max-train-minutes must be above 0 and at most 525600 (a year), got {m}"
            )))
        }
    };
    // The training step runs on one core; with a second one, a loader worker assembles
    // the next batches meanwhile (+7-9% samples/s on 2 cores). Batches and their order do
    // not depend on the worker count.
    let workers = usize::from(std::thread::available_parallelism().is_ok_and(|n| n.get() > 1));
    let (train_loader, val_loader, est) = match config.task {
        Task::Rating => rating_setup(model, data, config, workers, options.ranks.as_ref())?,
        Task::Ranking => ranking_setup(model, data, config, workers, options.ranks.as_ref())?,
    };
    let mut est = est.device(device).log_writer(log).build()?;
    if let Some(r) = &options.ranks {
        est.trainer_mut().set_communicator(r.0.clone())?;
    }

    // Validation after every epoch (priority -1000, after the metric update) and one log
    // line per epoch (last of all). `fit` would add both by default; they are spelled out
    // here to show the handlers a run uses.
    let mut validation = ValidationHandler::new(&*val_loader).epoch_period(Some(1));
    let mut logging = LoggingHandler::new().progress(options.progress);
    let mut history = HistoryHandler::new(options.checkpoint_dir.clone(), config.task);
    let mut checkpoints = options.checkpoint_dir.as_ref().map(|dir| {
        CheckpointHandler::new(dir)
            .epoch_period(Some(1))
            .max_checkpoints(3)
            .save_best(config.monitor(), MonitorMode::Auto)
            .resume_from_checkpoint(options.resume)
    });
    // Always on, to end with the best epoch's parameters; it stops early only with a
    // patience.
    let mut early = EarlyStoppingHandler::new(config.monitor())
        .patience(options.early_stopping_patience.unwrap_or(usize::MAX))
        .restore_best(true);
    // The history first: at `epoch_end` it writes history.json before the checkpoint,
    // so a checkpoint never has fewer recorded epochs than it trained.
    let mut handlers: Vec<&mut dyn EventHandler> =
        vec![&mut validation, &mut logging, &mut history];
    if let Some(h) = checkpoints.as_mut() {
        handlers.push(h);
    }
    handlers.push(&mut early);
    let mut plateau = options
        .lr_plateau_patience
        .map(|n| ReduceLrOnPlateauHandler::new(config.monitor(), 0.5, n))
        .transpose()?;
    if let Some(h) = plateau.as_mut() {
        handlers.push(h);
    }
    if let Some(h) = average.as_mut() {
        handlers.push(h);
    }
    // The epoch budget (`FitUntil`) still holds beside the time limit.
    let mut stopping = time_limit.map(|limit| StoppingHandler::new().max_time(limit));
    if let Some(h) = stopping.as_mut() {
        handlers.push(h);
    }
    est.fit(
        &*train_loader,
        Some(&*val_loader),
        FitUntil::Epochs(config.epochs),
        &mut handlers,
    )?;
    // The best checkpoint covers a resumed run, whose best epoch may predate the resume.
    if let Some(dir) = &options.checkpoint_dir {
        let best = dir.join("model-best.params");
        if best.exists() {
            model.collect_params().load(
                &best,
                boson::nn::LoadOptions {
                    device: Some(device),
                    ..Default::default()
                },
            )?;
        }
    }
    Ok(history.history)
}
