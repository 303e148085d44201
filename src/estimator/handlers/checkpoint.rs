//! `CheckpointHandler`: periodic and best-model checkpoints, rotation, and exact resume.

use super::{Monitor, MonitorMode};
use crate::error::{Error, Result};
use crate::estimator::event::{priority, EventHandler, Signal};
use crate::estimator::processor::StepOutput;
use crate::estimator::{Estimator, FitUntil, Progress};
use crate::nn::LoadOptions;
use crate::{io, rng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a checkpoint's `.json` file holds besides the parameters and trainer state:
/// everything needed to continue exactly where training was.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct CheckpointMeta {
    /// 1 (absent) before the file hashes; 2 records them, and must.
    #[serde(default = "format_1")]
    format_version: u32,
    /// SHA-256 of the `params` and `states` files, by extension (format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    files_sha256: Option<BTreeMap<String, String>>,
    epochs_done: usize,
    batches_done: usize,
    batch_in_epoch: usize,
    in_epoch: bool,
    loader_epoch: u64,
    rng_seed: u64,
    rng_counter: u64,
    /// The net's [`State`](crate::nn::State) values (dropout mask counters).
    #[serde(default)]
    state: BTreeMap<String, serde_json::Value>,
    /// Dropout counters by layer path, as checkpoints before `state` stored them
    /// (`dropout_user` is now `dropout_user.calls`); read, never written.
    #[serde(default, skip_serializing)]
    dropout: BTreeMap<String, u64>,
    best: Option<f32>,
    /// Other handlers' states (early stopping's patience); absent in older checkpoints.
    #[serde(default)]
    handlers: BTreeMap<String, serde_json::Value>,
}

fn format_1() -> u32 {
    1
}

/// The checkpoint format written: 2 records the SHA-256 of the `.params` and `.states`
/// files in the `.json`.
const FORMAT_VERSION: u32 = 2;

/// The files of a checkpoint that its `.json` records hashes of, by extension.
const HASHED: [&str; 2] = ["params", "states"];

/// Saves checkpoints while training and can resume from the latest one.
///
/// A checkpoint `{prefix}-epoch{E}batch{B}` (E completed epochs, B batches) is three
/// files: `.params` (the net's parameters), `.states` (the trainer's optimizer state) and
/// `.json` (counters, the position in the training data, the global random stream,
/// every dropout layer's mask counter, the other handlers'
/// [`state`](EventHandler::state), such as early stopping's patience count, and the
/// SHA-256 of the `.params` and `.states` files). Each file is written atomically, the
/// `.json` last, so a checkpoint without its `.json` is never resumed from, and one whose
/// `.params` or `.states` no longer has the recorded hash (a flipped bit on disk, a file
/// copied from another run) is skipped at resume like any damaged one. A `.json` with
/// `"format_version": 2` must hold both hashes; checkpoints from before them (no
/// `format_version`) resume unchecked. The `.json` itself is not hashed: it is checked by
/// parsing and by its counters. It runs at [`priority::CHECKPOINT`], after the
/// default-priority handlers, so a checkpoint sees their state after the same event.
///
/// * every `epoch_period` epochs (default 1) and/or `batch_period` batches;
/// * only the newest `max_checkpoints` (default 5) are kept; the best one does not count;
/// * with [`save_best`](Self::save_best), `{prefix}-best.*` is written whenever the
///   monitored metric improves, and the log says "improved from OLD to NEW";
/// * with [`resume_from_checkpoint`](Self::resume_from_checkpoint), `train_begin` loads
///   the newest checkpoint and training continues with the remaining budget; the
///   parameters end exactly as in an uninterrupted run with the same seed, as long as the
///   training source is a fresh loader with the same settings.
pub struct CheckpointHandler {
    dir: PathBuf,
    prefix: String,
    epoch_period: Option<usize>,
    batch_period: Option<usize>,
    max_checkpoints: usize,
    best_monitor: Option<Monitor>,
    best: Option<f32>,
    resume: bool,
    verbose: bool,
    saved: Vec<String>,
    resumed_from: Option<PathBuf>,
}

impl CheckpointHandler {
    /// Checkpoints into `dir` (created if missing) with prefix `model`, every epoch.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CheckpointHandler {
            dir: dir.into(),
            prefix: "model".into(),
            epoch_period: Some(1),
            batch_period: None,
            max_checkpoints: 5,
            best_monitor: None,
            best: None,
            resume: false,
            verbose: false,
            saved: Vec::new(),
            resumed_from: None,
        }
    }

    /// The file name prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Save every `n` completed epochs (`None`: not by epochs).
    pub fn epoch_period(mut self, n: Option<usize>) -> Self {
        self.epoch_period = n;
        self
    }

    /// Save every `n` batches (`None`: not by batches).
    pub fn batch_period(mut self, n: Option<usize>) -> Self {
        self.batch_period = n;
        self
    }

    /// How many periodic checkpoints to keep (at least 1).
    pub fn max_checkpoints(mut self, n: usize) -> Self {
        self.max_checkpoints = n;
        self
    }

    /// Also keep `{prefix}-best.*`, the checkpoint where the metric named `monitor` was
    /// best so far (checked at every save).
    pub fn save_best(mut self, monitor: impl Into<String>, mode: MonitorMode) -> Self {
        self.best_monitor = Some(Monitor::new(monitor, mode));
        self
    }

    /// Load the newest checkpoint in the directory at `train_begin` (if there is one).
    pub fn resume_from_checkpoint(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Log every save.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// The periodic checkpoints on disk that this handler manages, oldest first (file
    /// stems, e.g. `model-epoch2batch20`).
    pub fn saved(&self) -> &[String] {
        &self.saved
    }

    /// The `.params` file the last `fit` resumed from, if it did.
    pub fn resumed_from(&self) -> Option<&Path> {
        self.resumed_from.as_deref()
    }

    fn path(&self, stem: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{stem}.{ext}"))
    }

    /// `(epochs, batches, stem)` of every complete checkpoint in the directory, oldest
    /// first.
    fn scan(&self) -> Result<Vec<(usize, usize, String)>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let head = format!("{}-epoch", self.prefix);
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            let Some(rest) = stem.strip_prefix(&head) else {
                continue;
            };
            let Some((e, b)) = rest.split_once("batch") else {
                continue;
            };
            if let (Ok(e), Ok(b)) = (e.parse::<usize>(), b.parse::<usize>()) {
                found.push((e, b, stem.to_string()));
            }
        }
        found.sort();
        Ok(found)
    }

    fn write(&self, est: &Estimator, stem: &str) -> Result<()> {
        // Data parallel: every rank holds the same state; rank 0 writes it.
        if est.rank() != 0 {
            return Ok(());
        }
        if let Some((name, _)) = est
            .net()
            .collect_params()
            .iter()
            .find(|(_, p)| p.is_sharded())
        {
            return Err(Error::InvalidArgument(format!(
                "parameter {name} is sharded over ranks: checkpoints of sharded tables are not \
                 supported yet (rank 0 holds only its rows); train without CheckpointHandler, \
                 or gather() the tables first"
            )));
        }
        // Rewriting a checkpoint (the best one, or a resumed run's) drops its `.json`
        // first: until the new one is complete the checkpoint is not resumable, never a
        // mix of old and new files.
        let json = self.path(stem, "json");
        match std::fs::remove_file(&json) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&json, e)),
            _ => {}
        }
        est.net().collect_params().save(self.path(stem, "params"))?;
        est.trainer().save_states(self.path(stem, "states"))?;
        // The hashes of the files as they are on disk.
        let mut files_sha256 = BTreeMap::new();
        for ext in HASHED {
            files_sha256.insert(ext.to_string(), io::file_sha256(&self.path(stem, ext))?);
        }
        let p = est.progress();
        let (rng_seed, rng_counter) = rng::state();
        let meta = CheckpointMeta {
            format_version: FORMAT_VERSION,
            files_sha256: Some(files_sha256),
            epochs_done: p.epochs_done,
            batches_done: p.batches_done,
            batch_in_epoch: if p.in_epoch { p.batch_in_epoch } else { 0 },
            in_epoch: p.in_epoch,
            loader_epoch: p.loader_epoch,
            rng_seed,
            rng_counter,
            state: est.net().collect_state(),
            dropout: BTreeMap::new(),
            best: self.best,
            handlers: est.handler_states().clone(),
        };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Format {
            path: self.path(stem, "json"),
            msg: e.to_string(),
        })?;
        io::write_atomic(&self.path(stem, "json"), &json)
    }

    fn remove(&self, est: &Estimator, stem: &str) -> Result<()> {
        if est.rank() != 0 {
            return Ok(());
        }
        // The .json goes first: without it the rest is no longer a resumable checkpoint.
        for ext in ["json", "params", "states"] {
            let path = self.path(stem, ext);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        Ok(())
    }

    fn save(&mut self, est: &mut Estimator) -> Result<()> {
        let p = est.progress().clone();
        let stem = format!(
            "{}-epoch{}batch{}",
            self.prefix, p.epochs_done, p.batches_done
        );
        if let Some(monitor) = self.best_monitor.clone() {
            let value = monitor.value(est)?;
            let best = self.best.unwrap_or(monitor.worst());
            if value.is_nan() {
                est.log(&format!(
                    "warning: {} is NaN, best checkpoint not updated",
                    monitor.name
                ))?;
            } else if monitor.improves(value, best, 0.0) {
                // The old value is logged before `best` is overwritten (Gluon logged
                // the new value twice).
                let best_stem = format!("{}-best", self.prefix);
                est.log(&format!(
                    "[Epoch {}][Batch {}] {} improved from {best:.6} to {value:.6}, saving best model to {}",
                    p.epoch(),
                    p.batches_done,
                    monitor.name,
                    self.path(&best_stem, "params").display()
                ))?;
                self.best = Some(value);
                self.write(est, &best_stem)?;
            }
        }
        self.write(est, &stem)?;
        if self.verbose {
            est.log(&format!(
                "[Epoch {}][Batch {}] saved checkpoint {}",
                p.epoch(),
                p.batches_done,
                self.path(&stem, "params").display()
            ))?;
        }
        self.saved.retain(|s| *s != stem);
        self.saved.push(stem);
        while self.saved.len() > self.max_checkpoints {
            let old = self.saved.remove(0);
            self.remove(est, &old)?;
        }
        Ok(())
    }

    /// Reads and checks a checkpoint's `.json`.
    fn read_meta(&self, stem: &str) -> Result<CheckpointMeta> {
        let json_path = self.path(stem, "json");
        let bytes = std::fs::read(&json_path).map_err(|e| Error::io(&json_path, e))?;
        let meta: CheckpointMeta = serde_json::from_slice(&bytes).map_err(|e| Error::Format {
            path: json_path.clone(),
            msg: format!("not a checkpoint description ({e})"),
        })?;
        // Counters that cannot come from a real run (a batch is counted in its epoch and
        // in the total; an epoch has at least one batch).
        let consistent = meta.batch_in_epoch <= meta.batches_done
            && meta.epochs_done <= meta.batches_done
            && (meta.in_epoch || meta.batch_in_epoch == 0);
        if !consistent {
            return Err(Error::Format {
                path: json_path,
                msg: format!(
                    "inconsistent counters: {} epochs, {} batches, {} batches into the current epoch",
                    meta.epochs_done, meta.batches_done, meta.batch_in_epoch
                ),
            });
        }
        if meta.format_version > FORMAT_VERSION {
            return Err(Error::Format {
                path: json_path,
                msg: format!(
                    "checkpoint format {} is newer than this library's {FORMAT_VERSION}",
                    meta.format_version
                ),
            });
        }
        Ok(meta)
    }

    /// Checks the `.params` and `.states` files against the hashes in the `.json` (format 2
    /// must have both; older checkpoints have none).
    fn verify_files(&self, stem: &str, meta: &CheckpointMeta) -> Result<()> {
        const ADVICE: &str = "this checkpoint cannot be resumed from (an older intact one is \
                              used if there is one)";
        let none = BTreeMap::new();
        let hashes = match &meta.files_sha256 {
            Some(hashes) => hashes,
            None if meta.format_version < 2 => return Ok(()),
            None => &none,
        };
        for ext in HASHED {
            let Some(want) = hashes.get(ext) else {
                return Err(Error::Format {
                    path: self.path(stem, "json"),
                    msg: format!(
                        "a format {} checkpoint must record the SHA-256 of its .{ext} file, \
                         and this one does not: it was modified after it was written; {ADVICE}",
                        meta.format_version
                    ),
                });
            };
            io::verify_file_sha256(&self.path(stem, ext), want, ADVICE)?;
        }
        Ok(())
    }

    /// A checkpoint past the budget `fit` was given cannot be continued.
    fn check_budget(est: &Estimator, stem: &str, meta: &CheckpointMeta) -> Result<()> {
        let (done, asked, what) = match est.until() {
            Some(FitUntil::Epochs(n)) => (meta.epochs_done, n, "epochs"),
            Some(FitUntil::Batches(n)) => (meta.batches_done, n, "batches"),
            None => return Ok(()),
        };
        if done > asked {
            return Err(Error::InvalidArgument(format!(
                "checkpoint {stem} has already trained {done} {what}, more than the {asked} \
                 asked for"
            )));
        }
        Ok(())
    }

    /// Resumes from `stem`; the error says whether it is final (a spent budget) or the
    /// checkpoint is damaged (an older one may do).
    fn try_resume(
        &mut self,
        est: &mut Estimator,
        stem: &str,
    ) -> std::result::Result<(), (Error, bool)> {
        let meta = self.read_meta(stem).map_err(|e| (e, false))?;
        // A damaged checkpoint is not trusted for anything, its budget included.
        self.verify_files(stem, &meta).map_err(|e| (e, false))?;
        Self::check_budget(est, stem, &meta).map_err(|e| (e, true))?;
        self.load(est, stem, meta).map_err(|e| (e, false))
    }

    fn load(&mut self, est: &mut Estimator, stem: &str, meta: CheckpointMeta) -> Result<()> {
        let json_path = self.path(stem, "json");
        let device = est.device();
        let mut state = meta.state;
        for (layer, calls) in meta.dropout {
            state.insert(format!("{layer}.calls"), calls.into());
        }
        // The state goes first: a checkpoint of another model fails before any
        // parameter changes.
        let net = est.net().clone();
        let load_opts = LoadOptions {
            device: Some(device),
            ..Default::default()
        };
        net.restore_state(&state).map_err(|e| Error::Format {
            path: json_path.clone(),
            msg: e.to_string(),
        })?;
        net.collect_params()
            .load(self.path(stem, "params"), load_opts)?;
        est.trainer_mut().load_states(self.path(stem, "states"))?;
        rng::set_state((meta.rng_seed, meta.rng_counter));
        let batches_per_epoch = est.progress().batches_per_epoch;
        est.set_progress(Progress {
            epochs_done: meta.epochs_done,
            batches_done: meta.batches_done,
            batch_in_epoch: meta.batch_in_epoch,
            samples_in_epoch: 0,
            in_epoch: meta.in_epoch,
            loader_epoch: meta.loader_epoch,
            batches_per_epoch,
        });
        self.best = meta.best;
        est.restore_handler_states(meta.handlers);
        Ok(())
    }
}

impl EventHandler for CheckpointHandler {
    fn priority(&self) -> i32 {
        priority::CHECKPOINT
    }

    fn monitored_metrics(&self) -> Vec<String> {
        self.best_monitor.iter().map(|m| m.name.clone()).collect()
    }

    fn train_begin(&mut self, est: &mut Estimator) -> Result<()> {
        if self.max_checkpoints == 0 || self.epoch_period == Some(0) || self.batch_period == Some(0)
        {
            return Err(Error::InvalidArgument(
                "CheckpointHandler: max_checkpoints and periods must be at least 1".into(),
            ));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        if let Some(m) = self.best_monitor.as_mut() {
            m.resolve(est)?;
        }
        self.best = None;
        self.saved.clear();
        self.resumed_from = None;
        if !self.resume {
            return Ok(());
        }
        let found = self.scan()?;
        if found.is_empty() {
            return est.log(&format!(
                "no checkpoint with prefix '{}' in {}, training from scratch",
                self.prefix,
                self.dir.display()
            ));
        }
        // The newest checkpoint that loads; a damaged one is skipped, and said so.
        let mut first_error = None;
        let mut resumed = None;
        for (_, _, stem) in found.iter().rev() {
            match self.try_resume(est, stem) {
                Ok(()) => {
                    resumed = Some(stem.clone());
                    break;
                }
                Err((e, true)) => return Err(e),
                Err((e, false)) => {
                    est.log(&format!("skipping checkpoint {stem}: {e}"))?;
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some(latest) = resumed else {
            return Err(first_error.unwrap_or_else(|| {
                Error::InvalidArgument(format!("no checkpoint in {} loaded", self.dir.display()))
            }));
        };
        // Older checkpoints stay under rotation, so resuming does not leak files.
        self.saved = found.into_iter().map(|(_, _, s)| s).collect();
        let path = self.path(&latest, "params");
        let p = est.progress().clone();
        est.log(&format!(
            "resumed from {} after {} epochs and {} batches",
            path.display(),
            p.epochs_done,
            p.batches_done
        ))?;
        self.resumed_from = Some(path);
        Ok(())
    }

    fn batch_end(&mut self, est: &mut Estimator, _out: &StepOutput) -> Result<Signal> {
        if let Some(n) = self.batch_period {
            if est.progress().batches_done.is_multiple_of(n) {
                self.save(est)?;
            }
        }
        Ok(Signal::Continue)
    }

    fn epoch_end(&mut self, est: &mut Estimator) -> Result<Signal> {
        let p = est.progress();
        if let Some(n) = self.epoch_period {
            if !p.in_epoch && p.epochs_done.is_multiple_of(n) {
                self.save(est)?;
            }
        }
        Ok(Signal::Continue)
    }
}
