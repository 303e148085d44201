//! Launchers for `kernels/window.cu`: im2col, col2im and pooling over `NCHW` images.

use super::launch::{cfg_for, check_len, func, launch};
use crate::cuda::device::CudaDevice;
use crate::error::Result;
use crate::tensor::{PoolKind, Window2d};
use cudarc::driver::{CudaSlice, DeviceRepr, PushKernelArg};

/// Kernel parameter block; layout matches `Win` in `kernels/window.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Win([i64; 14]);
// SAFETY: plain #[repr(C)] integers, passed by value as a kernel parameter.
unsafe impl DeviceRepr for Win {}

fn win(g: &Window2d) -> Win {
    let v = [
        g.n, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.oh, g.ow,
    ];
    Win(v.map(|d| d as i64))
}

/// `(kind, include_pad)` as the kernels read them.
fn pool_codes(kind: PoolKind) -> (i32, i32) {
    match kind {
        PoolKind::Max => (0, 0),
        PoolKind::Avg { count_include_pad } => (1, count_include_pad as i32),
    }
}

/// `cols[n, c·kh·kw, oh·ow]` from `x[n, c, h, w]`.
pub fn im2col(
    dev: &CudaDevice,
    g: &Window2d,
    x: &CudaSlice<f32>,
    cols: &mut CudaSlice<f32>,
) -> Result<()> {
    check_len("im2col input", x.len(), g.input_len())?;
    let total = g.cols_len();
    check_len("im2col output", cols.len(), total)?;
    if total == 0 {
        return Ok(());
    }
    let f = func(dev, "window.cu", "im2col_f32")?;
    let w = win(g);
    let mut a = dev.stream().launch_builder(&f);
    a.arg(&w).arg(x).arg(cols);
    launch(a, cfg_for(total as u64), "im2col_f32")
}

/// `x[n, c, h, w]` = the column values taken from each position, summed.
pub fn col2im(
    dev: &CudaDevice,
    g: &Window2d,
    cols: &CudaSlice<f32>,
    x: &mut CudaSlice<f32>,
) -> Result<()> {
    check_len("col2im input", cols.len(), g.cols_len())?;
    check_len("col2im output", x.len(), g.input_len())?;
    if g.input_len() == 0 {
        return Ok(());
    }
    let f = func(dev, "window.cu", "col2im_f32")?;
    let w = win(g);
    let mut a = dev.stream().launch_builder(&f);
    a.arg(&w).arg(cols).arg(x);
    launch(a, cfg_for(g.input_len() as u64), "col2im_f32")
}

/// `y[n, c, oh, ow]`: each window's maximum or average.
pub fn pool2d(
    dev: &CudaDevice,
    g: &Window2d,
    kind: PoolKind,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    check_len("pool2d input", x.len(), g.input_len())?;
    check_len("pool2d output", y.len(), g.output_len())?;
    if g.output_len() == 0 {
        return Ok(());
    }
    let f = func(dev, "window.cu", "pool2d_f32")?;
    let (w, (k, pad)) = (win(g), pool_codes(kind));
    let mut a = dev.stream().launch_builder(&f);
    a.arg(&w).arg(&k).arg(&pad).arg(x).arg(y);
    launch(a, cfg_for(g.output_len() as u64), "pool2d_f32")
}

/// `dx[n, c, h, w]`, the input's gradient of a pooling given `dy[n, c, oh, ow]`.
pub fn pool2d_grad(
    dev: &CudaDevice,
    g: &Window2d,
    kind: PoolKind,
    x: &CudaSlice<f32>,
    dy: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    check_len("pool2d_grad input", x.len(), g.input_len())?;
    check_len("pool2d_grad output gradient", dy.len(), g.output_len())?;
    check_len("pool2d_grad input gradient", dx.len(), g.input_len())?;
    if g.input_len() == 0 {
        return Ok(());
    }
    let f = func(dev, "window.cu", "pool2d_grad_f32")?;
    let (w, (k, pad)) = (win(g), pool_codes(kind));
    let mut a = dev.stream().launch_builder(&f);
    a.arg(&w).arg(&k).arg(&pad).arg(x).arg(dy).arg(dx);
    launch(a, cfg_for(g.input_len() as u64), "pool2d_grad_f32")
}
