//! Launchers for `kernels/elementwise.cu`: unary and broadcasting binary ops, strided
//! copies, fill and casts, one-hot and the dropout mask.

use super::launch::{
    as_i64, cfg_for, check_error_cell, check_len, error_cell, func, invalid, launch,
};
use crate::cuda::device::CudaDevice;
use crate::error::Result;
use crate::tensor::{BinaryOp, UnaryOp};
use cudarc::driver::{CudaSlice, DeviceRepr, PushKernelArg};

/// Most dimensions a strided copy or a broadcasting binary op handles.
pub const MAX_DIMS: usize = 6;

/// `y[i] = op(x[i])`; `x` and `y` must have the same length. The kernel's op codes and
/// parameters come from [`UnaryOp::code`].
pub fn unary(
    dev: &CudaDevice,
    op: UnaryOp,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    check_len("unary output", y.len(), x.len())?;
    let n = as_i64(x.len());
    if n == 0 {
        return Ok(());
    }
    let f = func(dev, "elementwise.cu", "unary_f32")?;
    let (code, p0, p1) = op.code();
    let mut a = dev.stream().launch_builder(&f);
    a.arg(&code).arg(&n).arg(x).arg(y).arg(&p0).arg(&p1);
    launch(a, cfg_for(n as u64), "unary_f32")
}

/// Row-major contiguous strides for `shape`, in elements (the tensor layer's layout, as
/// the kernels take it).
pub fn contiguous_strides(shape: &[usize]) -> Vec<i64> {
    strides_i64(&crate::tensor::shape::Layout::contiguous(shape).strides)
}

/// A layout's strides as the kernels take them (i64 elements).
pub fn strides_i64(strides: &[usize]) -> Vec<i64> {
    strides.iter().map(|&s| s as i64).collect()
}

/// Kernel parameter block for `binary_f32`; layout matches `BinaryMeta` in
/// `kernels/elementwise.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct BinaryMeta {
    ndim: i64,
    shape: [i64; MAX_DIMS],
    a_strides: [i64; MAX_DIMS],
    b_strides: [i64; MAX_DIMS],
    a_offset: i64,
    b_offset: i64,
}
// SAFETY: plain #[repr(C)] integers, passed by value as a kernel parameter.
unsafe impl DeviceRepr for BinaryMeta {}

/// Kernel parameter block for `strided_copy_*`; layout matches `CopyMeta`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct CopyMeta {
    ndim: i64,
    shape: [i64; MAX_DIMS],
    src_strides: [i64; MAX_DIMS],
    dst_strides: [i64; MAX_DIMS],
    src_offset: i64,
    dst_offset: i64,
}
// SAFETY: as above.
unsafe impl DeviceRepr for CopyMeta {}

/// Smallest and largest element offset `offset + sum(i_d * stride_d)` reaches over
/// `shape` (shape has no zero dims here).
fn offset_range(shape: &[usize], strides: &[i64], offset: usize) -> (i64, i64) {
    let (mut lo, mut hi) = (offset as i64, offset as i64);
    for (&n, &s) in shape.iter().zip(strides) {
        let span = (n as i64 - 1) * s;
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    (lo, hi)
}

/// Checks that a strided view stays inside a buffer of `len` elements.
fn check_view(
    what: &str,
    shape: &[usize],
    strides: &[i64],
    offset: usize,
    len: usize,
) -> Result<()> {
    if strides.len() != shape.len() {
        return Err(invalid(format!(
            "{what}: {} strides for {} dims",
            strides.len(),
            shape.len()
        )));
    }
    let (lo, hi) = offset_range(shape, strides, offset);
    if lo < 0 || hi >= len as i64 {
        return Err(invalid(format!(
            "{what}: view shape {shape:?} strides {strides:?} offset {offset} reaches [{lo}, {hi}] outside a buffer of {len}"
        )));
    }
    Ok(())
}

fn pack(shape: &[usize], what: &str) -> Result<[i64; MAX_DIMS]> {
    if shape.len() > MAX_DIMS {
        return Err(invalid(format!(
            "{what}: {} dims, at most {MAX_DIMS} supported",
            shape.len()
        )));
    }
    let mut a = [0i64; MAX_DIMS];
    for (d, &v) in shape.iter().enumerate() {
        a[d] = v as i64;
    }
    Ok(a)
}

fn pack_i64(v: &[i64]) -> [i64; MAX_DIMS] {
    let mut a = [0i64; MAX_DIMS];
    a[..v.len()].copy_from_slice(v);
    a
}

/// Describes how the two inputs of [`binary`] are read: the (contiguous) output
/// `shape`, and each input's strides (0 on broadcast dims, as the tensor layer's
/// `Layout::broadcast_to` gives them) and element offset.
#[derive(Clone, Debug)]
pub struct Broadcast<'a> {
    pub shape: &'a [usize],
    pub a_strides: &'a [i64],
    pub a_offset: usize,
    pub b_strides: &'a [i64],
    pub b_offset: usize,
}

/// `y = op(a, b)` with `y` contiguous of `bc.shape` (at most 6 dims). Uses an
/// index-free fast path when both inputs are contiguous with that shape.
pub fn binary(
    dev: &CudaDevice,
    op: BinaryOp,
    bc: &Broadcast<'_>,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let n: usize = bc.shape.iter().product();
    check_len("binary output", y.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    check_view("binary lhs", bc.shape, bc.a_strides, bc.a_offset, a.len())?;
    check_view("binary rhs", bc.shape, bc.b_strides, bc.b_offset, b.len())?;
    let code = op.code();
    let n64 = n as i64;
    let contig = contiguous_strides(bc.shape);
    if bc.a_offset == 0
        && bc.b_offset == 0
        && bc.a_strides == contig.as_slice()
        && bc.b_strides == contig.as_slice()
    {
        let f = func(dev, "elementwise.cu", "binary_contig_f32")?;
        let mut l = dev.stream().launch_builder(&f);
        l.arg(&code).arg(&n64).arg(a).arg(b).arg(y);
        return launch(l, cfg_for(n as u64), "binary_contig_f32");
    }
    let meta = BinaryMeta {
        ndim: bc.shape.len() as i64,
        shape: pack(bc.shape, "binary")?,
        a_strides: pack_i64(bc.a_strides),
        b_strides: pack_i64(bc.b_strides),
        a_offset: bc.a_offset as i64,
        b_offset: bc.b_offset as i64,
    };
    let f = func(dev, "elementwise.cu", "binary_f32")?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&code).arg(&n64).arg(&meta).arg(a).arg(b).arg(y);
    launch(l, cfg_for(n as u64), "binary_f32")
}

/// Element types [`strided_copy`] supports (f32 and i64).
pub trait CopyElem: DeviceRepr {
    #[doc(hidden)]
    const KERNEL: &'static str;
}
impl CopyElem for f32 {
    const KERNEL: &'static str = "strided_copy_f32";
}
impl CopyElem for i64 {
    const KERNEL: &'static str = "strided_copy_i64";
}

/// A strided copy: for every index tuple `i` of `shape`,
/// `dst[dst_offset + Σ i_d*dst_strides_d] = src[src_offset + Σ i_d*src_strides_d]`.
/// Transpose/permute, broadcast materialisation (stride 0), slice and concat (offsets
/// into a larger destination) are all this.
#[derive(Clone, Debug)]
pub struct StridedCopy<'a> {
    pub shape: &'a [usize],
    pub src_strides: &'a [i64],
    pub src_offset: usize,
    pub dst_strides: &'a [i64],
    pub dst_offset: usize,
}

/// Runs a [`StridedCopy`] (at most 6 dims). Both views are checked to stay inside
/// their buffers. Destination elements outside the view are left untouched.
pub fn strided_copy<T: CopyElem>(
    dev: &CudaDevice,
    plan: &StridedCopy<'_>,
    src: &CudaSlice<T>,
    dst: &mut CudaSlice<T>,
) -> Result<()> {
    let n: usize = plan.shape.iter().product();
    if n == 0 {
        return Ok(());
    }
    check_view(
        "strided_copy src",
        plan.shape,
        plan.src_strides,
        plan.src_offset,
        src.len(),
    )?;
    check_view(
        "strided_copy dst",
        plan.shape,
        plan.dst_strides,
        plan.dst_offset,
        dst.len(),
    )?;
    let meta = CopyMeta {
        ndim: plan.shape.len() as i64,
        shape: pack(plan.shape, "strided_copy")?,
        src_strides: pack_i64(plan.src_strides),
        dst_strides: pack_i64(plan.dst_strides),
        src_offset: plan.src_offset as i64,
        dst_offset: plan.dst_offset as i64,
    };
    let n64 = n as i64;
    let f = func(dev, "elementwise.cu", T::KERNEL)?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n64).arg(&meta).arg(src).arg(dst);
    launch(l, cfg_for(n as u64), T::KERNEL)
}

/// Sets every element of `y` to `value`.
pub fn fill(dev: &CudaDevice, y: &mut CudaSlice<f32>, value: f32) -> Result<()> {
    let n = as_i64(y.len());
    if n == 0 {
        return Ok(());
    }
    let f = func(dev, "elementwise.cu", "fill_f32")?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n).arg(&value).arg(y);
    launch(l, cfg_for(n as u64), "fill_f32")
}

/// `y[i] = x[i] as f32`.
pub fn cast_i64_f32(dev: &CudaDevice, x: &CudaSlice<i64>, y: &mut CudaSlice<f32>) -> Result<()> {
    check_len("cast output", y.len(), x.len())?;
    let n = as_i64(x.len());
    if n == 0 {
        return Ok(());
    }
    let f = func(dev, "elementwise.cu", "cast_i64_f32")?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n).arg(x).arg(y);
    launch(l, cfg_for(n as u64), "cast_i64_f32")
}

/// 16-bit float element types (`half::f16`, `half::bf16`) for conversions and gathers.
pub trait HalfElem: DeviceRepr {
    #[doc(hidden)]
    const TO_F32: &'static str;
    #[doc(hidden)]
    const FROM_F32: &'static str;
}
impl HalfElem for half::f16 {
    const TO_F32: &'static str = "f16_to_f32_kernel";
    const FROM_F32: &'static str = "f32_to_f16_kernel";
}
impl HalfElem for half::bf16 {
    const TO_F32: &'static str = "bf16_to_f32_kernel";
    const FROM_F32: &'static str = "f32_to_bf16_kernel";
}

/// `y[i] = x[i]` widened to f32 (exact).
pub fn half_to_f32<T: HalfElem>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    check_len("half_to_f32 output", y.len(), x.len())?;
    let n = as_i64(x.len());
    if n == 0 {
        return Ok(());
    }
    let f = func(dev, "elementwise.cu", T::TO_F32)?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n).arg(x).arg(y);
    launch(l, cfg_for(n as u64), T::TO_F32)
}

/// `y[i] = x[i]` rounded to nearest even, the same as `half::{f16,bf16}::from_f32`.
pub fn f32_to_half<T: HalfElem>(
    dev: &CudaDevice,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<T>,
) -> Result<()> {
    check_len("f32_to_half output", y.len(), x.len())?;
    let n = as_i64(x.len());
    if n == 0 {
        return Ok(());
    }
    let f = func(dev, "elementwise.cu", T::FROM_F32)?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n).arg(x).arg(y);
    launch(l, cfg_for(n as u64), T::FROM_F32)
}

/// `out[i, c] = (labels[i] == c) as f32`, `out` of `labels.len() * classes`. A label
/// outside `[0, classes)` gives `Error::IndexOutOfRange` (its row is written as zeros).
/// Synchronises to check.
pub fn one_hot(
    dev: &CudaDevice,
    labels: &CudaSlice<i64>,
    classes: usize,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = labels.len();
    check_len("one_hot output", out.len(), n * classes)?;
    if n == 0 {
        return Ok(());
    }
    if classes == 0 {
        return Err(invalid("one_hot with 0 classes".into()));
    }
    let err = error_cell(dev)?;
    let (n64, c64) = (n as i64, classes as i64);
    let f = func(dev, "elementwise.cu", "one_hot_f32")?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n64).arg(&c64).arg(labels).arg(out).arg(&err);
    launch(l, cfg_for((n * classes) as u64), "one_hot_f32")?;
    check_error_cell(dev, err, "one_hot label", classes)
}

/// Dropout mask: `mask[i] = if uniform_hash(seed, i) >= p { 1/(1-p) } else { 0 }`,
/// bit-identical to the CPU mask built with [`crate::rng::uniform_hash`]. `p` in [0, 1].
pub fn dropout_mask(dev: &CudaDevice, seed: u64, p: f32, mask: &mut CudaSlice<f32>) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(invalid(format!("dropout probability {p} outside [0, 1]")));
    }
    let n = as_i64(mask.len());
    if n == 0 {
        return Ok(());
    }
    // Computed here once so the CPU reference (same expression) matches bit for bit.
    let scale = dropout_scale(p);
    let f = func(dev, "elementwise.cu", "dropout_mask_f32")?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n).arg(&seed).arg(&p).arg(&scale).arg(mask);
    launch(l, cfg_for(n as u64), "dropout_mask_f32")
}

/// The keep-scale of dropout: `1/(1-p)`, or 0 when `p == 1` (everything dropped).
pub fn dropout_scale(p: f32) -> f32 {
    if p >= 1.0 {
        0.0
    } else {
        1.0 / (1.0 - p)
    }
}
