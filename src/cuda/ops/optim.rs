//! The launcher for `kernels/optim.cu`: any of its fused row updates, dense or over the
//! rows of a row-sparse gradient.

use super::launch::{cfg_for, check_error_cell, check_len, error_cell, func, invalid, launch};
use crate::cuda::device::CudaDevice;
use crate::error::Result;
use cudarc::driver::{CudaSlice, PushKernelArg};

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

/// Runs kernel `name` of `kernels/optim.cu` (all share `ROW_UPDATE`'s signature) on `w`
/// (`[rows, dim]`) with up to three `states` (each the weight's shape; the kernel reads
/// as many as its update keeps) and its eight `scalars` in the kernel's order. Rows as in
/// `update_setup`: `idx` lists the rows of a row-sparse gradient (others untouched),
/// `None` means dense. An id `>= rows` gives `Error::IndexOutOfRange` (synchronising,
/// or at the next read back inside `deferring_index_checks`).
#[allow(clippy::too_many_arguments)]
pub fn row_update(
    dev: &CudaDevice,
    name: &'static str,
    w: &mut CudaSlice<f32>,
    dim: usize,
    grad: &CudaSlice<f32>,
    idx: Option<&CudaSlice<i64>>,
    states: Vec<&mut CudaSlice<f32>>,
    scalars: &[f32; 8],
) -> Result<()> {
    let (n, d, rows) = update_setup(w.len(), dim, grad.len(), idx)?;
    if states.len() > 3 {
        return Err(invalid(format!(
            "{name}: at most 3 state buffers, got {}",
            states.len()
        )));
    }
    for s in &states {
        check_len("optimizer state", s.len(), w.len())?;
    }
    let err = error_cell(dev)?;
    if n > 0 {
        let null = 0u64; // a null device pointer for absent idx / states
        let f = func(dev, "optim.cu", name)?;
        let mut l = dev.stream().launch_builder(&f);
        l.arg(&n).arg(&d).arg(&rows);
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
        for p in scalars {
            l.arg(p);
        }
        l.arg(&err);
        launch(l, cfg_for(n as u64), name)?;
    }
    check_error_cell(dev, err, "optimizer row", rows as usize)
}
