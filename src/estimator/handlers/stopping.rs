//! `StoppingHandler`: ends training at the epoch, batch or time budget.

use crate::error::Result;
use crate::estimator::event::{EventHandler, HandlerRole, Signal};
use crate::estimator::processor::StepOutput;
use crate::estimator::{Estimator, FitUntil};
use std::time::{Duration, Instant};

/// Stops training when the budget is spent: the estimator's [`FitUntil`] by default, or
/// explicit limits. It keeps nothing from one fit to the next (the time limit counts
/// from each `fit`'s start), so one handler can serve several `fit` calls (Gluon's never
/// cleared its stop flag).
#[derive(Clone, Debug)]
pub struct StoppingHandler {
    max_epochs: Option<usize>,
    max_batches: Option<usize>,
    max_time: Option<Duration>,
    /// When the current fit began.
    started: Option<Instant>,
    /// `Instant::now`, or a fake clock in the unit tests.
    clock: fn() -> Instant,
}

impl Default for StoppingHandler {
    fn default() -> Self {
        StoppingHandler {
            max_epochs: None,
            max_batches: None,
            max_time: None,
            started: None,
            clock: Instant::now,
        }
    }
}

impl StoppingHandler {
    /// Stops at the budget given to `fit`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also stops after `n` completed epochs.
    pub fn max_epochs(mut self, n: usize) -> Self {
        self.max_epochs = Some(n);
        self
    }

    /// Also stops after `n` batches.
    pub fn max_batches(mut self, n: usize) -> Self {
        self.max_batches = Some(n);
        self
    }

    /// Also stops once `limit` has passed since `fit` began (PyTorch Lightning's
    /// `max_time`), checked after every batch and epoch. An epoch cut short ends as with
    /// `max_batches`: it is not counted as done, so the epoch-end handlers skip it
    /// (no validation; early stopping's best epoch stays the best completed one). The
    /// one budget whose result depends on the machine's speed.
    pub fn max_time(mut self, limit: Duration) -> Self {
        self.max_time = Some(limit);
        self
    }

    fn limits(&self, est: &Estimator) -> (Option<usize>, Option<usize>) {
        let (mut e, mut b) = (self.max_epochs, self.max_batches);
        match est.until() {
            Some(FitUntil::Epochs(n)) => e = Some(e.map_or(n, |m| m.min(n))),
            Some(FitUntil::Batches(n)) => b = Some(b.map_or(n, |m| m.min(n))),
            None => {}
        }
        (e, b)
    }

    /// Whether the time limit has passed since the fit began.
    fn out_of_time(&self) -> bool {
        match (self.max_time, self.started) {
            (Some(limit), Some(start)) => (self.clock)().saturating_duration_since(start) >= limit,
            _ => false,
        }
    }
}

impl EventHandler for StoppingHandler {
    fn role(&self) -> HandlerRole {
        HandlerRole::Stopping
    }

    fn train_begin(&mut self, _est: &mut Estimator) -> Result<()> {
        self.started = Some((self.clock)());
        Ok(())
    }

    fn batch_end(&mut self, est: &mut Estimator, _out: &StepOutput) -> Result<Signal> {
        let (_, max_batches) = self.limits(est);
        let done = max_batches.is_some_and(|n| est.progress().batches_done >= n);
        Ok(if done || self.out_of_time() {
            Signal::Stop
        } else {
            Signal::Continue
        })
    }

    fn epoch_end(&mut self, est: &mut Estimator) -> Result<Signal> {
        let (max_epochs, max_batches) = self.limits(est);
        let p = est.progress();
        let done = max_epochs.is_some_and(|n| p.epochs_done >= n)
            || max_batches.is_some_and(|n| p.batches_done >= n)
            || self.out_of_time();
        Ok(if done { Signal::Stop } else { Signal::Continue })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::OnceLock;

    thread_local! {
        static FAKE_ELAPSED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    }

    /// A clock that moves only when the test says so.
    fn fake_now() -> Instant {
        static BASE: OnceLock<Instant> = OnceLock::new();
        *BASE.get_or_init(Instant::now) + FAKE_ELAPSED.with(Cell::get)
    }

    #[test]
    fn the_time_limit_counts_from_the_start_of_each_fit() {
        let mut h = StoppingHandler {
            clock: fake_now,
            ..StoppingHandler::new().max_time(Duration::from_secs(600))
        };
        assert!(!h.out_of_time(), "no fit has begun");
        FAKE_ELAPSED.with(|t| t.set(Duration::from_secs(1000)));
        h.started = Some(fake_now()); // what train_begin records
        FAKE_ELAPSED.with(|t| t.set(Duration::from_secs(1599)));
        assert!(!h.out_of_time(), "599 s of 600");
        FAKE_ELAPSED.with(|t| t.set(Duration::from_secs(1600)));
        assert!(h.out_of_time(), "600 s of 600");
        // Without a limit, time never stops a fit.
        let h = StoppingHandler {
            clock: fake_now,
            started: Some(fake_now()),
            ..StoppingHandler::new()
        };
        FAKE_ELAPSED.with(|t| t.set(Duration::from_secs(100_000)));
        assert!(!h.out_of_time());
    }
}
