//! `LoggingHandler`: progress lines, a live progress bar on terminals (indicatif), and an
//! optional JSON-lines metrics file.

use crate::error::{Error, Result};
use crate::estimator::event::{priority, EventHandler, HandlerRole, Signal};
use crate::estimator::processor::StepOutput;
use crate::estimator::{Estimator, FitUntil, Mode};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// When the [`LoggingHandler`] writes a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogInterval {
    /// At the start and end of every epoch.
    #[default]
    Epoch,
    /// Every `n` batches, plus the end of every epoch.
    Batches(usize),
}

/// Whether the [`LoggingHandler`] draws a live progress bar (batches done of the epoch,
/// samples/s, running metrics, ETA) on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressBarMode {
    /// When stderr is a terminal. If the estimator also logs there, the bar replaces the
    /// per-batch lines.
    #[default]
    Auto,
    /// Always, even when stderr is not a terminal (a captured session, `script`).
    Always,
    /// Never: plain lines only.
    Never,
}

/// Logs training to the estimator's log (stderr by default), last of all handlers.
///
/// * train begin: optimizer, learning rate, budget; train end: total time and metrics;
/// * epoch end: duration, samples/s and every metric;
/// * with [`LogInterval::Batches`]: a line every n batches with rate and metrics;
/// * a live progress bar on stderr when it is a terminal (see [`ProgressBarMode`];
///   redrawn at most ten times a second, cleared before each line; instead of per-batch
///   lines when the log is that terminal), so logs and CI stay plain;
/// * with [`json_file`](Self::json_file): one JSON object per logged line, e.g.
///   `{"event":"epoch_end","epoch":0,"batches":10,"elapsed_s":0.1,"lr":0.1,"metrics":{"training rmse":0.9}}`
///   (NaN values are written as `null`).
pub struct LoggingHandler {
    interval: LogInterval,
    json_path: Option<PathBuf>,
    json: Option<std::fs::File>,
    train_start: Instant,
    epoch_start: Instant,
    interval_start: Instant,
    interval_samples: usize,
    progress: ProgressBarMode,
    bar: Option<indicatif::ProgressBar>,
}

impl LoggingHandler {
    /// Logs once per epoch.
    pub fn new() -> Self {
        let now = Instant::now();
        LoggingHandler {
            interval: LogInterval::Epoch,
            json_path: None,
            json: None,
            train_start: now,
            epoch_start: now,
            interval_start: now,
            interval_samples: 0,
            progress: ProgressBarMode::Auto,
            bar: None,
        }
    }

    /// Whether to draw a progress bar (default [`ProgressBarMode::Auto`]).
    pub fn progress(mut self, progress: ProgressBarMode) -> Self {
        self.progress = progress;
        self
    }

    /// Where this run draws the bar, if it does.
    fn bar_target(&self) -> Option<indicatif::ProgressDrawTarget> {
        use std::io::IsTerminal;
        match self.progress {
            ProgressBarMode::Never => None,
            ProgressBarMode::Auto => std::io::stderr()
                .is_terminal()
                .then(|| indicatif::ProgressDrawTarget::stderr_with_hz(10)),
            ProgressBarMode::Always => Some(indicatif::ProgressDrawTarget::term_like_with_hz(
                Box::new(console::Term::stderr()),
                10,
            )),
        }
    }

    /// When to log.
    pub fn interval(mut self, interval: LogInterval) -> Self {
        self.interval = interval;
        self
    }

    /// Also writes metrics as JSON lines to `path` (created or truncated at train begin).
    pub fn json_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.json_path = Some(path.into());
        self
    }

    fn metrics_text(est: &Estimator) -> String {
        est.metric_values()
            .iter()
            .map(|(n, v)| format!("{n}: {v:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn json_line(&mut self, est: &Estimator, event: &str) -> Result<()> {
        let Some(file) = self.json.as_mut() else {
            return Ok(());
        };
        let metrics: serde_json::Map<String, serde_json::Value> = est
            .metric_values()
            .into_iter()
            .map(|(n, v)| (n, serde_json::json!(v)))
            .collect();
        let p = est.progress();
        let line = serde_json::json!({
            "event": event,
            "epoch": p.epoch(),
            "batches": p.batches_done,
            "elapsed_s": self.train_start.elapsed().as_secs_f64(),
            "lr": est.trainer().learning_rate(),
            "metrics": metrics,
        });
        let path = self.json_path.clone().unwrap_or_default();
        writeln!(file, "{line}").map_err(|e| Error::io(path, e))
    }

    /// Clears the progress bar before a normal line is written.
    fn close_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Default for LoggingHandler {
    fn default() -> Self {
        Self::new()
    }
}

fn rate(samples: usize, d: Duration) -> f64 {
    samples as f64 / d.as_secs_f64().max(1e-9)
}

impl EventHandler for LoggingHandler {
    fn priority(&self) -> i32 {
        priority::LOGGING
    }

    fn role(&self) -> HandlerRole {
        HandlerRole::Logging
    }

    fn train_begin(&mut self, est: &mut Estimator) -> Result<()> {
        if self.interval == LogInterval::Batches(0) {
            return Err(Error::InvalidArgument(
                "LoggingHandler interval must be at least 1 batch".into(),
            ));
        }
        self.train_start = Instant::now();
        self.close_bar();
        if let Some(path) = &self.json_path {
            self.json = Some(std::fs::File::create(path).map_err(|e| Error::io(path, e))?);
        }
        let budget = match est.until() {
            Some(FitUntil::Epochs(n)) => format!("{n} epochs"),
            Some(FitUntil::Batches(n)) => format!("{n} batches"),
            None => "an unknown budget".into(),
        };
        let line = format!(
            "Training begin: using optimizer {} with current learning rate {:.4}\nTrain for {budget}",
            est.trainer().optimizer().name(),
            est.trainer().learning_rate()
        );
        est.log(&line)
    }

    fn epoch_begin(&mut self, est: &mut Estimator) -> Result<()> {
        if est.mode() != Mode::Train {
            return Ok(());
        }
        self.epoch_start = Instant::now();
        self.interval_start = self.epoch_start;
        self.interval_samples = 0;
        if let Some(target) = self.bar_target() {
            let style = indicatif::ProgressStyle::with_template(
                "[Epoch {prefix}] {wide_bar} {pos}/{len} batches, ETA {eta} {msg}",
            )
            .map_err(|e| Error::InvalidArgument(format!("progress bar template: {e}")))?;
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(est.progress().batches_per_epoch as u64),
                target,
            )
            .with_style(style)
            .with_prefix(est.progress().epoch().to_string());
            self.bar = Some(bar);
        }
        if self.interval == LogInterval::Epoch && !est.log_is_terminal() {
            let line = format!(
                "[Epoch {}] Begin, current learning rate: {:.4}",
                est.progress().epoch(),
                est.trainer().learning_rate()
            );
            est.log(&line)?;
        }
        Ok(())
    }

    fn batch_end(&mut self, est: &mut Estimator, out: &StepOutput) -> Result<Signal> {
        if est.mode() != Mode::Train {
            return Ok(Signal::Continue);
        }
        self.interval_samples += out.batch.size();
        let p = est.progress().clone();
        if let Some(bar) = &self.bar {
            bar.set_position(p.batch_in_epoch as u64);
            bar.set_message(format!(
                "{:.0} samples/s, {}",
                rate(p.samples_in_epoch, self.epoch_start.elapsed()),
                Self::metrics_text(est)
            ));
            if est.log_is_terminal() {
                return Ok(Signal::Continue);
            }
        }
        if let LogInterval::Batches(n) = self.interval {
            if p.batch_in_epoch.is_multiple_of(n) {
                let elapsed = self.interval_start.elapsed();
                let line = format!(
                    "[Epoch {}][Batch {}][Samples {}] time/interval: {:.3}s, {:.1} samples/s, {}",
                    p.epoch(),
                    p.batch_in_epoch - 1,
                    p.samples_in_epoch,
                    elapsed.as_secs_f64(),
                    rate(self.interval_samples, elapsed),
                    Self::metrics_text(est)
                );
                est.log(&line)?;
                self.json_line(est, "batch_end")?;
                self.interval_start = Instant::now();
                self.interval_samples = 0;
            }
        }
        Ok(Signal::Continue)
    }

    fn epoch_end(&mut self, est: &mut Estimator) -> Result<Signal> {
        if est.mode() != Mode::Train {
            return Ok(Signal::Continue);
        }
        self.close_bar();
        let p = est.progress().clone();
        let elapsed = self.epoch_start.elapsed();
        let line = format!(
            "[Epoch {}] Finished in {:.3}s, {:.1} samples/s, {}",
            p.epoch(),
            elapsed.as_secs_f64(),
            rate(p.samples_in_epoch, elapsed),
            Self::metrics_text(est)
        );
        est.log(&line)?;
        self.json_line(est, "epoch_end")?;
        Ok(Signal::Continue)
    }

    fn train_end(&mut self, est: &mut Estimator) -> Result<()> {
        self.close_bar();
        let p = est.progress().clone();
        let line = format!(
            "Train finished using total {:.3}s with {} epochs and {} batches. {}",
            self.train_start.elapsed().as_secs_f64(),
            p.epochs_done,
            p.batches_done,
            Self::metrics_text(est)
        );
        est.log(&line)?;
        self.json_line(est, "train_end")?;
        if let Some(file) = self.json.take() {
            let path = self.json_path.clone().unwrap_or_default();
            file.sync_all().map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    }
}
