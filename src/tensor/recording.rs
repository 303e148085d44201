//! Whether ops are recorded, and in which mode (training or predicting): the scope a
//! tensor op consults before it records itself; and [`apply`], which records a custom op. The public names are
//! `boson::autograd::{record, pause, ...}`, re-exported from here so that the tensor
//! layer needs nothing from `autograd` above it.

use super::custom_op::CustomOp;
use super::grad::Op;
use super::Tensor;
use crate::error::Result;
use std::cell::Cell;

thread_local! {
    static RECORDING: Cell<bool> = const { Cell::new(false) };
    static TRAINING: Cell<bool> = const { Cell::new(false) };
}

/// Restores the previous recording/training flags when dropped, also on early return or panic.
pub(crate) struct ScopeGuard {
    recording: bool,
    training: bool,
}

impl ScopeGuard {
    pub(crate) fn set(recording: Option<bool>, training: Option<bool>) -> ScopeGuard {
        let guard = ScopeGuard {
            recording: is_recording(),
            training: is_training(),
        };
        if let Some(r) = recording {
            RECORDING.with(|c| c.set(r));
        }
        if let Some(t) = training {
            TRAINING.with(|c| c.set(t));
        }
        guard
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        RECORDING.with(|c| c.set(self.recording));
        TRAINING.with(|c| c.set(self.training));
    }
}

/// Runs `f` recording ops for backward, in training mode (dropout active, batch norm uses
/// batch statistics). Gluon's `with autograd.record():`.
pub fn record<T>(f: impl FnOnce() -> T) -> T {
    let _g = ScopeGuard::set(Some(true), Some(true));
    f()
}

/// Like [`record`] but with an explicit training mode (Gluon's `record(train_mode=...)`).
pub fn record_with_mode<T>(train_mode: bool, f: impl FnOnce() -> T) -> T {
    let _g = ScopeGuard::set(Some(true), Some(train_mode));
    f()
}

/// Runs `f` without recording and in predict mode (Gluon's `autograd.pause()`).
pub fn pause<T>(f: impl FnOnce() -> T) -> T {
    let _g = ScopeGuard::set(Some(false), Some(false));
    f()
}

/// Runs `f` in predict mode without changing whether ops are recorded
/// (Gluon's `autograd.predict_mode()`).
pub fn predict_mode<T>(f: impl FnOnce() -> T) -> T {
    let _g = ScopeGuard::set(None, Some(false));
    f()
}

/// Runs `f` in training mode without changing whether ops are recorded
/// (Gluon's `autograd.train_mode()`).
pub fn train_mode<T>(f: impl FnOnce() -> T) -> T {
    let _g = ScopeGuard::set(None, Some(true));
    f()
}

/// Whether ops are being recorded on this thread.
pub fn is_recording() -> bool {
    RECORDING.with(|c| c.get())
}

/// Whether this thread is in training mode.
pub fn is_training() -> bool {
    TRAINING.with(|c| c.get())
}

/// Runs the custom op `op` on `inputs`; inside [`record`] the result's backward is the
/// op's [`CustomOp::backward`] (see [`CustomOp`]).
pub fn apply(op: std::sync::Arc<dyn CustomOp>, inputs: &[&Tensor]) -> Result<Tensor> {
    let owned: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
    let out = {
        // Not recorded inside; training mode (dropout, batch norm) is left as it is.
        let _no_record = ScopeGuard::set(Some(false), None);
        op.forward(&owned)?
    };
    if !is_recording() || !owned.iter().any(|t| t.tracks_grad()) {
        return Ok(out);
    }
    Ok(out.share_storage(out.shape().to_vec(), Some(Op::Custom { op, inputs: owned })))
}
