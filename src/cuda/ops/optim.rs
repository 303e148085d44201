//! Launchers for `kernels/optim.cu`: the fused optimizer updates, dense or over the
//! rows of a row-sparse gradient.

use super::launch::{cfg_for, check_error_cell, check_len, error_cell, func, invalid, launch};
use crate::cuda::device::CudaDevice;
use crate::error::Result;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// MXNet `sgd_mom_update` / `sgd_update` hyper-parameters. `clip_gradient < 0`: no clip.
#[derive(Clone, Copy, Debug)]
pub struct SgdParams {
    pub lr: f32,
    pub momentum: f32,
    pub wd: f32,
    pub rescale_grad: f32,
    pub clip_gradient: f32,
}

/// MXNet `adam_update` hyper-parameters; `lr_t` already bias-corrected (see
/// `boson::optim::adam_lr_t`).
#[derive(Clone, Copy, Debug)]
pub struct AdamParams {
    pub lr_t: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    pub wd: f32,
    pub rescale_grad: f32,
    pub clip_gradient: f32,
}

/// MXNet AdaGrad hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub struct AdaGradParams {
    pub lr: f32,
    pub epsilon: f32,
    pub wd: f32,
    pub rescale_grad: f32,
    pub clip_gradient: f32,
}

/// Which rows an optimizer update touches.
/// `idx = Some(ids)`: row-sparse gradient, `grad` is `[ids.len(), dim]` and its row r
/// updates weight row `ids[r]` (`ids[r] < 0` skipped, e.g. the scatter-add's -1 padding);
/// `None`: dense, `grad` has the weight's shape.
fn update_setup(
    w_len: usize,
    dim: usize,
    grad_len: usize,
    idx: Option<&CudaSlice<i64>>,
) -> Result<(i64, i64, i64)> {
    if dim == 0 || !w_len.is_multiple_of(dim) {
        return Err(invalid(format!(
            "optimizer: weight of {w_len} elements is not [rows, {dim}]"
        )));
    }
    let rows = w_len / dim;
    let n = match idx {
        Some(ids) => ids.len() * dim,
        None => w_len,
    };
    check_len("optimizer gradient", grad_len, n)?;
    Ok((n as i64, dim as i64, rows as i64))
}

/// SGD (MXNet semantics) on `w` (`[rows, dim]`): with `mom`,
/// `mom = momentum*mom - lr*(clip(rescale*g) + wd*w); w += mom`; without,
/// `w -= lr*(clip(rescale*g) + wd*w)`. Row selection as in `update_setup`: `idx`
/// lists the rows of a row-sparse gradient (others untouched), `None` means dense.
/// An id `>= rows` gives `Error::IndexOutOfRange`; synchronises to check.
pub fn sgd_update(
    dev: &CudaDevice,
    w: &mut CudaSlice<f32>,
    dim: usize,
    grad: &CudaSlice<f32>,
    idx: Option<&CudaSlice<i64>>,
    mom: Option<&mut CudaSlice<f32>>,
    p: &SgdParams,
) -> Result<()> {
    let (n, d, rows) = update_setup(w.len(), dim, grad.len(), idx)?;
    if let Some(m) = mom.as_ref() {
        check_len("sgd momentum", m.len(), w.len())?;
    }
    let err = error_cell(dev)?;
    if n > 0 {
        let null = 0u64; // a null device pointer for absent idx / momentum
        let f = func(dev, "optim.cu", "sgd_update_f32")?;
        let mut l = dev.stream().launch_builder(&f);
        l.arg(&n).arg(&d).arg(&rows);
        match idx {
            Some(i) => l.arg(i),
            None => l.arg(&null),
        };
        l.arg(&mut *w).arg(grad);
        match mom {
            Some(m) => l.arg(m),
            None => l.arg(&null),
        };
        l.arg(&p.lr)
            .arg(&p.momentum)
            .arg(&p.wd)
            .arg(&p.rescale_grad)
            .arg(&p.clip_gradient)
            .arg(&err);
        launch(l, cfg_for(n as u64), "sgd_update_f32")?;
    }
    check_error_cell(dev, err, "sgd row", rows as usize)
}

/// Adam (MXNet `adam_update`): `g = clip(rescale*g) + wd*w; mean = b1*mean + (1-b1)*g;
/// var = b2*var + (1-b2)*g^2; w -= lr_t*mean/(sqrt(var)+eps)`. `mean`, `var` have the
/// weight's shape. Rows as in [`sgd_update`]; synchronises to check indices.
#[allow(clippy::too_many_arguments)]
pub fn adam_update(
    dev: &CudaDevice,
    w: &mut CudaSlice<f32>,
    dim: usize,
    grad: &CudaSlice<f32>,
    idx: Option<&CudaSlice<i64>>,
    mean: &mut CudaSlice<f32>,
    var: &mut CudaSlice<f32>,
    p: &AdamParams,
) -> Result<()> {
    let (n, d, rows) = update_setup(w.len(), dim, grad.len(), idx)?;
    check_len("adam mean", mean.len(), w.len())?;
    check_len("adam var", var.len(), w.len())?;
    let err = error_cell(dev)?;
    if n > 0 {
        let null = 0u64;
        let f = func(dev, "optim.cu", "adam_update_f32")?;
        let mut l = dev.stream().launch_builder(&f);
        l.arg(&n).arg(&d).arg(&rows);
        match idx {
            Some(i) => l.arg(i),
            None => l.arg(&null),
        };
        l.arg(&mut *w).arg(grad).arg(mean).arg(var);
        l.arg(&p.lr_t)
            .arg(&p.beta1)
            .arg(&p.beta2)
            .arg(&p.epsilon)
            .arg(&p.wd)
            .arg(&p.rescale_grad);
        l.arg(&p.clip_gradient).arg(&err);
        launch(l, cfg_for(n as u64), "adam_update_f32")?;
    }
    check_error_cell(dev, err, "adam row", rows as usize)
}

/// AdaGrad (MXNet): `g = clip(rescale*g); history += g^2;
/// w -= lr*(g/sqrt(history+eps) + wd*w)`. `history` has the weight's shape. Rows as in
/// [`sgd_update`]; synchronises to check indices.
pub fn adagrad_update(
    dev: &CudaDevice,
    w: &mut CudaSlice<f32>,
    dim: usize,
    grad: &CudaSlice<f32>,
    idx: Option<&CudaSlice<i64>>,
    history: &mut CudaSlice<f32>,
    p: &AdaGradParams,
) -> Result<()> {
    let (n, d, rows) = update_setup(w.len(), dim, grad.len(), idx)?;
    check_len("adagrad history", history.len(), w.len())?;
    let err = error_cell(dev)?;
    if n > 0 {
        let null = 0u64;
        let f = func(dev, "optim.cu", "adagrad_update_f32")?;
        let mut l = dev.stream().launch_builder(&f);
        l.arg(&n).arg(&d).arg(&rows);
        match idx {
            Some(i) => l.arg(i),
            None => l.arg(&null),
        };
        l.arg(&mut *w).arg(grad).arg(history);
        l.arg(&p.lr)
            .arg(&p.epsilon)
            .arg(&p.wd)
            .arg(&p.rescale_grad)
            .arg(&p.clip_gradient)
            .arg(&err);
        launch(l, cfg_for(n as u64), "adagrad_update_f32")?;
    }
    check_error_cell(dev, err, "adagrad row", rows as usize)
}

/// The rules of the general `rule_update_f32` kernel (codes as in `kernels/optim.cu`).
pub use crate::tensor::row_update::GeneralRule as RuleKernel;

/// Hyper-parameters of a [`RuleKernel`] update. `lr` and `wd` are as the rule uses them
/// (AdamW: the bias-corrected `lr_t` and the decay coefficient `lr * wd`); `hyper` holds
/// the rule's own values in the order `kernels/optim.cu` lists. `clip_gradient < 0`: no
/// clip.
#[derive(Clone, Copy, Debug)]
pub struct RuleParams {
    pub lr: f32,
    pub wd: f32,
    pub rescale_grad: f32,
    pub clip_gradient: f32,
    pub hyper: [f32; 4],
}

/// NAG, AdamW, RMSProp (plain or centered) or FTRL on `w` (`[rows, dim]`) with the
/// rule's `states` (each the weight's shape). Rows as in [`sgd_update`].
#[allow(clippy::too_many_arguments)]
pub fn rule_update(
    dev: &CudaDevice,
    rule: RuleKernel,
    w: &mut CudaSlice<f32>,
    dim: usize,
    grad: &CudaSlice<f32>,
    idx: Option<&CudaSlice<i64>>,
    states: Vec<&mut CudaSlice<f32>>,
    p: &RuleParams,
) -> Result<()> {
    let (n, d, rows) = update_setup(w.len(), dim, grad.len(), idx)?;
    if states.len() != rule.num_states() {
        return Err(invalid(format!(
            "{rule:?} needs {} state buffers, got {}",
            rule.num_states(),
            states.len()
        )));
    }
    for s in &states {
        check_len("optimizer state", s.len(), w.len())?;
    }
    let err = error_cell(dev)?;
    if n > 0 {
        let null = 0u64; // a null device pointer for absent idx / states
        let f = func(dev, "optim.cu", "rule_update_f32")?;
        let mut l = dev.stream().launch_builder(&f);
        let code = rule.code();
        l.arg(&code).arg(&n).arg(&d).arg(&rows);
        match idx {
            Some(i) => l.arg(i),
            None => l.arg(&null),
        };
        l.arg(&mut *w).arg(grad);
        let mut states = states.into_iter();
        for _ in 0..3 {
            match states.next() {
                Some(s) => l.arg(s),
                None => l.arg(&null),
            };
        }
        l.arg(&p.lr)
            .arg(&p.wd)
            .arg(&p.rescale_grad)
            .arg(&p.clip_gradient);
        for h in &p.hyper {
            l.arg(h);
        }
        l.arg(&err);
        launch(l, cfg_for(n as u64), "rule_update_f32")?;
    }
    check_error_cell(dev, err, "optimizer row", rows as usize)
}
