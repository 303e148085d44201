//! The `Estimator`: construction, `fit`, `evaluate` and the state handlers read.

use super::batch::BatchSource;
use super::event::{EventHandler, HandlerRole, Signal};
use super::handlers::{
    GradientUpdateHandler, LoggingHandler, MetricHandler, StoppingHandler, ValidationHandler,
};
use super::log::LogSink;
use super::processor::{BatchProcessor, DefaultBatchProcessor};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::metric::{self, Metric};
use crate::nn::{Initializer, Model};
use crate::optim::{Sgd, Trainer};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

/// How long [`Estimator::fit`] trains: Gluon's `epochs=` or `batches=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitUntil {
    /// This many full passes over the training data.
    Epochs(usize),
    /// This many batches in all, stopping mid-epoch if need be.
    Batches(usize),
}

/// Whether the estimator is training or evaluating (handlers shared by both use it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Inside [`Estimator::fit`], outside validation.
    Train,
    /// Inside [`Estimator::evaluate`] (also when `fit` validates).
    Evaluate,
}

/// Where training stands. Counts include what a resumed checkpoint had already done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Fully completed epochs. An epoch cut short by a batch budget or a stop request
    /// does not count.
    pub epochs_done: usize,
    /// Training batches processed in all epochs.
    pub batches_done: usize,
    /// Batches processed in the current epoch.
    pub batch_in_epoch: usize,
    /// Samples processed in the current epoch.
    pub samples_in_epoch: usize,
    /// True from `epoch_begin` until the epoch's last batch completed it.
    pub in_epoch: bool,
    /// The training source's epoch number ([`BatchSource::epoch`]) at the start of the
    /// current epoch, or of the next one once this one is complete.
    pub loader_epoch: u64,
    /// Batches per epoch of the training source (for progress displays).
    pub batches_per_epoch: usize,
}

impl Progress {
    /// The 0-based index of the current epoch (at `epoch_end` of a completed epoch:
    /// that epoch).
    pub fn epoch(&self) -> usize {
        if self.in_epoch {
            self.epochs_done
        } else {
            self.epochs_done.saturating_sub(1)
        }
    }
}

/// Gluon's `Estimator`: trains a net with a loss and a trainer, driven by
/// [event handlers](super::EventHandler). See the [module docs](super) for an example.
pub struct Estimator {
    net: Arc<dyn Model>,
    val_net: Arc<dyn Model>,
    loss: Arc<dyn Loss>,
    val_loss: Arc<dyn Loss>,
    trainer: Trainer,
    train_metrics: Vec<Box<dyn Metric>>,
    val_metrics: Vec<Box<dyn Metric>>,
    device: Device,
    processor: Box<dyn BatchProcessor>,
    log: LogSink,
    mode: Mode,
    until: Option<FitUntil>,
    progress: Progress,
    has_validation: bool,
    /// Each handler's [`EventHandler::state`] after its latest event, by key.
    handler_states: BTreeMap<String, serde_json::Value>,
    /// States a resuming checkpoint read, put back once every handler has begun.
    restored_states: Option<BTreeMap<String, serde_json::Value>>,
}

/// Builds an [`Estimator`]; start with [`Estimator::builder`].
pub struct EstimatorBuilder {
    net: Arc<dyn Model>,
    loss: Arc<dyn Loss>,
    trainer: Option<Trainer>,
    train_metrics: Vec<Box<dyn Metric>>,
    val_metrics: Vec<Box<dyn Metric>>,
    val_net: Option<Arc<dyn Model>>,
    val_loss: Option<Arc<dyn Loss>>,
    device: Device,
    initializer: Option<Initializer>,
    processor: Box<dyn BatchProcessor>,
    log: LogSink,
}

impl EstimatorBuilder {
    /// The trainer (default: SGD with learning rate 0.001 over the net's parameters, as
    /// Gluon, with a logged warning).
    pub fn trainer(mut self, trainer: Trainer) -> Self {
        self.trainer = Some(trainer);
        self
    }

    /// Adds a training metric; it is renamed `training {name}`. Default: a
    /// [`metric::Loss`] named after the loss (plus [`metric::Accuracy`] for a softmax
    /// cross-entropy loss).
    pub fn train_metric(mut self, metric: impl Metric + 'static) -> Self {
        self.train_metrics.push(Box::new(metric));
        self
    }

    /// Adds a validation metric; it is renamed `validation {name}`. Default: fresh
    /// copies of the training metrics.
    pub fn val_metric(mut self, metric: impl Metric + 'static) -> Self {
        self.val_metrics.push(Box::new(metric));
        self
    }

    /// The loss used for validation (default: the training loss).
    pub fn val_loss(mut self, loss: impl Loss + 'static) -> Self {
        self.val_loss = Some(Arc::new(loss));
        self
    }

    /// The net used for validation (default: the training net).
    pub fn val_net(mut self, net: Arc<dyn Model>) -> Self {
        self.val_net = Some(net);
        self
    }

    /// The device batches and parameters are moved to (default: the CPU).
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Initializer for parameters that have no values yet (default: Gluon's
    /// `Uniform(0.07)`). Initialised parameters are never re-initialised.
    pub fn initializer(mut self, init: Initializer) -> Self {
        self.initializer = Some(init);
        self
    }

    /// Replaces the batch processor (custom training / evaluation steps).
    pub fn batch_processor(mut self, processor: impl BatchProcessor + 'static) -> Self {
        self.processor = Box::new(processor);
        self
    }

    /// Sends log lines to `writer` instead of stderr (e.g. a [`LogCapture`](super::LogCapture)
    /// or a file).
    pub fn log_writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.log = LogSink::writer(writer);
        self
    }

    /// Initialises missing parameters, moves all to the device, names the metrics.
    pub fn build(self) -> Result<Estimator> {
        let params = self.net.collect_params();
        let mut warnings = Vec::new();
        let uninitialised = params.iter().any(|(_, p)| !p.is_initialized());
        if uninitialised {
            params.initialize(&self.initializer.unwrap_or_default(), self.device)?;
        } else if self.initializer.is_some() {
            warnings.push(
                "every parameter is already initialised; the initializer is not applied"
                    .to_string(),
            );
        }
        params.reset_device(self.device)?;
        let trainer = match self.trainer {
            Some(t) => t,
            None => {
                warnings.push(
                    "no trainer given: using SGD with learning rate 0.001 over the net's parameters"
                        .to_string(),
                );
                Trainer::new(params, Sgd::new(0.001))?
            }
        };
        let mut train_metrics = self.train_metrics;
        if train_metrics.is_empty() {
            if self.loss.name() == "softmaxcrossentropyloss" {
                train_metrics.push(Box::new(metric::Accuracy::new()));
            }
            train_metrics.push(Box::new(metric::Loss::new(self.loss.name())));
        }
        for m in &mut train_metrics {
            let name = prefixed("training ", m.name());
            m.set_name(name);
        }
        let mut val_metrics = self.val_metrics;
        if val_metrics.is_empty() {
            val_metrics = train_metrics.iter().map(|m| m.clone_empty()).collect();
        }
        for m in &mut val_metrics {
            let base = m
                .name()
                .strip_prefix("training ")
                .unwrap_or(m.name())
                .to_string();
            m.set_name(prefixed("validation ", &base));
        }
        let mut names = std::collections::HashSet::new();
        for m in train_metrics.iter().chain(&val_metrics) {
            if !names.insert(m.name().to_string()) {
                return Err(Error::InvalidArgument(format!(
                    "two estimator metrics are named '{}'; give them different names",
                    m.name()
                )));
            }
        }
        let mut est = Estimator {
            val_net: self.val_net.unwrap_or_else(|| Arc::clone(&self.net)),
            net: self.net,
            val_loss: self.val_loss.unwrap_or_else(|| Arc::clone(&self.loss)),
            loss: self.loss,
            trainer,
            train_metrics,
            val_metrics,
            device: self.device,
            processor: self.processor,
            log: self.log,
            mode: Mode::Train,
            until: None,
            progress: Progress::default(),
            has_validation: false,
            handler_states: BTreeMap::new(),
            restored_states: None,
        };
        for w in warnings {
            est.log(&format!("warning: {w}"))?;
        }
        Ok(est)
    }
}

fn prefixed(prefix: &str, name: &str) -> String {
    if name.starts_with(prefix) {
        name.to_string()
    } else {
        format!("{prefix}{name}")
    }
}

impl Estimator {
    /// Starts building an estimator for `net` trained with `loss`.
    pub fn builder(net: Arc<dyn Model>, loss: impl Loss + 'static) -> EstimatorBuilder {
        EstimatorBuilder {
            net,
            loss: Arc::new(loss),
            trainer: None,
            train_metrics: Vec::new(),
            val_metrics: Vec::new(),
            val_net: None,
            val_loss: None,
            device: Device::Cpu,
            initializer: None,
            processor: Box::new(DefaultBatchProcessor),
            log: LogSink::stderr(),
        }
    }

    /// The net being trained.
    pub fn net(&self) -> &Arc<dyn Model> {
        &self.net
    }

    /// The training loss.
    pub fn loss(&self) -> &dyn Loss {
        &*self.loss
    }

    /// The trainer.
    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }

    /// The trainer, mutably (e.g. to change the learning rate from a handler).
    pub fn trainer_mut(&mut self) -> &mut Trainer {
        &mut self.trainer
    }

    /// The training metrics (named `training …`).
    pub fn train_metrics(&self) -> &[Box<dyn Metric>] {
        &self.train_metrics
    }

    /// The training metrics, mutably.
    pub fn train_metrics_mut(&mut self) -> &mut [Box<dyn Metric>] {
        &mut self.train_metrics
    }

    /// The validation metrics (named `validation …`).
    pub fn val_metrics(&self) -> &[Box<dyn Metric>] {
        &self.val_metrics
    }

    /// The validation metrics, mutably.
    pub fn val_metrics_mut(&mut self) -> &mut [Box<dyn Metric>] {
        &mut self.val_metrics
    }

    /// The training or validation metric called `name`.
    pub fn find_metric(&self, name: &str) -> Option<&dyn Metric> {
        self.train_metrics
            .iter()
            .chain(&self.val_metrics)
            .find(|m| m.name() == name)
            .map(|m| &**m)
    }

    /// The metric called `name`, or an error listing the names there are. A composite
    /// metric is an error too: it has no single value to monitor.
    pub fn monitored_metric(&self, name: &str) -> Result<&dyn Metric> {
        match self.find_metric(name) {
            Some(m) if m.is_composite() => Err(Error::InvalidArgument(format!(
                "metric '{name}' is a composite metric and cannot be monitored; monitor one of its members"
            ))),
            Some(m) => Ok(m),
            None => {
                let known: Vec<&str> = self
                    .train_metrics
                    .iter()
                    .chain(&self.val_metrics)
                    .map(|m| m.name())
                    .collect();
                Err(Error::InvalidArgument(format!(
                    "monitored metric '{name}' is not one of the estimator's metrics {known:?}"
                )))
            }
        }
    }

    /// Every training and validation metric's `(name, value)`; validation metrics only
    /// once a validation loader was given to `fit`.
    pub fn metric_values(&self) -> Vec<(String, f32)> {
        let mut out: Vec<(String, f32)> = self
            .train_metrics
            .iter()
            .flat_map(|m| m.get_all())
            .collect();
        if self.has_validation {
            out.extend(self.val_metrics.iter().flat_map(|m| m.get_all()));
        }
        out
    }

    /// The device batches are moved to.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Training progress (epochs, batches, position in the data).
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Replaces the progress counters: used by
    /// [`CheckpointHandler`](super::CheckpointHandler) when it resumes, before the first
    /// epoch (`fit` then skips the data the checkpoint had already seen).
    pub fn set_progress(&mut self, progress: Progress) {
        self.progress = progress;
    }

    /// The handlers' states (see [`EventHandler::state`]) as of their latest event: what a
    /// checkpoint stores.
    pub fn handler_states(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.handler_states
    }

    /// Hands `fit` the handler states read from a checkpoint: once every handler's
    /// `train_begin` has run, each handler whose key is present gets
    /// [`EventHandler::restore_state`]. Used by
    /// [`CheckpointHandler`](super::CheckpointHandler) when it resumes.
    pub fn restore_handler_states(&mut self, states: BTreeMap<String, serde_json::Value>) {
        self.restored_states = Some(states);
    }

    /// Records `h`'s state after one of its events.
    fn note_state(&mut self, h: &dyn EventHandler) {
        if let Some((key, value)) = h.state() {
            self.handler_states.insert(key, value);
        }
    }

    /// The budget of the current (or last) `fit`.
    pub fn until(&self) -> Option<FitUntil> {
        self.until
    }

    /// Training or evaluating.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// True while `fit` has a validation source.
    pub fn has_validation(&self) -> bool {
        self.has_validation
    }

    /// Writes one line to the estimator's log (rank 0's only, when data parallel).
    pub fn log(&mut self, line: &str) -> Result<()> {
        if self.rank() != 0 {
            return Ok(());
        }
        self.log.write(&format!("{line}\n"))
    }

    /// Writes `text` to the log without adding a newline (live progress lines).
    pub fn log_raw(&mut self, text: &str) -> Result<()> {
        if self.rank() != 0 {
            return Ok(());
        }
        self.log.write(text)
    }

    /// True when the log is stderr and stderr is a terminal (live progress is shown).
    pub fn log_is_terminal(&self) -> bool {
        self.rank() == 0 && self.log.is_terminal()
    }

    /// This process's rank when the trainer is data parallel
    /// ([`Trainer::set_communicator`]), else 0. Only rank 0 logs and writes checkpoints.
    pub fn rank(&self) -> usize {
        self.trainer.communicator().map_or(0, |c| c.rank())
    }

    /// With a data-parallel trainer, adds up the training (or validation) metrics'
    /// running sums over the ranks, so every rank's handlers see the metrics of the
    /// whole epoch.
    fn reduce_metrics(&mut self, validation: bool) -> Result<()> {
        let Some(comm) = self.trainer.communicator().cloned() else {
            return Ok(());
        };
        let metrics = if validation {
            &mut self.val_metrics
        } else {
            &mut self.train_metrics
        };
        let (mut sums, mut lens) = (Vec::new(), Vec::new());
        for m in metrics.iter() {
            let s = m.sums().ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "metric {} cannot be summed over data-parallel ranks: implement \
                     Metric::sums and set_sums",
                    m.name()
                ))
            })?;
            lens.push(s.len());
            sums.extend(s);
        }
        crate::distributed::all_reduce_sum_f64(&*comm, &mut sums)?;
        let mut at = 0;
        for (m, n) in metrics.iter_mut().zip(lens) {
            m.set_sums(&sums[at..at + n])?;
            at += n;
        }
        Ok(())
    }

    /// Trains on `train` (validating on `val` if given) for `until`, running `handlers`
    /// and the default handlers missing from them: [`StoppingHandler`],
    /// [`GradientUpdateHandler`], [`MetricHandler`], [`ValidationHandler`] (with `val`)
    /// and [`LoggingHandler`].
    ///
    /// A loss or gradient that is NaN or infinite ends training with
    /// [`Error::NonFinite`] naming the epoch and batch, before the parameters are updated.
    pub fn fit(
        &mut self,
        train: &dyn BatchSource,
        val: Option<&dyn BatchSource>,
        until: FitUntil,
        handlers: &mut [&mut dyn EventHandler],
    ) -> Result<()> {
        if matches!(until, FitUntil::Epochs(0) | FitUntil::Batches(0)) {
            return Err(Error::InvalidArgument(format!(
                "fit needs a positive budget, got {until:?}"
            )));
        }
        if train.is_empty() {
            return Err(Error::InvalidArgument(
                "the training data yields no batch per epoch: it is empty, or smaller than \
                 one batch with last_batch discard or rollover; use a smaller batch size"
                    .into(),
            ));
        }
        let has = |role| handlers.iter().any(|h| h.role() == role);
        let mut defaults: Vec<Box<dyn EventHandler + '_>> = Vec::new();
        if !has(HandlerRole::Stopping) {
            defaults.push(Box::new(StoppingHandler::new()));
        }
        if !has(HandlerRole::GradientUpdate) {
            defaults.push(Box::new(GradientUpdateHandler::new()));
        }
        if !has(HandlerRole::Metric) {
            defaults.push(Box::new(MetricHandler::new()));
        }
        if let Some(val) = val {
            if !has(HandlerRole::Validation) {
                defaults.push(Box::new(ValidationHandler::new(val)));
            }
        }
        if !has(HandlerRole::Logging) {
            defaults.push(Box::new(LoggingHandler::new()));
        }
        let mut all: Vec<&mut dyn EventHandler> = handlers
            .iter_mut()
            .map(|h| &mut **h as &mut dyn EventHandler)
            .chain(
                defaults
                    .iter_mut()
                    .map(|h| &mut **h as &mut dyn EventHandler),
            )
            .collect();
        all.sort_by_key(|h| h.priority());
        // A validation metric never updates without validation data: a handler monitoring
        // one would see NaN every epoch (early stopping would stop after the first).
        let validates = all.iter().any(|h| h.role() == HandlerRole::Validation);
        for h in &all {
            for name in h.monitored_metrics() {
                self.monitored_metric(&name)?;
                if !validates && self.val_metrics.iter().any(|m| m.name() == name) {
                    return Err(Error::InvalidArgument(format!(
                        "a handler monitors the validation metric '{name}' but fit has no \
                         validation data: pass a validation source to fit (or a \
                         ValidationHandler), or monitor a training metric"
                    )));
                }
            }
        }

        self.mode = Mode::Train;
        self.until = Some(until);
        self.has_validation = val.is_some();
        self.progress = Progress {
            loader_epoch: train.epoch(),
            batches_per_epoch: train.len(),
            ..Progress::default()
        };
        self.handler_states.clear();
        self.restored_states = None;
        for h in all.iter_mut() {
            h.train_begin(self)?;
        }
        if let Some(states) = self.restored_states.take() {
            for h in all.iter_mut() {
                if let Some(v) = h.state().and_then(|(key, _)| states.get(&key)) {
                    h.restore_state(v)?;
                }
            }
        }
        for h in all.iter() {
            self.note_state(&**h);
        }

        // A resumed run (a handler restored the progress) continues exactly where the
        // checkpoint was taken: skip whole epochs of the source, then the batches of the
        // interrupted epoch already trained on.
        let behind = self.progress.loader_epoch.saturating_sub(train.epoch());
        if behind > self.progress.epochs_done as u64 + 1 {
            return Err(Error::InvalidArgument(format!(
                "the checkpoint's data source was at epoch {} after {} trained epochs; \
                 resume with a fresh data loader built with the same settings",
                self.progress.loader_epoch, self.progress.epochs_done
            )));
        }
        while train.epoch() < self.progress.loader_epoch {
            drop(train.batches());
        }
        let mut skip = if self.progress.in_epoch {
            self.progress.batch_in_epoch
        } else {
            0
        };

        // A resumed run whose checkpoint already finished the budget trains nothing more.
        let finished = match until {
            FitUntil::Epochs(n) => self.progress.epochs_done >= n,
            FitUntil::Batches(n) => self.progress.batches_done >= n,
        };
        'epochs: loop {
            if finished {
                break 'epochs;
            }
            if !self.progress.in_epoch {
                self.progress.loader_epoch = train.epoch();
                self.progress.batch_in_epoch = 0;
            }
            self.progress.in_epoch = true;
            self.progress.samples_in_epoch = 0;
            self.progress.batches_per_epoch = train.len();
            for h in all.iter_mut() {
                h.epoch_begin(self)?;
            }
            let mut stop = false;
            let mut completed = true;
            for item in train.batches() {
                let batch = item?;
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let batch = batch.to_device(self.device)?;
                for h in all.iter_mut() {
                    h.batch_begin(self, &batch)?;
                }
                let size = batch.size();
                let out = self.processor.fit_batch(&*self.net, &*self.loss, batch)?;
                if !out.loss.all_finite()? {
                    return Err(Error::NonFinite(format!(
                        "training loss at epoch {} batch {} (batch {} overall) is NaN or infinite; \
                         parameters were not updated with it",
                        self.progress.epoch(),
                        self.progress.batch_in_epoch,
                        self.progress.batches_done
                    )));
                }
                self.progress.batch_in_epoch += 1;
                self.progress.batches_done += 1;
                self.progress.samples_in_epoch += size;
                for h in all.iter_mut() {
                    stop |= h.batch_end(self, &out)? == Signal::Stop;
                    self.note_state(&**h);
                }
                if stop {
                    completed = self.progress.batch_in_epoch >= self.progress.batches_per_epoch;
                    break;
                }
            }
            if completed && self.progress.samples_in_epoch == 0 && self.progress.batch_in_epoch == 0
            {
                return Err(Error::InvalidArgument(format!(
                    "epoch {} trained on no samples: the training data yielded no batch",
                    self.progress.epochs_done
                )));
            }
            self.reduce_metrics(false)?;
            if completed {
                self.progress.in_epoch = false;
                self.progress.epochs_done += 1;
                self.progress.loader_epoch = train.epoch();
            }
            for h in all.iter_mut() {
                stop |= h.epoch_end(self)? == Signal::Stop;
                self.note_state(&**h);
            }
            if stop {
                break 'epochs;
            }
        }
        for h in all.iter_mut() {
            h.train_end(self)?;
        }
        Ok(())
    }

    /// Evaluates the validation net on `loader`: resets the validation metrics and
    /// updates them batch by batch (through a default [`MetricHandler`] unless
    /// `handlers` has one), nothing recorded, predict mode.
    pub fn evaluate(
        &mut self,
        loader: &dyn BatchSource,
        handlers: &mut [&mut dyn EventHandler],
    ) -> Result<()> {
        let previous = self.mode;
        self.mode = Mode::Evaluate;
        let result = self.evaluate_inner(loader, handlers);
        self.mode = previous;
        result
    }

    fn evaluate_inner(
        &mut self,
        loader: &dyn BatchSource,
        handlers: &mut [&mut dyn EventHandler],
    ) -> Result<()> {
        for m in &mut self.val_metrics {
            m.reset();
        }
        let mut default_metric = MetricHandler::new();
        let mut all: Vec<&mut dyn EventHandler> = handlers
            .iter_mut()
            .map(|h| &mut **h as &mut dyn EventHandler)
            .collect();
        if !all.iter().any(|h| h.role() == HandlerRole::Metric) {
            all.push(&mut default_metric);
        }
        all.sort_by_key(|h| h.priority());
        for h in all.iter_mut() {
            h.epoch_begin(self)?;
        }
        for item in loader.batches() {
            let batch = item?.to_device(self.device)?;
            for h in all.iter_mut() {
                h.batch_begin(self, &batch)?;
            }
            let out = self
                .processor
                .evaluate_batch(&*self.val_net, &*self.val_loss, batch)?;
            let mut stop = false;
            for h in all.iter_mut() {
                stop |= h.batch_end(self, &out)? == Signal::Stop;
            }
            if stop {
                break;
            }
        }
        self.reduce_metrics(true)?;
        for h in all.iter_mut() {
            h.epoch_end(self)?;
        }
        Ok(())
    }
}
