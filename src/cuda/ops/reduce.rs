//! Launchers for `kernels/reduce.cu`: sums, maxima, minima and argmax over one axis.

use super::launch::{check_len, func, invalid, launch, MAX_BLOCKS, THREADS};
use crate::cuda::device::CudaDevice;
use crate::error::Result;
use crate::tensor::ReduceOp;
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

fn check_reduce(x_len: usize, y_len: usize, outer: usize, len: usize, inner: usize) -> Result<()> {
    check_len("reduce input", x_len, outer * len * inner)?;
    check_len("reduce output", y_len, outer * inner)?;
    if len == 0 {
        return Err(invalid("reduce over an axis of length 0".into()));
    }
    Ok(())
}

/// Grid for the inner > 1 kernels: (ceil(inner/32), outer capped at 65535) with
/// 32 x 32 threads; the kernels loop over any remaining outer rows.
fn mid_cfg(outer: usize, inner: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (inner.div_ceil(32) as u32, outer.clamp(1, 65535) as u32, 1),
        block_dim: (32, 32, 1),
        shared_mem_bytes: 0,
    }
}

/// Rows longer than this get a whole 256-thread block each, shorter ones a warp.
const LONG_ROW: usize = 1024;

/// The last-axis kernel for rows of `len`: a warp per row, or a block per long row.
fn per_row(warp: &'static str, block: &'static str, len: usize) -> &'static str {
    if len > LONG_ROW {
        block
    } else {
        warp
    }
}

fn last_cfg(outer: usize, len: usize) -> LaunchConfig {
    let rows_per_block = if len > LONG_ROW {
        1
    } else {
        (THREADS / 32) as usize
    };
    let blocks = outer.div_ceil(rows_per_block).clamp(1, MAX_BLOCKS as usize) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Reduces a contiguous tensor viewed as `(outer, len, inner)` over the middle axis:
/// `y[o, i] = op_j x[o, j, i]`, `y` of `outer * inner` elements. Block/warp reductions in
/// a fixed order, so results are deterministic.
pub fn reduce(
    dev: &CudaDevice,
    op: ReduceOp,
    x: &CudaSlice<f32>,
    (outer, len, inner): (usize, usize, usize),
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    check_reduce(x.len(), y.len(), outer, len, inner)?;
    if outer * inner == 0 {
        return Ok(());
    }
    let code = op.code();
    let (o, l64, i) = (outer as i64, len as i64, inner as i64);
    if inner == 1 {
        let name = per_row("reduce_last_warp_f32", "reduce_last_block_f32", len);
        let f = func(dev, "reduce.cu", name)?;
        let mut a = dev.stream().launch_builder(&f);
        a.arg(&code).arg(&o).arg(&l64).arg(x).arg(y);
        launch(a, last_cfg(outer, len), name)
    } else {
        let f = func(dev, "reduce.cu", "reduce_mid_f32")?;
        let mut a = dev.stream().launch_builder(&f);
        a.arg(&code).arg(&o).arg(&l64).arg(&i).arg(x).arg(y);
        launch(a, mid_cfg(outer, inner), "reduce_mid_f32")
    }
}

/// Index of the first maximum along the middle axis of `(outer, len, inner)`;
/// `y` has `outer * inner` elements. NaNs are never selected.
pub fn argmax(
    dev: &CudaDevice,
    x: &CudaSlice<f32>,
    (outer, len, inner): (usize, usize, usize),
    y: &mut CudaSlice<i64>,
) -> Result<()> {
    check_reduce(x.len(), y.len(), outer, len, inner)?;
    if outer * inner == 0 {
        return Ok(());
    }
    let (o, l64, i) = (outer as i64, len as i64, inner as i64);
    if inner == 1 {
        let name = per_row("argmax_last_warp_f32", "argmax_last_block_f32", len);
        let f = func(dev, "reduce.cu", name)?;
        let mut a = dev.stream().launch_builder(&f);
        a.arg(&o).arg(&l64).arg(x).arg(y);
        launch(a, last_cfg(outer, len), name)
    } else {
        let f = func(dev, "reduce.cu", "argmax_mid_f32")?;
        let mut a = dev.stream().launch_builder(&f);
        a.arg(&o).arg(&l64).arg(&i).arg(x).arg(y);
        launch(a, mid_cfg(outer, inner), "argmax_mid_f32")
    }
}

/// `y` = softmax (or, with `log`, log-softmax) of each `len`-long row of `x`
/// (`outer` rows, contiguous).
pub fn softmax(
    dev: &CudaDevice,
    x: &CudaSlice<f32>,
    (outer, len): (usize, usize),
    log: bool,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    check_len("softmax input", x.len(), outer * len)?;
    check_len("softmax output", y.len(), outer * len)?;
    if outer * len == 0 {
        return Ok(());
    }
    let name = per_row("softmax_last_warp_f32", "softmax_last_block_f32", len);
    let f = func(dev, "reduce.cu", name)?;
    let (log, o, l64) = (i32::from(log), outer as i64, len as i64);
    let mut a = dev.stream().launch_builder(&f);
    a.arg(&log).arg(&o).arg(&l64).arg(x).arg(y);
    launch(a, last_cfg(outer, len), name)
}

/// `dx` of [`softmax`] from its output `y` and output gradient `dy`.
pub fn softmax_grad(
    dev: &CudaDevice,
    y: &CudaSlice<f32>,
    dy: &CudaSlice<f32>,
    (outer, len): (usize, usize),
    log: bool,
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    for (what, n) in [("y", y.len()), ("dy", dy.len()), ("dx", dx.len())] {
        check_len(what, n, outer * len)?;
    }
    if outer * len == 0 {
        return Ok(());
    }
    let name = per_row(
        "softmax_grad_last_warp_f32",
        "softmax_grad_last_block_f32",
        len,
    );
    let f = func(dev, "reduce.cu", name)?;
    let (log, o, l64) = (i32::from(log), outer as i64, len as i64);
    let mut a = dev.stream().launch_builder(&f);
    a.arg(&log).arg(&o).arg(&l64).arg(y).arg(dy).arg(dx);
    launch(a, last_cfg(outer, len), name)
}
