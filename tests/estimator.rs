//! Estimator: each handler's observable effect, priorities, stopping, validation
//! periods, early stopping, checkpoint rotation, exact resume, NaN guard.

use boson::data::{ArrayDataset, DataLoader, StackBatchify};
use boson::estimator::{
    Batch, BatchSource, CheckpointHandler, EarlyStoppingHandler, Estimator, EventHandler, FitUntil,
    LogCapture, LogInterval, LoggingHandler, MonitorMode, ReduceLrOnPlateauHandler, Signal,
    StepOutput, StoppingHandler, ValidationHandler, WeightAverageHandler,
};
use boson::loss::L2Loss;
use boson::metric::{Mae, Rmse};
use boson::nn::{Activation, Block, Dense, Dropout, Forward, Initializer, Model, Sequential};
use boson::optim::{Adam, Optimizer, Sgd, Trainer};
use boson::{rng, Error, Result};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

/// Tests share boson's global random stream (initialisation and dropout seeds), so
/// they run one at a time.
static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

type Loader = DataLoader<ArrayDataset<(Vec<Vec<f32>>, Vec<f32>)>, StackBatchify>;

/// `n` samples of y = 2·x0 − x1 + 0.5 on a fixed grid; `nan_at` poisons one label.
fn dataset(n: usize, nan_at: Option<usize>) -> ArrayDataset<(Vec<Vec<f32>>, Vec<f32>)> {
    let xs: Vec<Vec<f32>> = (0..n)
        .map(|i| vec![(i % 7) as f32 / 7.0, (i % 5) as f32 / 5.0])
        .collect();
    let mut ys: Vec<f32> = xs.iter().map(|x| 2.0 * x[0] - x[1] + 0.5).collect();
    if let Some(i) = nan_at {
        ys[i] = f32::NAN;
    }
    ArrayDataset::new((xs, ys)).unwrap()
}

fn loader(n: usize, batch: usize, shuffle: bool) -> Loader {
    DataLoader::builder(dataset(n, None))
        .batch_size(batch)
        .shuffle(shuffle)
        .seed(3)
        .build()
        .unwrap()
}

fn linear() -> Arc<dyn Model> {
    Arc::new(Dense::new(1).in_units(2))
}

/// A small net with dropout, built after seeding so two builds are identical.
fn dropout_net(seed: u64) -> Arc<dyn Model> {
    rng::seed(seed);
    Arc::new(
        Sequential::new()
            .add(Dense::new(8).in_units(2).activation(Activation::Relu))
            .add(Dropout::new(0.3))
            .add(Dense::new(1).in_units(8)),
    )
}

fn estimator(net: Arc<dyn Model>, lr: f32, log: &LogCapture) -> Estimator {
    let trainer = Trainer::new(net.collect_params(), Sgd::new(lr)).unwrap();
    Estimator::builder(net, L2Loss::new())
        .trainer(trainer)
        .train_metric(Rmse::new())
        .initializer(Initializer::xavier(3.0))
        .log_writer(log.clone())
        .build()
        .unwrap()
}

fn params_of(net: &Arc<dyn Model>) -> Vec<(String, Vec<f32>)> {
    net.collect_params()
        .iter()
        .map(|(n, p)| (n.to_string(), p.data().unwrap().to_vec_f32().unwrap()))
        .collect()
}

/// Records every event it sees, in order, into a shared list.
struct Recorder {
    name: &'static str,
    priority: i32,
    events: Rc<RefCell<Vec<String>>>,
}

impl EventHandler for Recorder {
    fn priority(&self) -> i32 {
        self.priority
    }
    fn train_begin(&mut self, _: &mut Estimator) -> Result<()> {
        self.events
            .borrow_mut()
            .push(format!("{}:train_begin", self.name));
        Ok(())
    }
    fn epoch_begin(&mut self, est: &mut Estimator) -> Result<()> {
        let e = est.progress().epoch();
        self.events
            .borrow_mut()
            .push(format!("{}:epoch_begin{e}", self.name));
        Ok(())
    }
    fn batch_begin(&mut self, _: &mut Estimator, _: &Batch) -> Result<()> {
        self.events
            .borrow_mut()
            .push(format!("{}:batch_begin", self.name));
        Ok(())
    }
    fn batch_end(&mut self, est: &mut Estimator, _: &StepOutput) -> Result<Signal> {
        let b = est.progress().batches_done;
        self.events
            .borrow_mut()
            .push(format!("{}:batch_end{b}", self.name));
        Ok(Signal::Continue)
    }
    fn epoch_end(&mut self, _: &mut Estimator) -> Result<Signal> {
        self.events
            .borrow_mut()
            .push(format!("{}:epoch_end", self.name));
        Ok(Signal::Continue)
    }
    fn train_end(&mut self, _: &mut Estimator) -> Result<()> {
        self.events
            .borrow_mut()
            .push(format!("{}:train_end", self.name));
        Ok(())
    }
}

#[test]
fn handlers_run_in_priority_order_and_see_every_event() {
    let _g = lock();
    let events = Rc::new(RefCell::new(Vec::new()));
    let mut late = Recorder {
        name: "late",
        priority: 10,
        events: events.clone(),
    };
    let mut early = Recorder {
        name: "early",
        priority: -5000,
        events: events.clone(),
    };
    let log = LogCapture::new();
    let mut est = estimator(linear(), 0.1, &log);
    let train = loader(8, 4, false);
    est.fit(
        &train,
        None,
        FitUntil::Epochs(1),
        &mut [&mut late, &mut early],
    )
    .unwrap();
    let ev = events.borrow();
    assert_eq!(
        *ev,
        [
            "early:train_begin",
            "late:train_begin",
            "early:epoch_begin0",
            "late:epoch_begin0",
            "early:batch_begin",
            "late:batch_begin",
            "early:batch_end1",
            "late:batch_end1",
            "early:batch_begin",
            "late:batch_begin",
            "early:batch_end2",
            "late:batch_end2",
            "early:epoch_end",
            "late:epoch_end",
            "early:train_end",
            "late:train_end",
        ]
    );
}

/// Checks at batch_end that the trainer already stepped (priority −2000) and the
/// metric already saw the batch (−1000) — a user handler runs after both.
struct SeesUpdates {
    checked: usize,
}

impl EventHandler for SeesUpdates {
    fn batch_end(&mut self, est: &mut Estimator, _: &StepOutput) -> Result<Signal> {
        assert_eq!(
            est.trainer().num_update() as usize,
            est.progress().batches_done
        );
        assert!(est.train_metrics()[0].get().1.is_finite());
        self.checked += 1;
        Ok(Signal::Continue)
    }
}

#[test]
fn default_handlers_update_before_user_handlers() {
    let _g = lock();
    let log = LogCapture::new();
    let mut est = estimator(linear(), 0.1, &log);
    let mut h = SeesUpdates { checked: 0 };
    est.fit(
        &loader(10, 4, false),
        None,
        FitUntil::Epochs(2),
        &mut [&mut h],
    )
    .unwrap();
    assert_eq!(h.checked, 6);
    assert_eq!(est.train_metrics()[0].name(), "training rmse");
    assert_eq!(est.val_metrics()[0].name(), "validation rmse");
}

#[test]
fn stop_by_batches_mid_epoch() {
    let _g = lock();
    let log = LogCapture::new();
    let mut est = estimator(linear(), 0.1, &log);
    let train = loader(16, 4, false); // 4 batches per epoch
    est.fit(&train, None, FitUntil::Batches(6), &mut [])
        .unwrap();
    let p = est.progress();
    assert_eq!(p.batches_done, 6);
    assert_eq!(p.epochs_done, 1, "the second epoch was cut short");
    assert_eq!(est.trainer().num_update(), 6);
}

#[test]
fn stopping_handler_is_reusable() {
    let _g = lock();
    let log = LogCapture::new();
    let mut est = estimator(linear(), 0.1, &log);
    let train = loader(8, 4, false);
    let mut stop = StoppingHandler::new();
    est.fit(&train, None, FitUntil::Epochs(2), &mut [&mut stop])
        .unwrap();
    assert_eq!(est.progress().epochs_done, 2);
    est.fit(&train, None, FitUntil::Epochs(3), &mut [&mut stop])
        .unwrap();
    assert_eq!(est.progress().epochs_done, 3);
    assert_eq!(est.trainer().num_update(), 10);
}

/// A zero time budget stops after the first batch (an epoch cut short: not counted, not
/// validated); an ample one leaves the epoch budget in charge. (What lies between
/// depends on the clock: the handler's unit test drives a fake one.)
#[test]
fn stopping_handler_time_budget() {
    let _g = lock();
    let log = LogCapture::new();
    let mut est = estimator(linear(), 0.1, &log);
    let train = loader(16, 4, false); // 4 batches per epoch
    let val = loader(6, 3, false);
    let mut stop = StoppingHandler::new().max_time(std::time::Duration::ZERO);
    let mut validation = ValidationHandler::new(&val);
    est.fit(
        &train,
        None,
        FitUntil::Epochs(3),
        &mut [&mut stop, &mut validation],
    )
    .unwrap();
    let p = est.progress();
    assert_eq!(
        (p.batches_done, p.epochs_done),
        (1, 0),
        "the first epoch was cut short"
    );
    assert_eq!(validation.runs(), 0, "the cut-short epoch is not validated");
    let mut stop = StoppingHandler::new().max_time(std::time::Duration::from_secs(1 << 40));
    est.fit(&train, None, FitUntil::Epochs(3), &mut [&mut stop])
        .unwrap();
    assert_eq!(est.progress().epochs_done, 3);
    assert_eq!(est.trainer().num_update(), 1 + 12);
}

#[test]
fn validation_periods() {
    let _g = lock();
    let log = LogCapture::new();
    let mut est = estimator(linear(), 0.1, &log);
    let train = loader(12, 4, false); // 3 batches per epoch
    let val = loader(6, 3, false);
    let mut by_epoch = ValidationHandler::new(&val).epoch_period(Some(2));
    est.fit(&train, None, FitUntil::Epochs(5), &mut [&mut by_epoch])
        .unwrap();
    assert_eq!(by_epoch.runs(), 2, "after epochs 2 and 4");
    assert!(est.val_metrics()[0].get().1.is_finite());

    let mut by_batch = ValidationHandler::new(&val)
        .epoch_period(None)
        .batch_period(Some(4));
    est.fit(&train, None, FitUntil::Epochs(3), &mut [&mut by_batch])
        .unwrap();
    assert_eq!(by_batch.runs(), 2, "after batches 4 and 8 of 9");

    // The default handler validates every epoch when a validation source is given.
    est.fit(&train, Some(&val), FitUntil::Epochs(2), &mut [])
        .unwrap();
    assert!(log.contents().contains("validation rmse"));
}

#[test]
fn early_stopping_on_a_stalled_metric() {
    let _g = lock();
    let log = LogCapture::new();
    // lr 0: the loss never changes after the first epoch sets the best value.
    let mut est = estimator(linear(), 0.0, &log);
    let train = loader(8, 4, false);
    let mut es = EarlyStoppingHandler::new("training rmse").patience(2);
    est.fit(&train, None, FitUntil::Epochs(20), &mut [&mut es])
        .unwrap();
    assert_eq!(es.stopped_epoch(), Some(2));
    assert_eq!(est.progress().epochs_done, 3);
    assert!(log.contents().contains("early stopping"));
}

#[test]
fn early_stopping_auto_mode_minimises_errors() {
    let _g = lock();
    // Gluon's auto mode picked max for every metric and stopped a falling loss at once.
    let log = LogCapture::new();
    let mut est = estimator(linear(), 0.1, &log);
    let train = loader(32, 4, false);
    let mut es = EarlyStoppingHandler::new("training rmse").patience(1);
    est.fit(&train, None, FitUntil::Epochs(5), &mut [&mut es])
        .unwrap();
    assert_eq!(es.stopped_epoch(), None);
    assert_eq!(est.progress().epochs_done, 5);

    // Forcing max on a falling error stops after the first epoch without "improvement".
    let mut est = estimator(linear(), 0.1, &log);
    let mut es = EarlyStoppingHandler::new("training rmse").mode(MonitorMode::Max);
    est.fit(&train, None, FitUntil::Epochs(5), &mut [&mut es])
        .unwrap();
    assert_eq!(es.stopped_epoch(), Some(1));
}

#[test]
fn the_learning_rate_is_lowered_on_a_plateau_down_to_its_floor() {
    let _g = lock();
    let log = LogCapture::new();
    let train = loader(32, 4, false);
    // A falling error improves every epoch in auto mode: the rate stays.
    let mut est = estimator(linear(), 0.1, &log);
    let mut plateau = ReduceLrOnPlateauHandler::new("training rmse", 0.5, 2).unwrap();
    est.fit(&train, None, FitUntil::Epochs(6), &mut [&mut plateau])
        .unwrap();
    assert_eq!(plateau.reductions(), 0);
    assert_eq!(est.trainer().learning_rate(), 0.1);
    // Watched as if higher were better, it stalls from the first epoch on: halved after
    // epochs 2, 4 and 6 (the count starts again after each reduction).
    let mut est = estimator(linear(), 0.1, &log);
    let mut plateau = ReduceLrOnPlateauHandler::new("training rmse", 0.5, 2)
        .unwrap()
        .mode(MonitorMode::Max);
    est.fit(&train, None, FitUntil::Epochs(7), &mut [&mut plateau])
        .unwrap();
    assert_eq!(plateau.reductions(), 3);
    assert!((est.trainer().learning_rate() - 0.0125).abs() < 1e-7);
    assert!(log.contents().contains("learning rate 0.1 -> 0.05"));
    // Never below the floor.
    let mut est = estimator(linear(), 0.1, &log);
    let mut plateau = ReduceLrOnPlateauHandler::new("training rmse", 0.5, 2)
        .unwrap()
        .mode(MonitorMode::Max)
        .min_lr(0.03);
    est.fit(&train, None, FitUntil::Epochs(7), &mut [&mut plateau])
        .unwrap();
    assert_eq!(plateau.reductions(), 2);
    assert_eq!(est.trainer().learning_rate(), 0.03);
}

#[test]
fn a_resumed_run_keeps_the_lowered_learning_rate_and_the_plateau_count() {
    let _g = lock();
    // Higher-is-better on a falling error: halved after epochs 2, 4 and 6 (0-based).
    let fit = |until: FitUntil, ck: &mut CheckpointHandler| {
        rng::seed(42); // the same initial parameters every time
        let log = LogCapture::new();
        let mut est = estimator(linear(), 0.1, &log);
        let train = loader(8, 4, false);
        let mut plateau = ReduceLrOnPlateauHandler::new("training rmse", 0.5, 2)
            .unwrap()
            .mode(MonitorMode::Max);
        est.fit(&train, None, until, &mut [&mut plateau, ck])
            .unwrap();
        (est.trainer().learning_rate(), params_of(est.net()))
    };
    let dir = tempfile::tempdir().unwrap();
    let full = fit(FitUntil::Epochs(7), &mut CheckpointHandler::new(dir.path()));
    assert!((full.0 - 0.0125).abs() < 1e-7, "{}", full.0);
    // Interrupted after four epochs (lowered once, to 0.05, one epoch into the next
    // count), then resumed: the same rate at every step and the cuts at the same epochs,
    // so the same parameters.
    let dir = tempfile::tempdir().unwrap();
    let part = fit(FitUntil::Epochs(4), &mut CheckpointHandler::new(dir.path()));
    assert!((part.0 - 0.05).abs() < 1e-7, "{}", part.0);
    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    assert_eq!(fit(FitUntil::Epochs(7), &mut ck), full);
}

#[test]
fn bad_plateau_settings_are_errors() {
    let _g = lock();
    for factor in [0.0, 1.0, 1.5, -0.5, f32::NAN] {
        let err = ReduceLrOnPlateauHandler::new("training rmse", factor, 2).unwrap_err();
        assert!(
            err.to_string().contains("factor must be in (0, 1)"),
            "{err}"
        );
    }
    let err = ReduceLrOnPlateauHandler::new("training rmse", 0.5, 0).unwrap_err();
    assert!(
        err.to_string().contains("patience must be at least 1"),
        "{err}"
    );
    // A scheduler owns the rate: fit refuses to start.
    let log = LogCapture::new();
    let net = linear();
    let sgd = Sgd::new(0.1).scheduler(boson::optim::FactorScheduler::new(10, 0.5));
    let mut est = Estimator::builder(net.clone(), L2Loss::new())
        .trainer(Trainer::new(net.collect_params(), sgd).unwrap())
        .train_metric(Rmse::new())
        .log_writer(log.clone())
        .build()
        .unwrap();
    let mut plateau = ReduceLrOnPlateauHandler::new("training rmse", 0.5, 2).unwrap();
    let err = est
        .fit(
            &loader(8, 4, false),
            None,
            FitUntil::Epochs(2),
            &mut [&mut plateau],
        )
        .unwrap_err();
    assert!(err.to_string().contains("LR scheduler"), "{err}");
}

#[test]
fn monitored_metric_must_exist() {
    let _g = lock();
    let log = LogCapture::new();
    let mut est = estimator(linear(), 0.1, &log);
    let train = loader(8, 4, false);
    let mut es = EarlyStoppingHandler::new("validation accuracy");
    let err = est
        .fit(&train, None, FitUntil::Epochs(1), &mut [&mut es])
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(ref m) if m.contains("validation accuracy")),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut ck = CheckpointHandler::new(dir.path()).save_best("nope", MonitorMode::Auto);
    assert!(est
        .fit(&train, None, FitUntil::Epochs(1), &mut [&mut ck])
        .is_err());
    assert_eq!(est.trainer().num_update(), 0, "nothing trained");

    // A validation metric that exists but has no validation data to update it: refused
    // (it used to stop training after the first epoch, "not improving" on NaN).
    let mut es = EarlyStoppingHandler::new("validation rmse");
    let err = est
        .fit(&train, None, FitUntil::Epochs(3), &mut [&mut es])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'validation rmse'") && err.contains("no validation data"),
        "{err}"
    );
    assert_eq!(est.trainer().num_update(), 0, "nothing trained");
    let val = loader(8, 4, false);
    est.fit(&train, Some(&val), FitUntil::Epochs(3), &mut [&mut es])
        .unwrap();
}

fn json_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    v.sort();
    v
}

#[test]
fn checkpoint_rotation_keeps_max_checkpoints_and_best() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let log = LogCapture::new();
    let mut est = estimator(linear(), 0.1, &log);
    let train = loader(8, 4, false);
    let mut ck = CheckpointHandler::new(dir.path())
        .max_checkpoints(2)
        .save_best("training rmse", MonitorMode::Auto);
    est.fit(&train, None, FitUntil::Epochs(5), &mut [&mut ck])
        .unwrap();
    assert_eq!(
        json_files(dir.path()),
        [
            "model-best.json",
            "model-epoch4batch8.json",
            "model-epoch5batch10.json"
        ]
    );
    for stem in ["model-epoch1batch2", "model-epoch3batch6"] {
        assert!(!dir.path().join(format!("{stem}.params")).exists());
        assert!(!dir.path().join(format!("{stem}.states")).exists());
    }
    assert!(dir.path().join("model-best.params").exists());
    // "improved from OLD to NEW": the first line starts from +inf, and each later line
    // starts from the previous line's new value.
    let text = log.contents();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("improved from"))
        .collect();
    assert_eq!(
        lines.len(),
        5,
        "a falling rmse improves every epoch:\n{text}"
    );
    assert!(lines[0].contains("improved from inf to"), "{}", lines[0]);
    let new_of = |l: &str| {
        l.split(" to ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_string()
    };
    let old_of = |l: &str| {
        l.split("improved from ")
            .nth(1)
            .unwrap()
            .split(" to")
            .next()
            .unwrap()
            .to_string()
    };
    for w in lines.windows(2) {
        assert_eq!(old_of(w[1]), new_of(w[0]));
    }
}

/// Parameter values by name.
type Params = Vec<(String, Vec<f32>)>;

/// Trains the dropout net with Adam on a shuffled loader; returns the final parameters.
fn run(until: FitUntil, ck: Option<&mut CheckpointHandler>) -> Result<Params> {
    Ok(run_logged(until, ck)?.0)
}

/// [`run`], with the log.
fn run_logged(until: FitUntil, ck: Option<&mut CheckpointHandler>) -> Result<(Params, String)> {
    let net = dropout_net(42);
    let log = LogCapture::new();
    let trainer = Trainer::new(net.collect_params(), Adam::new(0.01)).unwrap();
    let mut est = Estimator::builder(net.clone(), L2Loss::new())
        .trainer(trainer)
        .train_metric(Mae::new())
        .log_writer(log.clone())
        .build()?;
    let train = loader(30, 4, true); // 8 batches, the last one short
    match ck {
        Some(ck) => est.fit(&train, None, until, &mut [ck])?,
        None => est.fit(&train, None, until, &mut [])?,
    }
    Ok((params_of(&net), log.contents()))
}

#[test]
fn resume_after_epochs_matches_uninterrupted_run() {
    let _g = lock();
    let full = run(FitUntil::Epochs(5), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut ck = CheckpointHandler::new(dir.path());
    let part = run(FitUntil::Epochs(2), Some(&mut ck)).unwrap();
    assert_ne!(part, full);
    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    let resumed = run(FitUntil::Epochs(5), Some(&mut ck)).unwrap();
    assert!(ck
        .resumed_from()
        .unwrap()
        .ends_with("model-epoch2batch16.params"));
    assert_eq!(
        resumed, full,
        "resumed parameters differ from the uninterrupted run"
    );
}

#[test]
fn resume_mid_epoch_matches_uninterrupted_run() {
    let _g = lock();
    let full = run(FitUntil::Epochs(3), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Interrupted after 11 batches; the last checkpoint is at batch 9 (mid epoch 1).
    let mut ck = CheckpointHandler::new(dir.path())
        .epoch_period(None)
        .batch_period(Some(3));
    run(FitUntil::Batches(11), Some(&mut ck)).unwrap();
    let mut ck = CheckpointHandler::new(dir.path())
        .epoch_period(None)
        .batch_period(Some(3))
        .resume_from_checkpoint(true);
    let resumed = run(FitUntil::Epochs(3), Some(&mut ck)).unwrap();
    assert!(ck
        .resumed_from()
        .unwrap()
        .ends_with("model-epoch1batch9.params"));
    assert_eq!(resumed, full);
}

#[test]
fn resume_of_a_finished_run_trains_nothing_and_a_spent_budget_is_an_error() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let mut ck = CheckpointHandler::new(dir.path());
    let trained = run(FitUntil::Epochs(2), Some(&mut ck)).unwrap();

    // The checkpoint holds all 2 epochs asked for: load it, train nothing more.
    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    assert_eq!(run(FitUntil::Epochs(2), Some(&mut ck)).unwrap(), trained);
    assert!(ck
        .resumed_from()
        .unwrap()
        .ends_with("model-epoch2batch16.params"));
    // More than asked for cannot be undone.
    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    let err = run(FitUntil::Epochs(1), Some(&mut ck))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already trained 2 epochs, more than the 1"),
        "{err}"
    );
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one() {
    let _g = lock();
    let full = run(FitUntil::Epochs(4), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut ck = CheckpointHandler::new(dir.path());
    run(FitUntil::Epochs(2), Some(&mut ck)).unwrap();
    let params = dir.path().join("model-epoch2batch16.params");
    let bytes = std::fs::read(&params).unwrap();
    std::fs::write(&params, &bytes[..bytes.len() / 2]).unwrap();

    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    let (resumed, log) = run_logged(FitUntil::Epochs(4), Some(&mut ck)).unwrap();
    assert!(ck
        .resumed_from()
        .unwrap()
        .ends_with("model-epoch1batch8.params"));
    assert!(
        log.contains("skipping checkpoint model-epoch2batch16")
            && log.contains("model-epoch2batch16.params"),
        "{log}"
    );
    assert_eq!(resumed, full, "resumed from epoch 1, then as uninterrupted");

    // Every checkpoint damaged: the newest one's error.
    for stem in [
        "model-epoch1batch8",
        "model-epoch2batch16",
        "model-epoch3batch24",
        "model-epoch4batch32",
    ] {
        let json = dir.path().join(format!("{stem}.json"));
        if json.exists() {
            std::fs::write(&json, b"{ truncated").unwrap();
        }
    }
    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    let err = run(FitUntil::Epochs(5), Some(&mut ck))
        .unwrap_err()
        .to_string();
    assert!(err.contains("model-epoch4batch32.json"), "{err}");
}

/// Flips the top exponent bit of the last number in a safetensors file (its last byte,
/// little-endian): the file still parses, but holds another value.
fn flip_last_exponent_bit(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    *bytes.last_mut().unwrap() ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

// Each checkpoint's .json records the SHA-256 of its .params and .states; a file that no
// longer matches (one flipped bit: a valid file with other numbers) or a format 2 .json
// without the hashes is skipped, said so, and the resume from the newest intact one ends
// exactly where an uninterrupted run does.
#[test]
fn a_checkpoint_file_changed_after_it_was_written_is_skipped_by_its_hash() {
    let _g = lock();
    let full = run(FitUntil::Epochs(4), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let mut ck = CheckpointHandler::new(dir.path());
    run(FitUntil::Epochs(2), Some(&mut ck)).unwrap();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path("model-epoch2batch16.json")).unwrap()).unwrap();
    assert_eq!(meta["format_version"], 2, "{meta}");
    for ext in ["params", "states"] {
        let file = path(&format!("model-epoch2batch16.{ext}"));
        assert_eq!(
            meta["files_sha256"][ext],
            boson::io::file_sha256(&file).unwrap(),
            "{meta}"
        );
    }

    flip_last_exponent_bit(&path("model-epoch2batch16.params"));
    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    let (resumed, log) = run_logged(FitUntil::Epochs(4), Some(&mut ck)).unwrap();
    assert!(
        ck.resumed_from()
            .unwrap()
            .ends_with("model-epoch1batch8.params"),
        "{log}"
    );
    assert!(
        log.contains("skipping checkpoint model-epoch2batch16")
            && log.contains("model-epoch2batch16.params: its contents do not match the SHA-256"),
        "{log}"
    );
    assert_eq!(resumed, full, "resumed from epoch 1, then as uninterrupted");

    // The newest .states damaged, the next newest .json stripped of its hashes: both are
    // skipped, and epoch 2 (rewritten by the resumed run) is resumed from.
    flip_last_exponent_bit(&path("model-epoch4batch32.states"));
    let json = path("model-epoch3batch24.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    meta.as_object_mut().unwrap().remove("files_sha256");
    std::fs::write(&json, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    let (resumed, log) = run_logged(FitUntil::Epochs(4), Some(&mut ck)).unwrap();
    assert!(
        ck.resumed_from()
            .unwrap()
            .ends_with("model-epoch2batch16.params"),
        "{log}"
    );
    assert!(
        log.contains("model-epoch4batch32.states: its contents do not match")
            && log.contains("model-epoch3batch24.json: a format 2 checkpoint must record"),
        "{log}"
    );
    assert_eq!(resumed, full, "resumed from epoch 2, then as uninterrupted");
}

#[test]
fn impossible_checkpoint_counters_are_refused_without_spinning() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let mut ck = CheckpointHandler::new(dir.path()).max_checkpoints(1);
    run(FitUntil::Epochs(1), Some(&mut ck)).unwrap();
    let json = dir.path().join("model-epoch1batch8.json");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for (key, value) in [
        ("loader_epoch", serde_json::json!(u64::MAX)),
        ("batch_in_epoch", serde_json::json!(1000)),
        ("epochs_done", serde_json::json!(99)),
    ] {
        let mut bad = meta.clone();
        bad[key] = value;
        std::fs::write(&json, serde_json::to_vec(&bad).unwrap()).unwrap();
        let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
        let err = run(FitUntil::Epochs(200), Some(&mut ck))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("inconsistent counters") || err.contains("fresh data loader"),
            "{key}: {err}"
        );
    }
}

#[test]
fn resume_without_checkpoint_trains_from_scratch() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let full = run(FitUntil::Epochs(2), None).unwrap();
    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    assert_eq!(run(FitUntil::Epochs(2), Some(&mut ck)).unwrap(), full);
    assert!(ck.resumed_from().is_none());
}

#[test]
fn nan_loss_stops_with_an_error_and_keeps_the_last_checkpoint() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let log = LogCapture::new();
    let net = linear();
    let mut est = estimator(net.clone(), 0.1, &log);
    // Batch size 4: the NaN label (sample 9) is in batch 2 of epoch 0.
    let train = DataLoader::builder(dataset(16, Some(9)))
        .batch_size(4)
        .build()
        .unwrap();
    let mut ck = CheckpointHandler::new(dir.path())
        .epoch_period(None)
        .batch_period(Some(1));
    let err = est
        .fit(&train, None, FitUntil::Epochs(2), &mut [&mut ck])
        .unwrap_err();
    match &err {
        Error::NonFinite(m) => assert!(m.contains("epoch 0 batch 2"), "{m}"),
        other => panic!("expected NonFinite, got {other}"),
    }
    assert_eq!(est.trainer().num_update(), 2);
    // The net still holds the parameters of the last good checkpoint.
    let check = linear();
    check
        .initialize(&Initializer::Zero, boson::Device::Cpu)
        .unwrap();
    check
        .load_parameters(
            dir.path().join("model-epoch0batch2.params"),
            boson::Device::Cpu,
        )
        .unwrap();
    assert_eq!(params_of(&check), params_of(&net));
}

#[test]
fn logging_lines_and_json_file() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("metrics.jsonl");
    let log = LogCapture::new();
    let mut est = estimator(linear(), 0.1, &log);
    let train = loader(16, 4, false);
    let val = loader(8, 4, false);
    let mut lh = LoggingHandler::new()
        .interval(LogInterval::Batches(2))
        .json_file(&json);
    est.fit(&train, Some(&val), FitUntil::Epochs(2), &mut [&mut lh])
        .unwrap();
    let text = log.contents();
    assert!(
        text.contains("Training begin: using optimizer sgd"),
        "{text}"
    );
    assert!(text.contains("Train for 2 epochs"));
    assert_eq!(text.matches("[Epoch 0][Batch ").count(), 2, "{text}");
    assert!(text.contains("[Epoch 1] Finished in"));
    assert!(text.contains("training rmse: ") && text.contains("validation rmse: "));
    assert!(text.contains("Train finished"));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 2 interval lines + 1 epoch line per epoch, and the final line.
    assert_eq!(lines.len(), 7);
    let last_epoch = &lines[5];
    assert_eq!(last_epoch["event"], "epoch_end");
    assert_eq!(last_epoch["epoch"], 1);
    assert!(last_epoch["metrics"]["validation rmse"].as_f64().unwrap() >= 0.0);
}

#[test]
fn recommender_batches_and_evaluate() {
    let _g = lock();
    use boson::data::ArrayDataset;
    use boson::nn::Embedding;
    use boson::Tensor;
    /// Dot product of a user and an item embedding.
    #[derive(Block)]
    struct Mf {
        users: Embedding,
        items: Embedding,
    }
    impl Forward for Mf {
        type Input = (Tensor, Tensor);
        fn forward(&self, (users, items): &(Tensor, Tensor)) -> Result<Tensor> {
            let u = self.users.forward(users)?;
            let i = self.items.forward(items)?;
            u.mul(&i)?.sum_axes(&[1], false)
        }
    }
    let users: Vec<i64> = (0..40).map(|i| i % 8).collect();
    let items: Vec<i64> = (0..40).map(|i| (i * 3) % 10).collect();
    let ratings: Vec<f32> = users
        .iter()
        .zip(&items)
        .map(|(u, i)| ((u + i) % 3) as f32)
        .collect();
    let ds = ArrayDataset::new((users, items, ratings)).unwrap();
    let train = DataLoader::builder(ds)
        .batch_size(8)
        .shuffle(true)
        .build()
        .unwrap();
    let net: Arc<dyn Model> = Arc::new(Mf {
        users: Embedding::new(8, 4),
        items: Embedding::new(10, 4),
    });
    let log = LogCapture::new();
    let mut est = estimator(net, 0.05, &log);
    est.fit(&train, None, FitUntil::Epochs(3), &mut []).unwrap();
    est.evaluate(&train, &mut []).unwrap();
    let (name, rmse) = est.val_metrics()[0].get();
    assert_eq!(name, "validation rmse");
    assert!(rmse.is_finite());
}

#[test]
fn early_stopping_resumes_with_its_patience_count() {
    let _g = lock();
    // lr 0: the metric is the same every epoch, so patience 3 stops at epoch 3.
    let fit = |until: FitUntil, ck: &mut CheckpointHandler| {
        let log = LogCapture::new();
        let mut est = estimator(linear(), 0.0, &log);
        let train = loader(8, 4, false);
        let mut es = EarlyStoppingHandler::new("training rmse").patience(3);
        est.fit(&train, None, until, &mut [&mut es, ck]).unwrap();
        (es.stopped_epoch(), est.progress().epochs_done)
    };
    let dir = tempfile::tempdir().unwrap();
    let full = fit(
        FitUntil::Epochs(20),
        &mut CheckpointHandler::new(dir.path()),
    );
    assert_eq!(full, (Some(3), 4));

    // Interrupted after two epochs (best seen once, one epoch without improvement), then
    // resumed: it must stop at the same epoch, not three epochs after the resume.
    let dir = tempfile::tempdir().unwrap();
    fit(FitUntil::Epochs(2), &mut CheckpointHandler::new(dir.path()));
    let json = std::fs::read_to_string(dir.path().join("model-epoch2batch4.json")).unwrap();
    assert!(json.contains("early stopping on training rmse"), "{json}");
    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    assert_eq!(fit(FitUntil::Epochs(20), &mut ck), full);
}

#[test]
fn a_malformed_handler_state_in_a_checkpoint_is_an_error() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let fit = |until: FitUntil, ck: &mut CheckpointHandler| {
        let log = LogCapture::new();
        let mut est = estimator(linear(), 0.0, &log);
        let train = loader(8, 4, false);
        let mut es = EarlyStoppingHandler::new("training rmse").patience(3);
        est.fit(&train, None, until, &mut [&mut es, ck])
    };
    fit(FitUntil::Epochs(1), &mut CheckpointHandler::new(dir.path())).unwrap();
    let path = dir.path().join("model-epoch1batch2.json");
    let json = std::fs::read_to_string(&path).unwrap();
    assert!(json.contains("\"wait\": 0"), "{json}");
    std::fs::write(&path, json.replace("\"wait\": 0", "\"wait\": \"zero\"")).unwrap();
    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    let err = fit(FitUntil::Epochs(3), &mut ck).unwrap_err().to_string();
    assert!(
        err.contains("early stopping state") && err.contains("zero"),
        "{err}"
    );
}

#[test]
fn training_data_without_a_batch_is_an_error_not_a_nan_metric() {
    let _g = lock();
    let log = LogCapture::new();
    let mut est = estimator(linear(), 0.1, &log);
    let empty = DataLoader::builder(dataset(0, None))
        .batch_size(4)
        .build()
        .unwrap();
    let err = est
        .fit(&empty, None, FitUntil::Epochs(1), &mut [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("yields no batch"), "{err}");

    /// A source that claims a batch but yields none.
    struct Hollow;
    impl BatchSource for Hollow {
        fn batches(&self) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
            Box::new(std::iter::empty())
        }
        fn epoch(&self) -> u64 {
            0
        }
        fn len(&self) -> usize {
            1
        }
    }
    let err = est
        .fit(&Hollow, None, FitUntil::Epochs(2), &mut [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("epoch 0 trained on no samples"), "{err}");
    assert!(!log.contents().contains("NaN"), "{}", log.contents());
}

#[test]
fn early_stopping_can_end_with_the_best_epochs_parameters() {
    let _g = lock();
    // "Best" here is the largest validation RMSE: the first epoch's, so the run must end
    // with exactly the parameters a one-epoch run ends with.
    let run_with = |epochs: usize, restore: bool| {
        let log = LogCapture::new();
        let net = dropout_net(42);
        let trainer = Trainer::new(net.collect_params(), Adam::new(0.01)).unwrap();
        let mut est = Estimator::builder(net.clone(), L2Loss::new())
            .trainer(trainer)
            .train_metric(Rmse::new())
            .log_writer(log.clone())
            .build()
            .unwrap();
        let mut early = EarlyStoppingHandler::new("validation rmse")
            .mode(MonitorMode::Max)
            .patience(100)
            .restore_best(restore);
        let val = loader(20, 10, false);
        est.fit(
            &loader(30, 4, true),
            Some(&val),
            FitUntil::Epochs(epochs),
            &mut [&mut early],
        )
        .unwrap();
        (params_of(&net), log.contents())
    };
    let (one, _) = run_with(1, false);
    let (last, _) = run_with(4, false);
    let (restored, log) = run_with(4, true);
    assert_ne!(last, one);
    assert_eq!(restored, one);
    assert!(log.contains("restored the parameters of epoch 0"), "{log}");
}

/// The initial parameters, those after every optimizer step (priority −1800: after the update, before
/// the weight average), and at every epoch's end what validation saw (priority 0) with
/// its validation RMSE.
#[derive(Default)]
struct Trajectory {
    initial: Params,
    steps: Vec<Params>,
    epochs: Vec<(Params, f32)>,
}

struct StepRecorder(Rc<RefCell<Trajectory>>);
struct EpochRecorder(Rc<RefCell<Trajectory>>);

impl EventHandler for StepRecorder {
    fn priority(&self) -> i32 {
        -1800
    }
    fn train_begin(&mut self, est: &mut Estimator) -> Result<()> {
        self.0.borrow_mut().initial = params_of(est.net());
        Ok(())
    }
    fn batch_end(&mut self, est: &mut Estimator, _: &StepOutput) -> Result<Signal> {
        self.0.borrow_mut().steps.push(params_of(est.net()));
        Ok(Signal::Continue)
    }
}

impl EventHandler for EpochRecorder {
    fn epoch_end(&mut self, est: &mut Estimator) -> Result<Signal> {
        let rmse = est.monitored_metric("validation rmse")?.get().1;
        self.0
            .borrow_mut()
            .epochs
            .push((params_of(est.net()), rmse));
        Ok(Signal::Continue)
    }
}

#[test]
fn the_weight_average_is_validated_and_kept_while_training_goes_on_from_the_raw_values() {
    let _g = lock();
    let val = loader(12, 4, false);
    let run = |decay: Option<f32>| {
        rng::seed(42);
        let log = LogCapture::new();
        let mut est = estimator(linear(), 0.1, &log);
        let seen = Rc::new(RefCell::new(Trajectory::default()));
        let mut steps = StepRecorder(seen.clone());
        let mut epochs = EpochRecorder(seen.clone());
        let mut average = decay.map(|d| WeightAverageHandler::new(d).unwrap());
        let mut handlers: Vec<&mut dyn EventHandler> = vec![&mut steps, &mut epochs];
        if let Some(h) = average.as_mut() {
            handlers.push(h);
        }
        est.fit(
            &loader(16, 4, true),
            Some(&val),
            FitUntil::Epochs(3),
            &mut handlers,
        )
        .unwrap();
        let last = params_of(est.net());
        // Evaluating the final model again gives the last epoch's validation RMSE.
        est.evaluate(&val, &mut []).unwrap();
        let again = est.monitored_metric("validation rmse").unwrap().get().1;
        drop(handlers);
        let t = seen.take();
        (t, last, again)
    };
    let (plain, plain_last, _) = run(None);
    let decay = 0.5;
    let (averaged, last, again) = run(Some(decay));
    // Training itself is untouched: the same raw values after every step.
    assert_eq!(averaged.steps.len(), 12);
    assert_eq!(averaged.steps, plain.steps);
    // Validation sees the moving average of the raw steps, from the initial values,
    // with the decay held at (1 + t) / (10 + t) while that is smaller.
    let mut avg: Vec<Vec<f32>> = averaged.initial.iter().map(|(_, v)| v.clone()).collect();
    for (t, step) in averaged.steps.iter().enumerate() {
        let t = (t + 1) as f32;
        let d = f32::min(decay, (1.0 + t) / (10.0 + t));
        for (a, (_, p)) in avg.iter_mut().zip(step) {
            for (a, p) in a.iter_mut().zip(p) {
                *a = d * *a + (1.0 - d) * p;
            }
        }
        if (t as usize).is_multiple_of(4) {
            let (seen, _) = &averaged.epochs[t as usize / 4 - 1];
            for (a, (_, s)) in avg.iter().zip(seen) {
                for (a, s) in a.iter().zip(s) {
                    assert!((a - s).abs() < 1e-6, "step {t}: {a} vs {s}");
                }
            }
        }
    }
    assert_ne!(averaged.epochs[2].0, plain.epochs[2].0);
    // The run ends with the average, and its validation RMSE is the average's.
    assert_eq!(last, averaged.epochs[2].0);
    assert_ne!(last, plain_last);
    assert_eq!(again, averaged.epochs[2].1);
    for decay in [0.0, 1.0, -0.1, f32::NAN] {
        let err = WeightAverageHandler::new(decay).unwrap_err();
        assert!(err.to_string().contains("decay must be in (0, 1)"), "{err}");
    }
}

#[test]
fn a_resumed_run_with_a_weight_average_matches_an_uninterrupted_one() {
    let _g = lock();
    let fit = |until: FitUntil, ck: &mut CheckpointHandler| {
        rng::seed(42);
        let log = LogCapture::new();
        let mut est = estimator(linear(), 0.1, &log);
        let mut average = WeightAverageHandler::new(0.9).unwrap();
        let val = loader(8, 4, false);
        est.fit(
            &loader(12, 4, true),
            Some(&val),
            until,
            &mut [&mut average, ck],
        )
        .map(|_| params_of(est.net()))
    };
    let dir = tempfile::tempdir().unwrap();
    let full = fit(FitUntil::Epochs(5), &mut CheckpointHandler::new(dir.path())).unwrap();
    // Interrupted after two epochs, then resumed: the raw values come back from the
    // handler's state, the average from the checkpoint's parameters.
    let dir = tempfile::tempdir().unwrap();
    let part = fit(FitUntil::Epochs(2), &mut CheckpointHandler::new(dir.path())).unwrap();
    assert_ne!(part, full);
    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    assert_eq!(fit(FitUntil::Epochs(5), &mut ck).unwrap(), full);
    // A damaged state is an error that says whose.
    let dir = tempfile::tempdir().unwrap();
    fit(FitUntil::Epochs(1), &mut CheckpointHandler::new(dir.path())).unwrap();
    let path = dir.path().join("model-epoch1batch3.json");
    let json = std::fs::read_to_string(&path).unwrap();
    assert!(json.contains("\"updates\": 3"), "{json}");
    std::fs::write(
        &path,
        json.replace("\"updates\": 3", "\"updates\": \"three\""),
    )
    .unwrap();
    let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(true);
    let err = fit(FitUntil::Epochs(2), &mut ck).unwrap_err().to_string();
    assert!(err.contains("weight average state"), "{err}");
}

// Without a terminal (tests, CI, log files) no bar is drawn, and the log keeps its plain
// lines: no carriage returns, no escape codes. (`Always` draws on stderr regardless, so it
// is left out here.)
#[test]
fn without_a_terminal_the_progress_bar_leaves_plain_lines() {
    use boson::estimator::ProgressBarMode;
    let _g = lock();
    for mode in [ProgressBarMode::Auto, ProgressBarMode::Never] {
        let log = LogCapture::new();
        let mut est = estimator(linear(), 0.1, &log);
        let mut lh = LoggingHandler::new().progress(mode);
        est.fit(
            &loader(16, 4, false),
            None,
            FitUntil::Epochs(2),
            &mut [&mut lh],
        )
        .unwrap();
        let text = log.contents();
        assert!(
            !text.contains('\r') && !text.contains('\x1b'),
            "{mode:?}: {text:?}"
        );
        assert_eq!(text.matches("] Finished in").count(), 2, "{mode:?}: {text}");
        assert_eq!(text.matches("] Begin, current learning rate").count(), 2);
    }
}

/// SGD with momentum written with tensor ops only, outside the crate: what a user adds
/// in one file. Row-sparse gradients take the trait's default (densified) path.
#[derive(Debug)]
struct TensorOpsMomentum {
    hyper: boson::optim::Hyper,
    momentum: f32,
}

impl boson::optim::Optimizer for TensorOpsMomentum {
    fn name(&self) -> &'static str {
        "tensor-ops-momentum"
    }
    fn hyper(&self) -> &boson::optim::Hyper {
        &self.hyper
    }
    fn hyper_mut(&mut self) -> &mut boson::optim::Hyper {
        &mut self.hyper
    }
    fn num_states(&self) -> usize {
        1
    }
    fn step(
        &self,
        w: &boson::Tensor,
        g: &boson::Tensor,
        states: &[boson::Tensor],
        a: &boson::optim::StepArgs,
    ) -> Result<()> {
        // m = momentum·m − lr·(rescale·g + wd·w); w += m (Gluon's SGD with momentum).
        let m = &states[0];
        let step = (g.mul_scalar(a.rescale)? + w.mul_scalar(a.wd)?)?.mul_scalar(a.lr)?;
        m.assign(&(m.mul_scalar(self.momentum)? - step)?)?;
        w.assign(&(w + m)?)
    }
}

#[test]
fn an_optimizer_defined_outside_the_crate_trains_through_the_estimator() {
    let _g = lock();
    let run = |custom: bool| -> (Vec<(String, Vec<f32>)>, f32) {
        rng::seed(5);
        let net = linear();
        net.initialize(&Initializer::xavier(3.0), boson::Device::Cpu)
            .unwrap();
        let trainer = match custom {
            true => Trainer::new(
                net.collect_params(),
                TensorOpsMomentum {
                    hyper: boson::optim::Hyper::new(0.1),
                    momentum: 0.9,
                }
                .wd(1e-3),
            ),
            false => Trainer::new(net.collect_params(), Sgd::new(0.1).momentum(0.9).wd(1e-3)),
        }
        .unwrap();
        let mut est = Estimator::builder(net.clone(), L2Loss::new())
            .trainer(trainer)
            .train_metric(Rmse::new())
            .log_writer(LogCapture::new())
            .build()
            .unwrap();
        let train = loader(64, 8, true);
        est.fit(&train, None, FitUntil::Epochs(20), &mut [])
            .unwrap();
        let rmse = est.find_metric("training rmse").unwrap().get().1;
        (params_of(&net), rmse)
    };
    let (custom, custom_rmse) = run(true);
    let (builtin, builtin_rmse) = run(false);
    // It learns the line (the data is exactly linear) ...
    assert!(custom_rmse < 0.05, "training rmse {custom_rmse}");
    // ... and takes the built-in's steps (same math, different code).
    for ((name, a), (_, b)) in custom.iter().zip(&builtin) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-4, "{name}: {x} vs {y}");
        }
    }
    assert!((custom_rmse - builtin_rmse).abs() < 1e-4);
}

#[test]
fn a_tensor_ops_optimizer_takes_row_sparse_gradients_through_the_default_path() {
    use boson::nn::Embedding;
    let emb = Embedding::new(10, 3);
    emb.initialize(&Initializer::Normal(0.5), boson::Device::Cpu)
        .unwrap();
    let before = emb.weight.data().unwrap().to_vec_f32().unwrap();
    let opt = TensorOpsMomentum {
        hyper: boson::optim::Hyper::new(0.5),
        momentum: 0.0,
    };
    let mut trainer = Trainer::new(emb.collect_params(), opt).unwrap();
    let idx = boson::Tensor::from_vec_i64(vec![2, 7, 2], &[3]).unwrap();
    let loss = boson::autograd::record(|| emb.forward(&idx)?.sum_all()).unwrap();
    loss.backward().unwrap();
    assert!(matches!(
        emb.weight.grad(),
        Some(boson::autograd::Grad::RowSparse(_))
    ));
    trainer.step(1).unwrap();
    let after = emb.weight.data().unwrap().to_vec_f32().unwrap();
    for (e, (a, b)) in after.iter().zip(&before).enumerate() {
        // Row 2 was used twice, row 7 once; the others had no gradient.
        let uses = match e / 3 {
            2 => 2.0,
            7 => 1.0,
            _ => 0.0,
        };
        assert!(
            (a - (b - 0.5 * uses)).abs() < 1e-6,
            "element {e}: {a} vs {b}"
        );
    }
}
